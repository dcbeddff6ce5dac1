//! The memories a filter may match, from the secondary keys alone.

use std::collections::HashMap;

use serde_json::Value;

use super::keys::{path_key, prefix, KEY_PART};
use super::{Field, Filter, Op, Operand};
use crate::datastore::{DataTables, NamespaceId};
use crate::error::Result;
use crate::records::memory::{memory_key, record_slot};
use crate::storage::RoTxn;

/// Candidate memories of a filter from the secondary keys: memory key → vector slot.
pub(crate) type Candidates = HashMap<[u8; 16], Option<u32>>;

/// The memories a filter may match, from the secondary keys alone — a superset, `None` when
/// the filter has no usable key or would gather more than `cap` candidates (then the caller
/// reads the records instead). Each memory the filter matches comes with its record's slot.
#[allow(clippy::many_single_char_names)] // t, r as in every transaction body
pub(crate) fn candidates(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    f: &Filter,
    cap: usize,
) -> Result<Option<Candidates>> {
    let mut disputed = Vec::new();
    let Some(mut out) = gather(t, r, ns, f, cap, &mut disputed)? else { return Ok(None) };
    // A memory named by two keys with different slots has a key left behind by an upsert
    // (see `stale`) from before its slot changed: its record says which slot is current.
    for mem in disputed {
        if let Some(slot) = out.get_mut(&mem) {
            match t.memories.get(r, &crate::datastore::ns_key(ns, &mem))? {
                Some(bytes) => *slot = record_slot(bytes),
                None => {
                    out.remove(&mem);
                }
            }
        }
    }
    Ok(Some(out))
}

/// Adds a candidate, noting it in `disputed` when it was there with another slot.
fn add(out: &mut Candidates, mem: [u8; 16], slot: Option<u32>, disputed: &mut Vec<[u8; 16]>) {
    if out.insert(mem, slot).is_some_and(|before| before != slot) {
        disputed.push(mem);
    }
}

/// [`candidates`] with the memories whose keys disagree on their slot in `disputed`.
#[allow(clippy::many_single_char_names)] // t, r as in every transaction body
fn gather(
    t: &DataTables,
    r: &mut RoTxn<'_>,
    ns: NamespaceId,
    f: &Filter,
    cap: usize,
    disputed: &mut Vec<[u8; 16]>,
) -> Result<Option<Candidates>> {
    match f {
        Filter::And(all) => {
            let mut best: Option<Candidates> = None;
            for part in all {
                let Some(c) = gather(t, r, ns, part, cap, disputed)? else { continue };
                best = Some(match best {
                    None => c,
                    Some(b) => {
                        let (small, big) = if b.len() <= c.len() { (b, c) } else { (c, b) };
                        let mut both = Candidates::with_capacity(small.len());
                        for (k, slot) in small {
                            if let Some(other) = big.get(&k) {
                                add(&mut both, k, *other, disputed);
                                add(&mut both, k, slot, disputed);
                            }
                        }
                        both
                    }
                });
            }
            Ok(best)
        }
        Filter::Or(any) => {
            let mut out = Candidates::new();
            for part in any {
                let Some(c) = gather(t, r, ns, part, cap, disputed)? else { return Ok(None) };
                for (k, slot) in c {
                    add(&mut out, k, slot, disputed);
                }
                if out.len() > cap {
                    return Ok(None);
                }
            }
            Ok(Some(out))
        }
        Filter::Not(_) => Ok(None),
        Filter::Cmp { field, op, operands } => {
            cmp_candidates(t, r, ns, field, *op, operands, cap, disputed)
        }
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
    disputed: &mut Vec<[u8; 16]>,
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
            add(&mut out, mem, slot, disputed);
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
