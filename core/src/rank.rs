//! Ranking of recall candidates: effective importance (decayed by the namespace's policy),
//! liveness, the score, and the top-k of candidates; [`RecallHit`], one recall result.
//!
//! `score = similarity * (0.7 + 0.3 * effective_importance)`, where similarity is cosine in
//! [-1, 1] and `effective_importance = importance * exp(-decay_rate * days)` with `days` the
//! time since the memory was created or last updated. Memories whose effective importance is
//! below the namespace's `min_importance`, or whose expiry has passed, are not live: never
//! returned, and removed by the background sweep.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::datastore::{ns_key, DataTables};
use crate::error::Result;
use crate::records::memory::{decode_record, split_record, HitFields, HitSpans};
use crate::records::{DecayPolicy, Memory, MemoryType};
use crate::storage::RoTxn;

const IMPORTANCE_WEIGHT: f64 = 0.3;

const MICROS_PER_DAY: f64 = 86_400_000_000.0;

pub(crate) fn effective_importance(m: &Memory, policy: &DecayPolicy, now: i64) -> f64 {
    decayed(m.importance, m.updated_at, policy, now)
}

/// Importance `importance` of a memory last updated at `updated_at`, decayed to `now`.
pub(crate) fn decayed(
    importance: f64,
    updated_at: DateTime<Utc>,
    policy: &DecayPolicy,
    now: i64,
) -> f64 {
    if policy.decay_rate <= 0.0 {
        return importance;
    }
    let days = ((now - updated_at.timestamp_micros()).max(0) as f64) / MICROS_PER_DAY;
    importance * (-policy.decay_rate * days).exp()
}

pub(crate) fn is_live(m: &Memory, policy: &DecayPolicy, now: i64) -> bool {
    m.expires_at.is_none_or(|e| e.timestamp_micros() > now)
        && effective_importance(m, policy, now) >= policy.min_importance
}

/// What a memory's effective importance multiplies its relevance by.
pub(crate) fn importance_factor(eff: f64) -> f64 {
    1.0 - IMPORTANCE_WEIGHT + IMPORTANCE_WEIGHT * eff
}

pub(crate) fn hit(m: Memory, sim: f64, eff: f64, via_graph: bool) -> RecallHit {
    RecallHit {
        id: m.id,
        content: m.content,
        score: sim * importance_factor(eff),
        similarity: sim,
        importance: m.importance,
        effective_importance: eff,
        agent_id: m.agent_id,
        tags: m.tags,
        metadata: m.metadata,
        memory_type: m.memory_type,
        session_id: m.session_id,
        created_at: m.created_at,
        updated_at: m.updated_at,
        via_graph,
        keyword_score: None,
        vector_score: (!via_graph).then_some(sim),
    }
}

/// What ranking and the liveness check read of a record, without decoding it whole: a
/// recall ranks many more candidates than it returns, and decodes only those it returns.
/// Its timestamps are kept as the record's text and parsed only when asked for (most
/// namespaces neither decay nor expire memories).
#[derive(Deserialize)]
pub(crate) struct RankView<'a> {
    pub(crate) importance: f64,
    #[serde(borrow)]
    updated_at: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    expires_at: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) agent_id: Option<std::borrow::Cow<'a, str>>,
    /// The text (borrowed from the record unless it has escapes: scanned either way).
    #[serde(borrow, default)]
    pub(crate) content: std::borrow::Cow<'a, str>,
    /// A legacy record's slot (a current record has it in its header).
    #[serde(default)]
    slot: Option<u32>,
}

impl RankView<'_> {
    /// The memory's effective importance under `policy` at `now` ([`decayed`]).
    pub(crate) fn effective_importance(&self, policy: &DecayPolicy, now: i64) -> Result<f64> {
        if policy.decay_rate <= 0.0 {
            return Ok(self.importance);
        }
        Ok(decayed(self.importance, parse_time(&self.updated_at)?, policy, now))
    }

    /// Whether the memory's expiry has passed at `now`.
    pub(crate) fn expired(&self, now: i64) -> Result<bool> {
        match &self.expires_at {
            Some(e) => Ok(parse_time(e)?.timestamp_micros() <= now),
            None => Ok(false),
        }
    }
}

/// A record's timestamp, read as its `DateTime<Utc>` field would be.
fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    let parsed = text.parse::<DateTime<chrono::FixedOffset>>();
    let parsed = parsed.map_err(<serde_json::Error as serde::de::Error>::custom)?;
    Ok(parsed.with_timezone(&Utc))
}

/// A record's slot and [`RankView`].
pub(crate) fn rank_view(bytes: &[u8]) -> Result<(Option<u32>, RankView<'_>)> {
    if let Some((slot, json)) = split_record(bytes) {
        return Ok((slot, serde_json::from_slice(json)?));
    }
    let view: RankView<'_> = serde_json::from_slice(bytes)?;
    Ok((view.slot, view))
}

/// A record's [`RankView`] and where its [`HitFields`] lie in it, from one parse: a vector
/// recall judges its candidates by their records and writes its hits from copies of the same
/// records (see [`Kept`]). `None` for a legacy record, or one whose hit fields do not parse
/// (then [`rank_view`] judges it, and the hit is parsed when written, as before).
pub(crate) fn rank_view_spans(bytes: &[u8]) -> Option<(Option<u32>, RankView<'_>, HitSpans)> {
    /// [`RankView`]'s and [`HitFields`]' fields (of the same types and defaults).
    #[derive(Deserialize)]
    struct Both<'a> {
        #[serde(borrow)]
        id: Cow<'a, str>,
        #[serde(borrow, default)]
        agent_id: Option<Cow<'a, str>>,
        #[serde(borrow)]
        content: Cow<'a, str>,
        importance: f64,
        #[serde(borrow)]
        tags: &'a RawValue,
        #[serde(borrow)]
        metadata: &'a RawValue,
        #[serde(default)]
        memory_type: MemoryType,
        #[serde(borrow, default)]
        session_id: Option<Cow<'a, str>>,
        #[serde(borrow)]
        created_at: Cow<'a, str>,
        #[serde(borrow)]
        updated_at: Cow<'a, str>,
        #[serde(borrow, default)]
        expires_at: Option<Cow<'a, str>>,
        #[serde(default)]
        slot: Option<u32>,
    }
    let (slot, json) = split_record(bytes)?;
    let b: Both<'_> = serde_json::from_slice(json).ok()?;
    let fields = HitFields {
        id: b.id,
        agent_id: b.agent_id.clone(),
        content: b.content.clone(),
        importance: b.importance,
        tags: b.tags,
        metadata: b.metadata,
        memory_type: b.memory_type,
        session_id: b.session_id,
        created_at: b.created_at,
        updated_at: b.updated_at.clone(),
    };
    let spans = HitSpans::of(bytes, &fields);
    let view = RankView {
        importance: b.importance,
        updated_at: b.updated_at,
        expires_at: b.expires_at,
        agent_id: b.agent_id,
        content: b.content,
        slot: b.slot,
    };
    Some((slot, view, spans))
}

/// A judged record kept for writing its hit (see [`Ranked::record`]).
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    /// The record.
    pub bytes: Vec<u8>,
    /// Where its hit's fields lie in it, when the parse that judged it found them.
    pub spans: Option<HitSpans>,
}

/// A recall candidate, ranked before its record is decoded (see [`materialize`]).
#[derive(Debug, Clone)]
pub(crate) struct Ranked {
    /// The memory's key (see [`crate::records::memory::memory_key`]).
    pub key: [u8; 16],
    /// Its vector slot.
    pub slot: Option<u32>,
    /// The hit's `similarity`.
    pub sim: f64,
    /// Its effective importance.
    pub eff: f64,
    /// The hit's score (relevance times the importance factor).
    pub score: f64,
    /// The hit's `keyword_score`.
    pub keyword: Option<f64>,
    /// The hit's `vector_score`.
    pub vector: Option<f64>,
    /// Its text, when the recall reads its candidates' texts (see
    /// [`crate::records::memory::Verdict`]).
    pub text: Option<String>,
    /// Its stored record as it was judged, when the recall writes its hit from that read
    /// instead of reading the record again (see [`Ranked::stored`]).
    pub record: Option<Kept>,
}

impl Ranked {
    /// A vector candidate: ranked by similarity `sim` times the importance factor.
    pub(crate) fn by_vector(key: [u8; 16], slot: Option<u32>, sim: f64, eff: f64) -> Ranked {
        let score = sim * importance_factor(eff);
        Ranked {
            key,
            slot,
            sim,
            eff,
            score,
            keyword: None,
            vector: Some(sim),
            text: None,
            record: None,
        }
    }

    /// The candidate's stored record: the one it was judged by when kept, else read in `r`
    /// (`None`: removed since it was ranked).
    pub(crate) fn stored<'a>(
        &'a self,
        t: &DataTables,
        r: &'a mut RoTxn<'_>,
        ns: u64,
    ) -> Result<Option<&'a [u8]>> {
        match &self.record {
            Some(kept) => Ok(Some(&kept.bytes)),
            None => Ok(t.memories.get(r, &ns_key(ns, &self.key))?),
        }
    }
}

/// The hits of ranked candidates (best first): their records decoded (as judged when kept,
/// else read in the same read transaction). A candidate removed since it was ranked is left
/// out.
pub(crate) fn materialize(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: u64,
    ranked: Vec<Ranked>,
) -> Result<Vec<RecallHit>> {
    let mut out = Vec::with_capacity(ranked.len());
    for c in ranked {
        let Some(bytes) = c.stored(t, r, ns)? else { continue };
        let s = decode_record(bytes)?;
        let mut h = hit(s.memory, c.sim, c.eff, false);
        h.score = c.score;
        h.keyword_score = c.keyword;
        h.vector_score = c.vector;
        out.push(h);
    }
    Ok(out)
}

/// Sorts candidates best first (stable: equal scores keep their order) and keeps `k`.
pub(crate) fn best(ranked: &mut Vec<Ranked>, k: usize) {
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    ranked.truncate(k);
}

/// Where the judging of a vector recall's candidates may stop: they are judged best
/// similarity first, and once `k` passed, a candidate whose score cannot beat the `k`-th best
/// score so far (nor can any after it, of lower similarity) would not be among the best `k`
/// that [`best`] keeps of them all (an equal score ranks after the earlier candidate), so the
/// rest need not be read. Its score is `sim * importance_factor(eff)`, and with every stored
/// importance in `[0, high]` its effective importance (decay only lowers it) is in `[0, high]`
/// too: at most `sim * importance_factor(high)` for a similarity of `+0.0` and above, at
/// most `sim * importance_factor(0)` below (the same floating-point steps, which are
/// monotonic, as the score's).
pub(crate) struct Cutoff {
    k: usize,
    /// The importance factor of the highest stored importance.
    high: f64,
    /// The best `k` scores so far, the lowest first, as [`total`] keys.
    scores: std::collections::BinaryHeap<std::cmp::Reverse<u64>>,
}

/// A key of `score` whose order is `total_cmp`'s, as [`best`] orders scores.
fn total(score: f64) -> u64 {
    u64::from_be_bytes(crate::filter::f64_key(score))
}

impl Cutoff {
    /// The cutoff for the best `k` of candidates of similarities `sims` (in the order they are
    /// judged) in a namespace whose stored importances lie in `importance` (lowest, highest).
    /// `None` (judge them all) unless the importances are in `[0, ∞)` and the similarities
    /// are numbers in descending order (by `total_cmp`).
    pub(crate) fn new(
        k: usize,
        importance: (f64, f64),
        sims: impl IntoIterator<Item = f32>,
    ) -> Option<Cutoff> {
        let (low, high) = importance;
        let sorted = sims.into_iter().try_fold(f32::INFINITY, |last, s| {
            (!s.is_nan() && last.total_cmp(&s).is_ge()).then_some(s)
        });
        let sorted = sorted.is_some();
        (k > 0 && low >= 0.0 && high.is_finite() && sorted).then(|| Cutoff {
            k,
            high: importance_factor(high),
            scores: std::collections::BinaryHeap::with_capacity(k + 1),
        })
    }

    /// Notes the score of a candidate that passed.
    pub(crate) fn passed(&mut self, score: f64) {
        self.scores.push(std::cmp::Reverse(total(score)));
        if self.scores.len() > self.k {
            self.scores.pop();
        }
    }

    /// Whether no candidate of similarity `sim` or below can be among the best `k`.
    pub(crate) fn reached(&self, sim: f32) -> bool {
        let Some(std::cmp::Reverse(kth)) = self.scores.peek() else { return false };
        let sim = f64::from(sim);
        let most =
            if sim.is_sign_negative() { sim * importance_factor(0.0) } else { sim * self.high };
        self.scores.len() >= self.k && total(most) <= *kth
    }
}

/// One recall result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RecallHit {
    /// Memory id.
    pub id: String,
    /// The text.
    pub content: String,
    /// Ranking score: the relevance (the similarity, or the fused score of hybrid recall)
    /// times `0.7 + 0.3 * effective_importance`.
    pub score: f64,
    /// Cosine similarity to the query.
    pub similarity: f64,
    /// Stored importance.
    pub importance: f64,
    /// Importance after decay.
    pub effective_importance: f64,
    /// Agent label.
    pub agent_id: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Metadata.
    pub metadata: Map<String, Value>,
    /// Kind of memory.
    pub memory_type: MemoryType,
    /// Session label.
    pub session_id: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update.
    pub updated_at: DateTime<Utc>,
    /// Whether this hit was reached through the knowledge graph rather than by similarity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub via_graph: bool,
    /// BM25 score of the query's words in this memory (keyword and hybrid recall; 0 when
    /// none of them occurs in it).
    #[serde(default)]
    pub keyword_score: Option<f64>,
    /// Cosine similarity to the query vector (vector and hybrid recall).
    #[serde(default)]
    pub vector_score: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::memory::tests::memory;
    use crate::records::memory::{encode_record, hit_fields, HitParts, HitText, StoredMemory};

    /// What a test compares of a record's [`RankView`].
    fn view_of(slot: Option<u32>, v: &RankView<'_>) -> String {
        format!(
            "{slot:?} {} {} {:?} {:?} {} {:?}",
            v.importance, v.updated_at, v.expires_at, v.agent_id, v.content, v.slot
        )
    }

    /// What a test compares of a record's [`HitParts`]: each string as the text it stands
    /// for, and whether it is written as it is.
    fn parts_of(f: &HitParts<'_>) -> String {
        let text = |t: &HitText<'_>| match t {
            HitText::Plain(b) => format!("plain {}", std::str::from_utf8(b).unwrap()),
            HitText::Text(s) => format!("text {s}"),
        };
        let opt = |t: &Option<HitText<'_>>| t.as_ref().map(text);
        format!(
            "{} {:?} {} {} {} {} {:?} {:?} {} {}",
            text(&f.id),
            opt(&f.agent_id),
            text(&f.content),
            f.importance,
            std::str::from_utf8(f.tags).unwrap(),
            std::str::from_utf8(f.metadata).unwrap(),
            f.memory_type,
            opt(&f.session_id),
            text(&f.created_at),
            text(&f.updated_at)
        )
    }

    /// What [`HitParts`] parsed alone give: strings that read as they are in the record
    /// (borrowed from it) are plain, the others escaped.
    fn expected_parts(f: &HitFields<'_>) -> String {
        fn text<'a>(c: &'a std::borrow::Cow<'a, str>) -> HitText<'a> {
            match c {
                std::borrow::Cow::Borrowed(s) => HitText::Plain(s.as_bytes()),
                std::borrow::Cow::Owned(s) => HitText::Text(s),
            }
        }
        parts_of(&HitParts {
            id: text(&f.id),
            agent_id: f.agent_id.as_ref().map(text),
            content: text(&f.content),
            created_at: text(&f.created_at),
            updated_at: text(&f.updated_at),
            session_id: f.session_id.as_ref().map(text),
            ..f.parts()
        })
    }

    /// The parse that judges a kept record gives its rank view as `rank_view` does, and the
    /// hit's fields, read from a copy of the record, as `hit_fields` does: for plain strings
    /// (found in the record) and strings with escapes (kept as values).
    #[test]
    fn one_parse_gives_the_rank_view_and_the_hit_fields() {
        let plain = memory();
        let mut escaped = memory();
        escaped.id = "caller id \"7\"".into();
        escaped.agent_id = Some("agent\t1".into());
        escaped.content = "the \"harbour\" \\ launch\n é 日本 \u{1F600}".into();
        escaped.tags = vec!["t".into(), "tag \"x\"".into()];
        escaped.metadata =
            serde_json::from_str(r#"{"z": 1, "n": {"l": [1, "é\n", null]}}"#).unwrap();
        escaped.session_id = Some("s\"2".into());
        escaped.expires_at = Some(escaped.created_at);
        for (n, m) in [plain, escaped].into_iter().enumerate() {
            let record = encode_record(Some(7), &serde_json::to_vec(&m).unwrap());
            let (slot, view, spans) = rank_view_spans(&record).unwrap();
            let (slot_alone, alone) = rank_view(&record).unwrap();
            assert_eq!(view_of(slot, &view), view_of(slot_alone, &alone), "record {n}");
            let copy = record.clone();
            drop(record);
            let expected = expected_parts(&hit_fields(&copy).unwrap());
            assert_eq!(parts_of(&spans.parts(&copy).unwrap()), expected, "record {n}");
        }
        // A legacy record, and one without the hit's fields, are judged by `rank_view` and
        // their hits parsed when written.
        let legacy = serde_json::to_vec(&StoredMemory { memory: memory(), slot: Some(3) }).unwrap();
        assert!(rank_view(&legacy).is_ok() && rank_view_spans(&legacy).is_none());
        let mut partial = serde_json::to_value(memory()).unwrap();
        partial.as_object_mut().unwrap().remove("created_at");
        let partial = encode_record(Some(3), &serde_json::to_vec(&partial).unwrap());
        assert!(rank_view(&partial).is_ok() && rank_view_spans(&partial).is_none());
    }

    /// The best `k` scores of candidates judged best similarity first until the cutoff is
    /// reached are the best `k` that [`best`] keeps of all of them, in the same order: random
    /// similarities of both signs (exact ties included) and effective importances in
    /// `[0, high]`, with and without equal importances; where every importance is equal, the
    /// judging stops right after the `k`-th candidate.
    #[test]
    fn a_cutoff_keeps_the_best_k_of_all_candidates() {
        let mut bits = crate::testing::xorshift(0x2545_f491_4f6c_dd1d);
        let mut next = move || (bits() >> 11) as f64 / (1u64 << 53) as f64;
        let mut stopped_early = 0;
        for round in 0..3000 {
            let n = 1 + (next() * 60.0) as usize;
            let k = 1 + (next() * 12.0) as usize;
            let high = [0.0, 0.5, 1.0, next()][round % 4];
            let equal = round % 3 == 0;
            let mut sims: Vec<f32> = (0..n)
                .map(|_| match (next() * 10.0) as u32 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => 0.25,
                    _ => (next() * 2.0 - 1.0) as f32,
                })
                .collect();
            sims.sort_by(|a, b| b.total_cmp(a));
            let candidates: Vec<Ranked> = sims
                .iter()
                .enumerate()
                .map(|(i, &sim)| {
                    let eff = if equal { high } else { next() * high };
                    Ranked::by_vector([i as u8; 16], None, f64::from(sim), eff)
                })
                .collect();
            let mut all = candidates.clone();
            best(&mut all, k);
            let mut cutoff = Cutoff::new(k, (0.0, high), sims.iter().copied()).unwrap();
            let mut judged = Vec::new();
            for (c, &sim) in candidates.into_iter().zip(&sims) {
                if cutoff.reached(sim) {
                    break;
                }
                cutoff.passed(c.score);
                judged.push(c);
            }
            if equal && n > k && judged.len() == k && sims[k - 1] > sims[k] && sims[k] > 0.0 {
                stopped_early += 1;
            }
            best(&mut judged, k);
            let keys = |v: &[Ranked]| v.iter().map(|c| (c.key, c.score)).collect::<Vec<_>>();
            assert_eq!(keys(&judged), keys(&all), "round {round}");
        }
        assert!(stopped_early > 200, "{stopped_early}");
        // Importances below 0, unbounded ones, or similarities out of order: no cutoff.
        assert!(Cutoff::new(3, (-0.1, 1.0), [0.5, 0.4]).is_none());
        assert!(Cutoff::new(3, (0.0, f64::INFINITY), [0.5, 0.4]).is_none());
        assert!(Cutoff::new(3, (0.0, 1.0), [0.4, 0.5]).is_none());
        assert!(Cutoff::new(3, (0.0, 1.0), [0.5, f32::NAN]).is_none());
    }
}
