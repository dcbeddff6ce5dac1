//! A key rotation that rewrites a namespace's environment while its vector index is being
//! built (the build opened the index under the old key): forced with the index build's test
//! hook, so the rotation runs, to its end and the old key's destruction, between the build's
//! opening of the index and its writes.

use std::path::Path;
use std::sync::Arc;

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
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    let ring = KeyringDir::open(&keys, None).unwrap();
    let ns = "notes";
    {
        let engine = Engine::open(&data, options(&keys)).unwrap();
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
        assert!(ring.get(old_key).unwrap().is_none(), "the old key is destroyed");
        assert_recalled(&engine, ns, 70);
    }
    let engine = Engine::open(&data, options(&keys)).unwrap();
    assert_recalled(&engine, ns, 70);
    assert!(engine.build_vector_indexes().unwrap() > 0, "indexed again under the new key");
    drop(engine);
    let engine = Engine::open(&data, options(&keys)).unwrap();
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
