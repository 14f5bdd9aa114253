//! Reading a file source ahead of its worker: a thread of its own reads
//! (and parses: a dump's XML, a JSONL file's events) the next batches while the worker runs the
//! current one through the chain, so on two cores reading and the chain
//! overlap instead of taking turns.
//!
//! Invariants:
//! - batches arrive in file order, each exactly once, then one empty batch
//!   for the end of the input; a read error arrives in its place, after the
//!   batches read before it, and ends the reading;
//! - at most [`DEPTH`] batches wait read and not yet taken, so memory stays
//!   bounded whatever the file's size;
//! - dropping the reader stops its thread at its next hand-over;
//! - a panic of the reading thread is a panic of the caller, as it was when
//!   the worker read the file itself.

use std::thread::JoinHandle;

use tokio::sync::mpsc;

use super::{FileSource, SourceError, SourceMessage};

/// Batches read ahead of the worker: one to hand over as soon as the worker
/// asks, one being read.
const DEPTH: usize = 2;

/// A file source read by a thread of its own, a batch at a time.
pub(crate) struct ReadAhead {
    batches: mpsc::Receiver<Result<Vec<SourceMessage>, SourceError>>,
    thread: Option<JoinHandle<()>>,
}

impl ReadAhead {
    /// Start reading `source` in batches of up to `batch_size` messages.
    pub(crate) fn start(mut source: FileSource, batch_size: usize) -> std::io::Result<Self> {
        let (sender, batches) = mpsc::channel(DEPTH);
        let thread = std::thread::Builder::new()
            .name("weir-read".into())
            .spawn(move || {
                loop {
                    let batch = source.next_batch(batch_size);
                    let last = batch.as_ref().map_or(true, Vec::is_empty);
                    // Fails only once the reader is dropped: nobody reads on.
                    if sender.blocking_send(batch).is_err() || last {
                        return;
                    }
                }
            })?;
        Ok(ReadAhead {
            batches,
            thread: Some(thread),
        })
    }

    /// The next batch: empty at the end of the input.
    pub(crate) async fn next_batch(&mut self) -> Result<Vec<SourceMessage>, SourceError> {
        if let Some(batch) = self.batches.recv().await {
            return batch;
        }
        // The thread ended without handing over the end of the input or an
        // error: it panicked, or the end was already taken.
        if let Some(Err(panic)) = self.thread.take().map(JoinHandle::join) {
            std::panic::resume_unwind(panic);
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FileFormat, Payload};

    fn lines(n: usize) -> String {
        (0..n).map(|i| format!("{{\"line\":{i}}}\n")).collect()
    }

    /// The offsets of every batch up to the end of the input, and the
    /// error that ended it, if any.
    async fn read_all(mut reader: ReadAhead) -> (Vec<Vec<i64>>, Option<SourceError>) {
        let mut batches = Vec::new();
        loop {
            match reader.next_batch().await {
                Ok(batch) if batch.is_empty() => return (batches, None),
                Ok(batch) => batches.push(batch.iter().map(|m| m.position.offset).collect()),
                Err(e) => return (batches, Some(e)),
            }
        }
    }

    #[tokio::test]
    async fn batches_arrive_in_order_then_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, lines(10)).unwrap();
        let mut reader =
            ReadAhead::start(FileSource::open(&path, FileFormat::Jsonl).unwrap(), 4).unwrap();
        let first = reader.next_batch().await.unwrap();
        assert!(
            matches!(&first[3].payload, Payload::Raw(line) if line == b"{\"line\":3}"),
            "the lines themselves"
        );
        let (rest, error) = read_all(reader).await;
        assert!(error.is_none());
        assert_eq!(rest, vec![vec![4, 5, 6, 7], vec![8, 9]]);
    }

    /// A read error names the file (a directory opens, but does not read).
    #[tokio::test]
    async fn a_read_error_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let source = FileSource::open(dir.path(), FileFormat::Jsonl).unwrap();
        let (_, error) = read_all(ReadAhead::start(source, 4).unwrap()).await;
        let message = error.expect("a directory is not read").to_string();
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
    }

    /// A dump broken after its first pages: the pages before the break
    /// arrive, then the error, as when the worker read the file itself.
    #[tokio::test]
    async fn a_read_error_arrives_after_the_batches_before_it() {
        let page = |id: u32| {
            format!(
                "<page><title>P{id}</title><ns>0</ns><id>{id}</id><revision><id>{id}</id>\
                 <timestamp>2024-01-01T00:00:00Z</timestamp><text>body {id}</text></revision></page>"
            )
        };
        let dump = format!(
            "<mediawiki xmlns=\"http://www.mediawiki.org/xml/export-0.10/\"><siteinfo><dbname>xwiki</dbname></siteinfo>{}{}<page><title>broken</wrong></page></mediawiki>",
            page(1),
            page(2),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.xml");
        std::fs::write(&path, dump).unwrap();
        let source = FileSource::open(&path, FileFormat::MediawikiXml).unwrap();
        let (batches, error) = read_all(ReadAhead::start(source, 1).unwrap()).await;
        assert_eq!(batches, vec![vec![0], vec![1]]);
        assert!(error.is_some(), "the broken page is an error");
    }
}
