//! The stage cache: content-addressed outputs of stages, so that nothing
//! computed once is computed again (a replay after changing only stage k
//! recomputes stages k.. and reuses the others).
//!
//! Parts: [`key`] (what identifies a stage's work on a record), [`pack`]
//! (the objects entries are stored in) and [`folder`] (the packs a process
//! knows of, per stage and partition). Layout and cost model:
//! `docs/cache.md`.
//!
//! How a batch uses it (the partition worker, around the chain):
//! 1. [`StageCache::prefetch`] (async) loads into the memory tier the packs
//!    of every cached stage that cover the batch's offsets: one listing per
//!    stage and partition for the whole run (again after a failed one, or
//!    when offsets go back: see [`folder`]), then one read per pack not yet
//!    read. It also starts reading, in the background, the packs of the
//!    offsets that follow (`READ_AHEAD_BATCHES` batches' worth), so the
//!    next batches' packs are usually in memory before they ask. The chain
//!    never waits on the store record by record.
//! 2. The chain (synchronous) looks each record up in memory
//!    ([`StageCache::get`]); a hit is used as the stage's outputs (passed
//!    on to the next stage as entries: a body is rebuilt, and its pack's
//!    bodies decompressed, only when a stage runs on it), a miss runs the
//!    plugin. What the plugins computed successfully comes back
//!    as fills (errors and dead letters are never cached).
//! 3. [`StageCache::store`] writes the fills of each stage as one pack, in
//!    the background.
//!
//! Invariants:
//! - entries are immutable and content-addressed: any replica may read any
//!   pack, and two replicas writing the same work write equal entries;
//! - a failed or corrupt read is a miss (counted and logged), and a failed
//!   write never fails a record: the cache only ever saves work;
//! - a pack is read at most once per process: a batch that needs a pack
//!   being read ahead waits for that read instead of starting another;
//! - the memory tier is bounded by bytes (least recently used entries go
//!   first).

pub mod entry;
mod folder;
pub mod key;
pub mod pack;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quick_cache::Weighter;
use quick_cache::sync::Cache;
use tokio::sync::OnceCell;

use crate::digest::Digest;
use crate::storage::{ObjectStore, StorageError};
use folder::{Folder, Listing, PackRead};

pub use entry::StoredOutput;
pub use key::{RecordHead, entry_key};

/// Outputs of one stage for one input, as cached.
pub type Outputs = Arc<[StoredOutput]>;

/// Weighs entries of the memory tier by their bytes.
#[derive(Clone)]
struct ByBytes;

impl Weighter<Digest, Outputs> for ByBytes {
    fn weight(&self, _key: &Digest, outputs: &Outputs) -> u64 {
        (32 + outputs.iter().map(StoredOutput::size).sum::<usize>()) as u64
    }
}

/// What the cache did, since it was opened (all replicas' work is not
/// included: these are this process's figures).
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Listings of pack folders.
    pub lists: AtomicU64,
    /// Packs read.
    pub pack_reads: AtomicU64,
    /// Packs written.
    pub pack_writes: AtomicU64,
    /// Bytes of packs read.
    pub bytes_read: AtomicU64,
    /// Bytes of packs written.
    pub bytes_written: AtomicU64,
    /// Listings or reads that failed, and packs that did not decode.
    pub read_errors: AtomicU64,
    /// Pack writes that failed.
    pub write_errors: AtomicU64,
}

/// A copy of [`CacheCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheFigures {
    /// Listings of pack folders.
    pub lists: u64,
    /// Packs read.
    pub pack_reads: u64,
    /// Packs written.
    pub pack_writes: u64,
    /// Bytes of packs read.
    pub bytes_read: u64,
    /// Bytes of packs written.
    pub bytes_written: u64,
    /// Failed listings, reads and decodes.
    pub read_errors: u64,
    /// Failed writes.
    pub write_errors: u64,
}

impl CacheFigures {
    /// Requests to the store (listings, reads and writes).
    pub fn requests(&self) -> u64 {
        self.lists + self.pack_reads + self.pack_writes
    }
}

/// The cache: a store of packs and a bounded memory tier in front of it.
pub struct StageCache {
    store: ObjectStore,
    memory: Cache<Digest, Outputs, ByBytes>,
    folders: Mutex<HashMap<String, Folder>>,
    writes: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Bytes of entries held by pack writes under way, and the most they
    /// may hold (the memory tier's budget again): with the store slow,
    /// writes would otherwise pile up, each holding its entries.
    pending_bytes: AtomicU64,
    write_budget: u64,
    /// [`LIST_RETRY`] (shorter in tests).
    list_retry: Duration,
    counters: CacheCounters,
    /// Hits and misses per stage name, for live progress.
    lookups: Mutex<BTreeMap<String, (u64, u64)>>,
    /// The zstd level of the frames a last stage's outputs keep
    /// ([`crate::sink::OutputFrame`]): the results objects' level.
    frame_level: i32,
}

impl std::fmt::Debug for StageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageCache")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// How long a pack read may take before it counts as failed (its entries
/// miss): the store retries transient errors for as long as its caller
/// waits, and a partition must not wait on the cache for long.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a folder's listing may take before it counts as failed. It is
/// made once per folder and run, before the partition's first batch, and
/// it pages through every pack: a partition of 10 million records has
/// about 150 pages of them.
const LIST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long after a failed listing the folder is listed again (meanwhile
/// its lookups miss).
const LIST_RETRY: Duration = Duration::from_secs(5 * 60);

/// What a folder needs before a batch's lookups in it.
enum ListingNeeded {
    /// Nothing: it is listed (or its failed listing is not due again).
    No,
    /// A listing, waited for: the first, or after offsets went back.
    First,
    /// Another try of a failed listing, in the background.
    Retry,
}

/// How long a pack write may take before it is given up (counted, logged).
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// How many batches' worth of offsets after a batch have their packs read
/// while it runs: a warm batch runs in a few milliseconds, a pack read takes
/// tens, so reads of several batches must be under way for the next batch
/// to find its entries in memory.
const READ_AHEAD_BATCHES: i64 = 4;

/// Entries stay in memory up to about this many per MiB of budget (only
/// the memory tier's bookkeeping: entries are weighed by bytes).
const ENTRIES_PER_MIB: u64 = 64;

/// The least budget one shard of the memory tier gets. quick_cache splits
/// the budget into shards (four per CPU by default) and does not keep an
/// entry heavier than about one shard: with 256 MiB on 64 CPUs, no record
/// whose outputs passed 1 MiB (parse keeps the whole text) was ever kept,
/// so the largest documents missed on every run. Shards are for
/// concurrency, and lookups here are a few per record: a handful is enough.
const MIN_SHARD_BYTES: u64 = 64 << 20;

/// Bytes a pack write holds, counted in [`StageCache`]'s `pending_bytes`
/// until it is dropped.
struct PendingWrite {
    cache: Arc<StageCache>,
    bytes: u64,
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        self.cache
            .pending_bytes
            .fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// The memory tier: `memory_bytes` of entries, in shards of at least
/// [`MIN_SHARD_BYTES`] (one shard when the budget is smaller).
fn memory_tier(memory_bytes: u64) -> Cache<Digest, Outputs, ByBytes> {
    let estimated_items = (memory_bytes >> 20).max(1) * ENTRIES_PER_MIB;
    // Rounded down to a power of two: quick_cache rounds a count up, which
    // would make shards smaller than the minimum (192 MiB in 4 of 48).
    let shards = usize::try_from(memory_bytes / MIN_SHARD_BYTES)
        .unwrap_or(usize::MAX)
        .clamp(1, 64);
    let shards = 1 << shards.ilog2();
    let options = quick_cache::OptionsBuilder::new()
        .estimated_items_capacity(usize::try_from(estimated_items).unwrap_or(usize::MAX))
        .weight_capacity(memory_bytes)
        .shards(shards)
        .build()
        .expect("capacities and shards are set");
    Cache::with_options(
        options,
        ByBytes,
        quick_cache::DefaultHashBuilder::default(),
        quick_cache::sync::DefaultLifecycle::default(),
    )
}

impl StageCache {
    /// A cache over `store` with a memory tier of `memory_bytes`.
    pub fn new(store: ObjectStore, memory_bytes: u64) -> Self {
        StageCache {
            store,
            memory: memory_tier(memory_bytes),
            folders: Mutex::new(HashMap::new()),
            writes: Mutex::new(Vec::new()),
            pending_bytes: AtomicU64::new(0),
            write_budget: memory_bytes,
            list_retry: LIST_RETRY,
            counters: CacheCounters::default(),
            lookups: Mutex::new(BTreeMap::new()),
            frame_level: crate::sink::DEFAULT_ZSTD_LEVEL,
        }
    }

    /// Compress the frames of last stages' outputs at `level`, the level of
    /// the results objects they are spliced into.
    pub(crate) fn with_frame_level(mut self, level: i32) -> Self {
        self.frame_level = level;
        self
    }

    /// The zstd level of last stages' output frames.
    pub(crate) fn frame_level(&self) -> i32 {
        self.frame_level
    }

    /// Add a batch's hits and misses of `stage` to the live tally.
    pub fn tally(&self, stage: &str, hits: u64, misses: u64) {
        if hits + misses == 0 {
            return;
        }
        let mut lookups = self.lookups.lock().expect("cache lookups");
        let entry = lookups.entry(stage.to_owned()).or_default();
        entry.0 += hits;
        entry.1 += misses;
    }

    /// Hits and misses so far, per stage name.
    pub fn tallies(&self) -> Vec<(String, u64, u64)> {
        let lookups = self.lookups.lock().expect("cache lookups");
        lookups
            .iter()
            .map(|(stage, (hits, misses))| (stage.clone(), *hits, *misses))
            .collect()
    }

    /// Where the packs are.
    pub fn describe(&self) -> String {
        self.store.describe("")
    }

    /// Load into memory the packs of `stages` for `topic`/`partition` that
    /// cover any offset in `first..=last`, all at once; and start reading
    /// those of the `READ_AHEAD_BATCHES` batches' worth of offsets after
    /// `last`, without waiting for them.
    pub async fn prefetch(
        self: &Arc<Self>,
        stages: &[Digest],
        topic: &str,
        partition: i32,
        first: i64,
        last: i64,
    ) {
        let ahead = last.saturating_add(READ_AHEAD_BATCHES * (last - first + 1));
        let mut loads = Vec::new();
        for stage in stages {
            let folder = pack::folder(stage, topic, partition);
            self.pass(&folder, first);
            match self.listing_needed(&folder) {
                ListingNeeded::No => {}
                ListingNeeded::First => self.list(&folder).await,
                // A retry does not hold the batch up: its lookups miss
                // meanwhile, as they did since the listing failed.
                ListingNeeded::Retry => {
                    let (cache, folder) = (self.clone(), folder.clone());
                    tokio::spawn(async move { cache.list(&folder).await });
                }
            }
            for (key, read) in self.pending_reads(&folder, first, last) {
                loads.push(self.clone().read(key, read));
            }
            for (key, read) in self.pending_reads(&folder, last + 1, ahead) {
                tokio::spawn(self.clone().read(key, read));
            }
        }
        futures_util::future::join_all(loads).await;
    }

    /// Read pack `key` unless `read` is done or under way (then wait for
    /// it).
    async fn read(self: Arc<Self>, key: String, read: PackRead) {
        read.get_or_init(|| self.load(key)).await;
    }

    /// The cached outputs of the work `key`, if they are in memory.
    pub fn get(&self, key: &Digest) -> Option<Outputs> {
        self.memory.get(key)
    }

    /// Keep what `stage` computed for the batch `first..=last` of
    /// `topic`/`partition`: in memory at once, in the store as one pack
    /// written in the background (see [`StageCache::flush`]).
    pub fn store(
        self: &Arc<Self>,
        stage: &Digest,
        topic: &str,
        partition: i32,
        (first, last): (i64, i64),
        entries: Vec<(Digest, Vec<StoredOutput>)>,
    ) {
        if entries.is_empty() {
            return;
        }
        // Into shared slices: memory and the pack writer share them.
        let entries: Vec<(Digest, Outputs)> = entries
            .into_iter()
            .map(|(key, outputs)| (key, Outputs::from(outputs)))
            .collect();
        for (key, outputs) in &entries {
            self.memory.insert(*key, outputs.clone());
        }
        let size: u64 = entries
            .iter()
            .flat_map(|(_, outputs)| outputs.iter())
            .map(|output| output.size() as u64)
            .sum();
        let pending = self.pending_bytes.fetch_add(size, Ordering::Relaxed);
        // One write is always let through, however large its pack.
        if pending > 0 && pending + size > self.write_budget {
            self.pending_bytes.fetch_sub(size, Ordering::Relaxed);
            self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                pending_mib = pending >> 20,
                "cache: the store is behind, this pack is not written (its entries will be \
                 computed again by a later run)"
            );
            return;
        }
        let folder = pack::folder(stage, topic, partition);
        let keys: Vec<Digest> = entries.iter().map(|(key, _)| *key).collect();
        let key = pack::key(&folder, first, last, &keys);
        {
            let mut folders = self.folders.lock().expect("cache folders");
            let known = folders.entry(folder).or_default();
            // Its entries are in memory: never read back.
            known
                .reads
                .insert(key.clone(), Arc::new(OnceCell::new_with(Some(()))));
            known.packs.insert((first, key.clone()), last);
        }
        let cache = self.clone();
        // Released however the write ends (done, failed, panicked, or the
        // task dropped at shutdown): a leak would refuse every later pack.
        let pending = PendingWrite { cache, bytes: size };
        let write = tokio::spawn(async move {
            pending.cache.write_pack(key, entries).await;
            drop(pending);
        });
        let mut writes = self.writes.lock().expect("cache writes");
        writes.retain(|w| !w.is_finished());
        writes.push(write);
    }

    /// Encode and write one pack (a failure is counted and logged).
    async fn write_pack(&self, key: String, entries: Vec<(Digest, Outputs)>) {
        // Compressing a pack takes milliseconds: not on an async worker.
        let Ok(bytes) = tokio::task::spawn_blocking(move || pack::encode(&entries)).await else {
            self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(pack = %self.store.describe(&key), "cache: pack not encoded");
            return;
        };
        let size = bytes.len() as u64;
        let written = tokio::time::timeout(WRITE_TIMEOUT, self.store.put(&key, bytes)).await;
        match written.unwrap_or_else(|_| Err(timed_out("write", WRITE_TIMEOUT))) {
            Ok(()) => {
                self.counters.pack_writes.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .bytes_written
                    .fetch_add(size, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(pack = %self.store.describe(&key), "cache: pack not written: {e}");
            }
        }
    }

    /// Keep `entries` in the memory tier (only).
    pub fn remember(&self, entries: &[(Digest, Vec<StoredOutput>)]) {
        for (key, outputs) in entries {
            self.memory.insert(*key, Arc::from(outputs.as_slice()));
        }
    }

    /// Wait for the packs being written.
    pub async fn flush(&self) {
        let writes = std::mem::take(&mut *self.writes.lock().expect("cache writes"));
        for write in writes {
            if let Err(e) = write.await {
                tracing::warn!("cache: a pack write did not finish: {e}");
            }
        }
    }

    /// What the cache did so far.
    pub fn figures(&self) -> CacheFigures {
        let c = &self.counters;
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        CacheFigures {
            lists: load(&c.lists),
            pack_reads: load(&c.pack_reads),
            pack_writes: load(&c.pack_writes),
            bytes_read: load(&c.bytes_read),
            bytes_written: load(&c.bytes_written),
            read_errors: load(&c.read_errors),
            write_errors: load(&c.write_errors),
        }
    }

    /// Whether `folder` must be listed before its lookups. A retry is
    /// marked as a new failure at once, so that it is started only once
    /// (the listing then sets what it found).
    fn listing_needed(&self, folder: &str) -> ListingNeeded {
        let mut folders = self.folders.lock().expect("cache folders");
        let Some(known) = folders.get_mut(folder) else {
            return ListingNeeded::First;
        };
        match known.listing {
            Listing::Due => ListingNeeded::First,
            Listing::Done => ListingNeeded::No,
            Listing::Failed(at) if at.elapsed() < self.list_retry => ListingNeeded::No,
            Listing::Failed(_) => {
                known.listing = Listing::Failed(std::time::Instant::now());
                ListingNeeded::Retry
            }
        }
    }

    /// List a folder; a failed listing counts as empty (every lookup in it
    /// misses) until it is tried again.
    async fn list(&self, folder: &str) {
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        let listed = tokio::time::timeout(LIST_TIMEOUT, self.store.list(folder)).await;
        let (keys, listing) =
            match listed.unwrap_or_else(|_| Err(timed_out("listing", LIST_TIMEOUT))) {
                Ok(keys) => (keys, Listing::Done),
                Err(e) => {
                    self.counters.read_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        folder = %self.store.describe(folder),
                        retry_s = self.list_retry.as_secs(),
                        "cache: listing failed, its lookups miss until it is tried again: {e}"
                    );
                    (Vec::new(), Listing::Failed(std::time::Instant::now()))
                }
            };
        let mut folders = self.folders.lock().expect("cache folders");
        let known = folders.entry(folder.to_owned()).or_default();
        known.listing = listing;
        for key in keys {
            if let Some((first, last)) = pack::range(&key) {
                known.packs.insert((first, key), last);
            }
        }
    }

    /// The partition of `folder` is at a batch starting at `first`.
    fn pass(&self, folder: &str, first: i64) {
        let mut folders = self.folders.lock().expect("cache folders");
        if let Some(known) = folders.get_mut(folder) {
            known.pass(first);
        }
    }

    /// The packs of `folder` covering any offset in `first..=last` that are
    /// not in memory yet, with their (possibly running) reads.
    fn pending_reads(&self, folder: &str, first: i64, last: i64) -> Vec<(String, PackRead)> {
        let mut folders = self.folders.lock().expect("cache folders");
        let Some(known) = folders.get_mut(folder) else {
            return Vec::new();
        };
        let covering: Vec<String> = known.covering(first, last).cloned().collect();
        covering
            .into_iter()
            .filter_map(|key| {
                let read = known.reads.entry(key.clone()).or_default();
                (!read.initialized()).then(|| (key, read.clone()))
            })
            .collect()
    }

    /// Read one pack into memory; a failure is logged and counted (the
    /// pack is not read again in this run: its read is done). The pack is
    /// decoded on the blocking pool (milliseconds of decompression), as it
    /// is encoded: the async workers also move other partitions' records.
    async fn load(&self, key: String) {
        self.counters.pack_reads.fetch_add(1, Ordering::Relaxed);
        let read = tokio::time::timeout(READ_TIMEOUT, self.store.get_shared(&key))
            .await
            .unwrap_or_else(|_| Err(timed_out("read", READ_TIMEOUT)));
        let entries = match read {
            Ok(Some(bytes)) => {
                self.counters
                    .bytes_read
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                tokio::task::spawn_blocking(move || pack::decode(bytes))
                    .await
                    .expect("decoding does not panic")
                    .map_err(LoadError::Decode)
            }
            Ok(None) => Err(LoadError::Gone),
            Err(e) => Err(LoadError::Store(e)),
        };
        match entries {
            Ok(entries) => {
                for (entry, outputs) in entries {
                    self.memory.insert(entry, Arc::from(outputs));
                }
            }
            Err(e) => {
                self.counters.read_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(pack = %self.store.describe(&key), "cache: pack not read, its entries miss: {e}");
            }
        }
    }
}

/// Why a pack's entries were not loaded (each of them then misses).
#[derive(Debug, thiserror::Error)]
enum LoadError {
    /// The store failed or timed out.
    #[error(transparent)]
    Store(StorageError),
    /// The pack was listed, and is no longer there.
    #[error("listed but gone")]
    Gone,
    /// The pack is damaged.
    #[error(transparent)]
    Decode(pack::PackError),
}

/// The error of a store request that took too long.
fn timed_out(what: &str, after: Duration) -> StorageError {
    StorageError::Io {
        path: std::path::PathBuf::from(format!("cache {what}")),
        source: std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {after:?}"),
        ),
    }
}

#[cfg(test)]
mod tests;
