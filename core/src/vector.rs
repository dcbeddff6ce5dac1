//! Vector search within one namespace. Vectors are stored L2-normalised, so cosine
//! similarity is a dot product.
//!
//! The exact path scans an in-memory copy of the namespace's vectors (for a namespace with an
//! approximate index, only its not-yet-indexed tail; the indexed rows are held as int8 codes in
//! the index's cells: see [`crate::ann`] and [`crate::ivf`]). Tail rows are kept twice:
//! as f32 and as int8 codes with a per-row scale. Large scans rank every row by its int8 dot
//! product (a quarter of the memory traffic), then re-score the best candidates exactly, so the
//! returned similarities are exact f32 cosines.
//!
//! The copy is updated in place by writes (appends and deletes are applied under a per-namespace
//! version) instead of being reloaded, and a recall never serves vectors older than a write
//! that returned before it started.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::datastore::{DataTables, NamespaceId};
use crate::error::{Error, Result};
use crate::namespace::NamespaceRecord;
use crate::storage::RoTxn;

/// Scales `v` to unit length (the zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

/// Dot product of two f32 slices (over the shorter length), using AVX2/FMA when available.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    kernels::dot_f32(a, b)
}

/// Refuses a vector holding NaN or an infinity, naming the first such element.
pub(crate) fn check_finite(v: &[f32], field: &str) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::invalid(field, format!("element {i} is not a finite number"))),
        None => Ok(()),
    }
}

/// Checks a caller-supplied vector: finite values, sane size, not all zeros.
pub fn validate_vector(v: &[f32], field: &str) -> Result<()> {
    if v.is_empty() || v.len() > crate::namespace::MAX_DIMENSIONS as usize {
        return Err(Error::invalid(
            field,
            format!(
                "must have 1 to {} dimensions (got {})",
                crate::namespace::MAX_DIMENSIONS,
                v.len()
            ),
        ));
    }
    check_finite(v, field)?;
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

/// Decodes a vector row into its uuid and values.
pub(crate) fn decode_row(row: &[u8]) -> Option<([u8; 16], Vec<f32>)> {
    if row.len() < 16 || !(row.len() - 16).is_multiple_of(4) {
        return None;
    }
    let (id, floats) = row.split_at(16);
    let v = floats.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Some((id.try_into().ok()?, v))
}

/// The dot product of `query` with the vector of a stored row, decoded into `buf` (reused
/// across rows, so scoring many rows allocates once); `None` if the row is malformed or of
/// another dimension.
pub(crate) fn row_dot(row: &[u8], query: &[f32], buf: &mut Vec<f32>) -> Option<f32> {
    let floats = row.get(16..)?;
    if floats.len() != query.len() * 4 {
        return None;
    }
    buf.clear();
    buf.extend(floats.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
    Some(dot(buf, query))
}

/// Quantizes `v` to int8 codes (symmetric, per-row scale); returns the scale.
pub(crate) fn quantize(v: &[f32], out: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        out.extend(std::iter::repeat_n(0i8, v.len()));
        return 0.0;
    }
    let inv = 127.0 / max;
    out.extend(v.iter().map(|x| (x * inv).round().clamp(-127.0, 127.0) as i8));
    max / 127.0
}

/// Key of a memory's agent for scans that filter by agent: a hash of its `agent_id` (never 0),
/// or 0 without one. Equal ids give equal keys; a collision only lets a row through to the
/// exact filter on the memory's record.
pub(crate) fn agent_key(agent: Option<&str>) -> u64 {
    agent.map_or(0, |a| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in a.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h | 1
    })
}

/// Agent keys of a namespace's vector slots, sorted by slot.
#[derive(Debug, Default)]
pub(crate) struct SlotAgents(pub Vec<(u32, u64)>);

impl SlotAgents {
    /// The agent key of `slot` (0 if unknown).
    pub(crate) fn get(&self, slot: u32) -> u64 {
        self.0.binary_search_by_key(&slot, |e| e.0).map_or(0, |at| self.0[at].1)
    }
}

/// A row added by a write: slot, memory id, normalised vector, agent key.
pub(crate) type NewRow<'a> = (u32, [u8; 16], &'a [f32], u64);

/// Rows appended together: f32 values, int8 codes and scales, slots, memory ids, agent keys,
/// and generations (see [`NamespaceVectors::current`]).
#[derive(Debug, Default)]
struct Segment {
    slots: Vec<u32>,
    gens: Vec<u64>,
    ids: Vec<[u8; 16]>,
    data: Vec<f32>,
    codes: Vec<i8>,
    scales: Vec<f32>,
    agents: Vec<u64>,
}

impl Segment {
    fn len(&self) -> usize {
        self.slots.len()
    }

    fn push(&mut self, slot: u32, gen: u64, id: [u8; 16], v: &[f32], agent: u64) {
        self.slots.push(slot);
        self.gens.push(gen);
        self.ids.push(id);
        self.agents.push(agent);
        self.data.extend_from_slice(v);
        let scale = quantize(v, &mut self.codes);
        self.scales.push(scale);
    }

    fn push_from(&mut self, other: &Segment, i: usize, dims: usize) {
        self.slots.push(other.slots[i]);
        self.gens.push(other.gens[i]);
        self.ids.push(other.ids[i]);
        self.data.extend_from_slice(&other.data[i * dims..(i + 1) * dims]);
        self.codes.extend_from_slice(&other.codes[i * dims..(i + 1) * dims]);
        self.scales.push(other.scales[i]);
        self.agents.push(other.agents[i]);
    }
}

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
    loaded_seq: u64,
    /// The approximate index over the slots below `from_slot`.
    pub ivf: Option<Arc<crate::ivf::Ivf>>,
    segments: Vec<Arc<Segment>>,
    deleted: Arc<HashSet<u32>>,
    rows: usize,
    /// Overwritten slots: slot → generation of its live tail row (the sequence number of the
    /// write that overwrote it; 0: the row as loaded).
    current: Arc<HashMap<u32, u64>>,
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
    fn bytes(&self) -> usize {
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
    fn indexed(&self, end: u32, update: &IndexUpdate) -> Option<Self> {
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
    fn len(&self) -> usize {
        self.rows - self.deleted.len()
    }

    /// A copy with the rows of write `seq` applied: `added` rows appended, `replaced` rows
    /// (vectors overwritten in their slot) appended under generation `seq`, and `removed` slots
    /// deleted, sharing unchanged segments. A write the copy already holds (loaded after it
    /// committed) changes nothing; an overwrite older than the slot's live row (writes may
    /// apply out of commit order) is skipped. `None` if a row does not fit (the caller then
    /// reloads).
    fn with_delta(
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
    fn compacted(&self, from_slot: u32) -> Self {
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

/// A bound on `|x·q − s·t·(c·c_q)|`, the error of the int8 estimate of a dot product: the
/// row `x` (unit length, `dims` values) is `s·c + e` with `|e_i| ≤ s/2`, the query `q` is
/// `t·c_q + f` with `|f_i| ≤ t/2`, so the error `e·q + s·c·f` is at most
/// `s/2·‖q‖₁ + t/2·‖s·c‖₁`, and `‖s·c‖₁ ≤ ‖x‖₁ + dims·s/2 ≤ √dims + dims·s/2`. A small
/// allowance covers the rounding of both f32 sums.
fn quantization_error(dims: usize, s: f32, t: f32, q_l1: f32) -> f32 {
    let d = dims as f32;
    s / 2.0 * q_l1 + t / 2.0 * (d.sqrt() + d * s / 2.0) + 1e-4
}

/// An f32 ordered by `total_cmp`, for heaps of scores.
#[derive(PartialEq)]
struct Score(f32);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The `k` highest-scoring (score, segment, row) entries seen, kept with a running threshold
/// so most rows cost one comparison.
struct TopK {
    k: usize,
    threshold: f32,
    buf: Vec<(f32, u32, u32)>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK { k: k.max(1), threshold: f32::NEG_INFINITY, buf: Vec::with_capacity(2 * k.max(32)) }
    }

    /// Offers an entry that `keep` accepts (asked only if the score could make the top).
    #[inline]
    fn push_if(&mut self, score: f32, segment: u32, row: u32, keep: impl FnOnce() -> bool) {
        if score <= self.threshold || !keep() {
            return;
        }
        self.buf.push((score, segment, row));
        if self.buf.len() >= 2 * self.k.max(32) {
            top_by_score(&mut self.buf, self.k);
            self.threshold = self.buf.iter().map(|e| e.0).fold(f32::INFINITY, f32::min);
        }
    }

    fn into_vec(mut self) -> Vec<(f32, u32, u32)> {
        top_by_score(&mut self.buf, self.k);
        self.buf
    }
}

/// Keeps the `k` highest-scoring entries (unordered).
fn top_by_score(v: &mut Vec<(f32, u32, u32)>, k: usize) {
    if k < v.len() {
        if k > 0 {
            v.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        }
        v.truncate(k);
    }
}

fn merge(a: &Segment, b: &Segment) -> Segment {
    let mut out = Segment {
        slots: Vec::with_capacity(a.len() + b.len()),
        gens: Vec::with_capacity(a.len() + b.len()),
        ids: Vec::with_capacity(a.len() + b.len()),
        data: Vec::with_capacity(a.data.len() + b.data.len()),
        codes: Vec::with_capacity(a.codes.len() + b.codes.len()),
        scales: Vec::with_capacity(a.len() + b.len()),
        agents: Vec::with_capacity(a.len() + b.len()),
    };
    for s in [a, b] {
        out.slots.extend_from_slice(&s.slots);
        out.gens.extend_from_slice(&s.gens);
        out.ids.extend_from_slice(&s.ids);
        out.data.extend_from_slice(&s.data);
        out.codes.extend_from_slice(&s.codes);
        out.scales.extend_from_slice(&s.scales);
        out.agents.extend_from_slice(&s.agents);
    }
    out
}

#[derive(Default)]
struct CacheEntry {
    version: u64,
    vectors: Option<Arc<NamespaceVectors>>,
    /// Tick of the last use (for eviction).
    used: u64,
}

/// What an index step changed, for the cached copies.
pub(crate) enum IndexUpdate {
    /// A new training: the whole partition.
    New(Arc<crate::ivf::Ivf>),
    /// Rows of the tail filed into the existing partition: `(slot, cell)` sorted by slot.
    Added { trained: u64, assigned: Vec<(u32, u32)> },
}

/// A namespace waiting for approximate-index work (see [`crate::ann`]).
#[derive(Debug, Clone)]
pub(crate) struct PendingIndex {
    pub rec: NamespaceRecord,
    pub last_write: Instant,
}

/// Per-namespace in-memory vectors. Every committed write bumps the namespace's version and
/// applies its rows to the cached copy (under the namespace's lock, before the write returns);
/// a load records the version before reading and is installed only if no write applied its
/// rows meanwhile, so a recall never serves vectors older than a write that returned before
/// it began. A write that committed before a load read the environment but applies its rows
/// after the load was installed finds them there already (its sequence number is not past the
/// copy's `loaded_seq`) and adds nothing.
///
/// The copies together stay within a byte budget: past it, the least recently used ones are
/// dropped (the next recall of that namespace reloads it from disk).
pub(crate) struct VectorCache {
    entries: RwLock<HashMap<NamespaceId, Arc<Mutex<CacheEntry>>>>,
    /// Namespaces with approximate-index work to do.
    pub(crate) pending: Mutex<HashMap<NamespaceId, PendingIndex>>,
    budget: usize,
    held: AtomicUsize,
    ticks: AtomicU64,
}

impl VectorCache {
    pub(crate) fn new(budget: usize) -> Self {
        VectorCache {
            entries: RwLock::default(),
            pending: Mutex::default(),
            budget,
            held: AtomicUsize::new(0),
            ticks: AtomicU64::new(0),
        }
    }

    fn entry(&self, ns: NamespaceId) -> Arc<Mutex<CacheEntry>> {
        if let Some(e) = self.entries.read().get(&ns) {
            return e.clone();
        }
        self.entries.write().entry(ns).or_default().clone()
    }

    /// Replaces an entry's copy, keeping the byte count.
    fn set(&self, e: &mut CacheEntry, vectors: Option<Arc<NamespaceVectors>>) {
        let old = e.vectors.as_ref().map_or(0, |v| v.bytes());
        let new = vectors.as_ref().map_or(0, |v| v.bytes());
        e.vectors = vectors;
        if new >= old {
            self.held.fetch_add(new - old, Ordering::Relaxed);
        } else {
            self.held.fetch_sub(old - new, Ordering::Relaxed);
        }
    }

    /// Drops least recently used copies, other than `keep`'s, until within the budget.
    fn evict(&self, keep: NamespaceId) {
        if self.held.load(Ordering::Relaxed) <= self.budget {
            return;
        }
        let mut held: Vec<(u64, Arc<Mutex<CacheEntry>>)> = self
            .entries
            .read()
            .iter()
            .filter(|(ns, _)| **ns != keep)
            .filter_map(|(_, e)| {
                let g = e.lock();
                g.vectors.as_ref().map(|_| (g.used, e.clone()))
            })
            .collect();
        held.sort_unstable_by_key(|(used, _)| *used);
        for (_, e) in held {
            if self.held.load(Ordering::Relaxed) <= self.budget {
                break;
            }
            let mut e = e.lock();
            self.set(&mut e, None);
        }
    }

    /// The namespace's vectors, loading them with `load` on a miss.
    pub(crate) fn get_or_load(
        &self,
        ns: NamespaceId,
        load: impl FnOnce() -> Result<NamespaceVectors>,
    ) -> Result<Arc<NamespaceVectors>> {
        let entry = self.entry(ns);
        let tick = self.ticks.fetch_add(1, Ordering::Relaxed);
        let version = {
            let mut e = entry.lock();
            e.used = tick;
            match &e.vectors {
                Some(v) => return Ok(v.clone()),
                None => e.version,
            }
        };
        let loaded = Arc::new(load()?);
        {
            let mut e = entry.lock();
            if e.version == version {
                self.set(&mut e, Some(loaded.clone()));
            }
        }
        self.evict(ns);
        Ok(loaded)
    }

    /// Write `seq` (its `NamespaceStats::vector_writes`) committed: `added` rows (slot, memory
    /// id, normalised vector), `replaced` rows (vectors overwritten in their slot) and
    /// `removed` slots. Writes may apply in another order than they committed.
    pub(crate) fn apply(
        &self,
        ns: NamespaceId,
        seq: u64,
        added: &[NewRow<'_>],
        replaced: &[NewRow<'_>],
        removed: &[u32],
    ) {
        let entry = self.entry(ns);
        {
            let mut e = entry.lock();
            e.version += 1;
            if let Some(v) = e.vectors.clone() {
                self.set(&mut e, v.with_delta(seq, added, replaced, removed).map(Arc::new));
            }
        }
        self.evict(ns);
    }

    /// The approximate index now covers every slot below `end` (see [`IndexUpdate`]).
    pub(crate) fn indexed(&self, ns: NamespaceId, end: u32, update: &IndexUpdate) {
        let entry = self.entry(ns);
        {
            let mut e = entry.lock();
            e.version += 1;
            if let Some(v) = e.vectors.clone() {
                if v.from_slot < end {
                    self.set(&mut e, v.indexed(end, update).map(Arc::new));
                }
            }
        }
        self.evict(ns);
    }

    /// Drops the namespace's copy (the next recall reloads it).
    pub(crate) fn invalidate(&self, ns: NamespaceId) {
        let entry = self.entry(ns);
        let mut e = entry.lock();
        e.version += 1;
        self.set(&mut e, None);
    }

    /// The namespace is gone.
    pub(crate) fn forget(&self, ns: NamespaceId) {
        self.invalidate(ns);
        self.entries.write().remove(&ns);
        self.pending.lock().remove(&ns);
    }

    /// Bytes currently held by copies.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// Scan kernels, compiled twice on x86-64: for the baseline and for AVX2+FMA (chosen at run
/// time), so the hot loops vectorise without building the whole crate for one CPU. The bodies
/// are `inline(always)` so that they are compiled inside the feature-enabled functions.
#[allow(clippy::inline_always)]
pub(crate) mod kernels {
    #[inline(always)]
    fn dot_f32_body(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0.0f32; 16];
        let mut ca = a.chunks_exact(16);
        let mut cb = b.chunks_exact(16);
        for (x, y) in (&mut ca).zip(&mut cb) {
            for j in 0..16 {
                acc[j] += x[j] * y[j];
            }
        }
        let mut sum = 0.0f32;
        for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
            sum += x * y;
        }
        let mut half = [0.0f32; 8];
        for j in 0..8 {
            half[j] = acc[j] + acc[j + 8];
        }
        sum + half.iter().sum::<f32>()
    }

    #[inline(always)]
    fn dot_i8_body(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0i32; 32];
        let mut ca = a.chunks_exact(32);
        let mut cb = b.chunks_exact(32);
        for (x, y) in (&mut ca).zip(&mut cb) {
            for j in 0..32 {
                acc[j] += i32::from(x[j]) * i32::from(y[j]);
            }
        }
        let mut sum: i32 = acc.iter().sum();
        for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
            sum += i32::from(*x) * i32::from(*y);
        }
        sum
    }

    #[inline(always)]
    fn scan_f32_body(rows: &[f32], dims: usize, q: &[f32], mut f: impl FnMut(usize, f32)) {
        for (i, row) in rows.chunks_exact(dims).enumerate() {
            f(i, dot_f32_body(row, q));
        }
    }

    #[inline(always)]
    fn scan_i8_body(rows: &[i8], dims: usize, q: &[i8], mut f: impl FnMut(usize, i32)) {
        for (i, row) in rows.chunks_exact(dims).enumerate() {
            f(i, dot_i8_body(row, q));
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn has_avx2() -> bool {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }

    #[cfg(target_arch = "x86_64")]
    fn has_vnni() -> bool {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
    }

    /// The int8 scan with AVX-512 VNNI: 64 products a row per instruction (`vpdpbusd`
    /// multiplies unsigned by signed bytes and adds each four into an i32 lane, without
    /// saturating). A row's codes are made unsigned by flipping their top bit (x + 128), so
    /// each sum is the dot product plus 128 × Σq, which is taken off again: exact.
    #[cfg(target_arch = "x86_64")]
    mod vnni {
        use std::arch::x86_64::{
            __m512i, _mm512_dpbusd_epi32, _mm512_maskz_loadu_epi8, _mm512_reduce_add_epi32,
            _mm512_set1_epi8, _mm512_setzero_si512, _mm512_xor_si512,
        };

        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        pub(super) fn scan_i8(rows: &[i8], dims: usize, q: &[i8], mut f: impl FnMut(usize, i32)) {
            if dims == 0 || q.len() < dims {
                return super::scan_i8_body(rows, dims, q, f);
            }
            let blocks = dims.div_ceil(64);
            // The lanes of the last block past `dims` load as 0 (query) and 128 (rows).
            let last = match dims % 64 {
                0 => u64::MAX,
                r => (1u64 << r) - 1,
            };
            let mask = |k: usize| if k + 1 == blocks { last } else { u64::MAX };
            // SAFETY: each load reads the lanes of its mask only, all within `dims` bytes
            // from a block's start inside `q` (or the row).
            let qs: Vec<__m512i> = (0..blocks)
                .map(|k| unsafe { _mm512_maskz_loadu_epi8(mask(k), q.as_ptr().add(k * 64)) })
                .collect();
            let bias: i32 = 128 * q[..dims].iter().map(|&x| i32::from(x)).sum::<i32>();
            let flip = _mm512_set1_epi8(i8::MIN);
            for (i, row) in rows.chunks_exact(dims).enumerate() {
                let mut acc = _mm512_setzero_si512();
                for (k, qk) in qs.iter().enumerate() {
                    // SAFETY: as above, within the row's `dims` bytes.
                    let r = unsafe { _mm512_maskz_loadu_epi8(mask(k), row.as_ptr().add(k * 64)) };
                    // Lanes past `dims` hold 128 after the flip, times a query lane of 0.
                    let r = _mm512_xor_si512(r, flip);
                    acc = _mm512_dpbusd_epi32(acc, r, *qk);
                }
                f(i, _mm512_reduce_add_epi32(acc) - bias);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        use std::arch::x86_64::{
            __m256i, _mm256_abs_epi8, _mm256_add_epi32, _mm256_castsi256_si128,
            _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_maddubs_epi16,
            _mm256_set1_epi16, _mm256_setzero_si256, _mm256_sign_epi8, _mm_add_epi32,
            _mm_cvtsi128_si32, _mm_shuffle_epi32,
        };

        /// int8 dot product, 32 lanes at a time: |a| × (b with a's sign) as u8 × i8 pairs
        /// (exact: codes are within ±127, so a pair sum fits i16), widened to i32.
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::cast_ptr_alignment)] // unaligned loads (loadu)
        pub(super) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
            let n = a.len().min(b.len());
            let blocks = n / 32;
            let ones = _mm256_set1_epi16(1);
            let mut acc = _mm256_setzero_si256();
            for k in 0..blocks {
                // SAFETY: k * 32 + 32 <= n, within both slices; unaligned loads.
                let (va, vb) = unsafe {
                    (
                        _mm256_loadu_si256(a.as_ptr().add(k * 32).cast::<__m256i>()),
                        _mm256_loadu_si256(b.as_ptr().add(k * 32).cast::<__m256i>()),
                    )
                };
                let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(va), _mm256_sign_epi8(vb, va));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
            }
            let s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256::<1>(acc));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b0100_1110>(s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b1011_0001>(s));
            let mut sum = _mm_cvtsi128_si32(s);
            for i in blocks * 32..n {
                sum += i32::from(a[i]) * i32::from(b[i]);
            }
            sum
        }

        #[target_feature(enable = "avx2,fma")]
        pub(super) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
            super::dot_f32_body(a, b)
        }
        #[target_feature(enable = "avx2,fma")]
        pub(super) fn scan_f32(rows: &[f32], dims: usize, q: &[f32], f: impl FnMut(usize, f32)) {
            super::scan_f32_body(rows, dims, q, f);
        }
        #[target_feature(enable = "avx2,fma")]
        pub(super) fn scan_i8(rows: &[i8], dims: usize, q: &[i8], mut f: impl FnMut(usize, i32)) {
            for (i, row) in rows.chunks_exact(dims).enumerate() {
                f(i, dot_i8(row, q));
            }
        }
    }

    pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: the CPU supports the enabled features (checked above).
            return unsafe { avx2::dot_f32(a, b) };
        }
        dot_f32_body(a, b)
    }

    pub(crate) fn scan_f32(rows: &[f32], dims: usize, q: &[f32], f: impl FnMut(usize, f32)) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: the CPU supports the enabled features (checked above).
            return unsafe { avx2::scan_f32(rows, dims, q, f) };
        }
        scan_f32_body(rows, dims, q, f);
    }

    pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: the CPU supports the enabled features (checked above).
            return unsafe { avx2::dot_i8(a, b) };
        }
        dot_i8_body(a, b)
    }

    pub(crate) fn scan_i8(rows: &[i8], dims: usize, q: &[i8], f: impl FnMut(usize, i32)) {
        #[cfg(target_arch = "x86_64")]
        if has_vnni() {
            // SAFETY: the CPU supports the enabled features (checked above).
            return unsafe { vnni::scan_i8(rows, dims, q, f) };
        }
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: the CPU supports the enabled features (checked above).
            return unsafe { avx2::scan_i8(rows, dims, q, f) };
        }
        scan_i8_body(rows, dims, q, f);
    }

    /// An int8 scan as the tests call it (through a `dyn` callback).
    #[cfg(test)]
    pub(crate) type ScanI8 = fn(&[i8], usize, &[i8], &mut dyn FnMut(usize, i32));

    /// Every int8 scan this CPU can run, by name: the plain one always, AVX2 and AVX-512
    /// VNNI where the CPU has them, so the tests hold each one (not only the one `scan_i8`
    /// picks) to the exact dot products.
    #[cfg(test)]
    pub(crate) fn scan_i8_each() -> Vec<(&'static str, ScanI8)> {
        let mut each: Vec<(&'static str, ScanI8)> =
            vec![("plain", |r, d, q, f| scan_i8_body(r, d, q, f))];
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2() {
                // SAFETY: listed only when the CPU supports the enabled features.
                each.push(("avx2", |r, d, q, f| unsafe { avx2::scan_i8(r, d, q, f) }));
            }
            if has_vnni() {
                // SAFETY: listed only when the CPU supports the enabled features.
                each.push(("avx512-vnni", |r, d, q, f| unsafe { vnni::scan_i8(r, d, q, f) }));
            }
        }
        each
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed =
            seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    fn random_rows(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                let mut v: Vec<f32> = (0..dims).map(|_| lcg(&mut s)).collect();
                normalize(&mut v);
                v
            })
            .collect()
    }

    fn exact(rows: &[Vec<f32>], q: &[f32], k: usize) -> Vec<u32> {
        let mut s: Vec<(f32, u32)> =
            rows.iter().enumerate().map(|(i, r)| (dot(r, q), i as u32)).collect();
        s.sort_by(|a, b| b.0.total_cmp(&a.0));
        s.into_iter().take(k).map(|x| x.1).collect()
    }

    fn build(rows: &[Vec<f32>], step: usize) -> NamespaceVectors {
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

    #[test]
    fn the_cache_keeps_within_its_budget_dropping_the_least_recently_used() {
        let rows = random_rows(1000, 16, 4);
        let one = build(&rows, 1000);
        let cache = VectorCache::new(one.bytes() * 2 + 1);
        let loads = std::cell::Cell::new(0);
        let load = || {
            loads.set(loads.get() + 1);
            Ok(build(&rows, 1000))
        };
        cache.get_or_load(1, load).unwrap();
        cache.get_or_load(2, load).unwrap();
        cache.get_or_load(1, load).unwrap(); // 1 is now the most recently used
        assert_eq!(loads.get(), 2);
        cache.get_or_load(3, load).unwrap(); // over budget: 2 goes
        assert_eq!(cache.held(), one.bytes() * 2);
        cache.get_or_load(1, load).unwrap();
        assert_eq!(loads.get(), 3, "1 stayed cached");
        cache.get_or_load(2, load).unwrap();
        assert_eq!(loads.get(), 4, "2 was evicted and reloaded");
        // Writes keep the count exact; forgetting releases it.
        cache.apply(2, 100, &[(5000, [9; 16], rows[0].as_slice(), 0)], &[], &[]);
        cache.forget(1);
        cache.forget(2);
        cache.forget(3);
        assert_eq!(cache.held(), 0);
    }

    /// A write commits, a recall loads the namespace from a snapshot that holds that write and
    /// installs it, then the write applies its rows: the row is in the copy once, not twice
    /// (a recall listed the newest memory twice when the two raced).
    #[test]
    fn a_write_applied_after_a_load_that_holds_it_is_not_added_twice() {
        let rows = random_rows(3, 8, 5);
        let cache = VectorCache::new(usize::MAX);
        let loaded = || {
            let mut nv = build(&rows, 3);
            nv.loaded_seq = 3; // the snapshot's last vector write: writes 1..=3 committed
            Ok(nv)
        };
        cache.get_or_load(1, loaded).unwrap();
        cache.apply(1, 3, &[(2, [2; 16], rows[2].as_slice(), 0)], &[], &[]);
        let copy = cache.get_or_load(1, || unreachable!("cached")).unwrap();
        assert_eq!(copy.len(), 3);
        let hits = copy.search(&rows[2], 3, None);
        assert_eq!(hits.iter().filter(|h| h.slot == 2).count(), 1);
        // A write committed after the load still adds its row.
        cache.apply(1, 4, &[(3, [3; 16], rows[0].as_slice(), 0)], &[], &[]);
        assert_eq!(cache.get_or_load(1, || unreachable!("cached")).unwrap().len(), 4);
    }

    /// Upserts overwrite a row in its slot, so slots no longer tell which writes a load
    /// holds: an overwrite the load holds adds nothing, and of two overwrites of one slot that
    /// apply out of commit order the later-committed one stays live.
    #[test]
    fn overwrites_apply_once_and_the_last_committed_one_wins() {
        let rows = random_rows(6, 8, 11);
        let cache = VectorCache::new(usize::MAX);
        let loaded = || {
            // Slot 1 holds rows[3]: written by write 2, which the load holds.
            let mut nv = build(&[rows[0].clone(), rows[3].clone(), rows[2].clone()], 3);
            nv.loaded_seq = 2;
            Ok(nv)
        };
        cache.get_or_load(1, loaded).unwrap();
        cache.apply(1, 2, &[], &[(1, [1; 16], rows[3].as_slice(), 0)], &[]);
        let copy = cache.get_or_load(1, || unreachable!("cached")).unwrap();
        assert_eq!(copy.rows, 3, "the held overwrite added no row");
        assert!(copy.current.is_empty());
        // Write 4 (rows[5]) applies before write 3 (rows[4]).
        cache.apply(1, 4, &[], &[(1, [1; 16], rows[5].as_slice(), 0)], &[]);
        cache.apply(1, 3, &[], &[(1, [1; 16], rows[4].as_slice(), 0)], &[]);
        let copy = cache.get_or_load(1, || unreachable!("cached")).unwrap();
        let top = copy.search(&rows[5], 3, None);
        assert_eq!((top[0].slot, top.iter().filter(|h| h.slot == 1).count()), (1, 1));
        assert!((top[0].similarity - 1.0).abs() < 1e-5);
        for stale in [&rows[3], &rows[4]] {
            let hits = copy.search(stale, 3, None);
            assert_eq!(hits.iter().filter(|h| h.slot == 1).count(), 1);
            assert!(hits.iter().all(|h| h.slot != 1 || h.similarity < 0.999));
        }
    }

    #[test]
    fn kernels_agree_with_plain_loops() {
        let rows = random_rows(2, 389, 3);
        let plain: f32 = rows[0].iter().zip(&rows[1]).map(|(a, b)| a * b).sum();
        assert!((dot(&rows[0], &rows[1]) - plain).abs() < 1e-5);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        quantize(&rows[0], &mut a);
        quantize(&rows[1], &mut b);
        let plain: i32 = a.iter().zip(&b).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
        let mut got = 0;
        kernels::scan_i8(&a, 389, &b, |_, d| got = d);
        assert_eq!(got, plain);
    }

    /// Each int8 scan the CPU can run (plain always; AVX2 and AVX-512 VNNI where present, so
    /// the fallbacks are held to the same answers as the fast path) and the one `scan_i8`
    /// picks give each row's exact dot product, for widths with and without a partial last
    /// block and at the codes' extremes.
    #[test]
    fn int8_scan_is_exact_for_every_row_and_width() {
        let each = kernels::scan_i8_each();
        assert_eq!(each[0].0, "plain");
        eprintln!("int8 scans on this CPU: {:?}", each.iter().map(|k| k.0).collect::<Vec<_>>());
        for dims in [1, 7, 63, 64, 65, 384, 389, 1024] {
            let mut rows: Vec<Vec<i8>> = random_rows(6, dims, dims as u64)
                .iter()
                .map(|r| {
                    let mut c = Vec::new();
                    quantize(r, &mut c);
                    c
                })
                .collect();
            rows.push(vec![127; dims]);
            rows.push(vec![-127; dims]);
            for q in [rows[0].clone(), vec![127; dims], vec![-127; dims]] {
                let flat: Vec<i8> = rows.concat();
                let mut got = Vec::new();
                kernels::scan_i8(&flat, dims, &q, |i, d| got.push((i, d)));
                let want: Vec<(usize, i32)> = rows
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        (i, r.iter().zip(&q).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum())
                    })
                    .collect();
                assert_eq!(got, want, "dims {dims}, the scan scan_i8 picks");
                for (name, scan) in &each {
                    let mut got = Vec::new();
                    scan(&flat, dims, &q, &mut |i, d| got.push((i, d)));
                    assert_eq!(got, want, "dims {dims}, {name}");
                }
            }
        }
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
