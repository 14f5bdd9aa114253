//! `weir replay` and the stage cache, measured side by side in one run on
//! the same topic: the bundled 206-page enwiki dump ingested `COPIES` times
//! with distinct document ids (so no two events are the same work), into a
//! 4-partition topic on a real tansu broker, results and cache packs on a
//! real s3s-fs server. The replays' consumers ask for prompt fetches
//! (`PROMPT_FETCHES`: tansu otherwise holds each fetch for the consumer's
//! 500 ms wait, which bounds every replay at its rate).
//!
//! - replay with the cache off, then cold (computing and storing every
//!   entry), then warm (everything from the cache): wall time and the
//!   replay process's own CPU time (the broker and S3 server share this
//!   machine's cores; the host's CPU is what the cache saves);
//! - the same on a file (`weir run --every-event`, local cache), where no
//!   broker bounds the rate: the cases in turn, `FILE_ROUNDS` rounds, with
//!   medians (one run of a case moves by 20% and more on a shared machine);
//! - the same file run with a costly fourth stage (the `echo` test plugin
//!   spending `MODEL_WORK` million multiply steps per record, a stand-in
//!   for a model), where the plugins' work, which the cache saves, outweighs the
//!   host's own;
//! - a bare consumer reading the whole topic: the broker's part of any
//!   replay of it on this machine;
//! - S3 requests per record of the warm replay, from its summary;
//! - hit latency: an entry from the memory tier, and a pack read from S3
//!   and decoded (per pack and per entry).
//!
//! Run: `cargo bench -p weir --bench replay`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use weir::cache::{StageCache, pack};
use weir::storage::ObjectStore;
use weir_tests::e2e::{PROMPT_FETCHES, Scenario};
use weir_tests::process::{Measured, in_turn, measure};
use weir_tests::services::Services;

const COPIES: usize = 10;
/// Object cutting as in production (not the tests' tiny objects).
const PRODUCTION_BATCHING: &str = "[batching]\nmax_records = 1000\nmax_age_ms = 250\n";
const CACHE: &str = "\n[cache]\nenabled = true\n";
/// Millions of multiply steps the costly stage spends per record (about
/// 1.5 ms of CPU each in the sandbox here).
const MODEL_WORK: u64 = 2;
/// Rounds of the file cases (a few seconds each), and of the costly
/// stage's (a cold run takes about ten).
const FILE_ROUNDS: usize = 9;
const COSTLY_ROUNDS: usize = 3;

fn weir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

fn replay(services: &Services, pipeline: &Path, run: &str) -> Measured {
    let mut command = std::process::Command::new(weir());
    command
        .args(["replay", "-c"])
        .arg(pipeline)
        .args(["--run", run])
        .envs(services.env().iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("WEIR_LOG", "warn");
    let measured = measure(command);
    assert!(measured.stdout.contains("complete"), "{}", measured.stdout);
    measured
}

fn file_run(config: &Path) -> Measured {
    let mut command = std::process::Command::new(weir());
    command
        .args(["run", "--every-event", "-c"])
        .arg(config)
        .env("WEIR_LOG", "warn");
    measure(command)
}

/// How long a bare consumer takes to read all `records` of `topic` from
/// the start, with the replays' prompt fetches: the broker's part of any
/// replay of the topic, whatever the host does with the records (the
/// bodies stored by reference are not fetched).
fn consume_all(services: &Services, topic: &str, partitions: i32, records: u64) -> Duration {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &services.brokers)
        .set("group.id", format!("{topic}-floor"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("a consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("a partition from the start");
    }
    let start = Instant::now();
    consumer.assign(&assignment).expect("assigned");
    let mut seen = 0;
    while seen < records {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(_)) => seen += 1,
            Some(Err(e)) => panic!("consuming the topic: {e}"),
            None => panic!("the topic gave {seen} of its {records} records"),
        }
    }
    start.elapsed()
}

/// The `cache: N requests` figure of a summary.
fn cache_requests(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("cache: ")?.split(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// A table's heading and columns; the ratios are against the `base` case.
fn table(title: &str, base: &str) {
    println!("\n## {title}\n");
    println!(
        "| case | wall | host CPU | records/s | wall vs {base} | CPU vs {base} |\n\
         |---|---:|---:|---:|---:|---:|"
    );
}

fn row(case: &str, m: &Measured, base: &Measured, records: u64) {
    println!(
        "| {case} | {:.2} s | {:.2} s | {:.0} | {:.2}x | {:.2}x |",
        m.wall.as_secs_f64(),
        m.cpu.as_secs_f64(),
        records as f64 / m.wall.as_secs_f64(),
        base.wall.as_secs_f64() / m.wall.as_secs_f64(),
        base.cpu.as_secs_f64() / m.cpu.as_secs_f64(),
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let services = Services::start();
    let dir = tempfile::tempdir().unwrap();
    let (events, bytes) = weir_tests::distinct_dump_events_file(dir.path(), COPIES);
    let records = (206 * COPIES) as u64;
    let scenario = Scenario::new(
        &services,
        "bench-replay",
        4,
        &format!("{PRODUCTION_BATCHING}{PROMPT_FETCHES}"),
    )
    .await;
    scenario.ingest(&weir(), &services, &events);
    let plain = scenario.pipeline.clone();
    let cached = scenario.dir().join("cached.toml");
    let text = std::fs::read_to_string(&plain).unwrap();
    std::fs::write(&cached, format!("{text}{CACHE}")).unwrap();

    table(
        &format!(
            "Replay of a topic ({records} events, {:.1} MB, 4 partitions), parse -> lang -> score",
            bytes as f64 / 1e6
        ),
        "cache off",
    );
    let off = replay(&services, &plain, "off");
    row("cache off", &off, &off, records);
    let cold = replay(&services, &cached, "cold");
    row("cache on, cold (computes and stores)", &cold, &off, records);
    let warm = replay(&services, &cached, "warm");
    row("cache on, warm (all from the cache)", &warm, &off, records);
    println!(
        "\nwarm vs cold: {:.1}x faster (wall), {:.1}x less host CPU; cold overhead vs off: {:+.1}% wall, {:+.1}% host CPU",
        cold.wall.as_secs_f64() / warm.wall.as_secs_f64(),
        cold.cpu.as_secs_f64() / warm.cpu.as_secs_f64(),
        100.0 * (cold.wall.as_secs_f64() / off.wall.as_secs_f64() - 1.0),
        100.0 * (cold.cpu.as_secs_f64() / off.cpu.as_secs_f64() - 1.0),
    );
    let floor = consume_all(&services, &scenario.topic, scenario.partitions, records);
    println!(
        "a bare consumer reading the whole topic from the start: {:.2} s, {:.0}% of the warm \
         replay's wall time (what any replay of this topic on this broker takes at least)",
        floor.as_secs_f64(),
        100.0 * floor.as_secs_f64() / warm.wall.as_secs_f64(),
    );
    let requests = cache_requests(&warm.stdout);
    println!(
        "S3 requests of the warm replay: {requests} for {records} records and 3 stages: {:.4} per record per stage",
        requests as f64 / records as f64 / 3.0
    );

    // The same on a file, with a local cache: no broker in the way. The
    // cases run in turn, `FILE_ROUNDS` times: one run of each moves by
    // 20% and more on this shared machine.
    let local = weir_tests::local_pipeline(dir.path(), "local.toml", &events, "");
    let local_cached = weir_tests::local_pipeline(dir.path(), "local-cached.toml", &events, CACHE);
    table(
        &format!(
            "The same events from a file (`weir run --every-event`, local output and cache; \
             medians of {FILE_ROUNDS} rounds, cases in turn)"
        ),
        "cache off",
    );
    let out = dir.path().join("out");
    // Each run writes its results afresh; a cold run starts from an empty
    // cache (`cache/` beside the results, the local default).
    let fresh_run = |config: &Path, cache: Option<&Path>| {
        std::fs::remove_dir_all(out.join("bench")).ok();
        if let Some(cache) = cache {
            std::fs::remove_dir_all(cache).ok();
        }
        file_run(config)
    };
    let default_cache = out.join("cache");
    let [file_off, file_cold, file_warm]: [Measured; 3] = in_turn(
        FILE_ROUNDS,
        &mut [
            ("off", Box::new(|| fresh_run(&local, None))),
            (
                "cold",
                Box::new(|| fresh_run(&local_cached, Some(&default_cache))),
            ),
            ("warm", Box::new(|| fresh_run(&local_cached, None))),
        ],
    )
    .try_into()
    .expect("three cases");
    row("cache off", &file_off, &file_off, records);
    row("cache on, cold", &file_cold, &file_off, records);
    row("cache on, warm", &file_warm, &file_off, records);
    println!(
        "\nwarm vs cold: {:.1}x faster (wall), {:.1}x less CPU; cold overhead vs off: {:+.1}% wall, {:+.1}% CPU",
        file_cold.wall.as_secs_f64() / file_warm.wall.as_secs_f64(),
        file_cold.cpu.as_secs_f64() / file_warm.cpu.as_secs_f64(),
        100.0 * (file_cold.wall.as_secs_f64() / file_off.wall.as_secs_f64() - 1.0),
        100.0 * (file_cold.cpu.as_secs_f64() / file_off.cpu.as_secs_f64() - 1.0),
    );

    // A costly stage after the chain: the cache saves the plugins' work.
    // A cache of its own: the chain's entries from the runs above would
    // make its first run warm for three of the four stages.
    let costly_cache = dir.path().join("costly-cache");
    let model = format!(
        "{CACHE}dir = \"{}\"\n[[stage]]\nname = \"model\"\nplugin = \"echo\"\n\
         [stage.config]\nwork = {MODEL_WORK}\n",
        costly_cache.display()
    );
    let costly = weir_tests::local_pipeline(dir.path(), "costly.toml", &events, &model);
    table(
        &format!(
            "With a costly fourth stage (`echo` with `work = {MODEL_WORK}`), from the file \
             (medians of {COSTLY_ROUNDS} rounds)"
        ),
        "cold",
    );
    let [costly_cold, costly_warm]: [Measured; 2] = in_turn(
        COSTLY_ROUNDS,
        &mut [
            ("cold", Box::new(|| fresh_run(&costly, Some(&costly_cache)))),
            ("warm", Box::new(|| fresh_run(&costly, None))),
        ],
    )
    .try_into()
    .expect("two cases");
    row("cache on, cold", &costly_cold, &costly_cold, records);
    row("cache on, warm", &costly_warm, &costly_cold, records);
    println!(
        "\nwarm vs cold: {:.1}x faster (wall); the fourth stage cost {:.2} ms of CPU per record \
         (its cold run against the three-stage cold run above)",
        costly_cold.wall.as_secs_f64() / costly_warm.wall.as_secs_f64(),
        (costly_cold.cpu.as_secs_f64() - file_cold.cpu.as_secs_f64()) * 1e3 / records as f64,
    );

    // Hit latency: packs read from S3 and decoded, then entries from memory.
    let client = services.s3_client().await;
    let store = ObjectStore::s3(client, &scenario.bucket, "cache");
    let keys = store.list("").await.unwrap();
    let (mut read_time, mut entries) = (Duration::ZERO, Vec::new());
    for key in &keys {
        let started = Instant::now();
        let bytes = store.get(key).await.unwrap().expect("a listed pack");
        let decoded = pack::decode(bytes.into()).unwrap();
        read_time += started.elapsed();
        entries.extend(decoded);
    }
    let memory = StageCache::new(ObjectStore::memory(), 1 << 30);
    memory.remember(&entries);
    let started = Instant::now();
    let mut found = 0;
    for _ in 0..10 {
        for (key, _) in &entries {
            found += usize::from(memory.get(key).is_some());
        }
    }
    let memory_time = started.elapsed();
    assert_eq!(found, 10 * entries.len());
    println!("\n## Hit latency\n");
    println!("| from | per pack | per entry |\n|---|---:|---:|");
    println!(
        "| S3 (read + decode; {} packs, {} entries) | {:.2} ms | {:.1} µs |",
        keys.len(),
        entries.len(),
        read_time.as_secs_f64() * 1e3 / keys.len() as f64,
        read_time.as_secs_f64() * 1e6 / entries.len() as f64,
    );
    println!(
        "| memory tier | | {:.2} µs |",
        memory_time.as_secs_f64() * 1e6 / found as f64
    );
}
