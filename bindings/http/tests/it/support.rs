//! A real server on a free loopback port over a fresh data directory, and a small curl-like
//! helper.

use std::time::Duration;

use memsilo::{Engine, Options};
use memsilo_http::{serve, ServeOptions, Server};
use serde_json::Value;

pub const ADMIN: &str = "test-admin-key-0123456789";

pub struct TestServer {
    pub url: String,
    _server: Server,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(ServeOptions::default())
    }

    #[allow(clippy::needless_pass_by_value)] // reads like a constructor: start_with(ServeOptions {..})
    pub fn start_with(options: ServeOptions) -> TestServer {
        TestServer::start_engine(Options::default(), options)
    }

    /// A server over an engine opened with `engine_options`.
    #[allow(clippy::needless_pass_by_value)]
    pub fn start_engine(engine_options: Options, options: ServeOptions) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), engine_options).unwrap();
        engine.set_admin_key(ADMIN).unwrap();
        let server =
            serve(engine.clone(), ServeOptions { listen: "127.0.0.1:0".into(), ..options })
                .unwrap();
        let url = server.url();
        TestServer { url, _server: server, _dir: dir }
    }

    /// A request as the admin.
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.call(method, path, Some(ADMIN), body)
    }

    /// A request with `key` (or none).
    pub fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> Resp {
        let raw = body.map(|b| b.to_string());
        self.raw(method, path, key, raw.as_deref())
    }

    /// A request with a raw body.
    pub fn raw(&self, method: &str, path: &str, key: Option<&str>, body: Option<&str>) -> Resp {
        self.with_headers(method, path, key, body, &[])
    }

    /// A request with a raw body and extra headers.
    pub fn with_headers(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.with_timeout(method, path, key, body, headers, Duration::from_secs(60))
    }

    /// [`TestServer::with_headers`] with its own time limit, for a request known to take long
    /// in a debug build on a loaded machine (a large import).
    pub fn with_timeout(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Resp {
        let agent = agent_with(timeout);
        let mut req =
            ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.url));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(k) = key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let mut resp = match body {
            Some(b) => agent.run(
                req.header("Content-Type", "application/json").body(b.as_bytes().to_vec()).unwrap(),
            ),
            None => agent.run(req.body(()).unwrap()),
        }
        .unwrap();
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let text = resp.body_mut().with_config().limit(1 << 30).read_to_string().unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, headers, text, json }
    }
}

pub fn agent() -> ureq::Agent {
    agent_with(Duration::from_secs(60))
}

fn agent_with(timeout: Duration) -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(timeout))
            .build(),
    )
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        &self.json
    }

    /// Asserts an API.md error body with `status` and `code`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        assert_eq!(self.header("content-type"), Some("application/json"), "{}", self.text);
        assert_eq!(self.json["error"], code, "{}", self.text);
        assert_eq!(self.json["code"], status, "{}", self.text);
        assert!(self.json["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", self.text);
        &self.json
    }

    /// Asserts an error in Dakera's shape: `code` is Dakera's `ErrorCode`, `error` and
    /// `details` the message, `memsilo_error` our code. Returns the body.
    pub fn expect_dakera_error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text);
        assert_eq!(self.header("content-type"), Some("application/json"), "{}", self.text);
        assert_eq!(self.json["code"], code, "{}", self.text);
        let message = self.json["error"].as_str().unwrap_or("");
        assert!(!message.is_empty(), "{}", self.text);
        assert_eq!(self.json["details"], message, "{}", self.text);
        assert!(self.json["memsilo_error"].is_string(), "{}", self.text);
        assert!(self.json.get("message").is_none(), "{}", self.text);
        &self.json
    }
}

/// Creates a namespace-scoped key as admin; returns the key text.
pub fn key_for(s: &TestServer, namespaces: &[(&str, &str)]) -> String {
    let grants: Vec<Value> = namespaces
        .iter()
        .map(|(ns, access)| serde_json::json!({"namespace": ns, "access": access}))
        .collect();
    let r =
        s.admin("POST", "/v1/keys", Some(serde_json::json!({"name": "k", "namespaces": grants})));
    r.expect(201)["key"].as_str().unwrap().to_owned()
}
