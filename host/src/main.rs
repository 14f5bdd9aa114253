//! The `weir` binary: parse arguments, set up logging, run the command.

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = weir::cli::Cli::parse();
    weir::logging::init();
    weir::cli::run(cli).await
}
