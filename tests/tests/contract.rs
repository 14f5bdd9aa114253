//! The plugin contract, end to end through the real runtime: a record
//! survives the host -> plugin -> host round trip bit for bit, `describe`,
//! `init` and the counters work, and each outcome kind reaches the chain.

use weir::chain::{ChainResult, FailureKind};
use weir::runtime::{DocRecord, Grants, Limits, PluginError, RuntimeError};
use weir_tests::{chain, load, runtime, text_record};

fn with_meta(id: &str, meta: &[(&str, &str)]) -> DocRecord {
    let mut record = text_record(id, "body");
    record.metadata = meta
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    record
}

#[test]
fn records_round_trip_unchanged() {
    let runtime = runtime();
    let echo = load(&runtime, "echo");
    let mut instance = echo
        .instantiate(&Limits::default(), &Grants::default(), "{}")
        .unwrap();
    let record = DocRecord {
        id: "enwiki:ü/1".into(),
        revision: u64::MAX,
        content_type: "application/octet-stream".into(),
        body: (0..=255u8).chain([0xff, 0xfe, 0x00]).collect(),
        metadata: vec![
            ("title".into(), "Zürich — 東京".into()),
            ("empty".into(), String::new()),
        ],
    };
    let outcomes = instance.process(std::slice::from_ref(&record)).unwrap();
    assert_eq!(outcomes, vec![Ok(vec![record])]);
}

#[test]
fn describe_reports_the_plugin() {
    let runtime = runtime();
    let echo = load(&runtime, "echo");
    assert_eq!(echo.info().name, "echo");
    assert_eq!(echo.info().version, "0.1.0");
    assert_eq!(echo.info().accepts, ["*/*"]);
    assert!(echo.label().starts_with("echo@0.1.0 ("));
    assert_eq!(
        echo.digest(),
        weir::digest::Digest::of(&std::fs::read(weir_tests::plugin_path("echo")).unwrap())
    );
}

#[test]
fn init_receives_the_config_and_rejects_bad_config() {
    let runtime = runtime();
    let echo = load(&runtime, "echo");
    let mut tagged = echo
        .instantiate(&Limits::default(), &Grants::default(), r#"{"tag":"t1"}"#)
        .unwrap();
    let outcomes = tagged.process(&[text_record("a", "x")]).unwrap();
    let output = &outcomes[0].as_ref().unwrap()[0];
    assert_eq!(output.metadata, [("tag".to_owned(), "t1".to_owned())]);

    let err = echo
        .instantiate(&Limits::default(), &Grants::default(), r#"{"tga":"t1"}"#)
        .err()
        .expect("an unknown config key fails init");
    assert!(matches!(err, RuntimeError::Init { .. }), "{err}");
    assert!(err.to_string().contains("unknown field `tga`"), "{err}");
}

#[test]
fn outcomes_counters_and_fan_out() {
    let runtime = runtime();
    let echo = load(&runtime, "echo");
    let mut instance = echo
        .instantiate(&Limits::default(), &Grants::default(), "{}")
        .unwrap();
    let batch = [
        with_meta("three", &[("fanout", "3")]),
        with_meta("none", &[("fanout", "0")]),
        with_meta("bad", &[("fail", "bad-input")]),
        with_meta("failing", &[("fail", "failure")]),
    ];
    let outcomes = instance.process(&batch).unwrap();
    assert_eq!(outcomes[0].as_ref().unwrap().len(), 3);
    assert_eq!(outcomes[1], Ok(vec![]));
    assert_eq!(
        outcomes[2],
        Err(PluginError::BadInput("asked to reject this record".into()))
    );
    assert_eq!(
        outcomes[3],
        Err(PluginError::PluginFailure(
            "asked to fail this record".into()
        ))
    );
    assert_eq!(instance.take_counters().get("records"), Some(4));
    assert!(instance.take_counters().is_empty(), "counters are drained");
}

#[test]
fn the_chain_retries_failures_and_dead_letters_what_keeps_failing() {
    let runtime = runtime();
    let chain = chain(
        &runtime,
        &[
            ("first", "echo", Limits::default()),
            ("second", "echo", Limits::default()),
        ],
    );
    let mut worker = chain.start_worker().unwrap();
    let results = worker
        .process(vec![
            text_record("plain", "p"),
            with_meta("flaky", &[("fail-once", "yes")]),
            with_meta("broken", &[("fail", "failure")]),
            with_meta("rejected", &[("fail", "bad-input")]),
            with_meta("fanned", &[("fanout", "2")]),
            with_meta("filtered", &[("fanout", "0")]),
        ])
        .unwrap();
    let summary: Vec<String> = results
        .iter()
        .map(|r| match r {
            ChainResult::Done {
                outputs,
                stages_run,
            } => format!("done {} after {stages_run}", outputs.len()),
            ChainResult::Failed(f) => format!("{:?} at {} after {}", f.kind, f.stage, f.attempts),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "done 1 after 2",
            "done 1 after 2",
            "PluginFailure at first after 3",
            "BadInput at first after 1",
            // 2 copies at the first stage, each fanned out again at the second.
            "done 4 after 2",
            "done 0 after 1",
        ]
    );
    let ChainResult::Failed(failure) = &results[2] else {
        unreachable!()
    };
    assert_eq!(failure.kind, FailureKind::PluginFailure);
    assert_eq!(failure.plugin, "echo@0.1.0");
    assert_eq!(failure.reason, "asked to fail this record");
}

#[test]
fn a_stage_without_retries_calls_a_failing_record_once() {
    let runtime = runtime();
    let stage = weir::chain::Stage {
        name: "only".to_owned(),
        plugin: std::sync::Arc::new(load(&runtime, "echo")),
        config_json: "{}".into(),
        limits: Limits::default(),
        grants: Grants::default(),
        retries: 0,
        batch_size: 8,
        grants_identity: None,
        cache: false,
    };
    let chain = std::sync::Arc::new(weir::chain::Chain::new(vec![stage]).unwrap());
    let mut worker = chain.start_worker().unwrap();
    // It would succeed on a second call, which retries = 0 must not make.
    let results = worker
        .process(vec![
            text_record("plain", "p"),
            with_meta("flaky", &[("fail-once", "yes")]),
        ])
        .unwrap();
    let ChainResult::Failed(failure) = &results[1] else {
        panic!("a failure without retries is final: {results:?}")
    };
    assert_eq!(
        (failure.kind, failure.attempts),
        (FailureKind::PluginFailure, 1)
    );
}

#[test]
fn a_trapped_batch_is_counted_once() {
    // The batch traps at its second record and is re-run record by record:
    // the counts of the trapped call must not add to those of the re-run.
    let runtime = runtime();
    let chain = chain(&runtime, &[("only", "echo", Limits::default())]);
    let mut worker = chain.start_worker().unwrap();
    let results = worker
        .process(vec![
            text_record("a", "a"),
            with_meta("trap", &[("fail", "panic")]),
            text_record("b", "b"),
        ])
        .unwrap();
    assert!(matches!(&results[1], ChainResult::Failed(f) if f.kind == FailureKind::Trap));
    let counters = worker.take_counters();
    assert_eq!(counters[0].1.get("records"), Some(3), "{counters:?}");
}

#[test]
fn content_types_are_checked_at_run_time() {
    let runtime = runtime();
    let chain = chain(&runtime, &[("parse", "parse", Limits::default())]);
    let mut worker = chain.start_worker().unwrap();
    let results = worker
        .process(vec![text_record("t", "text/plain is not wikitext")])
        .unwrap();
    let ChainResult::Failed(failure) = &results[0] else {
        panic!("{results:?}")
    };
    assert_eq!(failure.kind, FailureKind::BadInput);
    assert!(
        failure
            .reason
            .contains("content type `text/plain` is not accepted by stage `parse`"),
        "{}",
        failure.reason
    );
}

#[test]
fn incompatible_stages_are_rejected_at_load_time() {
    let runtime = runtime();
    let parse = std::sync::Arc::new(load(&runtime, "parse"));
    let stage = |name: &str| weir::chain::Stage {
        name: name.to_owned(),
        plugin: parse.clone(),
        config_json: "{}".into(),
        limits: Limits::default(),
        grants: Grants::default(),
        retries: 0,
        batch_size: 8,
        grants_identity: None,
        cache: false,
    };
    let errors = weir::chain::Chain::new(vec![stage("a"), stage("b")])
        .err()
        .expect("parse cannot feed parse");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .contains("stage `b` accepts [\"text/x-wiki\"]"),
        "{}",
        errors[0]
    );
}
