//! [`Backend`]: what every binding talks to, in process or remote, and the vector block
//! that travels beside a request's JSON.

use serde_json::Value;

use super::Importer;
use super::{Reply, Request};
use crate::error::{Error, Result};
use crate::handle::Handle;

/// What every binding talks to: an in-process handle or a remote server, with the same
/// operations, results and errors.
pub trait Backend: Send + Sync {
    /// Runs one operation.
    fn call(&self, op: &str, args: Value) -> Result<Reply>;
    /// A backend acting as `api_key` (in-process: [`crate::Engine::scoped`]; remote: the
    /// same server with that key).
    fn scoped(&self, api_key: &str) -> Result<Box<dyn Backend>>;
    /// An import into `namespace` in batches of `batch_size` lines, fed the text of an
    /// export (see [`Importer`]): in process, [`Handle::importer`]; remote, the text streamed
    /// to the server as one request body.
    fn importer(&self, namespace: &str, batch_size: usize) -> Result<Importer>;
    /// Runs one operation whose vectors travel beside the JSON arguments as one block of
    /// `dims`-wide f32 rows (see [`Request::attach_vectors`]), so bindings need not encode
    /// floats as text. By default the vectors are put into the JSON (what a remote call sends).
    fn call_with_vectors(
        &self,
        op: &str,
        args: Value,
        vectors: &[f32],
        dims: usize,
    ) -> Result<Reply> {
        let mut req = Request::parse(op, args)?;
        req.attach_vectors(vectors, dims)?;
        self.call(req.name(), req.args())
    }
}

impl Request {
    /// Moves a block of vectors into the request: row `i` becomes `memories[i].embedding`
    /// (`store_memories`), the `embedding` (`store_memory`) or the `vector` (`recall`).
    /// A vector given both inline and in the block, or a row count that does not match, is
    /// `invalid_argument`.
    pub fn attach_vectors(&mut self, vectors: &[f32], dims: usize) -> Result<()> {
        if dims == 0 || !vectors.len().is_multiple_of(dims) {
            return Err(Error::invalid(
                "vectors",
                "the block's length must be a whole number of rows of dims > 0 values",
            ));
        }
        // Checked here, before a remote client writes the block as JSON (where NaN would
        // become null): the same error in process and over HTTP.
        let field = |i: usize| match self {
            Request::StoreMemories(_) => format!("memories[{i}].embedding"),
            Request::Recall(_) => "vector".to_owned(),
            _ => "embedding".to_owned(),
        };
        for (i, row) in vectors.chunks_exact(dims).enumerate() {
            crate::vector::check_finite(row, &field(i))?;
        }
        let mut rows = vectors.chunks_exact(dims).map(<[f32]>::to_vec);
        let count = vectors.len() / dims;
        let one =
            |slot: &mut Option<Vec<f32>>, field: &str, rows: &mut dyn Iterator<Item = Vec<f32>>| {
                if count != 1 {
                    return Err(Error::invalid(
                        "vectors",
                        format!("this operation takes one vector, got {count}"),
                    ));
                }
                if slot.is_some() {
                    return Err(Error::invalid(field, "given both inline and in the vector block"));
                }
                *slot = rows.next();
                Ok(())
            };
        match self {
            Request::StoreMemories(a) => {
                if count != a.memories.len() {
                    return Err(Error::invalid(
                        "vectors",
                        format!("{count} vectors for {} memories", a.memories.len()),
                    ));
                }
                for (i, (m, row)) in a.memories.iter_mut().zip(rows).enumerate() {
                    if m.embedding.is_some() {
                        return Err(Error::invalid(
                            format!("memories[{i}].embedding"),
                            "given both inline and in the vector block",
                        ));
                    }
                    m.embedding = Some(row);
                }
                Ok(())
            }
            Request::StoreMemory(a) => one(&mut a.embedding, "embedding", &mut rows),
            Request::UpdateMemory(a) => one(&mut a.embedding, "embedding", &mut rows),
            Request::Recall(a) => one(&mut a.vector, "vector", &mut rows),
            other => Err(Error::invalid(
                "vectors",
                format!("operation {} takes no vectors", other.name()),
            )),
        }
    }
}

impl Backend for Handle {
    fn call(&self, op: &str, args: Value) -> Result<Reply> {
        Handle::call(self, op, args)
    }

    fn call_with_vectors(
        &self,
        op: &str,
        args: Value,
        vectors: &[f32],
        dims: usize,
    ) -> Result<Reply> {
        let mut req = Request::parse(op, args)?;
        req.attach_vectors(vectors, dims)?;
        self.execute(req)
    }

    fn scoped(&self, api_key: &str) -> Result<Box<dyn Backend>> {
        Ok(Box::new(self.engine().scoped(api_key)?))
    }

    fn importer(&self, namespace: &str, batch_size: usize) -> Result<Importer> {
        Handle::importer(self, namespace, batch_size)
    }
}
