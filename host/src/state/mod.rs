//! Event mode: what was last made of every document of a partition, and the
//! skip rule that decides whether an event needs the chain at all.
//!
//! For each document id the state holds its content hash, the chain
//! identity that processed it, the revision and input offset of its last
//! event, or that it was deleted ([`DocState`]). Events are keyed by
//! document id, so a document's state lives with its partition: no lookup
//! ever leaves the host.
//!
//! Parts:
//! - [`store`]: the embedded on-disk store (redb), one per partition in a
//!   Kafka host, one per pipeline in a local run;
//! - [`checkpoint`]: snapshots of a partition's store in the object store,
//!   written at commit points;
//! - [`restore`]: rebuilding a partition's store from its latest checkpoint
//!   plus the results objects written after it.
//!
//! Invariants:
//! - the store holds only what is durable in the sink: the changes of the
//!   open batch, and of the batch being written, wait in memory
//!   ([`PartitionState`]'s overlays, which lookups see) and reach the store
//!   in one transaction with the offset they are durable through, after the
//!   batch's results object is written. A crash between the two loses
//!   nothing: the results object is applied again on restore. So an event
//!   never looks unchanged because of a result that was never written;
//! - a skipped event still gets a line in its range's results object
//!   (`"skipped": "unchanged"` or `"stale"`), so every offset is accounted
//!   for and the state can be rebuilt from the results alone;
//! - a dead-lettered event changes nothing: the document is recomputed on
//!   its next event.

pub(crate) mod checkpoint;
pub(crate) mod restore;
pub(crate) mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::sink::{Sink, SinkError};
use crate::storage::StorageError;
use store::{Reader, StateStore};

/// What was last made of one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocState {
    /// Its last upsert went through (or was found unchanged for) the chain.
    Present {
        /// sha256 of the body.
        content_hash: Digest,
        /// The identity of the chain that processed it.
        chain: Digest,
        /// Revision of the last event.
        revision: u64,
        /// Input offset of the last event.
        offset: i64,
    },
    /// Its last event was a delete.
    Deleted {
        /// Revision of the delete.
        revision: u64,
        /// Input offset of the delete.
        offset: i64,
    },
}

/// Length of an encoded [`DocState`]: format, kind, two digests, revision,
/// offset.
const ENCODED_LEN: usize = 2 + 32 + 32 + 8 + 8;
const FORMAT: u8 = 1;

impl DocState {
    /// The revision of the last event.
    pub fn revision(&self) -> u64 {
        match self {
            DocState::Present { revision, .. } | DocState::Deleted { revision, .. } => *revision,
        }
    }

    /// A fixed-size binary form (big-endian numbers).
    pub(crate) fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        out[0] = FORMAT;
        let (kind, hash, chain, revision, offset) = match self {
            DocState::Present {
                content_hash,
                chain,
                revision,
                offset,
            } => (
                1,
                *content_hash.as_bytes(),
                *chain.as_bytes(),
                revision,
                offset,
            ),
            DocState::Deleted { revision, offset } => (2, [0; 32], [0; 32], revision, offset),
        };
        out[1] = kind;
        out[2..34].copy_from_slice(&hash);
        out[34..66].copy_from_slice(&chain);
        out[66..74].copy_from_slice(&revision.to_be_bytes());
        out[74..82].copy_from_slice(&offset.to_be_bytes());
        out
    }

    /// Read [`DocState::encode`]'s form back (`None` if it is not one).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; ENCODED_LEN] = bytes.try_into().ok()?;
        if bytes[0] != FORMAT {
            return None;
        }
        let digest = |range: std::ops::Range<usize>| {
            Digest::from_bytes(bytes[range].try_into().expect("32 bytes"))
        };
        let revision = u64::from_be_bytes(bytes[66..74].try_into().expect("8 bytes"));
        let offset = i64::from_be_bytes(bytes[74..82].try_into().expect("8 bytes"));
        match bytes[1] {
            1 => Some(DocState::Present {
                content_hash: digest(2..34),
                chain: digest(34..66),
                revision,
                offset,
            }),
            2 => Some(DocState::Deleted { revision, offset }),
            _ => None,
        }
    }
}

/// Why an event was not processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// Same body, same chain as the document's last processed event.
    Unchanged,
    /// Older than the document's stored revision.
    Stale,
}

/// What to do with an upsert: run the chain, or skip it.
pub fn upsert_verdict(
    stored: Option<&DocState>,
    content_hash: Digest,
    chain: Digest,
    revision: u64,
) -> Option<Skip> {
    let stored = stored?;
    if revision < stored.revision() {
        return Some(Skip::Stale);
    }
    match stored {
        DocState::Present {
            content_hash: stored_hash,
            chain: stored_chain,
            ..
        } if *stored_hash == content_hash && *stored_chain == chain => Some(Skip::Unchanged),
        _ => None,
    }
}

/// What to do with a delete: write its tombstone, or skip it (stale, or
/// the document is already deleted).
pub fn delete_verdict(stored: Option<&DocState>, revision: u64) -> Option<Skip> {
    match stored? {
        stored if revision < stored.revision() => Some(Skip::Stale),
        DocState::Deleted { .. } => Some(Skip::Unchanged),
        DocState::Present { .. } => None,
    }
}

/// Problems with the state. Every one stops the partition (it is the
/// host's fault, never the record's); the state is rebuilt on restart.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database file could not be opened or created.
    #[error("opening the event-mode state {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What redb reported.
        source: redb::Error,
    },
    /// A read or write of the database failed.
    #[error("event-mode state: {0}")]
    Store(#[from] redb::Error),
    /// Stored bytes are not a document state.
    #[error("event-mode state is corrupt: {0}")]
    Corrupt(String),
    /// The state directory could not be created.
    #[error("creating the event-mode state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A checkpoint or results object could not be read or written.
    #[error("event-mode state: {what}: {source}")]
    Objects {
        /// What was being read or written.
        what: String,
        /// The storage error.
        source: StorageError,
    },
    /// Results objects could not be listed or read.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl StateError {
    /// A `Dir` error about `path`, for `map_err`.
    fn dir(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| StateError::Dir {
            path: path.to_owned(),
            source,
        }
    }

    fn open(path: &Path, source: redb::Error) -> Self {
        StateError::Open {
            path: path.to_owned(),
            source,
        }
    }
}

/// Where checkpoints go and how often.
#[derive(Debug, Clone)]
pub struct CheckpointPolicy {
    /// Least time between two checkpoints of a partition.
    pub every: Duration,
}

/// The changes of a batch handed over to be written
/// ([`PartitionState::seal`]), to hand back to
/// [`PartitionState::batch_written`] once the batch is written: the store
/// takes in only changes that were sealed, once, through the last offset of
/// their batch. Not cloneable, and made only by `seal`.
#[derive(Debug)]
#[must_use = "hand it back to batch_written once the batch is written"]
pub struct SealedChanges {
    /// The batch's last offset.
    through: i64,
}

/// A document's last event in the current call, before the call's
/// outcomes are recorded.
#[derive(Debug, Clone, Copy)]
enum InCall {
    /// It went to the chain: its outcome is not known yet, so a later event
    /// of the document is processed, never compared with its old state.
    Computing,
    /// Its outcome was known without the chain (a tombstone, a skip as
    /// unchanged): a later event is compared with it, as it would be in the
    /// next call.
    Known(DocState),
}

/// One partition's state while a worker drives it: the store, and the
/// changes that are not durable yet (of the open batch, and of the batch
/// being written).
pub struct PartitionState {
    store: StateStore,
    /// A snapshot for lookups, as of the last commit (dropped by every
    /// commit, opened again by the next lookup).
    reader: Option<Reader>,
    /// The offset of the newest checkpoint written by this worker.
    checkpointed: Option<i64>,
    /// `topic/partition`: the key of this source partition's applied offset.
    scope: String,
    /// Changes of the open batch, newest last per id.
    pending: HashMap<String, DocState>,
    /// Changes of the batch being written: they reach the store when the
    /// batch is written (its [`SealedChanges`] handed back), and lookups see
    /// them meanwhile.
    sealed: Option<HashMap<String, DocState>>,
    /// Documents with an event earlier in the current call, and what a
    /// later event of the same document in the call is compared with.
    this_call: HashMap<String, InCall>,
    /// Kafka hosts checkpoint; local runs keep their store on disk instead.
    checkpoints: Option<(CheckpointPolicy, Instant)>,
    /// Keeps a temporary store's directory alive (Kafka hosts restore into
    /// a fresh one at every assignment).
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for PartitionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionState")
            .field("scope", &self.scope)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// Default page cache of one store.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

impl PartitionState {
    /// A local run's state: the store at `dir/state.redb`, kept between
    /// runs, shared by every input file of the pipeline. The file's scope
    /// is entered in it durably first: a run killed before it synced is
    /// caught up with by the next run, whichever file that one reads.
    pub fn local(
        dir: &Path,
        cache_bytes: usize,
        topic: &str,
        partition: i32,
    ) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(StateError::dir(dir))?;
        let store = StateStore::open(&dir.join("state.redb"), cache_bytes)?;
        let state = Self::with_store(store, topic, partition, None, None);
        state.store.claim(&state.scope)?;
        Ok(state)
    }

    /// A Kafka partition's state: a fresh store in a temporary directory
    /// under `dir`, to be restored by [`PartitionState::restore`] before the
    /// partition is processed, and checkpointed by `policy`.
    pub fn for_assignment(
        dir: &Path,
        cache_bytes: usize,
        topic: &str,
        partition: i32,
        policy: CheckpointPolicy,
    ) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(StateError::dir(dir))?;
        let temp = tempfile::Builder::new()
            .prefix(&format!("{}-{partition}-", sanitize(topic)))
            .tempdir_in(dir)
            .map_err(StateError::dir(dir))?;
        let store = StateStore::open(&temp.path().join("state.redb"), cache_bytes)?;
        Ok(Self::with_store(
            store,
            topic,
            partition,
            Some((policy, Instant::now())),
            Some(temp),
        ))
    }

    fn with_store(
        store: StateStore,
        topic: &str,
        partition: i32,
        checkpoints: Option<(CheckpointPolicy, Instant)>,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        PartitionState {
            store,
            reader: None,
            checkpointed: None,
            scope: format!("{topic}/{partition}"),
            pending: HashMap::new(),
            sealed: None,
            this_call: HashMap::new(),
            checkpoints,
            _dir: dir,
        }
    }

    /// Bring the store up to everything durable in `sink` for this
    /// partition: the latest checkpoint first (Kafka hosts, whose store
    /// starts empty), then every results object written after what the
    /// store holds; in a local run's store, those of every other file the
    /// store has seen as well (a run killed before it synced left its
    /// file's results ahead of the store).
    pub async fn restore(
        &mut self,
        sink: &Sink,
        topic: &str,
        partition: i32,
    ) -> Result<(), StateError> {
        let started = Instant::now();
        let mut from_checkpoint = None;
        if self.checkpoints.is_some() && self.store.applied(&self.scope)?.is_none() {
            from_checkpoint =
                checkpoint::load_latest(&self.store, &self.scope, sink, topic, partition).await?;
        }
        for (scope, _) in self.store.scopes()? {
            let other = scope
                .rsplit_once('/')
                .filter(|_| scope != self.scope)
                .and_then(|(topic, partition)| Some((topic, partition.parse::<i32>().ok()?)));
            if let Some((topic, partition)) = other {
                restore::catch_up(&self.store, &scope, sink, topic, partition).await?;
            }
        }
        let applied = restore::catch_up(&self.store, &self.scope, sink, topic, partition).await?;
        tracing::info!(
            topic,
            partition,
            checkpoint = ?from_checkpoint,
            results_objects = applied.objects,
            lines = applied.lines,
            through = ?self.store.applied(&self.scope)?,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "event-mode state restored"
        );
        Ok(())
    }

    /// The state of `id`, including changes of the open batch and of the
    /// batch being written.
    pub fn lookup(&mut self, id: &str) -> Result<Option<DocState>, StateError> {
        if let Some(state) = self
            .pending
            .get(id)
            .or_else(|| self.sealed.as_ref()?.get(id))
        {
            return Ok(Some(*state));
        }
        let reader = match &mut self.reader {
            Some(reader) => reader,
            None => self.reader.insert(self.store.reader()?),
        };
        reader.get(id)
    }

    /// What an event of `id` in the current call is compared with: the
    /// outcome of an earlier event of `id` in this call if it is known
    /// (`None`, process it, while that one is on its way through the
    /// chain), else the state as [`PartitionState::lookup`] has it.
    pub fn current(&mut self, id: &str) -> Result<Option<DocState>, StateError> {
        match self.this_call.get(id) {
            Some(InCall::Computing) => Ok(None),
            Some(InCall::Known(state)) => Ok(Some(*state)),
            None => self.lookup(id),
        }
    }

    /// An event of `id` in the current call went to the chain: until its
    /// outcome is recorded, later events of `id` in the call are processed.
    pub fn computing(&mut self, id: &str) {
        self.this_call.insert(id.to_owned(), InCall::Computing);
    }

    /// An event of `id` in the current call has an outcome known without
    /// the chain (a tombstone, a skip as unchanged), recorded with the
    /// call's: later events of `id` in the call are compared with `state`.
    pub fn known(&mut self, id: &str, state: DocState) {
        self.this_call.insert(id.to_owned(), InCall::Known(state));
    }

    /// Record the outcome of an event (in offset order); it becomes durable
    /// with the batch.
    pub fn record(&mut self, id: &str, state: DocState) {
        self.pending.insert(id.to_owned(), state);
    }

    /// The current call's events all have their outcome.
    pub fn end_call(&mut self) {
        self.this_call.clear();
    }

    /// The open batch, through `through`, goes to be written: its changes
    /// wait for the returned token to come back to
    /// [`PartitionState::batch_written`]. One batch at a time is written.
    pub fn seal(&mut self, through: i64) -> SealedChanges {
        debug_assert!(self.sealed.is_none(), "one batch is written at a time");
        self.sealed = Some(std::mem::take(&mut self.pending));
        SealedChanges { through }
    }

    /// The batch of `sealed` was written: store its changes, and checkpoint
    /// if one is due.
    pub async fn batch_written(
        &mut self,
        sealed: SealedChanges,
        sink: &Sink,
        topic: &str,
        partition: i32,
    ) -> Result<(), StateError> {
        let through = sealed.through;
        // Only `seal` makes a token, and only this call takes the changes.
        let changes = self.sealed.take().unwrap_or_default();
        self.reader = None;
        self.store.commit(
            changes.iter().map(|(id, state)| (id.as_str(), state)),
            &self.scope,
            through,
        )?;
        let due = self
            .checkpoints
            .as_ref()
            .is_some_and(|(policy, last)| last.elapsed() >= policy.every);
        if due {
            self.checkpoint(sink, topic, partition).await?;
        }
        Ok(())
    }

    /// The partition is given up or the run ends: make the store durable on
    /// disk, and (Kafka hosts) checkpoint what was not checkpointed yet, so
    /// the next owner restores quickly.
    pub async fn finish(
        &mut self,
        sink: &Sink,
        topic: &str,
        partition: i32,
    ) -> Result<(), StateError> {
        self.store.sync()?;
        if self.checkpoints.is_some() {
            self.checkpoint(sink, topic, partition).await?;
        }
        Ok(())
    }

    /// Write a checkpoint as of the applied offset, unless this worker
    /// already wrote one there.
    async fn checkpoint(
        &mut self,
        sink: &Sink,
        topic: &str,
        partition: i32,
    ) -> Result<(), StateError> {
        let Some(through) = self.store.applied(&self.scope)? else {
            return Ok(());
        };
        if let Some((_, last)) = &mut self.checkpoints {
            *last = Instant::now();
        }
        if self.checkpointed != Some(through) {
            checkpoint::write(&self.store, through, sink, topic, partition).await?;
            self.checkpointed = Some(through);
        }
        Ok(())
    }
}

/// A topic name as a file-name prefix.
fn sanitize(topic: &str) -> String {
    topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
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

    fn present(body: &str, chain: &str, revision: u64) -> DocState {
        DocState::Present {
            content_hash: Digest::of(body.as_bytes()),
            chain: Digest::of(chain.as_bytes()),
            revision,
            offset: 0,
        }
    }

    #[test]
    fn states_round_trip_through_their_binary_form() {
        for state in [
            present("a", "c", 3),
            DocState::Deleted {
                revision: u64::MAX,
                offset: -1,
            },
        ] {
            assert_eq!(DocState::decode(&state.encode()), Some(state));
        }
        assert_eq!(DocState::decode(b"short"), None);
        let mut wrong_kind = present("a", "c", 3).encode();
        wrong_kind[1] = 9;
        assert_eq!(DocState::decode(&wrong_kind), None);
    }

    #[test]
    fn the_skip_rule() {
        let body = Digest::of(b"body");
        let chain = Digest::of(b"chain");
        let stored = present("body", "chain", 5);
        // Never seen: process.
        assert_eq!(upsert_verdict(None, body, chain, 1), None);
        // Same body and chain, same or newer revision: unchanged.
        assert_eq!(
            upsert_verdict(Some(&stored), body, chain, 5),
            Some(Skip::Unchanged)
        );
        assert_eq!(
            upsert_verdict(Some(&stored), body, chain, 6),
            Some(Skip::Unchanged)
        );
        // Older revision: stale, whatever the body.
        assert_eq!(
            upsert_verdict(Some(&stored), Digest::of(b"x"), chain, 4),
            Some(Skip::Stale)
        );
        // New body or new chain: process.
        assert_eq!(
            upsert_verdict(Some(&stored), Digest::of(b"x"), chain, 6),
            None
        );
        assert_eq!(
            upsert_verdict(Some(&stored), body, Digest::of(b"new"), 6),
            None
        );
        // After a delete: process (unless older than the delete).
        let deleted = DocState::Deleted {
            revision: 5,
            offset: 0,
        };
        assert_eq!(upsert_verdict(Some(&deleted), body, chain, 6), None);
        assert_eq!(
            upsert_verdict(Some(&deleted), body, chain, 4),
            Some(Skip::Stale)
        );
        // Deletes: a tombstone, unless older than what is stored or the
        // document is already deleted.
        assert_eq!(delete_verdict(None, 1), None);
        assert_eq!(delete_verdict(Some(&stored), 5), None);
        assert_eq!(delete_verdict(Some(&stored), 4), Some(Skip::Stale));
        assert_eq!(delete_verdict(Some(&deleted), 5), Some(Skip::Unchanged));
        assert_eq!(delete_verdict(Some(&deleted), 4), Some(Skip::Stale));
    }

    /// While a batch is being written, lookups see its changes (a second
    /// event of the document is judged against the first, not against
    /// what is stored), but the store gets them only once the batch is
    /// written: a crash during the write leaves the store as it was.
    #[tokio::test]
    async fn a_sealed_batch_is_seen_by_lookups_and_stored_once_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::storage::ObjectStore::memory();
        let sink = Sink::new(
            "p",
            store.clone(),
            crate::dlq::DeadLetterSink::Store(store.clone()),
        );
        let written = present("x", "c", 1);
        {
            let mut state = PartitionState::local(dir.path(), 1 << 20, "t", 0).unwrap();
            state.record("a", written);
            let _sealed = state.seal(0);
            state.record("b", present("y", "c", 1));
            assert_eq!(state.lookup("a").unwrap(), Some(written), "sealed");
            // Entered (through -1), nothing applied.
            assert_eq!(state.store.applied(&state.scope).unwrap(), Some(-1));
            // Dropped here: a crash while the batch is being written.
        }
        let mut state = PartitionState::local(dir.path(), 1 << 20, "t", 0).unwrap();
        assert_eq!(state.lookup("a").unwrap(), None, "never written");
        state.record("a", written);
        let sealed = state.seal(0);
        state.record("b", present("y", "c", 1));
        state.batch_written(sealed, &sink, "t", 0).await.unwrap();
        assert_eq!(state.store.applied(&state.scope).unwrap(), Some(0));
        assert_eq!(state.store.get("a").unwrap(), Some(written));
        assert_eq!(
            state.store.get("b").unwrap(),
            None,
            "b is in the open batch"
        );
        assert!(state.lookup("b").unwrap().is_some());
    }
}
