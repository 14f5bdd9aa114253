//! Operating a host: Prometheus metrics, readiness, the recent dead
//! letters, and the HTTP server of `/metrics`, `/healthz`, `/readyz` and
//! the live status page (`[telemetry] listen`).
//!
//! - [`metrics`]: every collector, and the per-stage and per-partition
//!   meters the hot path uses;
//! - [`readiness`]: what `/readyz` waits for;
//! - [`recent`]: the last dead letters, for the status page;
//! - [`server`]: the HTTP server.
//!
//! Everything here is process-wide: a host process runs one pipeline, and
//! every part of it reports to the same place. `docs/operating.md` is the
//! reference of the metrics.

pub(crate) mod metrics;
pub(crate) mod readiness;
pub(crate) mod recent;
pub(crate) mod server;

use crate::chain::Chain;

/// Show `chain` as the versions this host runs now (`weir_plugin_info`).
pub(crate) fn chain_running(chain: &Chain) {
    let info = &metrics::metrics().plugin_info;
    info.reset();
    for stage in chain.stages() {
        let plugin = stage.plugin.info();
        info.with_label_values(&[
            stage.name.as_str(),
            plugin.name.as_str(),
            plugin.version.as_str(),
            &stage.plugin.digest().to_string(),
        ])
        .set(1);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Metric names in a PromQL expression: identifiers that start with
    /// `weir_` or `process_`.
    fn names_in(expr: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut rest = expr;
        while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
            let tail = &rest[start..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let word = &tail[..end];
            let preceded = rest[..start].ends_with(|c: char| c.is_ascii_alphanumeric());
            if !preceded && (word.starts_with("weir_") || word.starts_with("process_")) {
                names.push(word.to_owned());
            }
            rest = &tail[end..];
        }
        names
    }

    /// Every query of the Grafana dashboard (deploy/grafana) names only
    /// metrics the host exports.
    #[test]
    fn the_dashboard_uses_only_exported_metrics() {
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../../deploy/grafana/weir-dashboard.json"))
                .unwrap();
        let mut exported: BTreeSet<String> = BTreeSet::new();
        for name in super::metrics::metrics().names() {
            for suffix in ["", "_bucket", "_sum", "_count"] {
                exported.insert(format!("{name}{suffix}"));
            }
        }
        exported.extend(
            ["process_cpu_seconds_total", "process_resident_memory_bytes"].map(String::from),
        );
        let mut exprs = Vec::new();
        fn walk(value: &serde_json::Value, exprs: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, value) in map {
                        match (key.as_str(), value) {
                            ("expr" | "query", serde_json::Value::String(e)) => {
                                exprs.push(e.clone())
                            }
                            _ => walk(value, exprs),
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, exprs)),
                _ => {}
            }
        }
        walk(&dashboard, &mut exprs);
        assert!(exprs.len() > 20, "the dashboard has its queries");
        let mut used = BTreeSet::new();
        for expr in &exprs {
            for name in names_in(expr) {
                assert!(
                    exported.contains(&name),
                    "`{name}` in `{expr}` is not exported"
                );
                used.insert(name);
            }
        }
        // And the check sees what it checks.
        assert!(used.contains("weir_consumer_lag_messages"));
        assert_eq!(
            names_in("rate(weir_x_total[5m]) / weir_y"),
            ["weir_x_total", "weir_y"]
        );
    }
}
