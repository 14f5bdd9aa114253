//! One partition's task: takes the messages its lane hands it, in offset
//! order, runs them through its [`PartitionWorker`], and reports what is
//! durable (or why it stopped) to the poll thread.
//!
//! Invariants: every report is signed with the task's generation, so the
//! poll thread can ignore a task that no longer speaks for its partition;
//! on a stop request the open batch is written before the final report.

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

/// A stopped task's last word.
pub(crate) struct StopReport {
    pub(crate) last_durable: Option<i64>,
    pub(crate) stats: Stats,
}

/// One partition's worker loop. Its reports go to `events`, signed with
/// `generation`. With `resume_from`, ranges already written from that offset
/// on are adopted first.
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
        if std::mem::take(&mut flush_after) {
            match worker.flush().await {
                Ok(Some(through)) => drop(events.send(durable(through))),
                Ok(None) => {}
                Err(e) => return drop(events.send(failed(e))),
            }
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
