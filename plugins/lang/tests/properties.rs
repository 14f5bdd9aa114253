//! The lang plugin on real and hostile input: it never panics, its figures
//! are consistent, and the language-mix signal sees mixed pages.

use proptest::prelude::*;
use weir_plugin_lang::{Config, Lang, LanguageData};

fn analyse(text: &str) -> LanguageData {
    Lang::with_config(Config::default()).analyse(text)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn any_text_is_analysed_consistently(text in any::<String>()) {
        let data = analyse(&text);
        prop_assert_eq!(data.counts.characters, text.chars().count() as u64);
        prop_assert!(data.counts.words <= data.counts.characters);
        prop_assert!(data.counts.sentences <= data.counts.words.max(1));
        let total: f64 = data.mix.iter().map(|s| s.share).sum();
        prop_assert!(data.mix.is_empty() || (total - 1.0).abs() < 0.01);
        prop_assert!(data.top_terms.windows(2).all(|w| w[0].count >= w[1].count));
    }

    #[test]
    fn long_multilingual_noise_never_panics(parts in prop::collection::vec("[a-zäöüß ]{0,40}|[а-я ]{0,40}|[日本語 ]{0,10}|\n\n|[.!?]", 0..300)) {
        analyse(&parts.concat());
    }
}

#[test]
fn english_page_with_terms_and_counts() {
    let text = "Albedo is the measure of the diffuse reflection of solar radiation out of the total \
                solar radiation. Albedo is measured on a scale from 0 to 1. Snow has a high albedo; \
                charcoal has a low albedo.\n\nThe albedo of Earth is about 0.3.";
    let data = analyse(text);
    let detected = data.detected.expect("English is detected");
    assert_eq!(
        (
            detected.code.as_str(),
            detected.iso639_3.as_str(),
            detected.script.as_str()
        ),
        ("en", "eng", "Latin")
    );
    assert!(detected.reliable);
    assert_eq!(data.counts.sentences, 4);
    assert_eq!(data.top_terms[0].term, "albedo");
    assert_eq!(data.top_terms[0].count, 5);
    assert!(
        data.top_terms.iter().all(|t| t.term != "the"),
        "stop words are removed"
    );
    assert_eq!(data.mixed, Some(false));
}

#[test]
fn a_page_in_two_languages_is_mixed() {
    let english = "The city is known for its historic centre, its museums and the long river that crosses it from north to south before reaching the sea.";
    let russian = "Город известен своим историческим центром, музеями и длинной рекой, которая пересекает его с севера на юг, прежде чем впасть в море.";
    let text = [english, russian, english, russian].join("\n\n");
    let data = analyse(&text);
    assert_eq!(data.mixed, Some(true), "{:?}", data.mix);
    let codes: Vec<&str> = data.mix.iter().map(|s| s.code.as_str()).collect();
    assert!(codes.contains(&"en") && codes.contains(&"ru"), "{codes:?}");
}

#[test]
fn long_texts_cost_the_same_as_their_sample() {
    // Detection and terms read bounded samples: a 2 MB page is handled in
    // about the time of its linear word count, far from quadratic.
    let paragraph = "Lorem ipsum is not a real language, but this sentence is English enough to be detected.\n\n";
    let text = paragraph.repeat(20_000);
    let started = std::time::Instant::now();
    let data = analyse(&text);
    assert_eq!(data.counts.sentences, 20_000);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn tiny_texts_get_no_language() {
    assert_eq!(analyse("Computer accessibility").detected, None);
    assert_eq!(analyse("").detected, None);
}
