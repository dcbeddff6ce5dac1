//! `memsilo._native`: the Python extension module. Thin by design: it converts arguments
//! (JSON text in, JSON text out), releases the GIL around every engine call, and maps
//! [`memsilo::Error`] to one Python exception class per error code. The Python package
//! (`python/memsilo`) builds the SDK on top of [`client::Client::call`].

use pyo3::prelude::*;

/// The extension's Rust allocations go to mimalloc, as the `memsilo` binary's do (README,
/// "Allocator"); Python's own stay with Python's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod client;
mod error;

use client::Client;

/// Opens (creating if needed) the data directory at `path` in this process and returns a
/// root client. Opening the same path twice in one process shares one engine. `keyring`: the
/// keyring directory (or `env:`); `None` uses the `MEMSILO_KEYRING` setting, if any.
#[pyfunction]
#[pyo3(signature = (path, keyring = None))]
fn open(
    py: Python<'_>,
    path: std::path::PathBuf,
    keyring: Option<std::path::PathBuf>,
) -> PyResult<Client> {
    let root = py
        .detach(|| error::guard(|| memsilo_http::bindings::open(&path, keyring)))
        .map_err(|e| error::to_py_err(py, &e))?;
    Ok(Client::new(root, "local"))
}

/// One server URL, or several servers of one cluster.
#[derive(FromPyObject)]
enum Urls {
    One(String),
    Many(Vec<String>),
}

/// Connects to a `memsilo serve` server at `url` (or the first answering of a list of
/// servers) as `api_key` (checked at once).
#[pyfunction]
#[allow(clippy::needless_pass_by_value)] // extracted by PyO3
fn connect(py: Python<'_>, url: Urls, api_key: &str) -> PyResult<Client> {
    let client = py
        .detach(|| {
            error::guard(|| match &url {
                Urls::One(url) => memsilo_http::Client::connect(url, api_key),
                Urls::Many(urls) => memsilo_http::Client::connect_urls(urls, api_key),
            })
        })
        .map_err(|e| error::to_py_err(py, &e))?;
    Ok(Client::new(client, "remote"))
}

/// Runs the `memsilo` command line (`argv` without the program name, e.g.
/// `["serve", "--data", "./data"]`); blocks until the server stops; returns the exit code.
#[pyfunction]
fn serve(py: Python<'_>, argv: Vec<String>) -> i32 {
    let code = py.detach(|| memsilo_http::run_cli(argv));
    // The server already handled SIGINT/SIGTERM as "shut down"; Python's own handler saw the
    // SIGINT too and would raise KeyboardInterrupt now. Run it here and drop what it raises.
    let _ = py.check_signals();
    code
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    m.add_class::<client::Importer>()?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    m.add_function(wrap_pyfunction!(serve, m)?)?;
    error::register(m)?;
    m.add("OPERATIONS", memsilo::api::Request::OPERATIONS.to_vec())?;
    Ok(())
}
