//! The topic model artifact: a linear softmax classifier over hashed
//! features, with int8 weights (one scale per class).
//!
//! Binary format, little-endian:
//! ```text
//! "WEIRTOPC"  magic, 8 bytes
//! u32         format version (1)
//! u32         buckets (power of two)
//! u32         classes
//! u32         flags (bit 0: bigram features)
//! classes x   (u16 length, UTF-8 label)
//! classes x   f32 bias
//! classes x   f32 scale
//! buckets x classes  i8 weight (row-major by bucket)
//! ```
//! Inference is deterministic: the same bytes and input always give the
//! same probabilities, on any platform.

use crate::features::Features;

const MAGIC: &[u8; 8] = b"WEIRTOPC";
const VERSION: u32 = 1;

/// Why model bytes are unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError(pub String);

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid topic model: {}", self.0)
    }
}

/// A loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Class labels, in weight order.
    pub labels: Vec<String>,
    /// Number of feature buckets.
    pub buckets: u32,
    /// Whether features include bigrams.
    pub bigrams: bool,
    /// Per-class bias.
    pub bias: Vec<f32>,
    /// Per-class weight scale.
    pub scale: Vec<f32>,
    /// Quantised weights, `buckets * classes`.
    pub weights: Vec<i8>,
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        if self.0.len() < n {
            return Err(ModelError("truncated".into()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>, ModelError> {
        Ok(self
            .take(checked_size(n, 4)?)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }
}

/// `count * size` in bytes, refused rather than wrapped when a corrupt
/// header's dimensions overflow (`usize` is 32 bits in the plugin).
fn checked_size(count: usize, size: usize) -> Result<usize, ModelError> {
    count
        .checked_mul(size)
        .ok_or_else(|| ModelError("dimensions too large".into()))
}

impl Model {
    /// Parse model bytes.
    pub fn parse(bytes: &[u8]) -> Result<Model, ModelError> {
        let mut c = Cursor(bytes);
        if c.take(8)? != MAGIC {
            return Err(ModelError("bad magic".into()));
        }
        let version = c.u32()?;
        if version != VERSION {
            return Err(ModelError(format!("unsupported format version {version}")));
        }
        let buckets = c.u32()?;
        let classes = c.u32()? as usize;
        let flags = c.u32()?;
        if !buckets.is_power_of_two() || classes == 0 {
            return Err(ModelError("bad dimensions".into()));
        }
        let labels = (0..classes)
            .map(|_| {
                let len = u16::from_le_bytes(c.take(2)?.try_into().expect("2 bytes"));
                String::from_utf8(c.take(usize::from(len))?.to_vec())
                    .map_err(|_| ModelError("label is not UTF-8".into()))
            })
            .collect::<Result<_, _>>()?;
        let bias = c.f32s(classes)?;
        let scale = c.f32s(classes)?;
        let weights: Vec<i8> = c
            .take(checked_size(buckets as usize, classes)?)?
            .iter()
            .map(|b| i8::from_le_bytes([*b]))
            .collect();
        if !c.0.is_empty() {
            return Err(ModelError("trailing bytes".into()));
        }
        Ok(Model {
            labels,
            buckets,
            bigrams: flags & 1 == 1,
            bias,
            scale,
            weights,
        })
    }

    /// Serialise (the inverse of [`Model::parse`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for v in [
            VERSION,
            self.buckets,
            self.labels.len() as u32,
            u32::from(self.bigrams),
        ] {
            out.extend(v.to_le_bytes());
        }
        for label in &self.labels {
            out.extend((label.len() as u16).to_le_bytes());
            out.extend(label.as_bytes());
        }
        for v in self.bias.iter().chain(&self.scale) {
            out.extend(v.to_le_bytes());
        }
        out.extend(self.weights.iter().map(|w| w.to_le_bytes()[0]));
        out
    }

    /// Class probabilities for a feature vector (softmax of the logits).
    pub fn predict(&self, features: &Features) -> Vec<f32> {
        let classes = self.labels.len();
        let mut dot = vec![0.0f32; classes];
        for &(bucket, value) in features {
            let row = &self.weights[bucket as usize * classes..][..classes];
            for (d, w) in dot.iter_mut().zip(row) {
                *d += value * f32::from(*w);
            }
        }
        let logits: Vec<f32> = (0..classes)
            .map(|k| self.bias[k] + dot[k] * self.scale[k])
            .collect();
        softmax(&logits)
    }
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Model {
        Model {
            labels: vec!["a".into(), "b".into()],
            buckets: 4,
            bigrams: true,
            bias: vec![0.0, 0.5],
            scale: vec![0.1, 0.1],
            weights: vec![10, -10, 0, 0, 0, 0, -5, 5],
        }
    }

    #[test]
    fn round_trips_and_predicts() {
        let model = tiny();
        let parsed = Model::parse(&model.to_bytes()).unwrap();
        assert_eq!(parsed, model);
        let p = parsed.predict(&vec![(0, 1.0)]);
        assert!(p[0] > p[1]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn corrupt_bytes_are_rejected() {
        let bytes = tiny().to_bytes();
        assert!(Model::parse(&bytes[..bytes.len() - 1]).is_err());
        assert!(Model::parse(b"nope").is_err());
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Model::parse(&extra).is_err());
        // Dimensions whose sizes overflow a 32-bit (or any) `usize`.
        assert!(checked_size(usize::MAX / 2, 4).is_err());
        let mut huge = MAGIC.to_vec();
        for v in [VERSION, 1 << 31, u32::MAX, 0] {
            huge.extend(v.to_le_bytes());
        }
        assert!(Model::parse(&huge).is_err());
    }
}
