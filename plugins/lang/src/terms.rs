//! Top terms: the most frequent words of a text sample, lower-cased, with
//! stop words of the detected language removed (when a list exists for it),
//! ignoring words under three characters, numbers, and scripts written
//! without spaces (where words cannot be split without a dictionary).

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

/// A term and how often it occurs in the sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    /// The lower-cased word.
    pub term: String,
    /// Occurrences in the sample.
    pub count: u32,
}

/// Stop words of one language (empty when none are known).
#[derive(Debug, Default)]
pub struct StopWords(FxHashSet<&'static str>);

impl StopWords {
    /// The list for ISO 639-1 (or 639-3) `code`, from the `stop-words`
    /// crate's ISO lists.
    pub fn for_language(code: &str) -> Self {
        StopWords(
            stop_words::lookup(code)
                .map(|words| words.iter().copied().collect())
                .unwrap_or_default(),
        )
    }

    fn contains(&self, word: &str) -> bool {
        self.0.contains(word)
    }
}

/// The `n` most frequent terms in `text`, most frequent first (ties in
/// alphabetical order, so the result is deterministic).
pub fn top_terms(text: &str, stop_words: Option<&StopWords>, n: usize) -> Vec<Term> {
    // FxHash: the keys are short words, and the map is rebuilt per page, so
    // a fast hash matters more than flooding resistance (the sample, hence
    // the worst case, is bounded by `terms_sample_bytes`).
    let mut counts: FxHashMap<String, u32> = FxHashMap::default();
    let mut lower = String::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.chars().nth(2).is_none()
            || word.chars().all(|c| c.is_numeric())
            || word
                .chars()
                .any(|c| (c as u32) >= 0x2E80 || (0x0E00..=0x17FF).contains(&(c as u32)))
        {
            continue;
        }
        lower.clear();
        if word.is_ascii() {
            lower.push_str(word);
            lower.make_ascii_lowercase();
        } else {
            lower.extend(word.chars().flat_map(char::to_lowercase));
        }
        if stop_words.is_some_and(|s| s.contains(&lower)) {
            continue;
        }
        match counts.get_mut(lower.as_str()) {
            Some(count) => *count += 1,
            None => {
                counts.insert(lower.clone(), 1);
            }
        }
    }
    let mut terms: Vec<Term> = counts
        .into_iter()
        .map(|(term, count)| Term { term, count })
        .collect();
    terms.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.term.cmp(&b.term)));
    terms.truncate(n);
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_numbers_and_short_words_are_ignored() {
        let english = StopWords::for_language("en");
        let text = "The cat and the other Cat sat with the dog in 2024; the dog sat.";
        let terms = top_terms(text, Some(&english), 3);
        let got: Vec<(&str, u32)> = terms.iter().map(|t| (t.term.as_str(), t.count)).collect();
        assert_eq!(got, [("cat", 2), ("dog", 2), ("sat", 2)]);
    }

    #[test]
    fn unknown_languages_have_no_stop_words() {
        assert!(StopWords::for_language("xx").0.is_empty());
        assert_eq!(
            top_terms("Élan élan ÉLAN", None, 5)[0],
            Term {
                term: "élan".into(),
                count: 3
            }
        );
    }
}
