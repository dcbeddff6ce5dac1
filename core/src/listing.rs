//! `list_memories` (a filtered scan in a stable order with cursor pages) and `count_memories`.
//!
//! A page walks the namespace's order keys (`created_at`, `updated_at` or `importance`, each
//! ending in the memory key so equal values have a fixed order) from just after the cursor's
//! position. The position is a key, not an offset, so memories written or deleted meanwhile
//! move no other memory across it: a scan by `created_at` (which a memory keeps for life)
//! neither skips nor repeats a memory. A memory whose `updated_at` or `importance` changes
//! during a scan by that field moves to its new place in the order. (An upsert leaves the
//! memory's old `updated_at` key in place for a while: the walk skips a key whose record has
//! another value.)
//!
//! The cursor is opaque: the namespace's id, the order, the position and a MAC (see
//! [`crate::cursor`]). A cursor altered, or made for another namespace (even one
//! of the same name deleted and created again) or another order, is `invalid_argument`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::datastore::{ns_key, DataTables};
use crate::error::{Error, Result};
use crate::filter::{self, Filter, TAG_CREATED, TAG_IMPORTANCE, TAG_UPDATED};
use crate::rank::is_live;
use crate::records::memory::{decode_record as decode_stored, scan_memories};
use crate::records::{Memory, NamespaceRecord};
use crate::storage::RoTxn;
use crate::store::Store;

/// Largest page.
pub const MAX_LIST: usize = 1000;
/// Page size when none is asked for.
pub const DEFAULT_LIST: usize = 100;
/// A filter whose secondary keys name at most this many memories is answered from them
/// (read and sorted) instead of walking the order keys.
pub(crate) const SMALL_SET: usize = 5000;

/// The order of `list_memories`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderBy {
    /// Creation time (kept for life: the default, and the one no write can disturb).
    #[default]
    CreatedAt,
    /// Last update.
    UpdatedAt,
    /// Stored importance.
    Importance,
}

impl OrderBy {
    fn tag(self) -> u8 {
        match self {
            OrderBy::CreatedAt => TAG_CREATED,
            OrderBy::UpdatedAt => TAG_UPDATED,
            OrderBy::Importance => TAG_IMPORTANCE,
        }
    }

    fn value(self, m: &Memory) -> [u8; 8] {
        match self {
            OrderBy::CreatedAt => filter::i64_key(m.created_at.timestamp_micros()),
            OrderBy::UpdatedAt => filter::i64_key(m.updated_at.timestamp_micros()),
            OrderBy::Importance => filter::f64_key(m.importance),
        }
    }
}

/// Arguments of [`Handle::list_memories`].
///
/// [`Handle::list_memories`]: crate::Handle::list_memories
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListMemories {
    /// Namespace (optional for a key with exactly one namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only memories matching this filter (see the filter language).
    #[serde(default)]
    pub filter: Option<Value>,
    /// Order (default `created_at`).
    #[serde(default)]
    pub order_by: Option<OrderBy>,
    /// Highest first.
    #[serde(default)]
    pub descending: bool,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Return each memory's stored vector too.
    #[serde(default)]
    pub include_vectors: bool,
}

/// Arguments of [`Handle::count_memories`].
///
/// [`Handle::count_memories`]: crate::Handle::count_memories
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CountMemories {
    /// Namespace (optional for a key with exactly one namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only memories matching this filter.
    #[serde(default)]
    pub filter: Option<Value>,
}

/// One page of `list_memories`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MemoryPage {
    /// The memories, in order.
    pub memories: Vec<Memory>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A position in an order: the value's key bytes and the memory key.
pub(crate) type Position = ([u8; 8], [u8; 16]);

const CURSOR_VERSION: u8 = 1;

fn payload(ns: u64, order: OrderBy, descending: bool, pos: &Position) -> Vec<u8> {
    let mut p = Vec::with_capacity(35);
    p.push(CURSOR_VERSION);
    p.extend_from_slice(&ns.to_be_bytes());
    p.push(order.tag());
    p.push(u8::from(descending));
    p.extend_from_slice(&pos.0);
    p.extend_from_slice(&pos.1);
    p
}

/// The cursor of position `pos` in namespace `ns`'s list in this order, sealed with `key`
/// (see [`crate::cursor`]).
pub(crate) fn encode_cursor(
    key: &[u8; 32],
    ns: u64,
    order: OrderBy,
    descending: bool,
    pos: &Position,
) -> String {
    crate::cursor::seal(key, payload(ns, order, descending, pos))
}

/// The position a cursor [`encode_cursor`] made continues after; `invalid_argument` if it is
/// not one of this list.
pub(crate) fn decode_cursor(
    key: &[u8; 32],
    text: &str,
    ns: u64,
    order: OrderBy,
    descending: bool,
) -> Result<Position> {
    let bad = || {
        Error::invalid(
            "cursor",
            "not a cursor of this namespace's list (altered, or from another namespace)",
        )
    };
    let body = crate::cursor::unseal(key, text).ok_or_else(bad)?;
    if body.len() != 35 {
        return Err(bad());
    }
    if body[0] != CURSOR_VERSION || body[1..9] != ns.to_be_bytes() {
        return Err(bad());
    }
    if body[9] != order.tag() || body[10] != u8::from(descending) {
        return Err(Error::invalid("cursor", "made for another order_by or direction"));
    }
    let mut value = [0u8; 8];
    value.copy_from_slice(&body[11..19]);
    let mut key = [0u8; 16];
    key.copy_from_slice(&body[19..35]);
    Ok((value, key))
}

/// Whether every stored memory of the namespace is live: without a decay floor or a memory
/// that expires, none is hidden, so counts can come from keys alone.
pub(crate) fn all_live(rec: &NamespaceRecord, stats: &crate::datastore::NamespaceStats) -> bool {
    rec.policy.min_importance <= 0.0 && stats.expiring == 0
}

/// Calls `f` with every live memory of `rec` matching `filter`: read from the filter's
/// secondary keys when it has usable ones (only those memories are decoded), else by scanning
/// the namespace.
/// `env` is the namespace's data environment, `now` the time liveness is judged at.
pub(crate) fn each_matching(
    env: &Store<DataTables>,
    rec: &NamespaceRecord,
    now: i64,
    filter: &Filter,
    mut f: impl FnMut(Memory),
) -> Result<()> {
    filter::ensure_indexed(env, rec.id)?;
    let mut keep = |m: Memory| {
        if is_live(&m, &rec.policy, now) && filter.matches(&m) {
            f(m);
        }
    };
    env.read(|r, t| {
        match filter::candidates(t, r, rec.id, filter, usize::MAX)? {
            Some(c) => {
                for key in c.keys() {
                    if let Some(bytes) = t.memories.get(r, &ns_key(rec.id, key))? {
                        keep(decode_stored(bytes)?.memory);
                    }
                }
            }
            None => {
                for s in scan_memories(t, r, rec.id)? {
                    keep(s?.memory);
                }
            }
        }
        Ok(())
    })
}

/// Parses an optional filter argument.
pub(crate) fn parse_filter(v: Option<&Value>) -> Result<Option<Filter>> {
    v.map(|v| Filter::parse(v, "filter")).transpose()
}

/// Whether position `p` comes after `after` in the walk's direction.
fn beyond(p: &Position, after: Option<&Position>, desc: bool) -> bool {
    after.is_none_or(|a| if desc { p < a } else { p > a })
}

/// A page from a small candidate set: read, filtered, sorted.
#[allow(clippy::too_many_arguments)]
pub(crate) fn from_candidates(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: u64,
    c: &filter::Candidates,
    order: OrderBy,
    desc: bool,
    after: Option<Position>,
    want: usize,
    keep: &dyn Fn(&Memory) -> bool,
) -> Result<Vec<(Position, Memory, Option<u32>)>> {
    let mut rows = Vec::new();
    for key in c.keys() {
        let Some(bytes) = t.memories.get(r, &ns_key(ns, key))? else { continue };
        let s = decode_stored(bytes)?;
        let pos = (order.value(&s.memory), *key);
        if beyond(&pos, after.as_ref(), desc) && keep(&s.memory) {
            rows.push((pos, s.memory, s.slot));
        }
    }
    rows.sort_by(|a, b| if desc { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) });
    rows.truncate(want);
    Ok(rows)
}

/// A page by walking the order keys from the cursor.
#[allow(clippy::too_many_arguments)]
pub(crate) fn walk_order(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: u64,
    order: OrderBy,
    desc: bool,
    after: Option<Position>,
    want: usize,
    keep: &dyn Fn(&Memory) -> bool,
) -> Result<Vec<(Position, Memory, Option<u32>)>> {
    use std::ops::Bound::{Excluded, Included};
    let first = ns_key(ns, &[order.tag()]);
    let end = ns_key(ns, &[order.tag() + 1]);
    let at = after.map(|(v, k)| {
        let mut key = first.clone();
        key.extend_from_slice(&v);
        key.extend_from_slice(&k);
        key
    });
    let mut out = Vec::new();
    let visit = |r: &mut RoTxn<'_>, k: &[u8], _: &[u8]| -> Result<bool> {
        let (Some(v), Some(mem)) = (
            k.get(9..17).and_then(|v| <[u8; 8]>::try_from(v).ok()),
            k.get(17..33).and_then(|m| <[u8; 16]>::try_from(m).ok()),
        ) else {
            return Ok(true);
        };
        if let Some(bytes) = t.memories.get(r, &ns_key(ns, &mem))? {
            let s = decode_stored(bytes)?;
            // An `updated_at` key an upsert left behind (see `filter::stale`) is not the
            // memory's place in the order: its record has another value.
            if order.value(&s.memory) == v && keep(&s.memory) {
                out.push(((v, mem), s.memory, s.slot));
            }
        }
        Ok(out.len() < want)
    };
    let (lo, hi) = match (at, desc) {
        (Some(a), true) => (Included(first), Excluded(a)),
        (Some(a), false) => (Excluded(a), Excluded(end)),
        (None, _) => (Included(first), Excluded(end)),
    };
    crate::storage::scan(&t.fields, r, lo, hi, desc, visit)?;
    Ok(out)
}
