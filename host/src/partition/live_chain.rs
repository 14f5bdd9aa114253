//! Hot swap, as one partition worker sees it: it follows the chains
//! published on a watch channel and moves to the newest between two
//! batches.
//!
//! Invariants: the old chain's instances are dropped before the new
//! chain's are created (no spare pool slots needed); a chain that cannot
//! start leaves the worker on the old one, and is tried again before each
//! batch until it starts or a newer one is published. While it is behind,
//! it counts in `weir_partitions_behind_chain` (and its host's report), so
//! that the versions a host reports are not taken for the ones all its
//! partitions run.

use std::sync::Arc;

use super::{PartitionWorker, WorkerError};
use crate::chain::Chain;

/// The chains published for hot swap, as one worker follows them.
pub(super) struct LiveChain {
    published: tokio::sync::watch::Receiver<Arc<Chain>>,
    /// The newest chain could not be started (an instance pool full for a
    /// moment, a granted directory not there yet): the worker runs the old
    /// one and tries the newest again before each batch.
    behind: bool,
}

impl LiveChain {
    /// Record whether the worker runs an older chain than the newest
    /// published one, in its own flag and the host's gauge.
    fn set_behind(&mut self, behind: bool) {
        if behind != self.behind {
            let gauge = &crate::telemetry::metrics::metrics().partitions_behind_chain;
            if behind {
                gauge.inc()
            } else {
                gauge.dec()
            }
            self.behind = behind;
        }
    }
}

impl Drop for LiveChain {
    /// A worker that stops (revoked partition, end of run) is behind no
    /// more.
    fn drop(&mut self) {
        self.set_behind(false);
    }
}

impl PartitionWorker {
    /// Follow the chains published on `live` (hot swap): before each batch
    /// the worker moves to the newest one.
    pub fn with_live_chain(mut self, live: tokio::sync::watch::Receiver<Arc<Chain>>) -> Self {
        self.live = Some(LiveChain {
            published: live,
            behind: false,
        });
        self
    }

    /// Move to the newest published chain, if there is one this worker does
    /// not run yet. Its instances are created here, between two batches;
    /// the old ones are dropped first (their pool slots are then free). If
    /// the new chain cannot be instantiated, the worker goes on with the
    /// old one, and tries the new one again before its next batch.
    pub(super) fn follow_live_chain(&mut self) -> Result<(), WorkerError> {
        let Some(live) = &mut self.live else {
            return Ok(());
        };
        // An error means the publisher is gone: no newer chain will come.
        if !live.published.has_changed().unwrap_or(false) && !live.behind {
            return Ok(());
        }
        let newest = live.published.borrow_and_update().clone();
        let current = self.chain.take().expect("the chain is not running");
        if Arc::ptr_eq(current.chain(), &newest) {
            live.set_behind(false);
            self.chain = Some(current);
            return Ok(());
        }
        let old = current.chain().clone();
        drop(current);
        let (worker, swapped) = match newest.start_worker() {
            Ok(worker) => (worker, true),
            Err(e) => {
                // Said once; the tries before the next batches are quiet.
                if !live.behind {
                    tracing::error!(
                        topic = self.batch.topic(),
                        partition = self.batch.partition(),
                        "cannot start the new chain, going on with the old one and trying \
                         again before each batch: {e}"
                    );
                }
                (old.start_worker()?, false)
            }
        };
        live.set_behind(!swapped);
        if swapped {
            tracing::info!(
                topic = self.batch.topic(),
                partition = self.batch.partition(),
                chain = %worker.chain().identity(),
                "swapped to the new chain between batches"
            );
        }
        self.chain = Some(match &self.cache {
            Some(cache) => worker.with_cache(cache.clone()),
            None => worker,
        });
        Ok(())
    }
}
