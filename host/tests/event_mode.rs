//! Event mode end to end: `weir run` hosts against the real broker and S3
//! server, re-ingesting the same documents with a few changed, with
//! restarts, kill -9, partitions moving between replicas and broken
//! checkpoints. Counts are exact: every offset has exactly one line, and
//! each line says whether its event was computed or skipped (and why).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use weir_tests::e2e::{PIPELINE, Scenario};
use weir_tests::process::Spawned;
use weir_tests::services::Services;

fn weir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// Checkpoints at every written batch, so restores start from one.
const EVERY_BATCH: &str = "\n[event_mode]\ncheckpoint_interval_s = 0\n";

/// The bundled sample events (40 pages, then a delete of the last one), as
/// JSON values, `copies` times with distinct document ids (`enwiki:12#3`).
fn sample_events(copies: usize) -> Vec<Value> {
    let text = std::fs::read_to_string(
        weir_tests::workspace_root().join("examples/wiki/data/enwiki-sample-events.jsonl"),
    )
    .unwrap();
    let mut events = Vec::new();
    for copy in 0..copies {
        for line in text.lines() {
            let mut event: Value = serde_json::from_str(line).unwrap();
            let id = format!("{}#{copy}", event["id"].as_str().unwrap());
            event["id"] = Value::from(id);
            events.push(event);
        }
    }
    events
}

/// The ids of the documents [`with_changes`] edits.
fn edited_ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["op"] == "upsert" && !e["id"].as_str().unwrap().starts_with("enwiki:254"))
        .step_by(3)
        .take(10)
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `events` as they might arrive later: 10 documents edited (new revision,
/// new body), and the deleted document of the first copy re-created. Every
/// other event is re-sent as it was.
fn with_changes(events: &[Value]) -> Vec<Value> {
    let edited = edited_ids(events);
    let mut later: Vec<Value> = events
        .iter()
        .map(|event| {
            let mut event = event.clone();
            if edited.iter().any(|id| event["id"] == id.as_str()) {
                let body = format!("{}\n\nAn edit.", event["body"].as_str().unwrap());
                event["body"] = Value::from(body);
                event["revision"] = Value::from(event["revision"].as_u64().unwrap() + 1);
            }
            event
        })
        .collect();
    let deleted = events
        .iter()
        .find(|e| e["op"] == "delete")
        .expect("the sample deletes a page");
    let mut recreated = events
        .iter()
        .find(|e| e["op"] == "upsert" && e["id"] == deleted["id"])
        .unwrap()
        .clone();
    recreated["revision"] = Value::from(deleted["revision"].as_u64().unwrap() + 1);
    later.push(recreated);
    later
}

fn write_events(dir: &Path, name: &str, events: &[Value]) -> PathBuf {
    let path = dir.join(name);
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// What became of the events of one ingest: lines by verdict
/// (`computed`, `tombstone`, `unchanged`, `stale`), over the offsets at or
/// after `from` (per partition).
async fn verdicts(
    scenario: &Scenario,
    services: &Services,
    from: &[i64],
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, line) in services
        .read_lines(&scenario.bucket, &format!("{PIPELINE}/results/"))
        .await
    {
        let partition = line["position"]["partition"].as_i64().unwrap() as usize;
        if line["position"]["offset"].as_i64().unwrap() < from[partition] {
            continue;
        }
        let verdict = match (line["skipped"].as_str(), line["op"].as_str()) {
            (Some(skip), _) => skip.to_owned(),
            (None, Some("delete")) => "tombstone".to_owned(),
            (None, _) => "computed".to_owned(),
        };
        *counts.entry(verdict).or_default() += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| ((*k).to_owned(), *n))
        .collect()
}

/// Run one host until every ingested offset is accounted for, then stop it
/// (SIGTERM) and check the accounting; returns the host's summary line.
async fn run_to_end(scenario: &Scenario, services: &Services, n: usize) -> String {
    let host = scenario.start_host(&weir(), services, n, "replica-0");
    let places = scenario
        .wait_accounted(services, Duration::from_secs(180))
        .await;
    let tail = host.log_tail();
    let (code, stdout) = host.terminate();
    assert_eq!(code, Some(0), "{stdout}\n{tail}");
    scenario.assert_exactly_once(services, &places).await;
    stdout
}

/// A scenario whose topic holds `copies` of the sample events, all
/// processed by one host that has stopped; returns it with the later
/// version of the events ([`with_changes`]), not yet ingested.
async fn after_first_pass(
    services: &Services,
    name: &str,
    copies: usize,
    extra: &str,
) -> (Scenario, Vec<Value>, PathBuf) {
    let scenario = Scenario::new(services, name, 4, extra).await;
    let events = sample_events(copies);
    let first = write_events(scenario.dir(), "first.jsonl", &events);
    let later = write_events(scenario.dir(), "later.jsonl", &with_changes(&events));
    scenario.ingest(&weir(), services, &first);
    run_to_end(&scenario, services, 0).await;
    (scenario, events, later)
}

#[tokio::test(flavor = "multi_thread")]
async fn only_changed_documents_are_recomputed_across_restarts() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    // 1. Everything is new: 40 pages computed; the delete of the last one
    //    is a tombstone.
    let (scenario, _, later) = after_first_pass(services, "event-mode", 1, EVERY_BATCH).await;
    let first = scenario.dir().join("first.jsonl");
    let zero = vec![0; 4];
    assert_eq!(
        verdicts(&scenario, services, &zero).await,
        counts(&[("computed", 40), ("tombstone", 1)])
    );

    // 2. The same events again, to a new host (state restored from the
    //    checkpoints): nothing computed. The deleted page's upsert is older
    //    than its delete (stale); the delete is repeated (unchanged).
    let marks = services.high_watermarks(&scenario.topic, scenario.partitions);
    scenario.ingest(&weir(), services, &first);
    let summary = run_to_end(&scenario, services, 1).await;
    assert_eq!(
        verdicts(&scenario, services, &marks).await,
        counts(&[("unchanged", 40), ("stale", 1)])
    );
    assert!(summary.contains("40 unchanged, 1 stale"), "{summary}");

    // 3. Ten pages edited and the deleted page re-created: exactly those 11
    //    computed, against a state rebuilt from the results alone (the
    //    checkpoints are gone).
    let s3 = services.s3_client().await;
    let checkpoints = checkpoint_keys(&scenario, &s3).await;
    assert!(!checkpoints.is_empty(), "checkpoints were written");
    for key in checkpoints {
        s3.delete_object()
            .bucket(&scenario.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
    }
    let marks = services.high_watermarks(&scenario.topic, scenario.partitions);
    scenario.ingest(&weir(), services, &later);
    run_to_end(&scenario, services, 2).await;
    assert_eq!(
        verdicts(&scenario, services, &marks).await,
        counts(&[("computed", 11), ("unchanged", 30), ("stale", 1)])
    );
    let log = std::fs::read_to_string(scenario.dir().join("host-2.log")).unwrap();
    assert!(log.contains("event-mode state restored"), "{log}");

    // 4. Event mode off: every event computed again.
    let marks = services.high_watermarks(&scenario.topic, scenario.partitions);
    scenario.ingest(&weir(), services, &first);
    let output = Spawned::start(
        std::process::Command::new(weir())
            .args(["run", "--every-event", "-c"])
            .arg(&scenario.pipeline)
            .envs(services.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("WEIR_LOG", "warn"),
    );
    let places = scenario
        .wait_accounted(services, Duration::from_secs(180))
        .await;
    stop(output);
    scenario.assert_exactly_once(services, &places).await;
    assert_eq!(
        verdicts(&scenario, services, &marks).await,
        counts(&[("computed", 40), ("tombstone", 1)])
    );
}

/// The keys of the scenario's event-mode checkpoints.
async fn checkpoint_keys(scenario: &Scenario, s3: &aws_sdk_s3::Client) -> Vec<String> {
    let listed = s3
        .list_objects_v2()
        .bucket(&scenario.bucket)
        .prefix(format!("{PIPELINE}/checkpoints/"))
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .map(|o| o.key().unwrap().to_owned())
        .collect()
}

fn stop(child: Spawned) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output();
    assert!(output.status.success());
}

/// The bundled dump (206 pages), ingested and run, then ingested again:
/// the second time every page is skipped as unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn the_bundled_dump_ingested_twice_is_computed_once() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let scenario = Scenario::new(services, "event-dump", 4, "").await;
    let dump = weir_tests::sample_dump();
    scenario.ingest(&weir(), services, &dump);
    run_to_end(&scenario, services, 0).await;
    assert_eq!(
        verdicts(&scenario, services, &[0; 4]).await,
        counts(&[("computed", 206)])
    );
    let marks = services.high_watermarks(&scenario.topic, scenario.partitions);
    scenario.ingest(&weir(), services, &dump);
    let summary = run_to_end(&scenario, services, 1).await;
    assert_eq!(
        verdicts(&scenario, services, &marks).await,
        counts(&[("unchanged", 206)])
    );
    assert!(
        summary.contains(": 0 results (0 outputs)") && summary.contains("206 unchanged"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_checkpoint_is_skipped_and_the_state_rebuilt_from_results() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let (scenario, _, _) = after_first_pass(services, "corrupt-checkpoint", 1, EVERY_BATCH).await;
    let events = scenario.dir().join("first.jsonl");

    let s3 = services.s3_client().await;
    let checkpoints = checkpoint_keys(&scenario, &s3).await;
    assert!(!checkpoints.is_empty());
    for key in checkpoints {
        s3.put_object()
            .bucket(&scenario.bucket)
            .key(key)
            .body(b"not a checkpoint".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let marks = services.high_watermarks(&scenario.topic, scenario.partitions);
    scenario.ingest(&weir(), services, &events);
    run_to_end(&scenario, services, 1).await;
    assert_eq!(
        verdicts(&scenario, services, &marks).await,
        counts(&[("unchanged", 40), ("stale", 1)]),
        "rebuilt from the results: nothing recomputed, nothing skipped wrongly"
    );
    let log = std::fs::read_to_string(scenario.dir().join("host-1.log")).unwrap();
    assert!(
        log.contains("skipping a corrupt event-mode checkpoint"),
        "{log}"
    );
    assert!(log.contains("no usable event-mode checkpoint"), "{log}");
}

/// The second pass of a 20-copy sample (820 events) with 10 documents
/// edited, killed with SIGKILL at 10 pseudo-random moments, then finished:
/// every offset once, and the verdicts of a clean run.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_a_reingest_never_skips_a_changed_document() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let static_member =
        "\n[source.kafka.properties]\n\"group.instance.id\" = \"${WEIR_INSTANCE_ID}\"\n";
    let extra = format!("{EVERY_BATCH}{static_member}");
    let (scenario, events, later) = after_first_pass(services, "event-kill9", 20, &extra).await;

    let marks = services.high_watermarks(&scenario.topic, scenario.partitions);
    scenario.ingest(&weir(), services, &later);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for round in 1..=10 {
        let host = scenario.start_host(&weir(), services, round, "replica-0");
        assert!(
            host.wait_for_log("event-mode state restored", Duration::from_secs(60))
                .await,
            "round {round}: no partition restored:\n{}",
            host.log_tail()
        );
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let wait = Duration::from_millis(state % 1500);
        tokio::time::sleep(wait).await;
        host.kill_9();
        eprintln!("round {round}: killed {wait:?} after a restore");
    }
    run_to_end(&scenario, services, 11).await;
    // 20 copies: 19 deleted pages stale and their deletes unchanged; the
    // first copy's deleted page re-created; 10 edited pages.
    assert_eq!(
        verdicts(&scenario, services, &marks).await,
        counts(&[
            ("computed", 11),
            ("unchanged", 20 * 41 - 10 - 20),
            ("stale", 20)
        ])
    );
    // Each edit was computed at its new revision.
    let lines = services
        .read_lines(&scenario.bucket, &format!("{PIPELINE}/results/"))
        .await;
    for id in edited_ids(&events) {
        let computed = lines
            .iter()
            .filter(|(_, l)| l["id"] == id.as_str() && l["skipped"].is_null())
            .count();
        assert_eq!(computed, 2, "{id}: once in the first pass, once edited");
    }
}

/// Two replicas: partitions move from one to the other in the middle of the
/// second pass; the new owner restores their state, and the verdicts equal
/// a one-host run's.
#[tokio::test(flavor = "multi_thread")]
async fn a_partition_that_moves_to_another_replica_keeps_its_state() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let (scenario, _, later) = after_first_pass(services, "event-move", 10, EVERY_BATCH).await;

    let marks = services.high_watermarks(&scenario.topic, scenario.partitions);
    scenario.ingest(&weir(), services, &later);
    let one = scenario.start_host(&weir(), services, 1, "replica-1");
    assert!(
        one.wait_for_log("event-mode state restored", Duration::from_secs(60))
            .await
    );
    let two = scenario.start_host(&weir(), services, 2, "replica-2");
    assert!(
        two.wait_for_log("event-mode state restored", Duration::from_secs(60))
            .await,
        "the second replica took partitions"
    );
    let (code, out) = one.terminate();
    assert_eq!(code, Some(0), "{out}");
    let places = scenario
        .wait_accounted(services, Duration::from_secs(180))
        .await;
    let (code, out) = two.terminate();
    assert_eq!(code, Some(0), "{out}");
    scenario.assert_exactly_once(services, &places).await;
    assert_eq!(
        verdicts(&scenario, services, &marks).await,
        counts(&[
            ("computed", 11),
            ("unchanged", 10 * 41 - 10 - 10),
            ("stale", 10)
        ])
    );
}

/// The bundled example's pipeline file, written into `dir` with absolute
/// paths and its output under `dir/out`.
fn example_pipeline(dir: &tempfile::TempDir) -> PathBuf {
    let example = weir_tests::workspace_root().join("examples/wiki");
    let text = std::fs::read_to_string(example.join("pipeline.toml"))
        .unwrap()
        .replace("data/", &format!("{}/data/", example.display()))
        .replace(
            "../../target/wasm",
            &weir_tests::plugin_dir().display().to_string(),
        )
        .replace(
            "../../target/",
            &format!("{}/target/", weir_tests::workspace_root().display()),
        )
        .replace("../../out", &dir.path().join("out").display().to_string());
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline, text).unwrap();
    pipeline
}

/// A reader that stops early (`weir run ... | head -1`) is not an error:
/// the run is done and durable by the time it prints.
#[test]
fn a_closed_standard_output_does_not_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = example_pipeline(&dir);
    let mut child = std::process::Command::new(weir())
        .args(["run", "-c"])
        .arg(&pipeline)
        .env("WEIR_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // nobody reads the summary
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("out/wiki-local/results").is_dir());
}

/// The README's example: the bundled dump (206 pages), then a later export
/// of some of the same pages as change events (`--input`): only the two
/// edited pages are computed. The run ends with what the plugins found.
#[test]
fn the_example_recomputes_only_the_edited_pages() {
    let dir = tempfile::tempdir().unwrap();
    let example = weir_tests::workspace_root().join("examples/wiki");
    let pipeline = example_pipeline(&dir);
    let run = |extra: &[&str]| {
        let output = std::process::Command::new(weir())
            .args(["run", "-c"])
            .arg(&pipeline)
            .args(extra)
            .env("WEIR_LOG", "info")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // Logs that do not go to a terminal have no colour codes.
        assert!(!output.stderr.is_empty() && !output.stderr.contains(&0x1b));
        String::from_utf8(output.stdout).unwrap()
    };
    let first = run(&[]);
    assert!(first.contains("206 records in"), "{first}");
    assert!(
        first.contains(
            "206 results (206 outputs), 0 tombstones, 0 dead-lettered, 0 unchanged, 0 stale"
        ),
        "{first}"
    );
    // The human summary: the plugins' findings, stage times, how to read.
    for expected in [
        "parse    pages 206, redirects 100",
        "language: en 104",
        "topic: People 21",
        "parse@0.1.0",
        "read one: zstdcat",
        "Dead letters: none",
    ] {
        assert!(first.contains(expected), "{expected}: {first}");
    }
    let edited = example.join("data/enwiki-sample-events-edited.jsonl");
    let second = run(&["--input", edited.to_str().unwrap()]);
    assert!(second.contains("41 records in"), "{second}");
    assert!(
        second.contains(
            "2 results (2 outputs), 1 tombstones, 0 dead-lettered, 38 unchanged, 0 stale"
        ),
        "{second}"
    );
}

/// A file run files records by the input's name and position, and a rerun
/// into the same output adopts what is there. Another file of the same name
/// (a new export) is refused with the reason, instead of having its records
/// at adopted positions taken for done; a longer version of the same file
/// (lines appended) is processed from where the earlier run ended.
#[test]
fn another_file_with_the_same_name_is_not_taken_for_the_one_processed() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = example_pipeline(&dir);
    let run = |input: &Path| {
        std::process::Command::new(weir())
            .args(["run", "--every-event", "-c"])
            .arg(&pipeline)
            .arg("--input")
            .arg(input)
            .env("WEIR_LOG", "warn")
            .output()
            .unwrap()
    };
    let ok = |input: &Path| {
        let output = run(input);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let lines: Vec<String> = std::fs::read_to_string(
        weir_tests::workspace_root().join("examples/wiki/data/enwiki-sample-events.jsonl"),
    )
    .unwrap()
    .lines()
    .map(|l| format!("{l}\n"))
    .collect();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let first = a.join("events.jsonl");
    std::fs::write(&first, lines[..30].concat()).unwrap();
    let once = ok(&first);
    assert!(once.contains("30 results (30 outputs)"), "{once}");

    // Lines appended: only the new ones are computed.
    std::fs::write(&first, lines[..40].concat()).unwrap();
    let longer = ok(&first);
    assert!(longer.contains("10 results (10 outputs)"), "{longer}");

    // Another file named events.jsonl: refused, nothing written.
    let other = b.join("events.jsonl");
    std::fs::write(&other, lines.iter().rev().cloned().collect::<String>()).unwrap();
    let refused = run(&other);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("already holds results of another input named `events.jsonl`")
            && stderr.contains("its bytes differ"),
        "{stderr}"
    );
    let shorter = b.join("short").join("events.jsonl");
    std::fs::create_dir_all(shorter.parent().unwrap()).unwrap();
    std::fs::write(&shorter, lines[..3].concat()).unwrap();
    let stderr = String::from_utf8(run(&shorter).stderr).unwrap();
    assert!(stderr.contains("it is shorter"), "{stderr}");

    // The same file again: everything adopted, nothing computed.
    let again = ok(&first);
    assert!(again.contains("0 results (0 outputs)"), "{again}");

    // A last line without its line break, then the break and more lines:
    // an extension.
    let unterminated = a.join("unterminated.jsonl");
    let whole = lines[..6].concat();
    std::fs::write(&unterminated, whole.trim_end()).unwrap();
    assert!(ok(&unterminated).contains("6 results (6 outputs)"));
    std::fs::write(&unterminated, lines[..7].concat()).unwrap();
    let longer = ok(&unterminated);
    assert!(longer.contains("1 results (1 outputs)"), "{longer}");

    // A last line read while a writer was still appending it, completed
    // since: refused, or the completed line would be taken for done.
    let cut = a.join("cut.jsonl");
    std::fs::write(&cut, &whole[..whole.len() - lines[5].len() / 2]).unwrap();
    let read_cut = ok(&cut);
    assert!(
        read_cut.contains("5 results (5 outputs)") && read_cut.contains("1 dead-lettered"),
        "{read_cut}"
    );
    std::fs::write(&cut, lines[..7].concat()).unwrap();
    let refused = run(&cut);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("before that line was complete"),
        "{stderr}"
    );
}
