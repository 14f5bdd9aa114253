//! One partition's task: takes the messages its lane hands it, in offset
//! order, runs them through its [`PartitionWorker`], and reports what is
//! durable (or why it stopped) to the poll thread.
//!
//! Invariants: every report is signed with the task's generation, so the
//! poll thread can ignore a task that no longer speaks for its partition;
//! on a stop request the open batch is written before the final report; a
//! task that panics reports it as its failure (it never goes quiet).

use std::time::{Duration, Instant};

use super::PartitionKey;
use crate::partition::{PartitionWorker, Stats, WorkerError};
use crate::source::SourceMessage;

/// How often an idle worker wakes up to check its batch's age.
const IDLE_TICK: Duration = Duration::from_millis(500);

/// What the poll thread sends a partition's task.
pub(crate) enum Command {
    /// The next message of the partition.
    Message(Delivery),
    /// Finish, write the open batch and report.
    Stop(std::sync::mpsc::SyncSender<StopReport>),
    /// Every message of the partition's replay range has been delivered, up
    /// to `last` (a message past it was fetched): write the open batch and
    /// count the range durable through `last`, offsets without a message
    /// to deliver included (compacted away, transaction markers).
    RangeDelivered {
        /// The range's last offset.
        last: i64,
    },
}

/// A message for a partition's task.
pub(crate) struct Delivery {
    pub(crate) message: SourceMessage,
    /// Write the open batch right after this message. Set on the last
    /// message of a replay's range: nothing follows to fill the batch, and
    /// waiting for its age would only hold up the end of the replay (by up
    /// to `batching.max_age_ms`).
    pub(crate) flush_after: bool,
}

/// What a partition's task reports.
pub(crate) enum Event {
    /// Everything up to and including `last` is durable, says the worker of
    /// `generation`.
    Durable {
        key: PartitionKey,
        generation: u64,
        last: i64,
    },
    /// The worker of `key` stopped with an error; its uncommitted records
    /// will be delivered again.
    Failed {
        key: PartitionKey,
        error: WorkerError,
    },
}

/// Run `task`, the task of partition `key`; a panic in it (a host bug) is
/// reported on `events` as the worker's failure, as a panic of its chain
/// thread is: the host stops and the partition's uncommitted records are
/// delivered again. Unreported, the partition would stop while the host
/// went on looking healthy.
pub(crate) async fn reporting_panics(
    key: PartitionKey,
    events: flume::Sender<Event>,
    task: impl Future<Output = ()>,
) {
    use futures_util::FutureExt as _;
    if let Err(panic) = std::panic::AssertUnwindSafe(task).catch_unwind().await {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let _ = events.send(Event::Failed {
            key,
            error: WorkerError::TaskPanicked(message),
        });
    }
}

/// A stopped task's last word.
pub(crate) struct StopReport {
    pub(crate) last_durable: Option<i64>,
    pub(crate) stats: Stats,
}

/// One partition's worker loop. Its reports go to `events`, signed with
/// `generation`. With `resume_from`, ranges already written from that offset
/// on are adopted first. Spawned inside [`reporting_panics`].
pub(crate) async fn partition_task(
    mut worker: PartitionWorker,
    events: flume::Sender<Event>,
    generation: u64,
    resume_from: i64,
    commands: flume::Receiver<Command>,
    max_batch: usize,
) {
    let (topic, partition) = worker.partition();
    let key = (topic.clone(), partition);
    let failed = |error| Event::Failed {
        key: key.clone(),
        error,
    };
    let durable = |last: i64| Event::Durable {
        key: key.clone(),
        generation,
        last,
    };
    if let Err(e) = worker.resume(resume_from).await {
        let _ = events.send(failed(e));
        return;
    }
    let mut flush_after = false;
    // Set by [`Command::RangeDelivered`].
    let mut range_delivered: Option<i64> = None;
    loop {
        let wait = worker
            .due_in()
            .unwrap_or(IDLE_TICK)
            .max(Duration::from_millis(10));
        let received = tokio::time::timeout(wait, commands.recv_async()).await;
        let (batch, stop) = match received {
            Err(_elapsed) => {
                match worker.flush_if_due().await {
                    Ok(Some(through)) => drop(events.send(durable(through))),
                    Ok(None) => {}
                    Err(e) => return drop(events.send(failed(e))),
                }
                continue;
            }
            Ok(Err(_disconnected)) => return,
            Ok(Ok(Command::Stop(reply))) => (Vec::new(), Some(reply)),
            Ok(Ok(Command::RangeDelivered { last })) => {
                range_delivered = Some(last);
                (Vec::new(), None)
            }
            Ok(Ok(Command::Message(first))) => {
                flush_after = first.flush_after;
                let mut batch = vec![first.message];
                let mut stop = None;
                while batch.len() < max_batch {
                    match commands.try_recv() {
                        Ok(Command::Message(m)) => {
                            flush_after |= m.flush_after;
                            batch.push(m.message);
                        }
                        Ok(Command::Stop(reply)) => {
                            stop = Some(reply);
                            break;
                        }
                        Ok(Command::RangeDelivered { last }) => {
                            range_delivered = Some(last);
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
                Err(e) => return drop(events.send(failed(e))),
            }
        }
        if std::mem::take(&mut flush_after) || range_delivered.is_some() {
            match worker.flush().await {
                Ok(Some(through)) => drop(events.send(durable(through))),
                Ok(None) => {}
                Err(e) => return drop(events.send(failed(e))),
            }
        }
        if let Some(last) = range_delivered.take()
            && worker.nothing_more_through(last)
        {
            let _ = events.send(durable(last));
        }
        if let Some(reply) = stop {
            if let Err(e) = worker.finish().await {
                return drop(events.send(failed(e)));
            }
            let _ = reply.send(StopReport {
                last_durable: worker.last_durable(),
                stats: worker.stats().clone(),
            });
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{BatchingConfig, DecodeConfig};
    use crate::dlq::DeadLetterSink;
    use crate::sink::Sink;
    use crate::storage::ObjectStore;
    use crate::test_support::{chain_of, upsert};

    /// A running partition task and its channels.
    struct Started {
        /// Kept alive while the task runs.
        _runtime: crate::runtime::Runtime,
        task: tokio::task::JoinHandle<()>,
        commands: flume::Sender<Command>,
        reports: flume::Receiver<Event>,
    }

    /// A partition task of an `echo` chain (batches of `max_batch`),
    /// handed upserts at `offsets`.
    fn started_task(max_batch: usize, offsets: &[i64]) -> Started {
        let (runtime, chain) = chain_of(&["echo"]);
        let store = ObjectStore::memory();
        let sink = Sink::new("p", store.clone(), DeadLetterSink::Store(store));
        let worker = PartitionWorker::new(
            Arc::new(chain.unwrap()).start_worker().unwrap(),
            Arc::new(sink),
            DecodeConfig::default(),
            BatchingConfig::default(),
            "t",
            0,
        );
        let (commands, received) = flume::unbounded();
        let (events, reports) = flume::unbounded();
        let task = tokio::spawn(reporting_panics(
            ("t".to_owned(), 0),
            events.clone(),
            partition_task(worker, events, 1, 0, received, max_batch),
        ));
        for &offset in offsets {
            let message = upsert(offset, &format!("d{offset}"), "text");
            commands
                .send(Command::Message(Delivery {
                    message,
                    flush_after: false,
                }))
                .unwrap();
        }
        Started {
            _runtime: runtime,
            task,
            commands,
            reports,
        }
    }

    /// A replay range whose last offsets hold no message (compacted away,
    /// transaction markers) is durable through its end once the first
    /// message past it was fetched: the range's last message never comes
    /// to say so. (Such a replay used to never end.)
    #[tokio::test]
    async fn a_range_delivered_whole_is_durable_through_its_end() {
        let Started {
            _runtime,
            task,
            commands,
            reports,
        } = started_task(64, &[0, 1]);
        // The range is 0..5; offsets 2 to 4 hold nothing to deliver.
        commands.send(Command::RangeDelivered { last: 4 }).unwrap();
        let mut durable = Vec::new();
        while durable.last() != Some(&4) {
            let report = tokio::time::timeout(Duration::from_secs(10), reports.recv_async())
                .await
                .expect("the range is reported durable through its end")
                .unwrap();
            match report {
                Event::Durable { last, .. } => durable.push(last),
                Event::Failed { error, .. } => panic!("{error}"),
            }
        }
        assert_eq!(durable, [1, 4]);
        drop(commands);
        task.await.unwrap();
    }

    /// A task that panics (here on a debug assertion: an offset behind
    /// the partition's last) says so, as the worker's failure, instead of
    /// leaving its partition unprocessed without a word.
    #[cfg(debug_assertions)]
    #[tokio::test]
    async fn a_task_that_panics_reports_its_failure() {
        let Started {
            _runtime,
            task,
            reports,
            ..
        } = started_task(1, &[5, 3]);
        let report = tokio::time::timeout(Duration::from_secs(10), reports.recv_async())
            .await
            .expect("the task went quiet")
            .expect("the task ended without a report");
        match report {
            Event::Failed {
                error: WorkerError::TaskPanicked(message),
                key,
            } => {
                assert_eq!(key, ("t".to_owned(), 0));
                assert!(message.contains("offset order"), "{message}");
            }
            Event::Failed { error, .. } => panic!("another failure: {error}"),
            Event::Durable { last, .. } => panic!("durable through {last}"),
        }
        task.await.unwrap();
    }
}
