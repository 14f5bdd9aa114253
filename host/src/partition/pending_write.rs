//! A partition's batch being written in the background while the worker
//! goes on with the next inputs.
//!
//! Writing a batch (checking the lease, compressing the results, the PUTs)
//! takes as long as running a good part of the next batch through the
//! chain. The worker hands a full batch to a [`PendingWrite`] and runs the
//! chain meanwhile, so the two overlap on two cores instead of taking turns.
//!
//! Invariants:
//! - a pending write owns everything its write needs, the partition's lease
//!   included, and gives the lease back with its outcome: while a batch is
//!   being written, no other write of the partition can start;
//! - nothing of the batch counts as durable until [`PendingWrite::wait`]
//!   has returned its outcome;
//! - a pending write dropped before it was waited for (its worker failed,
//!   or gave the partition up) is aborted: a write nobody waits for lands
//!   by chance or not at all, and in either case its inputs are delivered
//!   again and written under the same keys.

use std::sync::Arc;

use tracing::Instrument as _;

use crate::fence::Lease;
use crate::sink::{SealedBatch, Sink, SinkError, Written};

/// What a finished write hands back: the lease it held, and its outcome.
pub(super) type Outcome = (Option<Lease>, Result<Written, SinkError>);

/// One batch being written on the runtime, apart from its worker.
pub(super) struct PendingWrite {
    task: tokio::task::JoinHandle<Outcome>,
}

impl PendingWrite {
    /// Start writing `batch` to `sink`, checking `lease` first (when
    /// fencing). The write runs in the caller's span.
    pub(super) fn start(sink: Arc<Sink>, batch: SealedBatch, mut lease: Option<Lease>) -> Self {
        let write = async move {
            let outcome = sink.write(batch, lease.as_mut()).await;
            (lease, outcome)
        };
        PendingWrite {
            task: tokio::spawn(write.in_current_span()),
        }
    }

    /// Whether the write has ended (so [`PendingWrite::wait`] returns at
    /// once).
    pub(super) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Wait for the write to end. An error means the write task panicked.
    pub(super) async fn wait(mut self) -> Result<Outcome, tokio::task::JoinError> {
        (&mut self.task).await
    }
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        // After `wait` the task has ended, and aborting it does nothing.
        self.task.abort();
    }
}
