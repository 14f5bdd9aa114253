//! The plugin's global allocator: talc, in place of the standard library's
//! (wasi-libc's dlmalloc), in WebAssembly builds only.
//!
//! Why: allocation is a larger share of a plugin's time in the sandbox than
//! natively (glibc's malloc is native code with per-thread caches; dlmalloc
//! is compiled to WebAssembly and then by Cranelift). With talc, parse ran
//! at 0.66-0.70x of native instead of 0.62-0.66x in eight interleaved A/B
//! pairs of the chain benchmark, and the chain at 0.62-0.66x instead of
//! 0.61-0.63x (docs/performance.md).
//!
//! Invariants: a plugin instance is single-threaded, so the allocator needs
//! no lock (`WasmDynamicTalc` is the unsynchronised wrapper, only compiled
//! without the `atomics` target feature). It takes memory with
//! `memory.grow`, so the host's memory limit applies to it exactly as to
//! dlmalloc: a refused growth is an allocation failure, which aborts the
//! call and the host reports it as "memory limit exceeded".
//!
//! Plugins that want another allocator turn off the SDK's default `talc`
//! feature and declare their own `#[global_allocator]`.

#[cfg(not(target_feature = "atomics"))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
