//! What a partition worker has done: the counts a run summary adds up.

use std::collections::BTreeMap;

use crate::chain::StageWork;
use crate::counters::Counters;

/// What a worker has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages consumed.
    pub records: u64,
    /// Payload bytes consumed.
    pub bytes: u64,
    /// Upserts that went through the chain and got a result line.
    pub results: u64,
    /// Output documents in those result lines.
    pub outputs: u64,
    /// Deletes written as tombstones.
    pub tombstones: u64,
    /// Messages dead-lettered.
    pub dead_letters: u64,
    /// Events skipped in event mode because their document is unchanged.
    pub skipped_unchanged: u64,
    /// Events skipped in event mode because they are older than their
    /// document's stored revision.
    pub skipped_stale: u64,
    /// Re-delivered messages whose results were already written (adopted
    /// after a restart, not processed again).
    pub redelivered: u64,
    /// Plugin counters, by stage.
    pub counters: BTreeMap<String, Counters>,
    /// What each stage did (cache hits and misses, records computed), by
    /// stage.
    pub stages: BTreeMap<String, StageWork>,
}

impl Stats {
    /// Add another worker's figures to these.
    pub fn absorb(&mut self, other: &Stats) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.results += other.results;
        self.outputs += other.outputs;
        self.tombstones += other.tombstones;
        self.dead_letters += other.dead_letters;
        self.skipped_unchanged += other.skipped_unchanged;
        self.skipped_stale += other.skipped_stale;
        self.redelivered += other.redelivered;
        for (stage, counters) in &other.counters {
            self.counters
                .entry(stage.clone())
                .or_default()
                .merge(counters);
        }
        for (stage, work) in &other.stages {
            self.stages.entry(stage.clone()).or_default().absorb(work);
        }
    }
}
