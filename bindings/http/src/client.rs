//! The blocking remote client: the same operations as an in-process `Handle`, sent over
//! HTTP with the route table, with errors mapped back to the same codes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use memsilo::api::{Backend, Reply, Request};
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
/// The URL may list several servers of one cluster, comma-separated
/// (`http://a:3300,http://b:3300`): a call goes to the one that answered last, and moves on to
/// the next only when a server cannot be reached at all (a refused or failed connection, so the
/// request was not sent and nothing can have been applied twice).
#[derive(Clone)]
pub struct Client {
    bases: Arc<[Arc<str>]>,
    current: Arc<AtomicUsize>,
    key: Arc<str>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never printed.
        f.debug_struct("Client").field("url", &self.url()).finish_non_exhaustive()
    }
}

/// Largest answer read (a recall of 1000 hits with metadata fits easily).
const MAX_RESPONSE_BYTES: u64 = 256 << 20;

impl Client {
    /// Connects to the server at `url` (e.g. `http://localhost:3300`) as `api_key`, checking
    /// the key at once: an unknown or revoked key is `unauthorized`, an unreachable server
    /// is `internal` with a message saying so.
    pub fn connect(url: &str, api_key: &str) -> Result<Client> {
        Client::connect_with(url, api_key, &ClientOptions::default())
    }

    /// [`Client::connect`] with options.
    pub fn connect_with(url: &str, api_key: &str, options: &ClientOptions) -> Result<Client> {
        let mut bases: Vec<Arc<str>> = Vec::new();
        let mut all_loopback = true;
        for base in url.split(',').map(|b| b.trim().trim_end_matches('/')) {
            let host = base.split("://").nth(1).unwrap_or("");
            if !(base.starts_with("http://") || base.starts_with("https://")) || host.is_empty() {
                return Err(Error::invalid(
                    "url",
                    format!("expected http://HOST:PORT (or several, comma-separated), got {url:?}"),
                ));
            }
            all_loopback &= is_loopback(host);
            bases.push(base.into());
        }
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
        let client =
            Client { bases: bases.into(), current: Arc::default(), key: api_key.into(), agent };
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
        Request::parse(op, args)?;
        let (route, encoded) =
            encoded.ok_or_else(|| Error::invalid("op", format!("unknown operation {op:?}")))?;
        let encoded = encoded?;
        let mut target = encoded.path.clone();
        if !encoded.query.is_empty() {
            target.push('?');
            target.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(encoded.query.iter())
                    .finish(),
            );
        }
        let body = encoded.body.as_ref().map(serde_json::to_vec).transpose()?;
        let first = self.current.load(Ordering::Relaxed);
        let n = self.bases.len();
        for i in 0..n {
            let at = (first + i) % n;
            match self.send(&self.bases[at], route, &target, body.as_deref()) {
                Err(e) if i + 1 < n && not_reached(&e) => {}
                Err(e) => return Err(transport_error(&self.bases[at], &e)),
                Ok(resp) => {
                    if at != first {
                        self.current.store(at, Ordering::Relaxed);
                    }
                    return read_answer(&self.bases[at], resp);
                }
            }
        }
        Err(Error::Internal("no server URL".into()))
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

fn read_answer(base: &str, mut resp: ureq::http::Response<ureq::Body>) -> Result<Reply> {
    let status = resp.status().as_u16();
    let total_count = resp
        .headers()
        .get("x-total-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE_BYTES)
        .read_to_vec()
        .map_err(|e| transport_error(base, &e))?;
    let value: Option<Value> = serde_json::from_slice(&bytes).ok();
    match (status, value) {
        (200..=299, Some(value)) => Ok(Reply { value, total_count }),
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

fn transport_error(base: &str, e: &ureq::Error) -> Error {
    Error::Internal(format!("cannot reach the memsilo server at {base}: {e}"))
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
        };
        client.call("whoami", Value::Null)?;
        Ok(Box::new(client))
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
    }

    #[test]
    fn several_urls_skip_the_ones_that_cannot_be_reached() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap();
        drop(dead);
        let dir = tempfile::tempdir().unwrap();
        let engine = memsilo::Engine::open(dir.path(), memsilo::Options::default()).unwrap();
        engine.set_admin_key("several-urls-admin-key").unwrap();
        let server = crate::serve(
            engine,
            crate::ServeOptions { listen: "127.0.0.1:0".into(), ..Default::default() },
        )
        .unwrap();
        let live = format!("http://{}", server.addr());
        let client =
            Client::connect(&format!("http://{dead_addr}, {live}"), "several-urls-admin-key")
                .unwrap();
        assert_eq!(client.url(), live);
        assert_eq!(client.call("whoami", Value::Null).unwrap().value["principal"], "root");
        let err = Client::connect(&format!("http://{dead_addr},localhost:1"), "k").unwrap_err();
        assert_eq!(err.code(), memsilo::ErrorCode::InvalidArgument);
    }

    #[test]
    fn bad_urls_are_invalid_arguments() {
        let err = Client::connect("localhost:3300", "k").unwrap_err();
        assert_eq!(err.code(), memsilo::ErrorCode::InvalidArgument);
    }
}
