//! Unit tests of the chain and its worker, on the real plugins.

use super::*;
use crate::cache::StageCache;
use crate::runtime::DocRecord;
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

/// With a cache, the same inputs again are answered from it: identical
/// results, no plugin call; a new record is computed.
#[test]
fn cached_stages_answer_repeated_inputs_without_the_plugin() {
    let (_runtime, chain) = chain_of(&["parse", "lang"]);
    let chain = Arc::new(chain.unwrap());
    let cache = Arc::new(StageCache::new(
        crate::storage::ObjectStore::memory(),
        1 << 20,
    ));
    let mut worker = chain.start_worker().unwrap().with_cache(cache.clone());
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
    // documents (result lines need it); the first stage's do not.
    for (index, entries) in &fills {
        let expected = (*index == 1).then_some(true);
        for (_, outputs) in entries {
            assert!(outputs.iter().all(|o| o.json() == expected), "{index}");
        }
    }
    for (_, entries) in fills {
        cache.remember(&entries);
    }
    let again = worker.process(inputs.clone()).unwrap();
    assert_eq!(again, first, "the same results, failures included");
    for result in [&first[0], &again[0], &first[2], &again[2]] {
        let ChainResult::Done { outputs, .. } = result else {
            panic!("{result:?}");
        };
        assert!(outputs.iter().all(Output::is_json), "{outputs:?}");
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
    let (_runtime, chain) = chain_of(&["echo", "echo"]);
    let chain = Arc::new(chain.unwrap());
    let cache = Arc::new(StageCache::new(
        crate::storage::ObjectStore::memory(),
        1 << 20,
    ));
    let mut worker = chain.start_worker().unwrap().with_cache(cache.clone());
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
