//! An output as a results object carries it, already compressed: the
//! bytes a result line holds for one output (`{"content_type":...}`), as
//! one zstd frame.
//!
//! A zstd stream may be any sequence of frames, and decompresses to the
//! concatenation of their contents. So a results object can be built from
//! frames compressed elsewhere: a chain's cached last stage keeps each
//! output's frame in its entry, and a replay that hits it splices the
//! frame into the object instead of rendering and compressing the output
//! again (compression was the largest share of a warm replay;
//! `docs/performance.md`). A cold run compresses the output once, for the
//! entry and the object alike.
//!
//! Invariants: the frame decompresses to exactly what [`super::line`]
//! writes for the output; `rendered_len` is that length (a batch is cut
//! by its uncompressed size, which must not depend on whether its outputs
//! came as frames).

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use crate::runtime::DocRecord;

/// One output of a result line, compressed (see the module).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFrame {
    /// One zstd frame.
    frame: bytes::Bytes,
    /// The length of its content.
    rendered_len: u64,
}

thread_local! {
    /// One compression context per thread and level: a context's tables
    /// cost more to set up than a page of text costs to compress.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
}

impl OutputFrame {
    /// `record`, a chain output (a JSON document if `json`), as a result
    /// line writes it, compressed at `level`.
    pub(crate) fn of(record: &DocRecord, json: bool, level: i32) -> Self {
        let mut rendered = Vec::new();
        super::line::write_output(record, json, &mut rendered);
        let frame = COMPRESSOR.with_borrow_mut(|slot| {
            let compressor = match slot {
                Some((current, compressor)) if *current == level => compressor,
                _ => {
                    let compressor =
                        zstd::bulk::Compressor::new(level).expect("a level checked at load");
                    &mut slot.insert((level, compressor)).1
                }
            };
            compressor
                .compress(&rendered)
                .expect("compressing into a growing buffer does not fail")
        });
        OutputFrame {
            frame: frame.into(),
            rendered_len: rendered.len() as u64,
        }
    }

    /// The compressed frame.
    pub(crate) fn compressed(&self) -> &[u8] {
        &self.frame
    }

    /// The length of what it decompresses to.
    pub(crate) fn rendered_len(&self) -> usize {
        usize::try_from(self.rendered_len).unwrap_or(usize::MAX)
    }

    /// Bytes kept (for the cache's memory budget).
    pub(crate) fn size(&self) -> usize {
        self.frame.len() + 8
    }
}
