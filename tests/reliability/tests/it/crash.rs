//! Crash safety: a real writer process (`crash_writer`) is killed with SIGKILL at random
//! points — some timed to land inside a 1,000-memory batch or a namespace purge and its
//! compaction — and after each kill the directory is reopened in-process and checked
//! against a model built from the writer's acknowledgements:
//!
//! - the store opens;
//! - every acknowledged namespace, memory (exact content) and key is there; the write in
//!   flight at the kill either happened entirely or not at all (a batch: all or none);
//! - nothing acknowledged as deleted (namespace, memory, revoked key) comes back;
//! - every memory checked is recalled by its exact vector, and each namespace's
//!   `memory_count` equals the model's.
//!
//! Default: 100 kill points (`MEMSILO_CRASH_POINTS` for more), seed `MEMSILO_CRASH_SEED`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use memsilo::{CreateTenant, Engine, ErrorCode, IsolationMode, Options, Recall};
use memsilo_reliability::{seed_from_env, vector_for, Rng};
use serde_json::Value;

#[derive(Default)]
struct Model {
    /// Live namespaces: name → (memory id → content).
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    deleted_namespaces: BTreeSet<String>,
    /// Memories deleted while their namespace lived: id → namespace.
    deleted_memories: HashMap<String, String>,
    /// Keys: id → (secret, namespace, revoked).
    keys: BTreeMap<String, (String, String, bool)>,
    /// Memories acknowledged since the last check (checked in full).
    fresh: Vec<(String, String)>,
}

impl Model {
    fn apply(&mut self, ack: &Value) {
        let s = |k: &str| ack[k].as_str().unwrap_or_default().to_owned();
        match ack["op"].as_str().unwrap_or_default() {
            "ns_create" => {
                self.namespaces.insert(s("ns"), BTreeMap::new());
            }
            "store" => self.add_memory(&s("ns"), s("id"), s("content")),
            "batch" => {
                let prefix = s("prefix");
                let ids = ack["ids"].as_array().cloned().unwrap_or_default();
                for (j, id) in ids.iter().enumerate() {
                    self.add_memory(
                        &s("ns"),
                        id.as_str().unwrap_or_default().to_owned(),
                        format!("{prefix}-{j}"),
                    );
                }
            }
            "key" => {
                self.keys.insert(s("key_id"), (s("key"), s("ns"), false));
            }
            "revoke" => {
                if let Some(k) = self.keys.get_mut(&s("key_id")) {
                    k.2 = true;
                }
            }
            "mem_delete" => self.remove_memory(&s("ns"), &s("id")),
            "forget" => {
                for id in ack["ids"].as_array().cloned().unwrap_or_default() {
                    self.remove_memory(&s("ns"), id.as_str().unwrap_or_default());
                }
            }
            "ns_delete" => {
                self.namespaces.remove(&s("ns"));
                self.deleted_namespaces.insert(s("ns"));
                self.deleted_memories.retain(|_, ns| *ns != s("ns"));
                self.fresh.retain(|(ns, _)| *ns != s("ns"));
            }
            _ => {}
        }
    }

    fn add_memory(&mut self, ns: &str, id: String, content: String) {
        self.fresh.push((ns.to_owned(), id.clone()));
        self.namespaces.get_mut(ns).expect("store into a known namespace").insert(id, content);
    }

    fn remove_memory(&mut self, ns: &str, id: &str) {
        if let Some(mems) = self.namespaces.get_mut(ns) {
            mems.remove(id);
            self.deleted_memories.insert(id.to_owned(), ns.to_owned());
        }
    }

    fn memory_total(&self) -> usize {
        self.namespaces.values().map(BTreeMap::len).sum()
    }
}

fn open(dir: &std::path::Path) -> Engine {
    Engine::open(dir, Options { background: false, ..Options::default() })
        .expect("the store opens after a kill")
}

/// Finds the memory stored with exactly `content` in `ns` by recalling its vector.
fn find_by_vector(root: &memsilo::Handle, ns: &str, content: &str) -> Option<String> {
    let hits = root
        .recall(Recall { top_k: Some(3), ..Recall::vector(vector_for(content)).namespace(ns) })
        .ok()?;
    hits.into_iter().find(|h| h.content == content).map(|h| h.id)
}

/// Decides what became of the write in flight at the kill, and records it in the model.
#[allow(clippy::collapsible_match)] // one arm per operation reads better than guards
fn resolve_in_flight(
    root: &memsilo::Handle,
    engine: &Engine,
    model: &mut Model,
    begin: &Value,
) -> String {
    let s = |k: &str| begin[k].as_str().unwrap_or_default().to_owned();
    let op = s("op");
    let exists = |ns: &str| root.get_namespace(ns).is_ok();
    match op.as_str() {
        "ns_create" => {
            if exists(&s("ns")) {
                model.apply(begin);
                return "ns_create committed".into();
            }
        }
        "store" => {
            if let Some(id) = find_by_vector(root, &s("ns"), &s("content")) {
                model.add_memory(&s("ns"), id, s("content"));
                return "store committed".into();
            }
        }
        "batch" => {
            let n = begin["n"].as_u64().unwrap_or(0) as usize;
            let count = root.get_namespace(&s("ns")).map_or(0, |n| n.memory_count) as usize;
            let known = model.namespaces.get(&s("ns")).map_or(0, BTreeMap::len);
            if count == known + n {
                for j in 0..n {
                    let content = format!("{}-{j}", s("prefix"));
                    let id = find_by_vector(root, &s("ns"), &content)
                        .unwrap_or_else(|| panic!("batch committed but {content} is not recalled"));
                    model.add_memory(&s("ns"), id, content);
                }
                return format!("batch of {n} committed");
            }
            assert_eq!(
                count, known,
                "a batch of {n} was cut: {count} memories, {known} before it (all or nothing)"
            );
            return format!("batch of {n} not committed");
        }
        "mem_delete" => {
            if root
                .get_memory(Some(&s("ns")), &s("id"))
                .is_err_and(|e| e.code() == ErrorCode::NotFound)
            {
                model.apply(begin);
                return "mem_delete committed".into();
            }
        }
        "forget" => {
            let ids: Vec<String> = begin["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            let gone = ids.iter().filter(|id| root.get_memory(Some(&s("ns")), id).is_err()).count();
            assert!(
                gone == 0 || gone == ids.len(),
                "batch_forget of {} was cut: {gone} gone",
                ids.len()
            );
            if gone > 0 {
                model.apply(begin);
                return "forget committed".into();
            }
        }
        "ns_delete" => {
            if !exists(&s("ns")) {
                model.apply(begin);
                return "ns_delete committed".into();
            }
        }
        "revoke" => {
            let key = model.keys.get(&s("key_id")).map(|k| k.0.clone()).unwrap_or_default();
            if engine.scoped(&key).is_err() {
                model.apply(begin);
                return "revoke committed".into();
            }
        }
        _ => {}
    }
    format!("{op} in flight")
}

/// Checks the reopened store against the model.
fn check(engine: &Engine, model: &mut Model, rng: &mut Rng, point: usize) {
    let root = engine.root();
    for (name, mems) in &model.namespaces {
        let ns = root
            .get_namespace(name)
            .unwrap_or_else(|e| panic!("kill {point}: acknowledged namespace {name} is gone: {e}"));
        assert_eq!(
            ns.memory_count as usize,
            mems.len(),
            "kill {point}: namespace {name} holds {} memories, the model {}",
            ns.memory_count,
            mems.len()
        );
    }
    for name in &model.deleted_namespaces {
        let e = root.get_namespace(name).expect_err("a deleted namespace came back");
        assert_eq!(e.code(), ErrorCode::NotFound, "kill {point}: deleted namespace {name}: {e}");
    }
    // Every memory written since the last check, plus a sample of older ones.
    let mut to_check: Vec<(String, String)> = std::mem::take(&mut model.fresh);
    if to_check.len() > 300 {
        let keep: Vec<_> = (0..300).map(|_| rng.below(to_check.len())).collect();
        to_check = keep.into_iter().map(|i| to_check[i].clone()).collect();
    }
    let all: Vec<(&String, &String)> =
        model.namespaces.iter().flat_map(|(ns, m)| m.keys().map(move |id| (ns, id))).collect();
    for _ in 0..all.len().min(100) {
        let (ns, id) = all[rng.below(all.len())];
        to_check.push((ns.clone(), id.clone()));
    }
    for (ns, id) in &to_check {
        let Some(content) = model.namespaces.get(ns).and_then(|m| m.get(id)) else { continue };
        let m = root.get_memory(Some(ns), id).unwrap_or_else(|e| {
            panic!("kill {point}: acknowledged memory {id} in {ns} is gone: {e}")
        });
        assert_eq!(&m.content, content, "kill {point}: memory {id} changed");
        let hit = find_by_vector(&root, ns, content);
        assert_eq!(
            hit.as_deref(),
            Some(id.as_str()),
            "kill {point}: memory {id} is not recalled by its exact vector"
        );
    }
    let deleted: Vec<_> =
        model.deleted_memories.iter().take(200).map(|(i, n)| (i.clone(), n.clone())).collect();
    for (id, ns) in deleted {
        let e = root.get_memory(Some(&ns), &id).expect_err("a deleted memory came back");
        assert_eq!(e.code(), ErrorCode::NotFound, "kill {point}: deleted memory {id}: {e}");
    }
    for (id, (secret, ns, revoked)) in &model.keys {
        let live = model.namespaces.contains_key(ns);
        match engine.scoped(secret) {
            Ok(h) if *revoked => panic!("kill {point}: revoked key {id} works again ({h:?})"),
            Ok(h) => {
                // The checker may outrun the tenant's rate limit; that is not a lost key.
                let r = loop {
                    let r = h.recall(Recall::vector(vector_for("probe")).namespace(ns.as_str()));
                    match r {
                        Err(e) if e.code() == ErrorCode::RateLimited => {
                            std::thread::sleep(Duration::from_millis(250));
                        }
                        r => break r,
                    }
                };
                match (live, r) {
                    (true, Err(e)) => panic!("kill {point}: key {id} no longer reaches {ns}: {e}"),
                    (false, Ok(_)) => {
                        panic!("kill {point}: key {id} reaches deleted namespace {ns}")
                    }
                    _ => {}
                }
            }
            Err(e) if *revoked || !live => assert_eq!(e.code(), ErrorCode::Unauthorized),
            Err(e) => panic!("kill {point}: acknowledged key {id} is refused: {e}"),
        }
    }
}

struct Run {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

fn start(dir: &std::path::Path, seed: u64, run: u64) -> Run {
    // Every other run lets the engine's background worker purge too, as the server does.
    let background: &[&str] = if run % 2 == 1 { &["background"] } else { &[] };
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
        .arg(dir)
        .arg(seed.to_string())
        .arg(run.to_string())
        .args(background)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("crash_writer starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(v) = serde_json::from_str::<Value>(&line) else { break };
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    Run { child, lines: rx }
}

#[test]
fn acknowledged_writes_survive_sigkill_at_random_points() {
    let seed = seed_from_env("MEMSILO_CRASH_SEED", 20_261_123);
    let points: usize =
        std::env::var("MEMSILO_CRASH_POINTS").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        for (name, mode) in
            [("crash_hybrid", IsolationMode::Hybrid), ("crash_physical", IsolationMode::Physical)]
        {
            engine
                .root()
                .create_tenant(CreateTenant {
                    name: name.into(),
                    isolation_mode: Some(mode),
                    ..Default::default()
                })
                .unwrap();
        }
    }
    let started = Instant::now();
    let mut model = Model::default();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let (mut acks, mut targeted) = (0usize, 0usize);
    for point in 0..points {
        let run = point as u64;
        let mut w = start(dir.path(), seed, run);
        let ready =
            w.lines.recv_timeout(Duration::from_secs(60)).expect("crash_writer became ready");
        assert!(ready.get("ready").is_some(), "crash_writer failed to start: {ready}");
        let mut lines_seen: Vec<Value> = Vec::new();
        // Every third kill waits for a large batch or a purge to begin and lands inside it.
        let target = point % 3 == 2;
        let deadline = Instant::now() + Duration::from_millis(rng.range(20, 350));
        let hard_deadline = Instant::now() + Duration::from_secs(4);
        loop {
            let now = Instant::now();
            if !target && now >= deadline {
                break;
            }
            if now >= hard_deadline {
                break;
            }
            match w.lines.recv_timeout(Duration::from_millis(2)) {
                Ok(v) => {
                    let hit = target
                        && v["begin"]["op"].as_str().is_some_and(|op| {
                            op == "purge"
                                || (op == "batch" && v["begin"]["n"].as_u64().unwrap_or(0) >= 500)
                        });
                    lines_seen.push(v);
                    if hit {
                        std::thread::sleep(Duration::from_micros(rng.range(0, 40_000)));
                        targeted += 1;
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        w.child.kill().expect("SIGKILL");
        let status = w.child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "crash_writer exited by itself ({status}) before the kill; see its stderr"
        );
        lines_seen.extend(w.lines.iter());
        let mut in_flight = None;
        for v in lines_seen {
            if let Some(b) = v.get("begin") {
                in_flight = Some(b.clone());
            } else if let Some(a) = v.get("ack") {
                model.apply(a);
                acks += 1;
                in_flight = None;
            } else if let Some(e) = v.get("error") {
                panic!("crash_writer failed: {e}");
            }
        }
        let engine = open(dir.path());
        let outcome = match &in_flight {
            Some(b) => resolve_in_flight(&engine.root(), &engine, &mut model, b),
            None => "between writes".into(),
        };
        *outcomes.entry(outcome).or_default() += 1;
        check(&engine, &mut model, &mut rng, point);
        drop(engine);
    }
    let took = started.elapsed();
    eprintln!(
        "crash safety: {points} kill points survived in {:.1}s ({targeted} aimed at a batch or purge); {acks} acknowledged writes; \
         final model: {} namespaces, {} memories, {} keys; {} namespaces deleted",
        took.as_secs_f64(),
        model.namespaces.len(),
        model.memory_total(),
        model.keys.len(),
        model.deleted_namespaces.len()
    );
    eprintln!("where the kills landed: {outcomes:?}");
    // A last open that also finishes every interrupted purge.
    let engine = open(dir.path());
    engine.run_pending_purges().expect("interrupted purges finish");
    assert_eq!(engine.pending_purges().unwrap(), 0);
    check(&engine, &mut model, &mut rng, points);
}

/// Targets of the `create_namespace` entries recorded `ok` in the instance audit log.
fn created_in_audit(root: &memsilo::Handle) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut cursor = None;
    loop {
        let q = memsilo::ListAudit {
            tenant_id: "instance".into(),
            action: Some("create_namespace".into()),
            cursor,
            limit: Some(1000),
            ..memsilo::ListAudit::default()
        };
        let page = root.list_audit(q).unwrap();
        out.extend(page.entries.into_iter().filter(|e| e.result == "ok").filter_map(|e| e.target));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// Group commit under SIGKILL: a writer with 32 threads (single stores, batches, forgets,
/// namespace creations and stores refused inside the group's transaction) is killed at a
/// random point, again and again on one directory. After each kill: every acknowledged
/// memory is there with its content, every acknowledged forget stayed forgotten, every
/// acknowledged namespace exists, nothing refused was written, a write in flight is all or
/// nothing, and each namespace's `memory_count` equals what the acknowledgements allow; every
/// acknowledged namespace has its audit entry (committed with it) and the chain verifies.
#[test]
fn acknowledged_grouped_writes_survive_sigkill() {
    let seed = seed_from_env("MEMSILO_CRASH_SEED", 20_261_201);
    let points: usize =
        std::env::var("MEMSILO_GROUPED_POINTS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    // Per run: its namespace's memories (id → content) and its acknowledged namespaces.
    let mut runs: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let mut namespaces: Vec<String> = Vec::new();
    let (mut acks, mut in_flight_total, mut refused_total) = (0usize, 0usize, 0usize);
    for run in 0..points {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
            .args([
                "grouped".as_ref(),
                dir.path().as_os_str(),
                run.to_string().as_ref(),
                "32".as_ref(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("crash_writer starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<Value>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(v) = line.map(|l| serde_json::from_str::<Value>(&l)) else { break };
                let Ok(v) = v else { break };
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let ready = rx.recv_timeout(Duration::from_secs(60)).expect("crash_writer became ready");
        let ns = ready["ready"]["ns"].as_str().expect("ready names its namespace").to_owned();
        std::thread::sleep(Duration::from_millis(rng.range(150, 700)));
        child.kill().expect("SIGKILL");
        assert!(child.wait().unwrap().code().is_none(), "crash_writer exited before the kill");
        let first = format!("g{run}-first");
        let mut memories = BTreeMap::from([(first.clone(), first)]);
        let mut forgotten = BTreeSet::new();
        let mut refused = Vec::new();
        // Per thread: the write begun and not yet answered.
        let mut unanswered: HashMap<u64, Value> = HashMap::new();
        for v in &rx {
            if let Some(e) = v.get("error") {
                panic!("crash_writer failed: {e}");
            }
            let (kind, body) = v.as_object().and_then(|o| o.iter().next()).expect("one key");
            let t = body["t"].as_u64().unwrap_or_default();
            let ids = || body["ids"].as_array().cloned().unwrap_or_default();
            match kind.as_str() {
                "begin" => {
                    unanswered.insert(t, body.clone());
                }
                "ack" => {
                    unanswered.remove(&t);
                    acks += 1;
                    match body["op"].as_str().unwrap_or_default() {
                        "store" | "batch" => {
                            for id in ids() {
                                let id = id.as_str().unwrap_or_default().to_owned();
                                memories.insert(id.clone(), id);
                            }
                        }
                        "forget" => {
                            for id in ids() {
                                let id = id.as_str().unwrap_or_default();
                                memories.remove(id);
                                forgotten.insert(id.to_owned());
                            }
                        }
                        "ns_create" => namespaces.push(body["ns"].as_str().unwrap().to_owned()),
                        other => panic!("unexpected acknowledgement of {other}"),
                    }
                }
                "refused" => {
                    unanswered.remove(&t);
                    assert_eq!(body["code"], "invalid_argument", "{body}");
                    refused.extend(ids());
                }
                _ => {}
            }
        }
        let engine = open(dir.path());
        let root = engine.root();
        let present = |id: &str| match root.get_memory(Some(&ns), id) {
            Ok(m) => {
                assert_eq!(m.content, id, "run {run}: memory {id} has other content");
                true
            }
            Err(e) if e.code() == ErrorCode::NotFound => false,
            Err(e) => panic!("run {run}: reading {id}: {e}"),
        };
        in_flight_total += unanswered.len();
        refused_total += refused.len();
        for begin in unanswered.values() {
            let ids: Vec<String> = begin["ids"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            match begin["op"].as_str().unwrap_or_default() {
                "store" | "batch" => {
                    let found: Vec<bool> = ids.iter().map(|id| present(id)).collect();
                    assert!(
                        found.iter().all(|f| *f) || found.iter().all(|f| !*f),
                        "run {run}: a batch in flight was half written: {begin}"
                    );
                    if found.first() == Some(&true) {
                        for id in ids {
                            memories.insert(id.clone(), id);
                        }
                    }
                }
                "forget" => {
                    if !present(&ids[0]) {
                        memories.remove(&ids[0]);
                    }
                }
                "bad" => assert!(!present(&ids[0]), "run {run}: refused memory was written"),
                "ns_create" => {
                    let name = begin["ns"].as_str().unwrap();
                    if root.get_namespace(name).is_ok() {
                        namespaces.push(name.to_owned());
                    }
                }
                other => panic!("unexpected write in flight: {other}"),
            }
        }
        for id in memories.keys() {
            assert!(present(id), "run {run}: acknowledged memory {id} is missing after the kill");
        }
        for id in &forgotten {
            assert!(!present(id), "run {run}: forgotten memory {id} came back");
        }
        for id in &refused {
            let id = id.as_str().unwrap();
            assert!(!present(id), "run {run}: refused memory {id} was written");
        }
        runs.push((ns, memories));
        // Nothing else: every run's count is exactly what its model holds.
        for (ns, memories) in &runs {
            let count = root.get_namespace(ns).unwrap().memory_count;
            assert_eq!(count, memories.len() as u64, "run {run}: {ns} holds other memories");
        }
        for name in &namespaces {
            root.get_namespace(name)
                .unwrap_or_else(|e| panic!("run {run}: acknowledged namespace {name}: {e}"));
        }
        // Each namespace created was committed with its audit entry: the acknowledged ones
        // (and any in flight that exists) have theirs, and the chain verifies.
        let recorded = created_in_audit(&root);
        for name in &namespaces {
            assert!(recorded.contains(name), "run {run}: namespace {name} has no audit entry");
        }
        assert!(root.verify_audit("instance").unwrap().ok, "run {run}: the audit chain breaks");
        drop(engine);
    }
    eprintln!(
        "grouped crash safety: {points} kills, {acks} acknowledged writes from 32 threads, \
         {in_flight_total} in flight at the kills, {refused_total} refused inside groups"
    );
}

/// Stores and namespace creations over HTTP into a real `memsilo serve` (hashing embedder,
/// so each awaits its group commit without holding a server thread: `Handle::awaits_commit`)
/// from 16 clients at once, killed with SIGKILL at a random point, again and again on one
/// directory. After each kill: every acknowledged memory is there with its content, every
/// acknowledged namespace is there, and there are no more memories or namespaces than were
/// acknowledged or in flight at a kill.
#[test]
fn acknowledged_http_stores_survive_sigkill() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use crate::http::{call, send, ServerProcess, ADMIN_KEY};

    const CLIENTS: usize = 16;
    let seed = seed_from_env("MEMSILO_CRASH_SEED", 20_261_202);
    let points: usize =
        std::env::var("MEMSILO_HTTP_CRASH_POINTS").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let auth = format!("Bearer {ADMIN_KEY}");
    // Acknowledged memories (id → content) and namespaces, and stores and creations
    // unanswered at a kill.
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut created: Vec<String> = Vec::new();
    let (mut in_flight, mut creating) = (0, 0);
    for run in 0..points {
        let mut server = ServerProcess::start(
            dir.path(),
            Some(ADMIN_KEY),
            &["--embedder", "hash", "--log-level", "warn"],
        );
        let addr = server.addr;
        if run == 0 {
            let made = call(
                addr,
                ADMIN_KEY,
                "create_namespace",
                &serde_json::json!({ "name": "http-crash" }),
            )
            .expect("encodable");
            assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|t| {
                let (stop, auth, answered) = (stop.clone(), auth.clone(), answered.clone());
                std::thread::spawn(move || {
                    let headers =
                        [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
                    let (mut stored, mut made) = (Vec::new(), Vec::new());
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            return (stored, made, (0, 0));
                        }
                        // Every fourth request creates a namespace (its catalog commit is
                        // grouped with the other clients' creations).
                        if i % 4 == 3 {
                            let name = format!("made-{run}-{t}-{i}");
                            let body = serde_json::json!({ "name": name });
                            match send(
                                addr,
                                "POST",
                                "/v1/namespaces",
                                &headers,
                                body.to_string().as_bytes(),
                            ) {
                                Ok(r) if r.status == 201 => made.push(name),
                                Ok(r) => panic!(
                                    "run {run}: creation answered {} {}",
                                    r.status,
                                    String::from_utf8_lossy(&r.body)
                                ),
                                Err(_) => return (stored, made, (0, 1)),
                            }
                            continue;
                        }
                        let content = format!("run {run} client {t} memory {i}");
                        let body =
                            serde_json::json!({ "namespace": "http-crash", "content": content });
                        match send(
                            addr,
                            "POST",
                            "/v1/memory/store",
                            &headers,
                            body.to_string().as_bytes(),
                        ) {
                            Ok(r) if r.status == 201 => {
                                let id = r.json()["id"]
                                    .as_str()
                                    .expect("a stored memory's id")
                                    .to_owned();
                                stored.push((id, content));
                                answered.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => panic!(
                                "run {run}: store answered {} {}",
                                r.status,
                                String::from_utf8_lossy(&r.body)
                            ),
                            // The server was killed with this store unanswered.
                            Err(_) => return (stored, made, (1, 0)),
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        // The kill lands while stores are being answered (the first may take long on a busy
        // machine's disk).
        let started = Instant::now();
        while answered.load(Ordering::Relaxed) == 0 && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.range(100, 800)));
        server.child.kill().expect("SIGKILL");
        assert!(
            server.child.wait().unwrap().code().is_none(),
            "memsilo serve exited before the kill"
        );
        stop.store(true, Ordering::Relaxed);
        let before = acked.len();
        for c in clients {
            let (stored, made, (unstored, uncreated)) = c.join().expect("client thread");
            acked.extend(stored);
            created.extend(made);
            in_flight += unstored;
            creating += uncreated;
        }
        assert!(acked.len() > before, "run {run}: no store was acknowledged before the kill");
        let engine = open(dir.path());
        let root = engine.root();
        for (id, content) in &acked {
            let m = root
                .get_memory(Some("http-crash"), id)
                .unwrap_or_else(|e| panic!("run {run}: acknowledged memory {id} is gone: {e}"));
            assert_eq!(&m.content, content, "run {run}: memory {id} changed");
        }
        for name in &created {
            root.get_namespace(name).unwrap_or_else(|e| {
                panic!("run {run}: acknowledged namespace {name} is gone: {e}")
            });
        }
        let page = memsilo::Page { offset: None, limit: Some(1) };
        let namespaces = root.list_namespaces(page, None).unwrap().total_count as usize;
        assert!(
            (created.len() + 1..=created.len() + 1 + creating).contains(&namespaces),
            "run {run}: {namespaces} namespaces, {} acknowledged, {creating} unanswered at kills",
            created.len() + 1
        );
        let count = root.get_namespace("http-crash").expect("the namespace").memory_count as usize;
        assert!(
            (acked.len()..=acked.len() + in_flight).contains(&count),
            "run {run}: {count} memories, {} acknowledged, {in_flight} unanswered at kills",
            acked.len()
        );
    }
    eprintln!(
        "HTTP crash safety: {points} kills, {} acknowledged stores and {} namespace creations from {CLIENTS} clients, {in_flight} and {creating} unanswered at the kills",
        acked.len(),
        created.len()
    );
}
