//! The cache key of one stage's work on one record: a digest of everything
//! that determines the outputs, so that equal keys mean equal outputs.
//!
//! What goes in, and why:
//! - the stage identity ([`crate::chain::Stage::identity`]): the plugin
//!   component's digest (its code), the stage configuration (passed to
//!   `init`), and the digest of what the stage is granted that a plugin can
//!   read (environment values, the contents of read-only directories such
//!   as model files). Stages granted real clocks or randomness are not
//!   cached: their outputs may differ from one call to the next;
//! - the input record exactly as the plugin receives it: document id,
//!   revision, content type, body and every metadata pair, in order (a
//!   plugin may read any of them, and its outputs carry id and revision).
//!   The body enters by its SHA-256 digest, which the previous stage's
//!   entry keeps (see [`super::entry`]): a replay whose stages all hit
//!   hashes no body but the chain's input.
//!
//! Not in the key: the record's position (the same content at another
//! offset or in another topic is the same work), the stage's name, limits
//! and batch size (they bound the work, they do not change its result: a
//! record that hits a limit fails, and failures are not cached).

use crate::digest::Digest;
use crate::runtime::DocRecord;

/// The key scheme's version: a change to what goes into keys changes it,
/// so old entries are never read under the new meaning.
const SCHEME: &[u8] = b"weir-stage-cache-v2";

/// A stage's input record but for its body: the parts of the key that the
/// body's digest does not give. A record from a cache entry has them
/// without its body being rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHead<'a> {
    /// Document id.
    pub id: &'a str,
    /// Document revision.
    pub revision: u64,
    /// Content type.
    pub content_type: &'a str,
    /// Metadata pairs, in order.
    pub metadata: &'a [(String, String)],
}

impl<'a> From<&'a DocRecord> for RecordHead<'a> {
    fn from(record: &'a DocRecord) -> Self {
        RecordHead {
            id: &record.id,
            revision: record.revision,
            content_type: &record.content_type,
            metadata: &record.metadata,
        }
    }
}

/// The key of the stage whose identity is `stage` processing `record`,
/// whose body's digest is `body`.
pub fn entry_key<'a>(stage: &Digest, record: impl Into<RecordHead<'a>>, body: &Digest) -> Digest {
    let record = record.into();
    let revision = record.revision.to_le_bytes();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(6 + 2 * record.metadata.len());
    parts.extend([
        SCHEME,
        stage.as_bytes().as_slice(),
        record.id.as_bytes(),
        revision.as_slice(),
        record.content_type.as_bytes(),
        body.as_bytes().as_slice(),
    ]);
    for (key, value) in record.metadata {
        parts.push(key.as_bytes());
        parts.push(value.as_bytes());
    }
    Digest::of_parts(&parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> DocRecord {
        DocRecord {
            id: "enwiki:12".into(),
            revision: 7,
            content_type: "text/x-wiki".into(),
            body: b"'''Anarchism''' is".to_vec(),
            metadata: vec![("title".into(), "Anarchism".into())],
        }
    }

    /// Every part of the key changes it: a change to any of them is a miss.
    #[test]
    fn every_part_of_the_key_matters() {
        let stage = Digest::of(b"stage");
        let key = |stage: &Digest, r: &DocRecord| entry_key(stage, r, &Digest::of(&r.body));
        let base = key(&stage, &record());
        assert_eq!(base, key(&stage, &record()), "deterministic");
        assert_ne!(base, key(&Digest::of(b"other stage"), &record()));
        let changes: [fn(&mut DocRecord); 7] = [
            |r| r.id.push('x'),
            |r| r.revision += 1,
            |r| r.content_type = "text/plain".into(),
            |r| r.body.push(b' '),
            |r| r.metadata[0].1.push('x'),
            |r| r.metadata.push(("wiki".into(), "enwiki".into())),
            |r| r.metadata.clear(),
        ];
        for change in changes {
            let mut changed = record();
            change(&mut changed);
            assert_ne!(base, key(&stage, &changed), "{changed:?}");
        }
    }

    /// Parts are length-prefixed: moving bytes between them changes the key.
    #[test]
    fn parts_do_not_run_into_each_other() {
        let stage = Digest::of(b"stage");
        let mut a = record();
        a.metadata = vec![("ab".into(), "c".into())];
        let mut b = record();
        b.metadata = vec![("a".into(), "bc".into())];
        let body = Digest::of(&a.body);
        assert_ne!(entry_key(&stage, &a, &body), entry_key(&stage, &b, &body));
    }
}
