//! BM25 top k with dynamic pruning. Each query term's blocks are read as slices of the
//! memory map (no copies); a block's header bounds the BM25 contribution of each of its
//! postings. Memories are visited in slot order (document at a time) with `MaxScore`: terms
//! sorted by their bound, the smallest whose bounds sum to no more than the k-th best score
//! so far are "non-essential" — a memory that has only those cannot enter the top k, so
//! candidates come from the other terms' postings, and a non-essential term's postings are
//! looked up (binary search in its block) only while the candidate can still make it. Before
//! a candidate is scored, the bounds of the blocks around it are summed: when they cannot
//! beat the k-th score, every memory up to the nearest block boundary is skipped (block-max);
//! so are memories whose bound only ties it (they come after the heap's, and ties go to the
//! lower slot). The walk starts with a floor under the k-th score, the whole scores of k
//! memories of the term with the largest bound, so a word most memories have stops being a
//! source of candidates at once rather than after k memories with the rarer words are seen.
//! The result is exactly the exhaustive BM25 top k (same scores, summed in the same order,
//! ties broken by slot) — `tests` compares the two on a random corpus.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::{counted, slot_of, term_prefix, tf_len, B, HEADER, K1, POSTING};
use crate::datastore::{DataTables, NamespaceStats};
use crate::error::Result;
use crate::storage::RoTxn;

/// The BM25 scale of the index: documents and average length.
#[derive(Clone, Copy)]
struct Scale {
    n: f32,
    avg_len: f32,
}

impl Scale {
    fn of(stats: &NamespaceStats) -> Scale {
        let n = stats.keyword_docs.max(1) as f32;
        Scale { n, avg_len: (stats.keyword_terms as f32 / n).max(1.0) }
    }

    fn idf(self, df: usize) -> f32 {
        let df = df as f32;
        (1.0 + (self.n - df + 0.5) / (df + 0.5)).ln()
    }

    /// A term's contribution to a memory's score: `weight` is its idf times its count in
    /// the query.
    fn contribution(self, weight: f32, tf: u8, len: u16) -> f32 {
        let (tf, len) = (f32::from(tf), f32::from(len));
        weight * (tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / self.avg_len)))
    }

    /// A bound on the contribution of any posting of a block with this header (the
    /// contribution grows with the count and shrinks with the length).
    fn bound(self, weight: f32, header: &[u8]) -> f32 {
        self.contribution(weight, header[0], u16::from_be_bytes([header[1], header[2]]))
    }
}

/// Whether a sum of bounds certainly stays below `threshold`, allowing for rounding (sums of
/// f32 taken in different orders differ in their last bits). A memory whose bound equals the
/// k-th score is still scored: it may tie, and ties go to the lower slot.
fn below(bound: f32, threshold: f32) -> bool {
    bound * (1.0 + 1e-4) < threshold
}

/// One block of a term: where its postings are in the term's [`Term::postings`], its header,
/// first and last slot and bound.
struct Block {
    start: usize,
    end: usize,
    header: [u8; HEADER],
    first: u32,
    last: u32,
    bound: f32,
}

impl Block {
    fn len(&self) -> usize {
        (self.end - self.start) / POSTING
    }

    /// Its `i`-th posting, in `postings` (its term's).
    fn at<'p>(&self, postings: &'p [u8], i: usize) -> &'p [u8] {
        let at = self.start + i * POSTING;
        &postings[at..at + POSTING]
    }

    /// The index of the first posting at or after `from` whose slot is at least `slot`.
    fn find(&self, postings: &[u8], from: usize, slot: u64) -> usize {
        let (mut lo, mut hi) = (from, self.len());
        while lo < hi {
            let mid = usize::midpoint(lo, hi);
            if u64::from(slot_of(self.at(postings, mid))) < slot {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// A query term: its blocks, their postings one after the other (copied into one buffer: a
/// read of an encrypted environment is valid only until the next one), its weight (idf ×
/// query count) and its bound.
struct Term {
    blocks: Vec<Block>,
    postings: Vec<u8>,
    weight: f32,
    bound: f32,
}

/// A query's terms as read from the index, once: [`Query::top_k`] and [`Query::scores_of`]
/// rank with them as often as asked (hybrid recall asks both, and a filtered recall may ask
/// for a wider top k) without reading or copying the postings again.
pub(crate) struct Query {
    scale: Scale,
    terms: Vec<Term>,
}

impl Query {
    /// Reads each distinct term of `query` (in the order of the terms, so every score is
    /// summed the same way) with its blocks.
    pub(crate) fn read(
        t: &DataTables,
        r: &mut RoTxn<'_>,
        ns: u64,
        stats: &NamespaceStats,
        query: &str,
    ) -> Result<Query> {
        let scale = Scale::of(stats);
        let (counts, _) = counted(query);
        let mut counts: Vec<(String, u32)> = counts.into_iter().collect();
        counts.sort_unstable();
        let mut terms = Vec::with_capacity(counts.len());
        for (term, qtf) in counts {
            let (mut blocks, mut postings) = (Vec::new(), Vec::new());
            for row in t.postings.prefix_iter(r, &term_prefix(ns, &term))? {
                let (_, value) = row?;
                if value.len() < HEADER + POSTING {
                    continue;
                }
                let (header, body) = value.split_at(HEADER);
                let body = &body[..body.len() / POSTING * POSTING];
                let last = slot_of(&body[body.len() - POSTING..]);
                let start = postings.len();
                postings.extend_from_slice(body);
                blocks.push(Block {
                    start,
                    end: postings.len(),
                    header: header.try_into().expect("HEADER bytes"),
                    first: slot_of(body),
                    last,
                    bound: 0.0,
                });
            }
            let df = blocks.iter().map(Block::len).sum();
            let weight = scale.idf(df) * qtf as f32;
            let mut bound = 0.0f32;
            for b in &mut blocks {
                b.bound = scale.bound(weight, &b.header);
                bound = bound.max(b.bound);
            }
            terms.push(Term { blocks, postings, weight, bound });
        }
        Ok(Query { scale, terms })
    }
}

/// A position in a term's postings, moving forward only.
struct Cursor {
    block: usize,
    at: usize,
}

/// Past every slot.
const END: u64 = u64::MAX;

impl Cursor {
    fn doc(&self, term: &Term) -> u64 {
        term.blocks
            .get(self.block)
            .map_or(END, |b| u64::from(slot_of(b.at(&term.postings, self.at))))
    }

    fn next(&mut self, term: &Term) {
        self.at += 1;
        if self.at == term.blocks[self.block].len() {
            self.block += 1;
            self.at = 0;
        }
    }

    /// Moves to the first block whose last slot is at or past `slot` (not inside it).
    fn shallow(&mut self, term: &Term, slot: u64) {
        while term.blocks.get(self.block).is_some_and(|b| u64::from(b.last) < slot) {
            self.block += 1;
            self.at = 0;
        }
    }

    /// Moves to the first posting at or past `slot`.
    fn seek(&mut self, term: &Term, slot: u64) {
        self.shallow(term, slot);
        if let Some(b) = term.blocks.get(self.block) {
            self.at = b.find(&term.postings, self.at, slot);
        }
    }

    /// After `shallow(slot)`: a bound on the term's contribution to `slot`, and the last slot
    /// that bound holds for.
    fn bound_at(&self, term: &Term, slot: u64) -> (f32, u64) {
        match term.blocks.get(self.block) {
            None => (0.0, END),
            Some(b) if u64::from(b.first) > slot => (0.0, u64::from(b.first) - 1),
            Some(b) => (b.bound, u64::from(b.last)),
        }
    }
}

/// A scored memory in the top-k heap: the worst on top (lower score, then higher slot).
#[derive(PartialEq)]
struct Scored(f32, u32);

impl Eq for Scored {}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Query {
    /// The best `k` memories matching at least one word of the query by BM25, by slot, best
    /// first (ties by slot).
    #[allow(clippy::many_single_char_names)] // k, i, j
    pub(crate) fn top_k(&self, k: usize) -> Vec<(u32, f32)> {
        let (scale, terms) = (self.scale, &self.terms);
        if k == 0 || terms.is_empty() {
            return Vec::new();
        }
        // Terms by bound, smallest first; `sums[i]`: the bounds of terms `order[..=i]` summed.
        let mut order: Vec<usize> = (0..terms.len()).collect();
        order.sort_by(|a, b| terms[*a].bound.total_cmp(&terms[*b].bound));
        let sums: Vec<f32> = order
            .iter()
            .scan(0.0f32, |sum, i| {
                *sum += terms[*i].bound;
                Some(*sum)
            })
            .collect();
        let mut cursors: Vec<Cursor> = terms.iter().map(|_| Cursor { block: 0, at: 0 }).collect();
        let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(k + 1);
        let floor = self.floor(k, order[order.len() - 1]);
        // The k-th best score once there are k, and never below the floor.
        let mut threshold = floor;
        let mut essential = 0; // order[..essential] are non-essential
        while essential < order.len() && below(sums[essential], threshold) {
            essential += 1;
        }
        let mut parts = vec![0.0f32; terms.len()];
        loop {
            let doc =
                order[essential..].iter().map(|&i| cursors[i].doc(&terms[i])).min().unwrap_or(END);
            if doc == END {
                break;
            }
            if threshold > 0.0 {
                // Block-max: the bounds of the blocks around `doc`, and how far they hold.
                let (mut bound, mut until) = (0.0f32, END);
                for (i, term) in terms.iter().enumerate() {
                    cursors[i].shallow(term, doc);
                    let (b, u) = cursors[i].bound_at(term, doc);
                    bound += b;
                    until = until.min(u);
                }
                // `bound` is no lower than the score of any memory up to `until`: each block's
                // bound is the contribution of its largest count and smallest length (the
                // contribution, as computed, grows with the one and shrinks with the other),
                // summed in the order a score is. Those memories all come after the heap's,
                // so one that at best ties the k-th loses to it: no rounding allowance needed.
                let tied = heap.len() == k && heap.peek().is_some_and(|w| bound <= w.0);
                if tied || below(bound, threshold) {
                    let to = until.saturating_add(1).max(doc + 1);
                    for &i in &order[essential..] {
                        cursors[i].seek(&terms[i], to);
                    }
                    continue;
                }
            }
            parts.fill(0.0);
            let mut score = 0.0f32;
            for &i in &order[essential..] {
                if cursors[i].doc(&terms[i]) == doc {
                    let b = &terms[i].blocks[cursors[i].block];
                    let (tf, len) = tf_len(b.at(&terms[i].postings, cursors[i].at));
                    parts[i] = scale.contribution(terms[i].weight, tf, len);
                    score += parts[i];
                    cursors[i].next(&terms[i]);
                }
            }
            let mut pruned = false;
            for j in (0..essential).rev() {
                if below(score + sums[j], threshold) {
                    pruned = true;
                    break;
                }
                let i = order[j];
                cursors[i].seek(&terms[i], doc);
                if cursors[i].doc(&terms[i]) == doc {
                    let b = &terms[i].blocks[cursors[i].block];
                    let (tf, len) = tf_len(b.at(&terms[i].postings, cursors[i].at));
                    parts[i] = scale.contribution(terms[i].weight, tf, len);
                    score += parts[i];
                }
            }
            if pruned {
                continue;
            }
            let score = parts.iter().sum::<f32>();
            let slot = doc as u32;
            if heap.len() < k {
                heap.push(Scored(score, slot));
            } else if heap.peek().is_some_and(|worst| Scored(score, slot) < *worst) {
                heap.pop();
                heap.push(Scored(score, slot));
            } else {
                continue;
            }
            if heap.len() == k {
                threshold = heap.peek().map_or(0.0, |w| w.0).max(floor);
                while essential < order.len() && below(sums[essential], threshold) {
                    essential += 1;
                }
            }
        }
        let mut out: Vec<(u32, f32)> = heap.into_iter().map(|Scored(s, slot)| (slot, s)).collect();
        out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// A score the k-th best memory reaches at least, known before the walk so that pruning
    /// starts with it (else, with a word most memories have, every memory is a candidate
    /// until k memories with the rarer words have been seen): the lowest whole score of the
    /// k memories where term `top`, the one with the largest bound, contributes most, taken
    /// from its blocks with the largest bounds. 0 when it has fewer than k postings.
    fn floor(&self, k: usize, top: usize) -> f32 {
        let term = &self.terms[top];
        let mut blocks: Vec<&Block> = term.blocks.iter().collect();
        blocks.sort_unstable_by(|a, b| b.bound.total_cmp(&a.bound));
        let mut best: Vec<(f32, u32)> = Vec::new();
        for b in blocks {
            if best.len() >= k {
                break;
            }
            best.extend((0..b.len()).map(|i| {
                let p = b.at(&term.postings, i);
                let (tf, len) = tf_len(p);
                (self.scale.contribution(term.weight, tf, len), slot_of(p))
            }));
        }
        if best.len() < k {
            return 0.0;
        }
        best.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        let mut slots: Vec<u32> = best[..k].iter().map(|p| p.1).collect();
        slots.sort_unstable();
        slots.dedup();
        if slots.len() < k {
            return 0.0;
        }
        // Scores as `top_k` sums them (`scores_of`): each of these k memories is visited and
        // kept unless k better ones are found.
        self.scores_of(&slots).into_iter().fold(f32::INFINITY, f32::min)
    }

    /// The BM25 score of each of `slots` for the query (0 for a memory with none of its words),
    /// equal to the score [`Query::top_k`] gives it.
    pub(crate) fn scores_of(&self, slots: &[u32]) -> Vec<f32> {
        let (scale, terms) = (self.scale, &self.terms);
        slots
            .iter()
            .map(|&slot| {
                terms
                    .iter()
                    .map(|term| {
                        let bi = term.blocks.partition_point(|b| b.last < slot);
                        let Some(b) = term.blocks.get(bi) else { return 0.0 };
                        let at = b.find(&term.postings, 0, u64::from(slot));
                        if at == b.len() || slot_of(b.at(&term.postings, at)) != slot {
                            return 0.0;
                        }
                        let (tf, len) = tf_len(b.at(&term.postings, at));
                        scale.contribution(term.weight, tf, len)
                    })
                    .sum()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::Rng as _;
    use proptest::test_runner::{RngAlgorithm, TestRng};

    use super::*;
    use crate::keyword::Terms;
    use crate::store::Store;

    /// Zipf-like pick in `0..n`: low indexes common.
    fn word(rng: &mut TestRng, n: usize) -> usize {
        let u = (rng.next_u64() % 1_000_000) as f64 / 1_000_000.0;
        ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
    }

    fn text(rng: &mut TestRng, words: &[String]) -> String {
        let len = 1 + (rng.next_u64() % 30) as usize;
        (0..len).map(|_| words[word(rng, words.len())].as_str()).collect::<Vec<_>>().join(" ")
    }

    /// BM25 by its definition, over the texts themselves.
    fn by_definition(docs: &HashMap<u32, Vec<String>>, query: &str) -> Vec<(u32, f32)> {
        let n = docs.len() as f32;
        let avg = docs.values().map(Vec::len).sum::<usize>() as f32 / n;
        let (q, _) = counted(query);
        let df: HashMap<&String, f32> = q
            .keys()
            .map(|term| (term, docs.values().filter(|d| d.contains(term)).count() as f32))
            .collect();
        let mut out = Vec::new();
        for (slot, d) in docs {
            let mut score = 0.0f32;
            for (term, qtf) in &q {
                let tf = d.iter().filter(|t| *t == term).count() as f32;
                if tf == 0.0 {
                    continue;
                }
                let idf = (1.0 + (n - df[term] + 0.5) / (df[term] + 0.5)).ln();
                let len = d.len() as f32;
                score +=
                    idf * *qtf as f32 * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / avg));
            }
            if score > 0.0 {
                out.push((*slot, score));
            }
        }
        out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    #[test]
    fn pruned_top_k_is_the_exhaustive_ranking() {
        let dir = tempfile::tempdir().unwrap();
        let store: Store<DataTables> = Store::open(dir.path(), 64 << 20, None).unwrap();
        let words: Vec<String> = (0..400).map(|i| format!("w{i}x")).collect();
        let mut rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
        let ns = 7;
        let total = 4000u32;
        // Slots written out of order first (blocks split), then in order (blocks fill up).
        let mut slots: Vec<u32> = (0..total).collect();
        for i in (1..1500).rev() {
            slots.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let mut texts: HashMap<u32, String> = HashMap::new();
        let mut stats = NamespaceStats::default();
        for chunk in slots.chunks(500) {
            let batch: Vec<(u32, String)> =
                chunk.iter().map(|s| (*s, text(&mut rng, &words))).collect();
            stats = store
                .write(|w, t| {
                    let mut st = stats.clone();
                    for (slot, text) in &batch {
                        super::super::index(t, w, ns, *slot, &Terms::of(text), &mut st)?;
                    }
                    Ok(st)
                })
                .unwrap();
            texts.extend(batch);
        }
        // Deletions and rewrites (an update keeps its slot and changes its words).
        let changed: Vec<u32> =
            (0..600).map(|_| (rng.next_u64() % u64::from(total)) as u32).collect();
        let mut changed: Vec<u32> =
            changed.into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        changed.truncate(500);
        let rewrites: Vec<(u32, Option<String>)> = changed
            .iter()
            .map(|s| (*s, (rng.next_u64().is_multiple_of(2)).then(|| text(&mut rng, &words))))
            .collect();
        stats = store
            .write(|w, t| {
                let mut st = stats.clone();
                for (slot, new) in &rewrites {
                    super::super::unindex(t, w, ns, *slot, &texts[slot], &mut st)?;
                    if let Some(new) = new {
                        super::super::index(t, w, ns, *slot, &Terms::of(new), &mut st)?;
                    }
                }
                Ok(st)
            })
            .unwrap();
        for (slot, new) in rewrites {
            match new {
                Some(t) => texts.insert(slot, t),
                None => texts.remove(&slot),
            };
        }
        let queries: Vec<String> = (0..120)
            .map(|q| {
                let n = 1 + q % 6;
                let query: Vec<&str> =
                    (0..n).map(|_| words[word(&mut rng, words.len())].as_str()).collect();
                query.join(" ")
            })
            .collect();
        assert_pruned_is_exhaustive(
            &store,
            ns,
            &stats,
            total,
            &texts,
            &queries,
            &[1, 3, 10, 50, 5000],
        );
    }

    /// Memories alike but for a number, as `make bench-http` stores them: most scores tie,
    /// and a word in every memory adds next to nothing to them.
    #[test]
    fn pruned_top_k_breaks_ties_as_the_exhaustive_ranking() {
        let dir = tempfile::tempdir().unwrap();
        let store: Store<DataTables> = Store::open(dir.path(), 64 << 20, None).unwrap();
        let ns = 3;
        let total = 3000u32;
        let texts: HashMap<u32, String> = (0..total)
            .map(|i| (i, format!("preloaded memory {i} about topic {}", i % 37)))
            .collect();
        let stats = store
            .write(|w, t| {
                let mut st = NamespaceStats::default();
                for (slot, text) in &texts {
                    super::super::index(t, w, ns, *slot, &Terms::of(text), &mut st)?;
                }
                Ok(st)
            })
            .unwrap();
        let queries: Vec<String> = ["topic 5", "topic 36", "topic", "memory topic 12", "about 7 9"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_pruned_is_exhaustive(&store, ns, &stats, total, &texts, &queries, &[1, 10, 50, 300]);
    }

    /// Checks that each query's scores are BM25's by its definition, and that its pruned top
    /// k is the exhaustive ranking's (same slots, same scores, same order) for each of `ks`.
    fn assert_pruned_is_exhaustive(
        store: &Store<DataTables>,
        ns: u64,
        stats: &NamespaceStats,
        total: u32,
        texts: &HashMap<u32, String>,
        queries: &[String],
        ks: &[usize],
    ) {
        let all: Vec<u32> = (0..total).collect();
        let docs: HashMap<u32, Vec<String>> =
            texts.iter().map(|(s, t)| (*s, super::super::terms(t).collect())).collect();
        store
            .read(|r, t| {
                for query in queries {
                    let bm25 = Query::read(t, r, ns, stats, query)?;
                    let scores = bm25.scores_of(&all);
                    let mut exhaustive: Vec<(u32, f32)> =
                        all.iter().copied().zip(scores).filter(|(_, s)| *s > 0.0).collect();
                    exhaustive.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    let defined = by_definition(&docs, query);
                    assert_eq!(exhaustive.len(), defined.len(), "{query}");
                    for ((s1, a), (_, b)) in exhaustive.iter().zip(&defined) {
                        assert!((a - b).abs() <= 1e-4 * b.abs(), "{query}: slot {s1}: {a} vs {b}");
                    }
                    for &k in ks {
                        let pruned = bm25.top_k(k);
                        let want = &exhaustive[..k.min(exhaustive.len())];
                        assert_eq!(pruned, want, "query {query:?}, k {k}");
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}
