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

use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use tokenizers::Tokenizer;

use super::Embedder;
use crate::error::{Error, Result};

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
        })
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

impl Embedder for StaticEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimensions(&self) -> usize {
        self.dims
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let cut: Vec<&str> = texts
            .iter()
            .map(|t| match t.char_indices().nth(self.max_chars) {
                Some((i, _)) => &t[..i],
                None => t,
            })
            .collect();
        let encodings = self
            .tokenizer
            .encode_batch_fast(cut, false)
            .map_err(|e| Error::Internal(format!("{}: tokenizer: {e}", self.name)))?;
        Ok(encodings.iter().map(|e| self.embed_ids(e.get_ids())).collect())
    }
}
