//! What every record a plugin emits must satisfy before it goes to the next
//! stage or into a results object. A plugin is untrusted code: an output
//! that breaks these rules dead-letters its input record (kind `contract`)
//! with the reason, and never reaches the next stage or the results.
//!
//! The rules:
//! - the content type is one concrete media type (RFC 6838 grammar, no
//!   wildcards, no control characters) among the stage's declared
//!   `produces`;
//! - the id is non-empty and at most [`MAX_ID_BYTES`];
//! - metadata has at most [`MAX_METADATA_ENTRIES`] entries, keys non-empty
//!   and at most [`MAX_METADATA_KEY_BYTES`], and at most
//!   [`MAX_METADATA_BYTES`] of keys and values in all.
//!
//! Bodies are bounded by the instance's memory limit, not here.

use crate::media_type;
use crate::runtime::DocRecord;

/// Longest id an output may have (document ids are short: a wiki and a
/// page id, a URL).
pub const MAX_ID_BYTES: usize = 1024;
/// Most metadata entries an output may have.
pub const MAX_METADATA_ENTRIES: usize = 256;
/// Longest metadata key.
pub const MAX_METADATA_KEY_BYTES: usize = 256;
/// Most bytes of metadata keys and values in all.
pub const MAX_METADATA_BYTES: usize = 1 << 20;

/// Why an output breaks the contract. The `Display` text is the
/// dead-letter reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractViolation {
    /// Not one concrete media type.
    #[error("emitted content type {0:?}, which is not a media type (type/subtype)")]
    MalformedContentType(String),
    /// A media type the stage did not declare.
    #[error(
        "emitted content type `{emitted}`, which is not among its declared outputs {declared:?}"
    )]
    UndeclaredContentType {
        /// What the plugin emitted.
        emitted: String,
        /// The stage's `produces`.
        declared: Vec<String>,
    },
    /// An empty id.
    #[error("emitted an output with an empty id")]
    EmptyId,
    /// An id over [`MAX_ID_BYTES`].
    #[error("emitted an output id of {0} bytes (at most {MAX_ID_BYTES})")]
    IdTooLong(usize),
    /// Over [`MAX_METADATA_ENTRIES`].
    #[error("emitted {0} metadata entries (at most {MAX_METADATA_ENTRIES})")]
    TooManyMetadataEntries(usize),
    /// An empty key or one over [`MAX_METADATA_KEY_BYTES`].
    #[error("emitted a metadata key of {0} bytes (1 to {MAX_METADATA_KEY_BYTES})")]
    BadMetadataKey(usize),
    /// Over [`MAX_METADATA_BYTES`] in all.
    #[error("emitted {0} bytes of metadata (at most {MAX_METADATA_BYTES})")]
    MetadataTooLarge(usize),
}

/// The first rule `output` breaks, for a stage declaring `produces`.
pub fn output_problem(output: &DocRecord, produces: &[String]) -> Option<ContractViolation> {
    let content_type = &output.content_type;
    if !media_type::is_concrete(content_type) {
        return Some(ContractViolation::MalformedContentType(
            // Quoted with escapes by Display; bounded so a huge type cannot
            // flood the dead letter either.
            content_type.chars().take(200).collect(),
        ));
    }
    if !media_type::any_matches(produces, content_type) {
        return Some(ContractViolation::UndeclaredContentType {
            emitted: content_type.clone(),
            declared: produces.to_vec(),
        });
    }
    if output.id.is_empty() {
        return Some(ContractViolation::EmptyId);
    }
    if output.id.len() > MAX_ID_BYTES {
        return Some(ContractViolation::IdTooLong(output.id.len()));
    }
    let metadata = &output.metadata;
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Some(ContractViolation::TooManyMetadataEntries(metadata.len()));
    }
    if let Some((key, _)) = metadata
        .iter()
        .find(|(key, _)| key.is_empty() || key.len() > MAX_METADATA_KEY_BYTES)
    {
        return Some(ContractViolation::BadMetadataKey(key.len()));
    }
    let total: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    (total > MAX_METADATA_BYTES).then_some(ContractViolation::MetadataTooLarge(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output() -> DocRecord {
        DocRecord {
            id: "enwiki:12".into(),
            revision: 1,
            content_type: "application/json".into(),
            body: b"{}".to_vec(),
            metadata: vec![("title".into(), "Anarchism".into())],
        }
    }

    fn problem(change: impl FnOnce(&mut DocRecord)) -> Option<ContractViolation> {
        let mut record = output();
        change(&mut record);
        output_problem(&record, &["application/*".to_owned()])
    }

    #[test]
    fn a_well_formed_declared_output_passes() {
        assert_eq!(problem(|_| {}), None);
        assert_eq!(
            output_problem(&output(), &["*/*".to_owned()]),
            None,
            "a wildcard declaration covers any concrete type"
        );
    }

    #[test]
    fn every_rule_is_checked() {
        type Change = Box<dyn FnOnce(&mut DocRecord)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|r| r.content_type = "not a type \u{0}\n".into()),
                "not a media type",
            ),
            (
                Box::new(|r| r.content_type = "text/plain".into()),
                "declared",
            ),
            (Box::new(|r| r.id.clear()), "empty id"),
            (
                Box::new(|r| r.id = "x".repeat(10 << 20)),
                "output id of 10485760 bytes",
            ),
            (
                Box::new(|r| r.metadata = vec![("k".into(), "v".into()); 257]),
                "257 metadata entries",
            ),
            (
                Box::new(|r| r.metadata = vec![(String::new(), "v".into())]),
                "metadata key of 0 bytes",
            ),
            (
                Box::new(|r| r.metadata = vec![("k".into(), "v".repeat(2 << 20))]),
                "bytes of metadata",
            ),
        ];
        for (change, expected) in cases {
            let found = problem(change).map(|p| p.to_string());
            assert!(
                found.as_deref().is_some_and(|p| p.contains(expected)),
                "{expected}: {found:?}"
            );
        }
    }

    #[test]
    fn a_wildcard_declaration_does_not_let_a_malformed_type_through() {
        let mut record = output();
        record.content_type = "not a type \u{0}\n".into();
        assert!(matches!(
            output_problem(&record, &["*/*".to_owned()]),
            Some(ContractViolation::MalformedContentType(_))
        ));
    }
}
