//! Writing long JSON strings fast.
//!
//! `serde_json` escapes a string by looking at each byte in turn. For the
//! long texts document plugins emit (a page's plain text is tens of
//! kilobytes) that loop is a visible share of a plugin's time, more so in
//! the sandbox, where every loop iteration also pays an interruption check.
//! [`write_json_string`] produces exactly the bytes `serde_json` produces
//! (tested against it), but skips eight bytes at a time while none of them
//! needs escaping. Plugins that emit large texts can write their output
//! with it; everything else should simply use `serde_json`.

/// `0x01` in every byte of a `u64`.
const ONES: u64 = u64::from_le_bytes([1; 8]);
/// The high bit of every byte of a `u64`.
const HIGH_BITS: u64 = ONES << 7;

/// The high bit of each byte of `x` below `n` (`n <= 0x80`) is set in
/// `below(x, n)`, and possibly bits above such a byte: the result is
/// non-zero iff some byte of `x` is below `n`.
const fn below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(ONES * n as u64) & !x & HIGH_BITS
}

/// Whether any byte of `chunk` must be escaped in a JSON string: `"`, `\`
/// or a control character (below 0x20).
const fn needs_escape(chunk: u64) -> bool {
    // A byte equal to `c` is a zero byte of `chunk ^ c..`: below 1.
    let quote = below(chunk ^ (ONES * b'"' as u64), 1);
    let backslash = below(chunk ^ (ONES * b'\\' as u64), 1);
    quote | backslash | below(chunk, 0x20) != 0
}

/// Append `value` to `out` as a JSON string (quotes included), escaped
/// exactly as `serde_json` escapes it.
pub fn write_json_string(out: &mut Vec<u8>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = value.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8)
            && !needs_escape(u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
        {
            i += 8;
            continue;
        }
        let byte = bytes[i];
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0C => b"\\f",
            0x00..=0x1F => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xF)],
            ],
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[copied..i]);
        out.extend_from_slice(escape);
        i += 1;
        copied = i;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(value: &str) -> String {
        let mut out = Vec::new();
        write_json_string(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_character_below_0x80_is_escaped_like_serde_json() {
        for byte in 0..0x80u8 {
            let c = char::from(byte);
            for text in [format!("{c}"), format!("plain text {c} and more text")] {
                assert_eq!(written(&text), serde_json::to_string(&text).unwrap());
            }
        }
    }

    #[test]
    fn long_and_multibyte_texts_are_escaped_like_serde_json() {
        let text = "Ünïcødé \"quoted\" \\ back\tslash\n\u{1}\u{1F}\u{7F} 東京 ".repeat(50);
        assert_eq!(written(&text), serde_json::to_string(&text).unwrap());
        assert_eq!(written(""), "\"\"");
    }
}
