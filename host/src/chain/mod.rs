//! Chains of plugin stages: a stage (plugin version, configuration,
//! limits, grants) and its identity, the chain and its load-time type check
//! (each stage accepts what the previous one produces), lineage, and what
//! happened to each record ([`ChainResult`]).
//!
//! Parts: [`worker`] runs batches of records through a chain (with the
//! stage cache, when there is one); `doc` is a record between two stages
//! (a plugin's output, or a cache entry's not yet rebuilt); `output` is a
//! final output and how a result line embeds it (or the frame it comes
//! as); `tests`.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::digest::Digest;
use crate::media_type;
use crate::runtime::{Grants, Limits, LoadedPlugin, PluginInstance, RuntimeError};

mod doc;
mod output;
mod worker;

pub use output::Output;
pub(crate) use output::OutputBody;
pub use worker::{ChainWorker, Fills, StageWork};

/// One configured stage: a plugin version plus its configuration and limits.
pub struct Stage {
    /// The stage name from the pipeline file (unique within the chain).
    pub name: String,
    /// The plugin version this stage runs.
    pub plugin: Arc<LoadedPlugin>,
    /// The stage configuration as JSON, passed to the plugin's `init`.
    pub config_json: String,
    /// Resource limits of each instance.
    pub limits: Limits,
    /// Capabilities granted to each instance.
    pub grants: Grants,
    /// How often a record is retried after a plugin failure.
    pub retries: u32,
    /// Maximum records per `process` call.
    pub batch_size: usize,
    /// The digest of what the grants let the plugin read (environment
    /// values, read-only files), if anything: see [`Grants::identity`].
    pub grants_identity: Option<Digest>,
    /// Whether the stage's outputs are cached (when the pipeline has a
    /// cache).
    pub cache: bool,
}

impl Stage {
    /// The stage's identity: plugin digest, configuration, and what its
    /// grants let it read. Two stages with the same identity compute the
    /// same function (the cache key prefix; see `cache::key`).
    pub fn identity(&self) -> Digest {
        let plugin = self.plugin.digest().to_string();
        let mut parts = vec![plugin.as_bytes(), self.config_json.as_bytes()];
        if let Some(grants) = &self.grants_identity {
            parts.push(grants.as_bytes());
        }
        Digest::of_parts(&parts)
    }

    fn instantiate(&self) -> Result<PluginInstance, RuntimeError> {
        self.plugin
            .instantiate(&self.limits, &self.grants, &self.config_json)
    }

    fn accepts(&self, content_type: &str) -> bool {
        media_type::any_matches(&self.plugin.info().accepts, content_type)
    }
}

/// Which plugin version (and configuration) touched an output: one entry per
/// stage the record went through.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LineageEntry {
    /// Stage name.
    pub stage: String,
    /// `name@version` the plugin reported.
    pub plugin: String,
    /// sha256 of the plugin component.
    pub digest: Digest,
    /// sha256 of the stage identity (plugin digest + config).
    pub stage_id: Digest,
}

/// A chain that passed the load-time type check.
pub struct Chain {
    stages: Vec<Stage>,
    lineage: Vec<LineageEntry>,
    identity: Digest,
    /// The instances [`Chain::try_stages`] started, one per stage, kept
    /// for the next worker: starting a stage costs milliseconds (the score
    /// plugin reads and hashes its model), and a run that tried its stages
    /// then started them again paid it twice before its first record.
    started: Mutex<Option<Vec<Option<PluginInstance>>>>,
}

/// A stage that does not start (its instance, or its plugin's `init` with
/// the stage's configuration, failed).
#[derive(Debug, thiserror::Error)]
#[error("stage `{name}` does not start: {source}")]
pub struct StageStartError {
    /// The stage's place in the chain (its `[[stage]]` table, from 0).
    pub index: usize,
    /// The stage's name.
    pub name: String,
    /// Why.
    pub source: RuntimeError,
}

/// Problems that make a chain unusable.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A pipeline needs at least one stage.
    #[error("the chain has no stages")]
    Empty,
    /// Stage `next` cannot accept what stage `previous` produces.
    #[error(
        "stage `{next}` accepts {accepts:?} but the previous stage `{previous}` produces {produces:?}"
    )]
    Incompatible {
        /// Index of the stage that cannot take its input.
        index: usize,
        /// The producing stage.
        previous: String,
        /// The consuming stage.
        next: String,
        /// What the producer may emit.
        produces: Vec<String>,
        /// What the consumer accepts.
        accepts: Vec<String>,
    },
}

impl Chain {
    /// Build a chain, checking that every stage may receive what the previous
    /// stage produces. Returns every incompatibility, not just the first.
    pub fn new(stages: Vec<Stage>) -> Result<Self, Vec<ChainError>> {
        if stages.is_empty() {
            return Err(vec![ChainError::Empty]);
        }
        let errors: Vec<ChainError> = stages
            .windows(2)
            .enumerate()
            .filter_map(|(i, pair)| {
                let (previous, next) = (pair[0].plugin.info(), pair[1].plugin.info());
                let fits = previous.produces.iter().all(|produced| {
                    next.accepts
                        .iter()
                        .any(|accepted| media_type::overlap(accepted, produced))
                });
                (!fits).then(|| ChainError::Incompatible {
                    index: i + 1,
                    previous: pair[0].name.clone(),
                    next: pair[1].name.clone(),
                    produces: previous.produces.clone(),
                    accepts: next.accepts.clone(),
                })
            })
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        let lineage = stages
            .iter()
            .map(|s| LineageEntry {
                stage: s.name.clone(),
                plugin: format!("{}@{}", s.plugin.info().name, s.plugin.info().version),
                digest: s.plugin.digest(),
                stage_id: s.identity(),
            })
            .collect::<Vec<_>>();
        let identity = chain_identity(&lineage);
        Ok(Chain {
            stages,
            lineage,
            identity,
            started: Mutex::new(None),
        })
    }

    /// The chain's identity: the identities of all its stages, in order. A
    /// new plugin version or stage configuration gives a new identity, and
    /// event mode then recomputes every document on its next event.
    pub fn identity(&self) -> Digest {
        self.identity
    }

    /// The stages, in order.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// Lineage of an output that went through the first `stages_run` stages.
    pub fn lineage(&self, stages_run: usize) -> &[LineageEntry] {
        &self.lineage[..stages_run]
    }

    /// A new worker, with the instances [`Chain::try_stages`] started if
    /// no worker took them yet, else with new ones.
    pub fn start_worker(self: &Arc<Self>) -> Result<ChainWorker, RuntimeError> {
        let started = self.started.lock().expect("not poisoned").take();
        let instances = match started {
            Some(instances) => instances,
            None => self
                .stages
                .iter()
                .map(|stage| stage.instantiate().map(Some))
                .collect::<Result<_, _>>()?,
        };
        Ok(ChainWorker::new(self.clone(), instances))
    }

    /// Instantiate and `init` each stage once: what every worker of this
    /// chain does first, tried before any record is read, so that a
    /// configuration a plugin refuses stops the command at once, with the
    /// stage named. The instances are kept for the next worker.
    pub fn try_stages(&self) -> Result<(), StageStartError> {
        let instances = self
            .stages
            .iter()
            .enumerate()
            .map(|(index, stage)| {
                stage
                    .instantiate()
                    .map(Some)
                    .map_err(|source| StageStartError {
                        index,
                        name: stage.name.clone(),
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        *self.started.lock().expect("not poisoned") = Some(instances);
        Ok(())
    }

    /// The identity of stage `index` (see [`Stage::identity`]), computed
    /// once when the chain was built.
    pub fn stage_id(&self, index: usize) -> Digest {
        self.lineage[index].stage_id
    }

    /// The identities of the stages whose outputs are cached.
    pub fn cached_stages(&self) -> Vec<Digest> {
        self.stages
            .iter()
            .zip(&self.lineage)
            .filter(|(stage, _)| stage.cache)
            .map(|(_, entry)| entry.stage_id)
            .collect()
    }
}

/// The digest of the stage identities, in chain order.
fn chain_identity(lineage: &[LineageEntry]) -> Digest {
    let parts: Vec<&[u8]> = lineage
        .iter()
        .map(|entry| entry.stage_id.as_bytes().as_slice())
        .collect();
    Digest::of_parts(&parts)
}

/// What happened to one input record.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainResult {
    /// The record went through `stages_run` stages and produced `outputs`
    /// (`stages_run` is less than the chain length when a stage emitted no
    /// output for it: filtered out).
    Done {
        /// The final outputs (possibly none).
        outputs: Vec<Output>,
        /// How many stages the record went through.
        stages_run: usize,
    },
    /// The record failed at one stage; it goes to the dead letters.
    Failed(StageFailure),
}

/// Why a record failed, with everything a dead letter needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageFailure {
    /// The stage name.
    pub stage: String,
    /// `name@version` of the plugin.
    pub plugin: String,
    /// The plugin component's digest.
    pub digest: Digest,
    /// The category of failure.
    pub kind: FailureKind,
    /// A human-readable explanation.
    pub reason: String,
    /// How many times the record was tried at this stage.
    pub attempts: u32,
}

/// Categories of per-record failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The plugin (or the chain's content-type check) rejected the input.
    BadInput,
    /// The plugin kept failing after its retries.
    PluginFailure,
    /// The instance trapped on this record (deadline, memory, fuel, panic).
    Trap,
    /// The plugin broke the contract (wrong outcome count, undeclared
    /// output content type).
    Contract,
}

#[cfg(test)]
mod tests;
