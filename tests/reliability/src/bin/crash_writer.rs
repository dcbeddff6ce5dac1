//! `crash_writer DIR SEED RUN [background]`: opens an engine on DIR (with its background
//! purge worker when asked) and writes until it is killed.
//!
//! Before each write it prints `{"begin": {...}}` and, once the write has returned (its
//! LMDB commit fsync'd), `{"ack": {...}}`, one JSON line each, flushed. A test driver kills
//! this process with SIGKILL at random points and checks that every acknowledged write
//! survived and nothing acknowledged as deleted came back. Names carry RUN, so successive
//! runs on one directory never collide. Memories carry [`vector_for`] their content.
//!
//! `crash_writer concurrent DIR NS COUNT TAG` instead stores COUNT memories and exits: the
//! second process of the concurrent-open test.
//!
//! `crash_writer grouped DIR RUN THREADS` writes from THREADS threads at once into namespace
//! `grouped-RUN` until killed, so the engine's group commits hold many writes each: single
//! stores, 4-memory batches, forgets of the thread's own memories, namespace creations, and
//! stores whose vector has the wrong dimensions (refused inside the group's transaction,
//! printed as `refused`). Lines carry the thread (`t`) so the driver can pair them.

use std::io::Write;

use memsilo::{Access, CreateKey, Engine, Forget, Handle, NamespaceOptions, Options, StoreMemory};
use memsilo_reliability::{vector_for, Rng};
use serde_json::{json, Value};

/// Tenants the driver creates before the first run, one per non-default isolation mode.
const TENANTS: [&str; 2] = ["crash_hybrid", "crash_physical"];

fn emit(kind: &str, body: &Value) {
    let mut out = std::io::stdout().lock();
    // A closed pipe means the driver is gone: stop.
    if writeln!(out, "{}", json!({ kind: body })).and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

struct Writer {
    engine: Engine,
    root: Handle,
    rng: Rng,
    run: u64,
    seq: u64,
    tenants: Vec<String>,
    namespaces: Vec<String>,
    /// This run's memories: (namespace, id).
    memories: Vec<(String, String)>,
    /// This run's keys: id.
    keys: Vec<String>,
}

impl Writer {
    fn step(&mut self) -> memsilo::Result<()> {
        self.seq += 1;
        let roll = self.rng.below(100);
        if self.namespaces.len() < 3 || (roll < 6 && self.namespaces.len() < 10) {
            return self.create_namespace();
        }
        let ns = self.namespaces[self.rng.below(self.namespaces.len())].clone();
        match roll {
            41..=47 => self.batch(&ns),
            48..=54 => self.create_key(&ns),
            55..=57 => self.revoke_key(),
            58..=75 => self.delete_memory(),
            76..=80 => self.forget(),
            81..=85 => self.delete_namespace(&ns),
            86..=88 => self.purge(),
            _ => self.store(&ns),
        }
    }

    fn create_namespace(&mut self) -> memsilo::Result<()> {
        let name = format!("crash-{}-{}", self.run, self.seq);
        let pick = self.rng.below(3);
        let tenant_id = if pick == 0 { None } else { Some(self.tenants[pick - 1].clone()) };
        let info = json!({ "op": "ns_create", "ns": name });
        emit("begin", &info);
        self.root.create_namespace(&name, NamespaceOptions { tenant_id, ..Default::default() })?;
        emit("ack", &info);
        self.namespaces.push(name);
        Ok(())
    }

    fn store(&mut self, ns: &str) -> memsilo::Result<()> {
        let content = format!(
            "m-{}-{}-{:016x} a memory with some words in it",
            self.run,
            self.seq,
            self.rng.next_u64()
        );
        emit("begin", &json!({ "op": "store", "ns": ns, "content": content }));
        let m = self.root.store_memory(StoreMemory {
            namespace: Some(ns.into()),
            tags: vec![format!("run-{}", self.run)],
            embedding: Some(vector_for(&content)),
            ..StoreMemory::text(content.clone())
        })?;
        emit("ack", &json!({ "op": "store", "ns": ns, "content": content, "id": m.id }));
        self.memories.push((ns.to_owned(), m.id));
        Ok(())
    }

    fn batch(&mut self, ns: &str) -> memsilo::Result<()> {
        let n = if self.rng.chance(0.3) { 1000 } else { self.rng.range(100, 1000) as usize };
        let prefix = format!("b-{}-{}", self.run, self.seq);
        let items: Vec<StoreMemory> = (0..n)
            .map(|j| {
                let content = format!("{prefix}-{j}");
                StoreMemory { embedding: Some(vector_for(&content)), ..StoreMemory::text(content) }
            })
            .collect();
        emit("begin", &json!({ "op": "batch", "ns": ns, "prefix": prefix, "n": n }));
        let ids = self.root.store_memories(ns, items)?;
        emit("ack", &json!({ "op": "batch", "ns": ns, "prefix": prefix, "n": n, "ids": ids }));
        self.memories.extend(ids.into_iter().map(|id| (ns.to_owned(), id)));
        Ok(())
    }

    fn create_key(&mut self, ns: &str) -> memsilo::Result<()> {
        emit("begin", &json!({ "op": "key", "ns": ns }));
        let name = format!("crash-key-{}-{}", self.run, self.seq);
        let key = self.root.create_key(CreateKey::namespaces(name, [(ns, Access::Write)]))?;
        emit("ack", &json!({ "op": "key", "ns": ns, "key_id": key.info.id, "key": key.key }));
        self.keys.push(key.info.id);
        Ok(())
    }

    fn revoke_key(&mut self) -> memsilo::Result<()> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let id = self.keys.swap_remove(self.rng.below(self.keys.len()));
        let info = json!({ "op": "revoke", "key_id": id });
        emit("begin", &info);
        self.root.revoke_key(&id)?;
        emit("ack", &info);
        Ok(())
    }

    fn delete_memory(&mut self) -> memsilo::Result<()> {
        if self.memories.is_empty() {
            return Ok(());
        }
        let (ns, id) = self.memories.swap_remove(self.rng.below(self.memories.len()));
        let info = json!({ "op": "mem_delete", "ns": ns, "id": id });
        emit("begin", &info);
        self.root.delete_memory(Some(&ns), &id)?;
        emit("ack", &info);
        Ok(())
    }

    fn forget(&mut self) -> memsilo::Result<()> {
        if self.memories.is_empty() {
            return Ok(());
        }
        let ns = self.memories[self.rng.below(self.memories.len())].0.clone();
        let mut ids = Vec::new();
        self.memories.retain(|(n, id)| {
            let take = *n == ns && ids.len() < 50 && id.as_bytes()[35].is_multiple_of(2);
            if take {
                ids.push(id.clone());
            }
            !take
        });
        if ids.is_empty() {
            return Ok(());
        }
        let info = json!({ "op": "forget", "ns": ns, "ids": ids });
        emit("begin", &info);
        let forgotten = self.root.batch_forget(Forget {
            namespace: Some(ns.clone()),
            ids: Some(ids.clone()),
            ..Forget::default()
        })?;
        if forgotten.forgotten != ids.len() as u64 {
            return Err(memsilo::Error::Internal(format!(
                "forgot {} of {}",
                forgotten.forgotten,
                ids.len()
            )));
        }
        emit("ack", &info);
        Ok(())
    }

    fn delete_namespace(&mut self, ns: &str) -> memsilo::Result<()> {
        let info = json!({ "op": "ns_delete", "ns": ns });
        emit("begin", &info);
        self.root.delete_namespace(ns)?;
        emit("ack", &info);
        self.namespaces.retain(|n| n != ns);
        self.memories.retain(|(n, _)| n != ns);
        if self.rng.chance(0.7) {
            self.purge()?;
        }
        Ok(())
    }

    fn purge(&mut self) -> memsilo::Result<()> {
        emit("begin", &json!({ "op": "purge" }));
        let n = self.engine.run_pending_purges()?;
        emit("ack", &json!({ "op": "purge", "jobs": n }));
        Ok(())
    }
}

/// `crash_writer concurrent DIR NS COUNT TAG`: stores COUNT memories `TAG-i` into NS,
/// acknowledging each, then exits (a second process on a directory another one has open).
fn concurrent(args: &[String]) -> memsilo::Result<()> {
    let [dir, ns, count, tag] = args else {
        return Err(memsilo::Error::invalid(
            "args",
            "usage: crash_writer concurrent DIR NS COUNT TAG",
        ));
    };
    let count: usize =
        count.parse().map_err(|_| memsilo::Error::invalid("count", "not a number"))?;
    let engine = Engine::open(dir, Options { background: false, ..Options::default() })?;
    let root = engine.root();
    emit("ready", &json!({ "pid": std::process::id() }));
    for i in 0..count {
        let content = format!("{tag}-{i}");
        let m = root.store_memory(StoreMemory {
            namespace: Some(ns.clone()),
            embedding: Some(vector_for(&content)),
            ..StoreMemory::text(content.clone())
        })?;
        emit("ack", &json!({ "op": "store", "ns": ns, "id": m.id, "content": content }));
    }
    Ok(())
}

/// `crash_writer grouped DIR RUN THREADS` (see the module documentation).
fn grouped(args: &[String]) -> memsilo::Result<()> {
    let [dir, run, threads] = args else {
        return Err(memsilo::Error::invalid("args", "usage: crash_writer grouped DIR RUN THREADS"));
    };
    let threads: usize =
        threads.parse().map_err(|_| memsilo::Error::invalid("threads", "not a number"))?;
    let engine = Engine::open(dir, Options { background: false, ..Options::default() })?;
    let root = engine.root();
    let ns = format!("grouped-{run}");
    root.create_namespace(&ns, NamespaceOptions::default())?;
    // The first memory fixes the namespace's dimensions, so a shorter vector is refused
    // inside the transaction (after validation).
    let first = format!("g{run}-first");
    root.store_memory(StoreMemory {
        namespace: Some(ns.clone()),
        id: Some(first.clone()),
        embedding: Some(vector_for(&first)),
        ..StoreMemory::text(first)
    })?;
    emit("ready", &json!({ "pid": std::process::id(), "ns": ns }));
    std::thread::scope(|s| {
        for t in 0..threads {
            let (root, ns, run) = (root.clone(), ns.clone(), run.clone());
            s.spawn(move || grouped_thread(&root, &ns, &run, t));
        }
    });
    Ok(())
}

fn grouped_thread(root: &Handle, ns: &str, run: &str, t: usize) {
    let mut mine: Vec<String> = Vec::new();
    let memory = |id: &str| StoreMemory {
        namespace: Some(ns.to_owned()),
        id: Some(id.to_owned()),
        embedding: Some(vector_for(id)),
        ..StoreMemory::text(id)
    };
    for i in 0.. {
        let id = format!("g{run}-{t}-{i}");
        let (begin, result) = match i % 10 {
            3 if !mine.is_empty() => {
                let gone = mine.remove(0);
                let begin = json!({ "op": "forget", "t": t, "ids": [gone] });
                emit("begin", &begin);
                let forget = Forget {
                    namespace: Some(ns.to_owned()),
                    ids: Some(vec![gone]),
                    ..Forget::default()
                };
                (begin, root.batch_forget(forget).map(|_| ()))
            }
            5 => {
                let name = format!("gn-{run}-{t}-{i}");
                let begin = json!({ "op": "ns_create", "t": t, "ns": name });
                emit("begin", &begin);
                // Through the operation table, so its audit entry is written with it.
                (begin, root.call("create_namespace", json!({ "name": name })).map(|_| ()))
            }
            7 => {
                let begin = json!({ "op": "bad", "t": t, "ids": [id] });
                emit("begin", &begin);
                let bad = StoreMemory { embedding: Some(vec![0.5; 8]), ..memory(&id) };
                (begin, root.store_memory(bad).map(|_| ()))
            }
            9 => {
                let ids: Vec<String> = (0..4).map(|j| format!("{id}-{j}")).collect();
                let begin = json!({ "op": "batch", "t": t, "ids": ids });
                emit("begin", &begin);
                let batch = ids.iter().map(|id| memory(id)).collect();
                let stored = root.store_memories(ns, batch).map(|_| ());
                if stored.is_ok() {
                    mine.extend(ids);
                }
                (begin, stored)
            }
            _ => {
                let begin = json!({ "op": "store", "t": t, "ids": [id] });
                emit("begin", &begin);
                let stored = root.store_memory(memory(&id)).map(|_| ());
                if stored.is_ok() {
                    mine.push(id);
                }
                (begin, stored)
            }
        };
        match result {
            Ok(()) => emit("ack", &begin),
            Err(e) if begin["op"] == "bad" => {
                emit("refused", &json!({ "t": t, "ids": begin["ids"], "code": e.code().as_str() }));
            }
            Err(e) => {
                emit("error", &json!({ "code": e.code().as_str(), "message": e.to_string() }));
                std::process::exit(1);
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "grouped") {
        if let Err(e) = grouped(&args[1..]) {
            eprintln!("crash_writer: {e}");
            emit("error", &json!({ "code": e.code().as_str(), "message": e.to_string() }));
            std::process::exit(1);
        }
        return;
    }
    if args.first().is_some_and(|a| a == "concurrent") {
        if let Err(e) = concurrent(&args[1..]) {
            eprintln!("crash_writer: {e}");
            emit("error", &json!({ "code": e.code().as_str(), "message": e.to_string() }));
            std::process::exit(1);
        }
        return;
    }
    let (dir, seed, run, background) = match args.as_slice() {
        [dir, seed, run] => (dir, seed, run, false),
        [dir, seed, run, bg] if bg == "background" => (dir, seed, run, true),
        _ => {
            eprintln!("usage: crash_writer DIR SEED RUN [background]");
            std::process::exit(2);
        }
    };
    let (Ok(seed), Ok(run)) = (seed.parse::<u64>(), run.parse::<u64>()) else {
        eprintln!("crash_writer: SEED and RUN must be integers");
        std::process::exit(2);
    };
    let result = (|| -> memsilo::Result<()> {
        // With `background`, the engine's own worker purges deleted namespaces (as in
        // `memsilo serve`), concurrently with the explicit purges of the script.
        let engine = Engine::open(dir, Options { background, ..Options::default() })?;
        let root = engine.root();
        let listed = root.call("list_tenants", json!({ "limit": 100 }))?.value;
        let tenants = TENANTS
            .iter()
            .map(|name| {
                listed["tenants"]
                    .as_array()
                    .and_then(|ts| ts.iter().find(|t| t["name"] == *name))
                    .and_then(|t| t["id"].as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| memsilo::Error::Internal(format!("tenant {name} missing")))
            })
            .collect::<memsilo::Result<Vec<_>>>()?;
        let mut namespaces = Vec::new();
        for offset in (0..).step_by(100) {
            let page =
                root.call("list_namespaces", json!({ "offset": offset, "limit": 100 }))?.value;
            let items = page.as_array().cloned().unwrap_or_default();
            namespaces.extend(
                items
                    .iter()
                    .filter_map(|n| n["name"].as_str())
                    .filter(|n| n.starts_with("crash-"))
                    .map(str::to_owned),
            );
            if items.len() < 100 {
                break;
            }
        }
        let mut w = Writer {
            engine,
            root,
            rng: Rng::new(seed ^ run.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            run,
            seq: 0,
            tenants,
            namespaces,
            memories: Vec::new(),
            keys: Vec::new(),
        };
        emit("ready", &json!({ "run": run }));
        if w.rng.chance(0.5) {
            w.purge()?;
        }
        loop {
            w.step()?;
        }
    })();
    if let Err(e) = result {
        eprintln!("crash_writer: {e}");
        emit("error", &json!({ "code": e.code().as_str(), "message": e.to_string() }));
        std::process::exit(1);
    }
}
