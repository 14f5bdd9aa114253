//! The most recent dead letters, kept in memory for the status page.
//!
//! Invariant: at most [`KEEP`] entries, each with a reason cut to
//! [`MAX_REASON`] bytes; never the payload (documents stay out of the page).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

use crate::dlq::DeadLetter;

/// Dead letters kept.
const KEEP: usize = 50;

/// Longest reason kept, in bytes.
const MAX_REASON: usize = 500;

/// What the status page shows of a dead letter.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RecentDeadLetter {
    /// When the host dead-lettered it (RFC 3339).
    pub(crate) at: String,
    /// Input position, `topic/partition@offset`.
    pub(crate) position: String,
    pub(crate) id: Option<String>,
    pub(crate) stage: Option<String>,
    pub(crate) plugin: Option<String>,
    pub(crate) kind: &'static str,
    pub(crate) reason: String,
}

static RECENT: Mutex<VecDeque<RecentDeadLetter>> = Mutex::new(VecDeque::new());

/// Remember `dead_letter` as the newest.
pub(crate) fn remember(dead_letter: &DeadLetter) {
    let mut reason = dead_letter.reason.clone();
    if reason.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push('…');
    }
    let entry = RecentDeadLetter {
        at: jiff::Timestamp::now().to_string(),
        position: dead_letter.position.to_string(),
        id: dead_letter.id.clone(),
        stage: dead_letter.stage.clone(),
        plugin: dead_letter.plugin.clone(),
        kind: dead_letter.kind.as_str(),
        reason,
    };
    let mut recent = RECENT.lock().expect("not poisoned");
    if recent.len() == KEEP {
        recent.pop_back();
    }
    recent.push_front(entry);
}

/// The recent dead letters, newest first.
pub(crate) fn recent() -> Vec<RecentDeadLetter> {
    RECENT
        .lock()
        .expect("not poisoned")
        .iter()
        .cloned()
        .collect()
}
