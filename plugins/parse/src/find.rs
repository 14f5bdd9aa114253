//! Skipping plain text: the next position holding any byte of a small set.
//!
//! The passes spend most of their time between markup. Looking at each byte
//! in turn costs a branch per byte, and inside the sandbox also an
//! interruption check per loop iteration. [`ByteFinder`] instead classifies
//! 16 bytes at a time with SIMD compares (WebAssembly SIMD in the component,
//! SSE2 natively, through the `wide` crate) into a bit mask of the bytes in
//! the set, and answers the following queries in that block from the mask.
//! Wikitext has markup every few dozen bytes, so most queries cost a shift
//! and a count of trailing zeros; a search function (`memchr3`) would pay its
//! set-up again for every one.
//!
//! Invariant: the finder keeps the mask of one block of up to 16 bytes; a
//! query inside that block reuses it, and a query past it classifies blocks
//! from the query's position on. A pass whose queries only move forward
//! therefore classifies every byte at most once: the passes stay linear in
//! the text length.

use wide::u8x16;

/// Bytes classified at once.
const BLOCK: usize = 16;

/// Finds the next occurrence of any of up to six bytes in a haystack.
pub struct ByteFinder<'a> {
    haystack: &'a [u8],
    /// Each byte of the set, in every lane.
    needles: [u8x16; 6],
    /// Start of the block `mask` describes (`usize::MAX`: none yet).
    block: usize,
    /// Bit `k` is set when `haystack[block + k]` is in the set.
    mask: u32,
}

impl<'a> ByteFinder<'a> {
    /// A finder for any of `bytes` in `haystack` (repeat a byte to search
    /// for fewer than six).
    pub fn new(haystack: &'a [u8], bytes: [u8; 6]) -> Self {
        ByteFinder {
            haystack,
            needles: bytes.map(u8x16::splat),
            block: usize::MAX,
            mask: 0,
        }
    }

    /// The first position at or after `from` holding one of the bytes, or
    /// the haystack's length if there is none.
    #[inline]
    pub fn next_from(&mut self, from: usize) -> usize {
        let len = self.haystack.len();
        if from >= len {
            return len;
        }
        if !(self.block <= from && from - self.block < BLOCK) {
            self.classify(from);
        }
        let mut at = from;
        loop {
            let ahead = self.mask >> (at - self.block);
            if ahead != 0 {
                return at + ahead.trailing_zeros() as usize;
            }
            at = self.block + BLOCK;
            if at >= len {
                return len;
            }
            self.classify(at);
        }
    }

    /// Compute the mask of the block starting at `start` (< haystack length).
    #[inline]
    fn classify(&mut self, start: usize) {
        let rest = &self.haystack[start..];
        let valid = rest.len().min(BLOCK);
        let lanes: [u8; BLOCK] = match rest.first_chunk() {
            Some(whole) => *whole,
            None => {
                let mut padded = [0u8; BLOCK];
                padded[..valid].copy_from_slice(rest);
                padded
            }
        };
        let block = u8x16::new(lanes);
        let [a, b, c, d, e, f] = self.needles;
        let hits = (block.simd_eq(a) | block.simd_eq(b))
            | (block.simd_eq(c) | block.simd_eq(d))
            | (block.simd_eq(e) | block.simd_eq(f));
        // Past the end, the zero padding may equal a needle: drop those bits.
        self.mask = hits.to_bitmask() & (u32::MAX >> (32 - valid));
        self.block = start;
    }
}

/// The first position of the ASCII byte `byte` in `text`. (`str::find` with
/// a `char` searches a machine word at a time, 4 bytes in the sandbox;
/// `memchr` searches 16 bytes at a time there.)
pub fn byte(byte: u8, text: &str) -> Option<usize> {
    memchr::memchr(byte, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn finds_what_a_byte_by_byte_scan_finds(
            haystack in proptest::collection::vec(proptest::sample::select(b"ab{[|\n\xEFz".to_vec()), 0..200),
            queries in proptest::collection::vec(0usize..220, 1..40),
        ) {
            let set = [b'{', b'[', b'|', b'\n', 0xEF, 0xEF];
            let mut finder = ByteFinder::new(&haystack, set);
            for from in queries {
                let expected = (from..haystack.len())
                    .find(|&i| set.contains(&haystack[i]))
                    .unwrap_or(haystack.len());
                proptest::prop_assert_eq!(finder.next_from(from), expected);
            }
        }
    }
}
