//! The blocking remote client: the same operations as an in-process `Handle`, sent over
//! HTTP with the route table, with errors mapped back to the same codes.

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
#[derive(Clone)]
pub struct Client {
    base: Arc<str>,
    key: Arc<str>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never printed.
        f.debug_struct("Client").field("url", &self.base).finish_non_exhaustive()
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
        let base = url.trim().trim_end_matches('/');
        let host = base.split("://").nth(1).unwrap_or("");
        if !(base.starts_with("http://") || base.starts_with("https://")) || host.is_empty() {
            return Err(Error::invalid("url", format!("expected http://HOST:PORT, got {url:?}")));
        }
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_global(Some(options.timeout))
            .max_idle_connections_per_host(options.pool_size)
            .max_redirects(0)
            .user_agent(concat!("memsilo-http/", env!("CARGO_PKG_VERSION")));
        if is_loopback(host) {
            // A proxy from the environment must not intercept calls to this machine.
            config = config.proxy(None);
        }
        let agent = ureq::Agent::new_with_config(config.build());
        let client = Client { base: base.into(), key: api_key.into(), agent };
        client.call("whoami", Value::Null)?;
        Ok(client)
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Runs one operation on the server (what [`Backend::call`] does).
    pub fn call(&self, op: &str, args: Value) -> Result<Reply> {
        let encoded = routes::route_for(op).map(|route| (route, route.encode(&args)));
        // Decoding here too gives the same `invalid_argument` as in-process before any I/O.
        Request::parse(op, args)?;
        let (route, encoded) =
            encoded.ok_or_else(|| Error::invalid("op", format!("unknown operation {op:?}")))?;
        let encoded = encoded?;
        let mut url = format!("{}{}", self.base, encoded.path);
        if !encoded.query.is_empty() {
            url.push('?');
            url.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(encoded.query.iter())
                    .finish(),
            );
        }
        let builder = ureq::http::Request::builder()
            .method(route.method.as_str())
            .uri(&url)
            .header("Authorization", format!("Bearer {}", self.key))
            .header("Accept", "application/json");
        let sent = if let Some(body) = &encoded.body {
            let bytes = serde_json::to_vec(body)?;
            let req = builder
                .header("Content-Type", "application/json")
                .body(bytes)
                .map_err(|e| Error::invalid("url", e.to_string()))?;
            self.agent.run(req)
        } else {
            let req = builder.body(()).map_err(|e| Error::invalid("url", e.to_string()))?;
            self.agent.run(req)
        };
        let mut resp = sent.map_err(|e| self.transport_error(&e))?;
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
            .map_err(|e| self.transport_error(&e))?;
        let value: Option<Value> = serde_json::from_slice(&bytes).ok();
        match (status, value) {
            (200..=299, Some(value)) => Ok(Reply { value, total_count }),
            (_, Some(body)) if body.get("error").is_some_and(Value::is_string) => {
                Err(memsilo::api::error_from_body(&body))
            }
            _ => Err(Error::Internal(format!(
                "unexpected answer from {} (HTTP {status}): {}",
                self.base,
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))),
        }
    }

    fn transport_error(&self, e: &ureq::Error) -> Error {
        Error::Internal(format!("cannot reach the memsilo server at {}: {e}", self.base))
    }
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
        let client =
            Client { base: self.base.clone(), key: api_key.into(), agent: self.agent.clone() };
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
    fn bad_urls_are_invalid_arguments() {
        let err = Client::connect("localhost:3300", "k").unwrap_err();
        assert_eq!(err.code(), memsilo::ErrorCode::InvalidArgument);
    }
}
