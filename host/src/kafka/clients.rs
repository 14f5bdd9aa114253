//! librdkafka client configurations on the pipeline's cluster: the consumer
//! in the pipeline's consumer group, and producers (dead letters, `weir
//! ingest`); and the host's message from a consumed one.
//!
//! Invariants:
//! - offsets are never committed automatically (`enable.auto.commit =
//!   false`, `enable.auto.offset.store = false`): the host commits an offset
//!   only after every record before it is durable;
//! - producers wait for every in-sync replica and are idempotent (`acks =
//!   all`, `enable.idempotence = true`), so a dead letter is not lost or
//!   duplicated by a retry;
//! - the properties these guarantees rest on are set after the user's
//!   `[source.kafka.properties]` (the configuration also refuses them, see
//!   [`HOST_OWNED_PROPERTIES`]), so no user property can change them;
//! - a user property reaches only the clients it applies to: consumer-only
//!   properties (librdkafka scope `C`) are not given to producers, and
//!   producer-only ones (scope `P`) not to the consumer;
//! - prefetching is bounded (`queued.max.messages.kbytes`, which librdkafka
//!   applies to each partition's own queue), so a stalled host holds a
//!   bounded amount of fetched data per assigned partition;
//! - property values are never logged (they may be secrets).

use rdkafka::ClientConfig;
use rdkafka::message::{BorrowedMessage, Message};

use crate::config::KafkaSettings;
use crate::source::{Position, SourceMessage};

/// How long the broker may take to answer each one-off request made before
/// consuming (metadata, watermarks, committed offsets, offsets for times:
/// planning a replay, pinning a group's start).
pub(crate) const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// librdkafka properties the delivery guarantees rest on; the pipeline file
/// may not set them. Automatic commits or offset stores would commit offsets
/// whose results are not written yet; the group is `source.kafka.group`;
/// weaker acknowledgements or a non-idempotent producer could lose or
/// duplicate dead letters; a reset to the end would skip records (see
/// [`consumer_config`]).
pub const HOST_OWNED_PROPERTIES: &[&str] = &[
    "enable.auto.commit",
    "auto.commit.enable",
    "enable.auto.offset.store",
    "group.id",
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "auto.offset.reset",
];

/// Properties only consumers use (scope `C` in librdkafka's
/// CONFIGURATION.md, 2.12).
const CONSUMER_ONLY: &[&str] = &[
    "group.id",
    "group.instance.id",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "group.protocol.type",
    "group.protocol",
    "group.remote.assignor",
    "coordinator.query.interval.ms",
    "max.poll.interval.ms",
    "enable.auto.commit",
    "auto.commit.enable",
    "auto.commit.interval.ms",
    "enable.auto.offset.store",
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "fetch.wait.max.ms",
    "fetch.queue.backoff.ms",
    "fetch.message.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.max.bytes",
    "fetch.min.bytes",
    "fetch.error.backoff.ms",
    "offset.store.method",
    "offset.store.path",
    "offset.store.sync.interval.ms",
    "isolation.level",
    "enable.partition.eof",
    "check.crcs",
    "auto.offset.reset",
    "consume.callback.max.messages",
];

/// Properties only producers use (scope `P` in librdkafka's
/// CONFIGURATION.md, 2.12).
const PRODUCER_ONLY: &[&str] = &[
    "transactional.id",
    "transaction.timeout.ms",
    "enable.idempotence",
    "enable.gapless.guarantee",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.ms",
    "linger.ms",
    "message.send.max.retries",
    "retries",
    "queue.buffering.backpressure.threshold",
    "compression.codec",
    "compression.type",
    "compression.level",
    "batch.num.messages",
    "batch.size",
    "delivery.report.only.error",
    "sticky.partitioning.linger.ms",
    "request.required.acks",
    "acks",
    "request.timeout.ms",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "queuing.strategy",
    "produce.offset.report",
    "partitioner",
];

/// Which kind of client a configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Consumer,
    Producer,
}

impl Client {
    /// Whether the user property `key` applies to this kind of client.
    fn takes(self, key: &str) -> bool {
        let other_only = match self {
            Client::Consumer => PRODUCER_ONLY,
            Client::Producer => CONSUMER_ONLY,
        };
        !other_only.contains(&key)
    }
}

/// The host's defaults, then the user's properties that apply to `client`.
/// The caller sets the properties the guarantees rest on afterwards.
fn config(settings: &KafkaSettings, client: Client, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", "weir");
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    for (key, value) in &settings.properties {
        if client.takes(key) {
            config.set(key, value);
        }
    }
    config
}

/// Configuration of the pipeline's consumer.
///
/// A partition without a usable committed offset is read from its earliest
/// retained record, whatever `source.kafka.start` says. `start = "latest"`
/// is made by committing the ends before the group first consumes
/// ([`super::start`]); after that, librdkafka resets only a partition
/// added to the topic later (all of its records came after the start) or
/// one whose committed offset retention has deleted (the records still
/// retained are owed a place). A reset to the end would skip them.
pub fn consumer_config(settings: &KafkaSettings) -> ClientConfig {
    let defaults = [
        ("enable.partition.eof", "false"),
        // librdkafka prefetches at most ~16 MiB per assigned partition (each
        // has a queue of its own, see `partitions`); each partition's lane
        // holds up to 4 x `max_batch` more messages.
        ("queued.max.messages.kbytes", "16384"),
        // Once a partition's prefetch is full, librdkafka looks again after
        // this long (default 1 s): with the host behind (a replay, a
        // backlog) the default left each partition idle for most of a
        // second every time its task emptied the queue.
        ("fetch.queue.backoff.ms", "20"),
        ("session.timeout.ms", "10000"),
        ("heartbeat.interval.ms", "1000"),
    ];
    let mut config = config(settings, Client::Consumer, &defaults);
    config
        .set("group.id", &settings.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    config
}

/// Configuration of a producer on the pipeline's cluster.
pub fn producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = config(
        settings,
        Client::Producer,
        &[("message.timeout.ms", "60000")],
    );
    config.set("acks", "all").set("enable.idempotence", "true");
    config
}

/// The host's message from a consumed Kafka message.
pub fn to_source_message(message: &BorrowedMessage<'_>) -> SourceMessage {
    SourceMessage {
        position: Position {
            topic: message.topic().into(),
            partition: message.partition(),
            offset: message.offset(),
        },
        payload: crate::source::Payload::Raw(message.payload().unwrap_or_default().to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StartFrom;

    fn settings(properties: &[(&str, &str)]) -> KafkaSettings {
        KafkaSettings {
            brokers: "b:9092".into(),
            topic: "t".into(),
            group: "g".into(),
            start: StartFrom::Earliest,
            max_batch: 64,
            properties: properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn user_properties_reach_only_the_clients_they_apply_to() {
        let s = settings(&[
            ("fetch.max.bytes", "1000000"),
            ("linger.ms", "5"),
            ("security.protocol", "ssl"),
        ]);
        let consumer = consumer_config(&s);
        let producer = producer_config(&s);
        assert_eq!(consumer.get("fetch.max.bytes"), Some("1000000"));
        assert_eq!(consumer.get("linger.ms"), None);
        assert_eq!(producer.get("fetch.max.bytes"), None);
        assert_eq!(producer.get("linger.ms"), Some("5"));
        for config in [&consumer, &producer] {
            assert_eq!(config.get("security.protocol"), Some("ssl"));
        }
    }

    /// Even if a host-owned property got past the configuration's check,
    /// the guarantees are set last.
    #[test]
    fn the_guarantees_are_set_after_user_properties() {
        let s = settings(&[
            ("acks", "0"),
            ("enable.idempotence", "false"),
            ("enable.auto.commit", "true"),
            ("enable.auto.offset.store", "true"),
            ("auto.offset.reset", "latest"),
        ]);
        let producer = producer_config(&s);
        assert_eq!(producer.get("acks"), Some("all"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        let consumer = consumer_config(&s);
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(consumer.get("group.id"), Some("g"));
        assert_eq!(consumer.get("auto.offset.reset"), Some("earliest"));
    }

    /// A partition without a usable offset is read from its earliest
    /// retained record, whatever the start: a reset to the end would skip
    /// the records retention kept after a committed offset it deleted (and
    /// a replay, whose group has no offsets before its windows' starts,
    /// would read nothing: a user's `auto.offset.reset = "latest"` used to
    /// do that).
    #[test]
    fn a_partition_without_a_usable_offset_is_read_from_its_start() {
        for start in [StartFrom::Earliest, StartFrom::Latest] {
            let s = KafkaSettings {
                start,
                ..settings(&[])
            };
            assert_eq!(
                consumer_config(&s).get("auto.offset.reset"),
                Some("earliest")
            );
        }
    }

    #[test]
    fn a_user_property_overrides_a_default() {
        let s = settings(&[("session.timeout.ms", "45000")]);
        assert_eq!(consumer_config(&s).get("session.timeout.ms"), Some("45000"));
    }
}
