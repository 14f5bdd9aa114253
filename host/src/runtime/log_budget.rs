//! How much a plugin may log. A plugin is untrusted code: one that logs in
//! a loop must not flood the host's logs (or its disk, or its log
//! shipper). Every log line a plugin sends through the `log` import passes
//! here first.
//!
//! Invariants:
//! - a message is cut to [`MAX_MESSAGE_BYTES`], each field value to
//!   [`MAX_FIELD_BYTES`], and at most [`MAX_FIELDS`] fields are kept;
//! - one call into an instance (`init` or one `process` batch) logs at most
//!   [`LINES_PER_CALL`] lines;
//! - all instances of one loaded plugin (a stage's instances on every
//!   partition) share one token bucket of [`LINES_PER_SECOND`] lines per
//!   second with bursts of [`BURST`];
//! - what is dropped is counted (the stage counter [`DROPPED_COUNTER`]) and
//!   said once per call in the host's log, never line by line.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Longest message kept, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Most fields kept per line.
pub const MAX_FIELDS: usize = 32;
/// Longest field value (and key) kept, in bytes.
pub const MAX_FIELD_BYTES: usize = 1024;
/// Most lines one call may log.
pub const LINES_PER_CALL: u32 = 100;
/// Sustained lines per second of one loaded plugin, over all its instances.
pub const LINES_PER_SECOND: u32 = 50;
/// Lines one loaded plugin may log at once before the rate applies.
pub const BURST: u32 = 200;
/// The stage counter that counts dropped log lines.
pub const DROPPED_COUNTER: &str = "host.log_lines_dropped";

/// The token bucket shared by every instance of one loaded plugin.
#[derive(Debug)]
pub(crate) struct LogBudget {
    bucket: DefaultDirectRateLimiter,
}

impl Default for LogBudget {
    fn default() -> Self {
        let rate = NonZeroU32::new(LINES_PER_SECOND).expect("a positive rate");
        let burst = NonZeroU32::new(BURST).expect("a positive burst");
        LogBudget {
            bucket: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
        }
    }
}

/// One instance's log accounting for the call under way.
#[derive(Debug, Default)]
pub(crate) struct CallLog {
    lines: u32,
    dropped: u64,
}

impl CallLog {
    /// Whether one more line may be logged now (counting it either way).
    pub(crate) fn admit(&mut self, budget: &LogBudget) -> bool {
        if self.lines < LINES_PER_CALL && budget.bucket.check().is_ok() {
            self.lines += 1;
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    /// End the call: the number of lines dropped during it, and a fresh
    /// start for the next.
    pub(crate) fn finish(&mut self) -> u64 {
        std::mem::take(self).dropped
    }
}

/// `text` cut to at most `max` bytes (at a character boundary), saying how
/// much was cut.
pub(crate) fn truncated(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let cut = text.len() - end;
        text.truncate(end);
        text.push_str(&format!("… [{cut} more bytes]"));
    }
    text
}

/// `fields` bounded in number and size.
pub(crate) fn bounded_fields(fields: Vec<(String, String)>) -> Vec<(String, String)> {
    fields
        .into_iter()
        .take(MAX_FIELDS)
        .map(|(k, v)| (truncated(k, MAX_FIELD_BYTES), truncated(v, MAX_FIELD_BYTES)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_logs_at_most_its_share_and_counts_the_rest() {
        let budget = LogBudget::default();
        let mut call = CallLog::default();
        let admitted = (0..1000).filter(|_| call.admit(&budget)).count();
        assert_eq!(admitted, LINES_PER_CALL as usize);
        assert_eq!(call.finish(), 1000 - u64::from(LINES_PER_CALL));
        assert_eq!(call.finish(), 0, "a fresh start");
    }

    #[test]
    fn instances_of_one_plugin_share_the_bucket() {
        let budget = LogBudget::default();
        let admitted: usize = (0..10)
            .map(|_| {
                let mut call = CallLog::default();
                (0..LINES_PER_CALL).filter(|_| call.admit(&budget)).count()
            })
            .sum();
        // The burst, and at most a few lines the rate refilled meanwhile.
        assert!(
            (BURST as usize..BURST as usize + 10).contains(&admitted),
            "{admitted}"
        );
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        assert_eq!(truncated("short".into(), 10), "short");
        let cut = truncated("é".repeat(10), 5);
        assert!(cut.starts_with("éé… [16 more bytes]"), "{cut}");
        let fields = bounded_fields(vec![("k".into(), "v".repeat(5000)); 100]);
        assert_eq!(fields.len(), MAX_FIELDS);
        assert!(fields[0].1.len() < MAX_FIELD_BYTES + 40);
    }
}
