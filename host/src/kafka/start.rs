//! Where a consumer group without committed offsets starts, made durable.
//!
//! With `start = "latest"`, librdkafka resolves "the end of the partition"
//! when a member is first assigned it, and that position lives only in the
//! member until its first commit, which follows the first results object
//! (seconds later). A host that died in between used to restart at the end
//! as of its restart, and the events that had arrived in between ended
//! nowhere. So before subscribing, the host commits the current end of
//! every partition the group has no offset for: the group then starts
//! there whichever member takes the partition, and however often.
//!
//! `start = "earliest"` needs nothing of this: a restart without offsets
//! starts at the first offset again, and results already written are
//! adopted.

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

use super::clients::REQUEST_TIMEOUT;
use crate::config::KafkaSettings;

/// Commit the high watermark of every partition of the topic the group has
/// no committed offset for; returns how many were committed. Blocking.
///
/// Replicas started together: the first to commit pins the start; a later
/// one only commits partitions still without an offset when it looked, or
/// is refused once the group has members.
pub(crate) fn pin_latest_start(settings: &KafkaSettings) -> KafkaResult<usize> {
    let consumer: BaseConsumer = super::clients::consumer_config(settings).create()?;
    let metadata = consumer.fetch_metadata(Some(&settings.topic), REQUEST_TIMEOUT)?;
    let mut all = TopicPartitionList::new();
    for topic in metadata
        .topics()
        .iter()
        .filter(|t| t.name() == settings.topic)
    {
        for partition in topic.partitions() {
            all.add_partition(&settings.topic, partition.id());
        }
    }
    if all.count() == 0 {
        return Ok(0);
    }
    let committed = consumer.committed_offsets(all, REQUEST_TIMEOUT)?;
    let mut pins = TopicPartitionList::new();
    for element in committed.elements() {
        if let Offset::Offset(_) = element.offset() {
            continue;
        }
        let (_, high) =
            consumer.fetch_watermarks(&settings.topic, element.partition(), REQUEST_TIMEOUT)?;
        pins.add_partition_offset(&settings.topic, element.partition(), Offset::Offset(high))?;
    }
    if pins.count() == 0 {
        return Ok(0);
    }
    // A broker refuses commits from outside a group that has members: then
    // a member is consuming, and its own commits are the group's position.
    match consumer.commit(&pins, CommitMode::Sync) {
        Ok(()) => Ok(pins.count()),
        Err(error) => {
            tracing::warn!(
                "could not commit the start of partitions without offsets ({error}); \
                 the group's members commit their own"
            );
            Ok(0)
        }
    }
}
