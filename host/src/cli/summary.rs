//! The human-readable end of `weir run`, printed after the one-line summary
//! (which scripts read): what the plugins found (their counters, grouped by
//! the part of the name before the first dot), each stage's plugin time,
//! and where the results and dead letters are and how to read them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::chain::Chain;
use crate::counters::Counters;
use crate::pipeline::RunSummary;
use crate::telemetry::metrics::metrics;

/// Names shown per counter group before "and N more".
const SHOWN: usize = 8;

/// The summary, for people.
pub(crate) fn human(summary: &RunSummary, chain: &Chain, config: &Path) -> String {
    let mut out = String::new();
    let counters = &summary.stats.counters;
    if counters.values().any(|c| !c.is_empty()) {
        out.push_str("\nFound by the plugins (their counters):\n");
        for stage in chain.stages() {
            if let Some(counters) = counters.get(&stage.name).filter(|c| !c.is_empty()) {
                let _ = writeln!(out, "  {:<8} {}", stage.name, grouped(counters));
            }
        }
    }
    out.push_str("\nStages (plugin time per record):\n");
    for stage in chain.stages() {
        let histogram = metrics()
            .stage_duration
            .with_label_values(&[stage.name.as_str()]);
        let (count, sum) = (histogram.get_sample_count(), histogram.get_sample_sum());
        let mean = if count > 0 { sum / count as f64 } else { 0.0 };
        let _ = writeln!(
            out,
            "  {:<8} {:<16} {count:>7} records  {:>8.3} ms mean  {sum:>7.2} s in all",
            stage.name,
            stage.plugin.label().split(' ').next().unwrap_or_default(),
            mean * 1e3,
        );
    }
    let results = &summary.results_location;
    let _ = writeln!(out, "\nResults: {results}");
    if results.starts_with("s3://") {
        let _ = writeln!(out, "  list them: aws s3 ls --recursive {results}/");
    } else {
        let _ = writeln!(
            out,
            "  read one: zstdcat {results}/*/*/*.jsonl.zst | head -n 1 | jq .\n  \
             (one JSON line per input record; the README's \"The example's output\" \
             explains the fields)"
        );
    }
    match summary.stats.dead_letters {
        0 => out.push_str("Dead letters: none\n"),
        n => {
            let _ = writeln!(
                out,
                "Dead letters: {n} in {}\n  see them: weir dlq list -c {}",
                summary.dead_letters_location,
                config.display()
            );
        }
    }
    out
}

/// `pages 206, redirects 100; language: en 104, undetected 101, es 1`:
/// names with a dot grouped by their first part, largest first.
fn grouped(counters: &Counters) -> String {
    let mut groups: BTreeMap<&str, Vec<(&str, u64)>> = BTreeMap::new();
    for (name, value) in counters.iter() {
        let (group, rest) = name.split_once('.').unwrap_or(("", name));
        groups.entry(group).or_default().push((rest, value));
    }
    groups
        .into_iter()
        .map(|(group, mut entries)| {
            entries.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let more = entries.len().saturating_sub(SHOWN);
            let mut shown: Vec<String> = entries
                .iter()
                .take(SHOWN)
                .map(|(name, value)| format!("{name} {value}"))
                .collect();
            if more > 0 {
                shown.push(format!("and {more} more"));
            }
            let shown = shown.join(", ");
            if group.is_empty() {
                shown
            } else {
                format!("{group}: {shown}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_grouped_by_their_first_part() {
        let mut counters = Counters::default();
        counters.add("pages", 206);
        counters.add("redirects", 100);
        counters.add("language.en", 104);
        counters.add("language.es", 1);
        counters.add("language.undetected", 101);
        assert_eq!(
            grouped(&counters),
            "pages 206, redirects 100; language: en 104, undetected 101, es 1"
        );
        let mut many = Counters::default();
        for n in 0..10 {
            many.add(&format!("topic.t{n}"), n);
        }
        assert!(
            grouped(&many).ends_with("t2 2, and 2 more"),
            "{}",
            grouped(&many)
        );
    }
}
