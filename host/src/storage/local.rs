//! A local directory as an object store: key `a/b` is file `<root>/a/b`.
//!
//! Invariants: a put is atomic (written to a temporary file, synced, renamed
//! into place, directory synced), so readers never see a partial object and
//! a stored object survives a crash; keys cannot escape the root; a
//! conditional write checks and writes while holding an exclusive lock on
//! [`LOCK_FILE`], so conditional writers on one machine never interleave.

use std::path::{Component, Path, PathBuf};

use super::{Bounded, ETag, Precondition, StorageError};

/// The lock of conditional writes, in the root. Its name starts like the
/// temporary files of atomic writes, which listings skip: it is no object.
const LOCK_FILE: &str = ".tmp-weir-conditional-writes.lock";

/// A directory used as an object store.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub(super) fn new(root: PathBuf) -> Self {
        LocalStore { root }
    }

    pub(super) fn describe(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }

    pub(super) async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.put_parts(key, vec![bytes.into()]).await
    }

    pub(super) async fn put_parts(
        &self,
        key: &str,
        parts: Vec<bytes::Bytes>,
    ) -> Result<(), StorageError> {
        let path = self.path_of(key)?;
        let target = path.clone();
        tokio::task::spawn_blocking(move || {
            let parts: Vec<&[u8]> = parts.iter().map(bytes::Bytes::as_ref).collect();
            crate::atomic_file::write_parts(&target, &parts)
        })
        .await
        .expect("the write task does not panic")
        .map_err(|source| StorageError::Io { path, source })
    }

    pub(super) async fn get(&self, key: &str, limit: u64) -> Result<Option<Bounded>, StorageError> {
        let path = self.path_of(key)?;
        let read = async {
            let size = tokio::fs::metadata(&path).await?.len();
            if size > limit {
                return Ok(Bounded::TooLarge(size));
            }
            tokio::fs::read(&path).await.map(Bounded::Read)
        };
        match read.await {
            Ok(read) => Ok(Some(read)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StorageError::Io { path, source }),
        }
    }

    /// The object `key` mapped into memory, or `None` if it does not
    /// exist. Reading a cache pack copied it from the page cache into fresh
    /// memory, and the fresh memory's page faults and the copy were the
    /// largest share of a warm replay's reads (docs/performance.md); a
    /// mapping shares the page cache's pages. Sound because objects are
    /// never changed in place: a put writes a new file and renames it over
    /// the key, and a removed file stays readable while it is mapped. (A
    /// file truncated in place by something else than weir while mapped
    /// would end the process with SIGBUS when its lost pages are read.)
    pub(super) async fn map(&self, key: &str) -> Result<Option<bytes::Bytes>, StorageError> {
        let path = self.path_of(key)?;
        let target = path.clone();
        let mapped: std::io::Result<bytes::Bytes> = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&target)?;
            if file.metadata()?.len() == 0 {
                // An empty file cannot be mapped.
                return Ok(bytes::Bytes::new());
            }
            // SAFETY: see above: the store never changes an object's file
            // in place.
            let map = unsafe { memmap2::Mmap::map(&file) }?;
            Ok(bytes::Bytes::from_owner(map))
        })
        .await
        .expect("the map task does not panic");
        match mapped {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StorageError::Io { path, source }),
        }
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        // Keys are listed from the deepest directory the prefix names.
        let dir = match prefix.rfind('/') {
            Some(slash) => self.path_of(&prefix[..slash])?,
            None => self.root.clone(),
        };
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            collect_keys(&root, &dir, &mut keys)
                .map_err(|source| StorageError::Io { path: dir, source })?;
            keys.retain(|k| k.starts_with(&prefix));
            Ok(keys)
        })
        .await
        .expect("the listing task does not panic")
    }

    pub(super) async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        precondition: Precondition,
    ) -> Result<ETag, StorageError> {
        let path = self.path_of(key)?;
        let (root, key) = (self.root.clone(), key.to_owned());
        tokio::task::spawn_blocking(move || {
            let io = |source| StorageError::Io {
                path: path.clone(),
                source,
            };
            std::fs::create_dir_all(&root).map_err(io)?;
            let lock = std::fs::File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(root.join(LOCK_FILE))
                .map_err(io)?;
            // Released when `lock` is dropped (closed).
            lock.lock().map_err(io)?;
            let current = match std::fs::read(&path) {
                Ok(current) => Some(current),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io(e)),
            };
            if !precondition.holds_for(current.as_deref()) {
                return Err(StorageError::PreconditionFailed { key });
            }
            crate::atomic_file::write(&path, &bytes).map_err(io)?;
            Ok(ETag::of(&bytes))
        })
        .await
        .expect("the write task does not panic")
    }

    pub(super) async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StorageError::Io { path, source: e })
            }
            _ => Ok(()),
        }
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

fn collect_keys(root: &Path, dir: &Path, keys: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect_keys(root, &path, keys)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            // Temporary files of in-progress atomic writes are not objects.
            let name = relative.to_string_lossy();
            if !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp"))
            {
                keys.push(name.into_owned());
            }
        }
    }
    Ok(())
}
