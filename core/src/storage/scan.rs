//! Batched scans of a table that let the visitor read the same transaction between rows.

use std::ops::Bound;

use heed3::types::Bytes;

use super::{RoTxn, Table};
use crate::error::Result;

/// Rows copied per batch by [`scan`].
const SCAN_BATCH: usize = 64;

/// Visits the rows of `table` between `lo` and `hi` in key order (descending when `rev`),
/// copying them a batch at a time so that `f` may read the same transaction between rows
/// (an iterator cannot stay open across other reads: see the module documentation). `f`
/// returns whether to go on. Rows written by `f` itself are not guaranteed to be visited.
pub(crate) fn scan(
    table: &Table<Bytes, Bytes>,
    r: &mut RoTxn<'_>,
    mut lo: Bound<Vec<u8>>,
    mut hi: Bound<Vec<u8>>,
    rev: bool,
    mut f: impl FnMut(&mut RoTxn<'_>, &[u8], &[u8]) -> Result<bool>,
) -> Result<()> {
    let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(SCAN_BATCH);
    loop {
        batch.clear();
        let bounds = (as_slice(&lo), as_slice(&hi));
        if rev {
            for row in table.rev_range(r, &bounds)?.take(SCAN_BATCH) {
                let (k, v) = row?;
                batch.push((k.to_vec(), v.to_vec()));
            }
        } else {
            for row in table.range(r, &bounds)?.take(SCAN_BATCH) {
                let (k, v) = row?;
                batch.push((k.to_vec(), v.to_vec()));
            }
        }
        let full = batch.len() == SCAN_BATCH;
        for (k, v) in &batch {
            if !f(r, k, v)? {
                return Ok(());
            }
        }
        match batch.pop() {
            Some((last, _)) if full => {
                if rev {
                    hi = Bound::Excluded(last);
                } else {
                    lo = Bound::Excluded(last);
                }
            }
            _ => return Ok(()),
        }
    }
}

fn as_slice(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v),
        Bound::Excluded(v) => Bound::Excluded(v),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// [`scan`] of the rows whose keys start with `prefix`, in key order.
pub(crate) fn scan_prefix(
    table: &Table<Bytes, Bytes>,
    r: &mut RoTxn<'_>,
    prefix: &[u8],
    f: impl FnMut(&mut RoTxn<'_>, &[u8], &[u8]) -> Result<bool>,
) -> Result<()> {
    // The first key after every key with the prefix: the prefix with its last byte below
    // 0xFF incremented and the bytes after it dropped (none: no upper bound).
    let mut end = prefix.to_vec();
    let hi = loop {
        match end.pop() {
            Some(0xFF) => {}
            Some(b) => {
                end.push(b + 1);
                break Bound::Excluded(end);
            }
            None => break Bound::Unbounded,
        }
    };
    scan(table, r, Bound::Included(prefix.to_vec()), hi, false, f)
}
