//! A million namespaces on one instance (issue 19), against the real `memsilo serve` binary
//! on loopback (fsync on, data directory on disk unless `TMPDIR`/`BENCH_DATA` say otherwise):
//!
//! 1. creates `BENCH_NAMESPACES` (default 1,000,000) namespaces with `POST /v1/namespaces`
//!    from `BENCH_CLIENTS` (default 64) keep-alive clients, printing the rate as it goes,
//!    with the server's CPU time beside the wall time;
//! 2. bytes on disk per namespace;
//! 3. listing pages (`GET /v1/namespaces?offset=&limit=100`) at the start, middle and end,
//!    and the page after each by its `X-Next-Cursor`;
//! 4. a restart: from spawning `memsilo serve` to its first answer on `/healthz`;
//! 5. the first recall of a cold namespace after the restart, then a warm one;
//! 6. the server's resident memory and open file descriptors after the restart and after
//!    recalling 1,000 namespaces.
//!
//! Run with `make bench-namespaces N=1000000` (N=20000 for a quick look).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;
use support::{agent, cpu_secs};

const ADMIN: &str = "bench-admin-key-0123456789";
const MEMSILO: &str = env!("CARGO_BIN_EXE_memsilo");

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            // Bytes allocated (LMDB files are sparse).
            Ok(m) => std::os::unix::fs::MetadataExt::blocks(&m) * 512,
            Err(_) => 0,
        })
        .sum()
}

struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Spawns `memsilo serve` on `data` and waits for `/healthz`; returns it and how long
    /// that took.
    fn start(data: &Path) -> (Server, Duration) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let started = Instant::now();
        let child = Command::new(MEMSILO)
            .args(["serve", "--data"])
            .arg(data)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--embedder", "hash"])
            .args(["--log-level", "warn"])
            .env("MEMSILO_ADMIN_KEY", ADMIN)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("memsilo serve starts");
        let url = format!("http://127.0.0.1:{port}");
        let agent = agent();
        loop {
            if agent.get(format!("{url}/healthz")).call().is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(600), "server did not start");
            std::thread::sleep(Duration::from_millis(2));
        }
        (Server { child, url }, started.elapsed())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(mut self) {
        // SIGTERM: a clean stop.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Status and JSON body of a request (with `X-Total-Count` and `X-Next-Cursor`, if the answer
/// has them, under `"total_count"` and `"next_cursor"` of an object wrapping a bare array).
fn send(agent: &ureq::Agent, method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Authorization", format!("Bearer {ADMIN}"))
        .header("Content-Type", "application/json");
    let resp = match body {
        Some(b) => agent.run(req.body(b.to_string().into_bytes()).unwrap()),
        None => agent.run(req.body(Vec::new()).unwrap()),
    };
    let mut resp = resp.expect("request sent");
    let status = resp.status().as_u16();
    let total =
        resp.headers().get("x-total-count").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let cursor =
        resp.headers().get("x-next-cursor").and_then(|v| Some(v.to_str().ok()?.to_owned()));
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match total {
        Some(t) => (status, json!({ "items": value, "total_count": t, "next_cursor": cursor })),
        None => (status, value),
    }
}

fn name(i: usize) -> String {
    format!("ns-{i:07}")
}

/// Creates namespaces `0..n` from `clients` threads, printing progress every tenth.
fn create(server: &Server, n: usize, clients: usize) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    let cpu0 = cpu_secs(server.pid());
    let step = (n / 10).max(1);
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                let agent = agent();
                let url = format!("{}/v1/namespaces", server.url);
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let (status, body) =
                        send(&agent, "POST", &url, Some(&json!({ "name": name(i) })));
                    assert_eq!(status, 201, "creating {}: {body}", name(i));
                    let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if d.is_multiple_of(step) {
                        let wall = started.elapsed().as_secs_f64();
                        println!(
                            "  {d:>9} created  {wall:7.1} s  {:8.0}/s  server CPU {:7.1} s",
                            d as f64 / wall,
                            cpu_secs(server.pid()) - cpu0
                        );
                    }
                }
            });
        }
    });
    let wall = started.elapsed().as_secs_f64();
    println!(
        "created {n} namespaces with {clients} clients in {wall:.1} s: {:.0}/s (server CPU {:.1} s)",
        n as f64 / wall,
        cpu_secs(server.pid()) - cpu0
    );
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`: nothing to list
    }
    let n = env_usize("BENCH_NAMESPACES", 1_000_000);
    let clients = env_usize("BENCH_CLIENTS", 64);
    let tmp = tempfile::tempdir().unwrap();
    let data: PathBuf =
        std::env::var("BENCH_DATA").map_or_else(|_| tmp.path().join("data"), PathBuf::from);
    println!(
        "memsilo namespaces bench: {n} namespaces, {clients} clients, data in {}",
        data.display()
    );
    let before = dir_bytes(&data);
    let (server, _) = Server::start(&data);
    let empty = dir_bytes(&data);
    create(&server, n, clients);
    let agent = agent();
    // Three namespaces get a memory each, to be recalled cold after the restart.
    let probes = [name(0), name(n / 2), name(n - 1)];
    for p in &probes {
        let body = json!({ "namespace": p, "content": format!("probe memory of {p}") });
        let (status, v) =
            send(&agent, "POST", &format!("{}/v1/memory/store", server.url), Some(&body));
        assert!(status < 300, "{v}");
    }
    for offset in [0, n / 2, n.saturating_sub(100)] {
        let url = format!("{}/v1/namespaces?offset={offset}&limit=100", server.url);
        let ((status, v), took) = timed(|| send(&agent, "GET", &url, None));
        assert_eq!(status, 200, "{v}");
        let items = v["items"].as_array().map_or(0, Vec::len);
        println!(
            "list page offset {offset:>9}: {items} items of {} in {:.1} ms",
            v["total_count"],
            ms(took)
        );
        // The page after it, by the cursor the offset page answered.
        if let Some(cursor) = v["next_cursor"].as_str() {
            let url = format!("{}/v1/namespaces?cursor={cursor}&limit=100", server.url);
            let ((status, v), took) = timed(|| send(&agent, "GET", &url, None));
            assert_eq!(status, 200, "{v}");
            let items = v["items"].as_array().map_or(0, Vec::len);
            println!(
                "list page after it by cursor: {items} items in {:.1} ms (next cursor: {})",
                ms(took),
                v["next_cursor"].is_string()
            );
        }
    }
    let (cpu_total, rss, fds) =
        (cpu_secs(server.pid()), rss_mb(server.pid()), open_fds(server.pid()));
    server.stop();
    let used = dir_bytes(&data) - empty;
    println!(
        "disk: {:.1} MB for {n} namespaces ({:.0} bytes each; empty instance {:.1} MB); before the \
         restart: RSS {rss:.0} MB, {fds} fds, server CPU {cpu_total:.1} s",
        used as f64 / 1e6,
        used as f64 / n as f64,
        (empty - before) as f64 / 1e6,
    );

    let (server, startup) = Server::start(&data);
    println!(
        "restart: memsilo serve answered /healthz {:.0} ms after spawn; RSS {:.0} MB, {} fds",
        ms(startup),
        rss_mb(server.pid()),
        open_fds(server.pid())
    );
    let recall = |ns: &str| {
        let body =
            json!({ "namespace": ns, "query": format!("probe memory of {ns}"), "top_k": 10 });
        let ((status, v), took) = timed(|| {
            send(&agent, "POST", &format!("{}/v1/memory/recall", server.url), Some(&body))
        });
        assert_eq!(status, 200, "{v}");
        (v, took)
    };
    for p in &probes {
        let (v, cold) = recall(p);
        let (_, warm) = recall(p);
        let hits = v.as_array().map_or(0, Vec::len);
        println!(
            "recall {p}: first (cold) {:.2} ms, then {:.2} ms, {hits} hit(s)",
            ms(cold),
            ms(warm)
        );
    }
    let touched = Instant::now();
    for i in 0..1000 {
        recall(&name(i * (n / 1000).max(1) % n));
    }
    println!(
        "1,000 namespaces recalled in {:.2} s; RSS {:.0} MB, {} fds, server CPU since start {:.2} s",
        touched.elapsed().as_secs_f64(),
        rss_mb(server.pid()),
        open_fds(server.pid()),
        cpu_secs(server.pid())
    );
    server.stop();
}
