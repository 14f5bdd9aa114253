//! Shadow runs: a candidate plugin version beside the active one, on live
//! traffic, without touching live results or offsets.
//!
//! A shadow run is a host of its own (`weir plugin shadow NAME@VERSION`):
//! - it consumes the pipeline's topic in a consumer group of its own
//!   (`weir-shadow.{pipeline}.{name}@{version}`), from the newest events on;
//! - its stages that run NAME run the candidate version, and the other
//!   stages follow the pipeline;
//! - its results and dead letters go under `{pipeline}/shadow/{name}@{version}/`,
//!   with event mode off.
//!
//! The live hosts, their group, their offsets and their results are never
//! involved. The report ([`report`]) compares the shadow's outputs with the
//! live results at the same input positions, record by record: identical,
//! changed, or failed (the candidate dead-lettered the record), with
//! examples. Positions the live hosts have not written yet, or skipped as
//! unchanged, are counted apart.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{DeadLetterOutput, EventMode, Pipeline, PluginSource, Source, StartFrom};
use crate::registry::VersionRef;
use crate::sink::key_range;
use crate::storage::{ObjectStore, StorageError};

/// Examples kept per verdict.
const EXAMPLES: usize = 3;

/// Problems setting up or reading a shadow run.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    /// Shadow runs follow a topic.
    #[error("a shadow run needs a [source.kafka]: it runs beside the live hosts on their topic")]
    NotKafka,
    /// No stage runs the plugin.
    #[error("no stage of pipeline `{pipeline}` runs a plugin named `{name}` from the registry")]
    NotInPipeline {
        /// The pipeline.
        pipeline: String,
        /// The plugin.
        name: String,
    },
    /// Reading the results failed.
    #[error("reading results: {0}")]
    Storage(#[from] StorageError),
    /// An object that is not what a results object holds.
    #[error("{key}: {reason}")]
    Unreadable {
        /// The object.
        key: String,
        /// Why.
        reason: String,
    },
}

/// `name@version`: the shadow run's name in keys and its group.
pub fn label(name: &str, version: &str) -> String {
    format!("{name}@{version}")
}

/// The pipeline a shadow run of `name@version` runs (see the module docs).
pub fn shadow_pipeline(
    mut pipeline: Pipeline,
    name: &str,
    version: &str,
) -> Result<Pipeline, ShadowError> {
    let label = label(name, version);
    let mut found = false;
    for stage in &mut pipeline.stages {
        if let PluginSource::Registry {
            name: plugin,
            version: reference,
        } = &mut stage.plugin
            && plugin == name
        {
            *reference = VersionRef::Exact(version.to_owned());
            found = true;
        }
    }
    if !found {
        return Err(ShadowError::NotInPipeline {
            pipeline: pipeline.name,
            name: name.to_owned(),
        });
    }
    let Source::Kafka(kafka) = &mut pipeline.source else {
        return Err(ShadowError::NotKafka);
    };
    kafka.group = format!("weir-shadow.{}.{label}", pipeline.name);
    kafka.start = StartFrom::Latest;
    // Never the live dead-letter topic: everything stays under the prefix.
    pipeline.dead_letter = DeadLetterOutput::Store(pipeline.output.clone());
    pipeline.event_mode = EventMode::Off;
    pipeline.name = format!("{}/shadow/{label}", pipeline.name);
    Ok(pipeline)
}

/// How a record fared under the candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// The same outputs as live.
    Identical,
    /// Other outputs than live.
    Changed,
    /// The candidate dead-lettered it.
    Failed,
    /// Nothing live to compare with yet (not written yet, skipped as
    /// unchanged, or dead-lettered live).
    NotCompared,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Identical => "identical",
            Verdict::Changed => "changed",
            Verdict::Failed => "failed",
            Verdict::NotCompared => "not compared",
        })
    }
}

/// One record of a verdict, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// `topic/partition@offset`.
    pub position: String,
    /// The document.
    pub id: String,
    /// What differs, or why it failed.
    pub detail: String,
}

/// The comparison of a shadow run with live results.
#[derive(Debug, Default)]
pub struct ShadowReport {
    /// Records per verdict.
    pub counts: BTreeMap<Verdict, u64>,
    /// A few records per verdict.
    pub examples: BTreeMap<Verdict, Vec<Example>>,
}

impl ShadowReport {
    fn add(&mut self, verdict: Verdict, example: impl FnOnce() -> Example) {
        *self.counts.entry(verdict).or_default() += 1;
        let examples = self.examples.entry(verdict).or_default();
        if examples.len() < EXAMPLES && verdict != Verdict::NotCompared {
            examples.push(example());
        }
    }

    /// Lines for people: the counts, then the examples.
    pub fn lines(&self) -> Vec<String> {
        let count = |v| self.counts.get(&v).copied().unwrap_or(0);
        let mut lines = vec![format!(
            "{} identical, {} changed, {} failed, {} not compared (no live result yet, skipped or dead-lettered live)",
            count(Verdict::Identical),
            count(Verdict::Changed),
            count(Verdict::Failed),
            count(Verdict::NotCompared)
        )];
        for (verdict, examples) in &self.examples {
            for e in examples {
                lines.push(format!(
                    "  {verdict}: {} {}: {}",
                    e.position, e.id, e.detail
                ));
            }
        }
        lines
    }
}

/// Input position of a line: (topic, partition, offset).
type At = (String, i64, i64);

/// Offsets a shadow run covered: (topic, partition) -> (first, last).
type Covered = BTreeMap<(String, i64), (i64, i64)>;

fn position_of(line: &Value) -> Option<At> {
    let p = &line["position"];
    Some((
        p["topic"].as_str()?.to_owned(),
        p["partition"].as_i64()?,
        p["offset"].as_i64()?,
    ))
}

/// Every line of the objects under `prefix` (results are zstd, dead
/// letters plain), by input position; `within` keeps only objects whose
/// offset range overlaps one of these (topic, partition) -> (first, last).
async fn lines_under(
    store: &ObjectStore,
    prefix: &str,
    within: Option<&Covered>,
) -> Result<BTreeMap<At, Value>, ShadowError> {
    let mut lines = BTreeMap::new();
    for key in store.list(prefix).await? {
        if let Some(within) = within {
            let mut parts = key[prefix.len()..].split('/');
            let topic = parts.next().unwrap_or_default().to_owned();
            let partition = parts.next().and_then(|p| p.parse().ok()).unwrap_or(-1);
            let overlaps = match (within.get(&(topic, partition)), key_range(&key)) {
                (Some((first, last)), Some((from, to))) => from <= *last && to >= *first,
                _ => false,
            };
            if !overlaps {
                continue;
            }
        }
        let Some(bytes) = store.get(&key).await? else {
            continue;
        };
        let unreadable = |reason: String| ShadowError::Unreadable {
            key: key.clone(),
            reason,
        };
        let text = if key.ends_with(".zst") {
            zstd::decode_all(bytes.as_slice()).map_err(|e| unreadable(e.to_string()))?
        } else {
            bytes
        };
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let value: Value =
                serde_json::from_slice(line).map_err(|e| unreadable(e.to_string()))?;
            if let Some(at) = position_of(&value) {
                lines.insert(at, value);
            }
        }
    }
    Ok(lines)
}

/// What differs between two result lines' outputs, for people.
fn difference(live: &Value, shadow: &Value) -> String {
    let (live, shadow) = (&live["outputs"], &shadow["outputs"]);
    let (a, b) = (
        live.as_array().map_or(0, Vec::len),
        shadow.as_array().map_or(0, Vec::len),
    );
    if a != b {
        return format!("{a} outputs live, {b} in the shadow");
    }
    for (i, (l, s)) in live
        .as_array()
        .into_iter()
        .flatten()
        .zip(shadow.as_array().into_iter().flatten())
        .enumerate()
    {
        if let (Some(l), Some(s)) = (l.as_object(), s.as_object()) {
            for key in l.keys().chain(s.keys()) {
                if l.get(key) != s.get(key) {
                    return format!("output {i}: `{key}` differs");
                }
            }
        }
    }
    "the outputs differ".to_owned()
}

/// Compare the shadow run of `label` of `pipeline` (the live pipeline's
/// name) with the live results, in `store` (the results store).
pub async fn report(
    store: &ObjectStore,
    pipeline: &str,
    label: &str,
) -> Result<ShadowReport, ShadowError> {
    let shadow_prefix = format!("{pipeline}/shadow/{label}");
    let shadow = lines_under(store, &format!("{shadow_prefix}/results/"), None).await?;
    let failed = lines_under(store, &format!("{shadow_prefix}/dead-letters/"), None).await?;
    let mut covered = Covered::new();
    for (topic, partition, offset) in shadow.keys().chain(failed.keys()) {
        let range = covered
            .entry((topic.clone(), *partition))
            .or_insert((*offset, *offset));
        range.0 = range.0.min(*offset);
        range.1 = range.1.max(*offset);
    }
    let live = lines_under(store, &format!("{pipeline}/results/"), Some(&covered)).await?;
    let mut report = ShadowReport::default();
    let example = |at: &At, line: &Value, detail: String| Example {
        position: format!("{}/{}@{}", at.0, at.1, at.2),
        id: line["id"].as_str().unwrap_or_default().to_owned(),
        detail,
    };
    // Live computed the record (a result line that is not a skip).
    let computed_live = |at: &At| {
        live.get(at)
            .filter(|live| live.get("skipped").is_none() && live["op"] == "upsert")
    };
    for (at, line) in &failed {
        let reason = line["reason"].as_str().unwrap_or_default().to_owned();
        // A record live could not compute either (an event that does not
        // decode, a body that is gone) is no failure of the candidate's.
        match computed_live(at) {
            Some(_) => report.add(Verdict::Failed, || example(at, line, reason)),
            None => report.add(Verdict::NotCompared, || {
                example(at, line, format!("no live result; dead-lettered: {reason}"))
            }),
        }
    }
    for (at, line) in &shadow {
        if line["op"] != "upsert" {
            continue;
        }
        let verdict = match computed_live(at) {
            Some(live) => {
                if live["outputs"] == line["outputs"] {
                    Verdict::Identical
                } else {
                    Verdict::Changed
                }
            }
            _ => Verdict::NotCompared,
        };
        report.add(verdict, || {
            let detail = live
                .get(at)
                .map(|l| difference(l, line))
                .unwrap_or_default();
            example(at, line, detail)
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn put_lines(store: &ObjectStore, key: &str, lines: &[Value]) {
        let mut text = Vec::new();
        for line in lines {
            text.extend(serde_json::to_vec(line).unwrap());
            text.push(b'\n');
        }
        let bytes = if key.ends_with(".zst") {
            zstd::encode_all(text.as_slice(), 1).unwrap()
        } else {
            text
        };
        store.put(key, bytes).await.unwrap();
    }

    fn line(offset: i64, text: &str) -> Value {
        serde_json::json!({
            "position": {"topic": "t", "partition": 0, "offset": offset},
            "id": format!("d{offset}"),
            "op": "upsert",
            "outputs": [{"content_type": "text/plain", "text": text}],
        })
    }

    #[test]
    fn a_shadow_runs_the_candidate_in_a_group_and_folder_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let text = crate::test_support::live_kafka_pipeline(
            r#"[registry]
dir = "registry"
[[stage]]
name = "one"
plugin = "echo@active"
[[stage]]
name = "two"
plugin = "other@active""#,
        );
        let live = crate::config::parse(&text, dir.path()).unwrap();
        let shadow = shadow_pipeline(live, "echo", "2.0.0").unwrap();
        assert_eq!(shadow.name, "live/shadow/echo@2.0.0");
        let Source::Kafka(kafka) = &shadow.source else {
            panic!("kafka")
        };
        assert_eq!(
            (kafka.group.as_str(), kafka.start),
            ("weir-shadow.live.echo@2.0.0", StartFrom::Latest)
        );
        let versions: Vec<_> = shadow.stages.iter().map(|s| s.plugin.clone()).collect();
        assert_eq!(
            versions,
            [
                PluginSource::Registry {
                    name: "echo".into(),
                    version: VersionRef::Exact("2.0.0".into())
                },
                PluginSource::Registry {
                    name: "other".into(),
                    version: VersionRef::Active
                }
            ]
        );
        assert_eq!(
            shadow.registry.unwrap().pipeline,
            "live",
            "the others follow live"
        );
        assert!(matches!(shadow.dead_letter, DeadLetterOutput::Store(_)));
        assert!(matches!(shadow.event_mode, EventMode::Off));
        let live = crate::config::parse(&text, dir.path()).unwrap();
        assert!(matches!(
            shadow_pipeline(live, "score", "1"),
            Err(ShadowError::NotInPipeline { .. })
        ));
    }

    #[tokio::test]
    async fn records_are_compared_at_the_same_input_positions() {
        let store = ObjectStore::memory();
        let live = [line(0, "a"), line(1, "b"), line(2, "c")];
        put_lines(
            &store,
            "p/results/t/0/00000000000000000000-00000000000000000002.jsonl.zst",
            &live,
        )
        .await;
        // A live object outside the shadow's offsets is not read.
        store
            .put(
                "p/results/t/0/00000000000000000100-00000000000000000200.jsonl.zst",
                b"not zstd".to_vec(),
            )
            .await
            .unwrap();
        let shadow = [line(1, "b"), line(2, "C"), line(3, "d")];
        put_lines(
            &store,
            "p/shadow/x@2/results/t/0/00000000000000000001-00000000000000000003.jsonl.zst",
            &shadow,
        )
        .await;
        // Live computed 4, which the candidate dead-lettered: a failure. It
        // did not compute 5 either (an event that does not decode, say):
        // not the candidate's failure, so not compared.
        put_lines(
            &store,
            "p/results/t/0/00000000000000000004-00000000000000000004.jsonl.zst",
            &[line(4, "e")],
        )
        .await;
        let mut dead = line(4, "");
        dead["reason"] = "plugin failed: boom".into();
        let mut undecodable = line(5, "");
        undecodable["reason"] = "not a change event".into();
        put_lines(
            &store,
            "p/shadow/x@2/dead-letters/t/0/00000000000000000004-00000000000000000005.jsonl",
            &[dead, undecodable],
        )
        .await;

        let report = report(&store, "p", "x@2").await.unwrap();
        let counts: Vec<(Verdict, u64)> = report.counts.clone().into_iter().collect();
        assert_eq!(
            counts,
            [
                (Verdict::Identical, 1),
                (Verdict::Changed, 1),
                (Verdict::Failed, 1),
                (Verdict::NotCompared, 2)
            ]
        );
        assert_eq!(
            report.examples[&Verdict::Changed],
            [Example {
                position: "t/0@2".into(),
                id: "d2".into(),
                detail: "output 0: `text` differs".into()
            }]
        );
        assert_eq!(
            report.examples[&Verdict::Failed][0].detail,
            "plugin failed: boom"
        );
        assert!(report.lines()[0].starts_with("1 identical, 1 changed, 1 failed, 2 not compared"));
    }
}
