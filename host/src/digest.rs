//! SHA-256 content digests, the identity of plugins, configs and bodies.
//!
//! A [`Digest`] renders as `sha256:<64 hex chars>`, the form used in lineage,
//! dead letters, cache keys and file names. A [`BodyDigest`] is a record
//! body's digest with the hash state of its start kept, so that the digest
//! of a body extending it (most stages of a document chain add a field to
//! the document they receive) hashes only the bytes that differ.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// Digest of several byte strings, each length-prefixed so that
    /// `("ab","c")` and `("a","bc")` differ.
    pub fn of_parts(parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        Digest(hasher.finalize().into())
    }

    /// The digest's 32 bytes (for compact binary records).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A digest from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    /// Lowercase hex without the `sha256:` prefix (for file names).
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parse `sha256:<hex>` or bare hex.
    pub fn parse(s: &str) -> Option<Self> {
        let hex_part = s.strip_prefix("sha256:").unwrap_or(s);
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes).ok()?;
        Some(Digest(bytes))
    }

    /// The first 12 hex characters, for log lines and labels.
    pub fn short(&self) -> String {
        self.hex()[..12].to_owned()
    }
}

/// Bytes at a body's end that its kept hash state does not cover: a body
/// extending it may differ from it in these (a stage adding a field
/// rewrites the document's closing brace) and still resume from the state.
const RESUME_SLACK: usize = 256;

/// SHA-256 works on blocks of this many bytes: its state can be kept only
/// at a multiple of it.
const BLOCK: usize = 64;

/// A body's digest, and the SHA-256 state after the body's first bytes
/// (all but its last [`RESUME_SLACK`] or so, at a block boundary) when this
/// process hashed it.
#[derive(Clone)]
pub struct BodyDigest {
    digest: Digest,
    /// `(n, state)`: the state after the first `n` bytes, `n` a multiple of
    /// [`BLOCK`]. `None` for a digest known from elsewhere (a cache entry,
    /// an event's content hash).
    start: Option<(usize, Sha256)>,
}

impl BodyDigest {
    /// The digest of `body`, keeping the state of its start.
    pub fn of(body: &[u8]) -> Self {
        Self::resumed(0, Sha256::new(), body)
    }

    /// A digest known from elsewhere (nothing to resume from).
    pub fn known(digest: Digest) -> Self {
        BodyDigest {
            digest,
            start: None,
        }
    }

    /// The digest of `body`, whose first `shared` bytes are those of the
    /// body this is the digest of: only the bytes after the kept state are
    /// hashed, when it covers no more than `shared`.
    pub fn of_extension(&self, body: &[u8], shared: usize) -> Self {
        match &self.start {
            Some((n, state)) if *n <= shared && *n <= body.len() => {
                Self::resumed(*n, state.clone(), &body[*n..])
            }
            _ => Self::of(body),
        }
    }

    /// The digest itself.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// Hash `rest`, the bytes of a body after its first `done` (whose
    /// state is `state`), keeping the state at the last block boundary at
    /// least [`RESUME_SLACK`] bytes before the body's end.
    fn resumed(done: usize, mut state: Sha256, rest: &[u8]) -> Self {
        let end = done + rest.len();
        // Never behind the state given: it is as good a place to resume.
        let keep = (end.saturating_sub(RESUME_SLACK) / BLOCK * BLOCK).max(done);
        state.update(&rest[..keep - done]);
        let start = (keep > 0).then(|| (keep, state.clone()));
        state.update(&rest[keep - done..]);
        BodyDigest {
            digest: Digest(state.finalize().into()),
            start,
        }
    }
}

impl fmt::Debug for BodyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.digest, f)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    /// `sha256:<hex>`, formatted on the stack: every result line carries
    /// two digests, and going through `Display` allocated for each.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const PREFIX: &[u8] = b"sha256:";
        let mut text = [0u8; PREFIX.len() + 64];
        text[..PREFIX.len()].copy_from_slice(PREFIX);
        hex::encode_to_slice(self.0, &mut text[PREFIX.len()..]).expect("64 hex digits fit");
        s.serialize_str(std::str::from_utf8(&text).expect("hex is ASCII"))
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not a sha256 digest: {s}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses_round_trip() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::parse(&d.to_string()), Some(d));
        assert_eq!(Digest::parse(&d.hex()), Some(d));
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            format!("\"{d}\""),
            "serialised as displayed"
        );
        assert_eq!(Digest::parse("sha256:zz"), None);
    }

    proptest::proptest! {
        /// A body's digest is its SHA-256 however it was reached: from
        /// scratch, or resumed from a body it shares a prefix with.
        #[test]
        fn body_digests_are_sha256_whether_resumed_or_not(
            first in proptest::collection::vec(proptest::num::u8::ANY, 0..2000),
            cut in 0usize..2000,
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
        ) {
            let of_first = BodyDigest::of(&first);
            proptest::prop_assert_eq!(of_first.digest(), Digest::of(&first));
            let shared = cut.min(first.len());
            let second = [&first[..shared], &tail[..]].concat();
            let of_second = of_first.of_extension(&second, shared);
            proptest::prop_assert_eq!(of_second.digest(), Digest::of(&second));
            // And a third body, resumed from the second's state.
            let third = [&second[..], b"}"].concat();
            let of_third = of_second.of_extension(&third, second.len());
            proptest::prop_assert_eq!(of_third.digest(), Digest::of(&third));
        }
    }

    /// A body that extends another by a few bytes resumes from the other's
    /// state: what it hashes anew is under two blocks more than the slack.
    #[test]
    fn an_extension_resumes_near_the_end() {
        let document = vec![b'x'; 10_000];
        let of_document = BodyDigest::of(&document);
        let (kept, _) = of_document.start.clone().expect("a state is kept");
        assert!(
            kept + RESUME_SLACK + BLOCK > document.len() && kept <= document.len() - RESUME_SLACK
        );
        let extended = [&document[..9_999], br#","lang":"en"}"#].concat();
        let of_extended = of_document.of_extension(&extended, 9_999);
        assert_eq!(of_extended.digest(), Digest::of(&extended));
        assert!(of_extended.start.expect("kept").0 >= kept);
        assert!(BodyDigest::known(Digest::of(b"x")).start.is_none());
    }

    #[test]
    fn parts_are_length_prefixed() {
        assert_ne!(
            Digest::of_parts(&[b"ab", b"c"]),
            Digest::of_parts(&[b"a", b"bc"])
        );
    }
}
