//! The document chain (parse -> lang -> score) as WASM components through the
//! host's chain worker, on the bundled real enwiki pages:
//! - golden test: the outputs for the first pages match `golden/chain.jsonl`
//!   byte for byte (regenerate with `WEIR_BLESS=1` after an intended change,
//!   and review the diff);
//! - the WASM components compute exactly what the same crates compute
//!   natively, for every page of the dump, and for random noisy text (which
//!   exercises the plugins' SIMD code paths as compiled for WebAssembly: the
//!   unit tests only run them natively).

use std::cell::RefCell;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use weir::chain::ChainResult;
use weir::runtime::DocRecord;
use weir_plugin_lang::Lang;
use weir_plugin_parse::Parse;
use weir_plugin_score::Score;
use weir_sdk::LocalInstance;

/// The golden file covers the first redirects and the first articles of the
/// dump under [`GOLDEN_MAX_BYTES`] (so the file stays reviewable).
const GOLDEN_REDIRECTS: usize = 2;
const GOLDEN_ARTICLES: usize = 8;
const GOLDEN_MAX_BYTES: usize = 40_000;

fn wasm_outputs(pages: &[DocRecord]) -> Vec<Vec<DocRecord>> {
    let runtime = weir_tests::runtime();
    let chain = weir_tests::document_chain(&runtime);
    let mut worker = chain.start_worker().unwrap();
    worker
        .process(pages.to_vec())
        .unwrap()
        .into_iter()
        .map(|result| match result {
            ChainResult::Done {
                outputs,
                stages_run,
            } => {
                assert_eq!(stages_run, 3);
                outputs
                    .iter()
                    .map(|output| {
                        output
                            .record()
                            .expect("uncached outputs are records")
                            .clone()
                    })
                    .collect()
            }
            ChainResult::Failed(f) => panic!("a sample page failed: {f:?}"),
        })
        .collect()
}

fn native_output(page: &DocRecord) -> Vec<u8> {
    let mut record = weir_tests::sdk_record(page);
    record = LocalInstance::<Parse>::new("{}")
        .unwrap()
        .process(record)
        .unwrap()
        .remove(0);
    record = LocalInstance::<Lang>::new("{}")
        .unwrap()
        .process(record)
        .unwrap()
        .remove(0);
    record = LocalInstance::<Score>::new("{}")
        .unwrap()
        .process(record)
        .unwrap()
        .remove(0);
    assert_eq!(record.content_type, weir_plugin_score::OUTPUT_TYPE);
    record.body
}

#[test]
fn golden_outputs_for_the_first_pages() {
    let (redirects, articles): (Vec<DocRecord>, Vec<DocRecord>) =
        weir_tests::dump_records(&weir_tests::sample_dump())
            .into_iter()
            .filter(|p| p.body.len() < GOLDEN_MAX_BYTES)
            .partition(|p| p.body.starts_with(b"#REDIRECT"));
    let pages: Vec<DocRecord> = redirects
        .into_iter()
        .take(GOLDEN_REDIRECTS)
        .chain(articles.into_iter().take(GOLDEN_ARTICLES))
        .collect();
    let outputs = wasm_outputs(&pages);
    let mut actual = String::new();
    for (page, outputs) in pages.iter().zip(&outputs) {
        assert_eq!(outputs.len(), 1);
        let body: serde_json::Value = serde_json::from_slice(&outputs[0].body).unwrap();
        actual.push_str(
            &serde_json::to_string(&serde_json::json!({"id": page.id, "output": body})).unwrap(),
        );
        actual.push('\n');
    }
    let golden = weir_tests::workspace_root().join("tests/golden/chain.jsonl");
    if std::env::var_os("WEIR_BLESS").is_some() {
        std::fs::write(&golden, &actual).unwrap();
    }
    let expected =
        std::fs::read_to_string(&golden).expect("golden file (create it with WEIR_BLESS=1)");
    for (line, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
        assert_eq!(a, e, "golden line {} differs", line + 1);
    }
    assert_eq!(actual.lines().count(), expected.lines().count());
}

#[test]
fn wasm_and_native_agree_on_every_page() {
    let pages = weir_tests::dump_records(&weir_tests::sample_dump());
    assert_eq!(pages.len(), 206);
    let outputs = wasm_outputs(&pages);
    for (page, outputs) in pages.iter().zip(outputs) {
        assert_eq!(outputs[0].body, native_output(page), "{}", page.id);
    }
}

#[test]
fn no_sample_page_text_holds_file_links_or_tag_markup() {
    // File links whose caption ends in a link (`...[[Peter Paul Rubens]]]]`)
    // and tags closed by a longer name (`<s>` by `</sup>`) once leaked here.
    let mut parse = LocalInstance::<Parse>::new("{}").unwrap();
    for page in weir_tests::dump_records(&weir_tests::sample_dump()) {
        let out = parse
            .process(weir_tests::sdk_record(&page))
            .unwrap()
            .remove(0);
        let doc: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        let text = doc["text"].as_str().expect("parse output has a text");
        for markup in ["[[File:", "[[Image:", "thumb|", "<ref", "</"] {
            assert!(
                !text.contains(markup),
                "{}: {markup:?} in the text",
                page.id
            );
        }
    }
}

/// The chain natively, stage by stage; `Err` if a stage rejects the record.
fn native_chain(page: &DocRecord) -> Result<Vec<u8>, weir_sdk::Error> {
    let record = weir_tests::sdk_record(page);
    let record = LocalInstance::<Parse>::new("{}")?
        .process(record)?
        .remove(0);
    let record = LocalInstance::<Lang>::new("{}")?.process(record)?.remove(0);
    let record = LocalInstance::<Score>::new("{}")?
        .process(record)?
        .remove(0);
    Ok(record.body)
}

/// Text with every byte class the SIMD paths treat specially (JSON escapes,
/// control characters, multi-byte characters, markup bytes), in runs that
/// straddle 16-byte blocks.
fn noisy_text() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just("\u{1}".to_owned()),
        Just("\u{1f}".to_owned()),
        Just("\t".to_owned()),
        Just("\r\n".to_owned()),
        Just("\n\n".to_owned()),
        Just("é".to_owned()),
        Just("東京".to_owned()),
        Just("😀".to_owned()),
        Just("[[".to_owned()),
        Just("]]".to_owned()),
        Just("{{".to_owned()),
        Just("}}".to_owned()),
        Just("|".to_owned()),
        Just("'''".to_owned()),
        Just("<nowiki>".to_owned()),
        Just("</nowiki>".to_owned()),
        Just("<ref>".to_owned()),
        Just("</ref>".to_owned()),
        Just("&amp;".to_owned()),
        Just("\n== ".to_owned()),
        Just("  ".to_owned()),
        "[a-z ]{0,24}",
    ];
    prop::collection::vec(fragment, 0..200).prop_map(|parts| parts.concat())
}

#[test]
fn wasm_and_native_agree_on_noisy_text() {
    let template = weir_tests::dump_records(&weir_tests::sample_dump()).remove(0);
    let runtime = weir_tests::runtime();
    let chain = weir_tests::document_chain(&runtime);
    let worker = RefCell::new(chain.start_worker().unwrap());
    let mut runner = TestRunner::new(Config::with_cases(64));
    runner
        .run(&noisy_text(), |text| {
            let page = DocRecord {
                body: text.into_bytes(),
                ..template.clone()
            };
            let wasm = worker.borrow_mut().process(vec![page.clone()]).unwrap();
            match (wasm.into_iter().next(), native_chain(&page)) {
                (Some(ChainResult::Done { outputs, .. }), Ok(native)) => {
                    prop_assert_eq!(
                        String::from_utf8_lossy(&outputs[0].record().expect("a record").body),
                        String::from_utf8_lossy(&native)
                    );
                }
                (Some(ChainResult::Failed(_)), Err(_)) => {}
                (wasm, native) => prop_assert!(false, "WASM {wasm:?} but native {native:?}"),
            }
            Ok(())
        })
        .unwrap();
}
