//! The 0.1.0 data directory fixture (`tests/fixtures/data-0.1.0/`): the program that writes it,
//! and the replay of its manifest's checks that a test runs on an upgraded copy.
//!
//! The fixture holds `data.tar.gz` (a data directory written by memsilo 0.1.0, LMDB through
//! heed 0.23) and `manifest.json`: the secrets of its keys, and `checks`, a list of operations
//! (through the operation table, as a binding calls them) each with the caller, its arguments and
//! the answer 0.1.0 gave on a fresh copy. Replaying the checks in order on another copy must
//! give the same answers, less the fields that depend on when they run (see [`VOLATILE`]).
//!
//! To write the fixture again, with the storage format of 0.1.0 (LMDB mdb.master via heed
//! 0.23): check out the last commit before the heed3 switch (`git checkout v0.1.0`, or the
//! commit that added this file), then `make fixture-0.1.0` (which runs
//! `cargo test -p memsilo --test it fixture_v0::write_the_0_1_0_fixture -- --ignored`), and
//! copy `tests/fixtures/data-0.1.0/` to the branch. A later checkout writes its own format.

use std::path::{Path, PathBuf};

use memsilo::{Engine, HashEmbedder, Options};
use serde_json::{json, Map, Value};

/// Fields of answers that depend on when a check runs, left out of the comparison.
pub const VOLATILE: &[&str] = &["last_accessed_at", "score", "effective_importance", "time"];

/// The fixture's directory in the repository.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/data-0.1.0")
}

/// The engine options the fixture is written and read with (the hashing embedder: no model
/// needed, the same vectors on every machine).
pub fn options() -> Options {
    Options {
        embedder: std::sync::Arc::new(HashEmbedder::new(64)),
        background: false,
        shards: 2,
        // Small, so that one namespace has an approximate index environment of its own.
        ann_threshold: 32,
        ..Options::default()
    }
}

/// Runs one operation as `who` (`root` or a key's name in `keys`) and returns its answer, or
/// `{"error": code}`.
fn run(engine: &Engine, keys: &Map<String, Value>, who: &str, op: &str, args: &Value) -> Value {
    let handle = if who == "root" {
        Ok(engine.root())
    } else {
        let secret = keys[who]["key"].as_str().unwrap_or_else(|| panic!("no key {who}"));
        engine.scoped(secret)
    };
    match handle.and_then(|h| h.call(op, args.clone())) {
        Ok(reply) => reply.value,
        Err(e) => json!({ "error": e.code().as_str() }),
    }
}

/// `v` without the [`VOLATILE`] fields, at any depth.
pub fn stable(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), stable(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(stable).collect()),
        other => other.clone(),
    }
}

/// Where `expected` differs from `actual`: every field of an expected object must be in the
/// actual one with an equal value (a later version may add fields); arrays must have the same
/// length and match element by element.
pub fn differences(expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => differences(ev, av, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}: missing (expected {ev})")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                differences(ev, av, &format!("{path}[{i}]"), out);
            }
        }
        // serde_json reads floats back to within an ulp or two (no `float_roundtrip`): far
        // below any change of an f32 vector or a score.
        (Value::Number(e), Value::Number(a))
            if e.as_f64()
                .zip(a.as_f64())
                .is_some_and(|(e, a)| (e - a).abs() <= 1e-12 * e.abs().max(1.0)) => {}
        (e, a) if e == a => {}
        (e, a) => out.push(format!("{path}: expected {e}, got {a}")),
    }
}

/// Replays the manifest's checks on `engine` in order; returns every difference (empty: the
/// directory answers as the fixture did) and how many checks ran.
pub fn replay(engine: &Engine, manifest: &Value) -> (Vec<String>, usize) {
    let keys = manifest["keys"].as_object().expect("manifest keys");
    let checks = manifest["checks"].as_array().expect("manifest checks");
    let mut out = Vec::new();
    for (i, c) in checks.iter().enumerate() {
        let who = c["as"].as_str().unwrap();
        let op = c["op"].as_str().unwrap();
        let got = stable(&run(engine, keys, who, op, &c["args"]));
        differences(&c["expect"], &got, &format!("check {i} ({who} {op})"), &mut out);
    }
    (out, checks.len())
}

/// A check to record: who calls, the operation, its arguments (with `keep`: only these fields
/// of the answer are compared).
type Check = (String, String, Value);

/// Writes the data: every kind of record 0.1.0 keeps, in each isolation mode. Returns the keys
/// (name → `{"key": secret, ...}`) and the checks to record (who, op, args).
#[allow(clippy::too_many_lines)] // one list of what the fixture holds, read top to bottom
fn populate(engine: &Engine) -> (Map<String, Value>, Vec<Check>) {
    let root = engine.root();
    let call = |op: &str, args: Value| -> Value {
        root.call(op, args.clone()).unwrap_or_else(|e| panic!("{op} {args}: {e}")).value
    };
    let tenant = |name: &str, mode: &str, extra: Value| -> String {
        let mut args = json!({ "name": name, "isolation_mode": mode });
        args.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        call("create_tenant", args)["id"].as_str().unwrap().to_owned()
    };
    let acme = tenant(
        "acme_corp",
        "logical",
        json!({
            "quotas": { "qps_limit": 500, "max_namespaces": 20, "storage_quota_bytes": 50_000_000,
                        "max_members": 10, "compute_quota_cores": 2.0 },
            "settings": { "region": "eu-west-1" },
            "features": { "graph": true },
            "tags": ["enterprise"],
        }),
    );
    let acme_labs = tenant("acme_labs", "logical", json!({ "parent_id": acme }));
    let globex = tenant("globex", "hybrid", json!({ "quotas": { "max_namespaces": 5 } }));
    let initech = tenant("initech", "physical", json!({}));
    let suspended = tenant("umbrella", "logical", json!({}));
    call("update_tenant", json!({ "tenant_id": suspended, "status": "suspended" }));

    let member = |t: &str, user: &str, role: &str| -> String {
        call(
            "add_member",
            json!({ "tenant_id": t, "user_identifier": user, "role": role,
                                   "metadata": { "team": "core" } }),
        )["member_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let alice = member(&acme, "alice@acme.example", "admin");
    let bob = member(&acme, "bob@acme.example", "viewer");
    member(&globex, "carol@globex.example", "editor");
    let gone = member(&initech, "dave@initech.example", "editor");
    call("remove_member", json!({ "tenant_id": initech, "member_id": gone }));

    let ns = |name: &str, tenant: Option<&str>, extra: Value| {
        let mut args = json!({ "name": name, "tenant_id": tenant });
        args.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        call("create_namespace", args);
    };
    ns(
        "acme-notes",
        Some(&acme),
        json!({ "policy": { "decay_rate": 0.0001, "min_importance": 0.01,
                            "ttl_default": 3_153_600_000_u64 } }),
    );
    ns("acme-vectors", Some(&acme), json!({ "dimensions": 8 }));
    ns("acme-labs-scratch", Some(&acme_labs), json!({}));
    ns("globex-chat", Some(&globex), json!({}));
    ns("globex-kb", Some(&globex), json!({}));
    ns("initech-docs", Some(&initech), json!({}));
    ns("initech-archive", Some(&initech), json!({}));
    ns("shared-scratch", None, json!({}));
    ns("doomed", Some(&initech), json!({}));

    // Memories: text (embedded by the hashing embedder, keyword-indexed), with ids, tags,
    // metadata, agents, sessions, entities and types; caller vectors in acme-vectors.
    let notes = [
        ("n-roadmap", "Acme Q3 roadmap: launch Omega in September", &["roadmap", "q3"][..]),
        ("n-coffee", "The office coffee machine on floor 3 is broken again", &["office"][..]),
        ("n-sso", "Customer asked about SSO with Okta for the enterprise plan", &["support"][..]),
        ("n-billing", "Invoice 1042 was paid late; billing reminder sent", &["billing"][..]),
        ("n-hiring", "Hiring two Rust engineers for the storage team", &["hiring"][..]),
    ];
    let memories: Vec<Value> = notes
        .iter()
        .enumerate()
        .map(|(i, (id, content, tags))| {
            json!({ "id": id, "content": content, "tags": tags, "agent_id": "planner",
                    "importance": 0.3 + 0.1 * i as f64,
                    "metadata": { "source": "slack", "n": i, "nested": { "ok": true } },
                    "entities": if i == 0 { json!(["Omega"]) } else { json!([]) },
                    "memory_type": if i % 2 == 0 { "semantic" } else { "episodic" } })
        })
        .collect();
    call("store_memories", json!({ "namespace": "acme-notes", "memories": memories }));
    call(
        "update_memory",
        json!({ "namespace": "acme-notes", "id": "n-coffee",
                                  "content": "The office coffee machine on floor 3 works again",
                                  "metadata": { "fixed": true } }),
    );
    call(
        "store_memory",
        json!({ "namespace": "acme-notes", "id": "n-deleted",
                                 "content": "a memory deleted before the upgrade" }),
    );
    call("delete_memory", json!({ "namespace": "acme-notes", "id": "n-deleted" }));

    // 40 vectors of 8 dimensions: past ann_threshold, so an index environment is built.
    let vectors: Vec<Value> = (0..40)
        .map(|i| {
            let v: Vec<f32> = (0..8).map(|d| ((i * 7 + d * 3) % 11) as f32 - 5.0).collect();
            json!({ "id": format!("v-{i:02}"), "content": format!("vector row {i}"),
                    "embedding": v, "tags": [format!("group-{}", i % 4)],
                    "metadata": { "row": i } })
        })
        .collect();
    call("store_memories", json!({ "namespace": "acme-vectors", "memories": vectors }));
    assert!(engine.build_vector_indexes().unwrap() > 0, "no index built");

    call(
        "store_memory",
        json!({ "namespace": "acme-labs-scratch", "id": "lab-1",
                                 "content": "Labs experiment: fusion reactor prototype" }),
    );
    call(
        "store_memory",
        json!({ "namespace": "shared-scratch", "id": "s-1",
                                 "content": "A note without a tenant" }),
    );

    // Sessions (hybrid tenant's environment).
    for (id, agent) in [("chat-1", "support-bot"), ("chat-2", "sales-bot")] {
        call(
            "start_session",
            json!({ "namespace": "globex-chat", "id": id, "agent_id": agent,
                                      "metadata": { "channel": "web" } }),
        );
    }
    for (i, text) in ["Hello, I cannot log in", "Password reset link sent", "Thanks, it works"]
        .iter()
        .enumerate()
    {
        call(
            "store_memory",
            json!({ "namespace": "globex-chat", "id": format!("c-{i}"),
                                     "content": text, "session_id": "chat-1",
                                     "agent_id": "support-bot" }),
        );
    }
    call(
        "store_memory",
        json!({ "namespace": "globex-chat", "id": "c-sales",
                                 "content": "Asked for a quote on 40 seats",
                                 "session_id": "chat-2", "agent_id": "sales-bot" }),
    );
    call("end_session", json!({ "namespace": "globex-chat", "id": "chat-1" }));

    // Graphs: hybrid (globex-kb) and physical (initech-docs).
    for (space, prefix) in [("globex-kb", "Globex"), ("initech-docs", "Initech")] {
        for (name, ty) in [(prefix, "company"), ("Hank", "person"), ("Springfield", "city")] {
            call(
                "add_entity",
                json!({ "namespace": space, "name": name, "type": ty,
                                       "properties": { "since": 1989 } }),
            );
        }
        call(
            "add_relation",
            json!({ "namespace": space, "source": "Hank", "target": prefix,
                                     "type": "works_at", "weight": 0.9,
                                     "properties": { "role": "ceo" } }),
        );
        call(
            "add_relation",
            json!({ "namespace": space, "source": prefix,
                                     "target": "Springfield", "type": "located_in" }),
        );
        call(
            "store_memory",
            json!({ "namespace": space, "id": "doc-1",
                                     "content": format!("{prefix} moved its headquarters to Springfield"),
                                     "entities": [prefix, "Springfield"] }),
        );
    }
    call(
        "store_memory",
        json!({ "namespace": "initech-archive", "id": "a-1",
                                 "content": "TPS report cover sheets, 1999 edition" }),
    );

    // A physical namespace deleted and purged: its files are gone, its name free.
    call("store_memory", json!({ "namespace": "doomed", "content": "purged before the upgrade" }));
    call("delete_namespace", json!({ "name": "doomed" }));
    engine.run_pending_purges().unwrap();

    // Keys of every kind, one revoked, one rotated, one expiring far ahead.
    let mut keys = Map::new();
    let key = |keys: &mut Map<String, Value>, name: &str, args: Value| {
        let mut args = args;
        args["name"] = json!(name);
        keys.insert(name.into(), call("create_key", args));
    };
    key(
        &mut keys,
        "acme-notes-writer",
        json!({ "namespaces": [{ "namespace": "acme-notes", "access": "write" }],
                                     "expires_at": "2099-01-01T00:00:00Z" }),
    );
    key(
        &mut keys,
        "acme-vectors-reader",
        json!({ "namespaces": [{ "namespace": "acme-vectors", "access": "read" }] }),
    );
    key(&mut keys, "acme-admin", json!({ "tenant_id": acme, "role": "admin" }));
    key(&mut keys, "alice", json!({ "tenant_id": acme, "member_id": alice }));
    key(&mut keys, "bob", json!({ "tenant_id": acme, "member_id": bob }));
    key(&mut keys, "globex-editor", json!({ "tenant_id": globex, "role": "editor" }));
    key(
        &mut keys,
        "initech-writer",
        json!({ "namespaces": [{ "namespace": "initech-docs", "access": "write" },
                                                  { "namespace": "initech-archive", "access": "read" }] }),
    );
    key(
        &mut keys,
        "revoked",
        json!({ "namespaces": [{ "namespace": "shared-scratch", "access": "read" }] }),
    );
    let revoked = keys["revoked"]["id"].clone();
    call("revoke_key", json!({ "key_id": revoked }));
    key(
        &mut keys,
        "rotated-old",
        json!({ "namespaces": [{ "namespace": "shared-scratch", "access": "write" }] }),
    );
    let rotated = call("rotate_key", json!({ "key_id": keys["rotated-old"]["id"] }));
    keys.insert("rotated-new".into(), rotated);
    engine.set_admin_key("msk_fixture_admin_key_0_1_0").unwrap();

    // Refused requests, so the audit log holds refusals too.
    let viewer = engine.scoped(keys["bob"]["key"].as_str().unwrap()).unwrap();
    assert!(viewer
        .call("store_memory", json!({ "namespace": "acme-notes", "content": "x" }))
        .is_err());
    assert!(engine.scoped("msk_not_a_key").is_err());

    (keys, checks(&acme, &globex, &initech))
}

/// The checks recorded on a fresh copy and replayed on an upgraded one, in this order: reads
/// first (audit logs before anything that appends to them), then writes and refusals.
#[allow(clippy::too_many_lines)] // one list, read top to bottom
fn checks(acme: &str, globex: &str, initech: &str) -> Vec<Check> {
    let mut c: Vec<Check> = Vec::new();
    let mut add = |who: &str, op: &str, args: Value| c.push((who.into(), op.into(), args));
    for t in [acme, globex, initech, "instance"] {
        add("root", "verify_audit", json!({ "tenant_id": t }));
        add("root", "list_audit", json!({ "tenant_id": t, "limit": 1000 }));
    }
    add("root", "list_tenants", json!({ "limit": 100 }));
    for t in [acme, globex, initech] {
        add("root", "get_tenant", json!({ "tenant_id": t }));
        add("root", "list_members", json!({ "tenant_id": t }));
        add("root", "list_keys", json!({ "tenant_id": t, "limit": 100 }));
    }
    add("root", "list_keys", json!({ "limit": 100 }));
    add("root", "list_namespaces", json!({ "limit": 100 }));
    for n in [
        "acme-notes",
        "acme-vectors",
        "acme-labs-scratch",
        "globex-chat",
        "globex-kb",
        "initech-docs",
        "initech-archive",
        "shared-scratch",
    ] {
        add("root", "get_namespace", json!({ "name": n }));
        add("root", "get_memory_policy", json!({ "namespace": n }));
        add("root", "count_memories", json!({ "namespace": n }));
        add(
            "root",
            "list_memories",
            json!({ "namespace": n, "limit": 100, "include_vectors": true }),
        );
    }
    add("root", "get_namespace", json!({ "name": "doomed" }));
    add("root", "get_memory", json!({ "namespace": "acme-notes", "id": "n-deleted" }));
    // Recall in every mode, by text and by vector (through the approximate index too).
    for mode in ["vector", "keyword", "hybrid"] {
        add(
            "acme-notes-writer",
            "recall",
            json!({ "namespace": "acme-notes", "query": "product roadmap launch", "mode": mode, "top_k": 3 }),
        );
    }
    add(
        "acme-notes-writer",
        "recall",
        json!({ "namespace": "acme-notes", "query": "billing",
                                               "tags": ["billing"], "top_k": 5 }),
    );
    add(
        "acme-vectors-reader",
        "recall",
        json!({ "namespace": "acme-vectors", "vector": [-5, -2, 1, 4, -4, -1, 2, 5], "top_k": 5 }),
    );
    add(
        "acme-vectors-reader",
        "recall",
        json!({ "namespace": "acme-vectors", "vector": [1, 2, 3, 4, 5, 0, -1, -2], "top_k": 10,
                "filter": { "tags": { "$in": ["group-1"] } } }),
    );
    add(
        "acme-vectors-reader",
        "get_memories",
        json!({ "namespace": "acme-vectors", "ids": ["v-00", "v-39"], "include_vectors": true }),
    );
    add("alice", "whoami", json!({}));
    add("bob", "recall", json!({ "namespace": "acme-labs-scratch", "query": "fusion" }));
    add("globex-editor", "list_sessions", json!({ "namespace": "globex-chat" }));
    add("globex-editor", "get_session", json!({ "namespace": "globex-chat", "id": "chat-1" }));
    add("globex-editor", "session_memories", json!({ "namespace": "globex-chat", "id": "chat-1" }));
    add(
        "globex-editor",
        "recall",
        json!({ "namespace": "globex-chat", "query": "password",
                                           "session_id": "chat-1" }),
    );
    for (who, space, prefix) in
        [("globex-editor", "globex-kb", "Globex"), ("initech-writer", "initech-docs", "Initech")]
    {
        add(who, "get_entity", json!({ "namespace": space, "entity": "Hank" }));
        add(who, "subgraph", json!({ "namespace": space, "entity": "Hank", "depth": 2 }));
        add(
            who,
            "shortest_path",
            json!({ "namespace": space, "from": "Hank", "to": "Springfield" }),
        );
        add(who, "recall", json!({ "namespace": space, "query": "headquarters", "expand": 1 }));
        add(who, "neighbors", json!({ "namespace": space, "entity": prefix }));
    }
    add(
        "initech-writer",
        "recall",
        json!({ "namespace": "initech-archive", "query": "TPS report" }),
    );
    add("rotated-new", "whoami", json!({}));
    // Refusals: revoked, rotated away, wrong namespace, wrong tenant, viewer writing.
    add("revoked", "whoami", json!({}));
    add("rotated-old", "whoami", json!({}));
    add("acme-notes-writer", "recall", json!({ "namespace": "acme-vectors", "query": "x" }));
    add(
        "initech-writer",
        "store_memory",
        json!({ "namespace": "initech-archive", "content": "x" }),
    );
    add("globex-editor", "get_namespace", json!({ "name": "acme-notes" }));
    add("bob", "store_memory", json!({ "namespace": "acme-notes", "content": "x" }));
    add("alice", "list_members", json!({ "tenant_id": globex }));
    // Writes after the upgrade work in every mode.
    for (who, space) in [
        ("acme-notes-writer", "acme-notes"),
        ("globex-editor", "globex-chat"),
        ("initech-writer", "initech-docs"),
    ] {
        // Its answer's times are now: only these fields are compared.
        add(
            who,
            "store_memory",
            json!({ "namespace": space, "id": "after-upgrade",
                                         "content": "written after the upgrade",
                                         "keep": ["id", "namespace", "content"] }),
        );
        add(who, "count_memories", json!({ "namespace": space }));
    }
    c
}

/// Writes `tests/fixtures/data-0.1.0/` (or `MEMSILO_FIXTURE_OUT`): see the module documentation.
#[test]
#[ignore = "writes the fixture: make fixture-0.1.0"]
fn write_the_0_1_0_fixture() {
    let out = std::env::var_os("MEMSILO_FIXTURE_OUT").map_or_else(fixture_dir, PathBuf::from);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let (keys, checks) = {
        let engine = Engine::open(&data, options()).unwrap();
        populate(&engine)
    };
    std::fs::create_dir_all(&out).unwrap();
    let tar = out.join("data.tar.gz");
    let status = std::process::Command::new("tar")
        .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-czf"])
        .arg(&tar)
        .args(["-C", work.path().to_str().unwrap(), "--exclude=LOCK", "--exclude=lock.mdb", "data"])
        .status()
        .unwrap();
    assert!(status.success(), "tar failed");

    // The answers are recorded on a copy unpacked from the archive, as a test will see it.
    let copy = tempfile::tempdir().unwrap();
    unpack(&tar, copy.path());
    let engine = Engine::open(copy.path().join("data"), options()).unwrap();
    let recorded: Vec<Value> = checks
        .into_iter()
        .map(|(who, op, mut args)| {
            let keep = args.as_object_mut().unwrap().remove("keep");
            let mut expect = stable(&run(&engine, &keys, &who, &op, &args));
            if let (Some(Value::Array(keep)), Value::Object(answer)) = (keep, &mut expect) {
                answer.retain(|k, _| keep.iter().any(|f| f == k));
            }
            json!({ "as": who, "op": op, "args": args, "expect": expect })
        })
        .collect();
    let manifest = json!({
        "format": "memsilo data directory, version 0.1.0 (LMDB mdb.master through heed 0.23)",
        "archive": "data.tar.gz (the data directory is its `data/`)",
        "embedder": "memsilo-hash-64-v1 (open with HashEmbedder::new(64))",
        "admin_key": "msk_fixture_admin_key_0_1_0",
        "volatile_fields": VOLATILE,
        "keys": keys,
        "checks": recorded,
    });
    std::fs::write(out.join("manifest.json"), serde_json::to_vec_pretty(&manifest).unwrap())
        .unwrap();
    drop(engine);
    // The checks replay identically on a second fresh copy (nothing in them depends on time).
    let again = tempfile::tempdir().unwrap();
    unpack(&tar, again.path());
    let engine = Engine::open(again.path().join("data"), options()).unwrap();
    let (diffs, n) = replay(&engine, &manifest);
    assert!(diffs.is_empty(), "{n} checks, differences:\n{}", diffs.join("\n"));
}

/// Unpacks the fixture's archive into `into` (the data directory is `into/data`).
pub fn unpack(tar: &Path, into: &Path) {
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(tar)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(status.success(), "tar -x failed");
}

/// Writes a large data directory for timing `memsilo upgrade` (the numbers in
/// docs/src/operations.md): `MEMSILO_LARGE_DIR` gets `MEMSILO_LARGE_N` memories (default
/// 100,000; 384-d caller vectors, content, a tag and metadata each), 80% in a `logical` tenant's
/// namespace (past the IVF threshold: an index environment), 10% each in a `hybrid` and a
/// `physical` one. For a 0.1.0 directory, run it on a 0.1.0 checkout (see the module
/// documentation), in release:
/// `MEMSILO_LARGE_DIR=/tmp/big/data cargo test --release -p memsilo --test it
/// fixture_v0::write_a_large_directory -- --ignored --exact`, then
/// `time memsilo upgrade /tmp/big/data` with this version's release build.
#[test]
#[ignore = "writes a large directory for timing memsilo upgrade"]
fn write_a_large_directory() {
    let Some(dir) = std::env::var_os("MEMSILO_LARGE_DIR") else { return };
    let n: usize = std::env::var("MEMSILO_LARGE_N").map_or(100_000, |s| s.parse().unwrap());
    let engine = Engine::open(
        &dir,
        Options { ann_threshold: Options::default().ann_threshold, ..options() },
    )
    .unwrap();
    let root = engine.root();
    let started = std::time::Instant::now();
    let mut seed = 1u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    for (name, mode, tenths) in [
        ("big_logical", "logical", 8),
        ("big_hybrid", "hybrid", 1),
        ("big_physical", "physical", 1),
    ] {
        let reply = root.call("create_tenant", json!({ "name": name, "isolation_mode": mode }));
        let tenant = reply.unwrap().value["id"].as_str().unwrap().to_owned();
        let ns = format!("{name}-ns");
        let args = json!({ "name": ns, "tenant_id": tenant, "dimensions": 384 });
        root.call("create_namespace", args).unwrap();
        let count = n * tenths / 10;
        for start in (0..count).step_by(1000) {
            let batch: Vec<Value> = (start..(start + 1000).min(count))
                .map(|i| {
                    let v: Vec<f32> = (0..384).map(|_| rnd()).collect();
                    json!({ "id": format!("m-{i}"), "embedding": v, "tags": [format!("t{}", i % 10)],
                            "content": format!("memory {i} about topic {} and item {}", i % 97, i % 1013),
                            "metadata": { "i": i } })
                })
                .collect();
            root.call("store_memories", json!({ "namespace": ns, "memories": batch })).unwrap();
        }
    }
    engine.build_vector_indexes().unwrap();
    eprintln!("wrote {n} memories in {:.1} s", started.elapsed().as_secs_f64());
}
