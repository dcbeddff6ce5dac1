//! Loopback throughput and latency of the HTTP server, measured with 1, 16 and 64 keep-alive
//! connections from a hyper client on one thread of this process. The load generator shares
//! the machine's cores with the server, so each line gives the CPU time per request of the
//! server (the process less the load generator's thread) and of the load generator; state
//! the machine's load next to the numbers:
//!
//! - recall over 10,000 memories (`POST /v1/memory/recall`, top 10, hashing embedder; hybrid,
//!   then vector only), then each with 1% malformed requests mixed in;
//! - namespace creation with 16 clients (`POST /v1/namespaces`, admin key);
//! - the per-request cost of authentication plus routing (serial medians);
//! - single-memory stores (`POST /v1/memory/store`), each answered after its fsync'd commit;
//!   with namespace creation, the group commits' writes per commit and disk syncs per second;
//! - stores with 1% malformed requests mixed in (only those may fail).
//!
//! Run with `make bench-http`. `BENCH_SECS` (default 3) is the length of each timed phase,
//! `BENCH_NAMESPACES` (default 2000) the namespaces created, `BENCH_PHASES` (default all:
//! `recall,namespaces,overhead,store,malformed`; `hybrid` or `vector` for one recall mode)
//! the phases run, `BENCH_CLIENTS` (default `1,16,64`) the client counts of recall and store.
//! `TMPDIR` places the data directory (on tmpfs, fsync costs nothing: the code's own limit).
//! `BENCH_GENERATOR=wrk` sends the timed recall and store phases from `wrk` (Debian's
//! package, one thread, a separate process) instead of the hyper client, which takes more CPU
//! a request than wrk does of the same two cores (both are printed); the phases with malformed
//! requests and the counted ones (namespaces) stay on the hyper client, which checks each
//! answer. `MEMSILO_KEYRING=DIR` encrypts it (the instance key is made in DIR); with it,
//! `BENCH_CIPHER=chacha20-poly1305` makes it a directory as created before AES-256-GCM-SIV
//! (its `storage.json` written first, naming that cipher), to compare the two ciphers.

/// The allocator of the `memsilo` binary and the language bindings, so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use hyper_util::rt::TokioIo;
use memsilo::{Engine, HashEmbedder, Options};
use memsilo_http::{serve, Client, ServeOptions};
use serde_json::json;

mod support;

const ADMIN: &str = "bench-admin-key-0123456789";
const RECALL_MEMORIES: usize = 10_000;
const LEVELS: [usize; 3] = [1, 16, 64];

/// The client counts the recall and store phases run at: `BENCH_CLIENTS` (comma-separated),
/// default [`LEVELS`].
fn levels() -> Vec<usize> {
    std::env::var("BENCH_CLIENTS")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect::<Vec<usize>>())
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| LEVELS.to_vec())
}

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

/// One request to send: method, path, JSON body, and for a request meant to fail, the
/// field its refusal must name.
struct Req {
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
    malformed: Option<&'static str>,
}

fn post(path: &str, body: &serde_json::Value) -> Req {
    Req {
        method: "POST",
        path: path.into(),
        body: Some(body.to_string().into_bytes()),
        malformed: None,
    }
}

#[derive(Default)]
struct Tally {
    lat: Vec<Duration>,
    /// Requests answered, p50 and p99, when wrk sent them (it gives no single latencies).
    wrk: Option<(usize, Duration, Duration)>,
    /// Well-formed requests that did not get a 2xx.
    failed: usize,
    /// Malformed requests answered with a 4xx.
    refused: usize,
    /// Of those, the ones whose error body did not name the bad field.
    unnamed: usize,
    /// Malformed requests answered otherwise.
    malformed_other: usize,
}

/// CPU seconds used so far by the calling thread.
fn thread_cpu() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU seconds used so far by the whole process (server and load generator).
fn process_cpu() -> Duration {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(clock, &raw mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// What a phase cost: wall time, CPU of the whole process, CPU of the load generator.
struct Cost {
    wall: Duration,
    process_cpu: Duration,
    client_cpu: Duration,
}

/// Sends requests over `clients` keep-alive connections until `limit` (a duration, or a
/// number of requests in all) is reached. The load generator is a hyper HTTP/1.1 client
/// on one thread (an async task per connection), so that it takes little of the cores the
/// server runs on; its CPU time is measured apart from the process's.
fn load(
    url: &str,
    key: &str,
    clients: usize,
    limit: Limit,
    make: &(dyn Fn(usize, usize) -> Req + Sync),
) -> (Cost, Tally) {
    if let Limit::Time(secs) = limit {
        if std::env::var("BENCH_GENERATOR").is_ok_and(|g| g == "wrk") {
            let sample: Vec<Req> = (0..WRK_REQUESTS).map(|i| make(i % clients, i)).collect();
            if sample.iter().all(|r| r.malformed.is_none()) {
                return load_wrk(url, key, clients, secs, &sample);
            }
        }
    }
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let auth = format!("Bearer {key}");
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let generator = std::thread::Builder::new().name("load-generator".into());
        generator
            .spawn_scoped(s, || {
                let rt =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let cpu0 = (thread_cpu(), process_cpu());
                let started = Instant::now();
                let tallies = rt.block_on(async {
                    let conns = (0..clients)
                        .map(|t| connection(addr, &auth, t, started, limit, &next, make));
                    futures_util::future::join_all(conns).await
                });
                let cost = Cost {
                    wall: started.elapsed(),
                    process_cpu: process_cpu().saturating_sub(cpu0.1),
                    client_cpu: thread_cpu().saturating_sub(cpu0.0),
                };
                let mut all = Tally::default();
                for t in tallies {
                    all.lat.extend(t.lat);
                    all.failed += t.failed;
                    all.refused += t.refused;
                    all.malformed_other += t.malformed_other;
                    all.unnamed += t.unnamed;
                }
                all.lat.sort();
                (cost, all)
            })
            .unwrap()
            .join()
            .unwrap()
    })
}

/// One client: a keep-alive connection sending its requests one after another.
async fn connection(
    addr: std::net::SocketAddr,
    auth: &str,
    t: usize,
    started: Instant,
    limit: Limit,
    next: &AtomicUsize,
    make: &(dyn Fn(usize, usize) -> Req + Sync),
) -> Tally {
    use http_body_util::{BodyExt, Full};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let mut tally = Tally::default();
    let mut i = 0;
    loop {
        let n = match limit {
            Limit::Time(d) if started.elapsed() >= d => break,
            Limit::Time(_) => i,
            Limit::Count(max) => {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= max {
                    break;
                }
                n
            }
        };
        let req = make(t, n);
        let mut builder = hyper::Request::builder()
            .method(req.method)
            .uri(&req.path)
            .header(hyper::header::HOST, "bench")
            .header(hyper::header::AUTHORIZATION, auth);
        if req.body.is_some() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = builder.body(Full::new(Bytes::from(req.body.unwrap_or_default()))).unwrap();
        let t0 = Instant::now();
        let answer = match sender.ready().await {
            Ok(()) => match sender.send_request(request).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body =
                        resp.into_body().collect().await.map(http_body_util::Collected::to_bytes);
                    body.ok().map(|b| (status, b))
                }
                Err(_) => None,
            },
            Err(_) => None,
        };
        tally.lat.push(t0.elapsed());
        let (status, body) = answer.unwrap_or((0, Bytes::new()));
        match (&req.malformed, status) {
            (None, 200..=299) => {}
            (None, _) => tally.failed += 1,
            (Some(field), 400..=499) => {
                tally.refused += 1;
                let named = serde_json::from_slice::<serde_json::Value>(&body)
                    .is_ok_and(|v| v["field"] == *field);
                tally.unnamed += usize::from(!named);
            }
            (Some(_), _) => tally.malformed_other += 1,
        }
        i += 1;
    }
    drop(sender);
    let _ = conn.await;
    tally
}

/// How many of a phase's requests wrk's script cycles through.
const WRK_REQUESTS: usize = 512;

/// [`load`] from wrk: `clients` connections on one thread for `secs`, cycling through
/// `requests` (each made once, as the script starts).
fn load_wrk(
    url: &str,
    key: &str,
    clients: usize,
    secs: Duration,
    requests: &[Req],
) -> (Cost, Tally) {
    use std::fmt::Write as _;
    let dir = tempfile::tempdir().unwrap();
    // One request a line: method, path and body (compact JSON has no newline).
    let mut lines = String::new();
    for r in requests {
        let body = r.body.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
        let _ = writeln!(lines, "{} {} {body}", r.method, r.path);
    }
    std::fs::write(dir.path().join("requests"), lines).unwrap();
    let script = format!(
        r#"
local reqs = {{}}
function init(args)
  local headers = {{["Authorization"] = "Bearer {key}", ["Content-Type"] = "application/json"}}
  for line in io.lines({requests:?}) do
    local method, path, body = line:match("^(%S+) (%S+) (.*)$")
    if body == "" then body = nil end
    reqs[#reqs + 1] = wrk.format(method, path, headers, body)
  end
end
local n = 0
function request()
  n = n + 1
  return reqs[n % #reqs + 1]
end
function done(summary, latency, requests)
  io.write(string.format("%d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status))
end
"#,
        requests = dir.path().join("requests").display().to_string()
    );
    std::fs::write(dir.path().join("script.lua"), script).unwrap();
    let cpu0 = process_cpu();
    let (stdout, generator) =
        support::wrk(url, clients, secs.as_secs_f64(), &dir.path().join("script.lua"));
    let process = process_cpu().saturating_sub(cpu0);
    let generator = Duration::from_secs_f64(generator);
    let nums: Vec<u64> = stdout
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let [requests, duration_us, p50_us, p99_us, non_2xx] = nums[..] else {
        panic!("wrk's summary: {stdout}")
    };
    let cost = Cost {
        wall: Duration::from_micros(duration_us),
        process_cpu: process + generator,
        client_cpu: generator,
    };
    let tally = Tally {
        wrk: Some((
            requests as usize,
            Duration::from_micros(p50_us),
            Duration::from_micros(p99_us),
        )),
        failed: non_2xx as usize,
        ..Tally::default()
    };
    (cost, tally)
}

#[derive(Clone, Copy)]
enum Limit {
    Time(Duration),
    Count(usize),
}

fn report(name: &str, clients: usize, cost: &Cost, t: &Tally) {
    let (count, p50, p99) =
        t.wrk.unwrap_or_else(|| (t.lat.len(), percentile(&t.lat, 0.50), percentile(&t.lat, 0.99)));
    let n = count.max(1) as f64;
    let server_cpu = cost.process_cpu.saturating_sub(cost.client_cpu);
    println!(
        "{name:<34} {clients:>3} clients {:>8.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   CPU/request: server {:>6.1} µs, load generator {:>5.1} µs{}   ({count} requests, {} failed)",
        count as f64 / cost.wall.as_secs_f64(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        server_cpu.as_secs_f64() * 1e6 / n,
        cost.client_cpu.as_secs_f64() * 1e6 / n,
        if t.wrk.is_some() { " (wrk)" } else { "" },
        t.failed,
    );
}

/// The line about a phase's group commits: writes per commit, disk syncs per second.
fn report_commits(engine: &Engine, before: memsilo::CommitStats, cost: &Cost) {
    let d = engine.commit_stats() - before;
    let per = |a: u64, b: u64| a as f64 / b.max(1) as f64;
    println!(
        "  group commits: {} writes in {} commits ({:.1} per commit), {} disk syncs ({:.0}/s, {:.1} writes per sync)",
        d.writes,
        d.commits,
        per(d.writes, d.commits),
        d.syncs,
        d.syncs as f64 / cost.wall.as_secs_f64(),
        per(d.writes, d.syncs),
    );
}

/// The line about a phase with malformed requests mixed in.
fn report_malformed(t: &Tally) {
    println!(
        "  malformed: {} refused with a 4xx ({} of them not naming the field), {} answered otherwise; well-formed that failed: {}",
        t.refused, t.unnamed, t.malformed_other, t.failed
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

#[allow(clippy::too_many_lines)] // the phases in order, read top to bottom
fn main() {
    let secs = Duration::from_secs_f64(env_or("BENCH_SECS", 3.0));
    let namespaces = env_or("BENCH_NAMESPACES", 2000.0) as usize;
    let dir = tempfile::tempdir().unwrap();
    if let Ok(cipher) = std::env::var("BENCH_CIPHER") {
        let format = json!({"format": 2, "lmdb": "mdb.master3",
            "encryption": {"cipher": cipher, "instance_key_id": "instance"}});
        std::fs::write(dir.path().join("storage.json"), format.to_string()).unwrap();
    }
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
    let recall = |mode: &'static str| {
        move |_t: usize, i: usize| {
            post(
                "/v1/memory/recall",
                &json!({"namespace": "recall", "query": format!("topic {}", i % 37), "top_k": 10, "mode": mode}),
            )
        }
    };
    // A text query is hybrid by default (vector and keyword sides fused); vector is the
    // vector side alone.
    for mode in ["hybrid", "vector"] {
        if !(phase("recall") || phase(mode)) {
            continue;
        }
        for clients in levels() {
            let (cost, t) = load(&url, &key, clients, Limit::Time(secs), &recall(mode));
            report(&format!("recall (10k), mode {mode}"), clients, &cost, &t);
        }
    }
    // 1% malformed recalls: top_k out of range, refused with 400 naming top_k.
    if phase("malformed") {
        for mode in ["hybrid", "vector"] {
            let mixed = |t: usize, i: usize| {
                if (t * 7919 + i).is_multiple_of(100) {
                    let mut r = post(
                        "/v1/memory/recall",
                        &json!({"namespace": "recall", "query": "topic 1", "top_k": 0, "mode": mode}),
                    );
                    r.malformed = Some("top_k");
                    r
                } else {
                    recall(mode)(t, i)
                }
            };
            let (cost, t) = load(&url, &key, 64, Limit::Time(secs), &mixed);
            report(&format!("recall {mode}, 1% malformed"), 64, &cost, &t);
            report_malformed(&t);
        }
    }

    // Then what the stores' background work would disturb (see above).
    if phase("namespaces") {
        let create =
            |_t: usize, n: usize| post("/v1/namespaces", &json!({ "name": format!("tenant-{n}") }));
        let before = engine.commit_stats();
        let (cost, t) = load(&url, ADMIN, 16, Limit::Count(namespaces), &create);
        report("POST /v1/namespaces", 16, &cost, &t);
        report_commits(&engine, before, &cost);
        println!("  {namespaces} namespaces created in {:.2} s", cost.wall.as_secs_f64());
    }

    if phase("overhead") {
        overhead(&url, &client, &engine, &key);
        // The same under load: server CPU per request, with and without the key check,
        // routing and the call into core.
        let get = |path: &'static str| {
            move |_t: usize, _i: usize| Req {
                method: "GET",
                path: path.into(),
                body: None,
                malformed: None,
            }
        };
        for path in ["/healthz", "/v1/whoami"] {
            let (cost, t) = load(&url, &key, 16, Limit::Time(secs), &get(path));
            report(&format!("GET {path}"), 16, &cost, &t);
        }
    }

    let store = |t: usize, i: usize| {
        post(
            "/v1/memory/store",
            &json!({"namespace": "bench", "content": format!("memory {t}-{i} about topic {}", i % 37)}),
        )
    };
    for clients in levels().into_iter().filter(|_| phase("store")) {
        let before = engine.commit_stats();
        let (cost, t) = load(&url, &key, clients, Limit::Time(secs), &store);
        report("POST /v1/memory/store", clients, &cost, &t);
        report_commits(&engine, before, &cost);
    }
    // 1% malformed: an importance out of range, refused with 400 naming importance before
    // any write; its neighbours in the same commit group are stored.
    let mixed = |t: usize, i: usize| {
        if (t * 7919 + i).is_multiple_of(100) {
            let mut r = post(
                "/v1/memory/store",
                &json!({"namespace": "bench", "content": "bad", "importance": 7}),
            );
            r.malformed = Some("importance");
            r
        } else {
            store(t, i)
        }
    };
    if phase("malformed") {
        let (cost, t) = load(&url, &key, 64, Limit::Time(secs), &mixed);
        report("store, 1% malformed", 64, &cost, &t);
        report_malformed(&t);
    }

    server.shutdown().unwrap();
}
