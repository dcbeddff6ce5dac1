//! An encrypted LMDB environment (mdb.master3 through heed3, as the storage layer opens it)
//! read by several threads at once, alone or while one writes: every value each reader gets
//! back is the value a writer put, byte for byte (meilisearch/heed#336). Unpatched, readers
//! alone read pages another thread was decrypting again in place, and with a writer they
//! read pages as they were before the writer reused them (rows missing, `MDB_CORRUPTED`);
//! see third_party/lmdb-master3-sys/PATCHES.md.
//!
//! It drives heed3 directly, with no lock of memsilo's around the transactions.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aes_gcm_siv::{Aes256GcmSiv, Key};
use heed3::types::Bytes;
use heed3::{CommitOrAbort, EncryptedDatabase, EncryptedEnv, EnvOpenOptions, WithoutTls};

/// Rows in the table (about two hundred pages, so threads keep meeting in the same chunks of
/// 16 pages that mdb.master3 maps and decrypts); every seventh value spans overflow pages.
const ROWS: u32 = 400;
const READERS: usize = 4;
const RUN_FOR: Duration = Duration::from_secs(3);

/// The value of row `key` written in round `round`: both numbers, then bytes derived from
/// them, so a reader can tell a whole value from a garbled one.
fn value(key: u32, round: u32) -> Vec<u8> {
    let len = if key.is_multiple_of(7) {
        5000 + (key as usize % 4) * 3000
    } else {
        40 + (key as usize * 13 + round as usize * 7) % 400
    };
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&key.to_be_bytes());
    v.extend_from_slice(&round.to_be_bytes());
    let mut x = key.wrapping_mul(2_654_435_761) ^ round.wrapping_mul(40_503);
    while v.len() < len {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        v.push((x >> 24) as u8);
    }
    v
}

/// Whether `v` is a value [`value`] wrote for `key`.
fn check(key: &[u8], v: &[u8]) -> Result<(), String> {
    let k = u32::from_be_bytes(key.try_into().map_err(|_| format!("a key of {key:?}"))?);
    let round = v.get(4..8).map(|r| u32::from_be_bytes(r.try_into().unwrap()));
    match round {
        Some(round) if v == value(k, round).as_slice() => Ok(()),
        _ => Err(format!("row {k}: {} garbled bytes {:02x?}…", v.len(), &v[..v.len().min(16)])),
    }
}

/// A new encrypted environment in `dir` with one empty table, sealed as new environments are
/// (AES-256-GCM-SIV; `encrypted_stress` runs the same cache with ChaCha20-Poly1305).
fn open(
    dir: &std::path::Path,
) -> (EncryptedEnv<WithoutTls>, EncryptedDatabase<'static, Bytes, Bytes>) {
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    options.map_size(1 << 30).max_dbs(2).max_readers(64);
    // SAFETY: a fresh directory, opened once, never truncated.
    let env = unsafe {
        options
            .open_encrypted::<Aes256GcmSiv, _>(Key::<Aes256GcmSiv>::from([7u8; 32]), dir)
            .unwrap()
    };
    let wtxn = env.write_txn().unwrap();
    let db = env
        .create_databases_and_commit(wtxn, |o, w| {
            o.create_database::<Bytes, Bytes>(w, Some("rows")).map(CommitOrAbort::<_, ()>::Commit)
        })
        .unwrap()
        .unwrap_commit();
    (env, db)
}

#[test]
fn an_encrypted_environment_read_by_many_threads_returns_every_value_intact() {
    read_by_many_threads(false);
}

#[test]
fn an_encrypted_environment_read_by_many_threads_while_written_returns_every_value_intact() {
    read_by_many_threads(true);
}

/// Reads by [`READERS`] threads for [`RUN_FOR`] while one thread writes (when `writing`).
fn read_by_many_threads(writing: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (env, db) = open(dir.path());
    let mut wtxn = env.write_txn().unwrap();
    for key in 0..ROWS {
        db.put(&mut wtxn, &key.to_be_bytes(), &value(key, 0)).unwrap();
    }
    wtxn.commit().unwrap();

    let stop = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let deadline = Instant::now() + RUN_FOR;
    let failures: Vec<String> = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            // Rewrites a stretch of rows per commit (deleting some first), so pages are
            // freed and reused while readers hold older snapshots.
            let mut round = 1u32;
            while writing && Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                let mut wtxn = env.write_txn().map_err(|e| e.to_string())?;
                let start = round.wrapping_mul(389) % ROWS;
                for i in 0..40 {
                    let key = (start + i * 17) % ROWS;
                    if i.is_multiple_of(5) {
                        db.delete(&mut wtxn, &key.to_be_bytes()).map_err(|e| e.to_string())?;
                    }
                    db.put(&mut wtxn, &key.to_be_bytes(), &value(key, round))
                        .map_err(|e| format!("writer: {e}"))?;
                }
                wtxn.commit().map_err(|e| format!("commit: {e}"))?;
                round += 1;
            }
            Ok::<_, String>(())
        });
        let readers: Vec<_> = (0..READERS)
            .map(|r| {
                let (env, stop, reads) = (&env, &stop, &reads);
                s.spawn(move || {
                    let mut n = r as u32;
                    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                        let mut rtxn = env.read_txn().map_err(|e| e.to_string())?;
                        if n.is_multiple_of(4) {
                            // A whole scan: every row once, each intact.
                            let mut count = 0;
                            for row in db.iter(&mut rtxn).map_err(|e| e.to_string())? {
                                let (k, v) = row.map_err(|e| format!("scan: {e}"))?;
                                check(k, v)?;
                                count += 1;
                            }
                            if count != ROWS {
                                return Err(format!("a scan saw {count} rows of {ROWS}"));
                            }
                        } else {
                            for i in 0..50u32 {
                                let key = (n.wrapping_mul(7919) + i * 131) % ROWS;
                                let k = key.to_be_bytes();
                                let v = db.get(&mut rtxn, &k).map_err(|e| format!("get: {e}"))?;
                                check(&k, v.ok_or(format!("row {key} missing"))?)?;
                            }
                        }
                        drop(rtxn);
                        reads.fetch_add(1, Ordering::Relaxed);
                        n += READERS as u32;
                    }
                    Ok(())
                })
            })
            .collect();
        let mut failures = Vec::new();
        for t in readers.into_iter().chain([writer]) {
            if let Err(e) = t.join().unwrap() {
                stop.store(true, Ordering::Relaxed);
                failures.push(e);
            }
        }
        failures
    });
    eprintln!("read transactions: {}", reads.load(Ordering::Relaxed));
    assert!(reads.load(Ordering::Relaxed) > 0, "no read transaction ran");
    assert!(failures.is_empty(), "{failures:#?}");
}
