//! Errors keep their cause: an I/O or storage failure underneath an `internal` error is its
//! `source()`, listed by `causes()` and carried in the error body, while the message and code
//! read as before.

use std::error::Error as _;

use memsilo::api::error_body;
use memsilo::{Engine, Error, ErrorCode, Options};

fn open(dir: &std::path::Path) -> memsilo::Result<Engine> {
    Engine::open(dir, Options { background: false, ..Options::default() })
}

#[test]
fn an_io_failure_is_the_source_of_the_internal_error() {
    let dir = tempfile::tempdir().unwrap();
    // The lock file's place is taken by a directory: opening it for writing fails (EISDIR),
    // as it does for any user, root included.
    std::fs::create_dir(dir.path().join("LOCK")).unwrap();
    let err = open(dir.path()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Internal);
    let io = err.source().and_then(|s| s.downcast_ref::<std::io::Error>()).expect("io source");
    assert_eq!(io.kind(), std::io::ErrorKind::IsADirectory);
    assert_eq!(err.to_string(), format!("internal error: io: {io}"));
    assert_eq!(err.causes(), vec![io.to_string()]);
    let body = error_body(&err);
    assert_eq!(body["error"], "internal");
    assert_eq!(body["causes"], serde_json::json!([io.to_string()]));
}

#[test]
fn a_storage_failure_is_the_source_of_the_internal_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    // LMDB cannot open a data file that is a directory.
    std::fs::remove_dir_all(dir.path().join("catalog")).unwrap();
    std::fs::create_dir_all(dir.path().join("catalog").join("data.mdb")).unwrap();
    let err = open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Storage(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::Internal);
    let heed = err.source().and_then(|s| s.downcast_ref::<heed3::Error>()).expect("heed source");
    assert_eq!(err.to_string(), format!("storage error: {heed}"));
    assert_eq!(err.causes(), vec![heed.to_string()]);
}

#[test]
fn errors_without_a_failure_underneath_have_no_causes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).unwrap();
    let err = engine.root().get_namespace("missing").unwrap_err();
    assert!(err.causes().is_empty());
    assert!(error_body(&err).get("causes").is_none());
}

/// The data directory of memsilo 0.1.0 (the fixture: LMDB mdb.master files through heed 0.23,
/// no `storage.json`) is refused at open with the command that converts it, and nothing in it
/// is touched.
#[test]
fn a_directory_of_version_0_1_0_is_refused_with_the_upgrade_command() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = crate::fixture_v0::fixture_dir().join("data.tar.gz");
    crate::fixture_v0::unpack(&fixture, tmp.path());
    let data = tmp.path().join("data");
    let catalog = std::fs::read(data.join("catalog").join("data.mdb")).unwrap();
    let err = open(&data).unwrap_err();
    let shown = data.canonicalize().unwrap().display().to_string();
    assert!(matches!(&err, Error::UpgradeRequired { dir, .. } if *dir == shown), "{err:?}");
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert_eq!(
        err.to_string(),
        format!(
            "path: data directory {shown} was written by memsilo 0.1.0, whose storage format \
             this version cannot open; run `memsilo upgrade {shown}` to convert it"
        )
    );
    assert_eq!(error_body(&err)["field"], "path");
    assert_eq!(std::fs::read(data.join("catalog").join("data.mdb")).unwrap(), catalog);
    assert!(!data.join("storage.json").exists());
}
