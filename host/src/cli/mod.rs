//! The `weir` command line: argument parsing and the commands' top level;
//! `weir plugin ...` is in [`plugin`].

mod dlq;
mod plugin;
mod summary;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::io::Write as _;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::{self, Source};
use crate::source::FileFormat;
use crate::{bodies, ingest, pipeline};

/// After a stop signal, how long the host may take to finish, flush and
/// commit before it exits anyway (exit code 3; uncommitted records are then
/// delivered again to the next consumer).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(90);

/// Stream documents through a chain of sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline: a file source to its end, a Kafka source until
    /// SIGTERM/SIGINT (then finish, flush, commit, exit 0). Prints a summary.
    ///
    /// In event mode (the default), an event whose document has the same
    /// body and the same chain as when it was last processed is skipped and
    /// recorded as `"skipped": "unchanged"` in the results; an event older
    /// than the document's stored revision as `"skipped": "stale"`.
    Run {
        /// The pipeline file.
        #[arg(short, long, visible_alias = "pipeline", value_name = "PIPELINE.toml")]
        config: PathBuf,
        /// Read this file instead of `[source.file] path` (e.g. a later
        /// export of the same documents); `[source.file] format`, if set,
        /// still applies, else the file's name says its format.
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Process every event, changed or not (as `[event_mode] enabled =
        /// false`); the state is neither read nor updated.
        #[arg(long)]
        every_event: bool,
    },
    /// Replay a Kafka topic from a start point up to the end it has when the
    /// replay starts, in a consumer group and an output folder of its own
    /// (`{pipeline}/runs/{run}/`), then exit: 0 when every partition is
    /// done, 4 when stopped before (run it again with the same `--run` to
    /// continue).
    ///
    /// Every event is processed (no event-mode skips); with `[cache]`
    /// enabled, stages whose outputs are cached are not computed again.
    /// Replicas started with the same `--run` share the partitions. The
    /// pipeline's live consumer group is never touched.
    Replay {
        /// The pipeline file (its [source.kafka]).
        #[arg(short, long, visible_alias = "pipeline", value_name = "PIPELINE.toml")]
        config: PathBuf,
        /// Where to start: `earliest`, or an RFC 3339 time (the first event
        /// at or after it).
        #[arg(long, default_value = "earliest", value_name = "earliest|TIME")]
        from: crate::replay::StartPoint,
        /// Where to stop: `now` (the end of each partition when the replay
        /// is first started), or an RFC 3339 time.
        #[arg(long, default_value = "now", value_name = "now|TIME")]
        to: crate::replay::EndPoint,
        /// The run's name: its consumer group and output folder. Give the
        /// same name to resume a stopped replay or to add replicas (default:
        /// `replay-` and the start time).
        #[arg(long, value_name = "NAME")]
        run: Option<String>,
    },
    /// Check a pipeline file (syntax, values, files, plugin chain) and report
    /// every problem with its location.
    Validate {
        /// The pipeline file.
        #[arg(short, long, visible_alias = "pipeline", value_name = "PIPELINE.toml")]
        config: PathBuf,
    },
    /// Produce change events to the pipeline's Kafka topic from a JSONL file
    /// or a MediaWiki XML dump, keyed by document id.
    Ingest {
        /// The pipeline file (its [source.kafka], [s3] and [ingest]).
        #[arg(short, long, visible_alias = "pipeline", value_name = "PIPELINE.toml")]
        config: PathBuf,
        /// The input: JSONL of change events (.jsonl, or .jsonl.bz2), or a
        /// MediaWiki dump (.xml, .xml.bz2, .bz2).
        #[arg(short, long)]
        input: PathBuf,
        /// Input format (default: from the file name).
        #[arg(long, value_enum)]
        format: Option<InputFormat>,
        /// Create the topic with this many partitions if it does not exist.
        #[arg(long, value_name = "N")]
        create_partitions: Option<i32>,
    },
    /// Publish plugin versions to the pipeline's registry, list and show
    /// them, activate a version for the pipeline or roll it back.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// List, show and redrive dead letters (from the pipeline's
    /// `[dead_letter]`: a directory, S3 or a Kafka topic).
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
}

/// `--format` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum InputFormat {
    /// One change event per line.
    Jsonl,
    /// A MediaWiki XML dump.
    MediawikiXml,
}

impl From<InputFormat> for FileFormat {
    fn from(format: InputFormat) -> Self {
        match format {
            InputFormat::Jsonl => FileFormat::Jsonl,
            InputFormat::MediawikiXml => FileFormat::MediawikiXml,
        }
    }
}

/// Run the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        // Boxed: the pipeline future is too deep a type for rustc's layout
        // queries when nested in main's.
        Command::Run {
            config,
            input,
            every_event,
        } => Box::pin(run_pipeline(&config, input, every_event)).await,
        Command::Replay {
            config,
            from,
            to,
            run,
        } => {
            let run = run.unwrap_or_else(|| {
                format!(
                    "replay-{}",
                    jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ")
                )
            });
            Box::pin(run_replay(
                &config,
                crate::replay::ReplayOptions { run, from, to },
            ))
            .await
        }
        Command::Plugin(command) => plugin::run(command).await,
        Command::Dlq(command) => Box::pin(dlq::run(command)).await,
        Command::Validate { config } => {
            let pipeline = config::load(&config)?;
            let assembled = pipeline::assemble(&pipeline).await?;
            pipeline::try_stages(&config, &assembled)?;
            if let Err(e) = check_instances(&config, &pipeline).await? {
                println!(
                    "note: runtime.max_instances was not checked against the topic's \
                     partitions (cannot reach the broker: {e})"
                );
            }
            println!(
                "{}: valid; chain: {}",
                config.display(),
                assembled
                    .chain
                    .stages()
                    .iter()
                    .map(|s| format!("{} = {}", s.name, s.plugin.label()))
                    .collect::<Vec<_>>()
                    .join(" -> ")
            );
            Ok(())
        }
        Command::Ingest {
            config,
            input,
            format,
            create_partitions,
        } => {
            let pipeline = config::load(&config)?;
            let Source::Kafka(kafka) = &pipeline.source else {
                anyhow::bail!("{}: the source is not [source.kafka]", config.display());
            };
            if let Some(partitions) = create_partitions {
                ingest::create_topic(kafka, partitions).await?;
            }
            let bodies = match &pipeline.ingest.bodies {
                Some(_) => Some(bodies::BodyStore::new(
                    crate::storage::s3_client(&pipeline.s3).await,
                )),
                None => None,
            };
            let summary = ingest::ingest(&pipeline, &input, format.map(Into::into), bodies)
                .await
                .with_context(|| format!("ingesting {}", input.display()))?;
            println!("weir ingest: {}", summary.line(&kafka.topic));
            Ok(())
        }
    }
}

/// With a Kafka source: that `runtime.max_instances` is enough for a host
/// that is assigned every partition of the topic (one instance per stage
/// per partition), which would otherwise stop the host at assignment, plus
/// one chain's worth when stages follow the active versions: a hot swap
/// instantiates the new chain once as a trial while every partition still
/// runs the old one (without the room, every swap is refused). The outer
/// error is the problem; the inner one says the broker could not be asked
/// (the check was not made).
async fn check_instances(
    path: &std::path::Path,
    pipeline: &config::Pipeline,
) -> anyhow::Result<Result<(), rdkafka::error::KafkaError>> {
    let Source::Kafka(kafka) = &pipeline.source else {
        return Ok(Ok(()));
    };
    let settings = kafka.clone();
    let partitions = tokio::task::spawn_blocking(move || {
        crate::kafka::partition_count(&settings, Duration::from_secs(10))
    })
    .await?;
    let partitions = match partitions {
        Ok(partitions) => partitions,
        Err(e) => return Ok(Err(e)),
    };
    let swaps = !crate::hot_swap::followed(pipeline).is_empty();
    let needed = (partitions + usize::from(swaps)) * pipeline.stages.len();
    let max = pipeline.runtime.max_instances as usize;
    if needed > max {
        let trial = if swaps {
            ", and one chain more for the trial of a newly activated version before a hot swap"
        } else {
            ""
        };
        return Err(config::problem_at(
            path,
            "runtime.max_instances",
            format!(
                "is {max}, but topic `{}` has {partitions} partitions and the chain {} stages: \
                 a host assigned every partition needs {needed} instances (one per stage per \
                 partition{trial}); set it to at least {needed}",
                kafka.topic,
                pipeline.stages.len()
            ),
        )
        .into());
    }
    Ok(Ok(()))
}

async fn run_pipeline(
    config: &std::path::Path,
    input: Option<PathBuf>,
    every_event: bool,
) -> anyhow::Result<()> {
    if let Some(input) = &input {
        anyhow::ensure!(
            input.is_file(),
            "--input: no such file: {}",
            input.display()
        );
    }
    let mut pipeline = config::load_reading(config, input.as_deref())?;
    if every_event {
        pipeline.event_mode = config::EventMode::Off;
    }
    if let Err(e) = check_instances(config, &pipeline).await? {
        tracing::warn!("cannot reach the broker to check runtime.max_instances: {e}");
    }
    run_loaded(&pipeline, config).await
}

/// Run a loaded pipeline (a file to its end, a topic until a stop signal)
/// and print its summary.
async fn run_loaded(pipeline: &config::Pipeline, config: &std::path::Path) -> anyhow::Result<()> {
    serve_telemetry(pipeline).await?;
    let assembled = pipeline::assemble(pipeline).await?;
    pipeline::try_stages(config, &assembled)?;
    loaded(&assembled);
    let summary = match &pipeline.source {
        Source::File { .. } => pipeline::run_file(pipeline, &assembled).await,
        Source::Kafka(_) => {
            let shutdown = Arc::new(AtomicBool::new(false));
            tokio::spawn(stop_on_signal(shutdown.clone()));
            pipeline::run_stream(pipeline, &assembled, shutdown).await
        }
    }
    .with_context(|| format!("pipeline {}", pipeline.name))?;
    for (stage, counters) in &summary.stats.counters {
        for (counter, value) in counters.iter() {
            tracing::debug!(stage, counter, value, "plugin counter");
        }
    }
    // Written, not printed: a reader that stopped early (`| head -1`) is
    // not an error of the run, which is done and durable by now.
    let mut text = format!("weir run {}: {}\n", pipeline.name, summary.line());
    if let Some(cache) = &assembled.cache {
        for line in pipeline::stage_lines(&summary.stats, &assembled.chain) {
            text.push_str(&line);
            text.push('\n');
        }
        text.push_str(&format!("cache: {}\n", cache.describe()));
    }
    text.push_str(&summary::human(&summary, &assembled.chain, config));
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    // The process ends here. What the run assembled (the cache's memory
    // tier, entry by entry; the engine's instance pools) is left for the
    // operating system to free at exit, all at once, instead of being
    // dropped piece by piece: about 10 ms of a 0.22 s warm replay
    // (docs/performance.md). Nothing in it has work left to do on drop: the
    // run wrote its results and state and flushed the cache above, and a
    // part that must act when a run ends does so explicitly before this.
    std::mem::forget(assembled);
    Ok(())
}

/// Start the metrics, health and status page server if the pipeline asks
/// for one: before the plugins load, so liveness probes answer meanwhile.
async fn serve_telemetry(pipeline: &config::Pipeline) -> anyhow::Result<()> {
    if let Some(address) = pipeline.telemetry.listen {
        crate::telemetry::server::serve(address, &pipeline.name).await?;
    }
    Ok(())
}

/// The plugins are loaded: say so to `/readyz` and `weir_plugin_info`.
fn loaded(assembled: &pipeline::Assembled) {
    crate::telemetry::readiness::readiness().plugins_loaded();
    crate::telemetry::chain_running(&assembled.chain);
}

/// Exit status of a replay stopped before its end.
const REPLAY_INCOMPLETE: i32 = 4;

async fn run_replay(
    config: &std::path::Path,
    options: crate::replay::ReplayOptions,
) -> anyhow::Result<()> {
    let pipeline = crate::replay::replay_pipeline(config::load(config)?, &options.run)?;
    eprintln!(
        "weir replay {}: from {} to {} (resume with --run {})",
        options.run, options.from, options.to, options.run
    );
    serve_telemetry(&pipeline).await?;
    let shutdown = Arc::new(AtomicBool::new(false));
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let progress = Arc::new(std::sync::Mutex::new(None));
    let shown = progress.clone();
    let summary = crate::replay::replay(
        &pipeline,
        &options,
        shutdown,
        move |plan, bounds, assembled| {
            loaded(assembled);
            let task = tokio::spawn(crate::progress::replay_bar(
                plan.partitions.len(),
                bounds,
                assembled.cache.clone(),
            ));
            *shown.lock().expect("progress") = Some(task);
        },
    )
    .await
    .map_err(|e| match e {
        crate::replay::ReplayError::StageStart(e) => {
            anyhow::Error::from(pipeline::stage_refused(config, &e))
        }
        e => anyhow::Error::from(e),
    })
    .with_context(|| format!("replay {} of pipeline {}", options.run, pipeline.name))?;
    if let Some(task) = progress.lock().expect("progress").take() {
        task.abort();
    }
    for line in summary.lines(&options.run) {
        println!("{line}");
    }
    if !summary.complete {
        eprintln!(
            "weir replay {run}: stopped before its end; to continue, run it again with \
             `--run {run}`",
            run = options.run
        );
        std::process::exit(REPLAY_INCOMPLETE);
    }
    Ok(())
}

/// Set `shutdown` on SIGTERM or SIGINT; exit with code 3 if the host has
/// not finished within [`SHUTDOWN_GRACE`] after that.
async fn stop_on_signal(shutdown: Arc<AtomicBool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install the SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stop signal received: finishing in-flight batches, flushing and committing");
    shutdown.store(true, Ordering::SeqCst);
    tokio::time::sleep(SHUTDOWN_GRACE).await;
    tracing::error!(
        "did not finish within {SHUTDOWN_GRACE:?} of the stop signal; exiting without committing"
    );
    std::process::exit(3);
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command that reads a pipeline file takes it the same way:
    /// `-c`, `--config` or `--pipeline`.
    #[test]
    fn every_pipeline_file_argument_has_the_same_spellings() {
        fn check(command: &clap::Command, path: &str, seen: &mut usize) {
            for arg in command.get_arguments() {
                if arg.get_id() == "config" {
                    *seen += 1;
                    assert_eq!(arg.get_short(), Some('c'), "{path}");
                    assert_eq!(arg.get_long(), Some("config"), "{path}");
                    let aliases = arg.get_visible_aliases().unwrap_or_default();
                    assert_eq!(aliases, ["pipeline"], "{path}");
                }
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()), seen);
            }
        }
        let mut seen = 0;
        check(&Cli::command(), "weir", &mut seen);
        assert!(seen >= 10, "only {seen} commands take a pipeline file");
    }
}
