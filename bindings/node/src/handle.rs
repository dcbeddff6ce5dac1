//! The `Handle` class: one backend (an in-process engine handle or a remote client) and
//! the operations every JS call goes through, each run on the libuv thread pool.

use std::sync::{Arc, Mutex};

use memsilo::api::Backend;
use memsilo::Error;
use napi::bindgen_prelude::{AsyncTask, Buffer};
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

    /// An import into `namespace` in batches of `batchSize` lines (core's `Importer`: in
    /// process, or streamed to the server as one request body). Opening one may ask the
    /// server whether it takes a streamed body, hence a promise.
    #[napi(ts_return_type = "Promise<Importer>")]
    pub fn importer(&self, namespace: String, batch_size: u32) -> AsyncTask<OpenImporter> {
        AsyncTask::new(OpenImporter {
            backend: self.backend.clone(),
            namespace,
            batch_size: batch_size as usize,
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

/// An import under way: `feed` the text of an export (a Buffer, cut anywhere), then `finish`
/// for the counts written as JSON. Each call runs off the JS thread.
#[napi]
pub struct Importer {
    importer: Arc<Mutex<memsilo::api::Importer>>,
}

#[napi]
impl Importer {
    /// Takes the next chunk of the text; rejects with the import's error when it stops.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn feed(&self, chunk: Buffer) -> AsyncTask<ImportTask> {
        self.task(Fed::Chunk(chunk.to_vec()))
    }

    /// Takes whole lines, one a Buffer, numbered as one in errors (core's `feed_lines`).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn feed_lines(&self, lines: Vec<Buffer>) -> AsyncTask<ImportTask> {
        self.task(Fed::Lines(lines.iter().map(|line| line.to_vec()).collect()))
    }

    /// Ends the text; resolves to what the import wrote, as JSON.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn finish(&self) -> AsyncTask<ImportTask> {
        self.task(Fed::End)
    }
}

impl Importer {
    fn task(&self, fed: Fed) -> AsyncTask<ImportTask> {
        AsyncTask::new(ImportTask { importer: self.importer.clone(), fed: Some(fed) })
    }
}

/// What an [`ImportTask`] gives its importer.
enum Fed {
    Chunk(Vec<u8>),
    Lines(Vec<Vec<u8>>),
    End,
}

/// Opens an importer off the JS thread.
pub struct OpenImporter {
    backend: Arc<dyn Backend>,
    namespace: String,
    batch_size: usize,
}

impl Task for OpenImporter {
    type Output = Result<memsilo::api::Importer, Value>;
    type JsValue = Importer;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(guard(|| self.backend.importer(&self.namespace, self.batch_size)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Importer> {
        output
            .map(|importer| Importer { importer: Arc::new(Mutex::new(importer)) })
            .map_err(|body| js_error(env, &body))
    }
}

/// One chunk or list of lines fed to an importer, or its end, off the JS thread.
pub struct ImportTask {
    importer: Arc<Mutex<memsilo::api::Importer>>,
    fed: Option<Fed>,
}

impl Task for ImportTask {
    type Output = Result<String, Value>;
    type JsValue = String;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let fed = self.fed.take().unwrap_or(Fed::End);
        Ok(guard(|| {
            let mut importer = self
                .importer
                .lock()
                .map_err(|_| Error::Internal("the importer's lock is poisoned".into()))?;
            match fed {
                Fed::Chunk(chunk) => importer.feed(&chunk).map(|()| String::new()),
                Fed::Lines(lines) => {
                    importer.feed_lines(lines.iter().map(Vec::as_slice)).map(|()| String::new())
                }
                Fed::End => Ok(serde_json::to_string(&importer.finish()?)?),
            }
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<String> {
        output.map_err(|body| js_error(env, &body))
    }
}
