//! The pipeline file (TOML): its serde structs, and their validation into a
//! typed [`Pipeline`] before anything starts.
//!
//! Invariants: unknown keys are errors (`deny_unknown_fields`), so a typo is
//! reported instead of silently ignored; [`load`] returns either a fully
//! valid `Pipeline` or every problem found, each with the key path and the
//! line and column in the file where it can be fixed. Relative paths are
//! resolved against the pipeline file's directory.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::runtime::{Grants, Limits};
pub use crate::source::FileFormat;

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
    /// Default records per plugin call.
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
    /// Plugin: a name in `plugin_dir` (without `.wasm`) or a path to a `.wasm`.
    pub plugin: String,
    /// Retries after a plugin failure.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Records per plugin call (default: `runtime.batch_size`).
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
}

impl Default for BatchingConfig {
    fn default() -> Self {
        BatchingConfig {
            max_records: 1000,
            max_bytes: 32 << 20,
            max_age_ms: 5000,
        }
    }
}

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
    pub output: Output,
    /// Where dead letters go.
    pub dead_letter: Output,
    /// Object cutting.
    pub batching: BatchingConfig,
    /// S3 connection.
    pub s3: S3Settings,
    /// `weir ingest` settings.
    pub ingest: IngestSettings,
}

/// Validated `[s3]`.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// Endpoint override (S3-compatible stores).
    pub endpoint: Option<String>,
    /// Region override.
    pub region: Option<String>,
    /// Path-style addressing.
    pub path_style: bool,
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
    /// The component file.
    pub plugin_path: PathBuf,
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
}

/// A validated output destination.
#[derive(Debug, Clone)]
pub enum Output {
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
    },
    /// A Kafka topic (dead letters only).
    Kafka {
        /// Topic.
        topic: String,
    },
}

/// One thing wrong with a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `stage[1].limits.deadline_ms`.
    pub key: String,
    /// 1-based line and column of that key in the file, when known.
    pub location: Option<(usize, usize)>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some((line, column)) => write!(
                f,
                "line {line}, column {column}: `{}`: {}",
                self.key, self.message
            ),
            None => write!(f, "`{}`: {}", self.key, self.message),
        }
    }
}

/// A pipeline file that could not be loaded: every problem found.
#[derive(Debug, thiserror::Error)]
#[error("{} has {} problem(s):\n{}", path.display(), problems.len(), render(problems))]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// Every problem, in file order where known.
    pub problems: Vec<Problem>,
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Read, parse and validate a pipeline file.
pub fn load(path: &Path) -> Result<Pipeline, ConfigError> {
    let fail = |problems| ConfigError {
        path: path.to_owned(),
        problems,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(vec![Problem {
            key: String::new(),
            location: None,
            message: format!("cannot read the file: {e}"),
        }])
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base).map_err(fail)
}

/// A problem found after loading (e.g. against the broker), at `key` of
/// the pipeline file `path`: located in the file when the key is written
/// there.
pub fn problem_at(path: &Path, key: &str, message: String) -> ConfigError {
    let location = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| locate(&text, key));
    ConfigError {
        path: path.to_owned(),
        problems: vec![Problem {
            key: key.to_owned(),
            location,
            message,
        }],
    }
}

/// `base` joined with `relative`, with `.` and `..` resolved lexically so
/// paths in messages read naturally (`out`, not `examples/wiki/../../out`).
fn resolve(base: &Path, relative: &Path) -> PathBuf {
    path_clean::clean(base.join(relative))
}

/// Parse and validate pipeline text; relative paths resolve against `base`.
pub fn parse(text: &str, base: &Path) -> Result<Pipeline, Vec<Problem>> {
    let file: PipelineFile = toml::from_str(text).map_err(|e| {
        vec![Problem {
            key: String::new(),
            location: e.span().map(|span| line_column(text, span.start)),
            message: e.message().to_owned(),
        }]
    })?;
    let mut problems = Vec::new();
    let pipeline = validate(file, base, &mut problems);
    if problems.is_empty() {
        Ok(pipeline)
    } else {
        for problem in &mut problems {
            problem.location = locate(text, &problem.key);
        }
        problems.sort_by_key(|p| p.location);
        Err(problems)
    }
}

/// Collects problems while validating.
struct Checker<'a> {
    problems: &'a mut Vec<Problem>,
}

impl Checker<'_> {
    fn check(&mut self, ok: bool, key: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.problems.push(Problem {
                key: key.into(),
                location: None,
                message: message.into(),
            });
        }
    }
}

fn validate(file: PipelineFile, base: &Path, problems: &mut Vec<Problem>) -> Pipeline {
    let mut c = Checker { problems };
    let name = file.pipeline.name;
    c.check(
        !name.is_empty()
            && name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)),
        "pipeline.name",
        "use only ASCII letters, digits, `-`, `_` and `.` (it becomes part of object keys)",
    );
    let source = validate_source(file.source, base, &mut c);
    c.check(
        file.decode.max_body_bytes > 0,
        "decode.max_body_bytes",
        "must be positive",
    );

    let plugin_dir = file.runtime.plugin_dir.as_ref().map(|d| resolve(base, d));
    c.check(
        file.runtime.batch_size > 0,
        "runtime.batch_size",
        "must be positive",
    );
    c.check(
        file.runtime.max_instances > 0,
        "runtime.max_instances",
        "must be positive",
    );
    let runtime = RuntimeSettings {
        compiled_cache_dir: file
            .runtime
            .compiled_cache_dir
            .map(|d| resolve(base, &d))
            .or_else(default_compiled_cache_dir),
        max_instances: file.runtime.max_instances,
    };

    c.check(
        !file.stages.is_empty(),
        "stage",
        "a pipeline needs at least one [[stage]]",
    );
    let mut names = BTreeSet::new();
    let stages = file
        .stages
        .into_iter()
        .enumerate()
        .map(|(i, stage)| {
            c.check(
                names.insert(stage.name.clone()),
                format!("stage[{i}].name"),
                format!("stage name `{}` is used twice", stage.name),
            );
            validate_stage(
                i,
                stage,
                plugin_dir.as_deref(),
                file.runtime.batch_size,
                base,
                &mut c,
            )
        })
        .collect();

    let output = validate_output(file.output, base);
    c.check(
        !matches!(output, Output::Kafka { .. }),
        "output",
        "results go to [output.local] or [output.s3]; Kafka is for dead letters only",
    );
    let dead_letter = validate_output(file.dead_letter, base);
    let kafka_dead_letters = matches!(dead_letter, Output::Kafka { .. });
    c.check(
        !kafka_dead_letters || matches!(source, Source::Kafka(_)),
        "dead_letter.kafka",
        "dead letters go to Kafka only when the source is Kafka (its brokers are used)",
    );
    let s3 = S3Settings {
        endpoint: std::env::var("WEIR_S3_ENDPOINT").ok().or(file.s3.endpoint),
        region: file.s3.region,
        path_style: false,
    };
    let s3 = S3Settings {
        path_style: file.s3.path_style.unwrap_or(s3.endpoint.is_some()),
        ..s3
    };
    c.check(
        file.ingest.max_inline_body_bytes > 0,
        "ingest.max_inline_body_bytes",
        "must be positive",
    );
    let ingest = IngestSettings {
        max_inline_body_bytes: file.ingest.max_inline_body_bytes,
        bodies: file.ingest.bodies_bucket.map(|bucket| {
            (
                bucket,
                file.ingest.bodies_prefix.trim_matches('/').to_owned(),
            )
        }),
    };
    let b = &file.batching;
    c.check(
        b.max_records > 0,
        "batching.max_records",
        "must be positive",
    );
    c.check(b.max_bytes > 0, "batching.max_bytes", "must be positive");
    c.check(b.max_age_ms > 0, "batching.max_age_ms", "must be positive");
    Pipeline {
        name,
        source,
        decode: file.decode,
        runtime,
        stages,
        output,
        dead_letter,
        batching: file.batching,
        s3,
        ingest,
    }
}

fn validate_source(source: SourceConfig, base: &Path, c: &mut Checker<'_>) -> Source {
    match source {
        SourceConfig::File(file) => {
            let path = resolve(base, &file.path);
            c.check(
                path.is_file(),
                "source.file.path",
                format!("no such file: {}", path.display()),
            );
            let format = file.format.unwrap_or_else(|| FileFormat::from_path(&path));
            Source::File { path, format }
        }
        SourceConfig::Kafka(kafka) => {
            let brokers = std::env::var("WEIR_KAFKA_BROKERS").ok().or(kafka.brokers);
            c.check(
                brokers.is_some(),
                "source.kafka.brokers",
                "set `brokers` or the WEIR_KAFKA_BROKERS environment variable",
            );
            c.check(
                !kafka.topic.is_empty(),
                "source.kafka.topic",
                "must not be empty",
            );
            c.check(
                !kafka.group.is_empty(),
                "source.kafka.group",
                "must not be empty",
            );
            let max_batch = kafka.max_batch.unwrap_or(64);
            c.check(max_batch > 0, "source.kafka.max_batch", "must be positive");
            for key in kafka.properties.keys() {
                c.check(
                    !crate::kafka::clients::HOST_OWNED_PROPERTIES.contains(&key.as_str()),
                    format!("source.kafka.properties.{key}"),
                    "is set by the host (offsets are committed only after results are \
                     durable; the group is `source.kafka.group`; dead letters are produced \
                     with acks=all and idempotence) and cannot be overridden",
                );
            }
            let properties = kafka
                .properties
                .into_iter()
                .map(|(key, value)| match expand_env(&value) {
                    Ok(value) => (key, value),
                    Err(missing) => {
                        c.check(
                            false,
                            format!("source.kafka.properties.{key}"),
                            format!("environment variable `{missing}` is not set"),
                        );
                        (key, String::new())
                    }
                })
                .collect();
            Source::Kafka(KafkaSettings {
                brokers: brokers.unwrap_or_default(),
                topic: kafka.topic,
                group: kafka.group,
                start: kafka.start,
                max_batch,
                properties,
            })
        }
    }
}

/// Expand `${NAME}` references to environment variables; the error is the
/// first name that is not set.
fn expand_env(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start + 2..].find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &rest[start + 2..start + 2 + len];
        out.push_str(&std::env::var(name).map_err(|_| name.to_owned())?);
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

fn validate_stage(
    i: usize,
    stage: StageConfig,
    plugin_dir: Option<&Path>,
    default_batch: usize,
    base: &Path,
    c: &mut Checker<'_>,
) -> StageSettings {
    let key = |k: &str| format!("stage[{i}].{k}");
    let plugin_path = if stage.plugin.ends_with(".wasm") {
        resolve(base, Path::new(&stage.plugin))
    } else {
        plugin_dir
            .unwrap_or(base)
            .join(format!("{}.wasm", stage.plugin))
    };
    c.check(
        plugin_path.is_file(),
        key("plugin"),
        format!(
            "no plugin component at {} (build the plugins with `cargo build`, or fix runtime.plugin_dir)",
            plugin_path.display()
        ),
    );
    let l = &stage.limits;
    c.check(
        (1..=4096).contains(&l.memory_mb),
        key("limits.memory_mb"),
        "must be between 1 and 4096 MiB",
    );
    c.check(
        l.deadline_ms > 0,
        key("limits.deadline_ms"),
        "must be positive",
    );
    c.check(
        l.fuel != Some(0),
        key("limits.fuel"),
        "must be positive (omit it for no fuel limit)",
    );
    let batch_size = stage.batch_size.unwrap_or(default_batch);
    c.check(batch_size > 0, key("batch_size"), "must be positive");

    let g = stage.grants;
    let mut env = Vec::new();
    for name in &g.env {
        match std::env::var(name) {
            Ok(value) => env.push((name.clone(), value)),
            Err(_) => c.check(
                false,
                key("grants.env"),
                format!("environment variable `{name}` is not set"),
            ),
        }
    }
    let read_only_dirs = g
        .read_only_dirs
        .into_iter()
        .map(|d| {
            let host = resolve(base, &d.host);
            c.check(
                host.is_dir(),
                key("grants.read_only_dirs"),
                format!("no such directory: {}", host.display()),
            );
            (host, d.guest)
        })
        .collect();

    let config_json = match &stage.config {
        Some(table) => serde_json::to_string(table).expect("a TOML table is valid JSON"),
        None => "{}".to_owned(),
    };
    StageSettings {
        name: stage.name,
        plugin_path,
        retries: stage.retries,
        batch_size,
        limits: Limits {
            max_memory_bytes: usize::try_from(l.memory_mb << 20).unwrap_or(usize::MAX),
            deadline: Duration::from_millis(l.deadline_ms),
            fuel: l.fuel,
        },
        grants: Grants {
            inherit_stdio: g.inherit_stdio,
            env,
            read_only_dirs,
            clocks: g.clocks,
            random: g.random,
        },
        config_json,
    }
}

fn validate_output(output: OutputConfig, base: &Path) -> Output {
    match output {
        OutputConfig::Local(local) => Output::Local {
            dir: resolve(base, &local.dir),
        },
        OutputConfig::S3(s3) => Output::S3 {
            bucket: s3.bucket,
            prefix: s3.prefix.trim_matches('/').to_owned(),
        },
        OutputConfig::Kafka(kafka) => Output::Kafka { topic: kafka.topic },
    }
}

fn default_compiled_cache_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "weir").map(|d| d.cache_dir().join("compiled"))
}

/// 1-based line and column of byte offset `at`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Where the key path `key` (e.g. `stage[1].limits.memory_mb`) is written in
/// the file: the deepest prefix of the path that exists.
fn locate(text: &str, key: &str) -> Option<(usize, usize)> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut span = None;
    let mut table = document.get_ref();
    let mut segments = key.split('.').peekable();
    while let Some(segment) = segments.next() {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let (key_span, value) = table
            .iter()
            .find(|(k, _)| k.get_ref() == name)
            .map(|(k, v)| (k.span(), v))?;
        span = Some(key_span);
        let mut value = value;
        if let Some(index) = index {
            let toml::de::DeValue::Array(items) = value.get_ref() else {
                break;
            };
            let item = items.get(index)?;
            span = Some(item.span());
            value = item;
        }
        match value.get_ref() {
            toml::de::DeValue::Table(inner) if segments.peek().is_some() => table = inner,
            _ => break,
        }
    }
    span.map(|s| line_column(text, s.start))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
[pipeline]
name = "t"

[source.file]
path = "in.jsonl"

[[stage]]
name = "a"
plugin = "a.wasm"

[output.local]
dir = "out"

[dead_letter.local]
dir = "out"
"#;

    fn fixture_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.jsonl"), "").unwrap();
        std::fs::write(dir.path().join("a.wasm"), "").unwrap();
        dir
    }

    #[test]
    fn valid_file_resolves_paths_and_defaults() {
        let dir = fixture_dir();
        let p = parse(VALID, dir.path()).unwrap();
        assert_eq!(p.stages[0].plugin_path, dir.path().join("a.wasm"));
        assert_eq!(p.stages[0].config_json, "{}");
        assert_eq!(p.stages[0].retries, 2);
        assert_eq!(p.stages[0].limits, Limits::default());
    }

    #[test]
    fn unknown_key_is_reported_with_its_line() {
        let dir = fixture_dir();
        let text = VALID.replace("plugin = \"a.wasm\"", "plugin = \"a.wasm\"\nretires = 3");
        let problems = parse(&text, dir.path()).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("retires"), "{:?}", problems[0]);
        assert_eq!(problems[0].location.map(|l| l.0), Some(11));
    }

    #[test]
    fn every_semantic_problem_is_reported_with_its_location() {
        let dir = fixture_dir();
        let text = VALID
            .replace("name = \"t\"", "name = \"bad name\"")
            .replace(
                "plugin = \"a.wasm\"",
                "plugin = \"missing\"\n[stage.limits]\ndeadline_ms = 0",
            )
            + "\n[[stage]]\nname = \"a\"\nplugin = \"a.wasm\"\n";
        let problems = parse(&text, dir.path()).unwrap_err();
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "pipeline.name",
                "stage[0].plugin",
                "stage[0].limits.deadline_ms",
                "stage[1].name"
            ]
        );
        let lines: Vec<_> = problems.iter().map(|p| p.location.unwrap().0).collect();
        assert_eq!(lines, [3, 10, 12, 21]);
    }

    #[test]
    fn environment_references_in_kafka_properties_are_expanded() {
        assert_eq!(
            expand_env("a${HOME}b"),
            Ok(format!("a{}b", std::env::var("HOME").unwrap()))
        );
        assert_eq!(expand_env("plain"), Ok("plain".into()));
        assert_eq!(
            expand_env("x${WEIR_SURELY_UNSET_42}"),
            Err("WEIR_SURELY_UNSET_42".into())
        );
    }

    /// [`VALID`] with a Kafka source whose `properties` table holds
    /// `properties` (TOML lines).
    fn with_kafka_properties(properties: &str) -> String {
        VALID.replace(
            "[source.file]\npath = \"in.jsonl\"",
            &format!(
                "[source.kafka]\nbrokers = \"b:9092\"\ntopic = \"t\"\ngroup = \"g\"\n[source.kafka.properties]\n{properties}"
            ),
        )
    }

    #[test]
    fn kafka_properties_the_guarantees_rest_on_cannot_be_overridden() {
        let dir = fixture_dir();
        let text = with_kafka_properties(
            "\"enable.auto.commit\" = \"true\"\n\"fetch.max.bytes\" = \"1000000\"\n\
             acks = \"1\"\n\"enable.idempotence\" = \"false\"",
        );
        let problems = parse(&text, dir.path()).unwrap_err();
        let mut keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "source.kafka.properties.acks",
                "source.kafka.properties.enable.auto.commit",
                "source.kafka.properties.enable.idempotence",
            ]
        );
    }

    #[test]
    fn kafka_property_values_are_not_shown_in_debug_output() {
        let dir = fixture_dir();
        let text = with_kafka_properties("\"sasl.password\" = \"hunter2\"");
        let p = parse(&text, dir.path()).unwrap();
        let shown = format!("{:?}", p.source);
        assert!(
            shown.contains("sasl.password") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn stage_config_becomes_json() {
        let dir = fixture_dir();
        let text = VALID.replace(
            "plugin = \"a.wasm\"",
            "plugin = \"a.wasm\"\n[stage.config]\nk = 1\nnested = { x = \"y\" }",
        );
        let p = parse(&text, dir.path()).unwrap();
        assert_eq!(p.stages[0].config_json, r#"{"k":1,"nested":{"x":"y"}}"#);
    }
}
