//! A partition's batch being written in the background while the worker
//! goes on with the next inputs.
//!
//! Writing a batch (checking the lease, compressing the results, the PUTs)
//! takes as long as running a good part of the next batch through the
//! chain. The worker hands a full batch to a [`PendingWrite`] and runs the
//! chain meanwhile, so the two overlap on two cores instead of taking turns.
//!
//! The worker's side (handing a batch over, taking in the end of its
//! write) is here too.
//!
//! Invariants:
//! - a pending write owns everything its write needs, the partition's lease
//!   included, and gives the lease back with its outcome: while a batch is
//!   being written, no other write of the partition can start;
//! - nothing of the batch counts as durable until [`PendingWrite::wait`]
//!   has returned what the write did;
//! - a pending write dropped before it was waited for (its worker failed,
//!   or gave the partition up) is aborted: a write nobody waits for lands
//!   by chance or not at all, and in either case its inputs are delivered
//!   again and written under the same keys.

use std::sync::Arc;

use tracing::Instrument as _;

use super::{PartitionWorker, WorkerError};
use crate::fence::Lease;
use crate::sink::{SealedBatch, Sink, SinkError, Written};
use crate::state::SealedChanges;

/// What a finished write hands back.
pub(super) struct Finished {
    /// The lease the write held.
    lease: Option<Lease>,
    /// What the write did.
    written: Result<Written, SinkError>,
    /// The batch's event-mode changes (event mode only).
    changes: Option<SealedChanges>,
}

/// One batch being written on the runtime, apart from its worker.
pub(super) struct PendingWrite {
    /// The write: the lease it held, and what it did.
    task: tokio::task::JoinHandle<(Option<Lease>, Result<Written, SinkError>)>,
    /// The batch's event-mode changes (event mode only), for the state
    /// store once the write has returned.
    changes: Option<SealedChanges>,
}

impl PendingWrite {
    /// Start writing `batch` to `sink`, checking `lease` first (when
    /// fencing); `changes` are the batch's event-mode changes. The write
    /// runs in the caller's span.
    pub(super) fn start(
        sink: Arc<Sink>,
        batch: SealedBatch,
        mut lease: Option<Lease>,
        changes: Option<SealedChanges>,
    ) -> Self {
        let write = async move {
            let outcome = sink.write(batch, lease.as_mut()).await;
            (lease, outcome)
        };
        PendingWrite {
            task: tokio::spawn(write.in_current_span()),
            changes,
        }
    }

    /// Whether the write has ended (so [`PendingWrite::wait`] returns at
    /// once).
    pub(super) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Wait for the write to end; the batch's event-mode changes come back
    /// with what it did. An error means the write task panicked.
    pub(super) async fn wait(mut self) -> Result<Finished, tokio::task::JoinError> {
        let (lease, written) = (&mut self.task).await?;
        Ok(Finished {
            lease,
            written,
            changes: self.changes.take(),
        })
    }
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        // After `wait` the task has ended, and aborting it does nothing.
        self.task.abort();
    }
}

/// The worker's side of background writes.
impl PartitionWorker {
    /// Take in the end of a batch's write, if it has ended, and hand the
    /// open batch over to be written if it is older than the age limit.
    /// Returns the offset through which everything is now durable, if that
    /// moved.
    pub async fn flush_if_due(&mut self) -> Result<Option<i64>, WorkerError> {
        let before = self.last_durable;
        self.settle_if_done().await?;
        if self.batch.is_due(&self.batching) {
            self.hand_off().await?;
        }
        Ok(self.durable_since(before))
    }

    /// Write the open batch now and wait until everything handled so far is
    /// durable (e.g. at the end of input or on shutdown). Returns the offset
    /// through which everything is now durable, if that moved.
    pub async fn flush(&mut self) -> Result<Option<i64>, WorkerError> {
        let before = self.last_durable;
        self.hand_off().await?;
        self.settle().await?;
        Ok(self.durable_since(before))
    }

    /// Every offset through `last` that was not handed to this worker holds
    /// no record: a replay range was delivered whole, and its last offsets
    /// were compacted away or are transaction markers. Call right after
    /// [`PartitionWorker::flush`]: with nothing open or being written, they
    /// count as durable. Returns whether that moved the durable end.
    pub fn nothing_more_through(&mut self, last: i64) -> bool {
        debug_assert!(self.writing.is_none(), "called after a flush");
        if self.last_durable.is_some_and(|durable| durable >= last) {
            return false;
        }
        self.last_durable = Some(last);
        true
    }

    /// Hand the open batch over to be written in the background, once the
    /// batch before it is written: the worker goes on with the next inputs
    /// meanwhile.
    pub(super) async fn hand_off(&mut self) -> Result<(), WorkerError> {
        self.settle().await?;
        let Some(batch) = self.batch.seal(std::mem::take(&mut self.spare)) else {
            return Ok(());
        };
        let changes = self
            .state
            .as_mut()
            .map(|state| state.seal(batch.last_offset()));
        let lease = self.lease.take();
        self.writing = Some(PendingWrite::start(
            self.sink.clone(),
            batch,
            lease,
            changes,
        ));
        Ok(())
    }

    /// [`PartitionWorker::settle`], if the write has ended already.
    pub(super) async fn settle_if_done(&mut self) -> Result<(), WorkerError> {
        if self.writing.as_ref().is_some_and(PendingWrite::is_finished) {
            self.settle().await?;
        }
        Ok(())
    }

    /// Wait for the batch being written, if one is: its range becomes
    /// durable, and so do its event-mode changes.
    pub(super) async fn settle(&mut self) -> Result<(), WorkerError> {
        let Some(writing) = self.writing.take() else {
            return Ok(());
        };
        let Finished {
            lease,
            written,
            changes,
        } = writing.wait().await.map_err(WorkerError::Panicked)?;
        self.lease = lease;
        let Written { flushed, buffer } = written?;
        tracing::debug!(
            first_offset = flushed.first_offset,
            last_offset = flushed.last_offset,
            results = %flushed.results_key,
            dead_letters = ?flushed.dead_letters_key,
            "batch written"
        );
        self.spare = buffer;
        self.last_durable = Some(flushed.last_offset);
        if let (Some(state), Some(changes)) = (&mut self.state, changes) {
            state
                .batch_written(changes, &self.sink, &flushed.topic, flushed.partition)
                .await?;
        }
        Ok(())
    }
}
