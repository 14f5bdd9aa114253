//! Problems of a pipeline file: what is wrong, at which key, and the line
//! and column where it can be fixed.

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `stage[1].limits.deadline_ms`; empty for the file as
    /// a whole.
    pub key: String,
    /// 1-based line and column of that key in the file, when known.
    pub location: Option<(usize, usize)>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((line, column)) = self.location {
            write!(f, "line {line}, column {column}: ")?;
        }
        // An empty key is the file as a whole (it cannot be read, or is
        // not TOML).
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// A pipeline file that could not be loaded: every problem found.
#[derive(Debug, thiserror::Error)]
#[error("{} has {} problem(s):\n{}", path.display(), problems.len(), render(problems))]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// Every problem, in file order where known.
    pub problems: Vec<Problem>,
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A problem found after loading (e.g. against the broker), at `key` of
/// the pipeline file `path`: located in the file when the key is written
/// there.
pub fn problem_at(path: &Path, key: &str, message: String) -> ConfigError {
    let location = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| locate(&text, key));
    ConfigError {
        path: path.to_owned(),
        problems: vec![Problem {
            key: key.to_owned(),
            location,
            message,
        }],
    }
}

/// `base` joined with `relative`, with `.` and `..` resolved lexically so
/// 1-based line and column of byte offset `at`.
pub(super) fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Where the key path `key` (e.g. `stage[1].limits.memory_mb`) is written in
/// the file: the deepest prefix of the path that exists. A key with dots of
/// its own (`source.kafka.properties."enable.auto.commit"`) is matched
/// whole: at each level the longest run of segments that names a key is
/// taken.
pub(super) fn locate(text: &str, key: &str) -> Option<(usize, usize)> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut span = None;
    let mut table = document.get_ref();
    let segments: Vec<&str> = key.split('.').collect();
    let mut next = 0;
    while next < segments.len() {
        let found = (next + 1..=segments.len()).rev().find_map(|end| {
            let run = &segments[next..end];
            // An index (`stage[1]`) belongs to a segment of its own.
            if run.len() > 1 && run.iter().any(|s| s.contains('[')) {
                return None;
            }
            let joined = run.join(".");
            let (name, index) = match joined.split_once('[') {
                Some((name, rest)) => (
                    name.to_owned(),
                    rest.trim_end_matches(']').parse::<usize>().ok(),
                ),
                None => (joined, None),
            };
            table
                .iter()
                .find(|(k, _)| k.get_ref() == name.as_str())
                .map(|(k, v)| (end, k.span(), v, index))
        });
        let Some((end, key_span, mut value, index)) = found else {
            break;
        };
        next = end;
        span = Some(key_span);
        if let Some(index) = index {
            let toml::de::DeValue::Array(items) = value.get_ref() else {
                break;
            };
            let Some(item) = items.get(index) else {
                break;
            };
            span = Some(item.span());
            value = item;
        }
        match value.get_ref() {
            toml::de::DeValue::Table(inner) if next < segments.len() => table = inner,
            _ => break,
        }
    }
    span.map(|s| line_column(text, s.start))
}
