//! Namespace churn by one tenant against another tenant's writes (issue 14, item 10): both
//! tenants' namespaces share one `logical` shard holding `CHURN_MB` MiB (default 40); tenant Y
//! stores single memories while tenant X creates, fills with one memory (none with
//! `CHURN_EMPTY=1`) and deletes namespaces (`CHURN_PAIRS`, default 30). Prints Y's store latency quiet and during the churn, and how
//! long the churn and its purges took. Asserts nothing.
//!
//! `cargo bench -p memsilo --bench churn` (release), or in a debug build
//! `cargo test -p memsilo --bench churn --profile dev`.

/// The allocator of the `memsilo` binary and the language bindings, so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memsilo::{CreateTenant, Engine, Handle, NamespaceOptions, Options, StoreMemory};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn tenant(root: &Handle, name: &str) -> String {
    root.create_tenant(CreateTenant { name: name.into(), ..Default::default() }).unwrap().tenant.id
}

fn in_tenant(tid: &str) -> NamespaceOptions {
    NamespaceOptions { tenant_id: Some(tid.to_owned()), ..Default::default() }
}

fn percentiles(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label}: {} stores, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

/// Tenant Y's single-memory stores until `stop`, each timed.
fn writer(y: Handle, stop: Arc<AtomicBool>, at_least: usize) -> std::thread::JoinHandle<Vec<f64>> {
    std::thread::spawn(move || {
        let mut ms = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) || ms.len() < at_least {
            let started = Instant::now();
            y.store_memory(StoreMemory {
                namespace: Some("quiet".into()),
                ..StoreMemory::text(format!("y's memory {i}"))
            })
            .unwrap();
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
            i += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        ms
    })
}

fn main() {
    let mb = env_num("CHURN_MB", 40);
    let pairs = env_num("CHURN_PAIRS", 30);
    let empty = env_num("CHURN_EMPTY", 0) == 1;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), Options { shards: 1, ..Options::default() }).unwrap();
    let root = engine.root();
    let (x, y) = (tenant(&root, "churner"), tenant(&root, "bystander"));
    root.create_namespace("bulk", in_tenant(&x)).unwrap();
    root.create_namespace("quiet", in_tenant(&y)).unwrap();
    let filler = "x".repeat(4000);
    let started = Instant::now();
    for b in 0..mb.div_ceil(2) {
        let batch = (0..500).map(|i| StoreMemory::text(format!("{b}-{i} {filler}"))).collect();
        root.store_memories("bulk", batch).unwrap();
    }
    let stored = root.get_namespace("bulk").unwrap().storage_bytes;
    println!("filled: {:.0} MiB charged in {:.1?}", stored as f64 / 1_048_576.0, started.elapsed());

    let stop = Arc::new(AtomicBool::new(true));
    percentiles("quiet", writer(root.clone(), stop.clone(), 200).join().unwrap());

    stop.store(false, Ordering::Relaxed);
    let during = writer(root.clone(), stop.clone(), 0);
    let started = Instant::now();
    for i in 0..pairs {
        let ns = format!("churn-{i}");
        root.create_namespace(&ns, in_tenant(&x)).unwrap();
        if !empty {
            let one = StoreMemory { namespace: Some(ns.clone()), ..StoreMemory::text("x") };
            root.store_memory(one).unwrap();
        }
        root.delete_namespace(&ns).unwrap();
    }
    let churned = started.elapsed();
    while engine.pending_purges().unwrap() > 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let purged = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    percentiles("during churn", during.join().unwrap());
    println!(
        "{pairs} create/store/delete pairs: {churned:.1?}; every purge done after {purged:.1?}"
    );
}
