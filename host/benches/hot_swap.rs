//! What a hot swap costs, measured in one run on the bundled dump (206
//! pages, repeated `COPIES` times) through parse -> lang -> score:
//!
//! - off the partitions' path: compiling the new version's components into
//!   the engine, and the trial (every stage instantiated and `init`ed once);
//! - on a partition's path: the time of each 64-record batch through a
//!   partition worker (decode, chain, result lines; an in-memory store),
//!   with a new chain published every `SWAP_EVERY` batches, so the batches
//!   that swap (drop the old instances, instantiate and `init` the new
//!   ones, then process) can be compared with those that do not;
//! - throughput with and without the swaps;
//! - from `weir plugin activate` to every host running the new version:
//!   two `weir run` hosts on a 2-partition topic on a real tansu broker,
//!   the registry on a real s3s-fs server, `watch_interval_s = 1`, versions
//!   switched `ROUNDS` times between `echo@0.1.0` and `echo@0.2.0`.
//!
//! Run: `cargo bench -p weir --bench hot_swap`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir::config::{BatchingConfig, DecodeConfig};
use weir::dlq::DeadLetterSink;
use weir::partition::PartitionWorker;
use weir::sink::Sink;
use weir::source::{Payload, Position, SourceMessage};
use weir::storage::ObjectStore;
use weir_tests::e2e::Scenario;
use weir_tests::services::Services;

const COPIES: usize = 10;
const BATCH: usize = 64;
const SWAP_EVERY: usize = 4;
const ROUNDS: usize = 6;
const HOSTS: usize = 2;

fn weir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// Seconds from each `weir plugin activate` returning to every host
/// having loaded the new version, over [`ROUNDS`] activations.
async fn activate_to_every_host() -> Vec<Duration> {
    let services = Services::start();
    let weir = weir();
    let scenario =
        Scenario::two_echo_versions(&services, &weir, "bench-hot-swap", HOSTS as i32).await;
    let hosts: Vec<_> = (0..HOSTS)
        .map(|n| scenario.start_host(&weir, &services, n, &format!("host-{n}")))
        .collect();
    for host in &hosts {
        assert!(
            host.wait_for_log("partition assigned", Duration::from_secs(60))
                .await,
            "{}",
            host.log_tail()
        );
    }
    let loaded =
        |host: &weir_tests::e2e::Host| host.log().matches("new plugin versions loaded").count();
    let mut times = Vec::new();
    for round in 1..=ROUNDS {
        let version = if round % 2 == 1 {
            "echo@0.2.0"
        } else {
            "echo@0.1.0"
        };
        scenario.weir(&weir, &services, &["plugin", "activate", version]);
        let activated = Instant::now();
        while hosts.iter().any(|h| loaded(h) < round) {
            assert!(activated.elapsed() < Duration::from_secs(60), "no swap");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        times.push(activated.elapsed());
    }
    for host in hosts {
        host.terminate();
    }
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Run every batch through a worker following `chains`, publishing the
/// other chain before every `swap_every`-th batch (never, with `None`).
/// Returns each batch's time and whether it swapped.
async fn run(
    batches: &[Vec<SourceMessage>],
    chains: [&Arc<weir::chain::Chain>; 2],
    swap_every: Option<usize>,
) -> Vec<(Duration, bool)> {
    let store = ObjectStore::memory();
    let sink = Arc::new(Sink::new(
        "bench",
        store.clone(),
        DeadLetterSink::Store(store),
    ));
    let (publish, live) = tokio::sync::watch::channel(chains[0].clone());
    let mut worker = PartitionWorker::new(
        chains[0].start_worker().unwrap(),
        sink,
        DecodeConfig::default(),
        BatchingConfig::default(),
        "bench",
        0,
    )
    .with_live_chain(live);
    let mut times = Vec::with_capacity(batches.len());
    for (i, batch) in batches.iter().enumerate() {
        let swap = swap_every.is_some_and(|n| i > 0 && i % n == 0);
        if swap {
            publish.send_replace(chains[(i / swap_every.unwrap()) % 2].clone());
        }
        let started = Instant::now();
        worker.process(batch.clone()).await.unwrap();
        times.push((started.elapsed(), swap));
    }
    worker.finish().await.unwrap();
    times
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let runtime = weir_tests::runtime();
    let started = Instant::now();
    let a = weir_tests::document_chain(&runtime);
    let compile = started.elapsed();
    // The new version: the same plugins loaded again (a new chain, new
    // instances); in a host its components would be new ones, compiled
    // like these.
    let b = weir_tests::document_chain(&runtime);
    let started = Instant::now();
    drop(b.start_worker().unwrap());
    let trial = started.elapsed();

    let events = weir_tests::dump_events(&weir_tests::sample_dump());
    let messages: Vec<SourceMessage> = (0..COPIES)
        .flat_map(|_| events.iter())
        .enumerate()
        .map(|(offset, payload)| SourceMessage {
            position: Position {
                topic: "bench".into(),
                partition: 0,
                offset: offset as i64,
            },
            payload: Payload::Raw(payload.clone()),
        })
        .collect();
    let batches: Vec<Vec<SourceMessage>> = messages.chunks(BATCH).map(<[_]>::to_vec).collect();

    // Warm up, then the two runs.
    run(&batches[..4], [&a, &b], None).await;
    let steady = run(&batches, [&a, &b], None).await;
    let swapping = run(&batches, [&a, &b], Some(SWAP_EVERY)).await;

    let sorted = |times: &[(Duration, bool)], swapped: Option<bool>| {
        let mut d: Vec<Duration> = times
            .iter()
            .filter(|(_, s)| swapped.is_none_or(|want| *s == want))
            .map(|(d, _)| *d)
            .collect();
        d.sort();
        d
    };
    let no_swap = sorted(&steady, None);
    let unswapped = sorted(&swapping, Some(false));
    let swapped = sorted(&swapping, Some(true));
    let total = |times: &[(Duration, bool)]| times.iter().map(|(d, _)| *d).sum::<Duration>();
    let records = messages.len() as f64;

    println!(
        "## Hot swap ({} records in batches of {BATCH}, parse -> lang -> score; {} swaps)\n",
        messages.len(),
        swapped.len()
    );
    println!(
        "Off the partitions' path: compiling the chain's 3 components {:.0} ms (no compiled-artifact cache); trial instantiate + init of the 3 stages {:.2} ms.\n",
        ms(compile),
        ms(trial)
    );
    println!("| batches | count | p50 | p99 | max |\n|---|---:|---:|---:|---:|");
    for (name, d) in [
        ("no swap at all (run 1)", &no_swap),
        ("not swapping (run 2)", &unswapped),
        ("swapping (run 2)", &swapped),
    ] {
        println!(
            "| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
            d.len(),
            ms(percentile(d, 0.5)),
            ms(percentile(d, 0.99)),
            ms(*d.last().unwrap())
        );
    }
    // Each swapping batch against the same batch in the run without swaps
    // (batches differ in their pages, so only the same batch compares).
    let mut added: Vec<f64> = swapping
        .iter()
        .zip(&steady)
        .filter(|((_, swapped), _)| *swapped)
        .map(|((with, _), (without, _))| ms(*with) - ms(*without))
        .collect();
    added.sort_by(f64::total_cmp);
    println!(
        "\nA swap adds {:.2} ms to its batch (median over the {} swaps of the batch's time minus the same batch's time without swaps; largest {:.2} ms). p99 over all batches: {:.2} ms without swaps, {:.2} ms with one every {SWAP_EVERY} batches.",
        added[added.len() / 2],
        added.len(),
        added.last().unwrap(),
        ms(percentile(&no_swap, 0.99)),
        ms(percentile(&sorted(&swapping, None), 0.99)),
    );
    println!(
        "Throughput: {:.0} records/s without swaps, {:.0} records/s with them ({:.3}x).",
        records / total(&steady).as_secs_f64(),
        records / total(&swapping).as_secs_f64(),
        total(&steady).as_secs_f64() / total(&swapping).as_secs_f64()
    );

    let mut times = activate_to_every_host().await;
    times.sort();
    println!(
        "\n## From `weir plugin activate` to every host running the new version ({HOSTS} hosts, watch_interval_s = 1, {ROUNDS} activations)\n"
    );
    println!(
        "median {:.2} s, longest {:.2} s ({})",
        times[times.len() / 2].as_secs_f64(),
        times.last().unwrap().as_secs_f64(),
        times
            .iter()
            .map(|t| format!("{:.2}", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
