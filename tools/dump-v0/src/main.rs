//! `memsilo-dump-v0 DIR`: streams every LMDB environment of a memsilo 0.1.0 data directory
//! (LMDB mdb.master, written through heed 0.23) to stdout, for `memsilo upgrade DIR`, whose
//! loader (core's `upgrade` module) writes them again in the current format. It reads raw bytes
//! and knows nothing of memsilo's tables, so it stays as it is while core moves on.
//!
//! An environment is a directory holding `data.mdb`; each is opened read-only, and each of its
//! named databases is streamed key by key, in key order.
//!
//! # The stream (version 1)
//!
//! The magic bytes `MEMSILO-DUMP-V0\n`, then frames: a tag byte, the payload's length (u32,
//! little-endian), the payload.
//!
//! | tag | payload |
//! | --- | --- |
//! | `H` | header, JSON: `{"version": 1, "source", "environments": [{"path", "tables": {name: rows}}]}` |
//! | `E` | an environment begins, JSON: `{"path", "tables": {name: rows}}`; `path` is relative to DIR, `/`-separated |
//! | `T` | a table (named database) of it begins: its name, UTF-8 |
//! | `R` | a row of that table: key length (u32 LE), key, value |
//! | `e` | the environment ends, JSON: `{"path", "rows", "sha256"}`: rows of all its tables, and the SHA-256 of its `T` and `R` frames as written (tag, length and payload) |
//! | `Z` | the stream ends, JSON: `{"environments", "rows"}` |
//!
//! A stream without its `Z` frame was cut short. Errors go to stderr with a non-zero exit.
//!
//! # Locking
//!
//! The dump takes the data directory's `LOCK` (as the engine does), so it never reads a
//! directory a server has open; `memsilo upgrade` holds that lock itself and passes
//! `--lock-held`. The environments are opened with `MDB_NOLOCK` (no `lock.mdb` is needed or
//! written): with the directory locked, nothing writes them.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use heed::types::{Bytes, DecodeIgnore, Str};
use heed::{CommitOrAbort, CommitToken, Database, Env, EnvFlags, EnvOpenOptions, OnCommit};
use serde_json::json;
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 16] = b"MEMSILO-DUMP-V0\n";
const VERSION: u32 = 1;
const DATA_FILE: &str = "data.mdb";
/// More than any memsilo 0.1.0 environment has (16 at most).
const MAX_DBS: u32 = 64;

fn main() -> ExitCode {
    let mut dir = None;
    let mut lock_held = false;
    for arg in std::env::args_os().skip(1) {
        match arg.to_str() {
            Some("--lock-held") => lock_held = true,
            Some("-h" | "--help") => {
                println!("usage: memsilo-dump-v0 [--lock-held] DIR\n\n{USAGE}");
                return ExitCode::SUCCESS;
            }
            Some("-V" | "--version") => {
                println!("memsilo-dump-v0 {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            _ if dir.is_none() => dir = Some(PathBuf::from(arg)),
            _ => return fail(&format!("unexpected argument {}", arg.to_string_lossy())),
        }
    }
    let Some(dir) = dir else { return fail("usage: memsilo-dump-v0 [--lock-held] DIR") };
    let stdout = io::stdout().lock();
    match dump(&dir, lock_held, BufWriter::with_capacity(1 << 20, stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

const USAGE: &str = "Streams every LMDB environment of a memsilo 0.1.0 data directory to stdout \
(raw rows in a length-prefixed framing), for `memsilo upgrade DIR`. It changes nothing in DIR \
(it takes DIR/LOCK, as a server does, unless --lock-held says the caller holds it).";

fn fail(message: &str) -> ExitCode {
    eprintln!("memsilo-dump-v0: {message}");
    ExitCode::FAILURE
}

/// Streams `dir` to `out` (see the module documentation).
fn dump(dir: &Path, lock_held: bool, mut out: impl Write) -> Result<(), String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let _lock = if lock_held { None } else { Some(lock_directory(dir)?) };
    let paths = environments(dir)?;
    let mut listed = Vec::new();
    for rel in &paths {
        let env = open(&dir.join(rel))?;
        listed.push(json!({ "path": rel, "tables": tables(&env, rel)? }));
        env.prepare_for_closing().wait();
    }
    let io = |e: io::Error| format!("writing the stream: {e}");
    out.write_all(MAGIC).map_err(io)?;
    let header = json!({
        "version": VERSION,
        "source": "memsilo 0.1.0 data directory (LMDB mdb.master, heed 0.23)",
        "environments": listed,
    });
    frame(&mut out, b'H', header.to_string().as_bytes()).map_err(io)?;
    let mut total = 0u64;
    for (rel, listed) in paths.iter().zip(&listed) {
        total += dump_env(dir, rel, listed, &mut out)?;
    }
    let end = json!({ "environments": paths.len(), "rows": total });
    frame(&mut out, b'Z', end.to_string().as_bytes()).map_err(io)?;
    out.flush().map_err(io)
}

/// Streams one environment: `E`, its tables' `T` and `R` frames, `e`. Returns its rows.
fn dump_env(
    dir: &Path,
    rel: &str,
    listed: &serde_json::Value,
    out: &mut impl Write,
) -> Result<u64, String> {
    let io = |e: io::Error| format!("writing the stream: {e}");
    let env = open(&dir.join(rel))?;
    let lmdb = |e: heed::Error| format!("reading {rel}: {e}");
    frame(out, b'E', listed.to_string().as_bytes()).map_err(io)?;
    let tables = open_tables(&env, rel)?;
    let rtxn = env.read_txn().map_err(lmdb)?;
    let mut hash = Sha256::new();
    let mut rows = 0u64;
    let mut buf = Vec::new();
    for (name, db) in &tables.0 {
        buf.clear();
        put_frame(&mut buf, b'T', name.as_bytes());
        for row in db.iter(&rtxn).map_err(lmdb)? {
            let (key, value) = row.map_err(lmdb)?;
            let mut payload = Vec::with_capacity(4 + key.len() + value.len());
            payload.extend_from_slice(&len32(key.len())?.to_le_bytes());
            payload.extend_from_slice(key);
            payload.extend_from_slice(value);
            put_frame(&mut buf, b'R', &payload);
            rows += 1;
            if buf.len() >= 1 << 20 {
                hash.update(&buf);
                out.write_all(&buf).map_err(io)?;
                buf.clear();
            }
        }
        hash.update(&buf);
        out.write_all(&buf).map_err(io)?;
    }
    drop(rtxn);
    drop(tables);
    env.prepare_for_closing().wait();
    let sha = hex(&hash.finalize());
    let end = json!({ "path": rel, "rows": rows, "sha256": sha });
    frame(out, b'e', end.to_string().as_bytes()).map_err(io)?;
    Ok(rows)
}

/// The environments under `dir` (directories holding `data.mdb`), relative and `/`-separated,
/// in name order. A directory inside an environment (`compacting/`, a compaction cut short)
/// is not one: the environment's own file is the current one.
fn environments(dir: &Path) -> Result<Vec<String>, String> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) -> Result<(), String> {
        let here = root.join(rel);
        let mut entries: Vec<_> = std::fs::read_dir(&here)
            .map_err(|e| format!("reading {}: {e}", here.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("reading {}: {e}", here.display()))?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        if here.join(DATA_FILE).is_file() {
            let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            out.push(parts.join("/"));
            return Ok(());
        }
        for entry in entries {
            let kind = entry.file_type().map_err(|e| format!("reading {}: {e}", here.display()))?;
            if kind.is_dir() {
                walk(root, &rel.join(entry.file_name()), out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, Path::new(""), &mut out)?;
    if out.first().is_some_and(String::is_empty) {
        return Err(format!(
            "{} holds {DATA_FILE} itself: give the data directory, not one environment",
            dir.display()
        ));
    }
    if !out.iter().any(|p| p == "catalog") {
        return Err(format!(
            "{} has no catalog/{DATA_FILE}: not a memsilo data directory",
            dir.display()
        ));
    }
    Ok(out)
}

/// Opens an environment read-only, without LMDB's lock file.
fn open(path: &Path) -> Result<Env, String> {
    let size = std::fs::metadata(path.join(DATA_FILE))
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let map_size = usize::try_from(size.next_power_of_two().max(1 << 20))
        .map_err(|_| format!("{}: file too large", path.display()))?;
    // SAFETY: the directory's lock is held (by this process or the upgrade that started it),
    // so no process writes or truncates the file while it is mapped; it is opened once here.
    unsafe {
        EnvOpenOptions::new()
            .map_size(map_size)
            .max_dbs(MAX_DBS)
            .flags(EnvFlags::READ_ONLY | EnvFlags::NO_LOCK | EnvFlags::NO_READ_AHEAD)
            .open(path)
    }
    .map_err(|e| format!("opening {} (is it a memsilo 0.1.0 directory?): {e}", path.display()))
}

/// An environment's named databases, their rows as raw bytes, in name order.
struct Tables<'t>(Vec<(String, Database<'t, Bytes, Bytes>)>);

impl OnCommit for Tables<'_> {
    type Committed = Tables<'static>;

    fn on_commit(self, token: &CommitToken) -> Tables<'static> {
        Tables(self.0.into_iter().map(|(name, db)| (name, db.on_commit(token))).collect())
    }
}

/// The named databases of an environment (the keys of its main database), in name order.
fn open_tables(env: &Env, rel: &str) -> Result<Tables<'static>, String> {
    let lmdb = |e: heed::Error| format!("reading {rel}: {e}");
    let rtxn = env.read_txn().map_err(lmdb)?;
    env.open_databases_and_commit(rtxn, |opener, rtxn| -> heed::Result<_> {
        let Some(main) = opener.open_database::<Str, DecodeIgnore>(rtxn, None)? else {
            return Ok(CommitOrAbort::Commit(Tables(Vec::new())));
        };
        let names: Vec<String> = main
            .iter(rtxn)?
            .map(|r| r.map(|(name, ())| name.to_owned()))
            .collect::<Result<_, _>>()?;
        let mut tables = Vec::new();
        for name in names {
            if let Some(db) = opener.open_database::<Bytes, Bytes>(rtxn, Some(&name))? {
                tables.push((name, db));
            }
        }
        Ok(CommitOrAbort::<_, ()>::Commit(Tables(tables)))
    })
    .map_err(lmdb)
    .map(CommitOrAbort::unwrap_commit)
}

/// The named databases of an environment and their row counts.
fn tables(env: &Env, rel: &str) -> Result<BTreeMap<String, u64>, String> {
    let lmdb = |e: heed::Error| format!("reading {rel}: {e}");
    let tables = open_tables(env, rel)?;
    let rtxn = env.read_txn().map_err(lmdb)?;
    tables.0.iter().map(|(name, db)| Ok((name.clone(), db.len(&rtxn).map_err(lmdb)?))).collect()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn len32(n: usize) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("a row of {n} bytes does not fit the stream's framing"))
}

fn put_frame(buf: &mut Vec<u8>, tag: u8, payload: &[u8]) {
    buf.push(tag);
    // Rows are far below 4 GiB (LMDB values of memsilo: records, vectors, postings).
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(payload);
}

fn frame(out: &mut impl Write, tag: u8, payload: &[u8]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(5 + payload.len());
    put_frame(&mut buf, tag, payload);
    out.write_all(&buf)
}

/// Takes `DIR/LOCK` exclusively, as the engine does, so no server has the directory open.
fn lock_directory(dir: &Path) -> Result<std::fs::File, String> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(format!(
                "data directory {} is open in another process; stop it first",
                dir.display()
            ));
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The 0.1.0 fixture, unpacked into a temporary directory (its data directory is `data/`).
    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let tar = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/data-0.1.0/data.tar.gz");
        let status = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(tar)
            .arg("-C")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        dir
    }

    /// The frames of a stream: (tag, payload).
    fn frames(stream: &[u8]) -> Vec<(u8, &[u8])> {
        assert_eq!(&stream[..16], MAGIC);
        let mut rest = &stream[16..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_le_bytes(rest[1..5].try_into().unwrap()) as usize;
            out.push((rest[0], &rest[5..5 + len]));
            rest = &rest[5 + len..];
        }
        out
    }

    /// Every environment of the fixture is streamed: each table's rows as the header counts
    /// them, each environment's checksum over its frames, and the end frame's totals.
    #[test]
    fn the_fixture_streams_every_table_with_counts_and_checksums() {
        let dir = fixture();
        let mut stream = Vec::new();
        dump(&dir.path().join("data"), false, &mut stream).unwrap();
        let frames = frames(&stream);
        let header: Value = serde_json::from_slice(frames[0].1).unwrap();
        assert_eq!(frames[0].0, b'H');
        let envs = header["environments"].as_array().unwrap();
        let paths: Vec<&str> = envs.iter().map(|e| e["path"].as_str().unwrap()).collect();
        assert!(paths.contains(&"catalog") && paths.iter().any(|p| p.starts_with("shards/")));
        assert!(
            paths.iter().any(|p| p.starts_with("tenants/"))
                && paths.iter().any(|p| p.starts_with("namespaces/"))
        );
        assert!(paths.iter().any(|p| p.starts_with("indexes/")), "{paths:?}");

        let (mut env, mut table, mut hash) = (None::<Value>, String::new(), Sha256::new());
        let mut counted: BTreeMap<String, u64> = BTreeMap::new();
        let (mut ended, mut rows_total) = (0, 0);
        for (tag, payload) in &frames[1..] {
            let whole = {
                let mut f = vec![*tag];
                f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                f.extend_from_slice(payload);
                f
            };
            match tag {
                b'E' => {
                    env = Some(serde_json::from_slice(payload).unwrap());
                    counted.clear();
                    hash = Sha256::new();
                }
                b'T' => {
                    table = String::from_utf8(payload.to_vec()).unwrap();
                    counted.insert(table.clone(), 0);
                    hash.update(&whole);
                }
                b'R' => {
                    *counted.get_mut(&table).unwrap() += 1;
                    hash.update(&whole);
                }
                b'e' => {
                    let end: Value = serde_json::from_slice(payload).unwrap();
                    let began = env.take().unwrap();
                    let tables: BTreeMap<String, u64> =
                        serde_json::from_value(began["tables"].clone()).unwrap();
                    assert_eq!(tables, counted, "{}", began["path"]);
                    let rows: u64 = counted.values().sum();
                    assert_eq!(end["rows"], rows);
                    let sha = hex(&std::mem::take(&mut hash).finalize());
                    assert_eq!(end["sha256"], sha.as_str());
                    rows_total += rows;
                    ended += 1;
                }
                b'Z' => {
                    let end: Value = serde_json::from_slice(payload).unwrap();
                    assert_eq!(end["environments"], envs.len());
                    assert_eq!(end["rows"], rows_total);
                }
                other => panic!("unknown frame {other}"),
            }
        }
        assert_eq!(frames.last().unwrap().0, b'Z');
        assert_eq!(ended, envs.len());
        // The catalog holds the fixture's tenants, keys and audit log.
        let catalog = &envs[0]["tables"];
        assert_eq!(catalog["tenants"], 5);
        assert!(catalog["audit_entries"].as_u64().unwrap() > 0);
    }

    /// A directory that a process holds (a running server) is refused unless the caller
    /// says it holds the lock; a directory without a catalog is not a data directory.
    #[test]
    fn a_locked_or_foreign_directory_is_refused() {
        let dir = fixture();
        let data = dir.path().join("data");
        let held = lock_directory(&data).unwrap();
        let err = dump(&data, false, &mut Vec::new()).unwrap_err();
        assert!(err.contains("open in another process"), "{err}");
        dump(&data, true, &mut Vec::new()).unwrap();
        drop(held);
        let empty = tempfile::tempdir().unwrap();
        let err = dump(empty.path(), false, &mut Vec::new()).unwrap_err();
        assert!(err.contains("not a memsilo data directory"), "{err}");
    }
}
