//! Property tests: the parser never panics and always terminates, on
//! wikitext-shaped noise (markup characters, multi-byte text, tags, entities)
//! and on arbitrary strings. Runs a bounded number of cases in CI
//! (`PROPTEST_CASES` raises it for a longer fuzzing session).

use proptest::prelude::*;
use weir_plugin_parse::{Options, parse, parse_with};

/// Fragments that exercise every construct, mixed at random.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{{".to_owned()),
        Just("}}".to_owned()),
        Just("{{{".to_owned()),
        Just("}}}".to_owned()),
        Just("[[".to_owned()),
        Just("]]".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("|".to_owned()),
        Just("\n{|".to_owned()),
        Just("\n|}".to_owned()),
        Just("\n|-\n".to_owned()),
        Just("\n== ".to_owned()),
        Just(" ==\n".to_owned()),
        Just("'''".to_owned()),
        Just("''".to_owned()),
        Just("<ref>".to_owned()),
        Just("</ref>".to_owned()),
        Just("<ref name=x/>".to_owned()),
        Just("<!--".to_owned()),
        Just("-->".to_owned()),
        Just("<nowiki>".to_owned()),
        Just("</nowiki>".to_owned()),
        Just("<span style=\"a\">".to_owned()),
        Just("</span>".to_owned()),
        Just("<".to_owned()),
        Just(">".to_owned()),
        Just("&amp;".to_owned()),
        Just("&nbsp;".to_owned()),
        Just("&#x2014;".to_owned()),
        Just("&".to_owned()),
        Just("Category:".to_owned()),
        Just("File:".to_owned()),
        Just("de:".to_owned()),
        Just(":".to_owned()),
        Just("http://example.org ".to_owned()),
        Just("__TOC__".to_owned()),
        Just("#REDIRECT ".to_owned()),
        Just("\n* ".to_owned()),
        Just("\n".to_owned()),
        Just("<pre>".to_owned()),
        Just("</pre>".to_owned()),
        Just("<math>".to_owned()),
        Just("</math>".to_owned()),
        Just("<br/>".to_owned()),
        Just("{{#if:".to_owned()),
        Just("&#123;".to_owned()),
        Just("_".to_owned()),
        Just("=".to_owned()),
        Just("\t".to_owned()),
        // Tables: cells, header cells, captions, HTML tables.
        Just("\n|".to_owned()),
        Just("\n!".to_owned()),
        Just("||".to_owned()),
        Just("!!".to_owned()),
        Just("\n|+".to_owned()),
        Just("<table>".to_owned()),
        Just("</table>".to_owned()),
        Just("<tr>".to_owned()),
        Just("<td>".to_owned()),
        Just("</td>".to_owned()),
        Just("<th>".to_owned()),
        Just("<caption>".to_owned()),
        // Apostrophe runs of every length, and tags between them.
        "'{1,7}",
        Just("<sub>".to_owned()),
        Just("</sub>".to_owned()),
        "[a-zé−ɛ東 ]{0,8}",
        // Characters of the block the markers come from, in the page itself.
        "[\u{F75B}\u{F7F0}\u{F7F1}\u{F7FF}]",
    ]
}

/// Whether `c` is in the private-use block parse's markers come from.
fn is_marker(c: char) -> bool {
    ('\u{F700}'..='\u{F7FF}').contains(&c)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn wikitext_shaped_noise_never_panics(parts in prop::collection::vec(fragment(), 0..80)) {
        let text = parts.concat();
        let doc = parse(Some("T"), &text);
        // The plain text never contains more characters than the input
        // (entities only shrink), and headings come from sections.
        prop_assert!(doc.text.chars().count() <= text.chars().count() + doc.sections.len() * 2);
        // The private-use characters parse marks protected text and
        // references with (the input has none) never reach the output.
        let json = String::from_utf8(doc.to_json()).unwrap();
        prop_assert!(!json.chars().any(is_marker), "{json}");
        // Tables in the text as well: the same guarantees.
        let with_tables = Options { table_text: true, ..Options::default() };
        let doc = parse_with(&with_tables, Some("T"), &text);
        let json = String::from_utf8(doc.to_json()).unwrap();
        prop_assert!(!json.chars().any(is_marker), "{json}");
        prop_assert_eq!(doc.to_json(), serde_json::to_vec(&doc).unwrap());
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        let doc = parse(Some(&text), &text);
        // The hand-written JSON is serde_json's, whatever the strings hold.
        prop_assert_eq!(doc.to_json(), serde_json::to_vec(&doc).unwrap());
    }
}

#[test]
fn deeply_nested_and_unbalanced_input_is_fast() {
    let start = std::time::Instant::now();
    for input in [
        "[[".repeat(100_000),
        "{{".repeat(100_000),
        "{{a|".repeat(50_000) + &"}}".repeat(50_000),
        "[[a|".repeat(50_000) + &"]]".repeat(50_000),
        "<ref>".repeat(50_000),
        "\n{|".repeat(50_000),
        "[[File:x|".repeat(20_000),
        "'".repeat(200_000),
        "''a'''b ".repeat(50_000),
        "\n{|\n|a||b".repeat(50_000),
        "<table><tr><td>".repeat(30_000),
        "\n{|\n|-\n! a !! b\n| c".repeat(20_000) + &"\n|}".repeat(20_000),
    ] {
        parse(None, &input);
    }
    // Generous bound: quadratic behaviour on these inputs takes minutes.
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}
