//! Embedding throughput. Run with `make bench-embed` (fetches the model) or
//! `cargo bench -p memsilo --bench embed`; prints numbers and asserts nothing:
//! texts/s for each embedder on short texts, and ingest (text-only batches of 1000,
//! embedded by the engine) in memories/s. `MEMSILO_BENCH_TEXTS=N` sets the text count.

/// The allocator of the `memsilo` binary and the language bindings, so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use memsilo::{Embedder, Engine, HashEmbedder, NamespaceOptions, Options, StoreMemory};

#[path = "common/cpu.rs"]
mod cpu;

fn model_dir(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    target.join("models").join(name)
}

/// Short, varied texts like chat memories (5-15 words).
fn texts(n: usize) -> Vec<String> {
    const WORDS: &[&str] = &[
        "budget",
        "hiring",
        "roadmap",
        "customer",
        "meeting",
        "launch",
        "engineers",
        "allocated",
        "quarter",
        "revenue",
        "prefers",
        "email",
        "vegetarian",
        "flight",
        "Berlin",
        "Tuesday",
        "deadline",
        "contract",
        "renewal",
        "onboarding",
        "the",
        "a",
        "for",
        "with",
        "next",
        "we",
        "user",
        "asked",
        "about",
        "pricing",
        "discount",
        "invoice",
        "support",
        "ticket",
        "bug",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 5 + (x % 11) as usize;
            let mut s = String::new();
            for j in 0..len {
                s.push_str(WORDS[((x >> (j * 3)) as usize + i + j) % WORDS.len()]);
                s.push(' ');
            }
            s.push_str(&i.to_string());
            s
        })
        .collect()
}

/// Two passes over the texts in batches of 1000: the first with a fresh embedder (the static
/// model's word cache empty), the second with every word seen.
fn throughput(label: &str, e: &dyn Embedder, texts: &[String]) {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for pass in ["first pass", "warm"] {
        let t = Instant::now();
        for chunk in refs.chunks(1000) {
            e.embed(chunk).unwrap();
        }
        let s = t.elapsed().as_secs_f64();
        let n = texts.len();
        println!("embed  {label:<22} {:>9.0} texts/s  ({n} texts, {s:.2} s, {pass})", n as f64 / s);
    }
}

/// Ingest in memories/s of wall time and per CPU second of the process (the engine's commit
/// threads included): on a shared machine the wall rate follows the other work's load and
/// the disk's, the CPU rate what the ingest itself costs.
fn ingest(label: &str, e: Arc<dyn Embedder>, texts: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, embedder: e, ..Options::default() })
            .unwrap();
    engine.root().create_namespace("bench", NamespaceOptions::default()).unwrap();
    let (t, cpu0) = (Instant::now(), cpu::cpu());
    for chunk in texts.chunks(1000) {
        let batch = chunk.iter().map(|c| StoreMemory::text(c.as_str())).collect();
        engine.root().store_memories("bench", batch).unwrap();
    }
    let s = t.elapsed().as_secs_f64();
    let on_cpu = cpu::cpu().saturating_sub(cpu0).as_secs_f64();
    println!(
        "ingest {label:<22} {:>9.0} memories/s, {:.0} per CPU second ({} memories in batches of 1000)",
        texts.len() as f64 / s,
        texts.len() as f64 / on_cpu,
        texts.len()
    );
}

fn main() {
    let n =
        std::env::var("MEMSILO_BENCH_TEXTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let texts = texts(n);
    println!("{} threads available", std::thread::available_parallelism().map_or(1, usize::from));
    let hash: Arc<dyn Embedder> = Arc::new(HashEmbedder::default());
    throughput("hash (384-d)", hash.as_ref(), &texts);
    let mut embedders = vec![("hash (384-d)", hash)];
    let potion = || memsilo::load_model(&model_dir("potion-base-8M"), "potion-base-8M");
    match potion() {
        Ok(m) => {
            throughput("potion-base-8M (256-d)", m.as_ref(), &texts);
            // Ingest starts from a fresh model (nothing cached).
            embedders.push(("potion-base-8M", potion().unwrap()));
        }
        Err(e) => println!("potion-base-8M: not measured ({e}); run `make models`"),
    }
    if let Some(dir) = std::env::var_os("MEMSILO_MINILM_DIR") {
        match memsilo::load_model(Path::new(&dir), "all-MiniLM-L6-v2") {
            Ok(m) => throughput("all-MiniLM-L6-v2", m.as_ref(), &texts[..2000.min(n)]),
            Err(e) => println!("MiniLM: not measured ({e})"),
        }
    }
    for (label, e) in embedders {
        ingest(label, e, &texts);
    }
}
