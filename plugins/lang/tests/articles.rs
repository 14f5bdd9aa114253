//! Language detection on whole articles, shaped as parse's text: headings as
//! paragraphs of their own, and (Chinese, Japanese, Thai) long runs of text
//! without spaces. Before, a long Japanese article got no language: the
//! samples were cut back to their last space, which in Japanese text is the
//! break after a heading or a Latin name in the lead, leaving too few
//! letters to detect.
//!
//! The articles (`data/articles/`, see its README) are short; real ones are
//! much longer than the samples, so each is also analysed repeated to about
//! 8 KB, which takes the sampling path that long pages take.

use weir_plugin_lang::{Config, Lang};

const ARTICLES: [(&str, &str); 7] = [
    ("ja", include_str!("data/articles/ja.txt")),
    ("zh", include_str!("data/articles/zh.txt")),
    ("th", include_str!("data/articles/th.txt")),
    ("ko", include_str!("data/articles/ko.txt")),
    ("de", include_str!("data/articles/de.txt")),
    ("ru", include_str!("data/articles/ru.txt")),
    ("en", include_str!("data/articles/en.txt")),
];

fn detected(text: &str) -> Option<String> {
    let data = Lang::with_config(Config::default()).analyse(text);
    data.detected.map(|d| d.code)
}

#[test]
fn articles_are_detected_whole() {
    for (code, article) in ARTICLES {
        assert_eq!(detected(article).as_deref(), Some(code), "{code}");
    }
}

#[test]
fn long_articles_are_detected_in_every_script() {
    for (code, article) in ARTICLES {
        let copies = 8192 / article.len() + 1;
        let long = vec![article.trim(); copies].join("\n\n");
        assert!(long.len() > 8192);
        assert_eq!(detected(&long).as_deref(), Some(code), "{code}");
    }
}
