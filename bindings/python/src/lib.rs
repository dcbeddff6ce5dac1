//! `memsilo._native`: the Python extension module. Thin by design: it converts arguments
//! (JSON text in, JSON text out), releases the GIL around every engine call, and maps
//! [`memsilo::Error`] to one Python exception class per error code. The Python package
//! (`python/memsilo`) builds the SDK on top of [`client::Client::call`].

use pyo3::prelude::*;

mod client;
mod error;

use client::Client;

/// Opens (creating if needed) the data directory at `path` in this process and returns a
/// root client. Opening the same path twice in one process shares one engine.
#[pyfunction]
fn open(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Client> {
    let engine = py
        .detach(|| error::guard(|| memsilo::Engine::open(&path, memsilo::Options::default())))
        .map_err(|e| error::to_py_err(py, &e))?;
    Ok(Client::new(engine.root()))
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    error::register(m)?;
    m.add("OPERATIONS", memsilo::api::Request::OPERATIONS.to_vec())?;
    Ok(())
}
