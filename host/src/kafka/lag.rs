//! Consumer lag of the partitions this host holds: how far the group's
//! committed offsets are behind the partitions' ends
//! (`weir_consumer_lag_messages`, the figure lag-based autoscalers use), and
//! whether the broker answers (readiness).
//!
//! Runs on a thread of its own with a client of its own (not a group
//! member), so a slow broker never holds up the poll loop.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::PartitionKey;
use super::clients::consumer_config;
use super::partitions::Partitions;
use crate::config::KafkaSettings;
use crate::telemetry::metrics::metrics;
use crate::telemetry::readiness::readiness;

/// How often lag is measured.
const EVERY: Duration = Duration::from_secs(5);

/// How long one question to the broker may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Measure lag every [`EVERY`] until `stop`'s sender is dropped (at once:
/// a host's exit does not wait for the next turn). Blocking.
pub(super) fn watch(settings: &KafkaSettings, partitions: &Partitions, stop: &flume::Receiver<()>) {
    let client: BaseConsumer = match consumer_config(settings).create() {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!("consumer lag is not measured: cannot create a client: {e}");
            return;
        }
    };
    let mut shown: Vec<PartitionKey> = Vec::new();
    let mut last = None::<Instant>;
    loop {
        let wait = last.map_or(Duration::ZERO, |at| EVERY.saturating_sub(at.elapsed()));
        if !matches!(
            stop.recv_timeout(wait),
            Err(flume::RecvTimeoutError::Timeout)
        ) {
            return;
        }
        last = Some(Instant::now());
        let keys = partitions.all_keys();
        metrics()
            .partitions_assigned
            .set(i64::try_from(keys.len()).unwrap_or(i64::MAX));
        let measured = measure(&client, settings, &keys);
        readiness().broker_answers(measured.is_ok());
        let gauge = &metrics().consumer_lag;
        for (topic, partition) in shown.iter().filter(|key| !keys.contains(key)) {
            let _ = gauge.remove_label_values(&[topic.as_str(), &partition.to_string()]);
        }
        match measured {
            Ok(lags) => {
                for ((topic, partition), lag) in lags {
                    gauge
                        .with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(lag);
                }
            }
            Err(e) => tracing::debug!("consumer lag not measured: {e}"),
        }
        shown = keys;
    }
}

/// Each partition's end minus the group's committed offset (or its first
/// offset, before any commit).
fn measure(
    client: &BaseConsumer,
    settings: &KafkaSettings,
    keys: &[PartitionKey],
) -> rdkafka::error::KafkaResult<Vec<(PartitionKey, i64)>> {
    if keys.is_empty() {
        // Nothing held: the broker answering is all there is to know.
        client.fetch_metadata(Some(&settings.topic), TIMEOUT)?;
        return Ok(Vec::new());
    }
    let mut list = TopicPartitionList::new();
    for (topic, partition) in keys {
        list.add_partition(topic, *partition);
    }
    let committed = client.committed_offsets(list, TIMEOUT)?;
    let mut lags = Vec::with_capacity(keys.len());
    for element in committed.elements() {
        let (low, high) = client.fetch_watermarks(element.topic(), element.partition(), TIMEOUT)?;
        let from = match element.offset() {
            Offset::Offset(offset) => offset,
            _ => low,
        };
        lags.push((
            (element.topic().to_owned(), element.partition()),
            (high - from).max(0),
        ));
    }
    Ok(lags)
}
