//! `weir dlq ...`: listing, showing and redriving a pipeline's dead
//! letters, wherever `[dead_letter]` sends them (a local directory, S3, a
//! Kafka topic).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::config::{self, DeadLetterOutput, Source};
use crate::dlq::filter::Filter;
use crate::dlq::reader::Origin;
use crate::dlq::redrive::{Markers, Places, redrive};
use crate::dlq::{DeadLetter, DeadLetterKind};
use crate::pipeline;

/// The dead-letter commands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters (newest position last), with whether each was
    /// redriven.
    List {
        #[command(flatten)]
        chosen: Chosen,
        /// One JSON object per line (the dead letter, without its payload,
        /// and `redriven`), for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter in full, its payload included.
    Show {
        /// Its input position, `topic/partition@offset` (as `list` shows).
        #[arg(value_name = "TOPIC/PARTITION@OFFSET")]
        position: String,
        #[command(flatten)]
        target: Target,
    },
    /// Send chosen dead letters through the chain again (e.g. after a
    /// plugin fix or a new limit) and write their results under
    /// `{pipeline}/redrive/`. Each is marked redriven: a second redrive
    /// leaves it alone. One that fails again becomes a new dead letter with
    /// the reason.
    Redrive {
        #[command(flatten)]
        chosen: Chosen,
        /// Show what would be redriven, and do nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Whose dead letters: the live pipeline's, or one of its replays'.
#[derive(Debug, Args)]
pub struct Target {
    /// The pipeline file.
    #[arg(short, long, visible_alias = "pipeline", value_name = "PIPELINE.toml")]
    config: PathBuf,
    /// A replay's dead letters (`weir replay --run NAME`, under
    /// `{pipeline}/runs/{run}/`) instead of the live pipeline's; a redrive
    /// writes its results under the run's folder too.
    #[arg(long, value_name = "NAME")]
    run: Option<String>,
}

/// Which dead letters (every criterion given must hold).
#[derive(Debug, Args)]
pub struct Chosen {
    #[command(flatten)]
    target: Target,
    /// Failed at this stage.
    #[arg(long, value_name = "STAGE")]
    stage: Option<String>,
    /// Of this kind: decode, body, bad-input, plugin-failure, trap, contract.
    #[arg(long, value_name = "KIND")]
    kind: Option<DeadLetterKind>,
    /// Whose reason contains this text (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Dead-lettered at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    since: Option<jiff::Timestamp>,
    /// Dead-lettered before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: Option<jiff::Timestamp>,
    /// Of this document id.
    #[arg(long, value_name = "ID")]
    document: Option<String>,
}

impl Chosen {
    fn filter(&self) -> Filter {
        Filter {
            stage: self.stage.clone(),
            kind: self.kind,
            reason: self.reason.clone(),
            since: self.since,
            until: self.until,
            document: self.document.clone(),
            position: None,
        }
    }
}

/// The pipeline, where its dead letters are, and its redrive markers.
async fn open(target: &Target) -> anyhow::Result<(config::Pipeline, Origin, Markers)> {
    let mut pipeline = config::load(&target.config)?;
    if let Some(run) = &target.run {
        pipeline = crate::replay::replay_pipeline(pipeline, run)?;
    }
    let mut stores = vec![&pipeline.output];
    if let DeadLetterOutput::Store(store) = &pipeline.dead_letter {
        stores.push(store);
    }
    let s3 = pipeline::s3_for(&pipeline, &stores).await;
    let origin = match &pipeline.dead_letter {
        DeadLetterOutput::Store(store) => Origin::Store {
            store: pipeline::object_store(store, s3.as_ref()),
            // The live hosts' dead letters, and those of redrives that
            // failed again.
            prefixes: vec![
                format!("{}/dead-letters/", pipeline.name),
                format!("{}/redrive/dead-letters/", pipeline.name),
            ],
        },
        DeadLetterOutput::Kafka { topic } => {
            let Source::Kafka(settings) = &pipeline.source else {
                unreachable!("validation allows Kafka dead letters only with a Kafka source")
            };
            Origin::Kafka {
                settings: settings.clone(),
                topic: topic.clone(),
            }
        }
    };
    let markers = Markers::new(
        pipeline::object_store(&pipeline.output, s3.as_ref()),
        &pipeline.name,
    );
    Ok((pipeline, origin, markers))
}

async fn chosen_letters(origin: &Origin, filter: &Filter) -> anyhow::Result<Vec<DeadLetter>> {
    let letters = origin
        .read()
        .await
        .with_context(|| format!("reading dead letters from {}", origin.describe()))?;
    Ok(letters.into_iter().filter(|l| filter.matches(l)).collect())
}

/// One line of `weir dlq list`.
fn line(letter: &DeadLetter, redriven: bool) -> String {
    let mut reason: String = letter.reason.chars().take(100).collect();
    if reason.len() < letter.reason.len() {
        reason.push('…');
    }
    format!(
        "{position}  {at}  {kind}  stage={stage}  document={id}{redriven}  {reason}",
        position = letter.position,
        at = letter
            .at
            .map_or_else(|| "-".to_owned(), |at| at.to_string()),
        kind = letter.kind.as_str(),
        stage = letter.stage.as_deref().unwrap_or("-"),
        id = letter.id.as_deref().unwrap_or("-"),
        redriven = if redriven { "  (redriven)" } else { "" },
    )
}

/// Run a dead-letter command.
pub async fn run(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List { chosen, json } => {
            let (_, origin, markers) = open(&chosen.target).await?;
            let letters = chosen_letters(&origin, &chosen.filter()).await?;
            let redriven = markers.load().await?;
            for letter in &letters {
                let was = redriven.covers(letter);
                if json {
                    let mut value = serde_json::to_value(letter)?;
                    let object = value.as_object_mut().expect("a dead letter is an object");
                    object.remove("payload");
                    object.insert("redriven".into(), was.into());
                    println!("{value}");
                } else {
                    println!("{}", line(letter, was));
                }
            }
            if !json {
                let done = letters.iter().filter(|l| redriven.covers(l)).count();
                println!(
                    "{} dead letters ({done} redriven) in {}",
                    letters.len(),
                    origin.describe()
                );
            }
        }
        DlqCommand::Show { position, target } => {
            let (_, origin, markers) = open(&target).await?;
            let filter = Filter {
                position: Some(position.clone()),
                ..Filter::default()
            };
            let letter = chosen_letters(&origin, &filter)
                .await?
                .pop()
                .with_context(|| {
                    format!("no dead letter at {position} in {}", origin.describe())
                })?;
            println!("{}", serde_json::to_string_pretty(&letter)?);
            let redriven = markers.load().await?.covers(&letter);
            println!("redriven: {}", if redriven { "yes" } else { "no" });
        }
        DlqCommand::Redrive { chosen, dry_run } => {
            let (pipeline, origin, markers) = open(&chosen.target).await?;
            let letters = chosen_letters(&origin, &chosen.filter()).await?;
            if dry_run {
                let redriven = markers.load().await?;
                for letter in &letters {
                    println!("{}", line(letter, redriven.covers(letter)));
                }
                println!(
                    "weir dlq redrive: {} chosen (dry run: nothing done)",
                    letters.len()
                );
                return Ok(());
            }
            let assembled = pipeline::assemble(&pipeline).await?;
            let places = Places {
                live: pipeline::sink_under(&pipeline, &pipeline.name, assembled.s3.as_ref())?,
                redrive: Arc::new(pipeline::sink_under(
                    &pipeline,
                    &format!("{}/redrive", pipeline.name),
                    assembled.s3.as_ref(),
                )?),
            };
            let bar = crate::progress::counter_bar(letters.len() as u64, "dead letters");
            let done = redrive(&assembled, &pipeline, &places, &markers, letters, &|| {
                bar.inc(1)
            })
            .await?;
            bar.finish_and_clear();
            println!(
                "weir dlq redrive: {} chosen: {} written as results, {} dead-lettered again, \
                 {} already redriven, {} with a result already (both left alone); results: {}",
                done.chosen,
                done.results,
                done.dead_again,
                done.already,
                done.answered,
                places.redrive.describe_results()
            );
            if done.without_payload > 0 {
                println!(
                    "{} without their payload (too large for the dead-letter topic, or a line \
                     too long to hold), left alone: the records are at their positions in \
                     their source",
                    done.without_payload
                );
            }
        }
    }
    Ok(())
}
