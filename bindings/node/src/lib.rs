//! memsilo for Node.js: a thin napi-rs addon. It opens an engine or connects to a server,
//! runs operations of the core's operation table on the libuv thread pool, and maps errors
//! to JS errors with a stable `.code`. The friendly API lives in `node/index.js`.

mod error;
mod handle;

use std::sync::Arc;

use napi::bindgen_prelude::{AsyncTask, Either};
use napi::{Env, Task};
use napi_derive::napi;

pub use handle::{CallTask, Handle, HandleTask, ImportTask, Importer, OpenImporter};

use error::throw_on_error;

/// The addon's Rust allocations go to mimalloc, as the `memsilo` binary's do (README,
/// "Allocator"); Node's own stay with V8's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Opens (or creates) the data directory `path` in-process, as the root principal, with the
/// keyring `keyring` (default: the `MEMSILO_KEYRING` setting, if any).
#[napi]
#[allow(clippy::needless_pass_by_value)] // napi hands JS strings over as owned Strings
pub fn open(env: Env, path: String, keyring: Option<String>) -> napi::Result<Handle> {
    throw_on_error(env, || {
        let root = memsilo_http::bindings::open(path.as_ref(), keyring.map(Into::into))?;
        Ok(Handle::new(Arc::new(root)))
    })
}

/// Connects to a memsilo server at `url` (or the first answering of an array of a
/// cluster's servers) with `apiKey` (checked by a first request).
#[napi(ts_return_type = "Promise<Handle>")]
pub fn connect(url: Either<String, Vec<String>>, api_key: String) -> AsyncTask<HandleTask> {
    AsyncTask::new(HandleTask::new(move || {
        Ok(Arc::new(match &url {
            Either::A(url) => memsilo_http::Client::connect(url, &api_key)?,
            Either::B(urls) => memsilo_http::Client::connect_urls(urls, &api_key)?,
        }))
    }))
}

/// Runs the `memsilo` command line (`serve --data DIR --listen ADDR`, ...) on a libuv
/// worker thread; resolves to its exit code when it stops (SIGINT or SIGTERM for `serve`).
#[napi(ts_return_type = "Promise<number>")]
pub fn serve(argv: Vec<String>) -> AsyncTask<ServeTask> {
    AsyncTask::new(ServeTask { argv })
}

/// The server, run off the JS thread.
pub struct ServeTask {
    argv: Vec<String>,
}

impl Task for ServeTask {
    type Output = i32;
    type JsValue = i32;

    fn compute(&mut self) -> napi::Result<i32> {
        let argv = std::mem::take(&mut self.argv);
        Ok(memsilo_http::run_cli(argv))
    }

    fn resolve(&mut self, _env: Env, code: i32) -> napi::Result<i32> {
        Ok(code)
    }
}

/// Every error code of the core's table (`ErrorCode::ALL`), in C-integer order.
#[napi]
pub fn error_codes() -> Vec<String> {
    memsilo::ErrorCode::ALL.iter().map(|c| c.as_str().to_owned()).collect()
}

/// Every operation name `Handle.call` accepts.
#[napi]
pub fn operations() -> Vec<String> {
    memsilo::api::Request::OPERATIONS.iter().map(|s| (*s).to_owned()).collect()
}
