//! Unit tests of the chain and its worker, on the real plugins.

use super::*;
use crate::cache::{StageCache, StoredOutput};
use crate::digest::Digest;
use crate::runtime::{DocRecord, Runtime};
use crate::test_support::chain_of;

fn record(id: &str, content_type: &str, body: &str) -> DocRecord {
    DocRecord {
        id: id.to_owned(),
        revision: 1,
        content_type: content_type.to_owned(),
        body: body.as_bytes().to_vec(),
        metadata: Vec::new(),
    }
}

/// A worker of the chain of `plugins` with a cache in memory, with the
/// runtime (kept alive with it), the chain and the cache.
fn cached_worker(plugins: &[&str]) -> (Runtime, Arc<Chain>, Arc<StageCache>, ChainWorker) {
    let (runtime, chain) = chain_of(plugins);
    let chain = Arc::new(chain.unwrap());
    let cache = Arc::new(StageCache::new(
        crate::storage::ObjectStore::memory(),
        1 << 20,
    ));
    let worker = chain.start_worker().unwrap().with_cache(cache.clone());
    (runtime, chain, cache, worker)
}

/// The instances `try_stages` started are the next worker's: a run starts
/// each stage once, not once to try it and again to run it.
#[test]
fn the_next_worker_takes_the_instances_tried() {
    let (runtime, chain) = chain_of(&["parse", "lang"]);
    let chain = Arc::new(chain.unwrap());
    chain.try_stages().unwrap();
    assert_eq!(runtime.live_instances(), 2, "kept for the next worker");
    let first = chain.start_worker().unwrap();
    assert_eq!(runtime.live_instances(), 2, "the tried ones");
    let second = chain.start_worker().unwrap();
    assert_eq!(runtime.live_instances(), 4, "new ones");
    drop((first, second));
    assert_eq!(runtime.live_instances(), 0);
}

/// With a cache, the same inputs again are answered from it: identical
/// results, no plugin call; a new record is computed.
#[test]
fn cached_stages_answer_repeated_inputs_without_the_plugin() {
    let (_runtime, chain, cache, mut worker) = cached_worker(&["parse", "lang"]);
    let inputs = vec![
        record(
            "a",
            "text/x-wiki",
            "'''Albedo''' is a measure of reflection.",
        ),
        record("b", "image/png", "not wikitext"),
        record("c", "text/x-wiki", "== Heading ==\nText."),
    ];
    let first = worker.process(inputs.clone()).unwrap();
    let work = |worker: &mut ChainWorker| -> Vec<StageWork> {
        worker.take_work().into_iter().map(|(_, w)| w).collect()
    };
    let computed = StageWork {
        cache_hits: 0,
        cache_misses: 2,
        plugin_records: 2,
    };
    assert_eq!(work(&mut worker), [computed, computed]);
    // The fills go to the cache (in memory here, as `store` does): the
    // two records each stage computed, not the failed one.
    let fills = worker.take_fills();
    assert_eq!(
        fills.iter().map(|(i, f)| (*i, f.len())).collect::<Vec<_>>(),
        [(0, 2), (1, 2)]
    );
    // The last stage's entries keep whether their outputs are JSON
    // documents and their frames (result lines need them); the first
    // stage's keep their digests instead.
    for (index, entries) in &fills {
        let last = *index == 1;
        for (_, outputs) in entries {
            for output in outputs.iter() {
                assert_eq!(output.last().map(|(json, _)| json), last.then_some(true));
                assert_eq!(output.digest().is_none(), last, "{index}");
            }
        }
    }
    for (_, entries) in fills {
        cache.remember(&entries);
    }
    let again = worker.process(inputs.clone()).unwrap();
    assert_eq!(again, first, "the same results, failures included");
    // Computed or from the cache, each output comes as the frame the sink
    // splices: the output as a result line writes it.
    let uncached = chain
        .start_worker()
        .unwrap()
        .process(inputs.clone())
        .unwrap();
    for (result, plain) in [(&first[0], &uncached[0]), (&again[0], &uncached[0])]
        .into_iter()
        .chain([(&first[2], &uncached[2]), (&again[2], &uncached[2])])
    {
        let (ChainResult::Done { outputs, .. }, ChainResult::Done { outputs: plain, .. }) =
            (result, plain)
        else {
            panic!("{result:?}");
        };
        assert!(outputs.iter().all(Output::is_json), "{outputs:?}");
        assert_eq!(outputs.len(), plain.len());
        for (output, plain) in outputs.iter().zip(plain) {
            let record = plain.record().expect("uncached outputs are records");
            let expected = crate::sink::OutputFrame::of(record, true, 1);
            assert_eq!(output.body(), &OutputBody::Framed(expected));
        }
    }
    let answered = StageWork {
        cache_hits: 2,
        cache_misses: 0,
        plugin_records: 0,
    };
    assert_eq!(work(&mut worker), [answered, answered]);
    assert!(worker.take_fills().is_empty(), "nothing new to store");
    let mut changed = inputs;
    changed[2].body.extend_from_slice(b" More.");
    worker.process(changed).unwrap();
    let one_new = StageWork {
        cache_hits: 1,
        cache_misses: 1,
        plugin_records: 1,
    };
    assert_eq!(work(&mut worker), [one_new, one_new]);
}

/// The outputs of one input fanned out keep their order when the next
/// stage answers some of them from the cache and computes the others: a
/// warm or resumed run writes what a cold run writes. (The cached ones
/// used to come first.)
#[test]
fn fanned_out_siblings_keep_their_order_when_only_some_are_cached() {
    let (_runtime, _chain, cache, mut worker) = cached_worker(&["echo", "echo"]);
    let mut input = record("x", "text/plain", "body");
    input.metadata.push(("fanout".into(), "2".into()));
    let cold = worker.process(vec![input.clone()]).unwrap();
    let ChainResult::Done { outputs, .. } = &cold[0] else {
        panic!("{cold:?}");
    };
    assert_eq!(outputs.len(), 4, "two copies, each fanned out again");
    // The first stage's entry, and the second stage's entry of the second
    // copy only (a memory tier that evicted the other, say).
    for (index, entries) in worker.take_fills() {
        assert_eq!(entries.len(), index + 1);
        cache.remember(&entries[index..]);
    }
    worker.take_work();
    let warm = worker.process(vec![input]).unwrap();
    let second = worker.take_work()[1].1;
    assert_eq!((second.cache_hits, second.cache_misses), (1, 1));
    assert_eq!(warm, cold);
}

/// A cached stage's inputs go to the plugin in several calls, what the
/// cache keeps of one call's outputs worked out beside the next call: the
/// results are those of a chain without a cache, failures and fanned-out
/// outputs in place; the fills are the computed inputs', in input order;
/// and a second run answers every record from them.
#[test]
fn chunked_calls_of_a_cached_stage_give_the_uncached_results() {
    let (_runtime, chain, cache, mut worker) = cached_worker(&["echo", "echo"]);
    // 40 inputs: five calls of eight at the first stage; at the second,
    // six calls for the 46 outputs of the 38 that did not fail.
    let inputs: Vec<DocRecord> = (0..40)
        .map(|i| {
            let mut input = record(&format!("r{i}"), "text/plain", &format!("body {i}"));
            let asked = match i {
                13 => Some(("fail", "bad-input")),
                27 => Some(("fail", "panic")),
                i if i % 5 == 0 => Some(("fanout", "2")),
                _ => None,
            };
            if let Some((key, value)) = asked {
                input.metadata.push((key.into(), value.into()));
            }
            input
        })
        .collect();
    let cold = worker.process(inputs.clone()).unwrap();
    let uncached = chain
        .start_worker()
        .unwrap()
        .process(inputs.clone())
        .unwrap();
    assert_eq!(cold.len(), uncached.len());
    for (i, (result, plain)) in cold.iter().zip(&uncached).enumerate() {
        let (ChainResult::Done { outputs, .. }, ChainResult::Done { outputs: plain, .. }) =
            (result, plain)
        else {
            assert!(matches!(result, ChainResult::Failed(_)), "{i}: {result:?}");
            assert_eq!(result, plain, "{i}");
            continue;
        };
        assert_eq!(outputs.len(), plain.len(), "{i}");
        for (output, plain) in outputs.iter().zip(plain) {
            let record = plain.record().expect("uncached outputs are records");
            let frame = crate::sink::OutputFrame::of(record, plain.is_json(), cache.frame_level());
            assert_eq!(output.body(), &OutputBody::Framed(frame), "{i}");
        }
    }
    let failed: Vec<usize> = (0..cold.len())
        .filter(|&i| matches!(cold[i], ChainResult::Failed(_)))
        .collect();
    assert_eq!(failed, [13, 27]);
    let fills = worker.take_fills();
    let ids = |entries: &[(Digest, Vec<StoredOutput>)]| -> Vec<String> {
        entries
            .iter()
            .map(|(_, outputs)| outputs[0].head().id.to_owned())
            .collect()
    };
    let computed: Vec<String> = (0..40)
        .filter(|i| ![13, 27].contains(i))
        .map(|i| format!("r{i}"))
        .collect();
    assert_eq!(ids(&fills[0].1), computed, "the first stage's, in order");
    // The second stage's: one per output of the first, two for each
    // record fanned out.
    let twice: Vec<String> = computed
        .iter()
        .flat_map(|id| {
            let fanned = id[1..].parse::<usize>().unwrap() % 5 == 0;
            vec![id.clone(); if fanned { 2 } else { 1 }]
        })
        .collect();
    assert_eq!(ids(&fills[1].1), twice, "the second stage's, in order");
    for (_, entries) in &fills {
        cache.remember(entries);
    }
    worker.take_work();
    let warm = worker.process(inputs).unwrap();
    assert_eq!(warm, cold);
    let work: Vec<(u64, u64)> = worker
        .take_work()
        .into_iter()
        .map(|(_, w)| (w.cache_hits, w.plugin_records))
        .collect();
    // The failed ones are computed again: failures are not cached.
    assert_eq!(work, [(38, 2), (twice.len() as u64, 0)]);
}

#[test]
fn stages_that_do_not_fit_together_are_refused_at_load() {
    let (_runtime, chain) = chain_of(&["lang", "parse"]);
    let errors = chain.err().expect("lang's output is not parse's input");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].to_string().contains("stage `parse` accepts"),
        "{}",
        errors[0]
    );
    let (_runtime, chain) = chain_of(&["parse", "lang", "score"]);
    assert!(chain.is_ok(), "the document chain fits");
}

/// One result per input, in order; a record a stage does not accept is
/// dead-lettered alone; a failure's lineage names the stage and plugin.
#[test]
fn one_result_per_input_and_failures_stay_with_their_record() {
    let (_runtime, chain) = chain_of(&["parse"]);
    let chain = Arc::new(chain.unwrap());
    let mut worker = chain.start_worker().unwrap();
    let results = worker
        .process(vec![
            record("a", "text/x-wiki", "'''Albedo''' is a measure."),
            record("b", "image/png", "not wikitext"),
            record("c", "text/x-wiki", "== Heading ==\nText."),
        ])
        .unwrap();
    assert_eq!(results.len(), 3);
    assert!(
        matches!(&results[0], ChainResult::Done { outputs, stages_run: 1 } if outputs.len() == 1)
    );
    let ChainResult::Failed(failure) = &results[1] else {
        panic!("{:?}", results[1]);
    };
    assert_eq!(
        (failure.stage.as_str(), failure.kind),
        ("parse", FailureKind::BadInput)
    );
    assert!(failure.plugin.starts_with("parse@"), "{}", failure.plugin);
    assert!(matches!(&results[2], ChainResult::Done { .. }));
}

/// Entries read from packs are passed on between stages without their
/// bodies: a chain whose stages all hit decompresses none of the packs'
/// bodies, and a chain whose last stage is new rebuilds its input from
/// them and computes what a chain without a cache computes.
#[test]
fn hits_from_packs_rebuild_bodies_only_for_a_stage_that_runs() {
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let store = crate::storage::ObjectStore::memory();
    let inputs = vec![
        record(
            "a",
            "text/x-wiki",
            &"'''Albedo''' is a measure. ".repeat(40),
        ),
        record("c", "text/x-wiki", "== Heading ==\nText."),
    ];
    let (_runtime, two) = chain_of(&["parse", "lang"]);
    let two = Arc::new(two.unwrap());
    let (_runtime3, three) = chain_of(&["parse", "lang", "score"]);
    let three = Arc::new(three.unwrap());
    // A cold run of parse -> lang, its entries written as packs.
    let writer = Arc::new(StageCache::new(store.clone(), 1 << 20));
    let mut cold = two.start_worker().unwrap().with_cache(writer.clone());
    let expected = cold.process(inputs.clone()).unwrap();
    let _guard = tokio.enter();
    let mut keys = Vec::new();
    for (index, entries) in cold.take_fills() {
        keys.push(entries.iter().map(|(key, _)| *key).collect::<Vec<_>>());
        writer.store(&two.stage_id(index), "t", 0, (0, 1), entries);
    }
    tokio.block_on(writer.flush());
    // A fresh cache reads them, as a replay's would.
    let read = |stages: &[Digest]| {
        let cache = Arc::new(StageCache::new(store.clone(), 1 << 20));
        tokio.block_on(cache.prefetch(stages, "t", 0, 0, 1));
        cache
    };
    let decompressed = |cache: &StageCache, stage: usize| -> Vec<bool> {
        keys[stage]
            .iter()
            .map(|key| {
                let outputs = cache.get(key).expect("read from its pack");
                let bodies = outputs[0]
                    .packed_in()
                    .expect("a read entry's body is packed");
                bodies.is_decompressed()
            })
            .collect()
    };
    let stages: Vec<Digest> = (0..2).map(|i| two.stage_id(i)).collect();
    let warm = read(&stages);
    let mut worker = two.start_worker().unwrap().with_cache(warm.clone());
    assert_eq!(worker.process(inputs.clone()).unwrap(), expected);
    let work: Vec<u64> = worker
        .take_work()
        .iter()
        .map(|(_, w)| w.cache_hits)
        .collect();
    assert_eq!(work, [2, 2]);
    assert_eq!(decompressed(&warm, 0), [false, false], "parse's documents");
    assert_eq!(decompressed(&warm, 1), [false, false], "lang's additions");

    // A new last stage: parse and lang hit, score runs on lang's documents
    // rebuilt from both packs.
    let partial = read(&stages);
    let mut worker = three.start_worker().unwrap().with_cache(partial.clone());
    let results = worker.process(inputs.clone()).unwrap();
    let work: Vec<(u64, u64)> = worker
        .take_work()
        .iter()
        .map(|(_, w)| (w.cache_hits, w.plugin_records))
        .collect();
    assert_eq!(work, [(2, 0), (2, 0), (0, 2)]);
    let uncached = three.start_worker().unwrap().process(inputs).unwrap();
    assert_eq!(results.len(), uncached.len());
    for (result, plain) in results.iter().zip(&uncached) {
        let (ChainResult::Done { outputs, .. }, ChainResult::Done { outputs: plain, .. }) =
            (result, plain)
        else {
            panic!("{result:?}");
        };
        // Framed (score is cached now), and the frame of what the
        // uncached chain computed.
        assert_eq!(outputs.len(), plain.len());
        for (output, plain) in outputs.iter().zip(plain) {
            let record = plain.record().expect("uncached outputs are records");
            let frame = crate::sink::OutputFrame::of(record, true, partial.frame_level());
            assert_eq!(output.body(), &OutputBody::Framed(frame));
        }
    }
    assert_eq!(decompressed(&partial, 0), [true, true]);
}
