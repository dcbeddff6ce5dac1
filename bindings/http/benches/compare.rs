//! `memsilo serve` and Chroma's server (`chroma run`, the pinned `chromadb` `PyPI` package)
//! under the same load from the same generator: `wrk` (Debian's package; `make
//! bench-http-compare` installs it when it is missing) on one thread with 1, 16 and 64
//! keep-alive HTTP/1.1 connections (neither system's SDK), on loopback, one server at a time.
//! A Lua script written for each phase phrases the requests for the system under test (the
//! bodies of a recall made once, a store's per request for its id); wrk's own CPU per request
//! is printed beside the server's, so what the generator takes of the two cores is known.
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
//! children, from `/proc`) is printed beside the wall clock. wrk's script cannot tell which
//! request a response answers (its connections share one Lua state), so the malformed phase
//! counts 4xx answers against the malformed requests sent: `refused` is the smaller of the two,
//! and `failed` every other answer that is not a 2xx (a well-formed request refused while a
//! malformed one was stored would cancel out; `make bench-http`'s mixed phases check each
//! request by itself). Writes `benches/compare/http.md`
//! (table) and `benches/compare/http.csv` (for `http_chart.py`, which draws `http.png`).
//! Run with `make bench-http-compare`; `CHROMA` is the `chroma` executable, `BENCH_SYSTEMS=memsilo`
//! (or `chroma`) runs one system only and writes no table.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;
use support::{agent, cpu_tree, wrk};

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

/// A system under test: how to reach it and how wrk's script phrases each request.
struct System {
    name: &'static str,
    child: Child,
    /// `host:port` of the server.
    base: String,
    auth: Option<String>,
    /// Lua functions of the phase's script: `store(t, id, v)` gives the path and body of a
    /// store of vector `v` (JSON text) under `id` into tenant `t` (0-based, < `TENANTS`),
    /// `recall(v)` those of a top-10 recall of `v` from the corpus.
    lua: String,
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
    let base = format!("127.0.0.1:{port}");
    wait_for(&format!("http://{base}/healthz"));
    let auth = format!("Bearer {ADMIN}");
    let agent = agent();
    for name in (0..TENANTS).map(|t| format!("tenant-{t}")).chain(["corpus".to_owned()]) {
        let (s, b) = post(
            &agent,
            &format!("http://{base}/v1/namespaces"),
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
        let (s, b) =
            post(&agent, &format!("http://{base}/v1/memory/store_batch"), Some(&auth), body);
        assert_eq!(s, 201, "{b}");
    }
    let lua = r#"
function store(t, id, v)
  return "/v1/memory/store",
    '{"namespace":"tenant-' .. t .. '","id":"' .. id .. '","content":"memory ' .. id .. '","embedding":' .. v .. '}'
end
function recall(v)
  return "/v1/memory/recall", '{"namespace":"corpus","vector":' .. v .. ',"top_k":10}'
end
"#;
    System { name: "memsilo", child, base, auth: Some(auth), lua: lua.to_owned() }
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
    let prefix = "/api/v2/tenants/default_tenant/databases/default_database/collections";
    let tenants: Vec<String> = ids.iter().map(|id| format!("\"{prefix}/{id}/add\"")).collect();
    let lua = format!(
        r#"
local tenants = {{ {tenants} }}
function store(t, id, v)
  return tenants[t + 1],
    '{{"ids":["' .. id .. '"],"embeddings":[' .. v .. '],"documents":["memory ' .. id .. '"]}}'
end
function recall(v)
  return "{prefix}/{corpus_id}/query",
    '{{"query_embeddings":[' .. v .. '],"n_results":10,"include":["documents","distances"]}}'
end
"#,
        tenants = tenants.join(", ")
    );
    System { name: "chroma", child, base: format!("127.0.0.1:{port}"), auth: None, lua }
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

/// The part of every phase's wrk script that does not depend on the system: reads the
/// vectors, makes or builds the requests, counts the answers by class, and prints one JSON
/// line at the end. `PHASE`, `CLIENTS`, `AUTH` (a Lua string or `nil`), `VECTORS` (a file of
/// one vector a line) and the system's `store`/`recall` functions are put in before it.
const SCRIPT: &str = r#"
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
local vecs, reqs, headers = {}, {}, {}
function init(args)
  for line in io.lines(VECTORS) do vecs[#vecs + 1] = line end
  headers["Content-Type"] = "application/json"
  if AUTH then headers["Authorization"] = AUTH end
  if PHASE == "recall" then
    for i, v in ipairs(vecs) do
      local path, body = recall(v)
      reqs[i] = wrk.format("POST", path, headers, body)
    end
  end
  ok, c4xx, other, malformed = 0, 0, 0, 0
end
local n = 0
function request()
  n = n + 1
  if PHASE == "recall" then return reqs[n % #reqs + 1] end
  local v = vecs[n % #vecs + 1]
  if PHASE == "mixed" and n % 100 == 0 then
    v = "[0.5,0.5,0.5]"
    malformed = malformed + 1
  end
  local path, body = store(n % 16, PHASE .. "-" .. CLIENTS .. "-" .. n, v)
  return wrk.format("POST", path, headers, body)
end
function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1
  elseif status >= 400 and status < 500 then c4xx = c4xx + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local sum = {ok = 0, c4xx = 0, other = 0, malformed = 0}
  for _, t in ipairs(threads) do
    for k, _ in pairs(sum) do sum[k] = sum[k] + t:get(k) end
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"ok":%d,"c4xx":%d,"other":%d,"malformed":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    sum.ok, sum.c4xx, sum.other, sum.malformed, e.connect + e.read + e.write + e.timeout))
end
"#;

/// Runs `phase` against `sys` with wrk (one thread, `clients` connections, `secs` seconds),
/// the vectors of its requests read from `vectors` (one a line).
fn run_phase(sys: &System, phase: &'static str, clients: usize, secs: f64, vectors: &Path) -> Row {
    let script = tempfile::NamedTempFile::new().unwrap();
    let auth = sys.auth.as_ref().map_or("nil".to_owned(), |a| format!("{a:?}"));
    let head = format!(
        "PHASE = {phase:?}\nCLIENTS = {clients}\nAUTH = {auth}\nVECTORS = {:?}\n",
        vectors.display().to_string()
    );
    std::fs::write(script.path(), format!("{head}{}{SCRIPT}", sys.lua)).unwrap();
    let pid = sys.child.id();
    let cpu0 = cpu_tree(pid);
    let (out, generator_cpu) = wrk(&format!("http://{}", sys.base), clients, secs, script.path());
    let cpu_s = cpu_tree(pid) - cpu0;
    let line =
        out.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("wrk: {out}"));
    let v: Value = serde_json::from_str(line).unwrap();
    let n = |k: &str| v[k].as_u64().unwrap_or(0) as usize;
    let wall = n("duration_us") as f64 / 1e6;
    let refused = n("c4xx").min(n("malformed"));
    let row = Row {
        system: sys.name,
        phase,
        clients,
        rps: n("requests") as f64 / wall,
        p50_ms: n("p50_us") as f64 / 1000.0,
        p99_ms: n("p99_us") as f64 / 1000.0,
        failed: n("c4xx") - refused + n("other") + n("socket_errors"),
        malformed: n("malformed"),
        refused,
        cpu_s,
        wall_s: wall,
    };
    println!(
        "{:8} {:6} {:3} clients {:8.0} req/s  p50 {:7.2} ms  p99 {:7.2} ms  failed {}  malformed refused {}/{}  CPU/request: server {:.1} µs, wrk {:.1} µs",
        row.system,
        row.phase,
        row.clients,
        row.rps,
        row.p50_ms,
        row.p99_ms,
        row.failed,
        row.refused,
        row.malformed,
        row.cpu_s * 1e6 / n("requests").max(1) as f64,
        generator_cpu * 1e6 / n("requests").max(1) as f64,
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
    let tmp = tempfile::tempdir().unwrap();
    let queries = tmp.path().join("queries.txt");
    std::fs::write(&queries, vectors(2_000, 2).join("\n") + "\n").unwrap();
    let mut rows = Vec::new();
    // `BENCH_SYSTEMS=memsilo` (or `chroma`) for one system only; the tables are written
    // when both ran.
    let only = std::env::var("BENCH_SYSTEMS").ok();
    let systems: Vec<&str> = ["memsilo", "chroma"]
        .into_iter()
        .filter(|w| only.as_deref().is_none_or(|o| o.split(',').any(|x| x.trim() == *w)))
        .collect();
    for &which in &systems {
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
    if systems.len() == 2 {
        std::fs::write(out_dir.join("http.md"), md).unwrap();
        std::fs::write(out_dir.join("http.csv"), csv).unwrap();
    }
}
