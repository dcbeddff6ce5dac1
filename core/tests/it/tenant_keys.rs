//! Tenants' own encryption keys: set at creation (physical and hybrid only, with a keyring),
//! made in the keyring if absent, and destroyed after the tenant's data (crypto-shredding),
//! on the purge's restart path too.

use std::path::Path;
use std::sync::Arc;

use memsilo::keyring::{KeyProvider, KeyringDir};

use crate::keys::files_containing;
use memsilo::{
    CreateTenant, Engine, ErrorCode, HashEmbedder, IsolationMode, NamespaceOptions, Options, Page,
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

fn tenant(name: &str, mode: IsolationMode, key: Option<&str>) -> CreateTenant {
    CreateTenant {
        name: name.into(),
        isolation_mode: Some(mode),
        encryption_key_id: key.map(Into::into),
        ..Default::default()
    }
}

#[test]
fn only_physical_and_hybrid_tenants_get_a_key_and_only_with_a_keyring() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));

    // No keyring configured: refused, saying one is needed; nothing is created.
    let engine = Engine::open(&data, options(None)).unwrap();
    let e = engine
        .root()
        .create_tenant(tenant("acme", IsolationMode::Physical, Some("acme-key")))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().starts_with("encryption_key_id: a keyring is needed"), "{e}");
    assert!(engine.root().list_tenants(Page::default(), None, None).unwrap().items.is_empty());
    drop(engine);

    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    let root = engine.root();
    let ring = KeyringDir::open(&keys, None).unwrap();
    // A logical tenant shares the instance key.
    let e = root.create_tenant(tenant("shared", IsolationMode::Logical, Some("k1"))).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().starts_with("encryption_key_id: only physical and hybrid"), "{e}");
    assert!(ring.get("k1").unwrap().is_none(), "no key made for a refused tenant");
    // A bad id names the field; the instance key's id is not a tenant's.
    for bad in ["../etc", "instance"] {
        let e = root.create_tenant(tenant("bad_id", IsolationMode::Hybrid, Some(bad))).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{bad}");
        assert!(e.to_string().starts_with("encryption_key_id: "), "{e}");
    }

    // Physical and hybrid tenants get their key, made in the keyring.
    let acme =
        root.create_tenant(tenant("acme", IsolationMode::Physical, Some("acme-key"))).unwrap();
    assert_eq!(acme.tenant.encryption_key_id.as_deref(), Some("acme-key"));
    let made = ring.get("acme-key").unwrap().expect("the key is in the keyring");
    let got = root.get_tenant(&acme.tenant.id).unwrap();
    assert_eq!(got.tenant.encryption_key_id.as_deref(), Some("acme-key"));
    let listed = root.list_tenants(Page::default(), None, None).unwrap();
    assert_eq!(listed.items[0].tenant.encryption_key_id.as_deref(), Some("acme-key"));
    let json = serde_json::to_value(&got).unwrap();
    assert_eq!(json["encryption_key_id"], "acme-key");

    // A key already in the keyring is used as it is.
    let brought = ring.create("globex-key").unwrap();
    let globex =
        root.create_tenant(tenant("globex", IsolationMode::Hybrid, Some("globex-key"))).unwrap();
    assert_eq!(globex.tenant.encryption_key_id.as_deref(), Some("globex-key"));
    assert_eq!(ring.get("globex-key").unwrap(), Some(brought));

    // Two tenants never share a key (deleting one would shred the other).
    let e =
        root.create_tenant(tenant("copycat", IsolationMode::Hybrid, Some("acme-key"))).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict);
    assert!(e.to_string().contains("key acme-key is the key of tenant acme"), "{e}");
    assert_eq!(ring.get("acme-key").unwrap(), Some(made), "the refusal left acme's key alone");

    // A tenant refused after its key was made (a taken name) takes the key with it.
    let e =
        root.create_tenant(tenant("acme", IsolationMode::Hybrid, Some("fresh-key"))).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict);
    assert!(ring.get("fresh-key").unwrap().is_none(), "no key is left for a tenant not made");

    // Tenants without a key of their own still work with a keyring.
    let plain = root.create_tenant(tenant("plain", IsolationMode::Logical, None)).unwrap();
    assert_eq!(plain.tenant.encryption_key_id, None);
}

#[test]
fn a_keyring_inside_the_data_directory_is_refused_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let e = Engine::open(&data, options(Some(&data.join("keys")))).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("keys are never written next to the data"), "{e}");
    assert!(!data.join("keys").exists());
}

/// A keyring directory that says it keeps each key where the environment keyring would
/// (`MEMSILO_KEY_<ID>`), without touching this process's environment.
struct VariableNamedRing(KeyringDir);

impl KeyProvider for VariableNamedRing {
    fn get(&self, id: &str) -> memsilo::Result<Option<memsilo::Key>> {
        self.0.get(id)
    }
    fn create(&self, id: &str) -> memsilo::Result<memsilo::Key> {
        self.0.create(id)
    }
    fn destroy(&self, id: &str) -> memsilo::Result<()> {
        self.0.destroy(id)
    }
    fn describe(&self) -> String {
        "environment (MEMSILO_KEY_<ID>)".into()
    }
    fn location(&self, id: &str) -> memsilo::Result<String> {
        Ok(format!("variable {}", memsilo::keyring::EnvKeys::variable(id)?))
    }
}

#[test]
fn key_ids_that_one_environment_variable_would_hold_are_refused_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    // Made where each id is a file of its own: two tenants whose ids differ only in '-'/'.'.
    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    let acme = tenant_with_data(&engine, IsolationMode::Hybrid, "acme-key");
    let other = engine
        .root()
        .create_tenant(tenant("other", IsolationMode::Physical, Some("acme.key")))
        .unwrap()
        .tenant
        .id;
    drop(engine);

    // With a provider that keeps both in MEMSILO_KEY_ACME_KEY, the directory does not open.
    let by_variable = || Options {
        keyring: None,
        key_provider: Some(Arc::new(VariableNamedRing(KeyringDir::open(&keys, None).unwrap()))),
        ..options(None)
    };
    let e = Engine::open(&data, by_variable()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Internal);
    let text = e.to_string();
    assert!(
        text.contains("keys acme-key and acme.key are both kept in variable MEMSILO_KEY_ACME_KEY"),
        "{text}"
    );

    // Once one of them is gone, it opens, and a new id colliding with one in use is refused
    // at creation and at rotation, naming both ids; nothing is made.
    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    engine.root().delete_tenant(&other).unwrap();
    engine.run_pending_purges().unwrap();
    drop(engine);
    let engine = Engine::open(&data, by_variable()).unwrap();
    let root = engine.root();
    for colliding in ["ACME_KEY", "Acme.Key"] {
        let e = root
            .create_tenant(tenant("again", IsolationMode::Hybrid, Some(colliding)))
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Conflict, "{colliding}");
        assert!(
            e.to_string().contains(&format!("keys acme-key and {colliding} are both kept")),
            "{e}"
        );
        let e = root.rotate_tenant_key(&acme, Some(colliding)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Conflict, "{colliding}");
    }
    // The instance key's variable is taken too.
    let e =
        root.create_tenant(tenant("again", IsolationMode::Hybrid, Some("INSTANCE"))).unwrap_err();
    assert!(e.to_string().contains("keys instance and INSTANCE are both kept"), "{e}");
    assert!(root.list_tenants(Page::default(), None, None).unwrap().items.len() == 1);
    root.create_tenant(tenant("again", IsolationMode::Hybrid, Some("acme-key-2"))).unwrap();
}

/// Copies directory `from` to `to` (the tenant's files as a backup would hold them).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn tenant_with_data(engine: &Engine, mode: IsolationMode, key: &str) -> String {
    let root = engine.root();
    let t = root.create_tenant(tenant("shredded", mode, Some(key))).unwrap().tenant;
    let ns = NamespaceOptions { tenant_id: Some(t.id.clone()), ..Default::default() };
    root.create_namespace("secrets", ns).unwrap();
    for i in 0..20 {
        root.store_memory(StoreMemory {
            namespace: Some("secrets".into()),
            ..StoreMemory::text(format!("patient record {i}"))
        })
        .unwrap();
    }
    t.id
}

#[test]
fn deleting_a_tenant_destroys_its_key_so_an_old_backup_cannot_be_read() {
    for mode in [IsolationMode::Hybrid, IsolationMode::Physical] {
        let tmp = tempfile::tempdir().unwrap();
        let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
        let ring = KeyringDir::open(&keys, None).unwrap();
        let id = {
            let engine = Engine::open(&data, options(Some(&keys))).unwrap();
            let id = tenant_with_data(&engine, mode, "shred-me");
            // Another tenant's key is not touched.
            engine.root().create_tenant(tenant("bystander", mode, Some("keep-me"))).unwrap();
            id
        };
        // An old backup: a copy of the whole data directory, taken before the deletion.
        let backup = tmp.path().join("old-backup");
        copy_dir(&data, &backup);
        assert!(
            files_containing(&backup, b"patient record").is_empty(),
            "{mode:?}: the tenant's content is encrypted in the backup"
        );

        let engine = Engine::open(&data, options(Some(&keys))).unwrap();
        engine.root().delete_tenant(&id).unwrap();
        // Until the purge has removed the data, the key stays (the purge may need it).
        assert!(ring.get("shred-me").unwrap().is_some(), "{mode:?}");
        engine.run_pending_purges().unwrap();
        assert!(ring.get("shred-me").unwrap().is_none(), "{mode:?}: the key is destroyed");
        assert!(!keys.join("shred-me").exists(), "{mode:?}: no key file is left");
        assert!(ring.get("keep-me").unwrap().is_some(), "{mode:?}: another tenant's key stays");
        drop(engine);

        // The backup, opened with the same keyring: the tenant is listed there, and its data
        // cannot be read by anyone: the only key that decrypts it is gone.
        let read_backup = || {
            let old = Engine::open(&backup, options(Some(&keys))).unwrap();
            assert!(old.root().get_tenant(&id).is_ok(), "{mode:?}");
            let list =
                memsilo::ListMemories { namespace: Some("secrets".into()), ..Default::default() };
            old.root().list_memories(list).unwrap_err().to_string()
        };
        let e = read_backup();
        assert!(e.contains("key id shred-me"), "{mode:?}: names the key: {e}");
        assert!(e.contains("is not in keyring directory"), "{mode:?}: {e}");
        // The destroyed key's id is free again once its destruction is done; a new key by
        // that id does not decrypt the old files either.
        let engine = Engine::open(&data, options(Some(&keys))).unwrap();
        engine.root().create_tenant(tenant("reborn", mode, Some("shred-me"))).unwrap();
        drop(engine);
        let e = read_backup();
        assert!(e.contains("does not decrypt"), "{mode:?}: {e}");
    }
}

#[test]
fn a_key_destruction_interrupted_by_a_crash_is_finished_on_the_next_open() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    let ring = KeyringDir::open(&keys, None).unwrap();
    {
        let engine = Engine::open(&data, options(Some(&keys))).unwrap();
        let id = tenant_with_data(&engine, IsolationMode::Hybrid, "shred-later");
        engine.root().delete_tenant(&id).unwrap();
        // While the destruction is pending, the id cannot be taken again.
        let e = engine
            .root()
            .create_tenant(tenant("too_soon", IsolationMode::Hybrid, Some("shred-later")))
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Conflict);
        assert!(e.to_string().contains("is being destroyed"), "{e}");
        // The process stops before the purge ran.
    }
    assert!(ring.get("shred-later").unwrap().is_some());
    // Without a keyring the directory (encrypted: it was created with one) does not open, so
    // nothing is purged and the key waits.
    let e = Engine::open(&data, options(None)).unwrap_err();
    assert!(matches!(e, memsilo::Error::EncryptionKey { .. }), "{e:?}");
    assert!(ring.get("shred-later").unwrap().is_some());
    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    // Every job of the deletion is still to do: the data's purges, then the key's destruction.
    assert_eq!(engine.run_pending_purges().unwrap(), 3);
    assert!(ring.get("shred-later").unwrap().is_none());
    assert_eq!(engine.run_pending_purges().unwrap(), 0);
}

/// How many memories `namespace` holds (listed as root: read through its key).
pub(crate) fn memory_count(engine: &Engine, namespace: &str) -> usize {
    engine
        .root()
        .list_memories(memsilo::ListMemories {
            namespace: Some(namespace.into()),
            ..Default::default()
        })
        .unwrap()
        .memories
        .len()
}

#[test]
fn a_key_rotation_rewrites_the_tenants_files_online_then_destroys_the_old_key() {
    for mode in [IsolationMode::Hybrid, IsolationMode::Physical] {
        let tmp = tempfile::tempdir().unwrap();
        let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
        let engine = Engine::open(&data, options(Some(&keys))).unwrap();
        let ring = KeyringDir::open(&keys, None).unwrap();
        let root = engine.root();
        let id = tenant_with_data(&engine, mode, "old-key");

        let started = root.rotate_tenant_key(&id, Some("new-key")).unwrap();
        assert_eq!(started.state, RotationState::Rewriting, "{mode:?}");
        assert_eq!(
            (started.old_key_id.as_deref(), started.new_key_id.as_str()),
            (Some("old-key"), "new-key")
        );
        assert_eq!((started.environments_total, started.environments_done), (1, 0), "{mode:?}");
        // The tenant's key is the new one at once; both keys exist while files are rewritten.
        assert_eq!(
            root.get_tenant(&id).unwrap().tenant.encryption_key_id.as_deref(),
            Some("new-key")
        );
        assert!(ring.get("old-key").unwrap().is_some() && ring.get("new-key").unwrap().is_some());
        // A second rotation waits for the first.
        let e = root.rotate_tenant_key(&id, Some("newer-key")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Conflict, "{e}");
        assert!(ring.get("newer-key").unwrap().is_none(), "the refused rotation's key is gone");
        // The tenant keeps working meanwhile.
        root.store_memory(StoreMemory {
            namespace: Some("secrets".into()),
            ..StoreMemory::text("written during the rotation")
        })
        .unwrap();

        assert_eq!(engine.run_key_rotations().unwrap(), 1, "{mode:?}");
        let done = root.key_rotation(&id).unwrap();
        assert_eq!(done.state, RotationState::Done, "{mode:?}");
        assert_eq!((done.environments_total, done.environments_done), (1, 1));
        assert!(done.finished_at.is_some());
        assert_eq!(memory_count(&engine, "secrets"), 21, "{mode:?}: every memory is still there");
        let own = match mode {
            IsolationMode::Hybrid => data.join("tenants").join(&id),
            _ => {
                std::fs::read_dir(data.join("namespaces")).unwrap().next().unwrap().unwrap().path()
            }
        };
        let record = std::fs::read_to_string(own.join("encryption.json")).unwrap();
        assert!(
            record.contains("\"new-key\""),
            "{mode:?}: the file is under the new key: {record}"
        );
        assert!(!own.join("rekeying").exists());
        assert!(files_containing(&data, b"written during the rotation").is_empty(), "{mode:?}");
        // The old key goes with the purge round that follows; the new one stays.
        engine.run_pending_purges().unwrap();
        assert!(ring.get("old-key").unwrap().is_none(), "{mode:?}: the old key is destroyed");
        assert!(ring.get("new-key").unwrap().is_some());
        assert_eq!(engine.run_key_rotations().unwrap(), 0, "nothing is left to do");
        // Reopened, the data is read under the new key.
        drop(root);
        drop(engine);
        let engine = Engine::open(&data, options(Some(&keys))).unwrap();
        assert_eq!(memory_count(&engine, "secrets"), 21, "{mode:?}");
        // Deleting the tenant destroys the new key too.
        engine.root().delete_tenant(&id).unwrap();
        engine.run_pending_purges().unwrap();
        assert!(ring.get("new-key").unwrap().is_none(), "{mode:?}");
    }
}

#[test]
fn only_admins_rotate_and_only_tenants_with_files_of_their_own() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    let root = engine.root();
    let id = tenant_with_data(&engine, IsolationMode::Hybrid, "admin-key");
    let shared = root.create_tenant(tenant("shared_rows", IsolationMode::Logical, None)).unwrap();
    let e = root.rotate_tenant_key(&shared.tenant.id, None).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("logical tenants share the instance key"), "{e}");
    let e = root.key_rotation(&id).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "never rotated: {e}");

    let key = |role| {
        let made = root.create_key(memsilo::CreateKey::tenant_role("k", id.clone(), role)).unwrap();
        engine.scoped(&made.key).unwrap()
    };
    let viewer = key(memsilo::Role::Viewer);
    assert_eq!(viewer.rotate_tenant_key(&id, None).unwrap_err().code(), ErrorCode::Forbidden);
    let admin = key(memsilo::Role::Admin);
    // By the operation table, as every binding and the HTTP server call it: audited.
    let started = admin.call("rotate_tenant_key", serde_json::json!({ "tenant_id": id })).unwrap();
    let new_key = started.value["new_key_id"].as_str().unwrap().to_owned();
    assert!(new_key.starts_with("shredded."), "the default id is <tenant name>.<ms>: {new_key}");
    let polled = admin.call("get_key_rotation", serde_json::json!({ "tenant_id": id })).unwrap();
    assert_eq!(polled.value["state"], "rewriting");
    let log = root
        .list_audit(memsilo::ListAudit { tenant_id: id.clone(), ..Default::default() })
        .unwrap();
    assert!(
        log.entries.iter().any(|e| e.action == "rotate_tenant_key" && e.result == "ok"),
        "the rotation is in the tenant's audit log"
    );
    engine.run_key_rotations().unwrap();
    assert_eq!(admin.key_rotation(&id).unwrap().state, RotationState::Done);
}

#[test]
fn a_rotation_stopped_after_its_new_file_is_complete_is_finished_on_the_next_open() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    let ring = KeyringDir::open(&keys, None).unwrap();
    let id = {
        let engine = Engine::open(&data, options(Some(&keys))).unwrap();
        let id = tenant_with_data(&engine, IsolationMode::Hybrid, "before-crash");
        engine.root().rotate_tenant_key(&id, Some("after-crash")).unwrap();
        // The new file is complete and recorded `staged`; the process stops before it
        // replaces the old one.
        engine.stop_key_rotations_after_staging();
        assert!(engine.run_key_rotations().is_err());
        assert!(data.join("tenants").join(&id).join("rekeying").join("data.mdb").exists());
        id
    };
    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    assert!(!data.join("tenants").join(&id).join("rekeying").exists(), "moved into place at open");
    assert_eq!(engine.root().key_rotation(&id).unwrap().environments_done, 1);
    assert_eq!(memory_count(&engine, "secrets"), 20);
    engine.run_key_rotations().unwrap();
    assert_eq!(engine.root().key_rotation(&id).unwrap().state, RotationState::Done);
    engine.run_pending_purges().unwrap();
    assert!(ring.get("before-crash").unwrap().is_none());
    assert_eq!(memory_count(&engine, "secrets"), 20);
}

#[test]
fn a_rotation_stopped_before_its_new_file_is_complete_starts_that_file_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    let id = tenant_with_data(&engine, IsolationMode::Physical, "first-key");
    engine.root().rotate_tenant_key(&id, Some("second-key")).unwrap();
    // The catalog write that records the new file fails (a full disk): the new file is
    // dropped and the environment stays under the old key.
    engine.fail_next_catalog_commits(1);
    assert!(engine.run_key_rotations().is_err());
    assert_eq!(engine.root().key_rotation(&id).unwrap().environments_done, 0);
    assert_eq!(memory_count(&engine, "secrets"), 20);
    drop(engine);
    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    assert_eq!(engine.run_key_rotations().unwrap(), 1);
    assert_eq!(engine.root().key_rotation(&id).unwrap().state, RotationState::Done);
    assert_eq!(memory_count(&engine, "secrets"), 20);
}

#[test]
fn a_tenant_under_the_instance_key_moves_to_a_key_of_its_own_and_the_instance_key_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    let ring = KeyringDir::open(&keys, None).unwrap();
    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    let root = engine.root();
    let t = root.create_tenant(tenant("instance_keyed", IsolationMode::Hybrid, None)).unwrap();
    let ns = NamespaceOptions { tenant_id: Some(t.tenant.id.clone()), ..Default::default() };
    root.create_namespace("moved", ns).unwrap();
    root.store_memory(StoreMemory {
        namespace: Some("moved".into()),
        ..StoreMemory::text("under the instance key first")
    })
    .unwrap();
    let started = root.rotate_tenant_key(&t.tenant.id, Some("own-at-last")).unwrap();
    assert_eq!(started.old_key_id, None);
    engine.run_key_rotations().unwrap();
    engine.run_pending_purges().unwrap();
    assert!(ring.get("instance").unwrap().is_some(), "the instance key is never destroyed");
    drop(root);
    drop(engine);
    let engine = Engine::open(&data, options(Some(&keys))).unwrap();
    assert_eq!(memory_count(&engine, "moved"), 1);
}
