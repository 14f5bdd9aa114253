//! Hot swap: a running host follows its pipeline's active plugin versions.
//!
//! The watcher reads the pipeline's active-versions object from the
//! registry every `[registry] watch_interval_s`: one conditional GET,
//! however many plugins, with no body while nothing changed. When the versions its `name@active` stages resolve to
//! differ from the ones running, it builds the new chain off the partitions'
//! path:
//! 1. it fetches each new component and checks it (the manifest's sha256,
//!    a trusted signature);
//! 2. it compiles it into the host's engine;
//! 3. it type-checks the chain with it;
//! 4. it instantiates and `init`s every stage once, as a trial.
//!
//! Only a chain that passed all four is published to the partition workers,
//! which move to it between two batches ([`crate::partition`]): no record is
//! lost or processed twice, and each output's lineage names the version that
//! produced it.
//!
//! Invariant: a version that fails any step leaves the running chain in
//! place. The failure is logged and reported (`weir plugin status`). The
//! watcher tries again when the active versions change, and on its own
//! after a pause that doubles from one watch interval up to
//! [`REFUSED_RETRY_MAX`]: the cause may be on the host's side (a granted
//! file missing, the instance pool full) and be fixed without another
//! activation, which would change nothing in the active versions.
//!
//! The host reports what it runs to the registry
//! ([`crate::registry::HostStatus`]) when it starts, after each swap
//! attempt, every [`HEARTBEAT`], at the next watch interval after a failed
//! write, and removes its report when it stops.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::chain::Chain;
use crate::config::{Pipeline, PluginSource};
use crate::pipeline::{Assembled, PipelineError, load_chain};
use crate::registry::{ActiveVersions, HostStatus, Refusal, Registry, RegistryError, VersionRef};
use crate::storage::ETag;

/// How often the watcher looks at the stop flag while it waits.
const STOP_CHECK: Duration = Duration::from_millis(200);
/// How often a host rewrites its report when nothing changed (so a report
/// older than this says the host is gone).
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(60);
/// The longest pause before refused versions are tried again.
const REFUSED_RETRY_MAX: Duration = Duration::from_secs(30 * 60);

/// The names of the plugins the stages run at the pipeline's active
/// version.
pub(crate) fn followed(pipeline: &Pipeline) -> Vec<&str> {
    pipeline
        .stages
        .iter()
        .filter_map(|stage| match &stage.plugin {
            PluginSource::Registry {
                name,
                version: VersionRef::Active,
            } => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

/// The version each followed plugin runs at in `chain`.
pub(crate) fn running(chain: &Chain, followed: &[&str]) -> BTreeMap<String, String> {
    chain
        .stages()
        .iter()
        .map(|stage| stage.plugin.info())
        .filter(|info| followed.contains(&info.name.as_str()))
        .map(|info| (info.name.clone(), info.version.clone()))
        .collect()
}

/// Follow the pipeline's active versions until `stop` says so, publishing each
/// new chain that passes its checks on `chains`. Returns at once when no
/// stage names `name@active`.
pub(crate) async fn follow(
    pipeline: &Pipeline,
    assembled: &Assembled,
    chains: watch::Sender<Arc<Chain>>,
    stop: &dyn Fn() -> bool,
) {
    let (Some((registry, _)), Some(settings)) = (&assembled.registry, &pipeline.registry) else {
        return;
    };
    let followed = followed(pipeline);
    if followed.is_empty() {
        return;
    }
    // The pipeline whose active versions are followed (a shadow run's is
    // the live one, and it says so in its reports).
    let follows = settings.pipeline.as_str();
    let mut host = crate::pipeline::lease_owner();
    if follows != pipeline.name {
        host = format!("{host} [{}]", pipeline.name);
    }
    let mut report = Report::new(HostStatus {
        host,
        updated_at: String::new(),
        running: running(&chains.borrow(), &followed),
        refused: None,
        partitions_behind: 0,
    });
    report.write(registry, follows).await;
    // The version of the active-versions object last read (`Some(None)`:
    // there was none).
    let mut seen: Option<Option<ETag>> = None;
    // After a refusal: the time left before the refused versions are tried
    // again, and the pause after that try if it is refused too.
    let mut retry: Option<Duration> = None;
    let mut pause = settings.watch_interval;
    loop {
        let mut waited = Duration::ZERO;
        while waited < settings.watch_interval {
            if stop() {
                if let Err(e) = registry.forget(follows, &report.status.host).await {
                    tracing::warn!("hot swap: removing this host's status report: {e}");
                }
                return;
            }
            tokio::time::sleep(STOP_CHECK).await;
            waited += STOP_CHECK;
        }
        report.since += waited;
        if let Some(left) = retry.map(|left| left.saturating_sub(waited)) {
            retry = Some(left);
            if left.is_zero() {
                tracing::info!("hot swap: trying the refused versions again");
                retry = None;
                seen = None;
            }
        }
        if report.due(partitions_behind()) {
            report.write(registry, follows).await;
        }
        let known = seen.clone().flatten();
        let (active, version) = match registry.active_if_changed(follows, known.as_ref()).await {
            Ok(Some((_, version))) if seen.as_ref() == Some(&version) => continue,
            Ok(Some(changed)) => changed,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("hot swap: reading the active versions: {e}");
                continue;
            }
        };
        let current = chains.borrow().clone();
        match next_chain(pipeline, assembled, &active, &running(&current, &followed)).await {
            Ok(Some(chain)) => {
                tracing::info!(
                    versions = ?running(&chain, &followed),
                    chain = %chain.identity(),
                    "hot swap: new plugin versions loaded; partitions move to them between batches"
                );
                report.status.running = running(&chain, &followed);
                report.status.refused = None;
                crate::telemetry::chain_running(&chain);
                crate::telemetry::metrics::metrics()
                    .plugin_swaps
                    .with_label_values(&["applied"])
                    .inc();
                chains.send_replace(chain);
                report.write(registry, follows).await;
                (retry, pause) = (None, settings.watch_interval);
            }
            Ok(None) => {
                if report.status.refused.take().is_some() {
                    // The active versions went back to the running ones.
                    report.write(registry, follows).await;
                }
                (retry, pause) = (None, settings.watch_interval);
            }
            Err(e) => {
                tracing::error!(
                    "hot swap: the new active versions are not loaded, the running ones stay: {e}"
                );
                crate::telemetry::metrics::metrics()
                    .plugin_swaps
                    .with_label_values(&["refused"])
                    .inc();
                report.status.refused = Some(Refusal {
                    versions: followed
                        .iter()
                        .filter_map(|name| {
                            let version = active.version_of(name)?;
                            Some(((*name).to_owned(), version.to_owned()))
                        })
                        .collect(),
                    reason: e.to_string(),
                    at: jiff::Timestamp::now().to_string(),
                });
                report.write(registry, follows).await;
                retry = Some(pause);
                pause = (pause * 2).min(REFUSED_RETRY_MAX);
            }
        }
        seen = Some(version);
    }
}

/// This host's report, and when it was last written.
struct Report {
    status: HostStatus,
    /// Whether the last write succeeded.
    written: bool,
    /// Time since the last write.
    since: Duration,
}

impl Report {
    fn new(status: HostStatus) -> Self {
        Report {
            status,
            written: false,
            since: Duration::ZERO,
        }
    }

    /// Write it (a failure is logged, not returned: reports are for people,
    /// and the next write may succeed).
    async fn write(&mut self, registry: &Registry, pipeline: &str) {
        self.status.updated_at = jiff::Timestamp::now().to_string();
        self.status.partitions_behind = partitions_behind();
        self.written = match registry.report(pipeline, &self.status).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("hot swap: writing this host's status report: {e}");
                false
            }
        };
        self.since = Duration::ZERO;
    }

    /// Whether to write it at this watch interval, with `behind` partitions
    /// on an older chain now: at each [`HEARTBEAT`]; when the count moved
    /// (reported within one watch interval, not at the next heartbeat); and
    /// when the last write failed (a refusal or a swap it carried would
    /// otherwise go unseen until the next heartbeat).
    fn due(&self, behind: u64) -> bool {
        !self.written || self.since >= HEARTBEAT || behind != self.status.partitions_behind
    }
}

/// This host's partitions still on an older chain than the published one.
fn partitions_behind() -> u64 {
    let behind = crate::telemetry::metrics::metrics()
        .partitions_behind_chain
        .get();
    u64::try_from(behind).unwrap_or(0)
}

/// The chain `active` asks for, checked and tried; `None` when it is the
/// one running (`running`: the followed plugins' versions now).
async fn next_chain(
    pipeline: &Pipeline,
    assembled: &Assembled,
    active: &ActiveVersions,
    running: &BTreeMap<String, String>,
) -> Result<Option<Arc<Chain>>, PipelineError> {
    let mut wanted = BTreeMap::new();
    for name in running.keys() {
        let version = active
            .version_of(name)
            .ok_or_else(|| RegistryError::NotActive {
                pipeline: pipeline
                    .registry
                    .as_ref()
                    .map_or(pipeline.name.clone(), |r| r.pipeline.clone()),
                name: name.clone(),
            })?;
        wanted.insert(name.clone(), version.to_owned());
    }
    if wanted == *running {
        return Ok(None);
    }
    // Compiling takes a core for up to seconds: not on a worker thread the
    // partitions' tasks need.
    let chain = tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current()
            .block_on(load_chain(
                pipeline,
                &assembled.runtime,
                assembled.registry.as_ref(),
                &wanted,
            ))
            .map_err(Box::new)
    })
    .map_err(|e| *e)?;
    let chain = Arc::new(chain);
    // The trial: every stage instantiated and `init`ed with its config.
    drop(chain.start_worker()?);
    Ok(Some(chain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_due_after_a_failed_write_a_heartbeat_or_a_move() {
        let mut report = Report::new(HostStatus {
            host: "h".into(),
            updated_at: String::new(),
            running: BTreeMap::new(),
            refused: None,
            partitions_behind: 0,
        });
        report.written = true;
        assert!(!report.due(0), "written, nothing moved");
        assert!(report.due(2), "partitions fell behind");
        report.since = HEARTBEAT;
        assert!(report.due(0), "a heartbeat passed");
        report.since = Duration::ZERO;
        report.written = false;
        assert!(report.due(0), "the last write failed");
    }
}
