//! `memsilo::upgrade::upgrade` on copies of the 0.1.0 fixture (tests/fixtures/data-0.1.0): the
//! real `memsilo-dump-v0` program reads it, the loader writes the current format, and the
//! engine opened on the result answers every check of the fixture's manifest as 0.1.0 did.
//! A second run changes nothing; runs ended by a crash at each step, then run again, finish.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use memsilo::upgrade::{backup_dir, upgrade, upgrading_dir, UpgradeOutcome};
use memsilo::Engine;
use serde_json::Value;

use crate::fixture_v0::{fixture_dir, options, replay, unpack};
use crate::keys::files_containing;

/// The `memsilo-dump-v0` program, built once per test run (it is a program of its own:
/// it links the 0.1.0 LMDB, which cannot be linked into this test).
pub fn dump_program() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            // target/<profile>/deps/it-… → target/<profile>/
            let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
            let target = profile_dir.parent().unwrap();
            // Its own target directory: the one running this test is locked by cargo.
            let tools = target.join("upgrade-tools");
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

/// A fresh copy of the fixture; returns (the temporary root, the data directory in it).
fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    unpack(&fixture_dir().join("data.tar.gz"), root.path());
    let data = root.path().join("data");
    (root, data)
}

fn manifest() -> Value {
    serde_json::from_slice(&std::fs::read(fixture_dir().join("manifest.json")).unwrap()).unwrap()
}

/// Every check of the manifest answers as it did in 0.1.0.
fn assert_answers_as_0_1_0(data: &Path) {
    assert_answers_with(data, options());
}

fn assert_answers_with(data: &Path, options: memsilo::Options) {
    let engine = Engine::open(data, options).unwrap();
    let (diffs, n) = replay(&engine, &manifest());
    assert!(n > 80, "the manifest has {n} checks");
    assert!(diffs.is_empty(), "{} of {n} checks differ:\n{}", diffs.len(), diffs.join("\n"));
}

#[test]
fn an_upgraded_fixture_answers_every_check_as_0_1_0_did_and_a_second_run_changes_nothing() {
    let (_root, data) = fixture_copy();
    let mut seen = Vec::new();
    let report = upgrade(&data, Some(&dump_program()), None, &mut |p| {
        seen.push((
            p.environment.to_owned(),
            p.index,
            p.environments,
            p.rows,
            p.rows_total,
            p.finished,
        ));
    })
    .unwrap();
    assert_eq!(report.outcome, UpgradeOutcome::Upgraded);
    assert_eq!(report.environments, 7, "catalog, 2 shards, a tenant's, 2 namespaces', an index");
    assert_eq!(report.backup.as_deref(), Some(backup_dir(&data).unwrap().as_path()));
    // Each environment reported at its start and its end, with its rows.
    let ends: Vec<_> = seen.iter().filter(|s| s.5).collect();
    assert_eq!(ends.len(), 7, "{seen:?}");
    assert!(ends.iter().all(|s| s.3 == s.4 && s.2 == 7), "{seen:?}");
    assert_eq!(ends.iter().map(|s| s.1).collect::<Vec<_>>(), (1..=7).collect::<Vec<_>>());
    assert_eq!(ends.iter().map(|s| s.3).sum::<u64>(), report.rows);
    assert!(report.rows > 500, "{}", report.rows);
    assert!(!upgrading_dir(&data).unwrap().exists());
    // The 0.1.0 directory is kept whole.
    let backup = backup_dir(&data).unwrap();
    assert!(
        backup.join("catalog/data.mdb").is_file()
            && backup.join("shards/shard-0/data.mdb").is_file()
    );

    assert_answers_as_0_1_0(&data);

    let again =
        upgrade(&data, Some(&dump_program()), None, &mut |_| panic!("nothing to write")).unwrap();
    assert_eq!(again.outcome, UpgradeOutcome::AlreadyCurrent);
    assert_eq!(again.backup.as_deref(), Some(backup.as_path()));
}

#[test]
fn a_directory_that_is_open_or_not_a_data_directory_is_refused() {
    let (_root, data) = fixture_copy();
    let held = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(data.join("LOCK"))
        .unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&held), libc::LOCK_EX) }, 0);
    let e = upgrade(&data, Some(&dump_program()), None, &mut |_| {}).unwrap_err();
    assert_eq!(e.code(), memsilo::ErrorCode::Conflict, "{e}");
    drop(held);
    let empty = tempfile::tempdir().unwrap();
    let e = upgrade(empty.path(), Some(&dump_program()), None, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("not a memsilo data directory"), "{e}");
    let e = upgrade(&data, Some(Path::new("/nonexistent/memsilo-dump-v0")), None, &mut |_| {})
        .unwrap_err();
    assert!(e.to_string().contains("starting /nonexistent/memsilo-dump-v0"), "{e}");
    assert!(!upgrading_dir(&data).unwrap().exists() || !backup_dir(&data).unwrap().exists());
}

/// Runs the upgrade of `MEMSILO_UPGRADE_CHILD_DIR` in a child process of this test binary,
/// for [`a_run_killed_at_each_step_is_finished_by_the_next`]; not a test of its own.
#[test]
#[ignore = "run as a child process by a_run_killed_at_each_step_is_finished_by_the_next"]
fn upgrade_child() {
    let Some(dir) = std::env::var_os("MEMSILO_UPGRADE_CHILD_DIR") else { return };
    let program = PathBuf::from(std::env::var_os("MEMSILO_UPGRADE_CHILD_DUMP").unwrap());
    upgrade(Path::new(&dir), Some(&program), None, &mut |_| {}).unwrap();
}

/// A process ended at once (abort, as a SIGKILL would) after each step of an upgrade: after
/// its first environment is written, once its copy is complete, and after the swap. The next
/// run finishes the upgrade and the directory answers as 0.1.0 did.
#[test]
fn a_run_killed_at_each_step_is_finished_by_the_next() {
    for (step, then) in [
        ("environment", UpgradeOutcome::Upgraded),
        ("marked", UpgradeOutcome::Finished),
        ("swapped", UpgradeOutcome::Finished),
    ] {
        let (_root, data) = fixture_copy();
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["upgrade::upgrade_child", "--exact", "--ignored", "--nocapture"])
            .env("MEMSILO_UPGRADE_CHILD_DIR", &data)
            .env("MEMSILO_UPGRADE_CHILD_DUMP", dump_program())
            .env("MEMSILO_UPGRADE_ABORT_AFTER", step)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "{step}: the child was not stopped");
        let left = upgrading_dir(&data).unwrap();
        assert!(left.exists(), "{step}: nothing left half done");
        let report = upgrade(&data, Some(&dump_program()), None, &mut |_| {}).unwrap();
        assert_eq!(report.outcome, then, "{step}");
        assert!(!left.exists(), "{step}");
        assert!(backup_dir(&data).unwrap().join("catalog/data.mdb").is_file(), "{step}");
        assert_answers_as_0_1_0(&data);
    }
}

/// With a keyring, every environment of the new directory is written encrypted with the
/// instance key (created in the keyring): no memory's text is left in any file (the 0.1.0
/// backup still holds it, so the search would find it); the engine opened with the keyring
/// answers as 0.1.0 did, and without it refuses the directory.
#[test]
fn an_upgrade_with_a_keyring_writes_every_environment_encrypted() {
    let (root, data) = fixture_copy();
    let keyring = root.path().join("keyring");
    let keys = memsilo::keyring::provider_for(&keyring, &data).unwrap();
    let report = upgrade(&data, Some(&dump_program()), Some(keys.as_ref()), &mut |_| {}).unwrap();
    assert_eq!(report.outcome, UpgradeOutcome::Upgraded);
    let marker = b"Acme Q3 roadmap";
    let backup = backup_dir(&data).unwrap();
    assert!(!files_containing(&backup, marker).is_empty(), "the search finds plain text");
    let leaked = files_containing(&data, marker);
    assert!(leaked.is_empty(), "plain text in {leaked:?}");
    assert!(keyring.join("instance").is_file(), "the instance key was created in the keyring");
    let without = Engine::open(&data, options()).unwrap_err();
    assert!(without.to_string().contains("instance"), "{without}");
    assert_answers_with(&data, memsilo::Options { keyring: Some(keyring), ..options() });
}
