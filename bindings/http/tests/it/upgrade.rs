//! `memsilo upgrade DIR` as a user runs it: the real binary and the real `memsilo-dump-v0`
//! (found through `MEMSILO_DUMP_V0`) on a copy of the 0.1.0 fixture; then `memsilo serve` on
//! the result answers a 0.1.0 key. A second run changes nothing; a run killed mid-way, run
//! again, finishes. (The full comparison with the fixture's manifest is core's test
//! `upgrade::an_upgraded_fixture_answers_every_check_as_0_1_0_did_and_a_second_run_changes_nothing`.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use memsilo_http::Client;
use serde_json::{json, Value};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/data-0.1.0")
}

/// `memsilo-dump-v0`, built into a target directory of its own (the one running this test is
/// locked by cargo meanwhile).
fn dump_program() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let bin = PathBuf::from(env!("CARGO_BIN_EXE_memsilo"));
            let tools = bin.parent().and_then(Path::parent).unwrap().join("upgrade-tools");
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["build", "--quiet", "--locked", "-p", "memsilo-dump-v0", "--target-dir"])
                .arg(&tools)
                .status()
                .unwrap();
            assert!(status.success(), "cargo build -p memsilo-dump-v0 failed");
            tools.join("debug").join("memsilo-dump-v0")
        })
        .clone()
}

fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(fixture().join("data.tar.gz"))
        .arg("-C")
        .arg(root.path())
        .status()
        .unwrap();
    assert!(status.success());
    let data = root.path().join("data");
    (root, data)
}

fn memsilo_upgrade(data: &Path, abort_after: Option<&str>) -> (Output, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_memsilo"));
    cmd.arg("upgrade").arg(data).env("MEMSILO_DUMP_V0", dump_program()).stdin(Stdio::null());
    match abort_after {
        Some(step) => cmd.env("MEMSILO_UPGRADE_ABORT_AFTER", step),
        None => cmd.env_remove("MEMSILO_UPGRADE_ABORT_AFTER"),
    };
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

#[test]
fn memsilo_upgrade_converts_a_0_1_0_directory_that_then_serves_its_keys() {
    let (_root, data) = fixture_copy();
    let (out, said) = memsilo_upgrade(&data, None);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("[1/7] catalog"), "a line per environment: {said}");
    assert!(said.contains("upgraded ") && said.contains("7 environments"), "{said}");
    assert!(said.contains(".0.1.0-backup"), "{said}");

    let (out, said) = memsilo_upgrade(&data, None);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("already in the current format: nothing to do"), "{said}");

    let manifest: Value =
        serde_json::from_slice(&std::fs::read(fixture().join("manifest.json")).unwrap()).unwrap();
    let (mut run, _) = crate::binary::start(&data, Some("upgrade-test-admin-key"));
    let writer = manifest["keys"]["acme-notes-writer"]["key"].as_str().unwrap();
    let client = Client::connect(&run.url, writer).unwrap();
    let count = client.call("count_memories", json!({ "namespace": "acme-notes" })).unwrap();
    assert_eq!(count.value["count"], 5);
    let hits = client
        .call("recall", json!({ "namespace": "acme-notes", "query": "roadmap", "mode": "keyword" }))
        .unwrap();
    assert_eq!(hits.value[0]["id"], "n-roadmap", "{}", hits.value);
    let revoked = manifest["keys"]["revoked"]["key"].as_str().unwrap();
    let refused = Client::connect(&run.url, revoked).and_then(|c| c.call("whoami", json!({})));
    assert_eq!(refused.unwrap_err().code(), memsilo::ErrorCode::Unauthorized);
    crate::binary::sigterm(&run.child);
    assert!(crate::binary::wait_exit(&mut run.child).success());
}

#[test]
fn memsilo_upgrade_killed_mid_way_finishes_when_run_again() {
    let (_root, data) = fixture_copy();
    let (out, said) = memsilo_upgrade(&data, Some("environment"));
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("[1/7] catalog"), "{said}");
    let (out, said) = memsilo_upgrade(&data, None);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("upgraded ") && said.contains("7 environments"), "{said}");
}

#[test]
fn memsilo_upgrade_says_what_is_wrong() {
    let empty = tempfile::tempdir().unwrap();
    let (out, said) = memsilo_upgrade(empty.path(), None);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("not a memsilo data directory"), "{said}");
    let out = Command::new(env!("CARGO_BIN_EXE_memsilo")).arg("upgrade").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
