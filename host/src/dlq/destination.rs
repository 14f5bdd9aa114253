//! Where dead letters are written: objects next to the results (a local
//! directory or S3), or a Kafka topic.
//!
//! Invariants: a range's dead letters are written before its results
//! object (see `sink`); to a topic they are at-least-once, one message per
//! dead letter keyed by its position, produced with `acks = all` and
//! idempotence (see `kafka::clients`).

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};

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
        source: rdkafka::error::KafkaError,
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
                let deliveries: Vec<_> = lines
                    .split(|b| *b == b'\n')
                    .filter(|line| !line.is_empty())
                    .zip(positions)
                    .map(|(line, position)| {
                        producer.send(
                            FutureRecord::to(topic).key(position).payload(line),
                            DEAD_LETTER_TIMEOUT,
                        )
                    })
                    .collect();
                for delivery in deliveries {
                    delivery
                        .await
                        .map_err(|(source, _)| DeadLetterError::Kafka {
                            topic: topic.clone(),
                            source,
                        })?;
                }
                Ok(format!("kafka topic {topic}"))
            }
        }
    }
}
