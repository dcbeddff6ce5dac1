//! `memsilo upgrade DIR`: converts a data directory of memsilo 0.1.0 (LMDB mdb.master through
//! heed 0.23, which this version's LMDB cannot read, and which cannot be linked beside it) to
//! the current format, losing nothing.
//!
//! The old files are read by a program of their own, `memsilo-dump-v0` (tools/dump-v0), which
//! streams every environment's rows; [`upgrade`] runs it and writes each environment again into
//! `DIR.upgrading/`, mirroring the layout, with the tables core defines (see `load`). Rows and
//! checksums are verified per environment as they arrive, and every table is counted again once
//! written. The other files are copied; everything is synced; the directory is marked as in the
//! current format last. Then the two directories are swapped (`DIR` becomes the new one in one
//! atomic exchange where the system has it) and the old one is kept as `DIR.0.1.0-backup`.
//!
//! Every step can be cut by a crash and the command run again: a load without its mark is
//! redone from the start; after the mark, only the swap and the rename of the backup remain,
//! and they are finished. On a directory already in the current format the command changes
//! nothing and says so.

mod load;
mod stream;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

use load::EnvWriter;
use stream::{DumpReader, Item};

/// The program that reads 0.1.0 directories.
pub const DUMP_PROGRAM: &str = "memsilo-dump-v0";

/// What [`upgrade`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeOutcome {
    /// The directory was converted; the 0.1.0 one is kept at `backup`.
    Upgraded,
    /// An upgrade cut short after its copy was complete was finished (the swap, or the rename
    /// of the backup).
    Finished,
    /// The directory was already in the current format: nothing changed.
    AlreadyCurrent,
}

/// The result of [`upgrade`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeReport {
    /// What happened.
    pub outcome: UpgradeOutcome,
    /// The data directory.
    pub dir: PathBuf,
    /// Where the 0.1.0 directory is kept (if it is).
    pub backup: Option<PathBuf>,
    /// Environments written (0 unless `Upgraded`).
    pub environments: u64,
    /// Rows written, all tables together.
    pub rows: u64,
}

/// Progress of [`upgrade`], reported as each environment starts, every so many rows and as it
/// ends.
#[derive(Debug, Clone, Copy)]
pub struct UpgradeProgress<'a> {
    /// The environment (path under the data directory, `/`-separated).
    pub environment: &'a str,
    /// Its position (from 1) among `environments`.
    pub index: usize,
    /// Environments in the directory.
    pub environments: usize,
    /// Rows of this environment written so far.
    pub rows: u64,
    /// Rows this environment holds.
    pub rows_total: u64,
    /// The environment is written, synced and counted again.
    pub finished: bool,
}

/// Rows between two progress reports within an environment.
const PROGRESS_ROWS: u64 = 50_000;

use crate::format::{is_current, mark_current};
use crate::keyring::{self, Key, KeyProvider, INSTANCE_KEY_ID};

/// `dir`'s sibling named `dir` + `suffix`.
fn sibling(dir: &Path, suffix: &str) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .ok_or_else(|| Error::invalid("path", format!("{} names no directory", dir.display())))?;
    let mut name = name.to_os_string();
    name.push(suffix);
    Ok(dir.with_file_name(name))
}

/// The directory that `upgrade` writes the new files into.
pub fn upgrading_dir(dir: &Path) -> Result<PathBuf> {
    sibling(dir, ".upgrading")
}

/// Where `upgrade` keeps the 0.1.0 directory.
pub fn backup_dir(dir: &Path) -> Result<PathBuf> {
    sibling(dir, ".0.1.0-backup")
}

fn fsync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn parent_of(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Test hook: `MEMSILO_UPGRADE_ABORT_AFTER=<step>` ends the process at once after that step
/// (`environment`: the first environment written; `marked`: the copy complete; `swapped`: the
/// directories swapped), as a SIGKILL there would. The crash tests use it.
fn crash_point(step: &str) {
    if std::env::var("MEMSILO_UPGRADE_ABORT_AFTER").is_ok_and(|s| s == step) {
        std::process::abort();
    }
}

/// Finds `memsilo-dump-v0`: next to the running executable, else `MEMSILO_DUMP_V0`, else on
/// `PATH`.
pub fn find_dump_program() -> Result<PathBuf> {
    let exe = std::env::current_exe().ok();
    if let Some(beside) = exe.as_ref().and_then(|e| e.parent()).map(|d| d.join(DUMP_PROGRAM)) {
        if beside.is_file() {
            return Ok(beside);
        }
    }
    if let Some(p) = std::env::var_os("MEMSILO_DUMP_V0").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::invalid(
                "MEMSILO_DUMP_V0",
                format!("{} is not a file (it should name {DUMP_PROGRAM})", p.display()),
            ))
        };
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(DUMP_PROGRAM))
        .find(|p| p.is_file());
    on_path.ok_or_else(|| {
        Error::invalid(
            "dump_program",
            format!(
                "{DUMP_PROGRAM} was not found next to {}, in MEMSILO_DUMP_V0 or on PATH; it ships \
                 in the server tarball beside memsilo",
                exe.map_or_else(|| "the memsilo executable".into(), |e| e.display().to_string())
            ),
        )
    })
}

/// Upgrades the data directory `dir` from 0.1.0, reading it with `dump_program`
/// (`memsilo-dump-v0`; when `None`, the one [`find_dump_program`] finds, looked for only if
/// there is something to read); see the module documentation. With `keys`, the new
/// directory is encrypted with the instance key (created in the provider if it has none), as
/// a directory created with that provider is: 0.1.0 tenants have no keys of their own.
/// `progress` hears of each environment as it is written.
pub fn upgrade(
    dir: &Path,
    dump_program: Option<&Path>,
    keys: Option<&dyn KeyProvider>,
    progress: &mut dyn FnMut(UpgradeProgress<'_>),
) -> Result<UpgradeReport> {
    let upgrading = upgrading_dir(dir)?;
    let backup = backup_dir(dir)?;
    let parent = parent_of(dir);
    let report = |outcome, backup: Option<PathBuf>| UpgradeReport {
        outcome,
        dir: dir.to_owned(),
        backup,
        environments: 0,
        rows: 0,
    };
    if !dir.exists() {
        // Cut between the two renames of a swap without an atomic exchange.
        if backup.exists() && is_current(&upgrading)? {
            fs::rename(&upgrading, dir)?;
            fsync_dir(&parent)?;
            return Ok(report(UpgradeOutcome::Finished, Some(backup)));
        }
        return Err(Error::invalid("path", format!("{} does not exist", dir.display())));
    }
    let _lock = lock_directory(dir)?;
    if is_current(dir)? {
        if upgrading.exists() && !is_current(&upgrading)? && !backup.exists() {
            // Cut after the exchange: DIR.upgrading is the 0.1.0 directory.
            fs::rename(&upgrading, &backup)?;
            fsync_dir(&parent)?;
            return Ok(report(UpgradeOutcome::Finished, Some(backup)));
        }
        let kept = backup.exists().then_some(backup);
        return Ok(report(UpgradeOutcome::AlreadyCurrent, kept));
    }
    if !dir.join("catalog").join("data.mdb").is_file() {
        return Err(Error::invalid(
            "path",
            format!("{} is not a memsilo data directory (it has no catalog)", dir.display()),
        ));
    }
    if backup.exists() {
        return Err(Error::Conflict(format!(
            "{} exists (from an earlier upgrade?); move it away and run the upgrade again",
            backup.display()
        )));
    }
    let (environments, rows) = if is_current(&upgrading)? {
        (0, 0)
    } else {
        match fs::remove_dir_all(&upgrading) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        fs::create_dir_all(&upgrading)?;
        let program = match dump_program {
            Some(p) => p.to_owned(),
            None => find_dump_program()?,
        };
        let key = keys.map(|k| keyring::get_or_create(k, INSTANCE_KEY_ID)).transpose()?;
        let key = key.as_ref().map(Key::as_bytes);
        let loaded = load_with(dir, &upgrading, &program, key, progress)?;
        copy_other_files(dir, &upgrading)?;
        mark_current(&upgrading, key.is_some())?;
        fsync_dir(&parent)?;
        loaded
    };
    crash_point("marked");
    swap(dir, &upgrading, &parent)?;
    crash_point("swapped");
    fs::rename(&upgrading, &backup)?;
    fsync_dir(&parent)?;
    Ok(UpgradeReport {
        outcome: if environments == 0 {
            UpgradeOutcome::Finished
        } else {
            UpgradeOutcome::Upgraded
        },
        dir: dir.to_owned(),
        backup: Some(backup),
        environments,
        rows,
    })
}

/// Exchanges `dir` and `upgrading` (atomically where the system can), so that `dir` is the
/// new directory and `upgrading` the old one.
fn swap(dir: &Path, upgrading: &Path, parent: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let a = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| Error::invalid("path", "contains a NUL byte"))?;
        let b = std::ffi::CString::new(upgrading.as_os_str().as_bytes())
            .map_err(|_| Error::invalid("path", "contains a NUL byte"))?;
        // The system call, not glibc's `renameat2` wrapper: the release builds link against
        // glibc 2.17 (manylinux2014), which has no wrapper (added in 2.28).
        // SAFETY: two NUL-terminated paths that live through the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            return fsync_dir(parent);
        }
        let err = std::io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
            return Err(Error::internal_from(
                format!("swapping {} and {}", dir.display(), upgrading.display()),
                err,
            ));
        }
    }
    // Without an atomic exchange: two renames through a temporary name; a crash between them
    // is finished by the next run (see `upgrade`).
    let old = sibling(dir, ".0.1.0-swapping")?;
    fs::rename(dir, &old)?;
    fsync_dir(parent)?;
    fs::rename(upgrading, dir)?;
    fs::rename(&old, upgrading)?;
    fsync_dir(parent)
}

/// Runs the dump of `dir` and writes its stream into `into`. Returns the environments and
/// rows written.
fn load_with(
    dir: &Path,
    into: &Path,
    program: &Path,
    key: Option<&[u8; 32]>,
    progress: &mut dyn FnMut(UpgradeProgress<'_>),
) -> Result<(u64, u64)> {
    let mut child = Command::new(program)
        .arg("--lock-held")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::internal_from(format!("starting {}", program.display()), e))?;
    let stdout = child.stdout.take().ok_or_else(|| Error::Internal("no dump output".into()))?;
    let mut stderr = child.stderr.take().ok_or_else(|| Error::Internal("no dump errors".into()))?;
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let input = std::io::BufReader::with_capacity(1 << 20, stdout);
    let loaded = load(dir, into, input, key, progress);
    if loaded.is_err() {
        let _ = child.kill();
    }
    let status = child.wait()?;
    let errors = errors.join().unwrap_or_default();
    if !status.success() {
        let said = errors.trim();
        return Err(Error::Internal(format!(
            "{} {} failed ({status}){}",
            program.display(),
            dir.display(),
            if said.is_empty() { String::new() } else { format!(": {said}") }
        )));
    }
    loaded
}

/// Writes every environment of a dump stream into `into`.
fn load(
    dir: &Path,
    into: &Path,
    input: impl Read,
    key: Option<&[u8; 32]>,
    progress: &mut dyn FnMut(UpgradeProgress<'_>),
) -> Result<(u64, u64)> {
    let mut reader = DumpReader::new(input)?;
    let count = reader.environments.len();
    let mut writer: Option<(EnvWriter, String, u64, u64)> = None;
    let (mut envs, mut rows) = (0u64, 0u64);
    let mut index = 0;
    while let Some(item) = reader.next_item()? {
        match (item, &mut writer) {
            (Item::Env(listing), None) => {
                index += 1;
                let source = fs::metadata(dir.join(&listing.path).join("data.mdb"))?.len();
                let w = EnvWriter::create(into, &listing.path, &listing.tables, source, key)?;
                let total = listing.rows();
                progress(UpgradeProgress {
                    environment: &listing.path,
                    index,
                    environments: count,
                    rows: 0,
                    rows_total: total,
                    finished: false,
                });
                writer = Some((w, listing.path, 0, total));
            }
            (Item::Table(name), Some((w, ..))) => w.table(name)?,
            (Item::Row(k, v), Some((w, path, done, total))) => {
                w.row(k, v)?;
                *done += 1;
                if *done % PROGRESS_ROWS == 0 {
                    progress(UpgradeProgress {
                        environment: path,
                        index,
                        environments: count,
                        rows: *done,
                        rows_total: *total,
                        finished: false,
                    });
                }
            }
            (Item::EnvEnd, Some(_)) => {
                let (w, path, _, total) = writer.take().unwrap_or_else(|| unreachable!());
                let written = w.finish()?;
                progress(UpgradeProgress {
                    environment: &path,
                    index,
                    environments: count,
                    rows: written,
                    rows_total: total,
                    finished: true,
                });
                envs += 1;
                rows += written;
                crash_point("environment");
            }
            _ => return Err(Error::Internal("the 0.1.0 dump stream is out of order".into())),
        }
    }
    Ok((envs, rows))
}

/// Copies the files of `dir` that are not LMDB's (`data.mdb`, `lock.mdb` of an environment)
/// nor the directory's `LOCK` into `into`, at the same places, synced; directories inside an
/// environment (a compaction cut short) are left behind with the old files.
fn copy_other_files(dir: &Path, into: &Path) -> Result<()> {
    fn walk(from: &Path, to: &Path, top: bool) -> Result<()> {
        let in_env = from.join("data.mdb").is_file();
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            let name = entry.file_name();
            let (src, dst) = (entry.path(), to.join(&name));
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if !in_env {
                    fs::create_dir_all(&dst)?;
                    walk(&src, &dst, false)?;
                    fsync_dir(&dst)?;
                }
            } else if kind.is_file() {
                let lmdb = in_env && (name == "data.mdb" || name == "lock.mdb");
                if !(lmdb || top && name == "LOCK") {
                    fs::copy(&src, &dst)?;
                    fs::File::open(&dst)?.sync_all()?;
                }
            }
        }
        Ok(())
    }
    walk(dir, into, true)?;
    fsync_dir(into)
}

/// Takes `DIR/LOCK` as the engine does, so that no server opens the directory meanwhile.
fn lock_directory(dir: &Path) -> Result<fs::File> {
    crate::engine::lock_directory(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_working_and_backup_directories_are_siblings() {
        let dir = Path::new("/srv/memsilo/data");
        assert_eq!(upgrading_dir(dir).unwrap(), Path::new("/srv/memsilo/data.upgrading"));
        assert_eq!(backup_dir(dir).unwrap(), Path::new("/srv/memsilo/data.0.1.0-backup"));
        assert!(upgrading_dir(Path::new("/")).is_err());
    }

    #[test]
    fn each_environment_path_has_its_kind_and_others_are_refused() {
        use load::EnvKind;
        assert_eq!(EnvKind::of("catalog").unwrap(), EnvKind::Catalog);
        assert_eq!(EnvKind::of("shards/shard-3").unwrap(), EnvKind::Data);
        assert_eq!(EnvKind::of("tenants/t-1").unwrap(), EnvKind::Data);
        assert_eq!(EnvKind::of("namespaces/42").unwrap(), EnvKind::Data);
        assert_eq!(EnvKind::of("indexes/42").unwrap(), EnvKind::Index);
        assert_eq!(EnvKind::of("audit").unwrap(), EnvKind::OldAudit);
        for other in ["shards", "elsewhere/x", "namespaces/4/compacting"] {
            assert!(EnvKind::of(other).is_err(), "{other}");
        }
    }
}
