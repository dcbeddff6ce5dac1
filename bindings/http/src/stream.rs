//! Streamed export and import: `GET /v1/namespaces/{name}/export` answers the namespace as
//! JSON Lines (`application/x-ndjson`), page by page as core produces them; `POST
//! /v1/namespaces/{name}/import` reads a JSON Lines body as it arrives and imports it in
//! batches. Neither holds a whole namespace. Core does the format and the checks
//! (`memsilo::transfer`); this only moves bytes.

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{HeaderValue, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use memsilo::transfer::{Batch, ChunkBatcher, ImportSummary, DEFAULT_PAGE, MAX_PAGE};
use memsilo::Error;
use serde_json::{json, Value};

use crate::dispatch::admit_streaming;
use crate::response;
use crate::server::Shared;

/// Runs one `export_namespace` page on the blocking pool, as JSON text: core writes each
/// line's text once and it is copied out as it is.
async fn export_page(handle: &memsilo::Handle, args: Value) -> Result<Vec<u8>, Error> {
    let handle = handle.clone();
    let run = move || handle.call_encoded("export_namespace", args).map(|r| r.body);
    match tokio::task::spawn_blocking(run).await {
        Ok(r) => r,
        Err(e) => Err(crate::response::handler_failed(e)),
    }
}

/// A page of `export_namespace` as its JSON text holds it.
#[derive(serde::Deserialize)]
struct PageText<'a> {
    #[serde(borrow)]
    lines: Vec<&'a serde_json::value::RawValue>,
    next_cursor: Option<String>,
}

/// A page's lines as JSON Lines, and where the next page starts.
fn lines_to_bytes(page: &[u8]) -> Result<(Vec<u8>, Option<String>), Error> {
    let page: PageText<'_> = serde_json::from_slice(page).map_err(Error::from)?;
    let mut out = Vec::with_capacity(page.lines.iter().map(|l| l.get().len() + 1).sum());
    for line in page.lines {
        out.extend_from_slice(line.get().as_bytes());
        out.push(b'\n');
    }
    Ok((out, page.next_cursor))
}

fn page_size(query: Option<&str>) -> Result<usize, Error> {
    let Some(q) = query else { return Ok(DEFAULT_PAGE) };
    let mut size = DEFAULT_PAGE;
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        if k != "page_size" {
            return Err(Error::invalid(k, "unknown parameter (page_size)"));
        }
        size = v.parse().ok().filter(|n| (1..=MAX_PAGE).contains(n)).ok_or_else(|| {
            Error::invalid("page_size", format!("must be between 1 and {MAX_PAGE}"))
        })?;
    }
    Ok(size)
}

/// `GET /v1/namespaces/{name}/export`.
pub(crate) async fn export(
    State(app): State<Shared>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let admitted = match admit_streaming(&app, &headers, "export_namespace").await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let limit = match page_size(query.as_deref()) {
        Ok(n) => n,
        Err(e) => return response::error(&e),
    };
    // The first page decides the status: a namespace the key may not read is a 403 here.
    let first = export_page(&admitted.handle, json!({ "namespace": name, "limit": limit })).await;
    let first = match first.and_then(|page| lines_to_bytes(&page)) {
        Ok(page) => page,
        Err(e) => return response::error(&e),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut page = first;
        loop {
            let (bytes, next) = page;
            if tx.send(Ok(Bytes::from(bytes))).await.is_err() {
                return; // the client went away
            }
            let Some(cursor) = next else { return };
            let args = json!({ "namespace": name, "cursor": cursor, "limit": limit });
            page = match export_page(&admitted.handle, args).await.and_then(|p| lines_to_bytes(&p))
            {
                Ok(p) => p,
                Err(e) => {
                    // The status is sent already: cut the body so the client sees it is short.
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    resp
}

/// An import running on the blocking pool through core's `import_batches`: batches are handed
/// to it as the body is read, and it reads and checks the next one while one is written.
struct Importer {
    batches: tokio::sync::mpsc::Sender<Result<Batch, Error>>,
    done: tokio::task::JoinHandle<Result<ImportSummary, Error>>,
}

impl Importer {
    fn start(handle: &memsilo::Handle, namespace: &str) -> Importer {
        let (batches, mut inbox) = tokio::sync::mpsc::channel(1);
        let (handle, namespace) = (handle.clone(), namespace.to_owned());
        let done = tokio::task::spawn_blocking(move || {
            let read = std::iter::from_fn(|| inbox.blocking_recv());
            handle.import_batches(&namespace, read, |_| {})
        });
        Importer { batches, done }
    }

    /// Hands on a batch; `false` once the import has stopped (a batch failed).
    async fn send(&self, batch: Batch) -> bool {
        self.batches.send(Ok(batch)).await.is_ok()
    }

    /// The answer once the batches handed on are written: what they wrote, or the first
    /// error in the body's order, whose body says what was written before it (`imported`).
    async fn answer(self) -> Response {
        let Importer { batches, done } = self;
        drop(batches);
        let outcome = match done.await {
            Ok(r) => r,
            Err(e) => Err(crate::response::handler_failed(e)),
        };
        match outcome {
            Ok(summary) => response::json(200, &json!(summary)),
            Err(e) => response::error(&e),
        }
    }

    /// The answer to a body that ends in `e` (a bad line, a read that failed): the batches
    /// before it are written first, and an error of theirs comes first.
    async fn fail(self, e: Error) -> Response {
        let _ = self.batches.send(Err(e)).await;
        self.answer().await
    }
}

/// Reads and drops the rest of a body whose import has stopped (a bad line, a batch that
/// failed) before the answer: a client that reads the answer only once its body is sent (most
/// HTTP/1.1 clients, `memsilo import --url` among them) would otherwise see the connection
/// closed under it while sending, not the error naming the line. Ends with the body, at a
/// read error, or after `timeout` without data.
async fn drain(chunks: &mut axum::body::BodyDataStream, timeout: std::time::Duration) {
    while let Ok(Some(Ok(_))) = tokio::time::timeout(timeout, chunks.next()).await {}
}

/// `POST /v1/namespaces/{name}/import`.
pub(crate) async fn import(
    State(app): State<Shared>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let admitted = match admit_streaming(&app, &headers, "import_namespace").await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let size = match page_size(query.as_deref()) {
        Ok(n) => n,
        Err(e) => return response::error(&e),
    };
    let timeout = app.options.request_timeout;
    let importer = Importer::start(&admitted.handle, &name);
    let mut lines = ChunkBatcher::new(size);
    let mut chunks = body.into_data_stream();
    loop {
        let chunk = match tokio::time::timeout(timeout, chunks.next()).await {
            Ok(Some(Ok(c))) => c,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return importer
                    .fail(Error::invalid("body", format!("could not read the body: {e}")))
                    .await
            }
            Err(_) => {
                let e = Error::invalid("body", format!("no data for {}s", timeout.as_secs()));
                return importer.fail(e).await;
            }
        };
        lines.feed(&chunk);
        loop {
            match lines.next_batch() {
                Ok(Some(batch)) => {
                    if !importer.send(batch).await {
                        drain(&mut chunks, timeout).await;
                        return importer.answer().await;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    drain(&mut chunks, timeout).await;
                    return importer.fail(e).await;
                }
            }
        }
    }
    match lines.finish() {
        Ok(batches) => {
            for batch in batches {
                if !importer.send(batch).await {
                    return importer.answer().await;
                }
            }
        }
        Err(e) => return importer.fail(e).await,
    }
    importer.answer().await
}
