//! Progress bars of long commands (`weir replay`), on standard error;
//! hidden when it is not a terminal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::StageCache;
use crate::replay::Bounds;

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(250);

/// A bar counting `total` items of `what`.
pub fn counter_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{elapsed_precise}} [{{wide_bar}}] {{pos}}/{{len}} {what} ({{per_sec}}, ETA {{eta}})"
        ))
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Show a replay's progress until aborted: records committed by the group
/// (all replicas) out of the window's, their rate and the time left, the MB/s
/// read by this process, and each cached stage's hit rate.
pub async fn replay_bar(partitions: usize, bounds: Arc<Bounds>, cache: Option<Arc<StageCache>>) {
    let bar = indicatif::ProgressBar::new(bounds.total());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} records ({per_sec}, ETA {eta}) {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let started = Instant::now();
    loop {
        let (_, bytes) = bounds.handed();
        let rate = bytes as f64 / 1e6 / started.elapsed().as_secs_f64().max(1e-3);
        let mut message = format!("{partitions} partitions, {rate:.1} MB/s");
        if let Some(cache) = &cache {
            for (stage, hits, misses) in cache.tallies() {
                let ratio = 100.0 * hits as f64 / (hits + misses).max(1) as f64;
                message.push_str(&format!(", {stage} {ratio:.0}% cached"));
            }
        }
        bar.set_position(bounds.committed());
        bar.set_message(message);
        tokio::time::sleep(TICK).await;
    }
}
