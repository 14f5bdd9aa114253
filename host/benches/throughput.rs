//! The host's own cost per MB of wikitext, and weir next to WikiExtractor,
//! measured side by side in one run on the same input: the bundled
//! 206-page enwiki dump repeated `COPIES` times with fresh page ids, as a
//! plain XML file (neither tool pays for bz2).
//!
//! 1. From the dump, whole processes, CPU time (user + system) and wall,
//!    median of `RUNS` runs taken in turn:
//!    - WikiExtractor 3.1.0 (`--processes 1`), installed from PyPI into a
//!      virtual environment under `target/` on first use;
//!    - `weir run` with the `echo` test plugin (pass-through: the host's
//!      own work), with parse only, and with parse -> lang -> score;
//!    - and, in process on one thread, the least each of these runs could
//!      cost whatever the host does around its work: its plugins alone
//!      (WASM through the chain worker, and the same crates compiled
//!      natively) plus its promised outputs alone (compressing its own
//!      result lines, hashing the texts). WikiExtractor's CPU time over
//!      that is the best ratio any host could reach with these plugins and
//!      outputs.
//! 2. Kafka -> chain -> S3 against the file path, on the same events: the
//!    dump's events as JSONL through `weir run --every-event` to a local
//!    directory, and the same events ingested (bodies over 100 kB by
//!    reference, as `weir ingest` sends them) into a one-partition topic on
//!    a real tansu broker, through `weir replay` to a real s3s-fs server.
//!    The host's CPU time per MB on each path shows what Kafka and S3 cost
//!    the host itself, apart from the servers' load on the shared cores.
//!    Both paths also run on one event: their start-up (loading, the S3
//!    client, joining the group), which the per-MB figures leave out.
//!    Uploads go as over HTTPS, production's default (unsigned payloads;
//!    the test server speaks HTTP).
//!
//! Run: `cargo bench -p weir --bench throughput` (needs `python3` with
//! `venv`; Debian: `python3-venv`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use weir::chain::Chain;
use weir::runtime::DocRecord;
use weir::source::FileFormat;
use weir::source::FileSource;
use weir_plugin_lang::Lang;
use weir_plugin_parse::Parse;
use weir_plugin_score::Score;
use weir_sdk::LocalInstance;
use weir_tests::bench::{compare, native, through_worker};
use weir_tests::e2e::{DOCUMENT_STAGES, PROMPT_FETCHES, Scenario};
use weir_tests::process::{Case, Measured, in_turn, measure};
use weir_tests::services::Services;

const COPIES: usize = 10;
const RUNS: usize = 5;
const KAFKA_RUNS: usize = 5;
const WIKIEXTRACTOR: &str = "wikiextractor==3.1.0";
/// Page ids of copy `n` are the originals plus `n` times this.
const ID_STRIDE: u64 = 1_000_000_000;

/// Uploads as over HTTPS (production's default; the test server speaks
/// HTTP, where weir signs payloads unless told not to).
const SIGNING: &str = "sign_payloads = false";
const ECHO: &str = "[[stage]]\nname = \"echo\"\nplugin = \"echo\"\n";
const PARSE: &str = "[[stage]]\nname = \"parse\"\nplugin = \"parse\"\n";
/// Objects of 1000 records, cut by count alone: the copies of the dump
/// repeat every 206 records, which zstd compresses faster, so both paths
/// must cut the same objects for their CPU times to compare.
const BATCHING: &str = "[batching]\nmax_records = 1000\nmax_age_ms = 60000\n";

fn weir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_weir"))
}

/// The sample dump `COPIES` times, each copy's pages with ids of their own,
/// as plain XML; and its revisions' texts.
fn repeated_dump(dir: &Path) -> (PathBuf, Vec<String>) {
    let mut xml = String::new();
    std::io::Read::read_to_string(
        &mut bzip2::read::MultiBzDecoder::new(
            std::fs::File::open(weir_tests::sample_dump()).unwrap(),
        ),
        &mut xml,
    )
    .unwrap();
    let first = xml.find("<page>").expect("the dump has pages");
    let end = xml.rfind("</page>").expect("the dump has pages") + "</page>".len();
    let pages: Vec<&str> = xml[first..end]
        .split_inclusive("</page>")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let mut out = xml[..first].to_owned();
    for copy in 0..COPIES as u64 {
        for page in &pages {
            // The page id is the first <id> of a page (revision and
            // contributor ids follow it).
            let open = page.find("<id>").unwrap() + "<id>".len();
            let close = open + page[open..].find("</id>").unwrap();
            let id: u64 = page[open..close].parse().unwrap();
            out.push_str(&page[..open]);
            out.push_str(&(id + copy * ID_STRIDE).to_string());
            out.push_str(&page[close..]);
            out.push('\n');
        }
    }
    out.push_str(&xml[end..]);
    let path = dir.join("dump.xml");
    std::fs::write(&path, out).unwrap();
    let mut source = FileSource::open(&path, FileFormat::MediawikiXml).unwrap();
    let mut texts = Vec::new();
    loop {
        let batch = source.next_batch(256).unwrap();
        if batch.is_empty() {
            break;
        }
        for mut message in batch {
            let event = message.payload.decode(usize::MAX).unwrap();
            texts.extend(event.body);
        }
    }
    (path, texts)
}

/// Records per plugin call: the host's default `batch_size`.
const BATCH: usize = 64;

/// What zstd at the default level costs over a run's result lines
/// (`results`: its results folder), one call per object as the sink makes
/// them: the median of a side-by-side harness's samples on one thread.
/// Returns (time, result bytes).
fn compression_floor(name: &str, results: &Path) -> (Duration, usize) {
    let objects = weir_tests::object_bytes(results);
    let result_bytes = objects.iter().map(Vec::len).sum::<usize>();
    let time = weir_tests::bench::measure(name, objects.len() as u64, 0, || {
        for object in &objects {
            std::hint::black_box(
                zstd::bulk::compress(object, weir::sink::DEFAULT_ZSTD_LEVEL).unwrap(),
            );
        }
    })
    .per_iteration;
    (time, result_bytes)
}

/// The plugins of one run alone, on one thread, over the dump's records:
/// through the chain worker `weir run` uses (WASM; the sandbox boundary's
/// copies included) and, where `native` is given, the same crates compiled
/// natively, their samples interleaved. Returns (WASM, native).
fn plugins_alone(
    name: &str,
    pages: &[DocRecord],
    chain: &Arc<Chain>,
    native: Option<&mut dyn FnMut() -> usize>,
) -> (Duration, Option<Duration>) {
    let mut worker = chain.start_worker().unwrap();
    let wasm = || through_worker(&mut worker, pages, BATCH);
    let wasm_name = format!("{name}, wasm");
    let records = pages.len() as u64;
    match native {
        Some(native) => {
            let c = compare(
                (&format!("{name}, native"), &wasm_name),
                records,
                0,
                native,
                wasm,
            );
            (c.other.per_iteration, Some(c.base.per_iteration))
        }
        None => (
            weir_tests::bench::measure(&wasm_name, records, 0, wasm).per_iteration,
            None,
        ),
    }
}

/// What each `weir run` of the first table could cost at the very least,
/// whatever the host does around its work, measured in process on one
/// thread: its plugins alone ([`plugins_alone`]) plus its promised outputs
/// alone (compressing its own result lines, [`compression_floor`], and
/// SHA-256 of every revision's text, its content hash). Printed beside the
/// measured runs: WikiExtractor's CPU time over these is the best ratio
/// any host could reach with these plugins and these outputs.
///
/// `runs`: the first table's (name, CPU-s), in its order: WikiExtractor,
/// then the `echo`, parse and whole-chain runs, whose pipelines are named
/// `echo`, `parse` and `chain` (see [`local`]).
fn print_least_costs(dir: &Path, dump: &Path, texts: &[String], runs: &[(&str, f64)]) {
    let pages = weir_tests::dump_records(dump);
    let wikitext = texts.iter().map(String::len).sum::<usize>() as f64 / 1e6;
    let runtime = weir_tests::runtime();
    let limits = weir::runtime::Limits::default;
    let mut parse = LocalInstance::<Parse>::new("{}").unwrap();
    let mut lang = LocalInstance::<Lang>::new("{}").unwrap();
    let mut score = LocalInstance::<Score>::new("{}").unwrap();
    let pages_ref = &pages;
    let plugins = [
        plugins_alone(
            "echo",
            &pages,
            &weir_tests::chain(&runtime, &[("echo", "echo", limits())]),
            None,
        ),
        plugins_alone(
            "parse",
            &pages,
            &weir_tests::chain(&runtime, &[("parse", "parse", limits())]),
            Some(&mut || native(&mut parse, pages_ref, BATCH).len()),
        ),
        plugins_alone(
            "parse -> lang -> score",
            &pages,
            &weir_tests::document_chain(&runtime),
            Some(&mut || {
                let parsed = native(&mut parse, pages_ref, BATCH);
                let languages = native(&mut lang, &parsed, BATCH);
                native(&mut score, &languages, BATCH).len()
            }),
        ),
    ];
    let hash = weir_tests::bench::measure("sha-256, per text", texts.len() as u64, 0, || {
        for text in texts {
            std::hint::black_box(weir::digest::Digest::of(text.as_bytes()));
        }
    })
    .per_iteration
    .as_secs_f64();
    let compressed: Vec<(Duration, usize)> = runs[1..]
        .iter()
        .zip(["echo", "parse", "chain"])
        .map(|((name, _), run)| {
            compression_floor(
                &format!("zstd, {name}"),
                &dir.join(format!("out-{run}/{run}/results")),
            )
        })
        .collect();
    let extractor = runs[0].1;
    println!(
        "\n## The least each run could cost (in process, one thread; medians of a side-by-side harness's samples)\n\n\
         Plugins alone: through the chain worker `weir run` uses, in batches of {BATCH} \
         (native: the same crates compiled natively). Outputs: zstd level {} over the run's own \
         result lines, one call per object, and SHA-256 of every text ({hash:.3} s). Least = \
         plugins + outputs.\n\n\
         | run | plugins alone: WASM (native) | outputs: zstd + SHA-256 | least CPU-s: WASM (native) | MB per CPU-s at most | WikiExtractor's CPU-s / least: WASM (native) | measured / least |\n\
         |---|---:|---:|---:|---:|---:|---:|",
        weir::sink::DEFAULT_ZSTD_LEVEL
    );
    for ((name, measured), ((compress, result_bytes), (wasm, native))) in
        runs[1..].iter().zip(compressed.into_iter().zip(plugins))
    {
        let outputs = compress.as_secs_f64() + hash;
        let least = wasm.as_secs_f64() + outputs;
        let native_least = native.map(|n| n.as_secs_f64() + outputs);
        let or_dash = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".into(), f);
        println!(
            "| {name} | {:.3} ({}) | {:.3} + {hash:.3} ({:.1} MB) | {least:.3} ({}) | {:.0} | {:.1}x ({}) | {:.2}x |",
            wasm.as_secs_f64(),
            or_dash(native.map(|n| n.as_secs_f64()), &|n| format!("{n:.3}")),
            compress.as_secs_f64(),
            result_bytes as f64 / 1e6,
            or_dash(native_least, &|n| format!("{n:.3}")),
            wikitext / least,
            extractor / least,
            or_dash(native_least, &|n| format!("{:.1}x", extractor / n)),
            measured / least,
        );
    }
}

/// WikiExtractor in a virtual environment under `target/`, installed on
/// first use.
fn wikiextractor() -> PathBuf {
    let venv = weir_tests::workspace_root().join("target/bench-venv");
    let bin = venv.join("bin/wikiextractor");
    if !bin.is_file() {
        let ok = |command: &mut Command| {
            let status = command.status().expect("python3 runs");
            assert!(status.success(), "{command:?} failed");
        };
        ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        ok(Command::new(venv.join("bin/pip")).args(["install", "-q", WIKIEXTRACTOR]));
    }
    bin
}

/// A pipeline file `dir/{name}.toml` with `source`, `stages` and `output`
/// (TOML tables).
fn pipeline(dir: &Path, name: &str, source: &str, stages: &str, output: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[pipeline]\nname = \"{name}\"\n{source}\n[runtime]\nplugin_dir = \"{}\"\n\
             compiled_cache_dir = \"{}\"\n{stages}\n{output}\n{BATCHING}",
            weir_tests::plugin_dir().display(),
            weir_tests::workspace_root()
                .join("target/weir-compiled")
                .display(),
        ),
    )
    .unwrap();
    path
}

/// A local pipeline reading `input` into `dir/out-{name}`.
fn local(dir: &Path, name: &str, input: &Path, stages: &str) -> PathBuf {
    let out = dir.join(format!("out-{name}"));
    let output = format!(
        "[output.local]\ndir = \"{0}\"\n[dead_letter.local]\ndir = \"{0}\"",
        out.display()
    );
    let source = format!("[source.file]\npath = \"{}\"", input.display());
    pipeline(dir, name, &source, stages, &output)
}

/// `weir run --every-event` on a local pipeline, into an empty output
/// directory.
fn run_local(config: &Path) -> Measured {
    let name = config.file_stem().unwrap().to_string_lossy();
    std::fs::remove_dir_all(config.with_file_name(format!("out-{name}"))).ok();
    let mut command = Command::new(weir());
    command
        .args(["run", "--every-event", "-c"])
        .arg(config)
        .env("WEIR_LOG", "warn");
    measure(command)
}

fn run_wikiextractor(bin: &Path, dump: &Path, dir: &Path) -> Measured {
    let out = dir.join("out-wikiextractor");
    std::fs::remove_dir_all(&out).ok();
    let mut command = Command::new(bin);
    command
        .args(["--processes", "1", "--quiet", "-o"])
        .arg(&out)
        .arg(dump);
    measure(command)
}

fn mb_per_cpu_s(bytes: u64, m: &Measured) -> f64 {
    bytes as f64 / 1e6 / m.cpu.as_secs_f64()
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (dump, texts) = repeated_dump(dir);
    let wikitext = texts.iter().map(|t| t.len() as u64).sum::<u64>();
    let extractor = wikiextractor();
    let echo = local(dir, "echo", &dump, ECHO);
    let parse = local(dir, "parse", &dump, PARSE);
    let chain = local(dir, "chain", &dump, DOCUMENT_STAGES);
    // Compile the plugins once, outside the measurements.
    run_local(&chain);
    run_local(&echo);

    println!(
        "## From a dump ({} pages, {:.1} MB of wikitext; median of {RUNS} runs, taken in turn)\n",
        206 * COPIES,
        wikitext as f64 / 1e6
    );
    let mut cases: Vec<Case<'_>> = vec![
        (
            "WikiExtractor 3.1.0, `--processes 1`",
            Box::new(|| run_wikiextractor(&extractor, &dump, dir)),
        ),
        (
            "`weir run`, `echo` (pass-through)",
            Box::new(|| run_local(&echo)),
        ),
        ("`weir run`, parse", Box::new(|| run_local(&parse))),
        (
            "`weir run`, parse -> lang -> score",
            Box::new(|| run_local(&chain)),
        ),
    ];
    let names: Vec<&str> = cases.iter().map(|(name, _)| *name).collect();
    let measured = in_turn(RUNS, &mut cases);
    println!(
        "| run | CPU-s | wall | MB per CPU-s | WikiExtractor's CPU-s / this |\n|---|---:|---:|---:|---:|"
    );
    let baseline = measured[0].cpu.as_secs_f64();
    for (name, m) in names.iter().zip(&measured) {
        println!(
            "| {name} | {:.2} | {:.2} s | {:.0} | {:.1}x |",
            m.cpu.as_secs_f64(),
            m.wall.as_secs_f64(),
            mb_per_cpu_s(wikitext, m),
            baseline / m.cpu.as_secs_f64()
        );
    }
    let runs: Vec<(&str, f64)> = names
        .iter()
        .zip(&measured)
        .map(|(name, m)| (*name, m.cpu.as_secs_f64()))
        .collect();
    print_least_costs(dir, &dump, &texts, &runs);

    // Kafka -> S3 against the file path, on the same events.
    let services = Services::start();
    // One partition: its objects are the file path's objects.
    let scenario = Scenario::new(&services, "bench-throughput", 1, BATCHING).await;
    scenario.ingest(&weir(), &services, &dump);
    let mut lines = Vec::new();
    for payload in weir_tests::dump_events(&dump) {
        lines.extend(payload);
        lines.push(b'\n');
    }
    let events = dir.join("events.jsonl");
    std::fs::write(&events, &lines).unwrap();
    // One event, on both paths: what a run costs before its first record
    // (loading, the S3 client, joining the group), to tell the per-MB cost
    // from the fixed one.
    let first_line = lines.split_inclusive(|b| *b == b'\n').next().unwrap();
    let one_event = dir.join("one-event.jsonl");
    std::fs::write(&one_event, first_line).unwrap();
    let started = Scenario::new(&services, "bench-start", 1, BATCHING).await;
    started.ingest(&weir(), &services, &one_event);
    println!(
        "\n## Kafka -> chain -> S3 and the file path (the same {} events; host CPU only; median of {KAFKA_RUNS})\n",
        206 * COPIES
    );
    println!(
        "Start-up: the same runs on one event. Per MB: (CPU - start-up) / MB.\n\n\
         | stages | file: CPU-s | Kafka -> S3: CPU-s | extra | start-up: file / Kafka | file: MB per CPU-s | Kafka -> S3: MB per CPU-s | extra per MB |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mb = wikitext as f64 / 1e6;
    for (label, stages) in [("echo", ECHO), ("parse -> lang -> score", DOCUMENT_STAGES)] {
        let name = label.split(' ').next().unwrap();
        let file = local(dir, &format!("file-{name}"), &events, stages);
        let file_start = local(dir, &format!("file-start-{name}"), &one_event, stages);
        let kafka = kafka_pipeline(dir, &format!("kafka-{name}"), &scenario, stages);
        let kafka_start = kafka_pipeline(dir, &format!("kafka-start-{name}"), &started, stages);
        let env = services.env();
        let measured = in_turn(
            KAFKA_RUNS,
            &mut [
                ("file", Box::new(|| run_local(&file))),
                ("kafka", Box::new(replayer(&kafka, env))),
                ("file, one event", Box::new(|| run_local(&file_start))),
                ("kafka, one event", Box::new(replayer(&kafka_start, env))),
            ],
        );
        let cpu: Vec<f64> = measured.iter().map(|m| m.cpu.as_secs_f64()).collect();
        let per_mb_file = mb / (cpu[0] - cpu[2]);
        let per_mb_kafka = mb / (cpu[1] - cpu[3]);
        println!(
            "| {label} | {:.3} | {:.3} | {:+.0}% | {:.3} / {:.3} | {per_mb_file:.0} | {per_mb_kafka:.0} | {:+.0}% |",
            cpu[0],
            cpu[1],
            100.0 * (cpu[1] / cpu[0] - 1.0),
            cpu[2],
            cpu[3],
            100.0 * (per_mb_file / per_mb_kafka - 1.0)
        );
    }
}

/// A pipeline replaying `scenario`'s topic to its bucket, as over HTTPS.
fn kafka_pipeline(dir: &Path, name: &str, scenario: &Scenario, stages: &str) -> PathBuf {
    let source = format!(
        "[source.kafka]\ntopic = \"{}\"\ngroup = \"{}\"{PROMPT_FETCHES}",
        scenario.topic, scenario.group
    );
    let output = format!(
        "[output.s3]\nbucket = \"{0}\"\n[dead_letter.s3]\nbucket = \"{0}\"\n[s3]\nregion = \"us-east-1\"\n{SIGNING}",
        scenario.bucket
    );
    pipeline(dir, name, &source, stages, &output)
}

/// What runs `weir replay` of `pipeline`, each time with a run of its own.
fn replayer<'a>(pipeline: &'a Path, env: &'a [(String, String)]) -> impl FnMut() -> Measured + 'a {
    let mut run = 0;
    move || {
        run += 1;
        let mut command = Command::new(weir());
        command
            .args(["replay", "-c"])
            .arg(pipeline)
            .args(["--run", &format!("r{run}")])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("WEIR_LOG", "warn");
        let m = measure(command);
        assert!(m.stdout.contains("complete"), "{}", m.stdout);
        m
    }
}
