//! Logging setup. Logs go to stderr (stdout carries command output such as
//! the run summary). `WEIR_LOG` sets the filter (default `info`);
//! `WEIR_LOG_FORMAT=json` switches to JSON lines for log collectors. Colours
//! only on a terminal: a log redirected to a file reads as plain text.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Call once, at start-up.
pub fn init() {
    let filter = EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("WEIR_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
