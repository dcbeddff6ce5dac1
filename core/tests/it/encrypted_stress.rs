//! A stress of LMDB's cache of decrypted pages (third_party/lmdb-master3-sys/PATCHES.md) in
//! one encrypted environment: six tables with overflow values, a writer changing and deleting
//! rows, a slow full scan in one long transaction (as a key rotation's copy), and readers
//! that keep some transactions across reads and open fresh ones; every value read is checked.
//! The stress is ignored by default (it runs for `STRESS_SECS`, default 10):
//! `STRESS_SECS=60 cargo test -p memsilo --test it encrypted_stress -- --ignored`. The spill
//! test runs always (about 40 s, 600 MB of memory and of a temporary file).
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chacha20poly1305::{ChaCha20Poly1305, Key};
use heed3::types::Bytes;
use heed3::{CommitOrAbort, EncryptedDatabase, EncryptedEnv, EnvOpenOptions};

const TABLES: usize = 6;

fn rows() -> u32 {
    std::env::var("STRESS_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(3000)
}

fn value(t: usize, key: u32, round: u32) -> Vec<u8> {
    let len = if key.is_multiple_of(11) {
        4500 + (key as usize % 5) * 3000
    } else {
        30 + (key as usize * 13 + round as usize * 7 + t) % 600
    };
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&key.to_be_bytes());
    v.extend_from_slice(&round.to_be_bytes());
    v.push(t as u8);
    let mut x = key.wrapping_mul(2_654_435_761) ^ round.wrapping_mul(40_503) ^ (t as u32);
    while v.len() < len {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        v.push((x >> 24) as u8);
    }
    v
}

fn check(t: usize, key: &[u8], v: &[u8]) -> Result<(), String> {
    let k = u32::from_be_bytes(key.try_into().map_err(|_| format!("a key of {key:?}"))?);
    let round = v.get(4..8).map(|r| u32::from_be_bytes(r.try_into().unwrap()));
    match round {
        Some(round) if v == value(t, k, round).as_slice() => Ok(()),
        _ => Err(format!("t{t} row {k}: {} garbled {:02x?}", v.len(), &v[..v.len().min(16)])),
    }
}

#[test]
#[ignore = "stress: runs for STRESS_SECS"]
#[allow(clippy::too_many_lines)] // the threads of one scenario, read top to bottom
fn encrypted_stress_many_tables() {
    let secs: f64 = std::env::var("STRESS_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(10.0);
    let rows = rows();
    let dir = tempfile::tempdir().unwrap();
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    options.map_size(1 << 30).max_dbs(16).max_readers(64);
    let env = unsafe {
        options.open_encrypted::<ChaCha20Poly1305, _>(Key::from([7u8; 32]), dir.path()).unwrap()
    };
    let wtxn = env.write_txn().unwrap();
    let dbs: [EncryptedDatabase<'static, Bytes, Bytes>; TABLES] = env
        .create_databases_and_commit(wtxn, |o, w| {
            let mut v = Vec::new();
            for t in 0..TABLES {
                v.push(o.create_database::<Bytes, Bytes>(w, Some(&format!("t{t}")))?);
            }
            let a: [_; TABLES] = v.try_into().unwrap_or_else(|_| unreachable!());
            Ok::<_, heed3::Error>(CommitOrAbort::<_, ()>::Commit(a))
        })
        .unwrap()
        .unwrap_commit();
    let mut wtxn = env.write_txn().unwrap();
    for (t, db) in dbs.iter().enumerate() {
        for key in 0..rows {
            db.put(&mut wtxn, &key.to_be_bytes(), &value(t, key, 0)).unwrap();
        }
    }
    wtxn.commit().unwrap();
    let stop = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let commits = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let failures: Vec<String> = std::thread::scope(|s| {
        let (env, dbs, stop, reads, commits) = (&env, &dbs, &stop, &reads, &commits);
        let mut handles = Vec::new();
        handles.push(s.spawn(move || {
            let mut round = 1u32;
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                let mut wtxn = env.write_txn().map_err(|e| e.to_string())?;
                for (t, db) in dbs.iter().enumerate() {
                    if !(round as usize + t).is_multiple_of(3) {
                        continue;
                    }
                    let start = round.wrapping_mul(389) % rows;
                    for i in 0..30 {
                        let key = (start + i * 17) % rows;
                        if i % 5 == 0 {
                            db.delete(&mut wtxn, &key.to_be_bytes()).map_err(|e| e.to_string())?;
                        }
                        db.put(&mut wtxn, &key.to_be_bytes(), &value(t, key, round))
                            .map_err(|e| format!("writer: {e}"))?;
                    }
                }
                wtxn.commit().map_err(|e| format!("commit: {e}"))?;
                commits.fetch_add(1, Ordering::Relaxed);
                round += 1;
            }
            Ok::<_, String>(())
        }));
        // A slow full scan across tables in one long txn (as a rekey's copy).
        handles.push(s.spawn(move || {
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                let mut rtxn = env.read_txn().map_err(|e| e.to_string())?;
                for (t, db) in dbs.iter().enumerate() {
                    let mut count = 0;
                    let mut keys = Vec::new();
                    for row in db.iter(&mut rtxn).map_err(|e| e.to_string())? {
                        let (k, v) = row.map_err(|e| format!("scan: {e}"))?;
                        check(t, k, v)?;
                        keys.push(k.to_vec());
                        count += 1;
                        if count % 200 == 0 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                    if count != rows {
                        return Err(format!("t{t}: a scan saw {count} rows of {rows}"));
                    }
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
        for r in 0..5usize {
            handles.push(s.spawn(move || {
                let mut n = r as u32;
                let mut kept: Option<heed3::RoTxn<'_, heed3::WithoutTls>> = None;
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    let mut rtxn = match kept.take() {
                        Some(t) if !n.is_multiple_of(3) => t,
                        _ => env.read_txn().map_err(|e| e.to_string())?,
                    };
                    for i in 0..20u32 {
                        let t = ((n + i) as usize) % TABLES;
                        let key = (n.wrapping_mul(7919) + i * 131) % rows;
                        let k = key.to_be_bytes();
                        let v = dbs[t].get(&mut rtxn, &k).map_err(|e| format!("get: {e}"))?;
                        if let Some(v) = v {
                            check(t, &k, v)?;
                        }
                    }
                    if n.is_multiple_of(2) {
                        kept = Some(rtxn);
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                    n += 5;
                }
                Ok(())
            }));
        }
        let mut failures = Vec::new();
        for h in handles {
            if let Err(e) = h.join().unwrap() {
                stop.store(true, Ordering::Relaxed);
                failures.push(e);
            }
        }
        failures
    });
    eprintln!(
        "reads {} commits {}",
        reads.load(Ordering::Relaxed),
        commits.load(Ordering::Relaxed)
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A transaction with more dirty pages than LMDB's dirty list holds (2^17 - 1 entries) spills
/// some to the file under its txnid; reading one back goes through the cache of decrypted
/// pages, and rewriting it writes the same page number under the same txnid again at commit.
/// Decrypted pages are kept across transactions, so unless a write drops its page's decrypted
/// copy (`mdb_rpage_forget`), the next reader is served the spilled version.
#[test]
fn a_page_spilled_and_rewritten_in_one_transaction_is_read_as_committed() {
    const VALUES: u32 = 140_000; // one overflow page each (3,000 bytes), plus the leaves
    let value = |key: u32, round: u8| {
        let mut v = vec![round; 3000];
        v[..4].copy_from_slice(&key.to_be_bytes());
        v
    };
    let dir = tempfile::tempdir().unwrap();
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    options.map_size(2 << 30).max_dbs(1);
    // SAFETY: a test's scratch file; nothing needs it after a crash.
    unsafe { options.flags(heed3::EnvFlags::NO_SYNC) };
    let env = unsafe {
        options.open_encrypted::<ChaCha20Poly1305, _>(Key::from([9u8; 32]), dir.path()).unwrap()
    };
    let db = main_table(&env);
    let mut wtxn = env.write_txn().unwrap();
    for key in 0..VALUES {
        db.put(&mut wtxn, &key.to_be_bytes(), &value(key, 1)).unwrap();
    }
    // The spill took the pages allocated last before it (the tail of the dirty list): values
    // somewhere below 131,000. Read some back from the file, then rewrite them in place.
    let rewritten: Vec<u32> = (100_000..131_000).step_by(97).collect();
    for &key in &rewritten {
        let got = db.get(&mut wtxn, &key.to_be_bytes()).unwrap().expect("stored");
        assert_eq!(got, value(key, 1).as_slice(), "value {key} before the rewrite");
    }
    for &key in &rewritten {
        db.put(&mut wtxn, &key.to_be_bytes(), &value(key, 2)).unwrap();
    }
    wtxn.commit().unwrap();
    let mut rtxn = env.read_txn().unwrap();
    let stale: Vec<u32> = rewritten
        .iter()
        .copied()
        .filter(|key| {
            let got = db.get(&mut rtxn, &key.to_be_bytes()).unwrap().expect("stored");
            got != value(*key, 2).as_slice()
        })
        .collect();
    assert!(
        stale.is_empty(),
        "{} of {} values read as before the commit: {stale:?}",
        stale.len(),
        rewritten.len()
    );
}

/// The unnamed (main) table of a new environment, made and committed.
pub(crate) fn main_table<T>(env: &EncryptedEnv<T>) -> EncryptedDatabase<'static, Bytes, Bytes> {
    env.create_databases_and_commit(env.write_txn().unwrap(), |o, w| {
        let db = o.create_database::<Bytes, Bytes>(w, None)?;
        Ok::<_, heed3::Error>(CommitOrAbort::<_, ()>::Commit(db))
    })
    .unwrap()
    .unwrap_commit()
}
