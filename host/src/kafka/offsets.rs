//! Commit bookkeeping for the partitions this host owns: how far each is
//! durable, what the broker confirmed as committed, and which commit is
//! waiting for its answer.
//!
//! Invariants:
//! - an offset is offered for commit only once the partition's worker has
//!   reported everything before it durable ([`Offsets::durable`]);
//! - the committed offset moves only when the broker confirms a commit
//!   ([`Offsets::answered`]), and never backwards; a commit that failed is
//!   offered again after [`RETRY_AFTER`], so a passing broker fault cannot
//!   leave durable records uncommitted (to be processed again) forever,
//!   and neither can an answer that never comes ([`ANSWER_WITHIN`]);
//! - a partition that is not assigned has no state: answers for it are
//!   ignored.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::PartitionKey;

/// How long after a failed commit the partition's offset is offered again.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long a commit may wait for its answer before it is offered again
/// (an answer that never comes must not stop the partition's commits).
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// One partition's offsets. Offsets here are "next to consume" offsets,
/// as Kafka commits them (the last durable offset + 1).
#[derive(Debug, Default)]
struct PartitionOffsets {
    /// What the broker confirmed as committed.
    committed: Option<i64>,
    /// The offset after everything durable.
    durable: Option<i64>,
    /// A commit sent and not answered yet, and when it was sent.
    in_flight: Option<(i64, Instant)>,
    /// After a failed commit: when to offer it again.
    retry_at: Option<Instant>,
}

impl PartitionOffsets {
    /// The offset to commit, if the durable one is ahead of the committed.
    fn ahead(&self) -> Option<i64> {
        self.durable
            .filter(|d| self.committed.is_none_or(|c| c < *d))
    }
}

/// Commit bookkeeping of every partition this host owns.
#[derive(Debug, Default)]
pub(crate) struct Offsets {
    partitions: HashMap<PartitionKey, PartitionOffsets>,
}

impl Offsets {
    /// `key` was assigned to this host, with `committed` as its committed
    /// offset (if it has one).
    pub(crate) fn assigned(&mut self, key: PartitionKey, committed: Option<i64>) {
        self.partitions.insert(
            key,
            PartitionOffsets {
                committed,
                ..PartitionOffsets::default()
            },
        );
    }

    /// `key` is no longer this host's.
    pub(crate) fn revoked(&mut self, key: &PartitionKey) {
        self.partitions.remove(key);
    }

    /// The offset after everything durable of each owned partition (what
    /// will be committed), by partition.
    pub(crate) fn durable_ends(&self) -> Vec<(PartitionKey, Option<i64>)> {
        self.partitions
            .iter()
            .map(|(key, p)| (key.clone(), p.durable.max(p.committed)))
            .collect()
    }

    /// Everything of `key` through offset `last` is durable.
    pub(crate) fn durable(&mut self, key: &PartitionKey, last: i64) {
        if let Some(p) = self.partitions.get_mut(key) {
            p.durable = Some(p.durable.map_or(last + 1, |d| d.max(last + 1)));
        }
    }

    /// The commits to send now: partitions durable past their committed
    /// offset, with no commit in flight and no failed one waiting for its
    /// retry time. They are marked in flight.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<(PartitionKey, i64)> {
        let mut due = Vec::new();
        for (key, p) in &mut self.partitions {
            let waiting = p
                .in_flight
                .is_some_and(|(_, sent)| now < sent + ANSWER_WITHIN);
            if waiting || p.retry_at.is_some_and(|at| now < at) {
                continue;
            }
            if let Some(next) = p.ahead() {
                p.in_flight = Some((next, now));
                p.retry_at = None;
                due.push((key.clone(), next));
            }
        }
        due
    }

    /// The commits to send before `keys` are given up (revoke, shutdown):
    /// every partition among them durable past its committed offset,
    /// whatever is in flight or waiting.
    pub(crate) fn final_commits(&mut self, keys: &[PartitionKey]) -> Vec<(PartitionKey, i64)> {
        keys.iter()
            .filter_map(|key| {
                let p = self.partitions.get_mut(key)?;
                let next = p.ahead()?;
                p.in_flight = Some((next, Instant::now()));
                Some((key.clone(), next))
            })
            .collect()
    }

    /// The broker's answer to a commit of `next` for `key`.
    pub(crate) fn answered(&mut self, key: &PartitionKey, next: i64, ok: bool, now: Instant) {
        let Some(p) = self.partitions.get_mut(key) else {
            return;
        };
        if p.in_flight.is_some_and(|(sent, _)| sent == next) {
            p.in_flight = None;
        }
        if ok {
            p.committed = Some(p.committed.map_or(next, |c| c.max(next)));
        } else {
            p.retry_at = Some(now + RETRY_AFTER);
        }
    }

    /// The confirmed committed offset of `key`.
    #[cfg(test)]
    fn committed(&self, key: &PartitionKey) -> Option<i64> {
        self.partitions.get(key).and_then(|p| p.committed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> PartitionKey {
        ("t".to_owned(), p)
    }

    #[test]
    fn a_failed_commit_is_offered_again_after_the_retry_time() {
        let now = Instant::now();
        let mut offsets = Offsets::default();
        offsets.assigned(key(0), Some(5));
        offsets.durable(&key(0), 9);
        assert_eq!(offsets.due(now), [(key(0), 10)]);
        // In flight: not offered twice, unless its answer never comes.
        assert_eq!(offsets.due(now), []);
        assert_eq!(offsets.due(now + ANSWER_WITHIN), [(key(0), 10)]);
        offsets.answered(&key(0), 10, false, now);
        assert_eq!(offsets.committed(&key(0)), Some(5), "not confirmed");
        assert_eq!(offsets.due(now), [], "waits for the retry time");
        assert_eq!(offsets.due(now + RETRY_AFTER), [(key(0), 10)]);
        offsets.answered(&key(0), 10, true, now + RETRY_AFTER);
        assert_eq!(offsets.committed(&key(0)), Some(10));
        assert_eq!(offsets.due(now + RETRY_AFTER * 2), []);
    }

    #[test]
    fn committed_offsets_never_go_back() {
        let now = Instant::now();
        let mut offsets = Offsets::default();
        offsets.assigned(key(0), None);
        offsets.durable(&key(0), 20);
        offsets.durable(&key(0), 3);
        assert_eq!(offsets.due(now), [(key(0), 21)]);
        offsets.answered(&key(0), 21, true, now);
        // A late answer of an older commit.
        offsets.answered(&key(0), 11, true, now);
        assert_eq!(offsets.committed(&key(0)), Some(21));
        // A committed offset past what this host saw durable (another
        // owner's) is not committed again.
        offsets.assigned(key(1), Some(100));
        offsets.durable(&key(1), 50);
        assert_eq!(offsets.due(now), []);
    }

    #[test]
    fn final_commits_ignore_what_is_in_flight_and_revoked_partitions_are_forgotten() {
        let now = Instant::now();
        let mut offsets = Offsets::default();
        offsets.assigned(key(0), None);
        offsets.assigned(key(1), None);
        offsets.durable(&key(0), 1);
        assert_eq!(offsets.due(now), [(key(0), 2)]);
        offsets.durable(&key(0), 4);
        assert_eq!(offsets.final_commits(&[key(0), key(1)]), [(key(0), 5)]);
        offsets.revoked(&key(0));
        offsets.answered(&key(0), 5, true, now);
        assert_eq!(offsets.committed(&key(0)), None);
        offsets.durable(&key(0), 9);
        assert_eq!(offsets.due(now), []);
    }
}
