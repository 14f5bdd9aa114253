//! The plugin registry in a real S3 server, through the `weir plugin`
//! commands: signed publishing, refused republishing, activation checks
//! (unsigned, foreign key, unknown version, failing `init`), a run whose stage names
//! `name@active` with the version in every output's lineage, and a running
//! Kafka host swapping versions under load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use weir_tests::e2e::{PIPELINE, Scenario, http_get, metric_sum};
use weir_tests::process::Spawned;
use weir_tests::services::Services;

fn weir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// Write `key`'s private and public PEM files into `dir` as `name.pem` and
/// `name.pub.pem`.
fn write_key(dir: &Path, name: &str, key: &SigningKey) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    std::fs::write(&private, key.to_pkcs8_pem(Default::default()).unwrap()).unwrap();
    std::fs::write(
        &public,
        key.verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap(),
    )
    .unwrap();
    (private, public)
}

struct Setup {
    dir: tempfile::TempDir,
    pipeline: PathBuf,
    services: &'static Services,
}

impl Setup {
    fn weir(&self, args: &[&str]) -> Output {
        Command::new(weir())
            .args(args)
            .arg("-c")
            .arg(&self.pipeline)
            .envs(
                self.services
                    .env()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .env("WEIR_LOG", "warn")
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap()
    }

    /// Run `weir args...`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.weir(args);
        assert!(
            output.status.success(),
            "weir {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Run `weir args...`, which must fail; its stderr.
    fn refused(&self, args: &[&str]) -> String {
        let output = self.weir(args);
        assert!(!output.status.success(), "weir {args:?} succeeded");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_versions_are_published_activated_and_run() {
    let services = Services::shared();
    let bucket = format!("registry-{}", std::process::id());
    services.create_bucket(&bucket).await;
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = write_key(dir.path(), "release", &SigningKey::from_bytes(&[1; 32]));
    let (foreign, _) = write_key(dir.path(), "foreign", &SigningKey::from_bytes(&[2; 32]));
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[pipeline]
name = "signed"
[source.file]
path = "{events}"
[runtime]
compiled_cache_dir = "{compiled}"
[registry]
bucket = "{bucket}"
prefix = "registry"
trusted_keys = ["{public}"]
[[stage]]
name = "echo"
plugin = "echo@active"
[stage.config]
tag = "t"
[output.local]
dir = "{out}"
[dead_letter.local]
dir = "{out}"
[s3]
region = "us-east-1"
"#,
            events = weir_tests::workspace_root()
                .join("examples/wiki/data/enwiki-sample-events.jsonl")
                .display(),
            compiled = weir_tests::workspace_root()
                .join("target/weir-compiled")
                .display(),
            public = public.display(),
            out = dir.path().join("out").display(),
        ),
    )
    .unwrap();
    let setup = Setup {
        dir,
        pipeline,
        services,
    };
    let plugin = |name: &str| weir_tests::plugin_path(name).display().to_string();
    let key = private.display().to_string();

    // Before anything is active, the run says what to do.
    let stderr = setup.refused(&["run"]);
    assert!(stderr.contains("no active version of echo"), "{stderr}");

    let published = setup.ok(&["plugin", "publish", &plugin("echo"), "--key", &key]);
    assert!(published.contains("published echo@0.1.0") && published.contains("signed"));
    assert!(
        setup
            .ok(&["plugin", "publish", &plugin("echo")])
            .contains("already published")
    );
    // Other bytes under the same version: refused.
    let mut other = std::fs::read(plugin("echo")).unwrap();
    other.extend([0x00, 0x03, 0x01, b'x', b'y']);
    let other_path = setup.dir.path().join("echo-rebuilt.wasm");
    std::fs::write(&other_path, other).unwrap();
    let stderr = setup.refused(&["plugin", "publish", &other_path.display().to_string()]);
    assert!(
        stderr.contains("already published with other bytes"),
        "{stderr}"
    );
    // Not what the publisher said.
    let stderr = setup.refused(&["plugin", "publish", &plugin("echo"), "--version", "9.9.9"]);
    assert!(stderr.contains("not echo@9.9.9"), "{stderr}");

    // Unsigned, or signed by a key the host does not trust: not activated.
    setup.ok(&["plugin", "publish", &plugin("hostile")]);
    let hostile = setup
        .ok(&["plugin", "list"])
        .lines()
        .find(|l| l.starts_with("hostile@"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let stderr = setup.refused(&["plugin", "activate", &hostile]);
    assert!(stderr.contains("not signed"), "{stderr}");
    let score = setup.ok(&[
        "plugin",
        "publish",
        &plugin("score"),
        "--key",
        &foreign.display().to_string(),
    ]);
    let score = score.split_whitespace().nth(1).unwrap().to_owned();
    let stderr = setup.refused(&["plugin", "activate", &score]);
    assert!(stderr.contains("does not trust"), "{stderr}");
    let stderr = setup.refused(&["plugin", "activate", "echo@0.0.1"]);
    assert!(stderr.contains("not in the registry"), "{stderr}");

    let activated = setup.ok(&["plugin", "activate", "echo@0.1.0"]);
    assert_eq!(activated.trim(), "pipeline `signed`: echo (none) -> 0.1.0");
    assert!(setup.ok(&["plugin", "list"]).contains("(active)"));
    let shown = setup.ok(&["plugin", "show", "echo@0.1.0"]);
    assert!(shown.contains("this host would load it"), "{shown}");

    // echo@0.2.0 knows no `tag`: its `init` fails with the pipeline's
    // config, so it is not activated.
    setup.ok(&["plugin", "publish", &plugin("echo-next"), "--key", &key]);
    let stderr = setup.refused(&["plugin", "activate", "echo@0.2.0"]);
    assert!(stderr.contains("does not start"), "{stderr}");
    let list = setup.ok(&["plugin", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("echo@0.1.0 ") && l.ends_with("(active)")),
        "{list}"
    );

    let summary = setup.ok(&["run"]);
    assert!(summary.contains("40 results"), "{summary}");
    let lines = weir_tests::read_jsonl_objects(&setup.dir.path().join("out/signed/results"));
    let upserts: Vec<_> = lines.iter().filter(|l| l["op"] == "upsert").collect();
    assert_eq!(upserts.len(), 40);
    assert!(
        upserts
            .iter()
            .all(|l| l["lineage"][0]["plugin"] == "echo@0.1.0"),
        "{:?}",
        upserts[0]["lineage"]
    );

    let stderr = setup.refused(&["plugin", "rollback", "echo"]);
    assert!(stderr.contains("no earlier version"), "{stderr}");
}

/// Versions A -> B -> A of `echo` while events keep arriving, then a
/// tampered version activated behind the registry's back, refused, and
/// taken by itself once its true code is back: every offset is written
/// exactly once, each output was made by the version its lineage names,
/// each partition's outputs go A, B, A, then B (a partition moves between
/// two batches, never back and forth), and the tampered version never
/// runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_host_swaps_versions_under_load_with_exact_accounting() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let scenario = Scenario::two_echo_versions(services, &weir(), "hot-swap", 2).await;
    let mut text = std::fs::read_to_string(&scenario.pipeline).unwrap();
    text.push_str("\n[telemetry]\nlisten = \"127.0.0.1:0\"\n");
    std::fs::write(&scenario.pipeline, text).unwrap();
    let run = |args: &[&str]| scenario.weir(&weir(), services, args);
    let events = weir_tests::sample_events();
    let host = scenario.start_host(&weir(), services, 0, "swap");
    // Events keep arriving, a batch of 41 every half second.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let (stop, pipeline) = (stop.clone(), scenario.pipeline.clone());
        let env = services.env().to_vec();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let status = Command::new(weir())
                    .args(["ingest", "-c"])
                    .arg(&pipeline)
                    .arg("--input")
                    .arg(&events)
                    .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .env("WEIR_LOG", "warn")
                    .status()
                    .unwrap();
                assert!(status.success());
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    run(&["plugin", "activate", "echo@0.2.0"]);
    assert!(
        host.wait_for_log(r#""echo": "0.2.0""#, Duration::from_secs(30))
            .await,
        "{}",
        host.log_tail()
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        run(&["plugin", "rollback", "echo"]).trim(),
        "pipeline `e2e`: echo 0.2.0 -> 0.1.0"
    );
    assert!(
        host.wait_for_log(r#""echo": "0.1.0""#, Duration::from_secs(30))
            .await,
        "{}",
        host.log_tail()
    );
    // Someone with write access to the bucket swaps echo@0.2.0's code and
    // points the pipeline at it: the host refuses it and keeps running A.
    let s3 = services.s3_client().await;
    let put = |key: &str, body: Vec<u8>| {
        s3.put_object()
            .bucket(&scenario.bucket)
            .key(format!("registry/{key}"))
            .body(body.into())
            .send()
    };
    put(
        "plugins/echo/0.2.0/component.wasm",
        std::fs::read(weir_tests::plugin_path("hostile")).unwrap(),
    )
    .await
    .unwrap();
    put(
        "pipelines/e2e/active.json",
        br#"{"plugins": {"echo": {"version": "0.2.0", "history": ["0.1.0"]}}}"#.to_vec(),
    )
    .await
    .unwrap();
    assert!(
        host.wait_for_log("the running ones stay", Duration::from_secs(30))
            .await,
        "{}",
        host.log_tail()
    );
    assert!(host.log_tail().contains("sha256"), "{}", host.log_tail());
    let status = run(&["plugin", "status"]);
    let line = status
        .lines()
        .find(|l| l.contains("runs echo 0.1.0"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        line.contains("behind the active versions") && line.contains("refused echo 0.2.0"),
        "{status}"
    );
    // The metrics say the same: two swaps applied, one refused (or more:
    // the host tries refused versions again by itself), 0.1.0 runs.
    let (_, metrics) = http_get(&host.telemetry_address().await, "/metrics");
    let swaps = |outcome| metric_sum(&metrics, "weir_plugin_swaps_total", &[("outcome", outcome)]);
    assert_eq!(swaps("applied"), 2.0, "{metrics}");
    assert!(swaps("refused") >= 1.0, "{metrics}");
    let running = |version| {
        metric_sum(
            &metrics,
            "weir_plugin_info",
            &[("stage", "echo"), ("version", version)],
        )
    };
    assert_eq!(
        (running("0.1.0"), running("0.2.0")),
        (1.0, 0.0),
        "{metrics}"
    );
    // The true code is put back (a fault on the host's side of things,
    // fixed without another activation, which would change nothing the
    // host can see): the host takes 0.2.0 on one of its own retries.
    put(
        "plugins/echo/0.2.0/component.wasm",
        std::fs::read(weir_tests::plugin_path("echo-next")).unwrap(),
    )
    .await
    .unwrap();
    let swapped_again = || host.log().matches(r#""echo": "0.2.0""#).count() >= 2;
    let started = std::time::Instant::now();
    while !swapped_again() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the refused version was not tried again: {}",
            host.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    feeder.join().unwrap();

    let places = scenario
        .wait_accounted(services, Duration::from_secs(120))
        .await;
    scenario.assert_exactly_once(services, &places).await;
    let (code, _) = host.terminate();
    assert_eq!(code, Some(0));
    let status = run(&["plugin", "status"]);
    assert!(
        !status.contains("runs"),
        "a stopped host is forgotten: {status}"
    );

    let mut versions: BTreeMap<i64, Vec<(i64, String)>> = BTreeMap::new();
    for (_, line) in services
        .read_lines(&scenario.bucket, &format!("{PIPELINE}/results/"))
        .await
    {
        if line["op"] != "upsert" {
            continue;
        }
        let version = line["lineage"][0]["plugin"].as_str().unwrap().to_owned();
        let tagged = line["outputs"][0]["text"]
            .as_str()
            .is_some_and(|text| text.ends_with("\n<!-- echo 0.2.0 -->"));
        assert_eq!(tagged, version == "echo@0.2.0", "{line}");
        let position = &line["position"];
        versions
            .entry(position["partition"].as_i64().unwrap())
            .or_default()
            .push((position["offset"].as_i64().unwrap(), version));
    }
    for (partition, mut lines) in versions {
        lines.sort();
        let mut runs: Vec<&str> = Vec::new();
        for (_, version) in &lines {
            if runs.last() != Some(&version.as_str()) {
                runs.push(version);
            }
        }
        assert_eq!(
            runs,
            ["echo@0.1.0", "echo@0.2.0", "echo@0.1.0", "echo@0.2.0"],
            "partition {partition}"
        );
    }
}

/// A shadow run of echo@0.2.0 beside hosts running echo@0.1.0: its outputs
/// go under its own prefix, live results and offsets are untouched, and the
/// report counts every shadowed record as changed (0.2.0 marks its bodies).
#[tokio::test(flavor = "multi_thread")]
async fn a_shadow_run_compares_a_candidate_on_live_traffic() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    // The sample events are in the topic before the shadow starts: it
    // reads from the newest on, so it never sees them.
    let scenario = Scenario::two_echo_versions(services, &weir(), "shadow", 2).await;
    let run = |args: &[&str]| scenario.weir(&weir(), services, args);
    let events = weir_tests::sample_events();
    let live = scenario.start_host(&weir(), services, 0, "live");

    let log_path = scenario.dir().join("shadow.log");
    let mut shadow = Spawned::start(
        Command::new(weir())
            .args(["plugin", "shadow", "echo@0.2.0", "-c"])
            .arg(&scenario.pipeline)
            .envs(services.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("WEIR_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap()),
    );
    let assigned = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .matches("partition assigned")
            .count()
    };
    let started = std::time::Instant::now();
    while assigned() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    scenario.ingest(&weir(), services, &events);
    scenario.ingest(&weir(), services, &events);

    let places = scenario
        .wait_accounted(services, Duration::from_secs(120))
        .await;
    scenario.assert_exactly_once(services, &places).await;
    let shadow_prefix = format!("{PIPELINE}/shadow/echo@0.2.0/results/");
    let started = std::time::Instant::now();
    let shadowed = loop {
        let lines = services.read_lines(&scenario.bucket, &shadow_prefix).await;
        let upserts = lines.iter().filter(|(_, l)| l["op"] == "upsert").count();
        if upserts >= 80 || started.elapsed() > Duration::from_secs(60) {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let upserts = shadowed.iter().filter(|(_, l)| l["op"] == "upsert").count();
    assert_eq!(upserts, 80, "the two ingests after the shadow started");
    assert!(
        shadowed
            .iter()
            .filter(|(_, l)| l["op"] == "upsert")
            .all(|(_, l)| l["lineage"][0]["plugin"] == "echo@0.2.0")
    );
    let status = Command::new("kill")
        .args(["-TERM", &shadow.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(shadow.wait().unwrap().success());

    let report = run(&["plugin", "shadow", "echo@0.2.0", "--report"]);
    assert!(
        report.contains("0 identical, 80 changed, 0 failed, 0 not compared"),
        "{report}"
    );
    assert!(report.contains("changed: "), "examples: {report}");
    // Live: every result made by the active version, its offsets its own.
    let live_lines = services
        .read_lines(&scenario.bucket, &format!("{PIPELINE}/results/"))
        .await;
    assert!(
        live_lines
            .iter()
            .filter(|(_, l)| l["op"] == "upsert")
            .all(|(_, l)| l["lineage"][0]["plugin"] == "echo@0.1.0")
    );
    let (code, _) = live.terminate();
    assert_eq!(code, Some(0));
    assert_eq!(
        services.committed_offsets(&scenario.group, &scenario.topic, 2),
        services.high_watermarks(&scenario.topic, 2),
        "the live group's offsets are the live hosts'"
    );
}

/// A host that stops with an error while it follows the active versions
/// exits with the error, instead of waiting on its watcher forever.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_host_that_follows_active_versions_exits() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let scenario = Scenario::two_echo_versions(services, &weir(), "swap-fail", 2).await;
    // A librdkafka property librdkafka refuses: the consumer cannot be
    // created, and the host stops with that error once it is running.
    let text = std::fs::read_to_string(&scenario.pipeline)
        .unwrap()
        .replace(
            "max_batch = 64",
            "max_batch = 64\n[source.kafka.properties]\n\"session.timeout.ms\" = \"not a number\"",
        );
    std::fs::write(&scenario.pipeline, text).unwrap();
    let mut host = scenario.start_host(&weir(), services, 0, "fails");
    let started = std::time::Instant::now();
    let code = loop {
        if let Some(code) = host.exited() {
            break code;
        }
        if started.elapsed() > Duration::from_secs(45) {
            let log = host.log_tail();
            host.kill_9();
            panic!("the host did not exit: {log}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_ne!(code, Some(0), "{}", host.log_tail());
    assert!(
        host.log().contains("session.timeout.ms"),
        "{}",
        host.log_tail()
    );
}

/// A replay stopped before its end and resumed after another version was
/// activated runs the version it was planned with: its output is one
/// chain's (the resumed part used to run the newly active version).
#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_replay_keeps_the_versions_it_was_planned_with() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let scenario = Scenario::two_echo_versions(services, &weir(), "replay-pin", 2).await;
    // The plan a first start stored with echo@0.1.0 active, before it was
    // stopped (and before anything was consumed: the run's group has no
    // offsets, so the resumed run reads each window from its start).
    let ends = services.high_watermarks(&scenario.topic, 2);
    let plan = serde_json::json!({
        "topic": scenario.topic,
        "group": format!("weir-replay.{PIPELINE}.pinned"),
        "from": "earliest",
        "to": "now",
        "planned_at": "2026-12-03T00:00:00Z",
        "partitions": {"0": [0, ends[0]], "1": [0, ends[1]]},
        "plugins": {"echo": "0.1.0"},
    });
    services
        .s3_client()
        .await
        .put_object()
        .bucket(&scenario.bucket)
        .key(format!("{PIPELINE}/runs/pinned/replay.json"))
        .body(serde_json::to_vec(&plan).unwrap().into())
        .send()
        .await
        .unwrap();
    scenario.weir(&weir(), services, &["plugin", "activate", "echo@0.2.0"]);

    let replayed = scenario.weir(&weir(), services, &["replay", "--run", "pinned"]);
    assert!(replayed.contains("complete"), "{replayed}");
    let lines = services
        .read_lines(
            &scenario.bucket,
            &format!("{PIPELINE}/runs/pinned/results/"),
        )
        .await;
    assert_eq!(lines.len() as i64, ends.iter().sum::<i64>());
    let versions: BTreeMap<&str, usize> = lines
        .iter()
        .filter(|(_, line)| line["op"] == "upsert")
        .fold(BTreeMap::new(), |mut counts, (_, line)| {
            let version = line["lineage"][0]["plugin"].as_str().unwrap_or("none");
            *counts.entry(version).or_default() += 1;
            counts
        });
    assert_eq!(
        versions.keys().copied().collect::<Vec<_>>(),
        ["echo@0.1.0"],
        "{versions:?}"
    );
}

/// A host whose stages follow active versions needs one chain's worth of
/// instances beyond its partitions' for the trial of a new version: at
/// exactly partitions x stages it refused every hot swap, so `validate`
/// (and `run`) ask for the room.
#[tokio::test(flavor = "multi_thread")]
async fn the_instance_budget_leaves_room_for_a_swap_trial() {
    let _serial = weir_tests::e2e::serial().await;
    let services = Services::shared();
    let scenario = Scenario::two_echo_versions(services, &weir(), "swap-room", 2).await;
    let text = std::fs::read_to_string(&scenario.pipeline).unwrap();
    let with = |max: u32| {
        text.replace(
            "batch_size = 16",
            &format!("batch_size = 16\nmax_instances = {max}"),
        )
    };
    std::fs::write(&scenario.pipeline, with(2)).unwrap();
    let output = Command::new(weir())
        .args(["validate", "-c"])
        .arg(&scenario.pipeline)
        .envs(services.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("`runtime.max_instances`: is 2")
            && stderr.contains("needs 3 instances")
            && stderr.contains("trial"),
        "{stderr}"
    );
    std::fs::write(&scenario.pipeline, with(3)).unwrap();
    scenario.weir(&weir(), services, &["validate"]);
}
