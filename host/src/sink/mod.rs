//! Results and dead letters of one partition, batched into objects with
//! deterministic keys.
//!
//! Layout (identical in a local directory and in S3, under the store root):
//! ```text
//! {pipeline}/results/{topic}/{partition}/{first_offset}-{last_offset}.jsonl.zst
//! {pipeline}/dead-letters/{topic}/{partition}/{first_offset}-{last_offset}.jsonl
//! {pipeline}/checkpoints/{topic}/{partition}/{through_offset}.state.zst   (event mode)
//! ```
//! Offsets are zero-padded to 20 digits so keys sort in offset order.
//!
//! Each input's line in a results object is written by `line`, into a
//! `results` buffer, where outputs that come compressed (`frame`: a cached
//! last stage's) are spliced in as they are.
//!
//! Invariants:
//! - a batch covers a contiguous range of the partition's input, and every
//!   input in it is either a result line, a dead letter or a counted skip;
//! - the same input range always maps to the same keys, so re-delivering a
//!   range overwrites its own objects instead of duplicating them;
//! - the dead-letter object is written before the results object, and the
//!   results object is always written (even with no lines): its existence
//!   marks the whole range as durably handled;
//! - after a crash between writing a range and committing it, the range is
//!   not processed again: [`Sink::resume_point`] finds the ranges of the
//!   results objects past the committed offset (they are adopted, range by
//!   range: offsets between them are still processed) and deletes dead-letter
//!   objects whose results object was never written (they would otherwise be
//!   duplicated when their records are re-processed in a differently cut
//!   range).

use std::time::{Duration, Instant};

use crate::config::BatchingConfig;
use crate::dlq::{DeadLetter, DeadLetterError, DeadLetterSink};
use crate::fence::{FenceError, Lease};
use crate::source::Position;
use crate::storage::{ObjectStore, StorageError};

mod frame;
mod line;
mod results;

pub use frame::OutputFrame;
pub use line::{ResultLine, SkipLine};
pub(crate) use results::ResultsBuffer;

/// How far before the committed offset the search for a results range
/// holding it starts (most objects are shorter, so one probe usually finds
/// the range before it), and by how much each further probe goes back.
const STRADDLE_FIRST_PROBE: i64 = 1024;
const STRADDLE_GROWTH: i64 = 16;

/// zstd level for results unless `[batching] zstd_level` says otherwise:
/// level 1 compresses wikitext JSONL about 2.5x at about 340 MB/s on one
/// core, level 3 about 2.9x at 210 MB/s (see docs/performance.md). At the
/// host's pass-through rate compression is its largest cost, so the default
/// favours speed.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// What a written batch covered, for acknowledging the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flushed {
    /// Topic of the range.
    pub(crate) topic: String,
    /// Partition of the range.
    pub(crate) partition: i32,
    /// First input offset in the range.
    pub(crate) first_offset: i64,
    /// Last input offset in the range: everything up to it is durable.
    pub(crate) last_offset: i64,
    /// Key of the results object.
    pub(crate) results_key: String,
    /// Where the range's dead letters went, if there were any.
    pub(crate) dead_letters_key: Option<String>,
}

/// Errors writing a batch.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The store refused or failed a write.
    #[error("writing {key}: {source}")]
    Storage {
        /// The object key.
        key: String,
        /// The storage error.
        source: StorageError,
    },
    /// This host no longer holds the partition's lease, or cannot check it.
    #[error(transparent)]
    Fence(#[from] FenceError),
    /// The range's dead letters could not be written.
    #[error(transparent)]
    DeadLetters(#[from] DeadLetterError),
    /// A results object could not be decompressed.
    #[error("decompressing {key}: {source}")]
    Decompress {
        /// The object key.
        key: String,
        /// The I/O error from zstd.
        source: std::io::Error,
    },
    /// Compression failed (out of memory, in practice).
    #[error("compressing {key}: {source}")]
    Compress {
        /// The object key.
        key: String,
        /// The I/O error from zstd.
        source: std::io::Error,
    },
}

/// The open batch of one partition: encoded lines waiting to be written.
pub struct PartitionBatch {
    topic: String,
    partition: i32,
    first_offset: Option<i64>,
    last_offset: i64,
    results: ResultsBuffer,
    dead_letters: Vec<u8>,
    /// The position of each dead letter, as `topic/partition@offset` (the
    /// message key when dead letters go to Kafka).
    dead_letter_positions: Vec<String>,
    inputs: usize,
    opened_at: Option<Instant>,
}

impl PartitionBatch {
    /// An empty batch for one partition.
    pub fn new(topic: &str, partition: i32) -> Self {
        PartitionBatch {
            topic: topic.to_owned(),
            partition,
            first_offset: None,
            last_offset: -1,
            results: ResultsBuffer::default(),
            dead_letters: Vec::new(),
            dead_letter_positions: Vec::new(),
            inputs: 0,
            opened_at: None,
        }
    }

    /// Take the batch's inputs out to be written (`None` when it holds
    /// none), leaving it empty with `buffer` (emptied) as its results
    /// buffer: the buffer of the batch written before, handed back by
    /// [`Sink::write`], so that a results buffer of tens of MB is not
    /// allocated afresh (a page fault per 4 KiB) for every batch.
    pub(crate) fn seal(&mut self, mut buffer: ResultsBuffer) -> Option<SealedBatch> {
        let first_offset = self.first_offset.take()?;
        buffer.clear();
        let sealed = SealedBatch {
            topic: self.topic.clone(),
            partition: self.partition,
            first_offset,
            last_offset: self.last_offset,
            results: std::mem::replace(&mut self.results, buffer),
            dead_letters: std::mem::take(&mut self.dead_letters),
            dead_letter_positions: std::mem::take(&mut self.dead_letter_positions),
        };
        self.last_offset = -1;
        self.inputs = 0;
        self.opened_at = None;
        Some(sealed)
    }

    /// The topic of this batch's partition.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Add a result line for the input at `position`.
    pub fn push_result(&mut self, line: &ResultLine<'_>) {
        self.cover(line.position);
        line.write(&mut self.results);
        self.results.bytes_mut().push(b'\n');
    }

    /// Add the line of a skipped input.
    pub fn push_skip(&mut self, line: &SkipLine<'_>) {
        self.cover(line.position);
        line.write(self.results.bytes_mut());
        self.results.bytes_mut().push(b'\n');
    }

    /// Add a dead letter for the input at its position.
    pub fn push_dead_letter(&mut self, dead_letter: &DeadLetter) {
        self.cover(&dead_letter.position);
        crate::telemetry::metrics::metrics()
            .records_dead_lettered
            .with_label_values(&[
                self.topic.as_str(),
                &self.partition.to_string(),
                dead_letter.kind.as_str(),
            ])
            .inc();
        crate::telemetry::recent::remember(dead_letter);
        serde_json::to_writer(&mut self.dead_letters, dead_letter).expect("dead letters serialise");
        self.dead_letters.push(b'\n');
        self.dead_letter_positions
            .push(dead_letter.position.to_string());
    }

    fn cover(&mut self, position: &Position) {
        debug_assert!(
            position.offset > self.last_offset,
            "inputs arrive in offset order"
        );
        self.first_offset.get_or_insert(position.offset);
        self.last_offset = position.offset;
        self.inputs += 1;
        self.opened_at.get_or_insert_with(Instant::now);
    }

    /// Whether a size limit says this batch should be written now.
    pub fn is_full(&self, limits: &BatchingConfig) -> bool {
        self.inputs >= limits.max_records
            || self.results.len() + self.dead_letters.len() >= limits.max_bytes
    }

    /// Whether the oldest input has waited longer than the age limit.
    pub fn is_due(&self, limits: &BatchingConfig) -> bool {
        self.opened_at
            .is_some_and(|t| t.elapsed() >= Duration::from_millis(limits.max_age_ms))
    }

    /// Time until [`PartitionBatch::is_due`] becomes true (`None` when empty).
    pub fn due_in(&self, limits: &BatchingConfig) -> Option<Duration> {
        let age = Duration::from_millis(limits.max_age_ms);
        self.opened_at.map(|t| age.saturating_sub(t.elapsed()))
    }
}

/// A batch taken out of its partition's open batch
/// ([`PartitionBatch::seal`]): a contiguous, non-empty range of inputs,
/// ready to be written by [`Sink::write`].
pub(crate) struct SealedBatch {
    topic: String,
    partition: i32,
    first_offset: i64,
    last_offset: i64,
    results: ResultsBuffer,
    dead_letters: Vec<u8>,
    dead_letter_positions: Vec<String>,
}

impl SealedBatch {
    /// The last input offset in the batch.
    pub(crate) fn last_offset(&self) -> i64 {
        self.last_offset
    }
}

/// A written batch: what it covered, and its results buffer, for the next
/// [`PartitionBatch::seal`] to empty and reuse.
pub(crate) struct Written {
    pub(crate) flushed: Flushed,
    pub(crate) buffer: ResultsBuffer,
}

/// Writes partition batches to the results and dead-letter destinations.
pub struct Sink {
    pipeline: String,
    results: ObjectStore,
    dead_letters: DeadLetterSink,
    /// With fencing: who this host is, in the partitions' leases.
    lease_owner: Option<String>,
    /// zstd level of results objects.
    zstd_level: i32,
}

/// The offset range in a results or dead-letter key's file name.
pub fn key_range(key: &str) -> Option<(i64, i64)> {
    let name = key.rsplit('/').next()?;
    let stem = name.split('.').next()?;
    let (first, last) = stem.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

impl Sink {
    /// A sink for `pipeline` writing to the given destinations.
    pub fn new(pipeline: &str, results: ObjectStore, dead_letters: DeadLetterSink) -> Self {
        Sink {
            pipeline: pipeline.to_owned(),
            results,
            dead_letters,
            lease_owner: None,
            zstd_level: DEFAULT_ZSTD_LEVEL,
        }
    }

    /// Compress results objects at `level` (zstd; negative levels are its
    /// fast modes).
    pub fn with_zstd_level(mut self, level: i32) -> Self {
        self.zstd_level = level;
        self
    }

    /// Fence writers with a per-partition lease (see [`crate::fence`]): a
    /// worker takes its partition's lease when it starts, and every write
    /// checks it. Needs a results store with conditional writes (S3).
    pub fn with_fencing(mut self, owner: String) -> Self {
        self.lease_owner = Some(owner);
        self
    }

    /// Take the lease of a partition, when fencing is on.
    pub async fn take_lease(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<Lease>, SinkError> {
        let Some(owner) = &self.lease_owner else {
            return Ok(None);
        };
        let key = format!("{}/leases/{topic}/{partition}", self.pipeline);
        Ok(Some(Lease::take(&self.results, key, owner).await?))
    }

    /// Key of the results object for a range.
    pub fn results_key(&self, topic: &str, partition: i32, first: i64, last: i64) -> String {
        format!(
            "{}/results/{topic}/{partition}/{first:020}-{last:020}.jsonl.zst",
            self.pipeline
        )
    }

    /// Key of the dead-letter object for a range.
    pub fn dead_letters_key(&self, topic: &str, partition: i32, first: i64, last: i64) -> String {
        format!(
            "{}/dead-letters/{topic}/{partition}/{first:020}-{last:020}.jsonl",
            self.pipeline
        )
    }

    /// The results objects of a partition that hold offsets after `after`
    /// (all of them for `None`), in offset order, with their ranges.
    pub(crate) async fn written_after(
        &self,
        topic: &str,
        partition: i32,
        after: Option<i64>,
    ) -> Result<Vec<(String, (i64, i64))>, SinkError> {
        let prefix = format!("{}/results/{topic}/{partition}/", self.pipeline);
        let storage = |source| SinkError::Storage {
            key: prefix.clone(),
            source,
        };
        let start_after = match after {
            None => String::new(),
            Some(after) => {
                let from = self
                    .straddle_search_start(&prefix, after + 1)
                    .await
                    .map_err(storage)?;
                format!("{prefix}{from:020}")
            }
        };
        let keys = self
            .results
            .list_after(&prefix, &start_after)
            .await
            .map_err(storage)?;
        let mut written: Vec<_> = keys
            .into_iter()
            .filter_map(|key| key_range(&key).map(|range| (key, range)))
            .filter(|(_, (_, last))| after.is_none_or(|after| *last > after))
            .collect();
        written.sort_by_key(|(_, range)| *range);
        Ok(written)
    }

    /// The lines of a results object (decompressed), or `None` if it is
    /// gone.
    pub(crate) async fn read_results(&self, key: &str) -> Result<Option<Vec<u8>>, SinkError> {
        let storage = |source| SinkError::Storage {
            key: key.to_owned(),
            source,
        };
        let Some(compressed) = self.results.get(key).await.map_err(storage)? else {
            return Ok(None);
        };
        let owned_key = key.to_owned();
        tokio::task::spawn_blocking(move || zstd::decode_all(compressed.as_slice()))
            .await
            .expect("decompression does not panic")
            .map(Some)
            .map_err(|source| SinkError::Decompress {
                key: owned_key,
                source,
            })
    }

    /// The store and key prefix of a partition's event-mode checkpoints.
    pub(crate) fn checkpoints(&self, topic: &str, partition: i32) -> (&ObjectStore, String) {
        (
            &self.results,
            format!("{}/checkpoints/{topic}/{partition}/", self.pipeline),
        )
    }

    /// An object of the pipeline's own in the results store (a replay's
    /// plan): the store and the key `{pipeline}/{name}`.
    pub(crate) fn own_object(&self, name: &str) -> (&ObjectStore, String) {
        (&self.results, format!("{}/{name}", self.pipeline))
    }

    /// Where results of this pipeline go, for messages to people.
    pub fn describe_results(&self) -> String {
        self.results.describe(&format!("{}/results", self.pipeline))
    }

    /// Where dead letters of this pipeline go, for messages to people.
    pub fn describe_dead_letters(&self) -> String {
        match &self.dead_letters {
            DeadLetterSink::Store(store) => {
                store.describe(&format!("{}/dead-letters", self.pipeline))
            }
            DeadLetterSink::Kafka { topic, .. } => format!("kafka topic {topic}"),
        }
    }

    /// What is already written of a partition from `committed` on (the
    /// committed offset, or the partition's first offset when nothing was
    /// committed yet: the next offset to process): the offset ranges of its
    /// results objects that end at `committed` or later, sorted, including
    /// one that starts before it (after an offset reset, or when retention
    /// moved the first offset into a written range). Records inside them
    /// must not be processed again; records between them must. Deletes
    /// orphaned dead-letter objects (see the module docs), each after
    /// checking `lease` (when fencing): a host that lost the partition
    /// while it looked must not delete what the new owner wrote under the
    /// same key since.
    pub async fn resume_point(
        &self,
        topic: &str,
        partition: i32,
        committed: i64,
        mut lease: Option<&mut Lease>,
    ) -> Result<Vec<(i64, i64)>, SinkError> {
        let storage = |key: &str| {
            let key = key.to_owned();
            move |source| SinkError::Storage { key, source }
        };
        let results_prefix = format!("{}/results/{topic}/{partition}/", self.pipeline);
        let from = self
            .straddle_search_start(&results_prefix, committed)
            .await
            .map_err(storage(&results_prefix))?;
        // Keys start with the zero-padded first offset, so the ranges that
        // start at `from` or later are exactly the keys that sort after
        // this: the listings skip the partition's earlier history.
        let start_after = |prefix: &str| format!("{prefix}{from:020}");
        let keys = self
            .results
            .list_after(&results_prefix, &start_after(&results_prefix))
            .await
            .map_err(storage(&results_prefix))?;
        let reaches = |(_, last): &(i64, i64)| *last >= committed;
        let mut adopted: Vec<(i64, i64)> = keys
            .iter()
            .filter_map(|k| key_range(k))
            .filter(reaches)
            .collect();
        adopted.sort_unstable();
        if let DeadLetterSink::Store(store) = &self.dead_letters {
            let prefix = format!("{}/dead-letters/{topic}/{partition}/", self.pipeline);
            let keys = store
                .list_after(&prefix, &start_after(&prefix))
                .await
                .map_err(storage(&prefix))?;
            for key in keys {
                let orphan = key_range(&key)
                    .is_some_and(|range| reaches(&range) && adopted.binary_search(&range).is_err());
                if orphan {
                    if let Some(lease) = lease.as_mut() {
                        lease.check().await?;
                    }
                    tracing::info!(
                        key,
                        "deleting dead letters of a range whose results were never written"
                    );
                    store.delete(&key).await.map_err(storage(&key))?;
                }
            }
        }
        Ok(adopted)
    }

    /// An offset at or before the first offset of the last results range
    /// that starts before `committed` (the only one that can hold
    /// `committed`), or `committed` when there is none. Found by probing
    /// ever further back, one single-key listing per probe: O(log distance)
    /// requests, never a listing of the partition's whole history.
    async fn straddle_search_start(
        &self,
        prefix: &str,
        committed: i64,
    ) -> Result<i64, StorageError> {
        if committed <= 0 {
            return Ok(committed);
        }
        let mut back = STRADDLE_FIRST_PROBE;
        loop {
            let probe = committed.saturating_sub(back).max(0);
            let first = self
                .results
                .first_after(prefix, &format!("{prefix}{probe:020}"))
                .await?
                .as_deref()
                .and_then(key_range)
                .map(|(first, _)| first);
            if first.is_some_and(|first| first < committed) {
                return Ok(probe);
            }
            if probe == 0 {
                return Ok(committed);
            }
            back = back.saturating_mul(STRADDLE_GROWTH);
        }
    }

    /// Write `batch` (dead letters first, then results), each write right
    /// after checking `lease` (when fencing), so that a writer that lost
    /// the partition can land at most the one object it was writing. On
    /// error nothing of the range is durable: its inputs are delivered
    /// again and written under the same keys.
    pub(crate) async fn write(
        &self,
        batch: SealedBatch,
        mut lease: Option<&mut Lease>,
    ) -> Result<Written, SinkError> {
        let SealedBatch {
            topic,
            partition,
            first_offset: first,
            last_offset: last,
            results,
            dead_letters,
            dead_letter_positions,
        } = batch;
        let results_key = self.results_key(&topic, partition, first, last);
        // Compressed before anything is written: the lease is checked as
        // close to each write as it can be. The lines move to the blocking
        // pool and come back (no copy); the whole batch is compressed in one
        // call, which lets zstd match against everything before the cursor
        // instead of a streaming window.
        let level = self.zstd_level;
        let (buffer, compressed) = tokio::task::spawn_blocking(move || {
            let compressed = results.compress(level);
            (results, compressed)
        })
        .await
        .expect("compression does not panic");
        let compressed = compressed.map_err(|source| SinkError::Compress {
            key: results_key.clone(),
            source,
        })?;
        let metrics = crate::telemetry::metrics::metrics();
        let records = u64::try_from(last - first + 1).unwrap_or(0);
        // No write without holding the partition (a zombie stops here).
        if let Some(lease) = lease.as_mut() {
            lease.check().await?;
        }
        let dead_letters_key = if dead_letter_positions.is_empty() {
            None
        } else {
            metrics.object_written(records, "dead_letters", dead_letters.len());
            let key = self.dead_letters_key(&topic, partition, first, last);
            let written = self
                .dead_letters
                .write(&key, &dead_letters, &dead_letter_positions)
                .await?;
            // The dead-letter write may have taken long (a Kafka topic
            // waits for its acknowledgements): check again.
            if let Some(lease) = lease.as_mut() {
                lease.check().await?;
            }
            Some(written)
        };
        let size = compressed.iter().map(bytes::Bytes::len).sum();
        metrics.object_written(records, "results", size);
        self.results
            .put_parts(&results_key, compressed)
            .await
            .map_err(|source| SinkError::Storage {
                key: results_key.clone(),
                source,
            })?;
        Ok(Written {
            flushed: Flushed {
                topic,
                partition,
                first_offset: first,
                last_offset: last,
                results_key,
                dead_letters_key,
            },
            buffer,
        })
    }
}

#[cfg(test)]
mod tests;
