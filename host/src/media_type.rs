//! Matching content types (`type/subtype`, with `*` wildcards), used for the
//! chain's load-time and run-time type checks. Parameters after `;` are
//! ignored and comparison is ASCII case-insensitive, as for MIME types.

/// Whether the concrete (or pattern) type `actual` is covered by `pattern`:
/// `*/*` covers everything, `text/*` covers every `text/...`.
pub fn matches(pattern: &str, actual: &str) -> bool {
    let (p_type, p_sub) = split(pattern);
    let (a_type, a_sub) = split(actual);
    (p_type == "*" || p_type.eq_ignore_ascii_case(a_type))
        && (p_sub == "*" || p_sub.eq_ignore_ascii_case(a_sub))
}

/// Whether any of `patterns` covers `actual`.
pub fn any_matches(patterns: &[String], actual: &str) -> bool {
    patterns.iter().any(|pattern| matches(pattern, actual))
}

/// Whether two patterns have a type in common (either may contain wildcards).
pub fn overlap(a: &str, b: &str) -> bool {
    let (a_type, a_sub) = split(a);
    let (b_type, b_sub) = split(b);
    let part = |x: &str, y: &str| x == "*" || y == "*" || x.eq_ignore_ascii_case(y);
    part(a_type, b_type) && part(a_sub, b_sub)
}

fn split(media_type: &str) -> (&str, &str) {
    let essence = media_type.split(';').next().unwrap_or("").trim();
    essence.split_once('/').unwrap_or((essence, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_parameters() {
        assert!(matches("*/*", "text/x-wiki"));
        assert!(matches("text/*", "text/x-wiki; charset=utf-8"));
        assert!(matches("TEXT/X-Wiki", "text/x-wiki"));
        assert!(!matches("text/plain", "text/x-wiki"));
        assert!(!matches("application/json", "text/plain"));
    }

    #[test]
    fn overlap_is_symmetric() {
        assert!(overlap("*/*", "text/plain"));
        assert!(overlap("text/plain", "*/*"));
        assert!(overlap("text/*", "text/plain"));
        assert!(!overlap("text/*", "application/json"));
        assert!(!overlap("text/plain", "text/html"));
    }
}
