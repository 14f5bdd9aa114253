//! The pipeline file as written: serde structs that mirror the TOML, with
//! `deny_unknown_fields` so a typo is an error, and the defaults of every
//! optional key.

use std::path::PathBuf;

use serde::Deserialize;

use crate::runtime::Limits;
use crate::source::FileFormat;

/// The pipeline file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// `[pipeline]`: identity of the pipeline.
    pub pipeline: PipelineSection,
    /// `[source.*]`: where change events come from.
    pub source: SourceConfig,
    /// `[decode]`: how change events are decoded.
    #[serde(default)]
    pub decode: DecodeConfig,
    /// `[runtime]`: plugin loading and engine settings.
    #[serde(default)]
    pub runtime: RuntimeSection,
    /// `[[stage]]`: the chain, in order.
    #[serde(default, rename = "stage")]
    pub stages: Vec<StageConfig>,
    /// `[output.*]`: where results go.
    pub output: OutputConfig,
    /// `[dead_letter.*]`: where failed records go.
    pub dead_letter: OutputConfig,
    /// `[batching]`: when output objects are cut.
    #[serde(default)]
    pub batching: BatchingConfig,
    /// `[s3]`: how to reach S3 (or an S3-compatible store).
    #[serde(default)]
    pub s3: S3Config,
    /// `[ingest]`: how `weir ingest` publishes events.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// `[event_mode]`: skipping events whose document is unchanged.
    #[serde(default)]
    pub event_mode: EventModeConfig,
    /// `[cache]`: the stage cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// `[registry]`: published plugin versions, for stages that name
    /// `plugin = "name@version"` or `"name@active"`.
    pub registry: Option<RegistryConfig>,
    /// `[telemetry]`: the metrics, health and status page server.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

/// `[telemetry]`: where the host serves `/metrics`, `/healthz`, `/readyz`
/// and its status page (see `docs/operating.md`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Address to listen on, e.g. `"0.0.0.0:9464"` (port 0: any free
    /// port, logged). No server without it.
    pub listen: Option<std::net::SocketAddr>,
}

/// `[registry]`: the plugin registry (see `docs/registry.md`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// A local directory.
    pub dir: Option<PathBuf>,
    /// Or an S3 bucket (with `prefix`), reached with `[s3]`.
    pub bucket: Option<String>,
    /// Key prefix in `bucket`.
    #[serde(default)]
    pub prefix: String,
    /// PEM files of the public keys whose signatures this host trusts. With
    /// any, only versions signed by one of them are loaded or activated.
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    /// Seconds between two reads of the pipeline's active versions by a
    /// running host (default 10).
    #[serde(default = "default_watch_interval_s")]
    pub watch_interval_s: u64,
}

fn default_watch_interval_s() -> u64 {
    10
}

/// `[cache]`: content-addressed stage outputs (see `docs/cache.md`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Look stage outputs up before computing them, and keep them.
    pub enabled: bool,
    /// The memory tier in front of the store, MiB.
    pub memory_mib: u64,
    /// A local directory for the packs (default: `cache/` in the output's
    /// store, beside the pipelines' folders).
    pub dir: Option<PathBuf>,
    /// An S3 bucket for the packs (with `prefix`), instead.
    pub bucket: Option<String>,
    /// Key prefix in `bucket`.
    pub prefix: String,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: false,
            memory_mib: 256,
            dir: None,
            bucket: None,
            prefix: String::new(),
        }
    }
}

/// `[pipeline]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Name used in output keys: letters, digits, `-`, `_`, `.`.
    pub name: String,
}

/// `[source.file]` (one of the variants).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SourceConfig {
    /// Read change events from a local file.
    File(FileSourceConfig),
    /// Consume change events from a Kafka topic.
    Kafka(KafkaSourceConfig),
}

/// `[source.kafka]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap servers; `WEIR_KAFKA_BROKERS` overrides.
    pub brokers: Option<String>,
    /// The topic of change events.
    pub topic: String,
    /// Consumer group: every replica of this pipeline uses the same one.
    pub group: String,
    /// Where a group without committed offsets starts.
    #[serde(default)]
    pub start: StartFrom,
    /// Most messages handed to a partition worker at once.
    #[serde(default)]
    pub max_batch: Option<usize>,
    /// Extra librdkafka properties (security, SASL/SSL, fetch sizes). Values
    /// may reference environment variables as `${NAME}`; values are never
    /// logged.
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
}

/// Where a consumer group without committed offsets starts reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartFrom {
    /// The oldest retained message.
    #[default]
    Earliest,
    /// Only messages produced from now on.
    Latest,
}

/// `[source.file]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// The input file.
    pub path: PathBuf,
    /// `jsonl` or `mediawiki-xml` (a dump, plain or `.bz2`); inferred from
    /// the file name when absent.
    pub format: Option<FileFormat>,
}

/// `[decode]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeConfig {
    /// Bodies larger than this are dead-lettered.
    pub max_body_bytes: usize,
    /// Content type of events that do not state one.
    pub default_content_type: String,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            max_body_bytes: 8 << 20,
            default_content_type: "text/x-wiki".into(),
        }
    }
}

/// `[runtime]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSection {
    /// Directory where `plugin = "name"` resolves to `name.wasm`.
    pub plugin_dir: Option<PathBuf>,
    /// Where compiled plugins are cached (default: the user cache dir).
    pub compiled_cache_dir: Option<PathBuf>,
    /// Default records per plugin call, at most (a stage whose outputs the
    /// cache keeps is called on smaller chunks: `docs/cache.md`).
    pub batch_size: usize,
    /// Upper bound on live plugin instances.
    pub max_instances: u32,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        RuntimeSection {
            plugin_dir: None,
            compiled_cache_dir: None,
            batch_size: 64,
            max_instances: 128,
        }
    }
}

/// `[[stage]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Unique stage name.
    pub name: String,
    /// Plugin: a name in `plugin_dir` (without `.wasm`), a path to a
    /// `.wasm`, or a registry version: `name@version` or `name@active`.
    pub plugin: String,
    /// Retries after a plugin failure.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Records per plugin call, at most (default: `runtime.batch_size`).
    pub batch_size: Option<usize>,
    /// `[stage.limits]`
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `[stage.grants]`
    #[serde(default)]
    pub grants: GrantsConfig,
    /// `[stage.config]`: passed to the plugin's `init` as JSON.
    #[serde(default)]
    pub config: Option<toml::Table>,
    /// Whether this stage's outputs are cached when `[cache]` is enabled
    /// (default: yes, unless it is granted real clocks or randomness).
    pub cache: Option<bool>,
}

fn default_retries() -> u32 {
    2
}

/// `[stage.limits]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Maximum linear memory, MiB.
    pub memory_mb: u64,
    /// Wall-clock budget per plugin call, milliseconds.
    pub deadline_ms: u64,
    /// Fuel budget per plugin call (unset: unmetered).
    pub fuel: Option<u64>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let limits = Limits::default();
        LimitsConfig {
            memory_mb: (limits.max_memory_bytes >> 20) as u64,
            deadline_ms: limits.deadline.as_millis() as u64,
            fuel: None,
        }
    }
}

/// `[stage.grants]`: capabilities beyond the default-deny sandbox.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrantsConfig {
    /// Let the plugin write to the host's stdout/stderr.
    pub inherit_stdio: bool,
    /// Names of host environment variables the plugin may read.
    pub env: Vec<String>,
    /// Host directories mounted read-only.
    pub read_only_dirs: Vec<DirGrant>,
    /// Real clocks instead of a frozen one.
    pub clocks: bool,
    /// Real randomness instead of a deterministic stream.
    pub random: bool,
}

/// One read-only directory mount.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// Directory on the host.
    pub host: PathBuf,
    /// Path the plugin sees.
    pub guest: String,
}

/// `[output.local]` / `[dead_letter.local]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum OutputConfig {
    /// A local directory, same layout as the S3 bucket.
    Local(LocalOutputConfig),
    /// An S3 bucket (and key prefix).
    S3(S3OutputConfig),
    /// A Kafka topic (dead letters only).
    Kafka(KafkaOutputConfig),
}

/// `[output.s3]` / `[dead_letter.s3]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3OutputConfig {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (may be empty).
    #[serde(default)]
    pub prefix: String,
    /// Whether the store supports conditional writes (`If-Match`,
    /// `If-None-Match`; AWS S3 does since 2024). For results, they fence
    /// writers that lost their partition (see `docs/architecture.md`);
    /// turn off only for stores without them.
    #[serde(default = "default_true")]
    pub conditional_writes: bool,
}

fn default_true() -> bool {
    true
}

/// `[dead_letter.kafka]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaOutputConfig {
    /// Topic dead letters are produced to (keyed by input position).
    pub topic: String,
}

/// `[s3]`: connection settings shared by every S3 store of the pipeline.
/// Credentials come from the standard AWS chain (environment, profile, IMDS).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Endpoint of an S3-compatible store; `WEIR_S3_ENDPOINT` overrides;
    /// unset for AWS.
    pub endpoint: Option<String>,
    /// Region; unset: the AWS chain's (`AWS_REGION`), else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`); default: on when an
    /// endpoint is set.
    pub path_style: Option<bool>,
    /// Sign upload bodies (SigV4 over a SHA-256 of every byte); default: only
    /// requests to plain `http://` endpoints. Over HTTPS, TLS guards the
    /// body; `true` for stores that refuse `UNSIGNED-PAYLOAD`.
    pub sign_payloads: Option<bool>,
    /// Longest wait for an answer to one S3 request attempt, in seconds
    /// (default 120): a connection that stopped answering is then retried
    /// instead of holding its partition.
    pub request_timeout_s: Option<u64>,
}

/// `[ingest]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Bodies larger than this are uploaded to S3 and sent by reference.
    pub max_inline_body_bytes: usize,
    /// Bucket for those bodies.
    pub bodies_bucket: Option<String>,
    /// Key prefix for those bodies.
    pub bodies_prefix: String,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_inline_body_bytes: 512 << 10,
            bodies_bucket: None,
            bodies_prefix: "bodies".into(),
        }
    }
}

/// `[output.local]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalOutputConfig {
    /// Root directory of the layout.
    pub dir: PathBuf,
}

/// `[batching]`: an output object is cut when any limit is reached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchingConfig {
    /// Input records per object.
    pub max_records: usize,
    /// Uncompressed bytes per object.
    pub max_bytes: usize,
    /// Age of the oldest buffered record, milliseconds.
    pub max_age_ms: u64,
    /// zstd level of results objects: 1 to 19, or -1 to -7 for zstd's
    /// fast modes (larger objects, less CPU).
    pub zstd_level: i32,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        BatchingConfig {
            max_records: 1000,
            max_bytes: 32 << 20,
            max_age_ms: 5000,
            zstd_level: crate::sink::DEFAULT_ZSTD_LEVEL,
        }
    }
}

/// `[event_mode]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventModeConfig {
    /// Skip events whose document is unchanged (default: on).
    pub enabled: bool,
    /// Where the state lives on this host (default: beside a local output's
    /// results, else in the system's temporary directory).
    pub state_dir: Option<PathBuf>,
    /// Least seconds between two checkpoints of a partition's state (Kafka
    /// sources; 0: at every written batch).
    pub checkpoint_interval_s: u64,
    /// Page cache of one partition's state store, MiB.
    pub cache_mib: usize,
}

impl Default for EventModeConfig {
    fn default() -> Self {
        EventModeConfig {
            enabled: true,
            state_dir: None,
            checkpoint_interval_s: 300,
            cache_mib: 64,
        }
    }
}
