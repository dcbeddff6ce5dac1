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

/// One query of a scan: the query vector, at most how many hits, and the agent key its rows
/// must have (any when `None`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanAsk<'a> {
    pub query: &'a [f32],
    pub limit: usize,
    pub agent: Option<u64>,
}

impl NamespaceVectors {
    /// The rows most similar to `query`, best first, at most `limit`, deleted rows excluded,
    /// and only rows of agent key `agent` when given. Similarities are exact.
    pub(crate) fn search(&self, query: &[f32], limit: usize, agent: Option<u64>) -> Vec<ScanHit> {
        self.search_many(&[ScanAsk { query, limit, agent }]).pop().unwrap_or_default()
    }

    /// Whether [`NamespaceVectors::search`] of `ask` ranks rows by their int8 scores (a
    /// large scan for few hits), which [`NamespaceVectors::search_many`] shares between
    /// queries; else it is exact f32 throughout, or finds nothing.
    pub(crate) fn scans_int8(&self, ask: &ScanAsk<'_>) -> bool {
        self.searchable(ask) && self.rows > EXACT_SCAN_MAX && self.rescore_of(ask) * 4 < self.rows
    }

    fn searchable(&self, ask: &ScanAsk<'_>) -> bool {
        self.dims > 0 && ask.query.len() == self.dims && ask.limit > 0 && self.rows > 0
    }

    /// How many int8 candidates of `ask` are re-scored at most.
    fn rescore_of(&self, ask: &ScanAsk<'_>) -> usize {
        (ask.limit * 4 + 32 + self.deleted.len()).min(self.rows)
    }

    /// [`NamespaceVectors::search`] of each ask, the int8 scans shared: the codes are read
    /// once for up to [`kernels::MULTI_MAX`] queries. Each answer is exactly the one its
    /// query gets alone.
    pub(crate) fn search_many(&self, asks: &[ScanAsk<'_>]) -> Vec<Vec<ScanHit>> {
        let mut out = vec![Vec::new(); asks.len()];
        let mut quantized = Vec::new();
        for (n, ask) in asks.iter().enumerate() {
            if self.scans_int8(ask) {
                quantized.push(n);
            } else if self.searchable(ask) {
                out[n] = self.ranked(self.scan_f32(ask), ask.limit);
            }
        }
        let dims = self.dims;
        for group in quantized.chunks(kernels::MULTI_MAX) {
            let mut codes = Vec::with_capacity(group.len());
            let mut tops = Vec::with_capacity(group.len());
            for &n in group {
                let mut q = Vec::with_capacity(dims);
                let q_scale = quantize(asks[n].query, &mut q);
                codes.push((q, q_scale));
                tops.push(TopK::new(self.rescore_of(&asks[n])));
            }
            let queries: Vec<&[i8]> = codes.iter().map(|(q, _)| q.as_slice()).collect();
            for (si, s) in self.segments.iter().enumerate() {
                kernels::scan_i8_multi(&s.codes, &s.sums, dims, &queries, |j, start, block| {
                    let (agent, top) = (asks[group[j]].agent, &mut tops[j]);
                    let scales = &s.scales[start..start + block.len()];
                    // Most rows score below the running threshold: those are found for the
                    // whole block in one vectorised pass, and only the others are offered
                    // (each offer checks the threshold again, so the top is the same).
                    debug_assert!(block.len() <= 64);
                    let mut above = kernels::above(block, scales, top.threshold());
                    while above != 0 {
                        let k = above.trailing_zeros() as usize;
                        above &= above - 1;
                        let i = start + k;
                        top.push_if(block[k] as f32 * scales[k], si as u32, i as u32, || {
                            agent.is_none_or(|a| s.agents[i] == a) && self.is_current_row(s, i)
                        });
                    }
                });
            }
            for ((&n, top), (_, q_scale)) in group.iter().zip(tops).zip(&codes) {
                let ask = &asks[n];
                let want = ask.limit + self.deleted.len();
                let scored = self.rescored(top.into_vec(), ask.query, *q_scale, want);
                out[n] = self.ranked(scored, ask.limit);
            }
        }
        out
    }

    /// The exact f32 scan of a small tail (or of a wide request).
    fn scan_f32(&self, ask: &ScanAsk<'_>) -> Vec<(f32, u32, u32)> {
        let mut top = TopK::new(ask.limit + self.deleted.len());
        for (si, s) in self.segments.iter().enumerate() {
            kernels::scan_f32(&s.data, self.dims, ask.query, |i, sim| {
                top.push_if(sim, si as u32, i as u32, || {
                    ask.agent.is_none_or(|a| s.agents[i] == a) && self.is_current_row(s, i)
                });
            });
        }
        top.into_vec()
    }

    /// The best `limit` of exactly scored `(similarity, segment, row)`, best first, deleted
    /// rows excluded.
    fn ranked(&self, mut scored: Vec<(f32, u32, u32)>, limit: usize) -> Vec<ScanHit> {
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
