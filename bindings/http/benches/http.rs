//! Loopback throughput and latency of the HTTP server: store and recall through the remote
//! client from several threads, and the per-request cost of authentication plus routing.
//! Bounded: a few thousand requests, a few seconds. Run with `make bench-http`.

use std::time::{Duration, Instant};

use memsilo::{Engine, Options};
use memsilo_http::{serve, Client, ServeOptions};
use serde_json::json;

const ADMIN: &str = "bench-admin-key-0123456789";
const THREADS: usize = 4;
const PER_THREAD: usize = 250;
const PRELOAD: usize = 2_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, wall: Duration, mut lat: Vec<Duration>) {
    lat.sort();
    println!(
        "{name:<28} {:>8.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} requests, {THREADS} threads)",
        lat.len() as f64 / wall.as_secs_f64(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.len(),
    );
}

/// Runs `op` `PER_THREAD` times on each of `THREADS` threads; returns wall time and latencies.
fn load(client: &Client, op: impl Fn(&Client, usize) + Sync) -> (Duration, Vec<Duration>) {
    let started = Instant::now();
    let lat = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (client, op) = (client.clone(), &op);
                s.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| {
                            let t0 = Instant::now();
                            op(&client, t * PER_THREAD + i);
                            t0.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    (started.elapsed(), lat)
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

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), Options::default()).unwrap();
    engine.set_admin_key(ADMIN).unwrap();
    let server = serve(
        engine.clone(),
        ServeOptions { listen: "127.0.0.1:0".into(), ..ServeOptions::default() },
    )
    .unwrap();
    let admin = Client::connect(&server.url(), ADMIN).unwrap();
    admin.call("create_namespace", json!({"name": "bench"})).unwrap();
    let key = admin
        .call(
            "create_key",
            json!({"name": "b", "namespaces": [{"namespace": "bench", "access": "write"}]}),
        )
        .unwrap()
        .value["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = Client::connect(&server.url(), &key).unwrap();
    for chunk in 0..PRELOAD / 500 {
        let memories: Vec<_> = (0..500)
            .map(|i| json!({"content": format!("preloaded memory {} about topic {}", chunk * 500 + i, i % 37)}))
            .collect();
        client.call("store_memories", json!({"namespace": "bench", "memories": memories})).unwrap();
    }
    println!("memsilo-http loopback bench ({PRELOAD} memories preloaded)");

    let (wall, lat) = load(&client, |c, i| {
        c.call(
            "store_memory",
            json!({"namespace": "bench", "content": format!("memory {i} about topic {}", i % 37)}),
        )
        .unwrap();
    });
    report("POST /v1/memory/store", wall, lat);

    let (wall, lat) = load(&client, |c, i| {
        c.call(
            "recall",
            json!({"namespace": "bench", "query": format!("topic {}", i % 37), "top_k": 10}),
        )
        .unwrap();
    });
    report("POST /v1/memory/recall", wall, lat);

    // Overhead: healthz (no key, no core) vs whoami (key check, route, blocking pool, core).
    let agent = ureq::Agent::new_with_config(ureq::Agent::config_builder().proxy(None).build());
    let health_url = format!("{}/healthz", server.url());
    let health = serial_median(2_000, || {
        agent.get(&health_url).call().unwrap().body_mut().read_to_vec().unwrap();
    });
    let remote = serial_median(2_000, || {
        client.call("whoami", json!({})).unwrap();
    });
    let handle = engine.scoped(&key).unwrap();
    let local = serial_median(20_000, || {
        handle.call("whoami", json!({})).unwrap();
    });
    println!(
        "serial median: GET /healthz {:.1} µs, GET /v1/whoami {:.1} µs, in-process whoami {:.2} µs",
        health.as_secs_f64() * 1e6,
        remote.as_secs_f64() * 1e6,
        local.as_secs_f64() * 1e6
    );
    println!(
        "auth + routing + blocking-pool hop per request ≈ {:.1} µs (whoami over HTTP − healthz − in-process whoami)",
        (remote.as_secs_f64() - health.as_secs_f64() - local.as_secs_f64()) * 1e6
    );
    server.shutdown().unwrap();
}
