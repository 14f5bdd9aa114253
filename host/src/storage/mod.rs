//! Object storage: the one place results, dead letters and large bodies are
//! written and read. A local directory and S3 share the same key layout, so
//! everything above this module is identical in local and production runs.
//!
//! Invariants: `put` is atomic per object (readers never see a partial
//! object) and idempotent (writing the same key again replaces it).
//! Transient S3 failures (network errors, timeouts, throttling, 5xx) are
//! retried with capped exponential backoff for as long as the caller waits:
//! a worker whose store is down stops, which stops its partition's fetching
//! (backpressure), and carries on by itself when the store is back.
//! Refusals of the host's own credentials or permissions (401/403, expired
//! or invalid keys) are the host's fault, never a record's: they are retried
//! the same way, logged as errors, so the partition waits instead of
//! dead-lettering good records. Other refusals (no such bucket, a malformed
//! request) are returned at once.

mod local;
mod memory;
mod s3;

use std::path::PathBuf;

use aws_sdk_s3::Client;

pub use local::LocalStore;
pub use memory::MemoryStore;
#[cfg(test)]
pub(crate) use s3::s3_config;
pub use s3::{S3Store, http_client, s3_client};

/// Errors from object storage that retrying will not fix.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A key that would escape the store root or is otherwise unusable.
    #[error("invalid object key `{0}`")]
    InvalidKey(String),
    /// A conditional write found the object changed (or present, or
    /// absent) since it was read: someone else wrote it.
    #[error("{key} was changed by another writer")]
    PreconditionFailed {
        /// The object key.
        key: String,
    },
    /// A local filesystem error.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// S3 refused the request for a reason that will not go away by itself.
    #[error("S3 {operation} s3://{bucket}/{key}: {message}")]
    S3 {
        /// The operation (put, get, list, delete).
        operation: &'static str,
        /// Bucket.
        bucket: String,
        /// Key (or prefix).
        key: String,
        /// The service's explanation.
        message: String,
    },
}

/// The version of an object as the store names it (S3's ETag), for
/// conditional writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ETag(String);

/// The condition of a conditional write ([`ObjectStore::put_if`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Only if there is no object at the key yet.
    Absent,
    /// Only if the object at the key is still this version.
    Matches(ETag),
}

impl Precondition {
    /// Whether it holds for the current object (`None`: there is none), in
    /// the stores that name versions by content ([`ETag::of`]).
    fn holds_for(&self, current: Option<&[u8]>) -> bool {
        match (self, current) {
            (Precondition::Absent, current) => current.is_none(),
            (Precondition::Matches(etag), Some(current)) => ETag::of(current) == *etag,
            (Precondition::Matches(_), None) => false,
        }
    }
}

impl ETag {
    /// The version of `bytes` in the local and in-memory stores: their
    /// sha256 (as S3's ETag is a digest of the content).
    fn of(bytes: &[u8]) -> ETag {
        ETag(crate::digest::Digest::of(bytes).hex())
    }
}

/// What [`ObjectStore::get_if_changed`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Changed {
    /// Still the version the caller knows.
    Unchanged,
    /// There is no object.
    Absent,
    /// Another version than the caller knows: its bytes and version.
    Now(Vec<u8>, ETag),
}

/// What [`ObjectStore::get_at_most`] read.
#[derive(Debug, PartialEq, Eq)]
pub enum Bounded {
    /// The object's bytes.
    Read(Vec<u8>),
    /// The object is larger than the limit: its size in bytes.
    TooLarge(u64),
}

impl Bounded {
    /// The bytes of a read whose limit was `u64::MAX`, which no object
    /// exceeds.
    pub(crate) fn whole(self) -> Vec<u8> {
        match self {
            Bounded::Read(bytes) => bytes,
            Bounded::TooLarge(_) => unreachable!("no object is larger than u64::MAX bytes"),
        }
    }
}

/// Where objects are stored. An enum rather than a trait object: the set
/// of stores is closed, and async methods need no boxing.
#[derive(Debug, Clone)]
pub enum ObjectStore {
    /// A local directory: key `a/b` is file `<root>/a/b`.
    Local(LocalStore),
    /// An S3 bucket: key `a/b` is object `<prefix>/a/b`.
    S3(S3Store),
    /// In memory, for unit tests of the modules above storage.
    Memory(MemoryStore),
}

impl ObjectStore {
    /// A store rooted at a local directory.
    pub fn local(root: impl Into<PathBuf>) -> Self {
        ObjectStore::Local(LocalStore::new(root.into()))
    }

    /// A store in `bucket` under `prefix` (empty for the bucket root).
    pub fn s3(client: Client, bucket: &str, prefix: &str) -> Self {
        ObjectStore::S3(S3Store::new(client, bucket, prefix))
    }

    /// An empty in-memory store (unit tests).
    pub fn memory() -> Self {
        ObjectStore::Memory(MemoryStore::default())
    }

    /// Write (or replace) the object `key`.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        match self {
            ObjectStore::Local(local) => local.put(key, bytes).await,
            ObjectStore::S3(s3) => s3.put(key, bytes).await,
            ObjectStore::Memory(memory) => {
                memory.put(key, bytes);
                Ok(())
            }
        }
    }

    /// Write (or replace) the object `key` made of `parts`, one after the
    /// other. A local store writes them as they are; the others are sent
    /// one buffer (the parts copied into it).
    pub async fn put_parts(&self, key: &str, parts: Vec<bytes::Bytes>) -> Result<(), StorageError> {
        match self {
            ObjectStore::Local(local) => local.put_parts(key, parts).await,
            _ => self.put(key, parts.concat()).await,
        }
    }

    /// Read the object `key`, or `None` if it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.get_at_most(key, u64::MAX).await?.map(Bounded::whole))
    }

    /// Read the object `key` as shared bytes, or `None` if it does not
    /// exist: for large immutable objects read whole (the cache's packs).
    /// A local store maps the file instead of copying it (see
    /// [`LocalStore::map`]); the others read it as [`ObjectStore::get`].
    pub async fn get_shared(&self, key: &str) -> Result<Option<bytes::Bytes>, StorageError> {
        match self {
            ObjectStore::Local(local) => local.map(key).await,
            _ => Ok(self.get(key).await?.map(bytes::Bytes::from)),
        }
    }

    /// Read the object `key` if it is at most `limit` bytes long, or `None`
    /// if it does not exist. A larger object is not downloaded when its size
    /// is known first (file metadata, S3's length header); without a length
    /// header it is read and then refused.
    pub async fn get_at_most(
        &self,
        key: &str,
        limit: u64,
    ) -> Result<Option<Bounded>, StorageError> {
        match self {
            ObjectStore::Local(local) => local.get(key, limit).await,
            // Boxed: the retry loops around the SDK's deeply nested futures
            // otherwise make every caller's future too deep a type for
            // rustc's layout queries in release builds.
            ObjectStore::S3(s3) => Box::pin(s3.get(key, limit)).await,
            ObjectStore::Memory(memory) => Ok(memory.get(key, limit)),
        }
    }

    /// Keys (relative to the store root) starting with `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.list_after(prefix, "").await
    }

    /// Keys starting with `prefix` that sort after `start_after` (a key or
    /// any string; `""` for all), sorted. S3 skips the earlier keys itself,
    /// so a listing from a late point of a long history stays short.
    pub async fn list_after(
        &self,
        prefix: &str,
        start_after: &str,
    ) -> Result<Vec<String>, StorageError> {
        let mut keys = match self {
            ObjectStore::Local(local) => local.list(prefix).await?,
            ObjectStore::S3(s3) => s3.list(prefix, start_after, None).await?,
            ObjectStore::Memory(memory) => memory.list(prefix),
        };
        keys.retain(|key| key.as_str() > start_after);
        keys.sort();
        Ok(keys)
    }

    /// The first key starting with `prefix` that sorts after `start_after`,
    /// if any: one request to S3, whatever the number of keys.
    pub async fn first_after(
        &self,
        prefix: &str,
        start_after: &str,
    ) -> Result<Option<String>, StorageError> {
        Ok(match self {
            ObjectStore::Local(_) | ObjectStore::Memory(_) => {
                self.list_after(prefix, start_after).await?
            }
            ObjectStore::S3(s3) => s3.list(prefix, start_after, Some(1)).await?,
        }
        .into_iter()
        .next())
    }

    /// Read a small object and its version, or `None` if there is none.
    pub async fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, ETag)>, StorageError> {
        match self {
            ObjectStore::S3(s3) => s3.get_tagged(key).await,
            ObjectStore::Memory(memory) => Ok(memory.get_tagged(key)),
            ObjectStore::Local(local) => Ok(local
                .get(key, u64::MAX)
                .await?
                .map(Bounded::whole)
                .map(|bytes| {
                    let etag = ETag::of(&bytes);
                    (bytes, etag)
                })),
        }
    }

    /// Read a small object unless it is still version `known`. On S3 this
    /// is a conditional GET (`If-None-Match`): an unchanged object costs a
    /// 304 and no body, which is what lets many hosts watch one object.
    pub async fn get_if_changed(
        &self,
        key: &str,
        known: Option<&ETag>,
    ) -> Result<Changed, StorageError> {
        if let ObjectStore::S3(s3) = self {
            return s3.get_if_changed(key, known).await;
        }
        Ok(match self.get_tagged(key).await? {
            None => Changed::Absent,
            Some((_, etag)) if Some(&etag) == known => Changed::Unchanged,
            Some((bytes, etag)) => Changed::Now(bytes, etag),
        })
    }

    /// Write `key` only if `precondition` holds; returns the new version.
    /// Fails with [`StorageError::PreconditionFailed`] otherwise. In a
    /// local directory, writers on the same machine are serialised by a
    /// file lock.
    pub async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        precondition: &Precondition,
    ) -> Result<ETag, StorageError> {
        match self {
            ObjectStore::S3(s3) => s3.put_if(key, bytes, precondition).await,
            ObjectStore::Memory(memory) => memory.put_if(key, bytes, precondition),
            ObjectStore::Local(local) => local.put_if(key, bytes, precondition.clone()).await,
        }
    }

    /// Delete the object `key` (no error if it does not exist).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self {
            ObjectStore::Local(local) => local.delete(key).await,
            ObjectStore::S3(s3) => s3.delete(key).await,
            ObjectStore::Memory(memory) => {
                memory.delete(key);
                Ok(())
            }
        }
    }

    /// Human-readable location of `key`, e.g. a path or `s3://` URI.
    pub fn describe(&self, key: &str) -> String {
        match self {
            ObjectStore::Local(local) => local.describe(key),
            ObjectStore::S3(s3) => s3.describe(key),
            ObjectStore::Memory(_) => format!("memory:{key}"),
        }
    }
}

/// Split `s3://bucket/key` into its parts.
pub fn parse_s3_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_store_puts_lists_gets_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::local(dir.path());
        store.put("a/b/1.txt", b"x".to_vec()).await.unwrap();
        store.put("a/b/2.txt", b"y".to_vec()).await.unwrap();
        store.put("a/c.txt", b"z".to_vec()).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("a/b/1.txt")).unwrap(), b"x");
        assert_eq!(
            store.list("a/b/").await.unwrap(),
            ["a/b/1.txt", "a/b/2.txt"]
        );
        assert_eq!(store.list("a/").await.unwrap().len(), 3);
        assert_eq!(
            store.list_after("a/", "a/b/1.txt").await.unwrap(),
            ["a/b/2.txt", "a/c.txt"]
        );
        assert_eq!(store.get("a/c.txt").await.unwrap(), Some(b"z".to_vec()));
        let parts = [&b"p"[..], b"", b"q"]
            .map(bytes::Bytes::from_static)
            .to_vec();
        store.put_parts("a/d.txt", parts).await.unwrap();
        assert_eq!(store.get("a/d.txt").await.unwrap(), Some(b"pq".to_vec()));
        store.delete("a/d.txt").await.unwrap();
        assert_eq!(store.get("a/none").await.unwrap(), None);
        let at_most = |limit| store.get_at_most("a/b/1.txt", limit);
        assert_eq!(
            at_most(1).await.unwrap(),
            Some(Bounded::Read(b"x".to_vec()))
        );
        assert_eq!(at_most(0).await.unwrap(), Some(Bounded::TooLarge(1)));
        // Mapped, as the cache reads its packs: the same bytes, and a
        // mapping outlives a replacement and a removal of its file.
        let shared = store.get_shared("a/c.txt").await.unwrap().unwrap();
        assert_eq!(shared.as_ref(), b"z");
        store.put("a/c.txt", b"w".to_vec()).await.unwrap();
        assert_eq!(
            store.get_shared("a/c.txt").await.unwrap().unwrap().as_ref(),
            b"w"
        );
        store.put("a/empty", Vec::new()).await.unwrap();
        assert!(
            store
                .get_shared("a/empty")
                .await
                .unwrap()
                .unwrap()
                .is_empty()
        );
        store.delete("a/empty").await.unwrap();
        assert_eq!(store.get_shared("a/none").await.unwrap(), None);
        store.delete("a/c.txt").await.unwrap();
        assert_eq!(shared.as_ref(), b"z");
        store.delete("a/c.txt").await.unwrap();
        assert_eq!(store.list("a/").await.unwrap().len(), 2);
        for bad in ["../x", "/etc/x", "", "a/../../x"] {
            assert!(matches!(
                store.put(bad, Vec::new()).await,
                Err(StorageError::InvalidKey(_))
            ));
        }
    }

    /// A `200 OK` response declaring `length` bytes of body and sending
    #[tokio::test]
    async fn the_memory_store_behaves_like_the_others() {
        let store = ObjectStore::memory();
        store.put("a/b/1", b"x".to_vec()).await.unwrap();
        store.put("a/b/2", b"yy".to_vec()).await.unwrap();
        store.put("a/c", b"z".to_vec()).await.unwrap();
        assert_eq!(store.list("a/b/").await.unwrap(), ["a/b/1", "a/b/2"]);
        assert_eq!(
            store.list_after("a/", "a/b/1").await.unwrap(),
            ["a/b/2", "a/c"]
        );
        assert_eq!(
            store.first_after("a/", "a/b/1").await.unwrap().as_deref(),
            Some("a/b/2")
        );
        assert_eq!(
            store.get_at_most("a/b/2", 1).await.unwrap(),
            Some(Bounded::TooLarge(2))
        );
        store.delete("a/c").await.unwrap();
        assert_eq!(store.get("a/c").await.unwrap(), None);
    }

    #[test]
    fn s3_uris_are_split() {
        assert_eq!(parse_s3_uri("s3://b/k/x"), Some(("b", "k/x")));
        assert_eq!(parse_s3_uri("s3://b/"), None);
        assert_eq!(parse_s3_uri("http://b/k"), None);
    }
}
