//! The exact scan of a namespace's tail: int8 ranking of large tails, then exact re-scoring.

use super::NamespaceVectors;
use crate::index::topk::{quantization_error, top_by_score, Score, TopK};
use crate::vector::{kernels, quantize};

/// Below this many rows a scan is exact f32 throughout.
const EXACT_SCAN_MAX: usize = 2048;
/// How many candidates ahead of the one scored [`NamespaceVectors::rescored`] starts loading
/// rows.
const PREFETCH_AHEAD: usize = 4;

/// One exact hit of a scan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ScanHit {
    pub slot: u32,
    pub id: [u8; 16],
    pub similarity: f32,
}

impl NamespaceVectors {
    /// The rows most similar to `query`, best first, at most `limit`, deleted rows excluded,
    /// and only rows of agent key `agent` when given. Similarities are exact.
    pub(crate) fn search(&self, query: &[f32], limit: usize, agent: Option<u64>) -> Vec<ScanHit> {
        if self.dims == 0 || query.len() != self.dims || limit == 0 || self.rows == 0 {
            return Vec::new();
        }
        let dims = self.dims;
        let rescore = (limit * 4 + 32 + self.deleted.len()).min(self.rows);
        let mut scored;
        if self.rows <= EXACT_SCAN_MAX || rescore * 4 >= self.rows {
            let mut top = TopK::new(limit + self.deleted.len());
            for (si, s) in self.segments.iter().enumerate() {
                kernels::scan_f32(&s.data, dims, query, |i, sim| {
                    top.push_if(sim, si as u32, i as u32, || {
                        agent.is_none_or(|a| s.agents[i] == a)
                            && self.is_current(s.slots[i], s.gens[i])
                    });
                });
            }
            scored = top.into_vec();
        } else {
            let mut q = Vec::with_capacity(dims);
            let q_scale = quantize(query, &mut q);
            let mut top = TopK::new(rescore);
            for (si, s) in self.segments.iter().enumerate() {
                kernels::scan_i8_blocks(&s.codes, dims, &q, |start, block| {
                    let scales = &s.scales[start..start + block.len()];
                    for (j, (d, scale)) in block.iter().zip(scales).enumerate() {
                        let i = start + j;
                        top.push_if(*d as f32 * scale, si as u32, i as u32, || {
                            agent.is_none_or(|a| s.agents[i] == a)
                                && self.is_current(s.slots[i], s.gens[i])
                        });
                    }
                });
            }
            scored = self.rescored(top.into_vec(), query, q_scale, limit + self.deleted.len());
        }
        let want = (limit + self.deleted.len()).min(scored.len());
        top_by_score(&mut scored, want);
        scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .map(|(sim, si, i)| {
                let s = &self.segments[si as usize];
                ScanHit { slot: s.slots[i as usize], id: s.ids[i as usize], similarity: sim }
            })
            .filter(|h| !self.deleted.contains(&h.slot))
            .take(limit)
            .collect()
    }

    /// Exact scores of the int8 scan's candidates `(int8 dot × row scale, segment, row)` that
    /// can still be among the best `want`: candidates are scored in the order of their int8
    /// estimate, and scoring stops when no candidate left can reach the `want`-th best exact
    /// score so far, its estimate plus [`quantization_error`] falling short. The candidates
    /// left out provably rank below the best `want`, so these are the best `want` that scoring
    /// every candidate gives.
    pub(super) fn rescored(
        &self,
        mut candidates: Vec<(f32, u32, u32)>,
        query: &[f32],
        q_scale: f32,
        want: usize,
    ) -> Vec<(f32, u32, u32)> {
        let dims = self.dims;
        let q_l1: f32 = query.iter().map(|x| x.abs()).sum();
        let mut error = 0.0f32;
        for c in &mut candidates {
            let scale = self.segments[c.1 as usize].scales[c.2 as usize];
            error = error.max(quantization_error(dims, scale, q_scale, q_l1));
            c.0 *= q_scale;
        }
        candidates.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        // The best `want` exact scores so far, as a min-heap (its top is the `want`-th).
        let mut best: std::collections::BinaryHeap<std::cmp::Reverse<Score>> =
            std::collections::BinaryHeap::with_capacity(want + 1);
        let mut out = Vec::with_capacity(candidates.len().min(want * 2));
        let row_of = |si: u32, i: u32| {
            let (s, row) = (&self.segments[si as usize], i as usize);
            &s.data[row * dims..(row + 1) * dims]
        };
        // The rows are scattered over the copy: each one's load is started a few candidates
        // before it is scored, instead of waiting on memory for each in turn.
        for &(_, si, i) in candidates.iter().take(PREFETCH_AHEAD) {
            kernels::prefetch(row_of(si, i));
        }
        for (n, &(estimate, si, i)) in candidates.iter().enumerate() {
            if best.len() >= want && best.peek().is_some_and(|t| estimate + error < t.0 .0) {
                break;
            }
            if let Some(&(_, sa, ia)) = candidates.get(n + PREFETCH_AHEAD) {
                kernels::prefetch(row_of(sa, ia));
            }
            let exact = kernels::dot_f32(row_of(si, i), query);
            out.push((exact, si, i));
            best.push(std::cmp::Reverse(Score(exact)));
            if best.len() > want {
                best.pop();
            }
        }
        out
    }
}
