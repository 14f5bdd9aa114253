//! The WebAssembly runtime: the only module that uses wasmtime.
//!
//! One [`Runtime`] per host process owns one `Engine` (epoch interruption on,
//! pooling instance allocator), one `Linker` with the WASI and `weir:plugin`
//! host functions (built once), a background thread that advances the epoch,
//! and the compiled-artifact cache. From it, [`Runtime::load`] produces a
//! [`LoadedPlugin`] per plugin version, from which per-worker
//! [`PluginInstance`]s are created: never one per record.

mod artifacts;
mod bindings;
mod deadline;
mod log_budget;
mod plugin;
mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
    ProfilingStrategy,
};

pub use artifacts::CompiledFrom;
pub use bindings::{DocRecord, PluginError, PluginInfo};
pub use log_budget::DROPPED_COUNTER;
pub use plugin::{LoadedPlugin, PluginInstance, RecordOutcome, Trap, Usage, plugin_error_message};
pub use sandbox::{Grants, Limits};

use crate::digest::Digest;
use sandbox::StoreState;

/// Errors loading or starting plugins. Per-record problems are not errors
/// here: they are [`Trap`]s or [`PluginError`]s handled by the chain.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine could not be configured.
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
    /// The instance pool could not reserve its address space: it reserves
    /// all of it up front, which a process limited by `ulimit -v` (many
    /// batch schedulers set one) may not be allowed.
    #[error(
        "cannot reserve address space for a pool of {max_instances} plugin instances \
         (`[runtime] max_instances`; the pool reserves about 8 GiB of address space, \
         not of memory, per instance): {reason}. Lower `[runtime] max_instances` \
         (a host needs one per stage per partition it runs at once) or raise the \
         process's address-space limit (`ulimit -v`)"
    )]
    InstancePool {
        /// The pool's size.
        max_instances: u32,
        /// What the allocator said.
        reason: String,
    },
    /// The plugin file could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid component.
    #[error("cannot compile plugin {plugin}: {reason}")]
    Compile {
        /// The plugin's name or file.
        plugin: String,
        /// What the compiler said.
        reason: String,
    },
    /// A valid component, but not a weir plugin this host can link: wrong
    /// world, wrong package version, or imports the host does not provide.
    #[error("{plugin} is not a weir:plugin@0.1.0 transform component this host can run: {reason}")]
    NotAPlugin {
        /// The plugin's name or file.
        plugin: String,
        /// The linker's explanation.
        reason: String,
    },
    /// Creating an instance failed (start-up code trapped, limits too small,
    /// a granted directory is missing).
    #[error("cannot instantiate {plugin}: {reason}")]
    Instantiate {
        /// The plugin label.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The plugin's `init` rejected its configuration or trapped.
    #[error("{plugin} failed to initialise: {reason}")]
    Init {
        /// The plugin label.
        plugin: String,
        /// The plugin's error or the trap.
        reason: String,
    },
}

/// Engine-wide settings, fixed for the lifetime of a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled artifacts are cached; `None` disables the cache.
    pub compiled_cache_dir: Option<PathBuf>,
    /// Upper bound on live plugin instances (pooling allocator slots).
    pub max_instances: u32,
    /// Largest memory any instance may have; every stage's
    /// [`Limits::max_memory_bytes`] must be at most this.
    pub max_memory_bytes: usize,
    /// Enable fuel metering (needed if any stage sets [`Limits::fuel`]).
    pub fuel: bool,
    /// Epoch length: deadlines are enforced with this granularity.
    pub epoch_tick: Duration,
    /// Compile plugins with interruption checks (at every function entry
    /// and loop back-edge), which is what enforces [`Limits::deadline`].
    /// Without them a looping plugin holds its worker forever: this exists
    /// only so the chain benchmark can measure what the checks cost, and
    /// must stay on for any plugin that is not fully trusted.
    pub interruptible: bool,
    /// Write `/tmp/perf-<pid>.map` so that `perf report` names the plugins'
    /// compiled functions. Defaults to on when `WEIR_PERF_MAP` is set, so
    /// any binary (`weir run`, the benchmarks) can be profiled as it is.
    pub perf_map: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            compiled_cache_dir: None,
            max_instances: 128,
            max_memory_bytes: 1 << 30,
            fuel: false,
            epoch_tick: Duration::from_millis(10),
            interruptible: true,
            perf_map: std::env::var_os("WEIR_PERF_MAP").is_some(),
        }
    }
}

/// The engine, linker and epoch clock shared by all plugins of a host.
pub struct Runtime {
    engine: Engine,
    linker: Linker<StoreState>,
    compiled_cache_dir: Option<PathBuf>,
    epoch_tick: Duration,
    fuel_enabled: bool,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Configure the engine and build the linker.
    pub fn new(options: &RuntimeOptions) -> Result<Self, RuntimeError> {
        let engine_error = |e: wasmtime::Error| RuntimeError::Engine(format!("{e:#}"));
        let mut pool = PoolingAllocationConfig::default();
        let instances = options.max_instances.max(1);
        // A Rust wasip2 component has a handful of core instances, one or two
        // memories and a few tables; leave headroom per component.
        pool.total_component_instances(instances)
            .total_core_instances(instances * 8)
            .total_memories(instances * 2)
            .total_tables(instances * 8)
            // Fiber stacks serve async calls only, which this host never
            // makes; wasmtime's default reserves 1,000 and protects a guard
            // page in each at start-up (2,000 mappings, about 6 ms of every
            // run's start and more at its exit).
            .total_stacks(instances)
            .max_memory_size(options.max_memory_bytes);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(options.interruptible)
            .consume_fuel(options.fuel)
            .cranelift_opt_level(OptLevel::Speed)
            .profiler(if options.perf_map {
                ProfilingStrategy::PerfMap
            } else {
                ProfilingStrategy::None
            })
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = match Engine::new(&config) {
            Ok(engine) => engine,
            Err(pooled) => {
                // The same engine without the pool tells a pool that cannot
                // reserve its address space from any other failure.
                config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                return Err(match Engine::new(&config) {
                    Ok(_) => RuntimeError::InstancePool {
                        max_instances: instances,
                        reason: format!("{pooled:#}"),
                    },
                    Err(_) => engine_error(pooled),
                });
            }
        };

        let mut linker = Linker::<StoreState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_error)?;
        bindings::TransformPlugin::add_to_linker::<StoreState, HasSelf<StoreState>>(
            &mut linker,
            |state| state,
        )
        .map_err(engine_error)?;

        Ok(Runtime {
            _ticker: EpochTicker::start(engine.clone(), options.epoch_tick),
            engine,
            linker,
            compiled_cache_dir: options.compiled_cache_dir.clone(),
            epoch_tick: options.epoch_tick,
            fuel_enabled: options.fuel,
        })
    }

    /// Plugin instances alive in the pool now.
    #[cfg(test)]
    pub(crate) fn live_instances(&self) -> u64 {
        self.engine
            .pooling_allocator_metrics()
            .expect("the engine pools its instances")
            .component_instances()
    }

    /// Load a plugin from component bytes. `name` is used in errors until the
    /// plugin has described itself.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<LoadedPlugin, RuntimeError> {
        let digest = Digest::of(bytes);
        let (component, compiled_from) = artifacts::load_component(
            &self.engine,
            bytes,
            &digest,
            name,
            self.compiled_cache_dir.as_deref(),
        )?;
        LoadedPlugin::new(component, digest, compiled_from, self, name)
    }

    /// Load a plugin from a `.wasm` component file.
    pub fn load_file(&self, path: &Path) -> Result<LoadedPlugin, RuntimeError> {
        let bytes = std::fs::read(path).map_err(|source| RuntimeError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load(&path.display().to_string(), &bytes)
    }
}

/// Advances the engine's epoch every tick on a background thread, which is
/// what makes deadlines fire. Stops when dropped, at once: the thread waits
/// for its next tick on a channel that dropping the ticker closes (a sleep
/// held every run's exit up for the rest of a tick, 5 ms on average).
struct EpochTicker {
    /// Dropped to stop the thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })
            .expect("spawn the epoch thread");
        EpochTicker {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::plugin_path;

    #[test]
    fn the_epoch_ticker_stops_without_waiting_for_its_next_tick() {
        let engine = Engine::new(Config::new().epoch_interruption(true)).unwrap();
        let ticker = EpochTicker::start(engine, Duration::from_secs(120));
        let dropping = std::time::Instant::now();
        drop(ticker);
        // Sleeping between ticks, it held the drop for the rest of one.
        assert!(dropping.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn a_file_that_is_not_a_component_is_refused_with_its_reason() {
        let runtime = Runtime::new(&RuntimeOptions::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.wasm");
        std::fs::write(&path, b"not wasm").unwrap();
        assert!(matches!(
            runtime.load_file(&path),
            Err(RuntimeError::Compile { .. })
        ));
        assert!(matches!(
            runtime.load_file(&dir.path().join("missing.wasm")),
            Err(RuntimeError::Read { .. })
        ));
    }

    /// A loaded plugin describes itself, and one instance serves many
    /// batches, one outcome per record.
    #[test]
    fn an_instance_is_reused_across_batches() {
        let runtime = Runtime::new(&RuntimeOptions::default()).unwrap();
        let echo = runtime.load_file(&plugin_path("echo")).unwrap();
        assert_eq!(echo.info().name, "echo");
        assert!(echo.label().starts_with("echo@"));
        let mut instance = echo
            .instantiate(&Limits::default(), &Grants::default(), "{}")
            .unwrap();
        for n in 0..3 {
            let records: Vec<DocRecord> = (0..n + 1)
                .map(|i| DocRecord {
                    id: format!("r{i}"),
                    revision: 1,
                    content_type: "text/plain".into(),
                    body: b"x".to_vec(),
                    metadata: Vec::new(),
                })
                .collect();
            let outcomes = instance.process(&records).unwrap();
            assert_eq!(outcomes.len(), records.len());
            assert!(outcomes.iter().all(|o| o.is_ok()));
        }
    }
}
