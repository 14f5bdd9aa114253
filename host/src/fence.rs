//! Fencing of zombie writers: a per-partition lease in the results store.
//!
//! A host that lost its partition without noticing (a pause past the
//! session timeout, a worker aborted at revocation) could otherwise still
//! write a results object while the new owner cuts different ranges: the
//! same records twice, in overlapping objects. Kafka fences its own side
//! (the zombie's commit is refused), but not the object store.
//!
//! The lease is one small object per partition,
//! `{pipeline}/leases/{topic}/{partition}`, holding an epoch and the
//! owner. Every write goes through S3 conditional writes:
//! - a host assigned the partition **takes** the lease: it reads it and
//!   writes the next epoch with `If-Match` on what it read (`If-None-Match:
//!   *` when there is none), retrying if another taker got in between;
//! - before every results (and dead-letter) write it **checks** the lease:
//!   a conditional rewrite of its own lease with `If-Match` on the version
//!   it wrote. A newer owner's take has changed the lease, so a zombie's
//!   check fails ([`FenceError::Fenced`]) and it writes nothing more.
//!
//! Invariants: a writer whose check succeeded held the lease at that
//! moment; once another host has taken the lease, every later check of the
//! old holder fails. What remains is the window between a check and the
//! write that follows it (one request): a writer frozen exactly there can
//! still land that one object. Closing it needs the store to compare the
//! epoch on the results write itself, which S3 cannot do across keys.

use serde::{Deserialize, Serialize};

use crate::storage::{ETag, ObjectStore, Precondition, StorageError};

/// What a lease object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LeaseRecord {
    /// Incremented by every take.
    epoch: u64,
    /// Who took it (host and process), for people reading the object.
    owner: String,
}

/// Why a partition's writes must stop.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// Another host took the partition's lease: this one is a zombie.
    #[error(
        "fenced: the lease {key} (epoch {epoch}) was taken by another host ({holder}); \
         this host no longer owns the partition and writes nothing more for it"
    )]
    Fenced {
        /// The lease object.
        key: String,
        /// The epoch this host held.
        epoch: u64,
        /// The lease's current owner, as far as it could be read.
        holder: String,
    },
    /// The lease could not be read or written.
    #[error("lease {key}: {source}")]
    Storage {
        /// The lease object.
        key: String,
        /// The store's error.
        source: StorageError,
    },
}

/// A partition's lease, held by this host.
#[derive(Debug)]
pub struct Lease {
    store: ObjectStore,
    key: String,
    record: LeaseRecord,
    /// The bytes written (the same bytes are rewritten by every check).
    body: Vec<u8>,
    /// The version this host wrote last.
    etag: ETag,
}

impl Lease {
    /// Take the lease at `key` for `owner`: the next epoch, written on the
    /// condition that nobody else wrote it since it was read.
    pub async fn take(store: &ObjectStore, key: String, owner: &str) -> Result<Lease, FenceError> {
        let storage = |source| FenceError::Storage {
            key: key.clone(),
            source,
        };
        loop {
            let (epoch, precondition) = match store.get_tagged(&key).await.map_err(storage)? {
                None => (1, Precondition::Absent),
                Some((bytes, etag)) => {
                    // An unreadable lease is replaced (still conditionally):
                    // it fences nobody.
                    let epoch = serde_json::from_slice::<LeaseRecord>(&bytes)
                        .map_or(0, |record| record.epoch);
                    (epoch + 1, Precondition::Matches(etag))
                }
            };
            let record = LeaseRecord {
                epoch,
                owner: owner.to_owned(),
            };
            let body = serde_json::to_vec(&record).expect("a lease record serialises");
            match store.put_if(&key, body.clone(), &precondition).await {
                Ok(etag) => {
                    tracing::debug!(key, epoch, "lease taken");
                    return Ok(Lease {
                        store: store.clone(),
                        key,
                        record,
                        body,
                        etag,
                    });
                }
                // Another host took it between the read and the write: read
                // again (the group's latest assignee ends up holding it).
                Err(StorageError::PreconditionFailed { .. }) => continue,
                Err(source) => return Err(storage(source)),
            }
        }
    }

    /// The epoch this host holds.
    pub fn epoch(&self) -> u64 {
        self.record.epoch
    }

    /// Check that this host still holds the lease (one conditional write).
    /// Call before every write for the partition.
    pub async fn check(&mut self) -> Result<(), FenceError> {
        let storage = |source| FenceError::Storage {
            key: self.key.clone(),
            source,
        };
        let precondition = Precondition::Matches(self.etag.clone());
        match self
            .store
            .put_if(&self.key, self.body.clone(), &precondition)
            .await
        {
            Ok(etag) => {
                self.etag = etag;
                Ok(())
            }
            Err(StorageError::PreconditionFailed { .. }) => {
                // A retried write whose first attempt landed fails its own
                // precondition: the lease is still ours if it says so.
                let current = self.store.get_tagged(&self.key).await.map_err(storage)?;
                match current {
                    Some((bytes, etag)) if bytes == self.body => {
                        self.etag = etag;
                        Ok(())
                    }
                    other => Err(FenceError::Fenced {
                        key: self.key.clone(),
                        epoch: self.record.epoch,
                        holder: other
                            .and_then(|(bytes, _)| {
                                serde_json::from_slice::<LeaseRecord>(&bytes).ok()
                            })
                            .map_or_else(
                                || "unknown".to_owned(),
                                |r| format!("{}, epoch {}", r.owner, r.epoch),
                            ),
                    }),
                }
            }
            Err(source) => Err(storage(source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_newer_take_fences_the_old_holder() {
        let store = ObjectStore::memory();
        let key = "p/leases/t/0".to_owned();
        let mut zombie = Lease::take(&store, key.clone(), "host-a").await.unwrap();
        assert_eq!(zombie.epoch(), 1);
        zombie.check().await.unwrap();
        zombie.check().await.unwrap();
        let mut owner = Lease::take(&store, key.clone(), "host-b").await.unwrap();
        assert_eq!(owner.epoch(), 2);
        let fenced = zombie.check().await;
        assert!(
            matches!(&fenced, Err(FenceError::Fenced { epoch: 1, holder, .. }) if holder == "host-b, epoch 2"),
            "{fenced:?}"
        );
        owner.check().await.unwrap();
        // The zombie stays fenced.
        assert!(zombie.check().await.is_err());
    }

    #[tokio::test]
    async fn an_unreadable_lease_is_replaced() {
        let store = ObjectStore::memory();
        store.put("k", b"not json".to_vec()).await.unwrap();
        let lease = Lease::take(&store, "k".to_owned(), "host").await.unwrap();
        assert_eq!(lease.epoch(), 1);
    }

    /// A local directory fences writers on one machine (its conditional
    /// writes hold a file lock).
    #[tokio::test]
    async fn a_local_directory_holds_leases() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::local(dir.path());
        let mut first = Lease::take(&store, "k".to_owned(), "a").await.unwrap();
        let second = Lease::take(&store, "k".to_owned(), "b").await.unwrap();
        assert_eq!((first.epoch(), second.epoch()), (1, 2));
        assert!(first.check().await.is_err(), "the older lease is fenced");
        assert!(
            store.list("").await.unwrap() == ["k"],
            "the lock is no object"
        );
    }
}
