//! Fuzz target bodies, shared by the cargo-fuzz project in `fuzz/` (libFuzzer) and by the
//! stable, seeded mutation loop of this crate's tests. Each takes arbitrary bytes and
//! panics only when memsilo misbehaves: a panic inside memsilo, an `internal` error for a
//! caller's mistake, a request that does not survive its own round trip, a key that works
//! after any change to its text, a filter that reaches outside its namespace.

use std::path::PathBuf;
use std::sync::OnceLock;

use memsilo::api::Request;
use memsilo::{
    Access, CreateKey, Engine, ErrorCode, Handle, NamespaceOptions, Options, Recall, StoreMemory,
};
use serde_json::{json, Value};

/// A fuzz target: arbitrary bytes in, a panic when memsilo misbehaves.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (also the corpus directories under `fuzz/corpus/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("request_decode", request_decode),
    ("handle_call", handle_call),
    ("key_parse", key_parse),
    ("filters", filters),
    ("vector_input", vector_input),
    ("import_reader", import_reader),
];

/// Splits an input into an operation (its first byte indexes the operation table) and JSON.
pub fn op_and_json(data: &[u8]) -> Option<(&'static str, Value)> {
    let (first, rest) = data.split_first()?;
    let op = Request::OPERATIONS[usize::from(*first) % Request::OPERATIONS.len()];
    let value = serde_json::from_slice(rest).ok()?;
    Some((op, value))
}

/// `Request::parse` on any operation and any JSON: no panic, and a decoded request
/// re-encodes to arguments that decode to the same request.
pub fn request_decode(data: &[u8]) {
    let Some((op, value)) = op_and_json(data) else { return };
    match Request::parse(op, value) {
        Ok(req) => {
            let args = req.args();
            let again = Request::parse(req.name(), args.clone()).unwrap_or_else(|e| {
                panic!("{op}: a decoded request does not decode again: {e}\nargs: {args}")
            });
            assert_eq!(again.args(), args, "{op}: round trip changed the arguments");
        }
        Err(e) => {
            assert_ne!(e.code(), ErrorCode::Internal, "{op}: decoding failed with internal: {e}");
        }
    }
}

/// An engine in a fresh temporary directory with a small fixture, opened once per process.
pub struct FuzzEngine {
    /// The engine.
    pub engine: Engine,
    /// A key that may write `fuzz-a` only.
    pub key_a: String,
    /// Memories in `fuzz-b`, which nothing done with `key_a` may change.
    pub memories_b: u64,
}

/// Namespaces of the fixture.
pub const NS_A: &str = "fuzz-a";
/// The namespace no fuzzed call may change.
pub const NS_B: &str = "fuzz-b";
/// A vector namespace (4 dimensions).
pub const NS_VEC: &str = "fuzz-vec";

fn fuzz_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memsilo-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The process-wide fuzz engine.
pub fn fuzz_engine() -> &'static FuzzEngine {
    static ENGINE: OnceLock<FuzzEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let engine = Engine::open(fuzz_dir(), Options { background: false, ..Options::default() })
            .expect("fuzz engine opens");
        let root = engine.root();
        for ns in [NS_A, NS_B] {
            root.create_namespace(ns, NamespaceOptions::default()).unwrap();
            for (i, text) in ["alpha roadmap", "beta budget", "gamma launch"].iter().enumerate() {
                root.store_memory(StoreMemory {
                    namespace: Some(ns.into()),
                    tags: vec![format!("t{i}")],
                    agent_id: Some(format!("agent-{i}")),
                    importance: Some(0.3 * i as f64),
                    ..StoreMemory::text(*text)
                })
                .unwrap();
            }
        }
        root.create_namespace(
            NS_VEC,
            NamespaceOptions { dimensions: Some(4), ..NamespaceOptions::default() },
        )
        .unwrap();
        root.store_memory(StoreMemory {
            namespace: Some(NS_VEC.into()),
            embedding: Some(vec![1.0, 0.0, 0.0, 0.0]),
            ..StoreMemory::text("v")
        })
        .unwrap();
        let key =
            root.create_key(CreateKey::namespaces("fuzz-a-key", [(NS_A, Access::Write)])).unwrap();
        let memories_b = root.get_namespace(NS_B).unwrap().memory_count;
        FuzzEngine { engine, key_a: key.key, memories_b }
    })
}

impl FuzzEngine {
    fn scoped(&self) -> Handle {
        self.engine.scoped(&self.key_a).expect("the fuzz key works")
    }

    /// Namespace B is untouched by anything done with key A.
    fn check_bystander(&self) {
        let ns = self.engine.root().get_namespace(NS_B).expect("the bystander namespace exists");
        assert_eq!(ns.memory_count, self.memories_b, "a call with key A changed namespace B");
    }
}

/// `Handle::call` with any operation and any JSON, as a key scoped to one namespace: no
/// panic, no `internal`, and the other namespace is never changed.
pub fn handle_call(data: &[u8]) {
    let Some((op, value)) = op_and_json(data) else { return };
    let fx = fuzz_engine();
    let h = fx.scoped();
    match h.call(op, value.clone()) {
        Err(e) => assert_ne!(e.code(), ErrorCode::Internal, "{op} {value}: internal error: {e}"),
        Ok(reply) => {
            let text = reply.value.to_string();
            assert!(
                !text.contains("\"namespace\":\"fuzz-b\""),
                "{op} {value}: key A saw namespace B: {text}"
            );
        }
    }
    fx.check_bystander();
}

/// Any text as an API key: refused unless it is exactly a valid key. Inputs are `XORed` onto
/// a valid key too, so near-misses (one changed byte, truncation, extension) are tried.
pub fn key_parse(data: &[u8]) {
    let fx = fuzz_engine();
    let text = String::from_utf8_lossy(data);
    if text != fx.key_a {
        if let Ok(h) = fx.engine.scoped(&text) {
            assert!(h.principal().is_err(), "an arbitrary string authenticated: {text:?}");
        }
    }
    let mut near: Vec<u8> = fx.key_a.as_bytes().to_vec();
    for (i, b) in data.iter().enumerate() {
        match i % 3 {
            0 => {
                let at = usize::from(*b) % near.len().max(1);
                if let Some(x) = near.get_mut(at) {
                    *x ^= data.get(i + 1).copied().unwrap_or(1).max(1);
                }
            }
            1 if *b > 250 => near.truncate(usize::from(*b) % (near.len() + 1)),
            2 if *b > 250 => near.push(*b % 95 + 32),
            _ => {}
        }
    }
    let near = String::from_utf8_lossy(&near).into_owned();
    match fx.engine.scoped(&near) {
        Ok(_) if near == fx.key_a => {}
        Ok(_) => panic!("a changed key still authenticates: {near:?} (valid: {:?})", fx.key_a),
        Err(e) => assert_eq!(e.code(), ErrorCode::Unauthorized, "{near:?}: {e}"),
    }
}

fn pick<'a>(data: &[u8], i: usize, options: &[&'a str]) -> &'a str {
    options[usize::from(data.get(i).copied().unwrap_or(0)) % options.len()]
}

/// Recall and forget filters built from the input, as key A: the results stay inside
/// namespace A, forget never touches B, and nothing is `internal`.
pub fn filters(data: &[u8]) {
    let fx = fuzz_engine();
    let h = fx.scoped();
    let Ok(mut args) = serde_json::from_slice::<Value>(data.get(1..).unwrap_or_default()) else {
        return;
    };
    if !args.is_object() {
        args = json!({ "tags": args });
    }
    // Aim the call at A, B, a missing namespace, or nowhere (the key's only namespace).
    let target = pick(data, 0, &[NS_A, NS_B, "fuzz-missing", ""]);
    if !target.is_empty() {
        args["namespace"] = json!(target);
    }
    let op = if data.first().is_some_and(|b| b & 0x80 != 0) { "batch_forget" } else { "recall" };
    if op == "recall" && args.get("query").is_none() && args.get("vector").is_none() {
        args["query"] = json!("roadmap");
    }
    match h.call(op, args.clone()) {
        Err(e) => {
            assert_ne!(e.code(), ErrorCode::Internal, "{op} {args}: internal error: {e}");
            if target == NS_B || target == "fuzz-missing" {
                assert!(
                    matches!(
                        e.code(),
                        ErrorCode::Forbidden | ErrorCode::InvalidArgument | ErrorCode::RateLimited
                    ),
                    "{op} on {target}: {e}"
                );
            }
        }
        Ok(reply) => {
            assert!(
                target != NS_B && target != "fuzz-missing",
                "{op} {args} reached {target}: {}",
                reply.value
            );
            if op == "recall" {
                let root = fx.engine.root();
                for hit in reply.value.as_array().into_iter().flatten() {
                    let id = hit["id"].as_str().unwrap_or_default();
                    assert!(
                        root.get_memory(Some(NS_A), id).is_ok(),
                        "recall returned {id}, which is not in namespace A"
                    );
                }
            }
        }
    }
    fx.check_bystander();
    // Keep namespace A populated so later inputs have something to filter.
    if fx.engine.root().get_namespace(NS_A).is_ok_and(|n| n.memory_count < 2) {
        let _ = fx.engine.root().store_memory(StoreMemory {
            namespace: Some(NS_A.into()),
            tags: vec!["t1".into()],
            ..StoreMemory::text("refill roadmap")
        });
    }
}

/// Vectors from raw bytes (every f32 bit pattern: NaN, infinities, subnormals, zeros):
/// stored only if finite and non-zero, and recall scores stay finite.
pub fn vector_input(data: &[u8]) {
    let fx = fuzz_engine();
    let root = fx.engine.root();
    let v: Vec<f32> =
        data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let valid = !v.is_empty()
        && v.len() <= 4096
        && v.iter().all(|x| x.is_finite())
        && v.iter().any(|x| *x != 0.0);
    let stored = root.store_memory(StoreMemory {
        namespace: Some(NS_VEC.into()),
        embedding: Some(v.clone()),
        ..StoreMemory::text("fuzzed vector")
    });
    match &stored {
        Ok(m) => {
            assert!(valid && v.len() == 4, "an invalid vector was stored: {v:?}");
            root.delete_memory(Some(NS_VEC), &m.id).expect("the fuzzed memory deletes");
        }
        Err(e) => {
            assert_ne!(e.code(), ErrorCode::Internal, "{v:?}: {e}");
            // A finite, non-zero 4-d vector may only be refused for its norm overflowing.
            if valid && v.len() == 4 {
                let norm: f64 = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
                assert!(
                    !norm.is_finite()
                        || norm == 0.0
                        || (norm as f32).is_infinite()
                        || (norm as f32) == 0.0,
                    "a valid vector was refused: {v:?}: {e}"
                );
            }
        }
    }
    match root.recall(Recall { top_k: Some(5), ..Recall::vector(v.clone()).namespace(NS_VEC) }) {
        Ok(hits) => {
            for h in hits {
                assert!(
                    h.score.is_finite() && h.similarity.is_finite(),
                    "non-finite score for {v:?}: {h:?}"
                );
            }
        }
        Err(e) => assert_ne!(e.code(), ErrorCode::Internal, "recall {v:?}: {e}"),
    }
}

/// An import's reader and batches fed any bytes as JSON Lines, as key A: no panic, no
/// `internal`, every refusal names a line (or the namespace), and namespace B never changes.
pub fn import_reader(data: &[u8]) {
    let fx = fuzz_engine();
    let h = fx.scoped();
    let target = pick(data, 0, &[NS_A, NS_B]);
    let size = 1 + usize::from(data.first().copied().unwrap_or(0) >> 4);
    let mut batcher = memsilo::transfer::Batcher::new(size);
    let mut ready = Vec::new();
    for line in data.get(1..).unwrap_or_default().split(|b| *b == b'\n') {
        match batcher.push(line) {
            Ok(b) => ready.extend(b),
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
                assert!(e.to_string().starts_with("line "), "{e}");
                break;
            }
        }
    }
    ready.extend(batcher.finish());
    for b in ready {
        if let Err(e) = h.import_batch(b.into_args(target)) {
            assert_ne!(e.code(), ErrorCode::Internal, "import into {target}: {e}");
            if target == NS_B {
                assert_eq!(e.code(), ErrorCode::Forbidden, "import into {target}: {e}");
            }
            break;
        }
    }
    fx.check_bystander();
}
