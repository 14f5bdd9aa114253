//! The lines of a results object: one per input, a result (the chain's
//! outputs, with lineage) or a skip (event mode), each a JSON object.
//!
//! A result line's outputs are written here rather than through serde: an
//! output's body is most of the line's bytes (a whole page of wikitext),
//! and serde_json escapes a string byte by byte: 9% of a pass-through
//! run's samples, against 2% for the SIMD escaper, which writes the same
//! bytes (see `docs/performance.md`).
//!
//! Invariants:
//! - every line is one JSON object on one line (the caller adds the `\n`);
//! - the bytes of a line are what `serde_json` would write for the same
//!   fields: JSON documents embedded as they are (but for the whitespace
//!   around them, and line breaks between their tokens, made spaces),
//!   other UTF-8 bodies as JSON strings with serde_json's escapes, anything
//!   else as base64.

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeStruct, Serializer};

use super::results::ResultsBuffer;
use crate::chain::{LineageEntry, Output, OutputBody};
use crate::digest::Digest;
use crate::event::Operation;
use crate::runtime::DocRecord;
use crate::source::Position;
use crate::state::Skip;

/// One line of a results object: one input record and its outputs, with
/// lineage.
pub struct ResultLine<'a> {
    /// Input position.
    pub position: &'a Position,
    /// Document id.
    pub id: &'a str,
    /// Document revision.
    pub revision: u64,
    /// Upsert (outputs from the chain) or delete (tombstone, no outputs).
    pub op: Operation,
    /// sha256 of the input body (absent for deletes).
    pub content_hash: Option<Digest>,
    /// The identity of the chain that processed the body (absent for
    /// deletes): what event mode compares, with the content hash.
    pub chain: Option<Digest>,
    /// The event's metadata.
    pub metadata: &'a [(String, String)],
    /// Unknown fields of the event, carried through.
    pub extra: &'a serde_json::Map<String, serde_json::Value>,
    /// Every plugin that touched the outputs, in chain order.
    pub lineage: &'a [LineageEntry],
    /// The chain's outputs (empty for tombstones and filtered records).
    pub outputs: &'a [Output],
}

impl ResultLine<'_> {
    /// Append the line, without its newline, to `out`: outputs that come
    /// compressed ([`OutputBody::Framed`]) are spliced in as they are.
    pub(crate) fn write(&self, out: &mut ResultsBuffer) {
        let bytes = out.bytes_mut();
        serde_json::to_writer(&mut *bytes, &Head(self)).expect("result lines serialise");
        // The head is an object: its closing brace makes way for the outputs.
        debug_assert_eq!(bytes.last(), Some(&b'}'));
        bytes.pop();
        bytes.extend_from_slice(b",\"outputs\":[");
        for (i, output) in self.outputs.iter().enumerate() {
            if i > 0 {
                out.bytes_mut().push(b',');
            }
            match output.body() {
                OutputBody::Framed(frame) => out.splice(frame.clone()),
                OutputBody::Record(record) => {
                    write_output(record, output.is_json(), out.bytes_mut())
                }
            }
        }
        out.bytes_mut().extend_from_slice(b"]}");
    }
}

/// Every field of a result line but its outputs, in the line's order.
struct Head<'l, 'a>(&'l ResultLine<'a>);

impl Serialize for Head<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let line = self.0;
        let mut head = s.serialize_struct("ResultLine", 9)?;
        head.serialize_field("position", line.position)?;
        head.serialize_field("id", line.id)?;
        head.serialize_field("revision", &line.revision)?;
        head.serialize_field("op", &line.op)?;
        if let Some(content_hash) = &line.content_hash {
            head.serialize_field("content_hash", content_hash)?;
        }
        if let Some(chain) = &line.chain {
            head.serialize_field("chain", chain)?;
        }
        head.serialize_field("metadata", &Metadata(line.metadata))?;
        if !line.extra.is_empty() {
            head.serialize_field("extra", line.extra)?;
        }
        head.serialize_field("lineage", line.lineage)?;
        head.end()
    }
}

/// An output record: JSON documents (`json`: the chain checked it, see
/// [`Output::is_json`]) are embedded as they are, other UTF-8 bodies as
/// text, anything else as base64.
pub(super) fn write_output(record: &DocRecord, json: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"content_type\":");
    escape_text(&record.content_type, out);
    if json {
        out.extend_from_slice(b",\"json\":");
        embed_json(&record.body, out);
        out.push(b'}');
        return;
    }
    match simdutf8::basic::from_utf8(&record.body) {
        Ok(text) => {
            out.extend_from_slice(b",\"text\":");
            escape_text(text, out);
        }
        Err(_) => {
            use base64::Engine as _;
            out.extend_from_slice(b",\"base64\":\"");
            let encoded = base64::engine::general_purpose::STANDARD.encode(&record.body);
            out.extend_from_slice(encoded.as_bytes());
            out.push(b'"');
        }
    }
    out.push(b'}');
}

/// A JSON document appended to `out` without the whitespace around it and
/// with its line breaks made spaces: they can only be whitespace between
/// tokens (a JSON string holds none raw), and the line must stay one line.
fn embed_json(body: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(body.trim_ascii());
    if memchr::memchr2(b'\n', b'\r', &out[start..]).is_some() {
        for byte in &mut out[start..] {
            if matches!(byte, b'\n' | b'\r') {
                *byte = b' ';
            }
        }
    }
}

/// Texts up to this size are escaped by the SIMD escaper, which first
/// reserves six bytes per byte of text (the worst case: every byte a
/// `\u00XX` escape); longer ones by serde_json, which grows the buffer as
/// it writes. Both write the same bytes. Pages of wikitext are far below.
const SIMD_ESCAPE_MAX_BYTES: usize = 1 << 20;

/// `text` as a JSON string (quoted and escaped), appended to `out`.
fn escape_text(text: &str, out: &mut Vec<u8>) {
    if text.len() <= SIMD_ESCAPE_MAX_BYTES {
        json_escape_simd::escape_into(text, out);
    } else {
        serde_json::to_writer(out, text).expect("strings serialise");
    }
}

/// The line of an event that event mode skipped: no plugin ran, and the
/// document's outputs are in the result line of an earlier event.
#[derive(Serialize)]
pub struct SkipLine<'a> {
    /// Input position.
    pub position: &'a Position,
    /// Document id.
    pub id: &'a str,
    /// Document revision.
    pub revision: u64,
    /// Upsert or delete.
    pub op: Operation,
    /// sha256 of the input body (upserts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<Digest>,
    /// The chain identity the body was compared against (upserts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<Digest>,
    /// Why it was skipped.
    pub skipped: Skip,
}

impl SkipLine<'_> {
    /// Append the line, without its newline, to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, self).expect("skip lines serialise");
    }
}

/// Metadata pairs, as a JSON object.
struct Metadata<'a>(&'a [(String, String)]);

impl Serialize for Metadata<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::test_support::doc;

    fn line_of(outputs: &[DocRecord], extra: &serde_json::Map<String, Value>) -> Vec<u8> {
        let outputs: Vec<Output> = outputs.iter().cloned().map(Output::new).collect();
        written(&outputs, extra).1
    }

    /// A line of `outputs`: its length as the buffer counts it, and its
    /// bytes as the object decompresses to them.
    fn written(outputs: &[Output], extra: &serde_json::Map<String, Value>) -> (usize, Vec<u8>) {
        let position = Position {
            topic: "t".into(),
            partition: 3,
            offset: 7,
        };
        let metadata = [("wiki".to_owned(), "enwiki".to_owned())];
        let mut out = ResultsBuffer::default();
        ResultLine {
            position: &position,
            id: "enwiki:1",
            revision: 9,
            op: Operation::Upsert,
            content_hash: None,
            chain: None,
            metadata: &metadata,
            extra,
            lineage: &[],
            outputs,
        }
        .write(&mut out);
        let bytes = zstd::decode_all(out.compress(1).unwrap().concat().as_slice()).unwrap();
        (out.len(), bytes)
    }

    /// Every character below U+0800, the line separators JavaScript cares
    /// about, a replacement character and one outside the BMP.
    fn every_escape() -> String {
        let mut text: String = (0u32..0x800).filter_map(char::from_u32).collect();
        text.push_str("\u{2028}\u{2029}\u{fffd}😀 \"quoted\" \\ back\\slash");
        text
    }

    #[test]
    fn text_bodies_are_escaped_as_serde_json_escapes_them() {
        let text = every_escape();
        let line = line_of(&[doc("text/plain", text.as_bytes())], &Default::default());
        let mut serde = b"{\"content_type\":\"text/plain\",\"text\":".to_vec();
        serde_json::to_writer(&mut serde, &text).unwrap();
        serde.push(b'}');
        let needle = &line[line.len() - serde.len() - 2..line.len() - 2];
        assert_eq!(
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(&serde)
        );
    }

    #[test]
    fn long_texts_are_escaped_the_same_without_reserving_six_times_their_size() {
        let text = every_escape().repeat(SIMD_ESCAPE_MAX_BYTES / every_escape().len() + 1);
        assert!(text.len() > SIMD_ESCAPE_MAX_BYTES);
        let mut out = Vec::new();
        escape_text(&text, &mut out);
        assert_eq!(out, serde_json::to_vec(&text).unwrap());
        assert!(
            out.capacity() < 6 * text.len(),
            "{} for {}",
            out.capacity(),
            text.len()
        );
    }

    #[test]
    fn a_line_reads_back_as_its_fields_and_outputs() {
        let text = every_escape();
        let mut extra = serde_json::Map::new();
        extra.insert("source".into(), json!({"k": [1, 2]}));
        let outputs = [
            doc("text/x-wiki", text.as_bytes()),
            doc("application/json", b" {\"a\": [1, \"\\n\"]} "),
            doc("application/vnd.weir.doc+json", b"{}"),
            // Pretty-printed: its line breaks must not end the line.
            doc("application/json", b"{\n  \"b\": [\r\n 2 ]\n}\n"),
            // Declared JSON but not JSON: embedded as its text.
            doc("application/json", b"{not json"),
            // Not UTF-8: base64.
            doc("application/octet-stream", &[0xff, 0x00, 0x80]),
            doc("text/plain; charset=\"utf-8\"", b""),
        ];
        let line = line_of(&outputs, &extra);
        assert!(!line.contains(&b'\n'), "one line");
        let value: Value = serde_json::from_slice(&line).expect("the line is JSON");
        assert_eq!(
            value,
            json!({
                "position": {"topic": "t", "partition": 3, "offset": 7},
                "id": "enwiki:1",
                "revision": 9,
                "op": "upsert",
                "metadata": {"wiki": "enwiki"},
                "extra": {"source": {"k": [1, 2]}},
                "lineage": [],
                "outputs": [
                    {"content_type": "text/x-wiki", "text": text},
                    {"content_type": "application/json", "json": {"a": [1, "\n"]}},
                    {"content_type": "application/vnd.weir.doc+json", "json": {}},
                    {"content_type": "application/json", "json": {"b": [2]}},
                    {"content_type": "application/json", "text": "{not json"},
                    {"content_type": "application/octet-stream", "base64": "/wCA"},
                    {"content_type": "text/plain; charset=\"utf-8\"", "text": ""},
                ],
            })
        );
    }

    /// Outputs that come as frames (a cached last stage's) make the same
    /// line as the outputs written out.
    #[test]
    fn framed_outputs_make_the_same_line() {
        let outputs = [
            doc("application/json", b"{\"text\": \"a\"}"),
            doc("text/plain", b"b"),
        ];
        let plain: Vec<Output> = outputs.iter().cloned().map(Output::new).collect();
        let framed: Vec<Output> = plain
            .iter()
            .map(|o| {
                let frame = super::super::OutputFrame::of(o.record().unwrap(), o.is_json(), 1);
                Output::framed(o.is_json(), frame)
            })
            .collect();
        let (len, bytes) = written(&framed, &Default::default());
        assert_eq!((len, bytes.clone()), written(&plain, &Default::default()));
        assert_eq!(len, bytes.len());
    }

    #[test]
    fn a_line_without_outputs_has_an_empty_list() {
        let line = line_of(&[], &Default::default());
        assert!(
            line.ends_with(b",\"lineage\":[],\"outputs\":[]}"),
            "{}",
            String::from_utf8_lossy(&line)
        );
        serde_json::from_slice::<Value>(&line).expect("the line is JSON");
    }
}
