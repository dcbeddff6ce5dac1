//! Tenants' own encryption keys: set at creation (physical and hybrid only, with a keyring),
//! made in the keyring if absent, and destroyed after the tenant's data (crypto-shredding),
//! on the purge's restart path too.

use std::path::Path;
use std::sync::Arc;

use memsilo::keyring::{KeyProvider, KeyringDir};
use memsilo::{
    CreateTenant, Engine, ErrorCode, HashEmbedder, IsolationMode, NamespaceOptions, Options, Page,
    StoreMemory,
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
fn deleting_a_tenant_destroys_its_key_after_its_data() {
    for mode in [IsolationMode::Hybrid, IsolationMode::Physical] {
        let tmp = tempfile::tempdir().unwrap();
        let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
        let engine = Engine::open(&data, options(Some(&keys))).unwrap();
        let ring = KeyringDir::open(&keys, None).unwrap();
        let id = tenant_with_data(&engine, mode, "shred-me");
        // Another tenant's key is not touched.
        engine.root().create_tenant(tenant("bystander", mode, Some("keep-me"))).unwrap();
        let own = match mode {
            IsolationMode::Hybrid => data.join("tenants").join(&id),
            _ => data.join("namespaces"),
        };
        let backup = tmp.path().join("old-backup");
        copy_dir(&own, &backup);

        engine.root().delete_tenant(&id).unwrap();
        // Until the purge has removed the data, the key stays (the purge may need it).
        assert!(ring.get("shred-me").unwrap().is_some(), "{mode:?}");
        engine.run_pending_purges().unwrap();
        assert!(ring.get("shred-me").unwrap().is_none(), "{mode:?}: the key is destroyed");
        assert!(!keys.join("shred-me").exists(), "{mode:?}: no key file is left");
        assert!(ring.get("keep-me").unwrap().is_some(), "{mode:?}: another tenant's key stays");
        // The old backup's files are still there, and no key to read them is.
        assert!(std::fs::read_dir(&backup).unwrap().next().is_some());
        // The destroyed key's id is free again only once its destruction is done.
        engine.root().create_tenant(tenant("reborn", mode, Some("shred-me"))).unwrap();
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
