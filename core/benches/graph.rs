//! Knowledge-graph benchmarks on a 100,000-entity graph with 300,000 random relations:
//! neighbors at depth 2 from a random entity with a warm topology cache (target: p50 under
//! 1 ms), the cold cache rebuild after a write, and a shortest path.
//! Run with `cargo bench -p memsilo --bench graph`; prints numbers, asserts nothing.

/// The allocator of the `memsilo` binary and the language bindings, so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

#[path = "../tests/common/synthetic.rs"]
mod synthetic;

use synthetic::Rng;

use criterion::{criterion_group, criterion_main, Criterion};
use memsilo::{AddEntity, AddRelation, Engine, Handle, NamespaceOptions, Neighbors, Options};

const ENTITIES: usize = 100_000;
const RELATIONS_PER_ENTITY: usize = 3;
const BATCH: usize = 10_000;

fn build(root: &Handle) -> Vec<String> {
    root.create_namespace("g", NamespaceOptions::default()).unwrap();
    let started = Instant::now();
    let mut ids = Vec::with_capacity(ENTITIES);
    for chunk in 0..ENTITIES / BATCH {
        let batch = (0..BATCH)
            .map(|i| AddEntity {
                name: format!("entity-{}", chunk * BATCH + i),
                entity_type: Some(if i.is_multiple_of(10) { "org" } else { "person" }.into()),
                ..Default::default()
            })
            .collect();
        ids.extend(root.add_entities("g", batch).unwrap().into_iter().map(|e| e.id));
    }
    let entities_done = started.elapsed();
    let relations_started = Instant::now();
    let mut rng = Rng(42);
    let kinds = ["knows", "works_with", "reports_to"];
    let mut pending = Vec::with_capacity(BATCH);
    for (i, source) in ids.iter().enumerate() {
        for k in 0..RELATIONS_PER_ENTITY {
            let target = &ids[(rng.next_u64() % ids.len() as u64) as usize];
            pending.push(AddRelation {
                source: source.clone(),
                target: target.clone(),
                relation_type: kinds[(i + k) % kinds.len()].into(),
                weight: Some(0.1 + 1.9 * f64::from(rng.uniform())),
                ..Default::default()
            });
            if pending.len() == BATCH {
                root.add_relations("g", std::mem::take(&mut pending)).unwrap();
            }
        }
    }
    if !pending.is_empty() {
        root.add_relations("g", pending).unwrap();
    }
    println!(
        "built {ENTITIES} entities in {entities_done:.2?}, {} relations in {:.2?} (batches of {BATCH})",
        ENTITIES * RELATIONS_PER_ENTITY,
        relations_started.elapsed()
    );
    ids
}

fn around(id: &str) -> Neighbors {
    Neighbors { namespace: "g".into(), entity: id.into(), depth: Some(2), relation_type: None }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn graph(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    let root = engine.root();
    let ids = build(&root);

    let cold = Instant::now();
    let first = root.neighbors(around(&ids[0])).unwrap();
    println!("cold: first traversal (topology cache built from rows) took {:.2?}", cold.elapsed());

    // Hand-timed percentiles over many random starts (criterion reports the mean).
    let mut rng = Rng(7);
    let mut times = Vec::with_capacity(5_000);
    let (mut reached, mut traversed) = (0, 0);
    for _ in 0..5_000 {
        let id = &ids[(rng.next_u64() % ids.len() as u64) as usize];
        let t = Instant::now();
        let v = root.neighbors(around(id)).unwrap();
        times.push(t.elapsed());
        reached += v.entities.len();
        traversed += v.relations.len();
    }
    times.sort_unstable();
    println!(
        "neighbors depth 2, warm: p50 {:.1?}, p90 {:.1?}, p99 {:.1?} (avg {} entities, {} relations returned; first had {})",
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99),
        reached / times.len(),
        traversed / times.len(),
        first.entities.len(),
    );

    let mut group = c.benchmark_group("graph 100k entities / 300k relations");
    group.sample_size(50);
    group.bench_function("neighbors depth 2 (warm cache)", |b| {
        b.iter(|| {
            root.neighbors(around(&ids[(rng.next_u64() % ids.len() as u64) as usize])).unwrap()
        });
    });
    group.bench_function("shortest_path between random entities (warm cache)", |b| {
        b.iter(|| {
            let (a, z) = (
                &ids[(rng.next_u64() % ids.len() as u64) as usize],
                &ids[(rng.next_u64() % ids.len() as u64) as usize],
            );
            root.shortest_path("g", a, z).ok()
        });
    });
    group.sample_size(10);
    group.bench_function("cache rebuild after a write + neighbors depth 2", |b| {
        b.iter(|| {
            root.add_entity(AddEntity {
                namespace: "g".into(),
                name: "churn".into(),
                ..Default::default()
            })
            .unwrap();
            root.delete_entity("g", "churn", None).unwrap();
            root.neighbors(around(&ids[1])).unwrap()
        });
    });
    group.finish();
}

criterion_group!(benches, graph);
criterion_main!(benches);
