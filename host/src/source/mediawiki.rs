//! The MediaWiki XML dump reader (`pages-articles*.xml`, plain or `.bz2`):
//! each `<revision>` of each `<page>` becomes one change event.
//!
//! Streaming with constant memory: the reader holds one revision at a time,
//! whatever the dump size. Multi-stream `.bz2` dumps (the format Wikimedia
//! publishes) are read as one stream. The XML declaration's encoding is
//! honoured: UTF-8 dumps (all of Wikimedia's) are parsed straight from
//! their bytes; any other encoding goes through a transcoder to UTF-8
//! first (which costs a copy and a validation pass over the whole dump).
//!
//! Each revision becomes a [`ChangeEvent`] checked by exactly the rules of
//! any decoded event, so a page without an id or a revision without a
//! timestamp becomes a dead letter with the reason, not a crash. Complete
//! revisions are handed over as built ([`Payload::Event`]); one without a
//! revision id goes as the JSON a producer would send, with the field left
//! out, so decoding names what is missing. The position offset is the
//! 0-based revision number in the dump.
//!
//! The wiki's own names of the File and Category namespaces, which its
//! `<siteinfo>` declares, go with every event as metadata
//! ([`FILE_NAMESPACE`], [`CATEGORY_NAMESPACE`]) when they are not the
//! English ones, so that the parse plugin knows `[[Tiedosto:...]]` on a
//! Finnish wiki without being configured for it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::Path;
use std::sync::Arc;

use quick_xml::Reader;
use quick_xml::encoding::{DecodingReader, DetectedEncoding};
use quick_xml::events::{BytesDecl, BytesRef, BytesStart, Event};

use super::{Payload, Position, SourceMessage};
use crate::event::{ChangeEvent, Operation, SCHEMA};

/// A dump that cannot be read further (corrupt XML or compression, I/O).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message} (at byte {position} of the XML)")]
pub struct DumpError {
    /// The dump file.
    pub path: String,
    /// What went wrong.
    pub message: String,
    /// Byte position in the decompressed XML.
    pub position: u64,
}

/// Event metadata naming the wiki's File namespace (read by the parse
/// plugin).
pub const FILE_NAMESPACE: &str = "file_namespace";
/// Event metadata naming the wiki's Category namespace.
pub const CATEGORY_NAMESPACE: &str = "category_namespace";

/// Which element's text is being collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    DbName,
    /// A namespace's name in `<siteinfo>`: the metadata key it goes under
    /// and the English name, which needs no metadata.
    SiteNamespace {
        key: &'static str,
        english: &'static str,
    },
    Title,
    Namespace,
    PageId,
    RevisionId,
    Timestamp,
    Contributor,
    Model,
    Format,
    Text,
}

/// The page being read.
#[derive(Debug, Default)]
struct PageState {
    title: Option<String>,
    namespace: Option<i64>,
    id: Option<String>,
}

/// The revision being read.
#[derive(Debug, Default)]
struct RevisionState {
    id: Option<u64>,
    timestamp: Option<String>,
    contributor: Option<String>,
    model: Option<String>,
    format: Option<String>,
    text: Option<String>,
}

/// How many bytes of a dump are read ahead to find its encoding (a BOM and
/// the XML declaration fit many times over).
const HEAD_BYTES: u64 = 4096;

/// The dump's bytes.
type Input = Box<dyn BufRead + Send>;

/// The XML reader over a dump: straight from the bytes when the dump is
/// UTF-8, through a transcoder to UTF-8 otherwise.
enum XmlReader {
    Utf8(Reader<Input>),
    Transcoded(Reader<DecodingReader<Input>>),
}

impl XmlReader {
    /// Pick the reader for the dump whose first bytes are `head` (the
    /// declaration included when there is one) and the rest `rest`.
    fn for_dump(head: Vec<u8>, rest: Input) -> Self {
        let utf8 = is_utf8(&head);
        let input: Input = Box::new(Cursor::new(head).chain(rest));
        if utf8 {
            XmlReader::Utf8(Reader::from_reader(input))
        } else {
            XmlReader::Transcoded(Reader::from_reader(DecodingReader::new(input)))
        }
    }

    fn read_event_into<'b>(&mut self, buf: &'b mut Vec<u8>) -> quick_xml::Result<Event<'b>> {
        match self {
            XmlReader::Utf8(reader) => reader.read_event_into(buf),
            XmlReader::Transcoded(reader) => reader.read_event_into(buf),
        }
    }

    /// Where `error` happened: the start of the faulty markup, or for an
    /// I/O error (a corrupt `.bz2`) how far the XML had been read.
    fn error_position(&self, error: &quick_xml::Error) -> u64 {
        let (at_error, read) = match self {
            XmlReader::Utf8(reader) => (reader.error_position(), reader.buffer_position()),
            XmlReader::Transcoded(reader) => (reader.error_position(), reader.buffer_position()),
        };
        match error {
            quick_xml::Error::Io(_) => read,
            _ => at_error,
        }
    }

    /// How far the XML has been read.
    fn position(&self) -> u64 {
        match self {
            XmlReader::Utf8(reader) => reader.buffer_position(),
            XmlReader::Transcoded(reader) => reader.buffer_position(),
        }
    }

    /// The declaration was read: a transcoder that guessed the encoding
    /// from the first bytes follows what it declares.
    fn declared(&mut self, declaration: &BytesDecl<'_>) {
        if let (XmlReader::Transcoded(reader), Some(encoding)) = (self, declaration.encoder()) {
            reader.get_mut().set_encoding(encoding);
        }
    }
}

/// Whether a dump starting with `head` is UTF-8: no byte-order mark and
/// either no declaration (XML's default) or one that names UTF-8 or no
/// encoding. Anything unsure goes through the transcoder.
fn is_utf8(head: &[u8]) -> bool {
    match quick_xml::encoding::detect_encoding(head) {
        None => true,
        Some(DetectedEncoding::AsciiCompatible) => match Reader::from_reader(head).read_event() {
            Ok(Event::Decl(declaration)) => match declaration.encoding() {
                None => true,
                Some(_) => declaration.encoder().is_some_and(|e| e.name() == "UTF-8"),
            },
            _ => false,
        },
        Some(_) => false,
    }
}

/// What is wrong with a document whose root element is `name`, if it is
/// not a dump's `<mediawiki>`.
fn not_a_dump(name: &str) -> Option<String> {
    (name != "mediawiki")
        .then(|| format!("not a MediaWiki XML dump: its root element is <{name}>, not <mediawiki>"))
}

/// Reads change events out of a MediaWiki XML dump.
pub struct DumpSource {
    reader: XmlReader,
    path: String,
    topic: Arc<str>,
    buf: Vec<u8>,
    /// Element names from the root to the current element.
    stack: Vec<String>,
    field: Option<Field>,
    text: String,
    dbname: String,
    /// The wiki's own namespace names, as event metadata.
    site_namespaces: BTreeMap<String, String>,
    page: PageState,
    revision: RevisionState,
    next_offset: i64,
    /// The `<mediawiki>` root was read.
    root_seen: bool,
    finished: bool,
}

impl DumpSource {
    /// Open a dump; `.bz2` files are decompressed on the fly.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let input = super::open_decompressed(path)?;
        Self::from_reader(Box::new(BufReader::with_capacity(1 << 20, input)), path)
    }

    fn from_reader(mut input: Input, path: &Path) -> std::io::Result<Self> {
        let mut head = Vec::new();
        (&mut input).take(HEAD_BYTES).read_to_end(&mut head)?;
        let reader = XmlReader::for_dump(head, input);
        Ok(DumpSource {
            reader,
            path: path.display().to_string(),
            topic: super::file::topic_for(path).into(),
            buf: Vec::with_capacity(1 << 16),
            stack: Vec::new(),
            field: None,
            text: String::new(),
            dbname: "wiki".to_owned(),
            site_namespaces: BTreeMap::new(),
            page: PageState::default(),
            revision: RevisionState::default(),
            next_offset: 0,
            root_seen: false,
            finished: false,
        })
    }

    /// Up to `max` events; an empty batch means the end of the dump.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<SourceMessage>, DumpError> {
        let mut batch = Vec::with_capacity(max);
        while batch.len() < max && !self.finished {
            if let Some(message) = self.next_revision()? {
                batch.push(message);
            }
        }
        Ok(batch)
    }

    /// Advance to the end of the next revision (or of the dump).
    fn next_revision(&mut self) -> Result<Option<SourceMessage>, DumpError> {
        loop {
            self.buf.clear();
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(event) => event,
                Err(e) => {
                    return Err(DumpError {
                        path: self.path.clone(),
                        position: self.reader.error_position(&e),
                        message: e.to_string(),
                    });
                }
            };
            match event {
                Event::Decl(declaration) => self.reader.declared(&declaration),
                Event::Start(start) => {
                    let name = start.local_name().as_ref().to_owned();
                    if self.stack.is_empty() {
                        self.root_seen = true;
                        if let Some(message) = not_a_dump(&name) {
                            return Err(self.error(message));
                        }
                    }
                    self.stack.push(name);
                    self.field = Self::field_here(&self.stack, &start);
                    self.text.clear();
                    match self.stack.last().map(String::as_str) {
                        Some("page") => self.page = PageState::default(),
                        Some("revision") => self.revision = RevisionState::default(),
                        _ => {}
                    }
                }
                Event::Text(text) if self.field.is_some() => {
                    self.text.push_str(&text.xml10_content());
                }
                Event::CData(cdata) if self.field.is_some() => {
                    self.text.push_str(&cdata.xml10_content());
                }
                Event::GeneralRef(reference) if self.field.is_some() => {
                    push_reference(&mut self.text, &reference);
                }
                Event::Empty(empty) if self.stack.is_empty() => {
                    self.root_seen = true;
                    if let Some(message) = not_a_dump(empty.local_name().as_ref()) {
                        return Err(self.error(message));
                    }
                }
                Event::End(_) => {
                    if let Some(field) = self.field.take() {
                        self.store(field);
                    }
                    let closed = self.stack.pop();
                    if closed.as_deref() == Some("revision") {
                        return Ok(Some(self.emit()));
                    }
                }
                Event::Eof => {
                    // A dump cut off (a download that stopped, a copy
                    // still being written) must not pass for a whole one.
                    if let Some(open) = self.stack.last() {
                        return Err(self.error(format!(
                            "the dump ends inside <{open}>: it is cut off (a download or \
                             copy that did not finish?)"
                        )));
                    }
                    if !self.root_seen {
                        return Err(self.error(
                            "not a MediaWiki XML dump: it has no <mediawiki> element".to_owned(),
                        ));
                    }
                    self.finished = true;
                    return Ok(None);
                }
                _ => {}
            }
        }
    }

    /// An error at the reader's position.
    fn error(&self, message: String) -> DumpError {
        DumpError {
            path: self.path.clone(),
            message,
            position: self.reader.position(),
        }
    }

    /// The field the element on top of `stack` (`start`) holds, given its
    /// parents.
    fn field_here(stack: &[String], start: &BytesStart<'_>) -> Option<Field> {
        let n = stack.len();
        let name = stack.last()?.as_str();
        let parent = n.checked_sub(2).map(|i| stack[i].as_str());
        match (parent, name) {
            (Some("siteinfo"), "dbname") => Some(Field::DbName),
            (Some("namespaces"), "namespace") => {
                let key = start.try_get_attribute("key").ok().flatten()?;
                match &*key.value {
                    "6" => Some(Field::SiteNamespace {
                        key: FILE_NAMESPACE,
                        english: "File",
                    }),
                    "14" => Some(Field::SiteNamespace {
                        key: CATEGORY_NAMESPACE,
                        english: "Category",
                    }),
                    _ => None,
                }
            }
            (Some("page"), "title") => Some(Field::Title),
            (Some("page"), "ns") => Some(Field::Namespace),
            (Some("page"), "id") => Some(Field::PageId),
            (Some("revision"), "id") => Some(Field::RevisionId),
            (Some("revision"), "timestamp") => Some(Field::Timestamp),
            (Some("contributor"), "username" | "ip") => Some(Field::Contributor),
            (Some("revision"), "model") => Some(Field::Model),
            (Some("revision"), "format") => Some(Field::Format),
            (Some("revision"), "text") => Some(Field::Text),
            _ => None,
        }
    }

    fn store(&mut self, field: Field) {
        let value = std::mem::take(&mut self.text);
        match field {
            Field::DbName => self.dbname = value.trim().to_owned(),
            Field::SiteNamespace { key, english } => {
                let name = value.trim();
                if !name.is_empty() && name != english {
                    self.site_namespaces.insert(key.to_owned(), name.to_owned());
                }
            }
            Field::Title => self.page.title = Some(value),
            Field::Namespace => self.page.namespace = value.trim().parse().ok(),
            Field::PageId => self.page.id = Some(value.trim().to_owned()),
            Field::RevisionId => self.revision.id = value.trim().parse().ok(),
            Field::Timestamp => self.revision.timestamp = Some(value.trim().to_owned()),
            Field::Contributor => self.revision.contributor = Some(value),
            Field::Model => self.revision.model = Some(value.trim().to_owned()),
            Field::Format => self.revision.format = Some(value.trim().to_owned()),
            Field::Text => self.revision.text = Some(value),
        }
    }

    /// The finished revision as a change-event message. Missing required
    /// parts are left out, so decoding dead-letters the event with a reason.
    fn emit(&mut self) -> SourceMessage {
        let revision = std::mem::take(&mut self.revision);
        let mut meta = self.site_namespaces.clone();
        meta.insert("wiki".to_owned(), self.dbname.clone());
        if let Some(contributor) = revision.contributor {
            meta.insert("contributor".into(), contributor);
        }
        if let Some(model) = revision.model {
            meta.insert("model".into(), model);
        }
        let revision_id = revision.id;
        let event = ChangeEvent {
            schema: SCHEMA.to_owned(),
            id: self
                .page
                .id
                .as_ref()
                .map(|id| format!("{}:{id}", self.dbname))
                .unwrap_or_default(),
            op: Operation::Upsert,
            revision: revision_id.unwrap_or_default(),
            timestamp: revision.timestamp.unwrap_or_default(),
            title: self.page.title.clone(),
            namespace: self.page.namespace,
            content_type: revision.format,
            // A suppressed text (`<text deleted="deleted"/>`) is an empty body.
            body: Some(revision.text.unwrap_or_default()),
            body_ref: None,
            meta,
            extra: serde_json::Map::new(),
        };
        let position = Position {
            topic: self.topic.clone(),
            partition: 0,
            offset: self.next_offset,
        };
        self.next_offset += 1;
        let payload = match revision_id {
            Some(_) => Payload::Event(Box::new(event)),
            // Revision 0 would pass for a real one: leave the field out.
            None => {
                let mut value = serde_json::to_value(&event).expect("change events serialise");
                if let Some(fields) = value.as_object_mut() {
                    fields.remove("revision");
                }
                Payload::Raw(serde_json::to_vec(&value).expect("JSON values serialise"))
            }
        };
        SourceMessage { position, payload }
    }
}

/// Append the character an entity or character reference stands for; an
/// unknown entity is kept as written.
fn push_reference(text: &mut String, reference: &BytesRef<'_>) {
    if let Ok(Some(c)) = reference.resolve_char_ref() {
        text.push(c);
        return;
    }
    match quick_xml::escape::resolve_predefined_entity(reference) {
        Some(resolved) => text.push_str(resolved),
        None => {
            text.push('&');
            text.push_str(reference);
            text.push(';');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(xml: &str) -> Vec<Payload> {
        let reader: Box<dyn BufRead + Send> = Box::new(Cursor::new(xml.as_bytes().to_vec()));
        let mut source = DumpSource::from_reader(reader, Path::new("dump.xml")).unwrap();
        let mut out = Vec::new();
        loop {
            let batch = source.next_batch(2).unwrap();
            if batch.is_empty() {
                return out;
            }
            out.extend(batch.into_iter().map(|m| m.payload));
        }
    }

    /// The events as the JSON a producer would send.
    fn read_all(xml: &str) -> Vec<serde_json::Value> {
        payloads(xml)
            .iter()
            .map(|p| serde_json::from_slice(&p.to_bytes()).unwrap())
            .collect()
    }

    const DUMP: &str = r#"<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">
  <siteinfo><sitename>Wikipedia</sitename><dbname>enwiki</dbname></siteinfo>
  <page>
    <title>A &amp; B</title><ns>0</ns><id>7</id>
    <revision>
      <id>100</id><parentid>99</parentid><timestamp>2020-01-01T00:00:00Z</timestamp>
      <contributor><username>Alice</username><id>5</id></contributor>
      <model>wikitext</model><format>text/x-wiki</format>
      <text bytes="30" xml:space="preserve">'''A''' &lt;ref&gt;x&lt;/ref&gt; &#233;t&#xE9;</text>
    </revision>
    <revision>
      <id>101</id><timestamp>2020-01-02T00:00:00Z</timestamp>
      <contributor><ip>10.0.0.1</ip></contributor>
      <text deleted="deleted" />
    </revision>
  </page>
  <page><title>No id</title><ns>0</ns><revision><id>1</id><text>x</text></revision></page>
  <page><title>No revision id</title><ns>0</ns><id>8</id>
    <revision><timestamp>2020-01-01T00:00:00Z</timestamp><text>x</text></revision></page>
</mediawiki>"#;

    /// The error reading `xml` to its end ends with, if any.
    fn read_error(xml: &str) -> Option<DumpError> {
        let reader: Box<dyn BufRead + Send> = Box::new(Cursor::new(xml.as_bytes().to_vec()));
        let mut source = DumpSource::from_reader(reader, Path::new("dump.xml")).unwrap();
        loop {
            match source.next_batch(2) {
                Ok(batch) if batch.is_empty() => return None,
                Ok(_) => {}
                Err(e) => return Some(e),
            }
        }
    }

    #[test]
    fn a_cut_off_dump_or_another_document_is_an_error() {
        assert!(read_error(DUMP).is_none());
        assert!(read_error("<mediawiki/>").is_none(), "a dump without pages");
        let cut = DUMP.find("<ns>0</ns><revision><id>1<").unwrap();
        let error = read_error(&DUMP[..cut]).expect("a cut-off dump passed for a whole one");
        assert!(error.message.contains("ends inside <page>"), "{error}");
        assert_eq!(error.position, cut as u64);
        // Cut inside a tag, quick-xml's own error says so.
        assert!(read_error(&DUMP[..cut - 3]).is_some());
        for (other, says) in [
            (
                "<html><body>404</body></html>",
                "its root element is <html>",
            ),
            ("<html/>", "its root element is <html>"),
            ("", "it has no <mediawiki> element"),
            ("not XML at all\n", "it has no <mediawiki> element"),
        ] {
            let error = read_error(other).expect(other);
            assert!(error.message.contains(says), "{other}: {error}");
        }
    }

    #[test]
    fn revisions_become_change_events() {
        let events = read_all(DUMP);
        assert_eq!(events.len(), 4);
        let first = &events[0];
        assert_eq!(first["id"], "enwiki:7");
        assert_eq!(first["title"], "A & B");
        assert_eq!(
            first["revision"], 100,
            "the revision id, not the parent or contributor id"
        );
        assert_eq!(first["body"], "'''A''' <ref>x</ref> été");
        assert_eq!(first["content_type"], "text/x-wiki");
        assert_eq!(first["meta"]["contributor"], "Alice");
        assert_eq!(events[1]["revision"], 101);
        assert_eq!(events[1]["body"], "");
        assert_eq!(events[1]["meta"]["contributor"], "10.0.0.1");
    }

    #[test]
    fn incomplete_pages_are_left_for_decoding_to_reject() {
        let mut payloads = payloads(DUMP);
        let err = payloads[2].decode(1 << 20).unwrap_err();
        assert_eq!(err.to_string(), "field `id` is empty");
        // Without a revision id, the JSON a producer would send, so that
        // decoding names the missing field.
        assert!(matches!(payloads[3], Payload::Raw(_)));
        let err = payloads[3].decode(1 << 20).unwrap_err();
        assert!(
            err.to_string().contains("missing field `revision`"),
            "{err}"
        );
    }

    /// Complete revisions skip the JSON round trip, and decode to exactly
    /// what their JSON would.
    #[test]
    fn complete_revisions_are_handed_over_as_built_events() {
        let mut payloads = payloads(DUMP);
        for payload in &mut payloads[..2] {
            let Payload::Event(event) = payload.clone() else {
                panic!("{payload:?} was serialised");
            };
            let decoded = payload.decode(1 << 20).unwrap();
            assert_eq!(decoded, *event);
            assert_eq!(
                decoded,
                crate::event::decode(&payload.to_bytes(), 1 << 20).unwrap()
            );
            assert_eq!(payload.len(), event.body.as_ref().unwrap().len());
        }
        let err = payloads[0].decode(10).unwrap_err();
        assert!(err.to_string().contains("max_body_bytes"), "{err}");
    }

    #[test]
    fn the_wikis_own_namespace_names_go_with_every_event() {
        let site = |names: &str| {
            format!(
                "<mediawiki><siteinfo><dbname>x</dbname><namespaces>{names}</namespaces></siteinfo>\
                 <page><title>T</title><id>1</id><revision><id>2</id>\
                 <timestamp>2020-01-01T00:00:00Z</timestamp><text>x</text></revision></page></mediawiki>"
            )
        };
        let german = site(
            r#"<namespace key="-2" case="first-letter">Medium</namespace>
               <namespace key="0" case="first-letter" />
               <namespace key="6" case="first-letter">Datei</namespace>
               <namespace key="14" case="first-letter">Kategorie</namespace>"#,
        );
        let meta = &read_all(&german)[0]["meta"];
        assert_eq!(meta[FILE_NAMESPACE], "Datei");
        assert_eq!(meta[CATEGORY_NAMESPACE], "Kategorie");
        assert_eq!(meta["wiki"], "x");
        // English names are what the plugin knows anyway: no metadata.
        let english = site(
            r#"<namespace key="6" case="first-letter">File</namespace>
               <namespace key="14" case="first-letter">Category</namespace>"#,
        );
        let meta = read_all(&english)[0]["meta"].clone();
        assert_eq!(meta, serde_json::json!({"wiki": "x"}));
    }

    #[test]
    fn declared_encodings_are_decoded() {
        let mut xml =
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><mediawiki><page><title>".to_vec();
        xml.extend([0x43, 0x61, 0x66, 0xE9]); // "Café" in Latin-1
        xml.extend(b"</title><id>1</id><revision><id>2</id><timestamp>2020-01-01T00:00:00Z</timestamp><text>x</text></revision></page></mediawiki>");
        let reader: Box<dyn BufRead + Send> = Box::new(Cursor::new(xml));
        let mut source = DumpSource::from_reader(reader, Path::new("latin1.xml")).unwrap();
        let batch = source.next_batch(10).unwrap();
        let event: serde_json::Value =
            serde_json::from_slice(&batch[0].payload.to_bytes()).unwrap();
        assert_eq!(event["title"], "Café");
    }

    #[test]
    fn utf8_dumps_are_read_without_the_transcoder() {
        let utf8 = |xml: &[u8]| {
            let source =
                DumpSource::from_reader(Box::new(Cursor::new(xml.to_vec())), Path::new("d.xml"))
                    .unwrap();
            matches!(source.reader, XmlReader::Utf8(_))
        };
        assert!(utf8(
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><mediawiki/>"
        ));
        assert!(utf8(
            b"<?xml version=\"1.0\" encoding=\"utf-8\"?><mediawiki/>"
        ));
        assert!(utf8(b"<?xml version=\"1.0\"?><mediawiki/>"));
        assert!(utf8(DUMP.as_bytes()), "no declaration: UTF-8");
        assert!(!utf8(
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><mediawiki/>"
        ));
        assert!(!utf8(
            b"<?xml version=\"1.0\" encoding=\"no-such\"?><mediawiki/>"
        ));
        assert!(
            !utf8(b"\xEF\xBB\xBF<mediawiki/>"),
            "a BOM: the transcoder drops it"
        );
        assert!(
            !utf8(b"<?xml version=\"1.0\" enc"),
            "a cut declaration: unsure"
        );
        let bundled = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/wiki/data/enwiki-sample-pages-articles.xml.bz2");
        let source = DumpSource::open(&bundled).unwrap();
        assert!(matches!(source.reader, XmlReader::Utf8(_)));
    }

    /// The bytes read ahead for the encoding are read again by the parser,
    /// whichever reader it gets.
    #[test]
    fn both_readers_read_the_same_events_past_the_read_ahead() {
        let long_title = "é".repeat(HEAD_BYTES as usize);
        let dump = DUMP.replace("A &amp; B", &long_title);
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(dump.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let utf16 = DumpSource::from_reader(Box::new(Cursor::new(utf16)), Path::new("d.xml"))
            .unwrap()
            .next_batch(10)
            .unwrap();
        let utf8 = payloads(&dump);
        assert_eq!(utf16.len(), utf8.len());
        for (a, b) in utf16.iter().zip(&utf8) {
            assert_eq!(a.payload.to_bytes(), b.to_bytes());
        }
        let first: serde_json::Value = serde_json::from_slice(&utf8[0].to_bytes()).unwrap();
        assert_eq!(first["title"], long_title.as_str());
    }

    #[test]
    fn invalid_utf8_in_a_utf8_dump_is_an_error_with_a_position() {
        let mut xml = b"<mediawiki><page><title>".to_vec();
        xml.extend([0x43, 0x61, 0x66, 0xE9]); // Latin-1 bytes, undeclared
        xml.extend(b"</title></page></mediawiki>");
        let mut source =
            DumpSource::from_reader(Box::new(Cursor::new(xml)), Path::new("bad.xml")).unwrap();
        let err = source.next_batch(10).unwrap_err();
        assert!(err.to_string().contains("bad.xml"), "{err}");
    }

    #[test]
    fn corrupt_xml_is_an_error_with_a_position() {
        let reader: Box<dyn BufRead + Send> =
            Box::new(Cursor::new(b"<mediawiki><page></oops>".to_vec()));
        let mut source = DumpSource::from_reader(reader, Path::new("bad.xml")).unwrap();
        let err = source.next_batch(10).unwrap_err();
        assert!(err.to_string().contains("bad.xml"), "{err}");
    }

    #[test]
    fn the_bundled_bz2_dump_streams() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/wiki/data/enwiki-sample-pages-articles.xml.bz2");
        let mut source = DumpSource::open(&path).unwrap();
        let mut count = 0;
        loop {
            let batch = source.next_batch(50).unwrap();
            if batch.is_empty() {
                break;
            }
            count += batch.len();
        }
        assert_eq!(count, 206);
    }
}
