//! SHA-256 content digests, the identity of plugins, configs and bodies.
//!
//! A [`Digest`] renders as `sha256:<64 hex chars>`, the form used in lineage,
//! dead letters, cache keys and file names.

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

    #[test]
    fn parts_are_length_prefixed() {
        assert_ne!(
            Digest::of_parts(&[b"ab", b"c"]),
            Digest::of_parts(&[b"a", b"bc"])
        );
    }
}
