//! Event mode's cost, side by side in one run, on generated documents (not
//! stored in the repository): `DOCS` documents of about 1 KB of wikitext
//! each, with the `echo` test plugin as the chain (so the host's own work
//! is what is measured).
//!
//! From a file (`weir run`, local directory out, in this process):
//! - (a) the first pass: every document new, so every event runs the chain;
//! - (b) the same events again from another file: every event unchanged
//!   (hash the body, one state lookup, a skip line);
//! - (c) the same file as (b) with event mode off: every event through the
//!   chain again;
//! - the state on disk after (a), per million documents;
//! - (d) rebuilding the state from the results alone (no state on disk, no
//!   checkpoint): the worst case of a restore.
//!
//! From Kafka (a real tansu broker, results to a real s3s-fs server, one
//! host, 4 partitions): the first copy of `KAFKA_DOCS` events, then the
//! same events again (all unchanged), each timed from the end of its ingest
//! until the committed offsets reach the high watermarks, with the host's
//! CPU time over that span; then a new host's restore of the four
//! partitions from the checkpoints the first host wrote when it stopped
//! (the times the host logs), and the checkpoints' size.
//!
//! CPU times are this process's (or the host's) user + system time from
//! /proc, so "per core" figures do not depend on what else runs.
//!
//! Run: `cargo bench -p weir --bench event_mode`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use weir::config::EventMode;
use weir_tests::e2e::Scenario;
use weir_tests::services::Services;

const DOCS: usize = 200_000;
const KAFKA_DOCS: usize = 20_000;

fn weir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// `count` upserts of distinct documents with ~1 KB bodies.
fn events_file(path: &Path, count: usize) -> u64 {
    let filler = "Lorem ipsum dolor sit amet, [[consectetur]] adipiscing elit, sed do \
                  eiusmod tempor incididunt ut labore et dolore magna aliqua. ";
    let mut out = String::with_capacity(count * 1200);
    for i in 0..count {
        let body = format!("'''Document {i}''' {}", filler.repeat(8));
        out.push_str(
            &serde_json::json!({
                "id": format!("doc:{i}"),
                "op": "upsert",
                "revision": 1,
                "timestamp": "2024-01-01T00:00:00Z",
                "title": format!("Document {i}"),
                "content_type": "text/x-wiki",
                "body": body,
            })
            .to_string(),
        );
        out.push('\n');
    }
    std::fs::write(path, &out).unwrap();
    out.len() as u64
}

/// User + system CPU time of process `pid` (`self` for this one).
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may contain spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

struct Figures {
    events: u64,
    wall: Duration,
    cpu: Duration,
}

impl Figures {
    fn per_cpu_second(&self) -> f64 {
        self.events as f64 / self.cpu.as_secs_f64().max(1e-9)
    }
}

fn report(name: &str, f: &Figures, baseline: Option<&Figures>) {
    let ratio = baseline.map_or(String::new(), |b| {
        format!("{:.1}x", f.per_cpu_second() / b.per_cpu_second())
    });
    println!(
        "| {name} | {:.2} s | {:.2} s | {:.0} | {:.0} | {ratio} |",
        f.wall.as_secs_f64(),
        f.cpu.as_secs_f64(),
        f.events as f64 / f.wall.as_secs_f64(),
        f.per_cpu_second(),
    );
}

/// Run the pipeline file over `input` in this process.
async fn run_local(pipeline: &Path, input: &Path, event_mode: bool) -> Figures {
    let mut settings = weir::config::load(pipeline).unwrap();
    if !event_mode {
        settings.event_mode = EventMode::Off;
    }
    if let weir::config::Source::File { path, .. } = &mut settings.source {
        *path = input.to_owned();
    }
    let assembled = weir::pipeline::assemble(&settings).await.unwrap();
    let (cpu, wall) = (cpu_time("self"), Instant::now());
    let summary = weir::pipeline::run_file(&settings, &assembled)
        .await
        .unwrap();
    let figures = Figures {
        events: summary.stats.records,
        wall: wall.elapsed(),
        cpu: cpu_time("self") - cpu,
    };
    assert_eq!(summary.stats.dead_letters, 0);
    figures
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

async fn from_files() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.jsonl");
    let again = dir.path().join("again.jsonl");
    let bytes = events_file(&first, DOCS);
    std::fs::copy(&first, &again).unwrap();
    let out = dir.path().join("out");
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[pipeline]\nname = \"bench\"\n[source.file]\npath = \"{first}\"\n[runtime]\n\
             plugin_dir = \"{plugins}\"\n[[stage]]\nname = \"echo\"\nplugin = \"echo\"\n\
             [output.local]\ndir = \"{out}\"\n[dead_letter.local]\ndir = \"{out}\"\n",
            first = first.display(),
            plugins = weir_tests::plugin_dir().display(),
            out = out.display(),
        ),
    )
    .unwrap();
    println!(
        "## From a file ({DOCS} documents, {:.1} MB, the echo plugin)\n",
        bytes as f64 / 1e6
    );
    println!("| case | wall | CPU | events/s | events per CPU-second | vs (c) |");
    println!("|---|---:|---:|---:|---:|---:|");
    let computed = run_local(&pipeline, &first, true).await;
    let state_dir = out.join("bench/state");
    let state_bytes = dir_bytes(&state_dir);
    let unchanged = run_local(&pipeline, &again, true).await;
    // Event mode off: into a fresh output, so nothing is adopted.
    let off_pipeline = dir.path().join("off.toml");
    std::fs::write(
        &off_pipeline,
        std::fs::read_to_string(&pipeline).unwrap().replace(
            &out.display().to_string(),
            &dir.path().join("off").display().to_string(),
        ),
    )
    .unwrap();
    let every = run_local(&off_pipeline, &again, false).await;
    report(
        "(a) first pass: every document new",
        &computed,
        Some(&every),
    );
    report("(b) again: every event unchanged", &unchanged, Some(&every));
    report("(c) again with event mode off", &every, None);
    // (d): forget the state; rerunning (b)'s file rebuilds it from every
    // results object (and adopts what is written: nothing is computed).
    std::fs::remove_dir_all(&state_dir).unwrap();
    let rebuilt = run_local(&pipeline, &again, true).await;
    println!();
    let per_million = 1e6 / DOCS as f64;
    println!(
        "State on disk: {:.1} MB per million documents ({} bytes for {DOCS}).",
        state_bytes as f64 * per_million / 1e6,
        state_bytes
    );
    println!(
        "Rebuilding the state from the results alone (no checkpoint): {:.2} s wall, {:.2} s CPU \
         per million documents.\n",
        rebuilt.wall.as_secs_f64() * per_million,
        rebuilt.cpu.as_secs_f64() * per_million
    );
}

/// Wait until the group's committed offsets reach `marks`.
async fn wait_committed(services: &Services, scenario: &Scenario, marks: &[i64]) {
    loop {
        let committed =
            services.committed_offsets(&scenario.group, &scenario.topic, scenario.partitions);
        if committed.iter().zip(marks).all(|(c, m)| c >= m) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn from_kafka() {
    let services = Services::start();
    let scenario = Scenario::new(
        &services,
        "event-bench",
        4,
        "[batching]\nmax_records = 1000\nmax_age_ms = 250\n",
    )
    .await;
    let events = scenario.dir().join("events.jsonl");
    let bytes = events_file(&events, KAFKA_DOCS);
    scenario.ingest(&weir(), &services, &events);
    let host = scenario.start_host(&weir(), &services, 0, "bench");
    let pid = host.pid().to_string();
    let marks = services.high_watermarks(&scenario.topic, scenario.partitions);
    let (cpu, wall) = (cpu_time(&pid), Instant::now());
    wait_committed(&services, &scenario, &marks).await;
    let computed = Figures {
        events: KAFKA_DOCS as u64,
        wall: wall.elapsed(),
        cpu: cpu_time(&pid) - cpu,
    };
    scenario.ingest(&weir(), &services, &events);
    let (cpu, wall) = (cpu_time(&pid), Instant::now());
    let marks = services.high_watermarks(&scenario.topic, scenario.partitions);
    wait_committed(&services, &scenario, &marks).await;
    let unchanged = Figures {
        events: KAFKA_DOCS as u64,
        wall: wall.elapsed(),
        cpu: cpu_time(&pid) - cpu,
    };
    // Stopping checkpoints every partition (nothing was due before: the
    // default interval is 5 minutes).
    let (code, summary) = host.terminate();
    assert_eq!(code, Some(0));
    assert!(
        summary.contains(&format!("{KAFKA_DOCS} unchanged")),
        "{summary}"
    );
    println!(
        "## From Kafka to S3 ({KAFKA_DOCS} documents, {:.1} MB, one host, 4 partitions)\n",
        bytes as f64 / 1e6
    );
    println!("| case | wall | host CPU | events/s | events per host CPU-second | vs first pass |");
    println!("|---|---:|---:|---:|---:|---:|");
    report("first pass: every document new (echo)", &computed, None);
    report(
        "the same events again: every event unchanged",
        &unchanged,
        Some(&computed),
    );

    // A new host restores every partition from its checkpoint.
    let host = scenario.start_host(&weir(), &services, 1, "bench");
    let log_path = scenario.dir().join("host-1.log");
    let restores = |log: &str| -> Vec<u64> {
        log.lines()
            .filter(|l| l.contains("event-mode state restored"))
            .filter_map(|l| {
                let at = l.find("elapsed_ms=")? + "elapsed_ms=".len();
                l[at..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    };
    while restores(&std::fs::read_to_string(&log_path).unwrap()).len() < 4 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let restore_ms = restores(&std::fs::read_to_string(&log_path).unwrap());
    let (code, _) = host.terminate();
    assert_eq!(code, Some(0));
    let s3 = services.s3_client().await;
    let listed = s3
        .list_objects_v2()
        .bucket(&scenario.bucket)
        .prefix(format!("{}/checkpoints/", weir_tests::e2e::PIPELINE))
        .send()
        .await
        .unwrap();
    let bytes: i64 = listed.contents().iter().filter_map(|o| o.size()).sum();
    let per_million = 1e6 / KAFKA_DOCS as f64;
    println!(
        "\nRestore by a new host, from the checkpoints written at the first host's shutdown \
         ({} partitions of about {} documents, in parallel): {restore_ms:?} ms; checkpoints \
         {:.1} MB per million documents.\n",
        listed.contents().len(),
        KAFKA_DOCS / 4,
        bytes as f64 * per_million / 1e6
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    from_files().await;
    from_kafka().await;
}
