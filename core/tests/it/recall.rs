//! Recall through the public API: read-your-writes, exact results below the index threshold,
//! the approximate index's recall against exact search, deletes, and vector validation.

use std::collections::HashMap;

use memsilo::{dot, Engine, Error, ErrorCode, NamespaceOptions, Options, Recall, StoreMemory};

use crate::synthetic::{Clustered, Rng};

fn open(ann_threshold: usize) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        dir.path(),
        Options { background: false, ann_threshold, ..Options::default() },
    )
    .unwrap();
    (dir, engine)
}

fn with_vector(i: usize, v: &[f32]) -> StoreMemory {
    StoreMemory { embedding: Some(v.to_vec()), ..StoreMemory::text(format!("memory {i}")) }
}

/// Stores `vectors` in batches; returns memory id → index.
fn store_all(engine: &Engine, ns: &str, vectors: &[Vec<f32>]) -> HashMap<String, usize> {
    store_with(engine, ns, vectors, with_vector)
}

/// Stores `make(i, vectors[i])` for every vector, in batches; returns memory id → index.
fn store_with(
    engine: &Engine,
    ns: &str,
    vectors: &[Vec<f32>],
    make: impl Fn(usize, &[f32]) -> StoreMemory,
) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for (c, chunk) in vectors.chunks(1000).enumerate() {
        let batch = chunk.iter().enumerate().map(|(i, v)| make(c * 1000 + i, v)).collect();
        for (i, id) in engine.root().store_memories(ns, batch).unwrap().into_iter().enumerate() {
            ids.insert(id, c * 1000 + i);
        }
    }
    ids
}

/// Index → memory id, from what `store_all` returns.
fn by_index(ids: &HashMap<String, usize>) -> HashMap<usize, String> {
    ids.iter().map(|(id, i)| (*i, id.clone())).collect()
}

fn exact_top(vectors: &[Vec<f32>], q: &[f32], k: usize) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> =
        vectors.iter().enumerate().map(|(i, v)| (dot(v, q), i)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(k).map(|(_, i)| i).collect()
}

fn recall_ids(engine: &Engine, ns: &str, q: &[f32], k: usize) -> Vec<String> {
    engine
        .root()
        .recall(Recall::vector(q.to_vec()).namespace(ns).top_k(k))
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect()
}

/// Mean recall@10 of the engine against exact search over `queries`.
fn recall_at_10(
    engine: &Engine,
    ns: &str,
    vectors: &[Vec<f32>],
    ids: &HashMap<String, usize>,
    queries: &[Vec<f32>],
) -> f64 {
    let mut found = 0;
    for q in queries {
        let truth = exact_top(vectors, q, 10);
        let got: Vec<usize> = recall_ids(engine, ns, q, 10).iter().map(|id| ids[id]).collect();
        found += truth.iter().filter(|t| got.contains(t)).count();
    }
    found as f64 / (10 * queries.len()) as f64
}

fn namespace(engine: &Engine, name: &str, dims: u32) {
    engine
        .root()
        .create_namespace(name, NamespaceOptions { dimensions: Some(dims), ..Default::default() })
        .unwrap();
}

#[test]
fn below_the_threshold_results_equal_exact_search() {
    let (_dir, engine) = open(20_000);
    namespace(&engine, "small", 64);
    let mut rng = Rng(1);
    let vectors: Vec<Vec<f32>> = (0..4000).map(|_| rng.unit(64)).collect();
    let ids = store_all(&engine, "small", &vectors);
    for _ in 0..25 {
        let q = rng.unit(64);
        let hits =
            engine.root().recall(Recall::vector(q.clone()).namespace("small").top_k(10)).unwrap();
        let got: Vec<usize> = hits.iter().map(|h| ids[&h.id]).collect();
        assert_eq!(got, exact_top(&vectors, &q, 10));
        for h in &hits {
            assert!((h.similarity - f64::from(dot(&vectors[ids[&h.id]], &q))).abs() < 1e-5);
        }
    }
}

#[test]
fn every_memory_is_recallable_as_soon_as_it_is_stored() {
    let (_dir, engine) = open(1000);
    namespace(&engine, "ryw", 32);
    let mut rng = Rng(2);
    let root = engine.root();
    let store_one = |rng: &mut Rng, i: usize| {
        let v = rng.unit(32);
        let m = root
            .store_memory(StoreMemory { namespace: Some("ryw".into()), ..with_vector(i, &v) })
            .unwrap();
        let first = root.recall(Recall::vector(v).namespace("ryw").top_k(1)).unwrap();
        assert_eq!(first[0].id, m.id, "memory {i} not recalled right after its store");
    };
    // Below and past the threshold before any index exists.
    for i in 0..1500 {
        store_one(&mut rng, i);
    }
    // With an index over the first 1500 and a growing tail.
    assert!(engine.build_vector_indexes().unwrap() > 0);
    let mut tail = Vec::new();
    for i in 1500..1800 {
        let v = rng.unit(32);
        let m = root
            .store_memory(StoreMemory { namespace: Some("ryw".into()), ..with_vector(i, &v) })
            .unwrap();
        assert_eq!(recall_ids(&engine, "ryw", &v, 1)[0], m.id, "memory {i} not recalled");
        tail.push((v, m.id));
    }
    // Indexed again: the tail moves into the index and every memory of it stays recallable.
    assert!(engine.build_vector_indexes().unwrap() > 0);
    for (v, id) in &tail {
        assert_eq!(&recall_ids(&engine, "ryw", v, 1)[0], id);
    }
    assert_eq!(root.get_namespace("ryw").unwrap().memory_count, 1800);
}

#[test]
fn approximate_recall_matches_exact_search_at_20k() {
    ann_recall_case(20_000, 384, 30);
}

/// The size (about 40 s in the test profile).
#[test]
fn approximate_recall_matches_exact_search_at_100k() {
    ann_recall_case(100_000, 384, 50);
}

fn ann_recall_case(n: usize, dims: usize, queries: usize) {
    let (_dir, engine) = open(n / 4);
    namespace(&engine, "big", dims as u32);
    let mut data = Clustered::new(3, 200, dims);
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| data.point()).collect();
    let ids = store_all(&engine, "big", &vectors);
    let queries: Vec<Vec<f32>> = (0..queries).map(|_| data.point()).collect();
    // Before the index is built, search is exact.
    assert!(recall_at_10(&engine, "big", &vectors, &ids, &queries[..5]) > 0.999);
    let started = std::time::Instant::now();
    assert!(engine.build_vector_indexes().unwrap() > 0);
    eprintln!("index of {n} x {dims} built in {:?}", started.elapsed());
    let r = recall_at_10(&engine, "big", &vectors, &ids, &queries);
    eprintln!("recall@10 at {n} x {dims}: {r:.3}");
    assert!(r >= 0.95, "recall@10 {r}");
}

#[test]
fn recall_stays_complete_while_the_background_indexer_builds() {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { ann_threshold: 500, ..Options::default() }).unwrap();
    namespace(&engine, "bg", 32);
    let root = engine.root();
    let mut rng = Rng(6);
    let mut stored: Vec<(String, Vec<f32>)> = Vec::new();
    let started = std::time::Instant::now();
    // Batches keep arriving while the indexer (every 250 ms) builds in chunks behind them.
    while stored.len() < 6000 || started.elapsed() < std::time::Duration::from_secs(3) {
        let batch: Vec<Vec<f32>> = (0..100).map(|_| rng.unit(32)).collect();
        let ids = root
            .store_memories(
                "bg",
                batch.iter().enumerate().map(|(i, v)| with_vector(i, v)).collect(),
            )
            .unwrap();
        stored.extend(ids.into_iter().zip(batch));
        for (id, v) in stored.iter().rev().take(3).chain(stored.iter().step_by(997)) {
            assert_eq!(&recall_ids(&engine, "bg", v, 1)[0], id);
        }
        if stored.len() >= 20_000 {
            break;
        }
    }
    assert_eq!(root.get_namespace("bg").unwrap().memory_count, stored.len() as u64);
}

#[test]
fn deleted_memories_never_come_back_from_the_index() {
    let (_dir, engine) = open(1000);
    namespace(&engine, "del", 32);
    let mut data = Clustered::new(4, 20, 32);
    let vectors: Vec<Vec<f32>> = (0..3000).map(|_| data.point()).collect();
    let ids = store_all(&engine, "del", &vectors);
    let by_index = by_index(&ids);
    engine.build_vector_indexes().unwrap();
    let root = engine.root();
    // Delete each probe's nearest memory (indexed), then the next nearest through batch_forget.
    for p in [10usize, 500, 2999] {
        let hits = recall_ids(&engine, "del", &vectors[p], 3);
        assert_eq!(hits[0], by_index[&p]);
        root.delete_memory(Some("del"), &hits[0]).unwrap();
        root.batch_forget(memsilo::Forget {
            namespace: Some("del".into()),
            ids: Some(vec![hits[1].clone()]),
            ..Default::default()
        })
        .unwrap();
        let after = recall_ids(&engine, "del", &vectors[p], 50);
        assert!(!after.contains(&hits[0]) && !after.contains(&hits[1]));
        assert_eq!(after[0], hits[2]);
    }
    // The next build removes them from the index (and leaves nothing more to do)...
    assert_eq!(engine.build_vector_indexes().unwrap(), 1);
    assert_eq!(engine.build_vector_indexes().unwrap(), 0);
    // ...and they stay gone.
    for p in [10usize, 500, 2999] {
        assert!(!recall_ids(&engine, "del", &vectors[p], 50).contains(&by_index[&p]));
        assert_eq!(
            root.get_memory(Some("del"), &by_index[&p]).unwrap_err().code(),
            ErrorCode::NotFound
        );
    }
    assert_eq!(root.get_namespace("del").unwrap().memory_count, 2994);
}

#[test]
fn the_index_survives_a_restart_and_is_retrained_as_the_namespace_grows() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || Options { background: false, ann_threshold: 1000, ..Options::default() };
    let mut data = Clustered::new(8, 30, 48);
    let vectors: Vec<Vec<f32>> = (0..6000).map(|_| data.point()).collect();
    let queries: Vec<Vec<f32>> = (0..20).map(|_| data.point()).collect();
    let ids = {
        let engine = Engine::open(dir.path(), opts()).unwrap();
        namespace(&engine, "grow", 48);
        let mut ids = store_all(&engine, "grow", &vectors[..1200]);
        assert!(engine.build_vector_indexes().unwrap() > 0);
        // Grown 5x: the next step retrains on all 6000 (and files everything again).
        ids.extend(
            store_all(&engine, "grow", &vectors[1200..]).into_iter().map(|(id, i)| (id, i + 1200)),
        );
        assert!(engine.build_vector_indexes().unwrap() > 0);
        assert!(recall_at_10(&engine, "grow", &vectors, &ids, &queries) >= 0.95);
        ids
    };
    // Reopened: the index is rebuilt in memory from the stored cells, not retrained.
    let engine = Engine::open(dir.path(), opts()).unwrap();
    let r = recall_at_10(&engine, "grow", &vectors, &ids, &queries);
    assert!(r >= 0.95, "recall@10 after restart {r}");
    assert_eq!(engine.build_vector_indexes().unwrap(), 0, "nothing left to index");
    let by_index = by_index(&ids);
    for i in [0usize, 1199, 1200, 5999] {
        assert_eq!(recall_ids(&engine, "grow", &vectors[i], 1)[0], by_index[&i]);
    }
    // The index is derived data: without its files (say, a backup of the data alone) every
    // memory is still found, by an exact scan, until the indexer trains a new one.
    drop(engine);
    std::fs::remove_dir_all(dir.path().join("indexes")).unwrap();
    let engine = Engine::open(dir.path(), opts()).unwrap();
    for i in [0usize, 1199, 1200, 5999] {
        assert_eq!(recall_ids(&engine, "grow", &vectors[i], 1)[0], by_index[&i]);
    }
    assert!(engine.build_vector_indexes().unwrap() > 0, "retrained");
    assert!(recall_at_10(&engine, "grow", &vectors, &ids, &queries) >= 0.95);
}

#[test]
fn an_emptied_index_keeps_working_when_memories_come_back() {
    let (_dir, engine) = open(500);
    namespace(&engine, "empty", 16);
    let mut rng = Rng(6);
    let vectors: Vec<Vec<f32>> = (0..1200).map(|_| rng.unit(16)).collect();
    store_all(&engine, "empty", &vectors[..600]);
    assert!(engine.build_vector_indexes().unwrap() > 0);
    let root = engine.root();
    let forgot = root
        .batch_forget(memsilo::Forget {
            namespace: Some("empty".into()),
            before: Some(chrono::Utc::now() + chrono::Duration::days(1)),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(forgot.forgotten, 600);
    engine.build_vector_indexes().unwrap();
    assert!(recall_ids(&engine, "empty", &vectors[0], 10).is_empty());
    let ids = store_all(&engine, "empty", &vectors[600..]);
    engine.build_vector_indexes().unwrap();
    let by_index = by_index(&ids);
    for i in [0usize, 299, 599] {
        assert_eq!(recall_ids(&engine, "empty", &vectors[600 + i], 1)[0], by_index[&i]);
    }
}

#[test]
fn selective_filters_still_find_their_top_k_through_the_index() {
    let (_dir, engine) = open(1000);
    namespace(&engine, "agents", 32);
    let mut data = Clustered::new(12, 10, 32);
    let vectors: Vec<Vec<f32>> = (0..8000).map(|_| data.point()).collect();
    // 200 agents with 40 memories each, scattered over every cluster.
    let agent = |i: usize| format!("customer-{}", i % 200);
    let ids = store_with(&engine, "agents", &vectors, |i, v| StoreMemory {
        agent_id: Some(agent(i)),
        ..with_vector(i, v)
    });
    assert!(engine.build_vector_indexes().unwrap() > 0);
    let mut found = 0;
    for (n, q) in vectors.iter().step_by(400).enumerate() {
        let who = agent(n * 7);
        let mut recall = Recall::vector(q.clone()).namespace("agents").top_k(10);
        recall.agent_id = Some(who.clone());
        let hits = engine.root().recall(recall).unwrap();
        assert_eq!(hits.len(), 10, "an agent with 40 memories gets 10 hits");
        assert!(hits.iter().all(|h| h.agent_id.as_deref() == Some(who.as_str())));
        let theirs: Vec<Vec<f32>> =
            (0..vectors.len()).filter(|i| agent(*i) == who).map(|i| vectors[i].clone()).collect();
        let index: Vec<usize> = (0..vectors.len()).filter(|i| agent(*i) == who).collect();
        let truth: Vec<usize> = exact_top(&theirs, q, 10).into_iter().map(|i| index[i]).collect();
        found += hits.iter().filter(|h| truth.contains(&ids[&h.id])).count();
    }
    let r = found as f64 / (10 * vectors.iter().step_by(400).count()) as f64;
    assert!(r >= 0.95, "filtered recall@10 {r}");
}

/// Sum of the sizes of the `data.mdb` files under `dir` (0 before it exists: an environment
/// is created when first used).
fn data_file_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    for e in entries {
        let path = e.unwrap().path();
        if path.is_dir() {
            total += data_file_bytes(&path);
        } else if path.file_name().is_some_and(|n| n == "data.mdb") {
            total += std::fs::metadata(&path).unwrap().len();
        }
    }
    total
}

#[test]
fn vectors_fill_their_pages_on_disk() {
    let (dir, engine) = open(1_000_000);
    namespace(&engine, "dense", 384);
    let mut data = Clustered::new(9, 20, 384);
    let vectors: Vec<Vec<f32>> = (0..4000).map(|_| data.point()).collect();
    let before = data_file_bytes(&dir.path().join("shards"));
    store_all(&engine, "dense", &vectors);
    let grown = data_file_bytes(&dir.path().join("shards")) - before;
    // Each memory is a 1,552-byte vector row plus a ~200-byte record and four secondary keys
    // (memory_type, importance, created_at, updated_at: ~60 bytes each with LMDB's node
    // header). Sequential inserts that split pages in half would put one row per 4 KiB page
    // (2.6x the rows); two fit (1.5x).
    let rows = 4000 * (16 + 384 * 4);
    let budget = rows * 7 / 4 + 4000 * 256;
    assert!(grown < budget, "{grown} bytes on disk for {rows} bytes of vector rows");
}

#[test]
fn a_deleted_namespace_leaves_no_index_behind() {
    let (dir, engine) = open(500);
    let mut rng = Rng(5);
    let vectors: Vec<Vec<f32>> = (0..1200).map(|_| rng.unit(16)).collect();
    namespace(&engine, "gone", 16);
    store_all(&engine, "gone", &vectors);
    engine.build_vector_indexes().unwrap();
    let root = engine.root();
    let index_files = || std::fs::read_dir(dir.path().join("indexes")).unwrap().count();
    assert_eq!(index_files(), 1, "the index lives in an environment of its own");
    root.delete_namespace("gone").unwrap();
    engine.run_pending_purges().unwrap();
    assert_eq!(index_files(), 0, "the purge removes the index's files");
    namespace(&engine, "gone", 16);
    assert!(recall_ids(&engine, "gone", &vectors[0], 10).is_empty());
    // The recreated namespace gets a working index of its own.
    let ids = store_all(&engine, "gone", &vectors[..600]);
    engine.build_vector_indexes().unwrap();
    assert_eq!(ids[&recall_ids(&engine, "gone", &vectors[7], 1)[0]], 7);
}

fn assert_invalid(e: &Error, field: &str) {
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.to_string().starts_with(&format!("{field}:")), "{e} should name {field}");
}

#[test]
fn invalid_vectors_are_refused_and_write_nothing() {
    let (_dir, engine) = open(20_000);
    namespace(&engine, "v", 4);
    let root = engine.root();
    let one = |v: Vec<f32>| {
        root.store_memory(StoreMemory {
            namespace: Some("v".into()),
            embedding: Some(v),
            ..StoreMemory::text("x")
        })
    };
    for bad in
        [vec![1.0, f32::NAN, 0.0, 0.0], vec![f32::INFINITY, 0.0, 0.0, 0.0], vec![0.0; 4], vec![]]
    {
        assert_invalid(&one(bad).unwrap_err(), "embedding");
    }
    assert_invalid(&one(vec![1.0, 0.0, 0.0]).unwrap_err(), "embedding");
    let batch = vec![
        with_vector(0, &[1.0, 0.0, 0.0, 0.0]),
        with_vector(1, &[0.0, f32::NEG_INFINITY, 0.0, 0.0]),
    ];
    assert_invalid(&root.store_memories("v", batch).unwrap_err(), "memories[1].embedding");
    let batch = vec![with_vector(0, &[1.0, 0.0, 0.0, 0.0]), with_vector(1, &[1.0, 0.0])];
    assert_invalid(&root.store_memories("v", batch).unwrap_err(), "memories[1].embedding");
    assert_eq!(root.get_namespace("v").unwrap().memory_count, 0);
    assert_eq!(root.get_namespace("v").unwrap().storage_bytes, 0);
    for bad in [vec![f32::NAN, 0.0, 0.0, 0.0], vec![0.0; 4], vec![1.0, 0.0]] {
        assert_invalid(&root.recall(Recall::vector(bad).namespace("v")).unwrap_err(), "vector");
    }
    one(vec![0.0, 2.0, 0.0, 0.0]).unwrap();
    let hits = root.recall(Recall::vector(vec![0.0, 1.0, 0.0, 0.0]).namespace("v")).unwrap();
    assert!((hits[0].similarity - 1.0).abs() < 1e-6);
}

/// all-MiniLM-L6-v2 (feature `minilm`), from the directory in `MEMSILO_MINILM_DIR`
/// (`make test-minilm` downloads it); skipped with a notice when that is unset.
#[cfg(feature = "minilm")]
mod minilm {
    use std::sync::Arc;

    use memsilo::{
        dot, Embedder, Engine, MiniLmEmbedder, NamespaceOptions, Options, Recall, StoreMemory,
    };

    fn model() -> Option<MiniLmEmbedder> {
        let Some(dir) = std::env::var_os("MEMSILO_MINILM_DIR") else {
            eprintln!(
                "MEMSILO_MINILM_DIR is not set: skipping the MiniLM test (run `make test-minilm`)"
            );
            return None;
        };
        Some(MiniLmEmbedder::load(dir).unwrap())
    }

    #[test]
    fn paraphrases_score_high_and_recall_the_right_memory() {
        let Some(model) = model() else { return };
        assert_eq!(model.dimensions(), 384);
        let v = model
            .embed(&[
                "Quarterly revenue grew by ten percent",
                "Sales increased 10% this quarter",
                "The cat is sleeping on the sofa",
            ])
            .unwrap();
        assert!((dot(&v[0], &v[0]) - 1.0).abs() < 1e-4);
        let paraphrase = dot(&v[0], &v[1]);
        let unrelated = dot(&v[0], &v[2]);
        eprintln!("paraphrase {paraphrase:.3}, unrelated {unrelated:.3}");
        assert!((0.65..0.85).contains(&paraphrase), "paraphrase similarity {paraphrase}");
        assert!(unrelated < 0.2, "unrelated similarity {unrelated}");
        // Batching and padding do not change a text's vector.
        let alone = model.embed(&["Sales increased 10% this quarter"]).unwrap();
        assert!(dot(&alone[0], &v[1]) > 0.9999);

        let dir = tempfile::tempdir().unwrap();
        let options =
            Options { background: false, embedder: Arc::new(model), ..Options::default() };
        let engine = Engine::open(dir.path(), options).unwrap();
        let root = engine.root();
        root.create_namespace("notes", NamespaceOptions::default()).unwrap();
        let texts = [
            "Quarterly revenue grew by ten percent",
            "The team moved the standup to 10am",
            "Our cat knocked a glass off the table",
            "The database migration is scheduled for Friday night",
        ];
        let ids = root
            .store_memories("notes", texts.iter().map(|t| StoreMemory::text(*t)).collect())
            .unwrap();
        let hits = root
            .recall(Recall::text("Sales increased 10% this quarter").namespace("notes").top_k(2))
            .unwrap();
        assert_eq!(hits[0].id, ids[0]);
        assert!(hits[0].similarity > 0.6 && hits[1].similarity < 0.3, "{hits:?}");
        let hits = root
            .recall(
                Recall::text("when is the schema change happening?").namespace("notes").top_k(1),
            )
            .unwrap();
        assert_eq!(hits[0].id, ids[3]);
        assert_eq!(
            root.get_namespace("notes").unwrap().embedder.as_deref(),
            Some(MiniLmEmbedder::NAME)
        );
    }
}

/// Checks a namespace whose memory `m{i}` holds `vectors[i]`: each sampled memory answers its
/// own vector first, no id comes back twice, similarities are against the current vectors,
/// and recall@10 against exact search holds.
fn check_upserted(engine: &Engine, ns: &str, vectors: &[Vec<f32>], queries: &[Vec<f32>]) {
    let ids: HashMap<String, usize> = (0..vectors.len()).map(|i| (format!("m{i}"), i)).collect();
    for i in (0..vectors.len()).step_by(97) {
        let hits = engine
            .root()
            .recall(Recall::vector(vectors[i].clone()).namespace(ns).top_k(20))
            .unwrap();
        assert_eq!(hits[0].id, format!("m{i}"), "memory {i} answers its current vector");
        let mut seen = std::collections::HashSet::new();
        for h in &hits {
            assert!(seen.insert(h.id.clone()), "{} came back twice", h.id);
            let want = f64::from(dot(&vectors[ids[&h.id]], &vectors[i]));
            assert!(
                (h.similarity - want).abs() < 1e-5,
                "{} scored {} not {want}",
                h.id,
                h.similarity
            );
        }
    }
    let r = recall_at_10(engine, ns, vectors, &ids, queries);
    assert!(r >= 0.95, "recall@10 {r}");
}

#[test]
fn an_upsert_keeps_its_slot_and_the_index_serves_the_new_vector_before_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || Options { background: false, ann_threshold: 1000, ..Options::default() };
    let mut data = Clustered::new(8, 30, 32);
    let mut vectors: Vec<Vec<f32>> = (0..4000).map(|_| data.point()).collect();
    let queries: Vec<Vec<f32>> = (0..20).map(|_| data.point()).collect();
    let make = |i: usize, v: &[f32]| StoreMemory { id: Some(format!("m{i}")), ..with_vector(i, v) };
    let upsert = |engine: &Engine, vectors: &[Vec<f32>], which: &[usize]| {
        for chunk in which.chunks(1000) {
            let batch = chunk.iter().map(|i| make(*i, &vectors[*i])).collect();
            engine.root().store_memories("up", batch).unwrap();
        }
    };
    {
        let engine = Engine::open(dir.path(), opts()).unwrap();
        namespace(&engine, "up", 32);
        store_with(&engine, "up", &vectors[..3000], make);
        assert!(engine.build_vector_indexes().unwrap() > 0);
        // The tail (not indexed yet) and the indexed part both get upserts, some twice.
        store_with(&engine, "up", &vectors[3000..], |i, v| make(i + 3000, v));
        let which: Vec<usize> = (0..4000).step_by(3).collect();
        for round in 0..2 {
            for i in &which {
                vectors[*i] = data.point();
            }
            upsert(&engine, &vectors, &which);
            assert_eq!(
                engine.root().get_namespace("up").unwrap().memory_count,
                4000,
                "round {round}"
            );
            check_upserted(&engine, "up", &vectors, &queries);
        }
    }
    // Reopened: the overwritten rows' cells are stale, so they are searched exactly.
    {
        let engine = Engine::open(dir.path(), opts()).unwrap();
        check_upserted(&engine, "up", &vectors, &queries);
        // The maintenance files them again (and the tail)...
        assert!(engine.build_vector_indexes().unwrap() > 0);
        check_upserted(&engine, "up", &vectors, &queries);
        assert_eq!(engine.build_vector_indexes().unwrap(), 0, "nothing left to file");
    }
    // ...so a later load finds them through the index.
    let engine = Engine::open(dir.path(), opts()).unwrap();
    check_upserted(&engine, "up", &vectors, &queries);
    assert_eq!(engine.build_vector_indexes().unwrap(), 0);
}

/// Polls a future on this thread, parking it between wakes.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Each hit's id and similarity, in order, from a recall's JSON answer.
fn hit_list(body: &[u8]) -> Vec<(String, f64)> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    let hits = v.as_array().or_else(|| v["memories"].as_array()).expect("a list of hits");
    hits.iter()
        .map(|h| (h["id"].as_str().unwrap().to_owned(), h["similarity"].as_f64().unwrap()))
        .collect()
}

/// Recalls awaited by many threads at once (which share scans of the namespace's vectors)
/// answer exactly what one-at-a-time recalls answer: random vectors with exact ties, deleted
/// memories, agent and tag filters, k of 1, 10 and 100.
#[test]
fn concurrent_recalls_answer_as_one_at_a_time() {
    let (_dir, engine) = open(20_000);
    namespace(&engine, "shared", 64);
    let mut rng = Rng(5);
    let mut vectors: Vec<Vec<f32>> = (0..6000).map(|_| rng.unit(64)).collect();
    for i in 0..50 {
        vectors[3000 + i] = vectors[i].clone();
    }
    let ids = store_with(&engine, "shared", &vectors, |i, v| StoreMemory {
        agent_id: i.is_multiple_of(3).then(|| "a".to_owned()),
        tags: if i.is_multiple_of(5) { vec!["t".to_owned()] } else { Vec::new() },
        ..with_vector(i, v)
    });
    let by = by_index(&ids);
    let root = engine.root();
    for i in (0..6000).step_by(97) {
        root.delete_memory(Some("shared"), &by[&i]).unwrap();
    }
    let mut asks = Vec::new();
    for n in 0..12 {
        let q = if n < 6 { vectors[n * 11].clone() } else { rng.unit(64) };
        for (k, extra) in [
            (1, serde_json::json!({})),
            (10, serde_json::json!({})),
            (100, serde_json::json!({})),
            (10, serde_json::json!({"agent_id": "a"})),
            (10, serde_json::json!({"tags": ["t"]})),
        ] {
            let mut ask = serde_json::json!({"namespace": "shared", "vector": q, "top_k": k});
            for (key, value) in extra.as_object().unwrap() {
                ask[key] = value.clone();
            }
            asks.push(ask);
        }
    }
    let alone: Vec<Vec<(String, f64)>> = asks
        .iter()
        .map(|a| hit_list(&root.call_encoded("recall", a.clone()).unwrap().body))
        .collect();
    // Ties: the first query finds its own copy (its own memory, index 0, is deleted).
    assert_eq!(alone[0], vec![(by[&3000].clone(), alone[0][0].1)]);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (root, asks, alone) = (&root, &asks, &alone);
            s.spawn(move || {
                for round in 0..40 {
                    let i = (t * 17 + round * 7) % asks.len();
                    let got = block_on(root.call_encoded_async("recall", asks[i].clone()));
                    assert_eq!(hit_list(&got.unwrap().body), alone[i], "thread {t}, ask {i}");
                }
            });
        }
    });
}

/// A recall answered as JSON text (`call_encoded`, and `call_encoded_async` as transports
/// await it) writes its hits from their records: byte for byte what serialising
/// `Handle::recall`'s decoded hits gives, for records with every field set or left out,
/// escapes and non-ASCII text, nested metadata with numbers of every kind, expiring memories,
/// decay, every mode and filter, and graph expansion.
#[test]
fn recall_answers_written_from_records_equal_the_decoded_hits() {
    let dir = tempfile::tempdir().unwrap();
    // A clock that stands still between the two recalls compared (decay depends on it), and
    // moves between stores so that times are written with no fraction, 3 and 6 digits.
    let start = "2026-12-03T10:00:00Z".parse().unwrap();
    let clock = std::sync::Arc::new(memsilo::ManualClock::new(start));
    let options = Options {
        background: false,
        embedder: std::sync::Arc::new(memsilo::HashEmbedder::new(64)),
        clock: clock.clone(),
        ..Options::default()
    };
    let engine = Engine::open(dir.path(), options).unwrap();
    let root = engine.root();
    root.create_namespace("plain", NamespaceOptions::default()).unwrap();
    root.call("create_namespace", serde_json::json!({"name": "decays"})).unwrap();
    root.call(
        "set_memory_policy",
        serde_json::json!({"namespace": "decays", "policy": {"decay_rate": 0.5}}),
    )
    .unwrap();
    let types = ["episodic", "semantic", "procedural", "working"];
    let mut memories = Vec::new();
    for i in 0..60 {
        let mut m = serde_json::json!({
            "content": format!("note {i} about the \"harbour\" \\ launch\n\ttab é 日本 \u{1F600} \u{7}"),
        });
        if i % 2 == 0 {
            m["agent_id"] = serde_json::json!(format!("agent-{}", i % 3));
            m["tags"] = serde_json::json!(["t", format!("tag \"{i}\"")]);
            m["metadata"] = serde_json::json!({
                "z": i, "a": -1.5e-7, "big": 18_446_744_073_709_551_615u64, "neg": -42,
                "f": 0.1, "one": 1.0, "nested": {"list": [1, "two", null, true, {"x": "é\n"}]},
            });
            m["session_id"] = serde_json::json!(format!("s{}", i % 4));
            m["importance"] = serde_json::json!(i as f64 / 60.0);
            m["entities"] = serde_json::json!([if i % 4 == 0 { "Launch" } else { "Harbour" }]);
        }
        if i % 5 == 0 {
            m["ttl"] = serde_json::json!(86_400);
        }
        if i % 7 == 0 {
            m["id"] = serde_json::json!(format!("caller id {i} \"quoted\""));
        }
        m["memory_type"] = serde_json::json!(types[i % 4]);
        memories.push(m);
    }
    for (i, part) in memories.chunks(20).enumerate() {
        for ns in ["plain", "decays"] {
            root.call("store_memories", serde_json::json!({"namespace": ns, "memories": part}))
                .unwrap();
        }
        clock.advance_micros([500_000, 123_456, 876_544][i]);
    }
    clock.advance_secs(2.0 * 86_400.0);
    root.call(
        "add_relation",
        serde_json::json!({"namespace": "plain", "source": "Harbour", "target": "Launch",
            "type": "hosts"}),
    )
    .unwrap();
    let mut asks = Vec::new();
    for ns in ["plain", "decays"] {
        for mode in ["vector", "keyword", "hybrid"] {
            for extra in [
                serde_json::json!({}),
                serde_json::json!({"top_k": 100}),
                serde_json::json!({"agent_id": "agent-1"}),
                serde_json::json!({"tags": ["t"], "min_importance": 0.2}),
                serde_json::json!({"session_id": "s2", "memory_type": "procedural"}),
                serde_json::json!({"expand": 1}),
            ] {
                let mut ask = serde_json::json!({"namespace": ns, "query": "harbour launch note 7", "mode": mode});
                for (key, value) in extra.as_object().unwrap() {
                    ask[key] = value.clone();
                }
                asks.push(ask);
            }
        }
    }
    let mut hits = 0;
    for ask in asks {
        let req: Recall = serde_json::from_value(ask.clone()).unwrap();
        let decoded = serde_json::to_string(&root.recall(req).unwrap()).unwrap();
        let written = root.call_encoded("recall", ask.clone()).unwrap().body;
        assert_eq!(String::from_utf8(written).unwrap(), decoded, "{ask}");
        let written = block_on(root.call_encoded_async("recall", ask.clone())).unwrap().body;
        assert_eq!(String::from_utf8(written).unwrap(), decoded, "{ask}");
        hits += serde_json::from_str::<Vec<serde_json::Value>>(&decoded).unwrap().len();
    }
    assert!(hits > 500, "{hits} hits compared");
}

/// The model of a vector recall's answer (see below): of `(similarity, memory)`, the best `k`
/// by `score` (`None`: not live) of the `2 × k` most similar, widened while fewer than `k` of
/// them are live. `None` where a rounding could change the answer (scores, or similarities at
/// the edge, within 1e-5).
fn model_top(
    mut by_sim: Vec<(f32, usize)>,
    k: usize,
    score: impl Fn(f32, usize) -> Option<f64>,
) -> Option<Vec<usize>> {
    by_sim.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut want = 2 * k;
    loop {
        let mut hits: Vec<(f64, usize)> =
            by_sim.iter().take(want).filter_map(|&(s, i)| Some((score(s, i)?, i))).collect();
        if hits.len() >= k || want >= by_sim.len() {
            let edge = by_sim.get(want.min(by_sim.len()) - 1).map(|s| s.0);
            let next = by_sim.get(want).map(|s| s.0);
            hits.sort_by(|a, b| b.0.total_cmp(&a.0));
            let close = hits.windows(2).take(k).any(|w| w[0].0 - w[1].0 < 1e-5)
                || edge.zip(next).is_some_and(|(e, x)| e - x < 1e-5);
            return (!close).then(|| hits.into_iter().take(k).map(|h| h.1).collect());
        }
        want *= 4;
    }
}

/// A vector recall answers the best `top_k` by score (similarity times the importance factor)
/// among the live memories of the `2 × top_k` most similar (more when too few of those are
/// live): the answers of a model of that rule over random vectors and importances (0 and 1
/// included, some raised or lowered by updates after they were stored), decay, a floor of
/// effective importance, expired and deleted memories. Queries whose answer a rounding of
/// the model could change (scores or similarities at the edge within 1e-5) are not compared.
#[test]
fn vector_recall_ranks_the_most_similar_by_score() {
    use memsilo::Clock;
    let dir = tempfile::tempdir().unwrap();
    let start = "2026-12-03T10:00:00Z".parse().unwrap();
    let clock = std::sync::Arc::new(memsilo::ManualClock::new(start));
    let options = Options { background: false, clock: clock.clone(), ..Options::default() };
    let engine = Engine::open(dir.path(), options).unwrap();
    let root = engine.root();
    let dims = 32;
    let n = 3000;
    let mut rng = Rng(19);
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| rng.unit(dims)).collect();
    let importance: Vec<f64> = (0..n)
        .map(|i| match i % 10 {
            0 => 0.0,
            1 => 1.0,
            _ => f64::from(rng.uniform()),
        })
        .collect();
    let policies = [
        ("plain", serde_json::json!({})),
        ("decays", serde_json::json!({"decay_rate": 0.3, "min_importance": 0.05})),
    ];
    let mut checked = 0;
    for (ns, policy) in policies {
        namespace(&engine, ns, dims as u32);
        root.call("set_memory_policy", serde_json::json!({"namespace": ns, "policy": policy}))
            .unwrap();
        let decay = policy["decay_rate"].as_f64().unwrap_or(0.0);
        let floor = policy["min_importance"].as_f64().unwrap_or(0.0);
        let stored = clock.now_micros();
        let ids = store_with(&engine, ns, &vectors, |i, v| StoreMemory {
            importance: Some(importance[i]),
            ttl: i.is_multiple_of(13).then_some(86_400),
            ..with_vector(i, v)
        });
        let by = by_index(&ids);
        let mut updated = vec![stored; n];
        clock.advance_secs(43_200.0);
        let mut importance = importance.clone();
        for i in (0..n).step_by(7) {
            let new = [1.0, 0.0, 0.3][i % 3];
            let ask = serde_json::json!({"namespace": ns, "id": by[&i], "importance": new});
            match root.call("update_memory", ask) {
                Ok(_) => (importance[i], updated[i]) = (new, clock.now_micros()),
                // Decayed below the floor already.
                Err(e) => assert_eq!(e.code(), ErrorCode::NotFound, "{e}"),
            }
        }
        let deleted: Vec<bool> = (0..n).map(|i| i % 17 == 5).collect();
        for i in (0..n).filter(|i| deleted[*i]) {
            root.delete_memory(Some(ns), &by[&i]).unwrap();
        }
        clock.advance_secs(2.0 * 86_400.0);
        let now = clock.now_micros();
        let eff = |i: usize| {
            let days = ((now - updated[i]).max(0) as f64) / 86_400_000_000.0;
            if decay > 0.0 {
                importance[i] * (-decay * days).exp()
            } else {
                importance[i]
            }
        };
        let live = |i: usize| !deleted[i] && !i.is_multiple_of(13) && eff(i) >= floor;
        for q in 0..40 {
            let query = if q < 10 { vectors[q * 101].clone() } else { rng.unit(dims) };
            for k in [1, 5, 10, 50] {
                let by_sim: Vec<(f32, usize)> = (0..n)
                    .filter(|i| !deleted[*i])
                    .map(|i| (dot(&vectors[i], &query), i))
                    .collect();
                let score = |s: f32, i: usize| live(i).then(|| f64::from(s) * (0.7 + 0.3 * eff(i)));
                let Some(hits) = model_top(by_sim, k, score) else { continue };
                let got =
                    root.recall(Recall::vector(query.clone()).namespace(ns).top_k(k)).unwrap();
                let got: Vec<String> = got.into_iter().map(|h| h.id).collect();
                let expected: Vec<String> = hits.iter().map(|i| by[i].clone()).collect();
                assert_eq!(got, expected, "{ns}, query {q}, top {k}");
                checked += 1;
            }
        }
    }
    assert!(checked > 250, "{checked} recalls compared");
}
