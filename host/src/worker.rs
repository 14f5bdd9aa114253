//! The partition worker: drives one partition's messages through decoding,
//! the chain and the sink, in order.
//!
//! Invariants:
//! - every message handed to [`PartitionWorker::process`] ends in exactly one
//!   place in the open batch: a result line (chain output, filtered-out record
//!   or delete tombstone), a dead letter with its reason, or a counted skip;
//! - messages are handled in offset order, so a flushed range is contiguous;
//! - the chain (WebAssembly, CPU-bound) runs on a blocking thread, never on
//!   an async executor thread.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::chain::{ChainResult, ChainWorker};
use crate::config::{BatchingConfig, DecodeConfig};
use crate::digest::Digest;
use crate::dlq::{DeadLetter, DeadLetterKind};
use crate::event::{self, ChangeEvent, Operation};
use crate::runtime::{DocRecord, RuntimeError};
use crate::sink::{Flushed, PartitionBatch, ResultLine, Sink, SinkError};
use crate::source::SourceMessage;

/// What a worker has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages consumed.
    pub records: u64,
    /// Payload bytes consumed.
    pub bytes: u64,
    /// Upserts that went through the chain and got a result line.
    pub results: u64,
    /// Output documents in those result lines.
    pub outputs: u64,
    /// Deletes written as tombstones.
    pub tombstones: u64,
    /// Messages dead-lettered.
    pub dead_letters: u64,
    /// Messages deliberately skipped.
    pub skipped: u64,
    /// Plugin counters, by (stage, counter).
    pub counters: BTreeMap<(String, String), u64>,
}

impl Stats {
    /// Add another worker's figures to these.
    pub fn absorb(&mut self, other: &Stats) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.results += other.results;
        self.outputs += other.outputs;
        self.tombstones += other.tombstones;
        self.dead_letters += other.dead_letters;
        self.skipped += other.skipped;
        for (key, value) in &other.counters {
            *self.counters.entry(key.clone()).or_default() += value;
        }
    }
}

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
    /// The chain thread panicked (a host bug).
    #[error("the chain thread panicked: {0}")]
    Panicked(String),
}

/// One decoded message, waiting for the chain.
enum Prepared {
    /// Failed before the chain.
    Dead(DeadLetter),
    /// A delete: tombstone result.
    Tombstone(SourceMessage, ChangeEvent),
    /// An upsert whose body is in the chain input at the same index.
    Run(SourceMessage, ChangeEvent, Vec<(String, String)>, Digest),
}

/// Drives one partition.
pub struct PartitionWorker {
    chain: Option<ChainWorker>,
    sink: Arc<Sink>,
    decode: DecodeConfig,
    batching: BatchingConfig,
    batch: PartitionBatch,
    stats: Stats,
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
            sink,
            decode,
            batching,
            batch: PartitionBatch::new(topic, partition),
            stats: Stats::default(),
        }
    }

    /// Figures so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Process messages (in offset order). Returns the ranges that became
    /// durable because the batch filled up.
    pub async fn process(
        &mut self,
        messages: Vec<SourceMessage>,
    ) -> Result<Vec<Flushed>, WorkerError> {
        let (prepared, records) = self.prepare(messages);
        let mut results = self.run_chain(records).await?.into_iter();
        let chain = self.chain.as_ref().expect("chain is back after running");
        let chain = chain.chain().clone();
        let mut flushed = Vec::new();
        for item in prepared {
            match item {
                Prepared::Dead(dead_letter) => {
                    self.stats.dead_letters += 1;
                    self.batch.push_dead_letter(&dead_letter);
                }
                Prepared::Tombstone(message, event) => {
                    self.stats.tombstones += 1;
                    self.batch.push_result(&ResultLine {
                        position: &message.position,
                        id: &event.id,
                        revision: event.revision,
                        op: Operation::Delete,
                        content_hash: None,
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
                            self.batch.push_result(&ResultLine {
                                position: &message.position,
                                id: &event.id,
                                revision: event.revision,
                                op: Operation::Upsert,
                                content_hash: Some(content_hash),
                                metadata: &metadata,
                                extra: &event.extra,
                                lineage: chain.lineage(stages_run),
                                outputs: &outputs,
                            });
                        }
                        ChainResult::Failed(failure) => {
                            self.stats.dead_letters += 1;
                            let payload = &message.payload;
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
                flushed.extend(self.flush().await?);
            }
        }
        Ok(flushed)
    }

    /// Write the open batch if it is older than the age limit.
    pub async fn flush_if_due(&mut self) -> Result<Option<Flushed>, WorkerError> {
        if self.batch.is_due(&self.batching) {
            self.flush().await
        } else {
            Ok(None)
        }
    }

    /// Write the open batch now (e.g. at the end of input or on shutdown).
    pub async fn flush(&mut self) -> Result<Option<Flushed>, WorkerError> {
        Ok(self.sink.flush(&mut self.batch).await?)
    }

    /// Decode messages; upserts become chain inputs (same order as the
    /// `Run` entries).
    fn prepare(&mut self, messages: Vec<SourceMessage>) -> (Vec<Prepared>, Vec<DocRecord>) {
        let mut prepared = Vec::with_capacity(messages.len());
        let mut records = Vec::with_capacity(messages.len());
        for message in messages {
            self.stats.records += 1;
            self.stats.bytes += message.payload.len() as u64;
            let mut event = match event::decode(&message.payload, self.decode.max_body_bytes) {
                Ok(event) => event,
                Err(e) => {
                    prepared.push(Prepared::Dead(DeadLetter::before_chain(
                        message.position,
                        DeadLetterKind::Decode,
                        e.to_string(),
                        None,
                        &message.payload,
                    )));
                    continue;
                }
            };
            if event.op == Operation::Delete {
                prepared.push(Prepared::Tombstone(message, event));
                continue;
            }
            let Some(body) = event.body.take() else {
                prepared.push(Prepared::Dead(DeadLetter::before_chain(
                    message.position,
                    DeadLetterKind::Body,
                    "the body is stored by reference (body_ref), and this pipeline has no object \
                     store to fetch it from"
                        .to_owned(),
                    Some((event.id, event.revision)),
                    &message.payload,
                )));
                continue;
            };
            let body = body.into_bytes();
            let content_hash = Digest::of(&body);
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
        (prepared, records)
    }

    async fn run_chain(
        &mut self,
        records: Vec<DocRecord>,
    ) -> Result<Vec<ChainResult>, WorkerError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut chain = self.chain.take().expect("the chain is not already running");
        let (chain, results) = tokio::task::spawn_blocking(move || {
            let results = chain.process(records);
            (chain, results)
        })
        .await
        .map_err(|e| WorkerError::Panicked(e.to_string()))?;
        let mut chain = chain;
        for (stage, counters) in chain.take_counters() {
            for (name, value) in counters {
                *self
                    .stats
                    .counters
                    .entry((stage.clone(), name))
                    .or_default() += value;
            }
        }
        self.chain = Some(chain);
        Ok(results?)
    }
}
