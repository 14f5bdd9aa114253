//! Bounds of a replay: each partition is read from a start offset up to an
//! end offset fixed when the replay was planned, and the host stops by
//! itself once the group has committed every partition's end.
//!
//! Invariants: a message at or past its partition's end is never handed to
//! a worker (it belongs to no replay range, and its offset is never
//! committed by this group); the replay is complete only when the group's
//! committed offset of every partition has reached its end, whichever
//! replica processed it.
//!
//! A range's last offsets may hold no message to deliver (compacted away,
//! an aborted transaction's records, a transaction marker): the first
//! message past the end then says that nothing before it is still to come
//! ([`Admission::PastEnd`]), and the partition's task counts the range
//! durable through its end once what it was handed is. On a quiet topic no
//! message past the end may ever come; the consumer's position, which
//! librdkafka moves past the markers it reads without handing them over,
//! says the same ([`Bounds::read_past`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

/// Whether a message belongs to the replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Outside its partition's range (or its partition is not replayed).
    Outside,
    /// Inside the range.
    Inside,
    /// The range's last message: its batch can be written at once.
    Last,
    /// At or past the end of its partition's (non-empty) range: every
    /// message of the range has been delivered, up to `last` (the end - 1),
    /// whether or not a message was there to deliver at `last`.
    PastEnd {
        /// The range's last offset.
        last: i64,
    },
}

/// Where each partition's replay starts and ends, and how far it got.
#[derive(Debug)]
pub struct Bounds {
    topic: String,
    /// Partition -> (start, end): offsets `start..end` are replayed.
    ranges: BTreeMap<i32, (i64, i64)>,
    /// Records handed to workers by this process.
    records: AtomicU64,
    /// Their payload bytes.
    bytes: AtomicU64,
    /// Records of the ranges the group has committed (any replica).
    committed: AtomicU64,
    complete: AtomicBool,
}

impl Bounds {
    /// Bounds of `topic`: partition -> (start, end).
    pub fn new(topic: &str, ranges: BTreeMap<i32, (i64, i64)>) -> Self {
        Bounds {
            topic: topic.to_owned(),
            ranges,
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            complete: AtomicBool::new(false),
        }
    }

    /// Records in all ranges.
    pub fn total(&self) -> u64 {
        self.ranges
            .values()
            .map(|(start, end)| (end - start).max(0) as u64)
            .sum()
    }

    /// Records and bytes this process handed to its workers.
    pub fn handed(&self) -> (u64, u64) {
        (
            self.records.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// Records of the ranges the group has committed, at the last check.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// Whether the group committed every partition's end.
    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::SeqCst)
    }

    /// Whether a message of `partition` at `offset` is in the replay (and
    /// then counts it as handed over).
    pub(crate) fn admit(&self, partition: i32, offset: i64, bytes: usize) -> Admission {
        if let Some(last) = self.read_past(partition, offset) {
            return Admission::PastEnd { last };
        }
        let Some(&(start, end)) = self.ranges.get(&partition) else {
            return Admission::Outside;
        };
        if !(start..end).contains(&offset) {
            return Admission::Outside;
        }
        self.records.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if offset + 1 == end {
            Admission::Last
        } else {
            Admission::Inside
        }
    }

    /// The last offset of `partition`'s (non-empty) range, if `position`
    /// (a message's offset, or the next offset the consumer hands over) is
    /// past it: every message of the range has then been delivered.
    pub(crate) fn read_past(&self, partition: i32, position: i64) -> Option<i64> {
        let &(start, end) = self.ranges.get(&partition)?;
        (end > start && position >= end).then_some(end - 1)
    }

    /// Whether this host alone finished the replay: it owns every partition
    /// of the plan, and each is durable to its end (`durable_ends`: the
    /// offset after what is durable, per owned partition). The final
    /// commits are then made as the host stops, without waiting for the
    /// broker's view of the group.
    pub(crate) fn done_here(&self, durable_ends: &[((String, i32), Option<i64>)]) -> bool {
        let done = self.ranges.iter().all(|(partition, (start, end))| {
            end <= start
                || durable_ends.iter().any(|((topic, p), durable)| {
                    *topic == self.topic && p == partition && durable.is_some_and(|d| d >= *end)
                })
        });
        if done {
            self.committed.store(self.total(), Ordering::Relaxed);
            self.complete.store(true, Ordering::SeqCst);
        }
        done
    }

    /// Ask the broker for the group's committed offsets; returns whether
    /// every partition reached its end. A failed request answers `false`
    /// (asked again at the next check).
    pub(crate) fn check<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) -> bool {
        let mut list = TopicPartitionList::new();
        for partition in self.ranges.keys() {
            list.add_partition(&self.topic, *partition);
        }
        let committed = match consumer.committed_offsets(list, Duration::from_secs(5)) {
            Ok(committed) => committed,
            Err(e) => {
                tracing::debug!("replay: reading the committed offsets: {e}");
                return false;
            }
        };
        let mut done_records = 0u64;
        let mut complete = true;
        for (partition, (start, end)) in &self.ranges {
            let at = committed
                .find_partition(&self.topic, *partition)
                .and_then(|e| match e.offset() {
                    Offset::Offset(n) => Some(n),
                    _ => None,
                })
                .unwrap_or(*start);
            done_records += (at.clamp(*start, *end) - start).max(0) as u64;
            complete &= at >= *end;
        }
        self.committed.store(done_records, Ordering::Relaxed);
        if complete {
            self.complete.store(true, Ordering::SeqCst);
        }
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_offsets_inside_a_range_are_admitted_and_counted() {
        let bounds = Bounds::new("t", BTreeMap::from([(0, (5, 8)), (1, (0, 0))]));
        assert_eq!(bounds.total(), 3);
        let admitted: Vec<Admission> = [4, 5, 6, 7, 8]
            .iter()
            .map(|o| bounds.admit(0, *o, 10))
            .collect();
        use Admission::{Inside, Last, Outside, PastEnd};
        assert_eq!(
            admitted,
            [Outside, Inside, Inside, Last, PastEnd { last: 7 }]
        );
        assert_eq!(bounds.admit(1, 0, 10), Outside, "an empty range");
        assert_eq!(
            bounds.admit(2, 0, 10),
            Outside,
            "a partition outside the plan"
        );
        assert_eq!(bounds.handed(), (3, 30));
        // A position past the end, whether or not a message was there.
        assert_eq!(bounds.read_past(0, 7), None);
        assert_eq!(bounds.read_past(0, 9), Some(7));
        assert_eq!(bounds.read_past(1, 3), None, "an empty range");
        assert_eq!(bounds.read_past(2, 3), None, "a partition outside the plan");
        assert_eq!(bounds.handed(), (3, 30), "positions count no record");
    }

    #[test]
    fn a_host_that_owns_every_partition_knows_when_it_is_done() {
        let bounds = Bounds::new("t", BTreeMap::from([(0, (5, 8)), (1, (0, 0)), (2, (0, 4))]));
        let key = |p: i32| ("t".to_owned(), p);
        assert!(
            !bounds.done_here(&[(key(0), Some(8))]),
            "partition 2 is elsewhere"
        );
        assert!(!bounds.done_here(&[(key(0), Some(8)), (key(2), Some(3))]));
        assert!(!bounds.is_complete());
        assert!(bounds.done_here(&[(key(0), Some(8)), (key(2), Some(4))]));
        assert!(bounds.is_complete());
        assert_eq!(bounds.committed(), bounds.total());
    }
}
