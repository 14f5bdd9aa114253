//! A final output of the chain: the record the last stage emitted, or,
//! from a cached last stage, the output already compressed as a result
//! line carries it ([`OutputFrame`], which the sink splices in as it is:
//! the record is then never rebuilt); and whether its body is a JSON
//! document, which decides how a result line carries it (embedded as it
//! is, or as text).
//!
//! Why the chain decides it rather than the line writer: checking a body
//! is a parse of all of it (about 10% of a warm replay's samples when the
//! writer did it for every line; `docs/performance.md`). The chain checks
//! a plugin's output once, and a cached last stage keeps the answer in its
//! entry, so a replay whose last stage hits parses no output at all.
//!
//! Invariant: [`Output::is_json`] holds only if the content type is JSON
//! (`application/json` or `*+json`) and the body parses as one JSON value,
//! whether checked here or by the run that stored the cache entry (entries
//! are content-addressed: equal keys mean equal bodies); a frame, when
//! there is one, decompresses to what a result line writes for the record.

use serde_json::value::RawValue;

use crate::media_type;
use crate::runtime::DocRecord;
use crate::sink::OutputFrame;

/// A record the chain's last stage emitted, with how it is embedded.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    json: bool,
    body: OutputBody,
}

/// An output's record, or the frame a result line carries it as.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OutputBody {
    /// The record the last stage emitted.
    Record(DocRecord),
    /// The record as a result line writes it, compressed.
    Framed(OutputFrame),
}

impl Output {
    /// `record`, its body checked.
    pub fn new(record: DocRecord) -> Self {
        Output {
            json: is_json_document(&record),
            body: OutputBody::Record(record),
        }
    }

    /// An output as a cached last stage keeps it: whether its body is a
    /// JSON document (checked when it was computed) and `frame`, the
    /// record as a result line writes it, compressed.
    pub(crate) fn framed(json: bool, frame: OutputFrame) -> Self {
        Output {
            json,
            body: OutputBody::Framed(frame),
        }
    }

    /// The record, unless the output is a frame.
    pub fn record(&self) -> Option<&DocRecord> {
        match &self.body {
            OutputBody::Record(record) => Some(record),
            OutputBody::Framed(_) => None,
        }
    }

    /// Whether the body is a JSON document (see the module's invariant).
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// The record, or the frame a result line carries it as.
    pub(crate) fn body(&self) -> &OutputBody {
        &self.body
    }
}

/// Whether `record` says it is JSON and its body is one JSON value.
pub(crate) fn is_json_document(record: &DocRecord) -> bool {
    let says_json = media_type::matches("application/json", &record.content_type)
        || record.content_type.ends_with("+json");
    says_json && serde_json::from_slice::<&RawValue>(&record.body).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::doc;

    #[test]
    fn a_body_is_json_when_its_type_says_so_and_it_parses() {
        for (content_type, body, json) in [
            ("application/json", &b"{\"a\": [1, 2]}"[..], true),
            ("application/ld+json", b"\"s\"", true),
            ("Application/JSON", b" 3 ", true),
            ("application/json", b"{\"a\": 1", false),
            ("application/json", b"{} {}", false),
            ("application/json", b"\"\xff\"", false),
            ("text/plain", b"{}", false),
        ] {
            let output = Output::new(doc(content_type, body));
            assert_eq!(output.is_json(), json, "{content_type} {body:?}");
        }
    }
}
