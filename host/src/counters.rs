//! Plugin counters: named totals a plugin reports with the SDK's `count`.
//!
//! Invariants: a [`Counters`] holds at most [`MAX_NAMES`] names (further
//! names are folded into [`OTHER`]), and its totals saturate at `u64::MAX`
//! instead of overflowing. Every place that keeps counters, from one call's
//! store to a worker's totals, keeps a `Counters`, so a plugin cannot grow
//! host memory or crash the host through its counters however many names
//! it invents or however large the amounts it reports.

use std::collections::BTreeMap;

/// Most distinct names one [`Counters`] keeps.
pub const MAX_NAMES: usize = 256;

/// The name further names are counted under once [`MAX_NAMES`] are kept.
pub const OTHER: &str = "other";

/// Named counter totals, bounded in number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(BTreeMap<String, u64>);

impl Counters {
    /// Add `delta` to `name` (or to [`OTHER`] if `name` is new and the
    /// limit is reached).
    pub fn add(&mut self, name: &str, delta: u64) {
        let name = if self.0.len() < MAX_NAMES || self.0.contains_key(name) {
            name
        } else {
            OTHER
        };
        match self.0.get_mut(name) {
            Some(total) => *total = total.saturating_add(delta),
            None => {
                self.0.insert(name.to_owned(), delta);
            }
        }
    }

    /// Add every total of `other` to these.
    pub fn merge(&mut self, other: &Counters) {
        for (name, delta) in other.iter() {
            self.add(name, delta);
        }
    }

    /// The total of `name`, if it was counted.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.get(name).copied()
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The totals, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(name, total)| (name.as_str(), *total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_past_the_limit_are_folded_into_other() {
        let mut counters = Counters::default();
        for n in 0..MAX_NAMES + 10 {
            counters.add(&format!("doc-{n}"), 1);
        }
        counters.add("doc-0", 1);
        assert_eq!(counters.iter().count(), MAX_NAMES + 1);
        assert_eq!(counters.get(OTHER), Some(10));
        assert_eq!(counters.get("doc-0"), Some(2));
        // Merging cannot grow past the limit either.
        let mut totals = counters.clone();
        let mut more = Counters::default();
        more.add("new", 5);
        totals.merge(&more);
        assert_eq!(totals.get(OTHER), Some(15));
    }

    #[test]
    fn totals_saturate() {
        let mut counters = Counters::default();
        counters.add("big", u64::MAX);
        counters.add("big", u64::MAX);
        assert_eq!(counters.get("big"), Some(u64::MAX));
    }
}
