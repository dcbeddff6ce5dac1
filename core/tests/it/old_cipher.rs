//! A data directory encrypted before AES-256-GCM-SIV (every file under ChaCha20-Poly1305,
//! `tests/fixtures/chacha20-poly1305/`) opens and reads with this version, keeps its cipher
//! for its files, and takes AES-256-GCM-SIV for files created or rotated in it.
//!
//! The fixture holds `data.tar.gz`: `data/` (a namespace of each isolation mode, two of them
//! of tenants with keys of their own, 20 memories each carrying [`MARKER`]) and `keys/` (its
//! keyring directory, test keys). To write it again, set `Cipher::NEW` in
//! `core/src/storage/mod.rs` to `Cipher::ChaCha20Poly1305` (with that, this code writes what
//! memsilo wrote before AES-256-GCM-SIV, byte for byte the same format), run
//! `cargo test -p memsilo --test it old_cipher::write_the_chacha20_poly1305_fixture --
//! --ignored --exact`, and set it back.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use memsilo::{
    CreateTenant, Engine, HashEmbedder, IsolationMode, NamespaceOptions, Options, Recall,
    RotationState, StoreMemory,
};
use serde_json::Value;

use crate::encryption::fill;
use crate::fixture_v0::unpack;
use crate::keys::files_containing;

/// The text every memory of the fixture carries.
const MARKER: &str = "OLDCIPHER-5e2a";

/// The fixture's namespaces: isolation mode, name, the tenant's own key id.
const NAMESPACES: [(IsolationMode, &str, Option<&str>); 5] = [
    (IsolationMode::Logical, "logical_ns", None),
    (IsolationMode::Hybrid, "hybrid_ns", None),
    (IsolationMode::Physical, "physical_ns", None),
    (IsolationMode::Hybrid, "hybrid_own_key", Some("hybrid-key")),
    (IsolationMode::Physical, "physical_own_key", Some("physical-key")),
];

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/chacha20-poly1305")
}

fn options(keys: &Path) -> Options {
    Options {
        background: false,
        embedder: Arc::new(HashEmbedder::new(32)),
        keyring: Some(keys.to_owned()),
        ..Options::default()
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The cipher recorded by every `encryption.json` under `data`, by the file's directory.
fn recorded_ciphers(data: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for kind in ["tenants", "namespaces"] {
        let Ok(dirs) = std::fs::read_dir(data.join(kind)) else { continue };
        for dir in dirs.flatten() {
            let record = dir.path().join("encryption.json");
            if record.exists() {
                let cipher = json(&record)["cipher"].as_str().unwrap().to_owned();
                found.push((dir.path().display().to_string(), cipher));
            }
        }
    }
    found.sort();
    found
}

/// The memories of `namespace` whose text carries `marker`, recalled by text.
fn recalled(engine: &Engine, namespace: &str, marker: &str) -> usize {
    let hits = engine.root().recall(Recall::text(marker).namespace(namespace).top_k(100)).unwrap();
    hits.iter().filter(|h| h.content.contains(marker)).count()
}

#[test]
fn a_chacha20_poly1305_directory_opens_reads_and_keeps_its_cipher_new_files_take_aes_gcm_siv() {
    let tmp = tempfile::tempdir().unwrap();
    unpack(&fixture_dir().join("data.tar.gz"), tmp.path());
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    assert_eq!(json(&data.join("storage.json"))["encryption"]["cipher"], "chacha20-poly1305");
    let old = recorded_ciphers(&data);
    assert_eq!(old.len(), 4, "a record per hybrid tenant and physical namespace: {old:?}");
    assert!(old.iter().all(|(_, c)| c == "chacha20-poly1305"), "{old:?}");

    let engine = Engine::open(&data, options(&keys)).unwrap();
    for (_, name, _) in NAMESPACES {
        assert_eq!(recalled(&engine, name, MARKER), 20, "{name}");
    }
    // Written to, the old files stay ChaCha20-Poly1305; a new tenant's file is AES-256-GCM-SIV.
    let root = engine.root();
    for (_, name, _) in NAMESPACES {
        root.store_memory(StoreMemory {
            namespace: Some(name.into()),
            ..StoreMemory::text(format!("LATER-91c3 written in {name}"))
        })
        .unwrap();
    }
    let tenant = root
        .create_tenant(CreateTenant {
            name: "tenant_new".into(),
            isolation_mode: Some(IsolationMode::Hybrid),
            encryption_key_id: Some("new-tenant-key".into()),
            ..Default::default()
        })
        .unwrap()
        .tenant;
    root.create_namespace(
        "new_ns",
        NamespaceOptions { tenant_id: Some(tenant.id.clone()), ..Default::default() },
    )
    .unwrap();
    root.store_memory(StoreMemory {
        namespace: Some("new_ns".into()),
        ..StoreMemory::text("LATER-91c3 written in new_ns")
    })
    .unwrap();
    let new_record = json(&data.join("tenants").join(&tenant.id).join("encryption.json"));
    assert_eq!(new_record["cipher"], "aes-256-gcm-siv");

    // A rotation rewrites a tenant's old file under its new key with AES-256-GCM-SIV.
    let hybrid_own = std::fs::read_dir(data.join("tenants"))
        .unwrap()
        .flatten()
        .map(|d| d.path())
        .find(|d| json(&d.join("encryption.json"))["key_id"] == "hybrid-key")
        .unwrap();
    let tenant_id = hybrid_own.file_name().unwrap().to_str().unwrap().to_owned();
    let started = root.rotate_tenant_key(&tenant_id, Some("hybrid-key-2")).unwrap();
    assert_eq!(started.state, RotationState::Rewriting);
    assert_eq!(engine.run_key_rotations().unwrap(), 1);
    let rotated = json(&hybrid_own.join("encryption.json"));
    assert_eq!(
        (rotated["cipher"].as_str(), rotated["key_id"].as_str()),
        (Some("aes-256-gcm-siv"), Some("hybrid-key-2"))
    );
    drop(root);
    drop(engine);

    // Reopened: everything reads, under the cipher each file records; nothing is plain text.
    let engine = Engine::open(&data, options(&keys)).unwrap();
    for (_, name, _) in NAMESPACES {
        assert_eq!(recalled(&engine, name, MARKER), 20, "{name}");
        assert_eq!(recalled(&engine, name, "LATER-91c3"), 1, "{name}");
    }
    assert_eq!(recalled(&engine, "new_ns", "LATER-91c3"), 1);
    assert_eq!(json(&data.join("storage.json"))["encryption"]["cipher"], "chacha20-poly1305");
    let now = recorded_ciphers(&data);
    let still_old = now.iter().filter(|(_, c)| c == "chacha20-poly1305").count();
    let new = now.iter().filter(|(_, c)| c == "aes-256-gcm-siv").count();
    assert_eq!((still_old, new), (3, 2), "{now:?}");
    for marker in [MARKER, "LATER-91c3"] {
        let found = files_containing(&data, marker.as_bytes());
        assert!(found.is_empty(), "plain text on disk in {found:?}");
    }
}

/// Writes `tests/fixtures/chacha20-poly1305/data.tar.gz`: see the module documentation (with
/// `Cipher::NEW` set to ChaCha20-Poly1305, or it refuses).
/// A cipher name this version does not know, in any record of one — an environment's
/// `encryption.json`, the catalog's, `storage.json` — is refused with `invalid_argument` naming
/// the file and the name when that file would be opened (never `internal`, never a panic),
/// and the directory opens again once the record is right.
#[test]
fn an_unknown_cipher_name_is_refused_at_open_naming_the_file_and_the_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, keys) = (tmp.path().join("data"), tmp.path().join("keys"));
    {
        let engine = Engine::open(&data, options(&keys)).unwrap();
        fill(&engine, IsolationMode::Hybrid, "hybrid_ns", MARKER, Some("hybrid-key"));
    }
    let (tenant_record, cipher) = recorded_ciphers(&data).remove(0);
    let tenant_record = Path::new(&tenant_record).join("encryption.json");
    let catalog_record = data.join("catalog").join("encryption.json");
    let storage = data.join("storage.json");
    let set_cipher = |file: &Path, pointer: &str, name: &str| {
        let mut v = json(file);
        *v.pointer_mut(pointer).unwrap() = Value::from(name);
        std::fs::write(file, serde_json::to_vec(&v).unwrap()).unwrap();
    };
    let refused = |e: memsilo::Error, file: &Path| {
        assert_eq!(e.code(), memsilo::ErrorCode::InvalidArgument, "{e}");
        let message = e.to_string();
        assert!(message.contains(&file.display().to_string()), "names the file: {message}");
        assert!(message.contains("\"rot13-gcm\""), "names the cipher: {message}");
    };

    // A tenant's file: the directory opens, the file does not.
    set_cipher(&tenant_record, "/cipher", "rot13-gcm");
    let engine = Engine::open(&data, options(&keys)).unwrap();
    let list = memsilo::ListMemories { namespace: Some("hybrid_ns".into()), ..Default::default() };
    refused(engine.root().list_memories(list).unwrap_err(), &tenant_record);
    drop(engine);
    set_cipher(&tenant_record, "/cipher", &cipher);

    // The catalog's own record (written by an instance key rotation) and the directory's.
    std::fs::write(&catalog_record, br#"{"cipher": "rot13-gcm", "key_id": "instance"}"#).unwrap();
    refused(Engine::open(&data, options(&keys)).unwrap_err(), &catalog_record);
    std::fs::remove_file(&catalog_record).unwrap();
    let directory_cipher = json(&storage)["encryption"]["cipher"].as_str().unwrap().to_owned();
    set_cipher(&storage, "/encryption/cipher", "rot13-gcm");
    refused(Engine::open(&data, options(&keys)).unwrap_err(), &storage);
    set_cipher(&storage, "/encryption/cipher", &directory_cipher);

    let engine = Engine::open(&data, options(&keys)).unwrap();
    assert_eq!(recalled(&engine, "hybrid_ns", MARKER), 20);
}

#[test]
#[ignore = "writes the fixture (see the module documentation)"]
fn write_the_chacha20_poly1305_fixture() {
    let work = tempfile::tempdir().unwrap();
    let (data, keys) = (work.path().join("data"), work.path().join("keys"));
    {
        let engine = Engine::open(&data, options(&keys)).unwrap();
        for (mode, name, key) in NAMESPACES {
            fill(&engine, mode, name, MARKER, key);
        }
    }
    assert_eq!(
        json(&data.join("storage.json"))["encryption"]["cipher"],
        "chacha20-poly1305",
        "set Cipher::NEW to ChaCha20Poly1305 first"
    );
    let out = fixture_dir();
    std::fs::create_dir_all(&out).unwrap();
    let status = std::process::Command::new("tar")
        .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-czf"])
        .arg(out.join("data.tar.gz"))
        .args(["-C", work.path().to_str().unwrap(), "--exclude=LOCK", "--exclude=lock.mdb"])
        .args(["data", "keys"])
        .status()
        .unwrap();
    assert!(status.success(), "tar failed");
}
