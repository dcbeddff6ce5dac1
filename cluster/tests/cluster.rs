//! Cluster tests on loopback: real etcd members, a real S3 endpoint (moto), real `memsilo`
//! processes killed with SIGKILL. Run through `make test-cluster`, which starts etcd and moto
//! (scripts/cluster-env.sh) and builds `memsilo` with the `cluster` feature. Without that
//! environment each test says so and passes, unless `MEMSILO_CLUSTER_REQUIRED` is set (the
//! make target sets it), so `cargo test --workspace` stays usable on a machine without etcd.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memsilo_cluster::wal::{LogError, NamespaceLog, Published, Record, Writer};
use serde_json::{json, Value};

const ADMIN: &str = "cluster-test-admin-key-0123456789";
const TTL: u64 = 3;

struct Env {
    etcd: String,
    s3: String,
    etcd_pids: Vec<i32>,
    bin: PathBuf,
}

fn env() -> Option<Env> {
    let etcd = std::env::var("MEMSILO_TEST_ETCD").ok();
    let s3 = std::env::var("MEMSILO_TEST_S3").ok();
    let (Some(etcd), Some(s3)) = (etcd, s3) else {
        assert!(
            std::env::var_os("MEMSILO_CLUSTER_REQUIRED").is_none(),
            "MEMSILO_TEST_ETCD / MEMSILO_TEST_S3 not set: run `make test-cluster`"
        );
        eprintln!("skipped: no cluster environment (run `make test-cluster`)");
        return None;
    };
    let etcd_pids = std::env::var("MEMSILO_TEST_ETCD_PIDS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| p.parse().ok())
        .collect();
    let bin = std::env::var_os("MEMSILO_BIN").map_or_else(
        || {
            let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
                || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
                PathBuf::from,
            );
            target.join("debug/memsilo")
        },
        PathBuf::from,
    );
    Some(Env { etcd, s3, etcd_pids, bin })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

struct Node {
    child: Child,
    url: String,
    /// The node's takeover and snapshot lines (stderr).
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Node {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on a child we spawned.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(env: &Env, prefix: &str, id: &str) -> Node {
    start_node_with(env, prefix, id, &[])
}

fn start_node_with(env: &Env, prefix: &str, id: &str, extra: &[&str]) -> Node {
    start_node_env(env, prefix, id, extra, &[])
}

fn start_node_env(
    env: &Env,
    prefix: &str,
    id: &str,
    extra: &[&str],
    vars: &[(&str, &str)],
) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(&env.bin)
        .args(["serve", "--cluster", "--listen", "127.0.0.1:0", "--embedder", "hash"])
        .args(["--etcd", &env.etcd, "--s3", &env.s3, "--cluster-prefix", prefix, "--node-id", id])
        .args(["--lease-ttl", &TTL.to_string(), "--log-level", "warn"])
        .args(extra)
        .arg("--data")
        .arg(dir.path())
        .env("MEMSILO_ADMIN_KEY", ADMIN)
        .env("MEMSILO_OFFLINE", "1")
        .envs(vars.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {}: {e} (build it with --features cluster)", env.bin.display())
        });
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("memsilo exited before listening").unwrap();
        if let Some(rest) = line.strip_prefix("memsilo listening on ") {
            break rest.trim().to_owned();
        }
        assert!(!line.starts_with("memsilo: "), "memsilo failed to start: {line}");
    };
    // Keep draining stderr (takeover lines are printed there) so the child never blocks.
    let kept = Arc::new(Mutex::new(Vec::new()));
    let keep = kept.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("memsilo cluster") {
                eprintln!("  [{line}]");
                keep.lock().unwrap().push(line);
            }
        }
    });
    Node { child, url, lines: kept, _dir: dir }
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .proxy(None)
            .build(),
    )
}

/// One call: (status, JSON body).
fn call(url: &str, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json");
    let resp = match body {
        Some(b) => agent().run(req.body(serde_json::to_vec(&b).unwrap()).unwrap()),
        None => agent().run(req.body(()).unwrap()),
    };
    match resp {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let text = r.body_mut().read_to_string().unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        }
        Err(e) => (0, json!({ "transport": e.to_string() })),
    }
}

/// A list call: (status, `X-Total-Count`, `X-Next-Cursor`, JSON body).
fn call_listed(url: &str, path: &str, key: &str) -> (u16, Option<u64>, Option<String>, Value) {
    let req = ureq::http::Request::builder()
        .method("GET")
        .uri(format!("{url}{path}"))
        .header("Authorization", format!("Bearer {key}"));
    let mut r = agent().run(req.body(()).unwrap()).unwrap();
    let header =
        |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (total, cursor) =
        (header("x-total-count").and_then(|t| t.parse().ok()), header("x-next-cursor"));
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (status, total, cursor, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The names in a list of namespaces.
fn names(listed: &Value) -> Vec<String> {
    listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["name"].as_str())
        .map(str::to_owned)
        .collect()
}

/// Waits until `key` is known on every node (the watch brings it).
fn await_key(nodes: &[Node], key: &str) {
    let started = Instant::now();
    while nodes.iter().any(|n| call(&n.url, "GET", "/v1/whoami", key, None).0 != 200) {
        assert!(started.elapsed() < Duration::from_secs(10), "the key never reached every node");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn create_namespace(url: &str, ns: &str) {
    let (s, b) = call(url, "POST", "/v1/namespaces", ADMIN, Some(json!({ "name": ns })));
    assert_eq!(s, 201, "{b}");
}

fn store(url: &str, key: &str, ns: &str, content: &str) -> (u16, Value) {
    call(url, "POST", "/v1/memory/store", key, Some(json!({ "namespace": ns, "content": content })))
}

fn get(url: &str, key: &str, ns: &str, id: &str) -> (u16, Value) {
    call(url, "GET", &format!("/v1/memory/{id}?namespace={ns}"), key, None)
}

fn log_entries(env: &Env, prefix: &str, ns: &str) -> Vec<(u64, memsilo_cluster::wal::Entry)> {
    let store = memsilo_cluster::object_store_from_url(&env.s3).unwrap();
    runtime().block_on(NamespaceLog::new(store, prefix, ns).read_from(0)).unwrap()
}

/// Epochs never go down along the log: once a newer owner wrote its fence, no older owner
/// wrote after it.
fn assert_single_writer(entries: &[(u64, memsilo_cluster::wal::Entry)]) {
    let mut epoch = i64::MIN;
    for (seq, e) in entries {
        assert!(
            e.epoch >= epoch,
            "log position {seq} written by epoch {} after epoch {epoch}",
            e.epoch
        );
        epoch = e.epoch;
    }
}

#[test]
fn a_second_writer_is_fenced_by_the_store_itself() {
    let Some(env) = env() else { return };
    let store = memsilo_cluster::object_store_from_url(&env.s3).unwrap();
    let prefix = unique("wal");
    let rt = runtime();
    rt.block_on(async {
        let log = NamespaceLog::new(store.clone(), &prefix, "ns a/b");
        let rec = |i: u32| Record::new("store_memory", json!({ "i": i }));
        let mut old = Writer::take_over(log.clone(), 10, "old").await.unwrap().writer;
        old.append(vec![rec(1), rec(2)]).await.unwrap();
        // A new owner replays both writes and fences the log.
        let new = Writer::take_over(log.clone(), 11, "new").await.unwrap();
        assert_eq!(new.records, vec![rec(1), rec(2)]);
        let mut new = new.writer;
        // The old owner's next append is refused by the store, and so is every later one.
        assert!(matches!(old.append(vec![rec(3)]).await, Err(LogError::Fenced(_))));
        assert!(matches!(old.append(vec![rec(4)]).await, Err(LogError::Fenced(_))));
        new.append(vec![rec(5)]).await.unwrap();
        let all: Vec<Record> =
            log.read_from(0).await.unwrap().into_iter().flat_map(|(_, e)| e.records).collect();
        assert_eq!(all, vec![rec(1), rec(2), rec(5)]);
        // An owner with an older epoch cannot take over a log a newer one wrote.
        assert!(Writer::take_over(log, 9, "stale").await.is_err());
        // What the log adds to a write: one conditional put of a small object.
        let mut times = Vec::new();
        for i in 0..60 {
            let t = Instant::now();
            new.append(vec![rec(100 + i)]).await.unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        eprintln!(
            "MEASURE log append (one conditional put of one write, moto on loopback): p50 {:?} p90 {:?}",
            times[30], times[54]
        );
    });
}

/// Snapshots and the manifest against the S3 endpoint: a published snapshot lets the log below
/// it go (fences kept); a new owner loads snapshot + the log after it; the old owner, fenced,
/// can neither move the manifest nor append, even where the log it would write was deleted.
#[test]
fn a_fenced_old_owner_cannot_move_the_manifest() {
    let Some(env) = env() else { return };
    let store = memsilo_cluster::object_store_from_url(&env.s3).unwrap();
    let prefix = unique("manifest");
    runtime().block_on(async {
        let log = NamespaceLog::new(store.clone(), &prefix, "snap");
        let rec = |i: u32| Record::new("store_memory", json!({ "i": i }));
        let first = Writer::take_over(log.clone(), 10, "old").await.unwrap();
        assert!(first.snapshot.is_none());
        let (mut old, mut old_manifest) = (first.writer, first.checkpointer);
        for i in 1..=3 {
            old.append(vec![rec(i)]).await.unwrap(); // positions 1-3 (its fence is 0)
        }
        let p = old_manifest.publish(old.next_seq(), b"snapshot one".to_vec()).await.unwrap();
        assert_eq!(p, Published { log_from: 4, deleted: 3 });
        assert_eq!(log.positions_below(4).await.unwrap(), vec![0], "the fence is kept");
        old.append(vec![rec(4)]).await.unwrap(); // position 4

        // A new owner: the old snapshot, then only the log after it.
        let second = Writer::take_over(log.clone(), 11, "new").await.unwrap();
        assert_eq!(second.snapshot.as_deref(), Some(&b"snapshot one"[..]));
        assert_eq!(second.records, vec![rec(4)]);
        assert_eq!(second.checkpointer.manifest().epoch, 11);
        // The old owner cannot move the manifest: its compare-and-swap names a version the
        // new owner replaced. Its snapshot object is not left behind.
        let refused = old_manifest.publish(5, b"stale snapshot".to_vec()).await;
        assert!(matches!(refused, Err(LogError::Fenced(_))), "{:?}", refused.err());
        let m = log.read_manifest().await.unwrap().unwrap().manifest;
        assert_eq!((m.epoch, m.writer.as_str(), m.log_from), (11, "new", 4));

        let (mut new, mut new_manifest) = (second.writer, second.checkpointer);
        new.append(vec![rec(5)]).await.unwrap(); // position 6 (its fence is 5)
        let p = new_manifest.publish(new.next_seq(), b"snapshot two".to_vec()).await.unwrap();
        assert_eq!(p, Published { log_from: 7, deleted: 2 });
        assert_eq!(log.positions_below(7).await.unwrap(), vec![0, 5], "fences are kept");
        // The old owner's next position (5) is the new owner's fence, kept: refused by the
        // store although the log around it is gone.
        assert!(matches!(old.append(vec![rec(99)]).await, Err(LogError::Fenced(5))));
        assert!(log.read_from(0).await.unwrap().iter().all(|(_, e)| e.records != vec![rec(99)]));

        // A third owner loads snapshot two and nothing after it; an older epoch cannot.
        let third = Writer::take_over(log.clone(), 12, "third").await.unwrap();
        assert_eq!(third.snapshot.as_deref(), Some(&b"snapshot two"[..]));
        assert!(third.records.is_empty());
        assert!(Writer::take_over(log.clone(), 11, "new again").await.is_err());
        // Only the snapshot the manifest names is left.
        let snapshots: Vec<_> = {
            use futures::TryStreamExt;
            use object_store::ObjectStore as _;
            let dir = object_store::path::Path::from(prefix.clone());
            store.list(Some(&dir)).try_collect::<Vec<_>>().await.unwrap()
        };
        let names: Vec<String> = snapshots
            .iter()
            .map(|m| m.location.to_string())
            .filter(|p| p.contains("/snapshots/"))
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].ends_with("snapshots/00000000000000000007-11.jsonl"), "{names:?}");
    });
}

/// A namespace snapshotted every 3 log objects, its owner killed: the node that takes it over
/// loads the snapshot and the log after it (not the whole log), every acknowledged write is
/// there, and recall works on the restored vectors.
#[test]
fn a_new_owner_loads_the_snapshot_and_the_log_after_it() {
    let Some(env) = env() else { return };
    let prefix = unique("snap");
    let extra = ["--snapshot-every", "3"];
    let mut nodes: Vec<Node> =
        (1..=2).map(|i| start_node_with(&env, &prefix, &format!("n{i}"), &extra)).collect();
    let ns = "snapped";
    create_namespace(&nodes[0].url, ns);
    let mut ids = Vec::new();
    for i in 0..10 {
        let (s, m) = store(&nodes[0].url, ADMIN, ns, &format!("note {i} about the harbour"));
        assert_eq!(s, 201, "{m}");
        ids.push(m["id"].as_str().unwrap().to_owned());
    }
    let store_ = memsilo_cluster::object_store_from_url(&env.s3).unwrap();
    let log = NamespaceLog::new(store_, &prefix, ns);
    let rt = runtime();
    // Snapshots run in the background: wait for one past the 9th write and its sweep, after
    // which the log below it is gone but for the fence of the first owner.
    let t = Instant::now();
    let manifest = loop {
        let m = rt.block_on(log.read_manifest()).unwrap().map(|s| s.manifest);
        let below = match &m {
            Some(m) if m.log_from >= 9 => rt.block_on(log.positions_below(m.log_from)).unwrap(),
            _ => Vec::new(),
        };
        if below == [0] {
            break m.unwrap();
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no snapshot swept the log: manifest {m:?}, log objects below it {below:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(manifest.snapshot.is_some());
    for i in 10..12 {
        let (s, m) = store(&nodes[0].url, ADMIN, ns, &format!("note {i} about the harbour"));
        assert_eq!(s, 201, "{m}");
        ids.push(m["id"].as_str().unwrap().to_owned());
    }
    nodes[0].signal(libc::SIGKILL);
    nodes.remove(0);
    let t = Instant::now();
    while get(&nodes[0].url, ADMIN, ns, &ids[0]).0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(30), "node 2 never took the namespace over");
        std::thread::sleep(Duration::from_millis(50));
    }
    for (i, id) in ids.iter().enumerate() {
        let (s, m) = get(&nodes[0].url, ADMIN, ns, id);
        assert_eq!(s, 200, "acknowledged write {i} ({id}) lost: {m}");
    }
    let (s, hits) = call(
        &nodes[0].url,
        "POST",
        "/v1/memory/recall",
        ADMIN,
        Some(json!({ "namespace": ns, "query": "note 4 about the harbour", "top_k": 3 })),
    );
    assert_eq!(s, 200, "{hits}");
    assert!(hits.to_string().contains(&ids[4]), "{hits}");
    let takeover = nodes[0].lines.lock().unwrap().iter().find(|l| l.contains("owns")).cloned();
    let takeover = takeover.expect("node 2 printed no takeover line");
    assert!(
        !takeover.contains("snapshot of 0 memories"),
        "node 2 did not load the snapshot: {takeover}"
    );
    let m = rt.block_on(log.read_manifest()).unwrap().unwrap().manifest;
    assert_eq!(m.writer, "n2", "the new owner moves the manifest to its epoch first");
}

#[test]
fn any_node_serves_any_namespace_and_keys_stay_in_their_namespace() {
    let Some(env) = env() else { return };
    let prefix = unique("fwd");
    let nodes: Vec<Node> = (1..=3).map(|i| start_node(&env, &prefix, &format!("n{i}"))).collect();
    let (alpha, beta) = ("alpha", "beta");
    create_namespace(&nodes[0].url, alpha);
    create_namespace(&nodes[1].url, beta);
    let (s, _) =
        call(&nodes[2].url, "POST", "/v1/namespaces", ADMIN, Some(json!({ "name": alpha })));
    assert_eq!(s, 409, "a namespace is created once, cluster-wide");
    // Written through one node, read through the others.
    let (s, m) = store(&nodes[1].url, ADMIN, alpha, "the deploy key rotates on Fridays");
    assert_eq!(s, 201, "{m}");
    let id = m["id"].as_str().unwrap().to_owned();
    for n in &nodes {
        let (s, got) = get(&n.url, ADMIN, alpha, &id);
        assert_eq!((s, got["content"].as_str()), (200, Some("the deploy key rotates on Fridays")));
        let (s, hits) = call(
            &n.url,
            "POST",
            "/v1/memory/recall",
            ADMIN,
            Some(json!({ "namespace": alpha, "query": "deploy key", "top_k": 3 })),
        );
        assert_eq!(s, 200, "{hits}");
        assert!(hits.to_string().contains(&id), "recall on {} misses the memory: {hits}", n.url);
    }
    // A key for alpha (read only) issued on node 1, used on nodes 2 and 3.
    let (s, k) = call(
        &nodes[0].url,
        "POST",
        "/v1/keys",
        ADMIN,
        Some(json!({ "name": "reader", "namespaces": [{ "namespace": alpha, "access": "read" }] })),
    );
    assert_eq!(s, 201, "{k}");
    let key = k["key"].as_str().unwrap().to_owned();
    assert!(k.get("secret_sha256").is_none());
    let (s, who) = call(&nodes[2].url, "GET", "/v1/whoami", &key, None);
    assert_eq!((s, who["principal"].as_str()), (200, Some("scoped")), "{who}");
    assert_eq!(get(&nodes[2].url, &key, alpha, &id).0, 200);
    // Isolation, from every node: no write with a read key, nothing of beta, with the same
    // answer for a namespace that exists and one that does not.
    for n in &nodes {
        assert_eq!(store(&n.url, &key, alpha, "x").0, 403);
        assert_eq!(store(&n.url, &key, beta, "x").0, 403);
        let (s1, e1) = get(&n.url, &key, beta, &id);
        let (s2, e2) = get(&n.url, &key, "no-such-namespace", &id);
        assert_eq!((s1, s2), (403, 403));
        assert_eq!(e1["code"], e2["code"]);
        let (s, _) = call(&n.url, "POST", "/v1/namespaces", &key, Some(json!({ "name": "mine" })));
        assert_eq!(s, 403);
    }
    assert_eq!(call(&nodes[1].url, "GET", "/v1/whoami", "msk_garbage", None).0, 401);
    // A write key for alpha, through every node: a batch that slips in a memory for beta is
    // refused whole (nothing reaches beta), and a request posing as forwarded (the hop header
    // nodes add) is checked like any other.
    let (status, issued) = call(
        &nodes[0].url,
        "POST",
        "/v1/keys",
        ADMIN,
        Some(
            json!({ "name": "writer", "namespaces": [{ "namespace": alpha, "access": "write" }] }),
        ),
    );
    assert_eq!(status, 201, "{issued}");
    let writer = issued["key"].as_str().unwrap().to_owned();
    for n in &nodes {
        let t = Instant::now();
        while call(&n.url, "GET", "/v1/whoami", &writer, None).0 != 200 {
            assert!(t.elapsed() < Duration::from_secs(10), "the new key never reached {}", n.url);
            std::thread::sleep(Duration::from_millis(5));
        }
        let batch = json!({ "namespace": alpha, "memories": [
            { "id": "smuggled-ok", "content": "fine" },
            { "id": "smuggled", "namespace": beta, "content": "into beta" },
        ] });
        let (status, refusal) =
            call(&n.url, "POST", "/v1/memory/store_batch", &writer, Some(batch));
        assert_eq!(
            (status, refusal["field"].as_str()),
            (400, Some("memories[1].namespace")),
            "{refusal}"
        );
        let req = ureq::http::Request::builder()
            .method("GET")
            .uri(format!("{}/v1/memory/{id}?namespace={beta}", n.url))
            .header("Authorization", format!("Bearer {writer}"))
            .header("x-memsilo-hops", "1")
            .body(())
            .unwrap();
        let status = agent().run(req).unwrap().status().as_u16();
        assert_eq!(status, 403, "a request posing as forwarded reached beta through {}", n.url);
    }
    for missing in ["smuggled", "smuggled-ok"] {
        assert_eq!(get(&nodes[0].url, ADMIN, beta, missing).0, 404);
        assert_eq!(get(&nodes[0].url, ADMIN, alpha, missing).0, 404);
    }
}

#[test]
fn a_key_revoked_on_node_1_is_refused_on_node_3() {
    let Some(env) = env() else { return };
    let prefix = unique("revoke");
    let nodes: Vec<Node> = (1..=3).map(|i| start_node(&env, &prefix, &format!("n{i}"))).collect();
    create_namespace(&nodes[0].url, "notes");
    let (s, k) = call(
        &nodes[0].url,
        "POST",
        "/v1/keys",
        ADMIN,
        Some(json!({ "name": "w", "namespaces": [{ "namespace": "notes", "access": "write" }] })),
    );
    assert_eq!(s, 201, "{k}");
    let (key, id) = (k["key"].as_str().unwrap().to_owned(), k["id"].as_str().unwrap().to_owned());
    // The new key reaches node 3 through the watch.
    let t = Instant::now();
    while call(&nodes[2].url, "GET", "/v1/whoami", &key, None).0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(10), "new key never reached node 3");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(store(&nodes[2].url, &key, "notes", "before").0, 201);
    let (s, r) = call(&nodes[0].url, "DELETE", &format!("/v1/keys/{id}"), ADMIN, None);
    assert_eq!(s, 200, "{r}");
    let revoked = Instant::now();
    loop {
        let (s, _) = store(&nodes[2].url, &key, "notes", "after");
        if s == 401 {
            break;
        }
        assert_eq!(s, 201);
        assert!(
            revoked.elapsed() < Duration::from_secs(10),
            "revoked key still accepted on node 3"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    eprintln!("MEASURE revocation reached node 3 in {} ms", revoked.elapsed().as_millis());
    for n in &nodes {
        assert_eq!(call(&n.url, "GET", "/v1/whoami", &key, None).0, 401);
    }
}

/// What cluster mode serves beyond stores and reads of one memory: listing, counting and
/// exporting a namespace from any node; operations not served yet are refused up front with
/// `invalid_argument` naming the operation (never a 404, a 500 or a half-done write).
#[test]
fn listings_are_served_from_any_node() {
    let Some(env) = env() else { return };
    let prefix = unique("served");
    let nodes: Vec<Node> = (1..=2).map(|i| start_node(&env, &prefix, &format!("n{i}"))).collect();
    let ns = "served";
    create_namespace(&nodes[0].url, ns);
    for i in 0..5 {
        assert_eq!(store(&nodes[0].url, ADMIN, ns, &format!("item {i}")).0, 201);
    }
    for n in &nodes {
        let (s, listed) = call(
            &n.url,
            "POST",
            "/v1/memory/list",
            ADMIN,
            Some(json!({ "namespace": ns, "limit": 3 })),
        );
        assert_eq!(s, 200, "{listed}");
        assert_eq!(listed["memories"].as_array().map(Vec::len), Some(3), "{listed}");
        let (s, counted) =
            call(&n.url, "POST", "/v1/memory/count", ADMIN, Some(json!({ "namespace": ns })));
        assert_eq!((s, counted["count"].as_u64()), (200, Some(5)), "{counted}");
    }
    // A tenant that does not exist has no audit log to read (as on one node).
    let (s, e) = call(&nodes[1].url, "GET", "/api/v1/tenants/x/audit", ADMIN, None);
    assert_eq!((s, e["error"].as_str()), (404, Some("not_found")), "{e}");
}

/// Every node serves what one node serves besides the API table: `/healthz`, `/openapi.json`,
/// `/metrics` (its own requests; the admin key or the metrics token only) and the console;
/// the streaming export and import are refused with an error naming their paged forms.
#[test]
fn every_node_serves_health_openapi_metrics_and_the_console() {
    let Some(env) = env() else { return };
    let prefix = unique("own");
    let extra = ["--metrics-token", "cluster-scraper-token-0123456789"];
    let nodes: Vec<Node> =
        (1..=2).map(|i| start_node_with(&env, &prefix, &format!("n{i}"), &extra)).collect();
    let ns = "own";
    create_namespace(&nodes[0].url, ns);
    let (s, made) = call(
        &nodes[0].url,
        "POST",
        "/v1/keys",
        ADMIN,
        Some(json!({ "name": "w", "namespaces": [{ "namespace": ns, "access": "write" }] })),
    );
    assert_eq!(s, 201, "{made}");
    let scoped = made["key"].as_str().unwrap().to_owned();
    await_key(&nodes, &scoped);
    let acme = create_tenant(&nodes[0].url, json!({ "name": "acme" }));
    let viewer = json!({ "name": "v", "tenant_id": acme, "role": "viewer" });
    let (s, viewer) = call(&nodes[0].url, "POST", "/v1/keys", ADMIN, Some(viewer));
    assert_eq!(s, 201, "{viewer}");
    let viewer = viewer["key"].as_str().unwrap().to_owned();
    await_key(&nodes, &viewer);
    let text = |url: &str, path: &str, key: Option<&str>| {
        let mut req = ureq::http::Request::builder().method("GET").uri(format!("{url}{path}"));
        if let Some(k) = key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let mut r = agent().run(req.body(()).unwrap()).unwrap();
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        (r.status().as_u16(), ct, r.body_mut().read_to_string().unwrap_or_default())
    };
    for n in &nodes {
        // One store received by this node (node 1's is forwarded to node 0, the owner, which
        // counts it too, after node 0's counters were read below).
        assert_eq!(store(&n.url, &scoped, ns, "counted").0, 201);
        let (s, health) = call(&n.url, "GET", "/healthz", ADMIN, None);
        assert_eq!((s, health["status"].as_str()), (200, Some("ok")), "{health}");
        let (s, ct, body) = text(&n.url, "/openapi.json", None);
        assert_eq!((s, ct.as_deref()), (200, Some("application/json")));
        let doc: Value = serde_json::from_str(&body).unwrap();
        assert!(doc["paths"]["/v1/memory/store"]["post"].is_object(), "{}", doc["paths"]);
        let (s, ct, body) = text(&n.url, "/metrics", Some(ADMIN));
        assert_eq!(s, 200, "{body}");
        assert!(ct.unwrap_or_default().starts_with("text/plain"));
        assert!(
            body.contains(r#"memsilo_http_requests_total{method="POST",route="/v1/memory/store",status="201"} 1"#),
            "{body}"
        );
        // The tenant's requests (await_key's whoami on every node) in its own series.
        let tenant_line =
            format!(r#"memsilo_tenant_requests_total{{tenant_id="{acme}",class="2xx"}}"#);
        assert!(body.contains(&tenant_line), "{body}");
        assert_eq!(text(&n.url, "/metrics", Some("cluster-scraper-token-0123456789")).0, 200);
        let (s, _, e) = text(&n.url, "/metrics", Some(&scoped));
        assert_eq!(s, 403, "{e}");
        assert_eq!(text(&n.url, "/metrics", None).0, 401);
        // The console is served (503 with how to build it when this binary lacks it).
        let (s, _, page) = text(&n.url, "/console", None);
        assert!(s == 200 || (s == 503 && page.contains("make console")), "{s} {page}");
        let (s, e) = call(&n.url, "GET", &format!("/v1/namespaces/{ns}/export"), ADMIN, None);
        assert_eq!((s, e["error"].as_str()), (400, Some("invalid_argument")), "{e}");
        assert!(e["message"].as_str().unwrap().contains("/export/page"), "{e}");
        let (s, e) =
            call(&n.url, "POST", &format!("/v1/namespaces/{ns}/import"), ADMIN, Some(json!({})));
        assert_eq!((s, e["error"].as_str()), (400, Some("invalid_argument")), "{e}");
        assert!(e["message"].as_str().unwrap().contains("/import/batch"), "{e}");
        // A method a route does not take gets one node's JSON refusal naming the ones it does.
        let (s, e) = call(&n.url, "DELETE", "/openapi.json", ADMIN, None);
        assert_eq!((s, e["error"].as_str()), (405, Some("method_not_allowed")), "{e}");
        assert!(e["message"].as_str().unwrap().ends_with("allowed: GET"), "{e}");
        let (s, e) = call(&n.url, "PATCH", "/v1/memory/store", ADMIN, Some(json!({})));
        assert_eq!((s, e["error"].as_str()), (405, Some("method_not_allowed")), "{e}");
    }
}

/// A call as Dakera's SDK sends it (its `User-Agent`): (status, JSON body).
fn dakera_call(
    url: &str,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .header("User-Agent", "dakera-py/0.9.0");
    let resp = match body {
        Some(b) => agent().run(req.body(serde_json::to_vec(&b).unwrap()).unwrap()),
        None => agent().run(req.body(()).unwrap()),
    };
    let mut r = resp.unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A JSON value's shape: its fields and the types of their values (an array by its first
/// item), so that two answers with different ids and times compare equal.
fn skeleton(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), skeleton(v))).collect())
        }
        Value::Array(a) => Value::Array(a.first().map(skeleton).into_iter().collect()),
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
    }
}

/// The namespace guide's calls in Dakera's paths and shapes, each sent to `urls[i % 3]`
/// (one URL three times for one node): (step, status, answer).
fn dakera_flow(urls: [&str; 3]) -> Vec<(&'static str, u16, Value)> {
    let ns = "dakera-guide";
    let mut out = Vec::new();
    let mut step = |name: &'static str, (s, v): (u16, Value)| {
        out.push((name, s, v.clone()));
        v
    };
    step(
        "create_namespace",
        dakera_call(urls[0], "POST", "/v1/namespaces", ADMIN, Some(json!({ "name": ns }))),
    );
    let made = step(
        "create_namespace_key",
        dakera_call(
            urls[1],
            "POST",
            &format!("/v1/namespaces/{ns}/keys"),
            ADMIN,
            Some(json!({ "name": "backend", "scope": "write" })),
        ),
    );
    let key = made["key"].as_str().unwrap_or_default().to_owned();
    let key_id = made["key_id"].as_str().unwrap_or_default().to_owned();
    let started = Instant::now();
    while urls.iter().any(|u| call(u, "GET", "/v1/whoami", &key, None).0 != 200) {
        assert!(started.elapsed() < Duration::from_secs(10), "the key never reached every node");
        std::thread::sleep(Duration::from_millis(5));
    }
    let policy = json!({
        "working_ttl_seconds": 3600, "episodic_ttl_seconds": 3600, "semantic_ttl_seconds": 3600,
        "procedural_ttl_seconds": 3600, "decay_rate": 0.0, "consolidation_enabled": true,
    });
    let path = format!("/v1/namespaces/{ns}/memory_policy");
    step("set_memory_policy", dakera_call(urls[2], "PUT", &path, ADMIN, Some(policy)));
    step("get_memory_policy", dakera_call(urls[0], "GET", &path, ADMIN, None));
    let stored = step(
        "store_memory",
        dakera_call(
            urls[0],
            "POST",
            "/v1/memory/store",
            &key,
            Some(json!({
                "agent_id": ns, "content": "the deploy runs every day at noon", "importance": 0.7,
                "tags": ["ops"],
            })),
        ),
    );
    let id = stored["id"].as_str().unwrap_or_default().to_owned();
    step(
        "recall",
        dakera_call(
            urls[2],
            "POST",
            "/v1/memory/recall",
            &key,
            Some(json!({ "agent_id": ns, "query": "when does the deploy run", "top_k": 3 })),
        ),
    );
    step(
        "get_memory",
        dakera_call(urls[1], "GET", &format!("/v1/memory/get/{id}?agent_id={ns}"), &key, None),
    );
    // An error from the namespace's owner reaches the client in Dakera's error shape too.
    step(
        "get_missing_memory",
        dakera_call(urls[2], "GET", &format!("/v1/memory/get/no-such?agent_id={ns}"), &key, None),
    );
    step(
        "list_namespace_keys",
        dakera_call(urls[2], "GET", &format!("/v1/namespaces/{ns}/keys"), ADMIN, None),
    );
    step("list_namespaces", dakera_call(urls[1], "GET", "/v1/namespaces", ADMIN, None));
    let session = step(
        "start_session",
        dakera_call(urls[0], "POST", "/v1/sessions/start", &key, Some(json!({ "agent_id": ns }))),
    );
    let sid = session["session"]["session_id"].as_str().unwrap_or_default().to_owned();
    step("get_session", dakera_call(urls[2], "GET", &format!("/v1/sessions/{sid}"), &key, None));
    step(
        "batch_forget",
        dakera_call(
            urls[1],
            "DELETE",
            "/v1/memories/forget/batch",
            &key,
            Some(json!({ "agent_id": ns, "filter": { "tags": ["ops"] } })),
        ),
    );
    step(
        "revoke_namespace_key",
        dakera_call(urls[2], "DELETE", &format!("/v1/namespaces/{ns}/keys/{key_id}"), ADMIN, None),
    );
    out
}

/// Dakera's SDK pointed at any node gets what one node answers: its routes and shapes,
/// each operation run on the namespace's owner (a store through node 1, recall through
/// node 3), every answer of the same status and shape as a single node's.
#[test]
fn the_dakera_routes_are_served_by_every_node_in_one_nodes_shapes() {
    let Some(env) = env() else { return };
    let prefix = unique("dakera");
    let nodes: Vec<Node> = (1..=3).map(|i| start_node(&env, &prefix, &format!("n{i}"))).collect();
    let single = start_single_node(&env);
    let want = dakera_flow([&single.url, &single.url, &single.url]);
    let got = dakera_flow([&nodes[0].url, &nodes[1].url, &nodes[2].url]);
    for ((step, s1, one), (_, s3, many)) in want.iter().zip(&got) {
        assert_eq!((step, *s3), (step, *s1), "{step}: cluster {many} / one node {one}");
        assert_eq!(skeleton(many), skeleton(one), "{step}: cluster {many} / one node {one}");
    }
    let answer = |name: &str| &got.iter().find(|(s, _, _)| *s == name).unwrap().2;
    let id = answer("store_memory")["id"].clone();
    assert_eq!(answer("recall")["memories"][0]["id"], id, "{}", answer("recall"));
    assert_eq!(answer("get_memory")["id"], id);
    let missing = answer("get_missing_memory");
    assert_eq!(missing["code"], "VECTOR_NOT_FOUND", "{missing}");
    assert_eq!(missing["details"], "Memory not found: no-such", "{missing}");
    assert_eq!(answer("get_memory_policy")["semantic_ttl_seconds"], json!(3600));
    assert!(answer("set_memory_policy")["warnings"].to_string().contains("consolidation_enabled"));
    assert_eq!(answer("list_namespace_keys")["keys"].as_array().map(Vec::len), Some(1));
    let listed = answer("list_namespaces");
    assert_eq!(listed["namespaces"][0]["vector_count"], json!(1), "{listed}");
    assert_eq!(answer("get_session")["session_id"], answer("start_session")["session"]["id"]);
    assert_eq!(answer("batch_forget")["deleted_count"], json!(1));
    assert_eq!(answer("revoke_namespace_key")["success"], json!(true));
}

/// A single-node `memsilo serve` (the same binary, without `--cluster`).
fn start_single_node(env: &Env) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(&env.bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--embedder", "hash", "--log-level", "warn"])
        .arg("--data")
        .arg(dir.path())
        .env("MEMSILO_ADMIN_KEY", ADMIN)
        .env("MEMSILO_OFFLINE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("memsilo exited before listening").unwrap();
        if let Some(rest) = line.strip_prefix("memsilo listening on ") {
            break rest.trim().to_owned();
        }
    };
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    Node { child, url, lines: Arc::default(), _dir: dir }
}

/// Namespaces are listed from any node as on one node: in name order, by offset or by cursor
/// pages (a cursor made by one node continues on another), a bare array with `X-Total-Count`,
/// each namespace with its owner's figures; a tenant key sees its tenant's namespaces, a scoped
/// key its grants.
#[test]
fn namespaces_are_listed_from_any_node_by_cursor_pages() {
    let Some(env) = env() else { return };
    let prefix = unique("ns-list");
    let nodes: Vec<Node> = (1..=3).map(|i| start_node(&env, &prefix, &format!("n{i}"))).collect();
    let acme = create_tenant(&nodes[0].url, json!({ "name": "acme" }));
    for ns in ["ns-c", "ns-a", "ns-b"] {
        create_namespace(&nodes[1].url, ns);
    }
    for ns in ["acme-2", "acme-1"] {
        let body = json!({ "name": ns, "tenant_id": acme });
        assert_eq!(call(&nodes[2].url, "POST", "/v1/namespaces", ADMIN, Some(body)).0, 201);
    }
    for i in 0..3 {
        assert_eq!(store(&nodes[2].url, ADMIN, "ns-b", &format!("note {i}")).0, 201);
    }
    let all = ["acme-1", "acme-2", "ns-a", "ns-b", "ns-c"];
    // Pages of two, each asked of the next node with the cursor the previous node gave.
    let (mut listed, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let url = &nodes[pages % 3].url;
        let path = match &cursor {
            Some(c) => format!("/v1/namespaces?limit=2&cursor={c}"),
            None => "/v1/namespaces?limit=2".to_owned(),
        };
        let (status, total, next, body) = call_listed(url, &path, ADMIN);
        assert_eq!((status, total), (200, Some(5)), "{body}");
        listed.extend(names(&body));
        pages += 1;
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!((listed.as_slice(), pages), (all.map(String::from).as_slice(), 3));
    let (_, _, _, body) = call_listed(&nodes[0].url, "/v1/namespaces", ADMIN);
    let b = body.as_array().unwrap().iter().find(|n| n["name"] == "ns-b").unwrap();
    assert_eq!(b["memory_count"].as_u64(), Some(3), "the owner's figures: {b}");
    let acme_1 = body.as_array().unwrap().iter().find(|n| n["name"] == "acme-1").unwrap();
    assert_eq!(acme_1["tenant_id"].as_str(), Some(acme.as_str()), "{acme_1}");
    assert!(acme_1["created_at"].as_str().is_some_and(|t| t.starts_with("20")), "{acme_1}");
    let (status, total, _, body) =
        call_listed(&nodes[1].url, "/v1/namespaces?offset=1&limit=2", ADMIN);
    assert_eq!(
        (status, total, names(&body)),
        (200, Some(5), vec!["acme-2".to_owned(), "ns-a".into()])
    );
    let path = format!("/v1/namespaces?tenant_id={acme}");
    let (_, total, _, body) = call_listed(&nodes[2].url, &path, ADMIN);
    assert_eq!((total, names(&body)), (Some(2), vec!["acme-1".to_owned(), "acme-2".into()]));
    // An altered cursor is refused, naming the field.
    let (_, _, cursor, _) = call_listed(&nodes[0].url, "/v1/namespaces?limit=1", ADMIN);
    let mut altered = cursor.unwrap();
    altered.replace_range(2..4, if &altered[2..4] == "00" { "01" } else { "00" });
    let (status, err) =
        call(&nodes[1].url, "GET", &format!("/v1/namespaces?cursor={altered}"), ADMIN, None);
    assert_eq!((status, err["field"].as_str()), (400, Some("cursor")), "{err}");

    // A tenant key lists its tenant's namespaces only; a scoped key its grants.
    let (_, viewer) = call(
        &nodes[0].url,
        "POST",
        "/v1/keys",
        ADMIN,
        Some(json!({ "name": "v", "tenant_id": acme, "role": "viewer" })),
    );
    let viewer = viewer["key"].as_str().unwrap().to_owned();
    let grant = json!({ "name": "s", "namespaces": [{ "namespace": "ns-c", "access": "read" }] });
    let (_, scoped) = call(&nodes[0].url, "POST", "/v1/keys", ADMIN, Some(grant));
    let scoped = scoped["key"].as_str().unwrap().to_owned();
    await_key(&nodes, &viewer);
    await_key(&nodes, &scoped);
    for n in &nodes {
        let (status, total, _, body) = call_listed(&n.url, "/v1/namespaces", &viewer);
        assert_eq!(
            (status, total, names(&body)),
            (200, Some(2), vec!["acme-1".to_owned(), "acme-2".into()])
        );
        let (status, total, _, body) = call_listed(&n.url, "/v1/namespaces", &scoped);
        assert_eq!((status, total, names(&body)), (200, Some(1), vec!["ns-c".to_owned()]));
    }
    let (status, err) = call(&nodes[2].url, "GET", "/v1/namespaces?tenant_id=other", &viewer, None);
    assert_eq!((status, err["error"].as_str()), (403, Some("forbidden")), "{err}");
}

/// Keys from any node, as on one node: listed (revoked ones left out; the admin key sees all,
/// a tenant admin its tenant's, a viewer none), rotated (the old secret refused on every node,
/// the new one accepted), and a key's `expires_at` refused on every node from that moment.
#[test]
fn keys_are_listed_rotated_and_expire_on_every_node() {
    let Some(env) = env() else { return };
    let prefix = unique("keys");
    let nodes: Vec<Node> = (1..=3).map(|i| start_node(&env, &prefix, &format!("n{i}"))).collect();
    let (one, two, three) = (nodes[0].url.as_str(), nodes[1].url.as_str(), nodes[2].url.as_str());
    let acme = create_tenant(one, json!({ "name": "acme" }));
    create_namespace(one, "plain");
    let issue = |body: Value| {
        let (status, k) = call(one, "POST", "/v1/keys", ADMIN, Some(body));
        assert_eq!(status, 201, "{k}");
        assert!(k.get("secret_sha256").is_none(), "{k}");
        (k["key"].as_str().unwrap().to_owned(), k["id"].as_str().unwrap().to_owned())
    };
    let grant = json!([{ "namespace": "plain", "access": "write" }]);
    let (scoped, scoped_id) = issue(json!({ "name": "s", "namespaces": grant }));
    let (admin, admin_id) = issue(json!({ "name": "a", "tenant_id": acme, "role": "admin" }));
    let (viewer, viewer_id) = issue(json!({ "name": "v", "tenant_id": acme, "role": "viewer" }));
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    let body = json!({ "name": "x", "namespaces": grant, "expires_at": past });
    let (status, err) = call(one, "POST", "/v1/keys", ADMIN, Some(body));
    assert_eq!((status, err["field"].as_str()), (400, Some("expires_at")), "{err}");
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(4);
    let (expiring, _) =
        issue(json!({ "name": "x", "namespaces": grant, "expires_at": expires_at }));
    for key in [&scoped, &admin, &viewer, &expiring] {
        await_key(&nodes, key);
    }

    let (status, total, _, listed) = call_listed(two, "/v1/keys", ADMIN);
    assert_eq!((status, total), (200, Some(4)), "{listed}");
    let ids: Vec<&str> =
        listed.as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "in id order, as on one node");
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["prefix"].is_string() && k.get("secret_sha256").is_none()));
    let (_, _, _, page) = call_listed(three, "/v1/keys?offset=3&limit=2", ADMIN);
    assert_eq!(page.as_array().map(Vec::len), Some(1), "{page}");
    let (status, _) = call(two, "DELETE", &format!("/v1/keys/{scoped_id}"), ADMIN, None);
    assert_eq!(status, 200);
    let (_, total, _, _) = call_listed(three, "/v1/keys", ADMIN);
    assert_eq!(total, Some(3), "a revoked key is left out");
    let path = format!("/v1/keys?tenant_id={acme}");
    for (url, key) in [(one, ADMIN), (three, admin.as_str())] {
        let (status, total, _, listed) = call_listed(url, &path, key);
        let mut got: Vec<&str> =
            listed.as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
        got.sort_unstable();
        let mut want = vec![admin_id.as_str(), viewer_id.as_str()];
        want.sort_unstable();
        assert_eq!((status, total, got), (200, Some(2), want), "{listed}");
    }
    let (_, total, _, _) = call_listed(two, "/v1/keys", &admin);
    assert_eq!(total, Some(2), "a tenant admin lists its tenant's keys");
    let (status, err) = call(two, "GET", "/v1/keys?tenant_id=other", &admin, None);
    assert_eq!((status, err["error"].as_str()), (403, Some("forbidden")), "{err}");
    let (status, err) = call(two, "GET", "/v1/keys", &viewer, None);
    assert_eq!((status, err["error"].as_str()), (403, Some("forbidden")), "{err}");

    // Rotation: a viewer cannot see the key; the tenant admin rotates its own through node 2.
    let rotate = format!("/v1/keys/{admin_id}/rotate");
    assert_eq!(call(two, "POST", &rotate, &viewer, None).0, 404);
    let (status, rotated) = call(two, "POST", &rotate, &admin, None);
    assert_eq!((status, rotated["id"].as_str()), (200, Some(admin_id.as_str())), "{rotated}");
    let new_text = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new_text, admin);
    let started = Instant::now();
    while nodes.iter().any(|n| call(&n.url, "GET", "/v1/whoami", &admin, None).0 != 401) {
        assert!(started.elapsed() < Duration::from_secs(10), "the old secret still works");
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!(
        "MEASURE rotated key's old secret refused on every node {} ms after the answer",
        started.elapsed().as_millis()
    );
    await_key(&nodes, &new_text);

    expires_on_every_node(&nodes, &expiring, expires_at);
}

/// Uses `key` on node 3 until its `expires_at`, then checks it is refused there (`401`, "expired")
/// from that moment and on every node; prints how long after `expires_at` node 3 refused it.
fn expires_on_every_node(
    nodes: &[Node],
    expiring: &str,
    expires_at: chrono::DateTime<chrono::Utc>,
) {
    let three = nodes[2].url.as_str();
    // Expiry: the key works on node 3 until its time, then is refused on every node.
    assert_eq!(store(three, expiring, "plain", "before expiry").0, 201);
    let left = (expires_at - chrono::Utc::now())
        .to_std()
        .expect("the test was too slow: the key expired already");
    std::thread::sleep(left.saturating_sub(Duration::from_millis(200)));
    let mut refused_after = None;
    while refused_after.is_none() {
        let (status, err) = store(three, expiring, "plain", "around expiry");
        let now = chrono::Utc::now();
        if status == 401 {
            assert!(now >= expires_at, "refused before its expiry: {err}");
            assert!(err["message"].as_str().unwrap_or("").contains("expired"), "{err}");
            refused_after = Some(now - expires_at);
        } else {
            assert_eq!(status, 201, "{err}");
            assert!(now < expires_at + chrono::Duration::seconds(5), "an expired key still works");
        }
    }
    for n in nodes {
        assert_eq!(call(&n.url, "GET", "/v1/whoami", expiring, None).0, 401);
    }
    eprintln!(
        "MEASURE an expired key refused on node 3 {} ms after its expires_at",
        refused_after.unwrap().num_milliseconds()
    );
}

/// `batch_forget`, `set_memory_policy` and `import_namespace` from any node run on the owner and
/// are logged like stores: after SIGKILL of the owner, the node that takes the namespace over
/// has the forget, the policy and the imported memories (with the ids the owner gave them).
/// A scoped write key forgets but does not change the policy or import (namespace
/// administration); a forget by `below_importance` is refused naming it.
#[test]
fn forgets_policies_and_imports_are_logged_and_replayed_after_a_sigkill() {
    let Some(env) = env() else { return };
    let prefix = unique("admin-ops");
    let mut nodes: Vec<Node> =
        (1..=2).map(|i| start_node(&env, &prefix, &format!("n{i}"))).collect();
    let ns = "admin-ops";
    create_namespace(&nodes[0].url, ns);
    let two = nodes[1].url.clone();
    for (i, tag) in ["old", "old", "keep", "keep"].iter().enumerate() {
        let body = json!({ "namespace": ns, "content": format!("note {i}"), "tags": [tag] });
        assert_eq!(call(&nodes[0].url, "POST", "/v1/memory/store", ADMIN, Some(body)).0, 201);
    }
    let grant = json!({ "name": "w", "namespaces": [{ "namespace": ns, "access": "write" }] });
    let (_, scoped) = call(&nodes[0].url, "POST", "/v1/keys", ADMIN, Some(grant));
    let scoped = scoped["key"].as_str().unwrap().to_owned();
    await_key(&nodes, &scoped);
    let forget = |key: &str, body: Value| call(&two, "POST", "/v1/memory/forget", key, Some(body));
    let (status, err) = forget(ADMIN, json!({ "namespace": ns, "below_importance": 0.9 }));
    assert_eq!((status, err["field"].as_str()), (400, Some("below_importance")), "{err}");
    let (status, forgotten) = forget(&scoped, json!({ "namespace": ns, "tags": ["old"] }));
    assert_eq!((status, forgotten["forgotten"].as_u64()), (200, Some(2)), "{forgotten}");
    let policy = json!({ "decay_rate": 0.25, "min_importance": 0.1, "ttl_default": 86400 });
    let path = format!("/v1/namespaces/{ns}/policy");
    let (status, err) = call(&two, "PUT", &path, &scoped, Some(policy.clone()));
    assert_eq!((status, err["error"].as_str()), (403, Some("forbidden")), "{err}");
    let (status, set) = call(&two, "PUT", &path, ADMIN, Some(policy.clone()));
    assert_eq!(status, 200, "{set}");
    let lines = json!({ "lines": [
        { "kind": "memory", "content": "imported without an id" },
        "{\"kind\": \"memory\", \"id\": \"0190b3c4-0000-7000-8000-000000000001\", \"content\": \"imported as text\"}",
    ]});
    let import = format!("/v1/namespaces/{ns}/import/batch");
    // A write key imports, as on one node, as long as the import keeps the policy.
    let (_, current) = call(&two, "GET", &path, ADMIN, None);
    let with_policy = |policy: &Value, id: &str| {
        json!({ "lines": [
            { "kind": "namespace", "format": "memsilo-export/3", "name": ns, "policy": policy },
            { "kind": "memory", "id": id, "content": "imported by a write key" },
        ]})
    };
    let other = json!({ "decay_rate": 0.5, "min_importance": 0.1, "ttl_default": 86400 });
    let body = with_policy(&other, "0190b3c4-0000-7000-8000-000000000003");
    let (status, err) = call(&two, "POST", &import, &scoped, Some(body));
    assert_eq!((status, err["error"].as_str()), (403, Some("forbidden")), "{err}");
    assert!(err["message"].as_str().unwrap_or("").contains("policy"), "{err}");
    let body = with_policy(&current, "0190b3c4-0000-7000-8000-000000000002");
    let (status, imported) = call(&two, "POST", &import, &scoped, Some(body));
    assert_eq!((status, imported["memories"].as_u64()), (200, Some(1)), "{imported}");
    let (status, imported) = call(&two, "POST", &import, ADMIN, Some(lines));
    assert_eq!((status, imported["memories"].as_u64()), (200, Some(2)), "{imported}");
    // The id the owner gave the line without one is in the log.
    let logged = log_entries(&env, &prefix, ns);
    let given = logged
        .iter()
        .flat_map(|(_, e)| e.records.iter())
        .rfind(|r| r.op == "import_namespace")
        .and_then(|r| r.args["lines"][0]["id"].as_str().map(str::to_owned))
        .expect("the import is logged with the id it was given");
    let ops: Vec<&str> =
        logged.iter().flat_map(|(_, e)| e.records.iter().map(|r| r.op.as_str())).collect();
    for op in ["batch_forget", "set_memory_policy", "import_namespace"] {
        assert!(ops.contains(&op), "{op} not logged: {ops:?}");
    }

    nodes[0].signal(libc::SIGKILL);
    nodes.remove(0);
    let started = Instant::now();
    let counted = loop {
        let (status, counted) =
            call(&two, "POST", "/v1/memory/count", ADMIN, Some(json!({ "namespace": ns })));
        if status == 200 {
            break counted;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "node 2 never took it over");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(counted["count"].as_u64(), Some(5), "2 kept + 3 imported: {counted}");
    let (status, got) = call(&two, "GET", &format!("/v1/namespaces/{ns}/policy"), ADMIN, None);
    assert_eq!((status, &got), (200, &policy), "{got}");
    let by_write_key = "0190b3c4-0000-7000-8000-000000000002";
    for id in [given.as_str(), "0190b3c4-0000-7000-8000-000000000001", by_write_key] {
        assert_eq!(get(&two, ADMIN, ns, id).0, 200, "imported memory {id} lost");
    }
}

fn hex_name(name: &str) -> String {
    name.bytes().fold(String::new(), |mut out, b| {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Every object under a namespace's prefix in object storage, with its bytes.
fn objects_of(env: &Env, prefix: &str, ns: &str) -> Vec<(String, Vec<u8>)> {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let store = memsilo_cluster::object_store_from_url(&env.s3).unwrap();
    let dir = object_store::path::Path::from(format!("{prefix}/ns/{}", hex_name(ns)));
    runtime().block_on(async {
        let metas: Vec<_> = store.list(Some(&dir)).try_collect().await.unwrap();
        let mut out = Vec::new();
        for m in metas {
            // An object listed can be gone by now (a snapshot deletes the log it covers).
            let Ok(got) = store.get(&m.location).await else { continue };
            let Ok(bytes) = got.bytes().await else { continue };
            out.push((m.location.to_string(), bytes.to_vec()));
        }
        out
    })
}

/// Deleting a namespace through any node: from the answer on, it is `not_found` on every node
/// and in no listing; no object under its prefix in object storage holds any of its content
/// (log objects, snapshots and the manifest are deleted; the fences left hold no writes); its
/// tenant counts one namespace less; and a namespace created again under the name starts
/// empty. Only the admin key and the tenant's admins delete it.
#[test]
fn a_deleted_namespace_is_gone_on_every_node_and_erased_from_object_storage() {
    let Some(env) = env() else { return };
    let prefix = unique("ns-delete");
    let extra = ["--snapshot-every", "3"];
    let nodes: Vec<Node> =
        (1..=3).map(|i| start_node_with(&env, &prefix, &format!("n{i}"), &extra)).collect();
    let acme =
        create_tenant(&nodes[0].url, json!({ "name": "acme", "quotas": { "max_namespaces": 1 } }));
    let ns = "doomed";
    let body = json!({ "name": ns, "tenant_id": acme });
    assert_eq!(call(&nodes[0].url, "POST", "/v1/namespaces", ADMIN, Some(body.clone())).0, 201);
    let marker = unique("MARKER");
    let mut ids = Vec::new();
    for i in 0..8 {
        let (s, m) = store(&nodes[i % 2].url, ADMIN, ns, &format!("{marker} secret {i}"));
        assert_eq!(s, 201, "{m}");
        ids.push(m["id"].as_str().unwrap().to_owned());
    }
    // Wait for a snapshot, so that there is one to erase too.
    let started = Instant::now();
    while !objects_of(&env, &prefix, ns).iter().any(|(p, _)| p.contains("/snapshots/")) {
        assert!(started.elapsed() < Duration::from_secs(20), "no snapshot was taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    // And a write in the log after it.
    let (s, m) = store(&nodes[2].url, ADMIN, ns, &format!("{marker} secret 8"));
    assert_eq!(s, 201, "{m}");
    ids.push(m["id"].as_str().unwrap().to_owned());
    let holds_marker = |objects: &[(String, Vec<u8>)]| -> Vec<String> {
        let m = marker.as_bytes();
        objects
            .iter()
            .filter(|(_, b)| b.windows(m.len()).any(|w| w == m))
            .map(|(p, _)| p.clone())
            .collect()
    };
    assert!(
        !holds_marker(&objects_of(&env, &prefix, ns)).is_empty(),
        "the content is in object storage"
    );

    // A scoped write key and a tenant editor key do not delete it.
    let grant = json!({ "name": "w", "namespaces": [{ "namespace": ns, "access": "write" }] });
    let (_, scoped) = call(&nodes[0].url, "POST", "/v1/keys", ADMIN, Some(grant));
    let scoped = scoped["key"].as_str().unwrap().to_owned();
    let (_, editor) = call(
        &nodes[0].url,
        "POST",
        "/v1/keys",
        ADMIN,
        Some(json!({ "name": "e", "tenant_id": acme, "role": "editor" })),
    );
    let editor = editor["key"].as_str().unwrap().to_owned();
    await_key(&nodes, &scoped);
    await_key(&nodes, &editor);
    for key in [&scoped, &editor] {
        let (status, err) =
            call(&nodes[1].url, "DELETE", &format!("/v1/namespaces/{ns}"), key, None);
        assert_eq!((status, err["error"].as_str()), (403, Some("forbidden")), "{err}");
    }

    let started = Instant::now();
    let (status, deleted) =
        call(&nodes[2].url, "DELETE", &format!("/v1/namespaces/{ns}"), ADMIN, None);
    let took = started.elapsed();
    assert_eq!((status, deleted["name"].as_str()), (200, Some(ns)), "{deleted}");
    assert!(deleted["deleted_at"].as_str().is_some(), "{deleted}");
    eprintln!(
        "MEASURE namespace deletion (9 writes, a snapshot) answered in {} ms",
        took.as_millis()
    );
    for n in &nodes {
        let (status, err) = call(&n.url, "GET", &format!("/v1/namespaces/{ns}"), ADMIN, None);
        assert_eq!((status, err["error"].as_str()), (404, Some("not_found")), "{err}");
        assert_eq!(get(&n.url, ADMIN, ns, &ids[0]).0, 404);
        assert_eq!(store(&n.url, ADMIN, ns, "after the deletion").0, 404);
        let (_, _, _, listed) = call_listed(&n.url, "/v1/namespaces", ADMIN);
        assert!(!names(&listed).contains(&ns.to_owned()), "{listed}");
        // A tenant key is told `forbidden`, as for any namespace it cannot see.
        assert_eq!(store(&n.url, &editor, ns, "after the deletion").0, 403);
    }
    let left = objects_of(&env, &prefix, ns);
    assert_eq!(holds_marker(&left), Vec::<String>::new(), "content left in object storage");
    assert!(left.iter().all(|(p, _)| p.contains("/log/")), "only fences are left: {left:?}");
    let (_, tenant) = call(&nodes[1].url, "GET", &format!("/api/v1/tenants/{acme}"), ADMIN, None);
    assert_eq!(tenant["usage"]["namespaces"].as_u64(), Some(0), "{tenant}");

    // The name again (the tenant's max_namespaces is 1): a new, empty namespace.
    assert_eq!(call(&nodes[1].url, "POST", "/v1/namespaces", ADMIN, Some(body)).0, 201);
    for n in &nodes {
        let (status, counted) =
            call(&n.url, "POST", "/v1/memory/count", ADMIN, Some(json!({ "namespace": ns })));
        assert_eq!((status, counted["count"].as_u64()), (200, Some(0)), "{counted}");
        assert_eq!(get(&n.url, ADMIN, ns, &ids[8]).0, 404);
    }
    assert_eq!(store(&nodes[2].url, &editor, ns, "a new life").0, 201);
}

/// Two cluster nodes and the admin's calls for tenants on them.
fn tenant_nodes(env: &Env, prefix: &str) -> Vec<Node> {
    (1..=2).map(|i| start_node(env, prefix, &format!("n{i}"))).collect()
}

fn create_tenant(url: &str, body: Value) -> String {
    let (status, created) = call(url, "POST", "/api/v1/tenants", ADMIN, Some(body));
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

fn add_member(url: &str, tenant: &str, user: &str) -> (u16, Value) {
    let body = json!({ "user_identifier": user, "role": "viewer" });
    call(url, "POST", &format!("/api/v1/tenants/{tenant}/members"), ADMIN, Some(body))
}

/// A suspended tenant's keys are refused on every node (`403 forbidden`, as on one node: core's
/// `Tenant::admits_keys` on the node's cached tenant) until it is active again. A key's tenant
/// is the one its namespaces belong to, as the engine decides it.
#[test]
fn a_suspended_tenants_keys_are_refused_on_every_node_until_it_is_active() {
    let Some(env) = env() else { return };
    let prefix = unique("suspend");
    let nodes = tenant_nodes(&env, &prefix);
    let (one, two) = (nodes[0].url.as_str(), nodes[1].url.as_str());
    let acme = create_tenant(one, json!({ "name": "acme" }));
    let other = create_tenant(one, json!({ "name": "other" }));
    for (ns, tenant) in [("acme-notes", &acme), ("other-notes", &other)] {
        let body = json!({ "name": ns, "tenant_id": tenant });
        let (status, created) = call(one, "POST", "/v1/namespaces", ADMIN, Some(body));
        assert_eq!(status, 201, "{created}");
    }
    let grant = |ns: &str| json!([{ "namespace": ns, "access": "write" }]);
    let (status, k) = call(
        one,
        "POST",
        "/v1/keys",
        ADMIN,
        Some(json!({ "name": "w", "namespaces": grant("acme-notes") })),
    );
    assert_eq!(status, 201, "{k}");
    assert_eq!(
        k["tenant_id"].as_str(),
        Some(acme.as_str()),
        "the key is its namespace's tenant's: {k}"
    );
    let key = k["key"].as_str().unwrap().to_owned();
    // A tenant key for another tenant's namespace is refused, naming the namespace.
    let body = json!({ "name": "x", "tenant_id": acme, "namespaces": grant("other-notes") });
    let (status, err) = call(two, "POST", "/v1/keys", ADMIN, Some(body));
    assert_eq!((status, err["field"].as_str()), (400, Some("namespaces[0].namespace")), "{err}");
    let started = Instant::now();
    while call(two, "GET", "/v1/whoami", &key, None).0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(10), "new key never reached node 2");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (status, who) = call(two, "GET", "/v1/whoami", &key, None);
    assert_eq!((status, who["tenant_id"].as_str()), (200, Some(acme.as_str())), "{who}");
    assert_eq!(store(two, &key, "acme-notes", "before").0, 201);

    let to = |status: &str| json!({ "status": status });
    let (status, b) =
        call(one, "PUT", &format!("/api/v1/tenants/{acme}"), ADMIN, Some(to("suspended")));
    assert_eq!(status, 200, "{b}");
    let suspended = Instant::now();
    let refused = loop {
        let (status, err) = store(two, &key, "acme-notes", "after");
        if status != 201 {
            break (status, err);
        }
        assert!(
            suspended.elapsed() < Duration::from_secs(10),
            "suspended tenant's key still accepted"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    eprintln!(
        "MEASURE a tenant suspended on node 1, its key refused on node 2 in {} ms",
        suspended.elapsed().as_millis()
    );
    assert_eq!(
        (refused.0, refused.1["error"].as_str()),
        (403, Some("forbidden")),
        "{:?}",
        refused.1
    );
    assert!(refused.1["message"].as_str().unwrap_or("").contains("suspended"), "{:?}", refused.1);
    for n in [one, two] {
        assert_eq!(store(n, &key, "acme-notes", "after").0, 403);
        assert_eq!(call(n, "GET", "/v1/whoami", &key, None).0, 403);
    }
    let (status, b) =
        call(two, "PUT", &format!("/api/v1/tenants/{acme}"), ADMIN, Some(to("active")));
    assert_eq!(status, 200, "{b}");
    let active = Instant::now();
    while store(one, &key, "acme-notes", "again").0 != 201 {
        assert!(
            active.elapsed() < Duration::from_secs(10),
            "reactivated tenant's key still refused"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A tenant's `qps_limit` is shared out among the live nodes: with two nodes and a limit of 4,
/// each node admits the tenant's requests up to 2 a second (plus a one-second burst) and
/// answers `429 rate_limited` naming its share above that; another tenant is not affected.
#[test]
fn a_tenants_rate_is_shared_out_among_the_live_nodes() {
    let Some(env) = env() else { return };
    let prefix = unique("rate");
    let nodes = tenant_nodes(&env, &prefix);
    let (one, two) = (nodes[0].url.as_str(), nodes[1].url.as_str());
    let mut keys = Vec::new();
    for (name, qps) in [("slow", 4), ("fast", 1000)] {
        let tenant = create_tenant(one, json!({ "name": name, "quotas": { "qps_limit": qps } }));
        let body = json!({ "name": format!("{name}-notes"), "tenant_id": tenant });
        let (status, created) = call(one, "POST", "/v1/namespaces", ADMIN, Some(body));
        assert_eq!(status, 201, "{created}");
        let grant = json!([{ "namespace": format!("{name}-notes"), "access": "read" }]);
        let (status, key) =
            call(one, "POST", "/v1/keys", ADMIN, Some(json!({ "name": "k", "namespaces": grant })));
        assert_eq!(status, 201, "{key}");
        keys.push(key["key"].as_str().unwrap().to_owned());
    }
    let started = Instant::now();
    while call(two, "GET", "/v1/whoami", &keys[1], None).0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(10), "the keys never reached node 2");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let the burst refill, then 12 requests at once through node 2.
    std::thread::sleep(Duration::from_millis(1100));
    let answers: Vec<(u16, Value)> =
        (0..12).map(|_| call(two, "GET", "/v1/whoami", &keys[0], None)).collect();
    let admitted = answers.iter().filter(|(s, _)| *s == 200).count();
    let limited: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 429).map(|(_, b)| b).collect();
    assert_eq!(admitted + limited.len(), 12, "{answers:?}");
    assert!(admitted >= 2, "the node's share (2) is admitted: {answers:?}");
    assert!(!limited.is_empty(), "a burst over the node's share is refused: {answers:?}");
    assert_eq!(limited[0]["error"].as_str(), Some("rate_limited"), "{}", limited[0]);
    let message = limited[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("rate limit of 2 requests/s"), "the node's share, 4 / 2: {message}");
    eprintln!(
        "MEASURE qps_limit 4 on 2 nodes: {admitted} of 12 back-to-back requests admitted by one node"
    );
    // The other tenant's limit is its own.
    for _ in 0..12 {
        assert_eq!(call(two, "GET", "/v1/whoami", &keys[1], None).0, 200);
    }
}

/// Tenant keys as on one node: a role key reaches every namespace of its tenant with its role
/// (a viewer reads, an editor writes), a member key acts with its member's live role and stops
/// when the member is removed; another tenant's namespace, existing or not, is `forbidden`;
/// through every node.
#[test]
fn tenant_role_and_member_keys_reach_their_tenants_namespaces_on_every_node() {
    let Some(env) = env() else { return };
    let prefix = unique("members");
    let nodes = tenant_nodes(&env, &prefix);
    let (one, two) = (nodes[0].url.as_str(), nodes[1].url.as_str());
    let acme = create_tenant(one, json!({ "name": "acme" }));
    let other = create_tenant(one, json!({ "name": "other" }));
    for (ns, tenant) in [("acme-a", &acme), ("other-a", &other)] {
        let body = json!({ "name": ns, "tenant_id": tenant });
        let (status, created) = call(one, "POST", "/v1/namespaces", ADMIN, Some(body));
        assert_eq!(status, 201, "{created}");
    }
    let body = json!({ "user_identifier": "ada@example.com", "role": "editor" });
    let members = format!("/api/v1/tenants/{acme}/members");
    let (status, ada) = call(two, "POST", &members, ADMIN, Some(body));
    assert_eq!(status, 201, "{ada}");
    let ada = ada["member_id"].as_str().unwrap().to_owned();
    let issue = |url: &str, body: Value| call(url, "POST", "/v1/keys", ADMIN, Some(body));
    let (status, viewer) = issue(one, json!({ "name": "v", "tenant_id": acme, "role": "viewer" }));
    assert_eq!(status, 201, "{viewer}");
    let (status, member) = issue(two, json!({ "name": "m", "tenant_id": acme, "member_id": ada }));
    assert_eq!(status, 201, "{member}");
    // Core's checks on the request's shape, and the member must exist.
    let grant = json!([{ "namespace": "acme-a", "access": "read" }]);
    let body = json!({ "name": "x", "tenant_id": acme, "role": "viewer", "namespaces": grant });
    let (status, err) = issue(one, body);
    assert_eq!((status, err["field"].as_str()), (400, Some("role")), "{err}");
    let (status, err) =
        issue(one, json!({ "name": "x", "tenant_id": acme, "member_id": "nobody" }));
    assert_eq!((status, err["field"].as_str()), (400, Some("member_id")), "{err}");
    let (viewer, member) =
        (viewer["key"].as_str().unwrap().to_owned(), member["key"].as_str().unwrap().to_owned());
    // Both nodes (the test used to wait for node 1 only, and node 2's watch can be later).
    await_key(&nodes, &viewer);
    await_key(&nodes, &member);
    let (status, who) = call(one, "GET", "/v1/whoami", &member, None);
    assert_eq!(
        (status, who["principal"].as_str(), who["role"].as_str()),
        (200, Some("member"), Some("editor")),
        "{who}"
    );
    let count = |url: &str, key: &str, ns: &str| {
        call(url, "POST", "/v1/memory/count", key, Some(json!({ "namespace": ns }))).0
    };
    for url in [one, two] {
        assert_eq!(store(url, &member, "acme-a", "written by ada").0, 201, "an editor writes");
        assert_eq!(count(url, &viewer, "acme-a"), 200, "a viewer reads");
        assert_eq!(store(url, &viewer, "acme-a", "viewer write").0, 403, "a viewer does not write");
        for key in [&viewer, &member] {
            assert_eq!(count(url, key, "other-a"), 403, "another tenant's namespace");
            assert_eq!(count(url, key, "acme-nothing"), 403, "a namespace that does not exist");
            assert_eq!(store(url, key, "other-a", "smuggled").0, 403);
        }
    }
    let (status, counted) =
        call(one, "POST", "/v1/memory/count", ADMIN, Some(json!({ "namespace": "other-a" })));
    assert_eq!((status, counted["count"].as_u64()), (200, Some(0)), "{counted}");
    // Removing the member stops its key on every node; the role key goes on.
    let (status, removed) = call(one, "DELETE", &format!("{members}/{ada}"), ADMIN, None);
    assert_eq!(status, 200, "{removed}");
    let started = Instant::now();
    while [one, two].iter().any(|url| call(url, "GET", "/v1/whoami", &member, None).0 != 401) {
        assert!(started.elapsed() < Duration::from_secs(10), "a removed member's key still works");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(count(two, &viewer, "acme-a"), 200);
}

/// A tenant admin's key administers its tenant from any node, by core's rules: it creates
/// namespaces in its tenant (its own by default) and deletes them, reads its tenant (and only
/// it in the list), adds, lists and removes members; it cannot create tenants, reach another
/// tenant, or create a namespace outside its tenant; a viewer's key administers nothing.
#[test]
fn a_tenant_admin_key_administers_its_tenant_from_any_node() {
    let Some(env) = env() else { return };
    let prefix = unique("tenant-admin");
    let nodes: Vec<Node> = (1..=3).map(|i| start_node(&env, &prefix, &format!("n{i}"))).collect();
    let (one, two, three) = (nodes[0].url.as_str(), nodes[1].url.as_str(), nodes[2].url.as_str());
    let acme = create_tenant(one, json!({ "name": "acme" }));
    let other = create_tenant(one, json!({ "name": "other" }));
    let issue = |role: &str| {
        let body = json!({ "name": role, "tenant_id": acme, "role": role });
        let (status, k) = call(one, "POST", "/v1/keys", ADMIN, Some(body));
        assert_eq!(status, 201, "{k}");
        k["key"].as_str().unwrap().to_owned()
    };
    let (admin, viewer) = (issue("admin"), issue("viewer"));
    await_key(&nodes, &admin);
    await_key(&nodes, &viewer);

    let (status, created) =
        call(two, "POST", "/v1/namespaces", &admin, Some(json!({ "name": "acme-own" })));
    assert_eq!((status, created["tenant_id"].as_str()), (201, Some(acme.as_str())), "{created}");
    let body = json!({ "name": "smuggled", "tenant_id": other });
    let (status, err) = call(two, "POST", "/v1/namespaces", &admin, Some(body));
    assert_eq!((status, err["error"].as_str()), (403, Some("forbidden")), "{err}");
    let (status, err) =
        call(three, "POST", "/v1/namespaces", &viewer, Some(json!({ "name": "v" })));
    assert_eq!((status, err["error"].as_str()), (403, Some("forbidden")), "{err}");

    let members = format!("/api/v1/tenants/{acme}/members");
    let body = json!({ "user_identifier": "bo@example.com", "role": "editor" });
    let (status, member) = call(three, "POST", &members, &admin, Some(body.clone()));
    assert_eq!(status, 201, "{member}");
    assert_eq!(call(three, "POST", &members, &viewer, Some(body)).0, 403);
    let (status, listed) = call(one, "GET", &members, &admin, None);
    assert_eq!((status, listed["total_count"].as_u64()), (200, Some(1)), "{listed}");
    let other_members = format!("/api/v1/tenants/{other}/members");
    assert_eq!(call(one, "GET", &other_members, &admin, None).0, 403);
    let mid = member["member_id"].as_str().unwrap();
    assert_eq!(call(two, "DELETE", &format!("{members}/{mid}"), &admin, None).0, 200);

    assert_eq!(call(one, "GET", &format!("/api/v1/tenants/{acme}"), &admin, None).0, 200);
    assert_eq!(call(one, "GET", &format!("/api/v1/tenants/{other}"), &admin, None).0, 403);
    let (status, tenants) = call(two, "GET", "/api/v1/tenants", &admin, None);
    assert_eq!((status, tenants["total_count"].as_u64()), (200, Some(1)), "{tenants}");
    assert_eq!(tenants["tenants"][0]["id"].as_str(), Some(acme.as_str()), "{tenants}");
    let (status, err) =
        call(two, "POST", "/api/v1/tenants", &admin, Some(json!({ "name": "mine" })));
    assert_eq!((status, err["error"].as_str()), (403, Some("forbidden")), "{err}");

    assert_eq!(call(three, "DELETE", "/v1/namespaces/acme-own", &viewer, None).0, 403);
    assert_eq!(call(three, "DELETE", "/v1/namespaces/acme-own", &admin, None).0, 200);
    assert_eq!(call(one, "GET", "/v1/namespaces/acme-own", ADMIN, None).0, 404);
}

/// A tenant admin's key issues keys from any node as on one node (core's `IssueKey` rule): tenant
/// keys of its tenant and namespace-scoped keys for its tenant's namespaces, never for another
/// tenant; it lists and revokes them. A key issued by a key bound to a member records that
/// member: removing the member stops every key it issued on every node, and deleting the
/// tenant stops the rest.
#[test]
fn a_tenant_admin_key_issues_keys_that_die_with_its_member() {
    let Some(env) = env() else { return };
    let prefix = unique("issued");
    let nodes: Vec<Node> = (1..=3).map(|i| start_node(&env, &prefix, &format!("n{i}"))).collect();
    let (one, two, three) = (nodes[0].url.as_str(), nodes[1].url.as_str(), nodes[2].url.as_str());
    let acme = create_tenant(one, json!({ "name": "acme" }));
    let other = create_tenant(one, json!({ "name": "other" }));
    for (ns, tenant) in [("acme-a", &acme), ("other-a", &other)] {
        let body = json!({ "name": ns, "tenant_id": tenant });
        assert_eq!(call(one, "POST", "/v1/namespaces", ADMIN, Some(body)).0, 201);
    }
    let members = format!("/api/v1/tenants/{acme}/members");
    let body = json!({ "user_identifier": "ada@example.com", "role": "admin" });
    let (status, ada) = call(two, "POST", &members, ADMIN, Some(body));
    assert_eq!(status, 201, "{ada}");
    let ada = ada["member_id"].as_str().unwrap().to_owned();
    let body = json!({ "name": "ada", "tenant_id": acme, "member_id": ada });
    let (status, made) = call(one, "POST", "/v1/keys", ADMIN, Some(body));
    assert_eq!(status, 201, "{made}");
    let ada_key = made["key"].as_str().unwrap().to_owned();
    let body = json!({ "name": "viewer", "tenant_id": acme, "role": "viewer" });
    let (_, made) = call(one, "POST", "/v1/keys", ADMIN, Some(body));
    let viewer = made["key"].as_str().unwrap().to_owned();
    await_key(&nodes, &ada_key);
    await_key(&nodes, &viewer);

    // Issued through nodes 2 and 3 by the tenant admin's key.
    let body = json!({ "name": "editor", "tenant_id": acme, "role": "editor" });
    let (status, editor) = call(two, "POST", "/v1/keys", &ada_key, Some(body));
    assert_eq!((status, editor["tenant_id"].as_str()), (201, Some(acme.as_str())), "{editor}");
    let grant = json!([{ "namespace": "acme-a", "access": "write" }]);
    let (status, scoped) = call(
        three,
        "POST",
        "/v1/keys",
        &ada_key,
        Some(json!({ "name": "w", "namespaces": grant })),
    );
    assert_eq!((status, scoped["tenant_id"].as_str()), (201, Some(acme.as_str())), "{scoped}");
    let editor_id = editor["id"].as_str().unwrap().to_owned();
    let (editor, scoped) =
        (editor["key"].as_str().unwrap().to_owned(), scoped["key"].as_str().unwrap().to_owned());
    await_key(&nodes, &editor);
    await_key(&nodes, &scoped);
    for url in [one, two, three] {
        assert_eq!(store(url, &editor, "acme-a", "by the issued editor").0, 201);
        assert_eq!(store(url, &scoped, "acme-a", "by the issued scoped key").0, 201);
        assert_eq!(store(url, &editor, "other-a", "smuggled").0, 403);
    }

    // Refused, as on one node: another tenant, another tenant's namespace, a namespace that
    // does not exist, and any issuance by a viewer or a scoped key.
    let refused = [
        (&ada_key, json!({ "name": "x", "tenant_id": other, "role": "viewer" })),
        (
            &ada_key,
            json!({ "name": "x", "namespaces": [{ "namespace": "other-a", "access": "read" }] }),
        ),
        (
            &ada_key,
            json!({ "name": "x", "namespaces": [{ "namespace": "nothing", "access": "read" }] }),
        ),
        (&viewer, json!({ "name": "x", "tenant_id": acme, "role": "viewer" })),
        (
            &scoped,
            json!({ "name": "x", "namespaces": [{ "namespace": "acme-a", "access": "read" }] }),
        ),
    ];
    for (key, body) in refused {
        let (status, err) = call(two, "POST", "/v1/keys", key, Some(body.clone()));
        assert_eq!((status, err["error"].as_str()), (403, Some("forbidden")), "{body}: {err}");
    }

    // Listed by the tenant admin with the member that issued them; revoked by it on node 3,
    // refused on node 1.
    let (status, total, _, listed) =
        call_listed(one, &format!("/v1/keys?tenant_id={acme}"), &ada_key);
    assert_eq!((status, total), (200, Some(4)), "{listed}");
    let (status, revoked) = call(three, "DELETE", &format!("/v1/keys/{editor_id}"), &ada_key, None);
    assert_eq!((status, revoked["revoked"].as_bool()), (200, Some(true)), "{revoked}");
    let started = Instant::now();
    while call(one, "GET", "/v1/whoami", &editor, None).0 != 401 {
        assert!(started.elapsed() < Duration::from_secs(10), "a revoked issued key still works");
        std::thread::sleep(Duration::from_millis(5));
    }

    // The member goes: the keys it issued go with it, on every node; the admin's viewer key
    // (issued by no member) stays until the tenant is deleted.
    assert_eq!(call(one, "DELETE", &format!("{members}/{ada}"), ADMIN, None).0, 200);
    let started = Instant::now();
    while nodes.iter().any(|n| call(&n.url, "GET", "/v1/whoami", &scoped, None).0 != 401) {
        assert!(started.elapsed() < Duration::from_secs(10), "a key of a removed member works");
        std::thread::sleep(Duration::from_millis(5));
    }
    let refused_after = started.elapsed();
    for n in &nodes {
        assert_eq!(store(&n.url, &scoped, "acme-a", "after removal").0, 401);
        assert_eq!(call(&n.url, "GET", "/v1/whoami", &ada_key, None).0, 401);
    }
    println!(
        "MEASURE issued key refused on every node after its member's removal: {} ms",
        refused_after.as_millis()
    );
    assert_eq!(call(three, "GET", "/v1/whoami", &viewer, None).0, 200);
    assert_eq!(call(one, "DELETE", "/v1/namespaces/acme-a", ADMIN, None).0, 200);
    assert_eq!(call(one, "DELETE", &format!("/api/v1/tenants/{acme}"), ADMIN, None).0, 200);
    let started = Instant::now();
    while nodes.iter().any(|n| call(&n.url, "GET", "/v1/whoami", &viewer, None).0 != 401) {
        assert!(started.elapsed() < Duration::from_secs(10), "a deleted tenant's key works");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A call with an `X-Request-Id`.
fn call_id(url: &str, method: &str, path: &str, key: &str, id: &str) -> u16 {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .header("Authorization", format!("Bearer {key}"))
        .header("X-Request-Id", id)
        .header("Content-Type", "application/json");
    let body = serde_json::to_vec(&json!({ "namespace": "acme-a", "content": "x" })).unwrap();
    agent().run(req.body(body).unwrap()).map_or(0, |r| r.status().as_u16())
}

/// Every entry of a tenant's audit log, read through `url` by cursor pages of `limit`.
fn audit_entries(url: &str, key: &str, tenant: &str, limit: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let path = format!("/api/v1/tenants/{tenant}/audit?limit={limit}{after}");
        let (status, page) = call(url, "GET", &path, key, None);
        assert_eq!(status, 200, "{page}");
        out.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// The audit log in cluster mode: every control-plane action and every refused request is
/// recorded in its tenant's hash chain in object storage, with core's fields and chaining,
/// whichever node decided it (a forwarded request by its owner); three nodes appending at once
/// keep one chain; it is read from any node by cursor pages with core's filters, and core's
/// check names an edited entry and a removed one.
#[test]
#[allow(clippy::too_many_lines)] // one story: record through three nodes, read, filter, tamper
fn the_audit_log_is_one_chain_per_tenant_written_and_read_from_any_node() {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    let Some(env) = env() else { return };
    let prefix = unique("audit");
    let timed = [("MEMSILO_CLUSTER_AUDIT_TIMES", "1")];
    let nodes: Vec<Node> =
        (1..=3).map(|i| start_node_env(&env, &prefix, &format!("n{i}"), &[], &timed)).collect();
    let (one, two, three) = (nodes[0].url.as_str(), nodes[1].url.as_str(), nodes[2].url.as_str());
    let acme = create_tenant(one, json!({ "name": "acme" }));
    let other = create_tenant(two, json!({ "name": "other" }));
    let body = json!({ "name": "acme-a", "tenant_id": acme });
    assert_eq!(call(two, "POST", "/v1/namespaces", ADMIN, Some(body)).0, 201);
    let issue = |url: &str, body: Value| {
        let (status, k) = call(url, "POST", "/v1/keys", ADMIN, Some(body));
        assert_eq!(status, 201, "{k}");
        (k["key"].as_str().unwrap().to_owned(), k["id"].as_str().unwrap().to_owned())
    };
    let (admin, admin_id) =
        issue(three, json!({ "name": "a", "tenant_id": acme, "role": "admin" }));
    let (viewer, viewer_id) =
        issue(one, json!({ "name": "v", "tenant_id": acme, "role": "viewer" }));
    let (other_admin, _) = issue(one, json!({ "name": "o", "tenant_id": other, "role": "admin" }));
    for key in [&admin, &viewer, &other_admin] {
        await_key(&nodes, key);
    }
    let members = format!("/api/v1/tenants/{acme}/members");
    let body = json!({ "user_identifier": "ada@example.com", "role": "editor" });
    let (status, ada) = call(two, "POST", &members, &admin, Some(body));
    assert_eq!(status, 201, "{ada}");
    let (status, _) = call(
        three,
        "PUT",
        "/v1/namespaces/acme-a/policy",
        &viewer,
        Some(json!({ "decay_rate": 0.5 })),
    );
    assert_eq!(status, 403);

    // Refusals through all three nodes at once (a viewer writing: refused by the owner,
    // forwarded or not), each with its own request id: one chain, nothing lost.
    let per_node = 8;
    std::thread::scope(|scope| {
        for (n, url) in [one, two, three].into_iter().enumerate() {
            let viewer = viewer.clone();
            scope.spawn(move || {
                for i in 0..per_node {
                    let status =
                        call_id(url, "POST", "/v1/memory/store", &viewer, &format!("race-{n}-{i}"));
                    assert_eq!(status, 403);
                }
            });
        }
    });
    // An unknown key (the instance log) and a revoked key of acme (acme's log).
    let bogus = "msk_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_0000";
    assert_eq!(call(one, "GET", "/v1/whoami", bogus, None).0, 401);
    let (revoked, revoked_id) =
        issue(two, json!({ "name": "r", "tenant_id": acme, "role": "viewer" }));
    await_key(&nodes, &revoked);
    assert_eq!(call(three, "DELETE", &format!("/v1/keys/{revoked_id}"), &admin, None).0, 200);
    let started = Instant::now();
    while call_id(one, "POST", "/v1/memory/store", &revoked, "after-revoke") != 401 {
        assert!(started.elapsed() < Duration::from_secs(10), "the revoked key still works");
        std::thread::sleep(Duration::from_millis(5));
    }

    // Read from every node by pages of 3: the same chain, seq 1, 2, ... in order.
    let log = audit_entries(one, &admin, &acme, 3);
    for url in [two, three] {
        assert_eq!(audit_entries(url, ADMIN, &acme, 7), log, "another node reads another chain");
    }
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e["seq"].as_u64(), Some(i as u64 + 1), "{e}");
        assert_eq!(e["tenant_id"].as_str(), Some(acme.as_str()), "{e}");
        if i > 0 {
            assert_eq!(e["prev_hash"], log[i - 1]["hash"], "{e}");
        }
    }
    let find = |action: &str, result: &str| {
        log.iter()
            .find(|e| e["action"] == action && e["result"] == result)
            .unwrap_or_else(|| panic!("no {action} {result} in {log:#?}"))
    };
    assert_eq!(find("create_namespace", "ok")["target"], "acme-a");
    assert_eq!(find("create_key", "ok")["actor"]["principal"], "root");
    let added = find("add_member", "ok");
    assert_eq!(
        (added["target"].clone(), added["actor"]["key_id"].as_str()),
        (ada["member_id"].clone(), Some(admin_id.as_str())),
        "{added}"
    );
    let policy = find("set_memory_policy", "refused");
    assert_eq!(
        (policy["status"].as_u64(), policy["error"].as_str()),
        (Some(403), Some("forbidden"))
    );
    assert_eq!(find("revoke_key", "ok")["target"].as_str(), Some(revoked_id.as_str()));
    let after = find("store_memory", "refused");
    assert_eq!(after["actor"]["principal"], "member");
    let unauthorized: Vec<&Value> = log.iter().filter(|e| e["error"] == "unauthorized").collect();
    assert!(
        unauthorized.iter().any(|e| e["actor"]["key_id"].as_str() == Some(revoked_id.as_str())),
        "the revoked key's refusal is in its tenant's log: {unauthorized:?}"
    );
    for n in 0..3 {
        for i in 0..per_node {
            let id = format!("race-{n}-{i}");
            let found: Vec<&Value> =
                log.iter().filter(|e| e["request_id"] == id.as_str()).collect();
            assert_eq!(found.len(), 1, "request {id} recorded {} times", found.len());
            assert_eq!(
                (found[0]["result"].as_str(), found[0]["status"].as_u64()),
                (Some("refused"), Some(403))
            );
            assert_eq!(found[0]["actor"]["key_id"].as_str(), Some(viewer_id.as_str()));
        }
    }
    // Core's filters.
    let (status, page) =
        call(two, "GET", &format!("/api/v1/tenants/{acme}/audit?action=add_member"), &admin, None);
    assert_eq!((status, page["entries"].as_array().map(Vec::len)), (200, Some(1)), "{page}");
    let path = format!("/api/v1/tenants/{acme}/audit?actor={viewer_id}&limit=1000");
    let (_, page) = call(three, "GET", &path, &admin, None);
    let by_viewer = page["entries"].as_array().unwrap();
    assert!(
        by_viewer.len() > 3 * per_node
            && by_viewer.iter().all(|e| e["actor"]["key_id"] == viewer_id.as_str())
    );
    let (status, e) =
        call(one, "GET", &format!("/api/v1/tenants/{acme}/audit?cursor=x"), &admin, None);
    assert_eq!((status, e["field"].as_str()), (400, Some("cursor")), "{e}");
    // Who reads: the admin key and the tenant's admins; the instance log the admin key only.
    assert_eq!(call(one, "GET", &format!("/api/v1/tenants/{acme}/audit"), &viewer, None).0, 403);
    assert_eq!(
        call(one, "GET", &format!("/api/v1/tenants/{acme}/audit"), &other_admin, None).0,
        403
    );
    assert_eq!(
        call(two, "POST", &format!("/api/v1/tenants/{acme}/audit/verify"), &other_admin, None).0,
        403
    );
    assert_eq!(call(one, "GET", "/api/v1/tenants/instance/audit", &admin, None).0, 403);
    let instance = audit_entries(three, ADMIN, "instance", 100);
    assert!(
        instance
            .iter()
            .any(|e| e["error"] == "unauthorized" && e["actor"]["principal"] == "anonymous"),
        "{instance:?}"
    );

    // Verified from any node; then an edited entry and a removed object are named.
    let verify = |url: &str| {
        let (status, v) =
            call(url, "POST", &format!("/api/v1/tenants/{acme}/audit/verify"), &admin, None);
        assert_eq!(status, 200, "{v}");
        v
    };
    // (The refused reads above were recorded after `log` was read: the chain is longer.)
    let v = verify(two);
    let head = v["head_seq"].as_u64().unwrap();
    assert_eq!((v["ok"].as_bool(), v["checked"].as_u64()), (Some(true), Some(head)), "{v}");
    assert!(head > log.len() as u64, "{v}");
    let now = audit_entries(three, ADMIN, &acme, 1000);
    assert_eq!(&now[..log.len()], &log[..], "the chain changed under its head");
    assert_eq!(v["head_hash"], now[head as usize - 1]["hash"]);

    let store = memsilo_cluster::object_store_from_url(&env.s3).unwrap();
    let dir = object_store::path::Path::from(format!("{prefix}/audit/{acme}"));
    let objects: Vec<object_store::path::Path> = runtime().block_on(async {
        let metas: Vec<_> = store.list(Some(&dir)).try_collect().await.unwrap();
        let mut paths: Vec<_> = metas.into_iter().map(|m| m.location).collect();
        paths.sort();
        paths
    });
    assert!(objects.len() > 3 && objects.len() <= log.len(), "{} objects", objects.len());
    let first_seq = |p: &object_store::path::Path| p.filename().unwrap().parse::<u64>().unwrap();
    let (target, removed) = (&objects[1], &objects[objects.len() - 2]);
    let original =
        runtime().block_on(async { store.get(target).await.unwrap().bytes().await.unwrap() });
    let mut edited: Vec<Value> = serde_json::from_slice(&original).unwrap();
    edited[0]["action"] = json!("tampered");
    runtime().block_on(store.put(target, serde_json::to_vec(&edited).unwrap().into())).unwrap();
    let v = verify(three);
    assert_eq!(
        (v["ok"].as_bool(), v["first_broken"]["seq"].as_u64()),
        (Some(false), Some(first_seq(target))),
        "{v}"
    );
    assert!(v["first_broken"]["reason"].as_str().unwrap().contains("edited"), "{v}");
    runtime().block_on(store.put(target, original.into())).unwrap();
    assert_eq!(verify(one)["ok"].as_bool(), Some(true));
    runtime().block_on(store.delete(removed)).unwrap();
    let v = verify(one);
    assert_eq!(
        (v["ok"].as_bool(), v["first_broken"]["seq"].as_u64()),
        (Some(false), Some(first_seq(removed))),
        "{v}"
    );
    assert!(v["first_broken"]["reason"].as_str().unwrap().contains("missing"), "{v}");

    let mut micros: Vec<u64> = nodes
        .iter()
        .flat_map(|n| n.lines.lock().unwrap().clone())
        .filter_map(|l| {
            l.split("audit append of ")
                .nth(1)
                .and_then(|r| r.rsplit(": ").next())
                .and_then(|t| t.trim_end_matches(" us").parse().ok())
        })
        .collect();
    micros.sort_unstable();
    assert!(!micros.is_empty());
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!("MEASURE audit append (one conditional put of a group, moto on loopback): {} appends, p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms", micros.len(), at(0.5), at(0.9), at(1.0));
}

/// Child tenants in cluster mode, with single-node quota semantics: a child's namespaces,
/// members and storage count against its parent's limits too (each counting its subtree), its
/// requests against its parent's rate; a quota refusal names the child; a parent with children
/// is not deleted; a missing parent is refused naming `parent_id`.
#[test]
#[allow(clippy::too_many_lines)] // one story: counted quotas, storage, rate, deletion
fn child_tenants_count_against_their_parents_limits_on_every_node() {
    let Some(env) = env() else { return };
    let prefix = unique("children");
    let nodes = tenant_nodes(&env, &prefix);
    let (one, two) = (nodes[0].url.as_str(), nodes[1].url.as_str());
    let limit: u64 = 120_000;
    let quotas = json!({ "max_namespaces": 2, "max_members": 2, "storage_quota_bytes": limit });
    let parent = create_tenant(one, json!({ "name": "parent", "quotas": quotas }));
    let body = json!({ "name": "child", "parent_id": parent, "quotas": { "max_namespaces": 5 } });
    let (status, child) = call(two, "POST", "/api/v1/tenants", ADMIN, Some(body));
    assert_eq!((status, child["parent_id"].as_str()), (201, Some(parent.as_str())), "{child}");
    let child = child["id"].as_str().unwrap().to_owned();
    let body = json!({ "name": "orphan", "parent_id": "no-such-tenant" });
    let (status, err) = call(one, "POST", "/api/v1/tenants", ADMIN, Some(body));
    assert_eq!((status, err["field"].as_str()), (400, Some("parent_id")), "{err}");
    let (status, listed) =
        call(one, "GET", &format!("/api/v1/tenants?parent_id={parent}"), ADMIN, None);
    assert_eq!((status, listed["total_count"].as_u64()), (200, Some(1)), "{listed}");

    // max_namespaces 2 on the parent holds over its subtree, through either node.
    for (url, ns, tenant) in [(one, "p-a", &parent), (two, "c-a", &child)] {
        let body = json!({ "name": ns, "tenant_id": tenant });
        assert_eq!(call(url, "POST", "/v1/namespaces", ADMIN, Some(body)).0, 201, "{ns}");
    }
    let body = json!({ "name": "c-b", "tenant_id": child });
    let (status, err) = call(one, "POST", "/v1/namespaces", ADMIN, Some(body));
    assert_eq!(
        (status, err["error"].as_str(), err["tenant_id"].as_str()),
        (403, Some("quota_exceeded"), Some(child.as_str())),
        "{err}"
    );
    assert!(err["message"].as_str().unwrap_or("").contains("max_namespaces"), "{err}");
    // max_members 2 on the parent, likewise.
    assert_eq!(add_member(one, &child, "ada@example.com").0, 201);
    assert_eq!(add_member(two, &parent, "bo@example.com").0, 201);
    let (status, err) = add_member(two, &child, "cy@example.com");
    assert_eq!((status, err["error"].as_str()), (403, Some("quota_exceeded")), "{err}");
    let (_, info) = call(two, "GET", &format!("/api/v1/tenants/{parent}"), ADMIN, None);
    assert_eq!(
        (info["usage"]["namespaces"].as_u64(), info["usage"]["members"].as_u64()),
        (Some(1), Some(1)),
        "its own usage, as on one node: {info}"
    );

    // Storage: the child's namespace is refused once the parent's subtree reaches its limit.
    let filler = "x".repeat(1500);
    let (mut stored, mut refusal) = (0u64, Value::Null);
    for i in 0..400 {
        let (status, b) = store(one, ADMIN, "c-a", &format!("c-a {i} {filler}"));
        if status == 201 {
            stored += 1;
            continue;
        }
        refusal = b;
        break;
    }
    assert_eq!(refusal["error"].as_str(), Some("quota_exceeded"), "never refused: {refusal}");
    assert_eq!(refusal["tenant_id"].as_str(), Some(child.as_str()), "{refusal}");
    let (_, info) = call(two, "GET", "/v1/namespaces/c-a", ADMIN, None);
    let used = info["storage_bytes"].as_u64().unwrap();
    let per_write = used / stored.max(1) + 64;
    assert!(used <= limit + per_write, "the child used {used} bytes of its parent's {limit}");
    assert!(used + memsilo_cluster::reservation_slice(limit) + per_write >= limit, "{used}");
    // The parent's own namespace has no room left either.
    let (status, err) = store(two, ADMIN, "p-a", "one more");
    assert_eq!((status, err["tenant_id"].as_str()), (403, Some(parent.as_str())), "{err}");
    println!("MEASURE child tenant storage: {used} B of the parent's {limit} B in {stored} writes");

    // Rate: the parent's qps_limit binds the child's key (2 on 2 nodes: a share of 1).
    let (status, key) = call(
        one,
        "POST",
        "/v1/keys",
        ADMIN,
        Some(json!({ "name": "k", "tenant_id": child, "role": "viewer" })),
    );
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();
    await_key(&nodes, &key);
    let body = json!({ "quotas": { "qps_limit": 2 } });
    assert_eq!(call(one, "PUT", &format!("/api/v1/tenants/{parent}"), ADMIN, Some(body)).0, 200);
    let started = Instant::now();
    let refused = loop {
        let answers: Vec<(u16, Value)> =
            (0..6).map(|_| call(two, "GET", "/v1/whoami", &key, None)).collect();
        if let Some((_, e)) = answers.iter().find(|(s, _)| *s == 429) {
            break e.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the parent's rate never bound");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(refused["tenant_id"].as_str(), Some(child.as_str()), "{refused}");

    // Deletion: not the parent while it has a child; the child once its namespace is gone;
    // then the parent's subtree has room again.
    let (status, err) = call(two, "DELETE", &format!("/api/v1/tenants/{parent}"), ADMIN, None);
    assert_eq!((status, err["error"].as_str()), (409, Some("conflict")), "{err}");
    assert_eq!(call(one, "DELETE", "/v1/namespaces/c-a", ADMIN, None).0, 200);
    assert_eq!(call(two, "DELETE", &format!("/api/v1/tenants/{child}"), ADMIN, None).0, 200);
    let body = json!({ "name": "p-b", "tenant_id": parent });
    assert_eq!(call(one, "POST", "/v1/namespaces", ADMIN, Some(body)).0, 201);
    assert_eq!(add_member(two, &parent, "cy@example.com").0, 201);
    for ns in ["p-a", "p-b"] {
        assert_eq!(call(two, "DELETE", &format!("/v1/namespaces/{ns}"), ADMIN, None).0, 200);
    }
    assert_eq!(call(one, "DELETE", &format!("/api/v1/tenants/{parent}"), ADMIN, None).0, 200);
}

/// Tenants and members live in etcd: created, changed, read and deleted through any node,
/// `max_members` held by a guarded transaction.
#[test]
fn tenants_and_members_are_managed_from_any_node() {
    let Some(env) = env() else { return };
    let prefix = unique("tenants");
    let nodes = tenant_nodes(&env, &prefix);
    let (one, two) = (nodes[0].url.as_str(), nodes[1].url.as_str());
    let id = create_tenant(one, json!({ "name": "acme", "quotas": { "max_members": 2 } }));
    let (status, err) =
        call(two, "POST", "/api/v1/tenants", ADMIN, Some(json!({ "name": "acme" })));
    assert_eq!((status, err["error"].as_str()), (409, Some("conflict")), "{err}");
    let (status, err) = call(two, "POST", "/api/v1/tenants", ADMIN, Some(json!({ "name": "x" })));
    assert_eq!((status, err["error"].as_str()), (400, Some("invalid_argument")), "{err}");
    assert_eq!(err["field"].as_str(), Some("name"), "{err}");
    let (status, got) = call(two, "GET", &format!("/api/v1/tenants/{id}"), ADMIN, None);
    assert_eq!((status, got["name"].as_str()), (200, Some("acme")), "{got}");
    assert_eq!(got["quotas"]["max_members"].as_u64(), Some(2), "{got}");

    // Members: unique per user, at most max_members, from either node.
    let (status, first) = add_member(two, &id, "ada@example.com");
    assert_eq!(status, 201, "{first}");
    let (status, err) = add_member(one, &id, "ada@example.com");
    assert_eq!((status, err["error"].as_str()), (409, Some("conflict")), "{err}");
    assert_eq!(add_member(one, &id, "bob@example.com").0, 201);
    let (status, err) = add_member(two, &id, "cy@example.com");
    assert_eq!((status, err["error"].as_str()), (403, Some("quota_exceeded")), "{err}");
    let (status, listed) = call(one, "GET", &format!("/api/v1/tenants/{id}/members"), ADMIN, None);
    assert_eq!((status, listed["total_count"].as_u64()), (200, Some(2)), "{listed}");
    let first_id = first["member_id"].as_str().unwrap();
    let path = format!("/api/v1/tenants/{id}/members/{first_id}");
    let (status, gone) = call(one, "DELETE", &path, ADMIN, None);
    assert_eq!(status, 200, "{gone}");
    let (status, third) = add_member(two, &id, "cy@example.com");
    assert_eq!(status, 201, "a removed member frees its place: {third}");

    // Renamed through one node, listed through the other.
    let rename = Some(json!({ "name": "acme_2" }));
    let (status, renamed) = call(two, "PUT", &format!("/api/v1/tenants/{id}"), ADMIN, rename);
    assert_eq!((status, renamed["name"].as_str()), (200, Some("acme_2")), "{renamed}");
    let (status, listed) = call(one, "GET", "/api/v1/tenants", ADMIN, None);
    assert_eq!(status, 200, "{listed}");
    let names: Vec<&str> =
        listed["tenants"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["acme_2"], "{listed}");

    // Deleted with its members through one node: gone for the other.
    let (status, deleted) = call(one, "DELETE", &format!("/api/v1/tenants/{id}"), ADMIN, None);
    assert_eq!((status, deleted["status"].as_str()), (200, Some("deleted")), "{deleted}");
    let (status, err) = call(two, "GET", &format!("/api/v1/tenants/{id}/members"), ADMIN, None);
    assert_eq!((status, err["error"].as_str()), (404, Some("not_found")), "{err}");
    create_tenant(two, json!({ "name": "acme" }));
}

/// A tenant's namespaces: `max_namespaces` exact when they are created at once through two
/// nodes; their sessions written on the owner and logged; a scoped key manages no tenant.
#[test]
fn a_tenants_namespaces_are_counted_exactly_across_nodes() {
    let Some(env) = env() else { return };
    let prefix = unique("tenant-ns");
    let nodes = tenant_nodes(&env, &prefix);
    let (one, two) = (nodes[0].url.as_str(), nodes[1].url.as_str());
    let id = create_tenant(one, json!({ "name": "acme", "quotas": { "max_namespaces": 3 } }));
    let created: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let (url, id) = (if i % 2 == 0 { one } else { two }, id.clone());
                scope.spawn(move || {
                    let body = json!({ "name": format!("acme-ns-{i}"), "tenant_id": id });
                    call(url, "POST", "/v1/namespaces", ADMIN, Some(body)).0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(created.iter().filter(|s| **s == 201).count(), 3, "{created:?}");
    assert_eq!(created.iter().filter(|s| **s == 403).count(), 3, "{created:?}");
    let ns = (0..6)
        .map(|i| format!("acme-ns-{i}"))
        .find(|n| call(two, "GET", &format!("/v1/namespaces/{n}"), ADMIN, None).0 == 200)
        .unwrap();
    let (_, info) = call(one, "GET", &format!("/v1/namespaces/{ns}"), ADMIN, None);
    assert_eq!(info["tenant_id"].as_str(), Some(id.as_str()), "{info}");
    let (_, usage) = call(two, "GET", &format!("/api/v1/tenants/{id}"), ADMIN, None);
    assert_eq!(usage["usage"]["namespaces"].as_u64(), Some(3), "{usage}");
    let (status, err) = call(one, "DELETE", &format!("/api/v1/tenants/{id}"), ADMIN, None);
    assert_eq!((status, err["error"].as_str()), (409, Some("conflict")), "{err}");

    // Sessions are written on the namespace's owner and logged like memories.
    let body = Some(json!({ "agent_id": "bot" }));
    let (status, started) =
        call(two, "POST", &format!("/v1/namespaces/{ns}/sessions"), ADMIN, body);
    assert_eq!(status, 201, "{started}");
    let sid = started["id"].as_str().unwrap();
    let path = format!("/v1/namespaces/{ns}/sessions/{sid}");
    let (status, ended) =
        call(one, "POST", &format!("{path}/end"), ADMIN, Some(json!({ "summary": "done" })));
    assert_eq!(status, 200, "{ended}");
    let (status, got) = call(two, "GET", &path, ADMIN, None);
    assert_eq!((status, got["summary"].as_str()), (200, Some("done")), "{got}");
    let logged: Vec<String> = log_entries(&env, &prefix, &ns)
        .into_iter()
        .flat_map(|(_, entry)| entry.records.into_iter().map(|r| r.op))
        .collect();
    assert!(logged.iter().any(|op| op == "start_session"), "{logged:?}");
    assert!(logged.iter().any(|op| op == "end_session"), "{logged:?}");

    // A namespace-scoped key manages no tenant.
    let grant = json!({ "name": "w", "namespaces": [{ "namespace": ns, "access": "write" }] });
    let (_, key) = call(one, "POST", "/v1/keys", ADMIN, Some(grant));
    let key = key["key"].as_str().unwrap().to_owned();
    let (status, err) = call(two, "GET", "/api/v1/tenants", &key, None);
    assert_eq!((status, err["error"].as_str()), (403, Some("forbidden")), "{err}");
}

/// Two nodes writing for one tenant (a namespace each, so two owners) cannot take the tenant
/// past its storage limit by more than the documented bound: the writes in flight on each
/// namespace when its reservation ran out (one each here: one sequential writer per node).
#[test]
fn two_nodes_writing_for_one_tenant_stay_within_its_storage_limit() {
    let Some(env) = env() else { return };
    let prefix = unique("quota");
    let nodes: Vec<Node> = (1..=2).map(|i| start_node(&env, &prefix, &format!("n{i}"))).collect();
    let limit: u64 = 400_000;
    let (s, t) = call(
        &nodes[0].url,
        "POST",
        "/api/v1/tenants",
        ADMIN,
        Some(json!({ "name": "metered", "quotas": { "storage_quota_bytes": limit } })),
    );
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_owned();
    let names = ["metered-a", "metered-b"];
    // Created through different nodes: each takes its namespace over (two owners).
    for (node, n) in nodes.iter().zip(names) {
        let body = json!({ "name": n, "tenant_id": id });
        assert_eq!(call(&node.url, "POST", "/v1/namespaces", ADMIN, Some(body)).0, 201);
    }
    // Latency, one writer on the owner: an untenanted namespace (no reservation) against the
    // tenant's (a reservation every slice, the namespace's usage read after each group).
    create_namespace(&nodes[0].url, "unmetered");
    let filler = "x".repeat(1500);
    let (mut plain, mut metered_alone) = (Vec::new(), Vec::new());
    for i in 0..40 {
        for (ns, took) in [("unmetered", &mut plain), (names[0], &mut metered_alone)] {
            let t0 = Instant::now();
            assert_eq!(store(&nodes[0].url, ADMIN, ns, &format!("{ns} {i} {filler}")).0, 201);
            took.push(t0.elapsed());
        }
    }
    // Each node writes its own namespace (taking it over: two owners), until refused.
    let results: Vec<(Vec<Duration>, u32, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .iter()
            .zip(names)
            .map(|(node, ns)| {
                let (url, filler) = (node.url.clone(), filler.clone());
                scope.spawn(move || {
                    let (mut took, mut refused, mut last) = (Vec::new(), 0, Value::Null);
                    for i in 40..2000 {
                        let t0 = Instant::now();
                        let (s, b) = store(&url, ADMIN, ns, &format!("{ns} {i} {filler}"));
                        if s == 201 {
                            took.push(t0.elapsed());
                            continue;
                        }
                        assert_eq!(b["error"].as_str(), Some("quota_exceeded"), "{b}");
                        refused += 1;
                        last = b;
                        if refused == 3 {
                            break;
                        }
                    }
                    (took, refused, last)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut used = 0;
    let mut largest = 0;
    for (ns, (took, refused, last)) in names.iter().zip(&results) {
        assert_eq!(*refused, 3, "{ns} was never refused");
        assert!(last["message"].as_str().unwrap_or("").contains("storage_quota_bytes"), "{last}");
        let (s, info) = call(&nodes[0].url, "GET", &format!("/v1/namespaces/{ns}"), ADMIN, None);
        assert_eq!(s, 200, "{info}");
        let bytes = info["storage_bytes"].as_u64().unwrap();
        let count = info["memory_count"].as_u64().unwrap();
        let before = if *ns == names[0] { metered_alone.len() } else { 0 };
        assert_eq!(count, (took.len() + before) as u64, "{info}");
        used += bytes;
        // Every memory is the same size give or take a few digits: a generous per-write size.
        largest = largest.max(bytes / count.max(1) + 64);
    }
    let bound = 2 * largest;
    assert!(used <= limit + bound, "tenant uses {used} bytes: limit {limit} + bound {bound}");
    // And the limit was reached, not refused far below it (at most a slice left unused per
    // other namespace, plus one write).
    let slice = memsilo_cluster::reservation_slice(limit);
    assert!(used + slice + largest >= limit, "refused at {used} bytes of {limit}");
    let (_, tenant) = call(&nodes[1].url, "GET", &format!("/api/v1/tenants/{id}"), ADMIN, None);
    let reported = tenant["usage"]["storage_bytes"].as_u64().unwrap();
    assert!(reported <= used && reported + 2 * (slice + largest) >= used, "{tenant} vs {used}");
    let p50 = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1000.0
    };
    let writes = results.iter().map(|r| r.0.len()).sum::<usize>() + metered_alone.len();
    println!(
        "MEASURE tenant storage limit {limit} B: {used} B used by two owners ({writes} writes, bound {bound} B, slice {slice} B = one etcd transaction per ~{} writes); store_memory on the owner, one writer, p50 {:.1} ms for the tenant vs {:.1} ms untenanted",
        slice / largest.max(1),
        p50(metered_alone),
        p50(plain),
    );
}

/// Writers storing through some nodes, one thread each, until told to stop.
struct Load {
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    event: Arc<Mutex<Option<Instant>>>,
    first_after: Arc<Mutex<Option<Instant>>>,
    threads: Vec<std::thread::JoinHandle<u32>>,
}

impl Load {
    fn start(urls: &[&str], ns: &'static str) -> Load {
        let load = Load {
            acked: Arc::default(),
            stop: Arc::default(),
            event: Arc::default(),
            first_after: Arc::default(),
            threads: Vec::new(),
        };
        let threads = urls
            .iter()
            .enumerate()
            .map(|(w, url)| {
                let url = (*url).to_owned();
                let (acked, stop, event, first_after) = (
                    load.acked.clone(),
                    load.stop.clone(),
                    load.event.clone(),
                    load.first_after.clone(),
                );
                std::thread::spawn(move || {
                    let mut i = 0;
                    let mut errors = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let (s, m) = store(&url, ADMIN, ns, &format!("writer {w} item {i}"));
                        if s == 201 {
                            acked.lock().unwrap().push(m["id"].as_str().unwrap().to_owned());
                            // Only a write sent after the event proves a new owner took over;
                            // one in flight may have been acknowledged by the old owner.
                            if event.lock().unwrap().is_some_and(|k| sent > k) {
                                first_after.lock().unwrap().get_or_insert_with(Instant::now);
                            }
                        } else {
                            errors += 1;
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        i += 1;
                    }
                    errors
                })
            })
            .collect();
        Load { threads, ..load }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Marks the event (just sent), waits for the first write sent after it to be acknowledged
    /// (30 s at most) and a little more load, then stops: (time from the event to that write,
    /// every acknowledged id, writes refused).
    fn after_event(self) -> (Duration, Vec<String>, u32) {
        let at = Instant::now();
        *self.event.lock().unwrap() = Some(at);
        while self.first_after.lock().unwrap().is_none() && at.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(800));
        self.stop.store(true, Ordering::Relaxed);
        let errors = self.threads.into_iter().map(|w| w.join().unwrap()).sum();
        let first = self.first_after.lock().unwrap().expect("no write succeeded after the event");
        let acked = self.acked.lock().unwrap().clone();
        (first - at, acked, errors)
    }
}

/// Writers through two nodes while the owner is killed (`SIGKILL`): every acknowledged write is
/// there afterwards, read through a node that was never the owner.
#[test]
fn an_owner_killed_during_writes_loses_no_acknowledged_write() {
    let Some(env) = env() else { return };
    let prefix = unique("kill");
    let mut nodes: Vec<Node> =
        (1..=3).map(|i| start_node(&env, &prefix, &format!("n{i}"))).collect();
    let ns = "orders";
    create_namespace(&nodes[0].url, ns); // node 1 takes it over
                                         // Latency of a logged write on the owner, and through a forwarding node.
    let mut local = Vec::new();
    let mut forwarded = Vec::new();
    for i in 0..40 {
        let t = Instant::now();
        assert_eq!(store(&nodes[0].url, ADMIN, ns, &format!("warm {i}")).0, 201);
        local.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(store(&nodes[1].url, ADMIN, ns, &format!("warm via n2 {i}")).0, 201);
        forwarded.push(t.elapsed());
    }
    local.sort();
    forwarded.sort();
    eprintln!(
        "MEASURE store_memory on the owner (debug build, moto): p50 {:?} p90 {:?}; forwarded p50 {:?}",
        local[20], local[36], forwarded[20]
    );

    let load = Load::start(&[&nodes[1].url, &nodes[2].url], ns);
    std::thread::sleep(Duration::from_millis(800));
    let before = load.acked();
    nodes[0].signal(libc::SIGKILL);
    let (failover, acked, errors) = load.after_event();
    eprintln!(
        "MEASURE failover (SIGKILL of the owner to the next acknowledged write, lease TTL {TTL} s): {} ms; {} writes acknowledged ({before} before the kill), {errors} refused meanwhile",
        failover.as_millis(),
        acked.len()
    );
    assert!(acked.len() > before, "no writes after the failover");
    nodes.remove(0);
    for id in &acked {
        let (s, m) = get(&nodes[1].url, ADMIN, ns, id);
        assert_eq!(s, 200, "acknowledged write {id} lost: {m}");
    }
    // The nodes stop first: a live owner's background snapshot deletes the log objects it
    // covers, which would race the listing below.
    drop(nodes);
    assert_single_writer(&log_entries(&env, &prefix, ns));
}

/// A namespace moved while under load: writers through nodes 2 and 3, the owner (node 1) stopped
/// gracefully (SIGTERM, as in a rolling restart). It answers what it has in flight, then revokes
/// its lease, so its namespaces are free at once: with leases of 60 s, writes come back (through
/// a new owner) long before the lease could have run out. Every acknowledged write is there.
#[test]
fn a_namespace_moves_under_load_when_its_owner_stops() {
    let Some(env) = env() else { return };
    let prefix = unique("move");
    let extra = ["--lease-ttl", "60"];
    let mut nodes: Vec<Node> =
        (1..=3).map(|i| start_node_with(&env, &prefix, &format!("n{i}"), &extra)).collect();
    let ns = "moving";
    create_namespace(&nodes[0].url, ns); // node 1 takes it over
    let load = Load::start(&[&nodes[1].url, &nodes[2].url], ns);
    std::thread::sleep(Duration::from_millis(800));
    let before = load.acked();
    nodes[0].signal(libc::SIGTERM);
    let (moved, acked, errors) = load.after_event();
    let status = nodes[0].child.wait().unwrap();
    assert!(status.success(), "node 1 did not stop cleanly: {status}");
    assert!(
        nodes[0].lines.lock().unwrap().iter().any(|l| l.contains("left the cluster")),
        "node 1 did not revoke its lease"
    );
    eprintln!(
        "MEASURE namespace moved (SIGTERM of the owner to the next acknowledged write through a new owner, lease TTL 60 s): {} ms; {} writes acknowledged ({before} before), {errors} refused meanwhile",
        moved.as_millis(),
        acked.len()
    );
    assert!(acked.len() > before, "no writes after the move");
    nodes.remove(0);
    for id in &acked {
        let (s, m) = get(&nodes[1].url, ADMIN, ns, id);
        assert_eq!(s, 200, "acknowledged write {id} lost: {m}");
    }
    drop(nodes); // before the listing, as above
    let entries = log_entries(&env, &prefix, ns);
    assert_single_writer(&entries);
    assert!(entries.iter().any(|(_, e)| e.writer != "n1"), "no other node wrote the log");
}

/// An owner frozen (SIGSTOP) past its lease: another node takes the namespace; the old owner,
/// resumed, must not write to the log after the new owner's fence, and writes sent to it are
/// either refused or served by the new owner.
#[test]
fn an_old_owner_coming_back_is_fenced() {
    let Some(env) = env() else { return };
    let prefix = unique("fence");
    let nodes: Vec<Node> = (1..=2).map(|i| start_node(&env, &prefix, &format!("n{i}"))).collect();
    let ns = "ledger";
    create_namespace(&nodes[0].url, ns);
    let (s, m) = store(&nodes[0].url, ADMIN, ns, "first");
    assert_eq!(s, 201, "{m}");
    let mut acked = vec![m["id"].as_str().unwrap().to_owned()];
    nodes[0].signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(TTL + 2));
    // Node 2 finds no owner (the lease ran out) and takes over.
    let (s, m) = store(&nodes[1].url, ADMIN, ns, "second");
    assert_eq!(s, 201, "{m}");
    acked.push(m["id"].as_str().unwrap().to_owned());
    // A write already waiting at the old owner when it resumes.
    let old = nodes[0].url.clone();
    let pending = std::thread::spawn(move || store(&old, ADMIN, ns, "sent to the frozen owner"));
    std::thread::sleep(Duration::from_millis(300));
    nodes[0].signal(libc::SIGCONT);
    let (s, m) = pending.join().unwrap();
    // 503: the old owner knows its lease may have run out (or cannot reach the new owner).
    assert!(s == 201 || s == 500 || s == 503, "{s} {m}");
    if s == 201 {
        acked.push(m["id"].as_str().unwrap().to_owned());
    }
    for _ in 0..5 {
        let (s, m) = store(&nodes[0].url, ADMIN, ns, "to the old owner, later");
        if s == 201 {
            acked.push(m["id"].as_str().unwrap().to_owned());
        }
    }
    for id in &acked {
        assert_eq!(get(&nodes[1].url, ADMIN, ns, id).0, 200, "acknowledged write {id} lost");
    }
    drop(nodes); // before the listing, as above
    let entries = log_entries(&env, &prefix, ns);
    assert_single_writer(&entries);
    assert!(entries.iter().any(|(_, e)| e.writer == "n2"), "node 2 never wrote");
}

/// A namespace's first read on a node that has never held it, after its owner died: the
/// takeover loads the latest snapshot and replays the log after it.
#[test]
fn recall_from_a_cold_node_loads_snapshot_and_log() {
    let Some(env) = env() else { return };
    let prefix = unique("cold");
    let extra = ["--snapshot-every", "8"];
    let mut nodes: Vec<Node> =
        (1..=2).map(|i| start_node_with(&env, &prefix, &format!("n{i}"), &extra)).collect();
    let ns = "cold";
    create_namespace(&nodes[0].url, ns);
    let memories: Vec<Value> = (0..1000)
        .map(|i| json!({ "content": format!("fact number {i} about shipping") }))
        .collect();
    for chunk in memories.chunks(50) {
        let (s, b) = call(
            &nodes[0].url,
            "POST",
            "/v1/memory/store_batch",
            ADMIN,
            Some(json!({ "namespace": ns, "memories": chunk })),
        );
        assert!(s == 200 || s == 201, "{s} {b}");
    }
    // Let the snapshot after the 16th log object land.
    let log =
        NamespaceLog::new(memsilo_cluster::object_store_from_url(&env.s3).unwrap(), &prefix, ns);
    let t = Instant::now();
    let manifest = loop {
        let m = runtime().block_on(log.read_manifest()).unwrap().map(|m| m.manifest);
        if let Some(m) = m.filter(|m| m.log_from >= 16) {
            break m;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no snapshot was published");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The snapshot keeps the vectors the server embedded, under its embedder's name, so a cold
    // node with the same embedder loads them instead of embedding every memory again.
    let snapshot = runtime().block_on(log.read_snapshot(&manifest.snapshot.unwrap())).unwrap();
    let lines: Vec<Value> = snapshot
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let embedder = lines[0]["embedder"].as_str().unwrap_or_default();
    assert!(!embedder.is_empty() && embedder != "caller", "{}", lines[0]);
    let memories: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "memory").collect();
    assert!(memories.len() >= 750, "{} memories in the snapshot", memories.len());
    assert!(memories.iter().all(|m| m["vector"].is_string()), "every memory keeps its vector");
    nodes[0].signal(libc::SIGKILL);
    nodes.remove(0);
    let t = Instant::now();
    loop {
        let (s, hits) = call(
            &nodes[0].url,
            "POST",
            "/v1/memory/recall",
            ADMIN,
            Some(json!({ "namespace": ns, "query": "fact number 7", "top_k": 5 })),
        );
        if s == 200 {
            assert!(hits.to_string().contains("fact number 7 about shipping"), "{hits}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{s} {hits}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = t.elapsed();
    let (s, info) = call(&nodes[0].url, "GET", &format!("/v1/namespaces/{ns}"), ADMIN, None);
    assert_eq!((s, info["memory_count"].as_u64()), (200, Some(1000)), "{info}");
    let takeover = nodes[0].lines.lock().unwrap().iter().find(|l| l.contains("owns")).cloned();
    eprintln!(
        "MEASURE recall on a cold node after the owner died (1000 memories; includes waiting out the {TTL} s lease): {} ms; its load: {}",
        elapsed.as_millis(),
        takeover.unwrap_or_default()
    );
}

/// The graph view of an entity as sets: entity ids and relation ids (traversal order may vary).
fn graph_ids(view: &Value) -> (Vec<String>, Vec<String>) {
    let ids = |k: &str| {
        let mut v: Vec<String> = view[k]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["id"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    (ids("entities"), ids("relations"))
}

#[test]
#[allow(clippy::too_many_lines)] // one story: writes, snapshot, more writes, SIGKILL, checks
fn graph_writes_acknowledged_on_an_owner_are_on_another_node_with_the_same_ids_after_its_sigkill() {
    let Some(env) = env() else { return };
    let prefix = unique("graph");
    // Snapshots every 4 log objects: the survivor loads graph rows from a snapshot and from
    // the log after it.
    let extra = ["--snapshot-every", "4"];
    let mut nodes: Vec<Node> =
        (1..=2).map(|i| start_node_with(&env, &prefix, &format!("n{i}"), &extra)).collect();
    let ns = "kg";
    create_namespace(&nodes[0].url, ns);
    let (n1, n2) = (nodes[0].url.clone(), nodes[1].url.clone());
    let graph = |url: &str, method: &str, rest: &str, body: Option<Value>| {
        call(url, method, &format!("/v1/namespaces/{ns}/graph/{rest}"), ADMIN, body)
    };
    let entity = |url: &str, name: &str, ty: &str, props: Value| {
        let (s, e) = graph(
            url,
            "POST",
            "entities",
            Some(json!({ "name": name, "type": ty, "properties": props })),
        );
        assert_eq!(s, 201, "{e}");
        e
    };
    let relate = |url: &str, from: &str, to: &str, ty: &str| {
        let (s, r) = graph(
            url,
            "POST",
            "relations",
            Some(json!({ "source": from, "target": to, "type": ty })),
        );
        assert_eq!(s, 201, "{r}");
        r
    };
    // Through the owner and forwarded through the other node.
    let ada = entity(&n1, "Ada", "person", json!({ "team": "boilers" }));
    let acme = entity(&n2, "Acme", "org", json!({}));
    let works = relate(&n1, "Ada", "Acme", "works_at");
    // Ends created by name inside add_relation (their ids are fixed before logging too).
    let knows = relate(&n2, "Bob", "Ada", "knows");
    let gone = relate(&n1, "Bob", "Carol", "knows");
    let (s, m) = call(
        &n1,
        "POST",
        "/v1/memory/store",
        ADMIN,
        Some(
            json!({ "namespace": ns, "content": "the boiler in hall B was fixed", "entities": ["Ada"] }),
        ),
    );
    assert_eq!(s, 201, "{m}");
    let (s, invoice) = call(
        &n2,
        "POST",
        "/v1/memory/store",
        ADMIN,
        Some(
            json!({ "namespace": ns, "content": "invoice 4411 paid in full", "entities": ["Acme"] }),
        ),
    );
    assert_eq!(s, 201, "{invoice}");
    let invoice = invoice["id"].as_str().unwrap().to_owned();
    // Let a snapshot land (it holds the graph so far), then write more after it.
    let log =
        NamespaceLog::new(memsilo_cluster::object_store_from_url(&env.s3).unwrap(), &prefix, ns);
    let t = Instant::now();
    while runtime().block_on(log.read_manifest()).unwrap().map_or(0, |m| m.manifest.log_from) < 4 {
        assert!(t.elapsed() < Duration::from_secs(30), "no snapshot was published");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (s, deleted) =
        graph(&n2, "DELETE", &format!("relations/{}", gone["id"].as_str().unwrap()), None);
    assert_eq!(s, 200, "{deleted}");
    let (s, deleted) = graph(&n1, "DELETE", "entities/Carol", None);
    assert_eq!(s, 200, "{deleted}");
    let ada_again = entity(&n2, "Ada", "person", json!({ "floor": 3 }));
    assert_eq!(ada_again["id"], ada["id"], "an upsert keeps the entity");
    let dave = entity(&n1, "Dave", "person", json!({}));
    let manages = relate(&n2, "Dave", "Bob", "manages");
    let bob = knows["source"].as_str().unwrap().to_owned();
    let before = graph(&n1, "GET", "subgraph?entity=Ada&depth=3", None);
    assert_eq!(before.0, 200, "{}", before.1);
    let (entities, relations) = graph_ids(&before.1);
    let ids = |v: &[&Value]| {
        let mut out: Vec<String> = v.iter().map(|x| x["id"].as_str().unwrap().to_owned()).collect();
        out.sort();
        out
    };
    assert_eq!(entities, ids(&[&ada, &acme, &dave, &json!({ "id": bob })]));
    assert_eq!(relations, ids(&[&works, &knows, &manages]));

    nodes[0].signal(libc::SIGKILL);
    nodes.remove(0);
    let t = Instant::now();
    let after = loop {
        let got = graph(&n2, "GET", "subgraph?entity=Ada&depth=3", None);
        if got.0 == 200 {
            break got.1;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "node 2 never took the namespace over: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        graph_ids(&after),
        (entities, relations),
        "the same entities and relations, same ids"
    );
    let (s, got) = graph(&n2, "GET", &format!("entities/{}", ada["id"].as_str().unwrap()), None);
    assert_eq!(s, 200, "{got}");
    assert_eq!((got["name"].as_str(), got["type"].as_str()), (Some("Ada"), Some("person")));
    assert_eq!(got["properties"], json!({ "team": "boilers", "floor": 3 }), "{got}");
    let (s, got) = graph(&n2, "GET", "entities/Carol", None);
    assert_eq!(s, 404, "a deleted entity stays deleted: {got}");
    let (s, path) = graph(&n2, "GET", "path?from=Dave&to=Acme", None);
    assert_eq!(s, 200, "{path}");
    let hops: Vec<&str> =
        path["relations"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    let want: Vec<&str> =
        [&manages, &knows, &works].iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(hops, want, "{path}");
    // Recall's graph expansion on the survivor: the boiler memory names Ada, Ada works at
    // Acme, the invoice names Acme.
    let (s, hits) = call(
        &n2,
        "POST",
        "/v1/memory/recall",
        ADMIN,
        Some(
            json!({ "namespace": ns, "query": "the boiler in hall B was fixed", "top_k": 1, "expand": 1 }),
        ),
    );
    assert_eq!(s, 200, "{hits}");
    assert!(hits.to_string().contains(&invoice), "expansion through Ada -> Acme: {hits}");
    // Graph writes go on through the new owner, logged like the others.
    relate(&n2, "Acme", "Dave", "employs");
    let logged: usize = log_entries(&env, &prefix, ns)
        .iter()
        .flat_map(|(_, e)| &e.records)
        .filter(|r| r.op.starts_with("add_") && r.ids.is_some())
        .count();
    assert!(logged >= 1, "graph writes are logged with their ids");
}

/// The remote client given all three nodes' URLs: the node it talks to (and the namespace's
/// owner) is killed (`SIGKILL`); reads keep working through the other nodes once the dead
/// owner's lease has run out, the client staying on a live node, and an id-named store is
/// accepted.
#[test]
fn a_client_given_every_node_keeps_reading_when_its_node_is_killed() {
    let Some(env) = env() else { return };
    let prefix = unique("urls");
    let mut nodes: Vec<Node> =
        (1..=3).map(|i| start_node(&env, &prefix, &format!("n{i}"))).collect();
    let urls: Vec<&str> = nodes.iter().map(|n| n.url.as_str()).collect();
    let client = memsilo_http::Client::connect_urls(&urls, ADMIN).unwrap();
    assert_eq!(client.url(), nodes[0].url);
    let ns = "urls";
    client.call("create_namespace", json!({ "name": ns })).unwrap();
    let memories: Vec<Value> =
        (0..20).map(|i| json!({ "id": format!("m{i}"), "content": format!("fact {i}") })).collect();
    client.call("store_memories", json!({ "namespace": ns, "memories": memories })).unwrap();
    let ids: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    let read = || client.call("get_memories", json!({ "namespace": ns, "ids": ids }));
    assert_eq!(read().unwrap().value["memories"].as_array().unwrap().len(), 20);

    nodes[0].signal(libc::SIGKILL);
    let dead = nodes.remove(0);
    let t = Instant::now();
    // Until the owner's lease runs out every node answers 503 (owner unreachable); the client
    // has tried each URL and returns that, never another kind of error.
    let got = loop {
        match read() {
            Ok(reply) => break reply,
            Err(e) => {
                assert_eq!(e.code(), memsilo::ErrorCode::Internal, "{e}");
                assert!(t.elapsed() < Duration::from_secs(30), "reads never came back: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    eprintln!(
        "MEASURE reads through a 3-URL client back after SIGKILL of its node and owner (lease TTL {TTL} s): {} ms",
        t.elapsed().as_millis()
    );
    assert_eq!(got.value["memories"].as_array().unwrap().len(), 20, "{}", got.value);
    assert_ne!(client.url(), dead.url, "the client still points at the dead node");
    for _ in 0..10 {
        let reply = read().unwrap();
        assert_eq!(reply.value["memories"].as_array().unwrap().len(), 20);
    }
    let hits =
        client.call("recall", json!({ "namespace": ns, "query": "fact 7", "top_k": 3 })).unwrap();
    assert!(hits.value.to_string().contains("fact 7"), "{}", hits.value);
    client
        .call(
            "store_memory",
            json!({ "namespace": ns, "id": "after", "content": "after the kill" }),
        )
        .unwrap();
    let (s, m) = get(&nodes[1].url, ADMIN, ns, "after");
    assert_eq!((s, m["content"].as_str()), (200, Some("after the kill")), "{m}");
}

/// The environment for the tests that kill or freeze etcd members: they run alone, after the
/// others (`MEMSILO_TEST_KILL_ETCD=1`, which `make test-cluster` sets for that run only).
fn etcd_env() -> Option<Env> {
    let env = env()?;
    assert_eq!(env.etcd_pids.len(), 3, "MEMSILO_TEST_ETCD_PIDS");
    if std::env::var_os("MEMSILO_TEST_KILL_ETCD").is_none() {
        eprintln!(
            "skipped here: runs alone with MEMSILO_TEST_KILL_ETCD=1 (make test-cluster does)"
        );
        return None;
    }
    Some(env)
}

/// The etcd leader dies: the other two members elect a new one and the cluster keeps working.
#[test]
fn the_cluster_keeps_working_when_the_etcd_leader_is_killed() {
    // Run last of all in the make target: the killed member stays dead for the run.
    let Some(env) = etcd_env() else { return };
    let prefix = unique("etcd");
    let nodes: Vec<Node> = (1..=2).map(|i| start_node(&env, &prefix, &format!("n{i}"))).collect();
    create_namespace(&nodes[0].url, "kv");
    assert_eq!(store(&nodes[1].url, ADMIN, "kv", "before").0, 201);
    // Find the leader through its /metrics (etcd_server_is_leader 1).
    let urls: Vec<&str> = env.etcd.split(',').collect();
    let leader = urls
        .iter()
        .position(|u| {
            let body = agent()
                .get(format!("{u}/metrics"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .unwrap_or_default();
            body.lines().any(|l| l.trim() == "etcd_server_is_leader 1")
        })
        .expect("no etcd leader");
    // SAFETY: kill(2) on an etcd member the environment script started.
    unsafe {
        libc::kill(env.etcd_pids[leader], libc::SIGKILL);
    }
    let t = Instant::now();
    let mut ok = 0;
    while ok < 20 {
        let (s, _) = store(&nodes[1].url, ADMIN, "kv", &format!("after {ok}"));
        if s == 201 {
            ok += 1;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no progress after the etcd leader died");
    }
    // Control-plane changes need a quorum: a new namespace, a key issued on one node and
    // used on the other.
    create_namespace(&nodes[1].url, "kv2");
    let (s, k) = call(
        &nodes[1].url,
        "POST",
        "/v1/keys",
        ADMIN,
        Some(json!({ "name": "k", "namespaces": [{ "namespace": "kv2", "access": "write" }] })),
    );
    assert_eq!(s, 201, "{k}");
    let key = k["key"].as_str().unwrap().to_owned();
    let t2 = Instant::now();
    while store(&nodes[0].url, &key, "kv2", "with the new key").0 != 201 {
        assert!(t2.elapsed() < Duration::from_secs(10), "the new key never worked on node 1");
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "MEASURE 20 writes after killing the etcd leader took {} ms",
        t.elapsed().as_millis()
    );
}

/// A node whose control plane watch goes silent (every etcd member frozen with SIGSTOP: the
/// connections stay open and nothing comes through) notices within the documented bound
/// (three periods of `WATCH_PROGRESS`) and refuses scoped keys until it has read the table
/// again; once etcd is back, the key works again.
#[test]
fn the_etcd_watch_going_silent_fails_closed_within_its_bound() {
    let Some(env) = etcd_env() else { return };
    let prefix = unique("silent");
    let node = start_node(&env, &prefix, "n1");
    create_namespace(&node.url, "quiet");
    let grant = json!({ "name": "k", "namespaces": [{ "namespace": "quiet", "access": "read" }] });
    let (status, created) = call(&node.url, "POST", "/v1/keys", ADMIN, Some(grant));
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let whoami = |key: &str| call(&node.url, "GET", "/v1/whoami", key, None);
    // The new key reaches the node's cache through its watch, a few milliseconds later.
    let t = Instant::now();
    while whoami(&key).0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(10), "the new key never worked");
        std::thread::sleep(Duration::from_millis(5));
    }
    let signal_etcd = |sig: i32| {
        for pid in &env.etcd_pids {
            // SAFETY: kill(2) on the etcd members the environment script started.
            unsafe {
                libc::kill(*pid, sig);
            }
        }
    };
    signal_etcd(libc::SIGSTOP);
    let frozen = Instant::now();
    let bound = 3 * memsilo_cluster::WATCH_PROGRESS;
    let refused = loop {
        let (status, err) = whoami(&key);
        if status == 401 {
            break frozen.elapsed();
        }
        assert_eq!(status, 200, "{err}");
        if frozen.elapsed() > bound + Duration::from_secs(2) {
            signal_etcd(libc::SIGCONT);
            panic!("the key still worked {} ms after etcd froze", frozen.elapsed().as_millis());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The admin key does not depend on the control plane.
    assert_eq!(whoami(ADMIN).0, 200);
    signal_etcd(libc::SIGCONT);
    let resumed = Instant::now();
    while whoami(&key).0 != 200 {
        assert!(resumed.elapsed() < Duration::from_secs(30), "the key never worked again");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "MEASURE a silent control plane watch (etcd frozen): scoped keys refused after {} ms (bound {} ms); served again {} ms after etcd resumed",
        refused.as_millis(),
        bound.as_millis(),
        resumed.elapsed().as_millis()
    );
}

/// A node whose `--etcd` list names members that are down (nothing listens on them) still
/// starts and serves while one listed member answers: the client's first requests may go to a
/// dead member, and the start tries again on another.
#[test]
fn a_node_starts_while_any_listed_etcd_member_answers() {
    let Some(env) = env() else { return };
    let dead: Vec<String> = (0..3)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        })
        .collect();
    let listed = Env {
        etcd: format!("{},{}", dead.join(","), env.etcd),
        s3: env.s3.clone(),
        etcd_pids: Vec::new(),
        bin: env.bin.clone(),
    };
    let prefix = unique("dead-members");
    let node = start_node(&listed, &prefix, "n1");
    create_namespace(&node.url, "alive");
    let (status, body) =
        store(&node.url, ADMIN, "alive", "stored through a partly dead member list");
    assert_eq!(status, 201, "{body}");
}
