//! The fallback embedder: it needs no network and no model file. It hashes words and
//! character trigrams into a fixed-size vector (feature hashing), which matches spelling
//! ("roadmap" ~ "roadmaps", shared words), not meaning.

use super::Embedder;
use crate::error::Result;

/// Feature-hashing embedder over words and character trigrams.
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dims: usize,
    name: String,
}

impl Default for HashEmbedder {
    fn default() -> Self {
        Self::new(384)
    }
}

impl HashEmbedder {
    /// An embedder producing `dims`-dimensional vectors.
    pub fn new(dims: usize) -> Self {
        HashEmbedder { dims: dims.max(8), name: format!("memsilo-hash-{}-v1", dims.max(8)) }
    }

    /// The hashing embedder a recorded embedder name stands for (`memsilo-hash-N-v1`).
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        let dims = name.strip_prefix("memsilo-hash-")?.strip_suffix("-v1")?.parse().ok()?;
        let e = HashEmbedder::new(dims);
        (e.name == name).then_some(e)
    }

    fn add(&self, v: &mut [f32], feature: &[u8], weight: f32) {
        let h = fnv1a(feature);
        let idx = (h % self.dims as u64) as usize;
        let sign = if (h >> 63) == 0 { 1.0 } else { -1.0 };
        v[idx] += sign * weight;
    }

    fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dims];
        let lower = text.to_lowercase();
        for word in lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let stem = stem(word);
            self.add(&mut v, stem.as_bytes(), 1.0);
            let padded: Vec<char> =
                std::iter::once('#').chain(stem.chars()).chain(std::iter::once('#')).collect();
            let mut buf = String::new();
            for tri in padded.windows(3) {
                buf.clear();
                buf.extend(tri);
                self.add(&mut v, buf.as_bytes(), 0.4);
            }
        }
        crate::vector::normalize(&mut v);
        v
    }
}

/// Strips a few common English suffixes so inflections share a feature.
fn stem(word: &str) -> &str {
    for suffix in ["ing", "ies", "es", "ed", "s"] {
        if word.len() > suffix.len() + 2 {
            if let Some(s) = word.strip_suffix(suffix) {
                return s;
            }
        }
    }
    word
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Embedder for HashEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimensions(&self) -> usize {
        self.dims
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }

    fn is_fast(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::dot;

    #[test]
    fn related_texts_score_higher_than_unrelated_ones() {
        let e = HashEmbedder::default();
        let v = e
            .embed(&[
                "product roadmap for Q3",
                "Acme Q3 roadmap: launch Omega in September",
                "the cat sat on the mat",
            ])
            .unwrap();
        assert!(dot(&v[0], &v[1]) > 0.3, "{}", dot(&v[0], &v[1]));
        assert!(dot(&v[0], &v[2]).abs() < 0.2, "{}", dot(&v[0], &v[2]));
        assert!((dot(&v[0], &v[0]) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn empty_text_gives_a_zero_vector_not_nan() {
        let v = HashEmbedder::default().embed(&["  "]).unwrap();
        assert!(v[0].iter().all(|x| *x == 0.0));
    }
}
