//! The parser on real Wikipedia pages (`fixtures/`, see its README for
//! attribution): each element the plugin promises, checked on real markup.

use weir_plugin_parse::{Document, parse};

fn fixture(name: &str) -> Document {
    let path = format!("{}/tests/fixtures/{name}.wiki", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    parse(Some(name), &text)
}

fn link<'a>(doc: &'a Document, target: &str) -> Option<&'a str> {
    doc.links
        .iter()
        .find(|l| l.target == target)
        .map(|l| l.anchor.as_str())
}

#[test]
fn plain_text_has_no_markup() {
    let doc = fixture("Albedo");
    for markup in [
        "<ref",
        "</ref",
        "{{",
        "}}",
        "[[",
        "]]",
        "{|",
        "|}",
        "<!--",
        "DASHBot",
        "thumb|",
        "File:",
        "&nbsp;",
        "'''",
        "<br>",
        "cite journal",
    ] {
        assert!(!doc.text.contains(markup), "text contains {markup:?}");
    }
    // Entities are decoded (&nbsp; becomes a space), link text is kept.
    assert!(doc.text.contains("currently about 15 °C."));
    assert!(doc.sections[0].text.starts_with(
        "Albedo () or reflection coefficient, derived from Latin albedo \"whiteness\""
    ));
    assert!(
        doc.sections[0]
            .text
            .contains("is the diffuse reflectivity or reflecting power of a surface.")
    );
    // Table cells are not prose.
    assert!(!doc.text.contains("Fresh asphalt"));
}

#[test]
fn headings_split_sections_with_levels() {
    let doc = fixture("Albedo");
    let headings: Vec<(&str, u8)> = doc
        .sections
        .iter()
        .map(|s| (s.heading.as_str(), s.level))
        .collect();
    assert_eq!(headings[0], ("", 0));
    assert_eq!(headings[1], ("Terrestrial albedo", 2));
    assert_eq!(headings[2], ("White-sky and black-sky albedo", 3));
    assert_eq!(headings[3], ("Astronomical albedo", 2));
    assert!(headings.contains(&("Albedo–temperature feedback", 3)));
    let see_also = doc
        .sections
        .iter()
        .find(|s| s.heading == "See also")
        .unwrap();
    assert!(
        see_also.text.starts_with("Cool roof\nDaisyworld"),
        "list markers are removed"
    );
}

#[test]
fn links_categories_and_templates() {
    let doc = fixture("Albedo");
    assert_eq!(
        link(&doc, "Diffuse reflection"),
        Some("diffuse reflectivity")
    );
    assert_eq!(link(&doc, "Latin"), Some("Latin"));
    assert_eq!(
        link(&doc, "Lambertian reflectance"),
        Some("Lambertian surfaces")
    );
    assert!(
        doc.links.iter().all(|l| !l.target.starts_with("File:")),
        "file links are not links"
    );
    assert_eq!(
        doc.categories,
        [
            "Climate forcing",
            "Climatology",
            "Electromagnetic radiation",
            "Radiometry",
            "Scattering, absorption and radiative transfer (optics)",
            "Radiation"
        ]
    );
    for template in [
        "Other uses",
        "Use dmy dates",
        "IPAc-en",
        "Cite journal",
        "Reflist",
    ] {
        assert!(
            doc.templates.iter().any(|t| t == template),
            "missing template {template}: {:?}",
            doc.templates
        );
    }
    let unique: std::collections::HashSet<_> = doc.templates.iter().collect();
    assert_eq!(
        unique.len(),
        doc.templates.len(),
        "template names are unique"
    );
}

#[test]
fn tables_are_dropped_but_their_links_count() {
    let doc = fixture("Constructive_vote_of_no_confidence");
    assert!(!doc.text.contains("Opposition candidate"));
    assert!(!doc.text.contains("background:#FFDEAD"));
    // Links inside the table of votes are still links of the page.
    assert_eq!(link(&doc, "Rainer Barzel"), Some("Rainer Barzel"));
    assert_eq!(
        link(&doc, "Christian Democratic Union (Germany)"),
        Some("CDU")
    );
    assert_eq!(doc.sections[1].heading, "Germany");
    assert_eq!(
        doc.categories,
        ["German constitutional law", "Motions of no confidence"]
    );
}

#[test]
fn redirects_name_their_target() {
    let doc = fixture("AccessibleComputing");
    assert_eq!(doc.redirect.as_deref(), Some("Computer accessibility"));
    assert_eq!(doc.text, "Computer accessibility");
    assert_eq!(doc.templates, ["Redr"]);
}

#[test]
fn real_world_breakage() {
    // Unbalanced markup stays literal text instead of swallowing the page.
    let doc = parse(
        None,
        "a {{unclosed template and [[unclosed link\n\n== H ==\nafter <ref>unclosed ref",
    );
    assert_eq!(
        doc.sections[0].text,
        "a {{unclosed template and [[unclosed link"
    );
    assert_eq!(doc.sections[1].text, "after unclosed ref");
    // Nested templates and tables.
    let doc = parse(
        None,
        "x {{a|{{b|{{c}}}}|d}} y\n{|\n|{{t|\n{|\n|inner [[L]]\n|}\n}}\n|}\nz",
    );
    assert_eq!(doc.text, "x y\n\nz");
    assert_eq!(doc.templates, ["A", "T"]);
    assert_eq!(
        doc.links.len(),
        0,
        "links inside templates are template arguments"
    );
    // Entities, named and numeric.
    assert_eq!(
        parse(None, "&lt;b&gt; &amp; &eacute; &#8212; &#x41;").text,
        "<b> & é — A"
    );
    // HTML comments and tags.
    assert_eq!(
        parse(
            None,
            "a<!-- hidden -->b <span class=\"x\">c</span> <div>d</div>"
        )
        .text,
        "ab c d"
    );
}

#[test]
fn very_long_pages_parse_in_linear_time() {
    let page = std::fs::read_to_string(format!(
        "{}/tests/fixtures/Albedo.wiki",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let long = page.repeat(60); // ~2 MB
    let started = std::time::Instant::now();
    let doc = parse(None, &long);
    assert_eq!(doc.categories.len(), 6);
    assert!(doc.sections.len() > 60 * 20);
    // A generous bound (about 100x the measured time) that only catches
    // super-linear behaviour.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
