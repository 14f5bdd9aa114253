//! The streaming host: one Kafka consumer in the pipeline's consumer group,
//! and one worker per assigned partition.
//!
//! ```text
//!  poll thread ──Message──► partition worker (tokio task) ──► chain ──► sink
//!   (rdkafka)   ◄─Durable──   one per assigned partition, offsets in order
//!      │ commits offsets that are durable; on revoke: stop, flush, commit
//! ```
//!
//! Invariants:
//! - a partition's messages are processed in offset order by exactly one
//!   worker; partitions are processed concurrently;
//! - an offset is committed only after the worker reported every record
//!   before it durable (in a results object, a dead letter, or adopted);
//!   committed offsets never go backwards;
//! - on revoke (rebalance or shutdown) a partition's worker finishes what it
//!   was given, writes its open batch and the offset is committed before the
//!   partition is given up; a worker that does not finish within
//!   [`STOP_TIMEOUT`] is aborted (it ends at its next wait), and what it
//!   reports afterwards is never committed: each worker has a generation,
//!   and only the partition's current worker speaks for it (another owner
//!   may have committed past a stopped one);
//! - backpressure: a worker that cannot keep up (or cannot write: S3 down)
//!   stops taking messages; its bounded channel fills, its partition is
//!   paused (the consumer stops fetching it) and the few messages already
//!   prefetched wait in its lane. Other partitions carry on. Nothing is
//!   buffered without bound, and everything resumes by itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::runtime::Handle;

use crate::bodies::BodyStore;
use crate::chain::Chain;
use crate::config::{BatchingConfig, DecodeConfig, KafkaSettings};
use crate::sink::Sink;
use crate::source::SourceMessage;
use crate::source::kafka::{consumer_config, to_source_message};
use crate::worker::{PartitionWorker, Stats};

/// How long a worker may take to finish and flush when its partition is
/// revoked or the host shuts down.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often an idle worker wakes up to check its batch's age.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Errors that stop the streaming host.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The consumer could not be created or subscribed.
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A partition worker failed (the reason is in the message).
    #[error("partition worker failed: {0}")]
    Worker(String),
}

/// What the streaming host did.
#[derive(Debug, Clone)]
pub struct StreamSummary {
    /// Totals over every partition worker that ran.
    pub stats: Stats,
    /// Wall time.
    pub elapsed: Duration,
}

/// Everything a partition worker is made of.
pub struct WorkerParts {
    /// The chain (instantiated once per worker).
    pub chain: Arc<Chain>,
    /// The output writer.
    pub sink: Arc<Sink>,
    /// Decoding settings.
    pub decode: DecodeConfig,
    /// Object cutting.
    pub batching: BatchingConfig,
    /// Fetcher of bodies stored by reference.
    pub bodies: Option<BodyStore>,
    /// Messages per hand-off to the chain.
    pub max_batch: usize,
}

enum Command {
    Message(SourceMessage),
    Stop(std::sync::mpsc::SyncSender<StopReport>),
}

enum Event {
    /// Everything up to and including `last` is durable, says the worker of
    /// `generation`.
    Durable {
        key: PartitionKey,
        generation: u64,
        last: i64,
    },
    Fatal(String),
}

struct StopReport {
    last_durable: Option<i64>,
    stats: Stats,
}

type PartitionKey = (String, i32);

/// The path from the poll thread to one partition's worker: its bounded
/// channel, and the messages waiting while the channel is full (the
/// partition is paused meanwhile, so this holds at most what the consumer
/// had already prefetched).
struct Lane {
    sender: flume::Sender<Command>,
    overflow: std::collections::VecDeque<SourceMessage>,
    paused: bool,
    /// Which worker this is (see [`Event::Durable`]).
    generation: u64,
    /// The worker's task, aborted if it does not stop in time.
    task: tokio::task::JoinHandle<()>,
}

/// The partitions this host owns and their workers.
struct Registry {
    parts: WorkerParts,
    runtime: Handle,
    workers: Mutex<HashMap<PartitionKey, Lane>>,
    events: flume::Sender<Event>,
    /// Highest offset committed per partition (commits never go back).
    committed: Mutex<HashMap<PartitionKey, i64>>,
    /// Totals of stopped workers.
    finished: Mutex<Stats>,
    dispatched: AtomicU64,
    /// The generation of the next worker started.
    next_generation: AtomicU64,
    shutdown: Arc<AtomicBool>,
}

impl Registry {
    fn assign(&self, consumer: &BaseConsumer<HostContext>, partitions: &TopicPartitionList) {
        let committed = consumer
            .committed_offsets(partitions.clone(), Duration::from_secs(30))
            .unwrap_or_else(|e| {
                tracing::warn!(
                    "cannot read committed offsets ({e}); processing from the fetch position"
                );
                TopicPartitionList::new()
            });
        for element in partitions.elements() {
            let key = (element.topic().to_owned(), element.partition());
            let offset = committed
                .find_partition(&key.0, key.1)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            if let Some(o) = offset {
                self.committed
                    .lock()
                    .expect("not poisoned")
                    .insert(key.clone(), o);
            }
            // Without a committed offset, results written past the start of
            // the partition (by a host that died before its first commit)
            // must still be adopted, or a differently cut batch would
            // duplicate them. The offsets are the identity of the results,
            // whichever consumer group wrote them.
            let resume_from = offset.or_else(|| {
                consumer
                    .fetch_watermarks(&key.0, key.1, Duration::from_secs(30))
                    .map(|(low, _)| low)
                    .inspect_err(|e| {
                        tracing::warn!(
                            topic = key.0,
                            partition = key.1,
                            "cannot read watermarks: {e}"
                        )
                    })
                    .ok()
            });
            match self.spawn(&key, resume_from) {
                Ok(lane) => {
                    tracing::info!(topic = key.0, partition = key.1, committed = ?offset, "partition assigned");
                    self.workers.lock().expect("not poisoned").insert(key, lane);
                }
                Err(e) => {
                    let _ = self
                        .events
                        .send(Event::Fatal(format!("starting a worker: {e}")));
                    self.shutdown.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    fn spawn(
        &self,
        key: &PartitionKey,
        resume_from: Option<i64>,
    ) -> Result<Lane, crate::runtime::RuntimeError> {
        let p = &self.parts;
        let mut worker = PartitionWorker::new(
            p.chain.start_worker()?,
            p.sink.clone(),
            p.decode.clone(),
            p.batching.clone(),
            &key.0,
            key.1,
        );
        if let Some(bodies) = &p.bodies {
            worker = worker.with_bodies(bodies.clone());
        }
        let (sender, receiver) = flume::bounded(p.max_batch * 4);
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let task = self.runtime.spawn(partition_task(
            worker,
            self.events.clone(),
            generation,
            resume_from,
            receiver,
            p.max_batch,
        ));
        Ok(Lane {
            sender,
            overflow: std::collections::VecDeque::new(),
            paused: false,
            generation,
            task,
        })
    }

    /// Hand a message to its partition's worker. When the worker's channel
    /// is full the message waits in the lane and the partition is paused, so
    /// a slow partition never holds up the others (and the consumer stops
    /// fetching it: backpressure).
    fn dispatch(&self, consumer: &BaseConsumer<HostContext>, message: SourceMessage) {
        let key = (
            message.position.topic.to_string(),
            message.position.partition,
        );
        let mut workers = self.workers.lock().expect("not poisoned");
        let Some(lane) = workers.get_mut(&key) else {
            tracing::warn!(
                topic = key.0,
                partition = key.1,
                "message for a partition without a worker"
            );
            return;
        };
        if lane.overflow.is_empty() {
            match lane.sender.try_send(Command::Message(message)) {
                Ok(()) => {
                    self.dispatched.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(flume::TrySendError::Full(Command::Message(message))) => {
                    lane.overflow.push_back(message)
                }
                // The worker is gone (failed or stopping): the message stays
                // uncommitted and is delivered again later.
                Err(_) => return,
            }
        } else {
            lane.overflow.push_back(message);
        }
        if !lane.paused {
            lane.paused = true;
            set_paused(consumer, &key, true);
        }
    }

    /// Move waiting messages into workers' channels as they make room, and
    /// resume partitions whose backlog is gone. Returns whether any message
    /// is still waiting.
    fn drain_overflow(&self, consumer: &BaseConsumer<HostContext>) -> bool {
        let mut waiting = false;
        for (key, lane) in self.workers.lock().expect("not poisoned").iter_mut() {
            while let Some(message) = lane.overflow.pop_front() {
                match lane.sender.try_send(Command::Message(message)) {
                    Ok(()) => {
                        self.dispatched.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(flume::TrySendError::Full(Command::Message(message))) => {
                        lane.overflow.push_front(message);
                        break;
                    }
                    Err(_) => {
                        lane.overflow.clear();
                        break;
                    }
                }
            }
            if lane.overflow.is_empty() && lane.paused {
                lane.paused = false;
                set_paused(consumer, key, false);
            }
            waiting |= !lane.overflow.is_empty();
        }
        waiting
    }

    /// Stop the workers of `keys`; returns each partition's last durable
    /// offset. Every worker that can take the request at once gets it
    /// first; then those whose channel is full, as they make room. Workers
    /// that have not finished by [`STOP_TIMEOUT`] (one deadline for all)
    /// are aborted.
    fn stop(&self, keys: &[PartitionKey]) -> Vec<(PartitionKey, i64)> {
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut waiting = Vec::new();
        let mut behind = Vec::new();
        for key in keys {
            // Messages still waiting in the lane are dropped: they are not
            // committed, so they are delivered again to the next owner.
            let Some(lane) = self.workers.lock().expect("not poisoned").remove(key) else {
                continue;
            };
            let (reply, report) = std::sync::mpsc::sync_channel(1);
            match lane.sender.try_send(Command::Stop(reply)) {
                Ok(()) => waiting.push((key.clone(), report, lane.task)),
                Err(flume::TrySendError::Full(stop)) => behind.push((key, lane, stop, report)),
                Err(flume::TrySendError::Disconnected(_)) => already_stopped(key),
            }
        }
        for (key, lane, stop, report) in behind {
            let left = deadline.saturating_duration_since(Instant::now());
            match lane.sender.send_timeout(stop, left) {
                Ok(()) => waiting.push((key.clone(), report, lane.task)),
                Err(flume::SendTimeoutError::Timeout(_)) => {
                    give_up(key, &lane.task, "did not take the stop request");
                }
                Err(flume::SendTimeoutError::Disconnected(_)) => already_stopped(key),
            }
        }
        let mut durable = Vec::new();
        for (key, report, task) in waiting {
            match report.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(report) => {
                    self.finished
                        .lock()
                        .expect("not poisoned")
                        .absorb(&report.stats);
                    if let Some(last) = report.last_durable {
                        durable.push((key, last));
                    }
                }
                Err(_) => give_up(&key, &task, "did not finish in time"),
            }
        }
        durable
    }

    /// Read the workers' reports (see [`current_reports`]).
    fn drain_events(
        &self,
        events: &flume::Receiver<Event>,
    ) -> (Vec<(PartitionKey, i64)>, Option<String>) {
        let workers = self.workers.lock().expect("not poisoned");
        current_reports(events.try_iter(), |key, generation| {
            workers
                .get(key)
                .is_some_and(|lane| lane.generation == generation)
        })
    }

    fn all_keys(&self) -> Vec<PartitionKey> {
        self.workers
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// Commit `last + 1` for each durable partition offset that moves the
    /// committed offset forward.
    fn commit(
        &self,
        consumer: &BaseConsumer<HostContext>,
        durable: &[(PartitionKey, i64)],
        mode: CommitMode,
    ) {
        let mut committed = self.committed.lock().expect("not poisoned");
        let mut list = TopicPartitionList::new();
        for ((topic, partition), last) in durable {
            let next = last + 1;
            let key = (topic.clone(), *partition);
            if committed.get(&key).is_some_and(|c| *c >= next) {
                continue;
            }
            if list
                .add_partition_offset(topic, *partition, Offset::Offset(next))
                .is_ok()
            {
                committed.insert(key, next);
            }
        }
        if list.count() == 0 {
            return;
        }
        if let Err(e) = consumer.commit(&list, mode) {
            // Not fatal: the records are durable; at worst they are delivered
            // again and adopted.
            tracing::warn!("committing offsets failed: {e}");
        }
    }
}

/// The consumer's context: routes rebalances to the registry.
pub struct HostContext {
    registry: Arc<Registry>,
}

impl ClientContext for HostContext {}

impl ConsumerContext for HostContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let keys: Vec<PartitionKey> = partitions
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect();
            tracing::info!(
                partitions = keys.len(),
                "partitions revoked: finishing and committing them"
            );
            let durable = self.registry.stop(&keys);
            self.registry.commit(consumer, &durable, CommitMode::Sync);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            self.registry.assign(consumer, partitions);
        }
    }
}

/// The durable offsets among `events` that the partitions' current workers
/// reported (`is_current(partition, generation)`), and the first fatal
/// error, if any. A stopped worker no longer speaks for its partition:
/// another owner may have committed past what it reports.
fn current_reports(
    events: impl Iterator<Item = Event>,
    is_current: impl Fn(&PartitionKey, u64) -> bool,
) -> (Vec<(PartitionKey, i64)>, Option<String>) {
    let mut durable = Vec::new();
    let mut fatal = None;
    for event in events {
        match event {
            Event::Durable {
                key,
                generation,
                last,
            } => {
                if is_current(&key, generation) {
                    durable.push((key, last));
                }
            }
            Event::Fatal(reason) => {
                fatal.get_or_insert(reason);
            }
        }
    }
    (durable, fatal)
}

/// Give up on a worker that does not stop: abort its task, which ends it at
/// its next wait (an S3 retry or request, the chain's result; a chain run
/// finishes on its thread, unused, and an upload already sent may still
/// land), and leave its uncommitted records to the next owner.
fn give_up(key: &PartitionKey, task: &tokio::task::JoinHandle<()>, what: &str) {
    tracing::error!(
        topic = key.0,
        partition = key.1,
        "worker {what} within {STOP_TIMEOUT:?}: aborted; its uncommitted records will be delivered again"
    );
    task.abort();
}

/// A worker whose channel is closed has ended already (after a fatal error,
/// reported separately): there is nothing to stop or commit for it.
fn already_stopped(key: &PartitionKey) {
    tracing::warn!(topic = key.0, partition = key.1, "worker had already ended");
}

/// One partition's worker loop.
/// Its reports go to `events`, signed with `generation`.
async fn partition_task(
    mut worker: PartitionWorker,
    events: flume::Sender<Event>,
    generation: u64,
    resume_from: Option<i64>,
    commands: flume::Receiver<Command>,
    max_batch: usize,
) {
    let (topic, partition) = worker.partition();
    let fatal = |e: &dyn std::fmt::Display| Event::Fatal(format!("{topic}/{partition}: {e}"));
    let durable = |last: i64| Event::Durable {
        key: (topic.clone(), partition),
        generation,
        last,
    };
    if let Some(offset) = resume_from
        && let Err(e) = worker.resume(offset).await
    {
        let _ = events.send(fatal(&e));
        return;
    }
    loop {
        let wait = worker
            .due_in()
            .unwrap_or(IDLE_TICK)
            .max(Duration::from_millis(10));
        let received = tokio::time::timeout(wait, commands.recv_async()).await;
        let (batch, stop) = match received {
            Err(_elapsed) => {
                match worker.flush_if_due().await {
                    Ok(Some(flushed)) => drop(events.send(durable(flushed.last_offset))),
                    Ok(None) => {}
                    Err(e) => return drop(events.send(fatal(&e))),
                }
                continue;
            }
            Ok(Err(_disconnected)) => return,
            Ok(Ok(Command::Stop(reply))) => (Vec::new(), Some(reply)),
            Ok(Ok(Command::Message(first))) => {
                let mut batch = vec![first];
                let mut stop = None;
                while batch.len() < max_batch {
                    match commands.try_recv() {
                        Ok(Command::Message(m)) => batch.push(m),
                        Ok(Command::Stop(reply)) => {
                            stop = Some(reply);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                (batch, stop)
            }
        };
        if !batch.is_empty() {
            let size = batch.len();
            let started = Instant::now();
            let result = worker.process(batch).await;
            tracing::debug!(topic, partition, size, took = ?started.elapsed(), "batch processed");
            match result {
                Ok(Some(through)) => drop(events.send(durable(through))),
                Ok(None) => {}
                Err(e) => return drop(events.send(fatal(&e))),
            }
        }
        if let Some(reply) = stop {
            if let Err(e) = worker.flush().await {
                return drop(events.send(fatal(&e)));
            }
            let _ = reply.send(StopReport {
                last_durable: worker.last_durable(),
                stats: worker.stats().clone(),
            });
            return;
        }
    }
}

/// Consume `settings.topic` with the pipeline's chain until `shutdown` is
/// set, then finish every partition, commit, and return the totals.
pub async fn run(
    settings: &KafkaSettings,
    parts: WorkerParts,
    shutdown: Arc<AtomicBool>,
) -> Result<StreamSummary, StreamError> {
    let started = Instant::now();
    let (events, events_rx) = flume::unbounded();
    let registry = Arc::new(Registry {
        parts,
        runtime: Handle::current(),
        workers: Mutex::new(HashMap::new()),
        events,
        committed: Mutex::new(HashMap::new()),
        finished: Mutex::new(Stats::default()),
        dispatched: AtomicU64::new(0),
        next_generation: AtomicU64::new(0),
        shutdown: shutdown.clone(),
    });
    let consumer: BaseConsumer<HostContext> =
        consumer_config(settings).create_with_context(HostContext {
            registry: registry.clone(),
        })?;
    consumer.subscribe(&[settings.topic.as_str()])?;
    tracing::info!(topic = settings.topic, group = settings.group, "consuming");
    let poll_registry = registry.clone();
    let result =
        tokio::task::spawn_blocking(move || poll_loop(&consumer, &poll_registry, &events_rx))
            .await
            .map_err(|e| StreamError::Worker(format!("the poll thread panicked: {e}")))?;
    let stats = registry.finished.lock().expect("not poisoned").clone();
    result.map(|()| StreamSummary {
        stats,
        elapsed: started.elapsed(),
    })
}

/// The consumer loop: poll, hand messages to workers, commit what is
/// durable; on shutdown, stop every worker and commit synchronously.
fn poll_loop(
    consumer: &BaseConsumer<HostContext>,
    registry: &Registry,
    events: &flume::Receiver<Event>,
) -> Result<(), StreamError> {
    let mut fatal = None;
    let mut last_progress = Instant::now();
    let mut backlog = false;
    while !registry.shutdown.load(Ordering::SeqCst) {
        // Poll briefly while messages wait for room, so they move on soon.
        let timeout = if backlog {
            Duration::from_millis(5)
        } else {
            Duration::from_millis(100)
        };
        match consumer.poll(timeout) {
            Some(Ok(message)) => registry.dispatch(consumer, to_source_message(&message)),
            Some(Err(e)) => tracing::warn!("consumer: {e}"),
            None => {}
        }
        let (durable, failed) = registry.drain_events(events);
        if let Some(reason) = failed {
            tracing::error!(
                "{reason}; shutting down (uncommitted records will be delivered again)"
            );
            fatal.get_or_insert(reason);
            registry.shutdown.store(true, Ordering::SeqCst);
        }
        registry.commit(consumer, &durable, CommitMode::Async);
        backlog = registry.drain_overflow(consumer);
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            tracing::info!(
                consumed = registry.dispatched.load(Ordering::Relaxed),
                partitions = registry.all_keys().len(),
                "progress"
            );
        }
    }
    tracing::info!("stopping: finishing and committing every partition");
    // Reports still queued come from the current workers: read them before
    // the workers are stopped (after which they would no longer count).
    let (mut durable, _) = registry.drain_events(events);
    durable.extend(registry.stop(&registry.all_keys()));
    registry.commit(consumer, &durable, CommitMode::Sync);
    consumer.unsubscribe();
    match fatal {
        Some(reason) => Err(StreamError::Worker(reason)),
        None => Ok(()),
    }
}

/// Pause or resume fetching one partition.
fn set_paused(
    consumer: &BaseConsumer<HostContext>,
    (topic, partition): &PartitionKey,
    paused: bool,
) {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, *partition);
    let result = if paused {
        consumer.pause(&list)
    } else {
        consumer.resume(&list)
    };
    if let Err(e) = result {
        tracing::warn!(
            topic,
            partition,
            paused,
            "pausing/resuming the partition failed: {e}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_current_worker_of_a_partition_is_committed_for() {
        let key = |p: i32| ("t".to_owned(), p);
        let durable = |p, generation, last| Event::Durable {
            key: key(p),
            generation,
            last,
        };
        let events = vec![
            durable(0, 1, 10),
            // Partition 0's earlier worker, given up on after a revoke.
            durable(0, 0, 250),
            Event::Fatal("first".into()),
            durable(1, 2, 5),
            // Partition 2 is not this host's any more.
            durable(2, 3, 7),
            Event::Fatal("second".into()),
        ];
        let current = |k: &PartitionKey, generation| match k.1 {
            0 => generation == 1,
            1 => generation == 2,
            _ => false,
        };
        let (committable, fatal) = current_reports(events.into_iter(), current);
        assert_eq!(committable, [(key(0), 10), (key(1), 5)]);
        assert_eq!(fatal.as_deref(), Some("first"));
    }
}
