//! Writing long JSON strings fast.
//!
//! `serde_json` escapes a string by looking at each byte in turn. For the
//! long texts document plugins emit (a page's plain text is tens of
//! kilobytes) that loop is a visible share of a plugin's time, more so in
//! the sandbox, where every loop iteration also pays an interruption check.
//! [`write_json_string`] produces exactly the bytes `serde_json` produces
//! (tested against it), but classifies 16 bytes at a time (SIMD compares
//! through the `wide` crate: WebAssembly SIMD in a plugin, SSE2 natively)
//! into a bit mask of the bytes that need escaping, and copies the runs in
//! between whole. Plugins that emit large texts can write their output with
//! it; everything else should simply use `serde_json`.

use wide::u8x16;

/// Bytes classified at once.
const BLOCK: usize = 16;

/// Bit `k` is set when byte `k` of `block` must be escaped in a JSON string:
/// `"`, `\` or a control character (below 0x20).
#[inline]
fn escape_mask(block: [u8; BLOCK]) -> u32 {
    let block = u8x16::new(block);
    let control = block.min(u8x16::splat(0x1F)).simd_eq(block);
    let hits = control | block.simd_eq(u8x16::splat(b'"')) | block.simd_eq(u8x16::splat(b'\\'));
    hits.to_bitmask()
}

/// Append the escape sequence of `byte` (one that [`escape_mask`] marks),
/// as `serde_json` writes it.
fn push_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0C => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xF)],
        ]),
    }
}

/// Append `value` to `out` as a JSON string (quotes included), escaped
/// exactly as `serde_json` escapes it.
pub fn write_json_string(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut copied = 0;
    for (index, chunk) in bytes.chunks(BLOCK).enumerate() {
        let start = index * BLOCK;
        let block = match chunk.first_chunk() {
            Some(whole) => *whole,
            None => {
                let mut padded = [0u8; BLOCK];
                padded[..chunk.len()].copy_from_slice(chunk);
                padded
            }
        };
        // The zero padding of a short last block would count as control
        // characters: keep only the bits of real bytes.
        let mut mask = escape_mask(block) & (u32::MAX >> (32 - chunk.len()));
        while mask != 0 {
            let at = start + mask.trailing_zeros() as usize;
            out.extend_from_slice(&bytes[copied..at]);
            push_escape(out, bytes[at]);
            copied = at + 1;
            mask &= mask - 1;
        }
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

    proptest::proptest! {
        #[test]
        fn any_text_is_escaped_like_serde_json(
            text in "(\\PC|[\"\\\\\u{0}-\u{1F}\u{7F}]){0,80}",
        ) {
            proptest::prop_assert_eq!(written(&text), serde_json::to_string(&text).unwrap());
        }
    }

    #[test]
    fn long_and_multibyte_texts_are_escaped_like_serde_json() {
        let text = "Ünïcødé \"quoted\" \\ back\tslash\n\u{1}\u{1F}\u{7F} 東京 ".repeat(50);
        assert_eq!(written(&text), serde_json::to_string(&text).unwrap());
        assert_eq!(written(""), "\"\"");
    }
}
