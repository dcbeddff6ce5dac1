//! Turning text into vectors. The default is a static embedding model in the model2vec format
//! ([`StaticEmbedder`], potion-base-8M unless the `embedder` setting names another), found or
//! fetched on first use ([`ModelEmbedder`]); without one, the [`HashEmbedder`]. Callers can
//! always pass their own vectors, or plug in any [`Embedder`].
//!
//! A namespace records the name of the embedder of its first text vector and is embedded with
//! that one for good, whatever the engine's default later becomes.

mod hash;
mod hub;
#[cfg(feature = "minilm")]
mod minilm;
mod model2vec;
mod models;

use std::sync::Arc;

pub use hash::HashEmbedder;
pub use hub::DOWNLOAD_PROGRESS;
#[cfg(feature = "minilm")]
pub use minilm::MiniLmEmbedder;
pub use model2vec::StaticEmbedder;
pub use models::{
    embedder_from_env, embedder_from_setting, load_model, pull_model, ModelEmbedder, ModelPaths,
    DEFAULT_MODEL,
};

use crate::error::{Error, Result};

/// Embedder name recorded for namespaces whose vectors come from the caller.
pub const CALLER_EMBEDDER: &str = "caller";

/// Something that turns texts into vectors of one fixed dimension.
pub trait Embedder: Send + Sync {
    /// A stable name, recorded per namespace (vectors of different embedders never mix).
    fn name(&self) -> &str;
    /// The dimension of every vector returned.
    fn dimensions(&self) -> usize;
    /// One vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
    /// Whether a short text is embedded in microseconds (a hashing or static model), so
    /// that a server may embed it on a thread that serves other requests too. A neural
    /// model that takes milliseconds says no (the default).
    fn is_fast(&self) -> bool {
        false
    }
    /// How well each of `texts` matches `query` token by token, for hybrid recall: each
    /// content token of the query (stop words and punctuation left out) scores its best
    /// cosine similarity with a token of the text (negative counts as 0), weighted by its
    /// inverse document frequency among `texts`, summed. `None` when the embedder has no
    /// token vectors (the default: only a static model has them, where a token's vector is
    /// one table row) or the query has no content token.
    fn token_match(&self, query: &str, texts: &[&str]) -> Result<Option<Vec<f64>>> {
        let _ = (query, texts);
        Ok(None)
    }
}

/// The embedder for a namespace whose first text vector came from `recorded` (`None`: a
/// namespace without one yet, which gets the engine's `default`).
pub(crate) fn for_namespace(
    default: &Arc<dyn Embedder>,
    recorded: Option<&str>,
) -> Result<Arc<dyn Embedder>> {
    match recorded {
        // Caller-vector namespaces refuse text later, with their own message.
        None | Some(CALLER_EMBEDDER) => Ok(default.clone()),
        Some(name) if name == default.name() => Ok(default.clone()),
        Some(name) => models::by_name(name).map_err(|e| {
            Error::invalid(
                "content",
                format!(
                    "this namespace was embedded with {name}, which cannot be loaded here ({e}); \
                     install it with `memsilo models pull {name}`"
                ),
            )
        }),
    }
}
