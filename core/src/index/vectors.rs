//! The searchable vectors of one namespace: its approximate index's partition and its tail.
//!
//! The exact path scans an in-memory copy of the namespace's tail (its not-yet-indexed rows;
//! the indexed rows are held as int8 codes in the partition's cells, see [`super::ivf`]). Tail
//! rows are kept twice: as f32 and as int8 codes with a per-row scale. Large scans rank every
//! row by its int8 dot product (a quarter of the memory traffic), then re-score the best
//! candidates exactly, so the returned similarities are exact f32 cosines.
//!
//! The copy is updated in place by writes (appends and deletes are applied under a
//! per-namespace version, see [`super::cache`]) instead of being reloaded.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::cache::IndexUpdate;
use super::ivf::Ivf;
use super::segment::{merge, Segment};
use super::topk::{quantization_error, top_by_score, Score, TopK};
use crate::datastore::{DataTables, NamespaceId};
use crate::error::Result;
use crate::records::memory::SlotAgents;
use crate::storage::RoTxn;
use crate::vector::{decode_row, kernels, quantize, NewRow};

/// Below this many rows a scan is exact f32 throughout.
const EXACT_SCAN_MAX: usize = 2048;
/// Segments this large are not merged further.
const MERGE_MAX: usize = 16_384;
/// Deleted rows tolerated before the copy is compacted (also at most 1/8 of the rows).
const MAX_TOMBSTONES: usize = 256;

/// One exact hit of a scan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ScanHit {
    pub slot: u32,
    pub id: [u8; 16],
    pub similarity: f32,
}

/// The searchable vectors of one namespace: the approximate index's partition of the slots
/// below `from_slot` (if any), the rows from `from_slot` on (the *tail*) as a few contiguous
/// segments (merged geometrically as rows are appended), and a set of deleted slots.
///
/// A vector overwritten in place (an upsert keeps its memory's slot) is appended to the tail
/// under a new generation, recorded in `current`: for a slot in `current`, only the tail row of
/// that generation is live — the partition's entry and older tail rows are stale and skipped.
/// Such slots stay in the tail (even below `from_slot`) until the copy is reloaded.
#[derive(Debug, Default, Clone)]
pub(crate) struct NamespaceVectors {
    pub dims: usize,
    /// Slots below this are in `ivf`, not in the segments.
    pub from_slot: u32,
    /// The sequence number of the namespace's last vector write when the copy was loaded
    /// (`NamespaceStats::vector_writes`, given out in commit order): a write at or below it
    /// committed before the load read the environment and is in the copy already, so when it
    /// applies its rows after the load was installed (see [`VectorCache`]) they are skipped.
    /// (Slots cannot tell: an upsert overwrites a row in its old slot.)
    pub(super) loaded_seq: u64,
    /// The approximate index over the slots below `from_slot`.
    pub ivf: Option<Arc<Ivf>>,
    segments: Vec<Arc<Segment>>,
    deleted: Arc<HashSet<u32>>,
    pub(super) rows: usize,
    /// Overwritten slots: slot → generation of its live tail row (the sequence number of the
    /// write that overwrote it; 0: the row as loaded).
    pub(super) current: Arc<HashMap<u32, u64>>,
    /// Rows (tail or partition) made stale by overwrites since the last compaction.
    stale: usize,
}

impl NamespaceVectors {
    /// Loads the vector rows of a namespace not covered by its approximate index.
    pub(crate) fn load(
        t: &DataTables,
        r: &mut RoTxn<'_>,
        ns: NamespaceId,
        agents: &SlotAgents,
    ) -> Result<Self> {
        let stats = t.stats_of(r, ns)?;
        let from_slot = stats.indexed_until;
        let mut out =
            NamespaceVectors { from_slot, loaded_seq: stats.vector_writes, ..Default::default() };
        let mut seg = Segment::default();
        t.each_vector_row(r, ns, from_slot, stats.next_slot, |slot, row| {
            let Some((id, v)) = decode_row(row) else { return Ok(()) };
            if out.dims == 0 {
                out.dims = v.len();
            }
            if v.len() == out.dims {
                seg.push(slot, 0, id, &v, agents.get(slot));
            }
            Ok(())
        })?;
        out.rows = seg.len();
        if seg.len() > 0 {
            out.segments.push(Arc::new(seg));
        }
        Ok(out)
    }

    /// Approximate bytes held (f32 values, int8 codes, scales, slots, ids).
    pub(super) fn bytes(&self) -> usize {
        self.rows * (self.dims * 5 + 36)
            + (self.deleted.len() + self.current.len()) * 8
            + self.ivf.as_ref().map_or(0, |i| i.bytes())
    }

    /// Whether the partition's entry of `slot` is not to be used: the memory was deleted, or
    /// its vector was overwritten (its live row is in the tail).
    pub(crate) fn skip_indexed(&self, slot: u32) -> bool {
        self.deleted.contains(&slot) || self.current.contains_key(&slot)
    }

    /// Whether the tail row of `slot` with generation `gen` is the slot's live vector.
    fn is_current(&self, slot: u32, gen: u64) -> bool {
        self.current.get(&slot).is_none_or(|g| *g == gen)
    }

    /// Appends rows regardless of `from_slot` (rows below it that the index lacks). Those in
    /// `refile` (ascending) were overwritten in place since their cell was stored: they stay in
    /// the tail like overwritten rows (see the type's docs).
    pub(crate) fn push_tail(
        &mut self,
        rows: &[(u32, [u8; 16], Vec<f32>)],
        agents: &SlotAgents,
        refile: &[u32],
    ) {
        let mut seg = Segment::default();
        let mut current = HashMap::new();
        for (slot, id, v) in rows {
            if self.dims == 0 {
                self.dims = v.len(); // every other row was indexed
            }
            if v.len() == self.dims {
                seg.push(*slot, 0, *id, v, agents.get(*slot));
                if *slot < self.from_slot && refile.binary_search(slot).is_ok() {
                    current.insert(*slot, 0);
                }
            }
        }
        if !current.is_empty() {
            self.current = Arc::new(current);
        }
        if seg.len() > 0 {
            self.rows += seg.len();
            self.segments.push(Arc::new(seg));
        }
    }

    /// The copy after the index took over the slots below `end`: with `update` either a
    /// whole new partition (it holds every live row below `end`), or the cells the tail's rows
    /// below `end` were filed under (`(slot, cell)`, sorted by slot) by the same training as
    /// this copy's partition. `None` if the update does not fit this copy (reload instead).
    pub(super) fn indexed(&self, end: u32, update: &IndexUpdate) -> Option<Self> {
        let mut next = self.clone();
        match update {
            IndexUpdate::New(ivf) => next.ivf = Some(ivf.clone()),
            IndexUpdate::Added { trained, assigned } => {
                let mut ivf = match &self.ivf {
                    Some(i) if i.trained == *trained => (**i).clone(),
                    None if self.from_slot == 0 => return None,
                    _ => return None,
                };
                let dims = self.dims;
                let mut rows = Vec::new();
                for s in &self.segments {
                    for i in 0..s.len() {
                        let slot = s.slots[i];
                        // An overwritten slot stays in the tail (its cell may be stale).
                        if slot >= end
                            || self.deleted.contains(&slot)
                            || self.current.contains_key(&slot)
                        {
                            continue;
                        }
                        let Ok(at) = assigned.binary_search_by_key(&slot, |a| a.0) else {
                            continue;
                        };
                        rows.push((
                            slot,
                            assigned[at].1,
                            &s.codes[i * dims..(i + 1) * dims],
                            s.scales[i],
                            s.agents[i],
                        ));
                    }
                }
                ivf.add(rows);
                next.ivf = Some(Arc::new(ivf));
            }
        }
        Some(next.compacted(end))
    }

    /// Rows held, deleted ones excluded.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.rows - self.deleted.len()
    }

    /// A copy with the rows of write `seq` applied: `added` rows appended, `replaced` rows
    /// (vectors overwritten in their slot) appended under generation `seq`, and `removed` slots
    /// deleted, sharing unchanged segments. A write the copy already holds (loaded after it
    /// committed) changes nothing; an overwrite older than the slot's live row (writes may
    /// apply out of commit order) is skipped. `None` if a row does not fit (the caller then
    /// reloads).
    pub(super) fn with_delta(
        &self,
        seq: u64,
        added: &[NewRow<'_>],
        replaced: &[NewRow<'_>],
        removed: &[u32],
    ) -> Option<Self> {
        if seq <= self.loaded_seq {
            return Some(self.clone());
        }
        let mut next = self.clone();
        if !removed.is_empty() {
            let mut deleted = (*next.deleted).clone();
            deleted.extend(removed.iter().copied());
            next.deleted = Arc::new(deleted);
        }
        let mut seg = Segment::default();
        for (slot, id, v, agent) in added {
            if *slot < next.from_slot || next.deleted.contains(slot) {
                continue;
            }
            if next.dims == 0 {
                next.dims = v.len();
            }
            if v.len() != next.dims {
                return None;
            }
            seg.push(*slot, 0, *id, v, *agent);
        }
        if !replaced.is_empty() {
            let mut current = (*next.current).clone();
            for (slot, id, v, agent) in replaced {
                if next.deleted.contains(slot) || current.get(slot).is_some_and(|g| *g >= seq) {
                    continue; // deleted since, or overwritten again by a later write
                }
                if next.dims == 0 {
                    next.dims = v.len();
                }
                if v.len() != next.dims {
                    return None;
                }
                current.insert(*slot, seq);
                seg.push(*slot, seq, *id, v, *agent);
                next.stale += 1;
            }
            next.current = Arc::new(current);
        }
        if seg.len() > 0 {
            next.rows += seg.len();
            next.segments.push(Arc::new(seg));
            // Geometric merging keeps few segments and O(log n) copies per row; segments of
            // MERGE_MAX rows are left alone, so a large tail is not copied again and again.
            while next.segments.len() >= 2
                && next.segments[next.segments.len() - 2].len() < MERGE_MAX
                && next.segments[next.segments.len() - 1].len()
                    >= next.segments[next.segments.len() - 2].len()
            {
                let b = next.segments.pop().unwrap_or_default();
                let a = next.segments.pop().unwrap_or_default();
                next.segments.push(Arc::new(merge(&a, &b)));
            }
        }
        let indexed = next.ivf.as_ref().map_or(0, |i| i.rows());
        let dead = next.deleted.len() + next.stale;
        if dead > MAX_TOMBSTONES && dead * 8 > next.rows + indexed {
            next = next.compacted(next.from_slot);
        }
        Some(next)
    }

    /// A copy without deleted or stale rows and without tail rows below `from_slot` (other
    /// than the live rows of overwritten slots).
    pub(super) fn compacted(&self, from_slot: u32) -> Self {
        let ivf = match &self.ivf {
            Some(i) if !self.deleted.is_empty() || self.stale > 0 => {
                Some(Arc::new(i.without(|s| self.skip_indexed(s))))
            }
            other => other.clone(),
        };
        let mut seg = Segment::default();
        for s in &self.segments {
            for i in 0..s.len() {
                let slot = s.slots[i];
                let keep = (slot >= from_slot || self.current.contains_key(&slot))
                    && !self.deleted.contains(&slot)
                    && self.is_current(slot, s.gens[i]);
                if keep {
                    seg.push_from(s, i, self.dims);
                }
            }
        }
        let mut current = (*self.current).clone();
        current.retain(|slot, _| !self.deleted.contains(slot));
        NamespaceVectors {
            dims: self.dims,
            from_slot,
            loaded_seq: self.loaded_seq,
            ivf,
            rows: seg.len(),
            segments: if seg.len() > 0 { vec![Arc::new(seg)] } else { Vec::new() },
            deleted: Arc::default(),
            current: Arc::new(current),
            stale: 0,
        }
    }

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
                kernels::scan_i8(&s.codes, dims, &q, |i, d| {
                    let score = d as f32 * s.scales[i];
                    top.push_if(score, si as u32, i as u32, || {
                        agent.is_none_or(|a| s.agents[i] == a)
                            && self.is_current(s.slots[i], s.gens[i])
                    });
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
}

impl NamespaceVectors {
    /// Exact scores of the int8 scan's candidates `(int8 dot × row scale, segment, row)` that
    /// can still be among the best `want`: candidates are scored in the order of their int8
    /// estimate, and scoring stops when no candidate left can reach the `want`-th best exact
    /// score so far, its estimate plus [`quantization_error`] falling short. The candidates
    /// left out provably rank below the best `want`, so these are the best `want` that scoring
    /// every candidate gives.
    fn rescored(
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
        for (estimate, si, i) in candidates {
            if best.len() >= want && best.peek().is_some_and(|t| estimate + error < t.0 .0) {
                break;
            }
            let s = &self.segments[si as usize];
            let row = i as usize;
            let exact = kernels::dot_f32(&s.data[row * dims..(row + 1) * dims], query);
            out.push((exact, si, i));
            best.push(std::cmp::Reverse(Score(exact)));
            if best.len() > want {
                best.pop();
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::vector::tests::random_rows;
    use crate::vector::{dot, normalize};

    pub(crate) fn exact(rows: &[Vec<f32>], q: &[f32], k: usize) -> Vec<u32> {
        let mut s: Vec<(f32, u32)> =
            rows.iter().enumerate().map(|(i, r)| (dot(r, q), i as u32)).collect();
        s.sort_by(|a, b| b.0.total_cmp(&a.0));
        s.into_iter().take(k).map(|x| x.1).collect()
    }

    pub(crate) fn build(rows: &[Vec<f32>], step: usize) -> NamespaceVectors {
        let mut nv = NamespaceVectors::default();
        for (c, chunk) in rows.chunks(step).enumerate() {
            let added: Vec<NewRow<'_>> = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let slot = (c * step + i) as u32;
                    (slot, [slot as u8; 16], v.as_slice(), 0)
                })
                .collect();
            nv = nv.with_delta(c as u64 + 1, &added, &[], &[]).unwrap();
        }
        nv
    }
    #[test]
    fn search_ranks_by_cosine_and_truncates() {
        let rows =
            vec![vec![1.0f32, 0.0], vec![0.0, 1.0], vec![std::f32::consts::FRAC_1_SQRT_2; 2]];
        let nv = build(&rows, 1);
        let hits = nv.search(&[1.0, 0.0], 2, None);
        assert_eq!(hits.iter().map(|h| h.slot).collect::<Vec<_>>(), [0, 2]);
        assert!((hits[0].similarity - 1.0).abs() < 1e-6);
        assert!(nv.search(&[1.0, 0.0, 0.0], 2, None).is_empty());
    }

    #[test]
    fn quantized_scan_returns_the_exact_top_k_with_exact_scores() {
        let rows = random_rows(5000, 64, 7);
        // Appended in uneven batches, so several segments are searched.
        let nv = build(&rows, 333);
        assert!(nv.segments.len() > 1);
        for qi in 0..20 {
            let q = &rows[qi * 37];
            let hits = nv.search(q, 10, None);
            assert_eq!(hits.iter().map(|h| h.slot).collect::<Vec<_>>(), exact(&rows, q, 10));
            assert!((hits[0].similarity - 1.0).abs() < 1e-5);
        }
    }

    /// The int8 estimate of a row's dot product lies within `quantization_error` of the
    /// exact one; when the best rows stand out, the candidates below them by more than that
    /// are not scored exactly, and the result is still the exact top k.
    #[test]
    fn the_int8_error_bound_holds_and_spares_exact_scores() {
        let dims = 384;
        let mut rows = random_rows(3000, dims, 11);
        let q = rows[0].clone();
        // Ten rows close to the query.
        let noise = random_rows(10, dims, 12);
        for (i, n) in noise.iter().enumerate() {
            let mut v: Vec<f32> = q.iter().zip(n).map(|(a, b)| a + 0.3 * b).collect();
            normalize(&mut v);
            rows[100 + i] = v;
        }
        let (mut qc, mut rc) = (Vec::new(), Vec::new());
        let t = quantize(&q, &mut qc);
        let q_l1: f32 = q.iter().map(|x| x.abs()).sum();
        for r in &rows {
            rc.clear();
            let s = quantize(r, &mut rc);
            let d: i32 = rc.iter().zip(&qc).map(|(a, b)| i32::from(*a) * i32::from(*b)).sum();
            let error = (dot(r, &q) - d as f32 * s * t).abs();
            assert!(error <= quantization_error(dims, s, t, q_l1), "{error}");
        }
        let nv = build(&rows, rows.len());
        let seg = &nv.segments[0];
        let mut candidates = Vec::new();
        kernels::scan_i8(&seg.codes, dims, &qc, |i, d| {
            candidates.push((d as f32 * seg.scales[i], 0, i as u32));
        });
        let mut scored = nv.rescored(candidates, &q, t, 11);
        assert!(scored.len() < 100, "{} of 3000 scored exactly", scored.len());
        scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let slots: Vec<u32> = scored.iter().take(11).map(|c| seg.slots[c.2 as usize]).collect();
        assert_eq!(slots, exact(&rows, &q, 11));
        assert_eq!(nv.search(&q, 11, None).iter().map(|h| h.slot).collect::<Vec<_>>(), slots);
    }

    #[test]
    fn deletes_and_appends_apply_to_the_copy() {
        let rows = random_rows(3000, 32, 9);
        let nv = build(&rows, 1000);
        let q = rows[5].clone();
        let top = nv.search(&q, 3, None);
        assert_eq!(top[0].slot, 5);
        let nv = nv.with_delta(100, &[], &[], &[5]).unwrap();
        assert!(nv.search(&q, 3, None).iter().all(|h| h.slot != 5));
        assert_eq!(nv.len(), 2999);
        // A row deleted before its append was applied stays deleted.
        let late = [(5u32, [5u8; 16], q.as_slice(), 0)];
        let nv2 = nv.with_delta(101, &late, &[], &[]).unwrap();
        assert!(nv2.search(&q, 3, None).iter().all(|h| h.slot != 5));
        // Many deletes compact the copy.
        let many: Vec<u32> = (100..1000).collect();
        let nv = nv.with_delta(102, &[], &[], &many).unwrap();
        assert!(nv.deleted.is_empty());
        assert_eq!(nv.len(), 2099);
        // Rows below the index boundary are dropped.
        let nv = nv.compacted(2000);
        assert_eq!(nv.len(), 1000);
        assert!(nv.search(&rows[10], 5, None).iter().all(|h| h.slot >= 2000));
        // A row of the wrong size makes the caller reload.
        assert!(nv.with_delta(103, &[(9999, [0; 16], &[1.0, 0.0][..], 0)], &[], &[]).is_none());
    }
}
