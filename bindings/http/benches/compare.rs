//! `memsilo serve` and Chroma's server (`chroma run`, the pinned `chromadb` `PyPI` package)
//! under the same load from the same generator: keep-alive HTTP/1.1 clients on 1, 16 and 64
//! threads of this process (ureq; neither system's SDK), on loopback, one server at a time.
//!
//! Both get the same precomputed 384-d vectors (seeded, clustered unit vectors), so embedding
//! cost is out of the comparison; each memsilo namespace is one Chroma collection (cosine):
//!
//! - store: one memory (id, text, vector) per request into one of 16 tenants' namespaces /
//!   collections (client `c` writes to tenant `c % 16`);
//! - recall: the top 10 over the same 10,000-vector corpus (one namespace / collection),
//!   query vectors drawn from the corpus's distribution;
//! - store with 1% malformed requests mixed in (64 clients): every hundredth request carries
//!   a 3-dimensional vector, which both systems must refuse (a 4xx) while every other request
//!   of the same moment is stored.
//!
//! Each phase runs `BENCH_SECS` (default 5) per level. The servers' CPU time (process and
//! children, from `/proc`) is printed beside the wall clock. Writes `benches/compare/http.md`
//! (table) and `benches/compare/http.csv` (for `http_chart.py`, which draws `http.png`).
//! Run with `make bench-http-compare`; `CHROMA` is the `chroma` executable.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;
use support::{agent, cpu_tree};

const ADMIN: &str = "bench-admin-key-0123456789";
const MEMSILO: &str = env!("CARGO_BIN_EXE_memsilo");
const DIM: usize = 384;
const CORPUS: usize = 10_000;
const TENANTS: usize = 16;
const LEVELS: [usize; 3] = [1, 16, 64];

/// xorshift64*: seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }
}

/// Unit vectors around 100 seeded centres, as JSON text (6 decimals: the same bytes for both).
fn vectors(n: usize, seed: u64) -> Vec<String> {
    let mut centres = Rng(7);
    let centres: Vec<Vec<f32>> =
        (0..100).map(|_| (0..DIM).map(|_| centres.next_f32()).collect()).collect();
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let c = &centres[i % centres.len()];
            let v: Vec<f32> = c.iter().map(|x| x + 0.3 * rng.next_f32()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            let parts: Vec<String> = v.iter().map(|x| format!("{:.6}", x / norm)).collect();
            format!("[{}]", parts.join(","))
        })
        .collect()
}

/// POSTs `body` (JSON text); status and body.
fn post(agent: &ureq::Agent, url: &str, auth: Option<&str>, body: String) -> (u16, String) {
    let mut req = ureq::http::Request::builder()
        .method("POST")
        .uri(url)
        .header("Content-Type", "application/json");
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    match agent.run(req.body(body.into_bytes()).unwrap()) {
        Ok(mut r) => (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// A system under test: how to reach it and how to phrase each request.
struct System {
    name: &'static str,
    child: Child,
    auth: Option<String>,
    /// URL of a tenant's store (`t` < `TENANTS`) and of the corpus's recall.
    store_url: Vec<String>,
    recall_url: String,
    store_body: fn(usize, &str, &str) -> String,
    recall_body: fn(&str) -> String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for(url: &str) {
    let agent = agent();
    let started = Instant::now();
    while !agent.get(url).call().is_ok_and(|r| r.status() == 200) {
        assert!(started.elapsed() < Duration::from_secs(120), "{url} did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_memsilo(data: &Path, corpus: &[String]) -> System {
    let port = free_port();
    let child = Command::new(MEMSILO)
        .args(["serve", "--data"])
        .arg(data)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--embedder",
            "hash",
            "--log-level",
            "warn",
        ])
        .env("MEMSILO_ADMIN_KEY", ADMIN)
        .stdout(Stdio::null())
        .spawn()
        .expect("memsilo serve starts");
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{base}/healthz"));
    let auth = format!("Bearer {ADMIN}");
    let agent = agent();
    for name in (0..TENANTS).map(|t| format!("tenant-{t}")).chain(["corpus".to_owned()]) {
        let (s, b) = post(
            &agent,
            &format!("{base}/v1/namespaces"),
            Some(&auth),
            json!({ "name": name, "dimensions": DIM }).to_string(),
        );
        assert_eq!(s, 201, "{b}");
    }
    for (n, chunk) in corpus.chunks(500).enumerate() {
        let memories: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| {
                format!(r#"{{"id":"c{n}-{i}","content":"corpus memory {n}-{i}","embedding":{v}}}"#)
            })
            .collect();
        let body = format!(r#"{{"namespace":"corpus","memories":[{}]}}"#, memories.join(","));
        let (s, b) = post(&agent, &format!("{base}/v1/memory/store_batch"), Some(&auth), body);
        assert_eq!(s, 201, "{b}");
    }
    System {
        name: "memsilo",
        child,
        auth: Some(auth),
        store_url: vec![format!("{base}/v1/memory/store"); TENANTS],
        recall_url: format!("{base}/v1/memory/recall"),
        store_body: |t, id, v| {
            format!(
                r#"{{"namespace":"tenant-{t}","id":"{id}","content":"memory {id}","embedding":{v}}}"#
            )
        },
        recall_body: |v| format!(r#"{{"namespace":"corpus","vector":{v},"top_k":10}}"#),
    }
}

fn start_chroma(chroma: &str, data: &Path, corpus: &[String]) -> System {
    let port = free_port();
    let child = Command::new(chroma)
        .args(["run", "--path"])
        .arg(data)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chroma run starts (CHROMA names the executable)");
    let root = format!("http://127.0.0.1:{port}/api/v2");
    wait_for(&format!("{root}/heartbeat"));
    let base = format!("{root}/tenants/default_tenant/databases/default_database/collections");
    let agent = agent();
    let mut ids = Vec::new();
    for name in (0..TENANTS).map(|t| format!("tenant-{t}")).chain(["corpus".to_owned()]) {
        let body =
            json!({ "name": name, "metadata": { "hnsw:space": "cosine" }, "get_or_create": true });
        let (s, b) = post(&agent, &base, None, body.to_string());
        assert!(s == 200 || s == 201, "{s} {b}");
        let v: Value = serde_json::from_str(&b).unwrap();
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let corpus_id = ids.pop().unwrap();
    for (n, chunk) in corpus.chunks(500).enumerate() {
        let ids: Vec<String> = (0..chunk.len()).map(|i| format!(r#""c{n}-{i}""#)).collect();
        let docs: Vec<String> =
            (0..chunk.len()).map(|i| format!(r#""corpus memory {n}-{i}""#)).collect();
        let body = format!(
            r#"{{"ids":[{}],"embeddings":[{}],"documents":[{}]}}"#,
            ids.join(","),
            chunk.join(","),
            docs.join(",")
        );
        let (s, b) = post(&agent, &format!("{base}/{corpus_id}/add"), None, body);
        assert!(s == 200 || s == 201, "{s} {b}");
    }
    System {
        name: "chroma",
        child,
        auth: None,
        store_url: ids.iter().map(|id| format!("{base}/{id}/add")).collect(),
        recall_url: format!("{base}/{corpus_id}/query"),
        store_body: |_, id, v| {
            format!(r#"{{"ids":["{id}"],"embeddings":[{v}],"documents":["memory {id}"]}}"#)
        },
        recall_body: |v| {
            format!(
                r#"{{"query_embeddings":[{v}],"n_results":10,"include":["documents","distances"]}}"#
            )
        },
    }
}

struct Row {
    system: &'static str,
    phase: &'static str,
    clients: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Well-formed requests that did not get a 2xx.
    failed: usize,
    /// Malformed requests sent, and those of them answered with a 4xx.
    malformed: usize,
    refused: usize,
    cpu_s: f64,
    wall_s: f64,
}

/// The phase whose every hundredth store is malformed (see the module's documentation).
const MIXED: &str = "mixed";

/// Whether request `i` of client `c` in the [`MIXED`] phase is malformed.
fn is_malformed(c: usize, i: usize) -> bool {
    (c * 7919 + i).is_multiple_of(100)
}

/// What a client of a phase saw: latencies, well-formed failures, malformed sent and refused.
#[derive(Default)]
struct Seen {
    lat: Vec<Duration>,
    failed: usize,
    malformed: usize,
    refused: usize,
}

fn run_phase(sys: &System, phase: &'static str, clients: usize, secs: f64, vecs: &[String]) -> Row {
    let pid = sys.child.id();
    let cpu0 = cpu_tree(pid);
    let started = Instant::now();
    let limit = Duration::from_secs_f64(secs);
    let short = "[0.5,0.5,0.5]";
    let results: Vec<Seen> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || {
                    let agent = agent();
                    let (mut seen, mut i) = (Seen::default(), 0usize);
                    while started.elapsed() < limit {
                        let bad = phase == MIXED && is_malformed(c, i);
                        let v = if bad { short } else { &vecs[(c * 7919 + i) % vecs.len()] };
                        let (url, body) = if phase == "recall" {
                            (sys.recall_url.as_str(), (sys.recall_body)(v))
                        } else {
                            let t = c % TENANTS;
                            let id = format!("{phase}-{clients}-{c}-{i}");
                            (sys.store_url[t].as_str(), (sys.store_body)(t, &id, v))
                        };
                        let t0 = Instant::now();
                        let (status, _) = post(&agent, url, sys.auth.as_deref(), body);
                        seen.lat.push(t0.elapsed());
                        if bad {
                            seen.malformed += 1;
                            seen.refused += usize::from((400..500).contains(&status));
                        } else if !(200..300).contains(&status) {
                            seen.failed += 1;
                        }
                        i += 1;
                    }
                    seen
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let cpu_s = cpu_tree(pid) - cpu0;
    let failed = results.iter().map(|r| r.failed).sum();
    let malformed = results.iter().map(|r| r.malformed).sum();
    let refused = results.iter().map(|r| r.refused).sum();
    let mut lat: Vec<Duration> = results.into_iter().flat_map(|r| r.lat).collect();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let row = Row {
        system: sys.name,
        phase,
        clients,
        rps: lat.len() as f64 / wall,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        failed,
        malformed,
        refused,
        cpu_s,
        wall_s: wall,
    };
    println!(
        "{:8} {:6} {:3} clients {:8.0} req/s  p50 {:7.2} ms  p99 {:7.2} ms  failed {}  malformed refused {}/{}  server CPU {:.1} s in {:.1} s",
        row.system, row.phase, row.clients, row.rps, row.p50_ms, row.p99_ms, row.failed, row.refused, row.malformed, row.cpu_s, row.wall_s
    );
    row
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: f64 = std::env::var("BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(5.0);
    let chroma = std::env::var("CHROMA").unwrap_or_else(|_| "chroma".into());
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/compare");
    let corpus = vectors(CORPUS, 1);
    let queries = vectors(2_000, 2);
    let tmp = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    for which in ["memsilo", "chroma"] {
        let data = tmp.path().join(which);
        let mut sys = match which {
            "memsilo" => start_memsilo(&data, &corpus),
            _ => start_chroma(&chroma, &data, &corpus),
        };
        for clients in LEVELS {
            rows.push(run_phase(&sys, "recall", clients, secs, &queries));
        }
        for clients in LEVELS {
            rows.push(run_phase(&sys, "store", clients, secs, &queries));
        }
        rows.push(run_phase(&sys, MIXED, 64, secs, &queries));
        unsafe { libc::kill(sys.child.id() as i32, libc::SIGTERM) };
        let _ = sys.child.wait();
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut md = String::from(
        "| system | request | clients | req/s | p50 ms | p99 ms | failed | malformed refused | server CPU s / 1k req |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let mut csv = String::from(
        "system,phase,clients,rps,p50_ms,p99_ms,failed,malformed,refused,cpu_s,wall_s\n",
    );
    for r in &rows {
        let per_k = r.cpu_s / (r.rps * r.wall_s / 1000.0).max(1e-9);
        let request = match r.phase {
            "store" => "store 1 memory",
            MIXED => "store, 1% malformed",
            _ => "recall top 10 of 10k",
        };
        let refused = if r.malformed == 0 {
            "–".to_owned()
        } else {
            format!("{} of {}", r.refused, r.malformed)
        };
        let _ = writeln!(
            md,
            "| {} | {request} | {} | {:.0} | {:.2} | {:.2} | {} | {refused} | {per_k:.2} |",
            r.system, r.clients, r.rps, r.p50_ms, r.p99_ms, r.failed
        );
        let _ = writeln!(
            csv,
            "{},{},{},{:.1},{:.3},{:.3},{},{},{},{:.2},{:.2}",
            r.system,
            r.phase,
            r.clients,
            r.rps,
            r.p50_ms,
            r.p99_ms,
            r.failed,
            r.malformed,
            r.refused,
            r.cpu_s,
            r.wall_s
        );
    }
    let _ = writeln!(
        md,
        "\n{secs} s per row; load average at the end: {}. `failed`: well-formed requests not \
         answered 2xx. The 1% malformed store requests carry a 3-dimensional vector \
         (the collections hold 384); `malformed refused`: those answered with a 4xx.",
        load.trim()
    );
    print!("\n{md}");
    std::fs::write(out_dir.join("http.md"), md).unwrap();
    std::fs::write(out_dir.join("http.csv"), csv).unwrap();
}
