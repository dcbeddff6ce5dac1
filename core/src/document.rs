//! JSON from callers: the limits of the free-form documents they attach (memory metadata,
//! entity and relation properties, tenant settings, features and tags), one size and depth
//! rule for all; and [`decode`], an argument's JSON into its type.
//! The depth bound keeps every stored row readable: `serde_json` refuses to parse documents
//! nested deeper than 128 levels, so a deeper one could be written but never read back.

use serde::de::DeserializeOwned;
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

/// Decodes JSON into `T`; failures become `invalid_argument` naming the field path.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let field = match inner.split('`').nth(1) {
            Some(f) if inner.starts_with("missing field") => {
                if path == "." {
                    f.to_owned()
                } else {
                    format!("{path}.{f}")
                }
            }
            Some(f) if inner.starts_with("unknown field") => {
                // serde_path_to_error's path already ends with the unknown key itself.
                if path == "." {
                    f.to_owned()
                } else if path == f || path.ends_with(&format!(".{f}")) {
                    path
                } else {
                    format!("{path}.{f}")
                }
            }
            _ if path == "." => "body".to_owned(),
            _ => path,
        };
        Error::invalid(field, inner)
    })
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
