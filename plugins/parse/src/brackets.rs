//! Pass 2: matching `{{ }}`, `{{{ }}}`, `[[ ]]` and `{| |}` in one stack pass.
//!
//! The result maps each opener that has a partner to the position just after
//! its closer. Openers without a partner are absent from the map and are
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

use std::collections::HashMap;

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
}

impl Open {
    fn slot(&self) -> usize {
        match self {
            Open::Braces { .. } => 0,
            Open::Link { .. } => 1,
            Open::Table { .. } => 2,
        }
    }

    fn pos(&self) -> usize {
        match self {
            Open::Braces { pos, .. } | Open::Link { pos } | Open::Table { pos } => *pos,
        }
    }
}

/// Opener position -> matched pair.
pub type Pairs = HashMap<usize, Pair>;

/// Match every pair in `text`.
pub fn match_pairs(text: &str) -> Pairs {
    let b = text.as_bytes();
    let mut pairs = Pairs::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut open_counts = [0usize; 3];
    let mut i = 0;
    let mut line_start = true;
    while i < b.len() {
        let c = b[i];
        match c {
            b'{' => {
                let run = run_len(b, i, b'{');
                if run == 1 && line_start && b.get(i + 1) == Some(&b'|') {
                    stack.push(Open::Table { pos: i });
                    open_counts[2] += 1;
                    i += 2;
                } else {
                    if run >= 2 {
                        stack.push(Open::Braces { pos: i, count: run });
                        open_counts[0] += 1;
                    }
                    i += run;
                }
            }
            b'}' => {
                let run = run_len(b, i, b'}');
                close_braces(&mut stack, &mut open_counts, &mut pairs, i, run);
                i += run;
            }
            b'[' => {
                let run = run_len(b, i, b'[');
                if run >= 2 {
                    stack.push(Open::Link { pos: i + run - 2 });
                    open_counts[1] += 1;
                }
                i += run;
            }
            b']' => {
                let run = run_len(b, i, b']');
                if run >= 2
                    && pop_to(&mut stack, &mut open_counts, 1)
                    && let Some(Open::Link { pos }) = stack.pop()
                {
                    open_counts[1] -= 1;
                    let end = i + 2;
                    pairs.insert(
                        pos,
                        Pair {
                            kind: Kind::Link,
                            end,
                        },
                    );
                }
                i += run;
            }
            b'|' if line_start && b.get(i + 1) == Some(&b'}') => {
                if pop_to(&mut stack, &mut open_counts, 2)
                    && let Some(Open::Table { pos }) = stack.pop()
                {
                    open_counts[2] -= 1;
                    let end = i + 2;
                    pairs.insert(
                        pos,
                        Pair {
                            kind: Kind::Table,
                            end,
                        },
                    );
                }
                i += 2;
            }
            _ => i += 1,
        }
        // Tables open and close at the start of a line, after optional
        // indentation (`:{|` is an indented table).
        line_start = match c {
            b'\n' => true,
            b' ' | b'\t' | b':' => line_start,
            _ => false,
        };
    }
    pairs
}

fn run_len(b: &[u8], i: usize, c: u8) -> usize {
    b[i..].iter().take_while(|x| **x == c).count()
}

/// Pop entries above the innermost open entry of `slot`; returns whether
/// one exists (then it is on top of the stack).
fn pop_to(stack: &mut Vec<Open>, open_counts: &mut [usize; 3], slot: usize) -> bool {
    if open_counts[slot] == 0 {
        return false;
    }
    while let Some(top) = stack.last() {
        if top.slot() == slot {
            return true;
        }
        open_counts[top.slot()] -= 1;
        stack.pop();
    }
    false
}

/// Close the innermost open link or table (`kind`) with a closer ending at
/// `end`, if one is open.
fn close_single(
    stack: &mut Vec<Open>,
    open_counts: &mut [usize; 3],
    pairs: &mut Pairs,
    kind: Kind,
    end: usize,
) {
    let slot = if kind == Kind::Link { 1 } else { 2 };
    if pop_to(stack, open_counts, slot)
        && let Some(open) = stack.pop()
    {
        open_counts[slot] -= 1;
        pairs.insert(open.pos(), Pair { kind, end });
    }
}

fn close_braces(
    stack: &mut Vec<Open>,
    open_counts: &mut [usize; 3],
    pairs: &mut Pairs,
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
        pairs.insert(
            *pos + *count - take,
            Pair {
                kind,
                end: closer + take,
            },
        );
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
        let mut v: Vec<_> = match_pairs(text)
            .into_iter()
            .map(|(pos, p)| (pos, p.kind, p.end))
            .collect();
        v.sort_by_key(|x| x.0);
        v
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
    fn unbalanced_openers_stay_literal() {
        assert_eq!(kinds("{{a [[b]] c"), [(4, Kind::Link, 9)]);
        assert_eq!(kinds("a}} b]] c|}"), []);
        assert_eq!(kinds("{{a [[b }}"), [(0, Kind::Template, 10)]);
        assert_eq!(kinds("[[[a]]]"), [(1, Kind::Link, 6)]);
    }

    #[test]
    fn pathological_input_is_linear() {
        let input = "[[{{".repeat(100_000) + &"}}".repeat(100_000);
        assert_eq!(match_pairs(&input).len(), 100_000);
    }
}
