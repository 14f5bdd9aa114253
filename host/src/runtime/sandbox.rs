//! What a plugin instance may use: its limits and its capability grants, and
//! the per-instance store state that enforces them.
//!
//! Default-deny: with [`Grants::default`] an instance has no preopened
//! directories, no environment, no sockets, closed stdin, discarded
//! stdout/stderr, a frozen clock (always the Unix epoch) and deterministic
//! randomness, which makes a plugin a pure function of its config and input
//! (the property the content-addressed cache relies on). Each grant lifts
//! exactly one of these.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;

use super::deadline::CallClock;
use super::log_budget::{CallLog, DROPPED_COUNTER, LINES_PER_CALL, LINES_PER_SECOND, LogBudget};
use crate::counters::Counters;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{
    Deterministic, FsPerms, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder,
    WasiCtxView, WasiView,
};

/// Resource limits for one plugin instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Maximum size of any one linear memory of the instance, in bytes.
    pub max_memory_bytes: usize,
    /// Wall-clock budget for one `process` call (one batch).
    pub deadline: Duration,
    /// Optional fuel (roughly: wasm instructions) budget per `process` call.
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_memory_bytes: 256 << 20,
            deadline: Duration::from_secs(10),
            fuel: None,
        }
    }
}

/// Capabilities granted to a plugin beyond the default-deny sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Let the plugin write to the host's stdout/stderr.
    pub inherit_stdio: bool,
    /// Environment variables visible to the plugin (name, value).
    pub env: Vec<(String, String)>,
    /// Host directories visible read-only: (host path, guest path).
    pub read_only_dirs: Vec<(PathBuf, String)>,
    /// Real wall and monotonic clocks instead of a frozen clock.
    pub clocks: bool,
    /// Real (secure) randomness instead of a fixed deterministic stream.
    pub random: bool,
}

impl Grants {
    /// Whether a plugin with these grants computes the same outputs from
    /// the same input every time (no real clocks, no real randomness): the
    /// condition for caching them.
    pub fn deterministic(&self) -> bool {
        !self.clocks && !self.random
    }

    /// The digest of what these grants let a plugin read: each environment
    /// variable (name and value) and each read-only directory (guest path,
    /// and every file's path and contents, in name order). `None` when they
    /// grant nothing to read. A new model file in a granted directory is a
    /// new identity, so cached outputs of the old model are not reused.
    /// Symbolic links are followed, as the plugin's reads follow them: a
    /// `current -> v3` link pointed back at `v2` is a new identity.
    pub fn identity(&self) -> std::io::Result<Option<crate::digest::Digest>> {
        if self.env.is_empty() && self.read_only_dirs.is_empty() {
            return Ok(None);
        }
        let mut parts: Vec<Vec<u8>> = Vec::new();
        for (name, value) in &self.env {
            parts.extend([
                b"env".to_vec(),
                name.clone().into_bytes(),
                value.clone().into_bytes(),
            ]);
        }
        for (host, guest) in &self.read_only_dirs {
            parts.extend([b"dir".to_vec(), guest.clone().into_bytes()]);
            for entry in walkdir::WalkDir::new(host)
                .follow_links(true)
                .sort_by_file_name()
            {
                let entry = entry.map_err(std::io::Error::other)?;
                if entry.file_type().is_file() {
                    let relative = entry.path().strip_prefix(host).unwrap_or(entry.path());
                    parts.push(relative.to_string_lossy().into_owned().into_bytes());
                    parts.push(std::fs::read(entry.path())?);
                }
            }
        }
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        Ok(Some(crate::digest::Digest::of_parts(&parts)))
    }
}

/// Per-store state: WASI context, resource table, limiter and what the
/// plugin reported through the host imports.
pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
    /// `name@version (sha256:…)`, attached to every log line of the plugin.
    pub(super) label: Arc<str>,
    /// Counters reported since the last drain.
    pub(super) counters: Counters,
    /// The last panic message the SDK reported, if any.
    pub(super) last_panic: Option<String>,
    /// The log budget of the plugin, shared by all its instances.
    pub(super) log_budget: Arc<LogBudget>,
    /// This instance's log lines in the call under way.
    pub(super) call_log: CallLog,
    /// When the call under way started, for its deadline.
    pub(super) call_clock: CallClock,
}

impl StoreState {
    /// Build the state for one instance. Fails only if a granted directory
    /// cannot be opened.
    pub(super) fn new(
        label: Arc<str>,
        limits: &Limits,
        grants: &Grants,
        log_budget: Arc<LogBudget>,
    ) -> std::io::Result<Self> {
        Ok(StoreState {
            wasi: wasi_context(grants)?,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.max_memory_bytes),
            label,
            counters: Counters::default(),
            last_panic: None,
            log_budget,
            call_log: CallLog::default(),
            call_clock: CallClock::start(),
        })
    }

    /// End a call into the instance: lines its log budget dropped are
    /// counted, and said once.
    pub(super) fn end_call(&mut self) {
        let dropped = self.call_log.finish();
        if dropped > 0 {
            self.counters.add(DROPPED_COUNTER, dropped);
            tracing::warn!(
                plugin = &*self.label,
                dropped,
                "plugin log lines dropped in this call (at most {LINES_PER_CALL} a call, \
                 {LINES_PER_SECOND}/s per plugin; counted as `{DROPPED_COUNTER}`)"
            );
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn wasi_context(grants: &Grants) -> std::io::Result<WasiCtx> {
    let mut builder = WasiCtxBuilder::new();
    // Explicit even where they are today's defaults: the sandbox must not
    // widen silently if a wasmtime-wasi upgrade changes a default.
    builder
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if grants.inherit_stdio {
        builder.inherit_stdout().inherit_stderr();
    }
    builder.envs(&grants.env);
    for (host, guest) in &grants.read_only_dirs {
        builder
            .preopened_dir(host, guest, FsPerms::ReadOnly)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", host.display())))?;
    }
    if !grants.clocks {
        builder.wall_clock(FrozenClock).monotonic_clock(FrozenClock);
    }
    if !grants.random {
        builder
            .secure_random(Deterministic::new(FIXED_RANDOM_STREAM.to_vec()))
            .insecure_random(Deterministic::new(FIXED_RANDOM_STREAM.to_vec()))
            .insecure_random_seed(0x7765_6972_7765_6972);
    }
    Ok(builder.build())
}

/// The bytes a plugin without the `random` grant sees, repeated. Any fixed
/// value works; this one is not all zeros so hash seeds are not degenerate.
const FIXED_RANDOM_STREAM: [u8; 32] = *b"weir: deterministic plugin seed.";

/// A clock stuck at the Unix epoch, for plugins without the `clocks` grant.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Enforces [`Limits::max_memory_bytes`] and remembers a refusal, so that the
/// trap that usually follows (the guest's allocator aborts) can be reported
/// as "memory limit exceeded" rather than "unreachable executed".
pub(super) struct MemoryLimiter {
    max_memory_bytes: usize,
    /// The size the plugin last asked for and was refused.
    pub(super) refused: Option<usize>,
    /// The largest memory granted so far (the instance's high-water mark).
    pub(super) peak: usize,
}

/// Tables hold function references; no sane plugin needs more.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl MemoryLimiter {
    fn new(max_memory_bytes: usize) -> Self {
        MemoryLimiter {
            max_memory_bytes,
            refused: None,
            peak: 0,
        }
    }

    pub(super) fn max_memory_bytes(&self) -> usize {
        self.max_memory_bytes
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            // Refuse (memory.grow returns -1) rather than trap: a plugin that
            // handles allocation failure keeps running.
            self.refused = Some(desired);
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a stage may read is part of its identity: a granted variable's
    /// value or a granted file's contents changes it.
    #[test]
    fn the_identity_of_grants_covers_what_a_plugin_can_read() {
        assert_eq!(Grants::default().identity().unwrap(), None);
        let models = tempfile::tempdir().unwrap();
        std::fs::write(models.path().join("model.bin"), b"weights v1").unwrap();
        let grants = |value: &str| Grants {
            env: vec![("MODEL".into(), value.into())],
            read_only_dirs: vec![(models.path().to_path_buf(), "/models".into())],
            ..Grants::default()
        };
        let base = grants("topic")
            .identity()
            .unwrap()
            .expect("something to read");
        assert_eq!(grants("topic").identity().unwrap(), Some(base));
        assert_ne!(grants("other").identity().unwrap(), Some(base));
        std::fs::write(models.path().join("model.bin"), b"weights v2").unwrap();
        let new_model = grants("topic").identity().unwrap();
        assert_ne!(new_model, Some(base));
        std::fs::write(models.path().join("extra.txt"), b"").unwrap();
        assert_ne!(grants("topic").identity().unwrap(), new_model);
        // A link to a model version is followed: pointing it at another
        // version is a new identity (links used to be left out).
        for version in ["v2", "v3"] {
            let dir = models.path().join(version);
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("model.bin"), version).unwrap();
        }
        let current = models.path().join("current");
        std::os::unix::fs::symlink("v3", &current).unwrap();
        let on_v3 = grants("topic").identity().unwrap();
        std::fs::remove_file(&current).unwrap();
        std::os::unix::fs::symlink("v2", &current).unwrap();
        assert_ne!(grants("topic").identity().unwrap(), on_v3);
        // Clocks or randomness make a stage impossible to cache.
        assert!(grants("topic").deterministic());
        let clocks = Grants {
            clocks: true,
            ..Grants::default()
        };
        assert!(!clocks.deterministic());
    }
}
