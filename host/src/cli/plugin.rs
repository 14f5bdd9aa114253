//! `weir plugin ...`: publishing plugin versions to a pipeline's registry,
//! reading it, and moving the pipeline's active versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;

use crate::config;
use crate::pipeline;
use crate::registry::{HostStatus, Published, Registry, Trust, VersionRef};

/// The plugin commands. Each reads the registry from the pipeline file's
/// `[registry]` (and `[s3]` for an S3 registry).
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Publish a component: it must load as a weir plugin, and is stored
    /// under the name and version it describes itself with. A published
    /// version never changes: other bytes under the same version are
    /// refused.
    Publish {
        /// The component (`.wasm`, built for wasm32-wasip2).
        path: PathBuf,
        /// The pipeline file.
        #[arg(short, long, visible_alias = "pipeline", value_name = "PIPELINE.toml")]
        config: PathBuf,
        /// The name the component must describe itself with.
        #[arg(long, value_name = "N")]
        name: Option<String>,
        /// The version the component must describe itself with.
        #[arg(long, value_name = "V")]
        version: Option<String>,
        /// Sign the manifest with this Ed25519 private key (PEM, as
        /// `openssl genpkey -algorithm ed25519 -out key.pem` writes it).
        #[arg(long, value_name = "KEY.pem")]
        key: Option<PathBuf>,
    },
    /// List the published versions.
    List {
        /// The pipeline file.
        #[arg(short, long, visible_alias = "pipeline", value_name = "PIPELINE.toml")]
        config: PathBuf,
    },
    /// Show a version's manifest, and whether the pipeline runs it.
    Show {
        /// `name@version`.
        #[arg(value_name = "NAME@VERSION")]
        plugin: String,
        /// The pipeline file.
        #[arg(short, long, visible_alias = "pipeline", value_name = "PIPELINE.toml")]
        config: PathBuf,
    },
    /// Make a version the pipeline's active one (what stages naming
    /// `name@active` run), after checking that it is trusted, that its bytes
    /// are the published ones, that the chain still fits together with it,
    /// and that every stage starts (`init` with its configuration). Prints
    /// what changed. Running hosts move to it within
    /// `[registry] watch_interval_s`.
    Activate {
        /// `name@version`.
        #[arg(value_name = "NAME@VERSION")]
        plugin: String,
        /// The pipeline file.
        #[arg(short, long, visible_alias = "pipeline", value_name = "PIPELINE.toml")]
        config: PathBuf,
    },
    /// The pipeline's active versions, and what each running host runs:
    /// hosts behind the active versions, the versions they refused and why,
    /// and hosts whose last report is old (gone without stopping cleanly).
    Status {
        /// The pipeline file.
        #[arg(short, long, visible_alias = "pipeline", value_name = "PIPELINE.toml")]
        config: PathBuf,
    },
    /// Run a candidate version beside the active one on live traffic, until
    /// SIGTERM/SIGINT: a host of its own, in a consumer group of its own,
    /// from the newest events on; its outputs go under
    /// `{pipeline}/shadow/NAME@VERSION/`. Live results and offsets are not
    /// touched. With `--report`, compare what it wrote with the live
    /// results, record by record (identical, changed, failed, with
    /// examples), and exit.
    Shadow {
        /// `name@version` of the candidate.
        #[arg(value_name = "NAME@VERSION")]
        plugin: String,
        /// The pipeline file.
        #[arg(short, long, visible_alias = "pipeline", value_name = "PIPELINE.toml")]
        config: PathBuf,
        /// Report on the shadow run instead of running it.
        #[arg(long)]
        report: bool,
    },
    /// Return a plugin to the version that was active before. Prints what
    /// changed.
    Rollback {
        /// The plugin's name.
        name: String,
        /// The pipeline file.
        #[arg(short, long, visible_alias = "pipeline", value_name = "PIPELINE.toml")]
        config: PathBuf,
    },
}

/// The versions in `map`, as `name version, ...`.
fn versions(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(name, version)| format!("{name} {version}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One host's line in `weir plugin status`: what it runs, and what needs
/// a look (behind the active versions, partitions still on an older
/// chain, a refusal, a report too old).
fn host_line(
    status: &HostStatus,
    active: &BTreeMap<String, String>,
    now: jiff::Timestamp,
) -> String {
    let age = status
        .updated_at
        .parse::<jiff::Timestamp>()
        .map(|at| now.duration_since(at).as_secs())
        .unwrap_or(i64::MAX);
    let mut notes = Vec::new();
    if status
        .running
        .iter()
        .any(|(name, version)| active.get(name) != Some(version))
    {
        notes.push("behind the active versions".to_owned());
    }
    if status.partitions_behind > 0 {
        notes.push(format!(
            "{} partition(s) still on the previous chain: the new one cannot start there \
             yet, see the host's log",
            status.partitions_behind
        ));
    }
    if let Some(refused) = &status.refused {
        notes.push(format!(
            "refused {} at {}: {}",
            versions(&refused.versions),
            refused.at,
            refused.reason
        ));
    }
    if age > 2 * crate::hot_swap::HEARTBEAT.as_secs() as i64 {
        notes.push(format!("no report for {age} s: gone?"));
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    format!("{}: runs {}{notes}", status.host, versions(&status.running))
}

/// The pipeline of `config` and its registry.
async fn open(config: &Path) -> anyhow::Result<(config::Pipeline, Registry, Trust)> {
    let pipeline = config::load(config)?;
    let settings = pipeline
        .registry
        .as_ref()
        .with_context(|| format!("{}: the pipeline has no [registry]", config.display()))?;
    let s3 = pipeline::s3_for(&pipeline, &[&settings.store]).await;
    let (registry, trust) =
        pipeline::registry_of(&pipeline, s3.as_ref()).expect("the pipeline has a registry");
    Ok((pipeline, registry, trust))
}

/// `name@version` (an exact version).
fn exact(reference: &str) -> anyhow::Result<(&str, String)> {
    match VersionRef::parse(reference) {
        Some((name, VersionRef::Exact(version))) => Ok((name, version)),
        _ => anyhow::bail!("`{reference}`: give NAME@VERSION, e.g. score@0.2.0"),
    }
}

/// Run a plugin command.
pub async fn run(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Publish {
            path,
            config,
            name,
            version,
            key,
        } => {
            let (pipeline, registry, _) = open(&config).await?;
            let key = match key {
                Some(path) => {
                    let pem = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    Some(
                        crate::registry::signing_key_from_pem(&pem)
                            .with_context(|| path.display().to_string())?,
                    )
                }
                None => None,
            };
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let runtime = pipeline::runtime_for(&pipeline)?;
            let expected = crate::registry::Expected {
                name: name.as_deref(),
                version: version.as_deref(),
            };
            let published = registry
                .publish(&runtime, bytes, expected, key.as_ref())
                .await?;
            match published {
                Published::New(m) => println!(
                    "published {} (sha256 {}, {}) to {}",
                    m.label(),
                    m.sha256,
                    if m.signature.is_some() {
                        "signed"
                    } else {
                        "unsigned"
                    },
                    registry.describe()
                ),
                Published::AlreadyThere(m) => {
                    println!("{} is already published with these bytes", m.label())
                }
            }
        }
        PluginCommand::List { config } => {
            let (pipeline, registry, _) = open(&config).await?;
            let active = registry.active(&pipeline.name).await?;
            for m in registry.list().await? {
                let is_active = active.version_of(&m.name) == Some(m.version.as_str());
                println!(
                    "{:<28} {}  {:<8}  {}{}",
                    m.label(),
                    m.sha256.short(),
                    if m.signature.is_some() {
                        "signed"
                    } else {
                        "unsigned"
                    },
                    m.published_at,
                    if is_active { "  (active)" } else { "" }
                );
            }
        }
        PluginCommand::Show { plugin, config } => {
            let (name, version) = exact(&plugin)?;
            let (pipeline, registry, trust) = open(&config).await?;
            let manifest = registry.manifest(name, &version).await?;
            println!("{}", serde_json::to_string_pretty(&manifest)?);
            let active = registry.active(&pipeline.name).await?;
            println!(
                "active in pipeline `{}`: {}; this host {}",
                pipeline.name,
                active.version_of(name).unwrap_or("(none)"),
                match trust.check(&manifest) {
                    Ok(()) => "would load it".to_owned(),
                    Err(reason) => format!("refuses it: {reason}"),
                }
            );
        }
        PluginCommand::Activate { plugin, config } => {
            let (name, version) = exact(&plugin)?;
            let (pipeline, registry, trust) = open(&config).await?;
            let runtime = pipeline::runtime_for(&pipeline)?;
            // Trusted, the published bytes, a plugin of our world ...
            let (manifest, bytes) = registry.fetch(name, &version, &trust).await?;
            runtime.load(&manifest.label(), &bytes)?;
            // ... the chain still fits together with it, and every stage
            // starts (`init` with its configuration).
            let pinned = BTreeMap::from([(name.to_owned(), version.clone())]);
            let registry_and_trust = (registry, trust);
            let chain =
                pipeline::load_chain(&pipeline, &runtime, Some(&registry_and_trust), &pinned)
                    .await
                    .with_context(|| format!("{} does not fit the chain", manifest.label()))?;
            std::sync::Arc::new(chain)
                .start_worker()
                .with_context(|| format!("the chain does not start with {}", manifest.label()))?;
            let change = registry_and_trust
                .0
                .activate(&pipeline.name, name, &version)
                .await?;
            println!("pipeline `{}`: {change}", pipeline.name);
        }
        PluginCommand::Status { config } => {
            let (pipeline, registry, _) = open(&config).await?;
            let active = registry.active(&pipeline.name).await?;
            let active_map: BTreeMap<String, String> = active
                .plugins
                .iter()
                .map(|(name, p)| (name.clone(), p.version.clone()))
                .collect();
            println!(
                "pipeline `{}`: active {}",
                pipeline.name,
                versions(&active_map)
            );
            let now = jiff::Timestamp::now();
            for status in registry.statuses(&pipeline.name).await? {
                println!("  {}", host_line(&status, &active_map, now));
            }
        }
        PluginCommand::Shadow {
            plugin,
            config,
            report,
        } => {
            let (name, version) = exact(&plugin)?;
            let pipeline = config::load(&config)?;
            let label = crate::shadow::label(name, &version);
            if report {
                let s3 = pipeline::s3_for(&pipeline, &[&pipeline.output]).await;
                let store = pipeline::object_store(&pipeline.output, s3.as_ref());
                let report = crate::shadow::report(&store, &pipeline.name, &label).await?;
                println!("shadow {label} of pipeline `{}`:", pipeline.name);
                for line in report.lines() {
                    println!("{line}");
                }
                return Ok(());
            }
            let live = pipeline.name.clone();
            let shadow = crate::shadow::shadow_pipeline(pipeline, name, &version)?;
            eprintln!(
                "weir plugin shadow: {label} beside pipeline `{live}`'s active versions, until stopped; \
                 `weir plugin shadow {label} -c {} --report` compares",
                config.display()
            );
            Box::pin(super::run_loaded(&shadow, &config)).await?;
        }
        PluginCommand::Rollback { name, config } => {
            let (pipeline, registry, _) = open(&config).await?;
            let change = registry.rollback(&pipeline.name, &name).await?;
            println!("pipeline `{}`: {change}", pipeline.name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_line_says_what_needs_a_look() {
        let now: jiff::Timestamp = "2026-12-03T12:00:00Z".parse().unwrap();
        let active = BTreeMap::from([("score".to_owned(), "0.2.0".to_owned())]);
        let mut status = HostStatus {
            host: "h1".into(),
            updated_at: "2026-12-03T11:59:30Z".into(),
            running: active.clone(),
            refused: None,
            partitions_behind: 0,
        };
        assert_eq!(host_line(&status, &active, now), "h1: runs score 0.2.0");
        status.partitions_behind = 2;
        status.updated_at = "2026-12-03T11:50:00Z".into();
        assert_eq!(
            host_line(&status, &active, now),
            "h1: runs score 0.2.0 (2 partition(s) still on the previous chain: the new one \
             cannot start there yet, see the host's log; no report for 600 s: gone?)"
        );
        status.partitions_behind = 0;
        status.updated_at = "2026-12-03T11:59:30Z".into();
        status.running = BTreeMap::from([("score".to_owned(), "0.1.0".to_owned())]);
        assert_eq!(
            host_line(&status, &active, now),
            "h1: runs score 0.1.0 (behind the active versions)"
        );
    }
}
