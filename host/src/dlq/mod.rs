//! Dead letters: records that could not be processed, with everything needed
//! to understand and re-drive them (reason, stage, plugin version, input
//! position and the original payload).
//!
//! Dead letters of an input range are written as one JSONL object next to
//! the results object of the same range (see `sink`), before it, so that a
//! range whose results object exists has its dead letters durably stored too;
//! or to a Kafka topic ([`DeadLetterSink`]).

mod destination;

pub use destination::{DeadLetterError, DeadLetterSink};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::chain::{FailureKind, StageFailure};
use crate::digest::Digest;
use crate::source::Position;

/// One dead-lettered record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Where the record came from.
    pub position: Position,
    /// Document id, when the payload could be decoded that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Revision, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// Category of failure.
    pub kind: DeadLetterKind,
    /// What went wrong, in words.
    pub reason: String,
    /// The stage that failed, for chain failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// `name@version` of the failing plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Digest of the failing plugin component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_digest: Option<Digest>,
    /// Attempts made at the failing stage.
    #[serde(default)]
    pub attempts: u32,
    /// The original payload, to re-drive it.
    pub payload: Payload,
}

/// Categories of dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadLetterKind {
    /// The payload is not a valid change event.
    Decode,
    /// The body could not be fetched or did not match its digest.
    Body,
    /// A plugin (or the chain's type check) rejected the input.
    BadInput,
    /// A plugin kept failing after retries.
    PluginFailure,
    /// A plugin trapped (deadline, memory, fuel, panic).
    Trap,
    /// A plugin broke the contract.
    Contract,
}

impl DeadLetterKind {
    /// The kind as written in dead letters (`bad-input`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterKind::Decode => "decode",
            DeadLetterKind::Body => "body",
            DeadLetterKind::BadInput => "bad-input",
            DeadLetterKind::PluginFailure => "plugin-failure",
            DeadLetterKind::Trap => "trap",
            DeadLetterKind::Contract => "contract",
        }
    }
}

/// The original payload: as text when it is UTF-8, else base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// UTF-8 payload.
    Text(String),
    /// Binary payload, standard base64.
    Base64(String),
}

impl Payload {
    /// Keep `bytes` in the most readable lossless form.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => Payload::Text(text.to_owned()),
            Err(_) => Payload::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    }
}

impl DeadLetter {
    /// A record that failed before reaching the chain.
    pub fn before_chain(
        position: Position,
        kind: DeadLetterKind,
        reason: String,
        identity: Option<(String, u64)>,
        payload: &[u8],
    ) -> Self {
        let (id, revision) = identity.unzip();
        DeadLetter {
            position,
            id,
            revision,
            kind,
            reason,
            stage: None,
            plugin: None,
            plugin_digest: None,
            attempts: 0,
            payload: Payload::from_bytes(payload),
        }
    }

    /// A record that failed at a stage of the chain.
    pub fn from_stage(
        position: Position,
        id: String,
        revision: u64,
        failure: StageFailure,
        payload: &[u8],
    ) -> Self {
        let kind = match failure.kind {
            FailureKind::BadInput => DeadLetterKind::BadInput,
            FailureKind::PluginFailure => DeadLetterKind::PluginFailure,
            FailureKind::Trap => DeadLetterKind::Trap,
            FailureKind::Contract => DeadLetterKind::Contract,
        };
        DeadLetter {
            position,
            id: Some(id),
            revision: Some(revision),
            kind,
            reason: failure.reason,
            stage: Some(failure.stage),
            plugin: Some(failure.plugin),
            plugin_digest: Some(failure.digest),
            attempts: failure.attempts,
            payload: Payload::from_bytes(payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_payloads_round_trip_as_base64() {
        assert_eq!(Payload::from_bytes(b"ok"), Payload::Text("ok".into()));
        assert_eq!(
            Payload::from_bytes(&[0xff, 0]),
            Payload::Base64("/wA=".into())
        );
        let json = serde_json::to_string(&Payload::Base64("/wA=".into())).unwrap();
        assert_eq!(json, r#"{"base64":"/wA="}"#);
    }

    #[test]
    fn kinds_read_as_they_are_written() {
        for kind in [
            DeadLetterKind::Decode,
            DeadLetterKind::Body,
            DeadLetterKind::BadInput,
            DeadLetterKind::PluginFailure,
            DeadLetterKind::Trap,
            DeadLetterKind::Contract,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}
