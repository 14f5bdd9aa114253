//! Eight ASCII bytes at a time: byte classes of a `u64` that holds eight
//! bytes of text (little-endian), as masks with one bit per byte (its high
//! bit). The counts and the top-terms word splitter use them so that their
//! inner loops take eight bytes per iteration instead of one; in the sandbox
//! every loop iteration also pays a deadline check.
//!
//! Invariant: the classifiers require every byte of their input to be ASCII
//! (< 0x80), which [`chunk_at`] guarantees: then no addition carries from
//! one byte into the next.

/// `0x01` in every byte of a `u64`.
pub const ONES: u64 = u64::from_le_bytes([1; 8]);
/// The high bit of every byte of a `u64`.
pub const HIGH_BITS: u64 = ONES << 7;

/// The eight bytes at `i` as a chunk, if there are eight and all are ASCII.
#[inline]
pub fn chunk_at(bytes: &[u8], i: usize) -> Option<u64> {
    let chunk = u64::from_le_bytes(bytes.get(i..i + 8)?.try_into().expect("8 bytes"));
    (chunk & HIGH_BITS == 0).then_some(chunk)
}

/// The index (0 to 7) of the byte that the lowest bit of `mask` marks.
#[inline]
pub fn first_marked(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

/// The high bit of each byte of `x` that lies in `lo..=hi`.
#[inline]
pub const fn in_range(x: u64, lo: u8, hi: u8) -> u64 {
    let at_least_lo = x + ONES * (0x80 - lo as u64);
    let above_hi = x + ONES * (0x7F - hi as u64);
    at_least_lo & !above_hi & HIGH_BITS
}

/// The high bit of each byte of `x` that is alphanumeric.
#[inline]
pub const fn alphanumeric(x: u64) -> u64 {
    // Setting bit 5 folds `A..=Z` onto `a..=z` and maps nothing else there.
    in_range(x | (ONES * 0x20), b'a', b'z') | in_range(x, b'0', b'9')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphanumeric_marks_exactly_the_ascii_alphanumerics() {
        for b in 0..0x80u8 {
            for pos in 0..8 {
                let mut bytes = *b"........";
                bytes[pos] = b;
                let mask = alphanumeric(chunk_at(&bytes, 0).unwrap());
                let expected = if b.is_ascii_alphanumeric() {
                    0x80 << (8 * pos)
                } else {
                    0
                };
                assert_eq!(mask, expected, "byte {b:#x} at {pos}");
            }
        }
    }

    #[test]
    fn chunks_are_eight_ascii_bytes() {
        assert_eq!(
            chunk_at(b"abcdefgh", 0),
            Some(u64::from_le_bytes(*b"abcdefgh"))
        );
        assert_eq!(chunk_at(b"abcdefg", 0), None);
        assert_eq!(chunk_at("abcdefgé".as_bytes(), 0), None);
        assert_eq!(first_marked(0x80 << 24), 3);
    }
}
