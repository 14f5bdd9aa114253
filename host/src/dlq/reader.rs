//! Reading dead letters back, for `weir dlq`: from their objects (a local
//! directory or S3) or from the dead-letter topic.
//!
//! Invariant: each input position is returned once (a topic's dead letters
//! are at-least-once, and a redrive that fails again writes a newer dead
//! letter for the same position: the newest one wins), sorted by position.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::DeadLetter;
use crate::config::KafkaSettings;
use crate::kafka::clients::consumer_config;
use crate::storage::{ObjectStore, StorageError};

/// How long one question to the broker may take.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// Where dead letters are read from.
pub enum Origin {
    /// Dead-letter objects under `prefixes` of a store.
    Store {
        /// The store.
        store: ObjectStore,
        /// Key prefixes holding dead-letter objects.
        prefixes: Vec<String>,
    },
    /// A dead-letter topic, read from its start to its end.
    Kafka {
        /// How to reach the broker (the pipeline's source).
        settings: KafkaSettings,
        /// The topic.
        topic: String,
    },
}

/// Why dead letters could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// An object could not be listed or read.
    #[error("reading dead letters from {place}")]
    Storage {
        /// The prefix or key.
        place: String,
        /// Why.
        #[source]
        source: StorageError,
    },
    /// A dead letter is not valid JSON of the dead-letter format.
    #[error("{place}, line {line}: not a dead letter")]
    Parse {
        /// The object key or topic/partition@offset.
        place: String,
        /// 1-based line.
        line: usize,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The dead-letter topic could not be read.
    #[error("reading the dead-letter topic {topic}")]
    Kafka {
        /// The topic.
        topic: String,
        /// Why.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The reading thread panicked (a host bug).
    #[error("the dead-letter reader panicked")]
    Panicked(#[source] tokio::task::JoinError),
}

impl Origin {
    /// Every dead letter, one per position, sorted by position.
    pub async fn read(&self) -> Result<Vec<DeadLetter>, ReadError> {
        let letters = match self {
            Origin::Store { store, prefixes } => read_store(store, prefixes).await?,
            Origin::Kafka { settings, topic } => {
                let (settings, topic) = (settings.clone(), topic.clone());
                tokio::task::spawn_blocking(move || read_topic(&settings, &topic))
                    .await
                    .map_err(ReadError::Panicked)??
            }
        };
        let mut newest: BTreeMap<(String, i32, i64), DeadLetter> = BTreeMap::new();
        for letter in letters {
            let p = &letter.position;
            let key = (p.topic.to_string(), p.partition, p.offset);
            match newest.get(&key) {
                Some(kept) if kept.at > letter.at => {}
                _ => {
                    newest.insert(key, letter);
                }
            }
        }
        Ok(newest.into_values().collect())
    }

    /// Where the dead letters are, for people.
    pub fn describe(&self) -> String {
        match self {
            Origin::Store { store, prefixes } => prefixes
                .iter()
                .map(|p| store.describe(p))
                .collect::<Vec<_>>()
                .join(", "),
            Origin::Kafka { topic, .. } => format!("Kafka topic {topic}"),
        }
    }
}

fn parse_lines(place: &str, text: &[u8]) -> Result<Vec<DeadLetter>, ReadError> {
    text.split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(n, line)| {
            serde_json::from_slice(line).map_err(|source| ReadError::Parse {
                place: place.to_owned(),
                line: n + 1,
                source,
            })
        })
        .collect()
}

async fn read_store(
    store: &ObjectStore,
    prefixes: &[String],
) -> Result<Vec<DeadLetter>, ReadError> {
    let mut letters = Vec::new();
    for prefix in prefixes {
        let keys = store
            .list(prefix)
            .await
            .map_err(|source| ReadError::Storage {
                place: store.describe(prefix),
                source,
            })?;
        for key in keys.iter().filter(|k| k.ends_with(".jsonl")) {
            let place = store.describe(key);
            let Some(bytes) = store.get(key).await.map_err(|source| ReadError::Storage {
                place: place.clone(),
                source,
            })?
            else {
                continue; // removed since the listing (an orphan cleaned up)
            };
            letters.extend(parse_lines(&place, &bytes)?);
        }
    }
    Ok(letters)
}

/// Read `topic` from each partition's start to the end it has now, without
/// a consumer group (nothing is committed).
fn read_topic(settings: &KafkaSettings, topic: &str) -> Result<Vec<DeadLetter>, ReadError> {
    let failed = |source| ReadError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    let consumer: BaseConsumer = consumer_config(settings)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(failed)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), KAFKA_TIMEOUT)
        .map_err(failed)?;
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions())
    {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition.id(), KAFKA_TIMEOUT)
            .map_err(failed)?;
        if high > low {
            ends.insert(partition.id(), high);
            assignment
                .add_partition_offset(topic, partition.id(), Offset::Offset(low))
                .map_err(failed)?;
        }
    }
    consumer.assign(&assignment).map_err(failed)?;
    let mut letters = Vec::new();
    while !ends.is_empty() {
        let Some(message) = consumer.poll(KAFKA_TIMEOUT) else {
            continue;
        };
        let message = message.map_err(failed)?;
        let place = format!("{topic}/{}@{}", message.partition(), message.offset());
        letters.extend(parse_lines(&place, message.payload().unwrap_or_default())?);
        if ends
            .get(&message.partition())
            .is_some_and(|end| message.offset() + 1 >= *end)
        {
            ends.remove(&message.partition());
        }
    }
    Ok(letters)
}
