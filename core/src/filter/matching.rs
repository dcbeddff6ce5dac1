//! Whether a memory matches a comparison: the field's value read from the memory, compared
//! with the operands.

use serde_json::{Map, Value};

use super::{Field, Op, Operand};
use crate::records::Memory;

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

pub(super) fn compare(m: &Memory, field: &Field, op: Op, operands: &[Operand]) -> bool {
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
