//! The worker that runs batches of records through a chain: one instance
//! per stage, trap isolation, retries, and the stage cache's lookups and
//! fills.
//!
//! Invariants of [`ChainWorker::process`]:
//! - it returns exactly one [`ChainResult`] per input record, in input order;
//! - a record either reaches the end of the chain (possibly fanned out into
//!   several outputs, or filtered out to none) or fails at exactly one stage,
//!   and then all of its partial outputs are dropped;
//! - a per-record error or a trap affects only the record that caused it: a
//!   trapped batch is re-run record by record on a fresh instance to find the
//!   culprit, and the others still complete;
//! - plugin failures are retried up to the stage's `retries`; bad input is
//!   never retried, and neither are traps (the sandbox is deterministic, so
//!   the same input traps again and a retry would only burn the deadline);
//! - a cache hit gives the same outputs as the plugin would, but passed on
//!   unbuilt ([`super::doc`]): a body is rebuilt only for a stage that runs
//!   on it, and a cached last stage's outputs end as frames
//!   ([`crate::sink::OutputFrame`]);
//! - a stage whose outputs the cache keeps is called on chunks of its inputs
//!   ([`chunk_size`]), and what the cache keeps of one chunk's outputs is
//!   worked out on the rayon pool beside the next chunk's call; the outputs
//!   and the cache's fills still come in input order.

use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::doc::Doc;
use super::output::is_json_document;
use super::{Chain, ChainResult, FailureKind, Output, Stage, StageFailure};
use crate::cache::{StageCache, StoredOutput, entry_key};
use crate::contract;
use crate::counters::Counters;
use crate::digest::{BodyDigest, Digest};
use crate::runtime::{DocRecord, PluginError, PluginInstance, RuntimeError, Trap};
use crate::sink::OutputFrame;
use crate::telemetry::metrics::{StageMeter, metrics};

/// What one stage did: records looked up in the cache, and handed to the
/// plugin.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StageWork {
    /// Inputs whose outputs came from the cache.
    pub cache_hits: u64,
    /// Inputs looked up and not found (then computed).
    pub cache_misses: u64,
    /// Inputs the plugin processed (in batch calls; retries and the
    /// record-by-record re-runs after a trap not counted again).
    pub plugin_records: u64,
}

impl StageWork {
    /// Add `other` to these.
    pub fn absorb(&mut self, other: &StageWork) {
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        self.plugin_records += other.plugin_records;
    }
}

/// What the plugins computed for one batch, to store in the cache: per
/// stage index, the entries (key, outputs).
pub type Fills = Vec<(usize, Vec<(Digest, Vec<StoredOutput>)>)>;

/// One worker's instances of every stage. Not shared between threads: each
/// partition worker owns one.
pub struct ChainWorker {
    chain: Arc<Chain>,
    /// One instance per stage; `None` after a trap until the stage's next
    /// call creates a fresh one. The trapped instance is dropped at once so
    /// that its pool slot is free: with every slot in use (one per stage per
    /// worker), a trap must still be recoverable.
    instances: Vec<Option<PluginInstance>>,
    counters: Vec<Counters>,
    /// Each stage's metrics.
    meters: Vec<StageMeter>,
    /// What each stage did since the last [`ChainWorker::take_work`].
    work: Vec<StageWork>,
    /// The stage cache, when the pipeline has one.
    cache: Option<Arc<StageCache>>,
    /// What the plugins computed for cached stages, since the last
    /// [`ChainWorker::take_fills`].
    fills: Fills,
}

/// The records of one stage's input, each tagged with the input index it
/// descends from, and with what is known of it.
type Tagged = Vec<TaggedOutput>;
/// A record and the index of the chain input it comes from.
type TaggedOutput = (usize, Doc, Known);
/// A stage input to compute: its origin, the record, and its cache miss.
type ToCompute = (usize, DocRecord, Option<Miss>);
/// Items tagged with the place of their stage input.
type Placed<T> = Vec<(usize, T)>;
/// What the cache keeps of a computed input: its entry's key and, per
/// output, the stored form and what the next stage knows of it.
type Kept = (Digest, Vec<(StoredOutput, Known)>);

/// One computed input's outputs: its origin, its place among the stage's
/// inputs, the outputs, and what the cache keeps of them (for a cached
/// stage).
type KeptOutputs = (usize, usize, Vec<DocRecord>, Option<Kept>);

/// A computed input, before what the cache keeps of it is worked out: its
/// origin, its place among the stage's inputs, the input, its cache miss
/// (for a cached stage), and its outputs.
type Computed<'a> = (
    usize,
    usize,
    &'a DocRecord,
    &'a Option<Miss>,
    Vec<DocRecord>,
);

/// What is known of a record between stages, besides the record.
#[derive(Default)]
struct Known {
    /// Its body's digest (cache keys use it; the cache keeps it for the
    /// outputs it answers).
    digest: Option<BodyDigest>,
    /// The final output it makes, for an output of a cached last stage:
    /// whether its body is a JSON document, and its frame (see
    /// [`Output`]). Other final outputs are made from their records.
    output: Option<Output>,
}

/// A cached stage's input to compute: its cache key, and its body's digest
/// (the outputs' digests resume from it).
struct Miss {
    key: Digest,
    input: BodyDigest,
    /// The zstd level of the frames of a last stage's outputs: the
    /// results objects'.
    frame_level: i32,
}

impl ChainWorker {
    /// A worker of `chain` with one live instance per stage.
    pub(super) fn new(chain: Arc<Chain>, instances: Vec<Option<PluginInstance>>) -> Self {
        let stages = chain.stages.len();
        let meters = chain
            .stages
            .iter()
            .map(|s| StageMeter::new(&s.name))
            .collect();
        ChainWorker {
            chain,
            instances,
            counters: vec![Counters::default(); stages],
            meters,
            work: vec![StageWork::default(); stages],
            cache: None,
            fills: Vec::new(),
        }
    }

    /// The chain this worker runs.
    pub fn chain(&self) -> &Arc<Chain> {
        &self.chain
    }

    /// Run `inputs` through every stage. Returns one result per input, in
    /// order. An `Err` means a stage's instance could not be re-created
    /// after a trap: the batch has no results (the host then stops without
    /// committing it, so it is delivered again).
    pub fn process(&mut self, inputs: Vec<DocRecord>) -> Result<Vec<ChainResult>, RuntimeError> {
        self.process_hashed(inputs.into_iter().map(|r| (r, None)).collect())
    }

    /// As [`ChainWorker::process`], with the digests of the inputs' bodies
    /// where the caller has them (they are part of the first stage's cache
    /// keys; missing ones are computed when needed).
    pub fn process_hashed(
        &mut self,
        inputs: Vec<(DocRecord, Option<Digest>)>,
    ) -> Result<Vec<ChainResult>, RuntimeError> {
        let mut results: Vec<Option<ChainResult>> = vec![None; inputs.len()];
        let mut current: Tagged = inputs
            .into_iter()
            .enumerate()
            .map(|(origin, (record, digest))| {
                let known = Known {
                    digest: digest.map(BodyDigest::known),
                    ..Known::default()
                };
                (origin, Doc::Record(record), known)
            })
            .collect();
        let chain = self.chain.clone();
        for (index, stage) in chain.stages.iter().enumerate() {
            if current.is_empty() {
                break;
            }
            let alive: Vec<usize> = dedup_origins(&current);
            let next = self.run_stage(index, stage, current, &mut results)?;
            // Inputs that are still alive but produced nothing: filtered out.
            let mut has_output = vec![false; results.len()];
            for (origin, _, _) in &next {
                has_output[*origin] = true;
            }
            for origin in alive {
                if results[origin].is_none() && !has_output[origin] {
                    results[origin] = Some(ChainResult::Done {
                        outputs: Vec::new(),
                        stages_run: index + 1,
                    });
                }
            }
            current = next;
        }
        let stages_run = chain.stages.len();
        for (origin, doc, known) in current {
            let output = known
                .output
                .unwrap_or_else(|| Output::new(doc.into_record()));
            match &mut results[origin] {
                Some(ChainResult::Done { outputs, .. }) => outputs.push(output),
                slot @ None => {
                    *slot = Some(ChainResult::Done {
                        outputs: vec![output],
                        stages_run,
                    })
                }
                Some(ChainResult::Failed(_)) => {}
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every input ends done or failed"))
            .collect())
    }

    /// Look cached stages' outputs up in `cache` (loaded by the caller, see
    /// [`StageCache::prefetch`]) and keep what the plugins compute.
    pub fn with_cache(mut self, cache: Arc<StageCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The cache, if any.
    pub fn cache(&self) -> Option<&Arc<StageCache>> {
        self.cache.as_ref()
    }

    /// What the plugins computed for cached stages since the last call.
    pub fn take_fills(&mut self) -> Fills {
        std::mem::take(&mut self.fills)
    }

    /// What each stage did since the last call, per stage name.
    pub fn take_work(&mut self) -> Vec<(String, StageWork)> {
        self.chain
            .stages
            .iter()
            .zip(self.work.iter_mut())
            .map(|(stage, work)| (stage.name.clone(), std::mem::take(work)))
            .collect()
    }

    /// Counters the plugins reported since the last call, per stage name.
    pub fn take_counters(&mut self) -> Vec<(String, Counters)> {
        self.chain
            .stages
            .iter()
            .zip(self.counters.iter_mut())
            .map(|(stage, counters)| (stage.name.clone(), std::mem::take(counters)))
            .collect()
    }

    /// Run one stage over all of `current`, in batches. Failures are written
    /// into `results`; the outputs of inputs that are still alive are
    /// returned, tagged with their origin.
    fn run_stage(
        &mut self,
        index: usize,
        stage: &Stage,
        current: Tagged,
        results: &mut [Option<ChainResult>],
    ) -> Result<Tagged, RuntimeError> {
        let mut accepted: Tagged = Vec::with_capacity(current.len());
        for (origin, doc, known) in current {
            if results[origin].is_some() {
                continue; // a sibling output of this input already failed
            }
            if stage.accepts(doc.head().content_type) {
                accepted.push((origin, doc, known));
            } else {
                let reason = format!(
                    "content type `{}` is not accepted by stage `{}` (accepts {:?})",
                    doc.head().content_type,
                    stage.name,
                    stage.plugin.info().accepts
                );
                results[origin] = Some(ChainResult::Failed(failure(
                    stage,
                    FailureKind::BadInput,
                    reason,
                    0,
                )));
            }
        }
        // Each output is tagged with the place of its input among this
        // stage's inputs, to put cached and computed outputs back in order.
        let (mut next, to_compute) = self.look_up(index, stage, accepted);
        let mut places = Vec::with_capacity(to_compute.len());
        let mut origins = Vec::with_capacity(to_compute.len());
        let mut records = Vec::with_capacity(to_compute.len());
        let mut misses = Vec::with_capacity(to_compute.len());
        for (place, (origin, record, miss)) in to_compute {
            places.push(place);
            origins.push(origin);
            records.push(record);
            misses.push(miss);
        }
        // No stage reads the last stage's outputs: their digests would
        // never be used. Result lines read whether they are JSON and the
        // outputs as they write them: those are kept instead, compressed at
        // the level of the results they go into.
        let last = index + 1 == self.chain.stages.len();
        // A cached stage's inputs all have a miss, other stages' none.
        let kept_stage = misses.iter().any(Option::is_some);
        let size = chunk_size(stage.batch_size, records.len(), kept_stage);
        // What the cache keeps of each output, and what the next stage
        // knows of it, is worked out on the rayon pool while the plugin
        // runs the next chunk: hashing, copying and rendering whole
        // documents was a cold run's largest cost on the chain's thread
        // (docs/performance.md). Each chunk's job fills the chunk's slot,
        // so the chunks stay in input order whenever their jobs end.
        let mut slots: Vec<Option<Vec<KeptOutputs>>> =
            (0..records.len().div_ceil(size)).map(|_| None).collect();
        rayon::in_place_scope(|scope| -> Result<(), RuntimeError> {
            for ((((chunk_origins, chunk), chunk_misses), chunk_places), slot) in origins
                .chunks(size)
                .zip(records.chunks(size))
                .zip(misses.chunks(size))
                .zip(places.chunks(size))
                .zip(slots.iter_mut())
            {
                let outcomes = self.run_batch(index, stage, chunk)?;
                self.work[index].plugin_records += chunk.len() as u64;
                // Failures first, in order: a failed input's later siblings
                // are skipped, as its earlier ones are dropped below.
                let mut computed = Vec::with_capacity(chunk.len());
                for ((((&origin, outcome), miss), input), &place) in chunk_origins
                    .iter()
                    .zip(outcomes)
                    .zip(chunk_misses)
                    .zip(chunk)
                    .zip(chunk_places)
                {
                    if results[origin].is_some() {
                        continue;
                    }
                    match outcome.and_then(|outputs| check_produced(stage, outputs)) {
                        Ok(outputs) => computed.push((origin, place, input, miss, outputs)),
                        Err(failure) => results[origin] = Some(ChainResult::Failed(failure)),
                    }
                }
                if kept_stage {
                    scope.spawn(move |_| *slot = Some(keep_chunk(computed, last)));
                } else {
                    // Nothing to keep: the outputs pass on from this thread.
                    let passed = computed
                        .into_iter()
                        .map(|(origin, place, _, _, outputs)| (origin, place, outputs, None));
                    *slot = Some(passed.collect());
                }
            }
            Ok(())
        })?;
        let mut fills = Vec::new();
        let chunks = slots
            .into_iter()
            .map(|slot| slot.expect("every chunk's outputs are in its slot once the scope ends"));
        for (origin, place, outputs, entry) in chunks.flatten() {
            match entry {
                Some((key, kept)) => {
                    let (stored, known): (Vec<_>, Vec<_>) = kept.into_iter().unzip();
                    next.extend(
                        outputs
                            .into_iter()
                            .zip(known)
                            .map(|(output, known)| (place, (origin, Doc::Record(output), known))),
                    );
                    fills.push((key, stored));
                }
                None => next.extend(
                    outputs
                        .into_iter()
                        .map(|r| (place, (origin, Doc::Record(r), Known::default()))),
                ),
            }
        }
        if !fills.is_empty() {
            self.fills.push((index, fills));
        }
        next.retain(|(_, (origin, _, _))| results[*origin].is_none());
        // Cached outputs came first: back to the order of the inputs (the
        // sort is stable, so one input's outputs keep theirs), as without a
        // cache. By input, not by origin: two inputs of one origin (a
        // fanned-out record) must not swap when one was cached.
        next.sort_by_key(|(place, _)| *place);
        Ok(next.into_iter().map(|(_, output)| output).collect())
    }

    /// Split a stage's inputs into those whose outputs are cached (returned
    /// as outputs) and those to compute, each with its [`Miss`] (`None` for
    /// a stage that is not cached); both tagged with the input's place in
    /// `accepted`.
    fn look_up(
        &mut self,
        index: usize,
        stage: &Stage,
        accepted: Tagged,
    ) -> (Placed<TaggedOutput>, Placed<ToCompute>) {
        let cache = match &self.cache {
            Some(cache) if stage.cache => cache.clone(),
            _ => {
                let to_compute = accepted
                    .into_iter()
                    .enumerate()
                    .map(|(place, (origin, doc, _))| (place, (origin, doc.into_record(), None)))
                    .collect();
                return (Vec::new(), to_compute);
            }
        };
        let identity = self.chain.stage_id(index);
        let mut cached = Vec::new();
        let mut to_compute = Vec::with_capacity(accepted.len());
        for (place, (origin, doc, known)) in accepted.into_iter().enumerate() {
            // An entry of a last stage keeps no digest: such an output,
            // read by this stage, is rebuilt and hashed.
            let (doc, digest) = match known.digest {
                Some(digest) => (doc, digest),
                None => {
                    let record = doc.into_record();
                    let digest = BodyDigest::of(&record.body);
                    (Doc::Record(record), digest)
                }
            };
            let key = entry_key(&identity, doc.head(), &digest.digest());
            let doc = Arc::new(doc);
            let hit = cache.get(&key).and_then(|outputs| {
                (0..outputs.len())
                    .map(|i| {
                        let output = &outputs[i];
                        let known = Known {
                            digest: output.digest().map(BodyDigest::known),
                            output: output
                                .last()
                                .map(|(json, frame)| Output::framed(json, frame.clone())),
                        };
                        Some((Doc::cached(outputs.clone(), i, doc.clone())?, known))
                    })
                    .collect::<Option<Vec<_>>>()
            });
            match hit {
                Some(outputs) => {
                    self.work[index].cache_hits += 1;
                    cached.extend(
                        outputs
                            .into_iter()
                            .map(|(doc, known)| (place, (origin, doc, known))),
                    );
                }
                None => {
                    self.work[index].cache_misses += 1;
                    let miss = Miss {
                        key,
                        input: digest,
                        frame_level: cache.frame_level(),
                    };
                    let record = Arc::into_inner(doc)
                        .expect("a miss shares its input with no output")
                        .into_record();
                    to_compute.push((place, (origin, record, Some(miss))));
                }
            }
        }
        (cached, to_compute)
    }

    /// One `process` call, with trap isolation and retries.
    fn run_batch(
        &mut self,
        index: usize,
        stage: &Stage,
        batch: &[DocRecord],
    ) -> Result<Vec<Result<Vec<DocRecord>, StageFailure>>, RuntimeError> {
        let called = self.call(index, batch)?;
        let outcomes = match called {
            Ok(outcomes) => {
                self.collect_counters(index);
                outcomes
            }
            Err(trap) if batch.len() == 1 => {
                self.collect_counters(index);
                self.instances[index] = None;
                return Ok(vec![Err(trap_failure(stage, &trap, 1))]);
            }
            Err(trap) => {
                // The counts of the trapped call go with its instance: every
                // record of the batch is about to be processed (and counted)
                // again, one at a time.
                self.instances[index] = None;
                tracing::warn!(
                    stage = %stage.name,
                    records = batch.len(),
                    "batch trapped ({trap}); re-running it record by record to isolate the cause"
                );
                return batch
                    .iter()
                    .map(|record| self.run_single(index, stage, record, None))
                    .collect();
            }
        };
        outcomes
            .into_iter()
            .zip(batch)
            .map(|(outcome, record)| match outcome {
                Ok(outputs) => Ok(Ok(outputs)),
                Err(PluginError::BadInput(reason)) => {
                    Ok(Err(failure(stage, FailureKind::BadInput, reason, 1)))
                }
                Err(PluginError::PluginFailure(reason)) => {
                    self.run_single(index, stage, record, Some(reason))
                }
            })
            .collect()
    }

    /// Run one record alone until it succeeds, is rejected, traps, or has
    /// failed `1 + retries` times in all. `failed_in_batch` is the plugin
    /// failure its batch call already gave it (that call counts as one).
    fn run_single(
        &mut self,
        index: usize,
        stage: &Stage,
        record: &DocRecord,
        failed_in_batch: Option<String>,
    ) -> Result<Result<Vec<DocRecord>, StageFailure>, RuntimeError> {
        let mut attempts = u32::from(failed_in_batch.is_some());
        let mut last_failure = failed_in_batch;
        loop {
            if let Some(reason) = &last_failure {
                if attempts > stage.retries {
                    return Ok(Err(failure(
                        stage,
                        FailureKind::PluginFailure,
                        reason.clone(),
                        attempts,
                    )));
                }
                tracing::debug!(stage = %stage.name, id = %record.id, attempts, "retrying after plugin failure: {reason}");
            }
            attempts += 1;
            let called = self.call(index, std::slice::from_ref(record))?;
            self.collect_counters(index);
            match called {
                Ok(mut outcomes) => match outcomes.pop().expect("one outcome per record") {
                    Ok(outputs) => return Ok(Ok(outputs)),
                    Err(PluginError::BadInput(reason)) => {
                        return Ok(Err(failure(stage, FailureKind::BadInput, reason, attempts)));
                    }
                    Err(PluginError::PluginFailure(reason)) => last_failure = Some(reason),
                },
                Err(trap) => {
                    self.instances[index] = None;
                    return Ok(Err(trap_failure(stage, &trap, attempts)));
                }
            }
        }
    }

    /// One `process` call of stage `index`, measured.
    fn call(
        &mut self,
        index: usize,
        batch: &[DocRecord],
    ) -> Result<Result<Vec<crate::runtime::RecordOutcome>, Trap>, RuntimeError> {
        let instance = self.instance(index)?;
        let started = Instant::now();
        let called = instance.process(batch);
        let usage = instance.usage();
        let meter = &self.meters[index];
        meter.call(batch.len(), started.elapsed(), usage);
        if let Err(trap) = &called {
            meter.trap(trap);
        }
        Ok(called)
    }

    /// The live instance of stage `index`, created anew if the last one
    /// trapped.
    fn instance(&mut self, index: usize) -> Result<&mut PluginInstance, RuntimeError> {
        let slot = &mut self.instances[index];
        if slot.is_none() {
            *slot = Some(self.chain.stages[index].instantiate()?);
        }
        Ok(slot.as_mut().expect("the slot was just filled"))
    }

    fn collect_counters(&mut self, index: usize) {
        let Some(instance) = &mut self.instances[index] else {
            return;
        };
        let counters = instance.take_counters();
        metrics().plugin_counters(&self.chain.stages[index].name, &counters);
        self.counters[index].merge(&counters);
    }
}

/// The distinct origins in `tagged`, in first-seen order.
fn dedup_origins(tagged: &Tagged) -> Vec<usize> {
    let mut origins: Vec<usize> = tagged.iter().map(|(o, _, _)| *o).collect();
    origins.dedup();
    origins
}

/// What the cache keeps of `output`, which a cached stage computed from
/// `input` (its lookup `miss`), and what is known of it downstream: the
/// output's frame if the stage is the chain's `last` (no stage reads its
/// digest), else its body's digest (the next stage's key needs it).
fn keep(input: &DocRecord, output: &DocRecord, miss: &Miss, last: bool) -> (StoredOutput, Known) {
    if last {
        let json = is_json_document(output);
        let frame = OutputFrame::of(output, json, miss.frame_level);
        let kept = StoredOutput::of_last(input, output, json, frame.clone());
        let known = Known {
            digest: None,
            output: Some(Output::framed(json, frame)),
        };
        (kept, known)
    } else {
        let (kept, digest) = StoredOutput::feeding(input, output, &miss.input);
        let known = Known {
            digest: Some(digest),
            ..Known::default()
        };
        (kept, known)
    }
}

/// How many of a stage's `inputs` (those it computes in one batch) one
/// plugin call takes: the stage's batch size, but when what the stage
/// computes is kept in the cache (`kept`), an eighth of the inputs (at
/// least [`MIN_KEPT_CALL`], or the batch size if smaller), so that keeping
/// one chunk's outputs runs beside the next chunk's call and only the last
/// chunk's is left on the chain's path (see [`ChainWorker::run_stage`]).
/// Eight chunks left a cold run 5% faster than four (docs/performance.md).
fn chunk_size(batch_size: usize, inputs: usize, kept: bool) -> usize {
    const CHUNKS: usize = 8;
    let size = batch_size.max(1);
    if kept {
        size.min(inputs.div_ceil(CHUNKS).max(MIN_KEPT_CALL))
    } else {
        size
    }
}

/// The fewest inputs of a plugin call that [`chunk_size`] makes smaller
/// than the stage's batch size: a plugin that batches its work (a model
/// scoring many documents at once) still gets batches worth the call.
const MIN_KEPT_CALL: usize = 8;

/// Each of a chunk's computed inputs with its outputs and the cache entry
/// they make, worked out across the rayon pool.
fn keep_chunk(computed: Vec<Computed<'_>>, last: bool) -> Vec<KeptOutputs> {
    computed
        .into_par_iter()
        .map(|(origin, place, input, miss, outputs)| {
            let entry = miss.as_ref().map(|miss| {
                let stored = outputs
                    .iter()
                    .map(|output| keep(input, output, miss, last))
                    .collect();
                (miss.key, stored)
            });
            (origin, place, outputs, entry)
        })
        .collect()
}

/// Outputs must keep the plugin contract (see [`crate::contract`]): a
/// declared, well-formed content type, and an id and metadata within bounds.
fn check_produced(stage: &Stage, outputs: Vec<DocRecord>) -> Result<Vec<DocRecord>, StageFailure> {
    let produces = &stage.plugin.info().produces;
    match outputs
        .iter()
        .find_map(|output| contract::output_problem(output, produces))
    {
        None => Ok(outputs),
        Some(problem) => Err(failure(
            stage,
            FailureKind::Contract,
            problem.to_string(),
            1,
        )),
    }
}

fn failure(stage: &Stage, kind: FailureKind, reason: String, attempts: u32) -> StageFailure {
    let info = stage.plugin.info();
    StageFailure {
        stage: stage.name.clone(),
        plugin: format!("{}@{}", info.name, info.version),
        digest: stage.plugin.digest(),
        kind,
        reason,
        attempts,
    }
}

fn trap_failure(stage: &Stage, trap: &Trap, attempts: u32) -> StageFailure {
    let kind = match trap {
        Trap::Contract(_) => FailureKind::Contract,
        _ => FailureKind::Trap,
    };
    failure(stage, kind, trap.to_string(), attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_stages_are_called_in_eighths_of_at_least_eight_records() {
        assert_eq!(
            chunk_size(64, 64, false),
            64,
            "nothing kept: the batch size"
        );
        assert_eq!(chunk_size(64, 64, true), 8);
        assert_eq!(chunk_size(64, 100, true), 13, "an eighth, rounded up");
        assert_eq!(chunk_size(64, 20, true), 8, "not under eight");
        assert_eq!(chunk_size(4, 20, true), 4, "nor over the batch size");
        assert_eq!(chunk_size(64, 1000, true), 64);
        assert_eq!(chunk_size(0, 3, true), 1);
    }
}
