//! Request bodies as JSON values, refusing a key that appears twice in one object.
//!
//! `serde_json::Value` keeps the last of duplicated keys, so `{"top_k": 5, "top_k": 500}`
//! would be read as 500 while a proxy or a log reader may see 5. A body is therefore read
//! by a visitor that builds the same `Value` but refuses the second occurrence of a key,
//! naming it by its path (`memories[3].content`). The path is a chain of borrowed segments
//! on the stack, written out only for the refusal.

use std::cell::RefCell;
use std::fmt;

use memsilo::Error;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses a request body; invalid JSON and duplicated keys are `invalid_argument` (the
/// first naming `body`, the second naming the duplicated key's path).
pub(crate) fn parse_body(bytes: &[u8]) -> Result<Value, Error> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict { at: Path::Root, duplicate: &duplicate }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| match duplicate.into_inner() {
        Some(field) => Error::invalid(
            field,
            format!(
                "appears more than once in the request body (line {}, column {})",
                e.line(),
                e.column()
            ),
        ),
        None => Error::invalid("body", format!("invalid JSON: {e}")),
    })
}

/// Where a value sits in the body.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(Path::Root, key) => f.write_str(key),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Builds a `Value` at `at`, recording the path of a duplicated key in `duplicate`.
#[derive(Clone, Copy)]
struct Strict<'a> {
    at: Path<'a>,
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(Strict {
            at: Path::Index(&self.at, items.len()),
            duplicate: self.duplicate,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value_seed(Strict {
                at: Path::Key(&self.at, &key),
                duplicate: self.duplicate,
            })?;
            match map.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                serde_json::map::Entry::Occupied(slot) => {
                    let path = Path::Key(&self.at, slot.key()).to_string();
                    *self.duplicate.borrow_mut() = Some(path);
                    return Err(de::Error::custom(format!("duplicate key `{}`", slot.key())));
                }
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_body_reads_as_serde_json_reads_it() {
        let text =
            r#"{"a": [1, -2, 3.5, 1e400, "x", null, true, {"b": {}}], "c": 18446744073709551615}"#;
        // 1e400 is out of range for both: refused alike.
        assert!(parse_body(text.as_bytes()).is_err());
        let text =
            r#"{"a": [1, -2, 3.5, "x\u00e9", null, true, {"b": {}}], "c": 18446744073709551615}"#;
        assert_eq!(
            parse_body(text.as_bytes()).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
        assert_eq!(parse_body(b"[1, 2]").unwrap(), json!([1, 2]));
        let e = parse_body(b"{\"a\": 1} x").unwrap_err();
        assert!(matches!(&e, Error::InvalidArgument { field, .. } if field == "body"), "{e}");
    }

    #[test]
    fn a_duplicated_key_is_refused_by_its_path() {
        let field = |text: &str| match parse_body(text.as_bytes()) {
            Err(Error::InvalidArgument { field, reason }) => (field, reason),
            other => panic!("{other:?}"),
        };
        let (f, reason) = field(r#"{"top_k": 5, "top_k": 500}"#);
        assert_eq!(f, "top_k");
        assert!(reason.contains("more than once"), "{reason}");
        let (f, _) = field(
            r#"{"memories": [{"content": "a"}, {"content": "b", "tags": [], "content": "c"}]}"#,
        );
        assert_eq!(f, "memories[1].content");
        let (f, _) = field(r#"[{"x": {"y": 1, "y": 2}}]"#);
        assert_eq!(f, "[0].x.y");
        // The same key in sibling objects is not a duplicate.
        assert!(parse_body(br#"{"a": {"k": 1}, "b": {"k": 1}}"#).is_ok());
    }
}
