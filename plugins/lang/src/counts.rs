//! Word, sentence and character counts, in one pass over the text.
//!
//! Words are runs of letters/digits; in scripts written without spaces
//! (Han, Kana, Thai, Lao, Khmer, Myanmar) each character counts as a word.
//! A sentence ends at `.`, `!` or `?` followed by whitespace, or at a CJK
//! `。`, `！`, `？`; trailing text without a terminator is one more sentence.

use serde::{Deserialize, Serialize};

/// Counts for one text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Unicode scalar values.
    pub characters: u64,
    /// Words (see the module docs).
    pub words: u64,
    /// Sentences (see the module docs).
    pub sentences: u64,
}

/// Count `text`.
pub fn count(text: &str) -> Counts {
    let mut counts = Counts::default();
    let mut in_word = false;
    let mut words_in_sentence = 0u64;
    let mut pending_terminator = false;
    for c in text.chars() {
        counts.characters += 1;
        if pending_terminator {
            pending_terminator = false;
            if c.is_whitespace() && words_in_sentence > 0 {
                counts.sentences += 1;
                words_in_sentence = 0;
            }
        }
        if c.is_alphanumeric() {
            if is_unspaced(c) {
                counts.words += 1;
                words_in_sentence += 1;
                in_word = false;
            } else if !in_word {
                counts.words += 1;
                words_in_sentence += 1;
                in_word = true;
            }
        } else {
            in_word = false;
            if matches!(c, '.' | '!' | '?') {
                pending_terminator = true;
            } else if matches!(c, '。' | '！' | '？') && words_in_sentence > 0 {
                // CJK full stops need no following space.
                counts.sentences += 1;
                words_in_sentence = 0;
            }
        }
    }
    if words_in_sentence > 0 {
        counts.sentences += 1;
    }
    counts
}

fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x0E00..=0x0EFF    // Thai, Lao
        | 0x1000..=0x109F    // Myanmar
        | 0x1780..=0x17FF    // Khmer
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words_and_sentences() {
        let c = count("Hello, world! It is 2024... Really? yes");
        assert_eq!((c.words, c.sentences), (7, 4));
        assert_eq!(c.characters, 39);
    }

    #[test]
    fn abbreviations_without_space_do_not_end_sentences() {
        assert_eq!(count("Version 3.14 is out.").sentences, 1);
    }

    #[test]
    fn unspaced_scripts_count_characters_as_words() {
        let c = count("東京は日本の首都です。大阪も大きい。");
        assert_eq!((c.words, c.sentences), (16, 2));
    }

    #[test]
    fn empty_text() {
        assert_eq!(count(""), Counts::default());
        assert_eq!(count("... !").sentences, 0);
    }
}
