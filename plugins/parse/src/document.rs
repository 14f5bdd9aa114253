//! The structured document the parse plugin emits
//! (`application/vnd.weir.parsed+json`).

use serde::{Deserialize, Serialize};

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
