//! Limits of the free-form JSON documents callers attach (memory metadata, entity and
//! relation properties, tenant settings, features and tags): one size and depth rule for all.
//! The depth bound keeps every stored row readable: `serde_json` refuses to parse documents
//! nested deeper than 128 levels, so a deeper one could be written but never read back.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Largest document, as serialised JSON.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Deepest nesting of arrays and objects inside a document.
pub const MAX_DOCUMENT_DEPTH: usize = 32;

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Checks a document's size and depth; returns its serialised length.
pub(crate) fn check(field: &str, v: &Value) -> Result<usize> {
    if depth(v) > MAX_DOCUMENT_DEPTH {
        return Err(Error::invalid(
            field,
            format!("must nest at most {MAX_DOCUMENT_DEPTH} levels"),
        ));
    }
    let len = serde_json::to_vec(v)?.len();
    if len > MAX_DOCUMENT_BYTES {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_DOCUMENT_BYTES} bytes of JSON"),
        ));
    }
    Ok(len)
}

/// [`check`] for an object.
pub(crate) fn check_object(field: &str, m: &Map<String, Value>) -> Result<usize> {
    if m.values().map(depth).max().unwrap_or(0) + 1 > MAX_DOCUMENT_DEPTH {
        return Err(Error::invalid(
            field,
            format!("must nest at most {MAX_DOCUMENT_DEPTH} levels"),
        ));
    }
    let len = serde_json::to_vec(m)?.len();
    if len > MAX_DOCUMENT_BYTES {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_DOCUMENT_BYTES} bytes of JSON"),
        ));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> Value {
        (0..levels).fold(Value::Null, |inner, _| serde_json::json!({ "a": inner }))
    }

    #[test]
    fn depth_and_size_are_bounded() {
        assert!(check("metadata", &nested(MAX_DOCUMENT_DEPTH)).is_ok());
        let err = check("metadata", &nested(MAX_DOCUMENT_DEPTH + 1)).unwrap_err();
        assert!(err.to_string().starts_with("metadata:"), "{err}");
        let big = Value::String("x".repeat(MAX_DOCUMENT_BYTES));
        assert!(check("settings", &big).is_err());
        let Value::Object(m) = nested(MAX_DOCUMENT_DEPTH + 1) else { unreachable!() };
        assert!(check_object("properties", &m).is_err());
    }
}
