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
use crate::datastore::{DataTables, NamespaceId};
use crate::error::Result;
use crate::records::memory::SlotAgents;
use crate::storage::RoTxn;
use crate::vector::{decode_row, NewRow};

mod batch;
mod scan;

pub(crate) use scan::ScanHit;
#[cfg(test)]
pub(crate) mod tests;

/// Segments this large are not merged further.
const MERGE_MAX: usize = 16_384;
/// Deleted rows tolerated before the copy is compacted (also at most 1/8 of the rows).
const MAX_TOMBSTONES: usize = 256;

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
    /// Recalls of this copy waiting to share a scan (see [`batch`]).
    scans: batch::ScanQueue,
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

    /// Approximate bytes held (f32 values, int8 codes, their sums, scales, slots, ids).
    pub(super) fn bytes(&self) -> usize {
        self.rows * (self.dims * 5 + 40)
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

    /// [`NamespaceVectors::is_current`] of row `i` of segment `s`. A copy without overwritten
    /// slots (most) does not read the row's slot and generation: the scans ask this of each
    /// row that makes their running top, and in a profile of a 10k scan those two loads, far
    /// from the codes just read, were a quarter of the ranking's samples.
    fn is_current_row(&self, s: &Segment, i: usize) -> bool {
        self.current.is_empty() || self.is_current(s.slots[i], s.gens[i])
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
            scans: batch::ScanQueue::default(),
        }
    }
}
