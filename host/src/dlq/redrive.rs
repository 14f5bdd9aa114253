//! `weir dlq redrive`: dead letters sent back through the chain (after a
//! plugin fix, a new limit, a body put back), their results written, and
//! each marked redriven so that a second redrive does nothing.
//!
//! Invariants:
//! - a redriven dead letter ends in exactly one place: a results object of
//!   its own offset, `{pipeline}/redrive/results/{topic}/{partition}/{offset}-{offset}.jsonl.zst`,
//!   or a new dead letter (under `{pipeline}/redrive/`, or the dead-letter
//!   topic), with the reason it failed again;
//! - its marker, `{pipeline}/redriven/{topic}/{partition}/{offset}.json`,
//!   is written after that place is durable: a redrive stopped between the
//!   two redoes the letter, overwriting the same keys (nothing twice);
//! - a marked dead letter is never redriven again; one that failed again
//!   is a new dead letter (a newer time at the same position), which a
//!   later redrive (after the fix) takes up;
//! - a dead letter whose position already has a line in the pipeline's own
//!   results is left alone: its record has its place. This happens with
//!   dead letters on a Kafka topic, which cannot take a message back: a
//!   host that crashed between a range's dead letters and its results
//!   object processed the range again, and a record that failed the first
//!   time (a deadline missed) may have succeeded the second.
//!
//! Redrives do not use event mode: the document state belongs to the live
//! hosts, and a redrive is asked for on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::DeadLetter;
use crate::partition::{PartitionWorker, WorkerError};
use crate::pipeline::{Assembled, PipelineError};
use crate::sink::{Sink, SinkError};
use crate::source::{Payload, Position, SourceMessage};
use crate::storage::{ObjectStore, StorageError};

/// What became of a redriven dead letter, as its marker records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// It went through the chain: a results object holds it.
    Result,
    /// It failed again: a new dead letter holds it, with the reason.
    DeadLetter,
}

/// The marker of a redriven dead letter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Marker {
    /// When it was redriven.
    pub at: jiff::Timestamp,
    /// When the redriven dead letter was written (which one of the
    /// position's dead letters it was).
    pub dead_lettered_at: Option<jiff::Timestamp>,
    /// What became of it.
    pub outcome: Outcome,
    /// The results object it was written to.
    pub results_key: String,
}

/// The dead letters already redriven: per position, the time of the one
/// that was.
#[derive(Debug, Default)]
pub struct Redrives(BTreeMap<String, Option<jiff::Timestamp>>);

impl Redrives {
    /// Whether `letter` itself was redriven (not merely its position).
    pub fn covers(&self, letter: &DeadLetter) -> bool {
        self.0
            .get(&letter.position.to_string())
            .is_some_and(|at| *at == letter.at)
    }
}

/// What a redrive did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Redriven {
    /// Dead letters chosen.
    pub chosen: usize,
    /// Of those, already redriven before (left alone).
    pub already: usize,
    /// Of those, with a line in the pipeline's results already (left
    /// alone: see the module's invariants).
    pub answered: usize,
    /// Sent through the chain and written as results.
    pub results: usize,
    /// Sent through the chain and dead-lettered again.
    pub dead_again: usize,
    /// Chosen but without their payload (left out of a letter too large
    /// for its Kafka topic, or a line too long to hold): left alone, and
    /// said, since only the source still has the record.
    pub without_payload: usize,
}

/// Why a redrive stopped.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// A marker could not be read or written.
    #[error("redrive markers at {place}")]
    Markers {
        /// Key or prefix.
        place: String,
        /// Why.
        #[source]
        source: StorageError,
    },
    /// A dead letter's payload is not valid base64.
    #[error("dead letter {position}")]
    Payload {
        /// `topic/partition@offset`.
        position: String,
        /// Why.
        #[source]
        source: super::PayloadError,
    },
    /// The chain or the sink failed (a host fault: nothing is marked).
    #[error("redriving {position}")]
    Worker {
        /// `topic/partition@offset`.
        position: String,
        /// Why.
        #[source]
        source: Box<WorkerError>,
    },
    /// The chain's workers could not start.
    #[error("starting the chain")]
    Pipeline(#[from] PipelineError),
    /// The pipeline's results could not be read, to find the dead letters
    /// whose records have a result already.
    #[error("reading the results of {topic}/{partition}")]
    Results {
        /// Topic of the dead letters.
        topic: String,
        /// Partition of the dead letters.
        partition: i32,
        /// Why.
        #[source]
        source: SinkError,
    },
}

/// How many redrive markers are read at once.
const MARKER_READS: usize = 32;

/// The redrive markers of `pipeline` in its results store.
pub struct Markers {
    store: ObjectStore,
    prefix: String,
}

impl Markers {
    /// Markers of `pipeline` in `store` (the results store).
    pub fn new(store: ObjectStore, pipeline: &str) -> Self {
        Markers {
            store,
            prefix: format!("{pipeline}/redriven/"),
        }
    }

    fn key(&self, letter: &DeadLetter) -> String {
        let p = &letter.position;
        format!(
            "{}{}/{}/{:020}.json",
            self.prefix, p.topic, p.partition, p.offset
        )
    }

    /// What has been redriven so far. Markers are read [`MARKER_READS`] at a
    /// time: a redrive of thousands of letters would otherwise wait for
    /// thousands of round trips in a row.
    pub async fn load(&self) -> Result<Redrives, RedriveError> {
        use futures_util::{StreamExt as _, TryStreamExt as _};
        let failed = |place: String| move |source| RedriveError::Markers { place, source };
        let keys = self
            .store
            .list(&self.prefix)
            .await
            .map_err(failed(self.store.describe(&self.prefix)))?;
        let markers: Vec<(String, Option<Vec<u8>>)> = futures_util::stream::iter(
            keys.into_iter()
                .filter_map(|key| Some((self.position_of(&key)?, key))),
        )
        .map(|(position, key)| async move {
            let bytes = self
                .store
                .get(&key)
                .await
                .map_err(failed(self.store.describe(&key)))?;
            Ok::<_, RedriveError>((position, bytes))
        })
        .buffer_unordered(MARKER_READS)
        .try_collect()
        .await?;
        let mut done = BTreeMap::new();
        for (position, bytes) in markers {
            // A marker that does not parse (or is gone) marks nothing:
            // redriving again writes the same keys.
            if let Some(marker) = bytes.and_then(|b| serde_json::from_slice::<Marker>(&b).ok()) {
                done.insert(position, marker.dead_lettered_at);
            }
        }
        Ok(Redrives(done))
    }

    /// `topic/partition@offset` of a marker's key.
    fn position_of(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&self.prefix)?.strip_suffix(".json")?;
        let (topic_partition, offset) = rest.rsplit_once('/')?;
        let (topic, partition) = topic_partition.rsplit_once('/')?;
        let offset: i64 = offset.parse().ok()?;
        Some(format!("{topic}/{partition}@{offset}"))
    }

    async fn mark(&self, letter: &DeadLetter, marker: &Marker) -> Result<(), RedriveError> {
        let key = self.key(letter);
        let bytes = serde_json::to_vec(marker).expect("markers serialise");
        self.store
            .put(&key, bytes)
            .await
            .map_err(|source| RedriveError::Markers {
                place: self.store.describe(&key),
                source,
            })
    }
}

/// Where a redrive reads and writes.
pub struct Places {
    /// The pipeline's own results (where the letters' records would be had
    /// they succeeded), read to leave alone letters that have one.
    pub live: Sink,
    /// Where redriven records go (the pipeline's `redrive/` folder).
    pub redrive: Arc<Sink>,
}

/// Send `letters` (chosen by the caller) through `assembled`'s chain into
/// `places.redrive`, skipping those already marked or with a line in
/// `places.live`, and mark each.
pub async fn redrive(
    assembled: &Assembled,
    pipeline: &crate::config::Pipeline,
    places: &Places,
    markers: &Markers,
    letters: Vec<DeadLetter>,
    on_each: &dyn Fn(),
) -> Result<Redriven, RedriveError> {
    let sink = &places.redrive;
    let done = markers.load().await?;
    let mut redriven = Redriven {
        chosen: letters.len(),
        ..Redriven::default()
    };
    let mut by_partition: BTreeMap<(String, i32), Vec<DeadLetter>> = BTreeMap::new();
    for letter in letters {
        if done.covers(&letter) {
            redriven.already += 1;
            on_each();
            continue;
        }
        if letter.payload.is_partial() {
            redriven.without_payload += 1;
            on_each();
            continue;
        }
        let p = &letter.position;
        by_partition
            .entry((p.topic.to_string(), p.partition))
            .or_default()
            .push(letter);
    }
    for ((topic, partition), mut letters) in by_partition {
        let answered = answered(&places.live, &topic, partition, &letters).await?;
        letters.retain(|letter| {
            let keep = !answered.contains(&letter.position.offset);
            if !keep {
                redriven.answered += 1;
                on_each();
            }
            keep
        });
        if letters.is_empty() {
            continue;
        }
        let mut worker = PartitionWorker::new(
            assembled
                .chain
                .start_worker()
                .map_err(PipelineError::from)?,
            sink.clone(),
            pipeline.decode.clone(),
            pipeline.batching.clone(),
            &topic,
            partition,
        );
        worker = worker.with_bodies(assembled.bodies.clone());
        if let Some(cache) = &assembled.cache {
            worker = worker.with_cache(cache.clone());
        }
        for letter in letters {
            let position = letter.position.to_string();
            let payload = letter
                .payload
                .to_bytes()
                .map_err(|source| RedriveError::Payload {
                    position: position.clone(),
                    source,
                })?;
            let failed = |source: WorkerError| RedriveError::Worker {
                position: position.clone(),
                source: Box::new(source),
            };
            let dead_before = worker.stats().dead_letters;
            // One object per dead letter, keyed by its own offset, so a
            // redrive done again writes the same keys.
            worker
                .process(vec![SourceMessage {
                    position: letter.position.clone(),
                    payload: Payload::Raw(payload),
                }])
                .await
                .map_err(failed)?;
            worker.flush().await.map_err(failed)?;
            let outcome = if worker.stats().dead_letters > dead_before {
                redriven.dead_again += 1;
                Outcome::DeadLetter
            } else {
                redriven.results += 1;
                Outcome::Result
            };
            let p = &letter.position;
            let marker = Marker {
                at: jiff::Timestamp::now(),
                dead_lettered_at: letter.at,
                outcome,
                results_key: sink.results_key(&p.topic, p.partition, p.offset, p.offset),
            };
            markers.mark(&letter, &marker).await?;
            on_each();
        }
    }
    Ok(redriven)
}

/// The offsets of `letters` (all of `topic`/`partition`) that have a line
/// in `live`'s results objects. Only the objects whose ranges hold one of
/// them are read.
async fn answered(
    live: &Sink,
    topic: &str,
    partition: i32,
    letters: &[DeadLetter],
) -> Result<BTreeSet<i64>, RedriveError> {
    /// What is needed of a results line.
    #[derive(Deserialize)]
    struct Line {
        position: Position,
    }
    let failed = |source| RedriveError::Results {
        topic: topic.to_owned(),
        partition,
        source,
    };
    let offsets: BTreeSet<i64> = letters.iter().map(|l| l.position.offset).collect();
    let Some(&first) = offsets.first() else {
        return Ok(BTreeSet::new());
    };
    let mut answered = BTreeSet::new();
    for (key, (from, to)) in live
        .written_after(topic, partition, Some(first - 1))
        .await
        .map_err(failed)?
    {
        if offsets.range(from..=to).next().is_none() {
            continue;
        }
        let Some(lines) = live.read_results(&key).await.map_err(failed)? else {
            continue;
        };
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            // A line that does not parse answers nothing: its letter is
            // redriven, as it would have been before this check.
            if let Ok(Line { position }) = serde_json::from_slice(line)
                && offsets.contains(&position.offset)
            {
                answered.insert(position.offset);
            }
        }
    }
    Ok(answered)
}
