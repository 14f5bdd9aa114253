//! Whether the host is ready for traffic, as `/readyz` answers it.
//!
//! A host is ready when its plugins are loaded, its stores answer (the last
//! S3 request did not fail for want of a server or of permissions) and, for
//! a Kafka source, the broker answers and the group has given this host its
//! partitions (an empty share counts: more replicas than partitions). Once
//! given, a host stays ready through later rebalances: every change of the
//! replica count revokes partitions everywhere for a moment, and a fleet
//! that went unready together at each one would look down while it is
//! only moving partitions.
//! Each part is set by the code that knows it; `/readyz` only reads them.

use std::sync::atomic::{AtomicBool, Ordering};

/// The parts of readiness, process-wide.
#[derive(Debug)]
pub(crate) struct Readiness {
    plugins_loaded: AtomicBool,
    /// Set when the host consumes from Kafka (file runs need no broker).
    needs_broker: AtomicBool,
    broker_answers: AtomicBool,
    /// The group gave this host its first share (never unset).
    partitions_given: AtomicBool,
    store_failing: AtomicBool,
}

impl Readiness {
    /// Nothing known yet: plugins not loaded, no broker needed.
    const fn new() -> Self {
        Readiness {
            plugins_loaded: AtomicBool::new(false),
            needs_broker: AtomicBool::new(false),
            broker_answers: AtomicBool::new(false),
            partitions_given: AtomicBool::new(false),
            store_failing: AtomicBool::new(false),
        }
    }

    pub(crate) fn plugins_loaded(&self) {
        self.plugins_loaded.store(true, Ordering::Relaxed);
    }

    pub(crate) fn consuming_from_kafka(&self) {
        self.needs_broker.store(true, Ordering::Relaxed);
    }

    pub(crate) fn broker_answers(&self, answers: bool) {
        self.broker_answers.store(answers, Ordering::Relaxed);
    }

    /// The group assigned this host its (first) share of the partitions.
    pub(crate) fn partitions_given(&self) {
        self.partitions_given.store(true, Ordering::Relaxed);
    }

    pub(crate) fn store_failing(&self, failing: bool) {
        self.store_failing.store(failing, Ordering::Relaxed);
    }

    /// What the host still waits for; empty when it is ready.
    pub(crate) fn waiting_for(&self) -> Vec<&'static str> {
        let get = |flag: &AtomicBool| flag.load(Ordering::Relaxed);
        let mut waiting = Vec::new();
        if !get(&self.plugins_loaded) {
            waiting.push("plugins loading");
        }
        if get(&self.store_failing) {
            waiting.push("object store failing");
        }
        if get(&self.needs_broker) {
            if !get(&self.broker_answers) {
                waiting.push("broker not answering");
            }
            if !get(&self.partitions_given) {
                waiting.push("partitions not assigned yet");
            }
        }
        waiting
    }
}

/// The host's readiness.
pub(crate) fn readiness() -> &'static Readiness {
    static READINESS: Readiness = Readiness::new();
    &READINESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kafka_host_is_ready_once_everything_answers() {
        let r = Readiness::new();
        assert_eq!(r.waiting_for(), ["plugins loading"]);
        r.plugins_loaded();
        assert!(r.waiting_for().is_empty(), "a file run needs no broker");
        r.consuming_from_kafka();
        assert_eq!(
            r.waiting_for(),
            ["broker not answering", "partitions not assigned yet"]
        );
        r.broker_answers(true);
        r.partitions_given();
        assert!(r.waiting_for().is_empty());
        r.store_failing(true);
        assert_eq!(r.waiting_for(), ["object store failing"]);
    }
}
