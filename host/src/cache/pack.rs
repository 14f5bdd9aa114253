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
//! Format: the length of the index (4 bytes, little-endian), then
//! - the index, a zstd frame with its content checksum: the postcard
//!   encoding of the entries but for the rest of each output's body
//!   ([`super::entry`]: the bytes it does not share with its input) and the
//!   frames of the last stage's outputs, with the length of the bodies'
//!   frame and a checksum of what follows the index;
//! - the bodies: those rests, one after the other, as one zstd frame;
//! - the frames ([`crate::sink::OutputFrame`]), one after the other, as
//!   they are: each is a zstd frame already, which a replay splices into
//!   its results objects without decompressing it.
//!
//! A pack is read whole but its bodies are decompressed only when a body
//! is first needed ([`Bodies`]): a replay whose later stages all hit needs
//! no body of the earlier ones (their keys come from the digests in the
//! index), so it never decompresses their documents. Integrity is checked
//! when the pack is read: the index by decompressing it, the bodies and
//! frames by their CRC-64 and sizes, so a damaged pack is one miss at load,
//! never a failure when a body is needed later nor a damaged results
//! object. (The check guards against damage, not forgery: entries are
//! trusted as the store that holds them is.)

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use super::entry::{IndexedOutput, StoredOutput};
use crate::digest::Digest;

/// The version of the entries' encoding, the first part of every pack's
/// key: an encoding change changes it, so that a host never lists, reads
/// or counts as corrupt the packs of another encoding (they stay until the
/// store's lifecycle rules expire them). `v2`: outputs of a last stage keep
/// whether their bodies are JSON documents. `v3`: they keep their frame
/// ([`crate::sink::OutputFrame`]) too, and only outputs a later stage
/// reads keep a digest. `v4`: the frames follow the bodies instead of
/// being compressed again in the index, and a CRC-64 checks what follows
/// the index.
pub const FORMAT: &str = "v4";

/// zstd level: a fast one (negative levels trade ratio for speed), since
/// packs are written on the partition's path (a cold run pays for it) and
/// their size matters less.
const LEVEL: i32 = -1;

/// Largest pack decoded into a buffer of the size its frame header gives:
/// a header claiming more (a corrupt one) is decoded as a stream instead,
/// which fails at the end of the data without allocating what it claims.
const MAX_SIZED_DECODE: u64 = 1 << 30;

/// The CRC of what follows a pack's index.
const TAIL_CRC: crc_fast::CrcAlgorithm = crc_fast::CrcAlgorithm::Crc64Nvme;

/// The index of a pack.
#[derive(Serialize, Deserialize)]
struct Index {
    /// The length of the bodies' frame: the frames follow it.
    bodies_len: u64,
    /// [`TAIL_CRC`] of the bodies' frame and the frames.
    tail_crc: u64,
    entries: Vec<Entry>,
}

/// One entry of the index.
#[derive(Serialize, Deserialize)]
struct Entry {
    key: [u8; 32],
    outputs: Vec<IndexedOutput>,
}

/// A pack that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// Shorter than its index says.
    #[error("truncated pack")]
    Truncated,
    /// A frame is not zstd, or its checksum does not match.
    #[error("not a readable pack: {0}")]
    Compression(#[source] std::io::Error),
    /// The entries do not decode.
    #[error("the pack's entries do not decode: {0}")]
    Encoding(#[from] postcard::Error),
    /// The bodies or frames are not those the index was written with.
    #[error("the pack's bodies or frames do not match its index")]
    Bodies,
}

/// The bodies of a loaded pack: compressed, and decompressed once, when a
/// body is first needed.
#[derive(Debug)]
pub struct Bodies {
    /// The frame, checked against the index's digest when loaded.
    compressed: bytes::Bytes,
    /// Its content's size (from the frame header, checked against the
    /// index when loaded).
    len: usize,
    decompressed: OnceLock<Vec<u8>>,
}

impl Bodies {
    /// The size of the bodies, decompressed.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether the bodies were decompressed.
    #[cfg(test)]
    pub(crate) fn is_decompressed(&self) -> bool {
        self.decompressed.get().is_some()
    }

    /// The bodies, decompressed on the first call.
    pub(super) fn get(&self) -> &[u8] {
        self.decompressed.get_or_init(|| {
            // Its digest and size were checked when the pack was read:
            // these bytes are the ones the writer compressed.
            zstd::bulk::decompress(&self.compressed, self.len)
                .expect("bodies checked when their pack was read decompress")
        })
    }
}

/// One zstd frame of `bytes`, with its checksum, at the packs' level.
fn compress(bytes: &[u8]) -> Vec<u8> {
    // One call over the whole buffer: faster than streaming it through a
    // window (see the results objects in `sink`), and it records the size
    // in the frame header.
    let mut compressor = zstd::bulk::Compressor::new(LEVEL).expect("a valid level");
    compressor
        .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
        .expect("zstd checksum flag");
    compressor.compress(bytes).expect("compressing in memory")
}

/// The content of one zstd frame.
fn decompress(frame: &[u8]) -> std::io::Result<Vec<u8>> {
    // Decoding into a buffer of the size the frame header gives is one
    // allocation, where a stream grows its buffer (copying it) as it goes.
    match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) if size <= MAX_SIZED_DECODE => zstd::bulk::decompress(frame, size as usize),
        _ => zstd::stream::decode_all(frame),
    }
}

/// The bytes of a pack of `entries`.
pub fn encode<O: AsRef<[StoredOutput]>>(entries: &[(Digest, O)]) -> Vec<u8> {
    // Sized up front: grown from empty, the bodies of a batch of documents
    // (megabytes) were copied again at every doubling.
    let rests_len = entries
        .iter()
        .flat_map(|(_, outputs)| outputs.as_ref())
        .map(StoredOutput::rest_len)
        .sum();
    let mut rests = Vec::with_capacity(rests_len);
    let mut frames = Vec::new();
    let entries = entries
        .iter()
        .map(|(key, outputs)| Entry {
            key: *key.as_bytes(),
            outputs: outputs
                .as_ref()
                .iter()
                .map(|output| {
                    let (indexed, rest, frame) = output.indexed();
                    rests.extend_from_slice(rest);
                    frames.extend(frame);
                    indexed
                })
                .collect(),
        })
        .collect();
    let bodies = compress(&rests);
    let mut crc = crc_fast::Digest::new(TAIL_CRC);
    crc.update(&bodies);
    frames.iter().for_each(|frame| crc.update(frame));
    let index = Index {
        bodies_len: bodies.len() as u64,
        tail_crc: crc.finalize(),
        entries,
    };
    let index = compress(&postcard::to_stdvec(&index).expect("entries always encode"));
    let index_len = u32::try_from(index.len()).expect("an index under 4 GiB");
    let frames_len: usize = frames.iter().map(bytes::Bytes::len).sum();
    let mut pack = Vec::with_capacity(4 + index.len() + bodies.len() + frames_len);
    pack.extend_from_slice(&index_len.to_le_bytes());
    pack.extend_from_slice(&index);
    pack.extend_from_slice(&bodies);
    frames
        .iter()
        .for_each(|frame| pack.extend_from_slice(frame));
    pack
}

/// The entries of a pack.
pub fn decode(pack: bytes::Bytes) -> Result<Vec<(Digest, Vec<StoredOutput>)>, PackError> {
    let index_len = pack
        .get(..4)
        .map(|len| u32::from_le_bytes(len.try_into().expect("four bytes")) as usize)
        .ok_or(PackError::Truncated)?;
    let index_end = 4usize.saturating_add(index_len);
    let index = pack.get(4..index_end).ok_or(PackError::Truncated)?;
    let index: Index = postcard::from_bytes(&decompress(index).map_err(PackError::Compression)?)?;
    let tail = pack.slice(index_end..);
    if crc_fast::checksum(TAIL_CRC, &tail) != index.tail_crc {
        return Err(PackError::Bodies);
    }
    let bodies_len = usize::try_from(index.bodies_len)
        .ok()
        .filter(|len| *len <= tail.len())
        .ok_or(PackError::Bodies)?;
    let compressed = tail.slice(..bodies_len);
    let len = match zstd::zstd_safe::get_frame_content_size(&compressed) {
        Ok(Some(size)) => usize::try_from(size).map_err(|_| PackError::Bodies)?,
        _ => return Err(PackError::Bodies),
    };
    let mut parts = PackParts {
        bodies: Arc::new(Bodies {
            compressed,
            len,
            decompressed: OnceLock::new(),
        }),
        rest_at: 0,
        frames: tail.slice(bodies_len..),
    };
    let mut decoded = Vec::with_capacity(index.entries.len());
    for entry in index.entries {
        let outputs = entry
            .outputs
            .into_iter()
            .map(|indexed| StoredOutput::from_index(indexed, &mut parts))
            .collect::<Option<Vec<_>>>()
            .ok_or(PackError::Bodies)?;
        decoded.push((Digest::from_bytes(entry.key), outputs));
    }
    if parts.rest_at != len || !parts.frames.is_empty() {
        return Err(PackError::Bodies);
    }
    Ok(decoded)
}

/// The parts of a pack being read that its index does not hold: its
/// outputs' rests and frames, handed out in order.
pub(super) struct PackParts {
    bodies: Arc<Bodies>,
    /// Where the next rest starts in the bodies.
    rest_at: usize,
    /// The frames not handed out yet.
    frames: bytes::Bytes,
}

impl PackParts {
    /// The next `len` bytes of rest, as the bodies and their range; `None`
    /// past the bodies' end.
    pub(super) fn rest(&mut self, len: usize) -> Option<(Arc<Bodies>, Range<usize>)> {
        let range = self.rest_at..self.rest_at.checked_add(len)?;
        (range.end <= self.bodies.len()).then(|| {
            self.rest_at = range.end;
            (self.bodies.clone(), range)
        })
    }

    /// The next frame, `len` bytes; `None` past the frames' end.
    pub(super) fn frame(&mut self, len: usize) -> Option<bytes::Bytes> {
        (len <= self.frames.len()).then(|| self.frames.split_to(len))
    }
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
    use crate::sink::OutputFrame;

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
        let feeding = |body: &[u8]| StoredOutput::feeding(&input, &record(body), &digest).0;
        let last = |body: &[u8], json| {
            let output = record(body);
            StoredOutput::of_last(&input, &output, json, OutputFrame::of(&output, json, 1))
        };
        vec![
            (Digest::of(b"a"), vec![feeding(b"{}"), last(b"[1]", true)]),
            (Digest::of(b"b"), Vec::new()),
            (Digest::of(b"c"), vec![last(b"[", false)]),
        ]
    }

    #[test]
    fn packs_round_trip() {
        assert_eq!(decode(encode(&entries()).into()).unwrap(), entries());
    }

    /// A read pack's bodies stay compressed until a body is needed: the
    /// heads, digests and frames are in the index.
    #[test]
    fn bodies_are_decompressed_when_first_needed() {
        let decoded = decode(encode(&entries()).into()).unwrap();
        let output = &decoded[0].1[0];
        let bodies = output
            .packed_in()
            .expect("a read output's rest is in its pack");
        assert!(!bodies.is_decompressed());
        assert_eq!(output.head(), entries()[0].1[0].head());
        assert!(decoded[0].1[1].last().is_some());
        assert!(!bodies.is_decompressed());
        assert_eq!(output.record_from(b"wikitext").unwrap().body, b"{}");
        assert!(bodies.is_decompressed());
    }

    /// A read pack's frames are slices of the pack, spliced into results
    /// objects as they are: neither decompressed nor copied.
    #[test]
    fn frames_are_read_in_place() {
        let pack = bytes::Bytes::from(encode(&entries()));
        let within = pack.as_ptr_range();
        let decoded = decode(pack.clone()).unwrap();
        let frames: Vec<bytes::Bytes> = decoded
            .iter()
            .flat_map(|(_, outputs)| outputs.iter().filter_map(|o| o.last()))
            .map(|(_, frame)| frame.compressed())
            .collect();
        assert_eq!(frames.len(), 2);
        for frame in frames {
            let range = frame.as_ptr_range();
            assert!(within.start <= range.start && range.end <= within.end);
        }
    }

    /// The pack `entries` makes, with its index as a zstd stream: a frame
    /// without its size in the header.
    fn with_streamed_index(pack: &[u8]) -> Vec<u8> {
        let index_len = u32::from_le_bytes(pack[..4].try_into().unwrap()) as usize;
        let index = zstd::decode_all(&pack[4..4 + index_len]).unwrap();
        let streamed = zstd::stream::encode_all(index.as_slice(), LEVEL).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&streamed).unwrap(),
            None
        );
        let mut rewritten = (streamed.len() as u32).to_le_bytes().to_vec();
        rewritten.extend_from_slice(&streamed);
        rewritten.extend_from_slice(&pack[4 + index_len..]);
        rewritten
    }

    #[test]
    fn an_index_without_its_size_in_the_header_decodes_as_a_stream() {
        let pack = with_streamed_index(&encode(&entries()));
        assert_eq!(decode(pack.into()).unwrap(), entries());
    }

    #[test]
    fn a_corrupt_pack_is_an_error_not_wrong_entries() {
        let pack = encode(&entries());
        let index_len = u32::from_le_bytes(pack[..4].try_into().unwrap()) as usize;
        // A byte of the index, of the bodies, and the last byte (a frame's).
        for at in [4 + index_len / 2, 4 + index_len + 2, pack.len() - 1] {
            let mut bytes = pack.clone();
            bytes[at] ^= 0x40;
            assert!(decode(bytes.into()).is_err(), "{at}");
        }
        for cut in [3, 4 + index_len - 1, 4 + index_len, pack.len() - 3] {
            assert!(decode(pack[..cut].to_vec().into()).is_err(), "{cut}");
        }
        assert!(decode(b"not a pack".to_vec().into()).is_err());
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
