//! Feature extraction shared by training (`examples/train.rs`) and
//! inference, so the two can never disagree: lower-cased alphanumeric
//! tokens and adjacent-token bigrams, hashed (FNV-1a, 64 bit) into a fixed
//! number of buckets, weighted `1 + ln(count)` and L2-normalised.

/// A sparse feature vector: (bucket, value) pairs, buckets ascending.
pub type Features = Vec<(u32, f32)>;

/// FNV-1a's 64-bit offset basis: the seed of an unkeyed hash.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `bytes`, from `seed` ([`FNV_OFFSET`] for the plain
/// hash). Stable across platforms and releases, which hashed features and
/// the training split need.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>, seed: u64) -> u64 {
    bytes
        .into_iter()
        .fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// Features of `text` over `buckets` buckets (a power of two).
pub fn extract(text: &str, buckets: u32, bigrams: bool) -> Features {
    debug_assert!(buckets.is_power_of_two());
    let mask = u64::from(buckets - 1);
    let mut hashed: Vec<u32> = Vec::new();
    let mut previous: Option<u64> = None;
    let mut lower = String::new();
    for token in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
    {
        lower.clear();
        weir_sdk::push_lowercase(&mut lower, token);
        let h = fnv1a(lower.bytes(), FNV_OFFSET);
        hashed.push((h & mask) as u32);
        if bigrams && let Some(p) = previous {
            // A bigram is the pair of token hashes, hashed again.
            let pair = fnv1a(
                p.to_le_bytes().into_iter().chain(h.to_le_bytes()),
                FNV_OFFSET ^ 1,
            );
            hashed.push((pair & mask) as u32);
        }
        previous = Some(h);
    }
    hashed.sort_unstable();
    let mut features: Features = Vec::new();
    for bucket in hashed {
        match features.last_mut() {
            Some((b, count)) if *b == bucket => *count += 1.0,
            _ => features.push((bucket, 1.0)),
        }
    }
    let mut norm = 0.0f32;
    for (_, v) in &mut features {
        *v = 1.0 + v.ln();
        norm += *v * *v;
    }
    let norm = norm.sqrt().max(f32::MIN_POSITIVE);
    for (_, v) in &mut features {
        *v /= norm;
    }
    features
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_normalised_and_case_insensitive() {
        let a = extract("The Cat sat. the cat!", 1 << 10, true);
        let b = extract("the cat SAT the CAT", 1 << 10, true);
        assert_eq!(a, b);
        let norm: f32 = a.iter().map(|(_, v)| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!(a.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn empty_text_has_no_features() {
        assert!(extract(" ... ", 1 << 10, true).is_empty());
    }
}
