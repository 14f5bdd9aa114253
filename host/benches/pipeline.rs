//! The production path, measured side by side in one run on the same
//! documents (the bundled 206-page enwiki dump, ingested 30 times: 6180
//! change events, 176 MB, into a 4-partition topic on a real tansu broker,
//! results to a real s3s-fs server):
//!
//! - (a) raw consume rate: a plain rdkafka consumer reading the topic;
//! - (b) the in-process chain rate from a file: `weir run` on the same events
//!   as a JSONL file, to a local directory;
//! - (c) Kafka -> chain -> S3 end to end: `weir run` hosts, 1 and then 2
//!   replicas, each time a fresh consumer group and bucket; measured from
//!   the first partition assignment (of any host) until the results
//!   objects in S3 cover every partition up to its high watermark (read
//!   from the objects' names, `{first}-{last}.jsonl.zst`: one LIST per
//!   poll), with the hosts' peak resident memory. Not from the group's
//!   committed offsets: tansu answers with commits up to 30 s old, which
//!   this case used to measure.
//!
//! The consumers ask tansu for prompt fetches (`PROMPT_FETCHES`), as the
//! other benches do: tansu holds each fetch for `fetch.wait.max.ms`.
//!
//! Run: `cargo bench -p weir --bench pipeline`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use weir::storage::ObjectStore;
use weir_tests::e2e::{PIPELINE, PROMPT_FETCHES, Scenario, wait_for_any_log};
use weir_tests::services::Services;

const COPIES: usize = 30;
/// Object cutting as in production (not the tests' tiny objects).
const PRODUCTION_BATCHING: &str = "[batching]\nmax_records = 1000\nmax_age_ms = 250\n";

fn weir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

fn report(
    name: &str,
    events: u64,
    bytes: u64,
    elapsed: Duration,
    baseline: Option<f64>,
    rss_mib: Option<u64>,
) -> f64 {
    let mb_s = bytes as f64 / 1e6 / elapsed.as_secs_f64();
    let ratio = baseline.map_or("".to_owned(), |b| format!("{:.2}x", mb_s / b));
    let rss = rss_mib.map_or("".to_owned(), |r| format!("{r} MiB"));
    println!(
        "| {name} | {:.2} s | {:.0} | {mb_s:.1} | {ratio} | {rss} |",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );
    mb_s
}

/// (a): drain the topic with a plain consumer.
fn raw_consume(services: &Services, topic: &str, expected: usize) -> Duration {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &services.brokers)
        .set("group.id", format!("{topic}-raw"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut seen = 0;
    let mut started = None;
    while seen < expected {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            started.get_or_insert_with(Instant::now);
            seen += 1;
            std::hint::black_box(message.payload());
        }
    }
    started.expect("messages arrived").elapsed()
}

/// (c): hosts until every offset is durable; (elapsed since the first
/// assignment, peak RSS in MiB of the hosts).
async fn end_to_end(services: &Services, scenario: &Scenario, replicas: usize) -> (Duration, u64) {
    let hosts: Vec<_> = (0..replicas)
        .map(|n| scenario.start_host(&weir(), services, n, &format!("bench-{n}")))
        .collect();
    // From the first assignment of any host: with two, the first to join
    // the group may work alone for a while before the other is assigned.
    assert!(
        wait_for_any_log(&hosts, "partition assigned", Duration::from_secs(120)).await,
        "no host was assigned a partition"
    );
    let started = Instant::now();
    let expected = services.high_watermarks(&scenario.topic, scenario.partitions);
    // Progress is read from the results objects' names (one LIST per poll)
    // rather than their contents, which would compete with the hosts for
    // CPU.
    let results = ObjectStore::s3(
        services.s3_client().await,
        &scenario.bucket,
        &format!("{PIPELINE}/results/{}", scenario.topic),
    );
    let mut peak = 0;
    loop {
        peak = peak.max(hosts.iter().map(|h| h.rss_kib()).sum::<u64>());
        let keys = results.list("").await.unwrap();
        let covered = covered_ends(&keys, scenario.partitions);
        if covered.iter().zip(&expected).all(|(end, want)| end >= want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    assert_eq!(
        scenario.account(services).await.len() as i64,
        expected.iter().sum::<i64>(),
        "every offset is in S3"
    );
    for host in hosts {
        let (code, _) = host.terminate();
        assert_eq!(code, Some(0));
    }
    (elapsed, peak / 1024)
}

/// For each partition, the offset up to which results objects cover it
/// without a gap, from keys `{partition}/{first}-{last}.jsonl.zst`.
fn covered_ends(keys: &[String], partitions: i32) -> Vec<i64> {
    let mut ranges: Vec<Vec<(i64, i64)>> = vec![Vec::new(); partitions as usize];
    for key in keys {
        let parsed = key.split_once('/').and_then(|(partition, name)| {
            let (first, last) = name.strip_suffix(".jsonl.zst")?.split_once('-')?;
            Some((
                partition.parse::<usize>().ok()?,
                first.parse().ok()?,
                last.parse().ok()?,
            ))
        });
        if let Some((partition, first, last)) = parsed {
            ranges[partition].push((first, last));
        }
    }
    ranges
        .into_iter()
        .map(|mut ranges| {
            ranges.sort_unstable();
            ranges.into_iter().fold(
                0,
                |end, (first, last)| {
                    if first <= end { end.max(last + 1) } else { end }
                },
            )
        })
        .collect()
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let services = Services::start();
    let dir = tempfile::tempdir().unwrap();
    let (events, bytes) = weir_tests::distinct_dump_events_file(dir.path(), COPIES);
    let count = (206 * COPIES) as u64;
    let scenario = Scenario::new(&services, "bench", 4, "").await;
    scenario.ingest(&weir(), &services, &events);

    println!(
        "## Kafka -> chain -> S3 ({count} events, {:.1} MB, 4 partitions)\n",
        bytes as f64 / 1e6
    );
    println!(
        "| case | time | events/s | MB/s | vs (b) | peak RSS |\n|---|---:|---:|---:|---:|---:|"
    );
    let raw = raw_consume(&services, &scenario.topic, count as usize);
    report("(a) raw consume (rdkafka)", count, bytes, raw, None, None);

    let local = weir_tests::local_pipeline(dir.path(), "local.toml", &events, "");
    let started = Instant::now();
    let status = std::process::Command::new(weir())
        .args(["run", "-c"])
        .arg(&local)
        .env("WEIR_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let file = report(
        "(b) chain from a file, in process (`weir run`, local)",
        count,
        bytes,
        started.elapsed(),
        None,
        None,
    );

    for replicas in [1, 2] {
        let scenario = Scenario::new(
            &services,
            &format!("bench{replicas}"),
            4,
            &format!("{PRODUCTION_BATCHING}{PROMPT_FETCHES}"),
        )
        .await;
        scenario.ingest(&weir(), &services, &events);
        let (elapsed, rss) = end_to_end(&services, &scenario, replicas).await;
        report(
            &format!("(c) Kafka -> chain -> S3, {replicas} replica(s)"),
            count,
            bytes,
            elapsed,
            Some(file),
            Some(rss),
        );
    }
}
