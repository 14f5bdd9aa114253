//! One cached output, as the cache keeps it: the record without its body's
//! common part with the stage's input, and its body's digest.
//!
//! Most stages of a document chain add a field to the document they
//! receive (`Record::extend_json`): their output's body is their input's
//! body up to its last bytes, then the new field. Such an output is kept as
//! the length of that shared prefix and the rest, and rebuilt from the
//! input at lookup, which the lookup always has (the input is part of the
//! key). A chain of such stages then stores each document about once, not
//! once per stage.
//!
//! The digest of the output's body is kept too (except for the chain's last
//! stage, whose outputs no stage reads): it is the next stage's input
//! digest, part of that stage's key, so a replay whose stages all hit hashes
//! no body but the first. For the last stage's outputs, whether the body is
//! a JSON document is kept instead: result lines need it, and a replay
//! whose last stage hits then parses no output ([`crate::chain::Output`]).

use serde::{Deserialize, Serialize};

use crate::digest::{BodyDigest, Digest};
use crate::runtime::DocRecord;

/// A shared prefix shorter than this is not worth the indirection.
const MIN_SHARED: usize = 256;

/// A cached output record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOutput {
    id: String,
    revision: u64,
    content_type: String,
    metadata: Vec<(String, String)>,
    /// The first `shared` bytes of the body are the input body's.
    shared: u32,
    /// The rest of the body.
    #[serde(with = "serde_bytes")]
    rest: Vec<u8>,
    /// The digest of the whole body, if a later stage needs it.
    digest: Option<[u8; 32]>,
    /// Whether the body is a JSON document, if checked (for a chain's last
    /// stage; trusted at lookup, as the rest of the entry is).
    json: Option<bool>,
}

impl StoredOutput {
    /// How `output`, which the stage computed from `input`, is kept. With
    /// `next_stage`, the digest of `input`'s body, when a later stage reads
    /// the output: the output's body digest is then kept and returned (from
    /// the input's hash state as far as the bodies share their start).
    /// `json`: whether the output's body is a JSON document, if checked.
    pub fn new(
        input: &DocRecord,
        output: &DocRecord,
        next_stage: Option<&BodyDigest>,
        json: Option<bool>,
    ) -> (Self, Option<BodyDigest>) {
        let common = common_prefix(&input.body, &output.body);
        let shared = if common >= MIN_SHARED { common } else { 0 };
        let digest = next_stage.map(|input| input.of_extension(&output.body, common));
        let stored = StoredOutput {
            id: output.id.clone(),
            revision: output.revision,
            content_type: output.content_type.clone(),
            metadata: output.metadata.clone(),
            shared: u32::try_from(shared).unwrap_or(0),
            rest: output.body[shared.min(u32::MAX as usize)..].to_vec(),
            digest: digest.as_ref().map(|d| *d.digest().as_bytes()),
            json,
        };
        (stored, digest)
    }

    /// The output record, rebuilt from the `input` it was computed from,
    /// and its body's digest; `None` if `input` cannot be its input (a
    /// shared prefix longer than the input's body: a damaged entry).
    pub fn rebuild(&self, input: &DocRecord) -> Option<(DocRecord, Option<Digest>)> {
        let shared = input.body.get(..self.shared as usize)?;
        let mut body = Vec::with_capacity(shared.len() + self.rest.len());
        body.extend_from_slice(shared);
        body.extend_from_slice(&self.rest);
        let record = DocRecord {
            id: self.id.clone(),
            revision: self.revision,
            content_type: self.content_type.clone(),
            body,
            metadata: self.metadata.clone(),
        };
        Some((record, self.digest()))
    }

    /// The digest of the output's body, if kept.
    pub fn digest(&self) -> Option<Digest> {
        self.digest.map(Digest::from_bytes)
    }

    /// Whether the output's body is a JSON document, if checked.
    pub fn json(&self) -> Option<bool> {
        self.json
    }

    /// Bytes kept (for the memory tier's budget).
    pub fn size(&self) -> usize {
        self.id.len()
            + self.content_type.len()
            + self.rest.len()
            + self
                .metadata
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + 104
    }
}

/// The length of the longest common prefix of `a` and `b`, compared a
/// block at a time (slice equality is a `memcmp`).
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 64;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    i + a[i..n]
        .iter()
        .zip(&b[i..n])
        .take_while(|(x, y)| x == y)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body: &[u8]) -> DocRecord {
        DocRecord {
            id: "d".into(),
            revision: 3,
            content_type: "application/json".into(),
            body: body.to_vec(),
            metadata: vec![("title".into(), "T".into())],
        }
    }

    #[test]
    fn an_output_that_extends_its_input_keeps_only_the_rest() {
        let document = format!("{{\"text\":\"{}\"", "word ".repeat(200));
        let input = record(format!("{document}}}").as_bytes());
        let output = record(format!("{document},\"language\":\"en\"}}").as_bytes());
        let (stored, kept) =
            StoredOutput::new(&input, &output, Some(&BodyDigest::of(&input.body)), None);
        assert_eq!(stored.rest, b",\"language\":\"en\"}");
        let digest = Some(Digest::of(&output.body));
        assert_eq!(kept.map(|d| d.digest()), digest);
        assert_eq!(stored.rebuild(&input), Some((output.clone(), digest)));
        // The last stage's outputs keep no digest: no stage reads them.
        let (last, kept) = StoredOutput::new(&input, &output, None, Some(true));
        assert!(kept.is_none());
        assert_eq!((stored.json(), last.json()), (None, Some(true)));
        assert_eq!(last.rebuild(&input), Some((output, None)));
    }

    #[test]
    fn other_outputs_are_kept_whole() {
        let input = record(b"'''Albedo''' is a measure.");
        let output = record(b"{\"text\":\"Albedo is a measure.\"}");
        let (stored, kept) =
            StoredOutput::new(&input, &output, Some(&BodyDigest::of(&input.body)), None);
        assert_eq!(kept.map(|d| d.digest()), Some(Digest::of(&output.body)));
        assert_eq!(stored.shared, 0);
        assert_eq!(stored.rebuild(&input).unwrap().0, output);
        assert_eq!(stored.rebuild(&record(b"")).unwrap().0, output);
    }

    proptest::proptest! {
        #[test]
        fn the_block_comparison_finds_the_first_difference(
            a in proptest::collection::vec(0u8..3, 0..300),
            b in proptest::collection::vec(0u8..3, 0..300),
        ) {
            let expected = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            proptest::prop_assert_eq!(common_prefix(&a, &b), expected);
            let long: Vec<u8> = a.iter().chain(&b).copied().collect();
            proptest::prop_assert_eq!(common_prefix(&long, &a), a.len());
        }
    }

    #[test]
    fn a_shared_prefix_longer_than_the_input_is_refused() {
        let long = vec![b'x'; 1000];
        let input = record(&long);
        let digest = BodyDigest::of(&input.body);
        let (stored, _) = StoredOutput::new(
            &input,
            &record(&[&long[..], b"!"].concat()),
            Some(&digest),
            None,
        );
        assert_eq!(stored.rebuild(&record(b"short")), None);
    }
}
