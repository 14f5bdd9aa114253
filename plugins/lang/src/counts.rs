//! Word, sentence and character counts, in one pass over the text.
//!
//! Words are runs of letters/digits; in scripts written without spaces
//! (Han, Kana, Thai, Lao, Khmer, Myanmar) each character counts as a word.
//! A sentence ends at `.`, `!` or `?` followed by whitespace, or at a CJK
//! `。`, `！`, `？`; trailing text without a terminator is one more sentence.

use serde::{Deserialize, Serialize};

use crate::ascii8::{self, alphanumeric, in_range};

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

/// Count `text`. Runs of ASCII (most of most wikis' text) are classified
/// eight bytes at a time ([`Counter::ascii_chunk`]); other characters are
/// decoded and classified by Unicode properties.
pub fn count(text: &str) -> Counts {
    let mut state = Counter::default();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii() {
            if let Some(chunk) = ascii8::chunk_at(bytes, i) {
                state.ascii_chunk(chunk);
                i += 8;
                continue;
            }
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

/// The high bit of each byte of `x` (ASCII) that is ASCII whitespace
/// (space, `\t`, `\n`, form feed, `\r`, as [`u8::is_ascii_whitespace`]).
const fn whitespace(x: u64) -> u64 {
    in_range(x, b' ', b' ') | in_range(x, b'\t', b'\n') | in_range(x, 0x0C, b'\r')
}

/// The high bit of each byte of `x` (ASCII) that is `.`, `!` or `?`.
const fn terminator(x: u64) -> u64 {
    in_range(x, b'.', b'.') | in_range(x, b'!', b'!') | in_range(x, b'?', b'?')
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
    /// Eight ASCII bytes (little-endian in `chunk`) at once: the same
    /// result as [`Counter::ascii`] on each byte in turn, with one bit per
    /// byte (its high bit) in each mask.
    fn ascii_chunk(&mut self, chunk: u64) {
        let alnum = alphanumeric(chunk);
        let term = terminator(chunk);
        // A byte starts a word if it is alphanumeric and the byte before it
        // (the previous chunk's last byte for the first) is not.
        let alnum_before = (alnum << 8) | (u64::from(self.in_word) << 7);
        let starts = alnum & !alnum_before;
        // A sentence may end at whitespace right after a terminator.
        let term_before = (term << 8) | (u64::from(self.pending_terminator) << 7);
        let mut ends = term_before & whitespace(chunk);

        self.counts.characters += 8;
        self.counts.words += u64::from(starts.count_ones());
        // Word starts before each candidate end count towards its sentence.
        let mut counted = 0u64;
        while ends != 0 {
            let before = (ends & ends.wrapping_neg()) - 1;
            self.words_in_sentence += u64::from((starts & before & !counted).count_ones());
            counted = before;
            if self.words_in_sentence > 0 {
                self.counts.sentences += 1;
                self.words_in_sentence = 0;
            }
            ends &= ends - 1;
        }
        self.words_in_sentence += u64::from((starts & !counted).count_ones());
        self.in_word = alnum >> 63 == 1;
        self.pending_terminator = term >> 63 == 1;
    }

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

/// Whether `c` belongs to a script written without spaces between words,
/// where a run of letters is a phrase rather than a word. The counts take
/// each such character as a word, and top terms skip words holding one
/// ([`crate::terms`]); both must agree on the list.
pub(crate) fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x20000..=0x3FFFF  // CJK extensions B and later (planes 2 and 3)
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

    /// [`count`] with every character classified on its own, the definition
    /// the chunked fast path must agree with.
    fn count_by_character(text: &str) -> Counts {
        let mut state = Counter::default();
        for c in text.chars() {
            match u8::try_from(c) {
                Ok(b) if b.is_ascii() => state.ascii(b),
                _ => state.other(c),
            }
        }
        state.finish()
    }

    #[test]
    fn chunks_agree_with_characters_on_every_ascii_byte() {
        // Every byte value in every position of a chunk, after either state.
        for b in 0..0x80u8 {
            for pos in 0..8 {
                for prefix in ["", "a", "a.", "a. ", "."] {
                    let mut chunk = *b"x. y?  z";
                    chunk[pos] = b;
                    let text = format!("{prefix}{}", std::str::from_utf8(&chunk).unwrap());
                    assert_eq!(count(&text), count_by_character(&text), "{text:?}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn chunks_agree_with_characters(text in "([a-zA-Z0-9]{1,9}|[ .!?,\\t\\n]{1,3}|é|。|東){0,60}") {
            proptest::prop_assert_eq!(count(&text), count_by_character(&text));
        }
    }

    #[test]
    fn empty_text() {
        assert_eq!(count(""), Counts::default());
        assert_eq!(count("... !").sentences, 0);
    }
}
