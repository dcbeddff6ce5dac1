//! Encryption at rest (issue 22): with a key provider, every LMDB file of the data directory
//! is encrypted (the memories' text is nowhere in the files, in every isolation mode), the data
//! reads back after a restart, and a missing, absent or wrong key is a clear error at open.

use std::path::Path;
use std::sync::Arc;

use memsilo::keyring::{KeyProvider, KeyringDir};
use memsilo::{
    CreateTenant, Engine, Error, ErrorCode, HashEmbedder, IsolationMode, NamespaceOptions, Options,
    Recall, StoreMemory,
};

use crate::keys::files_containing;

/// Options with the keyring directory `keyring` (`None`: no key provider).
fn options(keyring: Option<&Path>) -> Options {
    Options {
        background: false,
        embedder: Arc::new(HashEmbedder::new(32)),
        keyring: keyring.map(Path::to_owned),
        ..Options::default()
    }
}

/// A namespace `name` of a new tenant in `mode`, holding memories that carry `marker`.
pub(crate) fn fill(
    engine: &Engine,
    mode: IsolationMode,
    name: &str,
    marker: &str,
    key: Option<&str>,
) {
    let root = engine.root();
    let tenant = root
        .create_tenant(CreateTenant {
            name: format!("tenant_{name}"),
            isolation_mode: Some(mode),
            encryption_key_id: key.map(Into::into),
            ..Default::default()
        })
        .unwrap()
        .tenant;
    root.create_namespace(
        name,
        NamespaceOptions { tenant_id: Some(tenant.id), ..Default::default() },
    )
    .unwrap();
    for i in 0..20 {
        root.store_memory(StoreMemory {
            namespace: Some(name.into()),
            ..StoreMemory::text(format!("{marker} note {i}: the {marker} is kept"))
        })
        .unwrap();
    }
}

/// A namespace of each isolation mode; the last two of tenants with a key of their own.
const MODES: [(IsolationMode, &str, Option<&str>); 5] = [
    (IsolationMode::Logical, "logical_ns", None),
    (IsolationMode::Hybrid, "hybrid_ns", None),
    (IsolationMode::Physical, "physical_ns", None),
    (IsolationMode::Hybrid, "hybrid_own_key", Some("hybrid-key")),
    (IsolationMode::Physical, "physical_own_key", Some("physical-key")),
];

/// Stores marked memories in a namespace of each isolation mode (with a key provider, two of
/// them of tenants with their own keys); returns the marker.
fn populate(dir: &Path, keyring: Option<&Path>) -> String {
    let marker = "ZEBRACORN-7c1e".to_owned();
    let engine = Engine::open(dir, options(keyring)).unwrap();
    for (mode, name, key) in MODES {
        fill(&engine, mode, name, &marker, key.filter(|_| keyring.is_some()));
    }
    marker
}

/// Every namespace recalls its 20 marked memories.
fn assert_readable(engine: &Engine, marker: &str) {
    for (_, name, _) in MODES {
        let hits = engine.root().recall(Recall::text(marker).namespace(name).top_k(100)).unwrap();
        assert_eq!(hits.len(), 20, "{name}");
        assert!(hits.iter().all(|h| h.content.contains(marker)), "{name}");
    }
}

#[test]
fn without_a_key_provider_the_text_is_in_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let marker = populate(dir.path(), None);
    let found = files_containing(dir.path(), marker.as_bytes());
    // The grep works: each kind of environment holds the marker in plain text.
    for part in ["shards", "tenants", "namespaces"] {
        assert!(found.iter().any(|f| f.contains(part)), "{part} not in {found:?}");
    }
    let format = std::fs::read_to_string(dir.path().join("storage.json")).unwrap();
    assert!(!format.contains("encryption"), "{format}");
}

#[test]
fn with_a_key_provider_no_file_holds_the_text_and_it_reads_back_after_a_restart() {
    let (dir, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let marker = populate(dir.path(), Some(keys.path()));
    let found = files_containing(dir.path(), marker.as_bytes());
    assert!(found.is_empty(), "plain text on disk in {found:?}");
    // The directory says it is encrypted, with the key id and cipher, and holds no key.
    let format: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("storage.json")).unwrap()).unwrap();
    assert_eq!(format["encryption"]["cipher"], "aes-256-gcm-siv");
    assert_eq!(format["encryption"]["instance_key_id"], "instance");
    let key = KeyringDir::open(keys.path(), None).unwrap().get("instance").unwrap().unwrap();
    assert!(files_containing(dir.path(), key.as_bytes()).is_empty(), "the key is on disk");
    // Restart: the same keyring opens it.
    let engine = Engine::open(dir.path(), options(Some(keys.path()))).unwrap();
    assert_readable(&engine, &marker);
}

/// The error of opening `dir` with `options`.
fn open_error(dir: &Path, options: Options) -> Error {
    Engine::open(dir, options).expect_err("opened")
}

#[test]
fn an_encrypted_directory_without_its_key_is_refused_at_open_naming_the_key() {
    let (dir, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let marker = populate(dir.path(), Some(keys.path()));

    // No key provider at all.
    let e = open_error(dir.path(), options(None));
    assert_eq!(e.code(), ErrorCode::Internal);
    assert!(
        matches!(&e, Error::EncryptionKey { owner, key_id, .. }
        if owner == "instance" && key_id == "instance"),
        "{e:?}"
    );
    assert!(e.to_string().contains("no key provider"), "{e}");

    // A keyring without the key.
    let empty = tempfile::tempdir().unwrap();
    let e = open_error(dir.path(), options(Some(empty.path())));
    assert!(matches!(&e, Error::EncryptionKey { key_id, .. } if key_id == "instance"), "{e:?}");
    assert!(e.to_string().contains("is not in keyring directory"), "{e}");

    // A keyring with another key by that id: refused, never garbage.
    let other = tempfile::tempdir().unwrap();
    KeyringDir::open(other.path(), None).unwrap().create("instance").unwrap();
    let e = open_error(dir.path(), options(Some(other.path())));
    assert!(matches!(&e, Error::EncryptionKey { key_id, .. } if key_id == "instance"), "{e:?}");
    assert!(e.to_string().contains("does not decrypt"), "{e}");

    // Nothing was harmed: the right keyring still opens it.
    let engine = Engine::open(dir.path(), options(Some(keys.path()))).unwrap();
    assert_readable(&engine, &marker);
}

#[test]
fn each_own_environment_names_its_key_and_a_tenant_key_missing_or_wrong_names_the_tenant() {
    let (dir, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let marker = populate(dir.path(), Some(keys.path()));
    let engine = Engine::open(dir.path(), options(Some(keys.path()))).unwrap();
    let tenant_of = |name: &str| engine.root().get_namespace(name).unwrap().tenant_id.unwrap();
    let hybrid = tenant_of("hybrid_own_key");
    let record = |path: std::path::PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path.join("encryption.json")).unwrap()).unwrap()
    };
    let own = record(dir.path().join("tenants").join(&hybrid));
    assert_eq!(
        (own["key_id"].as_str(), own["tenant_id"].as_str()),
        (Some("hybrid-key"), Some(&*hybrid))
    );
    let shared = record(dir.path().join("tenants").join(tenant_of("hybrid_ns")));
    assert_eq!(shared["key_id"], "instance");
    drop(engine);

    // The tenant's key replaced by another: its namespace is refused naming the tenant and
    // the key id; the others read on.
    let ring = KeyringDir::open(keys.path(), None).unwrap();
    ring.destroy("hybrid-key").unwrap();
    ring.create("hybrid-key").unwrap();
    let engine = Engine::open(dir.path(), options(Some(keys.path()))).unwrap();
    let recall = |name: &str| engine.root().recall(Recall::text(&marker).namespace(name));
    let e = recall("hybrid_own_key").unwrap_err();
    assert!(
        matches!(&e, Error::EncryptionKey { owner, key_id, .. }
        if *owner == format!("tenant {hybrid}") && key_id == "hybrid-key"),
        "{e:?}"
    );
    assert!(e.to_string().contains("does not decrypt"), "{e}");
    assert_eq!(recall("physical_own_key").unwrap().len(), 10, "top_k defaults to 10");
    assert_eq!(recall("logical_ns").unwrap().len(), 10);
    drop(engine);

    // The key gone from the keyring: the same, saying where it was looked for.
    ring.destroy("hybrid-key").unwrap();
    let engine = Engine::open(dir.path(), options(Some(keys.path()))).unwrap();
    let e = engine.root().recall(Recall::text(&marker).namespace("hybrid_own_key")).unwrap_err();
    assert!(matches!(&e, Error::EncryptionKey { key_id, .. } if key_id == "hybrid-key"), "{e:?}");
    assert!(e.to_string().contains("is not in keyring directory"), "{e}");
}

#[test]
fn a_plain_directory_opened_with_a_key_provider_stays_plain_but_for_tenants_own_keys() {
    let (dir, keys) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let marker = populate(dir.path(), None);
    let engine = Engine::open(dir.path(), options(Some(keys.path()))).unwrap();
    assert_readable_first(&engine, &marker);
    fill(&engine, IsolationMode::Physical, "late_own_key", "LATE-MARKER-51b2", Some("late-key"));
    let found = files_containing(dir.path(), b"LATE-MARKER-51b2");
    assert!(found.is_empty(), "a tenant key's data in plain text in {found:?}");
    assert!(!files_containing(dir.path(), marker.as_bytes()).is_empty());
}

/// The namespaces written without a key provider read back.
fn assert_readable_first(engine: &Engine, marker: &str) {
    for (_, name, _) in &MODES[..3] {
        let hits = engine.root().recall(Recall::text(marker).namespace(*name).top_k(100)).unwrap();
        assert_eq!(hits.len(), 20, "{name}");
    }
}
