//! Recall over a namespace's vectors: loading its searchable copy, and the candidates of a
//! query from the tail and the partition.

use std::sync::Arc;

use super::env::{slot_cell, stored_training};
use super::ivf::Ivf;
use super::vectors::{NamespaceVectors, ScanHit};
use super::{IndexHost, Indexes};
use crate::datastore::{ns_key, DataTables, NamespaceId};
use crate::error::Result;
use crate::records::memory::slot_agents;
use crate::records::NamespaceRecord;
use crate::storage::RoTxn;
use crate::vector::{decode_row, quantize};

/// Candidates taken from the partition per wanted result, re-scored exactly...
const RESCORE_FACTOR: usize = 4;
/// ...but at most this many beyond the wanted ones (wide requests come from selective filters).
const RESCORE_MAX_EXTRA: usize = 256;
/// Candidates re-scored beyond the wanted ones for a fusion ([`Rescore::Fusion`]).
const FUSION_EXTRA: usize = 32;

/// How many of the partition's candidates a recall re-scores exactly from their stored rows
/// (one read each): the int8 scores order them nearly as the exact ones do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rescore {
    /// A vector recall's ranking: [`RESCORE_FACTOR`] per wanted result (at most
    /// [`RESCORE_MAX_EXTRA`] more), plus 32.
    Ranking,
    /// Hybrid recall's vector side, which a fusion ranks again: [`FUSION_EXTRA`] more. (At
    /// 100k memories, `make bench-hybrid`'s 900 hybrid top 10s were the same with 18 or 60 more
    /// as with the 182 more of a ranking.)
    Fusion,
}

/// One candidate of a recall: memory id and cosine similarity.
pub(crate) type Candidate = ([u8; 16], f32);

/// Loads a namespace's searchable vectors: the tail rows, and the partition of the indexed
/// rows rebuilt from their stored cells.
pub(super) fn load_vectors(
    indexes: &Indexes,
    host: &dyn IndexHost,
    rec: &NamespaceRecord,
) -> Result<NamespaceVectors> {
    let data = host.data_env(rec)?;
    data.read(|r, t| {
        let agents = slot_agents(t, r, rec.id)?;
        let mut nv = NamespaceVectors::load(t, r, rec.id, &agents)?;
        if nv.from_slot == 0 {
            return Ok(nv);
        }
        // Rows overwritten in place since their cell was stored: searched exactly.
        let refile = crate::filter::refile_slots(t, r, rec.id)?;
        let index = match indexes.envs.get(host, rec, false)? {
            Some(env) => env.read(|ir, it| {
                let Some(ivf) = stored_training(it, ir)? else { return Ok(None) };
                let mut cells = Vec::new();
                for e in it.cells.iter(ir)? {
                    let (k, v) = e?;
                    cells.extend(slot_cell(k, v));
                }
                Ok(Some((ivf, cells)))
            })?,
            None => None,
        };
        let (mut ivf, cells) = match index {
            Some((ivf, cells)) => (Some(ivf), cells),
            None => (None, Vec::new()),
        };
        let mut unfiled = Vec::new();
        let mut batch: Vec<(u32, u32, Vec<i8>, f32)> = Vec::new();
        let flush = |ivf: &mut Option<Ivf>, batch: &mut Vec<(u32, u32, Vec<i8>, f32)>| {
            if let Some(ivf) = ivf {
                ivf.add(batch.iter().map(|(s, c, codes, scale)| {
                    (*s, *c, codes.as_slice(), *scale, agents.get(*s))
                }));
            }
            batch.clear();
        };
        t.each_vector_row(r, rec.id, 0, nv.from_slot, |slot, row| {
            let Some((id, v)) = decode_row(row) else { return Ok(()) };
            let cell = ivf
                .as_ref()
                .filter(|i| i.dims() == v.len() && refile.binary_search(&slot).is_err())
                .and_then(|_| {
                    cells.binary_search_by_key(&slot, |c| c.0).ok().map(|at| cells[at].1)
                });
            match cell {
                Some(cell) => {
                    let mut codes = Vec::with_capacity(v.len());
                    let scale = quantize(&v, &mut codes);
                    batch.push((slot, cell, codes, scale));
                    if batch.len() >= 10_000 {
                        flush(&mut ivf, &mut batch);
                    }
                }
                None => unfiled.push((slot, id, v)),
            }
            Ok(())
        })?;
        flush(&mut ivf, &mut batch);
        if ivf.is_none() {
            // The index's files are gone (or its training does not fit): train a new one.
            indexes.queue.push(rec, false);
        }
        nv.ivf = ivf.map(Arc::new);
        nv.push_tail(&unfiled, &agents, &refile);
        Ok(nv)
    })
}

/// Candidates for a recall: `exact`, the exact best of the tail copy `vectors`
/// (`vectors.search(query, want, agent)`, or a share of a scan, see
/// [`NamespaceVectors::search_shared`]), merged with the partition's candidates re-scored
/// exactly from their stored rows; only memories of agent key `agent` when given (the caller
/// still checks every filter on the record). Returns at most `want`, best first, and whether
/// fewer than `want` exist at all. `r` is a read transaction of the namespace's data
/// environment; `rescore` says how many candidates are re-scored.
#[allow(clippy::too_many_arguments)] // the transaction, the namespace's copy, one recall's asks
pub(crate) fn candidates(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    vectors: &NamespaceVectors,
    exact: Vec<ScanHit>,
    query: &[f32],
    want: usize,
    agent: Option<u64>,
    rescore: Rescore,
) -> Result<(Vec<Candidate>, bool)> {
    let mut exhausted = exact.len() < want;
    let mut out: Vec<Candidate> = exact.into_iter().map(|h| (h.id, h.similarity)).collect();
    let Some(ivf) = &vectors.ivf else { return Ok((out, exhausted)) };
    let extra = match rescore {
        Rescore::Ranking => want.saturating_mul(RESCORE_FACTOR - 1).min(RESCORE_MAX_EXTRA) + 32,
        Rescore::Fusion => FUSION_EXTRA,
    };
    let (found, complete) = ivf.search(query, want + extra, agent, |s| vectors.skip_indexed(s));
    // Not every cell probed: a wider request (the caller's next round) may find more.
    if found.len() >= want || !complete {
        exhausted = false;
    }
    let mut buf = Vec::with_capacity(query.len());
    for (slot, _) in found {
        // A missing row is a deleted memory.
        let Some(row) = t.vectors.get(r, &ns_key(ns, &slot.to_be_bytes()))? else {
            continue;
        };
        let Some(id) = row.get(..16).and_then(|id| <[u8; 16]>::try_from(id).ok()) else {
            continue;
        };
        let Some(sim) = crate::vector::row_dot(row, query, &mut buf) else { continue };
        out.push((id, sim));
    }
    out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    out.truncate(want);
    Ok((out, exhausted))
}
