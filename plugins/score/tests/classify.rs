//! The score plugin: the shipped model on real article leads, its contract
//! with the previous stages, and robustness on arbitrary input.

use proptest::prelude::*;
use weir_plugin_score::{Config, MODEL_BYTES, Score};
use weir_sdk::{LocalInstance, Record};

fn score() -> Score {
    Score::load(Config::default(), MODEL_BYTES).expect("the shipped model loads")
}

#[test]
fn real_leads_get_their_topic() {
    let s = score();
    let cases = [
        (
            "Albedo",
            "Albedo or reflection coefficient is the diffuse reflectivity or reflecting power of a surface. It is the ratio of reflected radiation from the surface to incident radiation upon it.",
            "Physical sciences",
        ),
        (
            "Johann Heinrich Lambert",
            "Johann Heinrich Lambert was a Swiss polymath who made important contributions to the subjects of mathematics, physics, philosophy, astronomy and map projections. He was born in 1728 and died in 1777.",
            "People",
        ),
        (
            "Kuwait",
            "Kuwait is a country in Western Asia. Situated in the northern edge of Eastern Arabia at the tip of the Persian Gulf, it shares borders with Iraq and Saudi Arabia. Its capital is Kuwait City.",
            "Geography",
        ),
    ];
    for (title, lead, topic) in cases {
        let result = s.classify(title, lead);
        assert_eq!(
            result.label.as_deref(),
            Some(topic),
            "{title}: {:?}",
            result.top
        );
        assert!(result.confidence.unwrap() > 0.3);
        assert_eq!(result.top.len(), 3);
        assert!(result.model.digest.starts_with("sha256:"));
    }
}

#[test]
fn inference_is_deterministic() {
    let s = score();
    let a = s.classify(
        "Snow",
        "Snow comprises individual ice crystals that grow while suspended in the atmosphere.",
    );
    let b = score().classify(
        "Snow",
        "Snow comprises individual ice crystals that grow while suspended in the atmosphere.",
    );
    assert_eq!(a, b);
}

#[test]
fn a_configuration_without_a_top_topic_is_refused() {
    let config = Config {
        top: 0,
        ..Config::default()
    };
    assert!(matches!(
        Score::load(config, MODEL_BYTES),
        Err(weir_sdk::Error::BadInput(_))
    ));
    let one = Config {
        top: 1,
        ..Config::default()
    };
    let result = Score::load(one, MODEL_BYTES)
        .unwrap()
        .classify("Albedo", "Albedo is the fraction of sunlight reflected.");
    assert_eq!(result.top.len(), 1);
}

fn record(json: &str) -> Record {
    Record::new(
        "d",
        1,
        weir_plugin_score::INPUT_TYPE,
        json.as_bytes().to_vec(),
    )
}

#[test]
fn uses_language_and_lead_from_previous_stages() {
    let mut plugin = LocalInstance::<Score>::new("{}").unwrap();
    let mut scored = |json: &str| -> serde_json::Value {
        let out = plugin.process(record(json)).unwrap();
        serde_json::from_slice::<serde_json::Value>(&out[0].body).unwrap()["topic"].clone()
    };
    let english = r#"{"title":"Kuwait","sections":[{"heading":"","level":0,"text":"Kuwait is a country in Western Asia. Situated in the northern edge of Eastern Arabia at the tip of the Persian Gulf, it shares borders with Iraq and Saudi Arabia. Its capital is Kuwait City."},{"heading":"H","level":2,"text":"x"}],"language":{"detected":{"code":"en"}}}"#;
    assert_eq!(scored(english)["label"], "Geography");
    let german = english.replace(r#""code":"en""#, r#""code":"de""#);
    assert_eq!(
        scored(&german)["skipped"],
        "language `de` is not supported by the model"
    );
    let redirect = r#"{"redirect":"X","sections":[],"language":{"detected":null}}"#;
    assert_eq!(scored(redirect)["skipped"], "redirect page");
    let no_lang = r#"{"sections":[{"level":0,"text":"x"}]}"#;
    assert!(
        scored(no_lang)["skipped"]
            .as_str()
            .unwrap()
            .contains("no detected language")
    );
    // Not JSON: bad input, with the parser's reason.
    let err = LocalInstance::<Score>::new("{}")
        .unwrap()
        .process(record("{oops"))
        .unwrap_err();
    assert!(matches!(err, weir_sdk::Error::BadInput(_)), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_text_gets_a_probability_distribution(title in any::<String>(), lead in any::<String>()) {
        let result = score().classify(&title, &lead);
        let confidence = result.confidence.unwrap();
        prop_assert!((0.0..=1.0).contains(&confidence));
        prop_assert!(result.top.windows(2).all(|w| w[0].1 >= w[1].1));
    }
}
