//! `weir replay` with the stage cache, end to end against the real broker
//! and S3 server: the bundled dump (206 pages) replayed cold, warm, and
//! after changing only the last stage, with exact per-stage counts; and a
//! replay killed midway and resumed, whose output equals an uninterrupted
//! one; and `weir ingest`, which fills the topics they replay.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::MutexGuard;
use weir_tests::e2e::{PIPELINE, Scenario};
use weir_tests::process::Spawned;
use weir_tests::services::Services;

fn weir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// The cache in the scenario's bucket (under `cache/`).
const CACHE: &str = "\n[cache]\nenabled = true\n";

/// Pages in the bundled dump.
const PAGES: u64 = 206;

fn replay_command(pipeline: &Path, services: &Services, run: &str) -> Command {
    replay_command_with(pipeline, services, run, &[])
}

fn replay_command_with(pipeline: &Path, services: &Services, run: &str, args: &[&str]) -> Command {
    let mut command = Command::new(weir());
    command
        .args(["replay", "-c"])
        .arg(pipeline)
        .args(["--run", run])
        .args(args)
        .envs(services.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("WEIR_LOG", "info")
        // Read by scenarios with static group membership.
        .env("WEIR_INSTANCE_ID", "replica-0");
    command
}

/// Run a replay to its end; its output (stdout, stderr).
fn replay(pipeline: &Path, services: &Services, run: &str) -> (String, String) {
    replay_with(pipeline, services, run, &[])
}

/// As [`replay`], with more arguments.
fn replay_with(pipeline: &Path, services: &Services, run: &str, args: &[&str]) -> (String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = replay_command_with(pipeline, services, run, args)
        .output()
        .expect("run weir replay");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    );
    assert!(
        status.success(),
        "weir replay {run} failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("weir replay {run}: complete")),
        "{stdout}"
    );
    (stdout, stderr)
}

/// The tests' turn on the shared servers, and a new scenario (`name`,
/// `partitions`, `extra` pipeline settings) whose topic holds the 41
/// bundled events.
async fn with_the_events(
    name: &str,
    partitions: i32,
    extra: &str,
) -> (MutexGuard<'static, ()>, &'static Services, Scenario) {
    let serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let scenario = Scenario::new(services, name, partitions, extra).await;
    scenario.ingest(&weir(), services, &weir_tests::sample_events());
    (serial, services, scenario)
}

/// Run a replay that must be refused before it starts (exit status 1);
/// its standard error.
fn refused_replay(pipeline: &Path, services: &Services, run: &str) -> String {
    let output = replay_command(pipeline, services, run).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    stderr
}

/// Stage name -> (cache hits, misses, records computed), from a summary.
fn stage_counts(summary: &str) -> BTreeMap<String, (u64, u64, u64)> {
    summary
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("stage ")?;
            let (stage, figures) = rest.split_once(": ")?;
            let numbers: Vec<u64> = figures
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect();
            Some((stage.to_owned(), (numbers[0], numbers[1], numbers[2])))
        })
        .collect()
}

fn counts(entries: &[(&str, (u64, u64, u64))]) -> BTreeMap<String, (u64, u64, u64)> {
    entries.iter().map(|(s, c)| ((*s).to_owned(), *c)).collect()
}

/// A replay's result lines by input position.
async fn results(
    scenario: &Scenario,
    services: &Services,
    run: &str,
) -> BTreeMap<(i64, i64), Value> {
    let lines = services
        .read_lines(&scenario.bucket, &format!("{PIPELINE}/runs/{run}/results/"))
        .await;
    let mut by_position = BTreeMap::new();
    for (_, line) in lines {
        let position = (
            line["position"]["partition"].as_i64().unwrap(),
            line["position"]["offset"].as_i64().unwrap(),
        );
        assert!(
            by_position.insert(position, line).is_none(),
            "{run}: two lines for {position:?}"
        );
    }
    by_position
}

/// The stage ids in a line's lineage.
fn stage_ids(line: &Value) -> Vec<String> {
    line["lineage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["stage_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_last_stage_is_the_only_one_recomputed() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let scenario = Scenario::new(services, "replay-scoped", 2, CACHE).await;
    scenario.ingest(&weir(), services, &weir_tests::sample_dump());

    // Cold: every stage computes every page.
    let (cold, _) = replay(&scenario.pipeline, services, "cold");
    let computed = (0, PAGES, PAGES);
    assert_eq!(
        stage_counts(&cold),
        counts(&[("parse", computed), ("lang", computed), ("score", computed)]),
        "{cold}"
    );
    let cold_results = results(&scenario, services, "cold").await;
    assert_eq!(cold_results.len() as u64, PAGES);

    // Warm: the same results, and no plugin runs at all.
    let (warm, _) = replay(&scenario.pipeline, services, "warm");
    let cached = (PAGES, 0, 0);
    assert_eq!(
        stage_counts(&warm),
        counts(&[("parse", cached), ("lang", cached), ("score", cached)]),
        "{warm}"
    );
    assert_eq!(results(&scenario, services, "warm").await, cold_results);

    // Only the last stage's configuration changes: the first two stages are
    // answered from the cache, the last runs once per page, and every
    // output's lineage names the new stage.
    let text = std::fs::read_to_string(&scenario.pipeline).unwrap();
    let changed_text = text.replacen(
        "name = \"score\"\nplugin = \"score\"\n",
        "name = \"score\"\nplugin = \"score\"\n[stage.config]\ntop = 2\n",
        1,
    );
    assert_ne!(changed_text, text);
    let changed = scenario.dir().join("pipeline-score-top-2.toml");
    std::fs::write(&changed, changed_text).unwrap();
    let (scoped, _) = replay(&changed, services, "scoped");
    assert_eq!(
        stage_counts(&scoped),
        counts(&[("parse", cached), ("lang", cached), ("score", computed)]),
        "{scoped}"
    );
    let scoped_results = results(&scenario, services, "scoped").await;
    assert_eq!(scoped_results.len() as u64, PAGES);
    for (position, line) in &scoped_results {
        let before = stage_ids(&cold_results[position]);
        let after = stage_ids(line);
        assert_eq!(
            after[..2],
            before[..2],
            "{position:?}: parse and lang unchanged"
        );
        assert_ne!(after[2], before[2], "{position:?}: the new score stage");
    }

    // The replays used groups of their own: the live group has no offsets.
    let live = services.committed_offsets(&scenario.group, &scenario.topic, scenario.partitions);
    assert!(live.iter().all(|offset| *offset < 0), "{live:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_killed_midway_resumes_to_the_same_output() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    // No cache: the resumed replay computes what the killed one did not
    // write, so the comparison covers the chain, not the cache. Static
    // membership: the resumed replay takes the killed one's place in the
    // group at once, as a restarted pod would (without it, the group waits
    // for the dead member's session to expire, and a shared broker once
    // never finished that rebalance).
    let static_member =
        "[source.kafka.properties]\n\"group.instance.id\" = \"${WEIR_INSTANCE_ID}\"\n";
    let scenario = Scenario::new(services, "replay-resume", 2, static_member).await;
    scenario.ingest(&weir(), services, &weir_tests::sample_dump());
    replay(&scenario.pipeline, services, "whole");
    let whole = results(&scenario, services, "whole").await;

    let mut killed = Spawned::start(
        replay_command(&scenario.pipeline, services, "resumed")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // Kill it once some, but not all, of its results are written.
    let started = Instant::now();
    loop {
        let written = results(&scenario, services, "resumed").await.len() as u64;
        if written > 0 {
            assert!(written < PAGES, "the replay finished before it was killed");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no results");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    killed.kill().unwrap();
    killed.wait().unwrap();

    let (resumed, log) = replay(&scenario.pipeline, services, "resumed");
    assert!(log.contains("resuming the replay"), "{log}");
    assert!(resumed.contains("complete"), "{resumed}");
    assert_eq!(results(&scenario, services, "resumed").await, whole);
}

/// A partition's last batch is written as soon as the last message of its
/// range is processed: a replay never waits for its batches' age.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_ends_without_waiting_for_its_batches_age() {
    let ten_minutes = "[batching]\nmax_records = 1000\nmax_age_ms = 600000\n";
    let (_serial, services, scenario) = with_the_events("replay-prompt", 2, ten_minutes).await;
    assert_eq!(ends_by_itself(&scenario, services, "prompt").await, 41);
}

/// Run a replay that must end by itself, successfully, within 90 s; the
/// number of its result lines.
async fn ends_by_itself(scenario: &Scenario, services: &Services, run: &str) -> usize {
    let mut replay = Spawned::start(
        replay_command(&scenario.pipeline, services, run)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = replay.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(90) {
            replay.kill().unwrap();
            panic!("the replay was still waiting after 90 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status}");
    results(scenario, services, run).await.len()
}

/// A replay of a topic whose last offset is a transaction's commit marker
/// ends by itself, though nothing is written after it. The marker is never
/// handed to the application, so the range's last message never comes, nor
/// does one past its end; librdkafka moves the consumer's position past the
/// marker, and that says the range was read whole. (Such a replay used to
/// wait forever.)
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_ending_in_a_transaction_marker_ends_by_itself() {
    let (_serial, services, scenario) = with_the_events("replay-marker", 1, "").await;
    weir_tests::control_record::append_commit_marker(&services.brokers, &scenario.topic, 0);
    assert_eq!(
        services.high_watermarks(&scenario.topic, 1),
        [42],
        "the 41 events, then the marker"
    );
    assert_eq!(ends_by_itself(&scenario, services, "marker").await, 41);
}

/// Backpressure never throws fetched messages away: through a stage much
/// slower than the broker, every offset is fetched exactly once. Each
/// partition's messages wait in a queue of their own in librdkafka, which
/// stops fetching the partition once it holds `queued.max.messages.kbytes`.
/// Pausing the partition instead, as the host did before, makes librdkafka
/// drop what it had prefetched and fetch it again on resume (this test then
/// counted several times the 206 records). The count is librdkafka's own,
/// from its fetch log (`debug = "fetch"`: "Enqueue N message(s)").
#[tokio::test(flavor = "multi_thread")]
async fn backpressure_fetches_each_message_once() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let fetch_log = "\n[source.kafka.properties]\ndebug = \"fetch\"\n";
    let scenario = Scenario::new(services, "replay-refetch", 1, fetch_log).await;
    // About 3 ms of CPU per record, one record per hand-off.
    scenario.use_a_slow_stage(2);
    scenario.ingest(&weir(), services, &weir_tests::sample_dump());
    let output = replay_command(&scenario.pipeline, services, "once")
        .env("WEIR_LOG", "info,librdkafka=debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let fetched: u64 = stderr
        .lines()
        .filter_map(|line| {
            let (count, _) = line.split("Enqueue ").nth(1)?.split_once(" message(s)")?;
            count.parse::<u64>().ok()
        })
        .sum();
    assert_eq!(fetched, PAGES, "messages fetched for {PAGES} records");
    assert_eq!(
        results(&scenario, services, "once").await.len() as u64,
        PAGES
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_time_window_replays_only_the_events_inside_it() {
    let (_serial, services, scenario) = with_the_events("replay-window", 2, "").await;
    let data = weir_tests::workspace_root().join("examples/wiki/data");
    // Kafka timestamps are the produce times: a second between the two
    // ingests, and the boundary in the middle.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let boundary = jiff::Timestamp::now().to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    scenario.ingest(
        &weir(),
        services,
        &data.join("enwiki-sample-events-edited.jsonl"),
    );

    replay_with(
        &scenario.pipeline,
        services,
        "later",
        &["--from", &boundary],
    );
    replay_with(
        &scenario.pipeline,
        services,
        "earlier",
        &["--to", &boundary],
    );
    let later = results(&scenario, services, "later").await;
    let earlier = results(&scenario, services, "earlier").await;
    assert_eq!((earlier.len(), later.len()), (41, 41));
    // Each partition: the earlier window's offsets all come before the
    // later window's, and together they are every offset once.
    for partition in 0..scenario.partitions as i64 {
        let offsets = |lines: &BTreeMap<(i64, i64), Value>| -> Vec<i64> {
            lines
                .keys()
                .filter(|(p, _)| *p == partition)
                .map(|(_, o)| *o)
                .collect()
        };
        let (before, after) = (offsets(&earlier), offsets(&later));
        let all: Vec<i64> = before.iter().chain(&after).copied().collect();
        assert_eq!(
            all,
            (0..all.len() as i64).collect::<Vec<_>>(),
            "partition {partition}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_with_the_same_run_share_one_replay() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let scenario = Scenario::new(services, "replay-replicas", 4, "").await;
    for _ in 0..3 {
        scenario.ingest(&weir(), services, &weir_tests::sample_dump());
    }
    let events = 3 * PAGES;
    let start = |n: usize| {
        let log = std::fs::File::create(scenario.dir().join(format!("replica-{n}.log"))).unwrap();
        Spawned::start(
            replay_command(&scenario.pipeline, services, "shared")
                .stdout(Stdio::piped())
                .stderr(log),
        )
    };
    let (first, second) = (start(1), start(2));
    let outputs = [first, second].map(Spawned::wait_with_output);
    let mut handled = 0;
    for output in &outputs {
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        assert!(stdout.contains("weir replay shared: complete"), "{stdout}");
        let records: u64 = stdout
            .split("; ")
            .nth(1)
            .and_then(|part| part.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no record count in {stdout}"));
        handled += records;
    }
    // Every offset exactly once in the run's results, whoever wrote it; a
    // record handed to both (a partition moving between them) is written
    // once and adopted by the other.
    let lines = results(&scenario, services, "shared").await;
    assert_eq!(lines.len() as u64, events);
    assert!(handled >= events, "{handled} records handled for {events}");
}

/// A `[stage.config]` the plugin refuses stops a replay before any record
/// is read, reported at its table's line in the pipeline file (as `weir
/// run` and `weir validate` do), not at the first partition's start.
#[tokio::test(flavor = "multi_thread")]
async fn a_stage_config_the_plugin_refuses_stops_a_replay_at_its_line() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let scenario = Scenario::new(services, "replay-refused", 1, "").await;
    scenario.use_a_slow_stage(1);
    let text = std::fs::read_to_string(&scenario.pipeline)
        .unwrap()
        .replace("work = 1\n", "work = 1\nno_such_setting = true\n");
    std::fs::write(&scenario.pipeline, &text).unwrap();
    let stderr = refused_replay(&scenario.pipeline, services, "refused");
    let line = text.lines().position(|l| l == "[stage.config]").unwrap() + 1;
    assert!(
        stderr.contains(&format!(
            "line {line}, column 8: `stage[0].config`: stage `slow` does not start"
        )) && stderr.contains("no_such_setting"),
        "{stderr}"
    );
}

/// `weir ingest` does not send a JSONL line longer than any event the
/// pipeline accepts (here over 6 x 1 kB + 64 KiB): it says so in its
/// summary and sends the lines around it, so the topic holds those only.
#[tokio::test(flavor = "multi_thread")]
async fn ingest_sends_no_line_too_long_for_any_event() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let small_bodies = "\n[decode]\nmax_body_bytes = 1000\n";
    let scenario = Scenario::new(services, "ingest-long", 1, small_bodies).await;
    let event = |id: u32, body: &str| {
        serde_json::json!({
            "id": format!("t:{id}"), "op": "upsert", "revision": 1,
            "timestamp": "2024-01-01T00:00:00Z", "body": body,
        })
        .to_string()
    };
    let input = scenario.dir().join("long.jsonl");
    let lines = [
        event(1, "short"),
        event(2, &"x".repeat(200_000)),
        event(3, "short"),
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let summary = scenario.ingest(&weir(), services, &input);
    assert!(summary.contains("2 events to"), "{summary}");
    assert!(
        summary.contains("; 1 lines too long for any event, not sent"),
        "{summary}"
    );
    assert_eq!(services.high_watermarks(&scenario.topic, 1), vec![2]);
}

/// A run resumed with another chain than it was planned with (here a
/// stage's configuration changed) is refused: its output would mix the two
/// chains' results. The same run with the chain it started with goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_resumed_with_another_chain_is_refused() {
    let (_serial, services, scenario) = with_the_events("replay-changed", 1, "").await;
    scenario.use_a_slow_stage(1);
    replay(&scenario.pipeline, services, "first");
    let planned = std::fs::read_to_string(&scenario.pipeline).unwrap();
    std::fs::write(
        &scenario.pipeline,
        planned.replace("work = 1\n", "work = 2\n"),
    )
    .unwrap();
    let stderr = refused_replay(&scenario.pipeline, services, "first");
    assert!(
        stderr.contains("run `first` was planned with chain")
            && stderr.contains("a file or environment value granted to it differs"),
        "{stderr}"
    );
    std::fs::write(&scenario.pipeline, planned).unwrap();
    replay(&scenario.pipeline, services, "first");
}
