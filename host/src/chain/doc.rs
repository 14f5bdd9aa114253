//! A record between two stages of a chain: a plugin's output, or a cache
//! entry's output that has not been rebuilt.
//!
//! The next stage's cache key needs a record's head (id, revision, content
//! type, metadata) and its body's digest, and an entry keeps both. So a
//! stage that hits passes its entry on, not a rebuilt record, and when
//! the stages after it hit too, no intermediate body is rebuilt (nor are
//! its pack's bodies decompressed): a replay whose stages all hit goes
//! from the chain's input to the last stage's frames. A body is rebuilt
//! only when it is needed: a stage runs its plugin on it, a stage needs
//! its digest and the entry has none, or a final output has no frame.
//!
//! Invariant: a cached doc's entry fits its input (checked when the hit
//! was taken, [`crate::cache::StoredOutput::fits`]), so rebuilding it
//! cannot fail.

use std::borrow::Cow;
use std::sync::Arc;

use crate::cache::{Outputs, RecordHead};
use crate::runtime::DocRecord;

/// A record between stages (see the module).
#[derive(Debug)]
pub(super) enum Doc {
    /// A record as a plugin (or the chain's caller) gave it.
    Record(DocRecord),
    /// Output `index` of a cache entry, computed from `input` (shared by
    /// the entry's other outputs).
    Cached {
        outputs: Outputs,
        index: usize,
        input: Arc<Doc>,
    },
}

impl Doc {
    /// Output `index` of the entry `outputs`, whose input is `input`, if
    /// the entry fits it (a damaged one may not: then it is a miss).
    pub(super) fn cached(outputs: Outputs, index: usize, input: Arc<Doc>) -> Option<Self> {
        outputs[index]
            .fits(input.body_len())
            .then_some(Doc::Cached {
                outputs,
                index,
                input,
            })
    }

    /// Everything of the record but its body.
    pub(super) fn head(&self) -> RecordHead<'_> {
        match self {
            Doc::Record(record) => record.into(),
            Doc::Cached { outputs, index, .. } => outputs[*index].head(),
        }
    }

    /// The length of its body, without rebuilding it.
    pub(super) fn body_len(&self) -> usize {
        match self {
            Doc::Record(record) => record.body.len(),
            Doc::Cached { outputs, index, .. } => outputs[*index].body_len(),
        }
    }

    /// The record, rebuilt if it is a cache entry's.
    pub(super) fn into_record(self) -> DocRecord {
        match self {
            Doc::Record(record) => record,
            Doc::Cached {
                outputs,
                index,
                input,
            } => fitting(outputs[index].record_from(&input.body())),
        }
    }

    /// Its body, rebuilt if it is a cache entry's.
    fn body(&self) -> Cow<'_, [u8]> {
        match self {
            Doc::Record(record) => Cow::Borrowed(&record.body),
            Doc::Cached {
                outputs,
                index,
                input,
            } => Cow::Owned(fitting(outputs[*index].body_from(&input.body()))),
        }
    }
}

/// What an entry rebuilt from the input it fits.
fn fitting<T>(rebuilt: Option<T>) -> T {
    rebuilt.expect("an entry is taken as a hit only if it fits its input")
}
