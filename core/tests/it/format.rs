//! The storage file format: this version writes LMDB 1.0 files (heed3, for encryption at rest)
//! and refuses a data directory of memsilo 0.1 (LMDB 0.9) with an error that says what it is
//! and what to do, leaving the files as they were.

use memsilo::{Engine, Options};

/// The first 24 bytes of an LMDB 0.9 `data.mdb`, as memsilo 0.1 wrote it: page 0's 16-byte
/// header (page number 0, flags `P_META`), then the magic `0xBEEFC0DE` and data version 1.
fn lmdb_0_9_meta_page() -> Vec<u8> {
    let mut page = vec![0u8; 4096];
    page[10] = 0x08;
    page[16..20].copy_from_slice(&0xBEEF_C0DE_u32.to_le_bytes());
    page[20..24].copy_from_slice(&1u32.to_le_bytes());
    page
}

#[test]
fn a_data_directory_of_memsilo_0_1_is_refused_naming_the_file_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("catalog")).unwrap();
    let old = lmdb_0_9_meta_page();
    std::fs::write(dir.path().join("catalog/data.mdb"), &old).unwrap();

    let err = Engine::open(dir.path(), options()).unwrap_err().to_string();
    assert!(err.contains("catalog"), "{err}");
    assert!(err.contains("memsilo 0.1 (LMDB 0.9)"), "{err}");
    assert!(err.contains("new data directory"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("catalog/data.mdb")).unwrap(), old);
}

#[test]
fn a_new_data_directory_is_written_in_lmdb_1_0_format_and_opens_again() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), options()).unwrap();
    engine.root().call("create_namespace", serde_json::json!({ "name": "n" })).unwrap();
    drop(engine);
    let head = std::fs::read(dir.path().join("catalog/data.mdb")).unwrap();
    // LMDB 1.0's meta page: a 24-byte header, then the magic.
    assert_eq!(head[24..28], 0xBEEF_C0DE_u32.to_le_bytes());
    let engine = Engine::open(dir.path(), options()).unwrap();
    let got = engine.root().call("get_namespace", serde_json::json!({ "name": "n" })).unwrap();
    assert_eq!(got.value["name"], "n");
}

fn options() -> Options {
    Options { background: false, ..Options::default() }
}
