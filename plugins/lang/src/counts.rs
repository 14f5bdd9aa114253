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

/// Count `text`. ASCII (most of most wikis' text) is classified byte by
/// byte; other characters are decoded and classified by Unicode properties.
pub fn count(text: &str) -> Counts {
    let mut state = Counter::default();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii() {
            state.ascii(b);
            i += 1;
        } else {
            let c = text[i..].chars().next().expect("i is a char boundary");
            state.other(c);
            i += c.len_utf8();
        }
    }
    state.finish()
}

/// The running state of [`count`].
#[derive(Default)]
struct Counter {
    counts: Counts,
    in_word: bool,
    words_in_sentence: u64,
    pending_terminator: bool,
}

impl Counter {
    fn ascii(&mut self, b: u8) {
        self.counts.characters += 1;
        self.end_sentence_if(b.is_ascii_whitespace());
        if b.is_ascii_alphanumeric() {
            self.letter();
        } else {
            self.in_word = false;
            self.pending_terminator = matches!(b, b'.' | b'!' | b'?');
        }
    }

    fn other(&mut self, c: char) {
        self.counts.characters += 1;
        self.end_sentence_if(c.is_whitespace());
        if c.is_alphanumeric() {
            if is_unspaced(c) {
                self.counts.words += 1;
                self.words_in_sentence += 1;
                self.in_word = false;
            } else {
                self.letter();
            }
        } else {
            self.in_word = false;
            if matches!(c, '。' | '！' | '？') && self.words_in_sentence > 0 {
                // CJK full stops need no following space.
                self.counts.sentences += 1;
                self.words_in_sentence = 0;
            }
        }
    }

    fn letter(&mut self) {
        if !self.in_word {
            self.counts.words += 1;
            self.words_in_sentence += 1;
            self.in_word = true;
        }
    }

    /// A `.`, `!` or `?` followed by whitespace ends a sentence.
    fn end_sentence_if(&mut self, whitespace: bool) {
        if std::mem::take(&mut self.pending_terminator) && whitespace && self.words_in_sentence > 0
        {
            self.counts.sentences += 1;
            self.words_in_sentence = 0;
        }
    }

    fn finish(mut self) -> Counts {
        if self.words_in_sentence > 0 {
            self.counts.sentences += 1;
        }
        self.counts
    }
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
