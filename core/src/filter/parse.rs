//! Parsing a filter from JSON: fields, operators and operands; errors name the path.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::keys::{
    TAG_AGENT, TAG_CREATED, TAG_IMPORTANCE, TAG_META, TAG_SESSION, TAG_TAGS, TAG_TYPE, TAG_UPDATED,
};
use super::matching::compare;
use crate::error::{Error, Result};
use crate::records::{Memory, MemoryType};

/// Most conditions in one filter.
pub const MAX_CONDITIONS: usize = 256;

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

    pub(super) fn is_time(&self) -> bool {
        matches!(self, Field::CreatedAt | Field::UpdatedAt)
    }

    /// The secondary-key tag, for indexed fields.
    pub(super) fn tag(&self) -> Option<u8> {
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
