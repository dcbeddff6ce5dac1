//! Keyword search: BM25 over an inverted index kept in the namespace's own LMDB environment.
//!
//! Text is split into Unicode words (UAX #29), case-folded, stripped of a few English stop
//! words and stemmed (Snowball English). The index is one table, `postings`, of posting
//! blocks: key `ns ‖ term ‖ 0 ‖ first slot` (u32 BE; every posting of the block has a slot at
//! or above it and below the next block's), value a 3-byte header — the block's largest term
//! count (u8) and smallest memory length (u16 BE), from which a BM25 upper bound of any of its
//! postings follows — then at most [`BLOCK`] 7-byte postings sorted by slot: the memory's
//! vector slot (u32 BE, unique in its namespace), the term's count in it (u8) and the memory's
//! length in terms (u16 BE). A term's document frequency is its number of postings. Postings
//! are written and removed in the memory's own transaction, so keyword recall sees a write as
//! soon as it returns, and a namespace's deletion and erasure remove them with its other rows
//! (every key starts with the namespace id). Recall uses the block bounds to skip what cannot
//! reach the top k (see `search`).

mod recall;
mod search;

use std::collections::HashMap;

use heed3::RwTxn;

use crate::datastore::{ns_key, DataTables, NamespaceStats};
use crate::error::Result;
use crate::store::Store;

pub(crate) use crate::text::terms;
pub use recall::RecallMode;
pub(crate) use recall::{hybrid_depth, KeywordRecall};

/// BM25's term-frequency saturation (chosen with `make bench-quality` on half of `LoCoMo`'s
/// conversations, like [`B`]: short memories repeat words less than documents do).
const K1: f32 = 0.9;
/// BM25's length normalisation.
const B: f32 = 0.4;

/// Bytes of one posting.
pub(crate) const POSTING: usize = 7;
/// Bytes of a block's header (largest count, smallest length).
const HEADER: usize = 3;
/// Most postings in one block (a block stays well below LMDB's inline node limit).
const BLOCK: usize = 128;

fn posting(slot: u32, tf: u32, len: usize) -> [u8; POSTING] {
    let mut p = [0u8; POSTING];
    p[..4].copy_from_slice(&slot.to_be_bytes());
    p[4] = tf.min(255) as u8;
    p[5..].copy_from_slice(&(len.min(usize::from(u16::MAX)) as u16).to_be_bytes());
    p
}

/// The slot of a posting.
fn slot_of(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[0], p[1], p[2], p[3]])
}

/// A posting's term count and memory length.
fn tf_len(p: &[u8]) -> (u8, u16) {
    (p[4], u16::from_be_bytes([p[5], p[6]]))
}

/// A block value: the header computed from `postings` (whole postings, sorted), then them.
fn block(postings: &[u8]) -> Vec<u8> {
    let (mut max_tf, mut min_len) = (0u8, u16::MAX);
    for p in postings.chunks_exact(POSTING) {
        let (tf, len) = tf_len(p);
        max_tf = max_tf.max(tf);
        min_len = min_len.min(len);
    }
    let mut v = Vec::with_capacity(HEADER + postings.len());
    v.push(max_tf);
    v.extend_from_slice(&min_len.to_be_bytes());
    v.extend_from_slice(postings);
    v
}

/// Bytes charged to the namespace's storage per posting: the 7-byte value, and a share of
/// its term's key, block header and page.
const POSTING_CHARGE: u64 = 12;

/// Bytes a memory's postings are charged: one posting per distinct term of its text.
pub(crate) fn charge(text: &str) -> u64 {
    Terms::of(text).charge()
}

/// The terms of a memory's text, counted: what [`index`] writes and [`charge`] charges, so a
/// write splits its text into terms once.
pub(crate) struct Terms {
    counts: HashMap<String, u32>,
    len: usize,
}

impl Terms {
    pub(crate) fn of(text: &str) -> Terms {
        let (counts, len) = counted(text);
        Terms { counts, len }
    }

    /// See [`charge`].
    pub(crate) fn charge(&self) -> u64 {
        self.counts.len() as u64 * POSTING_CHARGE
    }
}

/// The prefix of every block key of a term: `ns ‖ term ‖ 0` (terms hold no NUL).
fn term_prefix(ns: u64, term: &str) -> Vec<u8> {
    let mut k = ns_key(ns, term.as_bytes());
    k.push(0);
    k
}

/// A block's key: its term's prefix and its first slot.
fn block_key(prefix: &[u8], first: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 4);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&first.to_be_bytes());
    k
}

/// Each distinct term of `text` with its count, and the text's length in terms.
fn counted(text: &str) -> (HashMap<String, u32>, usize) {
    let mut counts = HashMap::new();
    let mut len = 0;
    for t in terms(text) {
        *counts.entry(t).or_insert(0) += 1;
        len += 1;
    }
    (counts, len)
}

/// The block of `prefix`'s term that holds (or would hold) `slot`: its key and value.
fn block_at(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    prefix: &[u8],
    slot: u32,
) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
    let key = block_key(prefix, slot);
    Ok(match t.postings.get_lower_than_or_equal_to(w, &key)? {
        Some((k, v)) if k.len() == key.len() && k.starts_with(prefix) => {
            Some((k.to_vec(), v.get(HEADER..).unwrap_or_default().to_vec()))
        }
        _ => None,
    })
}

/// Adds the postings of a memory's text, split into `terms` (inside the memory's write
/// transaction).
pub(crate) fn index(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: u64,
    slot: u32,
    terms: &Terms,
    stats: &mut NamespaceStats,
) -> Result<()> {
    let mut bufs = Buffers::default();
    for (term, tf) in &terms.counts {
        bufs.set_term(ns, term);
        add_posting(t, w, &mut bufs, posting(slot, *tf, terms.len))?;
    }
    stats.keyword_docs += 1;
    stats.keyword_terms += terms.len as u64;
    Ok(())
}

/// Buffers kept across postings: a term's prefix (`ns ‖ term ‖ 0`), a block key under it, the
/// block found and its key.
#[derive(Default)]
struct Buffers {
    key: Vec<u8>,
    prefix: usize,
    value: Vec<u8>,
    found: Vec<u8>,
}

impl Buffers {
    fn set_term(&mut self, ns: u64, term: &str) {
        self.key.clear();
        self.key.extend_from_slice(&ns.to_be_bytes());
        self.key.extend_from_slice(term.as_bytes());
        self.key.push(0);
        self.prefix = self.key.len();
    }

    /// Sets `key` to the term's block key at `slot`.
    fn at(&mut self, slot: u32) {
        self.key.truncate(self.prefix);
        self.key.extend_from_slice(&slot.to_be_bytes());
    }

    /// Reads the term's block holding (or that would hold) `key`'s slot into `found` and
    /// `value` (header included); false if the term has none at or before it.
    fn find(&mut self, t: &DataTables, w: &mut RwTxn<'_>) -> Result<bool> {
        Ok(match t.postings.get_lower_than_or_equal_to(w, &self.key)? {
            Some((k, v))
                if k.len() == self.key.len()
                    && k.starts_with(&self.key[..self.prefix])
                    && v.len() >= HEADER + POSTING =>
            {
                self.found.clear();
                self.found.extend_from_slice(k);
                self.value.clear();
                self.value.extend_from_slice(v);
                true
            }
            _ => false,
        })
    }
}

/// Adds one posting `new` of the term set in `bufs` to its block.
fn add_posting(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    bufs: &mut Buffers,
    new: [u8; POSTING],
) -> Result<()> {
    let slot = slot_of(&new);
    bufs.at(slot);
    if !bufs.find(t, w)? {
        t.postings.put(w, &bufs.key, &block(&new))?;
        return Ok(());
    }
    let Buffers { key, prefix, value, found } = bufs;
    // The usual case: the new slot comes after the block's last. A full block is left
    // as it is and a new one begins; otherwise the posting is appended.
    if slot_of(&value[value.len() - POSTING..]) < slot {
        if value.len() - HEADER >= BLOCK * POSTING {
            t.postings.put(w, key, &block(&new))?;
        } else {
            let (tf, min_len) = tf_len(&new);
            value[0] = value[0].max(tf);
            let shortest = u16::from_be_bytes([value[1], value[2]]).min(min_len);
            value[1..HEADER].copy_from_slice(&shortest.to_be_bytes());
            value.extend_from_slice(&new);
            t.postings.put(w, found, value)?;
        }
        return Ok(());
    }
    let mut body = value[HEADER..].to_vec();
    let at =
        body.chunks_exact(POSTING).position(|p| slot_of(p) >= slot).unwrap_or(body.len() / POSTING);
    if body.get(at * POSTING..).is_some_and(|p| p.len() >= 4 && slot_of(p) == slot) {
        body[at * POSTING..(at + 1) * POSTING].copy_from_slice(&new);
    } else {
        body.splice(at * POSTING..at * POSTING, new);
    }
    if body.len() > BLOCK * POSTING {
        let half = body.len() / POSTING / 2 * POSTING;
        let (left, right) = body.split_at(half);
        t.postings.put(w, found, &block(left))?;
        t.postings.put(w, &block_key(&key[..*prefix], slot_of(right)), &block(right))?;
    } else {
        t.postings.put(w, found, &block(&body))?;
    }
    Ok(())
}

/// The postings of new memories of one write transaction, written together by
/// [`Pending::flush`]: each term's postings are appended to its last block in one put (and
/// new blocks filled whole), instead of one read and one rewrite of the block per memory.
#[derive(Default)]
pub(crate) struct Pending {
    docs: Vec<(u32, Terms)>,
}

impl Pending {
    /// Adds the postings of a memory in `slot` (a new slot of the transaction).
    pub(crate) fn add(&mut self, slot: u32, terms: Terms) {
        self.docs.push((slot, terms));
    }

    /// Writes the postings added (before any other change to the index in the same
    /// transaction: an update or removal flushes first). The blocks are those [`index`] of
    /// each memory in slot order writes.
    pub(crate) fn flush(
        &mut self,
        t: &DataTables,
        w: &mut RwTxn<'_>,
        ns: u64,
        stats: &mut NamespaceStats,
    ) -> Result<()> {
        if self.docs.is_empty() {
            return Ok(());
        }
        // Every (term, posting), by term then slot: one run per term, and the blocks put in
        // key order, so successive puts land on the same pages. (Whole blocks are large
        // nodes with odd keys and values: they made LMDB fail with `MDB_PAGE_FULL` until its
        // split point counted nodes as laid out, see third_party/lmdb-master3-sys/PATCHES.md.)
        let mut all: Vec<(&str, [u8; POSTING])> =
            Vec::with_capacity(self.docs.iter().map(|d| d.1.counts.len()).sum());
        for (slot, terms) in &self.docs {
            for (term, tf) in &terms.counts {
                all.push((term.as_str(), posting(*slot, *tf, terms.len)));
            }
            stats.keyword_docs += 1;
            stats.keyword_terms += terms.len as u64;
        }
        all.sort_unstable();
        let mut bufs = Buffers::default();
        let mut postings = Vec::new();
        for run in all.chunk_by(|a, b| a.0 == b.0) {
            bufs.set_term(ns, run[0].0);
            postings.clear();
            postings.extend(run.iter().map(|p| p.1));
            append_postings(t, w, &mut bufs, &postings)?;
        }
        self.docs.clear();
        Ok(())
    }
}

/// Adds `postings` (sorted by slot) of the term set in `bufs`: appended to its last block and
/// then to new full blocks when they all come after its last posting (new memories' slots),
/// else one by one.
fn append_postings(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    bufs: &mut Buffers,
    postings: &[[u8; POSTING]],
) -> Result<()> {
    let first = slot_of(&postings[0]);
    bufs.at(first);
    let mut body = Vec::with_capacity(BLOCK * POSTING);
    if bufs.find(t, w)? {
        if slot_of(&bufs.value[bufs.value.len() - POSTING..]) >= first {
            for p in postings {
                add_posting(t, w, bufs, *p)?;
            }
            return Ok(());
        }
        if bufs.value.len() - HEADER < BLOCK * POSTING {
            body.extend_from_slice(&bufs.value[HEADER..]);
            std::mem::swap(&mut bufs.key, &mut bufs.found);
        }
    }
    for p in postings {
        if body.len() >= BLOCK * POSTING {
            t.postings.put(w, &bufs.key, &block(&body))?;
            body.clear();
        }
        if body.is_empty() {
            bufs.at(slot_of(p));
        }
        body.extend_from_slice(p);
    }
    t.postings.put(w, &bufs.key, &block(&body))?;
    Ok(())
}

/// Removes the postings [`index`] added for the same slot and text.
pub(crate) fn unindex(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: u64,
    slot: u32,
    text: &str,
    stats: &mut NamespaceStats,
) -> Result<()> {
    let (counts, len) = counted(text);
    for term in counts.keys() {
        let prefix = term_prefix(ns, term);
        let Some((key, mut body)) = block_at(t, w, &prefix, slot)? else { continue };
        let Some(at) = body.chunks_exact(POSTING).position(|p| slot_of(p) == slot) else {
            continue;
        };
        body.drain(at * POSTING..(at + 1) * POSTING);
        if body.is_empty() {
            t.postings.delete(w, &key)?;
        } else {
            t.postings.put(w, &key, &block(&body))?;
        }
    }
    stats.keyword_docs = stats.keyword_docs.saturating_sub(1);
    stats.keyword_terms = stats.keyword_terms.saturating_sub(len as u64);
    Ok(())
}

/// Gives the memories of namespace `ns` (in data environment `env`) their keyword postings if
/// some may lack them (see [`rebuild`]), in one write transaction. Returns the bytes of
/// postings added, which the caller charges to the tenant's storage. A no-op once done, or for
/// a namespace without memories.
pub(crate) fn ensure_indexed(env: &Store<DataTables>, ns: u64) -> Result<u64> {
    let stats = env.read(|r, t| t.stats_of(r, ns))?;
    if stats.keyword_indexed || stats.memory_count == 0 {
        return Ok(0);
    }
    env.write_ns(ns, |w, t| {
        let mut stats = t.stats_of(w, ns)?;
        if stats.keyword_indexed {
            return Ok(0);
        }
        let added = rebuild(t, w, ns, &mut stats)?;
        t.put_stats(w, ns, &stats)?;
        Ok(added)
    })
}

/// Rebuilds the namespace's keyword index from its memories, inside a write transaction:
/// every posting of the namespace is removed and every memory with a vector slot indexed
/// again, and `stats.keyword_indexed` set. Namespaces written before the index existed
/// (0.1.0) have memories without postings; this gives them theirs (see
/// [`ensure_indexed`]). Returns the change in bytes charged: the postings of
/// memories that had none before are charged now.
pub(crate) fn rebuild(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: u64,
    stats: &mut NamespaceStats,
) -> Result<u64> {
    let mut rows = Vec::new();
    for s in crate::records::memory::scan_memories(t, w, ns)? {
        let s = s?;
        if let Some(slot) = s.slot {
            rows.push((slot, Terms::of(&s.memory.content)));
        }
    }
    // A memory was charged for its postings if it has them (its first term's block holds
    // its slot): postings are written with the memory or not at all.
    let mut charged_before = 0;
    for (slot, terms) in &rows {
        let Some(term) = terms.counts.keys().next() else { continue };
        let had = block_at(t, w, &term_prefix(ns, term), *slot)?
            .is_some_and(|(_, body)| body.chunks_exact(POSTING).any(|p| slot_of(p) == *slot));
        if had {
            charged_before += terms.charge();
        }
    }
    let mut stale = Vec::new();
    for row in t.postings.prefix_iter(w, &ns.to_be_bytes())? {
        stale.push(row?.0.to_vec());
    }
    for key in stale {
        t.postings.delete(w, &key)?;
    }
    stats.keyword_docs = 0;
    stats.keyword_terms = 0;
    let mut charged = 0;
    let mut pending = Pending::default();
    for (slot, terms) in rows {
        charged += terms.charge();
        pending.add(slot, terms);
    }
    pending.flush(t, w, ns, stats)?;
    stats.keyword_indexed = true;
    let added = charged.saturating_sub(charged_before);
    stats.storage_bytes += added;
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_saturate_instead_of_wrapping() {
        assert_eq!(posting(7, 300, 70_000), [0, 0, 0, 7, 255, 255, 255]);
        assert_eq!(posting(1, 2, 3), [0, 0, 0, 1, 2, 0, 3]);
        let b = block(&[posting(1, 2, 9), posting(4, 5, 7)].concat());
        assert_eq!(&b[..HEADER], &[5, 0, 7]);
    }
}
