//! The structured document the parse plugin emits
//! (`application/vnd.weir.parsed+json`).
//!
//! The JSON is written by [`Document::to_json`], byte for byte what
//! `serde_json` writes for the derived `Serialize` (tested), but with
//! [`write_json_string`] for the strings: a page's text appears twice (whole
//! and by section), and escaping it byte by byte was the largest single cost
//! of this plugin in the sandbox.

use serde::{Deserialize, Serialize};
use weir_sdk::write_json_string;

/// A parsed wiki page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Page title, from the record's `title` metadata.
    pub title: Option<String>,
    /// Target page when the page is a redirect (`#REDIRECT [[Target]]`).
    pub redirect: Option<String>,
    /// The plain text: section headings and texts, separated by blank lines.
    pub text: String,
    /// Sections in page order; the lead section has level 0 and no heading.
    pub sections: Vec<Section>,
    /// Internal links in page order (duplicates kept: they are link counts).
    pub links: Vec<Link>,
    /// Categories, unique, in page order.
    pub categories: Vec<String>,
    /// Names of templates used, unique, in page order.
    pub templates: Vec<String>,
    /// Tables (wikitables and HTML tables), in page order of their start;
    /// a table nested in a cell is a table of its own, after its parent.
    pub tables: Vec<Table>,
}

/// A table: its caption, header cells and rows of cell text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Index in [`Document::sections`] of the section the table is in.
    pub section: usize,
    /// The caption (`|+`, `<caption>`), if any.
    pub caption: Option<String>,
    /// The header cells: the first row, when every cell of it is a header
    /// cell (`!`, `<th>`) and it comes before any other row. Otherwise
    /// empty, and header cells elsewhere (row headers) are cells of their
    /// rows.
    pub header: Vec<String>,
    /// The other rows, each a list of cell texts (rows whose cells are all
    /// empty, such as rows of images, left out).
    pub rows: Vec<Vec<String>>,
}

/// One section: a heading and the plain text under it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Heading text (empty for the lead section).
    pub heading: String,
    /// Heading level: 2 for `== h ==`, ..., 0 for the lead.
    pub level: u8,
    /// Plain text of the section (paragraphs separated by blank lines).
    pub text: String,
}

/// An internal link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Normalised target title (may carry a `#fragment`).
    pub target: String,
    /// The text shown for the link.
    pub anchor: String,
}

impl Document {
    /// The document as JSON, with the fields in declaration order.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 * self.text.len() + 1024);
        out.extend_from_slice(b"{\"title\":");
        write_optional(&mut out, self.title.as_deref());
        out.extend_from_slice(b",\"redirect\":");
        write_optional(&mut out, self.redirect.as_deref());
        out.extend_from_slice(b",\"text\":");
        write_json_string(&mut out, &self.text);
        out.extend_from_slice(b",\"sections\":");
        write_array(&mut out, &self.sections, |out, section| {
            out.extend_from_slice(b"{\"heading\":");
            write_json_string(out, &section.heading);
            out.extend_from_slice(format!(",\"level\":{},\"text\":", section.level).as_bytes());
            write_json_string(out, &section.text);
            out.push(b'}');
        });
        out.extend_from_slice(b",\"links\":");
        write_array(&mut out, &self.links, |out, link| {
            out.extend_from_slice(b"{\"target\":");
            write_json_string(out, &link.target);
            out.extend_from_slice(b",\"anchor\":");
            write_json_string(out, &link.anchor);
            out.push(b'}');
        });
        out.extend_from_slice(b",\"categories\":");
        write_strings(&mut out, &self.categories);
        out.extend_from_slice(b",\"templates\":");
        write_strings(&mut out, &self.templates);
        out.extend_from_slice(b",\"tables\":");
        write_array(&mut out, &self.tables, |out, table| {
            out.extend_from_slice(
                format!("{{\"section\":{},\"caption\":", table.section).as_bytes(),
            );
            write_optional(out, table.caption.as_deref());
            out.extend_from_slice(b",\"header\":");
            write_strings(out, &table.header);
            out.extend_from_slice(b",\"rows\":");
            write_array(out, &table.rows, |out, row| write_strings(out, row));
            out.push(b'}');
        });
        out.push(b'}');
        out
    }
}

fn write_optional(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(value) => write_json_string(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

fn write_strings(out: &mut Vec<u8>, strings: &[String]) {
    write_array(out, strings, |out, s| write_json_string(out, s));
}

fn write_array<T>(out: &mut Vec<u8>, items: &[T], mut write: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_json_writes_what_serde_json_writes() {
        let document = Document {
            title: Some("A \"quoted\" title".into()),
            redirect: None,
            text: "Lead.\n\nHistory\n\nTabs\tand \\ and \u{1}".into(),
            sections: vec![
                Section {
                    heading: String::new(),
                    level: 0,
                    text: "Lead.".into(),
                },
                Section {
                    heading: "History".into(),
                    level: 2,
                    text: "Tabs\tand \\ and \u{1}".into(),
                },
            ],
            links: vec![Link {
                target: "Main Page#Top".into(),
                anchor: "main".into(),
            }],
            categories: vec!["Examples".into()],
            templates: vec!["Infobox".into(), "Cite web".into()],
            tables: vec![
                Table {
                    section: 1,
                    caption: Some("Votes \"cast\"".into()),
                    header: vec!["Party".into(), "Seats".into()],
                    rows: vec![vec!["A".into(), "12".into()], vec!["B".into()]],
                },
                Table::default(),
            ],
        };
        assert_eq!(
            String::from_utf8(document.to_json()).unwrap(),
            serde_json::to_string(&document).unwrap()
        );
        let empty = Document::default();
        assert_eq!(empty.to_json(), serde_json::to_vec(&empty).unwrap());
    }
}
