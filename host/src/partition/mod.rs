//! The partition worker: drives one partition's messages through decoding,
//! the chain and the sink, in order.
//!
//! In event mode (a [`PartitionState`] is attached), an upsert whose body
//! and chain are those of the document's last processed event, or any event
//! older than the document's stored revision, is skipped: no plugin runs,
//! and a skip line takes its place in the batch.
//!
//! Invariants:
//! - every message handed to [`PartitionWorker::process`] ends in exactly one
//!   place: a result line in the open batch (chain output, filtered-out
//!   record or delete tombstone), a skip line (event mode), a dead letter
//!   with its reason, or, inside a range adopted on resuming, the results
//!   object written before (counted as re-delivered);
//! - the event-mode state changes only with a written batch (see
//!   [`crate::state`]), and is restored before the first message;
//! - messages are handled in offset order, so a flushed range is contiguous,
//!   and no new object spans into an adopted range (the open batch is
//!   written before one); only the bodies stored by reference are fetched
//!   ahead, [`BODY_FETCHES`] at a time, before the records are judged in
//!   order;
//! - the chain (WebAssembly, CPU-bound) runs on a blocking thread, never on
//!   an async executor thread;
//! - a full batch is written in the background ([`pending_write`]) while
//!   the next inputs run through the chain, one batch at a time: the next
//!   is handed over only once the one before is written, so objects are
//!   written in offset order, and an offset counts as durable only once its
//!   batch's write has returned.
//!
//! Parts: the worker (here), [`Stats`] (`stats`: what a worker counted),
//! the background write of a batch (`pending_write`), following the chains
//! published for hot swap (`live_chain`), and the unit tests (`tests`).

use std::sync::Arc;

use crate::bodies::{BodyError, BodyStore};
use crate::cache::StageCache;
use crate::chain::{ChainResult, ChainWorker};
use crate::config::{BatchingConfig, DecodeConfig};
use crate::digest::Digest;
use crate::dlq::{DeadLetter, DeadLetterKind};
use crate::event::{ChangeEvent, DecodeError, Operation};
use crate::fence::Lease;
use crate::runtime::{DocRecord, RuntimeError};
use crate::sink::{PartitionBatch, ResultLine, ResultsBuffer, Sink, SinkError, SkipLine};
use crate::source::SourceMessage;
use crate::state::{self, DocState, PartitionState, Skip, StateError};

mod live_chain;
mod pending_write;
mod stats;

pub use stats::Stats;

/// Errors that stop a worker. Per-record problems are never errors: they
/// become dead letters.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A plugin instance could not be re-created.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Output could not be written.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The event-mode state could not be read, written or restored.
    #[error(transparent)]
    State(#[from] StateError),
    /// The chain thread or a batch's write task panicked (a host bug).
    #[error("a partition worker's thread panicked")]
    Panicked(#[source] tokio::task::JoinError),
    /// The partition's own task panicked (a host bug), with the panic's
    /// message.
    #[error("a partition's task panicked: {0}")]
    TaskPanicked(String),
}

/// One decoded message, waiting for the chain.
enum Prepared {
    /// Failed before the chain.
    Dead(DeadLetter),
    /// A delete: tombstone result.
    Tombstone(SourceMessage, ChangeEvent),
    /// An upsert whose body is in the chain input at the same index.
    Run(SourceMessage, ChangeEvent, Vec<(String, String)>, Digest),
    /// Skipped by event mode (with the body's hash, for upserts).
    Skipped(SourceMessage, ChangeEvent, Option<Digest>, Skip),
}

/// Drives one partition.
pub struct PartitionWorker {
    chain: Option<ChainWorker>,
    /// Where newer chains are published (hot swap): the worker moves to the
    /// newest between two batches.
    live: Option<live_chain::LiveChain>,
    /// The stage cache, for the chain workers of later chains.
    cache: Option<Arc<StageCache>>,
    sink: Arc<Sink>,
    decode: DecodeConfig,
    batching: BatchingConfig,
    batch: PartitionBatch,
    /// The batch being written, if one is.
    writing: Option<pending_write::PendingWrite>,
    /// The results buffer of the last batch written, for the next seal to
    /// empty and reuse.
    spare: ResultsBuffer,
    stats: Stats,
    /// Fetches bodies stored by reference (by default with the standard
    /// S3 settings, connecting when first needed).
    bodies: BodyStore,
    /// Offset ranges already in results objects (written before a crash,
    /// found when resuming), sorted: records inside them are not processed
    /// again, and ranges already passed are dropped.
    adopted: std::collections::VecDeque<(i64, i64)>,
    /// The last offset known to be durable (flushed or adopted).
    last_durable: Option<i64>,
    /// The partition's lease, when the sink fences writers.
    lease: Option<Lease>,
    /// Event mode's document state (`None`: every event is processed).
    state: Option<PartitionState>,
    /// The partition's record metrics, fed from `stats`.
    meter: crate::telemetry::metrics::PartitionMeter,
}

impl PartitionWorker {
    /// A worker for `topic`/`partition` with its own chain instances.
    pub fn new(
        chain: ChainWorker,
        sink: Arc<Sink>,
        decode: DecodeConfig,
        batching: BatchingConfig,
        topic: &str,
        partition: i32,
    ) -> Self {
        PartitionWorker {
            chain: Some(chain),
            live: None,
            cache: None,
            sink,
            decode,
            batching,
            batch: PartitionBatch::new(topic, partition),
            writing: None,
            spare: ResultsBuffer::default(),
            stats: Stats::default(),
            bodies: BodyStore::when_needed(crate::config::S3Settings::default()),
            adopted: std::collections::VecDeque::new(),
            last_durable: None,
            lease: None,
            state: None,
            meter: crate::telemetry::metrics::PartitionMeter::new(topic, partition),
        }
    }

    /// Run in event mode with `state` (restored by [`PartitionWorker::resume`]).
    pub fn with_state(mut self, state: PartitionState) -> Self {
        self.state = Some(state);
        self
    }

    /// Fetch bodies stored by reference with `bodies` (the pipeline's S3
    /// connection and settings).
    pub fn with_bodies(mut self, bodies: BodyStore) -> Self {
        self.bodies = bodies;
        self
    }

    /// Look cached stages' outputs up in `cache`, and keep what is computed.
    pub fn with_cache(mut self, cache: Arc<StageCache>) -> Self {
        self.chain = self
            .chain
            .take()
            .map(|chain| chain.with_cache(cache.clone()));
        self.cache = Some(cache);
        self
    }

    /// Prepare to consume a partition whose committed offset is `committed`:
    /// ranges already written past it (a crash between writing and
    /// committing) are adopted instead of processed again, as their records
    /// are delivered again (see [`PartitionWorker::process`]).
    pub async fn resume(&mut self, committed: i64) -> Result<(), WorkerError> {
        // The lease first: once it is taken, an earlier owner writes nothing
        // more, so what is listed below is all there will be.
        self.lease = self
            .sink
            .take_lease(self.batch.topic(), self.batch.partition())
            .await?;
        let adopted = self
            .sink
            .resume_point(
                self.batch.topic(),
                self.batch.partition(),
                committed,
                self.lease.as_mut(),
            )
            .await?;
        if let (Some(first), Some(last)) = (adopted.first(), adopted.last()) {
            tracing::info!(
                topic = self.batch.topic(),
                partition = self.batch.partition(),
                committed,
                ranges = adopted.len(),
                from = first.0,
                through = last.1,
                "adopting results written before a restart"
            );
        }
        self.adopted = adopted.into();
        // After the lease, like the listing above: nothing more is written
        // by an earlier owner while the state is rebuilt from the results.
        if let Some(state) = &mut self.state {
            state
                .restore(&self.sink, self.batch.topic(), self.batch.partition())
                .await?;
        }
        Ok(())
    }

    /// The topic and partition this worker drives.
    pub fn partition(&self) -> (String, i32) {
        (self.batch.topic().to_owned(), self.batch.partition())
    }

    /// The last offset durably handled so far (flushed or adopted).
    pub fn last_durable(&self) -> Option<i64> {
        self.last_durable
    }

    /// How long the worker may wait idle before
    /// [`PartitionWorker::flush_if_due`] has work: until the open batch is
    /// due for writing, or no time while a batch is being written (its end
    /// makes offsets durable). `None` when nothing is open or being written.
    pub fn due_in(&self) -> Option<std::time::Duration> {
        if self.writing.is_some() {
            return Some(std::time::Duration::ZERO);
        }
        self.batch.due_in(&self.batching)
    }

    /// The adopted range holding `offset`, if any (ranges before it are
    /// passed and dropped: offsets only grow).
    fn adopted_range_of(&mut self, offset: i64) -> Option<(i64, i64)> {
        while self.adopted.front().is_some_and(|(_, last)| *last < offset) {
            self.adopted.pop_front();
        }
        self.adopted
            .front()
            .copied()
            .filter(|(first, _)| *first <= offset)
    }

    /// Figures so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Process messages (in offset order). Returns the offset through which
    /// everything is now durable, if that moved (a batch was written, or an
    /// adopted range was reached).
    ///
    /// A message inside an adopted range is not processed again: the open
    /// batch is written first, so that no new object spans into the range,
    /// and then everything through the range's end is durable. Messages
    /// between adopted ranges are processed as usual.
    pub async fn process(
        &mut self,
        messages: Vec<SourceMessage>,
    ) -> Result<Option<i64>, WorkerError> {
        self.follow_live_chain()?;
        let before = self.last_durable;
        let mut run = Vec::new();
        for message in messages {
            let Some((_, adopted_last)) = self.adopted_range_of(message.position.offset) else {
                run.push(message);
                continue;
            };
            if !run.is_empty() {
                // Boxed, as below: the chain and sink futures nested here are
                // otherwise too deep a type for rustc's layout queries in
                // release builds of the binary.
                self.process_run_in_span(std::mem::take(&mut run)).await?;
            }
            // Writes nothing once the range's first message has emptied the
            // batch.
            self.flush().await?;
            self.stats.records += 1;
            self.stats.bytes += message.payload.len() as u64;
            self.stats.redelivered += 1;
            if self.last_durable.is_none_or(|d| d < adopted_last) {
                self.last_durable = Some(adopted_last);
            }
        }
        if !run.is_empty() {
            self.process_run_in_span(run).await?;
        }
        self.settle_if_done().await?;
        self.meter.publish(&self.stats);
        Ok(self.durable_since(before))
    }

    /// The last durable offset, if it moved past `before`.
    fn durable_since(&self, before: Option<i64>) -> Option<i64> {
        self.last_durable.filter(|_| self.last_durable != before)
    }

    /// [`PartitionWorker::process_run`] in a span naming the batch (topic,
    /// partition, offsets): every log line of the batch, the plugins'
    /// included, carries them.
    async fn process_run_in_span(
        &mut self,
        messages: Vec<SourceMessage>,
    ) -> Result<(), WorkerError> {
        use tracing::Instrument as _;
        let (first, last) = match (messages.first(), messages.last()) {
            (Some(first), Some(last)) => (first.position.offset, last.position.offset),
            _ => return Ok(()),
        };
        let span = tracing::info_span!(
            "batch",
            topic = self.batch.topic(),
            partition = self.batch.partition(),
            first_offset = first,
            last_offset = last,
        );
        Box::pin(self.process_run(messages)).instrument(span).await
    }

    /// Process messages none of which is adopted, cutting objects when the
    /// batch is full (or due).
    async fn process_run(&mut self, messages: Vec<SourceMessage>) -> Result<(), WorkerError> {
        let offsets = match (messages.first(), messages.last()) {
            (Some(first), Some(last)) => (first.position.offset, last.position.offset),
            _ => return Ok(()),
        };
        let (prepared, records) = self.prepare(messages).await?;
        // The content hash of each upsert is its body's digest: the first
        // stage's cache keys need no second pass over the bodies.
        let hashes = prepared.iter().filter_map(|item| match item {
            Prepared::Run(_, _, _, content_hash) => Some(Some(*content_hash)),
            _ => None,
        });
        let inputs = records.into_iter().zip(hashes).collect();
        let mut results = self.run_chain(inputs, offsets).await?.into_iter();
        let chain = self.chain.as_ref().expect("chain is back after running");
        let chain = chain.chain().clone();
        // The age limit is checked here as well as by the caller's idle
        // timer, which never fires while messages keep arriving; before this
        // call's results join the batch, so that they do not extend an
        // object that is already due.
        self.flush_if_due().await?;
        for item in prepared {
            match item {
                Prepared::Dead(dead_letter) => {
                    self.stats.dead_letters += 1;
                    self.batch.push_dead_letter(&dead_letter);
                }
                Prepared::Skipped(message, event, content_hash, skip) => {
                    let compared_with = content_hash.map(|_| chain.identity());
                    match skip {
                        Skip::Unchanged => self.stats.skipped_unchanged += 1,
                        Skip::Stale => self.stats.skipped_stale += 1,
                    }
                    if let (Some(state), Skip::Unchanged) = (&mut self.state, skip) {
                        // The stored state, at the newer revision and offset.
                        let (revision, offset) = (event.revision, message.position.offset);
                        let now = match content_hash {
                            Some(content_hash) => DocState::Present {
                                content_hash,
                                chain: chain.identity(),
                                revision,
                                offset,
                            },
                            None => DocState::Deleted { revision, offset },
                        };
                        state.record(&event.id, now);
                    }
                    self.batch.push_skip(&SkipLine {
                        position: &message.position,
                        id: &event.id,
                        revision: event.revision,
                        op: event.op,
                        content_hash,
                        chain: compared_with,
                        skipped: skip,
                    });
                }
                Prepared::Tombstone(message, event) => {
                    if let Some(state) = &mut self.state {
                        state.record(
                            &event.id,
                            DocState::Deleted {
                                revision: event.revision,
                                offset: message.position.offset,
                            },
                        );
                    }
                    self.stats.tombstones += 1;
                    self.batch.push_result(&ResultLine {
                        position: &message.position,
                        id: &event.id,
                        revision: event.revision,
                        op: Operation::Delete,
                        content_hash: None,
                        chain: None,
                        metadata: &event.metadata(),
                        extra: &event.extra,
                        lineage: &[],
                        outputs: &[],
                    });
                }
                Prepared::Run(message, event, metadata, content_hash) => {
                    match results.next().expect("one chain result per chain input") {
                        ChainResult::Done {
                            outputs,
                            stages_run,
                        } => {
                            self.stats.results += 1;
                            self.stats.outputs += outputs.len() as u64;
                            if let Some(state) = &mut self.state {
                                state.record(
                                    &event.id,
                                    DocState::Present {
                                        content_hash,
                                        chain: chain.identity(),
                                        revision: event.revision,
                                        offset: message.position.offset,
                                    },
                                );
                            }
                            self.batch.push_result(&ResultLine {
                                position: &message.position,
                                id: &event.id,
                                revision: event.revision,
                                op: Operation::Upsert,
                                content_hash: Some(content_hash),
                                chain: Some(chain.identity()),
                                metadata: &metadata,
                                extra: &event.extra,
                                lineage: chain.lineage(stages_run),
                                outputs: &outputs,
                            });
                        }
                        ChainResult::Failed(failure) => {
                            self.stats.dead_letters += 1;
                            let payload = &message.payload.to_bytes();
                            self.batch.push_dead_letter(&DeadLetter::from_stage(
                                message.position.clone(),
                                event.id,
                                event.revision,
                                failure,
                                payload,
                            ));
                        }
                    }
                }
            }
            if self.batch.is_full(&self.batching) {
                self.hand_off().await?;
            }
        }
        if let Some(state) = &mut self.state {
            state.end_call();
        }
        Ok(())
    }

    /// Write the open batch and make the event-mode state durable on disk
    /// (the end of a local run, a partition given up). Returns the offset
    /// through which everything is now durable, if that moved.
    pub async fn finish(&mut self) -> Result<Option<i64>, WorkerError> {
        let flushed = self.flush().await?;
        if let Some(state) = &mut self.state {
            state
                .finish(&self.sink, self.batch.topic(), self.batch.partition())
                .await?;
        }
        Ok(flushed)
    }

    /// Decode messages and fetch the bodies stored by reference (together,
    /// see [`fetch_bodies`]); upserts become chain inputs (same order as the
    /// `Run` entries).
    async fn prepare(
        &mut self,
        messages: Vec<SourceMessage>,
    ) -> Result<(Vec<Prepared>, Vec<DocRecord>), WorkerError> {
        let mut prepared = Vec::with_capacity(messages.len());
        let mut records = Vec::with_capacity(messages.len());
        // Owned copies: `self` (whose chain is not `Sync`) must not be
        // borrowed across the fetches' awaits.
        let bodies = self.bodies.clone();
        let max_body = self.decode.max_body_bytes;
        let chain = self
            .chain
            .as_ref()
            .expect("the chain is not running")
            .chain()
            .identity();
        let decoded: Vec<_> = messages
            .into_iter()
            .map(|mut message| {
                let event = message.payload.decode(max_body);
                (message, event)
            })
            .collect();
        let fetched = fetch_bodies(&bodies, &decoded, max_body).await;
        for ((message, event), fetched) in decoded.into_iter().zip(fetched) {
            self.stats.records += 1;
            self.stats.bytes += message.payload.len() as u64;
            let mut event = match event {
                Ok(event) => event,
                Err(e) => {
                    prepared.push(dead_before_chain(
                        message,
                        DeadLetterKind::Decode,
                        e.to_string(),
                        None,
                    ));
                    continue;
                }
            };
            if event.op == Operation::Delete {
                let stored = self.current_state(&event.id)?;
                let verdict = state::delete_verdict(stored.as_ref(), event.revision);
                if let (Some(state), None | Some(Skip::Unchanged)) = (&mut self.state, verdict) {
                    // A tombstone, or a delete of a deleted document: later
                    // events of the document in this call are compared
                    // with the deletion, as they would be in the next call.
                    let deleted = DocState::Deleted {
                        revision: event.revision,
                        offset: message.position.offset,
                    };
                    state.known(&event.id, deleted);
                }
                prepared.push(match verdict {
                    Some(skip) => Prepared::Skipped(message, event, None, skip),
                    None => Prepared::Tombstone(message, event),
                });
                continue;
            }
            let (body, content_hash) = match (event.body.take(), fetched) {
                (Some(body), _) => {
                    let content_hash = Digest::of(body.as_bytes());
                    (body.into_bytes(), content_hash)
                }
                (None, Some(Ok(verified))) => {
                    // Input bytes count the body, wherever it was.
                    self.stats.bytes += verified.0.len() as u64;
                    verified
                }
                (None, Some(Err(reason))) => {
                    let identity = Some((event.id, event.revision));
                    prepared.push(dead_before_chain(
                        message,
                        DeadLetterKind::Body,
                        reason.to_string(),
                        identity,
                    ));
                    continue;
                }
                (None, None) => unreachable!(
                    "decoding guarantees an upsert has a body or a body_ref, and fetch_bodies \
                     fetched every body_ref"
                ),
            };
            if self.state.is_some() {
                let stored = self.current_state(&event.id)?;
                let verdict =
                    state::upsert_verdict(stored.as_ref(), content_hash, chain, event.revision);
                if let Some(skip) = verdict {
                    if let (Some(state), Skip::Unchanged) = (&mut self.state, skip) {
                        let unchanged = DocState::Present {
                            content_hash,
                            chain,
                            revision: event.revision,
                            offset: message.position.offset,
                        };
                        state.known(&event.id, unchanged);
                    }
                    prepared.push(Prepared::Skipped(message, event, Some(content_hash), skip));
                    continue;
                }
            }
            if let Some(state) = &mut self.state {
                state.computing(&event.id);
            }
            let metadata = event.metadata();
            let content_type = event
                .content_type
                .clone()
                .unwrap_or_else(|| self.decode.default_content_type.clone());
            records.push(DocRecord {
                id: event.id.clone(),
                revision: event.revision,
                content_type,
                body,
                metadata: metadata.clone(),
            });
            prepared.push(Prepared::Run(message, event, metadata, content_hash));
        }
        Ok((prepared, records))
    }

    /// The state of `id` for the skip rule ([`PartitionState::current`]):
    /// `None` (process) without event mode.
    fn current_state(&mut self, id: &str) -> Result<Option<DocState>, WorkerError> {
        match &mut self.state {
            Some(state) => Ok(state.current(id)?),
            None => Ok(None),
        }
    }

    /// Run the chain over `records`, the upserts among the messages at
    /// `offsets` (first, last): with a cache, its packs for those offsets
    /// are loaded first, and what the plugins computed is stored after.
    async fn run_chain(
        &mut self,
        records: Vec<(DocRecord, Option<Digest>)>,
        offsets: (i64, i64),
    ) -> Result<Vec<ChainResult>, WorkerError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let (topic, partition) = (self.batch.topic().to_owned(), self.batch.partition());
        let chain = self.chain.as_ref().expect("the chain is not running");
        let cache = chain.cache().cloned();
        if let Some(cache) = &cache {
            let stages = chain.chain().cached_stages();
            cache
                .prefetch(&stages, &topic, partition, offsets.0, offsets.1)
                .await;
        }
        let mut chain = self.chain.take().expect("the chain is not already running");
        // The blocking thread logs in the batch's span too.
        let span = tracing::Span::current();
        let (chain, results) = tokio::task::spawn_blocking(move || {
            let _batch = span.enter();
            let results = chain.process_hashed(records);
            (chain, results)
        })
        .await
        .map_err(WorkerError::Panicked)?;
        let mut chain = chain;
        for (stage, counters) in chain.take_counters() {
            self.stats
                .counters
                .entry(stage)
                .or_default()
                .merge(&counters);
        }
        let metrics = crate::telemetry::metrics::metrics();
        for (stage, work) in chain.take_work() {
            if let Some(cache) = &cache {
                cache.tally(&stage, work.cache_hits, work.cache_misses);
                metrics
                    .cache_hits
                    .with_label_values(&[stage.as_str()])
                    .inc_by(work.cache_hits);
                metrics
                    .cache_misses
                    .with_label_values(&[stage.as_str()])
                    .inc_by(work.cache_misses);
            }
            self.stats.stages.entry(stage).or_default().absorb(&work);
        }
        if let Some(cache) = &cache {
            for (index, entries) in chain.take_fills() {
                let stage = chain.chain().stage_id(index);
                cache.store(&stage, &topic, partition, offsets, entries);
            }
        }
        self.chain = Some(chain);
        Ok(results?)
    }
}

/// A record that failed before reaching the chain.
fn dead_before_chain(
    message: SourceMessage,
    kind: DeadLetterKind,
    reason: String,
    identity: Option<(String, u64)>,
) -> Prepared {
    Prepared::Dead(DeadLetter::before_chain(
        message.position,
        kind,
        reason,
        identity,
        (&message.payload).into(),
    ))
}

/// How many bodies stored by reference one partition fetches at once.
/// Fetched one after the other, a batch waited for every GET's round trip
/// in turn (tens of ms each from S3).
const BODY_FETCHES: usize = 16;

/// For each of `decoded`, the body it refers to if it is an upsert stored
/// by reference (else `None`), fetched [`BODY_FETCHES`] at a time. A batch's
/// bodies are held until its records are judged, as inline bodies are.
async fn fetch_bodies(
    bodies: &BodyStore,
    decoded: &[(SourceMessage, Result<ChangeEvent, DecodeError>)],
    max_body_bytes: usize,
) -> Vec<Option<Result<(Vec<u8>, Digest), BodyError>>> {
    use futures_util::StreamExt as _;
    let mut fetched: Vec<Option<_>> = decoded.iter().map(|_| None).collect();
    // Only the fetches go through `buffered`: entries with nothing to fetch
    // would take places in its window.
    let mut wanted = Vec::new();
    let mut fetches = Vec::new();
    // A loop, not iterator closures: futures made in closures trip rustc's
    // `Send` inference for the partition task that awaits them.
    for (index, (_, event)) in decoded.iter().enumerate() {
        if let Ok(event) = event
            && event.op != Operation::Delete
            && event.body.is_none()
            && let Some(body_ref) = &event.body_ref
        {
            wanted.push(index);
            // What is wrong with the reference (no such bucket or object, a
            // digest mismatch, over the size limit) is the record's fault
            // and dead-letters it; what is wrong with this host (S3
            // unreachable, its own credentials or permissions refused) is
            // retried inside the store, so the partition waits and nothing
            // is dead-lettered or committed meanwhile.
            fetches.push(bodies.fetch(body_ref, max_body_bytes));
        }
    }
    let results: Vec<_> = futures_util::stream::iter(fetches)
        .buffered(BODY_FETCHES)
        .collect()
        .await;
    for (index, result) in wanted.into_iter().zip(results) {
        fetched[index] = Some(result);
    }
    fetched
}

#[cfg(test)]
mod tests;
