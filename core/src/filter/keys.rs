//! The secondary keys (table `fields`): their encoding, writing them with a memory, and giving
//! them to the memories of a namespace written before they existed.

use chrono::{DateTime, Utc};
use heed3::RwTxn;
use serde_json::{Map, Value};

use super::{Field, Operand};
use crate::datastore::{ns_key, DataTables, NamespaceId, NamespaceStats};
use crate::error::Result;
use crate::records::memory::decode_record;
use crate::records::Memory;
use crate::storage::RoTxn;
use crate::store::Store;

/// Bytes of a metadata path or string value kept in a secondary key.
pub(super) const KEY_PART: usize = 200;

pub(super) const TAG_AGENT: u8 = 1;
pub(super) const TAG_SESSION: u8 = 2;
pub(super) const TAG_TYPE: u8 = 3;
pub(super) const TAG_TAGS: u8 = 4;
/// Order keys of `list_memories` (8-byte values).
pub(crate) const TAG_IMPORTANCE: u8 = 5;
pub(crate) const TAG_CREATED: u8 = 6;
pub(crate) const TAG_UPDATED: u8 = 7;
pub(super) const TAG_META: u8 = 8;

/// Order-preserving bytes of an f64.
pub(crate) fn f64_key(v: f64) -> [u8; 8] {
    let bits = v.to_bits();
    let flipped = if bits >> 63 == 1 { !bits } else { bits | (1 << 63) };
    flipped.to_be_bytes()
}

/// The f64 whose [`f64_key`] is `key`.
fn f64_of_key(key: [u8; 8]) -> f64 {
    let bits = u64::from_be_bytes(key);
    f64::from_bits(if bits >> 63 == 1 { bits & !(1 << 63) } else { !bits })
}

/// The lowest and the highest stored importance of namespace `ns`'s memories, from its
/// `importance` order keys (`None`: it has none). Only for a namespace whose memories all have
/// their keys (`NamespaceStats::fields_indexed`); a key left of a memory since changed
/// widens the range, never narrows it.
pub(crate) fn importance_range(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
) -> Result<Option<(f64, f64)>> {
    use std::ops::Bound::{Excluded, Included};
    let (first, end) = (ns_key(ns, &[TAG_IMPORTANCE]), ns_key(ns, &[TAG_IMPORTANCE + 1]));
    let bounds = (Included(first.as_slice()), Excluded(end.as_slice()));
    let value = |k: &[u8]| k.get(9..17).and_then(|v| <[u8; 8]>::try_from(v).ok()).map(f64_of_key);
    let Some(low) = t.fields.range(r, &bounds)?.next().transpose()?.and_then(|(k, _)| value(k))
    else {
        return Ok(None);
    };
    let high = t.fields.rev_range(r, &bounds)?.next().transpose()?.and_then(|(k, _)| value(k));
    Ok(high.map(|high| (low, high)))
}

/// Order-preserving bytes of an i64.
pub(crate) fn i64_key(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

const K_NULL: u8 = 1;
const K_FALSE: u8 = 2;
const K_TRUE: u8 = 3;
const K_NUM: u8 = 4;
const K_STR: u8 = 5;

/// The encoded value of a variable-length (string or metadata) key part, with its end mark.
fn value_key(v: &Value, out: &mut Vec<u8>) -> bool {
    match v {
        Value::Null => out.push(K_NULL),
        Value::Bool(false) => out.push(K_FALSE),
        Value::Bool(true) => out.push(K_TRUE),
        Value::Number(n) => {
            out.push(K_NUM);
            out.extend_from_slice(&f64_key(n.as_f64().unwrap_or(0.0)));
        }
        Value::String(s) => str_key(s, out),
        Value::Array(_) | Value::Object(_) => return false,
    }
    out.push(0);
    true
}

/// Bytes [`str_key`] writes for `s`.
fn str_key_len(s: &str) -> usize {
    1 + s.len().min(KEY_PART)
}

fn str_key(s: &str, out: &mut Vec<u8>) {
    out.push(K_STR);
    key_part(s.as_bytes(), out);
}

/// `bytes` as a key part: cut to [`KEY_PART`] and with NUL bytes mapped to 1 (a lossy key, so
/// still a superset of the matches).
fn key_part(bytes: &[u8], out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&bytes[..bytes.len().min(KEY_PART)]);
    for b in &mut out[at..] {
        if *b == 0 {
            *b = 1;
        }
    }
}

pub(super) fn path_key(path: &[String], out: &mut Vec<u8>) {
    key_part(path.join(".").as_bytes(), out);
    out.push(0);
}

/// The field-and-value prefix of a key (after the namespace), for a value of `field`.
pub(super) fn prefix(field: &Field, v: &Operand) -> Option<Vec<u8>> {
    let mut out = vec![field.tag()?];
    match (field, v) {
        (Field::Importance, Operand::Json(Value::Number(n))) => {
            out.extend_from_slice(&f64_key(n.as_f64()?));
        }
        (Field::CreatedAt | Field::UpdatedAt, Operand::Time(t)) => {
            out.extend_from_slice(&i64_key(*t));
        }
        (Field::Meta(path), Operand::Json(v)) => {
            path_key(path, &mut out);
            if !value_key(v, &mut out) {
                return None;
            }
        }
        (_, Operand::Json(Value::String(s))) => {
            str_key(s, &mut out);
            out.push(0);
        }
        _ => return None,
    }
    Some(out)
}

/// Every secondary key (after the namespace, before the memory key) of memory `m`, sorted and
/// free of duplicates: what [`put_keys`] and [`update_keys`] write, computed before a write's
/// transaction where it can be (see `memory::write::look_ahead`).
pub(crate) fn keys_of(m: &Memory) -> Vec<Vec<u8>> {
    // Each key is allocated at its size: a write builds these for every memory it stores and
    // every memory it replaces.
    let mut out = Vec::with_capacity(6 + m.tags.len() + m.metadata.len());
    let one = |tag: u8, s: &str| {
        let mut k = Vec::with_capacity(str_key_len(s) + 2);
        k.push(tag);
        str_key(s, &mut k);
        k.push(0);
        k
    };
    if let Some(a) = &m.agent_id {
        out.push(one(TAG_AGENT, a));
    }
    if let Some(s) = &m.session_id {
        out.push(one(TAG_SESSION, s));
    }
    out.push(one(TAG_TYPE, m.memory_type.as_str()));
    for t in &m.tags {
        out.push(one(TAG_TAGS, t));
    }
    let order = |tag: u8, value: [u8; 8]| {
        let mut k = Vec::with_capacity(9);
        k.push(tag);
        k.extend_from_slice(&value);
        k
    };
    out.push(order(TAG_IMPORTANCE, f64_key(m.importance)));
    out.push(order(TAG_CREATED, i64_key(m.created_at.timestamp_micros())));
    out.push(order(TAG_UPDATED, i64_key(m.updated_at.timestamp_micros())));
    meta_keys(&m.metadata, &mut Vec::new(), &mut out);
    out.sort_unstable();
    out.dedup();
    out
}

/// The [`keys_of`] of a memory whose keys are `keys` but for its `updated_at`, which is
/// `updated_at`: a copy of `keys` with that order key changed (it stays in its place, the only
/// key of its tag).
pub(crate) fn with_updated_at(keys: &[Vec<u8>], updated_at: DateTime<Utc>) -> Vec<Vec<u8>> {
    let mut out = keys.to_vec();
    for k in &mut out {
        if k.first() == Some(&TAG_UPDATED) {
            k.truncate(1);
            k.extend_from_slice(&i64_key(updated_at.timestamp_micros()));
        }
    }
    out
}

/// The metadata keys of `map` under `path` (the joined path so far, as [`path_key`] joins it).
fn meta_keys(map: &Map<String, Value>, path: &mut Vec<u8>, out: &mut Vec<Vec<u8>>) {
    for (k, v) in map {
        let at = path.len();
        if at > 0 {
            path.push(b'.');
        }
        path.extend_from_slice(k.as_bytes());
        match v {
            Value::Object(inner) => meta_keys(inner, path, out),
            Value::Array(items) => out.extend(items.iter().filter_map(|v| meta_key(path, v))),
            scalar => out.extend(meta_key(path, scalar)),
        }
        path.truncate(at);
    }
}

/// The metadata key of value `v` at the joined `path` (`None`: an array or object, which
/// have none).
fn meta_key(path: &[u8], v: &Value) -> Option<Vec<u8>> {
    let value_len = match v {
        Value::String(s) => str_key_len(s),
        Value::Number(_) => 9,
        _ => 1,
    };
    let mut key = Vec::with_capacity(1 + path.len().min(KEY_PART) + 1 + value_len + 1);
    key.push(TAG_META);
    key_part(path, &mut key);
    key.push(0);
    value_key(v, &mut key).then_some(key)
}

/// Whether a key part is an order key (`importance`, `created_at`, `updated_at`), which
/// `list_memories` walks in key order: those end in the memory key right after the value, so
/// equal values list in memory key order, as cursors made before expect.
fn is_order(part: &[u8]) -> bool {
    matches!(part.first(), Some(&(TAG_IMPORTANCE | TAG_CREATED | TAG_UPDATED)))
}

/// The key of `part` for memory `mem` with vector `slot`. A value key (every key but the
/// order keys) holds the slot before the memory key: memories written together have adjacent
/// slots, so a batch's keys of one value are adjacent too and dirty a page or two, not one page
/// per memory (memory keys of callers' ids are hashes, spread over the value's whole range).
/// Readers take the memory key from the last 16 bytes, whatever the layout.
fn full_key(ns: NamespaceId, part: &[u8], mem: &[u8; 16], slot: Option<u32>) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + part.len() + 4 + 16);
    k.extend_from_slice(&ns.to_be_bytes());
    k.extend_from_slice(part);
    if !is_order(part) {
        k.extend_from_slice(&slot_value(slot));
    }
    k.extend_from_slice(mem);
    k
}

/// Slot value of a secondary key (and the slot part of a value key).
fn slot_value(slot: Option<u32>) -> [u8; 4] {
    slot.unwrap_or(u32::MAX).to_be_bytes()
}

/// Which keys a namespace may hold for its memories: [`Layout::WithLegacy`] when its keys were
/// first written by an earlier version, whose value keys had no slot (`ns ‖ part ‖ memory
/// key`). Those are read as they are (the memory key is still last) and deleted beside the
/// current key when their memory changes, so no upgrade rewrites a namespace's keys at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    Current,
    WithLegacy,
}

impl Layout {
    /// The layout of a namespace with these stats.
    pub(crate) fn of(stats: &NamespaceStats) -> Layout {
        if stats.fields_by_slot {
            Layout::Current
        } else {
            Layout::WithLegacy
        }
    }
}

fn delete_key(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    part: &[u8],
    mem: &[u8; 16],
    slot: Option<u32>,
    layout: Layout,
) -> Result<()> {
    t.fields.delete(w, &full_key(ns, part, mem, slot))?;
    if layout == Layout::WithLegacy && !is_order(part) {
        let mut legacy = ns.to_be_bytes().to_vec();
        legacy.extend_from_slice(part);
        legacy.extend_from_slice(mem);
        t.fields.delete(w, &legacy)?;
    }
    Ok(())
}

/// Writes the secondary keys of a memory stored under `mem` with vector `slot`: `parts`, its
/// [`keys_of`].
pub(crate) fn put_keys(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    mem: &[u8; 16],
    parts: &[Vec<u8>],
    slot: Option<u32>,
) -> Result<()> {
    for part in parts {
        t.fields.put(w, &full_key(ns, part, mem, slot), &slot_value(slot))?;
    }
    Ok(())
}

/// Deletes the secondary keys of memory `m` stored under `mem` with vector `slot`.
pub(crate) fn delete_keys(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    (mem, slot): (&[u8; 16], Option<u32>),
    m: &Memory,
    layout: Layout,
) -> Result<()> {
    for part in keys_of(m) {
        delete_key(t, w, ns, &part, mem, slot, layout)?;
    }
    Ok(())
}

/// Rewrites the secondary keys of a memory stored under `mem` whose vector slot did not
/// change, from `old` (the stored memory's [`keys_of`]) to `new` (the new memory's): deletes
/// the keys `new` lacks and writes those it adds; keys whose value did not change are not
/// touched (an upsert that changes one field dirties one key's page, not ten). The old
/// `updated_at` key, which every upsert replaces, is left in place: its value is returned, to
/// be noted as stale (see [`super::stale`]).
pub(crate) fn update_keys(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    (mem, slot): (&[u8; 16], Option<u32>),
    (old, new): (&[Vec<u8>], &[Vec<u8>]),
    layout: Layout,
) -> Result<Option<[u8; 8]>> {
    let mut stale = None;
    for part in not_in(old, new) {
        if part.first() == Some(&TAG_UPDATED) {
            stale = part.get(1..9).and_then(|v| v.try_into().ok());
            continue;
        }
        delete_key(t, w, ns, part, mem, slot, layout)?;
    }
    for part in not_in(new, old) {
        t.fields.put(w, &full_key(ns, part, mem, slot), &slot_value(slot))?;
    }
    Ok(stale)
}

/// The keys of `a` that `b` lacks, in order; both sorted and free of duplicates (as
/// [`keys_of`] makes them), so one walk over both finds them.
fn not_in<'a>(a: &'a [Vec<u8>], b: &'a [Vec<u8>]) -> impl Iterator<Item = &'a Vec<u8>> {
    let mut b = b.iter().peekable();
    a.iter().filter(move |k| {
        while b.next_if(|o| o < k).is_some() {}
        b.peek() != Some(k)
    })
}

/// Gives every memory of namespace `ns` (in data environment `env`) written before secondary
/// keys existed its keys, in one write transaction. A no-op once done, or for a namespace
/// without memories.
pub(crate) fn ensure_indexed(env: &Store<DataTables>, ns: NamespaceId) -> Result<()> {
    let stats = env.read(|r, t| t.stats_of(r, ns))?;
    if stats.fields_indexed || stats.memory_count == 0 {
        return Ok(());
    }
    env.write_ns(ns, |w, t| {
        let mut stats = t.stats_of(w, ns)?;
        if !stats.fields_indexed {
            build_all(t, w, ns, &mut stats)?;
            t.put_stats(w, ns, &stats)?;
        }
        Ok(())
    })
}

/// Writes the secondary keys of every memory of a namespace written before they existed, and
/// notes in `stats` that it has them (all in the current layout).
pub(crate) fn build_all(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    stats: &mut NamespaceStats,
) -> Result<()> {
    let mut rows = Vec::new();
    for e in t.memories.prefix_iter(w, &ns.to_be_bytes())? {
        let (k, bytes) = e?;
        let Some(mem) = k.get(8..24).and_then(|m| <[u8; 16]>::try_from(m).ok()) else {
            continue;
        };
        let s = decode_record(bytes)?;
        rows.push((mem, s.memory, s.slot));
    }
    for (mem, m, slot) in rows {
        put_keys(t, w, ns, &mem, &keys_of(&m), slot)?;
    }
    stats.fields_indexed = true;
    stats.fields_by_slot = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::not_in;

    /// One walk finds what a search of the other list for each key finds, in the same order.
    #[test]
    fn not_in_is_the_difference_in_order() {
        let mut next = crate::testing::xorshift(0x2545_f491_4f6c_dd1d);
        let mut keys = |n: usize| {
            let mut out: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let seed = next();
                    seed.to_be_bytes()[..=(seed % 3) as usize].iter().map(|b| b % 4).collect()
                })
                .collect();
            out.sort_unstable();
            out.dedup();
            out
        };
        for (n, m) in [(0, 0), (0, 5), (5, 0), (8, 8), (20, 3), (3, 20), (30, 30)] {
            let (a, b) = (keys(n), keys(m));
            let want: Vec<_> = a.iter().filter(|k| b.binary_search(k).is_err()).collect();
            assert_eq!(not_in(&a, &b).collect::<Vec<_>>(), want, "{a:?} without {b:?}");
        }
    }
}
