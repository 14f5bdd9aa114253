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
    for word in words(text) {
        if !is_term(word) {
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
    let order = |a: &Term, b: &Term| b.count.cmp(&a.count).then_with(|| a.term.cmp(&b.term));
    // Only the first `n` need sorting: partition them off first.
    if n > 0 && terms.len() > n {
        terms.select_nth_unstable_by(n - 1, order);
    }
    terms.truncate(n);
    terms.sort_unstable_by(order);
    terms
}

/// Words of `text`: maximal runs of alphanumeric characters. ASCII is
/// classified byte by byte without decoding.
fn words(text: &str) -> impl Iterator<Item = &str> {
    let is_word_char = |rest: &str| -> (bool, usize) {
        let byte = rest.as_bytes()[0];
        if byte.is_ascii() {
            (byte.is_ascii_alphanumeric(), 1)
        } else {
            let c = rest.chars().next().expect("a char starts here");
            (c.is_alphanumeric(), c.len_utf8())
        }
    };
    let mut i = 0;
    std::iter::from_fn(move || {
        // Skip separators, then take word characters.
        while i < text.len() {
            let (word_char, len) = is_word_char(&text[i..]);
            if word_char {
                break;
            }
            i += len;
        }
        let start = i;
        while i < text.len() {
            let (word_char, len) = is_word_char(&text[i..]);
            if !word_char {
                break;
            }
            i += len;
        }
        (start < i).then(|| &text[start..i])
    })
}

/// Whether `word` counts as a term: three characters or more, not a number,
/// and not in a script written without spaces (where a "word" is a phrase).
fn is_term(word: &str) -> bool {
    if word.is_ascii() {
        return word.len() >= 3 && !word.bytes().all(|b| b.is_ascii_digit());
    }
    word.chars().nth(2).is_some()
        && !word.chars().all(char::is_numeric)
        && !word
            .chars()
            .any(|c| (c as u32) >= 0x2E80 || (0x0E00..=0x17FF).contains(&(c as u32)))
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
    fn words_are_runs_of_letters_and_digits() {
        let got: Vec<&str> = words("  Ünïcødé, don't—stop 42x\n東京").collect();
        assert_eq!(got, ["Ünïcødé", "don", "t", "stop", "42x", "東京"]);
        assert_eq!(words("").count(), 0);
        assert_eq!(words(" ,;").count(), 0);
    }

    #[test]
    fn only_the_top_terms_are_kept_in_order() {
        let text = "delta gamma gamma beta beta beta alpha alpha alpha alpha";
        let got: Vec<(String, u32)> = top_terms(text, None, 2)
            .into_iter()
            .map(|t| (t.term, t.count))
            .collect();
        assert_eq!(got, [("alpha".to_owned(), 4), ("beta".to_owned(), 3)]);
        assert!(top_terms(text, None, 0).is_empty());
        assert_eq!(top_terms(text, None, 10).len(), 4);
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
