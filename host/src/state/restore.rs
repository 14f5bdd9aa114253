//! Bringing a store up to date from the partition's results objects: every
//! line of every object after the store's applied offset, in offset order.
//!
//! A results line carries what the state needs (id, revision, operation,
//! content hash, chain identity, whether it was skipped), so the results
//! are the state's changelog: applying them again is harmless (the same
//! lines give the same state), and a store that is behind, empty, or lost
//! its last commits in a crash ends up the same after catching up.
//!
//! Lines without a chain identity (written before event mode existed) are
//! not applied: their documents are recomputed on their next event, never
//! skipped wrongly. Nor is a line older (by revision) than what the store
//! holds for its document: a local store is shared by several files, and
//! catching up with one file's results must not take a document back
//! behind another file's newer revision.

use std::collections::HashMap;

use serde::Deserialize;

use super::store::StateStore;
use super::{DocState, Skip, StateError};
use crate::digest::Digest;
use crate::event::Operation;
use crate::sink::Sink;

/// What catching up read.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CaughtUp {
    /// Results objects read.
    pub objects: u64,
    /// Lines applied.
    pub lines: u64,
}

/// The fields of a results line that the state needs; the rest (outputs,
/// metadata, lineage) is skipped by the parser.
#[derive(Deserialize)]
struct WrittenLine {
    position: WrittenPosition,
    id: String,
    revision: u64,
    op: Operation,
    content_hash: Option<Digest>,
    chain: Option<Digest>,
    skipped: Option<Skip>,
}

#[derive(Deserialize)]
struct WrittenPosition {
    offset: i64,
}

impl WrittenLine {
    /// The document's state after this line, or `None` if the line changes
    /// nothing (a stale event, or a line without a chain identity).
    fn state(&self) -> Option<DocState> {
        let offset = self.position.offset;
        match (self.op, self.skipped) {
            (_, Some(Skip::Stale)) => None,
            (Operation::Delete, _) => Some(DocState::Deleted {
                revision: self.revision,
                offset,
            }),
            (Operation::Upsert, _) => Some(DocState::Present {
                content_hash: self.content_hash?,
                chain: self.chain?,
                revision: self.revision,
                offset,
            }),
        }
    }
}

/// Apply every results line of `topic`/`partition` after the store's
/// applied offset for `scope`, object by object (each in one transaction).
pub(crate) async fn catch_up(
    store: &StateStore,
    scope: &str,
    sink: &Sink,
    topic: &str,
    partition: i32,
) -> Result<CaughtUp, StateError> {
    let mut applied = store.applied(scope)?;
    let mut caught_up = CaughtUp::default();
    for (key, (_, last)) in sink.written_after(topic, partition, applied).await? {
        let Some(lines) = sink.read_results(&key).await? else {
            continue;
        };
        let stored = store.reader()?;
        let mut changes: HashMap<String, DocState> = HashMap::new();
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let line: WrittenLine = serde_json::from_slice(line)
                .map_err(|e| StateError::Corrupt(format!("a line of {key}: {e}")))?;
            if applied.is_some_and(|applied| line.position.offset <= applied) {
                continue;
            }
            let Some(state) = line.state() else {
                continue;
            };
            let newest = match changes.get(&line.id) {
                Some(change) => Some(*change),
                None => stored.get(&line.id)?,
            };
            if newest.is_some_and(|newest| newest.revision() > state.revision()) {
                continue;
            }
            changes.insert(line.id, state);
            caught_up.lines += 1;
        }
        drop(stored);
        store.commit(changes.iter().map(|(id, s)| (id.as_str(), s)), scope, last)?;
        applied = Some(last);
        caught_up.objects += 1;
    }
    Ok(caught_up)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> WrittenLine {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn lines_map_to_states() {
        let hash = Digest::of(b"body");
        let chain = Digest::of(b"chain");
        let run = format!(
            r#"{{"position":{{"topic":"t","partition":0,"offset":4}},"id":"a","revision":2,"op":"upsert","content_hash":"{hash}","chain":"{chain}","metadata":{{}},"lineage":[],"outputs":[{{"text":"x"}}]}}"#
        );
        let expected = DocState::Present {
            content_hash: hash,
            chain,
            revision: 2,
            offset: 4,
        };
        assert_eq!(parse(&run).state(), Some(expected));
        let unchanged = run.replace(r#""metadata""#, r#""skipped":"unchanged","metadata""#);
        assert_eq!(parse(&unchanged).state(), Some(expected));
        let stale = run.replace(r#""metadata""#, r#""skipped":"stale","metadata""#);
        assert_eq!(parse(&stale).state(), None);
        let old_format = run.replace(&format!(r#""chain":"{chain}","#), "");
        assert_eq!(parse(&old_format).state(), None);
        let delete = r#"{"position":{"topic":"t","partition":0,"offset":5},"id":"a","revision":3,"op":"delete","metadata":{},"lineage":[],"outputs":[]}"#;
        assert_eq!(
            parse(delete).state(),
            Some(DocState::Deleted {
                revision: 3,
                offset: 5
            })
        );
    }

    /// Catching up with one file's results does not take a document back
    /// behind a newer revision another file's run stored (a local store is
    /// shared by the pipeline's files).
    #[tokio::test]
    async fn an_older_revision_does_not_replace_a_newer_one() {
        let objects = crate::storage::ObjectStore::memory();
        let sink = Sink::new(
            "p",
            objects.clone(),
            crate::dlq::DeadLetterSink::Store(objects.clone()),
        );
        let (hash, chain) = (Digest::of(b"body"), Digest::of(b"chain"));
        let line = |offset: i64, id: &str, revision: u64| {
            format!(
                r#"{{"position":{{"topic":"b","partition":0,"offset":{offset}}},"id":"{id}","revision":{revision},"op":"upsert","content_hash":"{hash}","chain":"{chain}","metadata":{{}},"lineage":[],"outputs":[]}}"#
            )
        };
        let lines = format!("{}\n{}\n", line(0, "x", 2), line(1, "y", 2));
        objects
            .put(
                &sink.results_key("b", 0, 0, 1),
                zstd::encode_all(lines.as_bytes(), 1).unwrap(),
            )
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.redb"), 1 << 20).unwrap();
        let newer = DocState::Present {
            content_hash: hash,
            chain,
            revision: 5,
            offset: 9,
        };
        store.commit([("x", &newer)], "a/0", 9).unwrap();
        let caught_up = catch_up(&store, "b/0", &sink, "b", 0).await.unwrap();
        assert_eq!(caught_up.lines, 1, "y only");
        assert_eq!(store.get("x").unwrap(), Some(newer));
        assert_eq!(store.get("y").unwrap().map(|s| s.revision()), Some(2));
        assert_eq!(store.applied("b/0").unwrap(), Some(1));
    }
}
