//! Loopback throughput and latency of the HTTP server, measured with keep-alive HTTP clients
//! on 1, 16 and 64 threads in this process (the load generator shares the machine's cores
//! with the server; state the machine's load next to the numbers):
//!
//! - recall over 10,000 memories (`POST /v1/memory/recall`, top 10, hashing embedder; hybrid,
//!   then vector only);
//! - namespace creation with 16 clients (`POST /v1/namespaces`, admin key);
//! - the per-request cost of authentication plus routing (serial medians);
//! - single-memory stores (`POST /v1/memory/store`), each answered after its fsync'd commit;
//! - stores with 1% malformed requests mixed in (only those may fail).
//!
//! Run with `make bench-http`. `BENCH_SECS` (default 3) is the length of each timed phase,
//! `BENCH_NAMESPACES` (default 2000) the namespaces created, `BENCH_PHASES` (default all:
//! `recall,namespaces,overhead,store,malformed`; `vector` for the vector-only row) the phases
//! run. `TMPDIR` places the data directory (on tmpfs, fsync costs nothing: the code's own limit).

use std::sync::Arc;
use std::time::{Duration, Instant};

use memsilo::{Engine, HashEmbedder, Options};
use memsilo_http::{serve, Client, ServeOptions};
use serde_json::json;

const ADMIN: &str = "bench-admin-key-0123456789";
const RECALL_MEMORIES: usize = 10_000;
const LEVELS: [usize; 3] = [1, 16, 64];

fn env_or(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One request to send: method, path, JSON body, and whether it is meant to fail.
struct Req {
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
    malformed: bool,
}

fn post(path: &str, body: &serde_json::Value) -> Req {
    Req {
        method: "POST",
        path: path.into(),
        body: Some(body.to_string().into_bytes()),
        malformed: false,
    }
}

#[derive(Default)]
struct Tally {
    lat: Vec<Duration>,
    /// Well-formed requests that did not get a 2xx.
    failed: usize,
    /// Malformed requests answered 400.
    refused: usize,
    /// Malformed requests answered otherwise.
    malformed_other: usize,
}

/// Sends requests from `clients` threads, each with its own keep-alive connection, until
/// `limit` (a duration, or a number of requests in all) is reached.
fn load(
    url: &str,
    key: &str,
    clients: usize,
    limit: Limit,
    make: &(dyn Fn(usize, usize) -> Req + Sync),
) -> (Duration, Tally) {
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|t| {
                let next = &next;
                s.spawn(move || {
                    let agent = ureq::Agent::new_with_config(
                        ureq::Agent::config_builder()
                            .proxy(None)
                            .http_status_as_error(false)
                            .max_idle_connections_per_host(1)
                            .build(),
                    );
                    let auth = format!("Bearer {key}");
                    let mut tally = Tally::default();
                    let mut i = 0;
                    loop {
                        let n = match limit {
                            Limit::Time(d) if started.elapsed() >= d => break,
                            Limit::Time(_) => i,
                            Limit::Count(max) => {
                                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                if n >= max {
                                    break;
                                }
                                n
                            }
                        };
                        let req = make(t, n);
                        let uri = format!("{url}{}", req.path);
                        let builder = ureq::http::Request::builder()
                            .method(req.method)
                            .uri(&uri)
                            .header("Authorization", &auth);
                        let t0 = Instant::now();
                        let resp = match req.body {
                            Some(b) => agent.run(
                                builder.header("Content-Type", "application/json").body(b).unwrap(),
                            ),
                            None => agent.run(builder.body(()).unwrap()),
                        };
                        let status = match resp {
                            Ok(mut r) => {
                                let _ = r.body_mut().read_to_vec();
                                r.status().as_u16()
                            }
                            Err(_) => 0,
                        };
                        tally.lat.push(t0.elapsed());
                        match (req.malformed, status) {
                            (false, 200..=299) => {}
                            (false, _) => tally.failed += 1,
                            (true, 400) => tally.refused += 1,
                            (true, _) => tally.malformed_other += 1,
                        }
                        i += 1;
                    }
                    tally
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = started.elapsed();
    let mut all = Tally::default();
    for t in tallies {
        all.lat.extend(t.lat);
        all.failed += t.failed;
        all.refused += t.refused;
        all.malformed_other += t.malformed_other;
    }
    all.lat.sort();
    (wall, all)
}

#[derive(Clone, Copy)]
enum Limit {
    Time(Duration),
    Count(usize),
}

fn report(name: &str, clients: usize, wall: Duration, t: &Tally) {
    println!(
        "{name:<34} {clients:>3} clients {:>8.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} requests, {} failed)",
        t.lat.len() as f64 / wall.as_secs_f64(),
        percentile(&t.lat, 0.50).as_secs_f64() * 1e3,
        percentile(&t.lat, 0.99).as_secs_f64() * 1e3,
        t.lat.len(),
        t.failed,
    );
}

fn serial_median(n: usize, mut f: impl FnMut()) -> Duration {
    let mut lat: Vec<Duration> = (0..n)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed()
        })
        .collect();
    lat.sort();
    percentile(&lat, 0.5)
}

/// Serial medians: healthz (no key, no core) vs whoami (key check, route, core).
fn overhead(url: &str, client: &Client, engine: &Engine, key: &str) {
    let agent = ureq::Agent::new_with_config(ureq::Agent::config_builder().proxy(None).build());
    let health_url = format!("{url}/healthz");
    let health = serial_median(2_000, || {
        agent.get(&health_url).call().unwrap().body_mut().read_to_vec().unwrap();
    });
    let whoami_url = format!("{url}/v1/whoami");
    let auth = format!("Bearer {key}");
    let raw = serial_median(2_000, || {
        let mut r = agent.get(&whoami_url).header("Authorization", &auth).call().unwrap();
        r.body_mut().read_to_vec().unwrap();
    });
    let remote = serial_median(2_000, || {
        client.call("whoami", json!({})).unwrap();
    });
    let handle = engine.scoped(key).unwrap();
    let local = serial_median(20_000, || {
        handle.call("whoami", json!({})).unwrap();
    });
    println!(
        "serial median: GET /healthz {:.1} µs, GET /v1/whoami {:.1} µs (remote Client {:.1} µs), in-process whoami {:.2} µs",
        health.as_secs_f64() * 1e6,
        raw.as_secs_f64() * 1e6,
        remote.as_secs_f64() * 1e6,
        local.as_secs_f64() * 1e6
    );
    println!(
        "auth + routing per request ≈ {:.1} µs (GET /v1/whoami − GET /healthz − in-process whoami)",
        (raw.as_secs_f64() - health.as_secs_f64() - local.as_secs_f64()) * 1e6
    );
}

/// Whether phase `name` is to run (`BENCH_PHASES`, comma-separated; default all).
fn phase(name: &str) -> bool {
    std::env::var("BENCH_PHASES").map_or(true, |p| p.split(',').any(|x| x.trim() == name))
}

fn main() {
    let secs = Duration::from_secs_f64(env_or("BENCH_SECS", 3.0));
    let namespaces = env_or("BENCH_NAMESPACES", 2000.0) as usize;
    let dir = tempfile::tempdir().unwrap();
    let options = Options { embedder: Arc::new(HashEmbedder::new(384)), ..Options::default() };
    let engine = Engine::open(dir.path(), options).unwrap();
    engine.set_admin_key(ADMIN).unwrap();
    let server = serve(
        engine.clone(),
        ServeOptions { listen: "127.0.0.1:0".into(), ..ServeOptions::default() },
    )
    .unwrap();
    let url = server.url();
    let admin = Client::connect(&url, ADMIN).unwrap();
    for ns in ["bench", "recall"] {
        admin.call("create_namespace", json!({ "name": ns })).unwrap();
    }
    let grants = json!([{"namespace": "bench", "access": "write"}, {"namespace": "recall", "access": "write"}]);
    let key = admin.call("create_key", json!({"name": "b", "namespaces": grants})).unwrap().value
        ["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = Client::connect(&url, &key).unwrap();
    for chunk in 0..RECALL_MEMORIES / 500 {
        let memories: Vec<_> = (0..500)
            .map(|i| json!({"content": format!("preloaded memory {} about topic {}", chunk * 500 + i, i % 37)}))
            .collect();
        client
            .call("store_memories", json!({"namespace": "recall", "memories": memories}))
            .unwrap();
    }
    println!(
        "memsilo-http loopback bench: {} s per phase, {RECALL_MEMORIES} memories to recall from, {} cores",
        secs.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    // Recall, namespace creation and the serial medians first: the stores below grow a
    // namespace past the approximate index's threshold, whose training in the background
    // then shares the cores with whatever runs next.
    let recall = |_t: usize, i: usize| {
        post(
            "/v1/memory/recall",
            &json!({"namespace": "recall", "query": format!("topic {}", i % 37), "top_k": 10}),
        )
    };
    for clients in LEVELS.into_iter().filter(|_| phase("recall")) {
        let (wall, t) = load(&url, &key, clients, Limit::Time(secs), &recall);
        report("POST /v1/memory/recall (10k)", clients, wall, &t);
    }
    // The same with the vector side only (the default for a text query is hybrid).
    let vector_recall = |_t: usize, i: usize| {
        post(
            "/v1/memory/recall",
            &json!({"namespace": "recall", "query": format!("topic {}", i % 37), "top_k": 10, "mode": "vector"}),
        )
    };
    if phase("recall") || phase("vector") {
        let (wall, t) = load(&url, &key, 64, Limit::Time(secs), &vector_recall);
        report("recall (10k), mode vector", 64, wall, &t);
    }

    // Then what the stores' background work would disturb (see above).
    if phase("namespaces") {
        let create =
            |_t: usize, n: usize| post("/v1/namespaces", &json!({ "name": format!("tenant-{n}") }));
        let (wall, t) = load(&url, ADMIN, 16, Limit::Count(namespaces), &create);
        report("POST /v1/namespaces", 16, wall, &t);
        println!("  {namespaces} namespaces created in {:.2} s", wall.as_secs_f64());
    }

    if phase("overhead") {
        overhead(&url, &client, &engine, &key);
    }

    let store = |t: usize, i: usize| {
        post(
            "/v1/memory/store",
            &json!({"namespace": "bench", "content": format!("memory {t}-{i} about topic {}", i % 37)}),
        )
    };
    for clients in LEVELS.into_iter().filter(|_| phase("store")) {
        let (wall, t) = load(&url, &key, clients, Limit::Time(secs), &store);
        report("POST /v1/memory/store", clients, wall, &t);
    }
    // 1% malformed: an importance out of range, refused with 400 before any write.
    let mixed = |t: usize, i: usize| {
        if (t * 7919 + i) % 100 == 0 {
            let mut r = post(
                "/v1/memory/store",
                &json!({"namespace": "bench", "content": "bad", "importance": 7}),
            );
            r.malformed = true;
            r
        } else {
            store(t, i)
        }
    };
    if phase("malformed") {
        let (wall, t) = load(&url, &key, 64, Limit::Time(secs), &mixed);
        report("store, 1% malformed", 64, wall, &t);
        println!(
            "  malformed: {} refused with 400, {} answered otherwise; well-formed that failed: {}",
            t.refused, t.malformed_other, t.failed
        );
    }

    server.shutdown().unwrap();
}
