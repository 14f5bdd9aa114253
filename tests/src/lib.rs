//! Support code shared by weir's integration tests and benchmarks: where the
//! built plugin components are, and small constructors for test data.
//! Modules: [`services`] (the broker and S3 server, started once per test
//! binary), [`e2e`] (scenarios and hosts), [`process`] (child processes
//! and their CPU time), [`bench`] (a side-by-side harness), [`browser`] (a
//! headless Chromium), and [`control_record`] (a transaction marker written
//! over the Kafka protocol, which the test broker takes no other way).
//!
//! The plugin components are built by the `weir` crate's build script as part
//! of every `cargo build`/`cargo test`, so tests never need a manual step.

pub mod bench;
pub mod browser;
pub mod control_record;
pub mod e2e;
pub mod process;
pub mod services;

use std::path::{Path, PathBuf};

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

/// Write `dir/name` (and return its path): a local pipeline `bench` that
/// runs the document chain (parse -> lang -> score) over the JSONL file
/// `events`, with results in `dir/out`; `extra` is appended.
pub fn local_pipeline(dir: &Path, name: &str, events: &Path, extra: &str) -> PathBuf {
    let path = dir.join(name);
    let out = dir.join("out");
    std::fs::write(
        &path,
        format!(
            "[pipeline]\nname = \"bench\"\n[source.file]\npath = \"{}\"\n[runtime]\nplugin_dir = \"{}\"\n\
             {}[output.local]\ndir = \"{out}\"\n[dead_letter.local]\ndir = \"{out}\"\n{extra}",
            events.display(),
            plugin_dir().display(),
            e2e::DOCUMENT_STAGES,
            out = out.display(),
        ),
    )
    .expect("write the pipeline file");
    path
}

/// The bundled example's change events (41 events: 40 upserts, 1 delete).
pub fn sample_events() -> PathBuf {
    workspace_root().join("examples/wiki/data/enwiki-sample-events.jsonl")
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

/// A chain of single-plugin stages with default retries and a batch size of
/// 64; `stages` are (stage name, plugin name, limits).
pub fn chain(
    runtime: &Runtime,
    stages: &[(&str, &str, weir::runtime::Limits)],
) -> std::sync::Arc<weir::chain::Chain> {
    let stages = stages
        .iter()
        .map(|(name, plugin, limits)| weir::chain::Stage {
            name: (*name).to_owned(),
            plugin: std::sync::Arc::new(load(runtime, plugin)),
            config_json: "{}".to_owned(),
            limits: limits.clone(),
            grants: weir::runtime::Grants::default(),
            retries: 2,
            batch_size: 64,
            grants_identity: None,
            cache: false,
        })
        .collect();
    match weir::chain::Chain::new(stages) {
        Ok(chain) => std::sync::Arc::new(chain),
        Err(errors) => panic!("invalid test chain: {errors:?}"),
    }
}

/// Read every line of every `.jsonl.zst` (or `.jsonl`) object under `dir`,
/// in key order, as JSON values.
pub fn read_jsonl_objects(dir: &Path) -> Vec<serde_json::Value> {
    object_bytes(dir)
        .iter()
        .flat_map(|bytes| {
            std::str::from_utf8(bytes)
                .expect("objects are UTF-8")
                .lines()
                .map(|l| serde_json::from_str(l).expect("each line is JSON"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The bytes of every object under `dir` (a local output), in key order:
/// `.zst` objects decompressed, others as they are.
pub fn object_bytes(dir: &Path) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    collect_files(dir, &mut files);
    files.sort();
    files
        .iter()
        .map(|path| {
            let raw = std::fs::read(path).expect("read object");
            if path.extension().is_some_and(|e| e == "zst") {
                zstd::decode_all(raw.as_slice()).expect("valid zstd")
            } else {
                raw
            }
        })
        .collect()
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The bundled MediaWiki dump (206 real English Wikipedia pages).
pub fn sample_dump() -> PathBuf {
    workspace_root().join("examples/wiki/data/enwiki-sample-pages-articles.xml.bz2")
}

/// Every page of a MediaWiki dump as the chain input record the host would
/// build (through the dump reader and the change-event decoder).
pub fn dump_records(path: &Path) -> Vec<DocRecord> {
    dump_events(path)
        .iter()
        .map(|payload| {
            let event = weir::event::decode(payload, usize::MAX / 2).expect("dump events decode");
            DocRecord {
                id: event.id.clone(),
                revision: event.revision,
                content_type: "text/x-wiki".into(),
                metadata: event.metadata(),
                body: event.body.unwrap_or_default().into_bytes(),
            }
        })
        .collect()
}

/// Every revision of a MediaWiki dump as the change event (JSON) the dump
/// reader makes of it.
pub fn dump_events(path: &Path) -> Vec<Vec<u8>> {
    let mut source = weir::source::mediawiki::DumpSource::open(path).expect("open the dump");
    let mut events = Vec::new();
    loop {
        let batch = source.next_batch(256).expect("read the dump");
        if batch.is_empty() {
            return events;
        }
        events.extend(
            batch
                .into_iter()
                .map(|message| message.payload.into_bytes()),
        );
    }
}

/// The bundled dump's events as JSONL, `copies` times, each copy's
/// documents with ids of their own (`{id}#{copy}`): no two events are the
/// same work, for event mode or the stage cache.
pub fn distinct_dump_events(copies: usize) -> Vec<u8> {
    let events: Vec<serde_json::Value> = dump_events(&sample_dump())
        .iter()
        .map(|payload| serde_json::from_slice(payload).expect("the dump reader makes JSON"))
        .collect();
    let mut out = Vec::new();
    for copy in 0..copies {
        for event in &events {
            let mut event = event.clone();
            let id = format!("{}#{copy}", event["id"].as_str().expect("events have ids"));
            event["id"] = serde_json::Value::from(id);
            out.extend(serde_json::to_vec(&event).expect("serialise an event"));
            out.push(b'\n');
        }
    }
    out
}

/// [`distinct_dump_events`] written to `dir/events.jsonl`: the file and its
/// size in bytes.
pub fn distinct_dump_events_file(dir: &Path, copies: usize) -> (PathBuf, u64) {
    let out = distinct_dump_events(copies);
    let path = dir.join("events.jsonl");
    std::fs::write(&path, &out).expect("write the events file");
    (path, out.len() as u64)
}

/// The document chain (parse -> lang -> score) with default limits.
pub fn document_chain(runtime: &Runtime) -> std::sync::Arc<weir::chain::Chain> {
    let limits = weir::runtime::Limits::default;
    chain(
        runtime,
        &[
            ("parse", "parse", limits()),
            ("lang", "lang", limits()),
            ("score", "score", limits()),
        ],
    )
}

/// The SDK's record for a host record (a copy: the native side of a
/// native-vs-WASM comparison gets its own input, as the WASM call does).
pub fn sdk_record(r: &DocRecord) -> weir_sdk::Record {
    weir_sdk::Record {
        id: r.id.clone(),
        revision: r.revision,
        content_type: r.content_type.clone(),
        body: r.body.clone(),
        metadata: r.metadata.clone(),
    }
}

/// The host record for an SDK record.
pub fn doc_record(r: weir_sdk::Record) -> DocRecord {
    DocRecord {
        id: r.id,
        revision: r.revision,
        content_type: r.content_type,
        body: r.body,
        metadata: r.metadata,
    }
}
