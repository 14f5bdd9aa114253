//! Where change events come from, and the position that identifies each one.
//!
//! Every message carries its [`Position`] (topic, partition, offset). For a
//! file, the topic is the file name, the partition is 0 and the offset is the
//! 0-based line (or page) number, so a dead letter points at the exact input.

pub mod file;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Where a message sits in its source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Kafka topic, or the input file's name.
    pub topic: Arc<str>,
    /// Kafka partition (0 for files).
    pub partition: i32,
    /// Kafka offset, or the 0-based record number in the file.
    pub offset: i64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// One raw message: its position and payload bytes (a change event, not yet
/// decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMessage {
    /// Where it came from.
    pub position: Position,
    /// The raw payload.
    pub payload: Vec<u8>,
}
