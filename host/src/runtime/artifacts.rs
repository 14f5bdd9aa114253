//! Compiled-artifact cache: native code for a component, on disk, keyed by
//! the component's sha256 and the engine's compatibility hash, so a second
//! start of the host does not recompile a plugin it has seen before.
//!
//! Invariant: a file in the cache is only ever produced by
//! `Engine::precompile_component` of this host, written to a temporary name
//! and renamed into place, so readers never see a partial file.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::RuntimeError;
use crate::digest::Digest;

/// Where a loaded component's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompiledFrom {
    /// Compiled now (and stored in the cache, if there is one).
    Compiled,
    /// Read from the on-disk cache: no compilation happened.
    Cache,
}

/// Compile `bytes`, or load its precompiled artifact from `cache_dir`.
pub(super) fn load_component(
    engine: &Engine,
    bytes: &[u8],
    digest: &Digest,
    label: &str,
    cache_dir: Option<&Path>,
) -> Result<(Component, CompiledFrom), RuntimeError> {
    let compile_error = |source: wasmtime::Error| RuntimeError::Compile {
        plugin: label.to_owned(),
        reason: format!("{source:#}"),
    };
    let Some(dir) = cache_dir else {
        let component = Component::new(engine, bytes).map_err(compile_error)?;
        return Ok((component, CompiledFrom::Compiled));
    };
    let path = artifact_path(engine, dir, digest);
    if path.exists() {
        // SAFETY: the file was written by `precompile_component` of an engine
        // with the same compatibility hash (part of the file name), through
        // an atomic rename. Whoever can write this directory can already
        // replace the host binary, so it is trusted like the binary.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok((component, CompiledFrom::Cache)),
            Err(e) => tracing::warn!(
                path = %path.display(),
                "ignoring unreadable compiled artifact, recompiling: {e:#}"
            ),
        }
    }
    let compiled = engine.precompile_component(bytes).map_err(compile_error)?;
    if let Err(e) = crate::atomic_file::write(&path, &compiled) {
        tracing::warn!(path = %path.display(), "cannot cache compiled artifact: {e}");
    }
    // SAFETY: `compiled` was produced just above by this engine.
    let component = unsafe { Component::deserialize(engine, &compiled) }.map_err(compile_error)?;
    Ok((component, CompiledFrom::Compiled))
}

fn artifact_path(engine: &Engine, dir: &Path, digest: &Digest) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{}-{:016x}.cwasm", digest.hex(), hasher.finish()))
}
