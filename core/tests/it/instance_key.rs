//! Rotation of the instance key, online: the key of the catalog, the audit log, the shared
//! files of `logical` tenants and the files of tenants without a key of their own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use memsilo::keyring::{KeyProvider, KeyringDir};

use crate::keys::files_containing;
use crate::tenant_keys::memory_count;
use memsilo::{
    CreateTenant, Engine, ErrorCode, HashEmbedder, IsolationMode, NamespaceOptions, Options,
    RotationState, StoreMemory,
};

fn options(keyring: Option<&Path>) -> Options {
    Options {
        background: false,
        embedder: Arc::new(HashEmbedder::new(32)),
        keyring: keyring.map(Path::to_path_buf),
        ..Options::default()
    }
}

/// Tenants of each kind with memories: `logical` (shared shards), `physical` and `hybrid`
/// without a key of their own (under the instance key), and `hybrid` with its own key (not
/// touched by the instance key's rotation). Answers the namespaces.
fn tenants_with_data(engine: &Engine) -> Vec<&'static str> {
    let root = engine.root();
    let kinds = [
        ("shared", IsolationMode::Logical, None, "shared_ns"),
        ("phys", IsolationMode::Physical, None, "phys_ns"),
        ("hyb", IsolationMode::Hybrid, None, "hyb_ns"),
        ("own", IsolationMode::Hybrid, Some("own-key"), "own_ns"),
    ];
    for (name, mode, key, ns) in kinds {
        let t = root
            .create_tenant(CreateTenant {
                name: name.into(),
                isolation_mode: Some(mode),
                encryption_key_id: key.map(Into::into),
                ..Default::default()
            })
            .unwrap()
            .tenant;
        let opts = NamespaceOptions { tenant_id: Some(t.id.clone()), ..Default::default() };
        root.create_namespace(ns, opts).unwrap();
        for i in 0..10 {
            root.store_memory(StoreMemory {
                namespace: Some(ns.into()),
                ..StoreMemory::text(format!("confidential {ns} {i}"))
            })
            .unwrap();
        }
    }
    kinds.iter().map(|k| k.3).collect()
}

fn instance_key_id(data: &Path) -> String {
    let format: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("storage.json")).unwrap()).unwrap();
    format["encryption"]["instance_key_id"].as_str().unwrap().to_owned()
}

/// The key id each environment of the data directory records, by directory.
fn recorded_keys(data: &Path) -> Vec<(PathBuf, Option<String>)> {
    let mut dirs = vec![data.join("catalog")];
    for kind in ["shards", "tenants", "namespaces"] {
        if let Ok(entries) = std::fs::read_dir(data.join(kind)) {
            dirs.extend(entries.flatten().map(|e| e.path()));
        }
    }
    dirs.into_iter()
        .filter(|d| d.join("data.mdb").exists())
        .map(|d| {
            let id = std::fs::read(d.join("encryption.json")).ok().map(|b| {
                let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
                v["key_id"].as_str().unwrap().to_owned()
            });
            (d, id)
        })
        .collect()
}

#[test]
fn the_instance_key_is_rotated_online_then_the_old_one_is_destroyed() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    let ring = KeyringDir::open(&keys, None).unwrap();
    let namespaces = {
        let engine = Engine::open(&data, options(Some(&keys))).unwrap();
        tenants_with_data(&engine)
    };
    // An old backup, taken before the rotation.
    let backup = tmp.path().join("backup");
    copy_dir(&data, &backup);

    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    let root = engine.root();
    let started = root.rotate_instance_key(Some("instance-2")).unwrap();
    assert_eq!(started.state, RotationState::Rewriting);
    assert_eq!(
        (started.old_key_id.as_str(), started.new_key_id.as_str()),
        ("instance", "instance-2")
    );
    // The shards, the physical and hybrid files without a key of their own, and the catalog;
    // not the file of the tenant with its own key.
    let under_old = recorded_keys(&data)
        .into_iter()
        .filter(|(_, id)| id.as_deref().is_none_or(|id| id == "instance"))
        .count() as u64;
    assert!(under_old >= 4, "{:?}", recorded_keys(&data));
    assert_eq!((started.environments_total, started.environments_done), (under_old, 0));
    // The directory records the new instance key at once; both keys exist meanwhile.
    assert_eq!(instance_key_id(&data), "instance-2");
    assert!(ring.get("instance").unwrap().is_some() && ring.get("instance-2").unwrap().is_some());
    // A second rotation waits for the first, and no tenant can take the new key.
    let e = root.rotate_instance_key(Some("instance-3")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict, "{e}");
    assert!(ring.get("instance-3").unwrap().is_none(), "the refused rotation's key is gone");
    let e = root
        .create_tenant(CreateTenant {
            name: "thief".into(),
            isolation_mode: Some(IsolationMode::Hybrid),
            encryption_key_id: Some("instance-2".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict, "{e}");

    // The engine keeps working meanwhile; new files are under the new key at once.
    root.store_memory(StoreMemory {
        namespace: Some("shared_ns".into()),
        ..StoreMemory::text("written during the rotation")
    })
    .unwrap();
    let phys = root.list_tenants(memsilo::Page::default(), None, None).unwrap();
    let phys = phys.items.iter().find(|t| t.tenant.name == "phys").unwrap().tenant.id.clone();
    root.create_namespace(
        "phys_new",
        NamespaceOptions { tenant_id: Some(phys), ..Default::default() },
    )
    .unwrap();
    root.store_memory(StoreMemory {
        namespace: Some("phys_new".into()),
        ..StoreMemory::text("confidential new file")
    })
    .unwrap();
    let polled = root.instance_key_rotation().unwrap();
    assert_eq!(polled.environments_total, under_old, "a file made meanwhile is not to rewrite");

    assert_eq!(engine.run_key_rotations().unwrap() as u64, under_old);
    let done = root.instance_key_rotation().unwrap();
    assert_eq!(done.state, RotationState::Done);
    assert_eq!((done.environments_total, done.environments_done), (under_old, under_old));
    assert!(done.finished_at.is_some());
    for ns in &namespaces {
        let want = if *ns == "shared_ns" { 11 } else { 10 };
        assert_eq!(memory_count(&engine, ns), want, "{ns}: every memory is still there");
    }
    // Every file is under the new key but the tenant's own; none is left beside its old one.
    for (dir, id) in recorded_keys(&data) {
        let want = if id.as_deref() == Some("own-key") { "own-key" } else { "instance-2" };
        assert_eq!(id.as_deref(), Some(want), "{}", dir.display());
        assert!(!dir.join("rekeying").exists());
    }
    assert!(!data.join("catalog").join("rekeyed.json").exists());
    for marker in ["confidential", "written during the rotation"] {
        assert!(files_containing(&data, marker.as_bytes()).is_empty(), "{marker}");
    }
    // The old key goes with the purge round that follows; the others stay.
    engine.run_pending_purges().unwrap();
    assert!(ring.get("instance").unwrap().is_none(), "the old instance key is destroyed");
    assert!(ring.get("instance-2").unwrap().is_some() && ring.get("own-key").unwrap().is_some());
    assert_eq!(engine.run_key_rotations().unwrap(), 0, "nothing is left to do");
    drop(root);
    drop(engine);

    // Reopened, everything is read under the new key (the old one no longer exists).
    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    for ns in namespaces.iter().chain(&["phys_new"]) {
        assert!(memory_count(&engine, ns) >= 1, "{ns}");
    }
    drop(engine);
    // The backup taken before the rotation cannot be read: its key is gone.
    let e = Engine::open(&backup, options(Some(&keys))).unwrap_err();
    assert!(e.to_string().contains("(key id instance): the key is not in keyring"), "{e}");
}

#[test]
fn a_rotation_stopped_after_each_file_including_the_catalog_is_finished_on_later_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    let ring = KeyringDir::open(&keys, None).unwrap();
    {
        let engine = Engine::open(&data, options(Some(&keys))).unwrap();
        tenants_with_data(&engine);
        engine.root().rotate_instance_key(None).unwrap();
    }
    let mut catalog_staged = false;
    let mut opens = 0;
    loop {
        opens += 1;
        assert!(opens < 20, "the rotation never finishes");
        let engine = Engine::open(&data, options(Some(&keys))).unwrap();
        assert!(!data.join("catalog").join("rekeyed.json").exists(), "settled at open");
        for ns in ["shared_ns", "phys_new", "hyb_ns", "own_ns"].iter().filter(|n| **n != "phys_new")
        {
            assert_eq!(memory_count(&engine, ns), 10, "{ns} after {opens} opens");
        }
        if engine.root().instance_key_rotation().unwrap().state == RotationState::Done {
            break;
        }
        // The new file is complete and recorded staged; the process stops before it replaces
        // the old one.
        engine.stop_key_rotations_after_staging();
        if engine.run_key_rotations().is_ok() {
            // Nothing was left to rewrite (the catalog was moved into place at this open).
            assert_eq!(engine.root().instance_key_rotation().unwrap().state, RotationState::Done);
        }
        catalog_staged |= data.join("catalog").join("rekeyed.json").exists();
    }
    assert!(catalog_staged, "the catalog's own new file was left staged once");
    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    engine.run_pending_purges().unwrap();
    let new_key = engine.root().instance_key_rotation().unwrap().new_key_id;
    assert!(new_key.starts_with("instance."), "the default id is instance.<ms>: {new_key}");
    assert!(ring.get("instance").unwrap().is_none());
    assert_eq!(instance_key_id(&data), new_key);
    assert_eq!(memory_count(&engine, "shared_ns"), 10);
}

/// Files a queued purge erases — a deleted `physical` namespace's, a deleted `hybrid`
/// tenant's — are not rewritten by the rotation: they stay under the old key until their purge
/// erases them, which comes before the old key's destruction; once the key is gone no file
/// under it is left.
#[test]
fn the_rotation_leaves_deleted_files_to_their_purge_which_erases_them_before_the_old_key_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    let ring = KeyringDir::open(&keys, None).unwrap();
    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    let namespaces = tenants_with_data(&engine);
    let root = engine.root();
    let tenants = root.list_tenants(memsilo::Page::default(), None, None).unwrap();
    let hyb = tenants.items.iter().find(|t| t.tenant.name == "hyb").unwrap().tenant.id.clone();
    root.delete_namespace("phys_ns").unwrap();
    root.delete_tenant(&hyb).unwrap();
    let kept: Vec<&str> =
        namespaces.iter().copied().filter(|ns| !["phys_ns", "hyb_ns"].contains(ns)).collect();

    root.rotate_instance_key(Some("instance-2")).unwrap();
    engine.run_key_rotations().unwrap();
    let done = root.instance_key_rotation().unwrap();
    assert_eq!(done.state, RotationState::Done);
    assert_eq!(done.environments_done, done.environments_total);
    // The two deleted files are as they were: under the old key, waiting for their purge.
    let under_old: Vec<PathBuf> = recorded_keys(&data)
        .into_iter()
        .filter(|(_, id)| id.as_deref().is_none_or(|id| id == "instance"))
        .map(|(dir, _)| dir)
        .collect();
    assert_eq!(under_old.len(), 2, "only the deleted files: {under_old:?}");
    assert!(under_old.iter().any(|d| d.ends_with(Path::new("tenants").join(&hyb))));
    assert!(under_old.iter().any(|d| d.parent().unwrap().ends_with("namespaces")));
    assert!(ring.get("instance").unwrap().is_some(), "the old key outlives their purge");

    engine.run_pending_purges().unwrap();
    for dir in &under_old {
        assert!(!dir.exists(), "{} is erased by its purge", dir.display());
    }
    assert!(ring.get("instance").unwrap().is_none(), "then the old key is destroyed");
    for (dir, id) in recorded_keys(&data) {
        assert!(
            id.as_deref().is_some_and(|id| id != "instance"),
            "{} is under {id:?}",
            dir.display()
        );
    }
    drop(root);
    drop(engine);
    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    for ns in kept {
        assert_eq!(memory_count(&engine, ns), 10, "{ns}");
    }
}

#[test]
fn only_root_rotates_the_instance_key_and_only_of_an_encrypted_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    let plain = Engine::open(tmp.path().join("plain"), options(None)).unwrap();
    let e = plain.root().rotate_instance_key(None).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("not encrypted"), "{e}");

    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    let root = engine.root();
    let e = root.instance_key_rotation().unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "never rotated: {e}");
    for bad in ["../x", "instance"] {
        let e = root.rotate_instance_key(Some(bad)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{bad}");
        assert!(e.to_string().starts_with("new_key_id: "), "{e}");
    }
    let t = root
        .create_tenant(CreateTenant { name: "acme".into(), ..Default::default() })
        .unwrap()
        .tenant;
    let made = root.create_key(memsilo::CreateKey::tenant_role("k", t.id, memsilo::Role::Admin));
    let admin = engine.scoped(&made.unwrap().key).unwrap();
    assert_eq!(admin.rotate_instance_key(None).unwrap_err().code(), ErrorCode::Forbidden);
    assert_eq!(admin.instance_key_rotation().unwrap_err().code(), ErrorCode::Forbidden);
    // By the operation table, as every binding and the HTTP server call it.
    let started =
        root.call("rotate_instance_key", serde_json::json!({ "new_key_id": "by-table" })).unwrap();
    assert_eq!(started.value["new_key_id"], "by-table");
    let e = root.call("rotate_instance_key", serde_json::json!({ "new_key": "x" })).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    let log = root
        .list_audit(memsilo::ListAudit { tenant_id: "instance".into(), ..Default::default() })
        .unwrap();
    assert!(log.entries.iter().any(|e| e.action == "rotate_instance_key" && e.result == "ok"));
    engine.run_key_rotations().unwrap();
    let polled = root.call("get_instance_key_rotation", serde_json::json!({})).unwrap();
    assert_eq!(polled.value["state"], "done");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
