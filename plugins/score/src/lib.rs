//! # score: topic classification with a trained model
//!
//! Input: `application/vnd.weir.lang+json` (a parsed document with the lang
//! plugin's `language` field). Output: the same document with a `topic`
//! field added (`application/vnd.weir.scored+json`).
//!
//! The model (`model/topic-en.bin`) is a linear softmax classifier over
//! hashed word and bigram features, trained by `examples/train.rs` on the
//! lead paragraphs of Wikipedia's Level-4 vital articles in 11 topics (see
//! `plugins/score/README.md` for the data, its licence, and the held-out
//! accuracy). It is embedded in the component and parsed once at `init`; its
//! sha256 goes into every output, next to the plugin digest in the lineage.
//!
//! Features come from the previous stages: the title and lead section from
//! parse, and the detected language from lang (pages not in a language the
//! model knows are marked as skipped instead of being given a wrong topic).
//! Inference reads at most `max_input_chars` of the lead (and the title,
//! which MediaWiki limits to 255 bytes), so its cost does not grow with page
//! length.

pub mod features;
pub mod model;

use std::borrow::Cow;
use std::fmt;

use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use weir_sdk::{Error, Info, Record, Transform};

use model::Model;

/// Content type this plugin reads.
pub const INPUT_TYPE: &str = "application/vnd.weir.lang+json";
/// Content type this plugin emits.
pub const OUTPUT_TYPE: &str = "application/vnd.weir.scored+json";
/// The bundled model artifact.
pub const MODEL_BYTES: &[u8] = include_bytes!("../model/topic-en.bin");
/// Name and version of the bundled model.
pub const MODEL_NAME: &str = "topic-en";
/// Version of the bundled model (bump when retraining).
pub const MODEL_VERSION: &str = "1";

/// The text the classifier sees: the title, then at most `max_lead_chars`
/// characters of the lead. Training builds its examples with this function
/// too, so the two cannot disagree.
pub fn classifier_input(title: &str, lead: &str, max_lead_chars: usize) -> String {
    let lead = match lead.char_indices().nth(max_lead_chars) {
        Some((cut, _)) => &lead[..cut],
        None => lead,
    };
    format!("{title}\n{lead}")
}

/// Stage configuration; every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Characters of the lead section the classifier reads, at most.
    pub max_input_chars: usize,
    /// Languages (ISO 639-1) the model is applied to; others are skipped.
    pub languages: Vec<String>,
    /// How many classes to list in `top`.
    pub top: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_input_chars: 3000,
            languages: vec!["en".into()],
            top: 3,
        }
    }
}

/// What this plugin adds to a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicScore {
    /// The model that produced this score.
    pub model: ModelRef,
    /// The most likely topic (absent when skipped).
    pub label: Option<String>,
    /// Its probability.
    pub confidence: Option<f32>,
    /// The most likely topics with their probabilities.
    pub top: Vec<(String, f32)>,
    /// Why no topic was assigned, when none was.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub skipped: Option<String>,
}

/// Identity of a model artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: String,
    /// sha256 of the artifact bytes.
    pub digest: String,
}

/// The fields of the incoming document this plugin reads.
#[derive(Deserialize)]
struct Input<'a> {
    #[serde(borrow, default)]
    title: Option<Cow<'a, str>>,
    #[serde(default)]
    redirect: Option<IgnoredAny>,
    #[serde(borrow, default)]
    sections: FirstSection<'a>,
    #[serde(default)]
    language: Option<LanguageField>,
}

#[derive(Deserialize, Default)]
struct Section<'a> {
    #[serde(default)]
    level: u8,
    #[serde(borrow, default)]
    text: Cow<'a, str>,
}

#[derive(Deserialize)]
struct LanguageField {
    detected: Option<DetectedField>,
}

#[derive(Deserialize)]
struct DetectedField {
    code: String,
}

/// The first element of the `sections` array; the rest is skipped without
/// being materialised.
#[derive(Default)]
struct FirstSection<'a>(Option<Section<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstSection<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct First<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for First<'a> {
            type Value = FirstSection<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of sections")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let first = seq.next_element::<Section<'a>>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstSection(first))
            }
        }
        d.deserialize_seq(First(std::marker::PhantomData))
    }
}

/// The plugin: the parsed model and its identity.
pub struct Score {
    config: Config,
    model: Model,
    model_ref: ModelRef,
}

impl Score {
    /// Load `model_bytes` with `config`.
    pub fn load(config: Config, model_bytes: &[u8]) -> Result<Self, Error> {
        if config.top == 0 {
            return Err(Error::bad_input(
                "top must be at least 1 (the first is the label)",
            ));
        }
        let model = Model::parse(model_bytes).map_err(Error::failure)?;
        let model_ref = ModelRef {
            name: MODEL_NAME.to_owned(),
            version: MODEL_VERSION.to_owned(),
            digest: format!("sha256:{}", hex::encode(Sha256::digest(model_bytes))),
        };
        Ok(Score {
            config,
            model,
            model_ref,
        })
    }

    /// Classify `title` + `lead`.
    pub fn classify(&self, title: &str, lead: &str) -> TopicScore {
        let features = features::extract(
            &classifier_input(title, lead, self.config.max_input_chars),
            self.model.buckets,
            self.model.bigrams,
        );
        let probabilities = self.model.predict(&features);
        let mut ranked: Vec<(String, f32)> = self
            .model
            .labels
            .iter()
            .cloned()
            .zip(probabilities.iter().map(|p| (p * 1000.0).round() / 1000.0))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(self.config.top);
        TopicScore {
            model: self.model_ref.clone(),
            label: Some(ranked[0].0.clone()),
            confidence: Some(ranked[0].1),
            top: ranked,
            skipped: None,
        }
    }

    fn skip(&self, reason: String) -> TopicScore {
        TopicScore {
            model: self.model_ref.clone(),
            label: None,
            confidence: None,
            top: Vec::new(),
            skipped: Some(reason),
        }
    }

    fn score(&self, input: &Input<'_>) -> TopicScore {
        if input.redirect.is_some() {
            return self.skip("redirect page".into());
        }
        let code = input
            .language
            .as_ref()
            .and_then(|l| l.detected.as_ref())
            .map(|d| d.code.as_str());
        match code {
            Some(code) if self.config.languages.iter().any(|l| l == code) => {}
            Some(code) => {
                return self.skip(format!("language `{code}` is not supported by the model"));
            }
            None => return self.skip("no detected language (run the lang stage first)".into()),
        }
        let lead = match &input.sections.0 {
            Some(section) if section.level == 0 && !section.text.trim().is_empty() => &section.text,
            _ => return self.skip("no lead section".into()),
        };
        self.classify(input.title.as_deref().unwrap_or(""), lead)
    }
}

impl Transform for Score {
    type Config = Config;

    fn info() -> Info {
        Info::new("score", env!("CARGO_PKG_VERSION"))
            .accepts(&[INPUT_TYPE])
            .produces(&[OUTPUT_TYPE])
    }

    fn new(config: Config) -> Result<Self, Error> {
        let score = Score::load(config, MODEL_BYTES)?;
        weir_sdk::log(
            weir_sdk::Level::Info,
            "topic model loaded",
            &[("model", MODEL_NAME), ("digest", &score.model_ref.digest)],
        );
        Ok(score)
    }

    fn process(&mut self, record: Record) -> Result<Vec<Record>, Error> {
        let input: Input<'_> = record.body_json()?;
        let topic = self.score(&input);
        match &topic.label {
            Some(label) => {
                weir_sdk::count("scored", 1);
                weir_sdk::count(&format!("topic.{label}"), 1);
            }
            None => weir_sdk::count("skipped", 1),
        }
        Ok(vec![record.extend_json(OUTPUT_TYPE, "topic", &topic)?])
    }
}

weir_sdk::export!(Score);
