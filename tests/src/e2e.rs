//! End-to-end helpers: a Kafka + S3 pipeline file for a test, `weir`
//! processes (started, stopped with SIGTERM, killed with SIGKILL), and the
//! exactly-once accounting of what ended up in S3.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::Spawned;
use crate::services::Services;

/// The parse -> lang -> score stages, as pipeline-file TOML.
pub const DOCUMENT_STAGES: &str = r#"[[stage]]
name = "parse"
plugin = "parse"

[[stage]]
name = "lang"
plugin = "lang"

[[stage]]
name = "score"
plugin = "score"
"#;

/// A test's fresh topic, group and bucket, and its pipeline file.
pub struct Scenario {
    /// Unique name stem (topic, group and bucket derive from it).
    pub name: String,
    /// The topic.
    pub topic: String,
    /// The hosts' consumer group.
    pub group: String,
    /// The bucket holding results and dead letters.
    pub bucket: String,
    /// Partitions of the topic.
    pub partitions: i32,
    /// The pipeline file.
    pub pipeline: PathBuf,
    dir: PathBuf,
}

/// The pipeline name all scenarios use (the first part of every key).
pub const PIPELINE: &str = "e2e";

/// One stage running the pipeline's active version of `echo`.
pub const ECHO_ACTIVE: &str = "[[stage]]\nname = \"echo\"\nplugin = \"echo@active\"\n";

/// Consumer properties for benches: tansu 0.6 holds every fetch for about
/// `fetch.wait.max.ms` (it sleeps after reading, even when it has data to
/// send), where Kafka answers as soon as `fetch.min.bytes` are there. With
/// the default 500 ms a backlog flows at about 470 events per second here,
/// whatever the host does; at 10 ms the broker's rate is closer to Kafka's
/// and benches measure the host.
pub const PROMPT_FETCHES: &str = "\n[source.kafka.properties]\n\"fetch.wait.max.ms\" = \"10\"\n";

/// The bundled sample events plus three records that must be dead-lettered
/// (not JSON, no revision, a body reference to nothing), written into
/// `dir`; returns the file and the number of valid events.
pub fn input_with_planted_faults(dir: &Path) -> (PathBuf, usize) {
    let sample = std::fs::read_to_string(
        crate::workspace_root().join("examples/wiki/data/enwiki-sample-events.jsonl"),
    )
    .unwrap();
    let mut text = sample.clone();
    text.push_str("{this is not json\n");
    text.push_str(
        r#"{"id":"x:1","op":"upsert","timestamp":"2024-01-01T00:00:00Z","body":"no revision"}"#,
    );
    text.push('\n');
    text.push_str(r#"{"id":"x:2","op":"upsert","revision":1,"timestamp":"2024-01-01T00:00:00Z","body_ref":{"uri":"s3://nowhere/missing","sha256":"0000000000000000000000000000000000000000000000000000000000000000"}}"#);
    text.push('\n');
    let path = dir.join("events.jsonl");
    std::fs::write(&path, text).unwrap();
    (path, sample.lines().count())
}

/// `GET path` from a host's HTTP server at `address`: status and body.
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the host");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The sum of the samples of `name` whose labels include all of `labels`,
/// from a Prometheus text exposition.
pub fn metric_sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Hold this for the duration of an end-to-end test: they run one at a
/// time, so hosts of different tests do not compete for the two cores and
/// timing-based steps (kill points, outages) stay meaningful.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

impl Scenario {
    /// A scenario named `name` (made unique) with a topic of `partitions`
    /// partitions and the parse -> lang -> score chain. `extra` is appended
    /// to the pipeline file (a `[batching]` or `[dead_letter.*]` table in it
    /// replaces the default one).
    pub async fn new(services: &Services, name: &str, partitions: i32, extra: &str) -> Scenario {
        let unique = format!(
            "{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        // Kept after the test (under target/), so a failure's host logs can
        // be read.
        let dir = crate::workspace_root().join("target/e2e").join(&unique);
        std::fs::create_dir_all(&dir).unwrap();
        let bucket = unique.to_lowercase().replace('_', "-");
        services.create_bucket(&bucket).await;
        let pipeline = dir.join("pipeline.toml");
        let text = format!(
            r#"
[pipeline]
name = "{PIPELINE}"

[source.kafka]
topic = "{unique}"
group = "{unique}-group"
max_batch = 64

[runtime]
plugin_dir = "{plugins}"
compiled_cache_dir = "{cache}"
batch_size = 16

{DOCUMENT_STAGES}
[output.s3]
bucket = "{bucket}"

{dead_letters}

[s3]
region = "us-east-1"
# Uploads as over HTTPS, production's default (the servers here speak HTTP,
# where weir signs payloads unless told not to).
sign_payloads = false

{batching}

[ingest]
max_inline_body_bytes = 100000
bodies_bucket = "{bucket}"
{extra}
"#,
            plugins = crate::plugin_dir().display(),
            cache = crate::workspace_root()
                .join("target/weir-compiled")
                .display(),
            dead_letters = if extra.contains("[dead_letter") {
                String::new()
            } else {
                format!("[dead_letter.s3]\nbucket = \"{bucket}\"")
            },
            // Small objects, so tests see many writes and commits.
            batching = if extra.contains("[batching]") {
                ""
            } else {
                "[batching]\nmax_records = 20\nmax_age_ms = 500"
            },
        );
        std::fs::write(&pipeline, text).unwrap();
        Scenario {
            name: unique.clone(),
            group: format!("{unique}-group"),
            topic: unique,
            bucket,
            partitions,
            pipeline,
            dir,
        }
    }

    /// Run `stages` (pipeline-file TOML) instead of the document chain, with
    /// a plugin registry in the scenario's bucket (prefix `registry`) that
    /// running hosts read every second.
    pub fn use_registry(&self, stages: &str) {
        let text = std::fs::read_to_string(&self.pipeline)
            .unwrap()
            .replace(DOCUMENT_STAGES, stages)
            + &format!(
                "\n[registry]\nbucket = \"{}\"\nprefix = \"registry\"\nwatch_interval_s = 1\n",
                self.bucket
            );
        std::fs::write(&self.pipeline, text).unwrap();
    }

    /// A scenario named `name` whose one stage runs `echo@active`, with
    /// `echo@0.1.0` and `echo@0.2.0` (the `echo-next` test plugin) published
    /// to its registry, 0.1.0 active, event mode off, and the sample events
    /// ingested once (so the topic exists).
    pub async fn two_echo_versions(
        services: &Services,
        weir: &Path,
        name: &str,
        partitions: i32,
    ) -> Scenario {
        let scenario = Scenario::new(
            services,
            name,
            partitions,
            "[event_mode]\nenabled = false\n",
        )
        .await;
        scenario.use_registry(ECHO_ACTIVE);
        for plugin in ["echo", "echo-next"] {
            let path = crate::plugin_path(plugin).display().to_string();
            scenario.weir(weir, services, &["plugin", "publish", &path]);
        }
        scenario.weir(weir, services, &["plugin", "activate", "echo@0.1.0"]);
        scenario.ingest(weir, services, &crate::sample_events());
        scenario
    }

    /// Run `weir args... -c <pipeline>` to its end; panics if it fails.
    /// Returns its stdout.
    pub fn weir(&self, weir: &Path, services: &Services, args: &[&str]) -> String {
        let output = Command::new(weir)
            .args(args)
            .arg("-c")
            .arg(&self.pipeline)
            .envs(services.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("WEIR_LOG", "warn")
            .output()
            .expect("run weir");
        assert!(
            output.status.success(),
            "weir {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The scenario's directory (pipeline file, host logs), kept under
    /// `target/e2e/` for post-mortems.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replace the chain with one slow stage (the `echo` test plugin
    /// spending `work` million multiply steps per record, about 1.5 ms per
    /// million here) and hand messages over one at a time: a partition's
    /// task then has a full channel (4 messages) nearly all the time.
    pub fn use_a_slow_stage(&self, work: u32) {
        let slow_stage = format!(
            "[[stage]]\nname = \"slow\"\nplugin = \"echo\"\n[stage.config]\nwork = {work}\n"
        );
        let text = std::fs::read_to_string(&self.pipeline).unwrap();
        std::fs::write(
            &self.pipeline,
            text.replace("max_batch = 64", "max_batch = 1")
                .replace(DOCUMENT_STAGES, &slow_stage),
        )
        .unwrap();
    }

    /// `weir ingest` the file into the topic (creating it), and return its
    /// summary line.
    pub fn ingest(&self, weir: &Path, services: &Services, input: &Path) -> String {
        let output = Command::new(weir)
            .args(["ingest", "-c"])
            .arg(&self.pipeline)
            .arg("--input")
            .arg(input)
            .args(["--create-partitions", &self.partitions.to_string()])
            .envs(services.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("WEIR_LOG", "warn")
            .env("WEIR_INSTANCE_ID", "ingest")
            .output()
            .expect("run weir ingest");
        assert!(
            output.status.success(),
            "weir ingest failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Start a `weir run` host on this scenario; its log goes to
    /// `<scratch>/host-<n>.log`. `instance` is exported as
    /// `WEIR_INSTANCE_ID` (used by scenarios with static group membership).
    pub fn start_host(&self, weir: &Path, services: &Services, n: usize, instance: &str) -> Host {
        let log_path = self.dir().join(format!("host-{n}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Spawned::start(
            Command::new(weir)
                .args(["run", "-c"])
                .arg(&self.pipeline)
                .envs(services.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("WEIR_LOG", "info")
                .env("WEIR_INSTANCE_ID", instance)
                .stdout(Stdio::piped())
                .stderr(log),
        );
        Host { child, log_path }
    }

    /// Where every input offset ended up: `(partition, offset)` -> places
    /// (`results` or `dead-letters`), one entry per line found.
    pub async fn account(&self, services: &Services) -> BTreeMap<(i64, i64), Vec<&'static str>> {
        let mut places: BTreeMap<(i64, i64), Vec<&'static str>> = BTreeMap::new();
        for place in Self::PLACES {
            let lines = services
                .read_lines(&self.bucket, &format!("{PIPELINE}/{place}/"))
                .await;
            for (_, line) in lines {
                places.entry(position_of(&line)).or_default().push(place);
            }
        }
        places
    }

    /// The prefixes under the pipeline where an input offset can end up.
    const PLACES: [&'static str; 2] = ["results", "dead-letters"];

    /// Wait until every offset below the high watermarks is accounted for,
    /// or until `stall` passes without a new one (a slow machine is given
    /// the time it needs; a stuck host is not waited for forever). Returns
    /// the accounting, read afresh from the store.
    pub async fn wait_accounted(
        &self,
        services: &Services,
        stall: Duration,
    ) -> BTreeMap<(i64, i64), Vec<&'static str>> {
        let expected: usize = services
            .high_watermarks(&self.topic, self.partitions)
            .iter()
            .map(|hw| *hw as usize)
            .sum();
        let mut read = BTreeSet::new();
        let mut found = BTreeSet::new();
        let mut progress_at = Instant::now();
        while found.len() < expected && progress_at.elapsed() < stall {
            let before = found.len();
            for prefix in Self::PLACES {
                let lines = services
                    .read_new_lines(&self.bucket, &format!("{PIPELINE}/{prefix}/"), &mut read)
                    .await;
                found.extend(lines.iter().map(|(_, line)| position_of(line)));
            }
            if found.len() > before {
                progress_at = Instant::now();
            }
            if found.len() < expected {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        self.account(services).await
    }

    /// Assert that every offset of every partition appears exactly once,
    /// in the results or the dead letters.
    pub async fn assert_exactly_once(
        &self,
        services: &Services,
        places: &BTreeMap<(i64, i64), Vec<&'static str>>,
    ) {
        let watermarks = services.high_watermarks(&self.topic, self.partitions);
        let mut missing = Vec::new();
        for (partition, hw) in watermarks.iter().enumerate() {
            for offset in 0..*hw {
                if !places.contains_key(&(partition as i64, offset)) {
                    missing.push((partition, offset));
                }
            }
        }
        let duplicated: Vec<_> = places.iter().filter(|(_, p)| p.len() > 1).collect();
        let expected: i64 = watermarks.iter().sum();
        assert!(
            missing.is_empty(),
            "offsets never written anywhere: {missing:?}"
        );
        assert!(
            duplicated.is_empty(),
            "offsets written more than once: {duplicated:?}"
        );
        assert_eq!(
            places.len() as i64,
            expected,
            "no offsets beyond the watermarks"
        );
    }
}

/// A running `weir run` process.
pub struct Host {
    child: Spawned,
    log_path: PathBuf,
}

/// Wait until the log of any of `hosts` contains `text` (or `timeout`
/// passes); returns whether one did.
pub async fn wait_for_any_log(hosts: &[Host], text: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if hosts.iter().any(|host| host.log().contains(text)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

impl Host {
    /// Wait until the host's log contains `text` (or `timeout` passes);
    /// returns whether it did.
    pub async fn wait_for_log(&self, text: &str, timeout: Duration) -> bool {
        wait_for_any_log(std::slice::from_ref(self), text, timeout).await
    }

    /// The address of the host's metrics and status server (`[telemetry]
    /// listen`), from its log.
    pub async fn telemetry_address(&self) -> String {
        const SAID: &str = "status page on http://";
        assert!(
            self.wait_for_log(SAID, Duration::from_secs(60)).await,
            "the host did not start its server:\n{}",
            self.log_tail()
        );
        let log = self.log();
        let after = &log[log.find(SAID).unwrap() + SAID.len()..];
        after[..after.find('/').unwrap()].to_owned()
    }

    /// The host's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit code once the process has exited (`Some(None)`: killed by
    /// a signal), `None` while it runs.
    pub fn exited(&mut self) -> Option<Option<i32>> {
        self.child
            .try_wait()
            .expect("query the child")
            .map(|status| status.code())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("query the child").is_none()
    }

    /// The host's whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The end of the host's log, for assertion messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Resident memory in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// SIGKILL: no chance to flush or commit.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then wait for the exit; returns (exit code, stdout).
    pub fn terminate(self) -> (Option<i32>, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let output = self.child.wait_with_output();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }
}

/// The `(partition, offset)` of the input record an output line names.
fn position_of(line: &serde_json::Value) -> (i64, i64) {
    let position = &line["position"];
    (
        position["partition"].as_i64().expect("a partition"),
        position["offset"].as_i64().expect("an offset"),
    )
}
