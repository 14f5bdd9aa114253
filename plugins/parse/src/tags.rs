//! Pass 1: HTML comments and tags.
//!
//! Produces a copy of the wikitext in which comments are gone, the content of
//! non-prose tags (`<ref>`, `<math>`, `<gallery>`, ...) is gone, prose tags
//! (`<span>`, `<small>`, `<div>`, ...) are unwrapped, and the content of
//! `<nowiki>`/`<pre>` is protected so later passes see no markup in it.
//!
//! Linear time: each byte is visited once by the main loop, and searches for
//! closing tags are memoised per tag name (a failed search is never repeated,
//! a successful one is reused until the scan passes it).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use memchr::memmem;

/// The content of a `<ref>` is kept between these two markers: it is not
/// prose (later passes render it to nothing), but the templates and links
/// in it belong to the page (citation templates are the most used ones).
pub const REF_OPEN: char = '\u{F7F0}';
/// See [`REF_OPEN`].
pub const REF_CLOSE: char = '\u{F7F1}';
/// Left where a tag was removed next to an apostrophe, so that
/// `''θ''<sub>''i''</sub>` stays four runs of two, as MediaWiki (which
/// reads bold and italic with the tags still in place) sees it, not a run
/// of four. Rendering drops it.
pub const TAG_BOUNDARY: char = '\u{F7F2}';
/// UTF-8 of [`REF_OPEN`], for the byte-level passes.
pub const REF_OPEN_UTF8: [u8; 3] = utf8(REF_OPEN);
/// UTF-8 of [`REF_CLOSE`], for the byte-level passes.
pub const REF_CLOSE_UTF8: [u8; 3] = utf8(REF_CLOSE);

/// The UTF-8 of a three-byte character.
const fn utf8(c: char) -> [u8; 3] {
    let mut bytes = [0; 3];
    c.encode_utf8(&mut bytes);
    bytes
}

/// Tags whose content is not prose: dropped with the tag.
const DROP_CONTENT: &[&str] = &[
    "ref",
    "references",
    "math",
    "chem",
    "ce",
    "score",
    "timeline",
    "gallery",
    "imagemap",
    "templatedata",
    "templatestyles",
    "syntaxhighlight",
    "source",
    "graph",
    "mapframe",
    "maplink",
    "includeonly",
    "hiero",
    "inputbox",
    "categorytree",
    "indicator",
    "del",
    "s",
    "strike",
];

/// Tags whose content is literal text (no wiki markup inside).
const LITERAL_CONTENT: &[&str] = &["nowiki", "pre"];

/// Tags that are removed but whose content stays.
const UNWRAP: &[&str] = &[
    "noinclude",
    "onlyinclude",
    "poem",
    "section",
    "div",
    "span",
    "br",
    "small",
    "big",
    "sup",
    "sub",
    "center",
    "font",
    "b",
    "i",
    "u",
    "ins",
    "blockquote",
    "cite",
    "tt",
    "abbr",
    "p",
    "hr",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "table",
    "tr",
    "td",
    "th",
    "caption",
    "kbd",
    "samp",
    "q",
    "ruby",
    "rb",
    "rt",
    "rp",
    "wbr",
    "bdi",
    "mark",
    "time",
    "data",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "em",
    "strong",
    "bdo",
    "dfn",
    "nobr",
    "code",
    "var",
];

/// Longest tag (`<name attributes>`) recognised; a `<` without a `>` within
/// this distance is a literal less-than sign.
const MAX_TAG_LEN: usize = 2048;

/// Markup characters inside `<nowiki>`/`<pre>` are mapped into the Unicode
/// private use area so later passes treat them as text; [`protected_at`] maps
/// them back.
const PROTECT_BASE: u32 = 0xF700;
const PROTECTED: &[u8] = b"[]{}|'=*#:;<>~_-";

/// Run pass 1 over `input`.
pub fn strip(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut closers = CloserSearch::new(bytes);
    let mut out = String::with_capacity(input.len());
    // The `<ref>` whose content is being copied: (content end, after closer).
    let mut open_ref: Option<(usize, usize)> = None;
    let mut tables = HtmlTables::default();
    let mut i = 0;
    loop {
        let limit = open_ref.map_or(bytes.len(), |(content_end, _)| content_end);
        let Some(found) = memchr::memchr(b'<', &bytes[i..limit]) else {
            out.push_str(&input[i..limit]);
            match open_ref.take() {
                Some((_, after)) => {
                    out.push(REF_CLOSE);
                    i = after;
                    continue;
                }
                None => {
                    // An HTML table left open is closed where the page
                    // ends, as browsers (and MediaWiki's tidying) do.
                    for _ in 0..tables.depth {
                        out.push_str(HtmlTables::CLOSE);
                    }
                    break;
                }
            }
        };
        let lt = i + found;
        out.push_str(&input[i..lt]);
        let next = match tag_at(input, lt) {
            Tag::Comment { end } => end,
            Tag::Close { name, end } => {
                match tables.close(name) {
                    Some(markup) => out.push_str(markup),
                    None => mark_boundary(&mut out, input, end),
                }
                end
            }
            Tag::Open {
                name,
                end,
                self_closing,
            } => match tables.open(name, self_closing, || {
                closers
                    .find(name, end)
                    .is_some_and(|(_, after)| after <= limit)
            }) {
                Some(markup) => {
                    out.push_str(markup);
                    end
                }
                None => {
                    let opened = Opened {
                        name,
                        end,
                        self_closing,
                    };
                    handle_open(input, &mut closers, &mut out, &mut open_ref, opened, limit)
                }
            },
            Tag::Literal => {
                out.push('<');
                lt + 1
            }
        };
        // Nothing inside a reference may run past its closer.
        i = next.min(open_ref.map_or(usize::MAX, |(content_end, _)| content_end));
    }
    out
}

/// An opening tag found by [`tag_at`].
struct Opened {
    name: &'static str,
    end: usize,
    self_closing: bool,
}

/// Handle an opening tag (closers count only up to `limit`); returns where
/// scanning continues.
fn handle_open(
    input: &str,
    closers: &mut CloserSearch<'_>,
    out: &mut String,
    open_ref: &mut Option<(usize, usize)>,
    tag: Opened,
    limit: usize,
) -> usize {
    let Opened {
        name,
        end,
        self_closing,
    } = tag;
    if self_closing {
        if name == "br" {
            out.push(' ');
        }
        return end;
    }
    let literal = LITERAL_CONTENT.contains(&name);
    if !literal && !DROP_CONTENT.contains(&name) {
        if name == "br" || name == "p" || name == "li" || name == "div" {
            out.push(' ');
        } else {
            mark_boundary(out, input, end);
        }
        return end;
    }
    // Inside a reference, a closer past the reference's own end does not
    // count: the tag is unclosed there (copying up to that closer would copy
    // the text after the reference twice).
    match closers.find(name, end).filter(|&(_, after)| after <= limit) {
        // A reference's content is scanned like the rest of the page, between
        // markers (a `<ref>` inside a reference has no closer of its own).
        Some((content_end, after)) if name == "ref" && open_ref.is_none() => {
            out.push(REF_OPEN);
            *open_ref = Some((content_end, after));
            end
        }
        Some(_) if name == "ref" => end,
        Some((content_end, after)) => {
            if literal {
                protect(&input[end..content_end], out);
            }
            after
        }
        // An unclosed <ref> or <nowiki>: drop just the tag, keep the text.
        None => end,
    }
}

/// What starts at a `<`.
enum Tag {
    Comment {
        end: usize,
    },
    Open {
        name: &'static str,
        end: usize,
        self_closing: bool,
    },
    Close {
        name: &'static str,
        end: usize,
    },
    Literal,
}

fn tag_at(input: &str, lt: usize) -> Tag {
    let bytes = input.as_bytes();
    let rest = &bytes[lt..];
    if rest.starts_with(b"<!--") {
        let end = memmem::find(&rest[4..], b"-->").map_or(input.len(), |e| lt + 4 + e + 3);
        return Tag::Comment { end };
    }
    let (closing, name_start) = match rest.get(1) {
        Some(b'/') => (true, lt + 2),
        _ => (false, lt + 1),
    };
    let name_len = bytes[name_start..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
        .count();
    let Some(name) = known_tag(&bytes[name_start..name_start + name_len]) else {
        return Tag::Literal;
    };
    let Some(gt) = tag_end(bytes, name_start + name_len) else {
        return Tag::Literal;
    };
    let end = gt + 1;
    if closing {
        Tag::Close { name, end }
    } else {
        let self_closing = bytes[gt - 1] == b'/';
        Tag::Open {
            name,
            end,
            self_closing,
        }
    }
}

/// HTML tables (`<table>`, `<tr>`, `<td>`, `<th>`, `<caption>`) rewritten
/// as the wikitable markup they are equivalent to, so that pass 3 reads
/// both kinds of table with one grammar. Only a `<table>` that has a closer
/// is rewritten, and row and cell tags only inside one; elsewhere they are
/// unwrapped like other prose tags.
#[derive(Debug, Default)]
struct HtmlTables {
    /// Rewritten tables open at this point.
    depth: usize,
}

impl HtmlTables {
    /// What a rewritten `</table>` becomes.
    const CLOSE: &'static str = "\n|}\n";

    /// The wikitable markup for the opening tag `name`, if it is rewritten;
    /// `has_closer` is asked only for a `<table>`. A cell's markup ends with
    /// an empty attribute part (`| |`), so a `|` in its text is not read as
    /// the end of attributes.
    fn open(
        &mut self,
        name: &str,
        self_closing: bool,
        has_closer: impl FnOnce() -> bool,
    ) -> Option<&'static str> {
        if self_closing {
            return None;
        }
        match name {
            "table" if has_closer() => {
                self.depth += 1;
                Some("\n{|\n")
            }
            _ if self.depth == 0 => None,
            "tr" => Some("\n|-\n"),
            "td" => Some("\n| |"),
            "th" => Some("\n! |"),
            "caption" => Some("\n|+ |"),
            _ => None,
        }
    }

    /// The markup for the closing tag `name`, if it is rewritten (cell and
    /// row closers become nothing: the next opener or the table's end
    /// closes them).
    fn close(&mut self, name: &str) -> Option<&'static str> {
        match name {
            _ if self.depth == 0 => None,
            "table" => {
                self.depth -= 1;
                Some(Self::CLOSE)
            }
            "tr" | "td" | "th" | "caption" => Some(""),
            _ => None,
        }
    }
}

/// After a tag is removed: a [`TAG_BOUNDARY`] if an apostrophe ends the
/// output or starts the input at `next`, where the two sides would
/// otherwise join into one run.
fn mark_boundary(out: &mut String, input: &str, next: usize) {
    if out.ends_with('\'') || input.as_bytes().get(next) == Some(&b'\'') {
        out.push(TAG_BOUNDARY);
    }
}

/// The position of the `>` ending a tag whose name ends at `after_name`:
/// the name must end there (at `>`, `/` or whitespace), and the `>` must
/// come within [`MAX_TAG_LEN`] bytes.
fn tag_end(bytes: &[u8], after_name: usize) -> Option<usize> {
    if !matches!(
        bytes.get(after_name),
        Some(b'>' | b'/' | b' ' | b'\t' | b'\n')
    ) {
        return None;
    }
    let window = &bytes[after_name..bytes.len().min(after_name + MAX_TAG_LEN)];
    memchr::memchr(b'>', window).map(|gt| after_name + gt)
}

/// The known tag named `name`, in any case (tag names are case-insensitive;
/// the lists hold them in lower case).
fn known_tag(name: &[u8]) -> Option<&'static str> {
    DROP_CONTENT
        .iter()
        .chain(LITERAL_CONTENT)
        .chain(UNWRAP)
        .find(|t| t.as_bytes().eq_ignore_ascii_case(name))
        .copied()
}

/// Finds `</`, where every closing tag starts (built once, not per page).
static CLOSER_START: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"</"));

/// Memoised search for the closing tag `</name ...>` (the name in any case)
/// after a position. It compares names in place rather than searching a
/// lower-cased copy of the page, which would cost a pass and a page-sized
/// allocation per page.
struct CloserSearch<'a> {
    bytes: &'a [u8],
    /// Per tag: the last closer found (start of `</name`, position after its
    /// `>`), or `None` if there is no closer after the last search position.
    memo: HashMap<&'static str, Option<(usize, usize)>>,
}

impl<'a> CloserSearch<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        CloserSearch {
            bytes,
            memo: HashMap::new(),
        }
    }

    /// Find the closing tag of `name` at or after `from`: returns (start of
    /// the closing tag, position after its `>`).
    fn find(&mut self, name: &'static str, from: usize) -> Option<(usize, usize)> {
        match self.memo.get(name) {
            Some(None) => None,
            Some(Some(found)) if found.0 >= from => Some(*found),
            _ => {
                let found = self.first_closer(name, from);
                self.memo.insert(name, found);
                found
            }
        }
    }

    /// The first closing tag of `name` (lower case) at or after `from`, in
    /// any case, read as [`tag_at`] reads tags ([`tag_end`]): so `</s` is
    /// not found in `</small>`, nor `</ref` in `</references>`.
    fn first_closer(&self, name: &str, from: usize) -> Option<(usize, usize)> {
        let mut at = from;
        loop {
            let start = at + CLOSER_START.find(&self.bytes[at..])?;
            let name_at = start + 2;
            let after_name = name_at + name.len();
            let named = self
                .bytes
                .get(name_at..after_name)
                .is_some_and(|n| n.eq_ignore_ascii_case(name.as_bytes()));
            if named && let Some(gt) = tag_end(self.bytes, after_name) {
                return Some((start, gt + 1));
            }
            // The next `</` starts after this one's `/`.
            at = name_at;
        }
    }
}

fn protect(text: &str, out: &mut String) {
    for c in text.chars() {
        match u8::try_from(c) {
            Ok(b) if PROTECTED.contains(&b) => {
                out.push(char::from_u32(PROTECT_BASE + u32::from(b)).expect("private use area"))
            }
            _ => out.push(c),
        }
    }
}

/// If the UTF-8 bytes at `i` encode a protected character, the ASCII byte
/// it stands for (as a one-byte slice).
pub fn protected_at(bytes: &[u8], i: usize) -> Option<&'static [u8]> {
    let encoded = bytes.get(i..i + 3)?;
    let c = std::str::from_utf8(encoded).ok()?.chars().next()?;
    let offset = (c as u32).checked_sub(PROTECT_BASE).filter(|o| *o < 0x80)?;
    let original = PROTECTED.iter().find(|p| u32::from(**p) == offset)?;
    Some(std::slice::from_ref(original))
}

/// Whether `text` holds a mark of this pass (a protected character or a
/// reference marker, all in U+F700..=U+F7FF): text that was not plain
/// wikitext, e.g. `<nowiki>` content, and can be no title.
pub fn has_marker(text: &str) -> bool {
    // Every mark is encoded as EF 9C..=9F xx, and in UTF-8 the byte EF only
    // ever leads a character, so a byte search finds them exactly without
    // decoding (most text has no EF at all).
    let bytes = text.as_bytes();
    memchr::memchr_iter(0xEF, bytes).any(|i| matches!(bytes.get(i + 1), Some(0x9C..=0x9F)))
}

/// `input` with every character of the block this pass marks with
/// (U+F700..=U+F7FF, private use) replaced by U+FFFD, so that a page which
/// already holds one cannot fake a mark. Borrowed when there is none, the
/// usual case.
pub fn unmark(input: &str) -> Cow<'_, str> {
    if !has_marker(input) {
        return Cow::Borrowed(input);
    }
    let marks = PROTECT_BASE..=PROTECT_BASE + 0xFF;
    Cow::Owned(
        input
            .chars()
            .map(|c| {
                if marks.contains(&u32::from(c)) {
                    char::REPLACEMENT_CHARACTER
                } else {
                    c
                }
            })
            .collect(),
    )
}

/// If a mark that stands for no text ([`REF_OPEN`], [`REF_CLOSE`] or
/// [`TAG_BOUNDARY`]) starts at `i`, its length in bytes.
pub fn mark_at(bytes: &[u8], i: usize) -> Option<usize> {
    let rest = bytes.get(i..)?;
    [REF_OPEN_UTF8, REF_CLOSE_UTF8, utf8(TAG_BOUNDARY)]
        .iter()
        .find(|marker| rest.starts_with(&marker[..]))
        .map(|marker| marker.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_exactly_the_private_use_block_of_this_pass() {
        assert!(has_marker("Paris\u{F700}"));
        assert!(has_marker("\u{F7FF} x"));
        // Other characters encoded with a lead byte EF are no marks.
        assert!(!has_marker("\u{F6FF}\u{F800}\u{FFFD}\u{FEFF}"));
        assert!(!has_marker("Paris, France"));
        assert!(!has_marker(""));
    }

    #[test]
    fn marks_already_in_the_page_are_replaced() {
        assert!(matches!(unmark("plain, 日本語（）"), Cow::Borrowed(_)));
        assert_eq!(
            unmark("a\u{F7F1}b\u{F75B}c\u{F800}"),
            "a\u{FFFD}b\u{FFFD}c\u{F800}"
        );
    }

    #[test]
    fn comments_refs_and_non_prose_are_dropped() {
        let s = strip(
            "a<!-- x -->b<ref name=\"n\">c {{d}}<!--y--></ref>e<ref name=n />f<math>x^2</math>g",
        );
        assert_eq!(s, "ab\u{F7F0}c {{d}}\u{F7F1}efg");
    }

    #[test]
    fn tag_names_are_matched_in_any_case() {
        // MediaWiki tag names are case-insensitive, openers and closers alike.
        let s = strip("a<REF Name=n>b</Ref >c<Math>x</MATH>d<NoWiki>[[e]]</NOWIKI>f");
        assert_eq!(
            crate::render::clean(&s.replace([REF_OPEN, REF_CLOSE], "|")),
            "a|b|cd[[e]]f"
        );
        assert_eq!(strip("<SPAN>x</Span><BR/>y"), "x y");
    }

    #[test]
    fn a_closer_is_the_whole_tag_name_not_a_prefix() {
        // `</sup` does not close `<s>`, nor `</references>` a `<ref>` (which
        // stays unclosed: the tag is dropped and its text kept).
        assert_eq!(strip("<s>1<sup>st</sup> place</s>!"), "!");
        assert_eq!(strip("<ce>H2O<center>x</center></ce>y"), "y");
        assert_eq!(strip("a<ref>g</references>h"), "agh");
        // A closer without its `>` nearby is no closer (and is not searched
        // to the end of the page again for every opener).
        let far = format!("<s>x</s{}>y", " ".repeat(MAX_TAG_LEN));
        assert_eq!(strip(&far), format!("x</s{}>y", " ".repeat(MAX_TAG_LEN)));
    }

    #[test]
    fn prose_tags_are_unwrapped_and_nowiki_protected() {
        let s = strip("<span style=\"x\">a</span><nowiki>[[b]]</nowiki><small>c</small>");
        assert!(!s.contains("[["));
        assert_eq!(crate::render::clean(&s), "a[[b]]c");
    }

    #[test]
    fn unterminated_things_do_not_swallow_or_loop() {
        assert_eq!(strip("a <ref>b c"), "a b c");
        assert_eq!(strip("a <!-- b"), "a ");
        assert_eq!(strip("x < y and y > z"), "x < y and y > z");
        assert_eq!(strip("<"), "<");
        assert_eq!(strip("<ref"), "<ref");
    }

    #[test]
    fn a_tag_closed_only_after_the_reference_ends_is_unclosed_inside_it() {
        // Found by the property test: the text after `</ref>` came out twice.
        let s = strip("a<ref>b<nowiki>c</ref>d</nowiki>e");
        assert_eq!(s, format!("a{REF_OPEN}bc{REF_CLOSE}de"));
    }

    #[test]
    fn many_unclosed_refs_stay_linear() {
        let input = "<ref>x ".repeat(50_000);
        assert_eq!(strip(&input).len(), "x ".len() * 50_000);
    }
}
