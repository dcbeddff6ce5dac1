//! How long the instance key rotation holds catalog calls up (issue 22): a directory with
//! `ROTATION_NAMESPACES` namespaces (default 1,000), one memory each, has its instance key
//! rotated while a reader times catalog reads (`get_tenant`) and, unless `ROTATION_WRITER=0`,
//! a writer times catalog writes (`create_namespace`). A catalog write during the rotation's
//! copy of the catalog makes its last round copy the whole catalog again while every catalog
//! read and write waits (catalog writes do not say which rows they change): with the writer
//! this is the worst case, without it the last round copies nothing. Prints the catalog's
//! size, the rotation's time and CPU, and the longest read and write during it (against the
//! longest before it). Asserts nothing.
//!
//! `cargo bench -p memsilo --bench rotation` (release); data under `TMPDIR`.

/// The allocator of the `memsilo` binary and the language bindings, so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memsilo::{CreateTenant, Engine, Handle, HashEmbedder, NamespaceOptions, Options, StoreMemory};

#[path = "common/cpu.rs"]
mod cpu;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs `call` until `stop`, timing each; answers the times in ms.
fn timed(stop: Arc<AtomicBool>, mut call: impl FnMut(usize) + Send + 'static) -> Vec<f64> {
    let mut ms = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        call(i);
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        i += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    ms
}

fn summary(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label}: {} calls, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
        ms.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

fn mib(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1_048_576.0)
}

fn main() {
    let n = env_num("ROTATION_NAMESPACES", 1_000);
    let with_writer = env_num("ROTATION_WRITER", 1) == 1;
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    let options = Options {
        background: false,
        embedder: Arc::new(HashEmbedder::new(32)),
        keyring: Some(keys),
        ..Options::default()
    };
    let engine = Engine::open(&data, options).unwrap();
    let root = engine.root();
    let tenant = root
        .create_tenant(CreateTenant { name: "reader".into(), ..Default::default() })
        .unwrap()
        .tenant
        .id;
    let started = Instant::now();
    for i in 0..n {
        let ns = format!("ns-{i}");
        root.create_namespace(&ns, NamespaceOptions::default()).unwrap();
        let one = StoreMemory { namespace: Some(ns), ..StoreMemory::text(format!("memory {i}")) };
        root.store_memory(one).unwrap();
    }
    println!(
        "{n} namespaces made in {:.1?}; catalog file {:.1} MiB",
        started.elapsed(),
        mib(&data.join("catalog").join("data.mdb"))
    );

    let run = |root: &Handle, tag: &str, during: &dyn Fn()| {
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (root, tenant, stop) = (root.clone(), tenant.clone(), stop.clone());
            std::thread::spawn(move || {
                timed(stop, move |_| {
                    root.get_tenant(&tenant).unwrap();
                })
            })
        };
        let writes = with_writer.then(|| {
            let (root, stop) = (root.clone(), stop.clone());
            let prefix = format!("{tag}-");
            std::thread::spawn(move || {
                timed(stop, move |i| {
                    root.create_namespace(&format!("{prefix}{i}"), NamespaceOptions::default())
                        .unwrap();
                })
            })
        });
        during();
        stop.store(true, Ordering::Relaxed);
        (reader.join().unwrap(), writes.map(|w| w.join().unwrap()))
    };

    let (reads, writes) = run(&root, "quiet", &|| std::thread::sleep(Duration::from_secs(3)));
    summary("catalog reads, no rotation (3 s)", reads);
    if let Some(w) = writes {
        summary("catalog writes, no rotation (3 s)", w);
    }
    let (reads, writes) = run(&root, "rotating", &|| {
        root.rotate_instance_key(Some("instance-2")).unwrap();
        let (wall, cpu) = (Instant::now(), cpu::thread_cpu());
        let files = engine.run_key_rotations().unwrap();
        println!(
            "rotation: {files} files rewritten in {:.2?} ({:.2?} CPU on the rotating thread)",
            wall.elapsed(),
            cpu::thread_cpu().saturating_sub(cpu)
        );
    });
    summary("catalog reads during the rotation", reads);
    if let Some(w) = writes {
        summary("catalog writes during the rotation", w);
    }
    println!("catalog file after: {:.1} MiB", mib(&data.join("catalog").join("data.mdb")));
}
