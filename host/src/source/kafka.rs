//! Kafka clients for the source (a consumer in the pipeline's consumer group)
//! and for producing (dead letters, `weir ingest`), from the pipeline's
//! `[source.kafka]` settings.
//!
//! Invariants: offsets are never committed automatically (`enable.auto.commit
//! = false`): the host commits an offset only after every record before it is
//! durable; the configuration refuses properties that would change that
//! (`enable.auto.commit`, `enable.auto.offset.store`, `group.id`). Prefetching
//! is bounded (`queued.max.messages.kbytes`) so a stalled host holds a
//! bounded amount of fetched data. Other user properties come last and may
//! override any default; their values are never logged.

use rdkafka::ClientConfig;
use rdkafka::message::{BorrowedMessage, Message};

use super::{Position, SourceMessage};
use crate::config::{KafkaSettings, StartFrom};

/// Defaults the host relies on; the pipeline file may override them (except
/// the properties `config` refuses).
fn base_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", "weir");
    config
}

fn apply_properties(config: &mut ClientConfig, settings: &KafkaSettings) {
    for (key, value) in &settings.properties {
        config.set(key, value);
    }
}

/// Configuration of the pipeline's consumer.
pub fn consumer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = base_config(settings);
    config
        .set("group.id", &settings.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set(
            "auto.offset.reset",
            match settings.start {
                StartFrom::Earliest => "earliest",
                StartFrom::Latest => "latest",
            },
        )
        // librdkafka prefetches at most ~16 MiB per host; each partition's
        // lane in `stream` holds up to 4 x `max_batch` more messages.
        .set("queued.max.messages.kbytes", "16384")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000");
    apply_properties(&mut config, settings);
    config
}

/// Configuration of a producer on the pipeline's cluster.
pub fn producer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = base_config(settings);
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000");
    apply_properties(&mut config, settings);
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
        payload: message.payload().unwrap_or_default().to_vec(),
    }
}
