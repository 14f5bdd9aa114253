//! A minimal side-by-side benchmark harness: each case is timed as the
//! median of several samples, and results are printed as a Markdown table
//! with ratios against a named baseline, so figures from one run can be
//! compared directly (and pasted into `docs/performance.md`).
//!
//! Benchmarks are run with `cargo bench -p weir-tests`; they are never timed
//! tests.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Samples per case; the median is reported.
const SAMPLES: usize = 15;
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
    let warm_until = Instant::now() + SAMPLE_TIME;
    let mut calibration = 0u32;
    while Instant::now() < warm_until || calibration == 0 {
        black_box(iteration());
        calibration += 1;
    }
    let iterations = calibration.max(1);
    let mut samples: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                black_box(iteration());
            }
            started.elapsed() / iterations
        })
        .collect();
    samples.sort();
    let m = Measurement {
        name: name.to_owned(),
        per_iteration: samples[SAMPLES / 2],
        records,
        bytes,
    };
    eprintln!("  measured {:<48} {:>12.3?}/record", m.name, m.per_record());
    m
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
