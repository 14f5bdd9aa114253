//! Pass 2: matching `{{ }}`, `{{{ }}}`, `[[ ]]` and `{| |}` in one stack pass.
//!
//! The result maps each opener that has a partner to the position just after
//! its closer ([`Pairs`]: a vector sorted by opener, looked up by binary
//! search). Openers without a partner are absent from the map and are
//! rendered as literal text, which is how MediaWiki shows unbalanced markup.
//!
//! Brace runs follow MediaWiki's preprocessor rule: a run of `{` is one
//! opener with a count; a run of `}` closes from the innermost (rightmost)
//! braces, taking three (a template parameter) when both sides have at least
//! three, otherwise two (a template).
//!
//! Linear time: every opener is pushed once and popped at most once, and a
//! closer only searches the stack when an opener of its kind is open
//! (per-kind counts), popping everything above it (unmatched, literal).

use crate::find::ByteFinder;
use crate::tags::{REF_CLOSE_UTF8 as REF_CLOSE, REF_OPEN_UTF8 as REF_OPEN};

/// What a matched pair encloses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `{{name|args}}`
    Template,
    /// `{{{name|default}}}`
    Param,
    /// `[[target|anchor]]`
    Link,
    /// `{| ... |}`
    Table,
    /// The content of a `<ref>` (between the pass-1 markers). Pairs never
    /// cross its boundary: it is parsed as a document of its own.
    Ref,
}

/// A matched pair: its kind and the position just after its closer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// What it is.
    pub kind: Kind,
    /// Position after the closing delimiter.
    pub end: usize,
}

#[derive(Debug)]
enum Open {
    Braces { pos: usize, count: usize },
    Link { pos: usize },
    Table { pos: usize },
    Ref { pos: usize },
}

impl Open {
    /// Index into a scope's open counts (refs are scopes, not counted).
    fn slot(&self) -> Option<usize> {
        match self {
            Open::Braces { .. } => Some(0),
            Open::Link { .. } => Some(1),
            Open::Table { .. } => Some(2),
            Open::Ref { .. } => None,
        }
    }

    fn pos(&self) -> usize {
        match self {
            Open::Braces { pos, .. }
            | Open::Link { pos }
            | Open::Table { pos }
            | Open::Ref { pos } => *pos,
        }
    }
}

/// Opener position -> matched pair.
#[derive(Debug, Default)]
pub struct Pairs {
    /// Sorted by opener position; each position at most once.
    by_opener: Vec<(usize, Pair)>,
}

impl Pairs {
    /// The pair whose opener is at `opener`, if it has a partner.
    pub fn get(&self, opener: usize) -> Option<&Pair> {
        self.by_opener
            .binary_search_by_key(&opener, |(pos, _)| *pos)
            .ok()
            .map(|at| &self.by_opener[at].1)
    }

    /// Every matched pair, by opener position.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Pair)> + '_ {
        self.by_opener.iter().copied()
    }

    fn from_unsorted(mut by_opener: Vec<(usize, Pair)>) -> Self {
        by_opener.sort_unstable_by_key(|(pos, _)| *pos);
        debug_assert!(
            by_opener.windows(2).all(|w| w[0].0 < w[1].0),
            "an opener is matched once"
        );
        Pairs { by_opener }
    }
}

/// Match every pair in `text`.
pub fn match_pairs(text: &str) -> Pairs {
    let b = text.as_bytes();
    let mut pairs: Vec<(usize, Pair)> = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    // Open openers per kind, one frame per ref scope (the last is current),
    // so a closer never matches an opener outside its scope.
    let mut scopes: Vec<[usize; 3]> = vec![[0; 3]];
    // The bytes the matcher acts on (0xEF leads the ref markers); plain text
    // between them is skipped.
    let mut finder = ByteFinder::new(b, [b'{', b'}', b'[', b']', b'|', 0xEF]);
    let mut i = 0;
    loop {
        i = finder.next_from(i);
        if i >= b.len() {
            break;
        }
        match b[i] {
            b'{' => {
                let run = run_len(b, i, b'{');
                if run == 1 && b.get(i + 1) == Some(&b'|') && at_line_start(b, i) {
                    stack.push(Open::Table { pos: i });
                    scope(&mut scopes)[2] += 1;
                    i += 2;
                } else {
                    if run >= 2 {
                        stack.push(Open::Braces { pos: i, count: run });
                        scope(&mut scopes)[0] += 1;
                    }
                    i += run;
                }
            }
            b'}' => {
                let run = run_len(b, i, b'}');
                close_braces(&mut stack, scope(&mut scopes), &mut pairs, i, run);
                i += run;
            }
            b'[' => {
                let run = run_len(b, i, b'[');
                if run >= 2 {
                    stack.push(Open::Link { pos: i + run - 2 });
                    scope(&mut scopes)[1] += 1;
                }
                i += run;
            }
            b']' => {
                // Each `]]` of the run closes one open link, innermost
                // first: `]]]]` ends a link and the file link whose caption
                // holds it (`[[File:x.jpg|A [[dog]]]]`).
                let run = run_len(b, i, b']');
                let mut end = i + 2;
                while end <= i + run
                    && close_single(&mut stack, scope(&mut scopes), &mut pairs, Kind::Link, end)
                {
                    end += 2;
                }
                i += run;
            }
            0xEF if b[i..].starts_with(&REF_OPEN) => {
                stack.push(Open::Ref { pos: i });
                scopes.push([0; 3]);
                i += REF_OPEN.len();
            }
            0xEF if b[i..].starts_with(&REF_CLOSE) => {
                // Everything still open in the scope is unmatched (literal).
                while let Some(open) = stack.pop() {
                    if let Open::Ref { pos } = open {
                        scopes.pop();
                        let end = i + REF_CLOSE.len();
                        pairs.push((
                            pos,
                            Pair {
                                kind: Kind::Ref,
                                end,
                            },
                        ));
                        break;
                    }
                }
                i += REF_CLOSE.len();
            }
            0xEF => i += 1,
            _ => {
                // `|`: only `|}` at the start of a line means anything here.
                if b.get(i + 1) == Some(&b'}') && at_line_start(b, i) {
                    close_single(
                        &mut stack,
                        scope(&mut scopes),
                        &mut pairs,
                        Kind::Table,
                        i + 2,
                    );
                    i += 2;
                } else {
                    i += 1;
                }
            }
        }
    }
    Pairs::from_unsorted(pairs)
}

/// The open counts of the innermost scope.
fn scope(scopes: &mut [[usize; 3]]) -> &mut [usize; 3] {
    scopes
        .last_mut()
        .expect("the document scope is never popped")
}

/// Tables open and close at the start of a line, after optional
/// indentation (`:{|` is an indented table).
fn at_line_start(b: &[u8], i: usize) -> bool {
    let indent = b[..i]
        .iter()
        .rev()
        .take_while(|c| matches!(c, b' ' | b'\t' | b':'))
        .count();
    i == indent || b[i - indent - 1] == b'\n'
}

fn run_len(b: &[u8], i: usize, c: u8) -> usize {
    b[i..].iter().take_while(|x| **x == c).count()
}

/// Pop entries above the innermost open entry of `slot` in the current
/// scope; returns whether one exists (then it is on top of the stack).
fn pop_to(stack: &mut Vec<Open>, open_counts: &mut [usize; 3], slot: usize) -> bool {
    if open_counts[slot] == 0 {
        return false;
    }
    while let Some(top) = stack.last() {
        match top.slot() {
            Some(s) if s == slot => return true,
            Some(s) => open_counts[s] -= 1,
            None => unreachable!("a scope with an open entry has it above its marker"),
        }
        stack.pop();
    }
    false
}

/// Close the innermost open link or table (`kind`) with a closer ending at
/// `end`, if one is open; returns whether one was.
fn close_single(
    stack: &mut Vec<Open>,
    open_counts: &mut [usize; 3],
    pairs: &mut Vec<(usize, Pair)>,
    kind: Kind,
    end: usize,
) -> bool {
    let slot = if kind == Kind::Link { 1 } else { 2 };
    if pop_to(stack, open_counts, slot)
        && let Some(open) = stack.pop()
    {
        open_counts[slot] -= 1;
        pairs.push((open.pos(), Pair { kind, end }));
        return true;
    }
    false
}

fn close_braces(
    stack: &mut Vec<Open>,
    open_counts: &mut [usize; 3],
    pairs: &mut Vec<(usize, Pair)>,
    at: usize,
    run: usize,
) {
    let mut remaining = run;
    let mut closer = at;
    while remaining >= 2 && pop_to(stack, open_counts, 0) {
        let Some(Open::Braces { pos, count }) = stack.last_mut() else {
            unreachable!("pop_to leaves a brace opener on top");
        };
        let take = if remaining >= 3 && *count >= 3 { 3 } else { 2 };
        let kind = if take == 3 {
            Kind::Param
        } else {
            Kind::Template
        };
        pairs.push((
            *pos + *count - take,
            Pair {
                kind,
                end: closer + take,
            },
        ));
        *count -= take;
        remaining -= take;
        closer += take;
        if *count < 2 {
            stack.pop();
            open_counts[0] -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(usize, Kind, usize)> {
        match_pairs(text)
            .iter()
            .map(|(pos, p)| (pos, p.kind, p.end))
            .collect()
    }

    #[test]
    fn nested_templates_links_and_tables() {
        assert_eq!(
            kinds("{{a|{{b}}|[[c]]}}"),
            [
                (0, Kind::Template, 17),
                (4, Kind::Template, 9),
                (10, Kind::Link, 15)
            ]
        );
        assert_eq!(kinds("{|\n|x\n|}"), [(0, Kind::Table, 8)]);
        assert_eq!(kinds("{{{p|d}}}"), [(0, Kind::Param, 9)]);
        assert_eq!(
            kinds("{{{{{x}}}}}"),
            [(0, Kind::Template, 11), (2, Kind::Param, 9)]
        );
    }

    #[test]
    fn a_run_of_closers_ends_one_link_per_pair() {
        // A file link whose caption ends in a link: `]]]]` closes both.
        assert_eq!(
            kinds("[[File:x.jpg|A [[dog]]]] b"),
            [(0, Kind::Link, 24), (15, Kind::Link, 22)]
        );
        // An odd `]` is left over; a second `]]` with no link open is literal.
        assert_eq!(kinds("[[a]]]"), [(0, Kind::Link, 5)]);
        assert_eq!(kinds("[[a]]]]"), [(0, Kind::Link, 5)]);
    }

    #[test]
    fn unbalanced_openers_stay_literal() {
        assert_eq!(kinds("{{a [[b]] c"), [(4, Kind::Link, 9)]);
        assert_eq!(kinds("a}} b]] c|}"), []);
        assert_eq!(kinds("{{a [[b }}"), [(0, Kind::Template, 10)]);
        assert_eq!(kinds("[[[a]]]"), [(1, Kind::Link, 6)]);
    }

    #[test]
    fn pairs_never_cross_a_ref_scope() {
        let text = "{{a \u{F7F0}}} [[b]] {{\u{F7F1} }}";
        let got = kinds(text);
        let template = got
            .iter()
            .find(|p| p.1 == Kind::Template)
            .expect("the outer template");
        assert_eq!((template.0, template.2), (0, text.len()));
        assert!(got.iter().any(|p| p.1 == Kind::Link));
        assert!(got.iter().any(|p| p.1 == Kind::Ref));
    }

    #[test]
    fn pathological_input_is_linear() {
        let input = "[[{{".repeat(100_000) + &"}}".repeat(100_000);
        assert_eq!(match_pairs(&input).iter().count(), 100_000);
    }
}
