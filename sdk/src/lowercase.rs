//! Lower-casing words for counting and hashing.
//!
//! Text plugins count, hash or look up words case-insensitively, one word at
//! a time, millions of times per run. [`push_lowercase`] appends a word's
//! lower-case form to a reused buffer (no allocation per word once the
//! buffer has grown) and skips character decoding for ASCII words, the
//! common case in most wiki languages.
//!
//! Invariant: the result is always the same as mapping each `char` through
//! [`char::to_lowercase`]; the ASCII path is only a faster way to get it
//! (tested below). That is deliberately *not* [`str::to_lowercase`], which
//! also applies the context-dependent final-sigma rule: per-character
//! mapping keeps a word's form independent of what surrounds it, and
//! plugins that hash the result (for a model's features, say) depend on the
//! form never changing.

/// Append `word`, lower-cased character by character, to `out`.
///
/// ```
/// let mut lower = String::new();
/// weir_sdk::push_lowercase(&mut lower, "Weir");
/// lower.push(' ');
/// weir_sdk::push_lowercase(&mut lower, "ΣΟΦΊΑ");
/// assert_eq!(lower, "weir σοφία");
/// ```
#[inline]
pub fn push_lowercase(out: &mut String, word: &str) {
    if word.is_ascii() {
        let start = out.len();
        out.push_str(word);
        out[start..].make_ascii_lowercase();
    } else {
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn per_char(word: &str) -> String {
        word.chars().flat_map(char::to_lowercase).collect()
    }

    #[test]
    fn appends_without_touching_what_is_already_there() {
        let mut out = String::from("Keep ");
        push_lowercase(&mut out, "MiXeD");
        push_lowercase(&mut out, "İstanbul");
        assert_eq!(out, format!("Keep mixed{}", per_char("İstanbul")));
    }

    #[test]
    fn a_final_sigma_stays_the_plain_lower_case_sigma() {
        // str::to_lowercase would write "ς" here: see the module docs.
        let mut out = String::new();
        push_lowercase(&mut out, "ΟΔΟΣ");
        assert_eq!(out, "οδοσ");
    }

    proptest! {
        #[test]
        fn the_ascii_path_agrees_with_per_character_mapping(
            prefix in "\\PC{0,8}",
            word in "(\\PC{0,24}|[ -~]{0,24})",
        ) {
            let mut out = prefix.clone();
            push_lowercase(&mut out, &word);
            prop_assert_eq!(out, prefix + &per_char(&word));
        }
    }
}
