//! Recall: the memories most similar to a query, ranked by similarity and effective
//! importance, after filters (vector, keyword or hybrid; see [`crate::memory`]'s ranking).

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use serde_json::Value;

use crate::auth::NamespaceAction;
use crate::datastore::ns_key;
use crate::datastore::DataTables;
use crate::error::{Error, Result};
use crate::filter::{Field, Filter};
use crate::handle::Handle;
use crate::index::Rescore;
use crate::keyword::{KeywordRecall, RecallMode};
use crate::memory::{
    best, decode_record, effective_importance, encode_hits, is_live, materialize, rank_view,
    rank_view_spans, validate_importance, validate_session, validate_tags, Cutoff, Kept, Memory,
    RankView, Ranked, Recall, RecallHit, CALLER_EMBEDDER, FILTERED_EXACT_MAX, MAX_CONTENT_BYTES,
    MAX_TOP_K,
};
use crate::records::memory::{agent_key, Verdict};
use crate::storage::RoTxn;
use crate::vector::{normalize, unit_vector};

/// Wakes the thread that waits in [`finish`].
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `f` to its end on this thread (a recall that shares no scan never waits).
fn finish<T>(f: impl Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// What a recall makes of its ranked candidates, in the read transaction of their records:
/// the hits, or the JSON text of the hits.
trait Materialize: Sized {
    fn materialize(t: &DataTables, r: &mut RoTxn<'_>, ns: u64, ranked: Vec<Ranked>)
        -> Result<Self>;

    /// The hits with those `expand` reaches through the knowledge graph.
    fn expanded(
        self,
        expand: impl FnOnce(Vec<RecallHit>) -> Result<Vec<RecallHit>>,
    ) -> Result<Self>;
}

impl Materialize for Vec<RecallHit> {
    fn materialize(
        t: &DataTables,
        r: &mut RoTxn<'_>,
        ns: u64,
        ranked: Vec<Ranked>,
    ) -> Result<Self> {
        materialize(t, r, ns, ranked)
    }

    fn expanded(
        self,
        expand: impl FnOnce(Vec<RecallHit>) -> Result<Vec<RecallHit>>,
    ) -> Result<Self> {
        expand(self)
    }
}

/// The JSON text of a recall's hits, written from their records (see [`encode_hits`]).
struct HitsJson(Vec<u8>);

impl Materialize for HitsJson {
    fn materialize(
        t: &DataTables,
        r: &mut RoTxn<'_>,
        ns: u64,
        ranked: Vec<Ranked>,
    ) -> Result<Self> {
        encode_hits(t, r, ns, &ranked).map(HitsJson)
    }

    fn expanded(self, _: impl FnOnce(Vec<RecallHit>) -> Result<Vec<RecallHit>>) -> Result<Self> {
        // `Handle::recall_json_async` expands decoded hits.
        Err(Error::Internal("graph expansion of hits written as JSON".into()))
    }
}

impl Handle {
    /// Recalls the memories most similar to a query text or vector, ranked by similarity
    /// combined with effective importance, after filters.
    pub fn recall(&self, req: Recall) -> Result<Vec<RecallHit>> {
        finish(self.recall_sharing(req, false))
    }

    /// [`Handle::recall`] answering the JSON text of the hits `recall` gives, written from
    /// their records, not from decoded hits, unless graph expansion adds to them (what
    /// `Handle::call_encoded` answers).
    pub(crate) fn recall_json(&self, req: Recall) -> Result<Vec<u8>> {
        finish(self.recall_text(req, false))
    }

    /// [`Handle::recall_json`] for a caller on an async executor. The scan of the
    /// namespace's vectors is shared with the recalls of the same vectors running at the
    /// same time, awaiting (without a thread) the next pass when one is running, or yielding
    /// once before it leads one (see `NamespaceVectors::search_shared`).
    pub(crate) async fn recall_json_async(&self, req: Recall) -> Result<Vec<u8>> {
        self.recall_text(req, true).await
    }

    /// The JSON text of a recall's hits; `share`: its scan may wait to be shared.
    async fn recall_text(&self, req: Recall, share: bool) -> Result<Vec<u8>> {
        if req.expand.is_some_and(|d| d > 0) {
            let hits: Vec<RecallHit> = self.recall_sharing(req, share).await?;
            return Ok(serde_json::to_vec(&hits)?);
        }
        Ok(self.recall_sharing::<HitsJson>(req, share).await?.0)
    }

    /// A recall; `share`: its scan may wait to be shared (see [`Handle::recall_json_async`]).
    #[allow(clippy::too_many_lines)] // validation, candidate search and filtering in order
    async fn recall_sharing<H: Materialize>(&self, req: Recall, share: bool) -> Result<H> {
        let caller = self.caller()?;
        let (rec, agent_is_ns) = self.memory_namespace(
            &caller,
            req.namespace.as_deref(),
            req.agent_id.as_deref(),
            NamespaceAction::Read,
        )?;
        let agent = if agent_is_ns { None } else { req.agent_id.as_deref() };
        let top_k = req.top_k.unwrap_or(10);
        if top_k == 0 || top_k > MAX_TOP_K {
            return Err(Error::invalid("top_k", format!("must be between 1 and {MAX_TOP_K}")));
        }
        validate_tags(&req.tags, "tags")?;
        if let Some(m) = req.min_importance {
            validate_importance(m, "min_importance")?;
        }
        if req.expand.is_some_and(|d| d > 5) {
            return Err(Error::invalid("expand", "must be between 0 and 5"));
        }
        let mode = RecallMode::of(req.mode, req.vector.is_some(), req.vector_weight)?;
        let _slot = self.compute_slot(&caller)?;
        let env = self.state.data_env_of(&rec)?;
        let read_stats = |r: &mut RoTxn<'_>, t: &DataTables| {
            t.shared_stats_of(r, rec.id, &self.state.decoded_stats)
        };
        let mut stats = env.read(read_stats)?;
        if mode != RecallMode::Vector && !stats.keyword_indexed && stats.memory_count > 0 {
            // Written before the keyword index (0.1.0): index it first.
            self.state.ensure_keywords(&rec)?;
            stats = env.read(read_stats)?;
        }
        // The embedder of a text query, for hybrid recall's token match.
        let mut matcher: Option<Arc<dyn crate::Embedder>> = None;
        let query: Option<Vec<f32>> = match (&req.query, &req.vector) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid("vector", "give either query or vector, not both"))
            }
            (None, None) => return Err(Error::invalid("query", "required (or give vector)")),
            (None, Some(v)) => Some(unit_vector(v.clone(), "vector")?),
            (Some(q), None) => {
                if q.trim().is_empty() {
                    return Err(Error::invalid("query", "must not be empty"));
                }
                if q.len() > MAX_CONTENT_BYTES {
                    return Err(Error::invalid(
                        "query",
                        format!("must be at most {MAX_CONTENT_BYTES} bytes"),
                    ));
                }
                if mode == RecallMode::Keyword {
                    None
                } else if stats.embedder.as_deref() == Some(CALLER_EMBEDDER) {
                    return Err(Error::invalid(
                        "query",
                        "this namespace holds caller-supplied vectors; pass vector instead \
                         (or mode keyword)",
                    ));
                } else {
                    let embedder = crate::embed::for_namespace(
                        &self.state.options.embedder,
                        stats.embedder.as_deref(),
                    )?;
                    let mut v = embedder.embed(&[q])?.pop().unwrap_or_default();
                    normalize(&mut v);
                    matcher = Some(embedder);
                    Some(v)
                }
            }
        };
        if let (Some(d), Some(query)) = (stats.dimensions.or(rec.dimensions), &query) {
            if query.len() != d as usize {
                return Err(Error::invalid(
                    "vector",
                    format!("has {} dimensions, the namespace uses {d}", query.len()),
                ));
            }
        }
        let now = self.state.now_micros();
        validate_session(req.session_id.as_deref(), "session_id")?;
        // The filter language's conditions, with the shorthands that map onto it.
        let mut extra = Vec::new();
        if let Some(f) = crate::listing::parse_filter(req.filter.as_ref())? {
            extra.push(f);
        }
        if let Some(t) = req.memory_type {
            extra.push(Filter::eq(Field::MemoryType, Value::String(t.as_str().to_owned())));
        }
        if let Some(s) = &req.session_id {
            extra.push(Filter::eq(Field::SessionId, Value::String(s.clone())));
        }
        let extra = (!extra.is_empty()).then_some(Filter::And(extra));
        // Filters checked on the records (the agent filter is applied while scanning).
        let filtered = !req.tags.is_empty()
            || req.min_importance.is_some()
            || req.since.is_some()
            || req.until.is_some()
            || extra.is_some();
        // Liveness and the filters; the effective importance of a memory that passes.
        let passes = |m: &Memory| -> Option<f64> {
            if !is_live(m, &rec.policy, now) {
                return None;
            }
            let eff = effective_importance(m, &rec.policy, now);
            let keep = agent.is_none_or(|a| m.agent_id.as_deref() == Some(a))
                && req.tags.iter().all(|t| m.tags.contains(t))
                && req.min_importance.is_none_or(|mi| eff >= mi)
                && req.since.is_none_or(|s| m.created_at >= s)
                && req.until.is_none_or(|u| m.created_at < u)
                && extra.as_ref().is_none_or(|f| f.matches(m));
            keep.then_some(eff)
        };
        let text = req.query.as_deref().unwrap_or_default();
        // Hybrid recall with a static model matches the query's tokens with its candidates'
        // texts: they are kept from the read that judges each candidate.
        let with_token_match = match (&matcher, mode) {
            (Some(m), RecallMode::Hybrid) => m.token_match(text, &[])?.is_some(),
            _ => false,
        };
        // The verdict on a record by its rank view: liveness, importance and the agent.
        let verdict = |slot: Option<u32>, view: RankView<'_>| -> Result<Option<Verdict>> {
            let eff = view.effective_importance(&rec.policy, now)?;
            let live = !view.expired(now)? && eff >= rec.policy.min_importance;
            let keep = live && agent.is_none_or(|a| view.agent_id.as_deref() == Some(a));
            let text = with_token_match.then(|| view.content.into_owned());
            Ok(keep.then_some(Verdict { slot, eff, text }))
        };
        // The verdict on a stored record: decoded whole only when a filter needs more than
        // liveness, importance and the agent.
        let judge = |bytes: &[u8]| -> Result<Option<Verdict>> {
            if filtered {
                let s = decode_record(bytes)?;
                let Some(eff) = passes(&s.memory) else { return Ok(None) };
                let text = with_token_match.then_some(s.memory.content);
                return Ok(Some(Verdict { slot: s.slot, eff, text }));
            }
            let (slot, view) = rank_view(bytes)?;
            verdict(slot, view)
        };
        // A vector candidate of similarity `sim` that passes, judged by its record. A vector
        // recall writes its hits from the records that judged them, kept (copied: a value
        // borrows the read transaction, which the next read needs) rather than read again;
        // without filters, the parse that judges a record also finds where its hit's fields
        // lie, so the hit is written without parsing it again. Hybrid and keyword recall
        // judge many more candidates than they return: they read their hits' records again.
        let keep_records = mode == RecallMode::Vector;
        let candidate = |t: &DataTables,
                         r: &mut RoTxn<'_>,
                         key: [u8; 16],
                         sim: f32|
         -> Result<Option<Ranked>> {
            let Some(bytes) = t.memories.get(r, &ns_key(rec.id, &key))? else { return Ok(None) };
            let one_parse = if keep_records && !filtered { rank_view_spans(bytes) } else { None };
            let (judged, spans) = match one_parse {
                Some((slot, view, spans)) => (verdict(slot, view)?, Some(spans)),
                None => (judge(bytes)?, None),
            };
            let Some(Verdict { slot, eff, text }) = judged else { return Ok(None) };
            let record = keep_records.then(|| Kept { bytes: bytes.to_vec(), spans });
            let sim = f64::from(sim);
            Ok(Some(Ranked { text, record, ..Ranked::by_vector(key, slot, sim, eff) }))
        };
        // A selective filter: score its memories' vectors exactly, judge the best records.
        // The filters the secondary keys can answer: the filter language, agent and tags.
        let plan = {
            let mut plan: Vec<Filter> = extra.iter().cloned().collect();
            if let Some(a) = agent {
                plan.push(Filter::eq(Field::AgentId, Value::String(a.to_owned())));
            }
            if !req.tags.is_empty() {
                plan.push(Filter::all_tags(&req.tags));
            }
            (!plan.is_empty()).then_some(Filter::And(plan))
        };
        let exact_hits = |query: &[f32], k: usize| -> Result<Option<Vec<Ranked>>> {
            let (Some(_), Some(plan)) = (&extra, &plan) else { return Ok(None) };
            self.state.ensure_fields(&rec)?;
            env.read(|r, t| {
                let Some(c) = crate::filter::candidates(t, r, rec.id, plan, FILTERED_EXACT_MAX)?
                else {
                    return Ok(None);
                };
                // In slot order, so the rows are read in key order (neighbouring pages).
                let mut slots: Vec<(u32, [u8; 16])> =
                    c.iter().filter_map(|(key, slot)| slot.map(|s| (s, *key))).collect();
                slots.sort_unstable_by_key(|s| s.0);
                let mut scored = Vec::with_capacity(slots.len());
                let mut buf = Vec::with_capacity(query.len());
                for (slot, key) in slots {
                    let Some(row) = t.vectors.get(r, &ns_key(rec.id, &slot.to_be_bytes()))? else {
                        continue;
                    };
                    if let Some(sim) = crate::vector::row_dot(row, query, &mut buf) {
                        scored.push((sim, key));
                    }
                }
                scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
                let enough = k * 4 + 32;
                let mut hits = Vec::new();
                for (sim, key) in scored {
                    if let Some(hit) = candidate(t, r, key, sim)? {
                        hits.push(hit);
                        if hits.len() >= enough {
                            break;
                        }
                    }
                }
                best(&mut hits, k);
                Ok(Some(hits))
            })
        };
        // The best `k` memories by vector similarity that pass, ranked. `fusing`: for hybrid
        // recall, whose fusion weighs importance itself, so the best `k` by similarity will do.
        let vector_hits = async |query: &[f32], k: usize, fusing: bool| -> Result<Vec<Ranked>> {
            if let Some(hits) = exact_hits(query, k)? {
                return Ok(hits);
            }
            // The tail copy is taken before the read transactions below (see crate::index).
            let vectors = self
                .state
                .vectors
                .get_or_load(rec.id, || self.state.indexes.load_vectors(&*self.state, &rec))?;
            self.state.indexes.note_recall(&rec, &stats);
            let agent_filter = agent.map(|a| agent_key(Some(a)));
            // Over-fetch so filters and decay still leave k (and importance can reorder
            // them); widen when they do not.
            let mut want = match (filtered, fusing) {
                (true, _) => k * 8,
                (false, false) => k * 2,
                (false, true) => k,
            };
            loop {
                let exact = if share {
                    vectors.search_shared(query, want, agent_filter).await
                } else {
                    vectors.search(query, want, agent_filter)
                };
                let (mut hits, exhausted) = env.read(|r, t| {
                    let (candidates, exhausted) = crate::index::candidates(
                        t,
                        r,
                        rec.id,
                        &vectors,
                        exact,
                        query,
                        want,
                        agent_filter,
                        if fusing { Rescore::Fusion } else { Rescore::Ranking },
                    )?;
                    // A ranking stops judging where no candidate left can make its best `k`
                    // (a fusion ranks them all again).
                    let importance = if fusing || !stats.fields_indexed {
                        None
                    } else {
                        crate::filter::importance_range(t, r, rec.id)?
                    };
                    let sims = candidates.iter().map(|c| c.1);
                    let mut cutoff = importance.and_then(|i| Cutoff::new(k, i, sims));
                    let mut hits = Vec::with_capacity(candidates.len());
                    for &(id, sim) in &candidates {
                        if cutoff.as_ref().is_some_and(|c| c.reached(sim)) {
                            break;
                        }
                        if let Some(hit) = candidate(t, r, id, sim)? {
                            if let Some(c) = &mut cutoff {
                                c.passed(hit.score);
                            }
                            hits.push(hit);
                        }
                    }
                    Ok((hits, exhausted))
                })?;
                // Asking for more candidates than there are vectors cannot find more.
                let everything = want as u64 >= stats.next_slot.into();
                if hits.len() >= k || exhausted || everything {
                    best(&mut hits, k);
                    return Ok(hits);
                }
                want *= 4;
            }
        };
        let mut hits = match (mode, &query) {
            (RecallMode::Keyword, _) => {
                if plan.is_some() {
                    self.state.ensure_fields(&rec)?;
                }
                env.read(|r, t| {
                    // A selective filter: rank only the memories its secondary keys name.
                    let among = match &plan {
                        Some(p) => crate::filter::candidates(t, r, rec.id, p, FILTERED_EXACT_MAX)?,
                        None => None,
                    };
                    let mut kw = KeywordRecall::new(t, &mut *r, rec.id, &stats, text, None, &judge);
                    let mut ranked = match among {
                        Some(c) => {
                            let c = c.iter().filter_map(|(key, slot)| Some(((*slot)?, *key)));
                            kw.hits_among(c.collect(), top_k)?
                        }
                        None => kw.hits(top_k)?,
                    };
                    best(&mut ranked, top_k);
                    H::materialize(t, r, rec.id, ranked)
                })?
            }
            (RecallMode::Hybrid, Some(q)) => {
                let depth = crate::keyword::hybrid_depth(top_k, with_token_match).min(MAX_TOP_K);
                let by_vector = vector_hits(q, depth, true).await?;
                env.read(|r, t| {
                    let mut kw =
                        KeywordRecall::new(t, &mut *r, rec.id, &stats, text, Some(q), &judge);
                    let w = req.vector_weight;
                    let matcher = matcher.as_deref().filter(|_| with_token_match);
                    let mut ranked = kw.hybrid(by_vector, depth, top_k, w, matcher)?;
                    best(&mut ranked, top_k);
                    H::materialize(t, r, rec.id, ranked)
                })?
            }
            (_, Some(q)) => {
                let ranked = vector_hits(q, top_k, false).await?;
                env.read(|r, t| H::materialize(t, r, rec.id, ranked))?
            }
            (_, None) => return Err(Error::Internal("recall without a query vector".into())),
        };
        if let Some(depth) = req.expand.filter(|d| *d > 0) {
            let env = self.state.data_env_of(&rec)?;
            hits = hits.expanded(|hits| {
                crate::graph::expand_hits(&self.state.graphs, &env, &rec, hits, depth, &passes)
            })?;
        }
        Ok(hits)
    }
}
