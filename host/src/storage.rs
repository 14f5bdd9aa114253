//! Object storage: the one place results, dead letters (and later the cache
//! and plugin registry) are written. A local directory and S3 share the same
//! key layout, so everything above this module is identical in local and
//! production runs.
//!
//! Invariant: `put` is atomic per object (readers never see a partial
//! object) and idempotent (writing the same key again replaces it).

use std::path::{Component, Path, PathBuf};

/// Errors from object storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A key that would escape the store root or is otherwise unusable.
    #[error("invalid object key `{0}`")]
    InvalidKey(String),
    /// A local filesystem error.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Where objects are stored.
#[derive(Debug, Clone)]
pub enum ObjectStore {
    /// A local directory: key `a/b` is file `<root>/a/b`.
    Local(LocalStore),
}

impl ObjectStore {
    /// A store rooted at a local directory.
    pub fn local(root: impl Into<PathBuf>) -> Self {
        ObjectStore::Local(LocalStore { root: root.into() })
    }

    /// Write (or replace) the object `key`.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        match self {
            ObjectStore::Local(local) => local.put(key, bytes).await,
        }
    }

    /// Human-readable location of `key`, e.g. a path or `s3://` URI.
    pub fn describe(&self, key: &str) -> String {
        match self {
            ObjectStore::Local(local) => local.root.join(key).display().to_string(),
        }
    }
}

/// A directory used as an object store.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let path = self.path_of(key)?;
        let target = path.clone();
        tokio::task::spawn_blocking(move || crate::atomic_file::write(&target, &bytes))
            .await
            .expect("the write task does not panic")
            .map_err(|source| StorageError::Io { path, source })
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StorageError> {
        let relative = Path::new(key);
        let safe = !key.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(StorageError::InvalidKey(key.to_owned()));
        }
        Ok(self.root.join(relative))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_put_writes_under_root_and_rejects_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::local(dir.path());
        store.put("a/b.txt", b"x".to_vec()).await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("a/b.txt")).unwrap(), b"x");
        for bad in ["../x", "/etc/x", "", "a/../../x"] {
            assert!(matches!(
                store.put(bad, Vec::new()).await,
                Err(StorageError::InvalidKey(_))
            ));
        }
    }
}
