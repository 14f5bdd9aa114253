//! Unit tests of the cache over an in-memory or local store.

use super::*;

use crate::runtime::DocRecord;

/// How a stage whose outputs a later stage reads keeps `output` of `input`.
fn kept(input: &DocRecord, output: &DocRecord) -> StoredOutput {
    StoredOutput::feeding(input, output, &crate::digest::BodyDigest::of(&input.body)).0
}

fn record(body: &str) -> DocRecord {
    DocRecord {
        id: "d".into(),
        revision: 1,
        content_type: "text/plain".into(),
        body: body.as_bytes().to_vec(),
        metadata: Vec::new(),
    }
}

#[tokio::test]
async fn what_one_cache_stores_another_finds_by_offset_and_key() {
    let store = ObjectStore::memory();
    let stage = Digest::of(b"stage");
    let input = record("in");
    let key = entry_key(&stage, &input, &Digest::of(&input.body));
    let out = kept(&input, &record("out"));
    let writer = Arc::new(StageCache::new(store.clone(), 1 << 20));
    writer.store(&stage, "t", 0, (10, 19), vec![(key, vec![out.clone()])]);
    assert_eq!(
        writer.get(&key).unwrap().as_ref(),
        std::slice::from_ref(&out)
    );
    writer.flush().await;
    assert_eq!(writer.figures().pack_writes, 1);

    let reader = Arc::new(StageCache::new(store, 1 << 20));
    assert!(reader.get(&key).is_none(), "nothing in memory yet");
    reader.prefetch(&[stage], "t", 0, 20, 29).await;
    assert!(reader.get(&key).is_none(), "the pack covers 10..=19 only");
    reader.prefetch(&[stage], "t", 0, 15, 25).await;
    assert_eq!(reader.get(&key).unwrap().as_ref(), [out]);
    let figures = reader.figures();
    assert_eq!((figures.lists, figures.pack_reads), (1, 1), "{figures:?}");
    // Loaded packs are not read again.
    reader.prefetch(&[stage], "t", 0, 10, 19).await;
    assert_eq!(reader.figures().pack_reads, 1);
}

/// The packs of the offsets after a batch are read while it runs, and
/// the next batch waits for that read instead of reading them again.
#[tokio::test]
async fn the_next_batches_packs_are_read_ahead_once() {
    let store = ObjectStore::memory();
    let stage = Digest::of(b"stage");
    let writer = Arc::new(StageCache::new(store.clone(), 1 << 20));
    // Packs of 10 offsets each: 0..=9, 10..=19, ...
    let packs = READ_AHEAD_BATCHES + 2;
    let mut keys = Vec::new();
    for first in (0..packs).map(|p| p * 10) {
        let input = record(&format!("in {first}"));
        let key = entry_key(&stage, &input, &Digest::of(&input.body));
        let out = kept(&input, &record("out"));
        writer.store(&stage, "t", 0, (first, first + 9), vec![(key, vec![out])]);
        keys.push(key);
    }
    writer.flush().await;
    let reader = Arc::new(StageCache::new(store, 1 << 20));
    reader.prefetch(&[stage], "t", 0, 0, 9).await;
    assert!(reader.get(&keys[0]).is_some());
    // The next READ_AHEAD_BATCHES batches' packs arrive without being
    // asked for; the one after is not read.
    let ahead = READ_AHEAD_BATCHES as usize;
    for key in &keys[1..=ahead] {
        arrives(&reader, key).await;
    }
    assert!(reader.get(&keys[ahead + 1]).is_none());
    assert_eq!(reader.figures().pack_reads, 1 + READ_AHEAD_BATCHES as u64);
    // The next batch finds its pack read, and reads the one after.
    reader.prefetch(&[stage], "t", 0, 10, 19).await;
    arrives(&reader, &keys[ahead + 1]).await;
    for first in (2..packs).map(|p| p * 10) {
        reader.prefetch(&[stage], "t", 0, first, first + 9).await;
    }
    assert_eq!(
        reader.figures().pack_reads,
        packs as u64,
        "each pack read once"
    );
}

/// A partition moving forward leaves behind the packs it passed: the
/// index of a long-running host does not grow with every pack written.
#[tokio::test]
async fn packs_behind_the_current_batch_are_forgotten() {
    let cache = Arc::new(StageCache::new(ObjectStore::memory(), 1 << 20));
    let stage = Digest::of(b"stage");
    for first in (0..100).map(|p| p * 10) {
        cache.prefetch(&[stage], "t", 0, first, first + 9).await;
        let input = record(&format!("in {first}"));
        let key = entry_key(&stage, &input, &Digest::of(&input.body));
        let out = kept(&input, &record("out"));
        cache.store(&stage, "t", 0, (first, first + 9), vec![(key, vec![out])]);
    }
    cache.flush().await;
    {
        let folders = cache.folders.lock().unwrap();
        let known = &folders[&pack::folder(&stage, "t", 0)];
        assert_eq!((known.packs.len(), known.reads.len()), (1, 1));
        // What is ahead of the batch is kept and found.
        assert_eq!(known.covering(990, 999).count(), 1);
        assert_eq!(known.covering(0, 989).count(), 0);
    }
    // Offsets delivered again (after a rebalance) find their packs: the
    // folder is listed again.
    assert_eq!(cache.figures().lists, 1);
    cache.memory.clear();
    cache.prefetch(&[stage], "t", 0, 0, 9).await;
    assert_eq!(cache.figures().lists, 2);
    let input = record("in 0");
    assert!(
        cache
            .get(&entry_key(&stage, &input, &Digest::of(&input.body)))
            .is_some()
    );
}

/// A listing that failed is tried again after a pause, not never (a
/// passing store fault at a partition's start no longer turns the cache
/// off for that partition for the rest of the run), and in the
/// background: the batches meanwhile miss but do not wait.
#[tokio::test]
async fn a_failed_listing_is_tried_again_later() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::local(dir.path());
    let stage = Digest::of(b"stage");
    let folder = pack::folder(&stage, "t", 0);
    // A file where the folder's directory should be: listing fails.
    let blocker = dir.path().join(folder.trim_end_matches('/'));
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"").unwrap();
    let failed_listing = |retry: Duration| {
        let mut cache = StageCache::new(store.clone(), 1 << 20);
        cache.list_retry = retry;
        Arc::new(cache)
    };
    let (patient, eager) = (
        failed_listing(Duration::from_secs(3600)),
        failed_listing(Duration::ZERO),
    );
    for cache in [&patient, &eager] {
        cache.prefetch(&[stage], "t", 0, 0, 9).await;
        assert_eq!(cache.figures().read_errors, 1);
    }
    // The fault passes, and another process writes the batch's pack.
    std::fs::remove_file(&blocker).unwrap();
    let input = record("in");
    let key = entry_key(&stage, &input, &Digest::of(&input.body));
    let out = kept(&input, &record("out"));
    let writer = Arc::new(StageCache::new(store, 1 << 20));
    writer.store(&stage, "t", 0, (0, 9), vec![(key, vec![out])]);
    writer.flush().await;
    // Within the pause: not listed again.
    patient.prefetch(&[stage], "t", 0, 0, 9).await;
    assert_eq!(patient.figures().lists, 1);
    // After it: listed again, and the pack is found.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while eager.get(&key).is_none() {
        assert!(std::time::Instant::now() < deadline, "not listed again");
        eager.prefetch(&[stage], "t", 0, 0, 9).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(eager.figures().lists >= 2);
}

/// Wait (up to 10 s) until `key` is in `cache`'s memory tier.
async fn arrives(cache: &StageCache, key: &Digest) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cache.get(key).is_none() {
        assert!(std::time::Instant::now() < deadline, "not read ahead");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_corrupt_pack_is_a_counted_miss() {
    let store = ObjectStore::memory();
    let stage = Digest::of(b"stage");
    let folder = pack::folder(&stage, "t", 0);
    store
        .put(&format!("{folder}0-9-0.pack"), b"garbage".to_vec())
        .await
        .unwrap();
    let cache = Arc::new(StageCache::new(store, 1 << 20));
    cache.prefetch(&[stage], "t", 0, 0, 9).await;
    assert!(cache.get(&Digest::of(b"any key")).is_none());
    assert_eq!(cache.figures().read_errors, 1);
}

#[test]
fn the_memory_tier_is_bounded_by_bytes() {
    let cache = StageCache::new(ObjectStore::memory(), 64 << 10);
    let big = "x".repeat(16 << 10);
    let keys: Vec<Digest> = (0..32u32).map(|i| Digest::of(&i.to_le_bytes())).collect();
    for key in &keys {
        let stored = kept(&record(""), &record(&big));
        cache.memory.insert(*key, Arc::from(vec![stored]));
    }
    let kept = keys.iter().filter(|k| cache.get(k).is_some()).count();
    assert!(kept <= 4, "{kept} entries of 16 KiB kept in 64 KiB");
    assert!(cache.memory.weight() <= 64 << 10);
}

/// Pack writes under way hold their entries: past the budget, a pack is
/// not written (counted as a failed write), and memory stays bounded
/// however far behind the store is. Spawned writes do not run until the
/// test yields, so all of these are pending at once.
#[tokio::test]
async fn pack_writes_under_way_are_bounded_by_bytes() {
    let budget = 1 << 20;
    let cache = Arc::new(StageCache::new(ObjectStore::memory(), budget));
    let stage = Digest::of(b"stage");
    let body = "x".repeat(200 << 10);
    for first in (0..10).map(|p| p * 10) {
        let input = record(&format!("in {first}"));
        let key = entry_key(&stage, &input, &Digest::of(&input.body));
        let out = kept(&input, &record(&body));
        cache.store(&stage, "t", 0, (first, first + 9), vec![(key, vec![out])]);
    }
    cache.flush().await;
    let figures = cache.figures();
    assert_eq!(
        (figures.pack_writes, figures.write_errors),
        (5, 5),
        "{figures:?}"
    );
    // Nothing is pending any more: the next pack is written.
    let input = record("later");
    let key = entry_key(&stage, &input, &Digest::of(&input.body));
    let out = kept(&input, &record(&body));
    cache.store(&stage, "t", 0, (100, 109), vec![(key, vec![out])]);
    cache.flush().await;
    assert_eq!(cache.figures().pack_writes, 6);
}

/// An entry of a third of the budget is kept, however many CPUs the
/// machine has (a shard per CPU would hold a fraction of the budget).
#[test]
fn a_large_entry_is_kept_whatever_the_number_of_cpus() {
    for (budget, entry) in [
        (12 << 20, 4 << 20),
        (192 << 20, 60 << 20),
        (256 << 20, 48 << 20),
    ] {
        let cache = StageCache::new(ObjectStore::memory(), budget);
        let stored = kept(&record(""), &record(&"x".repeat(entry)));
        let key = Digest::of(b"large");
        cache.memory.insert(key, Arc::from(vec![stored]));
        assert!(cache.get(&key).is_some(), "{entry} bytes in {budget}");
    }
}
