//! Export and import throughput: a namespace of `MEMSILO_BENCH_N` memories (default 100,000)
//! with 384-dimension vectors, exported to JSON Lines in memory and imported into a fresh
//! namespace in batches of 1000. Prints memories per second each way.
//!
//! `cargo bench -p memsilo --bench transfer`

use std::time::Instant;

use memsilo::transfer::{Batcher, ExportArgs, ImportArgs};
use memsilo::{Engine, NamespaceOptions, Options};
use serde_json::json;

const DIMS: usize = 384;

fn main() {
    let n: usize =
        std::env::var("MEMSILO_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    let root = engine.root();
    let dims = Some(DIMS as u32);
    root.create_namespace("src", NamespaceOptions { dimensions: dims, ..Default::default() })
        .unwrap();
    root.create_namespace("dst", NamespaceOptions { dimensions: dims, ..Default::default() })
        .unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let started = Instant::now();
    for chunk in 0..n.div_ceil(1000) {
        let memories: Vec<_> = (chunk * 1000..((chunk + 1) * 1000).min(n))
            .map(|i| {
                let v: Vec<f32> = (0..DIMS).map(|_| next()).collect();
                json!({ "id": format!("mem-{i:07}"), "content": format!("memory number {i} about topic {}", i % 97),
                        "importance": 0.5, "tags": ["bench"], "metadata": { "i": i }, "embedding": v })
            })
            .collect();
        root.call("store_memories", json!({ "namespace": "src", "memories": memories })).unwrap();
    }
    println!("setup: stored {n} memories in {:.1}s", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let mut text = Vec::with_capacity(n * 4096);
    let mut cursor = None;
    let mut lines = 0usize;
    loop {
        let page = root
            .export_page(ExportArgs { namespace: "src".into(), cursor, limit: Some(1000) })
            .unwrap();
        for line in &page.lines {
            serde_json::to_writer(&mut text, line).unwrap();
            text.push(b'\n');
        }
        lines += page.lines.len();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "export: {lines} lines ({:.0} MB) in {secs:.2}s = {:.0} memories/s",
        text.len() as f64 / 1e6,
        n as f64 / secs
    );

    let started = Instant::now();
    let mut batcher = Batcher::new(1000);
    let mut imported = 0;
    let mut send = |b: memsilo::transfer::Batch| {
        let done = root
            .import_batch(ImportArgs {
                namespace: "dst".into(),
                lines: b.lines,
                first_line: Some(b.first_line),
            })
            .unwrap();
        imported += done.memories;
    };
    for line in text.split(|b| *b == b'\n') {
        if let Some(b) = batcher.push(line).unwrap() {
            send(b);
        }
    }
    if let Some(b) = batcher.finish() {
        send(b);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "import: {imported} memories in {secs:.2}s = {:.0} memories/s",
        imported as f64 / secs
    );
    assert_eq!(imported as usize, n);
}
