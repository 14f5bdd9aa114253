//! Tables: a matched `{| ... |}` (HTML tables arrive as such too, rewritten
//! by pass 1) into a [`Table`]: caption, header cells and rows of cell text.
//!
//! The grammar is MediaWiki's (`Parser::handleTables`), line by line after
//! the first (the table's attributes): `|+` starts the caption, `|-` a row,
//! `!` header cells (separated by `!!` or `||`), `|` data cells (separated
//! by `||`), each cell with an optional attribute part ended by a single
//! `|`; any other line continues the caption or cell before it (text before
//! the first cell is text of the page, as MediaWiki moves it out of the
//! table). Line breaks and separators count only outside matched pairs, so
//! a `|` in a link or template, or a line break inside one, is no markup.
//! A table nested in a cell is a table of its own, after its parent.
//!
//! Cell text is rendered as any text is (its links are links of the page)
//! into the cell, not into the page's text, unless the stage's `table_text`
//! asks for it: then each table is a paragraph of the text, one line per
//! row (caption first), its cells separated by spaces.

use super::{MAX_DEPTH, Renderer, clean};
use crate::document::Table;

/// What the text being rendered belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Text before the first cell: the page's text.
    Outside,
    Caption,
    Cell {
        header: bool,
    },
}

/// A table being read.
#[derive(Debug)]
struct Builder {
    table: Table,
    target: Target,
    row: Vec<String>,
    /// Whether every cell of `row` so far is a header cell.
    row_is_header: bool,
    outside: String,
}

impl Renderer<'_> {
    /// The table whose `{|` is at `i` and whose `|}` ends at `end`; returns
    /// `end`.
    pub(super) fn table(&mut self, i: usize, end: usize) -> usize {
        if self.depth >= MAX_DEPTH {
            return end;
        }
        let index = self.tables.len();
        self.tables.push(Table::default());
        let page_text = std::mem::take(&mut self.out);
        self.depth += 1;
        let mut builder = Builder {
            table: Table {
                section: self.sections.len(),
                ..Table::default()
            },
            target: Target::Outside,
            row: Vec::new(),
            row_is_header: true,
            outside: String::new(),
        };
        let body_end = end - 2;
        let mut newline = self.line_end(i + 2, body_end);
        while newline < body_end {
            let start = newline + 1;
            let line_end = self.line_end(start, body_end);
            self.table_line(start, line_end, &mut builder);
            newline = line_end;
        }
        self.finish_cell(&mut builder);
        finish_row(&mut builder);
        self.depth -= 1;
        self.out = page_text;
        self.out.push('\n');
        self.out.push_str(&builder.outside);
        if self.table_text {
            self.push_table_text(&builder.table);
        }
        self.tables[index] = builder.table;
        end
    }

    /// One line of a table's body, `start..end` (without its line break).
    fn table_line(&mut self, start: usize, end: usize, builder: &mut Builder) {
        let b = self.src.as_bytes();
        let at = start
            + b[start..end]
                .iter()
                .take_while(|c| matches!(c, b' ' | b'\t'))
                .count();
        match (
            b.get(at).filter(|_| at < end),
            b.get(at + 1).filter(|_| at + 1 < end),
        ) {
            (Some(b'|'), Some(b'+')) => {
                self.finish_cell(builder);
                builder.target = Target::Caption;
                let content = self.after_attributes(at + 2, end);
                self.render(content, end, true);
            }
            (Some(b'|'), Some(b'-')) => {
                self.finish_cell(builder);
                finish_row(builder);
            }
            (Some(&marker @ (b'|' | b'!')), _) => {
                let header = marker == b'!';
                let mut cell_start = at + 1;
                loop {
                    self.finish_cell(builder);
                    builder.target = Target::Cell { header };
                    let separator = self.scan(cell_start, end, |b, p| {
                        (b[p] == b'|' || (header && b[p] == b'!')) && b.get(p + 1) == Some(&b[p])
                    });
                    let cell_end = separator.unwrap_or(end);
                    let content = self.after_attributes(cell_start, cell_end);
                    self.render(content, cell_end, true);
                    match separator {
                        Some(p) => cell_start = p + 2,
                        None => break,
                    }
                }
            }
            _ => {
                // A continuation line: the caption's or cell's next line.
                self.out.push('\n');
                self.render(start, end, true);
            }
        }
    }

    /// Where a cell's (or caption's) content starts: after its attribute
    /// part, if a single `|` ends one.
    fn after_attributes(&self, start: usize, end: usize) -> usize {
        self.scan(start, end, |b, p| b[p] == b'|')
            .map_or(start, |p| p + 1)
    }

    /// The position of the next line break in `from..to` outside matched
    /// pairs, or `to`.
    fn line_end(&self, from: usize, to: usize) -> usize {
        self.scan(from, to, |b, p| b[p] == b'\n').unwrap_or(to)
    }

    /// The first position in `from..to`, outside pairs matched within it,
    /// where `found` holds.
    fn scan(&self, from: usize, to: usize, found: impl Fn(&[u8], usize) -> bool) -> Option<usize> {
        let b = self.src.as_bytes();
        let mut p = from;
        while p < to {
            if matches!(b[p], b'{' | b'[' | 0xEF)
                && let Some(pair) = self.pair_within(p, to)
            {
                p = pair.end;
                continue;
            }
            if found(b, p) {
                return Some(p);
            }
            p += 1;
        }
        None
    }

    /// The text rendered since the last cell ended goes to its caption,
    /// cell or the page.
    fn finish_cell(&mut self, builder: &mut Builder) {
        let text = clean(&std::mem::take(&mut self.out));
        match builder.target {
            Target::Outside if !text.is_empty() => {
                builder.outside.push_str(&text);
                builder.outside.push('\n');
            }
            Target::Outside => {}
            Target::Caption => {
                if !text.is_empty() {
                    builder.table.caption = Some(text);
                }
            }
            Target::Cell { header } => {
                builder.row.push(text);
                builder.row_is_header &= header;
            }
        }
        builder.target = Target::Outside;
    }

    /// The table as a paragraph of the page's text.
    fn push_table_text(&mut self, table: &Table) {
        self.out.push_str("\n\n");
        let lines = table
            .caption
            .iter()
            .map(|caption| caption.to_owned())
            .chain(
                std::iter::once(&table.header)
                    .chain(&table.rows)
                    .filter(|row| row.iter().any(|cell| !cell.is_empty()))
                    .map(|row| join_cells(row)),
            );
        for line in lines {
            self.out.push_str(&line);
            self.out.push('\n');
        }
        self.out.push('\n');
    }
}

/// The cells of a row (empty ones left out) on one line.
fn join_cells(row: &[String]) -> String {
    row.iter()
        .filter(|cell| !cell.is_empty())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The row being read is complete.
fn finish_row(builder: &mut Builder) {
    let row = std::mem::take(&mut builder.row);
    let is_header = std::mem::replace(&mut builder.row_is_header, true);
    // A row of images or of empty cells holds no data.
    if row.iter().all(String::is_empty) {
        return;
    }
    let table = &mut builder.table;
    if is_header && table.header.is_empty() && table.rows.is_empty() {
        table.header = row;
    } else {
        table.rows.push(row);
    }
}

#[cfg(test)]
mod tests {
    use crate::{Options, Table, parse_with};

    fn tables(wikitext: &str) -> Vec<Table> {
        parse_with(&Options::default(), None, wikitext).tables
    }

    fn strings(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn caption_header_and_rows() {
        let table = &tables(
            "Intro.\n{| class=\"wikitable\"\n|+ style=\"x\" | Results [[2020]]\n\
             ! Party !! Seats\n|-\n| [[Left Party|Left]] || 12\n|-\n\
             | style=\"a\" | Right || {{n|3}}4\n|}\nAfter.",
        )[0];
        assert_eq!(table.caption.as_deref(), Some("Results 2020"));
        assert_eq!(table.header, strings(&["Party", "Seats"]));
        assert_eq!(
            table.rows,
            [strings(&["Left", "12"]), strings(&["Right", "4"])]
        );
    }

    #[test]
    fn cells_on_their_own_lines_and_multi_line_cells() {
        let table = &tables("{|\n!Name\n!Note\n|-\n|A\n|first line\nsecond line\n|}")[0];
        assert_eq!(table.header, strings(&["Name", "Note"]));
        assert_eq!(table.rows, [strings(&["A", "first line\nsecond line"])]);
    }

    #[test]
    fn row_headers_stay_in_their_rows() {
        let table = &tables("{|\n|-\n! scope=row | 1990\n| Paris\n|-\n! 1991 || Rome\n|}")[0];
        assert!(table.header.is_empty());
        assert_eq!(
            table.rows,
            [strings(&["1990", "Paris"]), strings(&["1991", "Rome"])]
        );
    }

    #[test]
    fn nested_tables_are_tables_of_their_own() {
        let found = tables("{|\n| outer\n{|\n| inner\n|}\n| next\n|}");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].rows, [strings(&["outer", "next"])]);
        assert_eq!(found[1].rows, [strings(&["inner"])]);
    }

    #[test]
    fn html_tables_read_like_wikitables() {
        let table = &tables(
            "<table class=x><caption>C</caption><tr><th>H1</th><th>H2</th></tr>\
             <tr><td style=\"a\">a | b</td><td>''c''</td></tr></table>",
        )[0];
        assert_eq!(table.caption.as_deref(), Some("C"));
        assert_eq!(table.header, strings(&["H1", "H2"]));
        assert_eq!(table.rows, [strings(&["a | b", "c"])]);
    }

    #[test]
    fn tables_know_their_section_and_stay_out_of_the_text_by_default() {
        let doc = parse_with(
            &Options::default(),
            None,
            "{|\n| infobox\n|}\nLead.\n== History ==\nText.\n{|\n| 1\n|}",
        );
        assert_eq!(doc.text, "Lead.\n\nHistory\n\nText.");
        let sections: Vec<_> = doc.tables.iter().map(|t| t.section).collect();
        assert_eq!(sections, [0, 1]);
        assert_eq!(doc.sections[1].heading, "History");
    }

    #[test]
    fn table_text_puts_each_table_in_the_text_as_a_paragraph() {
        let options = Options {
            table_text: true,
            ..Options::default()
        };
        let doc = parse_with(
            &options,
            None,
            "Before.\n{|\n|+ Cap\n! A !! B\n|-\n| 1 || 2\n|}\nAfter.",
        );
        assert_eq!(doc.text, "Before.\n\nCap\nA B\n1 2\n\nAfter.");
    }

    #[test]
    fn text_before_the_first_cell_is_page_text() {
        let doc = parse_with(&Options::default(), None, "{|\nstray words\n| cell\n|}");
        assert_eq!(doc.text, "stray words");
        assert_eq!(doc.tables[0].rows, [strings(&["cell"])]);
    }
}
