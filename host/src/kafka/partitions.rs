//! The partitions this host owns: one lane and one task per assigned
//! partition, the partition's own librdkafka queue, their commit
//! bookkeeping, and what happens at assignment and revocation.
//!
//! Invariants:
//! - each assigned partition's messages come from a queue of its own, split
//!   from the consumer's before the partition is assigned (so none of its
//!   messages are fetched into the shared queue first), and are taken from
//!   it only while the partition's task has room: a slow task leaves them in
//!   librdkafka, which stops fetching the partition once its prefetch
//!   (`queued.max.messages.kbytes`) is full. Nothing is paused, so nothing
//!   prefetched is thrown away and fetched again;
//! - a partition's task starts only once its position is known (its
//!   committed offset, or its first offset when it has none): reads that
//!   fail are retried, and if they keep failing the host stops rather than
//!   process from an unknown position (a range written before a crash could
//!   otherwise be cut and written again);
//! - messages waiting in a lane or in the partition's queue when it is
//!   dropped are not committed: they are delivered again to the next owner.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};
use tokio::runtime::Handle;

use super::bounds::{Admission, Bounds};
use super::clients::to_source_message;
use super::offsets::Offsets;
use super::task::Delivery;
use super::task::{Command, Event, StopReport, partition_task, reporting_panics};
use super::{HostContext, HostError, PartitionKey, WorkerParts};
use crate::config::EventMode;
use crate::partition::{PartitionWorker, Stats, WorkerError};
use crate::source::SourceMessage;
use crate::state::{CheckpointPolicy, PartitionState};

/// How long a worker may take to finish and flush when its partition is
/// revoked or the host shuts down.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts at reading a partition's position at assignment, and the first
/// pause between them (doubled after each failure).
const POSITION_ATTEMPTS: u32 = 6;
const POSITION_RETRY: Duration = Duration::from_millis(500);
/// The broker's deadline for one position read.
const POSITION_TIMEOUT: Duration = Duration::from_secs(10);

/// The path from the poll thread to one partition's task: the partition's
/// own queue in librdkafka, the task's bounded channel, and the messages
/// the consumer's shared queue delivered while the channel was full.
struct Lane {
    queue: PartitionQueue<HostContext>,
    sender: flume::Sender<Command>,
    /// Messages of the partition that came through the shared queue (only
    /// ones fetched before its queue was split: none in practice). They go
    /// first, so offsets stay in order.
    overflow: VecDeque<Command>,
    /// Whether the task was told that its replay range was delivered whole
    /// ([`Command::RangeDelivered`]): once is enough, however many messages
    /// past the end are fetched.
    range_delivered: bool,
    /// Which task this is (see [`Event::Durable`]).
    generation: u64,
    /// The task, aborted if it does not stop in time.
    task: tokio::task::JoinHandle<()>,
}

/// Where a newly assigned partition starts.
struct StartPosition {
    key: PartitionKey,
    /// Its committed offset, if it has one.
    committed: Option<i64>,
    /// Where its task resumes (adopting what is written from there on).
    resume_from: i64,
}

/// The partitions this host owns and their tasks.
pub(crate) struct Partitions {
    parts: WorkerParts,
    runtime: Handle,
    lanes: Mutex<HashMap<PartitionKey, Lane>>,
    /// Queues split for partitions about to be assigned (between the two
    /// halves of a rebalance), taken by their lanes.
    split: Mutex<HashMap<PartitionKey, PartitionQueue<HostContext>>>,
    /// Wakes the poll thread when a partition's queue receives messages.
    wake: flume::Sender<()>,
    events: flume::Sender<Event>,
    offsets: Mutex<Offsets>,
    /// Totals of stopped workers.
    finished: Mutex<Stats>,
    dispatched: AtomicU64,
    /// The generation of the next task started.
    next_generation: AtomicU64,
    shutdown: Arc<AtomicBool>,
    /// Why the host stops, when that is decided inside a rebalance
    /// callback (which cannot return an error).
    failure: Mutex<Option<HostError>>,
}

impl Partitions {
    pub(crate) fn new(
        parts: WorkerParts,
        events: flume::Sender<Event>,
        wake: flume::Sender<()>,
        shutdown: Arc<AtomicBool>,
    ) -> Self {
        Partitions {
            parts,
            runtime: Handle::current(),
            lanes: Mutex::new(HashMap::new()),
            split: Mutex::new(HashMap::new()),
            wake,
            events,
            offsets: Mutex::new(Offsets::default()),
            finished: Mutex::new(Stats::default()),
            dispatched: AtomicU64::new(0),
            next_generation: AtomicU64::new(0),
            shutdown,
            failure: Mutex::new(None),
        }
    }

    /// Give each of `partitions`, about to be assigned, a queue of its own
    /// (before librdkafka fetches any of their messages into the shared
    /// one). A partition whose queue cannot be split stops the host: its
    /// messages would have no bound but the shared queue's.
    pub(crate) fn split_queues(
        &self,
        consumer: &Arc<BaseConsumer<HostContext>>,
        partitions: &TopicPartitionList,
    ) {
        let mut split = self.split.lock().expect("not poisoned");
        for element in partitions.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let Some(mut queue) = consumer.split_partition_queue(topic, partition) else {
                self.fail(HostError::PartitionQueue {
                    topic: topic.to_owned(),
                    partition,
                });
                return;
            };
            let wake = self.wake.clone();
            queue.set_nonempty_callback(move || {
                // Full means a wake-up is pending already.
                let _ = wake.try_send(());
            });
            split.insert((topic.to_owned(), partition), queue);
        }
    }

    /// Start a task for each of `partitions`, from its known position.
    pub(crate) fn assign<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        partitions: &TopicPartitionList,
    ) {
        // Queues not taken by a lane below are dropped with this.
        let mut split = std::mem::take(&mut *self.split.lock().expect("not poisoned"));
        // An assignment that arrives while the host is stopping (a
        // rebalance racing a stop signal, or another replica joining as a
        // replay ends) is not taken up: the host is leaving the group, which
        // gives the partitions to the others, and asking the broker for
        // positions now fails as the consumer closes.
        if self.stopping() {
            tracing::info!(
                partitions = partitions.count(),
                "partitions assigned while stopping: left to the other members"
            );
            return;
        }
        let positions = match self.positions(consumer, partitions) {
            Ok(positions) => positions,
            Err(e) => {
                tracing::error!("{e}; stopping (nothing of these partitions was processed)");
                self.fail(e);
                return;
            }
        };
        for StartPosition {
            key,
            committed,
            resume_from,
        } in positions
        {
            self.offsets
                .lock()
                .expect("not poisoned")
                .assigned(key.clone(), committed);
            let Some(queue) = split.remove(&key) else {
                self.fail(HostError::PartitionQueue {
                    topic: key.0,
                    partition: key.1,
                });
                return;
            };
            match self.spawn(&key, resume_from, queue) {
                Ok(lane) => {
                    tracing::info!(
                        topic = key.0,
                        partition = key.1,
                        ?committed,
                        "partition assigned"
                    );
                    self.lanes.lock().expect("not poisoned").insert(key, lane);
                }
                Err(e) => {
                    self.fail(HostError::StartWorker(Box::new(e)));
                    return;
                }
            }
        }
    }

    /// Each partition's committed offset and the offset its task resumes
    /// from (the committed one, or the partition's first when nothing was
    /// committed yet: results written past it by a host that died before
    /// its first commit must still be adopted; offsets are the identity of
    /// results, whichever group wrote them).
    fn positions<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        partitions: &TopicPartitionList,
    ) -> Result<Vec<StartPosition>, HostError> {
        let committed = with_retries("reading committed offsets", POSITION_RETRY, || {
            consumer.committed_offsets(partitions.clone(), POSITION_TIMEOUT)
        })
        .map_err(HostError::Position)?;
        let mut positions = Vec::new();
        for element in partitions.elements() {
            let key = (element.topic().to_owned(), element.partition());
            let offset = committed
                .find_partition(&key.0, key.1)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            let resume_from = match offset {
                Some(o) => o,
                None => {
                    with_retries("reading watermarks", POSITION_RETRY, || {
                        consumer.fetch_watermarks(&key.0, key.1, POSITION_TIMEOUT)
                    })
                    .map_err(HostError::Position)?
                    .0
                }
            };
            positions.push(StartPosition {
                key,
                committed: offset,
                resume_from,
            });
        }
        Ok(positions)
    }

    fn spawn(
        &self,
        key: &PartitionKey,
        resume_from: i64,
        queue: PartitionQueue<HostContext>,
    ) -> Result<Lane, WorkerError> {
        let p = &self.parts;
        let chain = p.chains.borrow().clone();
        let mut worker = PartitionWorker::new(
            chain.start_worker()?,
            p.sink.clone(),
            p.decode.clone(),
            p.batching.clone(),
            &key.0,
            key.1,
        )
        .with_live_chain(p.chains.clone());
        worker = worker.with_bodies(p.bodies.clone());
        if let Some(cache) = &p.cache {
            worker = worker.with_cache(cache.clone());
        }
        if let EventMode::On(settings) = &p.event_mode {
            worker = worker.with_state(PartitionState::for_assignment(
                &settings.state_dir,
                settings.cache_bytes,
                &key.0,
                key.1,
                CheckpointPolicy {
                    every: settings.checkpoint_every,
                },
            )?);
        }
        let (sender, receiver) = flume::bounded(p.max_batch * 4);
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let task = self.runtime.spawn(reporting_panics(
            key.clone(),
            self.events.clone(),
            partition_task(
                worker,
                self.events.clone(),
                generation,
                resume_from,
                receiver,
                p.max_batch,
            ),
        ));
        Ok(Lane {
            queue,
            sender,
            overflow: VecDeque::new(),
            range_delivered: false,
            generation,
            task,
        })
    }

    /// Stop the host with `error` (the first one is kept).
    pub(crate) fn fail(&self, error: HostError) {
        self.failure
            .lock()
            .expect("not poisoned")
            .get_or_insert(error);
        self.shutdown.store(true, Ordering::SeqCst);
    }

    /// Whether the host is stopping.
    pub(crate) fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Why the host stopped, if it failed.
    pub(crate) fn take_failure(&self) -> Option<HostError> {
        self.failure.lock().expect("not poisoned").take()
    }

    /// Messages handed to tasks so far.
    pub(crate) fn dispatched(&self) -> u64 {
        self.dispatched.load(Ordering::Relaxed)
    }

    /// Totals of the stopped workers.
    pub(crate) fn finished(&self) -> Stats {
        self.finished.lock().expect("not poisoned").clone()
    }

    /// Hand a message that came through the consumer's shared queue to its
    /// partition's task, or keep it in the lane until the task has room.
    pub(crate) fn dispatch(&self, message: SourceMessage, bounds: Option<&Bounds>) {
        let key = (
            message.position.topic.to_string(),
            message.position.partition,
        );
        let mut lanes = self.lanes.lock().expect("not poisoned");
        let Some(lane) = lanes.get_mut(&key) else {
            tracing::warn!(
                topic = key.0,
                partition = key.1,
                "message for a partition without a worker"
            );
            return;
        };
        if let Some(command) = lane.admit(message, bounds) {
            lane.overflow.push_back(command);
            self.feed(lane, bounds);
        }
    }

    /// Move messages from the partitions' queues into their tasks'
    /// channels while the tasks have room. Returns whether a task's channel
    /// is full (its messages wait in librdkafka until it makes room).
    pub(crate) fn pump(&self, bounds: Option<&Bounds>) -> bool {
        let mut full = false;
        for lane in self.lanes.lock().expect("not poisoned").values_mut() {
            full |= self.feed(lane, bounds);
        }
        full
    }

    /// Within a replay, tell each task whose range the consumer has read
    /// past (`positions`: per partition, the next offset librdkafka hands
    /// over) that its range was delivered whole. The first message past
    /// the end says so too, but when a range ends in a transaction marker
    /// on a quiet topic, none may ever come: librdkafka moves the position
    /// past the marker without handing it over. A position past the end
    /// means every message before it came out of librdkafka, into this
    /// lane first, so the command queues behind them. It is never an
    /// earlier owner's: librdkafka resets a partition's position when its
    /// fetch stops, and a revoke waits for that before the group moves on.
    pub(crate) fn read_past_ends(&self, positions: &TopicPartitionList, bounds: &Bounds) {
        for ((topic, partition), lane) in self.lanes.lock().expect("not poisoned").iter_mut() {
            let Some(Offset::Offset(position)) = positions
                .find_partition(topic, *partition)
                .map(|element| element.offset())
            else {
                continue;
            };
            if let Some(command) = bounds
                .read_past(*partition, position)
                .and_then(|last| lane.range_read_whole(last))
            {
                lane.overflow.push_back(command);
                self.feed(lane, Some(bounds));
            }
        }
    }

    /// Fill `lane`'s channel, from its overflow first, then from its queue.
    /// Returns whether the channel is full.
    fn feed(&self, lane: &mut Lane, bounds: Option<&Bounds>) -> bool {
        loop {
            if lane.sender.is_full() {
                return true;
            }
            // The poll thread is the channel's only sender, so there is room
            // for one message now.
            let command = match lane.overflow.pop_front() {
                Some(command) => command,
                None => match lane.queue.poll(Duration::ZERO) {
                    Some(Ok(message)) => match lane.admit(to_source_message(&message), bounds) {
                        Some(command) => command,
                        None => continue,
                    },
                    Some(Err(e)) => {
                        tracing::warn!("consumer: {e}");
                        continue;
                    }
                    None => return false,
                },
            };
            match lane.sender.try_send(command) {
                Ok(()) => {
                    self.dispatched.fetch_add(1, Ordering::Relaxed);
                }
                // The task is gone (failed or stopping): its messages stay
                // uncommitted and are delivered again later.
                Err(_) => {
                    lane.overflow.clear();
                    return false;
                }
            }
        }
    }

    /// Stop the tasks of `keys`, commit what they made durable
    /// (synchronously) and forget the partitions. Every task that can take
    /// the request at once gets it first; then those whose channel is full,
    /// as they make room. Tasks that have not finished by [`STOP_TIMEOUT`]
    /// (one deadline for all) are aborted.
    pub(crate) fn give_up<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        keys: &[PartitionKey],
    ) {
        for (key, last) in self.stop(keys) {
            self.offsets
                .lock()
                .expect("not poisoned")
                .durable(&key, last);
        }
        let commits = self
            .offsets
            .lock()
            .expect("not poisoned")
            .final_commits(keys);
        self.commit(consumer, commits, CommitMode::Sync);
        let mut offsets = self.offsets.lock().expect("not poisoned");
        for key in keys {
            offsets.revoked(key);
        }
    }

    fn stop(&self, keys: &[PartitionKey]) -> Vec<(PartitionKey, i64)> {
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut waiting = Vec::new();
        let mut behind = Vec::new();
        for key in keys {
            let Some(lane) = self.lanes.lock().expect("not poisoned").remove(key) else {
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
                    abort(key, &lane.task, "did not take the stop request");
                }
                Err(flume::SendTimeoutError::Disconnected(_)) => already_stopped(key),
            }
        }
        let mut durable = Vec::new();
        for (key, report, task) in waiting {
            let report: Result<StopReport, _> =
                report.recv_timeout(deadline.saturating_duration_since(Instant::now()));
            match report {
                Ok(report) => {
                    self.finished
                        .lock()
                        .expect("not poisoned")
                        .absorb(&report.stats);
                    if let Some(last) = report.last_durable {
                        durable.push((key, last));
                    }
                }
                Err(_) => abort(&key, &task, "did not finish in time"),
            }
        }
        durable
    }

    /// Read the tasks' reports: durable offsets of current tasks go to the
    /// commit bookkeeping (see [`current_reports`]); a failure stops the
    /// host.
    pub(crate) fn drain_events(&self, events: &flume::Receiver<Event>) {
        let (durable, failed) = {
            let lanes = self.lanes.lock().expect("not poisoned");
            current_reports(events.try_iter(), |key, generation| {
                lanes
                    .get(key)
                    .is_some_and(|lane| lane.generation == generation)
            })
        };
        let mut offsets = self.offsets.lock().expect("not poisoned");
        for (key, last) in durable {
            offsets.durable(&key, last);
        }
        drop(offsets);
        if let Some(error) = failed {
            tracing::error!("{error}; shutting down (uncommitted records will be delivered again)");
            self.fail(error);
        }
    }

    /// Every partition this host owns.
    pub(crate) fn all_keys(&self) -> Vec<PartitionKey> {
        self.lanes
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// The offset after everything durable of each partition this host
    /// owns.
    pub(crate) fn durable_ends(&self) -> Vec<(PartitionKey, Option<i64>)> {
        self.offsets.lock().expect("not poisoned").durable_ends()
    }

    /// Commit, without waiting, what is durable and not committed yet.
    pub(crate) fn commit_due<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) {
        let due = self
            .offsets
            .lock()
            .expect("not poisoned")
            .due(Instant::now());
        self.commit(consumer, due, CommitMode::Async);
    }

    /// Send `commits`. A synchronous commit is answered here; an
    /// asynchronous one through [`Partitions::committed`] (the consumer's
    /// commit callback), unless it fails at once.
    fn commit<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        commits: Vec<(PartitionKey, i64)>,
        mode: CommitMode,
    ) {
        if commits.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), next) in &commits {
            if let Err(e) = list.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
                tracing::error!(topic, partition, next, "cannot commit offset: {e}");
            }
        }
        let result = consumer.commit(&list, mode);
        if let Err(e) = &result {
            // Not fatal: the records are durable; the commit is retried, and
            // at worst they are delivered again and adopted.
            tracing::warn!("committing offsets failed (retried): {e}");
        }
        if matches!(mode, CommitMode::Sync) || result.is_err() {
            let now = Instant::now();
            let mut offsets = self.offsets.lock().expect("not poisoned");
            for (key, next) in &commits {
                offsets.answered(key, *next, result.is_ok(), now);
            }
        }
    }

    /// The broker's answer to a commit (the consumer's commit callback).
    pub(crate) fn committed(&self, result: KafkaResult<()>, list: &TopicPartitionList) {
        if let Err(e) = &result {
            tracing::warn!("committing offsets failed (retried): {e}");
        }
        let now = Instant::now();
        let mut offsets = self.offsets.lock().expect("not poisoned");
        for element in list.elements() {
            let Offset::Offset(next) = element.offset() else {
                continue;
            };
            let key = (element.topic().to_owned(), element.partition());
            let ok = result.is_ok() && element.error().is_ok();
            offsets.answered(&key, next, ok, now);
        }
    }
}

/// The durable offsets among `events` that the partitions' current tasks
/// reported (`is_current(partition, generation)`), and the first failure,
/// if any. A stopped task no longer speaks for its partition: another owner
/// may have committed past what it reports.
fn current_reports(
    events: impl Iterator<Item = Event>,
    is_current: impl Fn(&PartitionKey, u64) -> bool,
) -> (Vec<(PartitionKey, i64)>, Option<HostError>) {
    let mut durable = Vec::new();
    let mut failed = None;
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
            Event::Failed {
                key: (topic, partition),
                error,
            } => {
                failed.get_or_insert(HostError::Partition {
                    topic,
                    partition,
                    source: Box::new(error),
                });
            }
        }
    }
    (durable, failed)
}

/// Call `read` until it succeeds, at most [`POSITION_ATTEMPTS`] times,
/// pausing between failures (`first_pause`, doubled each time).
fn with_retries<T, E: std::fmt::Display>(
    what: &str,
    first_pause: Duration,
    mut read: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut pause = first_pause;
    let mut attempt = 1;
    loop {
        match read() {
            Ok(value) => return Ok(value),
            Err(e) if attempt >= POSITION_ATTEMPTS => return Err(e),
            Err(e) => {
                tracing::warn!(attempt, "{what} failed ({e}); retrying in {pause:?}");
                std::thread::sleep(pause);
                pause *= 2;
                attempt += 1;
            }
        }
    }
}

impl Lane {
    /// What `message` means for the partition's task: a delivery, unless a
    /// replay leaves it out (outside its partition's range). The last
    /// message of a replay's range has its batch written at once; the first
    /// message past the range's end says the range was delivered whole.
    fn admit(&mut self, message: SourceMessage, bounds: Option<&Bounds>) -> Option<Command> {
        let admission = bounds.map_or(Admission::Inside, |b| {
            let position = &message.position;
            b.admit(position.partition, position.offset, message.payload.len())
        });
        let flush_after = match admission {
            Admission::Outside => return None,
            Admission::PastEnd { last } => return self.range_read_whole(last),
            Admission::Inside => false,
            Admission::Last => true,
        };
        Some(Command::Message(Delivery {
            message,
            flush_after,
        }))
    }

    /// The command that says the replay range was delivered whole, through
    /// `last`: the first time only.
    fn range_read_whole(&mut self, last: i64) -> Option<Command> {
        (!std::mem::replace(&mut self.range_delivered, true))
            .then_some(Command::RangeDelivered { last })
    }
}

/// Give up on a task that does not stop: abort it, which ends it at its
/// next wait (an S3 retry or request, the chain's result; a chain run
/// finishes on its thread, unused, and an upload already sent may still
/// land), and leave its uncommitted records to the next owner.
fn abort(key: &PartitionKey, task: &tokio::task::JoinHandle<()>, what: &str) {
    tracing::error!(
        topic = key.0,
        partition = key.1,
        "worker {what} within {STOP_TIMEOUT:?}: aborted; its uncommitted records will be delivered again"
    );
    task.abort();
}

/// A task whose channel is closed has ended already (after a failure,
/// reported separately): there is nothing to stop or commit for it.
fn already_stopped(key: &PartitionKey) {
    tracing::warn!(topic = key.0, partition = key.1, "worker had already ended");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::WorkerError;

    #[test]
    fn only_the_current_task_of_a_partition_is_committed_for() {
        let key = |p: i32| ("t".to_owned(), p);
        let durable = |p, generation, last| Event::Durable {
            key: key(p),
            generation,
            last,
        };
        let failed = |p, why: &str| Event::Failed {
            key: key(p),
            error: WorkerError::Sink(crate::sink::SinkError::Compress {
                key: why.to_owned(),
                source: std::io::Error::other("out of memory"),
            }),
        };
        let events = vec![
            durable(0, 1, 10),
            // Partition 0's earlier task, given up on after a revoke.
            durable(0, 0, 250),
            failed(3, "first"),
            durable(1, 2, 5),
            // Partition 2 is not this host's any more.
            durable(2, 3, 7),
            failed(4, "second"),
        ];
        let current = |k: &PartitionKey, generation| match k.1 {
            0 => generation == 1,
            1 => generation == 2,
            _ => false,
        };
        let (committable, failed) = current_reports(events.into_iter(), current);
        assert_eq!(committable, [(key(0), 10), (key(1), 5)]);
        assert!(
            matches!(failed, Some(HostError::Partition { partition: 3, .. })),
            "{failed:?}"
        );
    }

    #[test]
    fn a_position_read_is_retried_and_then_given_up() {
        let mut calls = 0;
        let read = with_retries("reading", Duration::from_millis(1), || {
            calls += 1;
            if calls < 3 { Err("not yet") } else { Ok(calls) }
        });
        assert_eq!(read, Ok(3));
        let mut calls = 0;
        let read: Result<(), _> = with_retries("reading", Duration::from_millis(1), || {
            calls += 1;
            Err("broker unreachable")
        });
        assert_eq!(read, Err("broker unreachable"));
        assert_eq!(calls, POSITION_ATTEMPTS);
    }
}
