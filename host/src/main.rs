//! The `weir` binary: parse arguments, set up logging, run the command.

use clap::Parser as _;

/// mimalloc, not the system's allocator: a run moves tens of MB of bodies,
/// packs and result objects through buffers of every size, and glibc's
/// allocator maps and unmaps its large ones afresh, so the kernel's page
/// faults and zeroing were two fifths of a warm replay's CPU
/// (docs/performance.md, "Replay and the stage cache"). Its version 2:
/// version 3's defaults decommit freed memory, and a cold run then spent
/// twice the system's CPU re-faulting it (docs/decisions.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = weir::cli::Cli::parse();
    weir::logging::init();
    weir::cli::run(cli).await
}
