//! The host's Prometheus metrics: one process-wide set of collectors that
//! every part of the host adds to, and the registry `/metrics` serves.
//!
//! Invariants:
//! - names follow Prometheus conventions: `weir_` prefix, `_total` for
//!   counters, base units (`_seconds`, `_bytes`);
//! - the pipeline is not a label of each collector but a constant label of
//!   the served registry (a host runs one pipeline), so every series,
//!   the process collector's included, carries `pipeline`;
//! - label values come from the host (topics, partitions, stage names,
//!   kinds), except plugin counter names, which are bounded per stage
//!   ([`MAX_NAMES`](crate::counters::MAX_NAMES), the rest under
//!   [`OTHER`](crate::counters::OTHER)) so a plugin cannot grow the
//!   exposition without end.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::counters::{Counters, MAX_NAMES, OTHER};
use crate::partition::Stats;
use crate::runtime::{Trap, Usage};

/// Every collector of the host.
pub(crate) struct Metrics {
    pub(crate) records_in: IntCounterVec,
    pub(crate) input_bytes: IntCounterVec,
    pub(crate) records_out: IntCounterVec,
    pub(crate) records_skipped: IntCounterVec,
    pub(crate) records_dead_lettered: IntCounterVec,
    pub(crate) stage_duration: HistogramVec,
    pub(crate) plugin_calls: IntCounterVec,
    pub(crate) plugin_traps: IntCounterVec,
    pub(crate) plugin_fuel_high_water: IntGaugeVec,
    pub(crate) plugin_memory_high_water: IntGaugeVec,
    pub(crate) plugin_counter: IntCounterVec,
    pub(crate) consumer_lag: IntGaugeVec,
    pub(crate) partitions_assigned: IntGauge,
    pub(crate) s3_duration: HistogramVec,
    pub(crate) s3_errors: IntCounterVec,
    pub(crate) s3_retries: IntCounterVec,
    pub(crate) batch_records: Histogram,
    pub(crate) object_size: HistogramVec,
    pub(crate) cache_hits: IntCounterVec,
    pub(crate) cache_misses: IntCounterVec,
    pub(crate) plugin_info: IntGaugeVec,
    pub(crate) plugin_swaps: IntCounterVec,
    pub(crate) partitions_behind_chain: IntGauge,
    pub(crate) ready: IntGauge,
    /// Plugin counter names seen so far, per stage (bounded).
    counter_names: Mutex<HashMap<String, HashSet<String>>>,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("a valid counter")
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid gauge")
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>, labels: &[&str]) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("a valid histogram")
}

/// Powers of `factor` from `start`, `count` of them.
fn exponential(start: f64, factor: f64, count: usize) -> Vec<f64> {
    prometheus::exponential_buckets(start, factor, count).expect("valid buckets")
}

const PARTITION: &[&str] = &["topic", "partition"];

impl Metrics {
    fn new() -> Self {
        Metrics {
            records_in: counter("weir_records_in_total", "Records consumed.", PARTITION),
            input_bytes: counter(
                "weir_input_bytes_total",
                "Payload bytes consumed (bodies fetched by reference included).",
                PARTITION,
            ),
            records_out: counter(
                "weir_records_out_total",
                "Records written to results: kind=result (through the chain) or tombstone (deletes).",
                &["topic", "partition", "kind"],
            ),
            records_skipped: counter(
                "weir_records_skipped_total",
                "Records skipped: reason=unchanged or stale (event mode), redelivered (already written).",
                &["topic", "partition", "reason"],
            ),
            records_dead_lettered: counter(
                "weir_records_dead_lettered_total",
                "Records dead-lettered, by kind of failure.",
                &["topic", "partition", "kind"],
            ),
            stage_duration: histogram(
                "weir_stage_duration_seconds",
                "Plugin time per record and stage (a batch call's time shared by its records).",
                exponential(0.000_01, 4.0, 12),
                &["stage"],
            ),
            plugin_calls: counter(
                "weir_plugin_calls_total",
                "Calls into a stage's plugin (one per batch, and per retry).",
                &["stage"],
            ),
            plugin_traps: counter(
                "weir_plugin_traps_total",
                "Plugin traps, by kind: deadline, memory, fuel, panic, contract, other.",
                &["stage", "kind"],
            ),
            plugin_fuel_high_water: gauge(
                "weir_plugin_fuel_high_water",
                "Most fuel one call of the stage consumed (engines that meter fuel).",
                &["stage"],
            ),
            plugin_memory_high_water: gauge(
                "weir_plugin_memory_high_water_bytes",
                "Largest linear memory an instance of the stage was granted.",
                &["stage"],
            ),
            plugin_counter: counter(
                "weir_plugin_counter_total",
                "Counters the plugins report with the SDK's `count`, by stage and name.",
                &["stage", "name"],
            ),
            consumer_lag: gauge(
                "weir_consumer_lag_messages",
                "Messages between the group's committed offset and the partition's end.",
                PARTITION,
            ),
            partitions_assigned: IntGauge::new(
                "weir_partitions_assigned",
                "Partitions this host is assigned.",
            )
            .expect("a valid gauge"),
            s3_duration: histogram(
                "weir_s3_request_duration_seconds",
                "S3 request latency, per attempt.",
                exponential(0.001, 2.0, 14),
                &["operation"],
            ),
            s3_errors: counter(
                "weir_s3_request_errors_total",
                "S3 requests that failed (transient, refused or final).",
                &["operation"],
            ),
            s3_retries: counter(
                "weir_s3_retries_total",
                "S3 requests retried after a transient failure or a refusal.",
                &["operation"],
            ),
            batch_records: Histogram::with_opts(
                HistogramOpts::new(
                    "weir_batch_records",
                    "Input records per written object (its offset range).",
                )
                .buckets(exponential(1.0, 4.0, 9)),
            )
            .expect("a valid histogram"),
            object_size: histogram(
                "weir_object_size_bytes",
                "Size of written objects: kind=results (compressed) or dead_letters.",
                exponential(1024.0, 4.0, 10),
                &["kind"],
            ),
            cache_hits: counter(
                "weir_cache_hits_total",
                "Stage inputs whose outputs came from the stage cache.",
                &["stage"],
            ),
            cache_misses: counter(
                "weir_cache_misses_total",
                "Stage inputs looked up in the stage cache and computed.",
                &["stage"],
            ),
            plugin_info: gauge(
                "weir_plugin_info",
                "The plugin version each stage runs now (value 1).",
                &["stage", "plugin", "version", "digest"],
            ),
            plugin_swaps: counter(
                "weir_plugin_swaps_total",
                "Hot swaps: outcome=applied or refused (the old chain kept running).",
                &["outcome"],
            ),
            partitions_behind_chain: IntGauge::new(
                "weir_partitions_behind_chain",
                "Partitions still on an older chain than the one hot swap published \
                 (the new one cannot start there yet).",
            )
            .expect("a valid gauge"),
            ready: IntGauge::new("weir_ready", "1 when /readyz answers ready, else 0.")
                .expect("a valid gauge"),
            counter_names: Mutex::new(HashMap::new()),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.records_in.clone()),
            Box::new(self.input_bytes.clone()),
            Box::new(self.records_out.clone()),
            Box::new(self.records_skipped.clone()),
            Box::new(self.records_dead_lettered.clone()),
            Box::new(self.stage_duration.clone()),
            Box::new(self.plugin_calls.clone()),
            Box::new(self.plugin_traps.clone()),
            Box::new(self.plugin_fuel_high_water.clone()),
            Box::new(self.plugin_memory_high_water.clone()),
            Box::new(self.plugin_counter.clone()),
            Box::new(self.consumer_lag.clone()),
            Box::new(self.partitions_assigned.clone()),
            Box::new(self.s3_duration.clone()),
            Box::new(self.s3_errors.clone()),
            Box::new(self.s3_retries.clone()),
            Box::new(self.batch_records.clone()),
            Box::new(self.object_size.clone()),
            Box::new(self.cache_hits.clone()),
            Box::new(self.cache_misses.clone()),
            Box::new(self.plugin_info.clone()),
            Box::new(self.plugin_swaps.clone()),
            Box::new(self.partitions_behind_chain.clone()),
            Box::new(self.ready.clone()),
        ]
    }

    /// The registry `/metrics` serves: every collector, the process's CPU
    /// and memory, and `pipeline` on every series.
    pub(crate) fn registry(&self, pipeline: &str) -> Registry {
        let labels = HashMap::from([("pipeline".to_owned(), pipeline.to_owned())]);
        let registry = Registry::new_custom(None, Some(labels)).expect("a valid pipeline label");
        for collector in self.collectors() {
            registry.register(collector).expect("names are unique");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("names are unique");
        registry
    }

    /// The names of the metric families the host exports (without the
    /// process collector's): the dashboard is checked against them.
    #[cfg(test)]
    pub(crate) fn names(&self) -> Vec<String> {
        self.collectors()
            .iter()
            .flat_map(|c| c.desc().into_iter().map(|d| d.fq_name.clone()))
            .collect()
    }

    /// Count plugin counters of `stage`, keeping at most [`MAX_NAMES`]
    /// names per stage.
    pub(crate) fn plugin_counters(&self, stage: &str, counters: &Counters) {
        if counters.is_empty() {
            return;
        }
        let mut seen = self.counter_names.lock().expect("not poisoned");
        let names = seen.entry(stage.to_owned()).or_default();
        for (name, delta) in counters.iter() {
            let name = if names.contains(name) || names.len() < MAX_NAMES {
                names.insert(name.to_owned());
                name
            } else {
                OTHER
            };
            self.plugin_counter
                .with_label_values(&[stage, name])
                .inc_by(delta);
        }
    }

    /// Count a written object: its input records and its size.
    pub(crate) fn object_written(&self, records: u64, kind: &str, bytes: usize) {
        self.batch_records.observe(records as f64);
        self.object_size
            .with_label_values(&[kind])
            .observe(bytes as f64);
    }
}

/// The host's metrics.
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// One stage's metrics, resolved once per chain worker so the hot path
/// touches no label maps.
pub(crate) struct StageMeter {
    stage: String,
    duration: Histogram,
    calls: IntCounter,
    fuel: IntGauge,
    memory: IntGauge,
}

impl StageMeter {
    pub(crate) fn new(stage: &str) -> Self {
        let m = metrics();
        StageMeter {
            stage: stage.to_owned(),
            duration: m.stage_duration.with_label_values(&[stage]),
            calls: m.plugin_calls.with_label_values(&[stage]),
            fuel: m.plugin_fuel_high_water.with_label_values(&[stage]),
            memory: m.plugin_memory_high_water.with_label_values(&[stage]),
        }
    }

    /// A call over `records` records took `elapsed`; the instance has used
    /// `usage`.
    pub(crate) fn call(&self, records: usize, elapsed: Duration, usage: Usage) {
        self.calls.inc();
        let each = elapsed.as_secs_f64() / records.max(1) as f64;
        for _ in 0..records {
            self.duration.observe(each);
        }
        raise(&self.memory, usage.memory_bytes as u64);
        if let Some(fuel) = usage.fuel {
            raise(&self.fuel, fuel);
        }
    }

    /// A call trapped.
    pub(crate) fn trap(&self, trap: &Trap) {
        metrics()
            .plugin_traps
            .with_label_values(&[self.stage.as_str(), trap.kind()])
            .inc();
    }
}

/// Raise a high-water gauge to `value` if it is higher.
fn raise(gauge: &IntGauge, value: u64) {
    let value = i64::try_from(value).unwrap_or(i64::MAX);
    if value > gauge.get() {
        gauge.set(value);
    }
}

/// One partition's record metrics, fed from its worker's [`Stats`] so that
/// every count has one source.
pub(crate) struct PartitionMeter {
    published: Stats,
    records_in: IntCounter,
    input_bytes: IntCounter,
    results: IntCounter,
    tombstones: IntCounter,
    unchanged: IntCounter,
    stale: IntCounter,
    redelivered: IntCounter,
}

impl PartitionMeter {
    pub(crate) fn new(topic: &str, partition: i32) -> Self {
        let m = metrics();
        let partition = partition.to_string();
        let labels = [topic, partition.as_str()];
        let with = |vec: &IntCounterVec, extra: &str| {
            vec.with_label_values(&[labels[0], labels[1], extra])
        };
        PartitionMeter {
            published: Stats::default(),
            records_in: m.records_in.with_label_values(&labels),
            input_bytes: m.input_bytes.with_label_values(&labels),
            results: with(&m.records_out, "result"),
            tombstones: with(&m.records_out, "tombstone"),
            unchanged: with(&m.records_skipped, "unchanged"),
            stale: with(&m.records_skipped, "stale"),
            redelivered: with(&m.records_skipped, "redelivered"),
        }
    }

    /// Add what `stats` counted since the last call.
    pub(crate) fn publish(&mut self, stats: &Stats) {
        let last = &self.published;
        self.records_in.inc_by(stats.records - last.records);
        self.input_bytes.inc_by(stats.bytes - last.bytes);
        self.results.inc_by(stats.results - last.results);
        self.tombstones.inc_by(stats.tombstones - last.tombstones);
        self.unchanged
            .inc_by(stats.skipped_unchanged - last.skipped_unchanged);
        self.stale.inc_by(stats.skipped_stale - last.skipped_stale);
        self.redelivered
            .inc_by(stats.redelivered - last.redelivered);
        self.published = Stats {
            records: stats.records,
            bytes: stats.bytes,
            results: stats.results,
            tombstones: stats.tombstones,
            skipped_unchanged: stats.skipped_unchanged,
            skipped_stale: stats.skipped_stale,
            redelivered: stats.redelivered,
            ..Stats::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        for name in metrics().names() {
            assert!(name.starts_with("weir_"), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
    }

    #[test]
    fn every_series_carries_the_pipeline() {
        let m = metrics();
        m.records_in.with_label_values(&["t", "0"]).inc();
        let registry = m.registry("wiki");
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(
            text.contains(r#"weir_records_in_total{partition="0",topic="t",pipeline="wiki"}"#),
            "{text}"
        );
        assert!(text.contains(r#"process_cpu_seconds_total{pipeline="wiki"}"#));
    }

    #[test]
    fn plugin_counter_names_are_bounded_per_stage() {
        let m = metrics();
        let mut counters = Counters::default();
        for n in 0..MAX_NAMES {
            counters.add(&format!("name-{n}"), 1);
        }
        m.plugin_counters("bounded-stage", &counters);
        let mut more = Counters::default();
        more.add("one-too-many", 3);
        m.plugin_counters("bounded-stage", &more);
        let other = m
            .plugin_counter
            .with_label_values(&["bounded-stage", OTHER])
            .get();
        assert_eq!(other, 3);
        // A name already seen keeps its own series.
        m.plugin_counters("bounded-stage", &counters);
        assert_eq!(
            m.plugin_counter
                .with_label_values(&["bounded-stage", "name-0"])
                .get(),
            2
        );
    }

    #[test]
    fn a_partition_meter_adds_only_what_is_new() {
        let mut meter = PartitionMeter::new("meter-topic", 7);
        let mut stats = Stats {
            records: 5,
            results: 3,
            skipped_unchanged: 2,
            ..Stats::default()
        };
        meter.publish(&stats);
        stats.records = 8;
        stats.results = 6;
        meter.publish(&stats);
        let m = metrics();
        assert_eq!(
            m.records_in.with_label_values(&["meter-topic", "7"]).get(),
            8
        );
        assert_eq!(
            m.records_out
                .with_label_values(&["meter-topic", "7", "result"])
                .get(),
            6
        );
        assert_eq!(
            m.records_skipped
                .with_label_values(&["meter-topic", "7", "unchanged"])
                .get(),
            2
        );
    }
}
