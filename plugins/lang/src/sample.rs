//! Bounded samples of a text: a text longer than the budget gives `count`
//! pieces of at most `budget / count` bytes each, starting at paragraph
//! starts spread evenly over the text; a text within the budget gives all
//! its paragraphs, however many (the budget bounds the bytes, and so the
//! work, not the number of pieces). The work is proportional to the
//! budget, not to the text.

/// How far past an evenly spaced position we look for a paragraph start.
const MAX_SEEK: usize = 4096;

/// How far back from a cut a prefix looks for a space to end between
/// words. Scripts written without spaces (Chinese, Japanese, Thai) have
/// none for whole paragraphs: backing off to the last one would cut a
/// piece down to its heading.
const MAX_WORD_BYTES: usize = 48;

/// Pieces of `text` to analyse, at most `budget` bytes in all: every
/// paragraph of a text within the budget, else `count` spread-out pieces.
pub fn paragraphs(text: &str, count: usize, budget: usize) -> Vec<&str> {
    let count = count.max(1);
    if text.len() <= budget {
        let mut pieces = Vec::new();
        let mut start = 0;
        // Non-overlapping matches from the left, as `str::split` takes them.
        for paragraph_break in memchr::memmem::find_iter(text.as_bytes(), PARAGRAPH_BREAK) {
            pieces.push(&text[start..paragraph_break]);
            start = paragraph_break + PARAGRAPH_BREAK.len();
        }
        pieces.push(&text[start..]);
        return pieces
            .into_iter()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
    }
    let stride = text.len() / count;
    let per_piece = (budget / count).max(1);
    let mut pieces = Vec::with_capacity(count);
    for k in 0..count {
        let mut start = floor_boundary(text, k * stride);
        let seek_end = floor_boundary(text, (start + stride.min(MAX_SEEK)).min(text.len()));
        if k > 0
            && let Some(found) = paragraph_break(&text[start..seek_end])
        {
            start += found + 2;
        }
        let mut piece = prefix(&text[start..], per_piece);
        // Stay within one paragraph.
        if let Some(paragraph_end) = paragraph_break(piece) {
            piece = &piece[..paragraph_end];
        }
        let piece = piece.trim();
        if !piece.is_empty() {
            pieces.push(piece);
        }
    }
    pieces
}

/// What separates paragraphs in parse's plain text.
const PARAGRAPH_BREAK: &[u8] = b"\n\n";

/// The position of the first paragraph break in `text`. (`memmem` searches
/// with SIMD in the sandbox; `str::find` with a string does not there.)
fn paragraph_break(text: &str) -> Option<usize> {
    memchr::memmem::find(text.as_bytes(), PARAGRAPH_BREAK)
}

/// At most `max_bytes` of the start of `text`, not ending inside a
/// character, nor inside a word when a space comes within
/// [`MAX_WORD_BYTES`] of the cut (text without spaces is cut anywhere).
pub fn prefix(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let cut = &text[..floor_boundary(text, max_bytes)];
    let near = floor_boundary(cut, cut.len().saturating_sub(MAX_WORD_BYTES));
    match cut[near..].rfind(char::is_whitespace) {
        Some(space) if near + space > 0 => &cut[..near + space],
        _ => cut,
    }
}

/// The largest char boundary at or before `i`.
fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_taken_whole_by_paragraph() {
        assert_eq!(paragraphs("a b\n\n\n\nc", 4, 100), ["a b", "c"]);
    }

    proptest::proptest! {
        #[test]
        fn short_texts_split_like_str_split(text in "[a \n]{0,60}") {
            let expected: Vec<&str> = text
                .split("\n\n")
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            proptest::prop_assert_eq!(paragraphs(&text, 4, 100), expected);
        }
    }

    #[test]
    fn long_texts_are_sampled_within_the_budget() {
        let text = "Ein deutscher Absatz über Dinge.\n\n".repeat(10_000);
        let pieces = paragraphs(&text, 8, 2048);
        assert_eq!(pieces.len(), 8);
        assert!(pieces.iter().map(|p| p.len()).sum::<usize>() <= 2048);
        assert!(
            pieces
                .iter()
                .all(|p| *p == "Ein deutscher Absatz über Dinge."),
            "{pieces:?}"
        );
    }

    #[test]
    fn prefixes_end_between_words() {
        assert_eq!(prefix("one two three", 100), "one two three");
        assert_eq!(prefix("one two three", 9), "one two");
        assert_eq!(prefix("onetwothree", 5), "onetw");
        assert_eq!(prefix("été", 2), "é");
    }

    #[test]
    fn text_without_spaces_is_cut_at_the_budget_not_at_its_last_break() {
        let paragraph = "東京タワーは東京都港区芝公園にある総合電波塔である。".repeat(8);
        let text = format!("概要\n\n{paragraph}");
        let piece = prefix(&text, 300);
        // Before: cut back to the last space, the break after the heading.
        assert!(piece.len() > 250, "{piece}");
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let text = "日本語のテキスト".repeat(5000);
        for piece in paragraphs(&text, 7, 1000) {
            assert!(!piece.is_empty());
        }
    }
}
