//! What LMDB's cache of decrypted pages spares (third_party/lmdb-master3-sys/PATCHES.md,
//! "Fourth change"): a page a commit wrote is kept decrypted, so the next transaction, the
//! next writer's or a reader's, reads it without opening it again; and what it reads is
//! what was committed. The cipher here is AES-256-GCM-SIV counting the pages it opens.

use std::sync::atomic::{AtomicU64, Ordering};

use aes_gcm_siv::aead::consts::{U0, U12, U16, U32};
use aes_gcm_siv::aead::{AeadCore, AeadInPlace, Key, KeyInit, KeySizeUser, Nonce, Tag};
use aes_gcm_siv::Aes256GcmSiv;
use heed3::types::Bytes;
use heed3::{EncryptedDatabase, EncryptedEnv, EnvOpenOptions, WithoutTls};

use crate::encrypted_stress::main_table;

/// Pages opened by [`Counting`] so far (only this file's test uses it).
static OPENED: AtomicU64 = AtomicU64::new(0);

/// AES-256-GCM-SIV, counting in [`OPENED`] every page it opens.
struct Counting(Aes256GcmSiv);

impl KeySizeUser for Counting {
    type KeySize = U32;
}

impl KeyInit for Counting {
    fn new(key: &Key<Self>) -> Self {
        Counting(Aes256GcmSiv::new(key))
    }
}

impl AeadCore for Counting {
    type NonceSize = U12;
    type TagSize = U16;
    type CiphertextOverhead = U0;
}

impl AeadInPlace for Counting {
    fn encrypt_in_place_detached(
        &self,
        nonce: &Nonce<Self>,
        aad: &[u8],
        buffer: &mut [u8],
    ) -> aes_gcm_siv::aead::Result<Tag<Self>> {
        self.0.encrypt_in_place_detached(nonce, aad, buffer)
    }

    fn decrypt_in_place_detached(
        &self,
        nonce: &Nonce<Self>,
        aad: &[u8],
        buffer: &mut [u8],
        tag: &Tag<Self>,
    ) -> aes_gcm_siv::aead::Result<()> {
        OPENED.fetch_add(1, Ordering::Relaxed);
        self.0.decrypt_in_place_detached(nonce, aad, buffer, tag)
    }
}

fn value(key: u32, round: u32) -> Vec<u8> {
    let mut v = vec![(key ^ round) as u8; 100 + (key as usize * 7) % 50];
    v[..4].copy_from_slice(&key.to_be_bytes());
    v[4..8].copy_from_slice(&round.to_be_bytes());
    v
}

/// Reads rows `0..rows` in a new read transaction: each must hold `rounds[key]`'s value.
/// Returns how many pages were opened meanwhile.
fn read_all(
    env: &EncryptedEnv<WithoutTls>,
    db: EncryptedDatabase<'static, Bytes, Bytes>,
    rounds: &[u32],
) -> u64 {
    let before = OPENED.load(Ordering::Relaxed);
    let mut rtxn = env.read_txn().unwrap();
    for (key, &round) in (0u32..).zip(rounds) {
        let got = db.get(&mut rtxn, &key.to_be_bytes()).unwrap().expect("stored");
        assert_eq!(got, value(key, round).as_slice(), "row {key}");
    }
    OPENED.load(Ordering::Relaxed) - before
}

/// A new encrypted environment in `dir`, sealed by [`Counting`] under a key of `key` bytes.
fn open(dir: &tempfile::TempDir, key: u8) -> EncryptedEnv<WithoutTls> {
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    options.map_size(1 << 28).max_dbs(1);
    // SAFETY: a fresh directory, opened once, never truncated.
    unsafe {
        options.open_encrypted::<Counting, _>(Key::<Counting>::from([key; 32]), dir.path()).unwrap()
    }
}

#[test]
fn pages_a_commit_wrote_are_read_next_without_decrypting_them_again() {
    const ROWS: u32 = 300; // about a dozen leaf pages
    let dir = tempfile::tempdir().unwrap();
    let env = open(&dir, 3);
    let db = main_table(&env);
    let mut rounds = vec![0; ROWS as usize];
    // The rows, and big values deleted again: their pages, freed, are where the rewritten
    // rows' pages go, inside chunks the reads below have mapped.
    let mut wtxn = env.write_txn().unwrap();
    for key in 0..ROWS {
        db.put(&mut wtxn, &key.to_be_bytes(), &value(key, 0)).unwrap();
    }
    for key in 1000..1100u32 {
        db.put(&mut wtxn, &key.to_be_bytes(), &[7; 3000]).unwrap();
    }
    wtxn.commit().unwrap();
    let mut rtxn = env.read_txn().unwrap();
    assert_eq!(db.iter(&mut rtxn).unwrap().count(), ROWS as usize + 100);
    drop(rtxn);
    let mut wtxn = env.write_txn().unwrap();
    for key in 1000..1100u32 {
        db.delete(&mut wtxn, &key.to_be_bytes()).unwrap();
    }
    wtxn.commit().unwrap();
    // LMDB reuses the pages a commit freed from the commit after next on: one more.
    let mut wtxn = env.write_txn().unwrap();
    db.put(&mut wtxn, &0u32.to_be_bytes(), &value(0, 0)).unwrap();
    wtxn.commit().unwrap();
    read_all(&env, db, &rounds);

    let mut reopened = Vec::new();
    for round in 1..=8u32 {
        let mut wtxn = env.write_txn().unwrap();
        for key in (round * 37..ROWS).step_by(29) {
            db.put(&mut wtxn, &key.to_be_bytes(), &value(key, round)).unwrap();
            rounds[key as usize] = round;
        }
        wtxn.commit().unwrap();
        reopened.push(read_all(&env, db, &rounds));
    }
    // Unkept, every leaf and branch page each commit wrote was opened again by the read.
    assert!(reopened.iter().all(|&n| n == 0), "pages opened after each commit: {reopened:?}");
}

#[test]
fn pages_a_commit_appends_to_the_file_are_read_next_without_decrypting_them() {
    // Every commit here writes its pages at the end of the file, into 16-page chunks no
    // transaction has read yet (PATCHES.md, "Sixth change"): they were not kept, and the
    // first read of each opened it again.
    let dir = tempfile::tempdir().unwrap();
    let env = open(&dir, 5);
    let db = main_table(&env);
    let mut rounds = Vec::new();
    let mut opened = Vec::new();
    for round in 0..4u32 {
        let mut wtxn = env.write_txn().unwrap();
        for key in rounds.len() as u32..(round + 1) * 300 {
            db.put(&mut wtxn, &key.to_be_bytes(), &value(key, round)).unwrap();
            rounds.push(round);
        }
        wtxn.commit().unwrap();
        opened.push(read_all(&env, db, &rounds));
    }
    assert!(opened.iter().all(|&n| n == 0), "pages opened after each commit: {opened:?}");
}
