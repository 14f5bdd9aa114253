//! weir: stream documents through a chain of sandboxed WebAssembly plugins.
//!
//! The flow is source -> decode -> chain of plugins -> sink, with dead
//! letters for anything that fails. See `DESIGN.md` and the README for the
//! architecture; each module's docs say what it owns and its invariants.

pub mod atomic_file;
pub mod bodies;
pub mod chain;
pub mod cli;
pub mod config;
pub mod contract;
pub mod counters;
pub mod digest;
pub mod dlq;
pub mod event;
pub mod ingest;
pub mod kafka;
pub mod media_type;
pub mod pipeline;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod storage;
pub mod telemetry;
pub mod worker;
