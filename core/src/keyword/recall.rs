//! Keyword and hybrid recall: candidates from the BM25 index, fused with the vector
//! candidates by reciprocal rank (or by a weighted sum when `vector_weight` is given).

use std::collections::{HashMap, HashSet};

use heed::{RoTxn, WithoutTls};
use serde::{Deserialize, Serialize};

use crate::datastore::{ns_key, DataTables, NamespaceStats};
use crate::error::{Error, Result};
use crate::memory::{hit, read_memory, Memory, Recall, RecallHit};

/// How [`crate::Handle::recall`] finds candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecallMode {
    /// Nearest vectors to the query's embedding (or to the given vector).
    Vector,
    /// BM25 over the memories' words.
    Keyword,
    /// Both, fused.
    Hybrid,
}

/// Reciprocal-rank fusion's damping constant (the usual 60).
const RRF_K: f64 = 60.0;

impl RecallMode {
    /// The mode a request asks for, checked against its query and `vector_weight`.
    pub(crate) fn of(req: &Recall) -> Result<RecallMode> {
        let mode = match (req.mode, &req.vector) {
            (None, Some(_)) => RecallMode::Vector,
            (None, None) => RecallMode::Hybrid,
            (Some(m @ (RecallMode::Keyword | RecallMode::Hybrid)), Some(_)) => {
                return Err(Error::invalid(
                    "mode",
                    format!("{} recall needs query text, not a vector", m.as_str()),
                ))
            }
            (Some(m), _) => m,
        };
        if let Some(w) = req.vector_weight {
            if mode != RecallMode::Hybrid {
                return Err(Error::invalid("vector_weight", "applies to hybrid recall only"));
            }
            if !(0.0..=1.0).contains(&w) {
                return Err(Error::invalid("vector_weight", "must be between 0 and 1"));
            }
        }
        Ok(mode)
    }

    fn as_str(self) -> &'static str {
        match self {
            RecallMode::Vector => "vector",
            RecallMode::Keyword => "keyword",
            RecallMode::Hybrid => "hybrid",
        }
    }
}

/// The memory whose vector sits in `slot`, with its cosine similarity to `query` if given.
fn memory_at(
    t: &DataTables,
    r: &RoTxn<'_, WithoutTls>,
    ns: u64,
    slot: u32,
    query: Option<&[f32]>,
) -> Result<Option<(Memory, f64)>> {
    let Some(row) = t.vectors.get(r, &ns_key(ns, &slot.to_be_bytes()))? else {
        return Ok(None);
    };
    let Some((id, v)) = crate::vector::decode_row(row) else { return Ok(None) };
    let sim = query.map_or(0.0, |q| f64::from(crate::vector::dot(q, &v)));
    Ok(read_memory(t, r, &ns_key(ns, &id))?.map(|s| (s.memory, sim)))
}

/// The best keyword candidates that pass the filters, best first, until `enough` says there
/// are enough (it sees each passing hit, or `None` for a candidate that is a vector hit
/// already). BM25's top k is asked for more candidates (four times as many) while filters
/// leave too few, so the result is that of walking the exhaustive ranking.
#[allow(clippy::too_many_arguments, clippy::many_single_char_names)] // the recall's context
fn keyword_candidates(
    t: &DataTables,
    r: &RoTxn<'_, WithoutTls>,
    ns: u64,
    stats: &NamespaceStats,
    text: &str,
    query: Option<&[f32]>,
    k: usize,
    passes: &dyn Fn(&Memory) -> Option<f64>,
    skip: &HashSet<u32>,
    mut take: impl FnMut(Option<RecallHit>) -> bool,
) -> Result<()> {
    if k == 0 {
        return Ok(());
    }
    let mut want = k;
    let mut seen = 0;
    loop {
        let top = super::search::top_k(t, r, ns, stats, text, want)?;
        for &(slot, score) in &top[seen..] {
            seen += 1;
            if skip.contains(&slot) {
                if take(None) {
                    return Ok(());
                }
                continue;
            }
            let Some((m, sim)) = memory_at(t, r, ns, slot, query)? else { continue };
            let Some(eff) = passes(&m) else { continue };
            let mut h = hit(m, query.map_or(f64::from(score), |_| sim), eff, false);
            h.keyword_score = Some(f64::from(score));
            h.similarity = sim;
            h.vector_score = query.map(|_| sim);
            if take(Some(h)) {
                return Ok(());
            }
        }
        if top.len() < want {
            return Ok(());
        }
        want = want.saturating_mul(4);
    }
}

/// The best `k` memories by BM25 that pass the filters. Their vector score is their cosine
/// similarity to `query` when given.
#[allow(clippy::too_many_arguments)] // the recall's context
pub(crate) fn keyword_hits(
    t: &DataTables,
    r: &RoTxn<'_, WithoutTls>,
    ns: u64,
    stats: &NamespaceStats,
    text: &str,
    query: Option<&[f32]>,
    k: usize,
    passes: &dyn Fn(&Memory) -> Option<f64>,
) -> Result<Vec<RecallHit>> {
    let mut out = Vec::new();
    keyword_candidates(t, r, ns, stats, text, query, k, passes, &HashSet::new(), |h| {
        out.extend(h);
        out.len() == k
    })?;
    Ok(out)
}

/// Fuses the vector candidates (best first, with their slots) with the best `depth` keyword
/// candidates. Every hit carries both scores; its score is the fused one times the importance
/// factor of [`hit`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn hybrid_hits(
    t: &DataTables,
    r: &RoTxn<'_, WithoutTls>,
    ns: u64,
    stats: &NamespaceStats,
    text: &str,
    query: &[f32],
    by_vector: Vec<(RecallHit, Option<u32>)>,
    depth: usize,
    vector_weight: Option<f64>,
    passes: &dyn Fn(&Memory) -> Option<f64>,
) -> Result<Vec<RecallHit>> {
    let slots: Vec<u32> = by_vector.iter().filter_map(|(_, s)| *s).collect();
    let scores = super::search::scores_of(t, r, ns, stats, text, &slots)?;
    let keyword: HashMap<u32, f32> = slots.iter().copied().zip(scores).collect();
    let seen: HashSet<u32> = slots.into_iter().collect();
    let mut hits: Vec<RecallHit> = by_vector
        .into_iter()
        .map(|(mut h, slot)| {
            let k = slot.and_then(|s| keyword.get(&s)).copied().unwrap_or(0.0);
            h.keyword_score = Some(f64::from(k));
            h
        })
        .collect();
    // A vector hit without a known slot (written after the index's snapshot) is not in `seen`:
    // its id keeps the keyword side from adding the same memory twice.
    let ids: HashSet<String> = hits.iter().map(|h| h.id.clone()).collect();
    let mut considered = 0;
    keyword_candidates(t, r, ns, stats, text, Some(query), depth, passes, &seen, |h| {
        considered += 1;
        hits.extend(h.filter(|h| !ids.contains(&h.id)));
        considered == depth
    })?;
    fuse(&mut hits, vector_weight);
    Ok(hits)
}

/// Replaces each hit's score by the fused score times its importance factor.
#[allow(clippy::single_match_else)] // two fusion rules, side by side
fn fuse(hits: &mut [RecallHit], vector_weight: Option<f64>) {
    let v = |h: &RecallHit| h.vector_score.unwrap_or(h.similarity);
    let k = |h: &RecallHit| h.keyword_score.unwrap_or(0.0);
    let fused: Vec<f64> = match vector_weight {
        Some(w) => {
            let best = hits.iter().map(k).fold(0.0, f64::max);
            hits.iter()
                .map(|h| w * v(h) + (1.0 - w) * if best > 0.0 { k(h) / best } else { 0.0 })
                .collect()
        }
        None => {
            let rank = |score: &dyn Fn(&RecallHit) -> f64| {
                let mut order: Vec<usize> = (0..hits.len()).collect();
                order.sort_by(|a, b| score(&hits[*b]).total_cmp(&score(&hits[*a])));
                let mut ranks = vec![0usize; hits.len()];
                for (r, i) in order.into_iter().enumerate() {
                    ranks[i] = r + 1;
                }
                ranks
            };
            let (rv, rk) = (rank(&v), rank(&k));
            (0..hits.len())
                .map(|i| {
                    let by_keyword =
                        if k(&hits[i]) > 0.0 { 1.0 / (RRF_K + rk[i] as f64) } else { 0.0 };
                    1.0 / (RRF_K + rv[i] as f64) + by_keyword
                })
                .collect()
        }
    };
    for (h, f) in hits.iter_mut().zip(fused) {
        let factor = crate::memory::importance_factor(h.effective_importance);
        h.similarity = v(h);
        h.vector_score = Some(v(h));
        h.score = f * factor;
    }
}
