//! A minimal HTTP/1.1 client over a raw socket (so a test can send anything: bad UTF-8,
//! wrong content types, oversized bodies), and helpers to run `memsilo serve` in-process
//! or as a real child process. Every address is 127.0.0.1.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use memsilo::Engine;
use serde_json::Value;

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends one request on a new connection and reads the whole answer.
pub fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    assert!(addr.ip().is_loopback(), "tests only talk to 127.0.0.1");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    // A server may answer (413) and close before reading a large body: keep what it said.
    let _ = stream.write_all(body);
    read_response(stream)
}

fn read_response(stream: TcpStream) -> std::io::Result<Response> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad status line {line:?}"))
    })?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Response { status, headers, body })
}

/// Sends an operation the way the remote client does (same route table), as `key`.
/// `None` if the arguments cannot be put on the wire (e.g. a path parameter is missing).
pub fn call(addr: SocketAddr, key: &str, op: &str, args: &Value) -> Option<Response> {
    let route = memsilo_http::routes::route_for(op)?;
    let enc = route.encode(args).ok()?;
    let mut target = enc.path.clone();
    if !enc.query.is_empty() {
        let q: String = form_encode(&enc.query);
        target = format!("{target}?{q}");
    }
    let auth = format!("Bearer {key}");
    let body = enc.body.as_ref().map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
    let mut headers = vec![("Authorization", auth.as_str())];
    if enc.body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    Some(send(addr, route.method.as_str(), &target, &headers, &body).expect("request failed"))
}

fn form_encode(pairs: &[(String, String)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// An in-process server on 127.0.0.1 (a free port) over `engine`.
pub fn serve(engine: &Engine) -> memsilo_http::Server {
    let options = memsilo_http::ServeOptions {
        listen: "127.0.0.1:0".into(),
        ..memsilo_http::ServeOptions::default()
    };
    memsilo_http::serve(engine.clone(), options).expect("server starts")
}

/// The admin key the tests set on their engines.
pub const ADMIN_KEY: &str = "reliability-admin-key-0123456789";

/// `memsilo serve` as a real child process, with everything it prints captured.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ServerProcess {
    /// Starts the server on `data` (a free port on 127.0.0.1) and waits for its listening
    /// line. `admin_key`: `None` lets it generate one.
    #[allow(clippy::zombie_processes)] // `stop` waits for it
    pub fn start(data: &std::path::Path, admin_key: Option<&str>, extra: &[&str]) -> ServerProcess {
        use std::process::{Command, Stdio};
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_memsilo_serve"));
        cmd.args(["serve", "--data"]).arg(data).args(["--listen", "127.0.0.1:0"]).args(extra);
        cmd.env_remove("MEMSILO_ADMIN_KEY").env_remove("MEMSILO_DATA").env_remove("MEMSILO_LISTEN");
        if let Some(k) = admin_key {
            cmd.env("MEMSILO_ADMIN_KEY", k);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("memsilo_serve starts");
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for stream in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
            let output = output.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = writeln!(output.lock().unwrap(), "{line}");
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("server did not start: {}", output.lock().unwrap()));
            if let Some(url) = line.split("listening on http://").nth(1) {
                let addr = url.trim().parse().expect("listening address");
                return ServerProcess { child, addr, output };
            }
        }
    }

    /// SIGTERM, then waits (SIGKILL after 20 s).
    pub fn stop(mut self) -> String {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child process by its pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        self.output.lock().unwrap().clone()
    }
}
