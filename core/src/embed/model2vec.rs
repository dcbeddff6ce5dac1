//! Static embeddings in the model2vec format: a tokenizer (`tokenizer.json`), one embedding
//! row per token (`model.safetensors`) and `config.json`. A text's vector is the mean of its
//! tokens' rows, normalised when the config says `"normalize": true` — no neural network runs,
//! so a short text takes microseconds.
//!
//! Format facts, as model2vec reads them: the matrix is the tensor `embeddings` (or
//! `embedding.weight` in the sentence-transformers layout), row `i` belongs to token id `i`
//! unless a `mapping` tensor maps token ids to rows (vocabulary-quantised models, which also
//! carry per-token `weights`); texts are tokenized without special tokens, the unknown token is
//! dropped, and at most 512 tokens count.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;
use safetensors::{Dtype, SafeTensors};
use tokenizers::Tokenizer;

use super::Embedder;
use crate::error::{Error, Result};
use cache::MatchCache;

mod cache;

/// Tokens per text that count (model2vec's default `max_length`).
const MAX_TOKENS: usize = 512;

/// A model2vec static embedding model held in memory.
pub struct StaticEmbedder {
    name: String,
    tokenizer: Tokenizer,
    /// Row-major `rows × dims`.
    matrix: Vec<f32>,
    dims: usize,
    /// Token id → row, for vocabulary-quantised models.
    mapping: Option<Vec<u32>>,
    /// Token id → weight, for vocabulary-quantised models.
    weights: Option<Vec<f32>>,
    unk: Option<u32>,
    normalize: bool,
    /// Texts are cut to this many characters before tokenizing (`MAX_TOKENS` times the
    /// median token length), so a huge text costs no more than a long one.
    max_chars: usize,
    /// Token ids of each whitespace-separated word seen, when the tokenizer splits on
    /// whitespace before anything else (BERT-style): a text's ids are then its words' ids in
    /// order, and most words of a text were seen before, so most texts skip the tokenizer.
    words: Option<RwLock<HashMap<String, Arc<[u32]>>>>,
    /// Token id → whether it counts in [`Embedder::token_match`]: not the unknown token, not
    /// punctuation or symbols only, not one of the keyword index's stop words.
    content: Vec<bool>,
    /// Row → 1 / its length (0 for a zero row), for cosine similarities between tokens.
    inv_norms: Vec<f32>,
    /// Each text's content rows (see [`Embedder::token_match`]) by the text's 128-bit hash:
    /// hybrid recall matches the same memories' texts again and again, and a text is split
    /// into tokens once.
    matched: RwLock<MatchCache>,
}

impl std::fmt::Debug for StaticEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticEmbedder")
            .field("name", &self.name)
            .field("dims", &self.dims)
            .finish_non_exhaustive()
    }
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::invalid("embedder", format!("{}: {what}", path.display()))
}

impl StaticEmbedder {
    /// Loads the model in `dir` under `name` (the name recorded for namespaces it embeds).
    /// A missing file, an unreadable tokenizer or a matrix whose shape does not fit the
    /// tokenizer fails with `invalid_argument` naming the file.
    pub fn load(dir: &Path, name: &str) -> Result<Self> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read(&path).map_err(|e| bad(&path, format!("cannot read: {e}")))
        };
        let config_path = dir.join("config.json");
        let config: serde_json::Value = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| bad(&config_path, format!("not JSON: {e}")))?;
        let normalize =
            config.get("normalize").and_then(serde_json::Value::as_bool).unwrap_or(false);

        let tok_path = dir.join("tokenizer.json");
        let tok_bytes = read("tokenizer.json")?;
        let mut tokenizer = Tokenizer::from_bytes(&tok_bytes).map_err(|e| bad(&tok_path, e))?;
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| bad(&tok_path, e))?;
        let vocab = tokenizer.get_vocab_size(true);
        let unk = unknown_token(&tok_bytes, &tokenizer);
        let words = splits_on_whitespace_first(&tok_bytes).then(|| RwLock::new(HashMap::new()));
        let max_chars = MAX_TOKENS * median_token_chars(&tokenizer).max(1);

        let st_path = dir.join("model.safetensors");
        let bytes = read("model.safetensors")?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(&st_path, e))?;
        let matrix = tensors
            .tensor("embeddings")
            .or_else(|_| tensors.tensor("embedding.weight"))
            .map_err(|_| bad(&st_path, "has no `embeddings` tensor"))?;
        let [rows, dims] = *matrix.shape() else {
            return Err(bad(
                &st_path,
                format!("`embeddings` must be a matrix, its shape is {:?}", matrix.shape()),
            ));
        };
        if dims == 0 || rows == 0 {
            return Err(bad(&st_path, format!("`embeddings` is empty ({rows} × {dims})")));
        }
        let floats = |t: &safetensors::tensor::TensorView<'_>, what: &str| {
            to_f32(t.dtype(), t.data()).ok_or_else(|| {
                bad(&st_path, format!("`{what}` has unsupported dtype {:?}", t.dtype()))
            })
        };
        let matrix = floats(&matrix, "embeddings")?;
        let mapping = match tensors.tensor("mapping") {
            Ok(t) => Some(to_ids(t.dtype(), t.data()).ok_or_else(|| {
                bad(&st_path, format!("`mapping` has unsupported dtype {:?}", t.dtype()))
            })?),
            Err(_) => None,
        };
        let weights = match tensors.tensor("weights") {
            Ok(t) => Some(floats(&t, "weights")?),
            Err(_) => None,
        };
        match &mapping {
            None if rows != vocab => {
                return Err(bad(
                    &st_path,
                    format!(
                        "`embeddings` has {rows} rows but tokenizer.json has {vocab} tokens \
                         (one row per token expected)"
                    ),
                ))
            }
            Some(m) if m.len() != vocab || m.iter().any(|r| *r as usize >= rows) => {
                return Err(bad(
                    &st_path,
                    format!("`mapping` must map each of the {vocab} tokens to one of {rows} rows"),
                ))
            }
            _ => {}
        }
        if weights.as_ref().is_some_and(|w| w.len() != vocab) {
            return Err(bad(
                &st_path,
                format!("`weights` must have one entry per token ({vocab})"),
            ));
        }
        let inv_norms = inverse_norms(&matrix, dims);
        let content = content_tokens(&tokenizer, vocab, unk);
        Ok(StaticEmbedder {
            name: name.to_owned(),
            tokenizer,
            matrix,
            dims,
            mapping,
            weights,
            unk,
            normalize,
            max_chars,
            words,
            content,
            inv_norms,
            matched: RwLock::new(MatchCache::default()),
        })
    }

    /// The row of token `id` (`None` for an id beyond the vocabulary).
    fn row_of(&self, id: u32) -> Option<usize> {
        let row = self
            .mapping
            .as_ref()
            .map_or(Some(id as usize), |m| m.get(id as usize).map(|r| *r as usize))?;
        (row < self.inv_norms.len()).then_some(row)
    }

    fn embed_ids(&self, ids: &[u32]) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dims];
        let mut n = 0usize;
        for &id in ids.iter().filter(|id| Some(**id) != self.unk).take(MAX_TOKENS) {
            let row = self.mapping.as_ref().map_or(id as usize, |m| m[id as usize] as usize);
            let Some(r) = self.matrix.get(row * self.dims..(row + 1) * self.dims) else {
                continue; // an id beyond the vocabulary (an added token without a row)
            };
            let w = self.weights.as_ref().map_or(1.0, |w| w[id as usize]);
            for (a, b) in v.iter_mut().zip(r) {
                *a += w * b;
            }
            n += 1;
        }
        if n > 0 {
            let inv = 1.0 / n as f32;
            for x in &mut v {
                *x *= inv;
            }
        }
        if self.normalize {
            crate::vector::normalize(&mut v);
        }
        v
    }
}

/// Each row's 1 / length (0 for a zero row).
fn inverse_norms(matrix: &[f32], dims: usize) -> Vec<f32> {
    matrix
        .chunks_exact(dims)
        .map(|r| {
            let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            if n > 0.0 {
                1.0 / n
            } else {
                0.0
            }
        })
        .collect()
}

/// Token id → whether it counts in a token match (see `StaticEmbedder::content`).
fn content_tokens(tokenizer: &Tokenizer, vocab: usize, unk: Option<u32>) -> Vec<bool> {
    (0..u32::try_from(vocab).unwrap_or(u32::MAX))
        .map(|id| {
            Some(id) != unk
                && tokenizer.id_to_token(id).is_some_and(|t| {
                    t.chars().any(char::is_alphanumeric)
                        && !crate::text::is_stop_word(&t.to_lowercase())
                })
        })
        .collect()
}

/// Whether the tokenizer's first split is at whitespace with no normaliser that looks across
/// it (BERT's normaliser and pre-tokenizer), so words can be tokenized one by one.
fn splits_on_whitespace_first(tokenizer_json: &[u8]) -> bool {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(tokenizer_json) else {
        return false;
    };
    let kind = |v: Option<&serde_json::Value>| {
        v.and_then(|v| v.get("type")).and_then(serde_json::Value::as_str).map(str::to_owned)
    };
    let normalizer_ok = json.get("normalizer").is_none_or(serde_json::Value::is_null)
        || kind(json.get("normalizer")).as_deref() == Some("BertNormalizer");
    let pre = kind(json.get("pre_tokenizer"));
    normalizer_ok
        && matches!(pre.as_deref(), Some("BertPreTokenizer" | "WhitespaceSplit" | "Whitespace"))
}

/// The unknown token's id, which model2vec drops from every text (word-level tokenizers map
/// each out-of-vocabulary word to it).
fn unknown_token(tokenizer_json: &[u8], tokenizer: &Tokenizer) -> Option<u32> {
    let json: serde_json::Value = serde_json::from_slice(tokenizer_json).ok()?;
    let model = json.get("model")?;
    if let Some(tok) = model.get("unk_token").and_then(serde_json::Value::as_str) {
        return tokenizer.token_to_id(tok);
    }
    model.get("unk_id").and_then(serde_json::Value::as_u64).map(|id| id as u32)
}

fn median_token_chars(tokenizer: &Tokenizer) -> usize {
    let mut lens: Vec<usize> =
        tokenizer.get_vocab(false).keys().map(|t| t.chars().count()).collect();
    if lens.is_empty() {
        return 1;
    }
    let mid = lens.len() / 2;
    *lens.select_nth_unstable(mid).1
}

fn to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    let chunks = |n: usize| data.chunks_exact(n);
    Some(match dtype {
        Dtype::F32 => chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F16 => chunks(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::BF16 => {
            chunks(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
        }
        Dtype::F64 => {
            chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()) as f32).collect()
        }
        Dtype::I8 => data.iter().map(|b| f32::from(*b as i8)).collect(),
        _ => return None,
    })
}

fn to_ids(dtype: Dtype, data: &[u8]) -> Option<Vec<u32>> {
    let ids: Vec<i64> = match dtype {
        Dtype::I64 => data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect(),
        Dtype::I32 => data
            .chunks_exact(4)
            .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        Dtype::U32 => data
            .chunks_exact(4)
            .map(|c| i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => return None,
    };
    ids.into_iter().map(|i| u32::try_from(i).ok()).collect()
}

impl StaticEmbedder {
    /// Token ids of each text, without special tokens.
    fn tokenize(&self, texts: Vec<&str>) -> Result<Vec<Vec<u32>>> {
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts, false)
            .map_err(|e| Error::internal_from(format!("{}: tokenizer", self.name), e))?;
        Ok(encodings.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// [`Embedder::embed`] without the word cache (to check that the cache changes nothing).
    #[cfg(test)]
    fn embed_uncached(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        let ids = self.tokenize(texts.to_vec()).unwrap();
        ids.iter().map(|e| self.embed_ids(e)).collect()
    }
}

impl Embedder for StaticEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    /// A static model looks its tokens up in a table (`make bench-embed`: ~19k texts/s on
    /// the first pass, ~100k once its words are known).
    fn is_fast(&self) -> bool {
        true
    }

    fn dimensions(&self) -> usize {
        self.dims
    }

    /// Also remembers each text's content tokens for [`Embedder::token_match`]: the texts
    /// a namespace's writes embed are the ones its hybrid recalls match.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let ids = self.ids(texts)?;
        self.remember(texts, &ids);
        Ok(ids.iter().map(|ids| self.embed_ids(ids)).collect())
    }

    fn token_match(&self, query: &str, texts: &[&str]) -> Result<Option<Vec<f64>>> {
        let query = self.content_rows(&self.ids(&[query])?[0]);
        if query.is_empty() {
            return Ok(None);
        }
        let docs = self.matched_rows(texts)?;
        let n = docs.len() as f64;
        let idf: Vec<f64> = query
            .iter()
            .map(|q| {
                let df = docs.iter().filter(|d| d.binary_search(q).is_ok()).count() as f64;
                (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
            })
            .collect();
        // Each distinct row of the texts' cosine with each query row, computed once: a row
        // is read from the matrix once for all the query's rows.
        let mut distinct: Vec<u32> = docs.iter().flat_map(|d| d.iter().copied()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let row = |r: u32| &self.matrix[r as usize * self.dims..(r as usize + 1) * self.dims];
        let queried: Vec<(&[f32], f32)> =
            query.iter().map(|q| (row(*q), self.inv_norms[*q as usize])).collect();
        let width = query.len();
        let mut cos = vec![0.0f32; distinct.len() * width];
        for (d, out) in distinct.iter().zip(cos.chunks_exact_mut(width)) {
            let (dv, dn) = (row(*d), self.inv_norms[*d as usize]);
            for ((qv, qn), c) in queried.iter().zip(out) {
                *c = crate::vector::dot(qv, dv) * qn * dn;
            }
        }
        let mut best = vec![0.0f32; width];
        Ok(Some(
            docs.iter()
                .map(|d| {
                    best.fill(0.0);
                    for r in d.iter() {
                        let Ok(i) = distinct.binary_search(r) else { continue };
                        for (b, c) in best.iter_mut().zip(&cos[i * width..(i + 1) * width]) {
                            *b = b.max(*c);
                        }
                    }
                    best.iter().zip(&idf).map(|(b, w)| w * f64::from(*b)).sum()
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn potion() -> StaticEmbedder {
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"), Into::into)
            .join("models/potion-base-8M");
        StaticEmbedder::load(&dir, "potion-base-8M").expect("run `make models`")
    }

    #[test]
    fn token_match_finds_related_words_and_skips_stop_words() {
        let model = potion();
        let texts =
            ["Hiring 4 ML engineers", "Budget: $2.4M allocated", "Q3 roadmap: Omega in Sept"];
        // "recruiting" is in none of them; its nearest token is "hiring".
        let m = model.token_match("who are we recruiting?", &texts).unwrap().unwrap();
        assert!(m[0] > m[1] && m[0] > m[2], "{m:?}");
        // A token the text holds scores its whole weight: its idf among the texts (df 1 of 3).
        let exact = model.token_match("Engineers!", &texts).unwrap().unwrap();
        let idf = (1.0 + (3.0 - 1.0 + 0.5) / 1.5f64).ln();
        assert!((exact[0] - idf).abs() < 1e-5, "{exact:?}");
        assert!(exact[1] < 0.7 * idf && exact[2] < 0.7 * idf, "{exact:?}");
        // Stop words and punctuation only: nothing to match.
        assert!(model.token_match("what is it?", &texts).unwrap().is_none());
        // An embedder without token vectors has no match.
        let hashing = crate::HashEmbedder::new(64);
        assert!(hashing.token_match("engineers", &texts).unwrap().is_none());
    }

    /// Texts embedded before (a namespace's writes) are matched from the cache of their
    /// tokens: the same scores as texts never seen, and a changed text is matched anew.
    #[test]
    fn token_match_is_the_same_for_texts_embedded_before() {
        let texts = ["Hiring 4 ML engineers", "Budget: $2.4M allocated", "Q3 roadmap: Omega"];
        let fresh = potion().token_match("recruiting engineers", &texts).unwrap();
        let model = potion();
        model.embed(&texts).unwrap();
        assert_eq!(model.token_match("recruiting engineers", &texts).unwrap(), fresh);
        let changed = ["Hiring 4 ML engineers", "Budget: $2.4M allocated", "Q3 roadmap: engineers"];
        let m = model.token_match("recruiting engineers", &changed).unwrap().unwrap();
        assert!(m[2] > fresh.as_ref().unwrap()[2], "{m:?} {fresh:?}");
    }

    #[test]
    fn the_word_cache_gives_the_tokenizers_vectors() {
        let model = potion();
        assert!(model.words.is_some(), "potion-base-8M splits on whitespace first");
        let texts = [
            "Hiring 4 ML engineers",
            "Budget: $2.4M allocated (Q3), see\tthe doc\nbelow!",
            "Café naïve façade — über straße",
            "東京で会議 meeting in 東京",
            "  leading and trailing spaces  ",
            "",
            "emoji 🎉 and CAPS and snake_case-and-kebab",
        ];
        for round in 0..2 {
            let cached = model.embed(&texts).unwrap();
            assert_eq!(cached, model.embed_uncached(&texts), "round {round}");
        }
    }
}
