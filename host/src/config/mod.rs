//! The pipeline file (TOML): its serde structs, and their validation into a
//! typed [`Pipeline`] before anything starts.
//!
//! Invariants: unknown keys are errors (`deny_unknown_fields`), so a typo is
//! reported instead of silently ignored; [`load`] returns either a fully
//! valid `Pipeline` or every problem found, each with the key path and the
//! line and column in the file where it can be fixed. Relative paths are
//! resolved against the pipeline file's directory.

//!
//! Parts: `file` (the serde structs), `settings` (the validated types),
//! `validate` (from one to the other), `diagnostics` (problems with their
//! location).

mod diagnostics;
mod file;
mod settings;
mod validate;

use std::path::Path;

pub use crate::source::FileFormat;
pub use diagnostics::{ConfigError, Problem, problem_at};
use diagnostics::{line_column, locate};
use file::PipelineFile;
pub use file::{BatchingConfig, DecodeConfig, StartFrom, TelemetryConfig};
pub use settings::*;
use validate::validate;

/// Read, parse and validate a pipeline file.
pub fn load(path: &Path) -> Result<Pipeline, ConfigError> {
    load_reading(path, None)
}

/// As [`load`], with `input` read instead of `[source.file] path` (`weir run
/// --input`): the configured file need not exist, and `[source.file]
/// format`, when set, still says what the input is (else its name does).
/// A relative `input` is relative to the working directory, not the file.
pub fn load_reading(path: &Path, input: Option<&Path>) -> Result<Pipeline, ConfigError> {
    let fail = |problems| ConfigError {
        path: path.to_owned(),
        problems,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(vec![Problem {
            key: String::new(),
            location: None,
            message: format!("cannot read the file: {e}"),
        }])
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_reading(&text, base, input).map_err(fail)
}

/// Parse and validate pipeline text; relative paths resolve against `base`.
pub fn parse(text: &str, base: &Path) -> Result<Pipeline, Vec<Problem>> {
    parse_reading(text, base, None)
}

/// As [`parse`], with `input` in place of `[source.file] path` (see
/// [`load_reading`]).
fn parse_reading(text: &str, base: &Path, input: Option<&Path>) -> Result<Pipeline, Vec<Problem>> {
    // The path tracker names the key a type error or a missing field is
    // at (`stage[0]`, `stage[1].limits.deadline_ms`); toml's own error
    // only has a span.
    let mut file: PipelineFile = toml::Deserializer::parse(text)
        .map_err(|e| (String::new(), e))
        .and_then(|de| {
            serde_path_to_error::deserialize(de).map_err(|e| {
                let key = match e.path().iter().next() {
                    Some(_) => e.path().to_string(),
                    None => String::new(),
                };
                (key, e.into_inner())
            })
        })
        .map_err(|(key, e)| {
            vec![Problem {
                key,
                location: e.span().map(|span| line_column(text, span.start)),
                message: e.message().to_owned(),
            }]
        })?;
    let mut problems = Vec::new();
    if let Some(input) = input {
        match &mut file.source {
            file::SourceConfig::File(source) => {
                source.path = std::path::absolute(input).unwrap_or_else(|_| input.to_owned());
            }
            file::SourceConfig::Kafka(_) => problems.push(Problem {
                key: "source".into(),
                location: None,
                message: "`--input` names a file to read, but the source is [source.kafka]".into(),
            }),
        }
    }
    let pipeline = validate(file, base, &mut problems);
    if problems.is_empty() {
        Ok(pipeline)
    } else {
        for problem in &mut problems {
            problem.location = locate(text, &problem.key);
        }
        problems.sort_by_key(|p| p.location);
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::validate::{UnsetVariable, expand_env};
    use super::*;
    use crate::runtime::Limits;

    const VALID: &str = r#"
[pipeline]
name = "t"

[source.file]
path = "in.jsonl"

[[stage]]
name = "a"
plugin = "a.wasm"

[output.local]
dir = "out"

[dead_letter.local]
dir = "out"
"#;

    fn fixture_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in.jsonl"), "").unwrap();
        std::fs::write(dir.path().join("a.wasm"), "").unwrap();
        dir
    }

    #[test]
    fn valid_file_resolves_paths_and_defaults() {
        let dir = fixture_dir();
        let p = parse(VALID, dir.path()).unwrap();
        assert_eq!(
            p.stages[0].plugin,
            PluginSource::File(dir.path().join("a.wasm"))
        );
        assert_eq!(p.stages[0].config_json, "{}");
        assert_eq!(p.stages[0].retries, 2);
        assert_eq!(p.stages[0].limits, Limits::default());
    }

    /// `weir run --input`: the configured file may be missing, and a
    /// configured format holds for the input whatever its name.
    #[test]
    fn an_input_stands_in_for_the_configured_file() {
        let dir = fixture_dir();
        let input = dir.path().join("export.dat");
        std::fs::write(&input, "").unwrap();
        let text = VALID.replace(
            "path = \"in.jsonl\"",
            "path = \"gone.xml\"\nformat = \"jsonl\"",
        );
        assert!(parse(&text, dir.path()).is_err(), "gone.xml is missing");
        let p = parse_reading(&text, dir.path(), Some(&input)).unwrap();
        assert!(
            matches!(&p.source, Source::File { path, format: FileFormat::Jsonl } if *path == input),
            "{:?}",
            p.source
        );
        // Without a configured format, the input's name says it.
        let text = VALID.replace("in.jsonl", "gone.jsonl");
        let dump = dir.path().join("pages.xml");
        std::fs::write(&dump, "").unwrap();
        let p = parse_reading(&text, dir.path(), Some(&dump)).unwrap();
        assert!(
            matches!(&p.source, Source::File { path, format: FileFormat::MediawikiXml } if *path == dump),
            "{:?}",
            p.source
        );
        let kafka = VALID.replace(
            "[source.file]\npath = \"in.jsonl\"",
            "[source.kafka]\nbrokers = \"b:9092\"\ntopic = \"t\"\ngroup = \"g\"",
        );
        let problems = parse_reading(&kafka, dir.path(), Some(&input)).unwrap_err();
        assert!(
            problems[0].message.contains("the source is [source.kafka]"),
            "{problems:?}"
        );
    }

    #[test]
    fn unknown_key_is_reported_with_its_line() {
        let dir = fixture_dir();
        let text = VALID.replace("plugin = \"a.wasm\"", "plugin = \"a.wasm\"\nretires = 3");
        let problems = parse(&text, dir.path()).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("retires"), "{:?}", problems[0]);
        assert_eq!(problems[0].location.map(|l| l.0), Some(11));
    }

    #[test]
    fn a_missing_field_or_a_wrong_type_names_its_key() {
        let dir = fixture_dir();
        let missing = VALID.replace("plugin = \"a.wasm\"\n", "");
        let problems = parse(&missing, dir.path()).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "stage[0]");
        assert_eq!(problems[0].location.map(|l| l.0), Some(8));
        assert_eq!(
            problems[0].to_string(),
            "line 8, column 1: `stage[0]`: missing field `plugin`"
        );

        let wrong = VALID.replace(
            "plugin = \"a.wasm\"",
            "plugin = \"a.wasm\"\nretries = \"two\"",
        );
        let problems = parse(&wrong, dir.path()).unwrap_err();
        assert_eq!(problems[0].key, "stage[0].retries");
        assert_eq!(problems[0].location.map(|l| l.0), Some(11));
        assert!(
            problems[0]
                .to_string()
                .starts_with("line 11, column 11: `stage[0].retries`: invalid type"),
            "{}",
            problems[0]
        );

        let not_toml = parse("[pipeline\n", dir.path()).unwrap_err();
        assert_eq!(not_toml[0].key, "");
        assert_eq!(
            not_toml[0].to_string(),
            "line 1, column 10: unclosed table, expected `]`"
        );
    }

    #[test]
    fn every_semantic_problem_is_reported_with_its_location() {
        let dir = fixture_dir();
        let text = VALID
            .replace("name = \"t\"", "name = \"bad name\"")
            .replace(
                "plugin = \"a.wasm\"",
                "plugin = \"missing\"\n[stage.limits]\ndeadline_ms = 0",
            )
            + "\n[[stage]]\nname = \"a\"\nplugin = \"a.wasm\"\n";
        let problems = parse(&text, dir.path()).unwrap_err();
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "pipeline.name",
                "stage[0].plugin",
                "stage[0].limits.deadline_ms",
                "stage[1].name"
            ]
        );
        let lines: Vec<_> = problems.iter().map(|p| p.location.unwrap().0).collect();
        assert_eq!(lines, [3, 10, 12, 21]);
    }

    #[test]
    fn environment_references_in_kafka_properties_are_expanded() {
        assert_eq!(
            expand_env("a${HOME}b"),
            Ok(format!("a{}b", std::env::var("HOME").unwrap()))
        );
        assert_eq!(expand_env("plain"), Ok("plain".into()));
        assert_eq!(
            expand_env("x${WEIR_SURELY_UNSET_42}"),
            Err(UnsetVariable("WEIR_SURELY_UNSET_42".into()))
        );
    }

    /// [`VALID`] with a Kafka source whose `properties` table holds
    /// `properties` (TOML lines).
    fn with_kafka_properties(properties: &str) -> String {
        VALID.replace(
            "[source.file]\npath = \"in.jsonl\"",
            &format!(
                "[source.kafka]\nbrokers = \"b:9092\"\ntopic = \"t\"\ngroup = \"g\"\n[source.kafka.properties]\n{properties}"
            ),
        )
    }

    #[test]
    fn kafka_properties_the_guarantees_rest_on_cannot_be_overridden() {
        let dir = fixture_dir();
        let text = with_kafka_properties(
            "\"enable.auto.commit\" = \"true\"\n\"fetch.max.bytes\" = \"1000000\"\n\
             acks = \"1\"\n\"enable.idempotence\" = \"false\"\n\"auto.offset.reset\" = \"latest\"",
        );
        let problems = parse(&text, dir.path()).unwrap_err();
        let mut keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "source.kafka.properties.acks",
                "source.kafka.properties.auto.offset.reset",
                "source.kafka.properties.enable.auto.commit",
                "source.kafka.properties.enable.idempotence",
            ]
        );
        // Each is found in the file, dots in its name and all.
        let lines: Vec<_> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.location.map(|(line, _)| line)))
            .collect();
        let line_of = |needle: &str| {
            text.lines()
                .position(|l| l.starts_with(needle))
                .map(|i| i + 1)
        };
        for (key, line) in lines {
            let name = key.trim_start_matches("source.kafka.properties.");
            let written = line_of(&format!("\"{name}\"")).or_else(|| line_of(name));
            assert_eq!(line, written, "{key}");
        }
    }

    #[test]
    fn kafka_property_values_are_not_shown_in_debug_output() {
        let dir = fixture_dir();
        let text = with_kafka_properties("\"sasl.password\" = \"hunter2\"");
        let p = parse(&text, dir.path()).unwrap();
        let shown = format!("{:?}", p.source);
        assert!(
            shown.contains("sasl.password") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn zstd_level_is_one_unless_set_and_must_be_a_level_zstd_has() {
        let dir = fixture_dir();
        let p = parse(VALID, dir.path()).unwrap();
        assert_eq!(p.batching.zstd_level, 1);
        for (level, ok) in [(19, true), (-7, true), (0, false), (20, false), (-8, false)] {
            let text = format!("{VALID}\n[batching]\nzstd_level = {level}\n");
            match parse(&text, dir.path()) {
                Ok(p) => assert!(ok && p.batching.zstd_level == level, "{level}"),
                Err(problems) => {
                    assert!(!ok, "{level}: {problems:?}");
                    assert_eq!(problems[0].key, "batching.zstd_level");
                    assert_eq!(problems[0].location.map(|l| l.0), Some(19));
                }
            }
        }
    }

    #[test]
    fn stage_config_becomes_json() {
        let dir = fixture_dir();
        let text = VALID.replace(
            "plugin = \"a.wasm\"",
            "plugin = \"a.wasm\"\n[stage.config]\nk = 1\nnested = { x = \"y\" }\n\
             since = 2024-01-01T00:00:00Z\nday = 2024-05-06\nratio = 0.5\nodd = nan",
        );
        let p = parse(&text, dir.path()).unwrap();
        assert_eq!(
            p.stages[0].config_json,
            r#"{"day":"2024-05-06","k":1,"nested":{"x":"y"},"odd":null,"ratio":0.5,"since":"2024-01-01T00:00:00Z"}"#
        );
    }
}
