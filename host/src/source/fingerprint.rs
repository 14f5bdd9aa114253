//! What input file a file run read, so that a rerun into the same output
//! can tell the same input from another file of the same name.
//!
//! A file's records are named by the file name and their position in it
//! (`events.jsonl`, line 17), and a rerun into the same output adopts the
//! ranges an earlier run wrote: only what is missing is processed. That is
//! right for the same file and for a longer version of it (lines appended:
//! the earlier ones keep their positions). For another file with the same
//! name (next month's `…-pages-articles.xml.bz2`, a new export called
//! `events.jsonl`) it would take the new records at adopted positions as
//! done, and they would end nowhere. So each run records its file's
//! fingerprint next to the results (`{pipeline}/sources/{file}.json`), and a
//! rerun first checks that its file is the same one, or an extension of it.
//!
//! A file of lines that ended inside a line when it was read, and was
//! extended since by more of that line, is not an extension: the earlier
//! run read that last line cut off (a writer was still appending), and its
//! outcome (a dead letter, most likely) stands for the completed line,
//! which would be taken for done.
//!
//! Invariant: a fingerprint costs the same whatever the file's size: its
//! size, the first MiB and the 64 KiB before its end are read, not the
//! whole file. A file whose first MiB and the 64 KiB before the earlier end
//! are the same is taken for the same input (or its extension).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::sink::Sink;
use crate::storage::StorageError;

/// Bytes hashed from the start of the file.
const HEAD: u64 = 1 << 20;
/// Bytes hashed before the end of the file.
const TAIL: u64 = 64 << 10;

/// An input file's size and digests of its start and of its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Fingerprint {
    /// Size in bytes.
    size: u64,
    /// SHA-256 (hex) of the first `min(size, HEAD)` bytes.
    head: String,
    /// SHA-256 (hex) of the last `min(size, TAIL)` bytes.
    tail: String,
}

impl Fingerprint {
    /// The fingerprint of the first `size` bytes of `file`.
    fn of_prefix(file: &mut File, size: u64) -> io::Result<Self> {
        let mut digest_of = |from: u64, to: u64| -> io::Result<String> {
            let mut bytes = Vec::with_capacity((to - from) as usize);
            file.seek(SeekFrom::Start(from))?;
            file.by_ref().take(to - from).read_to_end(&mut bytes)?;
            if (bytes.len() as u64) < to - from {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            Ok(Digest::of(&bytes).to_string())
        };
        Ok(Fingerprint {
            size,
            head: digest_of(0, size.min(HEAD))?,
            tail: digest_of(size.saturating_sub(TAIL), size)?,
        })
    }
}

/// Whether the bytes at `at - 1` and `at` of `file` are inside one line:
/// the earlier end, `at`, cut a line.
fn continues_a_line(file: &mut File, at: u64) -> io::Result<bool> {
    if at == 0 {
        return Ok(false);
    }
    let mut around = [0; 2];
    file.seek(SeekFrom::Start(at - 1))?;
    file.read_exact(&mut around)?;
    Ok(around[0] != b'\n' && !matches!(around[1], b'\n' | b'\r'))
}

/// Errors of [`claim`].
#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    /// The output holds results of another file with the same name.
    #[error(
        "{results} already holds results of another input named `{name}` (a file of \
         {earlier_size} bytes that {path} neither is nor extends: {why}); its records \
         would be taken for done. Write to another output, rename the input, or remove \
         the earlier results and `{marker}` to process it from the start"
    )]
    OtherInput {
        /// The input file of this run.
        path: PathBuf,
        /// The name records are filed under.
        name: String,
        /// The earlier file's size.
        earlier_size: u64,
        /// What differs.
        why: &'static str,
        /// Where the results are.
        results: String,
        /// The fingerprint's object.
        marker: String,
    },
    /// The input file could not be read.
    #[error("reading {path} to fingerprint it")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The fingerprint could not be read or written.
    #[error("the input's fingerprint at {key}")]
    Storage {
        /// Its key.
        key: String,
        /// Why.
        source: StorageError,
    },
}

/// Check that `path`, whose records are filed under `name`, is the input
/// the output's earlier results came from (or an extension of it), then
/// record its fingerprint for the next run. `lines`: the file is read line
/// by line as it is stored (plain JSONL), so an extension must not
/// continue the earlier last line. Outputs written before fingerprints
/// existed have none, and are taken as this file's; inputs that are not
/// regular files (pipes) are not fingerprinted. Returns the size
/// fingerprinted: a run of a file of lines reads that much and no more
/// (lines appended meanwhile are the next run's), so that the next check
/// looks at the end this run read to.
pub(crate) async fn claim(
    sink: &Sink,
    path: &Path,
    name: &str,
    lines: bool,
) -> Result<Option<u64>, FingerprintError> {
    let (store, key) = sink.own_object(&format!("sources/{name}.json"));
    let storage = |source| FingerprintError::Storage {
        key: store.describe(&key),
        source,
    };
    let io = |source| FingerprintError::Io {
        path: path.to_owned(),
        source,
    };
    // A pipe or a device has no bytes to read twice: reading its start
    // here would take it from the source.
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Ok(None);
    }
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    // An unreadable fingerprint is treated as none: it was written whole
    // by this code, so only a hand edit makes it so.
    let earlier = store
        .get(&key)
        .await
        .map_err(storage)?
        .and_then(|bytes| serde_json::from_slice::<Fingerprint>(&bytes).ok());
    if let Some(earlier) = earlier {
        let why = if size < earlier.size {
            Some("it is shorter")
        } else if Fingerprint::of_prefix(&mut file, earlier.size).map_err(io)? != earlier {
            Some("its bytes differ")
        } else if lines
            && size > earlier.size
            && continues_a_line(&mut file, earlier.size).map_err(io)?
        {
            Some(
                "the earlier run read its last line before that line was complete (the file \
                 did not end with a line break then, and the line goes on now)",
            )
        } else {
            None
        };
        if let Some(why) = why {
            return Err(FingerprintError::OtherInput {
                path: path.to_owned(),
                name: name.to_owned(),
                earlier_size: earlier.size,
                why,
                results: sink.describe_results(),
                marker: store.describe(&key),
            });
        }
        // The same file again: its fingerprint is the one recorded.
        if size == earlier.size {
            return Ok(Some(size));
        }
    }
    let now = Fingerprint::of_prefix(&mut file, size).map_err(io)?;
    let bytes = serde_json::to_vec(&now).expect("a fingerprint serialises");
    store.put(&key, bytes).await.map_err(storage)?;
    Ok(Some(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(bytes: &[u8], size: u64) -> Fingerprint {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        Fingerprint::of_prefix(&mut File::open(&path).unwrap(), size).unwrap()
    }

    #[test]
    fn an_extension_has_the_earlier_fingerprint_at_the_earlier_size() {
        // Longer than HEAD + TAIL, so head and tail are separate reads.
        let earlier: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
        let mut appended = earlier.clone();
        appended.extend_from_slice(b"more lines\n");
        let size = earlier.len() as u64;
        assert_eq!(fingerprint(&appended, size), fingerprint(&earlier, size));
        assert_ne!(
            fingerprint(&appended, size + 11),
            fingerprint(&earlier, size)
        );
        // A change in the first MiB or just before the end is seen.
        for at in [10, earlier.len() - 10] {
            let mut edited = earlier.clone();
            edited[at] ^= 1;
            assert_ne!(
                fingerprint(&edited, size),
                fingerprint(&earlier, size),
                "{at}"
            );
        }
    }

    #[test]
    fn small_and_empty_files_have_fingerprints() {
        assert_eq!(fingerprint(b"", 0).size, 0);
        assert_ne!(fingerprint(b"abc", 3), fingerprint(b"abd", 3));
    }
}
