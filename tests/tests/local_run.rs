//! `weir run` on local files: the bundled example end to end, and malformed
//! input, with every input line accounted for exactly once.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use weir_tests::{plugin_dir, read_jsonl_objects, workspace_root};

/// A pipeline file for `input`, writing to `out`, with one parse stage.
fn pipeline_file(dir: &Path, input: &Path, out: &Path, extra: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[pipeline]
name = "test"

[source.file]
path = "{input}"

[runtime]
plugin_dir = "{plugins}"
compiled_cache_dir = "{cache}"
batch_size = 8

[[stage]]
name = "parse"
plugin = "parse"

[output.local]
dir = "{out}"

[dead_letter.local]
dir = "{out}"

[batching]
max_records = 10
{extra}
"#,
        input = input.display(),
        plugins = plugin_dir().display(),
        cache = dir.join("compiled").display(),
        out = out.display(),
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(pipeline: &Path) -> weir::pipeline::RunSummary {
    let pipeline = weir::config::load(pipeline).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let assembled = weir::pipeline::assemble(&pipeline).await.unwrap();
        weir::pipeline::run_file(&pipeline, &assembled)
            .await
            .unwrap()
    })
}

/// offset -> where it ended ("result" or "dead-letter"), failing on duplicates.
fn account(out: &Path) -> BTreeMap<i64, &'static str> {
    let mut seen = BTreeMap::new();
    let results = read_jsonl_objects(&out.join("test/results"));
    let dead = read_jsonl_objects(&out.join("test/dead-letters"));
    for (lines, place) in [(results, "result"), (dead, "dead-letter")] {
        for line in lines {
            let offset = line["position"]["offset"].as_i64().unwrap();
            assert!(
                seen.insert(offset, place).is_none(),
                "offset {offset} appears twice"
            );
        }
    }
    seen
}

/// A partition worker (topic `events`, partition 0) for the pipeline file
/// `path`, and the sample events to feed it.
async fn partition_worker(
    path: &Path,
) -> (
    weir::partition::PartitionWorker,
    weir::source::FileSource,
    weir::pipeline::Assembled,
) {
    let pipeline = weir::config::load(path).unwrap();
    let assembled = weir::pipeline::assemble(&pipeline).await.unwrap();
    let worker = weir::partition::PartitionWorker::new(
        assembled.chain.start_worker().unwrap(),
        assembled.sink.clone(),
        pipeline.decode.clone(),
        pipeline.batching.clone(),
        "events",
        0,
    );
    let input = workspace_root().join("examples/wiki/data/enwiki-sample-events.jsonl");
    let source = weir::source::FileSource::open(&input, weir::source::FileFormat::Jsonl).unwrap();
    (worker, source, assembled)
}

#[test]
fn the_age_limit_cuts_objects_while_messages_keep_coming() {
    // Batches of 4 messages arrive with 20 ms between them, never leaving
    // the worker idle, with an age limit of 10 ms and room for 10 records
    // per object.
    let dir = tempfile::tempdir().unwrap();
    let input = workspace_root().join("examples/wiki/data/enwiki-sample-events.jsonl");
    let out = dir.path().join("out");
    let path = pipeline_file(dir.path(), &input, &out, "max_age_ms = 10");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (mut worker, mut source, _assembled) = partition_worker(&path).await;
        let mut durable = Vec::new();
        for _ in 0..3 {
            let batch = source.next_batch(4).unwrap();
            durable.extend(worker.process(batch).await.unwrap());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        durable.extend(worker.flush().await.unwrap());
        // Reported as their writes return (in the background, so a call
        // may report the batch handed over in the call before it).
        assert!(
            durable.is_sorted() && durable.last() == Some(&11),
            "{durable:?}"
        );
    });
    // Each batch found the one before it over age: objects of 4 records,
    // none waiting for the tenth record.
    let mut keys: Vec<String> = std::fs::read_dir(out.join("test/results/events/0"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    keys.sort();
    let ranges: Vec<_> = keys
        .iter()
        .filter_map(|k| weir::sink::key_range(k))
        .collect();
    assert_eq!(ranges, [(0, 3), (4, 7), (8, 11)]);
}

#[test]
fn only_the_ranges_already_written_are_adopted() {
    // Offsets 4-7 were written before (say by a host that died before
    // committing); 0-3 and 8-11 were not (deleted, or never written by this
    // group). Resuming at 0, the worker must process 0-3 and 8-11 and
    // leave 4-7 alone, cutting objects around it.
    let dir = tempfile::tempdir().unwrap();
    let input = workspace_root().join("examples/wiki/data/enwiki-sample-events.jsonl");
    let out = dir.path().join("out");
    let path = pipeline_file(dir.path(), &input, &out, "");
    let results = out.join("test/results/events/0");
    std::fs::create_dir_all(&results).unwrap();
    let written = "00000000000000000004-00000000000000000007.jsonl.zst";
    std::fs::write(results.join(written), b"written before").unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (mut worker, mut source, _assembled) = partition_worker(&path).await;
        worker.resume(0).await.unwrap();
        let mut durable = Vec::new();
        for _ in 0..3 {
            let batch = source.next_batch(4).unwrap();
            durable.push(worker.process(batch).await.unwrap());
        }
        durable.push(worker.flush().await.unwrap());
        // 0-3 written when 4 arrives (adopted: durable through 7), 8-11 at
        // the end.
        assert_eq!(durable, [None, Some(7), None, Some(11)]);
        assert_eq!(worker.stats().redelivered, 4);
    });
    let mut keys: Vec<String> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "00000000000000000000-00000000000000000003.jsonl.zst",
            written,
            "00000000000000000008-00000000000000000011.jsonl.zst"
        ]
    );
    assert_eq!(
        std::fs::read(results.join(written)).unwrap(),
        b"written before"
    );
}

#[test]
fn the_bundled_example_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let input = workspace_root().join("examples/wiki/data/enwiki-sample-events.jsonl");
    let out = dir.path().join("out");
    let summary = run(&pipeline_file(dir.path(), &input, &out, ""));
    let s = &summary.stats;
    assert_eq!(
        (s.records, s.results, s.tombstones, s.dead_letters),
        (41, 40, 1, 0)
    );
    assert_eq!(s.counters["parse"].get("pages"), Some(40));

    // 41 inputs, objects cut every 10 records: keys are the offset ranges.
    let mut keys: Vec<String> =
        std::fs::read_dir(out.join("test/results/enwiki-sample-events.jsonl/0"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
    keys.sort();
    assert_eq!(keys.len(), 5);
    assert_eq!(
        keys[0],
        "00000000000000000000-00000000000000000009.jsonl.zst"
    );
    assert_eq!(
        keys[4],
        "00000000000000000040-00000000000000000040.jsonl.zst"
    );
    assert_eq!(account(&out).len(), 41);

    let lines = read_jsonl_objects(&out.join("test/results"));
    let anarchism = lines.iter().find(|l| l["id"] == "enwiki:12").unwrap();
    let parsed = &anarchism["outputs"][0]["json"];
    assert_eq!(parsed["title"], "Anarchism");
    assert!(
        parsed["text"]
            .as_str()
            .unwrap()
            .starts_with("Anarchism is a political philosophy")
    );
    assert!(
        parsed["categories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "Anarchism")
    );
    assert_eq!(anarchism["lineage"][0]["stage"], "parse");
    assert_eq!(anarchism["lineage"][0]["plugin"], "parse@0.1.0");
    let digest = weir::digest::Digest::of(&std::fs::read(plugin_dir().join("parse.wasm")).unwrap());
    assert_eq!(anarchism["lineage"][0]["digest"], digest.to_string());
    assert!(
        anarchism["content_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    let tombstone = lines.iter().find(|l| l["op"] == "delete").unwrap();
    assert_eq!(tombstone["outputs"], Value::Array(vec![]));

    // Re-running writes the same keys: no duplicates appear.
    run(&pipeline_file(dir.path(), &input, &out, ""));
    assert_eq!(account(&out).len(), 41);
}

/// A rerun into the same output directory adopts what is written, whatever
/// the batching or the timing that cut the objects: exactly one copy of
/// every result line, and only a missing range is processed again.
#[test]
fn a_rerun_into_the_same_output_leaves_one_copy_of_every_result() {
    let dir = tempfile::tempdir().unwrap();
    let input = workspace_root().join("examples/wiki/data/enwiki-sample-events.jsonl");
    let out = dir.path().join("out");
    let with_batching = |batching: &str| {
        let path = pipeline_file(dir.path(), &input, &out, "");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("max_records = 10", batching)).unwrap();
        path
    };
    let first = run(&with_batching("max_records = 10"));
    assert_eq!(first.stats.redelivered, 0);
    for batching in ["max_records = 3", "max_records = 100\nmax_age_ms = 1"] {
        let again = run(&with_batching(batching));
        assert_eq!(
            (
                again.stats.records,
                again.stats.results,
                again.stats.redelivered
            ),
            (41, 0, 41),
            "{batching}: everything was written already"
        );
        assert_eq!(account(&out).len(), 41, "{batching}");
    }
    // A range lost since (deleted) is the only thing processed again, cut
    // by this run's batching. (Event mode still knows its documents, so
    // they are recorded as unchanged.)
    let results = out.join("test/results/enwiki-sample-events.jsonl/0");
    std::fs::remove_file(results.join("00000000000000000010-00000000000000000019.jsonl.zst"))
        .unwrap();
    let again = run(&with_batching("max_records = 4"));
    let s = &again.stats;
    let processed = s.results + s.tombstones + s.skipped_unchanged + s.skipped_stale;
    assert_eq!((processed, s.redelivered), (10, 31));
    assert_eq!(account(&out).len(), 41);
}

#[test]
fn malformed_inputs_are_dead_lettered_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let ok = |id: &str, body: &str| {
        format!(
            r#"{{"id":"{id}","op":"upsert","revision":1,"timestamp":"2024-05-01T00:00:00Z","title":"T","body":"{body}"}}"#
        )
    };
    // Not here: a body by reference. Fetching it is the host's work, and an
    // S3 it cannot reach is the host's fault, retried, not the record's
    // (`host/tests/kafka_s3.rs` fetches one in a file run).
    let mut input: Vec<Vec<u8>> = vec![
        ok("good-1", "Some '''wiki''' text").into_bytes(),
        b"{this is not json".to_vec(),
        // Invalid UTF-8 inside a metadata value.
        [&br#"{"id":"bad-utf8","op":"upsert","revision":1,"timestamp":"2024-05-01T00:00:00Z","meta":{"who":""#[..], &[0xc3, 0x28], br#""},"body":"x"}"#].concat(),
        ok("too-big", &"x".repeat(2000)).into_bytes(),
        br#"{"id":"no-rev","op":"upsert","timestamp":"2024-05-01T00:00:00Z","body":"x"}"#.to_vec(),
        br#"{"id":"plain","op":"upsert","revision":1,"timestamp":"2024-05-01T00:00:00Z","content_type":"text/plain","body":"x"}"#.to_vec(),
        br#"{"id":"gone","op":"delete","revision":2,"timestamp":"2024-05-01T00:00:00Z"}"#.to_vec(),
        ok("good-2", "More [[text]]").into_bytes(),
    ];
    let path = dir.path().join("events.jsonl");
    for line in &mut input {
        line.push(b'\n');
    }
    std::fs::write(&path, input.concat()).unwrap();
    let out = dir.path().join("out");
    let summary = run(&pipeline_file(
        dir.path(),
        &path,
        &out,
        "[decode]\nmax_body_bytes = 1000",
    ));
    assert_eq!((summary.stats.records, summary.stats.dead_letters), (8, 5));

    let places = account(&out);
    assert_eq!(
        places.len(),
        8,
        "every line ends in exactly one place: {places:?}"
    );
    let dead = read_jsonl_objects(&out.join("test/dead-letters"));
    let reasons: BTreeMap<i64, (String, String)> = dead
        .iter()
        .map(|d| {
            (
                d["position"]["offset"].as_i64().unwrap(),
                (
                    d["kind"].as_str().unwrap().to_owned(),
                    d["reason"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let expect = [
        (
            1,
            "decode",
            "payload is not a valid change event: key must be a string at line 1 column 2",
        ),
        (
            2,
            "decode",
            "payload is not valid UTF-8 (first invalid byte at offset 94)",
        ),
        (
            3,
            "decode",
            "body is 2000 bytes, over the configured max_body_bytes of 1000",
        ),
        (4, "decode", "missing field `revision`"),
        (
            5,
            "bad-input",
            "content type `text/plain` is not accepted by stage `parse`",
        ),
    ];
    for (offset, kind, reason) in expect {
        let (got_kind, got_reason) = &reasons[&offset];
        assert_eq!(got_kind, kind, "offset {offset}");
        assert!(
            got_reason.contains(reason),
            "offset {offset}: {got_reason:?}"
        );
    }
    // The raw payload is kept for re-driving; binary payloads as base64.
    let utf8 = dead.iter().find(|d| d["position"]["offset"] == 2).unwrap();
    assert!(utf8["payload"]["base64"].is_string());
    let stage = dead.iter().find(|d| d["position"]["offset"] == 5).unwrap();
    assert_eq!(stage["stage"], "parse");
    assert!(
        stage["plugin_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
}

#[test]
fn validate_reports_every_problem_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let missing = dir.path().join("missing.jsonl");
    let path = pipeline_file(dir.path(), &missing, &out, "max_age_ms = 0");
    let err = weir::config::load(&path).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.problems.len(), 2, "{text}");
    assert!(
        text.contains("line 6, column 1: `source.file.path`: no such file"),
        "{text}"
    );
    assert!(
        text.contains("line 25, column 1: `batching.max_age_ms`: must be positive"),
        "{text}"
    );
}

/// A `[stage.config]` the plugin's `init` refuses fails before any record
/// is read (`weir validate` and `weir run` both start every stage once),
/// with the stage, the plugin's reason and the table's line.
#[test]
fn a_stage_config_the_plugin_refuses_is_reported_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, "").unwrap();
    let path = pipeline_file(dir.path(), &input, &dir.path().join("out"), "");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "plugin = \"parse\"\n",
        "plugin = \"parse\"\n[stage.config]\nno_such_setting = true\n",
    );
    std::fs::write(&path, &text).unwrap();
    let pipeline = weir::config::load(&path).unwrap();
    let err = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let assembled = weir::pipeline::assemble(&pipeline).await.unwrap();
        weir::pipeline::try_stages(&path, &assembled).unwrap_err()
    });
    let line = text.lines().position(|l| l == "[stage.config]").unwrap() + 1;
    let shown = err.to_string();
    assert!(
        shown.contains(&format!(
            "line {line}, column 8: `stage[0].config`: stage `parse` does not start"
        )) && shown.contains("no_such_setting"),
        "{shown}"
    );
}

#[test]
fn a_mediawiki_dump_is_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let dump = weir_tests::sample_dump();
    let summary = run(&pipeline_file(dir.path(), &dump, &out, ""));
    assert_eq!(
        (
            summary.stats.records,
            summary.stats.results,
            summary.stats.dead_letters
        ),
        (206, 206, 0)
    );
    let lines = read_jsonl_objects(&out.join("test/results"));
    let albedo = lines
        .iter()
        .find(|l| l["metadata"]["title"] == "Albedo")
        .unwrap();
    assert_eq!(albedo["id"], "enwiki:39");
    assert_eq!(albedo["revision"], 715952044);
    assert_eq!(
        albedo["position"]["topic"],
        "enwiki-sample-pages-articles.xml.bz2"
    );
    assert_eq!(albedo["metadata"]["wiki"], "enwiki");
}
