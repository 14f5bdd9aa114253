//! Host services a plugin may call: structured logging and counters.
//!
//! Inside the sandbox these go to the weir host (which tags them with the
//! stage and plugin digest). Compiled natively (unit tests, benchmarks) there
//! is no host, and both are no-ops.

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed diagnostics.
    Trace,
    /// Development diagnostics.
    Debug,
    /// Normal operational messages.
    Info,
    /// Recovered problems.
    Warn,
    /// Failures.
    Error,
}

/// Send a structured log line to the host, with extra key/value fields.
///
/// ```
/// weir_sdk::log(weir_sdk::Level::Info, "model loaded", &[("classes", "4")]);
/// ```
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::weir::plugin::{host, types::LogLevel};
        let level = match level {
            Level::Trace => LogLevel::Trace,
            Level::Debug => LogLevel::Debug,
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
        };
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        host::log(level, message, &fields);
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, message, fields);
}

/// Add `delta` to the counter `name` (scoped to the calling stage by the host).
pub fn count(name: &str, delta: u64) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::weir::plugin::host::count(name, delta);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (name, delta);
}
