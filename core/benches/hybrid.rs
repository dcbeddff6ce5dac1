//! Keyword and hybrid recall at scale (issue 17). Stores `HYBRID_N` (default 100,000) short
//! synthetic notes in a namespace with a file of its own (`physical`), embedded by the default
//! embedder (the static model when installed: `make bench-hybrid` points `MEMSILO_MODEL_DIR` at
//! the weights `make models` fetched), builds the vector index, then prints text recall p50/p99
//! in each mode and the bytes per memory of each table on disk. Asserts nothing.
//!
//! `cargo bench -p memsilo --bench hybrid` (release). `HYBRID_N` sets the number of notes,
//! `HYBRID_ROUNDS` repeats the 300 queries, `HYBRID_ONLY=1` runs hybrid top 10 alone.

/// The allocator of the `memsilo` binary and the language bindings, so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use memsilo::{
    CreateTenant, Engine, IsolationMode, NamespaceOptions, Options, Recall, RecallMode, StoreMemory,
};

#[path = "common/notes.rs"]
mod notes;

#[path = "common/cpu.rs"]
mod cpu;

fn percentile(lat: &mut [Duration], q: f64) -> Duration {
    lat.sort();
    lat[((lat.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let n: usize = std::env::var("HYBRID_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    let root = engine.root();
    let tenant = root
        .create_tenant(CreateTenant {
            name: "bench".into(),
            isolation_mode: Some(IsolationMode::Physical),
            ..Default::default()
        })
        .unwrap()
        .tenant;
    let opts = NamespaceOptions { tenant_id: Some(tenant.id), ..Default::default() };
    root.create_namespace("notes", opts).unwrap();
    let mut notes = notes::Notes::new();
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let batch: Vec<StoreMemory> =
            (i..(i + 1000).min(n)).map(|j| StoreMemory::text(notes.note(j))).collect();
        i += batch.len();
        root.store_memories("notes", batch).unwrap();
    }
    let took = started.elapsed().as_secs_f64();
    let embedder = engine.root().get_namespace("notes").unwrap();
    println!(
        "{n} notes stored in {took:.1} s ({:.0} memories/s, batches of 1000)",
        n as f64 / took
    );
    println!("embedder: {}", embedder.embedder.as_deref().unwrap_or("none"));
    let t = Instant::now();
    engine.build_vector_indexes().unwrap();
    println!("vector index built in {:.1} s", t.elapsed().as_secs_f64());

    // HYBRID_ROUNDS (default 1) times 300 queries; HYBRID_ONLY=1 runs hybrid top 10 alone
    // (for a profiler).
    let rounds: usize =
        std::env::var("HYBRID_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let queries: Vec<String> = (0..300 * rounds).map(|_| notes.query()).collect();
    // Hybrid fuses the best 50 of each mode, so their top 50 are shown too.
    let mut runs = vec![
        (RecallMode::Vector, 10),
        (RecallMode::Keyword, 10),
        (RecallMode::Hybrid, 10),
        (RecallMode::Vector, 50),
        (RecallMode::Keyword, 50),
    ];
    if std::env::var_os("HYBRID_ONLY").is_some() {
        runs.retain(|r| *r == (RecallMode::Hybrid, 10));
    }
    let dump = std::env::var_os("HYBRID_DUMP");
    for (mode, k) in runs {
        let (mut lat, mut on_cpu) = (Vec::new(), Vec::new());
        let mut lines = String::new();
        for q in &queries {
            let (t, cpu0) = (Instant::now(), cpu::thread_cpu());
            let recall =
                Recall { mode: Some(mode), ..Recall::text(q.as_str()).namespace("notes").top_k(k) };
            let hits = root.recall(recall).unwrap();
            lat.push(t.elapsed());
            on_cpu.push(cpu::thread_cpu().saturating_sub(cpu0));
            if dump.is_some() && (mode, k) == (RecallMode::Hybrid, 10) {
                let notes: Vec<&str> =
                    hits.iter().map(|h| h.content.split(':').next().unwrap_or_default()).collect();
                lines.push_str(&notes.join(","));
                lines.push('\n');
            }
        }
        if let (Some(path), false) = (&dump, lines.is_empty()) {
            std::fs::write(path, lines).unwrap();
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{n} notes: {mode:?} text recall top {k}: p50 {:.2} ms, p99 {:.2} ms (on CPU: p50 {:.2} ms, p99 {:.2} ms)",
            ms(percentile(&mut lat, 0.5)),
            ms(percentile(&mut lat, 0.99)),
            ms(percentile(&mut on_cpu, 0.5)),
            ms(percentile(&mut on_cpu, 0.99))
        );
    }

    let tables = engine.table_bytes("notes").unwrap();
    let per = |name: &str| {
        tables.iter().find(|(t, _)| *t == name).map_or(0.0, |(_, b)| *b as f64 / n as f64)
    };
    for (name, bytes) in &tables {
        if *bytes > 0 {
            println!(
                "table {name:<16} {:>8.1} MiB  {:>7.1} bytes/memory",
                *bytes as f64 / 1_048_576.0,
                *bytes as f64 / n as f64
            );
        }
    }
    let (kw, rest) = (per("postings"), per("memories") + per("vectors"));
    println!(
        "keyword index: {kw:.1} bytes/memory, {:.0}% on top of memories + vectors ({rest:.1} bytes/memory)",
        100.0 * kw / rest
    );
}
