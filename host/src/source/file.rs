//! The file source for local runs: a JSONL file of change events, plain
//! or `.bz2`.
//!
//! Lines are read as bytes (not `String`) so that invalid UTF-8 reaches the
//! decoder and is dead-lettered with its position instead of stopping the
//! read. Blank lines are skipped; offsets still count them, so an offset is
//! always the 0-based line number. A line longer than the limit is not
//! held: its head and size go on as a [`Payload::Cut`].

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Payload, Position, SourceMessage};

/// How much of a cut line its dead letter keeps.
pub const CUT_LINE_HEAD: usize = 64 << 10;

/// Reads change events from a JSONL file, in batches.
pub struct JsonlSource {
    reader: BufReader<Box<dyn Read + Send>>,
    /// The file, for errors.
    path: PathBuf,
    topic: Arc<str>,
    next_line: i64,
    /// The longest line held whole.
    max_line: usize,
    /// Bytes of the file still to read, when the run reads only its start.
    left: Option<u64>,
}

impl JsonlSource {
    /// Open `path`, decompressing a `.bz2` file on the fly. The topic in
    /// positions is the file name.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let input = super::open_decompressed(path)?;
        Ok(JsonlSource {
            reader: BufReader::with_capacity(1 << 20, input),
            path: path.to_owned(),
            topic: topic_for(path).into(),
            next_line: 0,
            max_line: crate::event::max_event_bytes(
                crate::config::DecodeConfig::default().max_body_bytes,
            ),
            left: None,
        })
    }

    /// Hold no line longer than `max` bytes (see [`Payload::Cut`]).
    pub fn limit_lines(&mut self, max: usize) {
        self.max_line = max;
    }

    /// Read no more than `bytes` bytes of the file (from where it is now).
    pub fn read_only(&mut self, bytes: u64) {
        self.left = Some(bytes);
    }

    /// Read the next line into `line`: at most `max_line` bytes of it, plus
    /// room for a byte-order mark and a line break. Returns its whole size
    /// (0 at the end of the file) and whether it ends with a line break.
    fn read_line(&mut self, line: &mut Vec<u8>) -> std::io::Result<(u64, bool)> {
        // A mark (3 bytes) and "\r\n" (2) are not the event's.
        const SLACK: usize = 5;
        let mut size = 0u64;
        loop {
            let mut available = self.reader.fill_buf()?;
            if let Some(left) = self.left {
                available = &available[..available
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX))];
            }
            if available.is_empty() {
                return Ok((size, false));
            }
            let (chunk, ends) = match memchr::memchr(b'\n', available) {
                Some(at) => (&available[..=at], true),
                None => (available, false),
            };
            let room = (self.max_line + SLACK).saturating_sub(line.len());
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            let n = chunk.len();
            size += n as u64;
            self.reader.consume(n);
            if let Some(left) = &mut self.left {
                *left -= n as u64;
            }
            if ends {
                return Ok((size, true));
            }
        }
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Up to `max` messages; an empty batch means the end of the file.
    pub fn next_batch(&mut self, max: usize) -> std::io::Result<Vec<SourceMessage>> {
        let mut batch = Vec::with_capacity(max);
        while batch.len() < max {
            let mut line = Vec::new();
            let (size, ended) = self.read_line(&mut line)?;
            if size == 0 {
                break;
            }
            let offset = self.next_line;
            self.next_line += 1;
            // A byte-order mark (Windows editors write one) is not part of
            // the first event.
            let mark = if offset == 0 && line.starts_with(b"\xEF\xBB\xBF") {
                line.drain(..3);
                3
            } else {
                0
            };
            let truncated = size > (line.len() + mark) as u64;
            if !truncated && line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            // The line's own bytes (no mark, no line break).
            let content = if truncated {
                size - mark as u64 - u64::from(ended)
            } else {
                line.len() as u64
            };
            let payload = if truncated || line.len() > self.max_line {
                line.truncate(utf8_floor(&line, CUT_LINE_HEAD));
                Payload::Cut {
                    head: line,
                    bytes: content,
                }
            } else {
                Payload::line(line)
            };
            batch.push(SourceMessage {
                position: Position {
                    topic: self.topic.clone(),
                    partition: 0,
                    offset,
                },
                payload,
            });
        }
        Ok(batch)
    }
}

/// `at`, or less so as not to split a UTF-8 character of `bytes` there
/// (when `bytes` is UTF-8 up to it).
fn utf8_floor(bytes: &[u8], at: usize) -> usize {
    let head = &bytes[..at.min(bytes.len())];
    match std::str::from_utf8(head) {
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        _ => head.len(),
    }
}

/// The file name, made safe for object keys (anything outside
/// `[A-Za-z0-9._-]` becomes `_`).
pub fn topic_for(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "input".to_owned());
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offsets of the next batch of up to 10 lines.
    fn offsets(source: &mut JsonlSource) -> Vec<i64> {
        source
            .next_batch(10)
            .unwrap()
            .iter()
            .map(|m| m.position.offset)
            .collect()
    }

    #[test]
    fn offsets_are_line_numbers_and_bytes_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("my events.jsonl");
        std::fs::write(&path, b"{\"a\":1}\r\n\n  \n\xff\xfe\n{\"b\":2}").unwrap();
        let mut source = JsonlSource::open(&path).unwrap();
        let batch = source.next_batch(10).unwrap();
        let got: Vec<(i64, &Payload)> = batch
            .iter()
            .map(|m| (m.position.offset, &m.payload))
            .collect();
        let raw = |bytes: &[u8]| Payload::Raw(bytes.to_vec());
        assert_eq!(
            got,
            [
                (0, &raw(b"{\"a\":1}")),
                (3, &raw(b"\xff\xfe")),
                (4, &raw(b"{\"b\":2}"))
            ]
        );
        assert_eq!(&*batch[0].position.topic, "my_events.jsonl");
        assert!(source.next_batch(10).unwrap().is_empty());
    }

    #[test]
    fn batches_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.jsonl");
        std::fs::write(&path, "1\n2\n3\n").unwrap();
        let mut source = JsonlSource::open(&path).unwrap();
        assert_eq!(source.next_batch(2).unwrap().len(), 2);
        assert_eq!(source.next_batch(2).unwrap().len(), 1);
    }

    #[test]
    fn compressed_jsonl_is_read_as_jsonl() {
        use crate::source::FileFormat;
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl.bz2");
        let mut encoder = bzip2::write::BzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            bzip2::Compression::fast(),
        );
        encoder.write_all(b"{\"a\":1}\n{\"b\":2}\n").unwrap();
        encoder.finish().unwrap();
        assert_eq!(FileFormat::from_path(&path), FileFormat::Jsonl);
        assert_eq!(offsets(&mut JsonlSource::open(&path).unwrap()), [0, 1]);
        for dump in ["enwiki-pages-articles.xml.bz2", "dump.bz2", "d.XML"] {
            assert_eq!(
                FileFormat::from_path(Path::new(dump)),
                FileFormat::MediawikiXml
            );
        }
        for jsonl in ["e.ndjson.bz2", "e.json.bz2", "e.jsonl", "e.txt"] {
            assert_eq!(FileFormat::from_path(Path::new(jsonl)), FileFormat::Jsonl);
        }
    }

    /// A line longer than the limit is not held whole: its head and size
    /// go on (to be dead-lettered), and the lines after it keep their
    /// offsets.
    #[test]
    fn a_line_over_the_limit_is_cut_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.jsonl");
        let long = "x".repeat(CUT_LINE_HEAD * 3);
        std::fs::write(&path, format!("{{\"a\":1}}\n{long}\n{{\"b\":2}}\n{long}")).unwrap();
        let mut source = JsonlSource::open(&path).unwrap();
        source.limit_lines(CUT_LINE_HEAD * 2);
        let batch = source.next_batch(10).unwrap();
        let mut got: Vec<(i64, Payload)> = batch
            .into_iter()
            .map(|m| (m.position.offset, m.payload))
            .collect();
        let cut = |bytes: usize| Payload::Cut {
            head: long.as_bytes()[..CUT_LINE_HEAD].to_vec(),
            bytes: bytes as u64,
        };
        assert_eq!(
            got,
            [
                (0, Payload::Raw(b"{\"a\":1}".to_vec())),
                (1, cut(long.len())),
                (2, Payload::Raw(b"{\"b\":2}".to_vec())),
                (3, cut(long.len())),
            ]
        );
        let error = got[1].1.decode(10).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("the event is {} bytes", long.len())),
            "{error}"
        );
    }

    /// At the limit exactly, a line is whole whatever surrounds it (a
    /// byte-order mark, "\r\n"); one byte more and it is cut, at a
    /// character boundary.
    #[test]
    fn the_line_limit_counts_the_events_bytes_only() {
        const MAX: usize = CUT_LINE_HEAD + 10;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.jsonl");
        let at_limit = "x".repeat(MAX);
        // "é" is 2 bytes: a cut at CUT_LINE_HEAD + 1 would split one.
        let over = format!("x{}", "é".repeat(MAX / 2));
        std::fs::write(
            &path,
            format!("\u{feff}{at_limit}\r\n{at_limit}\r\n{over}\r\n"),
        )
        .unwrap();
        let mut source = JsonlSource::open(&path).unwrap();
        source.limit_lines(MAX);
        let got: Vec<Payload> = source
            .next_batch(10)
            .unwrap()
            .into_iter()
            .map(|m| m.payload)
            .collect();
        assert_eq!(got[0], Payload::Raw(at_limit.clone().into_bytes()));
        assert_eq!(got[1], Payload::Raw(at_limit.into_bytes()));
        let Payload::Cut { head, bytes } = &got[2] else {
            panic!("not cut: {:?}", got[2].len());
        };
        assert_eq!(*bytes, over.len() as u64);
        assert_eq!(head.len(), CUT_LINE_HEAD - 1);
        assert!(std::str::from_utf8(head).is_ok());
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.jsonl");
        std::fs::write(&path, b"\xEF\xBB\xBF{\"a\":1}\n{\"b\":2}\n").unwrap();
        let payloads: Vec<Payload> = JsonlSource::open(&path)
            .unwrap()
            .next_batch(10)
            .unwrap()
            .into_iter()
            .map(|m| m.payload)
            .collect();
        assert_eq!(
            payloads,
            [
                Payload::Raw(b"{\"a\":1}".to_vec()),
                Payload::Raw(b"{\"b\":2}".to_vec())
            ]
        );
    }

    /// A run reads the bytes its file had when it started, not lines
    /// appended meanwhile (the next run's, after the fingerprint check).
    #[test]
    fn a_run_reads_only_what_the_file_had_when_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.jsonl");
        std::fs::write(&path, "1\n2\n3\n").unwrap();
        let mut source = JsonlSource::open(&path).unwrap();
        source.read_only(3);
        // "1\n2" : the second line's break was not there yet.
        assert_eq!(offsets(&mut source), [0, 1]);
        assert!(source.next_batch(10).unwrap().is_empty());
    }
}
