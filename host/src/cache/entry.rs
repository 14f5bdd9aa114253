//! One cached output, as the cache keeps it: the record without its body's
//! common part with the stage's input, and what its place in the chain
//! needs.
//!
//! Most stages of a document chain add a field to the document they
//! receive (`Record::extend_json`): their output's body is their input's
//! body up to its last bytes, then the new field. Such an output is kept as
//! the length of that shared prefix and the rest, and rebuilt from the
//! input when its body is needed (the chain keeps the input of every
//! output it takes from the cache: `chain::doc`). A chain of such stages
//! then stores each document about once, not once per stage. The rest of
//! an output read from a pack stays in the pack's bodies, decompressed
//! when a body of the pack is first needed, and the frame of a last
//! stage's output is a slice of the pack (`super::pack`).
//!
//! Beside it, what the output's place in the chain needs (`Kept`):
//! - an output a later stage reads keeps its body's digest: it is the next
//!   stage's input digest, part of that stage's key, so a replay whose
//!   stages all hit hashes no body but the first;
//! - an output of the chain's last stage keeps whether its body is a JSON
//!   document, and the output as a result line writes it, compressed
//!   ([`OutputFrame`]): a replay whose last stage hits parses, renders and
//!   compresses no output ([`crate::chain::Output`]), it splices the frame.

use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::key::RecordHead;
use super::pack::{Bodies, PackParts};
use crate::digest::{BodyDigest, Digest};
use crate::runtime::DocRecord;
use crate::sink::OutputFrame;

/// A shared prefix shorter than this is not worth the indirection.
const MIN_SHARED: usize = 256;

/// A cached output record.
#[derive(Debug, Clone)]
pub struct StoredOutput {
    id: String,
    revision: u64,
    content_type: String,
    metadata: Vec<(String, String)>,
    /// The first `shared` bytes of the body are the input body's.
    shared: u32,
    /// The rest of the body.
    rest: Rest,
    /// What the output's place in the chain needs.
    kept: Kept,
}

/// The rest of an output's body: computed by this process, or in the
/// bodies of a pack it read, which are decompressed when a body is first
/// needed (a replay whose later stages all hit never needs them).
#[derive(Debug, Clone)]
enum Rest {
    Owned(Vec<u8>),
    Packed {
        bodies: Arc<Bodies>,
        range: Range<usize>,
    },
}

impl Rest {
    fn bytes(&self) -> &[u8] {
        match self {
            Rest::Owned(bytes) => bytes,
            Rest::Packed { bodies, range } => &bodies.get()[range.clone()],
        }
    }

    fn len(&self) -> usize {
        match self {
            Rest::Owned(bytes) => bytes.len(),
            Rest::Packed { range, .. } => range.len(),
        }
    }
}

/// An output as a pack's index holds it: all but the rest of its body,
/// which is in the pack's bodies, and the frame of a last stage's output,
/// which is in the pack's frames (see [`super::pack`]), each after the one
/// of the output before it.
#[derive(Serialize, Deserialize)]
pub(super) struct IndexedOutput {
    id: String,
    revision: u64,
    content_type: String,
    metadata: Vec<(String, String)>,
    shared: u32,
    rest_len: u64,
    kept: IndexedKept,
}

/// [`Kept`] as a pack's index holds it.
#[derive(Serialize, Deserialize)]
enum IndexedKept {
    Digest([u8; 32]),
    /// The frame is `frame_len` bytes of the pack's frames, and
    /// decompresses to `rendered_len` bytes.
    Last {
        json: bool,
        frame_len: u64,
        rendered_len: u64,
    },
}

/// What an output keeps beside its body, by its stage's place in the chain
/// that stored it (trusted at lookup, as the rest of the entry is).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kept {
    /// A later stage reads the output: its body's digest.
    Digest([u8; 32]),
    /// The chain's last stage: whether the body is a JSON document, and
    /// the output as a result line writes it, compressed.
    Last { json: bool, frame: OutputFrame },
}

impl StoredOutput {
    /// How `output`, which a stage whose outputs a later stage reads
    /// computed from `input`, is kept, with the digest of its body, which
    /// is returned too. `input_digest` is the digest of `input`'s body: the
    /// output's resumes from its hash state as far as the bodies share
    /// their start.
    pub(crate) fn feeding(
        input: &DocRecord,
        output: &DocRecord,
        input_digest: &BodyDigest,
    ) -> (Self, BodyDigest) {
        let common = common_prefix(&input.body, &output.body);
        let digest = input_digest.of_extension(&output.body, common);
        let kept = Kept::Digest(*digest.digest().as_bytes());
        (Self::with(output, common, kept), digest)
    }

    /// How `output`, which the chain's last stage computed from `input`,
    /// is kept: `json` says whether its body is a JSON document, `frame` is
    /// the output as a result line writes it.
    pub(crate) fn of_last(
        input: &DocRecord,
        output: &DocRecord,
        json: bool,
        frame: OutputFrame,
    ) -> Self {
        let common = common_prefix(&input.body, &output.body);
        Self::with(output, common, Kept::Last { json, frame })
    }

    /// `output`, whose body starts with `common` bytes of its input's, kept
    /// without them if they are worth the indirection.
    fn with(output: &DocRecord, common: usize, kept: Kept) -> Self {
        let shared = if common >= MIN_SHARED { common } else { 0 };
        let shared = shared.min(u32::MAX as usize);
        StoredOutput {
            id: output.id.clone(),
            revision: output.revision,
            content_type: output.content_type.clone(),
            metadata: output.metadata.clone(),
            shared: shared as u32,
            rest: Rest::Owned(output.body[shared..].to_vec()),
            kept,
        }
    }

    /// The length of the rest of its body (what a pack's bodies hold of it).
    pub(super) fn rest_len(&self) -> usize {
        self.rest.len()
    }

    /// The output as a pack's index holds it, the rest of its body, and
    /// the frame of a last stage's output.
    pub(super) fn indexed(&self) -> (IndexedOutput, &[u8], Option<bytes::Bytes>) {
        let rest = self.rest.bytes();
        let (kept, frame) = match &self.kept {
            Kept::Digest(digest) => (IndexedKept::Digest(*digest), None),
            Kept::Last { json, frame } => {
                let compressed = frame.compressed();
                let kept = IndexedKept::Last {
                    json: *json,
                    frame_len: compressed.len() as u64,
                    rendered_len: frame.rendered_len() as u64,
                };
                (kept, Some(compressed))
            }
        };
        let indexed = IndexedOutput {
            id: self.id.clone(),
            revision: self.revision,
            content_type: self.content_type.clone(),
            metadata: self.metadata.clone(),
            shared: self.shared,
            rest_len: rest.len() as u64,
            kept,
        };
        (indexed, rest, frame)
    }

    /// The output `indexed` describes, with its rest and frame taken from
    /// `parts`; `None` if they end before them.
    pub(super) fn from_index(indexed: IndexedOutput, parts: &mut PackParts) -> Option<Self> {
        let (bodies, range) = parts.rest(usize::try_from(indexed.rest_len).ok()?)?;
        let kept = match indexed.kept {
            IndexedKept::Digest(digest) => Kept::Digest(digest),
            IndexedKept::Last {
                json,
                frame_len,
                rendered_len,
            } => {
                let frame = parts.frame(usize::try_from(frame_len).ok()?)?;
                Kept::Last {
                    json,
                    frame: OutputFrame::compressed_before(frame, rendered_len),
                }
            }
        };
        Some(StoredOutput {
            id: indexed.id,
            revision: indexed.revision,
            content_type: indexed.content_type,
            metadata: indexed.metadata,
            shared: indexed.shared,
            rest: Rest::Packed { bodies, range },
            kept,
        })
    }

    /// The output record but for its body.
    pub(crate) fn head(&self) -> RecordHead<'_> {
        RecordHead {
            id: &self.id,
            revision: self.revision,
            content_type: &self.content_type,
            metadata: &self.metadata,
        }
    }

    /// Whether an input body of `input_len` bytes can be this output's
    /// input: it holds the shared prefix (a damaged entry may claim more).
    pub(crate) fn fits(&self, input_len: usize) -> bool {
        self.shared as usize <= input_len
    }

    /// The bodies of the pack the rest is in, if it is in one.
    #[cfg(test)]
    pub(crate) fn packed_in(&self) -> Option<&Arc<Bodies>> {
        match &self.rest {
            Rest::Packed { bodies, .. } => Some(bodies),
            Rest::Owned(_) => None,
        }
    }

    /// The length of the output's body.
    pub(crate) fn body_len(&self) -> usize {
        self.shared as usize + self.rest.len()
    }

    /// The output's body, rebuilt from the body of the input it was
    /// computed from; `None` if that body cannot be its input's (see
    /// [`StoredOutput::fits`]).
    pub(crate) fn body_from(&self, input_body: &[u8]) -> Option<Vec<u8>> {
        let shared = input_body.get(..self.shared as usize)?;
        let rest = self.rest.bytes();
        let mut body = Vec::with_capacity(shared.len() + rest.len());
        body.extend_from_slice(shared);
        body.extend_from_slice(rest);
        Some(body)
    }

    /// The output record, its body rebuilt as [`StoredOutput::body_from`]
    /// does.
    pub(crate) fn record_from(&self, input_body: &[u8]) -> Option<DocRecord> {
        Some(DocRecord {
            id: self.id.clone(),
            revision: self.revision,
            content_type: self.content_type.clone(),
            body: self.body_from(input_body)?,
            metadata: self.metadata.clone(),
        })
    }

    /// The digest of the output's body, if kept.
    pub fn digest(&self) -> Option<Digest> {
        match &self.kept {
            Kept::Digest(digest) => Some(Digest::from_bytes(*digest)),
            Kept::Last { .. } => None,
        }
    }

    /// For an output of a chain's last stage: whether its body is a JSON
    /// document, and the output as a result line writes it, compressed.
    pub(crate) fn last(&self) -> Option<(bool, &OutputFrame)> {
        match &self.kept {
            Kept::Last { json, frame } => Some((*json, frame)),
            Kept::Digest(_) => None,
        }
    }

    /// Bytes kept (for the memory tier's budget; a packed rest counts as
    /// the bytes it decompresses to).
    pub fn size(&self) -> usize {
        self.id.len()
            + self.content_type.len()
            + self.rest.len()
            + self
                .metadata
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + self.last().map_or(0, |(_, frame)| frame.size())
            + 104
    }
}

/// Equal outputs: the same record, rest and what is kept, wherever the
/// rest is.
impl PartialEq for StoredOutput {
    fn eq(&self, other: &Self) -> bool {
        self.head() == other.head()
            && self.shared == other.shared
            && self.kept == other.kept
            && self.rest.bytes() == other.rest.bytes()
    }
}

impl Eq for StoredOutput {}

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
        let (stored, kept) = StoredOutput::feeding(&input, &output, &BodyDigest::of(&input.body));
        assert_eq!(stored.rest.bytes(), b",\"language\":\"en\"}");
        let digest = Some(Digest::of(&output.body));
        assert_eq!(Some(kept.digest()), digest);
        assert_eq!(
            (stored.record_from(&input.body), stored.digest()),
            (Some(output.clone()), digest)
        );
        assert_eq!(stored.last(), None);
        // The last stage's outputs keep no digest (no stage reads them),
        // but whether they are JSON and their frame.
        let frame = OutputFrame::of(&output, true, 1);
        let last = StoredOutput::of_last(&input, &output, true, frame.clone());
        assert_eq!(last.rest.bytes(), stored.rest.bytes());
        assert_eq!(last.last(), Some((true, &frame)));
        assert_eq!(
            (last.record_from(&input.body), last.digest()),
            (Some(output), None)
        );
    }

    #[test]
    fn other_outputs_are_kept_whole() {
        let input = record(b"'''Albedo''' is a measure.");
        let output = record(b"{\"text\":\"Albedo is a measure.\"}");
        let (stored, kept) = StoredOutput::feeding(&input, &output, &BodyDigest::of(&input.body));
        assert_eq!(kept.digest(), Digest::of(&output.body));
        assert_eq!(stored.shared, 0);
        assert_eq!(stored.record_from(&input.body).unwrap(), output);
        assert_eq!(stored.record_from(b"").unwrap(), output);
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
        let (stored, _) =
            StoredOutput::feeding(&input, &record(&[&long[..], b"!"].concat()), &digest);
        assert_eq!(stored.record_from(b"short"), None);
    }
}
