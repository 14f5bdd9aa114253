//! An output as a results object carries it, compressed: the bytes a
//! result line holds for one output (`{"content_type":...}`), as one zstd
//! frame.
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
//! A frame is made rendered and compressed on first use: the chain
//! renders an output (cheap), and the first of the sink writing the
//! results object and the cache writing the pack compresses it, both on
//! the blocking pool, beside the chain's next batch rather than on its
//! path. Clones share the frame.
//!
//! Invariants: the frame decompresses to exactly what [`super::line`]
//! writes for the output; `rendered_len` is that length (a batch is cut
//! by its uncompressed size, which must not depend on whether its outputs
//! came as frames).

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use crate::runtime::DocRecord;

/// One output of a result line, compressed, or to be (see the module).
#[derive(Debug, Clone)]
pub struct OutputFrame(Arc<Frame>);

#[derive(Debug)]
struct Frame {
    /// The length of the rendered output.
    rendered_len: u64,
    state: Mutex<State>,
}

#[derive(Debug)]
enum State {
    /// Rendered, to be compressed at `level`.
    Rendered { bytes: Vec<u8>, level: i32 },
    /// One zstd frame.
    Compressed(bytes::Bytes),
}

thread_local! {
    /// One compression context per thread and level: a context's tables
    /// cost more to set up than a page of text costs to compress.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
}

/// Bytes of a rendered output around its body and content type:
/// `{"content_type":"…","json":…}` (`"text":"…"` and `"base64":"…"` are
/// shorter).
const ENVELOPE: usize = 32;

impl OutputFrame {
    /// `record`, a chain output (a JSON document if `json`), as a result
    /// line writes it, to be compressed at `level` when first used.
    pub(crate) fn of(record: &DocRecord, json: bool, level: i32) -> Self {
        // Sized for the output as it is (a JSON body is copied as it is,
        // text grows only by its escapes): grown from empty, the buffer was
        // reallocated and copied a dozen times per output, and in a cold
        // run the fresh memory's page faults were a visible share
        // (docs/performance.md, "Lines parsed by their reader").
        let mut bytes =
            Vec::with_capacity(record.body.len() + record.content_type.len() + ENVELOPE);
        super::line::write_output(record, json, &mut bytes);
        OutputFrame(Arc::new(Frame {
            rendered_len: bytes.len() as u64,
            state: Mutex::new(State::Rendered { bytes, level }),
        }))
    }

    /// The compressed frame (compressed now if it was not yet).
    pub(crate) fn compressed(&self) -> bytes::Bytes {
        let mut state = self
            .0
            .state
            .lock()
            .expect("a frame's lock is never poisoned");
        let frame = match &*state {
            State::Compressed(frame) => return frame.clone(),
            State::Rendered { bytes, level } => bytes::Bytes::from(compress(bytes, *level)),
        };
        // The rendered bytes go: a frame kept in the cache holds only its
        // compressed form.
        *state = State::Compressed(frame.clone());
        frame
    }

    /// A frame compressed before (read from a pack): `frame` decompresses
    /// to `rendered_len` bytes.
    pub(crate) fn compressed_before(frame: bytes::Bytes, rendered_len: u64) -> Self {
        OutputFrame(Arc::new(Frame {
            rendered_len,
            state: Mutex::new(State::Compressed(frame)),
        }))
    }

    /// The length of what it decompresses to.
    pub(crate) fn rendered_len(&self) -> usize {
        usize::try_from(self.0.rendered_len).unwrap_or(usize::MAX)
    }

    /// Bytes kept (for the cache's memory budget): the rendered length,
    /// which bounds what it holds before and after compression.
    pub(crate) fn size(&self) -> usize {
        self.rendered_len() + 8
    }
}

/// `bytes` as one zstd frame at `level`, with this thread's context.
pub(super) fn compress(bytes: &[u8], level: i32) -> Vec<u8> {
    COMPRESSOR.with_borrow_mut(|slot| {
        let compressor = match slot {
            Some((current, compressor)) if *current == level => compressor,
            _ => {
                let compressor =
                    zstd::bulk::Compressor::new(level).expect("a level checked at load");
                &mut slot.insert((level, compressor)).1
            }
        };
        compressor
            .compress(bytes)
            .expect("compressing into a growing buffer does not fail")
    })
}

/// Equal frames: the same compressed bytes for the same content.
impl PartialEq for OutputFrame {
    fn eq(&self, other: &Self) -> bool {
        self.rendered_len() == other.rendered_len() && self.compressed() == other.compressed()
    }
}

impl Eq for OutputFrame {}
