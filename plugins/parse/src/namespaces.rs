//! The File and Category namespaces under their localized names.
//!
//! Wikis write links in their own language: `[[Bild:x.jpg|thumb|...]]` on
//! the German Wikipedia, `[[画像:x.jpg|200px|...]]` on the Japanese one,
//! `[[Kategorie:...]]`, `[[분류:...]]`. These are MediaWiki's canonical
//! names and the localized names and aliases of the major Wikipedia
//! languages (from MediaWiki's `languages/messages/Messages*.php`). Matching
//! ignores case, and `_` equals a space, as in MediaWiki titles.
//!
//! Other wikis' names come from the stage's configuration and from the
//! page's record: a dump's `<siteinfo>` declares the wiki's own names, and
//! the host's dump reader passes them on as record metadata
//! ([`FILE_METADATA`], [`CATEGORY_METADATA`]). [`Names`] holds them.

/// A namespace whose links are not prose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// Embedded files (images with captions): removed from the text.
    File,
    /// Category membership: collected, removed from the text.
    Category,
}

/// File namespace names (namespace 6), lower case.
const FILE: &[&str] = &[
    "file",
    "image", // canonical, and the old canonical name
    "datei",
    "bild",    // de
    "fichier", // fr
    "archivo",
    "imagen",   // es
    "immagine", // it
    "ficheiro",
    "arquivo",
    "imagem", // pt
    "bestand",
    "afbeelding", // nl
    "plik",
    "grafika", // pl
    "файл",
    "изображение", // ru
    "зображення",  // uk
    "ファイル",
    "画像", // ja
    "文件",
    "档案",
    "檔案",
    "图像",
    "圖像", // zh
    "파일",
    "그림", // ko
    "ملف",
    "صورة", // ar
    "fil",  // sv, da, no
    "soubor",
    "obrázek", // cs
    "dosya",
    "resim", // tr
    "پرونده",
    "تصویر", // fa
    "קובץ",
    "תמונה", // he
    "tập tin",
    "hình", // vi
    "berkas",
    "gambar", // id
];

/// Category namespace names (namespace 14), lower case.
const CATEGORY: &[&str] = &[
    "category",
    "kategorie", // de, cs
    "catégorie", // fr
    "categoría", // es
    "categoria", // it, pt
    "categorie", // nl
    "kategoria", // pl
    "категория", // ru
    "категорія", // uk
    "カテゴリ",  // ja
    "分类",
    "分類",     // zh
    "분류",     // ko
    "تصنيف",    // ar
    "kategori", // sv, da, no, tr, id
    "رده",      // fa
    "קטגוריה",  // he
    "thể loại", // vi
];

/// Record metadata with the wiki's own name of the File namespace.
pub const FILE_METADATA: &str = "file_namespace";
/// Record metadata with the wiki's own name of the Category namespace.
pub const CATEGORY_METADATA: &str = "category_namespace";

/// Namespace names known beyond the built-in ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// Normalised names (see [`normalise`]) and their namespaces.
    extra: Vec<(String, Namespace)>,
}

impl Names {
    /// Also know `name` as a name of `namespace`.
    pub fn add(&mut self, name: &str, namespace: Namespace) {
        let name = normalise(name);
        if !name.is_empty() && self.classify(&name).is_none() {
            self.extra.push((name, namespace));
        }
    }

    /// The namespace a link prefix (the part before the first `:`) names,
    /// if it is one whose links are not prose.
    pub fn classify(&self, prefix: &str) -> Option<Namespace> {
        let name = normalise(prefix);
        if FILE.contains(&name.as_str()) {
            Some(Namespace::File)
        } else if CATEGORY.contains(&name.as_str()) {
            Some(Namespace::Category)
        } else {
            self.extra
                .iter()
                .find(|(extra, _)| *extra == name)
                .map(|(_, namespace)| *namespace)
        }
    }
}

/// A namespace name as compared: trimmed, lower case, `_` as a space.
fn normalise(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| if c == '_' { ' ' } else { c })
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(prefix: &str) -> Option<Namespace> {
        Names::default().classify(prefix)
    }

    #[test]
    fn added_names_are_known_in_any_case() {
        let mut names = Names::default();
        names.add("Tiedosto", Namespace::File);
        names.add(" Luokka ", Namespace::Category);
        names.add("", Namespace::File);
        assert_eq!(names.classify("tiedosto"), Some(Namespace::File));
        assert_eq!(names.classify("LUOKKA"), Some(Namespace::Category));
        assert_eq!(names.classify("Datei"), Some(Namespace::File));
        assert_eq!(names.classify(""), None);
        assert_eq!(classify("Tiedosto"), None);
    }

    #[test]
    fn localized_names_and_aliases_in_any_case() {
        for prefix in [
            "File",
            "image",
            "Bild",
            "DATEI",
            "画像",
            "ファイル",
            "Файл",
            "파일",
            "Tập_tin",
        ] {
            assert_eq!(classify(prefix), Some(Namespace::File), "{prefix}");
        }
        for prefix in [
            "Category",
            "Kategorie",
            "Catégorie",
            "Категория",
            "カテゴリ",
            "분류",
            " Thể loại ",
        ] {
            assert_eq!(classify(prefix), Some(Namespace::Category), "{prefix}");
        }
        for prefix in ["Media", "Medium", "Help", "w", "de", ""] {
            assert_eq!(classify(prefix), None, "{prefix}");
        }
    }
}
