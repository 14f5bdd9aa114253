//! The packs of one stage and partition a process knows of: an index by
//! offset, kept from the folder's listing and the process's own writes,
//! and trimmed as the partition moves forward.
//!
//! Invariants: a pack is in the index while the partition has not passed
//! its last offset; a batch before the last one passed asks for the
//! folder to be listed again (its packs may have been forgotten).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::OnceCell;

/// The packs of one stage and partition this process knows of.
#[derive(Debug, Default)]
pub(super) struct Folder {
    /// Where its listing stands.
    pub(super) listing: Listing,
    /// Packs by (first offset, key), to their last offset. Packs that end
    /// before the partition's current batch are dropped (see
    /// [`Folder::pass`]): a partition moves forward, and a long-running host
    /// would otherwise keep every pack it ever wrote or listed.
    pub(super) packs: BTreeMap<(i64, String), i64>,
    /// The first offset of the latest batch (packs ending before it were
    /// forgotten).
    passed: i64,
    /// Packs this process read, is reading, or wrote: set once its entries
    /// are in memory (or its read failed).
    pub(super) reads: HashMap<String, PackRead>,
}

impl Folder {
    /// The partition's batch now starts at `first`: forget the packs that
    /// end before it, from the front of the index (a pack that starts
    /// earlier and ends later keeps those after it until it is passed too).
    /// A batch before the last one passed (offsets delivered again after a
    /// rebalance) has the folder listed again, as its packs may have been
    /// forgotten.
    pub(super) fn pass(&mut self, first: i64) {
        if first < self.passed {
            self.listing = Listing::Due;
            self.passed = first;
            return;
        }
        self.passed = first;
        while let Some(entry) = self.packs.first_entry() {
            if *entry.get() >= first {
                break;
            }
            let ((_, key), _) = entry.remove_entry();
            self.reads.remove(&key);
        }
    }

    /// The packs covering any offset in `first..=last`.
    pub(super) fn covering(&self, first: i64, last: i64) -> impl Iterator<Item = &String> {
        self.packs
            .range(..(last.saturating_add(1), String::new()))
            .filter(move |(_, to)| first <= **to)
            .map(|((_, key), _)| key)
    }
}

/// Where a folder's listing stands.
#[derive(Debug, Default)]
pub(super) enum Listing {
    /// To be listed before the next lookup in it.
    #[default]
    Due,
    /// Listed: the packs written since are this process's own (or another
    /// replica's, which it does not need: a partition has one owner).
    Done,
    /// The last listing failed at this time: its lookups miss until it is
    /// tried again, after `StageCache::list_retry`.
    Failed(std::time::Instant),
}

/// The read of one pack, shared by every batch that needs it.
pub(super) type PackRead = Arc<OnceCell<()>>;
