//! Support code shared by weir's integration tests and benchmarks: where the
//! built plugin components are, and small constructors for test data.
//!
//! The plugin components are built by the `weir` crate's build script as part
//! of every `cargo build`/`cargo test`, so tests never need a manual step.

use std::path::PathBuf;

use weir::runtime::{DocRecord, LoadedPlugin, Runtime, RuntimeOptions};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace root")
        .to_owned()
}

/// Where the build script installs plugin components (`<target>/wasm`).
pub fn plugin_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("wasm")
}

/// The component file of plugin `name` (e.g. `parse`, `echo`, `hostile`).
pub fn plugin_path(name: &str) -> PathBuf {
    let path = plugin_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: plugins are built by `cargo build` (host/build.rs)",
        path.display()
    );
    path
}

/// A runtime with default options and no compiled-artifact cache.
pub fn runtime() -> Runtime {
    Runtime::new(&RuntimeOptions::default()).expect("engine starts")
}

/// Load plugin `name` into `runtime`.
pub fn load(runtime: &Runtime, name: &str) -> LoadedPlugin {
    runtime
        .load_file(&plugin_path(name))
        .unwrap_or_else(|e| panic!("load {name}: {e}"))
}

/// A text record with the given id and body.
pub fn text_record(id: &str, body: &str) -> DocRecord {
    DocRecord {
        id: id.to_owned(),
        revision: 1,
        content_type: "text/plain".to_owned(),
        body: body.as_bytes().to_vec(),
        metadata: Vec::new(),
    }
}
