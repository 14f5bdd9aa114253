//! A loaded plugin version ([`LoadedPlugin`]: compiled, linked,
//! pre-instantiated, self-described) and a live instance of it
//! ([`PluginInstance`]) that processes batches.
//!
//! Invariants:
//! - A `LoadedPlugin` is created once per plugin version and shared; creating
//!   an instance from it does no compilation or linking.
//! - A `PluginInstance` is used for many batches. After a [`Trap`] it must be
//!   discarded: the component model forbids re-entering a trapped instance.
//! - Every `process` call runs under the instance's deadline (epochs; see
//!   [`super::deadline`] for what counts), memory limit (resource limiter)
//!   and optional fuel budget.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Engine, Store};

use super::RuntimeError;
use super::artifacts::CompiledFrom;
use super::bindings::{DocRecord, PluginError, PluginInfo, TransformPlugin, TransformPluginPre};
use super::deadline::{CallClock, Deadline};
use super::log_budget::LogBudget;
use super::sandbox::{Grants, Limits, StoreState};
use crate::counters::Counters;
use crate::digest::Digest;

/// The result of processing one record: its outputs or the plugin's error.
pub type RecordOutcome = Result<Vec<DocRecord>, PluginError>;

/// A plugin version ready to be instantiated cheaply, any number of times.
pub struct LoadedPlugin {
    digest: Digest,
    info: PluginInfo,
    label: Arc<str>,
    pre: TransformPluginPre<StoreState>,
    engine: Engine,
    epoch_tick: Duration,
    fuel_enabled: bool,
    compiled_from: CompiledFrom,
    /// How much all instances of this plugin may log.
    log_budget: Arc<LogBudget>,
}

impl LoadedPlugin {
    pub(super) fn new(
        component: Component,
        digest: Digest,
        compiled_from: CompiledFrom,
        runtime: &super::Runtime,
        source_name: &str,
    ) -> Result<Self, RuntimeError> {
        let not_a_plugin = |e: wasmtime::Error| RuntimeError::NotAPlugin {
            plugin: source_name.to_owned(),
            reason: format!("{e:#}"),
        };
        let instance_pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(not_a_plugin)?;
        let pre = TransformPluginPre::new(instance_pre).map_err(not_a_plugin)?;
        let mut plugin = LoadedPlugin {
            digest,
            info: PluginInfo {
                name: source_name.to_owned(),
                version: String::new(),
                accepts: Vec::new(),
                produces: Vec::new(),
            },
            label: format!("{source_name} ({})", digest.short()).into(),
            pre,
            engine: runtime.engine.clone(),
            epoch_tick: runtime.epoch_tick,
            fuel_enabled: runtime.fuel_enabled,
            compiled_from,
            log_budget: Arc::default(),
        };
        plugin.info = plugin.describe()?;
        plugin.label = format!(
            "{}@{} ({})",
            plugin.info.name,
            plugin.info.version,
            digest.short()
        )
        .into();
        Ok(plugin)
    }

    /// Ask a throwaway instance (default limits, no grants, no `init`) what
    /// the plugin is.
    fn describe(&self) -> Result<PluginInfo, RuntimeError> {
        let mut instance = self.instance_without_init(&Limits::default(), &Grants::default())?;
        instance.arm();
        instance
            .bindings
            .weir_plugin_transform()
            .call_describe(&mut instance.store)
            .map_err(|e| RuntimeError::Instantiate {
                plugin: self.label.to_string(),
                reason: format!("describe trapped: {}", instance.classify(e)),
            })
    }

    /// The sha256 of the component bytes: the plugin version's identity.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// What the plugin declared about itself.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// `name@version (digest prefix)`, for logs and errors.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether loading compiled the component or reused a cached artifact.
    pub fn compiled_from(&self) -> CompiledFrom {
        self.compiled_from
    }

    /// Create an instance with these limits and grants and call its `init`
    /// with `config_json`.
    pub fn instantiate(
        &self,
        limits: &Limits,
        grants: &Grants,
        config_json: &str,
    ) -> Result<PluginInstance, RuntimeError> {
        let mut instance = self.instance_without_init(limits, grants)?;
        instance.arm();
        let init = instance
            .bindings
            .weir_plugin_transform()
            .call_init(&mut instance.store, config_json);
        instance.store.data_mut().end_call();
        match init {
            Ok(Ok(())) => Ok(instance),
            Ok(Err(error)) => Err(RuntimeError::Init {
                plugin: self.label.to_string(),
                reason: plugin_error_message(&error),
            }),
            Err(trap) => Err(RuntimeError::Init {
                plugin: self.label.to_string(),
                reason: instance.classify(trap).to_string(),
            }),
        }
    }

    fn instance_without_init(
        &self,
        limits: &Limits,
        grants: &Grants,
    ) -> Result<PluginInstance, RuntimeError> {
        let failed = |reason: String| RuntimeError::Instantiate {
            plugin: self.label.to_string(),
            reason,
        };
        let state = StoreState::new(self.label.clone(), limits, grants, self.log_budget.clone())
            .map_err(|e| failed(e.to_string()))?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        let deadline = Deadline::new(limits.deadline, self.epoch_tick);
        store
            .epoch_deadline_callback(move |store| Ok(deadline.on_expiry(&store.data().call_clock)));
        let budget = Budget {
            limits: limits.clone(),
            deadline,
            fuel_enabled: self.fuel_enabled,
        };
        // Start-up code of the component runs under the same limits.
        budget.arm(&mut store);
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| failed(format!("{e:#}")))?;
        Ok(PluginInstance {
            store,
            bindings,
            budget,
            last_fuel: None,
        })
    }
}

/// The text of a plugin-reported error.
pub fn plugin_error_message(error: &PluginError) -> String {
    match error {
        PluginError::BadInput(m) => format!("bad input: {m}"),
        PluginError::PluginFailure(m) => format!("plugin failure: {m}"),
    }
}

/// Why a `process` call did not return: the instance trapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Trap {
    /// The batch ran past its deadline (wall time, less the time its thread
    /// waited for a CPU).
    #[error("deadline exceeded: the call ran longer than {0:?}")]
    Deadline(Duration),
    /// The plugin tried to grow its memory past the limit.
    #[error(
        "memory limit exceeded: the plugin asked for {requested} bytes, the limit is {limit} bytes"
    )]
    Memory {
        /// The memory size the plugin asked for.
        requested: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The call used up its fuel budget.
    #[error("fuel exhausted: the call used more than {0} units of fuel")]
    Fuel(u64),
    /// The plugin panicked; the message is what the SDK reported.
    #[error("plugin panicked: {0}")]
    Panic(String),
    /// The plugin returned a different number of outcomes than it got records.
    #[error("contract violation: {0}")]
    Contract(String),
    /// Any other trap (unreachable, out-of-bounds access, host error, ...).
    #[error("plugin trapped: {0}")]
    Other(String),
}

impl Trap {
    /// The kind of trap, as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Trap::Deadline(_) => "deadline",
            Trap::Memory { .. } => "memory",
            Trap::Fuel(_) => "fuel",
            Trap::Panic(_) => "panic",
            Trap::Contract(_) => "contract",
            Trap::Other(_) => "other",
        }
    }
}

/// What an instance has used: its memory high-water mark, and the fuel its
/// last call burnt (when the engine meters fuel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The largest linear memory the instance was granted, in bytes.
    pub memory_bytes: usize,
    /// Fuel the last `process` call consumed.
    pub fuel: Option<u64>,
}

/// The per-call budget of an instance: deadline (in epoch ticks), fuel.
struct Budget {
    limits: Limits,
    deadline: Deadline,
    fuel_enabled: bool,
}

impl Budget {
    /// Reset the deadline and fuel before a call into the instance.
    fn arm(&self, store: &mut Store<StoreState>) {
        store.data_mut().call_clock = CallClock::start();
        store.set_epoch_deadline(self.deadline.ticks());
        if self.fuel_enabled {
            // Without a fuel limit the stage still needs fuel: give it all.
            let fuel = self.limits.fuel.unwrap_or(u64::MAX);
            store
                .set_fuel(fuel)
                .expect("fuel is enabled on this engine");
        }
    }
}

/// A live plugin instance: one store, reused for many batches.
pub struct PluginInstance {
    store: Store<StoreState>,
    bindings: TransformPlugin,
    budget: Budget,
    /// Fuel the last call consumed (engines that meter fuel).
    last_fuel: Option<u64>,
}

impl PluginInstance {
    /// Process one batch: one outcome per record, in order, or the trap that
    /// ended the call. After a trap, drop this instance and make a new one.
    pub fn process(&mut self, batch: &[DocRecord]) -> Result<Vec<RecordOutcome>, Trap> {
        self.arm();
        let called = self
            .bindings
            .weir_plugin_transform()
            .call_process(&mut self.store, batch);
        self.store.data_mut().end_call();
        if self.budget.fuel_enabled {
            let budget = self.budget.limits.fuel.unwrap_or(u64::MAX);
            self.last_fuel = self.store.get_fuel().ok().map(|left| budget - left);
        }
        let outcomes = called.map_err(|e| self.classify(e))?;
        if outcomes.len() != batch.len() {
            return Err(Trap::Contract(format!(
                "process returned {} outcomes for {} records",
                outcomes.len(),
                batch.len()
            )));
        }
        Ok(outcomes)
    }

    /// What the instance has used so far.
    pub fn usage(&self) -> Usage {
        Usage {
            memory_bytes: self.store.data().limiter.peak,
            fuel: self.last_fuel,
        }
    }

    /// Counters the plugin reported since the last call, leaving none.
    pub fn take_counters(&mut self) -> Counters {
        std::mem::take(&mut self.store.data_mut().counters)
    }

    fn arm(&mut self) {
        let state = self.store.data_mut();
        state.limiter.refused = None;
        state.last_panic = None;
        self.budget.arm(&mut self.store);
    }

    /// Turn the error of a failed call into the reason a person can act on.
    fn classify(&mut self, error: wasmtime::Error) -> Trap {
        let state = self.store.data_mut();
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => return Trap::Deadline(self.budget.limits.deadline),
            Some(wasmtime::Trap::OutOfFuel) => {
                return Trap::Fuel(self.budget.limits.fuel.unwrap_or(u64::MAX));
            }
            _ => {}
        }
        if let Some(requested) = state.limiter.refused.take() {
            return Trap::Memory {
                requested,
                limit: state.limiter.max_memory_bytes(),
            };
        }
        if let Some(message) = state.last_panic.take() {
            return Trap::Panic(message);
        }
        // The first line names the trap; the rest is a wasm backtrace.
        let text = format!("{error:#}");
        Trap::Other(text.lines().next().unwrap_or("unknown trap").to_owned())
    }
}
