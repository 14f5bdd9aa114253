//! # parse: MediaWiki wikitext -> structured document
//!
//! Input: `text/x-wiki` records (the page title in the `title` metadata).
//! Output: one `application/vnd.weir.parsed+json` record per page, a
//! [`Document`]: plain text, sections, internal links, categories, template
//! names and the redirect target. See `plugins/parse/README.md` for the
//! grammar covered and the figures.
//!
//! The parser is a linear-time scanner in three passes, each `O(n)`:
//! 1. [`tags`]: comments and HTML/extension tags;
//! 2. [`brackets`]: matching `{{ }}`, `{{{ }}}`, `[[ ]]`, `{| |}` with a stack;
//! 3. [`render`]: text, sections, tables and metadata from the matched
//!    structure, knowing the File and Category namespaces by their
//!    localized names ([`namespaces`]).
//!
//! It never panics and never loops on any input (property-tested and fuzzed,
//! see `tests/`).

pub mod brackets;
pub mod document;
pub mod find;
pub mod namespaces;
pub mod render;
pub mod tags;

use std::borrow::Cow;

pub use document::{Document, Link, Section, Table};
use namespaces::{Names, Namespace};
use serde::Deserialize;
use weir_sdk::{Error, Info, Record, Transform};

/// Content type this plugin reads.
pub const INPUT_TYPE: &str = "text/x-wiki";
/// Content type this plugin emits.
pub const OUTPUT_TYPE: &str = "application/vnd.weir.parsed+json";

/// Stage configuration (`[stage.config]`); every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Whether the cells' text of tables is also in `text` (after the text
    /// before each table, as a paragraph, a line per row). Off by default:
    /// `text` is the page's prose, which language and topic models expect
    /// (as Wikipedia's own plain-text extracts do), and every table is in
    /// `tables` whichever way this is set.
    pub table_text: bool,
    /// More names of the File namespace (`[[Tiedosto:x.jpg|...]]`), for
    /// wikis whose names are not built in.
    pub file_namespaces: Vec<String>,
    /// More names of the Category namespace.
    pub category_namespaces: Vec<String>,
}

/// How pages are parsed: the configuration, in the form the parser uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// See [`Config::table_text`].
    pub table_text: bool,
    /// Namespace names beyond the built-in ones.
    pub namespaces: Names,
}

impl From<&Config> for Options {
    fn from(config: &Config) -> Self {
        let mut namespaces = Names::default();
        for name in &config.file_namespaces {
            namespaces.add(name, Namespace::File);
        }
        for name in &config.category_namespaces {
            namespaces.add(name, Namespace::Category);
        }
        Options {
            table_text: config.table_text,
            namespaces,
        }
    }
}

/// Parse one page of wikitext with the default options.
pub fn parse(title: Option<&str>, wikitext: &str) -> Document {
    parse_with(&Options::default(), title, wikitext)
}

/// Parse one page of wikitext.
pub fn parse_with(options: &Options, title: Option<&str>, wikitext: &str) -> Document {
    let stripped = tags::strip(&tags::unmark(wikitext));
    let redirect = redirect_target(&stripped);
    // A redirect page's text is only its link (and categories, templates);
    // the `#REDIRECT` keyword is not text.
    let body = match &redirect {
        Some((_, link_start)) => &stripped[*link_start..],
        None => &stripped,
    };
    let pairs = brackets::match_pairs(body);
    let mut document = render::Renderer::new(body, &pairs, options).render_document();
    document.title = title.map(str::to_owned);
    document.redirect = redirect.map(|(target, _)| target);
    document
}

/// `#REDIRECT [[Target]]` (any case, optional colon) at the start of a page:
/// the normalised target and where its `[[` starts.
fn redirect_target(text: &str) -> Option<(String, usize)> {
    let rest = text.trim_start();
    let keyword = rest.get(..9)?;
    if !keyword.eq_ignore_ascii_case("#redirect") {
        return None;
    }
    let after = rest[9..].trim_start().trim_start_matches(':').trim_start();
    let link_start = text.len() - after.len();
    let inner = after.strip_prefix("[[")?;
    let target = &inner[..inner.find("]]")?];
    let raw_target = &target[..find::byte(b'|', target).unwrap_or(target.len())];
    if tags::has_marker(raw_target) {
        return None; // `<nowiki>` or `<ref>` content is no title
    }
    let target = render::normalize_title(raw_target);
    (!target.is_empty()).then(|| (target.into_owned(), link_start))
}

/// The plugin.
pub struct Parse {
    options: Options,
}

impl Parse {
    /// The options for one record: the stage's, plus the namespace names
    /// the record's wiki declares (see [`namespaces::FILE_METADATA`]).
    fn options_for(&self, record: &Record) -> Cow<'_, Options> {
        let declared = [
            (namespaces::FILE_METADATA, Namespace::File),
            (namespaces::CATEGORY_METADATA, Namespace::Category),
        ]
        .map(|(key, namespace)| record.meta(key).map(|name| (name, namespace)));
        if declared.iter().all(Option::is_none) {
            return Cow::Borrowed(&self.options);
        }
        let mut options = self.options.clone();
        for (name, namespace) in declared.into_iter().flatten() {
            options.namespaces.add(name, namespace);
        }
        Cow::Owned(options)
    }
}

impl Transform for Parse {
    type Config = Config;

    fn info() -> Info {
        Info::new("parse", env!("CARGO_PKG_VERSION"))
            .accepts(&[INPUT_TYPE])
            .produces(&[OUTPUT_TYPE])
    }

    fn new(config: Config) -> Result<Self, Error> {
        Ok(Parse {
            options: Options::from(&config),
        })
    }

    fn process(&mut self, record: Record) -> Result<Vec<Record>, Error> {
        let document = parse_with(
            &self.options_for(&record),
            record.meta("title"),
            record.body_str()?,
        );
        weir_sdk::count("pages", 1);
        if document.redirect.is_some() {
            weir_sdk::count("redirects", 1);
        }
        Ok(vec![record.derive(OUTPUT_TYPE, document.to_json())])
    }
}

weir_sdk::export!(Parse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_detected() {
        let target = |t| redirect_target(t).map(|(target, _)| target);
        assert_eq!(
            target("#REDIRECT [[Computer accessibility]]").as_deref(),
            Some("Computer accessibility")
        );
        assert_eq!(target("#redirect: [[a_b|x]]").as_deref(), Some("A b"));
        let doc = parse(
            None,
            "#REDIRECT [[Computer accessibility]]\n\n{{R from move}}",
        );
        assert_eq!(doc.text, "Computer accessibility");
        assert_eq!(redirect_target("Text #REDIRECT [[x]]"), None);
        assert_eq!(redirect_target("#REDIRECT [[x"), None);
        let doc = parse(None, "#REDIRECT [[<ref>r</ref>]]");
        assert_eq!(doc.redirect, None);
        assert!(
            !String::from_utf8(doc.to_json())
                .unwrap()
                .contains('\u{F7F0}')
        );
    }

    #[test]
    fn a_link_opened_in_a_heading_and_closed_later_is_literal_there() {
        let doc = parse(None, "== A [[b ==\nText c]] d.");
        assert_eq!(doc.sections[0].heading, "A [[b");
        assert_eq!(doc.sections[0].text, "Text c]] d.");
        assert_eq!(doc.text, "A [[b\n\nText c]] d.");
        assert!(doc.links.is_empty());
    }

    #[test]
    fn marks_of_nowiki_and_refs_never_reach_the_output() {
        let json = |doc: &Document| String::from_utf8(doc.to_json()).unwrap();
        let marked = |doc: &Document| {
            json(doc)
                .chars()
                .any(|c| ('\u{F700}'..='\u{F7FF}').contains(&c))
        };
        // A reference opened in a heading and closed on a later line.
        let doc = parse(None, "== A <ref>r ==\nB</ref> c");
        assert!(!marked(&doc), "{}", json(&doc));
        // A template name or link target written in <nowiki>: not a title.
        let doc = parse(
            None,
            "{{<nowiki>{{</nowiki>}} [[<nowiki>a:b</nowiki>]] [[y]]",
        );
        assert!(!marked(&doc), "{}", json(&doc));
        assert!(doc.templates.is_empty());
        assert_eq!(doc.links.len(), 1);
        assert_eq!(doc.text, "[[a:b]] y");
        // The page itself holds characters of the marks' block: a protected
        // `[` and a reference end. They are not read as marks.
        let doc = parse(None, "[[a]] \u{F75B}b \u{F7F1} {{c}}");
        assert!(!marked(&doc), "{}", json(&doc));
        assert_eq!(doc.text, "a \u{FFFD}b \u{FFFD}");
        assert_eq!(doc.templates, ["C"]);
    }

    /// File and category links written with a wiki's own namespace names
    /// leave nothing of their options in the text.
    #[test]
    fn localized_file_and_category_links() {
        let de = parse(
            None,
            "Der Turm.[[Bild:Turm.jpg|mini|hochkant|Der Turm]] Er steht.[[Kategorie:Bauwerk]]",
        );
        assert_eq!(de.text, "Der Turm. Er steht.");
        assert_eq!(de.categories, ["Bauwerk"]);
        let ja = parse(
            None,
            "東京タワー[[画像:Tokyo Tower.jpg|200px|thumb|東京タワー]]は電波塔である。[[カテゴリ:電波塔]]",
        );
        assert_eq!(ja.text, "東京タワーは電波塔である。");
        assert_eq!(ja.categories, ["電波塔"]);
    }

    /// Bold and italic apostrophes as MediaWiki reads them, with the tags
    /// between runs in place (pass 1 removes `<sub>` but leaves a boundary).
    #[test]
    fn apostrophe_runs_follow_mediawiki() {
        assert_eq!(parse(None, "''foo''''bar''").text, "foo'bar");
        assert_eq!(parse(None, "''θ''<sub>''i''</sub> is").text, "θi is");
        assert_eq!(parse(None, "l'''amour'' fou").text, "l'amour fou");
        assert_eq!(parse(None, "'''''x''''' and ''y''").text, "x and y");
    }

    /// Namespace names the built-in lists lack come from the stage's
    /// configuration or from the record's wiki (its dump's `<siteinfo>`).
    #[test]
    fn namespace_names_from_the_configuration_and_the_record() {
        let page = "Kuva.[[Tiedosto:X.jpg|pienoiskuva|Teksti]] [[Luokka:Tornit]]";
        let record = |meta: &[(&str, &str)]| {
            let mut record = Record::new("fi:1", 1, INPUT_TYPE, page.as_bytes().to_vec());
            record.metadata = meta
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            record
        };
        let text = |config: &str, record: Record| {
            let mut plugin = weir_sdk::LocalInstance::<Parse>::new(config).unwrap();
            let out = plugin.process(record).unwrap();
            let doc: Document = serde_json::from_slice(&out[0].body).unwrap();
            (doc.text, doc.categories)
        };
        let unknown = text("{}", record(&[]));
        assert_eq!(unknown.1, Vec::<String>::new(), "{unknown:?}");
        let configured = text(
            r#"{"file_namespaces":["Tiedosto"],"category_namespaces":["Luokka"]}"#,
            record(&[]),
        );
        assert_eq!(configured, ("Kuva.".to_owned(), vec!["Tornit".to_owned()]));
        let declared = text(
            "{}",
            record(&[
                (namespaces::FILE_METADATA, "Tiedosto"),
                (namespaces::CATEGORY_METADATA, "Luokka"),
            ]),
        );
        assert_eq!(declared, configured);
    }

    /// `[[Media:...]]` links to the file itself: MediaWiki shows them as a
    /// link whose text is the caption, or the title as written.
    #[test]
    fn media_links_render_as_links() {
        let doc = parse(
            None,
            "Hear [[Media:Anthem.ogg|the anthem]] or [[Media:Bells.ogg]]. [[File:X.jpg|thumb|Gone]]",
        );
        assert_eq!(doc.text, "Hear the anthem or Media:Bells.ogg.");
        let targets: Vec<_> = doc.links.iter().map(|l| l.target.as_str()).collect();
        assert_eq!(targets, ["Media:Anthem.ogg", "Media:Bells.ogg"]);
    }

    #[test]
    fn a_small_page_end_to_end() {
        let doc = parse(
            Some("T"),
            "{{Infobox thing|name=x}}'''T''' is a [[thing|thing]]s of [[Category:Not]]<ref>r</ref>[[kind]].\n\n== History ==\nIt [[w:x|began]] in 1900 &amp; [http://e.com ended].\n[[Category:Things|T]]\n[[de:Ding]]",
        );
        assert_eq!(doc.sections.len(), 2);
        assert_eq!(doc.sections[0].text, "T is a things of kind.");
        assert_eq!(doc.sections[1].heading, "History");
        assert_eq!(doc.sections[1].level, 2);
        assert_eq!(doc.sections[1].text, "It began in 1900 & ended.");
        assert_eq!(doc.categories, ["Not", "Things"]);
        assert_eq!(doc.templates, ["Infobox thing"]);
        let links: Vec<_> = doc
            .links
            .iter()
            .map(|l| (l.target.as_str(), l.anchor.as_str()))
            .collect();
        assert_eq!(
            links,
            [("Thing", "things"), ("Kind", "kind"), ("W:x", "began")]
        );
        assert_eq!(
            doc.text,
            "T is a things of kind.\n\nHistory\n\nIt began in 1900 & ended."
        );
    }
}
