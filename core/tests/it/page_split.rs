//! A leaf page split by LMDB (mdb.master3, through heed3) fits both halves: a put never fails
//! with `MDB_PAGE_FULL`. mdb.master3 pads a node's key and its data each to an even length,
//! but `mdb_page_split` chose the split point counting `EVEN(key + data)`, 2 bytes short for
//! each node whose key and data are both odd; a half counted to just fit did not, and the put
//! failed (keyword posting blocks: odd keys for terms of even length, odd values for an even
//! number of postings). See third_party/lmdb-master3-sys/PATCHES.md.
//!
//! It drives heed3 directly, plain and encrypted, on real files.

use chacha20poly1305::{ChaCha20Poly1305, Key};
use heed3::types::Bytes;
use heed3::{CommitOrAbort, EnvOpenOptions};

/// Keys of 15 bytes (odd), in the order of the table: the four rows put first, then the one
/// put between the first two.
const KEYS: [&[u8; 15]; 5] = [
    b"key-0000000000a",
    b"key-0000000000c",
    b"key-0000000000d",
    b"key-0000000000e",
    b"key-0000000000b",
];

/// Five rows for a page whose usable space is `space` bytes: four that fill one leaf page
/// (all odd), then a fifth that does not fit and goes between the first two. LMDB splits
/// the page after the second old row, and the left half (first row, new row, second row)
/// counted the old way is exactly `space` bytes: 4 bytes more than that once laid out.
fn rows(space: usize) -> Vec<(&'static [u8], Vec<u8>)> {
    // A leaf node is 8 bytes of header, the key and the data (each padded to even) and a
    // 2-byte pointer; counted the old way, EVEN(8 + 15 + 2 + data) = 25 + data for odd data.
    let first = (space * 3 / 8) | 1;
    let new = (space / 4) | 1;
    let second = space - (first + 25) - (new + 27) - 25;
    let sizes = [first, second, 101, 101, new];
    KEYS.iter()
        .zip(sizes)
        .map(|(k, len)| (&k[..], (0..len).map(|i| (i * 7 + len) as u8).collect()))
        .collect()
}

/// The usable space of a 4 KiB page is its size less the page header (24 bytes) and, when
/// encrypted, the authentication tag: every even value from 3968 to 4072 is tried, each in
/// a table of its own, so one of them is the page's whatever the header and the tag take.
fn spaces() -> impl Iterator<Item = usize> {
    (3968..=4072).step_by(2)
}

#[test]
fn a_page_split_around_rows_with_odd_keys_and_odd_values_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = EnvOpenOptions::new();
    options.map_size(1 << 26).max_dbs(64);
    // SAFETY: a fresh directory, opened once, never truncated.
    let env = unsafe { options.open(dir.path()) }.unwrap();
    let mut failed = Vec::new();
    for s in spaces() {
        let name = format!("space-{s}");
        let rows = rows(s);
        let db = env
            .create_databases_and_commit(env.write_txn().unwrap(), |o, w| {
                o.create_database::<Bytes, Bytes>(w, Some(&name))
                    .map(CommitOrAbort::<_, ()>::Commit)
            })
            .unwrap()
            .unwrap_commit();
        let mut wtxn = env.write_txn().unwrap();
        match rows.iter().try_for_each(|(k, v)| db.put(&mut wtxn, k, v)) {
            Ok(()) => wtxn.commit().unwrap(),
            Err(e) => {
                failed.push(format!("{name}: {e}"));
                continue;
            }
        }
        let rtxn = env.read_txn().unwrap();
        for (k, v) in &rows {
            assert_eq!(db.get(&rtxn, k).unwrap(), Some(&v[..]), "{name}");
        }
    }
    assert_eq!(failed, Vec::<String>::new());
}

#[test]
fn a_page_split_around_rows_with_odd_keys_and_odd_values_keeps_every_row_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = EnvOpenOptions::new();
    options.map_size(1 << 26).max_dbs(64);
    // SAFETY: a fresh directory, opened once, never truncated.
    let env =
        unsafe { options.open_encrypted::<ChaCha20Poly1305, _>(Key::from([3u8; 32]), dir.path()) }
            .unwrap();
    let mut failed = Vec::new();
    for s in spaces() {
        let name = format!("space-{s}");
        let rows = rows(s);
        let db = env
            .create_databases_and_commit(env.write_txn().unwrap(), |o, w| {
                o.create_database::<Bytes, Bytes>(w, Some(&name))
                    .map(CommitOrAbort::<_, ()>::Commit)
            })
            .unwrap()
            .unwrap_commit();
        let mut wtxn = env.write_txn().unwrap();
        match rows.iter().try_for_each(|(k, v)| db.put(&mut wtxn, k, v)) {
            Ok(()) => wtxn.commit().unwrap(),
            Err(e) => {
                failed.push(format!("{name}: {e}"));
                continue;
            }
        }
        let mut rtxn = env.read_txn().unwrap();
        for (k, v) in &rows {
            assert_eq!(db.get(&mut rtxn, k).unwrap(), Some(&v[..]), "{name}");
        }
    }
    assert_eq!(failed, Vec::<String>::new());
}
