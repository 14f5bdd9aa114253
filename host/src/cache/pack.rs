//! Packs: the objects the cache stores. One pack holds the entries one
//! stage computed for one input batch, so that a replay reads a stage's
//! outputs for a whole batch in one request.
//!
//! Key: `{format}/{stage}/{topic}/{partition}/{first}-{last}-{content}.pack`,
//! with `format` the version of the entries' encoding ([`FORMAT`]), `stage`
//! the first 32 hex digits (128 bits) of the stage identity and
//! `content` the first 12 of the digest of the pack's entry keys: short
//! enough for stores that keep keys as file names. The position only locates a pack
//! (a replay of the same topic finds the packs of its batches by offset
//! range); entries are found by their content key. Packs are immutable: two
//! writes of the same range with other entries get other names, so a
//! writer never replaces entries another wrote.
//!
//! Format: zstd, with its content checksum (a corrupt pack fails to
//! decode), of the postcard encoding of the entries.

use serde::{Deserialize, Serialize};

use super::entry::StoredOutput;
use crate::digest::Digest;

/// The version of the entries' encoding, the first part of every pack's
/// key: an encoding change changes it, so that a host never lists, reads
/// or counts as corrupt the packs of another encoding (they stay until the
/// store's lifecycle rules expire them). `v2`: outputs of a last stage keep
/// whether their bodies are JSON documents.
pub const FORMAT: &str = "v2";

/// zstd level: a fast one (negative levels trade ratio for speed), since
/// packs are written on the partition's path (a cold run pays for it) and
/// their size matters less.
const LEVEL: i32 = -1;

/// Largest pack decoded into a buffer of the size its frame header gives:
/// a header claiming more (a corrupt one) is decoded as a stream instead,
/// which fails at the end of the data without allocating what it claims.
const MAX_SIZED_DECODE: u64 = 1 << 30;

/// One entry as written (borrowed).
#[derive(Serialize)]
struct EntryRef<'a> {
    key: &'a [u8; 32],
    outputs: &'a [StoredOutput],
}

/// One entry as read.
#[derive(Deserialize)]
struct Entry {
    key: [u8; 32],
    outputs: Vec<StoredOutput>,
}

/// A pack that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// Not zstd, or its checksum does not match.
    #[error("not a readable pack: {0}")]
    Compression(#[source] std::io::Error),
    /// The entries do not decode.
    #[error("the pack's entries do not decode: {0}")]
    Encoding(#[from] postcard::Error),
}

/// The bytes of a pack of `entries`.
pub fn encode<O: AsRef<[StoredOutput]>>(entries: &[(Digest, O)]) -> Vec<u8> {
    let borrowed: Vec<EntryRef<'_>> = entries
        .iter()
        .map(|(key, outputs)| EntryRef {
            key: key.as_bytes(),
            outputs: outputs.as_ref(),
        })
        .collect();
    let encoded = postcard::to_stdvec(&borrowed).expect("entries always encode");
    // One call over the whole buffer: faster than streaming it through a
    // window (see the results objects in `sink`).
    let mut compressor = zstd::bulk::Compressor::new(LEVEL).expect("a valid level");
    compressor
        .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
        .expect("zstd checksum flag");
    compressor
        .compress(&encoded)
        .expect("compressing in memory")
}

/// The entries of a pack.
pub fn decode(bytes: &[u8]) -> Result<Vec<(Digest, Vec<StoredOutput>)>, PackError> {
    // Packs are compressed in one call, which records their size in the
    // frame header: decoding into a buffer of that size is one allocation,
    // where a stream grows its buffer (copying it) as it goes.
    let encoded = match zstd::zstd_safe::get_frame_content_size(bytes) {
        Ok(Some(size)) if size <= MAX_SIZED_DECODE => zstd::bulk::decompress(bytes, size as usize),
        _ => zstd::stream::decode_all(bytes),
    }
    .map_err(PackError::Compression)?;
    let entries: Vec<Entry> = postcard::from_bytes(&encoded)?;
    Ok(entries
        .into_iter()
        .map(|entry| (Digest::from_bytes(entry.key), entry.outputs))
        .collect())
}

/// The folder of the packs of one stage for one partition (with a trailing
/// `/`).
pub fn folder(stage: &Digest, topic: &str, partition: i32) -> String {
    format!("{FORMAT}/{}/{topic}/{partition}/", &stage.hex()[..32])
}

/// The key of the pack of the entries `keys` for the offsets
/// `first..=last`.
pub fn key(folder: &str, first: i64, last: i64, keys: &[Digest]) -> String {
    let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes().as_slice()).collect();
    let content = Digest::of_parts(&keys).hex();
    format!("{folder}{first}-{last}-{}.pack", &content[..12])
}

/// The offset range a pack key covers, if it is a pack key.
pub fn range(key: &str) -> Option<(i64, i64)> {
    let name = key.rsplit('/').next()?.strip_suffix(".pack")?;
    let mut parts = name.split('-');
    let first = parts.next()?.parse().ok()?;
    let last = parts.next()?.parse().ok()?;
    Some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<(Digest, Vec<StoredOutput>)> {
        let record = |body: &[u8]| crate::runtime::DocRecord {
            id: "d".into(),
            revision: 1,
            content_type: "application/json".into(),
            body: body.to_vec(),
            metadata: vec![("title".into(), "T".into())],
        };
        let input = record(b"wikitext");
        let digest = crate::digest::BodyDigest::of(&input.body);
        let stored =
            |body: &[u8], json| StoredOutput::new(&input, &record(body), Some(&digest), json).0;
        vec![
            (
                Digest::of(b"a"),
                vec![stored(b"{}", None), stored(b"[1]", Some(true))],
            ),
            (Digest::of(b"b"), Vec::new()),
            (Digest::of(b"c"), vec![stored(b"[", Some(false))]),
        ]
    }

    #[test]
    fn packs_round_trip() {
        assert_eq!(decode(&encode(&entries())).unwrap(), entries());
    }

    #[test]
    fn a_pack_without_its_size_in_the_header_decodes_as_a_stream() {
        let encoded = zstd::decode_all(encode(&entries()).as_slice()).unwrap();
        let streamed = zstd::stream::encode_all(encoded.as_slice(), LEVEL).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&streamed).unwrap(),
            None
        );
        assert_eq!(decode(&streamed).unwrap(), entries());
    }

    #[test]
    fn a_corrupt_pack_is_an_error_not_wrong_entries() {
        let mut bytes = encode(&entries());
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        assert!(decode(&bytes).is_err());
        assert!(decode(b"not a pack").is_err());
        assert!(decode(&bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn keys_name_their_range_and_content() {
        let folder = folder(&Digest::of(b"s"), "events", 3);
        let keys: Vec<Digest> = entries().iter().map(|(k, _)| *k).collect();
        let key = key(&folder, 40, 71, &keys);
        assert!(key.starts_with(&folder));
        assert_eq!(range(&key), Some((40, 71)));
        assert_ne!(key, super::key(&folder, 40, 71, &keys[..1]));
        assert_eq!(range("x/y/checkpoint.json"), None);
        // Short enough for stores that keep a key as one file name (s3s-fs
        // base64-encodes bucket and key into a 255-byte name: 64-digit
        // stage ids and zero-padded offsets made writes fail there).
        let topic = "t".repeat(40);
        let long = super::key(
            &super::folder(&Digest::of(b"s"), &topic, 11),
            i64::MAX - 1,
            i64::MAX,
            &keys,
        );
        assert!(long.len() <= 140, "{} bytes: {long}", long.len());
    }
}
