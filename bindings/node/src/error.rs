//! Turns a memsilo error into a JS `Error` carrying the stable code. The JS layer
//! (`node/index.js`) wraps it into `MemsiloError`; this is the only place the properties
//! are named on the native side.

use memsilo::api::error_body;
use napi::bindgen_prelude::JsObjectValue;
use napi::{Env, JsValue, Status};
use serde_json::Value;

/// Runs `f`, turning a core error or a panic into the API.md error body, so nothing
/// unwinds into Node.
pub fn guard<T>(f: impl FnOnce() -> memsilo::Result<T>) -> Result<T, Value> {
    memsilo::error::catch_panic(f).map_err(|e| error_body(&e))
}

/// A JS `Error` built from an error body: `message`, `code` (the stable string),
/// `status` (HTTP status), and when present `retryAfter`, `namespace`, `field`, `tenantId`,
/// `line` (the line of an import's text it names), `imported` (what an import wrote before it
/// stopped: an object of counts) and `causes` (the messages of the failures underneath;
/// `node/index.js` chains them as `Error.cause`).
pub fn js_error(env: Env, body: &Value) -> napi::Error {
    let message = body["message"].as_str().unwrap_or("internal error");
    let build = || -> napi::Result<napi::Error> {
        let mut obj = env.create_error(napi::Error::new(Status::GenericFailure, message))?;
        obj.set_named_property("code", body["error"].as_str().unwrap_or("internal"))?;
        obj.set_named_property("status", body["code"].as_u64().unwrap_or(500) as u32)?;
        if let Some(secs) = body["retry_after"].as_u64() {
            obj.set_named_property("retryAfter", secs as f64)?;
        }
        if let Some(line) = body["line"].as_u64() {
            obj.set_named_property("line", line as f64)?;
        }
        if let Some(counts) = body["imported"].as_object() {
            let mut imported = napi::bindgen_prelude::Object::new(&env)?;
            for (name, n) in counts {
                imported.set_named_property(name, n.as_f64().unwrap_or(0.0))?;
            }
            obj.set_named_property("imported", imported)?;
        }
        if let Some(causes) = body["causes"].as_array() {
            let causes: Vec<&str> = causes.iter().filter_map(Value::as_str).collect();
            obj.set_named_property("causes", causes)?;
        }
        for (wire, js) in
            [("namespace", "namespace"), ("field", "field"), ("tenant_id", "tenantId")]
        {
            if let Some(s) = body[wire].as_str() {
                obj.set_named_property(js, s)?;
            }
        }
        Ok(napi::Error::from(obj.to_unknown()))
    };
    build().unwrap_or_else(|e| e)
}

/// Runs `f` on the calling (JS) thread and throws its error as [`js_error`].
pub fn throw_on_error<T>(env: Env, f: impl FnOnce() -> memsilo::Result<T>) -> napi::Result<T> {
    guard(f).map_err(|body| js_error(env, &body))
}
