//! Keyword and hybrid recall: candidates from the BM25 index, fused with the vector
//! candidates by a weighted sum of their cosine similarity and BM25 score — and, with a
//! static model, of how well their tokens match the query's ([`crate::Embedder::token_match`])
//! — each scaled to [0, 1] over the candidates (`vector_weight`).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::search::Query;
use crate::datastore::{ns_key, DataTables, NamespaceStats};
use crate::error::{Error, Result};
use crate::rank::{best, importance_factor, Ranked};
use crate::records::memory::{judge_at, Judge, Verdict};
use crate::storage::RoTxn;

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

/// Hybrid recall's `vector_weight` when none is given. Chosen, with the fusion rule, by
/// `make bench-quality`'s sweep on half of `LoCoMo`'s conversations (the best hit@10 there;
/// see benches/README.md): reciprocal-rank fusion (k = 60), the rule before, found less.
pub(crate) const DEFAULT_VECTOR_WEIGHT: f64 = 0.6;

/// Hybrid recall's `vector_weight` when none is given and the embedder matches tokens (a
/// static model): the embedder's side then holds the cosine similarity and the token match.
/// Chosen, with [`COSINE_SHARE`], [`FIRST_STAGE_WEIGHT`], [`RERANKED`] and [`MATCHED_DEPTH`],
/// as [`DEFAULT_VECTOR_WEIGHT`] was (the best hit@10 on the tuning half of `LoCoMo`;
/// benches/README.md).
const DEFAULT_VECTOR_WEIGHT_MATCHED: f64 = 0.85;

/// The cosine similarity's share of the embedder's side when there is a token match too
/// (the token match has the rest).
const COSINE_SHARE: f64 = 0.4;

/// The `vector_weight` of the first stage when there is a token match: the fusion of cosine
/// and BM25 that chooses which candidates the token match reranks.
const FIRST_STAGE_WEIGHT: f64 = 0.5;

/// How many of the first stage's best candidates the token match reranks, at least (the
/// token match reads each one's text: its cost grows with them).
const RERANKED: usize = 75;

/// How many of each ranking hybrid recall fuses at least.
pub(crate) fn hybrid_depth(top_k: usize, token_match: bool) -> usize {
    (top_k * 3).max(if token_match { MATCHED_DEPTH } else { 50 })
}

/// [`hybrid_depth`] with a token match.
const MATCHED_DEPTH: usize = 50;

impl RecallMode {
    /// The mode a recall asks for (`mode`), checked against its query (a vector when
    /// `vector`, else text) and its `vector_weight`.
    pub(crate) fn of(
        mode: Option<RecallMode>,
        vector: bool,
        vector_weight: Option<f64>,
    ) -> Result<RecallMode> {
        let mode = match (mode, vector) {
            (None, true) => RecallMode::Vector,
            (None, false) => RecallMode::Hybrid,
            (Some(m @ (RecallMode::Keyword | RecallMode::Hybrid)), true) => {
                return Err(Error::invalid(
                    "mode",
                    format!("{} recall needs query text, not a vector", m.as_str()),
                ))
            }
            (Some(m), _) => m,
        };
        if let Some(w) = vector_weight {
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

/// One keyword or hybrid recall's context: the namespace's tables in a read transaction, its
/// statistics, the query text (and its embedding, for hybrid recall) and the filters' verdict.
pub(crate) struct KeywordRecall<'a, 'e> {
    t: &'a DataTables,
    r: &'a mut RoTxn<'e>,
    ns: u64,
    stats: &'a NamespaceStats,
    text: &'a str,
    /// The query's embedding: each candidate's vector score is its cosine similarity to it.
    query: Option<&'a [f32]>,
    judge: &'a Judge<'a>,
    /// The query's terms, read from the index at their first use.
    bm25: Option<Query>,
    /// A stored vector, decoded (reused across candidates).
    buf: Vec<f32>,
}

impl<'a, 'e> KeywordRecall<'a, 'e> {
    /// A recall of `text` in namespace `ns` (of `stats`), in the read transaction `r`.
    pub(crate) fn new(
        t: &'a DataTables,
        r: &'a mut RoTxn<'e>,
        ns: u64,
        stats: &'a NamespaceStats,
        text: &'a str,
        query: Option<&'a [f32]>,
        judge: &'a Judge<'a>,
    ) -> Self {
        KeywordRecall { t, r, ns, stats, text, query, judge, bm25: None, buf: Vec::new() }
    }

    /// The query's terms (read once per recall).
    fn bm25(&mut self) -> Result<&Query> {
        if self.bm25.is_none() {
            self.bm25 = Some(Query::read(self.t, self.r, self.ns, self.stats, self.text)?);
        }
        Ok(self.bm25.as_ref().expect("just read"))
    }
    /// The memory whose vector sits in `slot` (its key), with its cosine similarity to the
    /// query if there is one.
    fn memory_at(&mut self, slot: u32) -> Result<Option<([u8; 16], f64)>> {
        let Some(row) = self.t.vectors.get(self.r, &ns_key(self.ns, &slot.to_be_bytes()))? else {
            return Ok(None);
        };
        let Some(key) = row.get(..16).and_then(|k| <[u8; 16]>::try_from(k).ok()) else {
            return Ok(None);
        };
        let sim = self
            .query
            .and_then(|q| crate::vector::row_dot(row, q, &mut self.buf))
            .map_or(0.0, f64::from);
        Ok(Some((key, sim)))
    }

    /// A keyword candidate: BM25 `score`, and `sim`, its cosine similarity to the query's
    /// embedding when there is one (its relevance then, else the BM25 score).
    fn ranked(&self, key: [u8; 16], sim: f64, score: f32, verdict: Verdict) -> Ranked {
        let score = f64::from(score);
        let relevance = if self.query.is_some() { sim } else { score };
        let Verdict { slot, eff, text } = verdict;
        Ranked {
            key,
            slot,
            sim,
            eff,
            score: relevance * importance_factor(eff),
            keyword: Some(score),
            vector: self.query.map(|_| sim),
            text,
            record: None,
        }
    }

    /// The best `k` memories by BM25 among `among` (vector slot, memory key) — the memories a
    /// selective filter's secondary keys name — that pass the filters, in BM25 order: what
    /// [`Self::hits`] gives for the same filters, without walking the whole ranking. Keyword
    /// recall only (no query embedding).
    pub(crate) fn hits_among(
        &mut self,
        mut among: Vec<(u32, [u8; 16])>,
        k: usize,
    ) -> Result<Vec<Ranked>> {
        among.sort_unstable_by_key(|c| c.0);
        let slots: Vec<u32> = among.iter().map(|c| c.0).collect();
        let scores = self.bm25()?.scores_of(&slots);
        // Best first, ties by slot: the order of the whole ranking.
        let mut order: Vec<(f32, u32, [u8; 16])> = scores
            .into_iter()
            .zip(among)
            .filter(|(s, _)| *s > 0.0)
            .map(|(s, (slot, key))| (s, slot, key))
            .collect();
        order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut out = Vec::new();
        for (score, slot, key) in order {
            if out.len() == k {
                break;
            }
            let judged = judge_at(self.t, self.r, &ns_key(self.ns, &key), self.judge)?;
            let Some(verdict) = judged else { continue };
            if verdict.slot == Some(slot) {
                out.push(self.ranked(key, 0.0, score, verdict));
            }
        }
        Ok(out)
    }

    /// The best keyword candidates that pass the filters, best first, until `take` says
    /// there are enough (it sees each passing candidate, or `None` for one that is in `skip`,
    /// a vector hit already). BM25's top k is asked for more candidates (four times as many)
    /// while filters leave too few, so the result is that of walking the exhaustive ranking.
    fn candidates(
        &mut self,
        k: usize,
        skip: &HashSet<u32>,
        mut take: impl FnMut(Option<Ranked>) -> bool,
    ) -> Result<()> {
        if k == 0 {
            return Ok(());
        }
        let mut want = k;
        let mut seen = 0;
        loop {
            let top = self.bm25()?.top_k(want);
            for &(slot, score) in &top[seen..] {
                seen += 1;
                if skip.contains(&slot) {
                    if take(None) {
                        return Ok(());
                    }
                    continue;
                }
                let Some((key, sim)) = self.memory_at(slot)? else { continue };
                let judged = judge_at(self.t, self.r, &ns_key(self.ns, &key), self.judge)?;
                let Some(verdict) = judged else { continue };
                if take(Some(self.ranked(key, sim, score, verdict))) {
                    return Ok(());
                }
            }
            if top.len() < want {
                return Ok(());
            }
            want = want.saturating_mul(4);
        }
    }

    /// The best `k` memories by BM25 that pass the filters, in BM25 order. Their vector score
    /// is their cosine similarity to the query when there is one.
    pub(crate) fn hits(&mut self, k: usize) -> Result<Vec<Ranked>> {
        let mut out = Vec::new();
        self.candidates(k, &HashSet::new(), |h| {
            out.extend(h);
            out.len() == k
        })?;
        Ok(out)
    }

    /// Fuses the vector candidates (best first) with the best `depth` keyword candidates.
    /// Every candidate carries both scores; its score is the fused one times the importance
    /// factor. `matcher`, the namespace's embedder when it matches the query's tokens, adds
    /// its token match: the candidates are then ranked by cosine and BM25 first, and the best
    /// [`RERANKED`] (or `top_k`, if more) ranked again with the token match; only those are
    /// returned.
    pub(crate) fn hybrid(
        &mut self,
        by_vector: Vec<Ranked>,
        depth: usize,
        top_k: usize,
        vector_weight: Option<f64>,
        matcher: Option<&dyn crate::Embedder>,
    ) -> Result<Vec<Ranked>> {
        let slots: Vec<u32> = by_vector.iter().filter_map(|c| c.slot).collect();
        let scores = self.bm25()?.scores_of(&slots);
        let keyword: HashMap<u32, f32> = slots.iter().copied().zip(scores).collect();
        let seen: HashSet<u32> = slots.into_iter().collect();
        let mut hits: Vec<Ranked> = by_vector
            .into_iter()
            .map(|mut c| {
                let k = c.slot.and_then(|s| keyword.get(&s)).copied().unwrap_or(0.0);
                c.keyword = Some(f64::from(k));
                c
            })
            .collect();
        // A vector hit without a known slot (written after the index's snapshot) is not in
        // `seen`: its key keeps the keyword side from adding the same memory twice.
        let keys: HashSet<[u8; 16]> = hits.iter().map(|c| c.key).collect();
        let mut considered = 0;
        self.candidates(depth, &seen, |c| {
            considered += 1;
            hits.extend(c.filter(|c| !keys.contains(&c.key)));
            considered == depth
        })?;
        let default = vector_weight.unwrap_or(DEFAULT_VECTOR_WEIGHT);
        let Some(matcher) = matcher else {
            fuse(&mut hits, default, None);
            return Ok(hits);
        };
        // Two stages: the cheap fusion of cosine and BM25 ranks every candidate, then the
        // token match reranks the best of them only (with their texts, kept from the read
        // that judged them).
        fuse(&mut hits, FIRST_STAGE_WEIGHT, None);
        best(&mut hits, top_k.max(RERANKED));
        let mut texts = Vec::with_capacity(hits.len());
        for h in &hits {
            let text = if let Some(text) = &h.text {
                Cow::Borrowed(text.as_str())
            } else {
                let key = ns_key(self.ns, &h.key);
                let text = crate::records::memory::read_content(self.t, self.r, &key)?;
                Cow::Owned(text.map(Cow::into_owned).unwrap_or_default())
            };
            texts.push(text);
        }
        let texts: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let token_scores = matcher.token_match(self.text, &texts)?;
        let weight = match token_scores {
            Some(_) => vector_weight.unwrap_or(DEFAULT_VECTOR_WEIGHT_MATCHED),
            None => default,
        };
        fuse(&mut hits, weight, token_scores.as_deref());
        Ok(hits)
    }
}

/// Replaces each hit's score by the fused score — `vector_weight` × its cosine similarity +
/// (1 − `vector_weight`) × its BM25 score, each scaled to [0, 1] over the candidates (min-max;
/// 1 when every candidate has the same score, so equally relevant memories are still told
/// apart by importance) — times its importance factor. With `matched` (each hit's token
/// match, in order) the embedder's side is [`COSINE_SHARE`] of the scaled cosine plus the
/// rest of the scaled token match.
fn fuse(hits: &mut [Ranked], vector_weight: f64, matched: Option<&[f64]>) {
    let v = |h: &Ranked| h.vector.unwrap_or(h.sim);
    let k = |h: &Ranked| h.keyword.unwrap_or(0.0);
    let mut sv = min_max(hits.iter().map(v).collect());
    let sk = min_max(hits.iter().map(k).collect());
    if let Some(m) = matched.filter(|m| m.len() == hits.len()) {
        for (v, m_scaled) in sv.iter_mut().zip(min_max(m.to_vec())) {
            *v = COSINE_SHARE * *v + (1.0 - COSINE_SHARE) * m_scaled;
        }
    }
    for ((h, v_scaled), k_scaled) in hits.iter_mut().zip(sv).zip(sk) {
        let fused = vector_weight * v_scaled + (1.0 - vector_weight) * k_scaled;
        h.sim = v(h);
        h.vector = Some(v(h));
        h.score = fused * importance_factor(h.eff);
    }
}

/// Each score scaled to [0, 1] over all of them (min-max; 1 when they are all equal).
fn min_max(scores: Vec<f64>) -> Vec<f64> {
    let (lo, hi) = scores
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
    scores.into_iter().map(|x| if hi > lo { (x - lo) / (hi - lo) } else { 1.0 }).collect()
}
