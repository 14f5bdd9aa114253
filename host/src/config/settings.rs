//! The validated pipeline: typed settings with paths resolved and limits
//! checked, which is all the rest of the host ever sees of the file.

use std::fmt;
use std::path::PathBuf;

use super::file::{BatchingConfig, DecodeConfig, StartFrom, TelemetryConfig};
use crate::registry::{Trust, VersionRef};
use crate::runtime::{Grants, Limits};
use crate::source::FileFormat;

/// A validated pipeline, with paths resolved and limits typed.
#[derive(Debug)]
pub struct Pipeline {
    /// Pipeline name (safe for object keys).
    pub name: String,
    /// The source.
    pub source: Source,
    /// Decoding settings.
    pub decode: DecodeConfig,
    /// Engine settings.
    pub runtime: RuntimeSettings,
    /// The stages, in order.
    pub stages: Vec<StageSettings>,
    /// Where results go.
    pub output: StoreOutput,
    /// Where dead letters go.
    pub dead_letter: DeadLetterOutput,
    /// Object cutting.
    pub batching: BatchingConfig,
    /// S3 connection.
    pub s3: S3Settings,
    /// `weir ingest` settings.
    pub ingest: IngestSettings,
    /// Event mode.
    pub event_mode: EventMode,
    /// The stage cache.
    pub cache: Cache,
    /// The plugin registry.
    pub registry: Option<RegistrySettings>,
    /// The metrics, health and status page server.
    pub telemetry: TelemetryConfig,
}

/// Validated `[registry]`.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// The pipeline whose active versions `name@active` stages run: this
    /// one's (a shadow run keeps the live pipeline's).
    pub pipeline: String,
    /// Where it is.
    pub store: StoreOutput,
    /// Whose signatures are accepted.
    pub trust: Trust,
    /// How often a running host reads the active versions.
    pub watch_interval: std::time::Duration,
}

/// Where a stage's plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A component file.
    File(PathBuf),
    /// A version in the registry.
    Registry {
        /// The plugin's name.
        name: String,
        /// Which version.
        version: VersionRef,
    },
}

/// Validated `[cache]`.
#[derive(Debug, Clone)]
pub enum Cache {
    /// Every stage computes every record.
    Off,
    /// Cached stages look their outputs up first.
    On {
        /// Where the packs are.
        store: StoreOutput,
        /// The memory tier, bytes.
        memory_bytes: u64,
    },
}

/// Validated `[event_mode]`.
#[derive(Debug, Clone)]
pub enum EventMode {
    /// Every event is processed.
    Off,
    /// Events whose document is unchanged are skipped.
    On(EventModeSettings),
}

/// Where and how event mode keeps its state.
#[derive(Debug, Clone)]
pub struct EventModeSettings {
    /// The host's state directory.
    pub state_dir: PathBuf,
    /// Least time between two checkpoints of a partition.
    pub checkpoint_every: std::time::Duration,
    /// Page cache of one store, bytes.
    pub cache_bytes: usize,
}

/// Validated `[s3]`.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// Endpoint override (S3-compatible stores).
    pub endpoint: Option<String>,
    /// Region override.
    pub region: Option<String>,
    /// Path-style addressing.
    pub path_style: bool,
    /// Sign upload bodies (SigV4): always, never (`UNSIGNED-PAYLOAD`), or
    /// (`None`) only over plain HTTP, judged per request.
    pub sign_payloads: Option<bool>,
    /// Longest wait for one request attempt's answer (upload included).
    pub request_timeout: std::time::Duration,
}

/// `[s3]`'s defaults (no endpoint, region or addressing override).
impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            endpoint: None,
            region: None,
            path_style: false,
            sign_payloads: None,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl S3Settings {
    /// `[s3] request_timeout_s` when absent.
    pub const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
}

/// Validated `[ingest]`.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Inline body limit.
    pub max_inline_body_bytes: usize,
    /// Where larger bodies go: (bucket, prefix).
    pub bodies: Option<(String, String)>,
}

/// A validated source.
#[derive(Debug, Clone)]
pub enum Source {
    /// A local file.
    File {
        /// Absolute or pipeline-relative-resolved path.
        path: PathBuf,
        /// Its format.
        format: FileFormat,
    },
    /// A Kafka topic.
    Kafka(KafkaSettings),
}

/// Validated `[source.kafka]`.
#[derive(Clone)]
pub struct KafkaSettings {
    /// Bootstrap servers.
    pub brokers: String,
    /// Topic.
    pub topic: String,
    /// Consumer group.
    pub group: String,
    /// Start of a new group.
    pub start: StartFrom,
    /// Messages per worker hand-off.
    pub max_batch: usize,
    /// librdkafka properties, with `${NAME}` already expanded.
    pub properties: Vec<(String, String)>,
}

impl fmt::Debug for KafkaSettings {
    // Property values may be secrets (SASL passwords): show only the keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("group", &self.group)
            .field("start", &self.start)
            .field("max_batch", &self.max_batch)
            .field(
                "properties",
                &self.properties.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Validated `[runtime]`.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Where compiled artifacts are cached.
    pub compiled_cache_dir: Option<PathBuf>,
    /// Upper bound on live instances.
    pub max_instances: u32,
}

/// A validated stage.
#[derive(Debug, Clone)]
pub struct StageSettings {
    /// Unique name.
    pub name: String,
    /// Where the plugin comes from.
    pub plugin: PluginSource,
    /// Retries after plugin failures.
    pub retries: u32,
    /// Records per call.
    pub batch_size: usize,
    /// Limits per instance.
    pub limits: Limits,
    /// Grants per instance.
    pub grants: Grants,
    /// Configuration as JSON (`{}` when none).
    pub config_json: String,
    /// Whether its outputs are cached (when the pipeline has a cache).
    pub cache: bool,
}

/// A validated object destination (results, or dead letters next to them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOutput {
    /// A local directory.
    Local {
        /// Root of the layout.
        dir: PathBuf,
    },
    /// An S3 bucket and key prefix.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key prefix (empty or without trailing `/`).
        prefix: String,
        /// Whether the store supports conditional writes.
        conditional_writes: bool,
    },
}

impl StoreOutput {
    /// Whether the store takes conditional writes (`If-Match`,
    /// `If-None-Match`): a local directory does, S3 unless configured
    /// without them.
    pub fn conditional_writes(&self) -> bool {
        match self {
            StoreOutput::Local { .. } => true,
            StoreOutput::S3 {
                conditional_writes, ..
            } => *conditional_writes,
        }
    }
}

/// A validated dead-letter destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterOutput {
    /// Objects in a store, next to the results.
    Store(StoreOutput),
    /// A Kafka topic on the source's cluster (only with a Kafka source).
    Kafka {
        /// Topic.
        topic: String,
    },
}
