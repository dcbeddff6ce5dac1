//! What a static model remembers between calls: the token ids of words seen (when the
//! tokenizer splits on whitespace first) and the content rows of texts matched.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use super::StaticEmbedder;
use crate::error::Result;

/// Words whose token ids are remembered (the cache is emptied when it reaches this size).
const WORD_CACHE: usize = 200_000;
/// Content rows of texts remembered for the token match, in all (32 MB: 100k memories of ~80
/// tokens; the cache is emptied when it reaches this size).
const MATCH_CACHE_ROWS: usize = 8_000_000;

/// Texts' sorted distinct content rows, by the texts' 128-bit hashes (two keyed `SipHash`
/// 1-3 hashes: a collision, which would give one text another's rows, is out of reach).
/// Emptied when it holds [`MATCH_CACHE_ROWS`] rows.
#[derive(Default)]
pub(super) struct MatchCache {
    hashers: [std::hash::RandomState; 2],
    rows: HashMap<u128, Arc<[u32]>>,
    held: usize,
}

impl MatchCache {
    fn key(&self, text: &str) -> u128 {
        let [a, b] = &self.hashers;
        (u128::from(a.hash_one(text)) << 64) | u128::from(b.hash_one(text))
    }
}

impl StaticEmbedder {
    /// The distinct rows of the content tokens among `ids`, sorted.
    pub(super) fn content_rows(&self, ids: &[u32]) -> Vec<u32> {
        let mut r: Vec<u32> = ids
            .iter()
            .filter(|id| self.content.get(**id as usize).copied().unwrap_or(false))
            .filter_map(|id| self.row_of(*id).and_then(|r| u32::try_from(r).ok()))
            .collect();
        r.sort_unstable();
        r.dedup();
        r
    }

    /// Puts each text's [`Self::content_rows`] (from its `ids`) in the cache of matched
    /// texts, and returns them.
    pub(super) fn remember(&self, texts: &[&str], ids: &[Vec<u32>]) -> Vec<Arc<[u32]>> {
        let rows: Vec<Arc<[u32]>> = ids.iter().map(|ids| self.content_rows(ids).into()).collect();
        let mut cache = self.matched.write();
        for (text, rows) in texts.iter().zip(&rows) {
            if cache.held + rows.len() > MATCH_CACHE_ROWS {
                cache.rows.clear();
                cache.held = 0;
            }
            cache.held += rows.len();
            let key = cache.key(text);
            if let Some(old) = cache.rows.insert(key, rows.clone()) {
                cache.held -= old.len();
            }
        }
        rows
    }

    /// Each text's [`Self::content_rows`], through the cache of texts embedded or matched
    /// before.
    pub(super) fn matched_rows(&self, texts: &[&str]) -> Result<Vec<Arc<[u32]>>> {
        let mut out: Vec<Option<Arc<[u32]>>> = Vec::with_capacity(texts.len());
        let mut missing = Vec::new();
        {
            let cache = self.matched.read();
            for (i, t) in texts.iter().enumerate() {
                let hit = cache.rows.get(&cache.key(t)).cloned();
                if hit.is_none() {
                    missing.push(i);
                }
                out.push(hit);
            }
        }
        if !missing.is_empty() {
            let new: Vec<&str> = missing.iter().map(|i| texts[*i]).collect();
            let ids = self.ids(&new)?;
            for (i, rows) in missing.into_iter().zip(self.remember(&new, &ids)) {
                out[i] = Some(rows);
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }
}

impl StaticEmbedder {
    /// Each text's token ids (cut to `max_chars`), through the word cache when there is one.
    pub(super) fn ids(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let cut: Vec<&str> = texts
            .iter()
            .map(|t| match t.char_indices().nth(self.max_chars) {
                Some((i, _)) => &t[..i],
                None => t,
            })
            .collect();
        let Some(words) = &self.words else {
            return self.tokenize(cut);
        };
        // Tokenize the words not seen before, all at once.
        let mut missing: Vec<&str> = {
            let known = words.read();
            cut.iter()
                .flat_map(|t| t.split_whitespace())
                .filter(|w| !known.contains_key(*w))
                .collect()
        };
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let ids = self.tokenize(missing.clone())?;
            let mut known = words.write();
            if known.len() + missing.len() > WORD_CACHE {
                known.clear();
            }
            for (w, ids) in missing.into_iter().zip(ids) {
                known.insert(w.to_owned(), ids.into());
            }
        }
        let known = words.read();
        Ok(cut
            .iter()
            .map(|t| {
                let mut ids = Vec::new();
                for w in t.split_whitespace() {
                    match known.get(w) {
                        Some(w) => ids.extend_from_slice(w),
                        // Emptied by another thread meanwhile: tokenize it here.
                        None => {
                            ids.extend(self.tokenize(vec![w]).ok().into_iter().flatten().flatten());
                        }
                    }
                }
                ids
            })
            .collect())
    }
}
