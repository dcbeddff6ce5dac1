//! The `Handle` class: one backend (an in-process engine handle or a remote client) and
//! the one method every JS call goes through.

use std::sync::Arc;

use memsilo::api::Backend;
use memsilo::Error;
use napi::bindgen_prelude::AsyncTask;
use napi::{Env, Task};
use napi_derive::napi;
use serde_json::Value;

use crate::error::{guard, js_error, throw_on_error};

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
    /// Runs operation `op` (a name from `operations()`) with JSON arguments on the libuv
    /// thread pool; resolves to the JSON result, rejects with an Error carrying `.code`.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn call(&self, op: String, args_json: String) -> AsyncTask<CallTask> {
        AsyncTask::new(CallTask { backend: self.backend.clone(), op, args: args_json })
    }

    /// A handle acting as `apiKey` (fails with `unauthorized` for a bad key).
    #[napi]
    pub fn scoped(&self, env: Env, api_key: String) -> napi::Result<Handle> {
        throw_on_error(&env, || Ok(Handle::new(Arc::from(self.backend.scoped(&api_key)?))))
    }
}

/// One operation, run off the JS thread.
pub struct CallTask {
    backend: Arc<dyn Backend>,
    op: String,
    args: String,
}

impl Task for CallTask {
    type Output = Result<String, Value>;
    type JsValue = String;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let args = std::mem::take(&mut self.args);
        Ok(guard(|| {
            let args: Value = if args.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&args).map_err(|e| Error::invalid("body", format!("invalid JSON: {e}")))?
            };
            let reply = self.backend.call(&self.op, args)?;
            Ok(serde_json::to_string(&reply.value)?)
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<String> {
        output.map_err(|body| js_error(&env, &body))
    }
}
