//! Snapshots of a partition's document state in the object store, so any
//! replica can restore the partition without reading its whole history.
//!
//! A checkpoint is written after a batch's state is stored, so it is the
//! state as of a durable offset (`through`, in its key:
//! `{pipeline}/checkpoints/{topic}/{partition}/{through:020}.state.zst`).
//! Restoring takes the newest checkpoint that reads back intact, then
//! applies the results objects written after it. The two newest are kept:
//! if the newest is corrupt or half-written, the one before still works.
//!
//! Format (zstd-compressed): the magic line `weir-state 1\n`, then per
//! document a big-endian `u16` id length, the id, and the 82-byte encoded
//! [`DocState`]; then a trailer: `u64` document count and the SHA-256 of
//! everything before it. A checkpoint that does not end in a matching
//! trailer is corrupt and skipped with a warning.

use super::store::StateStore;
use super::{DocState, StateError};
use crate::digest::Digest;
use crate::sink::Sink;

const MAGIC: &[u8] = b"weir-state 1\n";
const SUFFIX: &str = ".state.zst";
/// Fast: checkpoints are mostly digests, which do not compress.
const ZSTD_LEVEL: i32 = 1;
/// Checkpoints kept per partition.
const KEEP: usize = 2;

/// Write a checkpoint of `store` as of `through`, and delete older ones
/// beyond the newest [`KEEP`].
pub(crate) async fn write(
    store: &StateStore,
    through: i64,
    sink: &Sink,
    topic: &str,
    partition: i32,
) -> Result<(), StateError> {
    let (objects, prefix) = sink.checkpoints(topic, partition);
    let key = format!("{prefix}{through:020}{SUFFIX}");
    let mut raw = MAGIC.to_vec();
    let count = store.for_each(|id, state| {
        raw.extend_from_slice(&(id.len() as u16).to_be_bytes());
        raw.extend_from_slice(id.as_bytes());
        raw.extend_from_slice(&state.encode());
    })?;
    raw.extend_from_slice(&count.to_be_bytes());
    let sum = Digest::of(&raw);
    raw.extend_from_slice(sum.as_bytes());
    let compressed =
        tokio::task::spawn_blocking(move || zstd::encode_all(raw.as_slice(), ZSTD_LEVEL))
            .await
            .expect("compression does not panic")
            .map_err(|source| {
                StateError::Corrupt(format!("compressing checkpoint {key}: {source}"))
            })?;
    let bytes = compressed.len();
    let objects_error = |what: String| move |source| StateError::Objects { what, source };
    objects
        .put(&key, compressed)
        .await
        .map_err(objects_error(format!("writing checkpoint {key}")))?;
    tracing::info!(
        topic,
        partition,
        through,
        documents = count,
        bytes,
        "event-mode checkpoint written"
    );
    let keys = objects
        .list(&prefix)
        .await
        .map_err(objects_error(format!("listing {prefix}")))?;
    let old = keys.len().saturating_sub(KEEP);
    for key in &keys[..old] {
        objects
            .delete(key)
            .await
            .map_err(objects_error(format!("deleting checkpoint {key}")))?;
    }
    Ok(())
}

/// Load the newest intact checkpoint of the partition into `store` (which
/// is empty) and mark `scope` applied through its offset. Returns that
/// offset, or `None` when there is no usable checkpoint (the state is then
/// rebuilt from the results objects alone).
pub(crate) async fn load_latest(
    store: &StateStore,
    scope: &str,
    sink: &Sink,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>, StateError> {
    let (objects, prefix) = sink.checkpoints(topic, partition);
    let keys = objects
        .list(&prefix)
        .await
        .map_err(|source| StateError::Objects {
            what: format!("listing {prefix}"),
            source,
        })?;
    for key in keys.iter().rev() {
        let Some(through) = through_of(key) else {
            continue;
        };
        let bytes = objects
            .get(key)
            .await
            .map_err(|source| StateError::Objects {
                what: format!("reading checkpoint {key}"),
                source,
            })?;
        match bytes.as_deref().map(decode) {
            Some(Ok(entries)) => {
                store.commit(
                    entries.iter().map(|(id, s)| (id.as_str(), s)),
                    scope,
                    through,
                )?;
                return Ok(Some(through));
            }
            Some(Err(problem)) => tracing::warn!(
                key,
                problem,
                "skipping a corrupt event-mode checkpoint; using an older one or the results"
            ),
            None => {}
        }
    }
    if !keys.is_empty() {
        tracing::warn!(
            topic,
            partition,
            "no usable event-mode checkpoint: rebuilding the state from the results objects"
        );
    }
    Ok(None)
}

/// The offset in a checkpoint key.
fn through_of(key: &str) -> Option<i64> {
    key.rsplit('/').next()?.strip_suffix(SUFFIX)?.parse().ok()
}

/// The documents of a checkpoint, or what is wrong with it.
fn decode(compressed: &[u8]) -> Result<Vec<(String, DocState)>, &'static str> {
    let raw = zstd::decode_all(compressed).map_err(|_| "not zstd")?;
    let body_len = raw
        .len()
        .checked_sub(8 + 32)
        .ok_or("shorter than its trailer")?;
    let (body, trailer) = raw.split_at(body_len);
    let (count, sum) = trailer.split_at(8);
    if Digest::of(&raw[..body_len + 8]).as_bytes().as_slice() != sum {
        return Err("checksum mismatch");
    }
    let count = u64::from_be_bytes(count.try_into().expect("8 bytes"));
    let mut rest = body.strip_prefix(MAGIC).ok_or("no magic line")?;
    let mut entries = Vec::with_capacity(count.min(1 << 24) as usize);
    while !rest.is_empty() {
        let (len, tail) = rest.split_at_checked(2).ok_or("truncated id length")?;
        let len = u16::from_be_bytes(len.try_into().expect("2 bytes")) as usize;
        let (id, tail) = tail.split_at_checked(len).ok_or("truncated id")?;
        let (state, tail) = tail
            .split_at_checked(super::ENCODED_LEN)
            .ok_or("truncated state")?;
        let id = std::str::from_utf8(id).map_err(|_| "an id is not UTF-8")?;
        let state = DocState::decode(state).ok_or("a state does not decode")?;
        entries.push((id.to_owned(), state));
        rest = tail;
    }
    if entries.len() as u64 != count {
        return Err("document count mismatch");
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::DeadLetterSink;
    use crate::storage::ObjectStore;

    fn state(n: u64) -> DocState {
        DocState::Present {
            content_hash: Digest::of(&n.to_be_bytes()),
            chain: Digest::of(b"chain"),
            revision: n,
            offset: n as i64,
        }
    }

    #[tokio::test]
    async fn the_newest_intact_checkpoint_is_restored() {
        let dir = tempfile::tempdir().unwrap();
        let objects = ObjectStore::memory();
        let sink = Sink::new("p", objects.clone(), DeadLetterSink::Store(objects.clone()));
        let store = StateStore::open(&dir.path().join("a.redb"), 1 << 20).unwrap();
        store.commit([("a", &state(1))], "t/0", 10).unwrap();
        write(&store, 10, &sink, "t", 0).await.unwrap();
        store.commit([("b", &state(2))], "t/0", 20).unwrap();
        write(&store, 20, &sink, "t", 0).await.unwrap();
        store.commit([("c", &state(3))], "t/0", 30).unwrap();
        write(&store, 30, &sink, "t", 0).await.unwrap();
        let keys = objects.list("p/checkpoints/t/0/").await.unwrap();
        assert_eq!(keys.len(), KEEP, "older checkpoints are deleted: {keys:?}");

        // The newest is intact: all three documents, through 30.
        let fresh = StateStore::open(&dir.path().join("b.redb"), 1 << 20).unwrap();
        assert_eq!(
            load_latest(&fresh, "t/0", &sink, "t", 0).await.unwrap(),
            Some(30)
        );
        assert_eq!(fresh.get("c").unwrap(), Some(state(3)));
        assert_eq!(fresh.applied("t/0").unwrap(), Some(30));

        // The newest is corrupt: the one before it is used.
        let newest = keys.last().unwrap();
        let mut bytes =
            zstd::decode_all(objects.get(newest).await.unwrap().unwrap().as_slice()).unwrap();
        bytes[20] ^= 1;
        objects
            .put(newest, zstd::encode_all(bytes.as_slice(), 1).unwrap())
            .await
            .unwrap();
        let fresh = StateStore::open(&dir.path().join("c.redb"), 1 << 20).unwrap();
        assert_eq!(
            load_latest(&fresh, "t/0", &sink, "t", 0).await.unwrap(),
            Some(20)
        );
        assert_eq!(fresh.get("b").unwrap(), Some(state(2)));
        assert_eq!(fresh.get("c").unwrap(), None);

        // Both unusable (one not even zstd): nothing, and the caller rebuilds.
        objects.put(&keys[0], b"garbage".to_vec()).await.unwrap();
        let fresh = StateStore::open(&dir.path().join("d.redb"), 1 << 20).unwrap();
        assert_eq!(
            load_latest(&fresh, "t/0", &sink, "t", 0).await.unwrap(),
            None
        );
        assert_eq!(fresh.applied("t/0").unwrap(), None);
    }
}
