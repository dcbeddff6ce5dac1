//! Resource faults: the LMDB map filling up (core grows it), the disk filling up (a small
//! tmpfs, when this process may mount one), and a second process opening the same data
//! directory while the first has it open.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use memsilo::{
    CreateTenant, Engine, ErrorCode, IsolationMode, NamespaceOptions, Options, Recall, StoreMemory,
};
use memsilo_reliability::{vector_for, Rng};
use serde_json::Value;

fn open(dir: &Path) -> Engine {
    Engine::open(dir, Options { background: false, ..Options::default() }).expect("the store opens")
}

fn text(rng: &mut Rng, len: usize) -> String {
    (0..len).map(|_| char::from(b'a' + rng.below(26) as u8)).collect()
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() { dir_bytes(&e.path()) } else { m.len() };
    }
    total
}

/// Checks that every `(id, content)` is readable and recalled by its exact vector.
fn verify(engine: &Engine, ns: &str, written: &[(String, String)], recall_every: usize) {
    let root = engine.root();
    assert_eq!(
        root.get_namespace(ns).unwrap().memory_count as usize,
        written.len(),
        "memory count of {ns}"
    );
    for (i, (id, content)) in written.iter().enumerate() {
        let m = root
            .get_memory(Some(ns), id)
            .unwrap_or_else(|e| panic!("memory {i} of {ns} unreadable: {e}"));
        assert!(m.content == *content, "memory {i} of {ns} changed");
        if i.is_multiple_of(recall_every) {
            let hits = root
                .recall(Recall {
                    top_k: Some(1),
                    ..Recall::vector(vector_for(content)).namespace(ns)
                })
                .unwrap();
            assert_eq!(
                hits.first().map(|h| h.id.as_str()),
                Some(id.as_str()),
                "memory {i} of {ns} not recalled by its vector"
            );
        }
    }
}

/// A `physical` namespace starts with a 256 MiB map; writing past it makes core grow the
/// map (on `MapFull`, abort, double, retry). Nothing may be lost or duplicated on the way.
#[test]
fn writing_past_the_initial_map_grows_it_without_losing_anything() {
    // 300 MiB of fsync'd commits: on /dev/shm (RAM) when there is one, so the test measures
    // the map's growth and not the disk.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let mut rng = Rng::new(7);
    let ns = "big-physical";
    let mut written = Vec::new();
    {
        let engine = open(dir.path());
        let root = engine.root();
        let t = root
            .create_tenant(CreateTenant {
                name: "map_growth".into(),
                isolation_mode: Some(IsolationMode::Physical),
                ..Default::default()
            })
            .unwrap();
        root.create_namespace(
            ns,
            NamespaceOptions { tenant_id: Some(t.tenant.id), ..Default::default() },
        )
        .unwrap();
        // LMDB does not compress: a repeated 60 KB filler costs the same pages as random text.
        let filler = "lorem ipsum dolor ".repeat(60_000 / 18);
        // ~300 MiB of memories in all-or-nothing batches of 100 x 60 KB.
        let batches = 50;
        for b in 0..batches {
            let contents: Vec<String> =
                (0..100).map(|i| format!("big-{b}-{i}-{:016x}-{filler}", rng.next_u64())).collect();
            let items = contents
                .iter()
                .map(|c| StoreMemory {
                    embedding: Some(vector_for(c)),
                    ..StoreMemory::text(c.clone())
                })
                .collect();
            let ids =
                root.store_memories(ns, items).unwrap_or_else(|e| panic!("batch {b} failed: {e}"));
            written.extend(ids.into_iter().zip(contents));
        }
        let bytes = dir_bytes(dir.path());
        eprintln!(
            "map growth: {} memories, {:.0} MiB on disk",
            written.len(),
            bytes as f64 / f64::from(1 << 20)
        );
        assert!(
            bytes > 256 << 20,
            "the data did not outgrow the initial 256 MiB map ({bytes} bytes)"
        );
        assert_eq!(engine.root().get_namespace(ns).unwrap().memory_count as usize, written.len());
    }
    let engine = open(dir.path());
    verify(&engine, ns, &written, 13);
    // Writes go on after a reopen of a grown map.
    let more = "after-reopen".to_owned();
    engine
        .root()
        .store_memory(StoreMemory {
            namespace: Some(ns.into()),
            embedding: Some(vector_for(&more)),
            ..StoreMemory::text(more)
        })
        .unwrap();
}

/// A tmpfs mounted for the test and unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .ok()?;
        if out.status.success() {
            Some(Tmpfs(at.to_owned()))
        } else {
            eprintln!(
                "SKIPPED disk-full test: cannot mount a tmpfs here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The disk fills up mid-stream: the failing write reports a clear error, writes nothing
/// partial, and the store reopens with every acknowledged write.
#[test]
fn a_full_disk_fails_writes_cleanly_and_keeps_acknowledged_data() {
    let outer = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&outer.path().join("mnt"), "24m") else { return };
    let dir = fs.0.join("data");
    let mut rng = Rng::new(11);
    let ns = "fill";
    let mut written: Vec<(String, String)> = Vec::new();
    let failure;
    {
        let engine = open(&dir);
        let root = engine.root();
        root.create_namespace(ns, NamespaceOptions::default()).unwrap();
        let mut n = 0;
        failure = loop {
            let contents: Vec<String> =
                (0..20).map(|i| format!("fill-{n}-{i}-{}", text(&mut rng, 20_000))).collect();
            n += 1;
            let items = contents
                .iter()
                .map(|c| StoreMemory {
                    embedding: Some(vector_for(c)),
                    ..StoreMemory::text(c.clone())
                })
                .collect();
            let before = root.get_namespace(ns).unwrap();
            match root.store_memories(ns, items) {
                Ok(ids) => written.extend(ids.into_iter().zip(contents)),
                Err(e) => {
                    let after = root.get_namespace(ns).unwrap();
                    assert_eq!(
                        (after.memory_count, after.storage_bytes),
                        (before.memory_count, before.storage_bytes),
                        "a failed batch left a trace"
                    );
                    break e;
                }
            }
            assert!(n < 1000, "a 24 MiB disk never filled up");
        };
        eprintln!("disk full after {} memories: {} ({failure})", written.len(), failure.code());
        assert_ne!(
            failure.code(),
            ErrorCode::InvalidArgument,
            "a full disk is not the caller's fault: {failure}"
        );
        let message = failure.to_string();
        // LMDB reports a short write (the file system is full) as EIO, so the message says
        // "Input/output error" rather than "No space left on device".
        let says_io = ["No space left", "os error 28", "Input/output error", "os error 5"]
            .iter()
            .any(|m| message.contains(m));
        assert!(
            failure.code() == ErrorCode::Internal && says_io,
            "the error does not say the disk failed: {failure:?}"
        );
        // Reads still work on the full disk.
        for (id, content) in written.iter().step_by(25) {
            assert_eq!(root.get_memory(Some(ns), id).unwrap().content, *content);
        }
        // Small writes may fail too, but never partially and never with a panic.
        for i in 0..20 {
            let c = format!("small-{i}");
            match root.store_memory(StoreMemory {
                namespace: Some(ns.into()),
                embedding: Some(vector_for(&c)),
                ..StoreMemory::text(c.clone())
            }) {
                Ok(m) => written.push((m.id, c)),
                Err(e) => assert_ne!(e.code(), ErrorCode::InvalidArgument, "{e}"),
            }
        }
    }
    let engine = open(&dir);
    verify(&engine, ns, &written, 7);
    drop(engine);
    drop(fs);
}

struct Child {
    proc: std::process::Child,
    lines: std::sync::mpsc::Receiver<Value>,
}

fn spawn_writer(dir: &Path, ns: &str, count: usize, tag: &str) -> Child {
    let mut proc = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
        .arg("concurrent")
        .arg(dir)
        .args([ns, &count.to_string(), tag])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = proc.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    Child { proc, lines: rx }
}

/// A second process opens a data directory this process has open. It must either be
/// refused with a clear error, or both must work safely: every write acknowledged by either
/// is readable and recallable from both, including across a purge's compaction.
#[test]
fn a_second_process_on_an_open_directory_is_refused_or_safe() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let root = engine.root();
    root.create_namespace("shared", NamespaceOptions::default()).unwrap();
    for i in 0..8 {
        let ns = format!("doomed-{i}");
        root.create_namespace(&ns, NamespaceOptions::default()).unwrap();
        root.store_memory(StoreMemory {
            namespace: Some(ns.clone()),
            embedding: Some(vector_for(&ns)),
            ..StoreMemory::text(ns)
        })
        .unwrap();
    }
    let mut child = spawn_writer(dir.path(), "shared", 300, "child");
    let first = child
        .lines
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the second process answers");
    if let Some(e) = first.get("error") {
        let status = child.proc.wait().unwrap();
        eprintln!("second process refused: {e}");
        assert!(!status.success());
        let code = e["code"].as_str().unwrap_or_default();
        assert!(
            code != "internal"
                || e["message"].as_str().is_some_and(|m| m.contains("another process")),
            "unclear refusal: {e}"
        );
        // The first process is unaffected.
        root.store_memory(StoreMemory {
            namespace: Some("shared".into()),
            embedding: Some(vector_for("p")),
            ..StoreMemory::text("p")
        })
        .unwrap();
        return;
    }
    // Both work: write from both, and compact shared environments under the child.
    let mut mine = Vec::new();
    for i in 0..100 {
        let c = format!("parent-{i}");
        let m = root
            .store_memory(StoreMemory {
                namespace: Some("shared".into()),
                embedding: Some(vector_for(&c)),
                ..StoreMemory::text(c.clone())
            })
            .unwrap();
        mine.push((m.id, c));
        if i % 12 == 0 && i / 12 < 8 {
            root.delete_namespace(&format!("doomed-{}", i / 12)).unwrap();
            engine.run_pending_purges().unwrap();
        }
    }
    let status = child.proc.wait().unwrap();
    let mut theirs = Vec::new();
    for v in &child.lines {
        if let Some(a) = v.get("ack") {
            theirs.push((
                a["id"].as_str().unwrap().to_owned(),
                a["content"].as_str().unwrap().to_owned(),
            ));
        } else if let Some(e) = v.get("error") {
            panic!("the second process failed mid-way: {e}");
        }
    }
    assert!(status.success(), "second process: {status}");
    let mut all = mine.clone();
    all.extend(theirs.iter().cloned());
    // Seen from the process that stayed open...
    for (id, content) in &all {
        let m = root
            .get_memory(Some("shared"), id)
            .unwrap_or_else(|e| panic!("{content} ({id}) lost, seen from the first process: {e}"));
        assert_eq!(m.content, *content);
        let hits = root
            .recall(Recall {
                top_k: Some(1),
                ..Recall::vector(vector_for(content)).namespace("shared")
            })
            .unwrap();
        assert_eq!(
            hits.first().map(|h| h.content.as_str()),
            Some(content.as_str()),
            "{content} not recalled in the first process"
        );
    }
    drop(root);
    drop(engine);
    // ...and after a fresh open.
    let engine = open(dir.path());
    verify(
        &engine,
        "shared",
        &{
            let mut v = all.clone();
            v.sort();
            v
        },
        1,
    );
}
