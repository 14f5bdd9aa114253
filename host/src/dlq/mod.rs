//! Dead letters: records that could not be processed, with everything needed
//! to understand and re-drive them (reason, stage, plugin version, input
//! position and the original payload).
//!
//! Dead letters of an input range are written as one JSONL object next to
//! the results object of the same range (see `sink`), before it, so that a
//! range whose results object exists has its dead letters durably stored too;
//! or to a Kafka topic ([`DeadLetterSink`]).
//!
//! Parts: `destination` (writing them), [`reader`] (reading them back from
//! either), [`filter`] (choosing them), [`redrive`] (sending them through
//! the chain again, once).

mod destination;
pub(crate) mod filter;
pub(crate) mod reader;
pub(crate) mod redrive;

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
    /// When the host dead-lettered it (absent in dead letters of weir
    /// versions before 0.1 had it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<jiff::Timestamp>,
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
    /// Every kind.
    pub const ALL: [DeadLetterKind; 6] = [
        DeadLetterKind::Decode,
        DeadLetterKind::Body,
        DeadLetterKind::BadInput,
        DeadLetterKind::PluginFailure,
        DeadLetterKind::Trap,
        DeadLetterKind::Contract,
    ];

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

/// A kind name that is not one of [`DeadLetterKind`]'s.
#[derive(Debug, thiserror::Error)]
#[error("unknown kind `{0}`: use decode, body, bad-input, plugin-failure, trap or contract")]
pub struct UnknownKind(String);

impl std::str::FromStr for DeadLetterKind {
    type Err = UnknownKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        DeadLetterKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownKind(name.to_owned()))
    }
}

/// The original payload: as text when it is UTF-8, else base64; or, in a
/// dead letter too large for its Kafka topic, only its size and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// UTF-8 payload.
    Text(String),
    /// Binary payload, standard base64.
    Base64(String),
    /// Left out: the dead letter with it was over the dead-letter topic's
    /// message size limit. The record is still at its position in the
    /// source topic (until retention removes it).
    Omitted {
        /// The payload's size in bytes.
        bytes: u64,
        /// Its SHA-256.
        sha256: Digest,
    },
    /// Only the start of a line too long to hold (see
    /// `source::Payload::Cut`), as text (lossy where it is not UTF-8).
    Truncated {
        /// The line's first bytes.
        head: String,
        /// The line's size in bytes.
        bytes: u64,
    },
}

/// Why a dead letter's payload cannot be sent through the chain again.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Its base64 does not decode.
    #[error("its payload is not valid base64")]
    Base64(#[source] base64::DecodeError),
    /// It was left out of the letter.
    #[error(
        "its payload ({bytes} bytes) was left out: the dead letter was too large for its \
         Kafka topic; the record is at its position in the source topic"
    )]
    Omitted {
        /// The payload's size.
        bytes: u64,
    },
    /// Only its start was kept.
    #[error("only the start of its {bytes}-byte line was kept: the line is in the input file")]
    Truncated {
        /// The line's size.
        bytes: u64,
    },
}

impl Payload {
    /// The original bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, PayloadError> {
        match self {
            Payload::Text(text) => Ok(text.as_bytes().to_vec()),
            Payload::Base64(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(PayloadError::Base64),
            Payload::Omitted { bytes, .. } => Err(PayloadError::Omitted { bytes: *bytes }),
            Payload::Truncated { bytes, .. } => Err(PayloadError::Truncated { bytes: *bytes }),
        }
    }

    /// Whether the record cannot be sent through the chain again from the
    /// letter (redrive leaves it alone and says so).
    pub fn is_partial(&self) -> bool {
        matches!(self, Payload::Omitted { .. } | Payload::Truncated { .. })
    }

    /// The payload `bytes` describes, left out.
    pub(crate) fn omitted(bytes: &[u8]) -> Self {
        Payload::Omitted {
            bytes: bytes.len() as u64,
            sha256: Digest::of(bytes),
        }
    }

    /// Keep `bytes` in the most readable lossless form.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => Payload::Text(text.to_owned()),
            Err(_) => Payload::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    }
}

impl From<&crate::source::Payload> for Payload {
    /// A source's payload as its dead letter keeps it: the bytes as a
    /// producer would send them, or a cut line's head marked as such, so
    /// that the head is never taken for the record.
    fn from(payload: &crate::source::Payload) -> Self {
        match payload {
            crate::source::Payload::Cut { head, bytes } => Payload::Truncated {
                head: String::from_utf8_lossy(head).into_owned(),
                bytes: *bytes,
            },
            payload => Payload::from_bytes(&payload.to_bytes()),
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
        payload: Payload,
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
            at: Some(jiff::Timestamp::now()),
            payload,
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
            at: Some(jiff::Timestamp::now()),
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
        for bytes in [&b"ok"[..], &[0xff, 0]] {
            assert_eq!(Payload::from_bytes(bytes).to_bytes().unwrap(), bytes);
        }
    }

    #[test]
    fn kinds_read_as_they_are_written() {
        for kind in DeadLetterKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(kind.as_str().parse::<DeadLetterKind>().unwrap(), kind);
        }
        assert!("trapped".parse::<DeadLetterKind>().is_err());
    }
}
