//! An in-memory object store, for unit tests of the modules above storage
//! (sink, worker): the same keys and semantics as the other stores, with
//! nothing on disk or on the network.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Bounded, ETag, Precondition, StorageError};

/// Objects by key, shared by the clones of one store.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    objects: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl MemoryStore {
    pub(super) fn put(&self, key: &str, bytes: Vec<u8>) {
        self.objects
            .lock()
            .expect("not poisoned")
            .insert(key.to_owned(), bytes);
    }

    pub(super) fn get(&self, key: &str, limit: u64) -> Option<Bounded> {
        let objects = self.objects.lock().expect("not poisoned");
        let bytes = objects.get(key)?;
        let size = bytes.len() as u64;
        Some(if size > limit {
            Bounded::TooLarge(size)
        } else {
            Bounded::Read(bytes.clone())
        })
    }

    pub(super) fn get_tagged(&self, key: &str) -> Option<(Vec<u8>, ETag)> {
        let objects = self.objects.lock().expect("not poisoned");
        objects
            .get(key)
            .map(|bytes| (bytes.clone(), ETag::of(bytes)))
    }

    pub(super) fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        precondition: &Precondition,
    ) -> Result<ETag, StorageError> {
        let mut objects = self.objects.lock().expect("not poisoned");
        if !precondition.holds_for(objects.get(key).map(Vec::as_slice)) {
            return Err(StorageError::PreconditionFailed {
                key: key.to_owned(),
            });
        }
        let etag = ETag::of(&bytes);
        objects.insert(key.to_owned(), bytes);
        Ok(etag)
    }

    pub(super) fn list(&self, prefix: &str) -> Vec<String> {
        self.objects
            .lock()
            .expect("not poisoned")
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }

    pub(super) fn delete(&self, key: &str) {
        self.objects.lock().expect("not poisoned").remove(key);
    }
}
