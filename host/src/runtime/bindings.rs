//! Host-side bindings of the `weir:plugin` WIT package, and the host
//! functions plugins may import (`log`, `count`).
//!
//! Invariants: a plugin's log lines are forwarded to `tracing` tagged with its
//! label, within the limits of [`super::log_budget`]; a log line the SDK marks as a panic is kept as the instance's last
//! panic message so a trap can be explained; counters are kept in a
//! [`Counters`](crate::counters::Counters), bounded in number.

use super::log_budget::{MAX_MESSAGE_BYTES, bounded_fields, truncated};
use super::sandbox::StoreState;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "transform-plugin",
    additional_derives: [PartialEq, Eq],
});

// `self::` because the crate is also called `weir`.
use self::weir::plugin::{host as host_imports, types as wit_types};
pub use wit_types::{DocRecord, Error as PluginError, LogLevel, PluginInfo};

impl wit_types::Host for StoreState {}

impl host_imports::Host for StoreState {
    fn log(&mut self, level: LogLevel, message: String, fields: Vec<(String, String)>) {
        let is_panic = fields.iter().any(|(k, v)| k == "panic" && v == "true");
        let message = truncated(message, MAX_MESSAGE_BYTES);
        if is_panic {
            // Kept whatever the budget: it explains the trap that follows.
            self.last_panic = Some(message.clone());
        }
        if !self.call_log.admit(&self.log_budget) {
            return;
        }
        let fields = bounded_fields(fields);
        let plugin = &*self.label;
        match level {
            LogLevel::Trace => tracing::trace!(plugin, ?fields, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, ?fields, "{message}"),
            LogLevel::Info => tracing::info!(plugin, ?fields, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, ?fields, "{message}"),
            LogLevel::Error => tracing::error!(plugin, ?fields, "{message}"),
        }
    }

    fn count(&mut self, name: String, delta: u64) {
        self.counters.add(&name, delta);
    }
}
