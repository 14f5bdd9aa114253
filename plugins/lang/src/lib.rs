//! # lang: language data for a parsed document
//!
//! Input: `application/vnd.weir.parsed+json` (the parse plugin's document).
//! Output: the same document with a `language` field added
//! (`application/vnd.weir.lang+json`); see `plugins/lang/README.md` for the
//! fields, limits and figures.
//!
//! Cost is bounded whatever the page length: language detection (whatlang,
//! 70 languages, one call per page) and top terms run on samples of at most
//! `sample_bytes` and `terms_sample_bytes`, drawn from paragraphs spread
//! evenly over the page; only the word/sentence/character counts read the
//! whole text, in one pass.
//!
//! The language-mix signal classifies each sampled paragraph separately. A
//! whatlang call costs about 0.1 ms even on a 512-byte sample, too much
//! to repeat per paragraph, so paragraphs are classified by whichlang
//! (~5 µs, 16 widely used languages). The signal is therefore only given
//! (`mixed` is `true`/`false`) for pages whose main language whichlang
//! knows; for other pages `mixed` is `null` and `mix` is empty.

mod ascii8;
pub mod counts;
pub mod sample;
pub mod terms;

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use weir_sdk::{Error, Info, Record, Transform};

pub use counts::Counts;
pub use terms::Term;

/// Content type this plugin reads.
pub const INPUT_TYPE: &str = "application/vnd.weir.parsed+json";
/// Content type this plugin emits.
pub const OUTPUT_TYPE: &str = "application/vnd.weir.lang+json";

/// Stage configuration (`[stage.config]`); every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Bytes of text language detection looks at, at most: the start of
    /// each paragraph of the mix sample, in equal shares.
    pub sample_bytes: usize,
    /// Bytes of text the language-mix signal classifies, at most.
    pub mix_sample_bytes: usize,
    /// Paragraphs the samples are spread over (also the granularity of the
    /// language-mix signal).
    pub sample_paragraphs: usize,
    /// Bytes of text top terms are counted on, at most.
    pub terms_sample_bytes: usize,
    /// How many top terms to report.
    pub top_terms: usize,
    /// A second language with at least this share of the sample makes the
    /// page `mixed`.
    pub mix_threshold: f64,
    /// Texts with fewer letters than this (redirects, stubs of a title) are
    /// not given a language: detection on them is a guess.
    pub min_detect_letters: usize,
}

/// Upper bound of [`Config::sample_paragraphs`]: each sampled paragraph is
/// classified on its own, so more would only add per-paragraph cost to a
/// bounded sample.
pub const MAX_SAMPLE_PARAGRAPHS: usize = 64;

/// Paragraph starts the top-terms sample is spread over: more than the
/// other samples, since terms should represent the whole page and counting
/// words costs little per paragraph.
const TERMS_SAMPLE_PARAGRAPHS: usize = 16;

impl Default for Config {
    fn default() -> Self {
        Config {
            sample_bytes: 512,
            mix_sample_bytes: 1024,
            sample_paragraphs: 4,
            terms_sample_bytes: 8 << 10,
            top_terms: 10,
            mix_threshold: 0.2,
            min_detect_letters: 40,
        }
    }
}

/// What this plugin adds to a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanguageData {
    /// The detected language, if the text has enough letters to tell.
    pub detected: Option<Detected>,
    /// Word, sentence and character counts of the whole text.
    #[serde(flatten)]
    pub counts: Counts,
    /// Most frequent terms (stop words of the detected language removed).
    pub top_terms: Vec<Term>,
    /// Languages found across the sampled paragraphs, by share of sampled
    /// text, largest first (empty when the signal is unavailable).
    pub mix: Vec<Share>,
    /// Whether a second language has at least `mix_threshold` of the sample
    /// (`None` when the main language is outside the mix classifier's 16).
    pub mixed: Option<bool>,
}

/// A detected language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detected {
    /// ISO 639-1 code where one exists (`en`), else ISO 639-3 (`ast`).
    pub code: String,
    /// ISO 639-3 code.
    pub iso639_3: String,
    /// English name.
    pub name: String,
    /// Writing system, e.g. `Latin`, `Cyrillic`.
    pub script: String,
    /// Detector confidence, 0 to 1.
    pub confidence: f64,
    /// Whether the detector considers the result reliable.
    pub reliable: bool,
}

/// One language's share of the sampled text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// Language code (as in [`Detected::code`]).
    pub code: String,
    /// Fraction of sampled characters, 0 to 1.
    pub share: f64,
}

/// The fields of a parsed document this plugin reads.
#[derive(Deserialize)]
struct ParsedText<'a> {
    #[serde(borrow, default)]
    text: Cow<'a, str>,
}

/// The plugin: configuration plus stop-word sets built on first use.
pub struct Lang {
    config: Config,
    stop_words: HashMap<&'static str, terms::StopWords>,
}

impl Lang {
    /// A plugin instance with this configuration.
    pub fn with_config(config: Config) -> Self {
        Lang {
            config,
            stop_words: HashMap::new(),
        }
    }

    /// Language data for `text`.
    pub fn analyse(&mut self, text: &str) -> LanguageData {
        let config = &self.config;
        let paragraphs =
            sample::paragraphs(text, config.sample_paragraphs, config.mix_sample_bytes);
        // Detection cost grows with its sample: past `sample_bytes` it reads
        // the start of each mix paragraph, so the sample stays spread over
        // the page.
        let total: usize = paragraphs.iter().map(|p| p.len()).sum();
        let share = if total <= config.sample_bytes {
            usize::MAX
        } else {
            config.sample_bytes / paragraphs.len().max(1)
        };
        let sample_text = paragraphs
            .iter()
            .map(|p| sample::prefix(p, share))
            .collect::<Vec<_>>()
            .join("\n");
        let letters = sample_text
            .chars()
            .filter(|c| c.is_alphabetic())
            .take(config.min_detect_letters)
            .count();
        let detected = (letters >= config.min_detect_letters)
            .then(|| whatlang::detect(&sample_text).map(describe))
            .flatten();
        let mix_supported = detected
            .as_ref()
            .is_some_and(|d| MIX_LANGUAGES.contains(&d.iso639_3.as_str()));
        let mix = if mix_supported {
            language_mix(&paragraphs)
        } else {
            Vec::new()
        };
        let mixed =
            mix_supported.then(|| mix.get(1).is_some_and(|s| s.share >= config.mix_threshold));
        let terms_sample =
            sample::paragraphs(text, TERMS_SAMPLE_PARAGRAPHS, config.terms_sample_bytes).join("\n");
        let stop_words = detected.as_ref().map(|d| {
            let code: &'static str = static_code(&d.code);
            &*self
                .stop_words
                .entry(code)
                .or_insert_with(|| terms::StopWords::for_language(code))
        });
        LanguageData {
            top_terms: terms::top_terms(&terms_sample, stop_words, config.top_terms),
            counts: counts::count(text),
            detected,
            mix,
            mixed,
        }
    }
}

/// Detection result in our vocabulary.
fn describe(info: whatlang::Info) -> Detected {
    let iso639_3 = info.lang().code();
    Detected {
        code: iso639_1_or_3(iso639_3).to_owned(),
        iso639_3: iso639_3.to_owned(),
        name: info.lang().eng_name().to_owned(),
        script: info.script().name().to_owned(),
        confidence: round3(info.confidence()),
        reliable: info.is_reliable(),
    }
}

/// The `'static` form of a language code we produced (isolang and whatlang
/// hand out `'static` strings; this recovers one for use as a map key).
fn static_code(code: &str) -> &'static str {
    isolang::Language::from_639_1(code)
        .and_then(|l| l.to_639_1())
        .or_else(|| isolang::Language::from_639_3(code).map(|l| l.to_639_3()))
        .unwrap_or("und")
}

/// Paragraphs shorter than this (headings, captions, list items) are too
/// short to tell languages apart reliably and do not count towards the mix.
const MIN_MIX_PARAGRAPH_CHARS: usize = 80;

/// The languages whichlang tells apart (ISO 639-3), for the mix signal.
const MIX_LANGUAGES: [&str; 16] = [
    "ara", "cmn", "deu", "eng", "fra", "hin", "ita", "jpn", "kor", "nld", "por", "rus", "spa",
    "swe", "tur", "vie",
];

/// Classify each sampled paragraph and weigh by its length.
fn language_mix(paragraphs: &[&str]) -> Vec<Share> {
    let mut weights: Vec<(&'static str, usize)> = Vec::new();
    let mut total = 0usize;
    for paragraph in paragraphs {
        let chars = paragraph.chars().count();
        if chars < MIN_MIX_PARAGRAPH_CHARS {
            continue;
        }
        let code = whichlang::detect_language(paragraph).three_letter_code();
        total += chars;
        match weights.iter_mut().find(|(c, _)| *c == code) {
            Some((_, w)) => *w += chars,
            None => weights.push((code, chars)),
        }
    }
    weights.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    weights
        .into_iter()
        .map(|(code, w)| Share {
            code: iso639_1_or_3(code).to_owned(),
            share: round3(w as f64 / total.max(1) as f64),
        })
        .collect()
}

/// The ISO 639-1 code of an ISO 639-3 code where one exists. Mandarin and
/// Iranian Persian are individual languages whose 639-1 code belongs to their
/// macrolanguage (`zh`, `fa`), which is what wikis and users call them.
fn iso639_1_or_3(iso639_3: &'static str) -> &'static str {
    match iso639_3 {
        "cmn" => "zh",
        "pes" => "fa",
        _ => isolang::Language::from_639_3(iso639_3)
            .and_then(|l| l.to_639_1())
            .unwrap_or(iso639_3),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Transform for Lang {
    type Config = Config;

    fn info() -> Info {
        Info::new("lang", env!("CARGO_PKG_VERSION"))
            .accepts(&[INPUT_TYPE])
            .produces(&[OUTPUT_TYPE])
    }

    fn new(config: Config) -> Result<Self, Error> {
        if config.sample_bytes == 0
            || config.mix_sample_bytes == 0
            || config.terms_sample_bytes == 0
        {
            return Err(Error::bad_input(
                "sample_bytes, mix_sample_bytes and terms_sample_bytes must be positive",
            ));
        }
        if !(1..=MAX_SAMPLE_PARAGRAPHS).contains(&config.sample_paragraphs) {
            return Err(Error::bad_input(format!(
                "sample_paragraphs must be between 1 and {MAX_SAMPLE_PARAGRAPHS}"
            )));
        }
        if !(0.0..=1.0).contains(&config.mix_threshold) {
            return Err(Error::bad_input("mix_threshold must be between 0 and 1"));
        }
        Ok(Lang::with_config(config))
    }

    fn process(&mut self, record: Record) -> Result<Vec<Record>, Error> {
        let parsed: ParsedText<'_> = record.body_json()?;
        let data = self.analyse(&parsed.text);
        match &data.detected {
            Some(d) => weir_sdk::count(&format!("language.{}", d.code), 1),
            None => weir_sdk::count("language.undetected", 1),
        }
        Ok(vec![record.extend_json(OUTPUT_TYPE, "language", &data)?])
    }
}

weir_sdk::export!(Lang);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::LocalInstance;

    #[test]
    fn configurations_that_cannot_work_are_refused() {
        for config in [
            r#"{"sample_bytes":0}"#,
            r#"{"mix_sample_bytes":0}"#,
            r#"{"terms_sample_bytes":0}"#,
            r#"{"sample_paragraphs":0}"#,
            r#"{"sample_paragraphs":1000000000}"#,
            r#"{"mix_threshold":1.5}"#,
        ] {
            let refused = LocalInstance::<Lang>::new(config);
            assert!(matches!(refused, Err(Error::BadInput(_))), "{config}");
        }
        assert!(LocalInstance::<Lang>::new(r#"{"sample_paragraphs":64}"#).is_ok());
    }
}
