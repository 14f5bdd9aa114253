//! Assembling a validated [`Pipeline`] into running parts (runtime, chain,
//! sink) and running it over a local file.
//!
//! This is the only place that knows how configuration maps onto the other
//! modules; sources, chain and sink know nothing of the pipeline file.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::bodies::BodyStore;
use crate::cache::StageCache;
use crate::chain::{Chain, ChainError, Stage};
use crate::config::{
    Cache, DeadLetterOutput, EventMode, Pipeline, PluginSource, Source, StoreOutput,
};
use crate::dlq::DeadLetterSink;
use crate::partition::{PartitionWorker, Stats, WorkerError};
use crate::registry::{Registry, RegistryError, Trust};
use crate::runtime::{LoadedPlugin, Runtime, RuntimeError, RuntimeOptions};
use crate::sink::Sink;
use crate::source::read_ahead::ReadAhead;
use crate::source::{FileSource, SourceError};
use crate::state::PartitionState;
use crate::storage::ObjectStore;

/// Problems assembling or running a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The engine or a plugin could not be loaded.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The stages do not fit together.
    #[error("the chain is not valid:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Chain(Vec<ChainError>),
    /// The input could not be read.
    #[error(transparent)]
    Input(#[from] SourceError),
    /// The input is not the file the output's earlier results came from.
    #[error(transparent)]
    Fingerprint(#[from] crate::source::fingerprint::FingerprintError),
    /// A worker stopped.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// A Kafka client could not be created.
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A plugin could not be had from the registry.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The Kafka host stopped with an error.
    #[error(transparent)]
    KafkaHost(#[from] crate::kafka::HostError),
    /// What a stage's grants let it read could not be read (to compute the
    /// stage's identity).
    #[error("stage `{stage}`: reading its granted directories")]
    Grants {
        /// The stage.
        stage: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The running parts of a pipeline.
pub struct Assembled {
    /// The engine (keeps the epoch thread alive).
    pub runtime: Runtime,
    /// The validated chain.
    pub chain: Arc<Chain>,
    /// The output writer.
    pub sink: Arc<Sink>,
    /// Fetcher of bodies sent by reference (connecting to S3 when first
    /// needed, if nothing else uses S3).
    pub bodies: BodyStore,
    /// The S3 client, when the pipeline uses S3.
    pub s3: Option<aws_sdk_s3::Client>,
    /// The stage cache, when the pipeline has one.
    pub cache: Option<Arc<StageCache>>,
    /// The plugin registry and whom it trusts, when the pipeline has one.
    pub registry: Option<(Registry, Trust)>,
}

/// Load every plugin (once per distinct plugin), check the chain, open the
/// stores.
pub async fn assemble(pipeline: &Pipeline) -> Result<Assembled, PipelineError> {
    let runtime = runtime_for(pipeline)?;
    // S3 is needed for S3 outputs and registries, and by Kafka sources for
    // bodies sent by reference.
    let is_s3 = |store: &StoreOutput| matches!(store, StoreOutput::S3 { .. });
    let uses_s3 = is_s3(&pipeline.output)
        || matches!(&pipeline.dead_letter, DeadLetterOutput::Store(store) if is_s3(store))
        || matches!(&pipeline.cache, Cache::On { store, .. } if is_s3(store))
        || matches!(&pipeline.registry, Some(registry) if is_s3(&registry.store))
        || matches!(pipeline.source, Source::Kafka(_));
    let s3 = if uses_s3 {
        Some(crate::storage::s3_client(&pipeline.s3).await)
    } else {
        None
    };
    let registry = registry_of(pipeline, s3.as_ref());
    let chain =
        Arc::new(load_chain(pipeline, &runtime, registry.as_ref(), &BTreeMap::new()).await?);
    let mut sink = sink_under(pipeline, &pipeline.name, s3.as_ref())?;
    if let StoreOutput::S3 {
        conditional_writes: true,
        ..
    } = &pipeline.output
    {
        sink = sink.with_fencing(lease_owner());
    }
    let sink = Arc::new(sink);
    let cache = match &pipeline.cache {
        Cache::Off => None,
        Cache::On {
            store,
            memory_bytes,
        } => Some(Arc::new(
            StageCache::new(object_store(store, s3.as_ref()), *memory_bytes)
                .with_frame_level(pipeline.batching.zstd_level),
        )),
    };
    Ok(Assembled {
        runtime,
        chain,
        sink,
        bodies: match &s3 {
            Some(client) => BodyStore::new(client.clone()),
            None => BodyStore::when_needed(pipeline.s3.clone()),
        },
        s3,
        cache,
        registry,
    })
}

/// A writer of results and dead letters to `pipeline`'s destinations, with
/// keys under `name` (the pipeline's name, or a folder of its own such as a
/// redrive's).
pub(crate) fn sink_under(
    pipeline: &Pipeline,
    name: &str,
    s3: Option<&aws_sdk_s3::Client>,
) -> Result<Sink, rdkafka::error::KafkaError> {
    let results = object_store(&pipeline.output, s3);
    let dead_letters = match &pipeline.dead_letter {
        DeadLetterOutput::Kafka { topic } => {
            let Source::Kafka(kafka) = &pipeline.source else {
                unreachable!("validation allows Kafka dead letters only with a Kafka source")
            };
            DeadLetterSink::Kafka {
                producer: crate::kafka::clients::producer_config(kafka).create()?,
                topic: topic.clone(),
            }
        }
        DeadLetterOutput::Store(store) => DeadLetterSink::Store(object_store(store, s3)),
    };
    Ok(Sink::new(name, results, dead_letters).with_zstd_level(pipeline.batching.zstd_level))
}

/// An S3 client if any of `stores` is in S3.
pub(crate) async fn s3_for(
    pipeline: &Pipeline,
    stores: &[&StoreOutput],
) -> Option<aws_sdk_s3::Client> {
    if stores.iter().any(|s| matches!(s, StoreOutput::S3 { .. })) {
        Some(crate::storage::s3_client(&pipeline.s3).await)
    } else {
        None
    }
}

/// The engine for `pipeline`'s stages (sized for the largest memory limit,
/// with fuel if any stage meters it).
pub fn runtime_for(pipeline: &Pipeline) -> Result<Runtime, RuntimeError> {
    Runtime::new(&RuntimeOptions {
        compiled_cache_dir: pipeline.runtime.compiled_cache_dir.clone(),
        max_instances: pipeline.runtime.max_instances,
        max_memory_bytes: pipeline
            .stages
            .iter()
            .map(|s| s.limits.max_memory_bytes)
            .max()
            .unwrap_or(0)
            .max(RuntimeOptions::default().max_memory_bytes),
        fuel: pipeline.stages.iter().any(|s| s.limits.fuel.is_some()),
        ..RuntimeOptions::default()
    })
}

/// The pipeline's registry and whom it trusts, if it has one.
pub fn registry_of(
    pipeline: &Pipeline,
    s3: Option<&aws_sdk_s3::Client>,
) -> Option<(Registry, Trust)> {
    pipeline.registry.as_ref().map(|settings| {
        (
            Registry::new(object_store(&settings.store, s3)),
            settings.trust.clone(),
        )
    })
}

/// Load every stage's plugin (once per distinct plugin: file, or registry
/// version) into `runtime` and check that the stages fit together.
/// `pinned` gives the version of a registry plugin instead of the
/// pipeline's active one (what `weir plugin activate` checks before it
/// activates).
pub async fn load_chain(
    pipeline: &Pipeline,
    runtime: &Runtime,
    registry: Option<&(Registry, Trust)>,
    pinned: &BTreeMap<String, String>,
) -> Result<Chain, PipelineError> {
    let mut loaded: HashMap<String, Arc<LoadedPlugin>> = HashMap::new();
    let mut stages = Vec::with_capacity(pipeline.stages.len());
    let follows = pipeline
        .registry
        .as_ref()
        .map_or(pipeline.name.as_str(), |r| r.pipeline.as_str());
    for settings in &pipeline.stages {
        let (key, source) = match &settings.plugin {
            PluginSource::File(path) => (format!("file {}", path.display()), None),
            PluginSource::Registry { name, version } => {
                let (registry, trust) =
                    registry.expect("validation requires [registry] for registry plugins");
                let version = match pinned.get(name) {
                    Some(pinned) => pinned.clone(),
                    None => registry.resolve(follows, name, version).await?,
                };
                let key = format!("registry {name}@{version}");
                (key, Some((registry, trust, name, version)))
            }
        };
        let plugin = match loaded.get(&key) {
            Some(plugin) => plugin.clone(),
            None => {
                let plugin = Arc::new(match (&settings.plugin, source) {
                    (_, Some((registry, trust, name, version))) => {
                        let (manifest, bytes) = registry.fetch(name, &version, trust).await?;
                        runtime.load(&manifest.label(), &bytes)?
                    }
                    (PluginSource::File(path), None) => runtime.load_file(path)?,
                    (PluginSource::Registry { .. }, None) => {
                        unreachable!("registry plugins are resolved above")
                    }
                });
                tracing::info!(
                    stage = %settings.name,
                    plugin = plugin.label(),
                    compiled = ?plugin.compiled_from(),
                    "plugin loaded"
                );
                loaded.insert(key, plugin.clone());
                plugin
            }
        };
        let grants_identity =
            settings
                .grants
                .identity()
                .map_err(|source| PipelineError::Grants {
                    stage: settings.name.clone(),
                    source,
                })?;
        stages.push(Stage {
            name: settings.name.clone(),
            plugin,
            config_json: settings.config_json.clone(),
            limits: settings.limits.clone(),
            grants: settings.grants.clone(),
            retries: settings.retries,
            batch_size: settings.batch_size,
            grants_identity,
            cache: settings.cache,
        });
    }
    Chain::new(stages).map_err(PipelineError::Chain)
}

impl Assembled {
    /// What a Kafka host's partition workers are made of, in `event_mode`,
    /// following the chains published on `chains`.
    pub(crate) fn worker_parts(
        &self,
        pipeline: &Pipeline,
        kafka: &crate::config::KafkaSettings,
        event_mode: EventMode,
        chains: tokio::sync::watch::Receiver<Arc<Chain>>,
    ) -> crate::kafka::WorkerParts {
        crate::kafka::WorkerParts {
            chains,
            sink: self.sink.clone(),
            decode: pipeline.decode.clone(),
            batching: pipeline.batching.clone(),
            bodies: self.bodies.clone(),
            max_batch: kafka.max_batch,
            event_mode,
            cache: self.cache.clone(),
        }
    }
}

pub(crate) fn object_store(output: &StoreOutput, s3: Option<&aws_sdk_s3::Client>) -> ObjectStore {
    match output {
        StoreOutput::Local { dir } => ObjectStore::local(dir),
        StoreOutput::S3 { bucket, prefix, .. } => ObjectStore::s3(
            s3.expect("an S3 client for S3 outputs").clone(),
            bucket,
            prefix,
        ),
    }
}

/// Who this process is in the partitions' leases: host name and process
/// id, for people reading a lease object.
pub(crate) fn lease_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".to_owned());
    format!("{host} pid {}", std::process::id())
}

/// The outcome of a finished run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// What was processed.
    pub stats: Stats,
    /// Wall time.
    pub elapsed: Duration,
    /// Where results went.
    pub results_location: String,
    /// Where dead letters went.
    pub dead_letters_location: String,
}

/// What each stage of `chain` did, one line per stage in chain order: cache
/// hits and misses and the records its plugin processed (for `weir run`
/// and `weir replay`).
pub fn stage_lines(stats: &Stats, chain: &Chain) -> Vec<String> {
    chain
        .stages()
        .iter()
        .map(|stage| {
            let work = stats.stages.get(&stage.name).copied().unwrap_or_default();
            format!(
                "stage {}: {} cache hits, {} misses, {} records computed by the plugin",
                stage.name, work.cache_hits, work.cache_misses, work.plugin_records
            )
        })
        .collect()
}

impl RunSummary {
    /// The one-line summary `weir run` prints.
    pub fn line(&self) -> String {
        let s = &self.stats;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "{} records in ({:.1} MB): {} results ({} outputs), {} tombstones, {} dead-lettered, \
             {} unchanged, {} stale, {} already written; {:.2} s, {:.0} records/s, {:.1} MB/s; \
             results: {}, dead letters: {}",
            s.records,
            s.bytes as f64 / 1e6,
            s.results,
            s.outputs,
            s.tombstones,
            s.dead_letters,
            s.skipped_unchanged,
            s.skipped_stale,
            s.redelivered,
            secs,
            s.records as f64 / secs,
            s.bytes as f64 / 1e6 / secs,
            self.results_location,
            self.dead_letters_location,
        )
    }
}

/// Start each stage of the chain once, before any record: a `[stage.config]`
/// its plugin's `init` refuses is reported at that table of the pipeline
/// file `config` (`weir validate` passes only a pipeline that starts).
pub fn try_stages(
    config: &std::path::Path,
    assembled: &Assembled,
) -> Result<(), crate::config::ConfigError> {
    assembled
        .chain
        .try_stages()
        .map_err(|e| stage_refused(config, &e))
}

/// A stage that does not start, as a problem at its `[stage.config]` table
/// of the pipeline file `config`.
pub fn stage_refused(
    config: &std::path::Path,
    error: &crate::chain::StageStartError,
) -> crate::config::ConfigError {
    crate::config::problem_at(
        config,
        &format!("stage[{}].config", error.index),
        error.to_string(),
    )
}

/// Run a file-sourced pipeline to the end of its input.
pub async fn run_file(
    pipeline: &Pipeline,
    assembled: &Assembled,
) -> Result<RunSummary, PipelineError> {
    let started = Instant::now();
    let Source::File { path, format } = &pipeline.source else {
        unreachable!("run_file is called for file sources")
    };
    let mut source = FileSource::open(path, *format)?.limit_lines(&pipeline.decode);
    let topic = crate::source::file::topic_for(path);
    // Before anything is adopted or written: the output's earlier results
    // must be of this file (or of the start of it).
    let lines = source.reads_plain_lines();
    let claimed = crate::source::fingerprint::claim(&assembled.sink, path, &topic, lines).await?;
    if let (true, Some(size)) = (lines, claimed) {
        source = source.read_only(size);
    }
    let mut worker = PartitionWorker::new(
        assembled.chain.start_worker()?,
        assembled.sink.clone(),
        pipeline.decode.clone(),
        pipeline.batching.clone(),
        &topic,
        0,
    );
    worker = worker.with_bodies(assembled.bodies.clone());
    if let Some(cache) = &assembled.cache {
        worker = worker.with_cache(cache.clone());
    }
    if let EventMode::On(settings) = &pipeline.event_mode {
        // One store for every input file of the pipeline: a second file
        // with the same documents recomputes only those that changed.
        let state = PartitionState::local(&settings.state_dir, settings.cache_bytes, &topic, 0)
            .map_err(WorkerError::from)?;
        worker = worker.with_state(state);
    }
    // A rerun into the same output adopts what an earlier run wrote (also
    // with other batching, or cut at other times), so every record still
    // has exactly one result line; only what is missing is processed.
    worker.resume(0).await?;
    let batch_size = pipeline
        .stages
        .iter()
        .map(|s| s.batch_size)
        .max()
        .unwrap_or(64);
    // The next batches are read (a dump's XML parsed) while this one runs.
    let mut source = ReadAhead::start(source, batch_size).map_err(|e| SourceError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    loop {
        let messages = source.next_batch().await?;
        if messages.is_empty() {
            break;
        }
        worker.process(messages).await?;
    }
    worker.finish().await?;
    if let Some(cache) = &assembled.cache {
        cache.flush().await;
    }
    Ok(RunSummary {
        stats: worker.stats().clone(),
        elapsed: started.elapsed(),
        results_location: assembled.sink.describe_results(),
        dead_letters_location: assembled.sink.describe_dead_letters(),
    })
}

/// Run a Kafka-sourced pipeline until `shutdown` is set (by a signal), then
/// finish, commit and summarise.
pub async fn run_stream(
    pipeline: &Pipeline,
    assembled: &Assembled,
    shutdown: Arc<AtomicBool>,
) -> Result<RunSummary, PipelineError> {
    let Source::Kafka(kafka) = &pipeline.source else {
        unreachable!("run_stream is called for Kafka sources")
    };
    let (publish, chains) = tokio::sync::watch::channel(assembled.chain.clone());
    let parts = assembled.worker_parts(pipeline, kafka, pipeline.event_mode.clone(), chains);
    // The watcher stops with the host, whether a stop signal or an error
    // ended it (else a failed host would wait on its watcher forever).
    let host_done = AtomicBool::new(false);
    let host = async {
        let summary = crate::kafka::run(kafka, parts, shutdown.clone()).await;
        host_done.store(true, Ordering::SeqCst);
        summary
    };
    let stop = || shutdown.load(Ordering::SeqCst) || host_done.load(Ordering::SeqCst);
    let (summary, ()) = tokio::join!(
        host,
        crate::hot_swap::follow(pipeline, assembled, publish, &stop),
    );
    let summary = summary?;
    if let Some(cache) = &assembled.cache {
        cache.flush().await;
    }
    Ok(RunSummary {
        stats: summary.stats,
        elapsed: summary.elapsed,
        results_location: assembled.sink.describe_results(),
        dead_letters_location: assembled.sink.describe_dead_letters(),
    })
}
