//! Language-detection accuracy of the lang plugin on 500 paragraphs of 200+
//! characters in 25 languages (`data/paragraphs.tsv`, see `data/README.md`
//! for the source and licence). The bar: at least 95% correct overall, and
//! no language below 80%.
//!
//! The data was made from the lingua-rs test sentences: for each language,
//! consecutive sentences of `testdata/sentences.txt` joined until 200
//! characters, the first 20 paragraphs (the script is in `data/README.md`'s
//! history: it is a dozen lines of Python over those files).

use std::collections::BTreeMap;

use weir_plugin_lang::{Config, Lang};

#[test]
fn detects_at_least_95_percent_of_paragraphs_in_25_languages() {
    let data = include_str!("data/paragraphs.tsv");
    let mut lang = Lang::with_config(Config::default());
    let mut per_language: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut misses = Vec::new();
    for line in data.lines() {
        let (expected, paragraph) = line.split_once('\t').expect("code<TAB>paragraph");
        assert!(
            paragraph.chars().count() >= 200,
            "{expected}: short paragraph"
        );
        let detected = lang.analyse(paragraph).detected.map(|d| d.code);
        let entry = per_language.entry(expected).or_default();
        entry.1 += 1;
        if detected.as_deref() == Some(expected) {
            entry.0 += 1;
        } else {
            misses.push(format!("{expected} -> {detected:?}"));
        }
    }
    let (correct, total) = per_language
        .values()
        .fold((0, 0), |(c, t), (ci, ti)| (c + ci, t + ti));
    let accuracy = correct as f64 / total as f64;
    println!(
        "accuracy {:.1}% ({correct}/{total}) over {} languages",
        100.0 * accuracy,
        per_language.len()
    );
    for (code, (c, t)) in &per_language {
        println!("  {code}: {c}/{t}");
    }
    println!("misses: {misses:?}");
    assert!(per_language.len() >= 15);
    assert!(
        accuracy >= 0.95,
        "accuracy {accuracy:.3}; misses: {misses:?}"
    );
    for (code, (c, t)) in &per_language {
        assert!(*c * 5 >= *t * 4, "{code}: {c}/{t}; misses: {misses:?}");
    }
}
