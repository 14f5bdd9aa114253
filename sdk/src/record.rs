//! The record a plugin receives and emits, and the per-record error type.
//!
//! These mirror the WIT `doc-record` and `error` types but are plain Rust
//! types, so plugin logic compiles and runs natively as well as in WASM.

use std::fmt;

use serde::Deserialize;

/// One document (or derived document) travelling through a chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Stable document identifier, e.g. `enwiki:12`.
    pub id: String,
    /// Revision of the source document.
    pub revision: u64,
    /// Media type of [`Record::body`].
    pub content_type: String,
    /// The payload bytes.
    pub body: Vec<u8>,
    /// Key/value metadata; keys are unique.
    pub metadata: Vec<(String, String)>,
}

impl Record {
    /// A record without metadata.
    pub fn new(
        id: impl Into<String>,
        revision: u64,
        content_type: impl Into<String>,
        body: Vec<u8>,
    ) -> Self {
        Record {
            id: id.into(),
            revision,
            content_type: content_type.into(),
            body,
            metadata: Vec::new(),
        }
    }

    /// A new record derived from this one: same id, revision and metadata,
    /// new content type and body. This is what most plugins emit.
    pub fn derive(&self, content_type: impl Into<String>, body: Vec<u8>) -> Record {
        Record {
            id: self.id.clone(),
            revision: self.revision,
            content_type: content_type.into(),
            body,
            metadata: self.metadata.clone(),
        }
    }

    /// Like [`Record::derive`] with a body serialised as JSON.
    pub fn derive_json<T: serde::Serialize>(
        &self,
        content_type: impl Into<String>,
        value: &T,
    ) -> Result<Record, Error> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::Failure(format!("cannot serialise output: {e}")))?;
        Ok(self.derive(content_type, body))
    }

    /// Turn this record, whose body is a JSON object, into one of
    /// `content_type` whose body has one more field, `key: value`, without
    /// parsing or copying the existing body. This is how a stage adds its
    /// findings to the document it received. `key` must not be present yet:
    /// it is not checked (that would mean parsing the body), and a duplicate
    /// makes the next stage's typed read refuse the body. Accepting only the
    /// content type of the stage before (as lang accepts only parse's output)
    /// is what keeps a stage from running twice on one document.
    ///
    /// ```
    /// # use weir_sdk::Record;
    /// let r = Record::new("d", 1, "application/json", br#"{"a": 1} "#.to_vec());
    /// let r = r.extend_json("application/x+json", "b", &[2, 3]).unwrap();
    /// assert_eq!(r.body, br#"{"a": 1,"b":[2,3]}"#);
    /// ```
    pub fn extend_json<T: serde::Serialize>(
        mut self,
        content_type: impl Into<String>,
        key: &str,
        value: &T,
    ) -> Result<Record, Error> {
        let end = self.body.iter().rposition(|b| !b.is_ascii_whitespace());
        let Some(close) = end.filter(|&i| self.body[i] == b'}') else {
            return Err(Error::BadInput(format!(
                "body of {} ({}) is not a JSON object",
                self.id, self.content_type
            )));
        };
        let empty = self.body[..close]
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .is_some_and(|i| self.body[i] == b'{');
        self.body.truncate(close);
        if !empty {
            self.body.push(b',');
        }
        let failed =
            |e: serde_json::Error| Error::Failure(format!("cannot serialise `{key}`: {e}"));
        serde_json::to_writer(&mut self.body, key).map_err(failed)?;
        self.body.push(b':');
        serde_json::to_writer(&mut self.body, value).map_err(failed)?;
        self.body.push(b'}');
        self.content_type = content_type.into();
        Ok(self)
    }

    /// The value of metadata key `key`, if present.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text, or [`Error::BadInput`] saying where it is not.
    pub fn body_str(&self) -> Result<&str, Error> {
        // simdutf8 validates 16 bytes at a time with WebAssembly SIMD; the
        // standard library reads a machine word (4 bytes) at a time there.
        simdutf8::compat::from_utf8(&self.body).map_err(|e| {
            Error::BadInput(format!(
                "body of {} is not valid UTF-8 (at byte {})",
                self.id,
                e.valid_up_to()
            ))
        })
    }

    /// The body parsed as JSON into `T`, or [`Error::BadInput`] with the
    /// parser's message (or saying where the body is not UTF-8).
    /// `T` may borrow from the body (e.g. `Cow<str>` fields with
    /// `#[serde(borrow)]`), which avoids copying large strings.
    pub fn body_json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Error> {
        // The whole body is validated once, by SIMD (`body_str`); serde_json
        // reading a `str` then does not validate every string it borrows
        // again, with the standard library's word-at-a-time loop.
        serde_json::from_str(self.body_str()?).map_err(|e| {
            Error::BadInput(format!(
                "body of {} ({}) is not the expected JSON: {e}",
                self.id, self.content_type
            ))
        })
    }
}

/// Why a record (or `init`) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The input is wrong and will stay wrong: dead-letter it, do not retry.
    BadInput(String),
    /// Something failed that might succeed on a retry.
    Failure(String),
}

impl Error {
    /// Shorthand for [`Error::BadInput`].
    pub fn bad_input(message: impl fmt::Display) -> Self {
        Error::BadInput(message.to_string())
    }

    /// Shorthand for [`Error::Failure`].
    pub fn failure(message: impl fmt::Display) -> Self {
        Error::Failure(message.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadInput(m) => write!(f, "bad input: {m}"),
            Error::Failure(m) => write!(f, "plugin failure: {m}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_bad_input_saying_where() {
        for (body, at) in [
            (b"ab\xffcd".to_vec(), 2),
            ([&[b'a'; 40][..], b"\xc3("].concat(), 40),
        ] {
            let r = Record::new("d:1", 1, "text/plain", body);
            match r.body_str() {
                Err(Error::BadInput(reason)) => {
                    assert_eq!(
                        reason,
                        format!("body of d:1 is not valid UTF-8 (at byte {at})")
                    );
                }
                other => panic!("expected bad input, got {other:?}"),
            }
        }
        let r = Record::new("d:1", 1, "text/plain", "é".repeat(20).into_bytes());
        assert_eq!(r.body_str().unwrap(), "é".repeat(20));
    }

    #[test]
    fn json_bodies_must_be_utf8_even_where_unread() {
        #[derive(Deserialize, Debug)]
        struct Wanted {
            a: u32,
        }
        let r = Record::new("d:1", 1, "a/json", b"{\"a\":1,\"b\":\"\xff\"}".to_vec());
        match r.body_json::<Wanted>() {
            Err(Error::BadInput(reason)) => {
                assert_eq!(reason, "body of d:1 is not valid UTF-8 (at byte 12)");
            }
            other => panic!("expected bad input, got {other:?}"),
        }
        let r = Record::new("d:1", 1, "a/json", br#"{"a":1,"b":"\u00e9"}"#.to_vec());
        assert_eq!(r.body_json::<Wanted>().unwrap().a, 1);
    }

    #[test]
    fn derive_keeps_identity_and_metadata() {
        let mut r = Record::new("d:1", 3, "text/plain", b"x".to_vec());
        r.metadata.push(("title".into(), "X".into()));
        let d = r.derive("application/json", b"{}".to_vec());
        assert_eq!((d.id.as_str(), d.revision), ("d:1", 3));
        assert_eq!(d.meta("title"), Some("X"));
        assert_eq!(d.content_type, "application/json");
    }

    #[test]
    fn extend_json_appends_a_field() {
        let extend = |body: &str| {
            Record::new("d", 1, "a/json", body.as_bytes().to_vec())
                .extend_json("b/json", "k", &"v")
                .map(|r| String::from_utf8(r.body).unwrap())
        };
        assert_eq!(extend("{}").unwrap(), r#"{"k":"v"}"#);
        assert_eq!(extend(" { } \n").unwrap(), r#" { "k":"v"}"#);
        assert_eq!(extend(r#"{"x":{}}"#).unwrap(), r#"{"x":{},"k":"v"}"#);
        assert!(matches!(extend("[1]"), Err(Error::BadInput(_))));
        assert!(matches!(extend(""), Err(Error::BadInput(_))));
    }
}
