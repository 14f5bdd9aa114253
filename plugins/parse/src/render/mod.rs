//! Pass 3: rendering wikitext (after passes 1 and 2) into plain text,
//! sections, links, categories and template names.
//!
//! Each byte is rendered once: a matched construct is either skipped whole
//! (templates, parameters), or its inner ranges are rendered by a nested call
//! and then skipped by the caller (links, tables, headings). Nesting deeper
//! than [`MAX_DEPTH`] is skipped rather than rendered, so hostile input cannot
//! exhaust the stack.
//!
//! Parts: [`quotes`] (which apostrophes of bold/italic runs are text) and
//! [`table`] (tables into structured rows).

use std::borrow::Cow;
use std::sync::LazyLock;

use indexmap::IndexSet;

use crate::Options;
use crate::brackets::{Kind, Pair, Pairs};
use crate::document::{Document, Link, Section, Table};
use crate::find::{self, ByteFinder};
use crate::namespaces::{Names, Namespace};

mod quotes;
mod table;

/// Deepest nesting of links/tables rendered.
const MAX_DEPTH: usize = 32;

/// URL schemes that make `[scheme... label]` an external link.
const URL_SCHEMES: &[&str] = &[
    "http://", "https://", "//", "ftp://", "mailto:", "irc://", "news:",
];

/// Magic variables written like templates but not templates.
const MAGIC_VARIABLES: &[&str] = &[
    "PAGENAME",
    "FULLPAGENAME",
    "BASEPAGENAME",
    "NAMESPACE",
    "SITENAME",
    "CURRENTYEAR",
    "CURRENTMONTH",
    "CURRENTDAY",
    "CURRENTTIME",
    "NUMBEROFARTICLES",
    "!",
    "=",
    "TOC",
    "NOTOC",
    "REVISIONID",
    "PAGEID",
    "SERVER",
    "SUBPAGENAME",
];

/// Bytes that may start markup inside a line (everything else is text).
const SPECIAL: [u8; 6] = [b'{', b'[', b'\'', b'_', b'\n', 0xEF];

pub struct Renderer<'a> {
    src: &'a str,
    pairs: &'a Pairs,
    out: String,
    sections: Vec<Section>,
    heading: String,
    level: u8,
    links: Vec<Link>,
    /// Category and template names, each once, in order of first use.
    categories: IndexSet<String>,
    templates: IndexSet<String>,
    tables: Vec<Table>,
    depth: usize,
    quotes: quotes::Quotes,
    /// Whether table cells' text is also page text.
    table_text: bool,
    names: &'a Names,
}

impl<'a> Renderer<'a> {
    pub fn new(src: &'a str, pairs: &'a Pairs, options: &'a Options) -> Self {
        Renderer {
            src,
            pairs,
            out: String::with_capacity(src.len() / 2),
            sections: Vec::new(),
            heading: String::new(),
            level: 0,
            links: Vec::new(),
            categories: IndexSet::new(),
            templates: IndexSet::new(),
            tables: Vec::new(),
            depth: 0,
            quotes: quotes::Quotes::default(),
            table_text: options.table_text,
            names: &options.namespaces,
        }
    }

    /// Render the whole text into a document (without title/redirect).
    pub fn render_document(mut self) -> Document {
        self.render(0, self.src.len(), true);
        self.finish_section();
        let text = self
            .sections
            .iter()
            .flat_map(|s| {
                let heading = (!s.heading.is_empty()).then_some(s.heading.as_str());
                heading
                    .into_iter()
                    .chain((!s.text.is_empty()).then_some(s.text.as_str()))
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        Document {
            title: None,
            redirect: None,
            text,
            sections: self.sections,
            links: self.links,
            categories: self.categories.into_iter().collect(),
            templates: self.templates.into_iter().collect(),
            tables: self.tables,
        }
    }

    fn finish_section(&mut self) {
        let text = clean(&std::mem::take(&mut self.out));
        let heading = std::mem::take(&mut self.heading);
        // An empty lead is left out, unless a table belongs to it.
        let has_table = self
            .tables
            .last()
            .is_some_and(|t| t.section == self.sections.len());
        if !(text.is_empty() && heading.is_empty() && self.level == 0 && !has_table) {
            self.sections.push(Section {
                heading,
                level: self.level,
                text,
            });
        }
    }

    /// Render `src[start..end]` into `self.out`. `block` enables line-level
    /// constructs (headings, list markers); inline ranges (anchors, headings'
    /// own text) have none.
    fn render(&mut self, start: usize, end: usize, block: bool) {
        let b = self.src.as_bytes();
        let mut i = start;
        let mut line_start = block;
        // Text from `plain_from` to `i` is copied to the output lazily, in one
        // piece, before anything a handler writes.
        let mut plain_from = i;
        let mut finder = ByteFinder::new(&b[..end], SPECIAL);
        while i < end {
            if line_start {
                line_start = false;
                self.out.push_str(&self.src[plain_from..i]);
                plain_from = i;
                if let Some(next) = self.line_start(i, end) {
                    i = next.min(end);
                    plain_from = i;
                    continue;
                }
            }
            i = finder.next_from(i);
            if i >= end {
                break;
            }
            let c = b[i];
            self.out.push_str(&self.src[plain_from..i]);
            plain_from = i;
            let next = match c {
                b'{' | 0xEF => match self.pair_within(i, end) {
                    Some(pair) => Some(self.brace(i, pair)),
                    // A reference marker whose partner lies outside this
                    // range (a `<ref>` opened in a heading and closed on a
                    // later line) is not text, nor a tag boundary: drop it.
                    None => crate::tags::mark_at(b, i).map(|len| i + len),
                },
                b'[' => self.bracket(i, end),
                b'\'' => self.quotes(i, end),
                b'_' => magic_word(b, i, end),
                _ => {
                    line_start = block && c == b'\n';
                    None
                }
            };
            match next {
                Some(next) => {
                    i = next.min(end);
                    plain_from = i;
                }
                None => i += 1,
            }
        }
        self.out
            .push_str(&self.src[plain_from..end.max(plain_from)]);
    }

    /// Line-level markup at `i` (start of a line): returns where rendering
    /// continues if something was consumed.
    fn line_start(&mut self, i: usize, end: usize) -> Option<usize> {
        let b = self.src.as_bytes();
        match b[i] {
            // Headings are page structure: not in table cells.
            b'=' if self.depth == 0 => self.heading(i, end),
            b'*' | b'#' | b':' | b';' => {
                let markers = b[i..end].iter().take_while(|c| b"*#:;".contains(c)).count();
                // `:{|` is an indented table: leave the `{` for `render`.
                Some(i + markers)
            }
            b'-' if b[i..end].starts_with(b"----") => {
                Some(i + b[i..end].iter().take_while(|c| **c == b'-').count())
            }
            b' ' => {
                // A leading space makes a preformatted line; its text is prose.
                Some(i + 1)
            }
            _ => None,
        }
    }

    fn heading(&mut self, i: usize, end: usize) -> Option<usize> {
        let b = self.src.as_bytes();
        let line_end = memchr::memchr(b'\n', &b[i..end]).map_or(end, |e| i + e);
        let line = self.src[i..line_end].trim_end();
        let open = line.bytes().take_while(|c| *c == b'=').count();
        let close = line.bytes().rev().take_while(|c| *c == b'=').count();
        let level = open.min(close).min(6);
        if level == 0 || line.len() <= 2 * level {
            return None;
        }
        let inner_start = i + level;
        let inner_end = i + line.len() - level;
        // Headings are line-level markup, which only the page itself is
        // rendered with (nested ranges are inline), so no depth limit applies.
        debug_assert_eq!(self.depth, 0);
        self.finish_section();
        self.depth += 1;
        self.render(inner_start, inner_end, false);
        self.depth -= 1;
        self.heading = clean(&std::mem::take(&mut self.out));
        self.level = level as u8;
        Some(line_end)
    }

    /// A run of `'` at `i`: a single one is text; a longer run is bold or
    /// italic markup, of which only what MediaWiki keeps is text.
    fn quotes(&mut self, i: usize, end: usize) -> Option<usize> {
        let run = self.src.as_bytes()[i..end]
            .iter()
            .take_while(|c| **c == b'\'')
            .count();
        if run < 2 {
            return None;
        }
        let literal = self.quotes.literal(self.src, i, run);
        self.out.push_str(&self.src[i..i + literal]);
        Some(i + run)
    }

    /// A matched `{{`, `{{{` or `{|` at `i`.
    fn brace(&mut self, i: usize, pair: Pair) -> usize {
        match pair.kind {
            Kind::Template => {
                self.template_name(i + 2, pair.end - 2);
                pair.end
            }
            Kind::Table => self.table(i, pair.end),
            Kind::Ref => {
                // Reference text is not prose; links and templates inside
                // still count. The markers are three bytes each.
                if self.depth < MAX_DEPTH {
                    let saved = std::mem::take(&mut self.out);
                    self.depth += 1;
                    self.render(i + 3, pair.end - 3, false);
                    self.depth -= 1;
                    self.out = saved;
                }
                pair.end
            }
            Kind::Param | Kind::Link => pair.end,
        }
    }

    fn template_name(&mut self, start: usize, end: usize) {
        let inner = &self.src[start..end];
        let raw_name = &inner[..find::byte(b'|', inner).unwrap_or(inner.len())];
        if raw_name.contains(['{', '[', '<']) || crate::tags::has_marker(raw_name) {
            return; // the name is computed by nested markup: unknown
        }
        let raw = normalize_title(raw_name);
        let substitution = |prefix: &str| {
            ["subst", "safesubst", "msgnw"]
                .iter()
                .any(|w| prefix.eq_ignore_ascii_case(w))
        };
        let name = match raw.split_once(':') {
            None if MAGIC_VARIABLES.contains(&raw.as_ref()) => return,
            None => raw,
            Some((prefix, rest)) if prefix.eq_ignore_ascii_case("template") => {
                normalize_title(rest)
            }
            Some((prefix, rest)) if substitution(prefix) => match rest.split_once(':') {
                Some((p, r)) if p.eq_ignore_ascii_case("template") => normalize_title(r),
                _ => normalize_title(rest),
            },
            // Parser functions (`#if:`) and magic words (`DEFAULTSORT:`).
            Some(_) => return,
        };
        if !name.is_empty() && !name.starts_with('#') {
            insert_new(&mut self.templates, name);
        }
    }

    /// The pair opened at `i`, if it closes by `end`. A heading's text is
    /// rendered as a range of its own line, and a pair opened there but
    /// closed on a later line is literal text in the heading (rendering it
    /// would copy the lines after the heading into it, and they would then
    /// be rendered again after it).
    fn pair_within(&self, i: usize, end: usize) -> Option<Pair> {
        self.pairs.get(i).filter(|pair| pair.end <= end).copied()
    }

    /// A `[` at `i`: internal link, external link, or (`None`) a literal
    /// bracket.
    fn bracket(&mut self, i: usize, end: usize) -> Option<usize> {
        match self.pair_within(i, end) {
            Some(pair) if pair.kind == Kind::Link => self.link(i, pair.end),
            _ => self.external_link(i, end),
        }
    }

    /// The link `[[...]]` from `i` to `close_end`; `None` (the brackets are
    /// literal text) when its target holds `<nowiki>` or `<ref>` content,
    /// which is no title.
    fn link(&mut self, i: usize, close_end: usize) -> Option<usize> {
        let inner_start = i + 2;
        let inner_end = close_end - 2;
        let inner = &self.src[inner_start..inner_end];
        let pipe = find::byte(b'|', inner);
        let raw_target = &inner[..pipe.unwrap_or(inner.len())];
        if crate::tags::has_marker(raw_target) {
            return None;
        }
        let forced = raw_target.trim_start().starts_with(':');
        let target = normalize_title(raw_target.trim_start().trim_start_matches(':'));
        if !forced && let Some((prefix, rest)) = raw_target.split_once(':') {
            match self.names.classify(prefix) {
                Some(Namespace::Category) => {
                    let category = normalize_title(rest);
                    if !category.is_empty() {
                        insert_new(&mut self.categories, category);
                    }
                    return Some(close_end);
                }
                Some(Namespace::File) => return Some(close_end),
                // Interlanguage prefixes are lower case as written (`de:`).
                None if is_interlanguage(prefix) => return Some(close_end),
                None => {}
            }
        }
        // The link trail: letters glued after `]]` belong to the anchor.
        let trail = self.src[close_end..]
            .char_indices()
            .find(|(_, c)| !c.is_alphabetic())
            .map_or(self.src.len() - close_end, |(n, _)| n);
        let before = self.out.len();
        match pipe {
            Some(p) if self.depth < MAX_DEPTH && inner_start + p + 1 < inner_end => {
                self.depth += 1;
                self.render(inner_start + p + 1, inner_end, false);
                self.depth -= 1;
            }
            Some(_) => self
                .out
                .push_str(target.split_once(':').map_or(&target, |(_, r)| r)),
            None => self.out.push_str(raw_target.trim().trim_start_matches(':')),
        }
        self.out.push_str(&self.src[close_end..close_end + trail]);
        let anchor = clean(&self.out[before..]);
        if !target.is_empty() {
            self.links.push(Link {
                target: target.into_owned(),
                anchor,
            });
        }
        Some(close_end + trail)
    }

    /// `[url label]` on one line: the label is text, the URL is dropped.
    fn external_link(&mut self, i: usize, end: usize) -> Option<usize> {
        let rest = &self.src[i + 1..end];
        let starts_with_scheme = |scheme: &&str| {
            rest.as_bytes()
                .get(..scheme.len())
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme.as_bytes()))
        };
        if !URL_SCHEMES.iter().any(starts_with_scheme) {
            return None;
        }
        let line = &rest[..find::byte(b'\n', rest).unwrap_or(rest.len())];
        let close = find::byte(b']', line)?;
        let label_start = line[..close].find([' ', '\t']).map(|s| s + 1);
        if let Some(start) = label_start
            && self.depth < MAX_DEPTH
        {
            self.depth += 1;
            self.render(i + 1 + start, i + 1 + close, false);
            self.depth -= 1;
        }
        Some(i + 1 + close + 1)
    }
}

/// Behaviour switches like `__TOC__` or `__NOEDITSECTION__`.
fn magic_word(b: &[u8], i: usize, end: usize) -> Option<usize> {
    let rest = &b[i..end];
    if !rest.starts_with(b"__") {
        return None;
    }
    let word = rest[2..]
        .iter()
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    (word > 0 && rest[2 + word..].starts_with(b"__")).then_some(i + 2 + word + 2)
}

/// `de`, `fr`, `zh-yue`, `simple`: prefixes of interlanguage links.
fn is_interlanguage(prefix: &str) -> bool {
    let p = prefix.trim();
    let lowercase = p.bytes().all(|c| c.is_ascii_lowercase() || c == b'-');
    (lowercase && (2..=3).contains(&p.split('-').next().map_or(0, str::len))) || p == "simple"
}

/// MediaWiki title normalisation: underscores are spaces, whitespace is
/// collapsed, the first letter is upper case. Borrows `raw` (trimmed) when
/// it is already normal, as most link targets are; an ASCII title that only
/// starts with a lower-case letter, as most template names do, is copied
/// once with that letter changed.
pub fn normalize_title(raw: &str) -> Cow<'_, str> {
    // Surrounding whitespace only separates words, which the long way
    // drops: trimming it first keeps `{{cite web\n|...}}` on a fast path.
    let trimmed = raw.trim_ascii();
    match ascii_title_shape(trimmed.as_bytes()) {
        TitleShape::Normal => Cow::Borrowed(trimmed),
        TitleShape::LowerFirst => {
            let mut title = trimmed.to_owned();
            title[..1].make_ascii_uppercase();
            Cow::Owned(title)
        }
        TitleShape::Other => Cow::Owned(collapse_and_capitalise(raw)),
    }
}

/// Adds `name` to `names` unless it is already there; allocates only for a
/// name not seen before.
fn insert_new(names: &mut IndexSet<String>, name: Cow<'_, str>) {
    if !names.contains(name.as_ref()) {
        names.insert(name.into_owned());
    }
}

/// [`normalize_title`], the long way.
fn collapse_and_capitalise(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for word in raw
        .split(|c: char| c == '_' || c.is_whitespace())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    let mut chars = out.chars();
    match chars.next() {
        Some(first) if first.is_lowercase() => first.to_uppercase().chain(chars).collect(),
        _ => out,
    }
}

/// How far a title is from what [`normalize_title`] makes of it.
#[derive(Debug, PartialEq, Eq)]
enum TitleShape {
    /// ASCII, single spaces between words, no underscores or other
    /// whitespace, not starting with a lower-case letter: already normal.
    Normal,
    /// As `Normal`, but starting with a lower-case ASCII letter.
    LowerFirst,
    /// Anything else: empty, non-ASCII, or with spacing to collapse.
    Other,
}

fn ascii_title_shape(title: &[u8]) -> TitleShape {
    let (Some(first), Some(last)) = (title.first(), title.last()) else {
        return TitleShape::Other;
    };
    if *first == b' ' || *last == b' ' {
        return TitleShape::Other;
    }
    let mut after_space = false;
    for &c in title {
        let space = c == b' ';
        if (space && after_space) || c == b'_' || !c.is_ascii() || (b'\t'..=b'\r').contains(&c) {
            return TitleShape::Other;
        }
        after_space = space;
    }
    if first.is_ascii_lowercase() {
        TitleShape::LowerFirst
    } else {
        TitleShape::Normal
    }
}

/// Bytes that end a run of plain text in [`clean`]: whitespace other than
/// spaces, and the lead bytes of U+00A0 (no-break space) and of protected
/// characters. (Spaces end a run only when doubled or trailing.)
const CLEAN_SPECIAL: [u8; 6] = [b'\n', b'\t', b'\r', 0xC2, 0xEF, b'\n'];

/// Two spaces: where a run of plain text in [`clean`] stops. Built once: a
/// searcher's set-up costs more than most of the short texts (link anchors,
/// headings) it is used on.
static DOUBLE_SPACE: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"  "));

/// Final text clean-up: decode entities, restore protected characters,
/// collapse whitespace within lines, turn blank-line runs into one paragraph
/// break, trim. One pass over the bytes; plain runs are copied whole.
pub fn clean(raw: &str) -> String {
    let decoded = if find::byte(b'&', raw).is_some() {
        html_escape::decode_html_entities(raw)
    } else {
        Cow::Borrowed(raw)
    };
    let b = decoded.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut pending_space = false;
    let mut newlines = 0u32;
    let mut finder = ByteFinder::new(b, CLEAN_SPECIAL);
    let mut i = 0;
    while i < b.len() {
        let (text, next): (&[u8], usize) = match b[i] {
            b'\n' => {
                newlines += u32::from(!out.is_empty());
                pending_space = false;
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                pending_space = !out.is_empty() && newlines == 0;
                i += 1;
                continue;
            }
            0xC2 if b.get(i + 1) == Some(&0xA0) => {
                pending_space = !out.is_empty() && newlines == 0;
                i += 2;
                continue;
            }
            0xEF if let Some(original) = crate::tags::protected_at(b, i) => (original, i + 3),
            _ => {
                // A run of plain text, copied whole: it starts at a character
                // boundary and stops only before ASCII or a lead byte, so it
                // holds whole characters. Single spaces between words are
                // already clean, so the run goes on through them; it stops
                // at two spaces, and trailing spaces are left to the arms
                // above (they collapse, or vanish before a line break).
                let limit = finder.next_from(i + 1);
                let mut end = DOUBLE_SPACE.find(&b[i..limit]).map_or(limit, |at| i + at);
                while b[end - 1] == b' ' {
                    end -= 1;
                }
                (&b[i..end], end)
            }
        };
        if newlines >= 2 {
            out.extend_from_slice(b"\n\n");
        } else if newlines == 1 {
            out.push(b'\n');
        } else if pending_space {
            out.push(b' ');
        }
        newlines = 0;
        pending_space = false;
        out.extend_from_slice(text);
        i = next;
    }
    String::from_utf8(out).expect("whole UTF-8 characters were copied")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_collapses_whitespace_and_keeps_paragraphs() {
        assert_eq!(clean("a  b \n c\t\td \u{a0} e  "), "a b\nc d e");
        assert_eq!(
            clean("  one two \n\n\n three &amp; four"),
            "one two\n\nthree & four"
        );
        assert_eq!(clean("x \u{a9} y"), "x \u{a9} y");
    }

    #[test]
    fn titles_are_normalised() {
        assert_eq!(
            normalize_title("  main_page  of\tthe  wiki "),
            "Main page of the wiki"
        );
        assert_eq!(normalize_title("Already Normal"), "Already Normal");
        assert_eq!(normalize_title("élan"), "Élan");
        assert_eq!(normalize_title(""), "");
        assert_eq!(normalize_title("cite web\n"), "Cite web");
        assert!(matches!(
            normalize_title(" Paris\n"),
            Cow::Borrowed("Paris")
        ));
        assert_eq!(ascii_title_shape(b"sfn"), TitleShape::LowerFirst);
        assert_eq!(ascii_title_shape(b"a  b"), TitleShape::Other);
    }

    proptest::proptest! {
        #[test]
        fn the_fast_paths_agree_with_the_long_way(
            title in "[a-zA-Z _\t\n.\u{e9}]{0,12}"
        ) {
            proptest::prop_assert_eq!(normalize_title(&title), collapse_and_capitalise(&title));
        }
    }
}
