//! Keyword search: BM25 over an inverted index kept in the namespace's own LMDB environment.
//!
//! Text is split into Unicode words (UAX #29), case-folded, stripped of a few English stop
//! words and stemmed (Snowball English). The index is one table, `keywords`, with sorted
//! fixed-size duplicates: key `ns ‖ term`, one 7-byte value per memory containing the term —
//! the memory's vector slot (u32 BE, unique in its namespace), the term's count in it (u8) and
//! the memory's length in terms (u16 BE). A term's document frequency is its number of values.
//! Postings are written and removed in the memory's own transaction, so keyword recall sees a
//! write as soon as it returns, and a namespace's deletion and erasure remove them with its
//! other rows (every key starts with the namespace id).

mod recall;
mod text;

use std::collections::HashMap;

use heed::{RoTxn, RwTxn, WithoutTls};

use crate::datastore::{ns_key, DataTables, NamespaceStats};
use crate::error::Result;

pub use recall::RecallMode;
pub(crate) use recall::{hybrid_hits, keyword_hits};
pub(crate) use text::terms;

/// BM25's term-frequency saturation.
const K1: f32 = 1.2;
/// BM25's length normalisation.
const B: f32 = 0.75;

/// Bytes of one posting.
pub(crate) const POSTING: usize = 7;

fn posting(slot: u32, tf: u32, len: usize) -> [u8; POSTING] {
    let mut p = [0u8; POSTING];
    p[..4].copy_from_slice(&slot.to_be_bytes());
    p[4] = tf.min(255) as u8;
    p[5..].copy_from_slice(&(len.min(usize::from(u16::MAX)) as u16).to_be_bytes());
    p
}

/// Bytes charged to the namespace's storage per posting: the 7-byte value, and a share of
/// its term's key and of the page it sits in.
const POSTING_CHARGE: u64 = 12;

/// Bytes a memory's postings are charged: one posting per distinct term of its text.
pub(crate) fn charge(text: &str) -> u64 {
    counted(text).0.len() as u64 * POSTING_CHARGE
}

/// A term's key: `ns ‖ term`.
fn term_key(ns: u64, term: &str) -> Vec<u8> {
    ns_key(ns, term.as_bytes())
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

/// Adds the postings of a memory's text (inside the memory's write transaction).
pub(crate) fn index(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: u64,
    slot: u32,
    text: &str,
    stats: &mut NamespaceStats,
) -> Result<()> {
    let (counts, len) = counted(text);
    for (term, tf) in &counts {
        t.keywords.put(w, &term_key(ns, term), &posting(slot, *tf, len))?;
    }
    stats.keyword_docs += 1;
    stats.keyword_terms += len as u64;
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
    for (term, tf) in &counts {
        t.keywords.delete_one_duplicate(w, &term_key(ns, term), &posting(slot, *tf, len))?;
    }
    stats.keyword_docs = stats.keyword_docs.saturating_sub(1);
    stats.keyword_terms = stats.keyword_terms.saturating_sub(len as u64);
    Ok(())
}

/// BM25 score of every memory matching at least one query term, by slot, best first.
pub(crate) fn search(
    t: &DataTables,
    r: &RoTxn<'_, WithoutTls>,
    ns: u64,
    stats: &NamespaceStats,
    query: &str,
) -> Result<Vec<(u32, f32)>> {
    let n = stats.keyword_docs.max(1) as f32;
    let avg_len = (stats.keyword_terms as f32 / n).max(1.0);
    let (counts, _) = counted(query);
    let mut scores: HashMap<u32, f32> = HashMap::new();
    for (term, qtf) in counts {
        let Some(postings) = t.keywords.get_duplicates(r, &term_key(ns, &term))? else {
            continue;
        };
        let postings: Vec<&[u8]> =
            postings.map(|p| p.map(|(_, v)| v)).collect::<heed::Result<_>>()?;
        let df = postings.len() as f32;
        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        for p in postings {
            let Some(p) = p.get(..POSTING) else { continue };
            let slot = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
            let tf = f32::from(p[4]);
            let len = f32::from(u16::from_be_bytes([p[5], p[6]]));
            let norm = tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / avg_len));
            *scores.entry(slot).or_insert(0.0) += idf * norm * qtf as f32;
        }
    }
    let mut out: Vec<(u32, f32)> = scores.into_iter().collect();
    out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_saturate_instead_of_wrapping() {
        assert_eq!(posting(7, 300, 70_000), [0, 0, 0, 7, 255, 255, 255]);
        assert_eq!(posting(1, 2, 3), [0, 0, 0, 1, 2, 0, 3]);
    }
}
