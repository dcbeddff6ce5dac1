//! Load and soak on loopback, bounded in time and requests: many tenants and keys issue
//! mixed traffic at a real `memsilo serve` process. Zero cross-tenant results, zero 5xx,
//! the server's heap stays flat, and rate limits hold per tenant (a noisy tenant gets 429s
//! while a quiet one does not).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memsilo_reliability::{seed_from_env, Rng};
use serde_json::{json, Value};

use crate::http::{call, Response, ServerProcess, ADMIN_KEY};

const TENANTS: usize = 6;
const WORKERS: usize = 6;

struct Tenant {
    namespaces: Vec<String>,
    /// One key per namespace, scoped to it.
    keys: Vec<String>,
    marker: String,
}

fn ok(resp: Option<Response>, what: &str) -> Value {
    let resp = resp.unwrap_or_else(|| panic!("{what}: cannot be encoded"));
    assert!(
        (200..300).contains(&resp.status),
        "{what}: HTTP {} {}",
        resp.status,
        String::from_utf8_lossy(&resp.body)
    );
    resp.json()
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    server_errors: Mutex<Vec<String>>,
    leaks: Mutex<Vec<String>>,
    rate_limited: AtomicU64,
}

impl Tally {
    fn note(&self, what: &str, resp: &Response) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if resp.status >= 500 {
            self.server_errors.lock().unwrap().push(format!(
                "{what}: {} {}",
                resp.status,
                String::from_utf8_lossy(&resp.body)
            ));
        }
        if resp.status == 429 {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn status_line(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// (`VmRSS`, `RssAnon`) of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = status_line(&format!("/proc/{pid}/status"));
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

#[allow(clippy::too_many_lines)]
#[test]
fn mixed_multi_tenant_traffic_stays_isolated_error_free_flat_and_rate_limited() {
    let seed = seed_from_env("MEMSILO_LOAD_SEED", 99);
    let secs: u64 =
        std::env::var("MEMSILO_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let max_requests: u64 = 40_000;
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), Some(ADMIN_KEY), &["--log-level", "warn"]);
    let addr = server.addr;
    let mut tenants = Vec::new();
    for t in 0..TENANTS {
        let quotas =
            json!({ "qps_limit": 100_000, "max_connections": 64, "compute_quota_cores": 64 });
        let tenant = ok(
            call(
                addr,
                ADMIN_KEY,
                "create_tenant",
                &json!({ "name": format!("load_tenant_{t}"), "quotas": quotas }),
            ),
            "tenant",
        );
        let tid = tenant["id"].as_str().unwrap().to_owned();
        let marker = format!("MARKER-T{t}-");
        let (mut namespaces, mut keys) = (Vec::new(), Vec::new());
        for n in 0..2 {
            let ns = format!("load-t{t}-n{n}");
            ok(
                call(addr, ADMIN_KEY, "create_namespace", &json!({ "name": ns, "tenant_id": tid })),
                "namespace",
            );
            let memories: Vec<Value> = (0..50).map(|i| json!({ "content": format!("{marker}{n}-{i} shared words roadmap budget launch") })).collect();
            ok(
                call(
                    addr,
                    ADMIN_KEY,
                    "store_memories",
                    &json!({ "namespace": ns, "memories": memories }),
                ),
                "seed",
            );
            let key = ok(
                call(
                    addr,
                    ADMIN_KEY,
                    "create_key",
                    &json!({ "name": ns, "namespaces": [{ "namespace": ns, "access": "write" }] }),
                ),
                "key",
            );
            keys.push(key["key"].as_str().unwrap().to_owned());
            namespaces.push(ns);
        }
        tenants.push(Tenant { namespaces, keys, marker });
    }
    // The noisy and the quiet tenant: 20 and 100 requests per second.
    let mut limited = Vec::new();
    for (name, qps) in [("load_noisy", 20), ("load_quiet", 100)] {
        let tenant = ok(
            call(
                addr,
                ADMIN_KEY,
                "create_tenant",
                &json!({ "name": name, "quotas": { "qps_limit": qps } }),
            ),
            name,
        );
        let tid = tenant["id"].as_str().unwrap();
        let ns = format!("{}-ns", name.replace('_', "-"));
        ok(
            call(addr, ADMIN_KEY, "create_namespace", &json!({ "name": ns, "tenant_id": tid })),
            "namespace",
        );
        let key = ok(
            call(
                addr,
                ADMIN_KEY,
                "create_key",
                &json!({ "name": ns, "namespaces": [{ "namespace": ns, "access": "write" }] }),
            ),
            "key",
        );
        limited.push((ns, key["key"].as_str().unwrap().to_owned()));
    }
    let tenants = Arc::new(tenants);
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let run = |duration: Duration, tally: &Arc<Tally>, seed: u64| {
        let deadline = Instant::now() + duration;
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (tenants, tally, stop) = (tenants.clone(), tally.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng::new(seed ^ (w as u64 + 1));
                    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) && tally.requests.load(Ordering::Relaxed) < max_requests {
                        let t = rng.below(TENANTS);
                        let me = &tenants[t];
                        let n = rng.below(me.namespaces.len());
                        let (ns, key) = (&me.namespaces[n], &me.keys[n]);
                        match rng.below(10) {
                            0..=2 => {
                                let content = format!("{}{n}-w{w}-{} fresh words", me.marker, rng.next_u64());
                                let r = call(addr, key, "store_memory", &json!({ "namespace": ns, "content": content, "tags": ["load"] })).unwrap();
                                tally.note("store", &r);
                            }
                            3..=6 => {
                                let q = ["roadmap", "budget", "launch", "fresh words"][rng.below(4)];
                                let r = call(addr, key, "recall", &json!({ "namespace": ns, "query": q, "top_k": 20 })).unwrap();
                                tally.note("recall", &r);
                                for hit in r.json().as_array().into_iter().flatten() {
                                    let content = hit["content"].as_str().unwrap_or_default();
                                    if !content.starts_with(&me.marker) {
                                        tally.leaks.lock().unwrap().push(format!("tenant {t} recalled {content:?}"));
                                    }
                                }
                            }
                            7 => {
                                // Another tenant's namespace: always refused.
                                let other = &tenants[(t + 1 + rng.below(TENANTS - 1)) % TENANTS];
                                let r = call(addr, key, "recall", &json!({ "namespace": other.namespaces[0], "query": "roadmap" })).unwrap();
                                tally.note("cross recall", &r);
                                if r.status != 403 {
                                    tally.leaks.lock().unwrap().push(format!("cross-tenant recall answered {}: {}", r.status, String::from_utf8_lossy(&r.body)));
                                }
                            }
                            8 => {
                                let r = call(addr, key, "list_namespaces", &json!({})).unwrap();
                                tally.note("list", &r);
                                let text = String::from_utf8_lossy(&r.body);
                                if (0..TENANTS).any(|o| o != t && text.contains(&format!("load-t{o}-"))) {
                                    tally.leaks.lock().unwrap().push(format!("tenant {t} listed another tenant's namespace: {text}"));
                                }
                            }
                            _ => {
                                let r = call(addr, key, "batch_forget", &json!({ "namespace": ns, "tags": ["load"], "below_importance": 0.0 })).unwrap();
                                tally.note("forget", &r);
                            }
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    };
    // Warm up (allocator pools, caches), then measure.
    run(Duration::from_secs(2), &Arc::new(Tally::default()), seed);
    let pid = server.child.id();
    let (rss_start, anon_start) = memory_kib(pid);
    // The noisy tenant hammers; the quiet one sends 5 requests per second.
    let limited_threads: Vec<_> = limited
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, (ns, key))| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut sent, mut throttled, mut retry_after_ok) = (0u64, 0u64, true);
                while !stop.load(Ordering::Relaxed) && sent < 5_000 {
                    let r = call(addr, &key, "recall", &json!({ "namespace": ns, "query": "x" }))
                        .unwrap();
                    sent += 1;
                    assert!(r.status < 500, "{}", String::from_utf8_lossy(&r.body));
                    if r.status == 429 {
                        throttled += 1;
                        retry_after_ok &= r
                            .header("Retry-After")
                            .is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1));
                    }
                    if i == 1 {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
                (sent, throttled, retry_after_ok)
            })
        })
        .collect();
    let started = Instant::now();
    run(Duration::from_secs(secs), &tally, seed.wrapping_add(1));
    let took = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let results: Vec<_> = limited_threads.into_iter().map(|t| t.join().unwrap()).collect();
    let (rss_end, anon_end) = memory_kib(pid);
    let requests = tally.requests.load(Ordering::Relaxed);
    eprintln!(
        "load: {requests} mixed requests from {WORKERS} threads over {TENANTS} tenants in {took:.1}s ({:.0} req/s); 429s in the mix: {}",
        requests as f64 / took,
        tally.rate_limited.load(Ordering::Relaxed)
    );
    eprintln!(
        "load: noisy tenant (20 qps) {}/{} throttled; quiet tenant (100 qps, 5/s) {}/{} throttled",
        results[0].1, results[0].0, results[1].1, results[1].0
    );
    eprintln!(
        "load: server VmRSS {rss_start} → {rss_end} KiB, RssAnon {anon_start} → {anon_end} KiB"
    );
    let output = server.stop();
    let errors = tally.server_errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{} 5xx answers, e.g. {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    let leaks = tally.leaks.lock().unwrap();
    assert!(
        leaks.is_empty(),
        "{} cross-tenant results, e.g. {:?}",
        leaks.len(),
        &leaks[..leaks.len().min(5)]
    );
    assert_eq!(
        tally.rate_limited.load(Ordering::Relaxed),
        0,
        "tenants far below their limit were throttled"
    );
    assert!(results[0].1 > 0, "the noisy tenant was never throttled");
    assert!(results[0].2, "a 429 without a usable Retry-After");
    assert_eq!(results[1].1, 0, "the quiet tenant was throttled because of the noisy one");
    assert!(requests > 500, "too little traffic to judge ({requests} requests)");
    // Heap stays flat: generous bounds (allocator high-water marks, caches of new memories).
    assert!(
        anon_end < anon_start * 2 + 64 * 1024,
        "server heap grew from {anon_start} to {anon_end} KiB"
    );
    assert!(!output.contains("panicked"), "the server panicked:\n{output}");
}
