//! The `Handle` class: one backend (an in-process engine handle or a remote client) and
//! the operations every JS call goes through, each run on the libuv thread pool.

use std::sync::Arc;

use memsilo::api::Backend;
use memsilo::Error;
use napi::bindgen_prelude::AsyncTask;
use napi::{Env, Task};
use napi_derive::napi;
use serde_json::Value;

use crate::error::{guard, js_error};

/// A connection to memsilo acting as one principal.
#[napi]
pub struct Handle {
    backend: Arc<dyn Backend>,
}

impl Handle {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Handle { backend }
    }
}

#[napi]
impl Handle {
    /// Runs operation `op` (a name from `operations()`) with JSON arguments; resolves to
    /// the JSON result, rejects with an Error carrying `.code`.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn call(&self, op: String, args_json: String) -> AsyncTask<CallTask> {
        AsyncTask::new(CallTask {
            backend: self.backend.clone(),
            op,
            args: args_json,
            listed: false,
        })
    }

    /// Like `call` for a bare-array list: resolves to `{value, total_count, next_cursor}`
    /// as JSON (the total over all pages, and where the next page starts if one follows).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn call_listed(&self, op: String, args_json: String) -> AsyncTask<CallTask> {
        AsyncTask::new(CallTask {
            backend: self.backend.clone(),
            op,
            args: args_json,
            listed: true,
        })
    }

    /// A handle acting as `apiKey`; rejects with `unauthorized` for a bad key. (Checking
    /// the key is a round trip in remote mode, hence a promise.)
    #[napi(ts_return_type = "Promise<Handle>")]
    pub fn scoped(&self, api_key: String) -> AsyncTask<HandleTask> {
        let backend = self.backend.clone();
        AsyncTask::new(HandleTask::new(move || Ok(Arc::from(backend.scoped(&api_key)?))))
    }
}

/// One operation, run off the JS thread.
pub struct CallTask {
    backend: Arc<dyn Backend>,
    op: String,
    args: String,
    /// Answer the list's total and next cursor beside its value.
    listed: bool,
}

impl Task for CallTask {
    type Output = Result<String, Value>;
    type JsValue = String;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let args = std::mem::take(&mut self.args);
        Ok(guard(|| {
            let args = memsilo_http::bindings::parse_args(&args, "body")?;
            let reply = self.backend.call(&self.op, args)?;
            if self.listed {
                return Ok(memsilo_http::bindings::listed(reply).to_string());
            }
            Ok(serde_json::to_string(&reply.value)?)
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<String> {
        output.map_err(|body| js_error(env, &body))
    }
}

type MakeBackend = Box<dyn FnOnce() -> memsilo::Result<Arc<dyn Backend>> + Send>;

/// Makes a backend off the JS thread (connect, scoped) and resolves to a `Handle`.
pub struct HandleTask {
    make: Option<MakeBackend>,
}

impl HandleTask {
    pub fn new(make: impl FnOnce() -> memsilo::Result<Arc<dyn Backend>> + Send + 'static) -> Self {
        HandleTask { make: Some(Box::new(make)) }
    }
}

impl Task for HandleTask {
    type Output = Result<Arc<dyn Backend>, Value>;
    type JsValue = Handle;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let make = self.make.take();
        Ok(guard(|| match make {
            Some(make) => make(),
            None => Err(Error::Internal("task ran twice".into())),
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Handle> {
        output.map(Handle::new).map_err(|body| js_error(env, &body))
    }
}
