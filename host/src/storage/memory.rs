//! An in-memory object store, for unit tests of the modules above storage
//! (sink, worker): the same keys and semantics as the other stores, with
//! nothing on disk or on the network.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::Bounded;

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
