//! memsilo for Node.js: a thin napi-rs addon. It opens an engine (or connects to a server),
//! runs operations of the core's operation table off the JS thread, and maps errors to JS
//! errors with a stable `.code`. The friendly API lives in `node/index.js`.

mod error;
mod handle;

use std::sync::Arc;

use memsilo::{Engine, Options};
use napi::Env;
use napi_derive::napi;

pub use handle::Handle;

use error::throw_on_error;

/// Opens (or creates) the data directory `path` in-process, as the root principal.
#[napi]
pub fn open(env: Env, path: String) -> napi::Result<Handle> {
    throw_on_error(&env, || {
        let engine = Engine::open(&path, Options::default())?;
        Ok(Handle::new(Arc::new(engine.root())))
    })
}

/// Every operation name `Handle.call` accepts.
#[napi]
pub fn operations() -> Vec<String> {
    memsilo::api::Request::OPERATIONS.iter().map(|s| (*s).to_owned()).collect()
}
