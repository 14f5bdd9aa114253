//! Text and language quality of the document plugins on a multilingual set
//! of wiki pages (`tests/quality/`, see its README): the word overlap
//! (bag-of-words F1) between parse's output and a reference renderer's
//! text, and whether lang detects each page's language from parse's text.
//!
//! F1 is computed on the document's text alone, on its text plus its
//! tables (captions and cells: what the document holds), and with the
//! stage option `table_text = true`. Words are lower-cased runs of letters
//! and digits; in Chinese, Japanese and Thai, which are written without
//! spaces, each character counts as a word.
//!
//! Run: `cargo bench -p weir-tests --bench quality`. Regenerate the
//! reference texts with `scripts/quality-reference.sh` (pandoc).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use weir_plugin_lang::{Config, Lang};
use weir_plugin_parse::{Document, Options, parse_with};

/// A page of the set: its language and where its wikitext is.
struct Page {
    name: String,
    language: String,
    wikitext: PathBuf,
}

fn pages(root: &Path) -> Vec<Page> {
    let mut pages: Vec<Page> = std::fs::read_dir(root.join("tests/quality/pages"))
        .expect("tests/quality/pages")
        .map(|entry| entry.expect("a directory entry").path())
        .chain(
            ["Albedo", "Constructive_vote_of_no_confidence"]
                .map(|name| root.join(format!("plugins/parse/tests/fixtures/{name}.wiki"))),
        )
        .map(|wikitext| {
            let stem = wikitext.file_stem().unwrap().to_string_lossy().into_owned();
            let name = if stem.contains('-') {
                stem
            } else {
                format!("en-{stem}")
            };
            let language = name.split('-').next().unwrap().to_owned();
            Page {
                name,
                language,
                wikitext,
            }
        })
        .collect();
    pages.sort_by(|a, b| a.name.cmp(&b.name));
    pages
}

/// Whether `c` belongs to a script written without spaces between words.
fn spaceless(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0E7F // Thai
        | 0x3040..=0x30FF // Hiragana, Katakana
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF // CJK ideographs
    )
}

/// The bag of words of `text`.
fn words(text: &str) -> HashMap<String, usize> {
    let mut bag = HashMap::new();
    let mut word = String::new();
    let flush = |word: &mut String, bag: &mut HashMap<String, usize>| {
        if !word.is_empty() {
            *bag.entry(std::mem::take(word)).or_default() += 1;
        }
    };
    for c in text.chars() {
        if spaceless(c) {
            flush(&mut word, &mut bag);
            *bag.entry(c.to_string()).or_default() += 1;
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else {
            flush(&mut word, &mut bag);
        }
    }
    flush(&mut word, &mut bag);
    bag
}

/// Bag-of-words F1 of `text` against `reference`.
fn f1(text: &str, reference: &str) -> f64 {
    let (ours, theirs) = (words(text), words(reference));
    let common: usize = ours
        .iter()
        .map(|(word, n)| (*n).min(theirs.get(word).copied().unwrap_or(0)))
        .sum();
    let (total_ours, total_theirs) = (ours.values().sum::<usize>(), theirs.values().sum::<usize>());
    if common == 0 {
        return 0.0;
    }
    let precision = common as f64 / total_ours as f64;
    let recall = common as f64 / total_theirs as f64;
    2.0 * precision * recall / (precision + recall)
}

/// The document's text followed by its tables' captions and cells.
fn text_and_tables(document: &Document) -> String {
    let mut all = document.text.clone();
    for table in &document.tables {
        for cell in table
            .caption
            .iter()
            .chain(&table.header)
            .chain(table.rows.iter().flatten())
        {
            all.push('\n');
            all.push_str(cell);
        }
    }
    all
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let defaults = Options::default();
    let with_tables = Options {
        table_text: true,
        ..Options::default()
    };
    let mut lang = Lang::with_config(Config::default());
    println!("## Text quality: bag-of-words F1 against the reference text\n");
    println!(
        "| page | F1 text | F1 text + tables | F1 `table_text = true` | tables | language (detected) |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    let mut sums = [0.0; 3];
    let mut per_language: HashMap<String, (usize, usize)> = HashMap::new();
    let pages = pages(root);
    for page in &pages {
        let wikitext = std::fs::read_to_string(&page.wikitext).expect("the page");
        let reference_path = root.join(format!("tests/quality/reference/{}.txt", page.name));
        let reference = std::fs::read_to_string(&reference_path).unwrap_or_else(|_| {
            panic!(
                "{}: missing; run scripts/quality-reference.sh",
                reference_path.display()
            )
        });
        let document = parse_with(&defaults, Some(&page.name), &wikitext);
        let scores = [
            f1(&document.text, &reference),
            f1(&text_and_tables(&document), &reference),
            f1(&parse_with(&with_tables, None, &wikitext).text, &reference),
        ];
        for (sum, score) in sums.iter_mut().zip(scores) {
            *sum += score;
        }
        let detected = lang.analyse(&document.text).detected.map(|d| d.code);
        let correct = detected.as_deref() == Some(page.language.as_str());
        let entry = per_language.entry(page.language.clone()).or_default();
        entry.0 += usize::from(correct);
        entry.1 += 1;
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {} | {} |",
            page.name,
            scores[0],
            scores[1],
            scores[2],
            document.tables.len(),
            detected.as_deref().unwrap_or("none"),
        );
    }
    let n = pages.len() as f64;
    println!(
        "| **mean of {} pages** | **{:.2}** | **{:.2}** | **{:.2}** | | |",
        pages.len(),
        sums[0] / n,
        sums[1] / n,
        sums[2] / n
    );
    println!("\n## Language detection on the pages' text (parse, then lang)\n");
    println!("| language | correct |");
    println!("|---|---:|");
    let mut languages: Vec<_> = per_language.into_iter().collect();
    languages.sort();
    for (language, (correct, total)) in languages {
        println!("| {language} | {correct}/{total} |");
    }
}
