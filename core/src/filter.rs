//! The filter language of recall, list, count and forget, and the secondary keys that let a
//! selective filter find its memories without decoding every record.
//!
//! A filter is a JSON object. Keys are fields — the built-ins `id`, `agent_id`, `session_id`,
//! `memory_type`, `tags`, `importance`, `created_at`, `updated_at`, or `metadata.<path>` (a
//! dotted path into the metadata) — or the combinators `$and`, `$or` (arrays of filters) and
//! `$not` (a filter). Several keys in one object must all match. A field's value is either a
//! plain value (equality) or an object of operators, all of which must match: `$eq $ne $gt $gte
//! $lt $lte $in $nin $exists` and, for arrays (tags, array metadata), `$contains $contains_any
//! $contains_all`. Equality with a plain value on an array field means "contains". Ranges
//! compare numbers with numbers, strings with strings and times (RFC 3339) with times; a value
//! of another type does not match. A missing field matches only `$ne`, `$nin`, `$exists: false`
//! and negations.
//!
//! Secondary keys (table `fields`): `ns ‖ field tag ‖ [path ‖ 0] ‖ encoded value ‖ memory key →
//! vector slot`, one per built-in value, per tag and per scalar metadata leaf (array elements
//! under their array's path). Values are encoded so that byte order is value order within a
//! type; long strings and paths are cut, so the keys give a superset of the matches and every
//! candidate is still checked against its record.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use heed3::RwTxn;
use serde_json::{Map, Value};

use crate::datastore::{DataTables, NamespaceId};
use crate::error::{Error, Result};
use crate::records::memory::{decode_record, memory_key, record_slot};
use crate::records::{Memory, MemoryType};
use crate::storage::RoTxn;
use crate::store::Store;

/// Most conditions in one filter.
pub const MAX_CONDITIONS: usize = 256;
/// Bytes of a metadata path or string value kept in a secondary key.
const KEY_PART: usize = 200;

/// A built-in or metadata field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field {
    Id,
    AgentId,
    SessionId,
    MemoryType,
    Tags,
    Importance,
    CreatedAt,
    UpdatedAt,
    Meta(Vec<String>),
}

impl Field {
    fn parse(name: &str, at: &str) -> Result<Field> {
        Ok(match name {
            "id" => Field::Id,
            "agent_id" => Field::AgentId,
            "session_id" => Field::SessionId,
            "memory_type" => Field::MemoryType,
            "tags" => Field::Tags,
            "importance" => Field::Importance,
            "created_at" => Field::CreatedAt,
            "updated_at" => Field::UpdatedAt,
            _ => match name.strip_prefix("metadata.") {
                Some(path) if !path.is_empty() && path.split('.').all(|p| !p.is_empty()) => {
                    Field::Meta(path.split('.').map(str::to_owned).collect())
                }
                _ => {
                    return Err(Error::invalid(
                        at,
                        "unknown field: use id, agent_id, session_id, memory_type, tags, \
                         importance, created_at, updated_at or metadata.<path>",
                    ))
                }
            },
        })
    }

    fn is_time(&self) -> bool {
        matches!(self, Field::CreatedAt | Field::UpdatedAt)
    }

    /// The secondary-key tag, for indexed fields.
    fn tag(&self) -> Option<u8> {
        Some(match self {
            Field::Id => return None,
            Field::AgentId => TAG_AGENT,
            Field::SessionId => TAG_SESSION,
            Field::MemoryType => TAG_TYPE,
            Field::Tags => TAG_TAGS,
            Field::Importance => TAG_IMPORTANCE,
            Field::CreatedAt => TAG_CREATED,
            Field::UpdatedAt => TAG_UPDATED,
            Field::Meta(_) => TAG_META,
        })
    }
}

const TAG_AGENT: u8 = 1;
const TAG_SESSION: u8 = 2;
const TAG_TYPE: u8 = 3;
const TAG_TAGS: u8 = 4;
/// Order keys of `list_memories` (8-byte values).
pub(crate) const TAG_IMPORTANCE: u8 = 5;
pub(crate) const TAG_CREATED: u8 = 6;
pub(crate) const TAG_UPDATED: u8 = 7;
const TAG_META: u8 = 8;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    Nin,
    Exists,
    Contains,
    ContainsAny,
    ContainsAll,
}

impl Op {
    fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "$eq" => Op::Eq,
            "$ne" => Op::Ne,
            "$gt" => Op::Gt,
            "$gte" => Op::Gte,
            "$lt" => Op::Lt,
            "$lte" => Op::Lte,
            "$in" => Op::In,
            "$nin" => Op::Nin,
            "$exists" => Op::Exists,
            "$contains" => Op::Contains,
            "$contains_any" => Op::ContainsAny,
            "$contains_all" => Op::ContainsAll,
            _ => return None,
        })
    }
}

/// A scalar operand, times already parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Json(Value),
    Time(i64),
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Cmp { field: Field, op: Op, operands: Vec<Operand> },
}

impl Filter {
    /// Parses a filter given as JSON; errors name the path (`filter.metadata.tier.$gt`).
    pub(crate) fn parse(v: &Value, at: &str) -> Result<Filter> {
        let mut count = 0;
        parse_node(v, at, &mut count)
    }

    /// Equality on a built-in field (recall's shorthands).
    pub(crate) fn eq(field: Field, v: Value) -> Filter {
        Filter::Cmp { field, op: Op::Eq, operands: vec![Operand::Json(v)] }
    }

    /// Every tag present.
    pub(crate) fn all_tags(tags: &[String]) -> Filter {
        Filter::Cmp {
            field: Field::Tags,
            op: Op::ContainsAll,
            operands: tags.iter().map(|t| Operand::Json(Value::String(t.clone()))).collect(),
        }
    }

    /// Whether memory `m` matches.
    pub(crate) fn matches(&self, m: &Memory) -> bool {
        match self {
            Filter::And(all) => all.iter().all(|f| f.matches(m)),
            Filter::Or(any) => any.iter().any(|f| f.matches(m)),
            Filter::Not(f) => !f.matches(m),
            Filter::Cmp { field, op, operands } => compare(m, field, *op, operands),
        }
    }
}

fn parse_node(v: &Value, at: &str, count: &mut usize) -> Result<Filter> {
    let Value::Object(map) = v else {
        return Err(Error::invalid(at, "a filter must be a JSON object"));
    };
    let mut all = Vec::new();
    for (key, value) in map {
        let here = format!("{at}.{key}");
        *count += 1;
        if *count > MAX_CONDITIONS {
            return Err(Error::invalid(at, format!("at most {MAX_CONDITIONS} conditions")));
        }
        match key.as_str() {
            "$and" | "$or" => {
                let Value::Array(items) = value else {
                    return Err(Error::invalid(here, "must be an array of filters"));
                };
                if items.is_empty() {
                    return Err(Error::invalid(here, "must not be empty"));
                }
                let parts = items
                    .iter()
                    .enumerate()
                    .map(|(i, f)| parse_node(f, &format!("{here}[{i}]"), count))
                    .collect::<Result<Vec<_>>>()?;
                all.push(if key == "$and" { Filter::And(parts) } else { Filter::Or(parts) });
            }
            "$not" => all.push(Filter::Not(Box::new(parse_node(value, &here, count)?))),
            k if k.starts_with('$') => {
                return Err(Error::invalid(
                    here,
                    "unknown operator (use $and, $or, $not at this level)",
                ))
            }
            k => {
                let field = Field::parse(k, &here)?;
                all.extend(parse_field(&field, value, &here)?);
            }
        }
    }
    Ok(if all.len() == 1 { all.pop().unwrap_or(Filter::And(Vec::new())) } else { Filter::And(all) })
}

fn parse_field(field: &Field, v: &Value, at: &str) -> Result<Vec<Filter>> {
    let ops = match v {
        Value::Object(m) if m.keys().any(|k| k.starts_with('$')) => {
            if let Some(k) = m.keys().find(|k| !k.starts_with('$')) {
                return Err(Error::invalid(
                    format!("{at}.{k}"),
                    "operators and plain keys cannot be mixed",
                ));
            }
            m.iter().collect::<Vec<_>>()
        }
        other => return Ok(vec![cmp(field, Op::Eq, other, at)?]),
    };
    let mut out = Vec::new();
    for (name, operand) in ops {
        let here = format!("{at}.{name}");
        let Some(op) = Op::parse(name) else {
            return Err(Error::invalid(
                here,
                "unknown operator: use $eq $ne $gt $gte $lt $lte $in $nin $exists $contains \
                 $contains_any $contains_all",
            ));
        };
        out.push(cmp(field, op, operand, &here)?);
    }
    Ok(out)
}

fn cmp(field: &Field, op: Op, v: &Value, at: &str) -> Result<Filter> {
    let array_field = matches!(field, Field::Tags | Field::Meta(_));
    let operands = match op {
        Op::Exists => match v {
            Value::Bool(_) => vec![Operand::Json(v.clone())],
            _ => return Err(Error::invalid(at, "must be true or false")),
        },
        Op::In | Op::Nin | Op::ContainsAny | Op::ContainsAll => {
            let Value::Array(items) = v else {
                return Err(Error::invalid(at, "must be an array"));
            };
            if items.len() > MAX_CONDITIONS {
                return Err(Error::invalid(at, format!("at most {MAX_CONDITIONS} values")));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, x)| operand(field, op, x, &format!("{at}[{i}]")))
                .collect::<Result<Vec<_>>>()?
        }
        _ => vec![operand(field, op, v, at)?],
    };
    if matches!(op, Op::Contains | Op::ContainsAny | Op::ContainsAll) && !array_field {
        return Err(Error::invalid(at, "applies to tags and array metadata only"));
    }
    if matches!(op, Op::Gt | Op::Gte | Op::Lt | Op::Lte) && *field == Field::Tags {
        return Err(Error::invalid(at, "tags take $eq $ne $in $nin $contains*, not ranges"));
    }
    Ok(Filter::Cmp { field: field.clone(), op, operands })
}

fn operand(field: &Field, op: Op, v: &Value, at: &str) -> Result<Operand> {
    let range = matches!(op, Op::Gt | Op::Gte | Op::Lt | Op::Lte);
    match field {
        Field::CreatedAt | Field::UpdatedAt => {
            let t = v
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .ok_or_else(|| Error::invalid(at, "must be an RFC 3339 time"))?;
            Ok(Operand::Time(t.with_timezone(&Utc).timestamp_micros()))
        }
        Field::Importance if !v.is_number() => Err(Error::invalid(at, "must be a number")),
        Field::Id | Field::AgentId | Field::SessionId | Field::Tags if !v.is_string() => {
            Err(Error::invalid(at, "must be a string"))
        }
        Field::MemoryType => match serde_json::from_value::<MemoryType>(v.clone()) {
            Ok(_) if !range => Ok(Operand::Json(v.clone())),
            Ok(_) => Err(Error::invalid(at, "memory_type takes $eq $ne $in $nin")),
            Err(_) => Err(Error::invalid(at, "must be episodic, semantic, procedural or working")),
        },
        Field::Meta(_) if range && !(v.is_number() || v.is_string()) => {
            Err(Error::invalid(at, "ranges compare numbers or strings"))
        }
        _ => Ok(Operand::Json(v.clone())),
    }
}

/// A field's value in a memory.
enum Got<'a> {
    Missing,
    Str(&'a str),
    Num(f64),
    Time(i64),
    Json(&'a Value),
    Strs(&'a [String]),
}

fn get<'a>(m: &'a Memory, field: &Field) -> Got<'a> {
    match field {
        Field::Id => Got::Str(&m.id),
        Field::AgentId => m.agent_id.as_deref().map_or(Got::Missing, Got::Str),
        Field::SessionId => m.session_id.as_deref().map_or(Got::Missing, Got::Str),
        Field::MemoryType => Got::Str(m.memory_type.as_str()),
        Field::Tags => Got::Strs(&m.tags),
        Field::Importance => Got::Num(m.importance),
        Field::CreatedAt => Got::Time(m.created_at.timestamp_micros()),
        Field::UpdatedAt => Got::Time(m.updated_at.timestamp_micros()),
        Field::Meta(path) => {
            let mut cur: Option<&Value> = None;
            let mut map: &Map<String, Value> = &m.metadata;
            for (i, p) in path.iter().enumerate() {
                match map.get(p) {
                    Some(v) if i + 1 == path.len() => cur = Some(v),
                    Some(Value::Object(inner)) => map = inner,
                    _ => return Got::Missing,
                }
            }
            cur.map_or(Got::Missing, Got::Json)
        }
    }
}

/// Order of two scalars of one kind (numbers, strings, times); `None` across kinds.
fn order(a: &Got<'_>, b: &Operand) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Got::Time(x), Operand::Time(y)) => Some(x.cmp(y)),
        (Got::Num(x), Operand::Json(Value::Number(y))) => x.partial_cmp(&y.as_f64()?),
        (Got::Str(x), Operand::Json(Value::String(y))) => Some((*x).cmp(y.as_str())),
        (Got::Json(Value::Number(x)), Operand::Json(Value::Number(y))) => {
            x.as_f64()?.partial_cmp(&y.as_f64()?)
        }
        (Got::Json(Value::String(x)), Operand::Json(Value::String(y))) => Some(x.cmp(y)),
        _ => None,
    }
}

fn scalar_eq(a: &Got<'_>, b: &Operand) -> bool {
    match (a, b) {
        (Got::Json(x), Operand::Json(y)) => json_eq(x, y),
        _ => order(a, b) == Some(std::cmp::Ordering::Equal),
    }
}

fn json_eq(x: &Value, y: &Value) -> bool {
    match (x, y) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => x == y,
    }
}

/// Elements of an array value (tags, array metadata).
fn elements<'a>(g: &Got<'a>) -> Option<Vec<Got<'a>>> {
    match g {
        Got::Strs(items) => Some(items.iter().map(|s| Got::Str(s)).collect()),
        Got::Json(Value::Array(items)) => Some(items.iter().map(Got::Json).collect()),
        _ => None,
    }
}

/// Equality, with "contains" for an array field and a scalar operand.
fn equals(g: &Got<'_>, b: &Operand) -> bool {
    if let Some(items) = elements(g) {
        let whole_array = matches!(b, Operand::Json(Value::Array(_)));
        if !whole_array {
            return items.iter().any(|e| scalar_eq(e, b));
        }
        if let (Got::Strs(tags), Operand::Json(Value::Array(want))) = (g, b) {
            return tags.len() == want.len()
                && tags.iter().zip(want).all(|(t, w)| w.as_str() == Some(t.as_str()));
        }
    }
    scalar_eq(g, b)
}

fn compare(m: &Memory, field: &Field, op: Op, operands: &[Operand]) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let g = get(m, field);
    let missing = matches!(g, Got::Missing | Got::Json(Value::Null));
    match op {
        Op::Exists => {
            let want = matches!(operands.first(), Some(Operand::Json(Value::Bool(true))));
            want != matches!(g, Got::Missing)
        }
        Op::Ne => missing || !operands.iter().any(|o| equals(&g, o)),
        Op::Nin => missing || !operands.iter().any(|o| equals(&g, o)),
        Op::Eq | Op::In => operands.iter().any(|o| equals(&g, o)),
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
            let Some(o) = operands.first() else { return false };
            let ok = |ord: Option<std::cmp::Ordering>| {
                matches!(
                    (op, ord),
                    (Op::Gt, Some(Greater))
                        | (Op::Lt, Some(Less))
                        | (Op::Gte, Some(Greater | Equal))
                        | (Op::Lte, Some(Less | Equal))
                )
            };
            match elements(&g) {
                Some(items) => items.iter().any(|e| ok(order(e, o))),
                None => ok(order(&g, o)),
            }
        }
        Op::Contains | Op::ContainsAny => {
            let Some(items) = elements(&g) else { return false };
            operands.iter().any(|o| items.iter().any(|e| scalar_eq(e, o)))
        }
        Op::ContainsAll => {
            let Some(items) = elements(&g) else { return false };
            operands.iter().all(|o| items.iter().any(|e| scalar_eq(e, o)))
        }
    }
}

// ---- secondary keys ------------------------------------------------------------------------

/// Order-preserving bytes of an f64.
pub(crate) fn f64_key(v: f64) -> [u8; 8] {
    let bits = v.to_bits();
    let flipped = if bits >> 63 == 1 { !bits } else { bits | (1 << 63) };
    flipped.to_be_bytes()
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

fn str_key(s: &str, out: &mut Vec<u8>) {
    out.push(K_STR);
    // Cut and with NUL bytes mapped to 1: a lossy key, so still a superset of the matches.
    out.extend(s.as_bytes().iter().take(KEY_PART).map(|b| if *b == 0 { 1 } else { *b }));
}

fn path_key(path: &[String], out: &mut Vec<u8>) {
    let joined = path.join(".");
    out.extend(joined.as_bytes().iter().take(KEY_PART).map(|b| if *b == 0 { 1 } else { *b }));
    out.push(0);
}

/// The field-and-value prefix of a key (after the namespace), for a value of `field`.
fn prefix(field: &Field, v: &Operand) -> Option<Vec<u8>> {
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

/// Every secondary key (after the namespace, before the memory key) of memory `m`.
fn keys_of(m: &Memory) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let one = |tag: u8, s: &str| {
        let mut k = vec![tag];
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
    let mut k = vec![TAG_IMPORTANCE];
    k.extend_from_slice(&f64_key(m.importance));
    out.push(k);
    for (tag, t) in [(TAG_CREATED, m.created_at), (TAG_UPDATED, m.updated_at)] {
        let mut k = vec![tag];
        k.extend_from_slice(&i64_key(t.timestamp_micros()));
        out.push(k);
    }
    let mut path = Vec::new();
    meta_keys(&m.metadata, &mut path, &mut out);
    out.sort();
    out.dedup();
    out
}

fn meta_keys(map: &Map<String, Value>, path: &mut Vec<String>, out: &mut Vec<Vec<u8>>) {
    for (k, v) in map {
        path.push(k.clone());
        match v {
            Value::Object(inner) => meta_keys(inner, path, out),
            Value::Array(items) => {
                for item in items {
                    let mut key = vec![TAG_META];
                    path_key(path, &mut key);
                    if value_key(item, &mut key) {
                        out.push(key);
                    }
                }
            }
            scalar => {
                let mut key = vec![TAG_META];
                path_key(path, &mut key);
                if value_key(scalar, &mut key) {
                    out.push(key);
                }
            }
        }
        path.pop();
    }
}

fn full_key(ns: NamespaceId, part: &[u8], mem: &[u8; 16]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + part.len() + 16);
    k.extend_from_slice(&ns.to_be_bytes());
    k.extend_from_slice(part);
    k.extend_from_slice(mem);
    k
}

/// Slot value of a secondary key.
fn slot_value(slot: Option<u32>) -> [u8; 4] {
    slot.unwrap_or(u32::MAX).to_be_bytes()
}

/// Writes the secondary keys of memory `m` stored under `mem` with vector `slot`.
pub(crate) fn put_keys(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    mem: &[u8; 16],
    m: &Memory,
    slot: Option<u32>,
) -> Result<()> {
    for part in keys_of(m) {
        t.fields.put(w, &full_key(ns, &part, mem), &slot_value(slot))?;
    }
    Ok(())
}

/// Deletes the secondary keys of memory `m` stored under `mem`.
pub(crate) fn delete_keys(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    mem: &[u8; 16],
    m: &Memory,
) -> Result<()> {
    for part in keys_of(m) {
        t.fields.delete(w, &full_key(ns, &part, mem))?;
    }
    Ok(())
}

/// Rewrites the secondary keys of a memory stored under `mem` whose vector slot did not
/// change: deletes the keys of `old` that `new` lacks and writes those `new` adds; keys whose
/// value did not change are not touched (an upsert that changes one field dirties one key's
/// page, not ten).
#[allow(clippy::too_many_arguments)]
pub(crate) fn update_keys(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    mem: &[u8; 16],
    old: &Memory,
    new: &Memory,
    slot: Option<u32>,
) -> Result<()> {
    let (old, new) = (keys_of(old), keys_of(new));
    // Both are sorted and free of duplicates.
    for part in &old {
        if new.binary_search(part).is_err() {
            t.fields.delete(w, &full_key(ns, part, mem))?;
        }
    }
    for part in &new {
        if old.binary_search(part).is_err() {
            t.fields.put(w, &full_key(ns, part, mem), &slot_value(slot))?;
        }
    }
    Ok(())
}

// ---- vector rows to file again -------------------------------------------------------------

/// Tag of the keys naming a vector slot whose row was overwritten in place (an upsert kept
/// the memory's slot), so the approximate index's cell of that slot may be stale: ns ‖ tag ‖
/// slot (u32 BE) → a checksum of the row written. The index maintenance files those rows
/// again; until then a load searches them exactly (see [`crate::index`]).
const TAG_REFILE: u8 = 0xF0;

fn refile_key(ns: NamespaceId, slot: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(13);
    k.extend_from_slice(&ns.to_be_bytes());
    k.push(TAG_REFILE);
    k.extend_from_slice(&slot.to_be_bytes());
    k
}

/// A checksum of a vector row (FNV-1a over 8-byte words, then the rest byte by byte): tells
/// whether a row was overwritten again. Only ever compared with the value it gave for the same
/// note, never recomputed from a stored row, so its definition may change between versions.
pub(crate) fn row_sum(row: &[u8]) -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = row.chunks_exact(8);
    for w in &mut words {
        let w: [u8; 8] = w.try_into().unwrap_or_default();
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(PRIME);
    }
    for b in words.remainder() {
        h = (h ^ u64::from(*b)).wrapping_mul(PRIME);
    }
    h
}

/// Notes that `slot`'s row was overwritten with `row`. Returns whether the slot was not
/// noted already.
pub(crate) fn mark_refile(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    slot: u32,
    row: &[u8],
) -> Result<bool> {
    let key = refile_key(ns, slot);
    let fresh = t.fields.get(w, &key)?.is_none();
    t.fields.put(w, &key, &row_sum(row).to_be_bytes())?;
    Ok(fresh)
}

/// Drops the note of `slot` if its checksum is still `sum` (any sum when `None`). Returns
/// whether a note was dropped.
pub(crate) fn unmark_refile(
    t: &DataTables,
    w: &mut RwTxn<'_>,
    ns: NamespaceId,
    slot: u32,
    sum: Option<u64>,
) -> Result<bool> {
    let key = refile_key(ns, slot);
    let Some(v) = t.fields.get(w, &key)? else { return Ok(false) };
    let stored = <[u8; 8]>::try_from(v).ok().map(u64::from_be_bytes);
    if sum.is_some_and(|s| stored != Some(s)) {
        return Ok(false);
    }
    t.fields.delete(w, &key)?;
    Ok(true)
}

/// The noted slots (ascending) with their rows' checksums.
pub(crate) fn refile_slots(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
) -> Result<Vec<(u32, u64)>> {
    let mut prefix = ns.to_be_bytes().to_vec();
    prefix.push(TAG_REFILE);
    let mut out = Vec::new();
    for e in t.fields.prefix_iter(r, &prefix)? {
        let (k, v) = e?;
        let slot = k.get(9..13).and_then(|s| <[u8; 4]>::try_from(s).ok()).map(u32::from_be_bytes);
        let sum = <[u8; 8]>::try_from(v).ok().map(u64::from_be_bytes);
        if let (Some(slot), Some(sum)) = (slot, sum) {
            out.push((slot, sum));
        }
    }
    Ok(out)
}

/// Candidate memories of a filter from the secondary keys: memory key → vector slot.
pub(crate) type Candidates = HashMap<[u8; 16], Option<u32>>;

/// The memories a filter may match, from the secondary keys alone — a superset, `None` when
/// the filter has no usable key or would gather more than `cap` candidates (then the caller
/// reads the records instead).
#[allow(clippy::many_single_char_names)] // t, r as in every transaction body
pub(crate) fn candidates(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    f: &Filter,
    cap: usize,
) -> Result<Option<Candidates>> {
    match f {
        Filter::And(all) => {
            let mut best: Option<Candidates> = None;
            for part in all {
                let Some(c) = candidates(t, r, ns, part, cap)? else { continue };
                best = Some(match best {
                    None => c,
                    Some(b) => {
                        let (small, big) = if b.len() <= c.len() { (b, c) } else { (c, b) };
                        small.into_iter().filter(|(k, _)| big.contains_key(k)).collect()
                    }
                });
            }
            Ok(best)
        }
        Filter::Or(any) => {
            let mut out = Candidates::new();
            for part in any {
                let Some(c) = candidates(t, r, ns, part, cap)? else { return Ok(None) };
                out.extend(c);
                if out.len() > cap {
                    return Ok(None);
                }
            }
            Ok(Some(out))
        }
        Filter::Not(_) => Ok(None),
        Filter::Cmp { field, op, operands } => cmp_candidates(t, r, ns, field, *op, operands, cap),
    }
}

#[allow(clippy::too_many_arguments, clippy::many_single_char_names)]
fn cmp_candidates(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    field: &Field,
    op: Op,
    operands: &[Operand],
    cap: usize,
) -> Result<Option<Candidates>> {
    let mut out = Candidates::new();
    if *field == Field::Id {
        if !matches!(op, Op::Eq | Op::In) {
            return Ok(None);
        }
        for o in operands {
            if let Operand::Json(Value::String(id)) = o {
                let key = memory_key(id);
                let full = crate::datastore::ns_key(ns, &key);
                if let Some(bytes) = t.memories.get(r, &full)? {
                    out.insert(key, record_slot(bytes));
                }
            }
        }
        return Ok(Some(out));
    }
    let Some(tag) = field.tag() else { return Ok(None) };
    let mut scan = |lo: Vec<u8>, hi: Option<Vec<u8>>| -> Result<bool> {
        let start = crate::datastore::ns_key(ns, &lo);
        let end = match hi {
            Some(h) => crate::datastore::ns_key(ns, &h),
            None => prefix_end(&start),
        };
        let bounds = (std::ops::Bound::Included(&start[..]), std::ops::Bound::Excluded(&end[..]));
        for e in t.fields.range(r, &bounds)? {
            let (k, v) = e?;
            let Some(mem) = k.len().checked_sub(16).and_then(|at| k[at..].try_into().ok()) else {
                continue;
            };
            let slot =
                <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes).filter(|s| *s != u32::MAX);
            out.insert(mem, slot);
            if out.len() > cap {
                return Ok(false);
            }
        }
        Ok(true)
    };
    match op {
        Op::Eq | Op::In | Op::Contains | Op::ContainsAny => {
            for o in operands {
                if matches!(o, Operand::Json(Value::Array(_) | Value::Object(_))) {
                    return Ok(None);
                }
                let Some(p) = prefix(field, o) else { return Ok(None) };
                if !scan(p, None)? {
                    return Ok(None);
                }
            }
            Ok(Some(out))
        }
        Op::ContainsAll => {
            // Any one element gives a superset; the first is as good as any.
            let Some(o) = operands.first() else { return Ok(None) };
            let Some(p) = prefix(field, o) else { return Ok(None) };
            Ok(scan(p, None)?.then_some(out))
        }
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
            let Some(o) = operands.first() else { return Ok(None) };
            let Some(p) = prefix(field, o) else { return Ok(None) };
            // The range of this field's values of the operand's kind.
            let kind_len = match field {
                Field::Importance | Field::CreatedAt | Field::UpdatedAt => 1,
                Field::Meta(path) => {
                    let mut k = vec![tag];
                    path_key(path, &mut k);
                    k.len() + 1
                }
                _ => return Ok(None),
            };
            let kind = p[..kind_len].to_vec();
            // Bounds on the encoded value; the records decide the edges exactly.
            let value_part = if field.is_time() || *field == Field::Importance {
                p.clone()
            } else {
                p[..p.len() - 1].to_vec()
            };
            let (lo, hi) = match op {
                Op::Gt | Op::Gte => (value_part, None),
                _ => (kind.clone(), Some(prefix_end(&value_part))),
            };
            let lo_is_kind = lo.len() == kind.len();
            let hi = hi.or_else(|| (!lo_is_kind).then(|| prefix_end(&kind)));
            Ok(scan(lo, hi)?.then_some(out))
        }
        Op::Ne | Op::Nin | Op::Exists => Ok(None),
    }
}

/// How many memories hold exactly `value` in the built-in string `field`, from its keys alone
/// (no record is read); `None` when the key of that value is lossy (cut or holding a NUL byte),
/// so only the records could tell.
pub(crate) fn count_exact(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    field: &Field,
    value: &str,
) -> Result<Option<u64>> {
    if value.len() > KEY_PART || value.as_bytes().contains(&0) {
        return Ok(None);
    }
    let Some(p) = prefix(field, &Operand::Json(Value::String(value.to_owned()))) else {
        return Ok(None);
    };
    let start = crate::datastore::ns_key(ns, &p);
    let end = prefix_end(&start);
    let bounds = (std::ops::Bound::Included(&start[..]), std::ops::Bound::Excluded(&end[..]));
    let mut n = 0u64;
    for e in t.fields.range(r, &bounds)? {
        e?;
        n += 1;
    }
    Ok(Some(n))
}

/// The first key after every key starting with `p`.
fn prefix_end(p: &[u8]) -> Vec<u8> {
    let mut end = p.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xFF; p.len() + 1]
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
            build_all(t, w, ns)?;
            stats.fields_indexed = true;
            t.put_stats(w, ns, &stats)?;
        }
        Ok(())
    })
}

/// Writes the secondary keys of every memory of a namespace written before they existed.
pub(crate) fn build_all(t: &DataTables, w: &mut RwTxn<'_>, ns: NamespaceId) -> Result<()> {
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
        put_keys(t, w, ns, &mem, &m, slot)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn memory() -> Memory {
        let now = Utc::now();
        Memory {
            id: "m1".into(),
            namespace: "ns".into(),
            agent_id: Some("a".into()),
            content: "text".into(),
            importance: 0.4,
            tags: vec!["x".into(), "y".into()],
            metadata: json!({"customer": {"tier": "gold", "seats": 12}, "langs": ["en", "de"]})
                .as_object()
                .unwrap()
                .clone(),
            entities: Vec::new(),
            memory_type: MemoryType::Semantic,
            session_id: None,
            created_at: now,
            updated_at: now,
            expires_at: None,
            vector: None,
        }
    }

    fn check(f: Value) -> bool {
        Filter::parse(&f, "filter").unwrap().matches(&memory())
    }

    #[test]
    fn operators_on_builtins_and_metadata_paths() {
        assert!(check(json!({"metadata.customer.tier": "gold"})));
        assert!(check(json!({"metadata.customer.seats": {"$gt": 10, "$lte": 12}})));
        assert!(!check(json!({"metadata.customer.seats": {"$gt": 12}})));
        assert!(check(json!({"metadata.customer.tier": {"$in": ["gold", "platinum"]}})));
        assert!(check(json!({"metadata.langs": "de"})), "equality on an array is contains");
        assert!(check(json!({"metadata.langs": {"$contains_all": ["en", "de"]}})));
        assert!(check(json!({"metadata.missing": {"$exists": false}})));
        assert!(check(json!({"metadata.missing": {"$ne": 3}})));
        assert!(!check(json!({"metadata.missing": {"$gt": 3}})));
        assert!(check(json!({"tags": {"$contains_any": ["q", "y"]}, "memory_type": "semantic"})));
        assert!(!check(json!({"tags": {"$contains_all": ["x", "q"]}})));
        assert!(check(json!({"$or": [{"agent_id": "b"}, {"importance": {"$lt": 0.5}}]})));
        assert!(check(json!({"$not": {"session_id": {"$exists": true}}})));
        assert!(check(json!({"created_at": {"$gte": "2020-01-01T00:00:00Z"}})));
        assert!(!check(
            json!({"$and": [{"agent_id": "a"}, {"memory_type": {"$nin": ["semantic"]}}]})
        ));
    }

    #[test]
    fn malformed_filters_name_the_path() {
        let err = |f: Value| match Filter::parse(&f, "filter").unwrap_err() {
            Error::InvalidArgument { field, .. } => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(err(json!({"metadata.tier": {"$gtx": 1}})), "filter.metadata.tier.$gtx");
        assert_eq!(err(json!({"colour": 1})), "filter.colour");
        assert_eq!(err(json!({"$or": [{"tags": {"$in": "x"}}]})), "filter.$or[0].tags.$in");
        assert_eq!(err(json!({"importance": {"$gt": "high"}})), "filter.importance.$gt");
        assert_eq!(err(json!({"created_at": {"$lt": "yesterday"}})), "filter.created_at.$lt");
        assert_eq!(err(json!({"memory_type": "dream"})), "filter.memory_type");
        assert_eq!(err(json!({"importance": {"$contains": 1}})), "filter.importance.$contains");
        assert_eq!(err(json!([1])), "filter");
        assert_eq!(err(json!({"$and": []})), "filter.$and");
        assert_eq!(err(json!({"metadata.": 1})), "filter.metadata.");
    }

    #[test]
    fn key_encodings_keep_order() {
        let xs = [-1e9, -2.5, -0.0, 0.0, 1e-9, 0.5, 3.0, 1e12];
        for w in xs.windows(2) {
            assert!(f64_key(w[0]) <= f64_key(w[1]), "{w:?}");
        }
        assert!(i64_key(-5) < i64_key(0) && i64_key(0) < i64_key(7));
    }
}
