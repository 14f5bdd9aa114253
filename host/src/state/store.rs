//! The on-disk document state: one redb database file.
//!
//! Two tables: `docs` maps a document id to its encoded [`DocState`], and
//! `applied` maps a source partition (`topic/partition`) to the last offset
//! whose results are reflected in `docs`. Both change together, in one
//! transaction, so the store is always the state as of its `applied`
//! offsets.
//!
//! Commits are not synced one by one (`Durability::None`): after a crash the
//! database opens at its last synced commit, with the matching `applied`
//! offsets, and the results objects written since are applied again (see
//! [`super::restore`]). [`StateStore::sync`] syncs (at the end of a run and
//! before a checkpoint). A scope is entered in `applied` durably before
//! anything of it is processed ([`StateStore::claim`], applied through -1:
//! nothing yet), so a crash can never leave results of a scope the store
//! does not know it has to catch up with.

use std::path::Path;

use redb::{Database, Durability, ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::{DocState, StateError};

const DOCS: TableDefinition<&str, &[u8]> = TableDefinition::new("docs");
const APPLIED: TableDefinition<&str, i64> = TableDefinition::new("applied");

/// One partition's (or one local run's) document state on disk.
pub(crate) struct StateStore {
    db: Database,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").finish_non_exhaustive()
    }
}

/// A read-only snapshot of the documents (see [`StateStore::reader`]).
pub(crate) struct Reader(redb::ReadOnlyTable<&'static str, &'static [u8]>);

impl Reader {
    /// The state of `id` in this snapshot.
    pub(crate) fn get(&self, id: &str) -> Result<Option<DocState>, StateError> {
        let Some(value) = self.0.get(id).map_err(redb::Error::from)? else {
            return Ok(None);
        };
        DocState::decode(value.value())
            .map(Some)
            .ok_or_else(|| StateError::Corrupt(format!("the stored state of {id:?}")))
    }
}

impl StateStore {
    /// Open (or create) the database at `path`, with a page cache of at most
    /// `cache_bytes`: memory stays bounded whatever the number of documents.
    pub(crate) fn open(path: &Path, cache_bytes: usize) -> Result<Self, StateError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| StateError::open(path, e.into()))?;
        let store = StateStore { db };
        // Create both tables, so reads never meet a missing table.
        store.write(|_, _| Ok(()))?;
        Ok(store)
    }

    /// A snapshot of the documents as of the last commit, for lookups: one
    /// read transaction serves many lookups instead of one per event.
    pub(crate) fn reader(&self) -> Result<Reader, StateError> {
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        Ok(Reader(txn.open_table(DOCS).map_err(redb::Error::from)?))
    }

    /// The stored state of `id`.
    #[cfg(test)]
    pub(crate) fn get(&self, id: &str) -> Result<Option<DocState>, StateError> {
        self.reader()?.get(id)
    }

    /// The last offset of `scope` (`topic/partition`) reflected here.
    pub(crate) fn applied(&self, scope: &str) -> Result<Option<i64>, StateError> {
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        let applied = txn.open_table(APPLIED).map_err(redb::Error::from)?;
        Ok(applied
            .get(scope)
            .map_err(redb::Error::from)?
            .map(|v| v.value()))
    }

    /// Every scope entered here, with the last offset applied.
    pub(crate) fn scopes(&self) -> Result<Vec<(String, i64)>, StateError> {
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        let applied = txn.open_table(APPLIED).map_err(redb::Error::from)?;
        let mut scopes = Vec::new();
        for entry in applied.iter().map_err(redb::Error::from)? {
            let (scope, through) = entry.map_err(redb::Error::from)?;
            scopes.push((scope.value().to_owned(), through.value()));
        }
        Ok(scopes)
    }

    /// Enter `scope` (applied through -1, nothing yet) unless it is here,
    /// durably: from now on a restore catches up with its results.
    pub(crate) fn claim(&self, scope: &str) -> Result<(), StateError> {
        if self.applied(scope)?.is_some() {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(redb::Error::from)?;
        txn.set_durability(Durability::Immediate)
            .map_err(redb::Error::from)?;
        {
            let mut applied = txn.open_table(APPLIED).map_err(redb::Error::from)?;
            applied.insert(scope, -1).map_err(redb::Error::from)?;
        }
        txn.commit().map_err(redb::Error::from)?;
        Ok(())
    }

    /// Store `changes` and mark `scope` applied through `through`, in one
    /// transaction.
    pub(crate) fn commit<'a>(
        &self,
        changes: impl IntoIterator<Item = (&'a str, &'a DocState)>,
        scope: &str,
        through: i64,
    ) -> Result<(), StateError> {
        self.write(|docs, applied| {
            for (id, state) in changes {
                docs.insert(id, state.encode().as_slice())?;
            }
            applied.insert(scope, through)?;
            Ok(())
        })
    }

    /// Make every commit so far durable on disk.
    pub(crate) fn sync(&self) -> Result<(), StateError> {
        let mut txn = self.db.begin_write().map_err(redb::Error::from)?;
        txn.set_durability(Durability::Immediate)
            .map_err(redb::Error::from)?;
        txn.commit().map_err(redb::Error::from)?;
        Ok(())
    }

    /// Every document's state, in id order.
    pub(crate) fn for_each(
        &self,
        mut visit: impl FnMut(&str, DocState),
    ) -> Result<u64, StateError> {
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        let docs = txn.open_table(DOCS).map_err(redb::Error::from)?;
        let mut count = 0;
        for entry in docs.iter().map_err(redb::Error::from)? {
            let (id, value) = entry.map_err(redb::Error::from)?;
            let state = DocState::decode(value.value()).ok_or_else(|| {
                StateError::Corrupt(format!("the stored state of {:?}", id.value()))
            })?;
            visit(id.value(), state);
            count += 1;
        }
        Ok(count)
    }

    fn write(
        &self,
        body: impl FnOnce(
            &mut redb::Table<'_, &str, &[u8]>,
            &mut redb::Table<'_, &str, i64>,
        ) -> Result<(), redb::StorageError>,
    ) -> Result<(), StateError> {
        let mut txn = self.db.begin_write().map_err(redb::Error::from)?;
        txn.set_durability(Durability::None)
            .map_err(redb::Error::from)?;
        {
            let mut docs = txn.open_table(DOCS).map_err(redb::Error::from)?;
            let mut applied = txn.open_table(APPLIED).map_err(redb::Error::from)?;
            body(&mut docs, &mut applied).map_err(redb::Error::from)?;
        }
        txn.commit().map_err(redb::Error::from)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    #[test]
    fn changes_and_their_offset_are_stored_together_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let present = DocState::Present {
            content_hash: Digest::of(b"body"),
            chain: Digest::of(b"chain"),
            revision: 7,
            offset: 3,
        };
        let deleted = DocState::Deleted {
            revision: 9,
            offset: 4,
        };
        {
            let store = StateStore::open(&path, 1 << 20).unwrap();
            assert_eq!(store.applied("t/0").unwrap(), None);
            store
                .commit([("a", &present), ("b", &deleted)], "t/0", 4)
                .unwrap();
            store.sync().unwrap();
        }
        let store = StateStore::open(&path, 1 << 20).unwrap();
        assert_eq!(store.get("a").unwrap(), Some(present));
        assert_eq!(store.get("b").unwrap(), Some(deleted));
        assert_eq!(store.get("c").unwrap(), None);
        assert_eq!(store.applied("t/0").unwrap(), Some(4));
        let mut seen = Vec::new();
        assert_eq!(store.for_each(|id, _| seen.push(id.to_owned())).unwrap(), 2);
        assert_eq!(seen, ["a", "b"]);
    }
}
