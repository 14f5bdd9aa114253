//! Validation of the file as written into the typed settings: every
//! problem is collected (not just the first), each with its key path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diagnostics::Problem;
use super::file::*;
use super::settings::*;
use crate::registry::{Trust, VersionRef};
use crate::runtime::{Grants, Limits};
use crate::source::FileFormat;

/// paths in messages read naturally (`out`, not `examples/wiki/../../out`).
fn resolve(base: &Path, relative: &Path) -> PathBuf {
    path_clean::clean(base.join(relative))
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

pub(super) fn validate(file: PipelineFile, base: &Path, problems: &mut Vec<Problem>) -> Pipeline {
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
    let registry = file
        .registry
        .as_ref()
        .map(|config| validate_registry(config, &name, base, &mut c));
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
                registry.is_some(),
                file.runtime.batch_size,
                base,
                &mut c,
            )
        })
        .collect();

    let output = match validate_output(file.output, base) {
        DeadLetterOutput::Store(store) => store,
        DeadLetterOutput::Kafka { .. } => {
            c.check(
                false,
                "output",
                "results go to [output.local] or [output.s3]; Kafka is for dead letters only",
            );
            StoreOutput::Local {
                dir: PathBuf::new(),
            }
        }
    };
    let dead_letter = validate_output(file.dead_letter, base);
    let kafka_dead_letters = matches!(dead_letter, DeadLetterOutput::Kafka { .. });
    c.check(
        !kafka_dead_letters || matches!(source, Source::Kafka(_)),
        "dead_letter.kafka",
        "dead letters go to Kafka only when the source is Kafka (its brokers are used)",
    );
    let endpoint = std::env::var("WEIR_S3_ENDPOINT").ok().or(file.s3.endpoint);
    let s3 = S3Settings {
        path_style: file.s3.path_style.unwrap_or(endpoint.is_some()),
        sign_payloads: file.s3.sign_payloads,
        request_timeout: file
            .s3
            .request_timeout_s
            .map_or(S3Settings::DEFAULT_REQUEST_TIMEOUT, Duration::from_secs),
        endpoint,
        region: file.s3.region,
    };
    c.check(
        file.s3.request_timeout_s != Some(0),
        "s3.request_timeout_s",
        "must be at least 1",
    );
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
    c.check(
        (-7..=19).contains(&b.zstd_level) && b.zstd_level != 0,
        "batching.zstd_level",
        "must be 1 to 19, or -1 to -7 (zstd's fast modes)",
    );
    let event_mode = validate_event_mode(&file.event_mode, &name, &output, base, &mut c);
    let cache = validate_cache(&file.cache, &output, base, &mut c);
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
        event_mode,
        cache,
        registry,
        telemetry: file.telemetry,
    }
}

fn validate_registry(
    config: &RegistryConfig,
    pipeline: &str,
    base: &Path,
    c: &mut Checker<'_>,
) -> RegistrySettings {
    let store = match (&config.dir, &config.bucket) {
        (Some(dir), None) => StoreOutput::Local {
            dir: resolve(base, dir),
        },
        (None, Some(bucket)) => StoreOutput::S3 {
            bucket: bucket.clone(),
            prefix: config.prefix.trim_matches('/').to_owned(),
            conditional_writes: true,
        },
        _ => {
            c.check(false, "registry", "give either `dir` or `bucket`");
            StoreOutput::Local {
                dir: PathBuf::new(),
            }
        }
    };
    let mut keys = Vec::new();
    for (i, path) in config.trusted_keys.iter().enumerate() {
        let path = resolve(base, path);
        let key = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|pem| {
                crate::registry::verifying_key_from_pem(&pem).map_err(|e| e.to_string())
            });
        match key {
            Ok(key) => keys.push(key),
            Err(e) => c.check(
                false,
                format!("registry.trusted_keys[{i}]"),
                format!("{}: {e}", path.display()),
            ),
        }
    }
    c.check(
        config.watch_interval_s > 0,
        "registry.watch_interval_s",
        "must be positive",
    );
    RegistrySettings {
        pipeline: pipeline.to_owned(),
        store,
        trust: Trust::new(keys),
        watch_interval: Duration::from_secs(config.watch_interval_s),
    }
}

fn validate_cache(
    config: &CacheConfig,
    output: &StoreOutput,
    base: &Path,
    c: &mut Checker<'_>,
) -> Cache {
    if !config.enabled {
        return Cache::Off;
    }
    c.check(
        config.memory_mib > 0,
        "cache.memory_mib",
        "must be positive",
    );
    c.check(
        config.dir.is_none() || config.bucket.is_none(),
        "cache.bucket",
        "give either `dir` or `bucket`, not both",
    );
    let prefix = config.prefix.trim_matches('/').to_owned();
    let store = match (&config.dir, &config.bucket, output) {
        (Some(dir), _, _) => StoreOutput::Local {
            dir: resolve(base, dir),
        },
        (None, Some(bucket), _) => StoreOutput::S3 {
            bucket: bucket.clone(),
            prefix,
            conditional_writes: false,
        },
        // Beside the pipelines' folders in the output's store: pipelines
        // writing there share their entries.
        (None, None, StoreOutput::Local { dir }) => StoreOutput::Local {
            dir: dir.join("cache"),
        },
        (None, None, StoreOutput::S3 { bucket, prefix, .. }) => StoreOutput::S3 {
            bucket: bucket.clone(),
            prefix: [prefix.as_str(), "cache"]
                .iter()
                .filter(|p| !p.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/"),
            conditional_writes: false,
        },
    };
    Cache::On {
        store,
        memory_bytes: config.memory_mib.saturating_mul(1 << 20),
    }
}

fn validate_event_mode(
    config: &EventModeConfig,
    pipeline: &str,
    output: &StoreOutput,
    base: &Path,
    c: &mut Checker<'_>,
) -> EventMode {
    if !config.enabled {
        return EventMode::Off;
    }
    c.check(
        config.cache_mib > 0,
        "event_mode.cache_mib",
        "must be positive",
    );
    let state_dir = match (&config.state_dir, output) {
        (Some(dir), _) => resolve(base, dir),
        // Beside the results: deleting the output directory also forgets
        // what was computed, so the next run computes everything again.
        (None, StoreOutput::Local { dir }) => dir.join(pipeline).join("state"),
        (None, StoreOutput::S3 { .. }) => std::env::temp_dir().join("weir-state").join(pipeline),
    };
    EventMode::On(EventModeSettings {
        state_dir,
        checkpoint_every: Duration::from_secs(config.checkpoint_interval_s),
        cache_bytes: config.cache_mib.saturating_mul(1 << 20),
    })
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
                     with acks=all and idempotence; a partition without a usable offset is \
                     read from its earliest record: choose where a new group starts with \
                     `source.kafka.start`) and cannot be overridden",
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
                            missing.to_string(),
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

/// An environment variable a property refers to is not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable `{0}` is not set")]
pub(super) struct UnsetVariable(pub(super) String);

/// Expand `${NAME}` references to environment variables; the error names
/// the first one that is not set.
pub(super) fn expand_env(value: &str) -> Result<String, UnsetVariable> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start + 2..].find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &rest[start + 2..start + 2 + len];
        out.push_str(&std::env::var(name).map_err(|_| UnsetVariable(name.to_owned()))?);
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

fn validate_stage(
    i: usize,
    stage: StageConfig,
    plugin_dir: Option<&Path>,
    has_registry: bool,
    default_batch: usize,
    base: &Path,
    c: &mut Checker<'_>,
) -> StageSettings {
    let key = |k: &str| format!("stage[{i}].{k}");
    let plugin = if let Some((name, version)) = VersionRef::parse(&stage.plugin) {
        c.check(
            has_registry,
            key("plugin"),
            format!(
                "`{}` names a registry version, but the pipeline has no [registry]",
                stage.plugin
            ),
        );
        PluginSource::Registry {
            name: name.to_owned(),
            version,
        }
    } else {
        let path = if stage.plugin.ends_with(".wasm") {
            resolve(base, Path::new(&stage.plugin))
        } else {
            plugin_dir
                .unwrap_or(base)
                .join(format!("{}.wasm", stage.plugin))
        };
        c.check(
            path.is_file(),
            key("plugin"),
            format!(
                "no plugin component at {} (build the plugins with `cargo build`, or fix runtime.plugin_dir)",
                path.display()
            ),
        );
        PluginSource::File(path)
    };
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

    let deterministic = !(g.clocks || g.random);
    c.check(
        stage.cache != Some(true) || deterministic,
        key("cache"),
        "a stage granted real clocks or randomness may compute other outputs from the same input: it cannot be cached",
    );
    let cache = stage.cache.unwrap_or(deterministic);
    let config_json = match &stage.config {
        Some(table) => json_of(&toml::Value::Table(table.clone())).to_string(),
        None => "{}".to_owned(),
    };
    StageSettings {
        name: stage.name,
        plugin,
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
        cache,
    }
}

/// An output table as a dead-letter destination (the widest kind); the
/// caller refuses Kafka for results.
fn validate_output(output: OutputConfig, base: &Path) -> DeadLetterOutput {
    match output {
        OutputConfig::Local(local) => DeadLetterOutput::Store(StoreOutput::Local {
            dir: resolve(base, &local.dir),
        }),
        OutputConfig::S3(s3) => DeadLetterOutput::Store(StoreOutput::S3 {
            bucket: s3.bucket,
            prefix: s3.prefix.trim_matches('/').to_owned(),
            conditional_writes: s3.conditional_writes,
        }),
        OutputConfig::Kafka(kafka) => DeadLetterOutput::Kafka { topic: kafka.topic },
    }
}

fn default_compiled_cache_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "weir").map(|d| d.cache_dir().join("compiled"))
}

/// A `[stage.config]` value as the JSON its plugin receives. TOML's dates
/// and times become their RFC 3339 text (serde would hand them over as a
/// private map), and a float JSON cannot hold (`nan`, `inf`) `null`.
fn json_of(value: &toml::Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        toml::Value::String(s) => Json::String(s.clone()),
        toml::Value::Integer(i) => Json::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        toml::Value::Boolean(b) => Json::Bool(*b),
        toml::Value::Datetime(d) => Json::String(d.to_string()),
        toml::Value::Array(items) => items.iter().map(json_of).collect(),
        toml::Value::Table(table) => {
            Json::Object(table.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
        }
    }
}
