//! Choosing dead letters: by stage, kind, reason, time, document or
//! position, for `weir dlq list` and `weir dlq redrive`.

use super::{DeadLetter, DeadLetterKind};

/// What a dead letter must match (every given criterion).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// The failing stage.
    pub stage: Option<String>,
    /// The kind of failure.
    pub kind: Option<DeadLetterKind>,
    /// Text the reason contains (case-insensitive).
    pub reason: Option<String>,
    /// Dead-lettered at or after.
    pub since: Option<jiff::Timestamp>,
    /// Dead-lettered before.
    pub until: Option<jiff::Timestamp>,
    /// The document id.
    pub document: Option<String>,
    /// The input position, `topic/partition@offset`.
    pub position: Option<String>,
}

impl Filter {
    /// Whether `letter` matches. A time bound excludes dead letters
    /// without a time.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        let same = |wanted: &Option<String>, actual: Option<&str>| {
            wanted.as_deref().is_none_or(|w| actual == Some(w))
        };
        same(&self.stage, letter.stage.as_deref())
            && same(&self.document, letter.id.as_deref())
            && self.kind.is_none_or(|k| k == letter.kind)
            && self
                .reason
                .as_ref()
                .is_none_or(|text| letter.reason.to_lowercase().contains(&text.to_lowercase()))
            && self
                .since
                .is_none_or(|t| letter.at.is_some_and(|at| at >= t))
            && self
                .until
                .is_none_or(|t| letter.at.is_some_and(|at| at < t))
            && self
                .position
                .as_ref()
                .is_none_or(|p| *p == letter.position.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::Payload;
    use crate::source::Position;

    fn letter(stage: Option<&str>, kind: DeadLetterKind, at: &str) -> DeadLetter {
        DeadLetter {
            position: Position {
                topic: "t".into(),
                partition: 1,
                offset: 7,
            },
            id: Some("enwiki:1".into()),
            revision: Some(3),
            kind,
            reason: "Fuel exhausted".into(),
            stage: stage.map(String::from),
            plugin: None,
            plugin_digest: None,
            attempts: 1,
            at: Some(at.parse().unwrap()),
            payload: Payload::Text("{}".into()),
        }
    }

    #[test]
    fn every_criterion_must_hold() {
        let trap = letter(Some("parse"), DeadLetterKind::Trap, "2026-01-02T00:00:00Z");
        let decode = letter(None, DeadLetterKind::Decode, "2026-01-01T00:00:00Z");
        let all = Filter::default();
        assert!(all.matches(&trap) && all.matches(&decode));
        let by_stage = Filter {
            stage: Some("parse".into()),
            ..Filter::default()
        };
        assert!(by_stage.matches(&trap) && !by_stage.matches(&decode));
        let by_kind = Filter {
            kind: Some(DeadLetterKind::Decode),
            ..Filter::default()
        };
        assert!(!by_kind.matches(&trap) && by_kind.matches(&decode));
        let by_reason = Filter {
            reason: Some("fuel".into()),
            ..Filter::default()
        };
        assert!(by_reason.matches(&trap));
        let by_time = Filter {
            since: Some("2026-01-01T12:00:00Z".parse().unwrap()),
            until: Some("2026-01-03T00:00:00Z".parse().unwrap()),
            ..Filter::default()
        };
        assert!(by_time.matches(&trap) && !by_time.matches(&decode));
        let by_document = Filter {
            document: Some("enwiki:2".into()),
            ..Filter::default()
        };
        assert!(!by_document.matches(&trap));
        let by_position = Filter {
            position: Some("t/1@7".into()),
            ..Filter::default()
        };
        assert!(by_position.matches(&trap));
    }
}
