//! What the Python, Node and C bindings do alike, written once: open a data directory
//! in-process, read an operation's JSON arguments, and give a list's reply with its total
//! and cursor. Each binding converts its own types and calls these; errors stay
//! [`memsilo::Error`]s, which each maps with [`memsilo::error::error_body`] (panics with
//! [`memsilo::error::catch_panic`]).

use std::path::{Path, PathBuf};

use memsilo::api::Reply;
use memsilo::{Engine, Error, Handle, Options, Result};
use serde_json::{json, Value};

/// Opens (creating if needed) the data directory `path` in this process as the root
/// principal, with the keyring `keyring` (`None`: the `MEMSILO_KEYRING` setting, if any).
/// The engine's warnings (a missing embedding model, background failures, a model's
/// download) go to stderr through [`crate::log`]. The embedding model (`MEMSILO_EMBEDDER`,
/// else the default), if installed, is loaded now: a broken one fails here, as `memsilo
/// serve` does (see [`memsilo::embedder_from_env`]).
pub fn open(path: &Path, keyring: Option<PathBuf>) -> Result<Handle> {
    crate::log::install();
    let mut options = Options { embedder: memsilo::embedder_from_env()?, ..Options::default() };
    if keyring.is_some() {
        options.keyring = keyring;
    }
    Ok(Engine::open(path, options)?.root())
}

/// An operation's arguments, given as JSON text in the binding's parameter `param`; empty
/// text is no arguments. Text that is not JSON is `invalid_argument` naming `param`.
pub fn parse_args(text: &str, param: &str) -> Result<Value> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| Error::invalid(param, format!("not valid JSON: {e}")))
}

/// A reply as the bindings' list calls answer it: `{"value", "total_count", "next_cursor"}`
/// (the total over all pages and where the next page starts, for bare-array lists; `null`
/// otherwise).
pub fn listed(reply: Reply) -> Value {
    json!({
        "value": reply.value,
        "total_count": reply.total_count,
        "next_cursor": reply.next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_that_are_not_json_are_refused_naming_the_parameter() {
        assert_eq!(parse_args("", "args").unwrap(), Value::Null);
        assert_eq!(parse_args(r#"{"name":"a"}"#, "args").unwrap(), json!({ "name": "a" }));
        let e = parse_args("{nope", "args_json").unwrap_err();
        assert_eq!(e.code(), memsilo::ErrorCode::InvalidArgument);
        assert!(e.to_string().starts_with("args_json: not valid JSON: "), "{e}");
    }

    #[test]
    fn a_list_reply_carries_its_total_and_cursor() {
        let reply =
            Reply { value: json!([1, 2]), total_count: Some(5), next_cursor: Some("c".into()) };
        assert_eq!(listed(reply), json!({ "value": [1, 2], "total_count": 5, "next_cursor": "c" }));
        let single = listed(Reply::of_value(json!({ "a": 1 })));
        assert_eq!(
            single,
            json!({ "value": { "a": 1 }, "total_count": null, "next_cursor": null })
        );
    }
}
