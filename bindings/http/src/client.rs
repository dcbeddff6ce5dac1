//! The blocking remote client: the same operations as an in-process `Handle`, sent over
//! HTTP with the route table, with errors mapped back to the same codes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use memsilo::api::{Backend, Reply, Request};
use memsilo::api::{ImportRun, ImportThread, Importer};
use memsilo::transfer::{check_batch_size, ImportSummary, MAX_LINE_BYTES};
use memsilo::{Error, Result};
use serde_json::Value;

use crate::routes;

/// How a [`Client`] talks to the server.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for a whole call, from connecting to the last byte of the answer.
    pub timeout: Duration,
    /// Idle connections kept per host for reuse.
    pub pool_size: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
            pool_size: 16,
        }
    }
}

/// A connection to a memsilo server acting as one API key. Cheap to clone (clones share one
/// connection pool); safe to use from any non-async thread.
///
/// It may be given several servers of one cluster ([`Client::connect_urls`], or one URL
/// string with commas: `http://a:3300,http://b:3300`). A call goes to the server that
/// answered last and moves on to the next one, in order, when that server cannot serve it:
/// the connection fails (refused, reset, timed out before an answer) or the server answers
/// `503` (a cluster node that cannot reach the namespace's owner). The call is sent again
/// elsewhere only when that cannot apply it twice: a read always; a write only when its
/// connection failed before the request was sent, or when it names every memory it writes
/// by a caller-chosen `id` (`store_memory` / `store_memories` with ids replace, so a second
/// send changes nothing). Any other answer, a `4xx` included, is returned as it is.
#[derive(Clone)]
pub struct Client {
    bases: Arc<[Arc<str>]>,
    current: Arc<AtomicUsize>,
    key: Arc<str>,
    agent: ureq::Agent,
    /// Whether the servers take an import as one streamed body (a cluster node does not),
    /// once an import has found out.
    streams_imports: Arc<OnceLock<bool>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never printed.
        f.debug_struct("Client").field("url", &self.url()).finish_non_exhaustive()
    }
}

/// Largest answer read (a recall of 1000 hits with metadata fits easily).
const MAX_RESPONSE_BYTES: u64 = 256 << 20;

/// Longest wait for the answer to a streamed import once its body is sent: the server writes
/// the last batches, then answers.
pub const ANSWER_AFTER_BODY: Duration = Duration::from_secs(600);

/// Longest wait for a server to take or refuse a streamed import's body before sending it
/// anyway (a server or proxy that ignores `Expect: 100-continue`): a memsilo server answers
/// as soon as it has checked the key.
const AWAIT_CONTINUE: Duration = Duration::from_secs(10);

impl Client {
    /// Connects to the server at `url` (e.g. `http://localhost:3300`; several servers of one
    /// cluster comma-separated) as `api_key`, checking the key at once: an unknown or revoked
    /// key is `unauthorized`, an unreachable server is `internal` with a message saying so.
    pub fn connect(url: &str, api_key: &str) -> Result<Client> {
        Client::connect_with(url, api_key, &ClientOptions::default())
    }

    /// [`Client::connect`] with options.
    pub fn connect_with(url: &str, api_key: &str, options: &ClientOptions) -> Result<Client> {
        let urls: Vec<&str> = url.split(',').collect();
        if urls.len() == 1 {
            let base = parse_base(url).ok_or_else(|| {
                Error::invalid("url", format!("expected http://HOST:PORT, got {url:?}"))
            })?;
            return Client::open(vec![base], api_key, options);
        }
        Client::connect_urls_with(&urls, api_key, options)
    }

    /// Connects to the first of `urls` that answers (servers of one cluster, tried in
    /// order; see [`Client`] for when a call moves to the next). A malformed entry is
    /// `invalid_argument` naming `urls[i]`.
    pub fn connect_urls<S: AsRef<str>>(urls: &[S], api_key: &str) -> Result<Client> {
        Client::connect_urls_with(urls, api_key, &ClientOptions::default())
    }

    /// [`Client::connect_urls`] with options.
    pub fn connect_urls_with<S: AsRef<str>>(
        urls: &[S],
        api_key: &str,
        options: &ClientOptions,
    ) -> Result<Client> {
        if urls.is_empty() {
            return Err(Error::invalid("urls", "give at least one server URL"));
        }
        let mut bases = Vec::with_capacity(urls.len());
        for (i, url) in urls.iter().enumerate() {
            let url = url.as_ref();
            bases.push(parse_base(url).ok_or_else(|| {
                Error::invalid(
                    format!("urls[{i}]"),
                    format!("expected http://HOST:PORT, got {url:?}"),
                )
            })?);
        }
        Client::open(bases, api_key, options)
    }

    fn open(bases: Vec<Arc<str>>, api_key: &str, options: &ClientOptions) -> Result<Client> {
        let all_loopback = bases.iter().all(|b| is_loopback(b.split("://").nth(1).unwrap_or("")));
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_global(Some(options.timeout))
            .max_idle_connections_per_host(options.pool_size)
            .max_redirects(0)
            .user_agent(concat!("memsilo-http/", env!("CARGO_PKG_VERSION")));
        if all_loopback {
            // A proxy from the environment must not intercept calls to this machine.
            config = config.proxy(None);
        }
        let agent = ureq::Agent::new_with_config(config.build());
        let client = Client {
            bases: bases.into(),
            current: Arc::default(),
            key: api_key.into(),
            agent,
            streams_imports: Arc::default(),
        };
        client.call("whoami", Value::Null)?;
        Ok(client)
    }

    /// The URL of the server calls go to now.
    pub fn url(&self) -> &str {
        &self.bases[self.current.load(Ordering::Relaxed) % self.bases.len()]
    }

    /// Runs one operation on the server (what [`Backend::call`] does).
    pub fn call(&self, op: &str, args: Value) -> Result<Reply> {
        let encoded = routes::route_for(op).map(|route| (route, route.encode(&args)));
        // Decoding here too gives the same `invalid_argument` as in-process before any I/O.
        let request = Request::parse(op, args)?;
        let (route, encoded) =
            encoded.ok_or_else(|| Error::invalid("op", format!("unknown operation {op:?}")))?;
        let encoded = encoded?;
        let target = encoded.target();
        let body = encoded.body.as_ref().map(serde_json::to_vec).transpose()?;
        let resend = self.bases.len() > 1 && request.safe_to_resend();
        let first = self.current.load(Ordering::Relaxed);
        let n = self.bases.len();
        for i in 0..n {
            let at = (first + i) % n;
            let base = &self.bases[at];
            let more = i + 1 < n;
            let (status, list, bytes) =
                match self.send(base, route, &target, body.as_deref()).and_then(read_body) {
                    // Not sent (a write too), or a read / id-named write: try the next server.
                    Err(e) if more && (resend || not_reached(&e)) => continue,
                    Err(e) => return Err(transport_error(base, e)),
                    Ok((503, ..)) if more && resend => continue,
                    Ok(answer) => answer,
                };
            if at != first {
                self.current.store(at, Ordering::Relaxed);
            }
            return decode_answer(base, status, list, &bytes);
        }
        Err(Error::Internal("no server URL".into()))
    }

    /// Imports the JSON Lines `body` reads into `namespace` as one streamed request (`POST
    /// /v1/namespaces/{namespace}/import`): the server reads and checks the lines as they
    /// arrive and writes them in batches of `batch` lines, each all or nothing, reading the
    /// next batch while one is written. Sent to the server calls go to now, and not sent again
    /// elsewhere (the body is read once). The call has no time limit as a whole (a large file
    /// takes as long as it takes); the answer, once the body is sent, has `ANSWER_AFTER_BODY`.
    /// A bad line is the server's `invalid_argument` naming it; the batches before it stay
    /// (the error's [`Error::imported`]).
    ///
    /// The request asks the server to say whether it takes the body before any of it is sent
    /// (`Expect: 100-continue`): `body` is not read when the server refuses the request at once
    /// (a key that may not import, a cluster node that takes no streamed body).
    pub fn import_stream(
        &self,
        namespace: &str,
        batch: usize,
        body: &mut dyn std::io::Read,
    ) -> Result<memsilo::transfer::ImportSummary> {
        let base = self.url();
        let ns = percent_encoding::utf8_percent_encode(namespace, routes::SEGMENT);
        let request = ureq::http::Request::builder()
            .method("POST")
            .uri(format!("{base}/v1/namespaces/{ns}/import?page_size={batch}"))
            .header("Authorization", format!("Bearer {}", self.key))
            .header("Accept", "application/json")
            .header("Content-Type", "application/x-ndjson")
            .header("Expect", "100-continue")
            .body(ureq::SendBody::from_reader(body))
            .map_err(|e| transport_error(base, ureq::Error::Http(e)))?;
        let request = self
            .agent
            .configure_request(request)
            .timeout_global(None)
            .timeout_await_100(Some(AWAIT_CONTINUE))
            .timeout_recv_response(Some(ANSWER_AFTER_BODY))
            .build();
        let (status, list, bytes) =
            self.agent.run(request).and_then(read_body).map_err(|e| transport_error(base, e))?;
        let reply = decode_answer(base, status, list, &bytes)?;
        Ok(serde_json::from_value(reply.value)?)
    }

    fn send(
        &self,
        base: &str,
        route: &routes::Route,
        target: &str,
        body: Option<&[u8]>,
    ) -> std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let url = format!("{base}{target}");
        let builder = ureq::http::Request::builder()
            .method(route.method.as_str())
            .uri(&url)
            .header("Authorization", format!("Bearer {}", self.key))
            .header("Accept", "application/json");
        if let Some(bytes) = body {
            let req = builder
                .header("Content-Type", "application/json")
                .body(bytes.to_vec())
                .map_err(ureq::Error::Http)?;
            self.agent.run(req)
        } else {
            self.agent.run(builder.body(()).map_err(ureq::Error::Http)?)
        }
    }
}

/// Whether a call failed before its request reached the server (safe to send elsewhere).
fn not_reached(e: &ureq::Error) -> bool {
    use std::io::ErrorKind;
    match e {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        ureq::Error::Io(io) => io.kind() == ErrorKind::ConnectionRefused,
        ureq::Error::Timeout(t) => {
            matches!(t, ureq::Timeout::Connect | ureq::Timeout::Resolve)
        }
        _ => false,
    }
}

/// `X-Total-Count` and `X-Next-Cursor` of a bare-array list.
type ListHeaders = (Option<u64>, Option<String>);

type Answer = (u16, ListHeaders, Vec<u8>);

/// The status, list headers and body of an answer.
fn read_body(
    mut resp: ureq::http::Response<ureq::Body>,
) -> std::result::Result<Answer, ureq::Error> {
    let status = resp.status().as_u16();
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
    let total_count = header("x-total-count").and_then(|v| v.parse::<u64>().ok());
    let next_cursor = header("x-next-cursor").map(str::to_owned);
    let bytes = resp.body_mut().with_config().limit(MAX_RESPONSE_BYTES).read_to_vec()?;
    Ok((status, (total_count, next_cursor), bytes))
}

fn decode_answer(base: &str, status: u16, list: ListHeaders, bytes: &[u8]) -> Result<Reply> {
    let value: Option<Value> = serde_json::from_slice(bytes).ok();
    match (status, value) {
        (200..=299, Some(value)) => Ok(Reply { value, total_count: list.0, next_cursor: list.1 }),
        (_, Some(body)) if body.get("error").is_some_and(Value::is_string) => {
            Err(memsilo::api::error_from_body(&body))
        }
        _ => Err(Error::Internal(format!(
            "unexpected answer from {} (HTTP {status}): {}",
            base,
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ))),
    }
}

/// `http(s)://HOST[:PORT]` without a trailing slash, or `None`.
fn parse_base(url: &str) -> Option<Arc<str>> {
    let base = url.trim().trim_end_matches('/');
    let host = base.strip_prefix("http://").or_else(|| base.strip_prefix("https://"))?;
    (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| base.into())
}

/// `internal error: cannot reach the memsilo server at <base>: <e>`, with `e` as the cause.
fn transport_error(base: &str, e: ureq::Error) -> Error {
    Error::internal_from(format!("cannot reach the memsilo server at {base}"), e)
}

fn is_loopback(host: &str) -> bool {
    let host = host.split('/').next().unwrap_or("");
    let name = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Backend for Client {
    fn call(&self, op: &str, args: Value) -> Result<Reply> {
        Client::call(self, op, args)
    }

    fn scoped(&self, api_key: &str) -> Result<Box<dyn Backend>> {
        let client = Client {
            bases: self.bases.clone(),
            current: self.current.clone(),
            key: api_key.into(),
            agent: self.agent.clone(),
            streams_imports: self.streams_imports.clone(),
        };
        client.call("whoami", Value::Null)?;
        Ok(Box::new(client))
    }

    /// The text streamed to the server as one request body while it is fed ([`Client::
    /// import_stream`] on a thread of its own), so the server imports it as `memsilo import
    /// --url` does. Where the server takes no streamed body (a cluster node), each batch is
    /// one `import_namespace` call ([`Importer::by_calls`]): a client's first import finds out
    /// from its own request, which such a server refuses before any of the body is sent.
    fn importer(&self, namespace: &str, batch_size: usize) -> Result<Importer> {
        check_batch_size(batch_size)?;
        if self.streams_imports.get() == Some(&false) {
            return Importer::by_calls(Box::new(self.clone()), namespace, batch_size);
        }
        // A few chunks wait while one is sent: feeding blocks when the server lags.
        let (to_send, chunks) = sync_channel(4);
        let (taken, body_taken) = sync_channel(1);
        let (client, ns) = (self.clone(), namespace.to_owned());
        let mut done = ImportThread::spawn(move || {
            let mut body = Chunks { next: chunks, chunk: Vec::new(), at: 0, taken: Some(taken) };
            client.import_stream(&ns, batch_size, &mut body)
        })?;
        if self.streams_imports.get().is_none() {
            // The body is read once the server takes it; a request answered without it is
            // refused (by a cluster node: its route is not served).
            let streams = match body_taken.recv() {
                Ok(()) => true,
                Err(_) => match done.answer() {
                    Err(Error::InvalidArgument { field, .. }) if field == "route" => false,
                    Err(e) => return Err(e),
                    Ok(_) => {
                        return Err(Error::Internal(
                            "the server answered an import before its body".into(),
                        ))
                    }
                },
            };
            if !*self.streams_imports.get_or_init(|| streams) {
                return Importer::by_calls(Box::new(self.clone()), namespace, batch_size);
            }
        }
        Ok(Importer::new(Streamed { to_send: Some(to_send), partial: Vec::new(), done }))
    }
}

/// How long a streamed import's body goes without a byte before one is sent to keep it alive
/// (see [`Chunks`]): well inside the server's idle limit (its `--request-timeout`, 30 s by
/// default) even when that is set low.
const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// A streamed import's body: the chunks fed, then `None` at its end. A sender dropped before
/// the end (an import abandoned) fails the read, so the server sees a cut body, not a whole one.
///
/// A caller that feeds slowly (reading from a slow source) must not look like a client gone
/// away to the server, which ends a body with no data for its `--request-timeout`. Chunks
/// are whole lines ([`Streamed`] holds a partial line back until its end), so while none
/// comes a space is sent every [`KEEP_ALIVE`]: between lines it is whitespace before the next
/// line's JSON (or, at the end, a blank line), which the import reads past.
struct Chunks {
    next: Receiver<Option<Vec<u8>>>,
    chunk: Vec<u8>,
    at: usize,
    /// Told when the body is first read: the server takes it.
    taken: Option<SyncSender<()>>,
}

impl std::io::Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(taken) = self.taken.take() {
            let _ = taken.send(());
        }
        while self.at == self.chunk.len() {
            match self.next.recv_timeout(KEEP_ALIVE) {
                Ok(Some(chunk)) => (self.chunk, self.at) = (chunk, 0),
                Ok(None) => return Ok(0),
                Err(RecvTimeoutError::Timeout) if !buf.is_empty() => {
                    buf[0] = b' ';
                    return Ok(1);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(std::io::Error::other("the import was abandoned"))
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A streamed import (see [`Client`]'s `importer`).
struct Streamed {
    to_send: Option<SyncSender<Option<Vec<u8>>>>,
    /// The text fed after its last line break: a line sent once it is whole (see [`Chunks`]).
    partial: Vec<u8>,
    done: ImportThread,
}

impl Streamed {
    /// Sends `text` (whole lines) on, or the end of the body (`None`).
    fn send(&mut self, text: Option<Vec<u8>>) -> Result<()> {
        if self.to_send.as_ref().is_some_and(|to| to.send(text).is_ok()) {
            return Ok(());
        }
        // The request ended before its body: the server's error, or the connection's.
        match self.answer() {
            Err(e) => Err(e),
            Ok(_) => Err(Error::Internal("the server answered before the body ended".into())),
        }
    }

    /// The server's answer (or the transport's error) once the body is ended or cut.
    fn answer(&mut self) -> Result<ImportSummary> {
        self.to_send = None;
        self.done.answer()
    }
}

impl ImportRun for Streamed {
    fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        self.partial.extend_from_slice(chunk);
        let whole = match self.partial.iter().rposition(|b| *b == b'\n') {
            Some(end) => end + 1,
            // A line too long to wait for goes on: the server refuses it, naming it.
            None if self.partial.len() > MAX_LINE_BYTES => self.partial.len(),
            None => return Ok(()),
        };
        let rest = self.partial.split_off(whole);
        let lines = std::mem::replace(&mut self.partial, rest);
        self.send(Some(lines))
    }

    fn finish(mut self: Box<Self>) -> Result<ImportSummary> {
        let last = std::mem::take(&mut self.partial);
        if !last.is_empty() {
            self.send(Some(last))?;
        }
        self.send(None)?;
        self.answer()
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        // Unfinished: the body is cut (the server writes the whole batches it read).
        let _ = self.answer();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback("127.0.0.1:3300"));
        assert!(is_loopback("localhost:1"));
        assert!(is_loopback("[::1]:3300"));
        assert!(!is_loopback("example.com:80"));
    }

    #[test]
    fn an_unreachable_server_is_internal_with_a_clear_message() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = Client::connect(&format!("http://{addr}"), "msk_x").unwrap_err();
        assert_eq!(err.code(), memsilo::ErrorCode::Internal);
        assert!(err.to_string().contains("cannot reach the memsilo server"), "{err}");
        // The connection failure is the cause, in its own words, not only in the message.
        let causes = err.causes();
        assert!(
            causes.first().is_some_and(|c| err.to_string().ends_with(c.as_str())),
            "{causes:?}"
        );
        assert!(causes.iter().any(|c| c.contains("refused")), "{causes:?}");
    }

    #[test]
    fn bad_urls_are_invalid_arguments() {
        let err = Client::connect("localhost:3300", "k").unwrap_err();
        assert_eq!(err.code(), memsilo::ErrorCode::InvalidArgument);
    }
}
