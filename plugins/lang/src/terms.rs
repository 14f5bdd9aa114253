//! Top terms: the most frequent words of a text sample, lower-cased, with
//! stop words of the detected language removed (when a list exists for it),
//! ignoring words under three characters, numbers, and scripts written
//! without spaces (where words cannot be split without a dictionary).

use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};

use crate::ascii8;

/// A term and how often it occurs in the sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    /// The lower-cased word.
    pub term: String,
    /// Occurrences in the sample.
    pub count: u32,
}

/// FxHash: the keys are short words, and the counts are rebuilt per page, so
/// a fast hash matters more than flooding resistance (the sample, hence the
/// worst case, is bounded by `terms_sample_bytes`). The stop words and the
/// counts use the same hash, so each word is hashed once for both.
const HASHER: FxBuildHasher = FxBuildHasher;

fn hash(word: &str) -> u64 {
    HASHER.hash_one(word)
}

/// Stop words of one language (empty when none are known).
#[derive(Debug, Default)]
pub struct StopWords(HashTable<&'static str>);

impl StopWords {
    /// The list for ISO 639-1 (or 639-3) `code`, from the `stop-words`
    /// crate's ISO lists.
    pub fn for_language(code: &str) -> Self {
        let mut table: HashTable<&'static str> = HashTable::new();
        let words: &'static [&'static str] = stop_words::lookup(code).unwrap_or_default();
        for &word in words {
            if let Entry::Vacant(slot) = table.entry(hash(word), |w| *w == word, |w| hash(w)) {
                slot.insert(word);
            }
        }
        StopWords(table)
    }

    /// Whether `word`, whose [`hash`] is `hash`, is a stop word.
    fn contains(&self, hash: u64, word: &str) -> bool {
        self.0.find(hash, |w| *w == word).is_some()
    }
}

/// The `n` most frequent terms in `text`, most frequent first (ties in
/// alphabetical order, so the result is deterministic).
pub fn top_terms(text: &str, stop_words: Option<&StopWords>, n: usize) -> Vec<Term> {
    let mut counts: HashTable<Term> = HashTable::new();
    let mut lower = String::new();
    for word in words(text) {
        if !is_term(word) {
            continue;
        }
        lower.clear();
        weir_sdk::push_lowercase(&mut lower, word);
        let word_hash = hash(&lower);
        if stop_words.is_some_and(|s| s.contains(word_hash, &lower)) {
            continue;
        }
        match counts.entry(word_hash, |t| t.term == lower, |t| hash(&t.term)) {
            Entry::Occupied(mut seen) => seen.get_mut().count += 1,
            Entry::Vacant(slot) => {
                slot.insert(Term {
                    term: lower.clone(),
                    count: 1,
                });
            }
        }
    }
    let mut terms: Vec<Term> = counts.into_iter().collect();
    let order = |a: &Term, b: &Term| b.count.cmp(&a.count).then_with(|| a.term.cmp(&b.term));
    // Only the first `n` need sorting: partition them off first.
    if n > 0 && terms.len() > n {
        terms.select_nth_unstable_by(n - 1, order);
    }
    terms.truncate(n);
    terms.sort_unstable_by(order);
    terms
}

/// Words of `text`: maximal runs of alphanumeric characters.
fn words(text: &str) -> impl Iterator<Item = &str> {
    let mut i = 0;
    std::iter::from_fn(move || {
        let start = next_boundary(text, i, false);
        i = next_boundary(text, start, true);
        (start < i).then(|| &text[start..i])
    })
}

/// The first character boundary at or after `i` (itself a boundary) where
/// a word character starts (`in_word` false) or stops (`in_word` true), or
/// the end of `text`. Eight ASCII bytes are classified at a time; other
/// characters are decoded one by one.
fn next_boundary(text: &str, mut i: usize, in_word: bool) -> usize {
    let bytes = text.as_bytes();
    while i < bytes.len() {
        if let Some(chunk) = ascii8::chunk_at(bytes, i) {
            let alphanumeric = ascii8::alphanumeric(chunk);
            let stops = if in_word {
                !alphanumeric & ascii8::HIGH_BITS
            } else {
                alphanumeric
            };
            if stops != 0 {
                return i + ascii8::first_marked(stops);
            }
            i += 8;
            continue;
        }
        let (word_char, len) = match bytes[i] {
            byte if byte.is_ascii() => (byte.is_ascii_alphanumeric(), 1),
            _ => {
                let c = text[i..].chars().next().expect("a char starts here");
                (c.is_alphanumeric(), c.len_utf8())
            }
        };
        if word_char != in_word {
            return i;
        }
        i += len;
    }
    bytes.len()
}

/// Whether `word` counts as a term: three characters or more, not a number,
/// and not in a script written without spaces (where a "word" is a phrase).
fn is_term(word: &str) -> bool {
    if word.is_ascii() {
        return word.len() >= 3 && !word.bytes().all(|b| b.is_ascii_digit());
    }
    word.chars().nth(2).is_some()
        && !word.chars().all(char::is_numeric)
        && !word.chars().any(crate::counts::is_unspaced)
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

    proptest::proptest! {
        /// The chunked splitter finds exactly the maximal alphanumeric runs,
        /// whatever mix of ASCII runs (longer and shorter than a chunk) and
        /// other characters surrounds them.
        #[test]
        fn words_split_like_the_definition(
            text in "([a-zA-Z0-9]{1,12}|[ ,.;'\\-]{1,10}|é|ß|—|東|\u{a0}){0,40}"
        ) {
            let expected: Vec<&str> = text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .collect();
            proptest::prop_assert_eq!(words(&text).collect::<Vec<_>>(), expected);
        }
    }

    #[test]
    fn spaced_scripts_have_terms_and_unspaced_ones_do_not() {
        // Korean and Georgian are written with spaces; Japanese and Thai
        // are not, and a run of their letters is a phrase, not a term.
        let terms = |text| -> Vec<String> {
            top_terms(text, None, 5)
                .into_iter()
                .map(|t| t.term)
                .collect()
        };
        assert_eq!(terms("한국어 대한민국 한국어"), ["한국어", "대한민국"]);
        assert_eq!(
            terms("საქართველო თბილისი საქართველო"),
            ["საქართველო", "თბილისი"]
        );
        assert!(terms("東京都は日本の首都です ภาษาไทยเป็นภาษา").is_empty());
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
