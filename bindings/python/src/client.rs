//! The `Client` class: one [`Backend`] (an in-process handle or a remote server) with the
//! operation table of `memsilo::api` behind a single `call(op, args_json)`.

use std::sync::{Arc, Mutex};

use memsilo::api::{Backend, Reply};
use memsilo::Error;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;

use crate::error::{guard, to_py_err};

/// A memsilo handle acting as one principal. Thread-safe; every call releases the GIL.
#[pyclass(frozen, module = "memsilo._native")]
pub struct Client {
    backend: Arc<dyn Backend>,
    /// `local` (in-process engine) or `remote` (a server), for `repr`.
    mode: &'static str,
}

impl Client {
    pub(crate) fn new(backend: impl Backend + 'static, mode: &'static str) -> Self {
        Client { backend: Arc::new(backend), mode }
    }

    /// Parses `args_json`, runs `op` with the GIL released, and encodes its reply with
    /// `encode`; errors become the package's exceptions.
    fn run(
        &self,
        py: Python<'_>,
        op: &str,
        args_json: &str,
        encode: impl FnOnce(Reply) -> memsilo::Result<String> + Send,
    ) -> PyResult<String> {
        let backend = &self.backend;
        py.detach(|| {
            guard(|| {
                let args = memsilo_http::bindings::parse_args(args_json, "args")?;
                encode(backend.call(op, args)?)
            })
        })
        .map_err(|e| to_py_err(py, &e))
    }
}

#[pymethods]
impl Client {
    /// Runs operation `op` with JSON-encoded arguments; returns the JSON-encoded result.
    fn call(&self, py: Python<'_>, op: &str, args_json: &str) -> PyResult<String> {
        self.run(py, op, args_json, |reply| Ok(serde_json::to_string(&reply.value)?))
    }

    /// Like `call` for a bare-array list: returns `{"value", "total_count", "next_cursor"}`
    /// as JSON (the total over all pages, and where the next page starts if one follows).
    fn call_listed(&self, py: Python<'_>, op: &str, args_json: &str) -> PyResult<String> {
        self.run(py, op, args_json, |reply| Ok(memsilo_http::bindings::listed(reply).to_string()))
    }

    /// Like `call`, with the operation's vectors as one block of native-endian float32 rows
    /// of `dims` values (`bytes` from numpy's `tobytes()` or `array('f')`), so no float is
    /// encoded as text. Core places row i (see `memsilo::api::Request::attach_vectors`).
    fn call_vectors(
        &self,
        py: Python<'_>,
        op: &str,
        args_json: &str,
        vectors: &[u8],
        dims: usize,
    ) -> PyResult<String> {
        let backend = &self.backend;
        py.detach(|| {
            guard(|| {
                if !vectors.len().is_multiple_of(4) {
                    return Err(Error::invalid(
                        "vectors",
                        "a float32 block must be a multiple of 4 bytes",
                    ));
                }
                let floats: Vec<f32> = vectors
                    .chunks_exact(4)
                    .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                let args = memsilo_http::bindings::parse_args(args_json, "args")?;
                let reply = backend.call_with_vectors(op, args, &floats, dims)?;
                Ok(serde_json::to_string(&reply.value)?)
            })
        })
        .map_err(|e| to_py_err(py, &e))
    }

    /// An import into `namespace` in batches of `batch_size` lines (core's `Importer`: in
    /// process, or streamed to the server as one request body).
    fn importer(&self, py: Python<'_>, namespace: &str, batch_size: usize) -> PyResult<Importer> {
        let backend = &self.backend;
        let importer = py
            .detach(|| guard(|| backend.importer(namespace, batch_size)))
            .map_err(|e| to_py_err(py, &e))?;
        Ok(Importer { importer: Mutex::new(importer) })
    }

    /// A client acting as `api_key` on the same engine or server.
    fn scoped(&self, py: Python<'_>, api_key: &str) -> PyResult<Client> {
        let backend = &self.backend;
        let scoped =
            py.detach(|| guard(|| backend.scoped(api_key))).map_err(|e| to_py_err(py, &e))?;
        Ok(Client { backend: Arc::from(scoped), mode: self.mode })
    }

    fn __repr__(&self) -> String {
        format!("<memsilo._native.Client ({})>", self.mode)
    }
}

/// An import under way: `feed` the text of an export (bytes, cut anywhere), then `finish`
/// for the counts written (core's `memsilo::api::Importer`).
#[pyclass(frozen, module = "memsilo._native")]
pub struct Importer {
    importer: Mutex<memsilo::api::Importer>,
}

impl Importer {
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        run: impl FnOnce(&mut memsilo::api::Importer) -> memsilo::Result<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            guard(|| {
                let mut importer = self
                    .importer
                    .lock()
                    .map_err(|_| Error::Internal("the importer's lock is poisoned".into()))?;
                run(&mut importer)
            })
        })
        .map_err(|e| to_py_err(py, &e))
    }
}

#[pymethods]
impl Importer {
    /// Takes the next chunk of the text; raises the import's error when it stops.
    fn feed(&self, py: Python<'_>, chunk: &[u8]) -> PyResult<()> {
        self.with(py, |importer| importer.feed(chunk))
    }

    /// Takes whole lines, one an item, numbered as one in errors (core's `feed_lines`).
    fn feed_lines(&self, py: Python<'_>, lines: Vec<PyBackedBytes>) -> PyResult<()> {
        self.with(py, |importer| importer.feed_lines(lines.iter().map(|line| &line[..])))
    }

    /// Ends the text; returns what the import wrote as JSON.
    fn finish(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |importer| Ok(serde_json::to_string(&importer.finish()?)?))
    }
}
