//! `weir replay`: a bounded, resumable run over a whole Kafka topic (or a
//! time window of it), for full-scale recomputation with the stage cache.
//!
//! A replay named `run`:
//! - consumes in a consumer group of its own, `weir-replay.{pipeline}.{run}`:
//!   several replicas started with the same `--run` share its partitions,
//!   and the pipeline's live group and its offsets are never touched;
//! - reads each partition from the start point (`earliest`, or the first
//!   offset at or after a time) up to the end fixed when the run was first
//!   planned (the high watermark, or the first offset at or after `--to`);
//! - writes under `{pipeline}/runs/{run}/` (results, dead letters, and the
//!   plan, `replay.json`), never over the live results;
//! - processes every event (event mode is off: a replay recomputes), with
//!   the cache when the pipeline has one;
//! - ends by itself once the group has committed every partition's end.
//!
//! Resuming: the plan is written once, before anything is consumed, and a
//! restarted replay with the same `--run` reads it back (its window, not a
//! new one) and continues from the group's committed offsets. Results are
//! keyed by offset range and ranges written before a crash are adopted
//! (see [`crate::partition`]), so the final output equals an uninterrupted
//! replay's.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::cache::CacheFigures;
use crate::config::{DeadLetterOutput, EventMode, KafkaSettings, Pipeline, Source, StartFrom};
use crate::digest::Digest;
pub use crate::kafka::Bounds;
use crate::kafka::clients::REQUEST_TIMEOUT;
use crate::partition::Stats;
use crate::pipeline::{self, Assembled, PipelineError, RunSummary};
use crate::storage::{ObjectStore, Precondition, StorageError};

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPoint {
    /// The oldest retained offset of each partition.
    Earliest,
    /// The first offset whose timestamp is at or after this time.
    Time(jiff::Timestamp),
}

/// Where a replay ends (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndPoint {
    /// The high watermarks when the replay is planned.
    Now,
    /// The first offset whose timestamp is at or after this time.
    Time(jiff::Timestamp),
}

/// A start or end point that is neither its keyword nor an RFC 3339 time.
#[derive(Debug, thiserror::Error)]
#[error("`{value}` is not `{keyword}` or an RFC 3339 time (e.g. 2026-11-30T00:00:00Z): {source}")]
pub struct PointError {
    value: String,
    keyword: &'static str,
    source: jiff::Error,
}

fn parse_time(value: &str, keyword: &'static str) -> Result<jiff::Timestamp, PointError> {
    value.parse().map_err(|source| PointError {
        value: value.to_owned(),
        keyword,
        source,
    })
}

impl FromStr for StartPoint {
    type Err = PointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "earliest" => Ok(StartPoint::Earliest),
            _ => parse_time(s, "earliest").map(StartPoint::Time),
        }
    }
}

impl FromStr for EndPoint {
    type Err = PointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "now" => Ok(EndPoint::Now),
            _ => parse_time(s, "now").map(EndPoint::Time),
        }
    }
}

impl fmt::Display for StartPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartPoint::Earliest => f.write_str("earliest"),
            StartPoint::Time(t) => write!(f, "{t}"),
        }
    }
}

impl fmt::Display for EndPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndPoint::Now => f.write_str("now"),
            EndPoint::Time(t) => write!(f, "{t}"),
        }
    }
}

/// What `weir replay` was asked.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The run's name (letters, digits, `-`, `_`, `.`).
    pub run: String,
    /// Where it starts.
    pub from: StartPoint,
    /// Where it ends.
    pub to: EndPoint,
}

/// A replay's window, fixed when it first starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The topic.
    pub topic: String,
    /// The replay's consumer group.
    pub group: String,
    /// The start point as given.
    pub from: String,
    /// The end point as given.
    pub to: String,
    /// When the plan was made.
    pub planned_at: String,
    /// Partition -> `[start, end)`.
    pub partitions: BTreeMap<i32, (i64, i64)>,
    /// The version of each plugin the stages run at the pipeline's active
    /// version (`name@active`), as it was when the replay was planned.
    /// Every start of the run loads these, so that its output is one
    /// chain's however the active versions move meanwhile. Plans stored by
    /// earlier weir versions have none: their runs take the active
    /// versions at each start.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plugins: BTreeMap<String, String>,
    /// The chain's identity when the replay was planned (every stage's
    /// plugin, configuration and granted files): a run resumed with another
    /// chain would mix two chains' outputs, so it is refused. Plans stored
    /// by earlier weir versions have none, and are not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<Digest>,
}

impl Plan {
    /// That the run resumes on the topic and with the chain (`chain`, its
    /// identity) it was planned with.
    fn check_unchanged(
        &self,
        run: &str,
        kafka: &KafkaSettings,
        chain: Digest,
    ) -> Result<(), ReplayError> {
        let changed = |planned: String, now: String| ReplayError::Changed {
            run: run.to_owned(),
            planned,
            now,
        };
        if self.topic != kafka.topic {
            return Err(changed(
                format!("topic `{}`", self.topic),
                format!("topic `{}`", kafka.topic),
            ));
        }
        match self.chain {
            Some(planned) if planned != chain => Err(changed(
                format!("chain {}", planned.short()),
                format!(
                    "chain {} (a stage's plugin, its configuration, or a file or environment \
                     value granted to it differs)",
                    chain.short()
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// What stops a replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// `weir replay` reads a Kafka topic.
    #[error("the pipeline's source is not [source.kafka]: a replay reads a topic")]
    NotKafka,
    /// The run name cannot be part of object keys and a group name.
    #[error("run name `{0}`: use only ASCII letters, digits, `-`, `_` and `.`")]
    RunName(String),
    /// The broker could not be asked for the window.
    #[error("planning the replay: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The topic has no partitions (or does not exist).
    #[error("topic `{0}` has no partitions")]
    NoPartitions(String),
    /// The plan could not be read or written.
    #[error("the replay's plan: {0}")]
    Plan(#[from] StorageError),
    /// A stored plan that does not parse.
    #[error("the replay's plan {key} is not valid: {source}")]
    PlanCorrupt {
        /// Where it is.
        key: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A stage of the chain does not start (its plugin refuses its
    /// `[stage.config]`): found before any record is read.
    #[error(transparent)]
    StageStart(#[from] crate::chain::StageStartError),
    /// The run is resumed with another topic or another chain than it
    /// was planned with: its output would not be one replay's.
    #[error(
        "run `{run}` was planned with {planned}, but the pipeline now has {now}: its output \
         would mix the two; finish it with the pipeline it started with, or start a new run \
         (another --run)"
    )]
    Changed {
        /// The run.
        run: String,
        /// What the plan says (the topic or the chain).
        planned: String,
        /// What the pipeline says now.
        now: String,
    },
    /// Running the pipeline failed.
    #[error(transparent)]
    Pipeline(Box<PipelineError>),
}

impl From<PipelineError> for ReplayError {
    fn from(error: PipelineError) -> Self {
        ReplayError::Pipeline(Box::new(error))
    }
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct ReplaySummary {
    /// The window.
    pub plan: Plan,
    /// What this process did, as `weir run` reports it.
    pub run: RunSummary,
    /// Whether every partition was committed to its end.
    pub complete: bool,
    /// What the cache did, if there is one.
    pub cache: Option<CacheFigures>,
    /// What each stage did, in chain order (see [`pipeline::stage_lines`]).
    pub stage_lines: Vec<String>,
}

/// The replay's consumer group.
pub fn group_name(pipeline: &str, run: &str) -> String {
    format!("weir-replay.{pipeline}.{run}")
}

/// The pipeline as a replay runs it: its own group, its own output
/// folder, every event processed. Its dead letters stay under the run's
/// folder too: a pipeline whose dead letters go to a Kafka topic has them
/// written to the output store instead, so a replay never adds letters to
/// the live topic, where `weir dlq` would take them for the live
/// pipeline's (and a redrive would give their records a second result).
pub fn replay_pipeline(mut pipeline: Pipeline, run: &str) -> Result<Pipeline, ReplayError> {
    let valid = !run.is_empty()
        && run
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !valid {
        return Err(ReplayError::RunName(run.to_owned()));
    }
    let Source::Kafka(kafka) = &mut pipeline.source else {
        return Err(ReplayError::NotKafka);
    };
    kafka.group = group_name(&pipeline.name, run);
    kafka.start = StartFrom::Earliest;
    pipeline.name = format!("{}/runs/{run}", pipeline.name);
    pipeline.event_mode = EventMode::Off;
    if let DeadLetterOutput::Kafka { .. } = pipeline.dead_letter {
        pipeline.dead_letter = DeadLetterOutput::Store(pipeline.output.clone());
    }
    Ok(pipeline)
}

/// Run a replay of `pipeline` (as [`replay_pipeline`] made it) until it is
/// complete or `shutdown` is set. `on_start` is called once the plan is
/// known (to show progress).
pub async fn replay(
    pipeline: &Pipeline,
    options: &ReplayOptions,
    shutdown: Arc<AtomicBool>,
    on_start: impl FnOnce(&Plan, Arc<Bounds>, &Assembled),
) -> Result<ReplaySummary, ReplayError> {
    let started = Instant::now();
    let Source::Kafka(kafka) = &pipeline.source else {
        return Err(ReplayError::NotKafka);
    };
    let mut assembled = pipeline::assemble(pipeline).await?;
    // Every partition's worker starts each stage first: a configuration a
    // plugin refuses stops the replay here, before the broker is asked or
    // any record read (and again below for a planned chain of other versions).
    assembled.chain.try_stages()?;
    let conditional_writes = pipeline.output.conditional_writes();
    let active = crate::hot_swap::running(&assembled.chain, &crate::hot_swap::followed(pipeline));
    let plan = load_or_make_plan(
        kafka,
        options,
        &assembled,
        active.clone(),
        conditional_writes,
    )
    .await?;
    if !plan.plugins.is_empty() && plan.plugins != active {
        tracing::info!(
            planned = ?plan.plugins,
            active = ?active,
            "the active versions moved since the replay was planned: running the planned ones"
        );
        assembled.chain = Arc::new(
            pipeline::load_chain(
                pipeline,
                &assembled.runtime,
                assembled.registry.as_ref(),
                &plan.plugins,
            )
            .await?,
        );
        assembled.chain.try_stages()?;
    }
    plan.check_unchanged(&options.run, kafka, assembled.chain.identity())?;
    let bounds = Arc::new(Bounds::new(&plan.topic, plan.partitions.clone()));
    on_start(&plan, bounds.clone(), &assembled);
    // A replay runs the chain it started with from its first record to its
    // last (no hot swap): its output is one chain's.
    let (_, fixed) = tokio::sync::watch::channel(assembled.chain.clone());
    let parts = assembled.worker_parts(pipeline, kafka, EventMode::Off, fixed);
    let summary = if bounds.total() == 0 {
        crate::kafka::HostSummary {
            stats: Stats::default(),
            elapsed: Duration::ZERO,
        }
    } else {
        crate::kafka::run_bounded(kafka, parts, shutdown, bounds.clone())
            .await
            .map_err(PipelineError::from)?
    };
    if let Some(cache) = &assembled.cache {
        cache.flush().await;
    }
    Ok(ReplaySummary {
        plan,
        complete: bounds.total() == 0 || bounds.is_complete(),
        cache: assembled.cache.as_ref().map(|c| c.figures()),
        stage_lines: pipeline::stage_lines(&summary.stats, &assembled.chain),
        run: RunSummary {
            stats: summary.stats,
            elapsed: started.elapsed(),
            results_location: assembled.sink.describe_results(),
            dead_letters_location: assembled.sink.describe_dead_letters(),
        },
    })
}

/// The stored plan of this run, or a new one with `plugins` (stored before
/// anything is consumed, with the group's start offsets committed).
async fn load_or_make_plan(
    kafka: &KafkaSettings,
    options: &ReplayOptions,
    assembled: &Assembled,
    plugins: BTreeMap<String, String>,
    conditional_writes: bool,
) -> Result<Plan, ReplayError> {
    let (store, key) = assembled.sink.own_object("replay.json");
    if let Some(plan) = stored_plan(store, &key).await? {
        tracing::info!(
            run = options.run,
            from = plan.from,
            to = plan.to,
            "resuming the replay in the window it was planned with"
        );
        return Ok(plan);
    }
    let settings = kafka.clone();
    let (from, to) = (options.from, options.to);
    let mut plan = tokio::task::spawn_blocking(move || make_plan(&settings, from, to))
        .await
        .expect("planning does not panic")?;
    plan.plugins = plugins;
    plan.chain = Some(assembled.chain.identity());
    store_plan(store, &key, plan, conditional_writes).await
}

/// The plan stored at `key`, if any.
async fn stored_plan(store: &ObjectStore, key: &str) -> Result<Option<Plan>, ReplayError> {
    let Some(bytes) = store.get(key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| ReplayError::PlanCorrupt {
            key: store.describe(key),
            source,
        })
}

/// Store `plan` as the run's, unless another replica of the run stored
/// one first: then that one is the run's (replicas started together each
/// plan, with their own high watermarks, and one window must cut every
/// partition). Without conditional writes the last plan stored wins.
async fn store_plan(
    store: &ObjectStore,
    key: &str,
    plan: Plan,
    conditional_writes: bool,
) -> Result<Plan, ReplayError> {
    let bytes = serde_json::to_vec_pretty(&plan).expect("a plan serialises");
    if !conditional_writes {
        store.put(key, bytes).await?;
        return Ok(plan);
    }
    match store.put_if(key, bytes, &Precondition::Absent).await {
        Ok(_) => Ok(plan),
        Err(StorageError::PreconditionFailed { .. }) => {
            tracing::info!("another replica planned this run first: replaying its window");
            Ok(stored_plan(store, key).await?.unwrap_or(plan))
        }
        Err(error) => Err(error.into()),
    }
}

/// Ask the broker for each partition's window, and commit the start
/// offsets of a time window for the replay's group. Blocking.
fn make_plan(
    settings: &KafkaSettings,
    from: StartPoint,
    to: EndPoint,
) -> Result<Plan, ReplayError> {
    let consumer: BaseConsumer = crate::kafka::clients::consumer_config(settings).create()?;
    let metadata = consumer.fetch_metadata(Some(&settings.topic), REQUEST_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == settings.topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(ReplayError::NoPartitions(settings.topic.clone()));
    }
    let mut windows = BTreeMap::new();
    for &partition in &partitions {
        let (low, high) = consumer.fetch_watermarks(&settings.topic, partition, REQUEST_TIMEOUT)?;
        windows.insert(partition, (low, high));
    }
    let at_time = |time: jiff::Timestamp| -> Result<BTreeMap<i32, Option<i64>>, ReplayError> {
        let mut list = TopicPartitionList::new();
        for &partition in &partitions {
            list.add_partition_offset(
                &settings.topic,
                partition,
                Offset::Offset(time.as_millisecond()),
            )?;
        }
        let found = consumer.offsets_for_times(list, REQUEST_TIMEOUT)?;
        Ok(partitions
            .iter()
            .map(|&p| {
                let offset =
                    found
                        .find_partition(&settings.topic, p)
                        .and_then(|e| match e.offset() {
                            Offset::Offset(n) => Some(n),
                            _ => None,
                        });
                (p, offset)
            })
            .collect())
    };
    if let StartPoint::Time(time) = from {
        for (partition, offset) in at_time(time)? {
            let (low, high) = windows[&partition];
            // No message at or after the time: nothing to replay there.
            let start = offset.unwrap_or(high).max(low);
            windows.insert(partition, (start, high));
        }
    }
    if let EndPoint::Time(time) = to {
        for (partition, offset) in at_time(time)? {
            let (start, high) = windows[&partition];
            let end = offset.unwrap_or(high).min(high);
            windows.insert(partition, (start, end.max(start)));
        }
    }
    if matches!(from, StartPoint::Time(_)) {
        // The group starts where the window starts (a group without
        // offsets would start at the earliest).
        let mut list = TopicPartitionList::new();
        for (&partition, &(start, end)) in &windows {
            if end > start {
                list.add_partition_offset(&settings.topic, partition, Offset::Offset(start))?;
            }
        }
        if list.count() > 0 {
            consumer.commit(&list, CommitMode::Sync)?;
        }
    }
    Ok(Plan {
        topic: settings.topic.clone(),
        group: settings.group.clone(),
        from: from.to_string(),
        to: to.to_string(),
        planned_at: jiff::Timestamp::now().to_string(),
        partitions: windows,
        plugins: BTreeMap::new(),
        chain: None,
    })
}

impl ReplaySummary {
    /// The lines `weir replay` prints at the end.
    pub fn lines(&self, run: &str) -> Vec<String> {
        let status = if self.complete {
            "complete"
        } else {
            "stopped before its end"
        };
        let mut lines = vec![format!("weir replay {run}: {status}; {}", self.run.line())];
        lines.extend(self.stage_lines.iter().cloned());
        if let Some(cache) = &self.cache {
            lines.push(format!(
                "cache: {} requests ({} listings, {} packs read, {} written), {:.1} MB read, \
                 {:.1} MB written, {} read errors, {} write errors",
                cache.requests(),
                cache.lists,
                cache.pack_reads,
                cache.pack_writes,
                cache.bytes_read as f64 / 1e6,
                cache.bytes_written as f64 / 1e6,
                cache.read_errors,
                cache.write_errors,
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_keeps_its_dead_letters_under_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let text = crate::test_support::live_kafka_pipeline(
            "[[stage]]\nname = \"one\"\nplugin = \"one.wasm\"",
        );
        std::fs::write(dir.path().join("one.wasm"), "").unwrap();
        let live = crate::config::parse(&text, dir.path()).unwrap();
        let replay = replay_pipeline(live, "r1").unwrap();
        assert_eq!(replay.name, "live/runs/r1");
        assert_eq!(
            replay.dead_letter,
            DeadLetterOutput::Store(replay.output.clone()),
            "not the live topic"
        );
        // A dead-letter store is kept: the run's prefix separates them.
        let stored = text.replace(
            "[dead_letter.kafka]\ntopic = \"live-dead-letters\"",
            "[dead_letter.local]\ndir = \"dead\"",
        );
        let live = crate::config::parse(&stored, dir.path()).unwrap();
        let kept = live.dead_letter.clone();
        assert_eq!(replay_pipeline(live, "r1").unwrap().dead_letter, kept);
    }

    fn plan(end: i64) -> Plan {
        Plan {
            topic: "t".into(),
            group: "g".into(),
            from: "earliest".into(),
            to: "now".into(),
            planned_at: "2026-12-03T00:00:00Z".into(),
            partitions: BTreeMap::from([(0, (0, end))]),
            plugins: BTreeMap::new(),
            chain: None,
        }
    }

    #[tokio::test]
    async fn replicas_planning_together_replay_the_first_stored_window() {
        let store = ObjectStore::memory();
        let first = store_plan(&store, "p/replay.json", plan(10), true)
            .await
            .unwrap();
        assert_eq!(first.partitions[&0], (0, 10));
        // A replica that planned later, with a higher watermark, takes the
        // stored window instead of its own.
        let second = store_plan(&store, "p/replay.json", plan(12), true)
            .await
            .unwrap();
        assert_eq!(second.partitions[&0], (0, 10));
        let stored = stored_plan(&store, "p/replay.json").await.unwrap().unwrap();
        assert_eq!(stored.partitions[&0], (0, 10));
        // Without conditional writes, the last one wins (as before).
        let last = store_plan(&store, "p/replay.json", plan(12), false)
            .await
            .unwrap();
        assert_eq!(last.partitions[&0], (0, 12));
    }

    #[test]
    fn points_parse_keywords_and_times() {
        assert_eq!(
            "earliest".parse::<StartPoint>().unwrap(),
            StartPoint::Earliest
        );
        assert_eq!("now".parse::<EndPoint>().unwrap(), EndPoint::Now);
        let t: StartPoint = "2026-11-30T12:00:00Z".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-30T12:00:00Z");
        let err = "yesterday".parse::<EndPoint>().unwrap_err().to_string();
        assert!(
            err.contains("`yesterday` is not `now` or an RFC 3339 time"),
            "{err}"
        );
    }
}
