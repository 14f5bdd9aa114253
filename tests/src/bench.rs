//! A minimal side-by-side benchmark harness: each case is timed as the
//! median of several samples, and results are printed as a Markdown table
//! with ratios against a named baseline, so figures from one run can be
//! compared directly (and pasted into `docs/performance.md`).
//!
//! Benchmarks are run with `cargo bench -p weir-tests`; they are never timed
//! tests.

use std::hint::black_box;
use std::time::{Duration, Instant};

use weir::runtime::DocRecord;
use weir_sdk::{LocalInstance, Transform};

/// Samples per case; the median is reported.
const SAMPLES: usize = 21;
/// Target duration of one sample.
const SAMPLE_TIME: Duration = Duration::from_millis(120);

/// One measured case.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Case name.
    pub name: String,
    /// Median time of one iteration.
    pub per_iteration: Duration,
    /// Records processed per iteration.
    pub records: u64,
    /// Input bytes processed per iteration.
    pub bytes: u64,
}

impl Measurement {
    /// Median time per record.
    pub fn per_record(&self) -> Duration {
        self.per_iteration / u32::try_from(self.records.max(1)).unwrap_or(u32::MAX)
    }

    /// Input throughput in MB/s (10^6 bytes).
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.per_iteration.as_secs_f64() / 1e6
    }

    /// Records per second.
    pub fn records_per_s(&self) -> f64 {
        self.records as f64 / self.per_iteration.as_secs_f64()
    }
}

/// Time `iteration` (which processes `records` records of `bytes` bytes in
/// all): warm up, calibrate the iteration count, take [`SAMPLES`] samples.
pub fn measure<T>(
    name: &str,
    records: u64,
    bytes: u64,
    mut iteration: impl FnMut() -> T,
) -> Measurement {
    let sampler = Sampler::calibrate(&mut iteration);
    let samples = (0..SAMPLES)
        .map(|_| sampler.sample(&mut iteration))
        .collect();
    Measurement::from_samples(name, records, bytes, samples)
}

/// Two measured cases on the same input and the throughput ratio of the
/// second to the first.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The baseline case (e.g. native).
    pub base: Measurement,
    /// The compared case (e.g. WASM).
    pub other: Measurement,
    /// Median over sample pairs of `base time / other time`: the compared
    /// case's throughput as a fraction of the baseline's.
    pub ratio: f64,
}

/// Time two cases over the same input with their samples interleaved
/// (base, other, base, other, ...), so that a noisy neighbour slows both
/// alike; the ratio is the median of the per-pair ratios, which is what
/// makes it stable on a shared machine where absolute times move by 30%.
pub fn compare<A, B>(
    names: (&str, &str),
    records: u64,
    bytes: u64,
    mut base: impl FnMut() -> A,
    mut other: impl FnMut() -> B,
) -> Comparison {
    let base_sampler = Sampler::calibrate(&mut base);
    let other_sampler = Sampler::calibrate(&mut other);
    let (base_samples, other_samples): (Vec<Duration>, Vec<Duration>) = (0..SAMPLES)
        .map(|_| {
            (
                base_sampler.sample(&mut base),
                other_sampler.sample(&mut other),
            )
        })
        .unzip();
    let mut ratios: Vec<f64> = base_samples
        .iter()
        .zip(&other_samples)
        .map(|(b, o)| b.as_secs_f64() / o.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    Comparison {
        base: Measurement::from_samples(names.0, records, bytes, base_samples),
        other: Measurement::from_samples(names.1, records, bytes, other_samples),
        ratio: ratios[SAMPLES / 2],
    }
}

/// Runs an iteration often enough per sample to last about [`SAMPLE_TIME`].
struct Sampler {
    iterations: u32,
}

impl Sampler {
    /// Warm up for one sample time, counting how many iterations fit.
    fn calibrate<T>(iteration: &mut impl FnMut() -> T) -> Sampler {
        let warm_until = Instant::now() + SAMPLE_TIME;
        let mut iterations = 0u32;
        while Instant::now() < warm_until || iterations == 0 {
            black_box(iteration());
            iterations += 1;
        }
        Sampler { iterations }
    }

    /// Time one sample; returns the time per iteration.
    fn sample<T>(&self, iteration: &mut impl FnMut() -> T) -> Duration {
        let started = Instant::now();
        for _ in 0..self.iterations {
            black_box(iteration());
        }
        started.elapsed() / self.iterations
    }
}

impl Measurement {
    fn from_samples(name: &str, records: u64, bytes: u64, mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let m = Measurement {
            name: name.to_owned(),
            per_iteration: samples[samples.len() / 2],
            records,
            bytes,
        };
        eprintln!("  measured {:<48} {:>12.3?}/record", m.name, m.per_record());
        m
    }
}

/// Print measurements as a Markdown table, each with its ratio to the
/// measurement named `baseline` (time ratio: > 1 means slower).
pub fn print_table(title: &str, measurements: &[Measurement], baseline: &str) {
    let base = measurements
        .iter()
        .find(|m| m.name == baseline)
        .unwrap_or_else(|| panic!("baseline {baseline} was not measured"));
    println!("\n### {title}\n");
    println!("| case | time/record | records/s | MB/s | time vs `{baseline}` |");
    println!("|---|---:|---:|---:|---:|");
    for m in measurements {
        let ratio = m.per_record().as_secs_f64() / base.per_record().as_secs_f64();
        println!(
            "| {} | {:.2?} | {:.0} | {:.1} | {:.2}x |",
            m.name,
            m.per_record(),
            m.records_per_s(),
            m.mb_per_s(),
            ratio
        );
    }
}

/// A plugin crate compiled natively, run over `inputs` in batches of
/// `batch` records as the host would call its WASM build; returns its
/// outputs (the native side of a native-vs-WASM comparison).
pub fn native<T: Transform>(
    plugin: &mut LocalInstance<T>,
    inputs: &[DocRecord],
    batch: usize,
) -> Vec<DocRecord> {
    inputs
        .chunks(batch)
        .flat_map(|chunk| plugin.process_batch(chunk.iter().map(crate::sdk_record).collect()))
        .flat_map(|outcome| outcome.expect("the sample pages process"))
        .map(crate::doc_record)
        .collect()
}

/// `inputs` through a chain worker in batches of `batch` records, as `weir
/// run` hands them to it (the WASM side of a native-vs-WASM comparison);
/// returns how many results it gave.
pub fn through_worker(
    worker: &mut weir::chain::ChainWorker,
    inputs: &[DocRecord],
    batch: usize,
) -> usize {
    inputs
        .chunks(batch)
        .map(|chunk| worker.process(chunk.to_vec()).expect("no trap").len())
        .sum()
}
