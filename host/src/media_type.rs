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

/// Whether `media_type` is one concrete media type by RFC 6838's grammar:
/// `type/subtype` of restricted-name characters (no wildcards), then any
/// number of `; name=value` parameters (value a token or a quoted string),
/// with no control characters anywhere.
pub fn is_concrete(media_type: &str) -> bool {
    let mut parts = media_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    is_restricted_name(kind)
        && is_restricted_name(subtype)
        && parts.all(|parameter| {
            let Some((name, value)) = parameter.trim().split_once('=') else {
                return false;
            };
            let quoted = value.len() >= 2 && value.starts_with('"') && value.ends_with('"');
            is_token(name)
                && (is_token(value)
                    || (quoted && !value[1..value.len() - 1].chars().any(|c| c.is_control())))
        })
}

/// RFC 6838 `restricted-name`: 1 to 127 characters, the first alphanumeric.
fn is_restricted_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 127
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
}

/// RFC 9110 `token`.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
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
    fn concrete_types_follow_the_grammar() {
        for good in [
            "text/plain",
            "application/vnd.weir.parsed+json",
            "text/plain; charset=utf-8",
            "text/plain;charset=\"utf-8\"",
        ] {
            assert!(is_concrete(good), "{good}");
        }
        for bad in [
            "not a type \u{0}\n",
            "text",
            "text/",
            "*/*",
            "text/*",
            "text/plain; charset",
            "text/pl ain",
            "text/plain; a=\"\n\"",
            "",
        ] {
            assert!(!is_concrete(bad), "{bad:?}");
        }
        assert!(!is_concrete(&format!("text/{}", "x".repeat(128))));
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
