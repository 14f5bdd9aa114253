//! weir: stream documents through a chain of sandboxed WebAssembly plugins.
//!
//! The flow is source -> decode -> chain of plugins -> sink, with dead
//! letters for anything that fails; `docs/architecture.md` describes it and
//! the delivery guarantees. Layout, one concept per module:
//!
//! - [`cli`]: the `weir` commands (clap) and their top level.
//! - [`config`]: the pipeline file: serde structs, validation into typed
//!   settings, problems with file, line and key.
//! - [`pipeline`]: assembling a validated pipeline into running parts, and
//!   running a file source.
//! - [`source`]: file sources (JSONL events, MediaWiki dumps), their
//!   reading ahead of the worker, the fingerprint of the file a run read,
//!   the position every message carries and its payload (raw bytes or an
//!   event a reader built).
//! - [`kafka`]: the Kafka host: consumer, rebalances, per-partition lanes
//!   and tasks, offsets and commits, client configurations.
//! - [`ingest`]: `weir ingest`, producing change events to a topic.
//! - [`replay`]: `weir replay`, a bounded and resumable run over a whole
//!   topic in a group and output folder of its own.
//! - [`event`]: the change-event schema and its decoding.
//! - [`bodies`]: bodies stored by reference in S3, uploaded and verified.
//! - [`partition`]: one partition's records in order: decode, chain, sink,
//!   and adoption of ranges already written.
//! - [`state`]: event mode: per-partition document state on disk, the skip
//!   rule, checkpoints and restore.
//! - [`chain`]: stages, the load-time type check, running batches through
//!   (cache hits passed on between stages without rebuilding their
//!   bodies), the final outputs (and whether each is a JSON document).
//! - [`cache`]: content-addressed stage outputs (packs in a store, a
//!   bounded memory tier), so replays reuse what was computed.
//! - [`contract`]: what every plugin output must satisfy.
//! - [`registry`]: published plugin versions (manifests, signatures) and
//!   each pipeline's active versions.
//! - [`hot_swap`]: a running host following its pipeline's active
//!   versions: new chains checked off the hot path, swapped between batches.
//! - [`shadow`]: a candidate version beside the active one on live traffic,
//!   and the record-by-record comparison with live results.
//! - [`runtime`]: the only module that uses wasmtime: engine, sandbox,
//!   limits, deadlines (less time spent waiting for a CPU), plugin log
//!   budget.
//! - [`fence`]: per-partition leases that stop zombie writers.
//! - [`sink`]: results and dead-letter objects of a partition and their
//!   keys; what is already written; the lines of a results object, and
//!   the compressed output frames spliced into them.
//! - [`dlq`]: the dead-letter record and where dead letters are written.
//! - [`storage`]: the object store: local directory, S3, in memory.
//! - [`media_type`], [`digest`], [`counters`], [`atomic_file`]: small shared
//!   building blocks.
//! - [`telemetry`]: Prometheus metrics, readiness, and the HTTP server of
//!   `/metrics`, `/healthz`, `/readyz` and the live status page.
//! - [`logging`]: logging setup (text or JSON); [`progress`]: progress bars.

pub(crate) mod atomic_file;
pub(crate) mod bodies;
pub mod cache;
pub mod chain;
pub mod cli;
pub mod config;
pub(crate) mod contract;
pub(crate) mod counters;
pub mod digest;
pub mod dlq;
pub mod event;
pub mod fence;
pub(crate) mod hot_swap;
pub(crate) mod ingest;
pub(crate) mod kafka;
pub mod logging;
pub(crate) mod media_type;
pub mod partition;
pub mod pipeline;
pub(crate) mod progress;
pub mod registry;
pub mod replay;
pub mod runtime;
pub mod shadow;
pub mod sink;
pub mod source;
pub mod state;
pub mod storage;
pub mod telemetry;
#[cfg(test)]
mod test_support;
