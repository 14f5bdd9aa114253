//! The document plugins on real wiki pages (the bundled 206-page enwiki
//! dump): each plugin and the whole parse -> lang -> score chain, as WASM
//! components through the host runtime and as the same crates compiled
//! natively, in the same run. Throughput is in MB of *wikitext* per second
//! for every case, so the per-plugin figures add up like the chain's.
//!
//! Run: `cargo bench -p weir-tests --bench chain`

use weir::runtime::{DocRecord, Grants, Limits};
use weir_plugin_lang::Lang;
use weir_plugin_parse::Parse;
use weir_plugin_score::Score;
use weir_sdk::{LocalInstance, Transform};
use weir_tests::bench::{Comparison, Measurement, compare, measure, print_table};

const BATCH: usize = 32;

/// Run a native plugin over `inputs` in batches; returns its outputs.
fn native<T: Transform>(plugin: &mut LocalInstance<T>, inputs: &[DocRecord]) -> Vec<DocRecord> {
    weir_tests::bench::native(plugin, inputs, BATCH)
}

/// Run a WASM plugin instance over `inputs` in batches; returns its outputs.
fn wasm(instance: &mut weir::runtime::PluginInstance, inputs: &[DocRecord]) -> Vec<DocRecord> {
    inputs
        .chunks(BATCH)
        .flat_map(|chunk| instance.process(chunk).expect("no trap"))
        .flat_map(|outcome| outcome.expect("the sample pages process"))
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let pages = weir_tests::dump_records(&weir_tests::sample_dump());
    let docs = pages.len() as u64;
    let wikitext: u64 = pages.iter().map(|p| p.body.len() as u64).sum();
    println!(
        "## Document plugins on {docs} real enwiki pages ({:.1} MB of wikitext)",
        wikitext as f64 / 1e6
    );

    let mut native_parse = LocalInstance::<Parse>::new("{}").unwrap();
    let mut native_lang = LocalInstance::<Lang>::new("{}").unwrap();
    let mut native_score = LocalInstance::<Score>::new("{}").unwrap();
    let parsed = native(&mut native_parse, &pages);
    let languages = native(&mut native_lang, &parsed);

    let runtime = weir_tests::runtime();
    let instance = |name: &str| {
        weir_tests::load(&runtime, name)
            .instantiate(&Limits::default(), &Grants::default(), "{}")
            .unwrap()
    };
    let (mut wasm_parse, mut wasm_lang, mut wasm_score) =
        (instance("parse"), instance("lang"), instance("score"));
    assert_eq!(
        wasm(&mut wasm_parse, &pages),
        parsed,
        "WASM and native parse agree"
    );

    let chain = weir_tests::document_chain(&runtime);
    let mut worker = chain.start_worker().unwrap();
    // The same chain compiled without interruption checks, to measure what
    // enforcing deadlines costs (never run untrusted plugins this way).
    let unchecked_runtime = weir::runtime::Runtime::new(&weir::runtime::RuntimeOptions {
        interruptible: false,
        ..Default::default()
    })
    .unwrap();
    let unchecked_chain = weir_tests::document_chain(&unchecked_runtime);
    let mut unchecked_worker = unchecked_chain.start_worker().unwrap();
    let native_chain = |parse: &mut LocalInstance<Parse>,
                        lang: &mut LocalInstance<Lang>,
                        score: &mut LocalInstance<Score>| {
        let parsed = native(parse, &pages);
        let languages = native(lang, &parsed);
        native(score, &languages).len()
    };

    // Each plugin and the chain, native and WASM interleaved (see
    // `bench::compare`); an optional argument keeps only pairs whose name
    // starts with it (e.g. `-- lang`: not the chain), for profiling one case.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let mut compared: Vec<(&str, Comparison)> = Vec::new();
    let mut pair = |name: &'static str,
                    native_run: &mut dyn FnMut() -> usize,
                    wasm_run: &mut dyn FnMut() -> usize| {
        if filter.as_deref().is_some_and(|f| !name.starts_with(f)) {
            return;
        }
        let names = (format!("{name}, native"), format!("{name}, wasm"));
        let comparison = compare((&names.0, &names.1), docs, wikitext, native_run, wasm_run);
        compared.push((name, comparison));
    };
    pair(
        "parse",
        &mut || native(&mut native_parse, &pages).len(),
        &mut || wasm(&mut wasm_parse, &pages).len(),
    );
    pair(
        "lang",
        &mut || native(&mut native_lang, &parsed).len(),
        &mut || wasm(&mut wasm_lang, &parsed).len(),
    );
    pair(
        "score",
        &mut || native(&mut native_score, &languages).len(),
        &mut || wasm(&mut wasm_score, &languages).len(),
    );
    // The WASM chain runs through the host's chain worker, exactly as `weir
    // run` runs it.
    let run_worker = |worker: &mut weir::chain::ChainWorker| {
        weir_tests::bench::through_worker(worker, &pages, BATCH)
    };
    pair(
        "chain parse->lang->score",
        &mut || native_chain(&mut native_parse, &mut native_lang, &mut native_score),
        &mut || run_worker(&mut worker),
    );
    pair(
        "chain without deadline checks",
        &mut || native_chain(&mut native_parse, &mut native_lang, &mut native_score),
        &mut || run_worker(&mut unchecked_worker),
    );
    let measured: Vec<Measurement> = compared
        .iter()
        .flat_map(|(_, c)| [c.base.clone(), c.other.clone()])
        .collect();
    // The chain is the baseline; a filtered run without it uses its first case.
    let baseline = measured
        .iter()
        .find(|m| m.name.starts_with("chain"))
        .or(measured.first());
    if let Some(baseline) = baseline {
        print_table(
            "Throughput (MB/s of wikitext, docs/s)",
            &measured,
            &baseline.name.clone(),
        );
    }
    println!("\n| plugin | WASM / native throughput (median of interleaved pairs) |\n|---|---:|");
    for (name, comparison) in &compared {
        println!("| {name} | {:.2}x |", comparison.ratio);
    }

    // The studies below are not pairs: a filtered run (for profiling one
    // pair) leaves them out so that they do not drown the profile.
    if filter.is_some() {
        return;
    }

    // What language detection costs in lang's analysis, by sample size
    // (natively, on the parsed texts): the sample-size default is set from
    // these figures.
    let texts: Vec<String> = parsed
        .iter()
        .filter_map(|r| {
            let doc: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
            Some(doc["text"].as_str()?.to_owned())
        })
        .collect();
    let analyse = |name: &str, config: weir_plugin_lang::Config| {
        let mut lang = Lang::with_config(config);
        measure(name, texts.len() as u64, 0, || {
            texts
                .iter()
                .map(|t| lang.analyse(t).counts.words)
                .sum::<u64>()
        })
        .per_record()
    };
    let default = weir_plugin_lang::Config::default();
    let without = analyse(
        "lang analysis without detection",
        weir_plugin_lang::Config {
            min_detect_letters: usize::MAX,
            ..default.clone()
        },
    );
    println!(
        "\n| detection sample | detection cost per page (average over all pages) |\n|---|---:|"
    );
    for sample_bytes in [256, 512, 1024] {
        let with = analyse(
            &format!("lang analysis, detection sample {sample_bytes} bytes"),
            weir_plugin_lang::Config {
                sample_bytes,
                ..default.clone()
            },
        );
        println!(
            "| {sample_bytes} bytes | {:.1?} |",
            with.saturating_sub(without)
        );
    }

    // Model inference alone (features + linear model) on each article's lead,
    // without the JSON around it.
    let leads: Vec<(String, String)> = languages
        .iter()
        .filter_map(|r| {
            let doc: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
            let lead = doc["sections"][0]["text"].as_str()?.to_owned();
            Some((doc["title"].as_str().unwrap_or("").to_owned(), lead))
        })
        .collect();
    let model = Score::load(
        weir_plugin_score::Config::default(),
        weir_plugin_score::MODEL_BYTES,
    )
    .unwrap();
    let inference = measure(
        "score model inference only, native",
        leads.len() as u64,
        0,
        || {
            leads
                .iter()
                .map(|(t, l)| model.classify(t, l).top.len())
                .sum::<usize>()
        },
    );
    println!(
        "\nScore model inference alone (features + model on the lead): {:.1?} per document",
        inference.per_record()
    );
}
