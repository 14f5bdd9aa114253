//! Where dead letters are written: objects next to the results (a local
//! directory or S3), or a Kafka topic.
//!
//! Invariants: a range's dead letters are written before its results
//! object (see `sink`); to a topic they are at-least-once, one message per
//! dead letter keyed by its position, produced with `acks = all` and
//! idempotence (see `kafka::clients`). A dead letter over the topic's
//! message size limit goes without its payload (its size and digest
//! instead): a record's size must not stop the host.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{DeadLetter, Payload};

use crate::storage::{ObjectStore, StorageError};

/// How long a dead letter may take to be acknowledged by Kafka.
const DEAD_LETTER_TIMEOUT: Duration = Duration::from_secs(60);

/// Why dead letters could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// The store refused or failed the write.
    #[error("writing dead letters {key}: {source}")]
    Storage {
        /// The object key.
        key: String,
        /// The storage error.
        source: StorageError,
    },
    /// Kafka did not acknowledge a dead letter.
    #[error("producing dead letters to {topic}: {source}")]
    Kafka {
        /// The dead-letter topic.
        topic: String,
        /// The producer's error.
        source: KafkaError,
    },
}

/// Where dead letters go.
pub enum DeadLetterSink {
    /// Objects next to the results (local directory or S3).
    Store(ObjectStore),
    /// A Kafka topic: one message per dead letter, keyed by its position.
    /// At-least-once: a crash between producing and committing produces the
    /// range's dead letters again (consumers de-duplicate by key).
    Kafka {
        /// The producer.
        producer: FutureProducer,
        /// The topic.
        topic: String,
    },
}

impl DeadLetterSink {
    /// Write the dead letters of one range (`lines`, one JSON per line, in
    /// the order of `positions`) under `key`; returns where they went.
    pub(crate) async fn write(
        &self,
        key: &str,
        lines: &[u8],
        positions: &[String],
    ) -> Result<String, DeadLetterError> {
        match self {
            DeadLetterSink::Store(store) => {
                store.put(key, lines.to_vec()).await.map_err(|source| {
                    DeadLetterError::Storage {
                        key: key.to_owned(),
                        source,
                    }
                })?;
                Ok(store.describe(key))
            }
            DeadLetterSink::Kafka { producer, topic } => {
                let failed = |source| DeadLetterError::Kafka {
                    topic: topic.clone(),
                    source,
                };
                let deliveries: Vec<_> = lines
                    .split(|b| *b == b'\n')
                    .filter(|line| !line.is_empty())
                    .zip(positions)
                    .map(|(line, position)| (line, position, send(producer, topic, line, position)))
                    .collect();
                for (line, position, delivery) in deliveries {
                    match delivery.await {
                        Ok(_) => {}
                        Err((error, _)) if too_large(&error) => {
                            let smaller = without_payload(line).ok_or_else(|| failed(error))?;
                            send(producer, topic, &smaller, position)
                                .await
                                .map_err(|(source, _)| failed(source))?;
                        }
                        Err((error, _)) => return Err(failed(error)),
                    }
                }
                Ok(format!("kafka topic {topic}"))
            }
        }
    }
}

/// Produce one dead letter (`line`, keyed by its `position`) to `topic`.
async fn send(
    producer: &FutureProducer,
    topic: &str,
    line: &[u8],
    position: &str,
) -> Result<(), (KafkaError, rdkafka::message::OwnedMessage)> {
    producer
        .send(
            FutureRecord::to(topic).key(position).payload(line),
            DEAD_LETTER_TIMEOUT,
        )
        .await
        .map(drop)
}

/// Whether Kafka refused a message for its size (the producer's
/// `message.max.bytes`, or the broker's or topic's limit).
fn too_large(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize)
    )
}

/// The dead letter `line` without its payload (its size and digest
/// instead), or `None` when it has none to leave out.
fn without_payload(line: &[u8]) -> Option<Vec<u8>> {
    let mut letter: DeadLetter = serde_json::from_slice(line).ok()?;
    let bytes = letter.payload.to_bytes().ok()?;
    letter.payload = Payload::omitted(&bytes);
    Some(serde_json::to_vec(&letter).expect("dead letters serialise"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::DeadLetterKind;
    use crate::source::Position;

    #[test]
    fn a_letter_without_its_payload_keeps_the_rest_and_the_payloads_digest() {
        let payload = "x".repeat(10_000);
        let letter = DeadLetter::before_chain(
            Position {
                topic: "t".into(),
                partition: 2,
                offset: 7,
            },
            DeadLetterKind::Decode,
            "payload is not a valid change event".into(),
            None,
            Payload::from_bytes(payload.as_bytes()),
        );
        let line = serde_json::to_vec(&letter).unwrap();
        let smaller = without_payload(&line).unwrap();
        assert!(smaller.len() < 400, "{}", smaller.len());
        let back: DeadLetter = serde_json::from_slice(&smaller).unwrap();
        assert_eq!(back.position, letter.position);
        assert_eq!(back.reason, letter.reason);
        assert_eq!(back.payload, Payload::omitted(payload.as_bytes()));
        assert!(
            without_payload(&smaller).is_none(),
            "nothing left to leave out"
        );
        let err = back.payload.to_bytes().unwrap_err().to_string();
        assert!(
            err.contains("10000 bytes") && err.contains("left out"),
            "{err}"
        );
    }
}
