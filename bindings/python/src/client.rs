//! The `Client` class: one [`Backend`] (an in-process handle or a remote server) with the
//! operation table of `memsilo::api` behind a single `call(op, args_json)`.

use std::sync::Arc;

use memsilo::api::Backend;
use memsilo::Error;
use pyo3::prelude::*;
use serde_json::Value;

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
}

#[pymethods]
impl Client {
    /// Runs operation `op` with JSON-encoded arguments; returns the JSON-encoded result.
    fn call(&self, py: Python<'_>, op: &str, args_json: &str) -> PyResult<String> {
        let backend = &self.backend;
        py.detach(|| {
            guard(|| {
                let args: Value = serde_json::from_str(args_json)
                    .map_err(|e| Error::invalid("args", format!("not valid JSON: {e}")))?;
                let reply = backend.call(op, args)?;
                Ok(serde_json::to_string(&reply.value)?)
            })
        })
        .map_err(|e| to_py_err(py, &e))
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
