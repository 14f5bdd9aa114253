//! The change event (schema `weir.change/1`) and its decoding.
//!
//! A change event says that a document was created or edited (`upsert`) or
//! deleted (`delete`). Its body travels inline (`body`, UTF-8 text) or, for
//! bodies too large for a Kafka message, by reference (`body_ref`: an
//! `s3://` URI and the body's sha256). The schema is documented with an
//! example in `docs/change-event.md`.
//!
//! Invariants: [`decode`] either returns an event that satisfies every rule
//! below or a [`DecodeError`] whose message says exactly what is wrong (the
//! dead-letter reason). Unknown top-level fields are kept in
//! [`ChangeEvent::extra`] (forward compatibility), never rejected.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The schema identifier this host reads. Events may omit it.
pub const SCHEMA: &str = "weir.change/1";

/// Room for the rest of the event (id, metadata) beside its escaped body
/// before a payload is rejected without being parsed.
pub(crate) const ENVELOPE_ALLOWANCE: usize = 64 << 10;

/// A decoded change event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// Schema identifier, `weir.change/1` when omitted.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Stable document id, e.g. `enwiki:12`. Also the Kafka message key.
    pub id: String,
    /// What happened to the document.
    pub op: Operation,
    /// Revision id of this version of the document.
    pub revision: u64,
    /// When the revision was made (RFC 3339).
    pub timestamp: String,
    /// Page title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// MediaWiki namespace number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<i64>,
    /// Media type of the body (default from the pipeline's `[decode]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Inline body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Body stored elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_ref: Option<BodyRef>,
    /// Other string metadata, passed to plugins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// Fields this host does not know, kept as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_schema() -> String {
    SCHEMA.to_owned()
}

/// What happened to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Created or edited: run the chain on the body.
    Upsert,
    /// Deleted: write a tombstone result, call no plugin.
    Delete,
}

/// A body stored outside the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyRef {
    /// `s3://bucket/key`.
    pub uri: String,
    /// sha256 of the body bytes (`sha256:<hex>` or bare hex).
    pub sha256: String,
    /// Size in bytes, if the producer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// Why a payload is not a usable change event. The `Display` text is the
/// dead-letter reason.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not UTF-8, so not JSON.
    #[error("payload is not valid UTF-8 (first invalid byte at offset {at})")]
    InvalidUtf8 {
        /// Byte offset of the first invalid byte.
        at: usize,
    },
    /// Not JSON, or JSON of the wrong shape (includes missing fields).
    #[error("payload is not a valid change event: {0}")]
    Json(#[source] serde_json::Error),
    /// A schema this host cannot read.
    #[error("unsupported schema `{0}` (this host reads `{SCHEMA}`)")]
    UnsupportedSchema(String),
    /// A field has an unusable value.
    #[error("field `{field}` {problem}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// An upsert without `body` or `body_ref`, or with both.
    #[error("an upsert needs exactly one of `body` and `body_ref`")]
    BodyPresence,
    /// The whole event is larger than any event with an acceptable body
    /// can be (checked before parsing it).
    #[error(
        "the event is {size} bytes, more than any event with a body under the configured \
         max_body_bytes of {max} can be ({} bytes: the body escaped, plus {} bytes for the \
         rest of the event)",
        max_event_bytes(*max),
        ENVELOPE_ALLOWANCE
    )]
    OversizedEvent {
        /// The payload's size.
        size: usize,
        /// `max_body_bytes`.
        max: usize,
    },
    /// The body is over the configured limit.
    #[error("body is {size} bytes, over the configured max_body_bytes of {max}")]
    Oversized {
        /// The size seen.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// The largest payload an event whose body is within `max_body_bytes` can
/// be: escaping can make a body's JSON string up to six times its size
/// (`\u0001` for a control byte; `\u00e9` for a 2-byte character when
/// the producer escapes non-ASCII, as Python's `json.dumps` does), plus
/// the envelope. The body's own limit is checked once it is decoded.
pub(crate) fn max_event_bytes(max_body_bytes: usize) -> usize {
    max_body_bytes
        .saturating_mul(6)
        .saturating_add(ENVELOPE_ALLOWANCE)
}

/// Decode and check one payload. `max_body_bytes` bounds the inline body
/// (and, with some allowance for the envelope, the payload itself, so a huge
/// payload is rejected before it is parsed).
pub fn decode(payload: &[u8], max_body_bytes: usize) -> Result<ChangeEvent, DecodeError> {
    check_size(payload.len(), max_body_bytes)?;
    let event = parse(payload)?;
    check(&event, max_body_bytes)?;
    Ok(event)
}

/// Reject a payload of `size` bytes too large for any event whose body is
/// within `max_body_bytes`.
pub(crate) fn check_size(size: usize, max_body_bytes: usize) -> Result<(), DecodeError> {
    if size > max_event_bytes(max_body_bytes) {
        return Err(DecodeError::OversizedEvent {
            size,
            max: max_body_bytes,
        });
    }
    Ok(())
}

/// Parse one payload as a change event, unchecked: UTF-8 and JSON only
/// ([`decode`] is this and [`check`]). A file's reader parses its lines
/// ahead of the worker with it.
pub(crate) fn parse(payload: &[u8]) -> Result<ChangeEvent, DecodeError> {
    // simdutf8: the payload is mostly one long body, and validating it was
    // a visible share of the host's work (docs/performance.md).
    let text = simdutf8::compat::from_utf8(payload).map_err(|e| DecodeError::InvalidUtf8 {
        at: e.valid_up_to(),
    })?;
    serde_json::from_str(text).map_err(DecodeError::Json)
}

/// Check a decoded event (or one a reader built) against the schema's rules.
pub(crate) fn check(event: &ChangeEvent, max_body_bytes: usize) -> Result<(), DecodeError> {
    if event.schema != SCHEMA {
        return Err(DecodeError::UnsupportedSchema(event.schema.clone()));
    }
    if event.id.trim().is_empty() {
        return Err(DecodeError::InvalidField {
            field: "id",
            problem: "is empty".into(),
        });
    }
    if let Err(e) = event.timestamp.parse::<jiff::Timestamp>() {
        return Err(DecodeError::InvalidField {
            field: "timestamp",
            problem: format!("is not an RFC 3339 timestamp: {e}"),
        });
    }
    if event.op == Operation::Upsert {
        match (&event.body, &event.body_ref) {
            (Some(body), None) if body.len() > max_body_bytes => {
                return Err(DecodeError::Oversized {
                    size: body.len(),
                    max: max_body_bytes,
                });
            }
            (Some(_), None) => {}
            (None, Some(body_ref)) => check_body_ref(body_ref, max_body_bytes)?,
            _ => return Err(DecodeError::BodyPresence),
        }
    }
    Ok(())
}

fn check_body_ref(body_ref: &BodyRef, max_body_bytes: usize) -> Result<(), DecodeError> {
    let Some((bucket, _)) = crate::storage::parse_s3_uri(&body_ref.uri) else {
        return Err(DecodeError::InvalidField {
            field: "body_ref.uri",
            problem: format!("is `{}`, not an s3://bucket/key URI", body_ref.uri),
        });
    };
    // A name S3's endpoint rules reject fails before any request is sent,
    // in a way the client cannot tell from a fault of its own
    // configuration: it is the record's fault, so it is caught here.
    if let Some(problem) = bucket_name_problem(bucket) {
        return Err(DecodeError::InvalidField {
            field: "body_ref.uri",
            problem: format!("names the bucket `{bucket}`, which {problem}"),
        });
    }
    if crate::digest::Digest::parse(&body_ref.sha256).is_none() {
        return Err(DecodeError::InvalidField {
            field: "body_ref.sha256",
            problem: "is not a sha256 digest (64 hex characters)".into(),
        });
    }
    match body_ref.size {
        Some(size) if size > max_body_bytes as u64 => Err(DecodeError::Oversized {
            size: usize::try_from(size).unwrap_or(usize::MAX),
            max: max_body_bytes,
        }),
        _ => Ok(()),
    }
}

/// What makes `name` unusable as the bucket of a body by reference: the
/// names the S3 client's endpoint rules refuse before sending anything.
/// Access-point ARNs and directory buckets (`--x-s3`) are not supported
/// for bodies. Older or relaxed names (capitals, underscores: us-east-1's
/// legacy buckets, Ceph) are addressed path-style and pass.
fn bucket_name_problem(name: &str) -> Option<&'static str> {
    if name.contains(':') {
        Some("is an ARN or has a `:` (access points are not supported for bodies)")
    } else if name.ends_with("--x-s3") {
        Some("is a directory bucket (not supported for bodies)")
    } else {
        None
    }
}

impl ChangeEvent {
    /// The metadata plugins see: `title`, `namespace`, `timestamp`, then the
    /// event's `meta` entries (which cannot shadow those three).
    pub fn metadata(&self) -> Vec<(String, String)> {
        let mut metadata = Vec::with_capacity(3 + self.meta.len());
        if let Some(title) = &self.title {
            metadata.push(("title".to_owned(), title.clone()));
        }
        if let Some(namespace) = self.namespace {
            metadata.push(("namespace".to_owned(), namespace.to_string()));
        }
        metadata.push(("timestamp".to_owned(), self.timestamp.clone()));
        for (key, value) in &self.meta {
            if !matches!(key.as_str(), "title" | "namespace" | "timestamp") {
                metadata.push((key.clone(), value.clone()));
            }
        }
        metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    fn event(json: &str) -> Result<ChangeEvent, DecodeError> {
        decode(json.as_bytes(), MAX)
    }

    #[test]
    fn decodes_an_upsert_and_keeps_unknown_fields() {
        let e = event(
            r#"{"id":"enwiki:1","op":"upsert","revision":5,"timestamp":"2024-01-02T03:04:05Z",
               "title":"A","namespace":0,"body":"text","meta":{"lang":"en"},"future_field":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(e.schema, SCHEMA);
        assert_eq!(e.body.as_deref(), Some("text"));
        assert_eq!(e.extra["future_field"], serde_json::json!([1, 2]));
        assert_eq!(
            e.metadata(),
            [
                ("title".to_owned(), "A".to_owned()),
                ("namespace".to_owned(), "0".to_owned()),
                ("timestamp".to_owned(), "2024-01-02T03:04:05Z".to_owned()),
                ("lang".to_owned(), "en".to_owned()),
            ]
        );
    }

    #[test]
    fn a_delete_needs_no_body() {
        let e =
            event(r#"{"id":"x","op":"delete","revision":2,"timestamp":"2024-01-02T03:04:05Z"}"#);
        assert_eq!(e.unwrap().op, Operation::Delete);
    }

    #[test]
    fn each_malformed_input_has_a_clear_reason() {
        let cases: [(&[u8], &str); 8] = [
            (b"{not json", "payload is not a valid change event: key must be a string"),
            (b"{\"id\":\"\xff\"}", "payload is not valid UTF-8 (first invalid byte at offset 7)"),
            (
                br#"{"id":"x","op":"upsert","timestamp":"2024-01-02T03:04:05Z","body":"b"}"#,
                "missing field `revision`",
            ),
            (
                br#"{"id":"x","op":"merge","revision":1,"timestamp":"2024-01-02T03:04:05Z"}"#,
                "unknown variant `merge`",
            ),
            (
                br#"{"id":"x","op":"upsert","revision":1,"timestamp":"yesterday","body":"b"}"#,
                "field `timestamp` is not an RFC 3339 timestamp",
            ),
            (
                br#"{"id":"x","op":"upsert","revision":1,"timestamp":"2024-01-02T03:04:05Z"}"#,
                "an upsert needs exactly one of `body` and `body_ref`",
            ),
            (
                br#"{"schema":"weir.change/2","id":"x","op":"delete","revision":1,"timestamp":"2024-01-02T03:04:05Z"}"#,
                "unsupported schema `weir.change/2`",
            ),
            (
                br#"{"id":"x","op":"upsert","revision":1,"timestamp":"2024-01-02T03:04:05Z","body_ref":{"uri":"http://a/b","sha256":"00"}}"#,
                "field `body_ref.uri` is `http://a/b`, not an s3://bucket/key URI",
            ),
        ];
        for (payload, expected) in cases {
            let err = decode(payload, MAX).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn oversized_bodies_are_rejected_with_sizes() {
        let body = "x".repeat(100);
        let json = format!(
            r#"{{"id":"x","op":"upsert","revision":1,"timestamp":"2024-01-02T03:04:05Z","body":"{body}"}}"#
        );
        let err = decode(json.as_bytes(), 99).unwrap_err();
        assert!(
            matches!(err, DecodeError::Oversized { size: 100, max: 99 }),
            "{err:?}"
        );
        let huge = vec![b' '; 200 << 10];
        let err = decode(&huge, 1).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::OversizedEvent {
                    size: 204_800,
                    max: 1
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with("the event is 204800 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_body_within_the_limit_is_accepted_however_it_is_escaped() {
        // Python's `json.dumps` escapes every non-ASCII character: 6 bytes
        // of payload for each 2-byte "é".
        let body = "é".repeat(50);
        let escaped = "\\u00e9".repeat(50);
        let json = format!(
            r#"{{"id":"x","op":"upsert","revision":1,"timestamp":"2024-01-02T03:04:05Z","body":"{escaped}"}}"#
        );
        let event = decode(json.as_bytes(), 100).unwrap();
        assert_eq!(event.body.as_deref(), Some(body.as_str()));
        let err = decode(json.as_bytes(), 99).unwrap_err();
        assert!(
            matches!(err, DecodeError::Oversized { size: 100, max: 99 }),
            "{err:?}"
        );
    }

    #[test]
    fn a_body_ref_must_name_a_bucket_s3_can_address() {
        let event = |uri: &str| {
            format!(
                r#"{{"id":"x","op":"upsert","revision":1,"timestamp":"2024-01-02T03:04:05Z","body_ref":{{"uri":"{uri}","sha256":"{}"}}}}"#,
                "a".repeat(64)
            )
        };
        for good in [
            "s3://my-bodies/k",
            "s3://bodies.example.org/a/b",
            "s3://ap-s3alias/k",
            "s3://Legacy_Bucket/k",
        ] {
            decode(event(good).as_bytes(), 100).unwrap();
        }
        for (bad, says) in [
            (
                "s3://arn:aws:s3:us-east-1:123456789012:accesspoint/ap/k",
                "an ARN",
            ),
            ("s3://mybucket--usaz1--x-s3/k", "directory bucket"),
            ("s3://bucket", "not an s3://bucket/key URI"),
        ] {
            let err = decode(event(bad).as_bytes(), 100).unwrap_err().to_string();
            assert!(
                err.contains("body_ref.uri") && err.contains(says),
                "{bad}: {err}"
            );
        }
    }
}
