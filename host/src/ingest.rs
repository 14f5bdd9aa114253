//! `weir ingest`: publish change events to the pipeline's Kafka topic from a
//! JSONL file or a MediaWiki XML dump.
//!
//! Invariants: every input record is produced exactly once per run, keyed by
//! its document id (so one document's revisions stay in one partition, in
//! order). Bodies larger than `[ingest] max_inline_body_bytes` are uploaded
//! to S3 under a content-addressed key and sent by reference (`body_ref`).
//! Records that are not valid change events are produced unchanged and
//! unkeyed: deciding what is malformed is the host's job, and it
//! dead-letters them with the reason. The run fails if the broker does not
//! acknowledge every message.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;

use crate::bodies::BodyStore;
use crate::config::{IngestSettings, KafkaSettings, Pipeline, Source};
use crate::event;
use crate::source::{FileFormat, FileSource, Payload, SourceError};
use crate::storage::StorageError;

/// Deliveries awaited at most, before waiting for the oldest.
const MAX_IN_FLIGHT: usize = 10_000;
/// How long a message may take to be acknowledged.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors that stop an ingest run.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The pipeline does not read from Kafka.
    #[error("the pipeline's source is not [source.kafka]: there is no topic to ingest into")]
    NotKafka,
    /// Reading the input failed.
    #[error(transparent)]
    Input(#[from] SourceError),
    /// A body is too large to send inline and there is nowhere to upload it.
    #[error(
        "{id}: the body is {size} bytes, over [ingest] max_inline_body_bytes ({max}), and no \
         [ingest] bodies_bucket is configured to upload it to"
    )]
    NoBodyStore {
        /// Document id.
        id: String,
        /// Body size.
        size: usize,
        /// The inline limit.
        max: usize,
    },
    /// Uploading a body failed permanently.
    #[error("uploading a body: {0}")]
    Upload(#[from] StorageError),
    /// Kafka refused or did not acknowledge a message.
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
}

/// What an ingest run did.
#[derive(Debug, Clone, Default)]
pub struct IngestSummary {
    /// Messages produced.
    pub events: u64,
    /// Of which were not valid change events (produced as they were).
    pub malformed: u64,
    /// Input lines too long for any event, not sent (each logged with its
    /// position).
    pub too_long: u64,
    /// Bodies uploaded and sent by reference.
    pub uploaded_bodies: u64,
    /// Payload bytes read from the input.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl IngestSummary {
    /// The one-line summary `weir ingest` prints.
    pub fn line(&self, topic: &str) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let too_long = if self.too_long > 0 {
            format!(
                "; {} lines too long for any event, not sent (their positions are logged)",
                self.too_long
            )
        } else {
            String::new()
        };
        format!(
            "{} events to {topic} ({} not valid change events, passed through), {} bodies sent by \
             reference, {:.1} MB in {:.2} s: {:.0} events/s, {:.1} MB/s{too_long}",
            self.events,
            self.malformed,
            self.uploaded_bodies,
            self.bytes as f64 / 1e6,
            secs,
            self.events as f64 / secs,
            self.bytes as f64 / 1e6 / secs
        )
    }
}

/// Create the pipeline's topic with `partitions` partitions unless it exists.
pub async fn create_topic(settings: &KafkaSettings, partitions: i32) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        crate::kafka::clients::producer_config(settings).create()?;
    let topic = NewTopic::new(&settings.topic, partitions, TopicReplication::Fixed(1));
    let results = admin.create_topics([&topic], &AdminOptions::new()).await?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                tracing::error!(topic = name, "creating the topic failed: {code}");
                return Err(KafkaError::AdminOp(code));
            }
        }
    }
    Ok(())
}

/// Produce every record of `input` to the pipeline's topic.
pub async fn ingest(
    pipeline: &Pipeline,
    input: &Path,
    format: Option<FileFormat>,
    bodies: Option<BodyStore>,
) -> Result<IngestSummary, IngestError> {
    let Source::Kafka(settings) = &pipeline.source else {
        return Err(IngestError::NotKafka);
    };
    let started = Instant::now();
    let producer: FutureProducer = crate::kafka::clients::producer_config(settings).create()?;
    let mut source = FileSource::open(
        input,
        format.unwrap_or_else(|| FileFormat::from_path(input)),
    )?
    .limit_lines(&pipeline.decode);
    let progress = indicatif::ProgressBar::new_spinner();
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .expect("a valid template"),
    );
    let mut summary = IngestSummary::default();
    let mut in_flight = VecDeque::new();
    loop {
        let batch = source.next_batch(256)?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            // Longer than any event the pipeline accepts: sending its head
            // would make it look like another fault, and the whole line
            // would not fit a message. Said, counted, not sent.
            if let Payload::Cut { bytes, .. } = message.payload {
                tracing::warn!(
                    position = %message.position,
                    bytes,
                    "the line is more than any event with a body under [decode] max_body_bytes \
                     can be; not sent"
                );
                summary.too_long += 1;
                continue;
            }
            summary.bytes += message.payload.len() as u64;
            let (key, payload) = prepare(
                &pipeline.ingest,
                message.payload.into_bytes(),
                bodies.as_ref(),
                &mut summary,
            )
            .await?;
            let record = match &key {
                Some(key) => FutureRecord::to(&settings.topic)
                    .key(key.as_str())
                    .payload(&payload),
                None => FutureRecord::<str, _>::to(&settings.topic).payload(&payload),
            };
            in_flight.push_back(send(&producer, record).await?);
            summary.events += 1;
            if in_flight.len() >= MAX_IN_FLIGHT {
                await_delivery(in_flight.pop_front().expect("not empty")).await?;
            }
        }
        progress.set_message(format!(
            "{} events, {:.1} MB",
            summary.events,
            summary.bytes as f64 / 1e6
        ));
        progress.tick();
    }
    for delivery in in_flight {
        await_delivery(delivery).await?;
    }
    progress.finish_and_clear();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// The message key and payload for one input record. A body stays inline
/// when it is within `max_inline_body_bytes` both decoded and as sent: a
/// producer that escapes non-ASCII (`\u00e9`) sends up to six times its
/// bytes, and the message must fit the topic's size limit.
async fn prepare(
    settings: &IngestSettings,
    payload: Vec<u8>,
    bodies: Option<&BodyStore>,
    summary: &mut IngestSummary,
) -> Result<(Option<String>, Vec<u8>), IngestError> {
    let Ok(mut event) = event::decode(&payload, usize::MAX / 2) else {
        summary.malformed += 1;
        return Ok((None, payload));
    };
    let max = settings.max_inline_body_bytes;
    let decoded = event.body.as_ref().map_or(0, String::len);
    // The body as sent: the event less the room the rest of it may take.
    let sent = payload.len().saturating_sub(event::ENVELOPE_ALLOWANCE);
    let size = decoded.max(if decoded > 0 { sent } else { 0 });
    if size <= max {
        return Ok((Some(event.id), payload));
    }
    let (Some(store), Some((bucket, prefix))) = (bodies, &settings.bodies) else {
        return Err(IngestError::NoBodyStore {
            id: event.id,
            size,
            max,
        });
    };
    let body = event
        .body
        .take()
        .expect("size > 0 means a body")
        .into_bytes();
    event.body_ref = Some(store.upload(bucket, prefix, body).await?);
    summary.uploaded_bodies += 1;
    let payload = serde_json::to_vec(&event).expect("change events serialise");
    Ok((Some(event.id), payload))
}

type Delivery = rdkafka::producer::future_producer::DeliveryFuture;

/// Enqueue a record, waiting while the producer's queue is full.
async fn send(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, str, Vec<u8>>,
) -> Result<Delivery, KafkaError> {
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err((error, _)) => return Err(error),
        }
    }
}

async fn await_delivery(delivery: Delivery) -> Result<(), KafkaError> {
    match tokio::time::timeout(DELIVERY_TIMEOUT, delivery).await {
        Ok(Ok(Ok(_))) => Ok(()),
        Ok(Ok(Err((error, _)))) => Err(error),
        Ok(Err(_canceled)) => Err(KafkaError::Canceled),
        Err(_) => Err(KafkaError::MessageProduction(RDKafkaErrorCode::from(
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body within the inline limit decoded, but not as its producer
    /// escaped it, is not sent inline: the message would be up to six
    /// times the limit.
    #[tokio::test]
    async fn a_body_is_inline_only_when_small_as_sent() {
        let settings = IngestSettings {
            max_inline_body_bytes: 100 << 10,
            bodies: None,
        };
        let event = |body: &str| {
            format!(
                r#"{{"id":"d","op":"upsert","revision":1,"timestamp":"2024-01-01T00:00:00Z","body":"{body}"}}"#
            )
            .into_bytes()
        };
        let mut summary = IngestSummary::default();
        let plain = event(&"é".repeat(40 << 10));
        let (key, sent) = prepare(&settings, plain.clone(), None, &mut summary)
            .await
            .unwrap();
        assert_eq!((key.as_deref(), sent), (Some("d"), plain));
        // The same 80 KiB body escaped: 240 KiB as sent.
        let escaped = event(&"\\u00e9".repeat(40 << 10));
        let refused = prepare(&settings, escaped, None, &mut summary).await;
        assert!(
            matches!(refused, Err(IngestError::NoBodyStore { .. })),
            "{refused:?}"
        );
    }
}
