//! What each running host reports about its plugin versions, for `weir
//! plugin status`: one small object per host under the pipeline's folder
//! in the registry, written by the host that owns it (at start, after each
//! swap attempt, and as a heartbeat) and deleted when it stops cleanly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One host's report. Unknown fields are ignored, not refused: hosts of a
/// newer version write reports an older `weir plugin status` still reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStatus {
    /// The host (instance id, or host name and process id).
    pub host: String,
    /// When it wrote this report (RFC 3339).
    pub updated_at: String,
    /// The version each plugin it follows (`name@active`) runs at.
    pub running: BTreeMap<String, String>,
    /// The last active versions it could not run, and why (cleared by the
    /// next successful swap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
    /// Its partitions still on an older chain than the one it runs: the
    /// new chain could not start there yet (they try again before each
    /// batch).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub partitions_behind: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Active versions a host refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    /// The versions it was asked to run.
    pub versions: BTreeMap<String, String>,
    /// Why it did not.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
}
