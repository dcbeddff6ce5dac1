//! Vector search within one namespace. Vectors are stored L2-normalised, so cosine
//! similarity is a dot product. Search is an exact scan over an in-memory copy of the
//! namespace's vectors (contiguous f32 rows), loaded on first use and dropped on write.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::datastore::{DataTables, NamespaceId};
use crate::error::{Error, Result};

/// Scales `v` to unit length (the zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

/// Dot product, written so the compiler vectorises it (8 independent accumulators).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for i in 0..chunks {
        for j in 0..8 {
            acc[j] += a[i * 8 + j] * b[i * 8 + j];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * 8..a.len().min(b.len()) {
        sum += a[i] * b[i];
    }
    sum
}

/// Checks a caller-supplied vector: finite values, sane size, not all zeros.
pub fn validate_vector(v: &[f32], field: &str) -> Result<()> {
    if v.is_empty() || v.len() > crate::namespace::MAX_DIMENSIONS as usize {
        return Err(Error::invalid(
            field,
            format!("must have 1 to {} dimensions (got {})", crate::namespace::MAX_DIMENSIONS, v.len()),
        ));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid(field, format!("element {i} is not a finite number")));
    }
    if v.iter().all(|x| *x == 0.0) {
        return Err(Error::invalid(field, "must not be the zero vector"));
    }
    Ok(())
}

/// Encodes a vector row: memory uuid ‖ f32 little-endian values.
pub(crate) fn encode_row(id: &[u8; 16], v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + v.len() * 4);
    out.extend_from_slice(id);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// All vectors of one namespace, as contiguous rows.
#[derive(Debug, Default)]
pub(crate) struct NamespaceVectors {
    pub dims: usize,
    pub ids: Vec<[u8; 16]>,
    pub data: Vec<f32>,
}

impl NamespaceVectors {
    /// Loads every vector row of a namespace.
    pub(crate) fn load(t: &DataTables, r: &heed::RoTxn<'_, heed::WithoutTls>, ns: NamespaceId) -> Result<Self> {
        let mut out = NamespaceVectors::default();
        for e in t.vectors.prefix_iter(r, &ns.to_be_bytes())? {
            let (_, row) = e?;
            if row.len() < 16 {
                continue;
            }
            let (id, floats) = row.split_at(16);
            let dims = floats.len() / 4;
            if out.dims == 0 {
                out.dims = dims;
            }
            if dims != out.dims {
                continue;
            }
            out.ids.push(id.try_into().unwrap_or([0; 16]));
            out.data.extend(floats.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        }
        Ok(out)
    }

    /// Every row's similarity to `query`, best first, at most `limit`.
    pub(crate) fn search(&self, query: &[f32], limit: usize) -> Vec<([u8; 16], f32)> {
        if self.dims == 0 || query.len() != self.dims {
            return Vec::new();
        }
        let mut scored: Vec<(usize, f32)> =
            self.data.chunks_exact(self.dims).map(|row| dot(row, query)).enumerate().collect();
        let limit = limit.min(scored.len());
        if limit < scored.len() {
            scored.select_nth_unstable_by(limit, |a, b| b.1.total_cmp(&a.1));
            scored.truncate(limit);
        }
        scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        scored.into_iter().map(|(i, s)| (self.ids[i], s)).collect()
    }
}

#[derive(Default)]
struct CacheEntry {
    version: u64,
    vectors: Option<Arc<NamespaceVectors>>,
}

/// Per-namespace in-memory vectors. Each write bumps the namespace's version after commit;
/// a load records the version before reading and is kept only if no write came between,
/// so a recall never serves vectors older than a write it could have seen.
#[derive(Default)]
pub(crate) struct VectorCache {
    entries: RwLock<HashMap<NamespaceId, CacheEntry>>,
}

impl VectorCache {
    /// The namespace's vectors, loading them with `load` on a miss.
    pub(crate) fn get_or_load(
        &self,
        ns: NamespaceId,
        load: impl FnOnce() -> Result<NamespaceVectors>,
    ) -> Result<Arc<NamespaceVectors>> {
        let version = {
            let entries = self.entries.read();
            match entries.get(&ns) {
                Some(CacheEntry { vectors: Some(v), .. }) => return Ok(v.clone()),
                Some(e) => e.version,
                None => 0,
            }
        };
        let loaded = Arc::new(load()?);
        let mut entries = self.entries.write();
        let entry = entries.entry(ns).or_default();
        if entry.version == version {
            entry.vectors = Some(loaded.clone());
        }
        Ok(loaded)
    }

    /// A write to the namespace committed.
    pub(crate) fn invalidate(&self, ns: NamespaceId) {
        let mut entries = self.entries.write();
        let entry = entries.entry(ns).or_default();
        entry.version += 1;
        entry.vectors = None;
    }

    /// The namespace is gone.
    pub(crate) fn forget(&self, ns: NamespaceId) {
        self.invalidate(ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_ranks_by_cosine_and_truncates() {
        let mut nv = NamespaceVectors { dims: 2, ..Default::default() };
        for (i, v) in [[1.0f32, 0.0], [0.0, 1.0], [0.7071, 0.7071]].iter().enumerate() {
            nv.ids.push([i as u8; 16]);
            nv.data.extend_from_slice(v);
        }
        let hits = nv.search(&[1.0, 0.0], 2);
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].0, [0; 16]);
        assert_eq!(hits[1].0, [2; 16]);
        assert!(nv.search(&[1.0, 0.0, 0.0], 2).is_empty());
    }

    #[test]
    fn vector_validation_names_the_field() {
        let e = validate_vector(&[1.0, f32::NAN], "embedding").unwrap_err();
        assert!(e.to_string().starts_with("embedding:"), "{e}");
        assert!(validate_vector(&[0.0, 0.0], "vector").is_err());
        assert!(validate_vector(&[], "vector").is_err());
        assert!(validate_vector(&[0.1, 0.2], "vector").is_ok());
    }
}
