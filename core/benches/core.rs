//! Control-plane benchmarks: key validation, authorization overhead, namespace creation.
//! Run with `cargo bench -p memsilo --bench core`; prints numbers, asserts nothing.

/// The allocator of the `memsilo` binary and the language bindings, so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use memsilo::auth::{authorize, Action, Principal};
use memsilo::{Access, CreateKey, Engine, NamespaceOptions, Options};

fn open() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    (dir, engine)
}

fn key_validation(c: &mut Criterion) {
    let (_dir, engine) = open();
    let root = engine.root();
    root.create_namespace("ns", NamespaceOptions::default()).unwrap();
    let key = root.create_key(CreateKey::namespaces("k", [("ns", Access::Write)])).unwrap().key;
    engine.scoped(&key).unwrap(); // warm the cache
    c.bench_function("key validation (scoped(), warm cache)", |b| {
        b.iter(|| engine.scoped(&key).unwrap());
    });
    let handle = engine.scoped(&key).unwrap();
    c.bench_function("per-call key re-check (Handle::principal)", |b| {
        b.iter(|| handle.principal().unwrap());
    });
}

fn authorization(c: &mut Criterion) {
    let (_dir, engine) = open();
    let root = engine.root();
    root.create_namespace("ns", NamespaceOptions::default()).unwrap();
    let key = root.create_key(CreateKey::namespaces("k", [("ns", Access::Write)])).unwrap().key;
    let principal = engine.scoped(&key).unwrap().principal().unwrap();
    let Principal::Scoped { .. } = &principal else { panic!("scoped key expected") };
    c.bench_function("authorize() decision (refusal path, no lookup)", |b| {
        b.iter(|| authorize(&principal, Action::ReadNamespace("other", None)).unwrap_err());
    });
    let handle = engine.scoped(&key).unwrap();
    c.bench_function("get_memory_policy through a scoped handle (auth + lookup)", |b| {
        b.iter(|| handle.get_memory_policy("ns").unwrap());
    });
    c.bench_function("get_memory_policy as root (lookup only)", |b| {
        b.iter(|| root.get_memory_policy("ns").unwrap());
    });
}

fn namespace_creation(c: &mut Criterion) {
    let (_dir, engine) = open();
    let root = engine.root();
    let mut n = 0u64;
    c.bench_function("create_namespace", |b| {
        b.iter(|| {
            n += 1;
            root.create_namespace(&format!("bench-{n}"), NamespaceOptions::default()).unwrap();
        });
    });
    let total: u64 = std::env::var("MEMSILO_BENCH_NAMESPACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (_dir2, engine2) = open();
    let root2 = engine2.root();
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..total {
        let t = Instant::now();
        root2.create_namespace(&format!("tenant-{i}"), NamespaceOptions::default()).unwrap();
        slowest = slowest.max(t.elapsed());
    }
    let elapsed = start.elapsed();
    println!(
        "created {total} namespaces in {:.2?} ({:.1} µs each on average, slowest {:.2?})",
        elapsed,
        elapsed.as_secs_f64() * 1e6 / total as f64,
        slowest
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = key_validation, authorization, namespace_creation
}
criterion_main!(benches);
