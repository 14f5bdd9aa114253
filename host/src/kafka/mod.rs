//! The Kafka host: one consumer in the pipeline's consumer group, and one
//! task per assigned partition; and the librdkafka client configurations
//! ([`clients`]).
//!
//! ```text
//!  poll thread ──Message──► partition task (tokio) ──► worker: chain ──► sink
//!   (rdkafka)   ◄─Durable──   one per assigned partition, offsets in order
//!      │ commits offsets that are durable; on revoke: stop, flush, commit
//! ```
//!
//! Parts: [`clients`] (consumer and producer configurations), `partitions`
//! (lanes, partition queues, assignment and revocation), `task` (one
//! partition's loop), `offsets` (what may be committed, and what is),
//! `start` (the start of a group without offsets, made durable).
//!
//! Invariants:
//! - a partition's messages are processed in offset order by exactly one
//!   task; partitions are processed concurrently;
//! - an offset is committed only after the task reported every record
//!   before it durable (in a results object, a dead letter, or adopted);
//!   committed offsets never go backwards, and a failed commit is retried;
//! - on revoke (rebalance or shutdown) a partition's task finishes what it
//!   was given, writes its open batch and the offset is committed before the
//!   partition is given up; a task that does not finish in time is aborted
//!   (it ends at its next wait), and what it reports afterwards is never
//!   committed: each task has a generation, and only the partition's
//!   current task speaks for it (another owner may have committed past a
//!   stopped one);
//! - backpressure: a task that cannot keep up (or cannot write: S3 down)
//!   stops taking messages; its bounded channel fills, and its messages
//!   stay in its partition's own queue in librdkafka, which stops fetching
//!   the partition once its prefetch bound is reached. Other partitions
//!   carry on. Nothing is buffered without bound, nothing fetched is
//!   dropped and fetched again (as a pause would), and everything resumes
//!   by itself.

mod bounds;
pub mod clients;
mod lag;
mod offsets;
mod partitions;
mod start;
mod task;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientContext, TopicPartitionList};

use crate::bodies::BodyStore;
use crate::chain::Chain;
use crate::config::{BatchingConfig, DecodeConfig, KafkaSettings, StartFrom};
use crate::partition::{Stats, WorkerError};
use crate::sink::Sink;
pub use bounds::Bounds;
use clients::{consumer_config, to_source_message};
use partitions::Partitions;

/// How often a replay asks the broker whether the group has committed every
/// partition's end (whether this host's own partitions are done is known
/// at every turn of the poll loop).
const BOUNDS_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Events and messages taken from the consumer's own queue per turn of the
/// poll loop (a turn ends sooner when the queue is empty).
const MAIN_QUEUE_BURST: usize = 64;

/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// A partition: topic and partition number.
type PartitionKey = (String, i32);

/// Errors that stop the Kafka host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The consumer could not be created or subscribed.
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// An assigned partition's position (committed offset, or first offset)
    /// could not be read, even after retries.
    #[error("cannot read the position of the assigned partitions")]
    Position(#[source] rdkafka::error::KafkaError),
    /// A partition's worker could not be started (its plugin instances or
    /// its event-mode state).
    #[error("starting a partition worker")]
    StartWorker(#[source] Box<WorkerError>),
    /// A partition's worker stopped with an error.
    #[error("partition {topic}/{partition}")]
    Partition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Why the worker stopped.
        source: Box<WorkerError>,
    },
    /// An assigned partition could not get a queue of its own in
    /// librdkafka (which only refuses unknown partitions).
    #[error("cannot split the queue of partition {topic}/{partition}")]
    PartitionQueue {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// The poll thread panicked (a host bug).
    #[error("the poll thread panicked")]
    PollThread(#[source] tokio::task::JoinError),
}

/// What the Kafka host did.
#[derive(Debug, Clone)]
pub struct HostSummary {
    /// Totals over every partition worker that ran.
    pub stats: Stats,
    /// Wall time.
    pub elapsed: Duration,
}

/// Everything a partition worker is made of.
pub struct WorkerParts {
    /// The chain (instantiated once per worker), and the newer chains a
    /// hot swap publishes (workers move to them between batches).
    pub chains: tokio::sync::watch::Receiver<Arc<Chain>>,
    /// The output writer.
    pub sink: Arc<Sink>,
    /// Decoding settings.
    pub decode: DecodeConfig,
    /// Object cutting.
    pub batching: BatchingConfig,
    /// Fetcher of bodies stored by reference.
    pub bodies: BodyStore,
    /// Messages per hand-off to the chain.
    pub max_batch: usize,
    /// Event mode (each partition restores its state when assigned).
    pub event_mode: crate::config::EventMode,
    /// The stage cache, if the pipeline has one.
    pub cache: Option<Arc<crate::cache::StageCache>>,
}

/// The consumer's context: routes rebalances and commit answers to the
/// partitions.
pub struct HostContext {
    partitions: Arc<Partitions>,
    /// The consumer itself, which splitting a partition's queue needs
    /// shared (set once it is created; weak, as the consumer owns this).
    consumer: OnceLock<Weak<BaseConsumer<HostContext>>>,
}

impl ClientContext for HostContext {}

impl ConsumerContext for HostContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => match self.consumer.get().and_then(Weak::upgrade) {
                Some(consumer) => self.partitions.split_queues(&consumer, list),
                // Then no lane gets a queue, and the assignment stops the host.
                None => tracing::error!("rebalance before the consumer was set up"),
            },
            Rebalance::Revoke(list) => {
                let keys: Vec<PartitionKey> = list
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                tracing::info!(
                    partitions = keys.len(),
                    "partitions revoked: finishing and committing them"
                );
                self.partitions.give_up(consumer, &keys);
            }
            Rebalance::Error(_) => {}
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let readiness = crate::telemetry::readiness::readiness();
        match rebalance {
            Rebalance::Assign(list) => {
                self.partitions.assign(consumer, list);
                // An empty share counts: more replicas than partitions.
                readiness.partitions_given();
            }
            // Still ready: see `telemetry::readiness`.
            Rebalance::Revoke(_) | Rebalance::Error(_) => {}
        }
        crate::telemetry::metrics::metrics()
            .partitions_assigned
            .set(i64::try_from(self.partitions.all_keys().len()).unwrap_or(i64::MAX));
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        self.partitions.committed(result, offsets);
    }
}

/// How many partitions `settings.topic` has (0 if it does not exist yet),
/// asking the broker. Blocking.
pub fn partition_count(settings: &KafkaSettings, timeout: Duration) -> KafkaResult<usize> {
    let consumer: BaseConsumer = consumer_config(settings).create()?;
    let metadata = consumer.fetch_metadata(Some(&settings.topic), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.name() == settings.topic)
        .map(|t| t.partitions().len())
        .sum())
}

/// Consume `settings.topic` with the pipeline's chain until `shutdown` is
/// set, then finish every partition, commit, and return the totals.
pub async fn run(
    settings: &KafkaSettings,
    parts: WorkerParts,
    shutdown: Arc<AtomicBool>,
) -> Result<HostSummary, HostError> {
    run_within(settings, parts, shutdown, None).await
}

/// As [`run`], but only the offsets within `bounds` (a replay), stopping by
/// itself once the group committed every partition's end (or at
/// `shutdown`).
pub async fn run_bounded(
    settings: &KafkaSettings,
    parts: WorkerParts,
    shutdown: Arc<AtomicBool>,
    bounds: Arc<Bounds>,
) -> Result<HostSummary, HostError> {
    run_within(settings, parts, shutdown, Some(bounds)).await
}

async fn run_within(
    settings: &KafkaSettings,
    parts: WorkerParts,
    shutdown: Arc<AtomicBool>,
    bounds: Option<Arc<Bounds>>,
) -> Result<HostSummary, HostError> {
    let started = Instant::now();
    let (events, events_rx) = flume::unbounded();
    // Wake-ups of the poll thread: something arrived in the consumer's
    // queue or in a partition's.
    let (wake, woken) = flume::bounded(1);
    let partitions = Arc::new(Partitions::new(
        parts,
        events,
        wake.clone(),
        shutdown.clone(),
    ));
    let mut consumer: BaseConsumer<HostContext> =
        consumer_config(settings).create_with_context(HostContext {
            partitions: partitions.clone(),
            consumer: OnceLock::new(),
        })?;
    consumer.set_nonempty_callback(move || {
        let _ = wake.try_send(());
    });
    let consumer = Arc::new(consumer);
    // Set before subscribing: the first rebalance needs it.
    let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
    if settings.start == StartFrom::Latest {
        let pinning = settings.clone();
        let pinned = tokio::task::spawn_blocking(move || start::pin_latest_start(&pinning))
            .await
            .expect("pinning the start does not panic")?;
        if pinned > 0 {
            tracing::info!(
                partitions = pinned,
                "a group without offsets starts at the topic's end as of now (committed)"
            );
        }
    }
    consumer.subscribe(&[settings.topic.as_str()])?;
    crate::telemetry::readiness::readiness().consuming_from_kafka();
    tracing::info!(topic = settings.topic, group = settings.group, "consuming");
    let polling = partitions.clone();
    // A replay asks for the group's offsets with a client of its own, so
    // the group's consumer only polls.
    let bounds = match bounds {
        Some(bounds) => Some((bounds, consumer_config(settings).create::<BaseConsumer>()?)),
        None => None,
    };
    // Its sender is dropped when the poll loop ends: the lag watcher stops
    // at once and closes its client while the group's consumer closes.
    let (stop_lag, lag_stop) = flume::bounded::<()>(1);
    let lag = {
        let (settings, partitions) = (settings.clone(), partitions.clone());
        tokio::task::spawn_blocking(move || lag::watch(&settings, &partitions, &lag_stop))
    };
    let polled_loop = tokio::task::spawn_blocking(move || {
        let bounds = bounds.as_ref().map(|(b, checker)| (b.as_ref(), checker));
        poll_loop(&consumer, &polling, &events_rx, &woken, bounds, &shutdown);
        drop(stop_lag);
    })
    .await;
    // Ends within one broker timeout; a panic there only loses the gauge.
    let _ = lag.await;
    polled_loop.map_err(HostError::PollThread)?;
    match partitions.take_failure() {
        Some(error) => Err(error),
        None => Ok(HostSummary {
            stats: partitions.finished(),
            elapsed: started.elapsed(),
        }),
    }
}

/// The consumer loop: poll, hand messages to tasks, commit what is
/// durable; on shutdown (or, within `bounds`, once the group committed
/// every end), stop every task and commit synchronously.
fn poll_loop(
    consumer: &BaseConsumer<HostContext>,
    partitions: &Partitions,
    events: &flume::Receiver<task::Event>,
    woken: &flume::Receiver<()>,
    bounds: Option<(&Bounds, &BaseConsumer)>,
    shutdown: &AtomicBool,
) {
    let mut last_progress = Instant::now();
    let mut last_bounds_check = Instant::now();
    let mut full = false;
    let replayed = bounds.map(|(b, _)| b);
    while !partitions.stopping() {
        // Look again soon while a task's channel is full, so its messages
        // move on as soon as it makes room.
        let timeout = if full {
            Duration::from_millis(5)
        } else {
            Duration::from_millis(100)
        };
        let _ = woken.recv_timeout(timeout);
        // The consumer's own queue: rebalances, commit answers, errors, and
        // messages fetched before their partition's queue was split.
        for _ in 0..MAIN_QUEUE_BURST {
            match consumer.poll(Duration::ZERO) {
                Some(Ok(message)) => partitions.dispatch(to_source_message(&message), replayed),
                Some(Err(e)) => tracing::warn!("consumer: {e}"),
                None => break,
            }
        }
        full = partitions.pump(replayed);
        if let Some(bounds) = replayed.filter(|_| !full) {
            // A local read: no request to the broker.
            if let Ok(positions) = consumer.position() {
                partitions.read_past_ends(&positions, bounds);
            }
        }
        partitions.drain_events(events);
        if let Some((bounds, checker)) = bounds {
            // This host's own partitions are known here at every turn; the
            // group's commits (other replicas) cost the broker a request.
            let mut done = bounds.done_here(&partitions.durable_ends());
            if !done && last_bounds_check.elapsed() >= BOUNDS_CHECK_EVERY {
                last_bounds_check = Instant::now();
                done = bounds.check(checker);
            }
            if done {
                tracing::info!("replay: every partition is committed to its end");
                shutdown.store(true, Ordering::SeqCst);
            }
        }
        partitions.commit_due(consumer);
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            tracing::info!(
                consumed = partitions.dispatched(),
                partitions = partitions.all_keys().len(),
                "progress"
            );
        }
    }
    tracing::info!("stopping: finishing and committing every partition");
    // Reports still queued come from the current tasks: read them before
    // the tasks are stopped (after which they would no longer count).
    partitions.drain_events(events);
    partitions.give_up(consumer, &partitions.all_keys());
    consumer.unsubscribe();
}
