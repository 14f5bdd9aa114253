//! Where change events come from, and the position that identifies each one.
//!
//! Every message carries its [`Position`] (topic, partition, offset). For a
//! file, the topic is the file name, the partition is 0 and the offset is the
//! 0-based line (or page) number, so a dead letter points at the exact input.
//!
//! Its [`Payload`] is the bytes as they arrived (Kafka), decoded by the
//! partition worker; a line its reader parsed ahead of the worker (JSONL),
//! which the worker checks; or an event a reader built
//! itself (a dump), which the worker checks by the same rules without a
//! JSON round trip.
//!
//! Parts: [`file`] (JSONL), [`mediawiki`] (dumps), `read_ahead` (a
//! thread that reads a file's next batches while the worker runs the
//! current one), and [`fingerprint`] (which file a run read, so that a
//! rerun into the same output never takes another file of the same name
//! for it).

pub mod file;
pub mod fingerprint;
pub mod mediawiki;
pub(crate) mod read_ahead;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::{ChangeEvent, DecodeError};

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

/// One message: its position and its change event.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceMessage {
    /// Where it came from.
    pub position: Position,
    /// The change event.
    pub payload: Payload,
}

/// A message's change event, as it arrived or as a reader built it.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// The bytes as they arrived (a Kafka message's value, a JSONL line
    /// that is not an event), not yet decoded.
    Raw(Vec<u8>),
    /// A JSONL line parsed by its reader ([`Payload::line`]): on the
    /// reading thread, while the worker runs the batch before, instead of
    /// on the worker's. Of a warm replay from a file, decoding was a third
    /// of the worker's thread (docs/performance.md, "Replay and the stage
    /// cache"). (Its body is hashed by the worker: the reader, which reads
    /// and parses, would then have the larger share.)
    Parsed(Box<ParsedLine>),
    /// An event a reader built itself (a dump's revision). It is checked
    /// like a decoded one, but never written as JSON only to be parsed
    /// back: for a dump, escaping and unescaping every body was a sixth of
    /// the host's own work (docs/performance.md, "Host throughput").
    Event(Box<ChangeEvent>),
    /// A JSONL line longer than any acceptable event, not held whole: its
    /// first [`file::CUT_LINE_HEAD`] bytes (for its dead letter) and its
    /// size. It decodes to [`DecodeError::OversizedEvent`].
    Cut {
        /// The line's first bytes.
        head: Vec<u8>,
        /// The line's size in bytes.
        bytes: u64,
    },
}

impl Payload {
    /// Input bytes, for throughput figures: the raw payload's size, or the
    /// body's for a built event (its envelope was never serialised).
    pub fn len(&self) -> usize {
        match self {
            Payload::Raw(bytes) => bytes.len(),
            Payload::Parsed(parsed) => parsed.line.len(),
            Payload::Event(event) => event.body.as_ref().map_or(0, String::len),
            Payload::Cut { bytes, .. } => usize::try_from(*bytes).unwrap_or(usize::MAX),
        }
    }

    /// Whether [`Payload::len`] is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The event as JSON, as a producer would send it (for dead letters and
    /// `weir ingest`); of a cut line, its head.
    pub fn to_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Payload::Raw(bytes) | Payload::Cut { head: bytes, .. } => Cow::Borrowed(bytes),
            Payload::Parsed(parsed) => Cow::Borrowed(&parsed.line),
            Payload::Event(event) => {
                Cow::Owned(serde_json::to_vec(event).expect("change events serialise"))
            }
        }
    }

    /// [`Payload::to_bytes`], owned.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Payload::Raw(bytes) | Payload::Cut { head: bytes, .. } => bytes,
            Payload::Parsed(parsed) => parsed.line,
            event @ Payload::Event(_) => event.to_bytes().into_owned(),
        }
    }

    /// A line as its reader read it: parsed here (on the reader's thread)
    /// when it is an event; as it arrived otherwise, for the worker to
    /// decode and dead-letter with the reason.
    pub(crate) fn line(line: Vec<u8>) -> Self {
        match crate::event::parse(&line) {
            Ok(event) => Payload::Parsed(Box::new(ParsedLine { line, event })),
            Err(_) => Payload::Raw(line),
        }
    }

    /// The checked event (see [`crate::event::decode`]). A parsed line
    /// gives its event up: the payload keeps the line, as it arrived.
    pub fn decode(&mut self, max_body_bytes: usize) -> Result<ChangeEvent, DecodeError> {
        match self {
            Payload::Raw(bytes) => crate::event::decode(bytes, max_body_bytes),
            Payload::Cut { bytes, .. } => Err(DecodeError::OversizedEvent {
                size: usize::try_from(*bytes).unwrap_or(usize::MAX),
                max: max_body_bytes,
            }),
            Payload::Event(event) => {
                crate::event::check(event, max_body_bytes)?;
                Ok(ChangeEvent::clone(event))
            }
            Payload::Parsed(parsed) => {
                crate::event::check_size(parsed.line.len(), max_body_bytes)?;
                crate::event::check(&parsed.event, max_body_bytes)?;
                let Payload::Parsed(parsed) = std::mem::replace(self, Payload::Raw(Vec::new()))
                else {
                    unreachable!("matched as parsed above")
                };
                let ParsedLine { line, event } = *parsed;
                *self = Payload::Raw(line);
                Ok(event)
            }
        }
    }
}

/// A JSONL line its reader parsed: see [`Payload::Parsed`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLine {
    /// The line as it arrived (what dead letters keep).
    line: Vec<u8>,
    /// Its event, not yet checked.
    event: ChangeEvent,
}

/// Formats of local input files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    /// One change event (JSON) per line.
    Jsonl,
    /// A MediaWiki XML dump (`pages-articles`), plain or `.bz2`.
    MediawikiXml,
}

impl FileFormat {
    /// The format a file name suggests: `.xml`, `.xml.bz2` and `.bz2` are
    /// dumps (Wikimedia names some `*.bz2` alone), `.jsonl.bz2`,
    /// `.ndjson.bz2` and `.json.bz2` are compressed JSONL, anything else
    /// JSONL.
    pub fn from_path(path: &std::path::Path) -> Self {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let uncompressed = name.strip_suffix(".bz2");
        let jsonl = |name: &str| {
            [".jsonl", ".ndjson", ".json"]
                .iter()
                .any(|e| name.ends_with(e))
        };
        if name.ends_with(".xml") || uncompressed.is_some_and(|stem| !jsonl(stem)) {
            FileFormat::MediawikiXml
        } else {
            FileFormat::Jsonl
        }
    }
}

/// The bytes of the file at `path`: a `.bz2` file (single or multi-stream,
/// as Wikimedia publishes) decompressed on the fly.
pub(crate) fn open_decompressed(
    path: &std::path::Path,
) -> std::io::Result<Box<dyn std::io::Read + Send>> {
    let file = std::fs::File::open(path)?;
    Ok(if is_bz2(path) {
        Box::new(bzip2::read::MultiBzDecoder::new(
            std::io::BufReader::with_capacity(1 << 20, file),
        ))
    } else {
        Box::new(file)
    })
}

/// Whether the file at `path` is bzip2-compressed (by its name).
fn is_bz2(path: &std::path::Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("bz2"))
}

/// Errors reading a local input file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading the file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The dump is corrupt.
    #[error(transparent)]
    Dump(#[from] mediawiki::DumpError),
}

/// A local input file of change events, in either format.
pub enum FileSource {
    /// JSONL of change events.
    Jsonl(file::JsonlSource),
    /// A MediaWiki XML dump (boxed: its reader state is large).
    Dump(Box<mediawiki::DumpSource>),
}

impl FileSource {
    /// Open `path` as `format`.
    pub fn open(path: &std::path::Path, format: FileFormat) -> Result<Self, SourceError> {
        let io = |source| SourceError::Io {
            path: path.display().to_string(),
            source,
        };
        Ok(match format {
            FileFormat::Jsonl => FileSource::Jsonl(file::JsonlSource::open(path).map_err(io)?),
            FileFormat::MediawikiXml => {
                FileSource::Dump(Box::new(mediawiki::DumpSource::open(path).map_err(io)?))
            }
        })
    }

    /// Hold no line longer than the largest event `decode` accepts
    /// (JSONL): a longer one becomes a [`Payload::Cut`], dead-lettered with
    /// its size, instead of a buffer as large as the line (a whole export
    /// written as one line).
    pub fn limit_lines(mut self, decode: &crate::config::DecodeConfig) -> Self {
        if let FileSource::Jsonl(jsonl) = &mut self {
            jsonl.limit_lines(crate::event::max_event_bytes(decode.max_body_bytes));
        }
        self
    }

    /// Read no more than the first `bytes` of a plain JSONL file: what was
    /// there when the run started (see `fingerprint::claim`).
    pub fn read_only(mut self, bytes: u64) -> Self {
        if let FileSource::Jsonl(jsonl) = &mut self {
            jsonl.read_only(bytes);
        }
        self
    }

    /// Whether records are the file's lines as stored (plain JSONL), so
    /// that a record's end is a line break in the file itself.
    pub fn reads_plain_lines(&self) -> bool {
        matches!(self, FileSource::Jsonl(jsonl) if !is_bz2(jsonl.path()))
    }

    /// Up to `max` messages; empty at the end of the input.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<SourceMessage>, SourceError> {
        match self {
            FileSource::Jsonl(jsonl) => jsonl.next_batch(max).map_err(|source| SourceError::Io {
                path: jsonl.path().display().to_string(),
                source,
            }),
            FileSource::Dump(source) => Ok(source.next_batch(max)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"id":"w:1","op":"upsert","revision":3,"timestamp":"2024-01-01T00:00:00Z","body":"text \"quoted\"","x":1}"#;

    /// A line that is an event is parsed by its reader, and decodes to what
    /// the worker's own decoding makes of it; the payload keeps the line as
    /// it arrived.
    #[test]
    fn a_line_parsed_ahead_decodes_as_the_line_would() {
        let mut payload = Payload::line(EVENT.as_bytes().to_vec());
        assert!(matches!(payload, Payload::Parsed(_)), "{payload:?}");
        assert_eq!(payload.len(), EVENT.len());
        assert_eq!(&*payload.to_bytes(), EVENT.as_bytes());
        let decoded = payload.decode(1 << 20).unwrap();
        assert_eq!(
            decoded,
            crate::event::decode(EVENT.as_bytes(), 1 << 20).unwrap()
        );
        assert_eq!(payload, Payload::Raw(EVENT.as_bytes().to_vec()));
    }

    /// The worker's checks apply to a parsed line: the limits it decodes
    /// with and the schema's rules, and a rejected line stays whole for its
    /// dead letter. A line that is no event is left to the worker.
    #[test]
    fn a_line_parsed_ahead_is_checked_by_the_worker() {
        let mut payload = Payload::line(EVENT.as_bytes().to_vec());
        let too_small = payload.decode(4).unwrap_err();
        assert!(
            too_small.to_string().contains("max_body_bytes"),
            "{too_small}"
        );
        assert!(matches!(
            payload.decode(0).unwrap_err(),
            DecodeError::Oversized { .. }
        ));
        assert_eq!(
            &*payload.to_bytes(),
            EVENT.as_bytes(),
            "kept for the dead letter"
        );
        let long = EVENT.replace("text", &"t".repeat(crate::event::ENVELOPE_ALLOWANCE + 10));
        let mut payload = Payload::line(long.into_bytes());
        assert!(matches!(
            payload.decode(1).unwrap_err(),
            DecodeError::OversizedEvent { .. }
        ));
        let no_id = EVENT.replace("w:1", " ");
        let mut payload = Payload::line(no_id.into_bytes());
        assert_eq!(
            payload.decode(1 << 20).unwrap_err().to_string(),
            "field `id` is empty"
        );
        let not_json = Payload::line(b"{\"id\":".to_vec());
        assert_eq!(not_json, Payload::Raw(b"{\"id\":".to_vec()));
    }
}
