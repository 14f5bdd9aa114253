//! The `weir` command line: argument parsing and the commands' top level.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::{config, pipeline};

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
    /// Run a pipeline to the end of its input and print a summary.
    Run {
        /// The pipeline file.
        #[arg(short, long, value_name = "PIPELINE.toml")]
        config: PathBuf,
    },
    /// Check a pipeline file (syntax, values, files, plugin chain) and report
    /// every problem with its location.
    Validate {
        /// The pipeline file.
        #[arg(short, long, value_name = "PIPELINE.toml")]
        config: PathBuf,
    },
}

/// Run the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config } => {
            let pipeline = config::load(&config)?;
            let assembled = pipeline::assemble(&pipeline)?;
            let summary = pipeline::run_file(&pipeline, &assembled)
                .await
                .with_context(|| format!("pipeline {}", pipeline.name))?;
            for ((stage, counter), value) in &summary.stats.counters {
                tracing::info!(stage, counter, value, "plugin counter");
            }
            println!("weir run {}: {}", pipeline.name, summary.line());
            Ok(())
        }
        Command::Validate { config } => {
            let pipeline = config::load(&config)?;
            let assembled = pipeline::assemble(&pipeline)?;
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
    }
}
