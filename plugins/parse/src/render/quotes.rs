//! Bold and italic: which apostrophes of a run are text, by MediaWiki's
//! rules (`Parser::doQuotes`, applied line by line).
//!
//! - A run of 2 is italic, 3 bold, 5 bold italic: no apostrophe is text.
//! - A run of 4 is one literal `'` followed by bold (`''foo''''bar''`
//!   renders as `foo'bar`).
//! - A run of more than 5 is all but five literal, then bold italic.
//! - When a line then holds an odd number of italic and an odd number of
//!   bold markers, one bold run is read as a literal `'` followed by italic:
//!   the first one after a single-letter word (`l'''amour''`), else the
//!   first after a longer word, else the first after a space.
//!
//! Only that last rule needs the whole line, and only a run of 3 (or of 4,
//! which becomes one) can be the one converted, so a line is scanned once,
//! the first time one of its runs of 3 or 4 is rendered; the answer is kept
//! for the rest of the line. Rendering stays linear.

use std::ops::Range;

/// The per-line answer of the odd-markers rule, for the line last asked
/// about.
#[derive(Debug, Default)]
pub(super) struct Quotes {
    /// The line the answer is for.
    line: Range<usize>,
    /// Where the bold run read as `'` + italic starts, if one is.
    converted: Option<usize>,
}

impl Quotes {
    /// How many apostrophes of the run of `run` (at least 2) starting at
    /// `i` in `src` are literal text.
    pub(super) fn literal(&mut self, src: &str, i: usize, run: usize) -> usize {
        match run {
            2 | 5 => 0,
            3 | 4 => {
                let extra = usize::from(run == 4);
                let bold_at = i + extra;
                extra + usize::from(self.converted_in_line(src, i) == Some(bold_at))
            }
            _ => run - 5,
        }
    }

    /// The start of the bold run converted on the line holding `i`.
    fn converted_in_line(&mut self, src: &str, i: usize) -> Option<usize> {
        if !self.line.contains(&i) {
            let b = src.as_bytes();
            let start = memchr::memrchr(b'\n', &b[..i]).map_or(0, |n| n + 1);
            let end = memchr::memchr(b'\n', &b[i..]).map_or(b.len(), |n| i + n);
            self.line = start..end;
            self.converted = converted_bold(&src[start..end]).map(|at| start + at);
        }
        self.converted
    }
}

/// In one line: the start (after any literal apostrophe) of the bold run
/// that MediaWiki reads as `'` + italic, if the line has odd numbers of
/// both italic and bold markers.
fn converted_bold(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let (mut italics, mut bolds) = (0usize, 0usize);
    let mut after_space = None;
    let mut after_single_letter = None;
    let mut after_word = None;
    let mut i = 0;
    while let Some(found) = memchr::memchr(b'\'', &b[i..]) {
        let start = i + found;
        let run = b[start..].iter().take_while(|c| **c == b'\'').count();
        i = start + run;
        match run {
            1 => {}
            2 => italics += 1,
            3 | 4 => {
                bolds += 1;
                // A run of 4 is `'` + bold: that `'` is the character
                // before the bold.
                let bold = start + run - 3;
                let mut before = line[..bold].chars().rev();
                match (before.next(), before.next()) {
                    (Some(' '), _) => {
                        after_space.get_or_insert(bold);
                    }
                    (Some(_), Some(' ')) => {
                        after_single_letter.get_or_insert(bold);
                    }
                    _ => {
                        after_word.get_or_insert(bold);
                    }
                }
            }
            _ => {
                italics += 1;
                bolds += 1;
            }
        }
    }
    if italics % 2 == 1 && bolds % 2 == 1 {
        after_single_letter.or(after_word).or(after_space)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text MediaWiki shows for `line`: apostrophes kept by the rules,
    /// markup runs removed.
    fn render(line: &str) -> String {
        let mut quotes = Quotes::default();
        let b = line.as_bytes();
        let mut out = String::new();
        let mut i = 0;
        while i < b.len() {
            let run = b[i..].iter().take_while(|c| **c == b'\'').count();
            if run >= 2 {
                out.push_str(&"'".repeat(quotes.literal(line, i, run)));
                i += run;
            } else {
                let c = line[i..].chars().next().unwrap();
                out.push(c);
                i += c.len_utf8();
            }
        }
        out
    }

    #[test]
    fn runs_of_two_three_and_five_are_markup() {
        assert_eq!(render("''a'' '''b''' '''''c'''''"), "a b c");
    }

    #[test]
    fn a_run_of_four_keeps_one_apostrophe() {
        assert_eq!(render("''foo''''bar''"), "foo'bar");
        assert_eq!(render("''''bold''' text"), "'bold text");
    }

    #[test]
    fn longer_runs_keep_all_but_five() {
        assert_eq!(render("''''''''x'''''"), "'''x");
    }

    #[test]
    fn odd_italic_and_bold_convert_one_bold_run() {
        // French elision: one bold and one italic marker on the line.
        assert_eq!(render("l'''amour''"), "l'amour");
        assert_eq!(render("''Dupont'''s car"), "Dupont's car");
        // A bold run after a single-letter word is preferred...
        assert_eq!(render("ab'''c d'''e'''f''"), "abc d'ef");
        // ... else one after a longer word, else one after a space.
        assert_eq!(render("''a ''' b"), "a ' b");
        // Even counts: nothing converted.
        assert_eq!(render("'''a''' ''b''"), "a b");
        assert_eq!(render("''l'''amour''"), "lamour");
    }

    #[test]
    fn the_rule_applies_per_line() {
        let text = "l'''amour''\n'''bold''' ''it''";
        assert_eq!(render(text), "l'amour\nbold it");
    }
}
