//! Vector recall and write-path benchmarks. Run with `cargo bench -p memsilo --bench recall`;
//! prints numbers (p50/p99 latencies, throughput, recall@10 against exact search, index build
//! time, write latency in one namespace while another builds its index) and asserts nothing.
//!
//! Sizes: 1k, 10k and 100k vectors of 384 dimensions; set `MEMSILO_BENCH_1M=1` to add 1M.
//! Set `MEMSILO_BENCH_QUICK=1` to skip the 100k cases, `MEMSILO_BENCH_STORE=1` for the store
//! numbers only, `MEMSILO_BENCH_SIZES=10000,100000` for recall at those sizes only,
//! `MEMSILO_BENCH_ANN=10000` for the approximate index's recall@10 against exact search at that
//! size on several kinds of data (clustered vectors, text notes through the default embedder —
//! the static model when `MEMSILO_MODEL_DIR` points at it — and vectors without structure).

/// The allocator of the `memsilo` binary and the language bindings, so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use criterion::Criterion;
use memsilo::{dot, Engine, NamespaceOptions, Options, Recall, RecallMode, StoreMemory};

const DIMS: usize = 384;

#[path = "../tests/common/synthetic.rs"]
mod synthetic;

use synthetic::{Clustered, Rng};

#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/notes.rs"]
mod notes;

fn open(options: Options) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), Options { background: false, ..options }).unwrap();
    (dir, engine)
}

fn namespace(engine: &Engine, name: &str) {
    engine
        .root()
        .create_namespace(
            name,
            NamespaceOptions { dimensions: Some(DIMS as u32), ..Default::default() },
        )
        .unwrap();
}

fn memory(i: usize, v: &[f32]) -> StoreMemory {
    StoreMemory { embedding: Some(v.to_vec()), ..StoreMemory::text(format!("memory number {i}")) }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Stores `vectors` in batches of 1000; returns (ids in order, memories per second).
fn ingest(engine: &Engine, ns: &str, vectors: &[Vec<f32>]) -> (Vec<String>, f64) {
    let root = engine.root();
    let started = Instant::now();
    let mut ids = Vec::with_capacity(vectors.len());
    for (c, chunk) in vectors.chunks(1000).enumerate() {
        let batch = chunk.iter().enumerate().map(|(i, v)| memory(c * 1000 + i, v)).collect();
        ids.extend(root.store_memories(ns, batch).unwrap());
    }
    (ids, vectors.len() as f64 / started.elapsed().as_secs_f64())
}

fn store_throughput() {
    let (_dir, engine) = open(Options::default());
    namespace(&engine, "w");
    let root = engine.root();
    let mut data = Clustered::new(1, 100, DIMS);
    let mut single = Vec::new();
    for i in 0..2000 {
        let m = StoreMemory { namespace: Some("w".into()), ..memory(i, &data.point()) };
        let t = Instant::now();
        root.store_memory(m).unwrap();
        single.push(t.elapsed());
    }
    let total: Duration = single.iter().sum();
    println!(
        "store_memory (one, caller vector): p50 {}  p99 {}  {:.0} memories/s",
        ms(percentile(&mut single, 0.5)),
        ms(percentile(&mut single, 0.99)),
        single.len() as f64 / total.as_secs_f64()
    );
    for size in [100usize, 1000] {
        let mut lat = Vec::new();
        let mut n = 0;
        for _ in 0..(20_000 / size) {
            let batch: Vec<StoreMemory> = (0..size).map(|i| memory(i, &data.point())).collect();
            let t = Instant::now();
            root.store_memories("w", batch).unwrap();
            lat.push(t.elapsed());
            n += size;
        }
        let total: Duration = lat.iter().sum();
        println!(
            "store_memories (batch of {size}, caller vectors): p50 {} per batch  {:.0} memories/s",
            ms(percentile(&mut lat, 0.5)),
            n as f64 / total.as_secs_f64()
        );
    }
}

/// Recall latency (p50, p99) and recall@10 against exact search over `queries`.
fn measure_recall(
    engine: &Engine,
    ns: &str,
    vectors: &[Vec<f32>],
    ids: &[String],
    queries: &[Vec<f32>],
) -> (Duration, Duration, f64) {
    let root = engine.root();
    let index: std::collections::HashMap<&str, usize> =
        ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let mut lat = Vec::new();
    let mut found = 0usize;
    let mut checked = 0usize;
    for (qi, q) in queries.iter().enumerate() {
        let t = Instant::now();
        let hits = root.recall(Recall::vector(q.clone()).namespace(ns).top_k(10)).unwrap();
        lat.push(t.elapsed());
        if qi < 50 {
            let mut exact: Vec<(f32, usize)> =
                vectors.iter().enumerate().map(|(i, v)| (dot(v, q), i)).collect();
            exact.select_nth_unstable_by(9, |a, b| b.0.total_cmp(&a.0));
            let truth: Vec<usize> = exact[..10].iter().map(|x| x.1).collect();
            found += hits.iter().filter(|h| truth.contains(&index[h.id.as_str()])).count();
            checked += 10;
        }
    }
    (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99), found as f64 / checked as f64)
}

fn recall_at(n: usize, c: &mut Criterion) {
    let (dir, engine) = open(Options::default());
    namespace(&engine, "r");
    let mut data = Clustered::new(n as u64, 200, DIMS);
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| data.point()).collect();
    let (ids, rate) = ingest(&engine, "r", &vectors);
    println!("{n} x {DIMS}: ingest {rate:.0} memories/s (batches of 1000)");
    let queries: Vec<Vec<f32>> = (0..300).map(|_| data.point()).collect();
    if n >= Options::default().ann_threshold {
        let (p50, p99, r) = measure_recall(&engine, "r", &vectors, &ids, &queries);
        println!(
            "{n} x {DIMS}: exact (before the index) recall p50 {}  p99 {}  recall@10 {r:.3}",
            ms(p50),
            ms(p99)
        );
        let t = Instant::now();
        let chunks = engine.build_vector_indexes().unwrap();
        println!("{n} x {DIMS}: index build {:.1} s in {chunks} chunks", t.elapsed().as_secs_f64());
    }
    let (p50, p99, r) = measure_recall(&engine, "r", &vectors, &ids, &queries);
    println!("{n} x {DIMS}: recall p50 {}  p99 {}  recall@10 {r:.3}", ms(p50), ms(p99));
    // After a restart the first recall loads the namespace's vectors (and index cells).
    let path = dir.path().to_owned();
    drop(engine);
    let engine = Engine::open(&path, Options { background: false, ..Options::default() }).unwrap();
    let t = Instant::now();
    engine.root().recall(Recall::vector(queries[0].clone()).namespace("r").top_k(10)).unwrap();
    println!("{n} x {DIMS}: first recall after a restart {}", ms(t.elapsed()));
    let root = engine.root();
    let mut qi = 0;
    c.bench_function(&format!("recall top 10 of {n} x {DIMS}"), |b| {
        b.iter(|| {
            qi = (qi + 1) % queries.len();
            root.recall(Recall::vector(queries[qi].clone()).namespace("r").top_k(10)).unwrap();
        });
    });
}

/// What a data set stores and asks: memories and queries, as vectors or as texts.
enum Data {
    Vectors(Vec<Vec<f32>>, Vec<Vec<f32>>),
    Texts(Vec<String>, Vec<String>),
}

/// The approximate index against exact search at `n` memories: each query's top 10 before the
/// index is built (exact) and after (the index's cells), recall@10 of the second against the
/// first, and the CPU time per recall both ways.
fn ann_quality(n: usize) {
    let clustered = |seed: u64, topics: usize| {
        let mut d = Clustered::new(seed, topics, DIMS);
        Data::Vectors((0..n).map(|_| d.point()).collect(), (0..200).map(|_| d.point()).collect())
    };
    let mut rng = Rng(5);
    let mut text = notes::Notes::new();
    let sets: Vec<(&str, Data)> = vec![
        ("clustered vectors, 200 topics", clustered(n as u64, 200)),
        ("clustered vectors, 2,000 topics", clustered(n as u64 + 1, 2000)),
        (
            "text notes, default embedder",
            Data::Texts(
                (0..n).map(|i| text.note(i)).collect(),
                (0..200).map(|_| text.query()).collect(),
            ),
        ),
        (
            "uniform random vectors (no structure)",
            Data::Vectors(
                (0..n).map(|_| rng.unit(DIMS)).collect(),
                (0..200).map(|_| rng.unit(DIMS)).collect(),
            ),
        ),
    ];
    for (name, data) in sets {
        let (_dir, engine) = open(Options { ann_threshold: n, ..Options::default() });
        let root = engine.root();
        let dims = matches!(data, Data::Vectors(..)).then_some(DIMS as u32);
        root.create_namespace("q", NamespaceOptions { dimensions: dims, ..Default::default() })
            .unwrap();
        let queries: Vec<Recall> = match &data {
            Data::Vectors(rows, qs) => {
                ingest(&engine, "q", rows);
                qs.iter().map(|q| Recall::vector(q.clone())).collect()
            }
            Data::Texts(rows, qs) => {
                for (c, chunk) in rows.chunks(1000).enumerate() {
                    let batch =
                        chunk.iter().map(|t| StoreMemory::text(t.clone())).collect::<Vec<_>>();
                    root.store_memories("q", batch).unwrap_or_else(|e| panic!("batch {c}: {e}"));
                }
                qs.iter()
                    .map(|q| Recall { mode: Some(RecallMode::Vector), ..Recall::text(q.as_str()) })
                    .collect()
            }
        };
        let run = || {
            let mut cpu_times = Vec::new();
            let tops: Vec<Vec<String>> = queries
                .iter()
                .map(|q| {
                    let cpu0 = cpu::thread_cpu();
                    let hits = root.recall(q.clone().namespace("q").top_k(10)).unwrap();
                    cpu_times.push(cpu::thread_cpu().saturating_sub(cpu0));
                    hits.into_iter().map(|h| h.id).collect()
                })
                .collect();
            (tops, percentile(&mut cpu_times, 0.5))
        };
        let (exact, exact_cpu) = run();
        engine.build_vector_indexes().unwrap();
        let (approx, approx_cpu) = run();
        let found: usize = exact
            .iter()
            .zip(&approx)
            .map(|(e, a)| a.iter().filter(|id| e.contains(id)).count())
            .sum();
        let wanted: usize = exact.iter().map(Vec::len).sum();
        println!(
            "{n} memories, {name}: recall@10 of the index against exact search {:.3} ({} queries); CPU p50 per recall exact {}, index {}",
            found as f64 / wanted.max(1) as f64,
            queries.len(),
            ms(exact_cpu),
            ms(approx_cpu)
        );
    }
}

/// Write latency (batches of 100) in namespace A while namespace B builds a 100k index, with
/// A in the same environment as B and in another one.
fn writes_during_a_build(n: usize) {
    for same_env in [true, false] {
        let (_dir, engine) = open(Options { shards: 2, ..Options::default() });
        // Namespace ids are consecutive; shard = id % shards.
        namespace(&engine, "b");
        if same_env {
            namespace(&engine, "spacer");
        }
        namespace(&engine, "a");
        let mut data = Clustered::new(7, 200, DIMS);
        let vectors: Vec<Vec<f32>> = (0..n).map(|_| data.point()).collect();
        ingest(&engine, "b", &vectors);
        let builder = {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                engine.build_vector_indexes().unwrap();
                t.elapsed()
            })
        };
        let root = engine.root();
        let mut lat = Vec::new();
        while !builder.is_finished() {
            let batch: Vec<StoreMemory> = (0..100).map(|i| memory(i, &data.point())).collect();
            let t = Instant::now();
            root.store_memories("a", batch).unwrap();
            lat.push(t.elapsed());
            std::thread::sleep(Duration::from_millis(20));
        }
        let build = builder.join().unwrap();
        let max = lat.iter().max().copied().unwrap_or_default();
        println!(
            "writes of 100 in A while B builds a {n} index ({:.1} s), {} environment: p50 {}  p99 {}  max {}  ({} batches)",
            build.as_secs_f64(),
            if same_env { "same" } else { "another" },
            ms(percentile(&mut lat, 0.5)),
            ms(percentile(&mut lat, 0.99)),
            ms(max),
            lat.len()
        );
    }
}

/// Recall filtered by `agent_id` in a namespace of `n` memories spread over 200 agents: the
/// "one customer of a tenant" case, where most candidates are rejected by the filter.
fn filtered_recall(n: usize) {
    let (_dir, engine) = open(Options::default());
    namespace(&engine, "f");
    let mut data = Clustered::new(n as u64 + 1, 200, DIMS);
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| data.point()).collect();
    let root = engine.root();
    for (c, chunk) in vectors.chunks(1000).enumerate() {
        let batch = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| StoreMemory {
                agent_id: Some(format!("customer-{}", (c * 1000 + i) % 200)),
                ..memory(c * 1000 + i, v)
            })
            .collect();
        root.store_memories("f", batch).unwrap();
    }
    engine.build_vector_indexes().unwrap();
    let mut lat = Vec::new();
    for qi in 0..200 {
        let mut r = Recall::vector(data.point()).namespace("f").top_k(10);
        r.agent_id = Some(format!("customer-{qi}"));
        let t = Instant::now();
        let hits = root.recall(r).unwrap();
        lat.push(t.elapsed());
        assert_eq!(hits.len(), 10);
    }
    println!(
        "{n} x {DIMS}, recall filtered to one of 200 agents: p50 {}  p99 {}",
        ms(percentile(&mut lat, 0.5)),
        ms(percentile(&mut lat, 0.99))
    );
}

fn main() {
    if let Ok(n) = std::env::var("MEMSILO_BENCH_ANN") {
        ann_quality(n.parse().unwrap_or(10_000));
        return;
    }
    if let Ok(n) = std::env::var("MEMSILO_BENCH_FILTERED") {
        // Only the filtered recall, e.g. MEMSILO_BENCH_FILTERED=100000.
        filtered_recall(n.parse().unwrap_or(100_000));
        return;
    }
    if std::env::var_os("MEMSILO_BENCH_STORE").is_some() {
        // Only the store throughput numbers.
        store_throughput();
        return;
    }
    if let Ok(sizes) = std::env::var("MEMSILO_BENCH_SIZES") {
        // Only recall at these sizes, e.g. MEMSILO_BENCH_SIZES=100000.
        let mut c = Criterion::default()
            .configure_from_args()
            .measurement_time(Duration::from_secs(3))
            .sample_size(10);
        for n in sizes.split(',').filter_map(|s| s.trim().parse().ok()) {
            recall_at(n, &mut c);
        }
        return;
    }
    let quick = std::env::var_os("MEMSILO_BENCH_QUICK").is_some();
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    store_throughput();
    let mut sizes = vec![1_000, 10_000];
    if !quick {
        sizes.push(100_000);
    }
    if std::env::var_os("MEMSILO_BENCH_1M").is_some() {
        sizes.push(1_000_000);
    }
    for n in sizes {
        recall_at(n, &mut c);
    }
    if !quick {
        writes_during_a_build(100_000);
    }
    c.final_summary();
}
