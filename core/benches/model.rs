//! The memory model at 100k (issue 16): a namespace of `MEMSILO_BENCH_N` memories (default
//! 100,000) with 384-dimension clustered vectors, each with one of 100 agents, tags and
//! customers (so each of those values selects 1%). Prints, and asserts nothing about speed:
//!
//! - filtered recall p50/p99 and recall@10 against the exact filtered answer, for a built-in
//!   field filter (`agent_id`, `tags`) and a metadata filter (`metadata.customer`);
//! - `list_memories` of the whole namespace by cursor (pages of 1000), memories per second,
//!   and how often the listing thread waited or was preempted (wall time above CPU time is
//!   then the machine's load, not waiting);
//! - a session's memories and its memory count (`session_memories`, `get_session`,
//!   `list_sessions`) with 100 sessions of 1% each;
//! - upsert: batches of 1000 existing ids with new vectors, memories per second (CPU time of
//!   the store calls only) and the share of it spent in the kernel (writing pages, syncing);
//!   then the same by 2 and by 4 callers at once (how many commits group commit made of their
//!   batches);
//! - export to JSON Lines (in memory), import into a fresh namespace in batches of 1000, and
//!   the same import again (every id stored with the same vector), with the share of the CPU
//!   spent reading and checking lines on the calling thread while the batch before is written
//!   on another (what a second core takes off the import's wall time); then both again with
//!   one `import_namespace` call a batch, one after the other.
//!
//! The setup line gives the rate of storing the namespace (new memories with caller ids, in
//! batches of 1000) and the pages each batch wrote.
//!
//! `make bench-model` (`cargo bench -p memsilo --bench model`); `MEMSILO_BENCH_N=20000` for a
//! quick run, `MEMSILO_BENCH_ONLY=recall,list,sessions,upsert,transfer` for some parts only,
//! `MEMSILO_BENCH_UPSERTS` for another number of upsert batches than 20.

/// The allocator of the `memsilo` binary and the language bindings, so the figures are theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use memsilo::transfer::{Batcher, ExportArgs};
use memsilo::{
    dot, Engine, ListMemories, ListSessions, NamespaceOptions, Options, Recall, SessionMemories,
    StartSession, StoreMemory,
};
use serde_json::json;

#[path = "../tests/common/synthetic.rs"]
mod synthetic;

use synthetic::Clustered;

const DIMS: usize = 384;
/// Distinct agents, tags and customers: each value selects 1% of the namespace.
const GROUPS: usize = 100;

#[path = "common/cpu.rs"]
mod cpu;
use cpu::{cpu, thread_cpu};

/// "N/s wall, M/s per CPU second" for `count` items done in `wall` using `cpu` CPU time.
fn rate(count: usize, wall: Duration, cpu: Duration) -> String {
    format!(
        "{:.0}/s wall, {:.0}/s per CPU second",
        count as f64 / wall.as_secs_f64(),
        count as f64 / cpu.as_secs_f64()
    )
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn memory(i: usize, v: Vec<f32>) -> StoreMemory {
    let g = i % GROUPS;
    StoreMemory {
        id: Some(format!("mem-{i:07}")),
        agent_id: Some(format!("agent-{g}")),
        session_id: Some(format!("session-{g}")),
        tags: vec![format!("tag-{g}"), "bench".into()],
        metadata: Some(json!({ "customer": format!("c{g}"), "i": i }).as_object().unwrap().clone()),
        importance: Some(0.5),
        embedding: Some(v),
        ..StoreMemory::text(format!("memory number {i} about topic {}", i % 97))
    }
}

/// Recall filtered to one group (1%) by `filter`: p50, p99 and recall@10 against the exact
/// top 10 of that group's vectors.
fn filtered_recall(
    engine: &Engine,
    vectors: &[Vec<f32>],
    data: &mut Clustered,
    label: &str,
    filter: impl Fn(usize) -> serde_json::Value,
) {
    let root = engine.root();
    let (mut lat, mut on_cpu) = (Vec::new(), Vec::new());
    let (mut found, mut checked) = (0usize, 0usize);
    for qi in 0..200 {
        let g = (qi * 37) % GROUPS;
        let q = data.point();
        let r = Recall {
            filter: Some(filter(g)),
            ..Recall::vector(q.clone()).namespace("src").top_k(10)
        };
        let (started, cpu0) = (Instant::now(), thread_cpu());
        let hits = root.recall(r).unwrap();
        lat.push(started.elapsed());
        on_cpu.push(thread_cpu().saturating_sub(cpu0));
        let mut exact: Vec<(f32, usize)> =
            (g..vectors.len()).step_by(GROUPS).map(|i| (dot(&vectors[i], &q), i)).collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        let truth: Vec<String> = exact[..10].iter().map(|e| format!("mem-{:07}", e.1)).collect();
        found += hits.iter().filter(|h| truth.contains(&h.id)).count();
        checked += 10;
    }
    println!(
        "recall filtered to 1% by {label}: p50 {}  p99 {}  (on CPU: p50 {})  recall@10 {:.3}  (targets: p50 <= 2 ms, recall@10 >= 0.95)",
        ms(percentile(&mut lat, 0.5)),
        ms(percentile(&mut lat, 0.99)),
        ms(percentile(&mut on_cpu, 0.5)),
        found as f64 / checked as f64
    );
}

fn list_all(engine: &Engine, n: usize) {
    let root = engine.root();
    let (started, cpu0, switches0) = (Instant::now(), cpu(), switches());
    let (mut listed, mut pages, mut cursor) = (0usize, 0usize, None);
    loop {
        let page = root
            .list_memories(ListMemories {
                namespace: Some("src".into()),
                limit: Some(1000),
                cursor,
                ..Default::default()
            })
            .unwrap();
        listed += page.memories.len();
        pages += 1;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let (wall, used) = (started.elapsed(), cpu().saturating_sub(cpu0));
    assert_eq!(listed, n);
    println!(
        "list_memories by cursor: {listed} memories in {pages} pages of 1000 in {:.2}s: {} (target >= 200k/s; {})",
        wall.as_secs_f64(),
        rate(listed, wall, used),
        switched(switches0)
    );
}

/// Bytes this process has passed to write calls so far (`wchar` of `/proc/self/io`): what
/// LMDB's commits write, as it writes its dirty pages with `pwrite`.
fn written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar: ")?.trim().parse().ok())
        .unwrap_or(0)
}

/// p50 and p99 of 50 runs of `f`.
fn time50(mut f: impl FnMut(usize)) -> (Duration, Duration) {
    let mut lat: Vec<Duration> = (0..50)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99))
}

fn session_reads(engine: &Engine, n: usize) {
    let root = engine.root();
    let ns = || Some("src".to_owned());
    let (p50, p99) = time50(|i| {
        let page = root
            .session_memories(SessionMemories {
                namespace: ns(),
                id: format!("session-{}", i % GROUPS),
                limit: Some(100),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.total_count as usize, n / GROUPS);
    });
    println!("session_memories (first 100 of a 1% session): p50 {}  p99 {}", ms(p50), ms(p99));
    let (p50, p99) = time50(|i| {
        let s = root.get_session(ns().as_deref(), &format!("session-{}", i % GROUPS)).unwrap();
        assert_eq!(s.memory_count as usize, n / GROUPS);
    });
    println!("get_session (with its memory count): p50 {}  p99 {}", ms(p50), ms(p99));
    let (p50, p99) = time50(|_| {
        let page = root
            .list_sessions(ListSessions { namespace: ns(), limit: Some(100), ..Default::default() })
            .unwrap();
        assert_eq!(page.sessions.len(), GROUPS);
    });
    println!("list_sessions (100 sessions with their counts): p50 {}  p99 {}", ms(p50), ms(p99));
}

fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: rusage is plain integers (all-zero is valid), and getrusage fills the struct
    // it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &raw mut usage);
        usage
    }
}

/// CPU time this process has spent in the kernel so far.
fn kernel_cpu() -> Duration {
    let usage = rusage(libc::RUSAGE_SELF);
    Duration::new(usage.ru_stime.tv_sec as u64, usage.ru_stime.tv_usec as u32 * 1000)
}

/// Context switches of this thread so far: (voluntary, involuntary). A voluntary one is a
/// wait (I/O, a lock); an involuntary one is the scheduler giving the core to another
/// runnable thread (the machine's load).
fn switches() -> (i64, i64) {
    let usage = rusage(libc::RUSAGE_THREAD);
    (usage.ru_nvcsw, usage.ru_nivcsw)
}

/// "N waits, M preemptions" since `from` (see [`switches`]).
fn switched(from: (i64, i64)) -> String {
    let now = switches();
    format!("{} waits, {} preemptions", now.0 - from.0, now.1 - from.1)
}

/// Batch `b` of the upserts: 1000 existing ids spread over the namespace, new vectors.
fn upsert_batch(n: usize, b: usize, data: &mut Clustered) -> Vec<StoreMemory> {
    (0..1000).map(|j| memory((j * (n / 1000) + b) % n, data.point())).collect()
}

fn upsert(engine: &Engine, n: usize, data: &mut Clustered) {
    let root = engine.root();
    // 20 batches by default; more (`MEMSILO_BENCH_UPSERTS`) to take in the bulk clean-up of the
    // `updated_at` keys upserts leave behind, which at 100k comes once in about 50 batches.
    let batches = std::env::var("MEMSILO_BENCH_UPSERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .min(n / 1000);
    let mut lat = Vec::new();
    let (mut used, mut kernel) = (Duration::ZERO, Duration::ZERO);
    let written0 = written();
    for b in 0..batches {
        // Made outside the CPU time measured.
        let batch = upsert_batch(n, b, data);
        let (t, cpu0, kernel0) = (Instant::now(), cpu(), kernel_cpu());
        root.store_memories("src", batch).unwrap();
        lat.push(t.elapsed());
        used += cpu().saturating_sub(cpu0);
        kernel += kernel_cpu().saturating_sub(kernel0);
    }
    let pages = written().saturating_sub(written0) as f64 / 4096.0 / batches as f64;
    let total: Duration = lat.iter().sum();
    assert_eq!(root.get_namespace("src").unwrap().memory_count, n as u64);
    println!(
        "upsert of 1000 existing ids per batch (new vectors): p50 {} per batch, {} (target >= 50k/s; {:.0}% of the CPU in the kernel); {pages:.0} pages written per batch",
        ms(percentile(&mut lat, 0.5)),
        rate(batches * 1000, total, used),
        100.0 * kernel.as_secs_f64() / used.as_secs_f64()
    );
    for callers in [2, 4] {
        upsert_concurrently(engine, n, data, batches, callers);
    }
}

/// The same upserts by `callers` threads at once, `batches` batches in all (other ids of the
/// namespace than the one-caller run's, each batch its own): what group commit makes of
/// batches that arrive while one commits. CPU time is the whole process's.
fn upsert_concurrently(
    engine: &Engine,
    n: usize,
    data: &mut Clustered,
    batches: usize,
    callers: usize,
) {
    let per = batches / callers;
    // After the batches of the runs before (one caller, then 2).
    let first = batches * (callers - 1);
    let work: Vec<Vec<Vec<StoreMemory>>> = (0..callers)
        .map(|c| (0..per).map(|k| upsert_batch(n, first + c * per + k, data)).collect())
        .collect();
    let (started, cpu0, kernel0) = (Instant::now(), cpu(), kernel_cpu());
    let (written0, commits0) = (written(), engine.commit_stats());
    std::thread::scope(|s| {
        for batches in work {
            let root = engine.root();
            s.spawn(move || {
                for batch in batches {
                    root.store_memories("src", batch).unwrap();
                }
            });
        }
    });
    let (wall, used) = (started.elapsed(), cpu().saturating_sub(cpu0));
    let kernel = kernel_cpu().saturating_sub(kernel0);
    let commits = (engine.commit_stats() - commits0).commits;
    let pages = written().saturating_sub(written0) as f64 / 4096.0 / (callers * per) as f64;
    println!(
        "upsert by {callers} callers at once, {per} batches of 1000 each: {} ({:.0}% of the CPU in the kernel); {} batches in {commits} commits, {pages:.0} pages written per batch",
        rate(callers * per * 1000, wall, used),
        100.0 * kernel.as_secs_f64() / used.as_secs_f64(),
        callers * per,
    );
}

fn export_import(engine: &Engine, n: usize) {
    let root = engine.root();
    let (started, cpu0, switches0) = (Instant::now(), cpu(), switches());
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
    let (wall, used) = (started.elapsed(), cpu().saturating_sub(cpu0));
    println!(
        "export: {lines} lines ({:.0} MB) in {:.2}s: {} (target >= 50k/s; {})",
        text.len() as f64 / 1e6,
        wall.as_secs_f64(),
        rate(n, wall, used),
        switched(switches0)
    );

    import(engine, n, &text, "dst", true, "import");
    // The same lines again: every id is stored with the same vector (an import run again).
    import(engine, n, &text, "dst", true, "import again (every id stored, same vectors)");
    // One `import_namespace` call a batch, one after the other (what a client calling the
    // operation itself does), into another namespace and again.
    let one = "one import_namespace call a batch";
    import(engine, n, &text, "dst1", false, &format!("import, {one}"));
    import(engine, n, &text, "dst1", false, &format!("import again, {one}"));
}

/// Imports export `text` into namespace `ns` in batches of 1000 and prints the rate: with
/// `import_batches` (the next batch read while one is written, as `memsilo import` does) if
/// `pipelined`, else one `import_namespace` call a batch.
fn import(engine: &Engine, n: usize, text: &[u8], ns: &str, pipelined: bool, label: &str) {
    let root = engine.root();
    let (started, cpu0, written0, kernel0) = (Instant::now(), cpu(), written(), kernel_cpu());
    let mut batcher = Batcher::new(1000);
    let mut lines = text.split(|b| *b == b'\n');
    let read = std::iter::from_fn(|| {
        for line in lines.by_ref() {
            match batcher.push(line) {
                Ok(Some(b)) => return Some(Ok(b)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        batcher.finish().map(Ok)
    });
    let reader0 = thread_cpu();
    let imported = if pipelined {
        root.import_batches(ns, read, |_| {}).unwrap().memories
    } else {
        let mut total = 0;
        for batch in read {
            let args = serde_json::to_value(batch.unwrap().into_args(ns)).unwrap();
            total +=
                root.call("import_namespace", args).unwrap().value["memories"].as_u64().unwrap();
        }
        total
    };
    let reading = thread_cpu().saturating_sub(reader0);
    let (wall, used) = (started.elapsed(), cpu().saturating_sub(cpu0));
    let kernel = kernel_cpu().saturating_sub(kernel0);
    let pages = written().saturating_sub(written0) as f64 / 4096.0 / (n as f64 / 1000.0);
    let beside = if pipelined {
        let share = 100.0 * reading.as_secs_f64() / used.as_secs_f64();
        format!(", {share:.0}% reading and checking the lines beside the writes")
    } else {
        String::new()
    };
    println!(
        "{label}: {imported} memories in {:.2}s: {} (target >= 50k/s; {:.0}% of the CPU in the kernel{beside}); {pages:.0} pages written per batch of 1000",
        wall.as_secs_f64(),
        rate(imported as usize, wall, used),
        100.0 * kernel.as_secs_f64() / used.as_secs_f64(),
    );
    assert_eq!(imported as usize, n);
    assert_eq!(root.get_namespace(ns).unwrap().memory_count, n as u64);
}

/// The filter selecting group `g`.
type GroupFilter = fn(usize) -> serde_json::Value;

fn main() {
    let n: usize =
        std::env::var("MEMSILO_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    let root = engine.root();
    let dims = Some(DIMS as u32);
    for ns in ["src", "dst", "dst1"] {
        root.create_namespace(ns, NamespaceOptions { dimensions: dims, ..Default::default() })
            .unwrap();
    }
    for g in 0..GROUPS {
        let id = Some(format!("session-{g}"));
        root.start_session(StartSession {
            namespace: Some("src".into()),
            id,
            ..Default::default()
        })
        .unwrap();
    }
    let mut data = Clustered::new(16, 200, DIMS);
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| data.point()).collect();
    let (started, cpu0, written0) = (Instant::now(), cpu(), written());
    for (c, chunk) in vectors.chunks(1000).enumerate() {
        let batch =
            chunk.iter().enumerate().map(|(i, v)| memory(c * 1000 + i, v.clone())).collect();
        root.store_memories("src", batch).unwrap();
    }
    let (wall, used) = (started.elapsed(), cpu().saturating_sub(cpu0));
    let pages = written().saturating_sub(written0) as f64 / 4096.0 / (n as f64 / 1000.0);
    println!(
        "setup: stored {n} memories x {DIMS} in batches of 1000 in {:.1}s: {}; {pages:.0} pages written per batch (load average {})",
        wall.as_secs_f64(),
        rate(n, wall, used),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split(' ')
            .next()
            .unwrap_or("?")
    );
    let started = Instant::now();
    engine.build_vector_indexes().unwrap();
    println!("setup: vector index built in {:.1}s", started.elapsed().as_secs_f64());

    let only = std::env::var("MEMSILO_BENCH_ONLY").ok();
    let run = |part: &str| only.as_deref().is_none_or(|o| o.split(',').any(|p| p == part));
    if run("recall") {
        let filters: [(&str, GroupFilter); 3] = [
            ("agent_id", |g| json!({ "agent_id": format!("agent-{g}") })),
            ("tags", |g| json!({ "tags": { "$contains": format!("tag-{g}") } })),
            ("metadata.customer", |g| json!({ "metadata.customer": format!("c{g}") })),
        ];
        for (label, filter) in filters {
            filtered_recall(&engine, &vectors, &mut data, label, filter);
        }
    }
    if run("list") {
        list_all(&engine, n);
    }
    if run("sessions") {
        session_reads(&engine, n);
    }
    if run("upsert") {
        upsert(&engine, n, &mut data);
    }
    if run("transfer") {
        export_import(&engine, n);
    }
}
