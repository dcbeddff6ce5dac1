//! Key rotations racing other work, each race forced with test hooks: a rotation that
//! rewrites a namespace's environment while its vector index is being built (the build opened
//! the index under the old key), run to its end and the old key's destruction between the
//! build's opening of the index and its writes; and a round of the background worker during
//! the start of an instance key rotation.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use crate::keyring::{KeyProvider, KeyringDir};
use crate::memory::{Recall, StoreMemory};
use crate::namespace::NamespaceOptions;
use crate::tenant::{CreateTenant, IsolationMode};
use crate::{Engine, Handle, HashEmbedder, Options, RotationState};

fn options(keys: &Path) -> Options {
    Options {
        background: false,
        embedder: Arc::new(HashEmbedder::new(32)),
        keyring: Some(keys.to_owned()),
        ann_threshold: 50,
        ..Options::default()
    }
}

/// A data directory and its keyring directory, both in a temporary directory.
struct Dirs {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    keys: PathBuf,
    ring: KeyringDir,
}

impl Dirs {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
        let ring = KeyringDir::open(&keys, None).unwrap();
        Dirs { _tmp: tmp, data, keys, ring }
    }

    fn open(&self) -> Engine {
        Engine::open(&self.data, options(&self.keys)).unwrap()
    }
}

fn text(i: usize) -> String {
    format!("note {i} about topic {}", i % 5)
}

fn store(root: &Handle, ns: &str, from: usize, to: usize) {
    for i in from..to {
        root.store_memory(StoreMemory { namespace: Some(ns.into()), ..StoreMemory::text(text(i)) })
            .unwrap();
    }
}

/// Each memory asked for by its own text comes first.
fn assert_recalled(engine: &Engine, ns: &str, count: usize) {
    for i in [0, count / 2, count - 1] {
        let hits = engine.root().recall(Recall::text(text(i)).namespace(ns).top_k(5)).unwrap();
        assert_eq!(hits.first().map(|h| h.content.as_str()), Some(text(i).as_str()));
    }
}

/// A namespace (made with `make`'s options) indexed under the key `rotate` moves it away from (`old_key`);
/// then, with more memories to index, an index build opens the index and the rotation runs
/// to its end, the old key destroyed, before the build goes on. The build finishes without an
/// error and records nothing; after a restart the namespace recalls correctly, is indexed
/// again when recalled, and its index opens under the new key.
fn rotation_during_an_index_build(
    make: impl Fn(&Handle) -> NamespaceOptions,
    rotate: impl Fn(&Handle, Option<&str>) -> RotationState,
    old_key: &str,
) {
    let dirs = Dirs::new();
    let ns = "notes";
    {
        let engine = dirs.open();
        let root = engine.root();
        let opts = make(&root);
        let tenant = opts.tenant_id.clone();
        root.create_namespace(ns, opts).unwrap();
        store(&root, ns, 0, 60);
        assert!(engine.build_vector_indexes().unwrap() > 0, "indexed under the old key");
        store(&root, ns, 60, 70);
        assert_eq!(rotate(&root, tenant.as_deref()), RotationState::Rewriting);
        let during = engine.clone();
        crate::index::WHILE_BUILDING.set(Some(Box::new(move || {
            while during.run_key_rotations().unwrap() > 0 {}
            during.run_pending_purges().unwrap();
        })));
        let built = engine.build_vector_indexes();
        assert!(crate::index::WHILE_BUILDING.take().is_none(), "the build reached the hook");
        assert_eq!(built.unwrap(), 0, "the build under the old key is discarded");
        assert!(dirs.ring.get(old_key).unwrap().is_none(), "the old key is destroyed");
        assert_recalled(&engine, ns, 70);
    }
    let engine = dirs.open();
    assert_recalled(&engine, ns, 70);
    assert!(engine.build_vector_indexes().unwrap() > 0, "indexed again under the new key");
    drop(engine);
    let engine = dirs.open();
    assert_recalled(&engine, ns, 70);
    assert_eq!(engine.build_vector_indexes().unwrap(), 0, "the index on disk is complete");
}

#[test]
fn a_tenant_key_rotation_during_an_index_build_leaves_no_index_under_the_old_key() {
    let tenant_of = |root: &Handle| {
        let tenant = root
            .create_tenant(CreateTenant {
                name: "owner".into(),
                isolation_mode: Some(IsolationMode::Hybrid),
                encryption_key_id: Some("old-key".into()),
                ..Default::default()
            })
            .unwrap()
            .tenant;
        NamespaceOptions { tenant_id: Some(tenant.id), ..Default::default() }
    };
    let rotate = |root: &Handle, tenant: Option<&str>| {
        root.rotate_tenant_key(tenant.unwrap(), Some("new-key")).unwrap().state
    };
    rotation_during_an_index_build(tenant_of, rotate, "old-key");
}

#[test]
fn an_instance_key_rotation_during_an_index_build_leaves_no_index_under_the_old_key() {
    let rotate = |root: &Handle, _: Option<&str>| {
        root.rotate_instance_key(Some("instance-2")).unwrap().state
    };
    rotation_during_an_index_build(|_| NamespaceOptions::default(), rotate, "instance");
}

/// What the worker's round tells the start of the rotation, in the test below.
#[derive(Debug, PartialEq, Eq)]
enum Round {
    /// Its write of `storage.json` has written the temporary file, not renamed it.
    Writing,
    /// It has returned.
    Done,
}

/// Issue #22 (`POST /api/v1/instance/rotate-key` answered `500` "io: No such file or
/// directory"): a round of the background worker came between the start's record of the
/// rotation and its switch to the new key, found the rotation recorded with its files not
/// listed (as a crash there leaves it), and did the rest of the start itself. Both wrote
/// `storage.json` at once through its one temporary file: forced here with hooks, the round's
/// write waits between writing the temporary file and renaming it, the start writes into the
/// same file, the round renames it into place, and the start's rename found nothing. The
/// start is answered, the rotation finishes under the new key, and the directory opens again
/// under it.
#[test]
fn a_worker_round_during_the_start_of_an_instance_key_rotation_leaves_it_to_the_start() {
    let dirs = Dirs::new();
    let ns = "notes";
    {
        let engine = dirs.open();
        let root = engine.root();
        root.create_namespace(ns, NamespaceOptions::default()).unwrap();
        store(&root, ns, 0, 20);

        let (round_says, start_hears) = mpsc::channel();
        let (run, round_starts) = mpsc::channel::<()>();
        let (go_on, round_goes_on) = mpsc::channel::<()>();
        let round = {
            let engine = engine.clone();
            std::thread::spawn(move || {
                round_starts.recv().unwrap();
                let says = round_says.clone();
                crate::storage::WRITTEN_NOT_RENAMED.set(Some(Box::new(move || {
                    says.send(Round::Writing).unwrap();
                    round_goes_on.recv().unwrap();
                })));
                let rewritten = engine.run_key_rotations();
                crate::storage::WRITTEN_NOT_RENAMED.take();
                round_says.send(Round::Done).unwrap();
                rewritten
            })
        };
        crate::rotation::RECORDED.set(Some(Box::new(move || {
            run.send(()).unwrap();
            if start_hears.recv().unwrap() == Round::Writing {
                // The start's own write lets the round's rename go first.
                crate::storage::WRITTEN_NOT_RENAMED.set(Some(Box::new(move || {
                    go_on.send(()).unwrap();
                    while start_hears.recv().unwrap() != Round::Done {}
                })));
            }
        })));
        let started = root.rotate_instance_key(Some("instance-2"));
        assert!(crate::rotation::RECORDED.take().is_none(), "the start reached the hook");
        crate::storage::WRITTEN_NOT_RENAMED.take();
        let rewritten = round.join().unwrap();
        let started = started.expect("the start is answered");
        rewritten.expect("the round goes on without an error");
        assert_eq!(started.state, RotationState::Rewriting);
        assert_eq!(started.old_key_id, "instance");
        assert!(started.environments_total > 1, "the shard and the catalog: {started:?}");

        while engine.run_key_rotations().unwrap() > 0 {}
        engine.run_pending_purges().unwrap();
        let done = root.instance_key_rotation().unwrap();
        assert_eq!(done.state, RotationState::Done);
        assert_eq!(done.environments_done, done.environments_total);
        assert!(dirs.ring.get("instance").unwrap().is_none(), "the old key is destroyed");
        assert_recalled(&engine, ns, 20);
    }
    let format: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dirs.data.join("storage.json")).unwrap()).unwrap();
    assert_eq!(format["encryption"]["instance_key_id"], "instance-2");
    let engine = dirs.open();
    assert_recalled(&engine, ns, 20);
}
