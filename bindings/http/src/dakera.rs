//! Dakera wire compatibility: the same server answers what Dakera's published SDKs send for
//! the namespace guide's operations. This is route and shape mapping only: each Dakera route
//! (and each native route a Dakera client shares with memsilo's own clients) names a core
//! operation, a function that turns the Dakera arguments into the operation's, and one that
//! turns the result into the shape the SDK parses. Every decision stays in core.
//!
//! Where a shape conflicts with API.md on the same path (`GET /v1/namespaces` is a bare array,
//! Dakera reads `{"namespaces": [...]}`; `POST /v1/memory/recall` likewise with `memories`), the
//! request chooses: a client whose `User-Agent` starts with `dakera` (the published SDKs send
//! `dakera-py/<version>`, ...) or that sends `X-Memsilo-Dialect: dakera` gets Dakera's shapes;
//! every other client gets API.md's.

// The argument mappers share one signature (they are `Adapter::args` function pointers), so
// some return `Ok` always.
#![allow(clippy::unnecessary_wraps)]

use axum::http::header::USER_AGENT;
use axum::http::{HeaderMap, HeaderName};
use chrono::{DateTime, Utc};
use memsilo::api::Reply;
use memsilo::{Error, Result};
use serde_json::{json, Map, Value};

use crate::routes::{Body, Kind, Method, Param, Route};

/// Request header that asks for Dakera's shapes from any client.
pub const DIALECT_HEADER: &str = "x-memsilo-dialect";

/// Whether the request comes from a Dakera client (see the module documentation).
pub fn is_dakera_client(headers: &HeaderMap) -> bool {
    let ua = headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    // A header's text is visible ASCII: its first six bytes are its first six characters.
    let starts_dakera = ua.as_bytes().get(..6).is_some_and(|p| p.eq_ignore_ascii_case(b"dakera"));
    starts_dakera || says_dakera(headers, &DIALECT)
}

/// [`DIALECT_HEADER`] and [`ERROR_DIALECT_HEADER`] as header names, made once (a look-up by
/// text parses the name first).
static DIALECT: HeaderName = HeaderName::from_static(DIALECT_HEADER);
static ERROR_DIALECT: HeaderName = HeaderName::from_static(ERROR_DIALECT_HEADER);

/// Whether header `name` is `dakera` (in any case).
fn says_dakera(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("dakera"))
}

/// Request header that asks for Dakera's error shape only: a cluster node sends it with a
/// Dakera client's request it forwards to the namespace's owner (which runs the operation's
/// own route, in memsilo's shapes), so the owner's errors come back as one node answers them.
pub const ERROR_DIALECT_HEADER: &str = "x-memsilo-error-dialect";

/// Whether error answers take Dakera's shape ([`error_body`]): a Dakera client, or a
/// forwarded request of one.
pub fn wants_dakera_errors(headers: &HeaderMap) -> bool {
    is_dakera_client(headers) || says_dakera(headers, &ERROR_DIALECT)
}

/// Arguments as they travel between the two halves of an adapter.
pub type Args = Map<String, Value>;

/// How one Dakera request maps onto a core operation and back.
pub struct Adapter {
    /// Dakera arguments (path, query and body merged) to the operation's; may add notes for
    /// the answer's `warnings`.
    pub args: fn(Args, &mut Vec<String>) -> Result<Args>,
    /// The operation's result to Dakera's shape; gets the arguments the operation ran with.
    pub reply: fn(Reply, &Args, Vec<String>) -> Value,
}

/// A Dakera-only route: its table entry (the op, method, path, where arguments travel) and
/// its adapter. `fields` are the body fields documented for it.
pub struct DakeraRoute {
    /// Method, path, operation, arguments' places, status, summary (tag `dakera`).
    pub route: Route,
    /// The mapping.
    pub adapter: &'static Adapter,
    /// Top-level body fields Dakera's SDK sends (for the `OpenAPI` document).
    pub body_fields: &'static [&'static str],
}

fn same(a: Args, _: &mut Vec<String>) -> Result<Args> {
    Ok(a)
}

fn value(r: Reply, _: &Args, _: Vec<String>) -> Value {
    r.value
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn unix(v: &Value) -> Value {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or(Value::Null, |t| json!(t.timestamp()))
}

/// Moves `from` to `to` when present.
fn rename(a: &mut Args, from: &str, to: &str) {
    if let Some(v) = a.remove(from) {
        a.insert(to.to_owned(), v);
    }
}

/// Dakera addresses memories by `agent_id`; memsilo reads a missing `namespace` from it
/// (API.md), so `agent_id` stays as it is. A unix-seconds field becomes RFC 3339.
fn unix_to_time(a: &mut Args, from: &str, to: &str) -> Result<()> {
    let Some(v) = a.remove(from) else { return Ok(()) };
    if v.is_null() {
        return Ok(());
    }
    let secs =
        v.as_i64().ok_or_else(|| Error::invalid(from, "expected unix seconds (an integer)"))?;
    let t = DateTime::<Utc>::from_timestamp(secs, 0)
        .ok_or_else(|| Error::invalid(from, "out of range"))?;
    a.insert(to.to_owned(), json!(t));
    Ok(())
}

// ---- namespaces ----

fn with_vector_count(mut ns: Value) -> Value {
    if let Value::Object(m) = &mut ns {
        let count = m.get("memory_count").cloned().unwrap_or(json!(0));
        m.insert("vector_count".into(), count);
        if let Some(d) = m.get("dimensions").cloned() {
            m.insert("dimension".into(), d);
        }
    }
    ns
}

fn create_namespace_args(mut a: Args, _: &mut Vec<String>) -> Result<Args> {
    rename(&mut a, "dimension", "dimensions");
    Ok(a)
}

fn namespace_reply(r: Reply, _: &Args, _: Vec<String>) -> Value {
    with_vector_count(r.value)
}

fn namespaces_reply(r: Reply, _: &Args, _: Vec<String>) -> Value {
    let items = match r.value {
        Value::Array(items) => items.into_iter().map(with_vector_count).collect(),
        other => vec![other],
    };
    json!({ "namespaces": items, "total_count": r.total_count })
}

// ---- memory policy ----

const TYPES: [&str; 4] = ["working", "episodic", "semantic", "procedural"];

fn policy_args(mut a: Args, notes: &mut Vec<String>) -> Result<Args> {
    let namespace = a.remove("namespace").unwrap_or(Value::Null);
    let mut policy = Map::new();
    // memsilo's own fields pass as they are.
    for f in ["decay_rate", "min_importance", "ttl_default"] {
        if let Some(v) = a.remove(f) {
            policy.insert(f.into(), v);
        }
    }
    // One TTL for every memory type is what memsilo's `ttl_default` expresses.
    let ttls: Vec<(String, Value)> = TYPES
        .iter()
        .filter_map(|t| {
            let f = format!("{t}_ttl_seconds");
            a.remove(&f).map(|v| (f, v))
        })
        .collect();
    if !ttls.is_empty() && !policy.contains_key("ttl_default") {
        let first = &ttls[0].1;
        if ttls.len() == TYPES.len() && ttls.iter().all(|(_, v)| v == first) {
            policy.insert("ttl_default".into(), first.clone());
        } else {
            notes.push(
                "per-type TTLs not applied: memsilo has one ttl_default for every memory type \
                 (give the four *_ttl_seconds the same value)"
                    .into(),
            );
        }
    }
    let decays: Vec<Value> = TYPES.iter().filter_map(|t| a.remove(&format!("{t}_decay"))).collect();
    if !decays.is_empty() && !policy.contains_key("decay_rate") {
        if decays.iter().all(|d| d == "flat") {
            policy.insert("decay_rate".into(), json!(0.0));
        } else {
            notes.push(
                "decay curves not applied: memsilo decays exponentially by decay_rate per day"
                    .into(),
            );
        }
    }
    // Dakera features memsilo does not have: ignored when off, noted when asked for.
    for (k, v) in std::mem::take(&mut a) {
        let off = matches!(&v, Value::Bool(false) | Value::Null)
            || (k == "spaced_repetition_factor" && v.as_f64() == Some(0.0))
            || k == "consolidated_count";
        let tuning = [
            "consolidation_threshold",
            "consolidation_interval_hours",
            "dedup_threshold",
            "spaced_repetition_base_interval_seconds",
        ];
        if !off && !tuning.contains(&k.as_str()) && k != "spaced_repetition_factor" {
            notes.push(format!("{k} not applied: not a memsilo feature"));
        }
    }
    Ok(Map::from_iter([("namespace".into(), namespace), ("policy".into(), Value::Object(policy))]))
}

fn policy_reply(r: Reply, _: &Args, notes: Vec<String>) -> Value {
    let p = &r.value;
    let ttl = p["ttl_default"].clone();
    let curve = if p["decay_rate"].as_f64().unwrap_or(0.0) > 0.0 { "exponential" } else { "flat" };
    let mut out = json!({
        "decay_rate": p["decay_rate"], "min_importance": p["min_importance"], "ttl_default": ttl,
        "spaced_repetition_factor": 0.0, "consolidation_enabled": false,
        "rate_limit_enabled": false, "dedup_on_store": false, "consolidated_count": 0,
    });
    for t in TYPES {
        out[format!("{t}_ttl_seconds")] = ttl.clone();
        out[format!("{t}_decay")] = json!(curve);
    }
    if !notes.is_empty() {
        out["warnings"] = json!(notes);
    }
    out
}

// ---- namespace keys ----

fn key_args(mut a: Args, _: &mut Vec<String>) -> Result<Args> {
    let namespace = a.remove("namespace").unwrap_or(Value::Null);
    let access = match a.remove("scope").as_ref().and_then(Value::as_str) {
        None | Some("read") => "read",
        Some("write") => "write",
        Some(other) => {
            return Err(Error::invalid(
                "scope",
                format!(
                    "{other:?}: a namespace key is read or write (a tenant admin key is \
                     POST /v1/keys with role admin)"
                ),
            ))
        }
    };
    let mut grants = vec![json!({ "namespace": namespace, "access": access })];
    if let Some(extra) = a.remove("extra_namespaces") {
        let Value::Array(extra) = extra else {
            return Err(Error::invalid("extra_namespaces", "expected an array of names"));
        };
        grants.extend(extra.into_iter().map(|n| json!({ "namespace": n, "access": access })));
    }
    a.insert("namespaces".into(), Value::Array(grants));
    if let Some(days) = a.remove("expires_in_days") {
        let days = days
            .as_u64()
            .filter(|d| *d <= 36_500)
            .ok_or_else(|| Error::invalid("expires_in_days", "expected 0 to 36500 days"))?;
        let days = i64::try_from(days).unwrap_or(0);
        a.insert("expires_at".into(), json!(now() + chrono::Duration::days(days)));
    }
    Ok(a)
}

fn key_view(k: &Value, namespace: &Value) -> Value {
    let grants = k["namespaces"].as_array().cloned().unwrap_or_default();
    let names: Vec<Value> = grants.iter().map(|g| g["namespace"].clone()).collect();
    let scope = grants.first().map_or(json!("read"), |g| g["access"].clone());
    json!({
        "key_id": k["id"], "name": k["name"], "namespace": namespace, "namespaces": names,
        "scope": scope, "created_at": unix(&k["created_at"]), "expires_at": unix(&k["expires_at"]),
        "active": !k["revoked"].as_bool().unwrap_or(false), "prefix": k["prefix"],
    })
}

fn created_key_reply(r: Reply, a: &Args, _: Vec<String>) -> Value {
    let ns = a["namespaces"][0]["namespace"].clone();
    let mut out = key_view(&r.value, &ns);
    out["key"] = r.value["key"].clone();
    out["warning"] = json!("Save this key: it will not be shown again.");
    out
}

fn list_keys_reply(r: Reply, a: &Args, _: Vec<String>) -> Value {
    let ns = a.get("namespace").cloned().unwrap_or(Value::Null);
    let keys: Vec<Value> =
        r.value.as_array().into_iter().flatten().map(|k| key_view(k, &ns)).collect();
    json!({ "namespace": ns, "keys": keys, "total": r.total_count.unwrap_or(keys.len() as u64) })
}

fn revoked_key_reply(r: Reply, _: &Args, _: Vec<String>) -> Value {
    json!({ "success": true, "key_id": r.value["id"], "message": format!("Key {} revoked", r.value["id"].as_str().unwrap_or("")) })
}

// ---- memories ----

fn store_args(mut a: Args, _: &mut Vec<String>) -> Result<Args> {
    rename(&mut a, "ttl_seconds", "ttl");
    // An explicit expiry wins over ttl_seconds (as Dakera documents).
    if let Some(at) = a.remove("expires_at").filter(|v| !v.is_null()) {
        let at =
            at.as_i64().ok_or_else(|| Error::invalid("expires_at", "expected unix seconds"))?;
        let left = at - now().timestamp();
        if left <= 0 {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        a.insert("ttl".into(), json!(left));
    }
    Ok(a)
}

fn recall_args(mut a: Args, _: &mut Vec<String>) -> Result<Args> {
    // Dakera's recall `tags` means any of them; memsilo's `tags` means all of them.
    if let Some(tags) = a.remove("tags") {
        let clause = json!({ "tags": { "$contains_any": tags } });
        let filter = match a.remove("filter") {
            Some(f) => json!({ "$and": [f, clause] }),
            None => clause,
        };
        a.insert("filter".into(), filter);
    }
    Ok(a)
}

fn recall_reply(r: Reply, _: &Args, _: Vec<String>) -> Value {
    json!({ "memories": r.value })
}

fn forget_args(mut a: Args, _: &mut Vec<String>) -> Result<Args> {
    rename(&mut a, "memory_ids", "ids");
    Ok(a)
}

fn forget_reply(r: Reply, _: &Args, _: Vec<String>) -> Value {
    let n = r.value["forgotten"].clone();
    json!({ "forgotten": n, "deleted_count": n, "success": true })
}

fn agent_as_namespace(mut a: Args, _: &mut Vec<String>) -> Result<Args> {
    rename(&mut a, "agent_id", "namespace");
    Ok(a)
}

/// `BatchMemoryFilter` to the filter language of `batch_forget`.
fn batch_forget_args(mut a: Args, _: &mut Vec<String>) -> Result<Args> {
    rename(&mut a, "agent_id", "namespace");
    let Some(f) = a.remove("filter") else {
        return Err(Error::invalid("filter", "at least one filter predicate is required"));
    };
    let Value::Object(mut f) = f else {
        return Err(Error::invalid("filter", "expected an object"));
    };
    let mut all = Vec::new();
    if let Some(tags) = f.remove("tags") {
        all.push(json!({ "tags": { "$contains_all": tags } }));
    }
    for (from, op) in [("min_importance", "$gte"), ("max_importance", "$lte")] {
        if let Some(v) = f.remove(from) {
            all.push(json!({ "importance": { op: v } }));
        }
    }
    for (from, op) in [("created_after", "$gte"), ("created_before", "$lte")] {
        let mut one = Map::new();
        unix_to_time(&mut f, from, "t").map_err(|_| {
            Error::invalid(format!("filter.{from}"), "expected unix seconds (an integer)")
        })?;
        if let Some(t) = f.remove("t") {
            one.insert("created_at".into(), json!({ op: t }));
            all.push(Value::Object(one));
        }
    }
    for field in ["memory_type", "session_id"] {
        if let Some(v) = f.remove(field) {
            all.push(json!({ field: v }));
        }
    }
    if let Some(extra) = f.keys().next() {
        return Err(Error::invalid(format!("filter.{extra}"), "unknown filter predicate"));
    }
    if all.is_empty() {
        return Err(Error::invalid("filter", "at least one filter predicate is required"));
    }
    a.insert("filter".into(), json!({ "$and": all }));
    Ok(a)
}

fn batch_forget_reply(r: Reply, _: &Args, _: Vec<String>) -> Value {
    json!({ "deleted_count": r.value["forgotten"] })
}

// ---- sessions ----

fn start_session_args(mut a: Args, notes: &mut Vec<String>) -> Result<Args> {
    if a.remove("idle_timeout_secs").is_some() {
        notes.push("idle_timeout_secs not applied: memsilo sessions end when ended".into());
    }
    Ok(a)
}

fn session_reply(r: Reply, _: &Args, notes: Vec<String>) -> Value {
    let mut out = json!({ "session": session_view(r.value) });
    if !notes.is_empty() {
        out["warnings"] = json!(notes);
    }
    out
}

fn session_view(mut s: Value) -> Value {
    if let Value::Object(m) = &mut s {
        if let Some(id) = m.get("id").cloned() {
            m.insert("session_id".into(), id);
        }
    }
    s
}

fn one_session_reply(r: Reply, _: &Args, _: Vec<String>) -> Value {
    session_view(r.value)
}

fn sessions_reply(r: Reply, _: &Args, _: Vec<String>) -> Value {
    let items = r.value["sessions"].as_array().cloned().unwrap_or_default();
    Value::Array(items.into_iter().map(session_view).collect())
}

fn list_sessions_args(mut a: Args, _: &mut Vec<String>) -> Result<Args> {
    if a.contains_key("agent_id") && !a.contains_key("namespace") {
        let agent = a["agent_id"].clone();
        a.insert("namespace".into(), agent);
    }
    Ok(a)
}

fn session_memories_args(mut a: Args, _: &mut Vec<String>) -> Result<Args> {
    // Contents come whole: a preview is the client's to cut.
    a.remove("content_preview_chars");
    Ok(a)
}

macro_rules! adapter {
    ($name:ident, $args:expr, $reply:expr) => {
        static $name: Adapter = Adapter { args: $args, reply: $reply };
    };
}

adapter!(CREATE_NAMESPACE, create_namespace_args, namespace_reply);
adapter!(GET_NAMESPACE, same, namespace_reply);
adapter!(LIST_NAMESPACES, same, namespaces_reply);
adapter!(POLICY, same, policy_reply);
adapter!(SET_POLICY, policy_args, policy_reply);
adapter!(CREATE_KEY, key_args, created_key_reply);
adapter!(LIST_KEYS, same, list_keys_reply);
adapter!(REVOKE_KEY, same, revoked_key_reply);
adapter!(STORE, store_args, value);
adapter!(RECALL, recall_args, recall_reply);
adapter!(FORGET, forget_args, forget_reply);
adapter!(GET_MEMORY, agent_as_namespace, value);
adapter!(UPDATE_MEMORY, agent_as_namespace, value);
adapter!(BATCH_FORGET, batch_forget_args, batch_forget_reply);
adapter!(START_SESSION, start_session_args, session_reply);
adapter!(ONE_SESSION, same, one_session_reply);
adapter!(LIST_SESSIONS, list_sessions_args, sessions_reply);
adapter!(SESSION_MEMORIES, session_memories_args, value);

/// The adapter a request gets: `own` on a Dakera route; on a native route it shares with
/// memsilo's clients, the shared adapter for a Dakera client (see the module documentation).
pub fn adapter_for(
    route: &Route,
    own: Option<&'static Adapter>,
    headers: &HeaderMap,
) -> Option<&'static Adapter> {
    own.or_else(|| is_dakera_client(headers).then(|| shared_route_adapter(route)).flatten())
}

/// The adapter a Dakera client gets on a native route it shares with memsilo's clients.
pub fn shared_route_adapter(route: &Route) -> Option<&'static Adapter> {
    match (route.method, route.path) {
        (Method::Post, "/v1/namespaces") => Some(&CREATE_NAMESPACE),
        (Method::Get, "/v1/namespaces") => Some(&LIST_NAMESPACES),
        (Method::Get, "/v1/namespaces/{name}") => Some(&GET_NAMESPACE),
        (Method::Post, "/v1/memory/store") => Some(&STORE),
        (Method::Post, "/v1/memory/recall") => Some(&RECALL),
        (Method::Post, "/v1/memory/forget") => Some(&FORGET),
        _ => None,
    }
}

const fn p(name: &'static str, kind: Kind) -> Param {
    Param { name, kind }
}

macro_rules! dakera {
    ($op:literal, $method:ident $path:literal, $args:expr, $body:expr, $query:expr, $status:literal,
     $adapter:expr, $fields:expr, $summary:literal) => {
        DakeraRoute {
            route: crate::routes::route!(
                $op, $method $path, $args, $body, $query, $status, "dakera", $summary
            ),
            adapter: &$adapter,
            body_fields: $fields,
        }
    };
}

const NS: &[(&str, &str)] = &[("name", "namespace")];

/// Routes only Dakera's SDKs use (memsilo's own clients never pick them).
pub static ROUTES: &[DakeraRoute] = &[
    dakera!("get_memory_policy", Get "/v1/namespaces/{name}/memory_policy", NS, Body::None, &[], 200,
        POLICY, &[], "Dakera: a namespace's memory policy"),
    dakera!("set_memory_policy", Put "/v1/namespaces/{name}/memory_policy", NS, Body::Object, &[], 200,
        SET_POLICY, &["working_ttl_seconds", "episodic_ttl_seconds", "semantic_ttl_seconds",
            "procedural_ttl_seconds", "working_decay", "episodic_decay", "semantic_decay",
            "procedural_decay", "decay_rate", "min_importance", "ttl_default"],
        "Dakera: set a namespace's memory policy (what memsilo cannot apply is listed in warnings)"),
    dakera!("create_key", Post "/v1/namespaces/{name}/keys", NS, Body::Object, &[], 201,
        CREATE_KEY, &["name", "scope", "extra_namespaces", "expires_in_days"],
        "Dakera: create a key scoped to the namespace (the only time the key is returned)"),
    dakera!("list_keys", Get "/v1/namespaces/{name}/keys", NS, Body::None, &[], 200,
        LIST_KEYS, &[], "Dakera: the keys granted this namespace"),
    dakera!("revoke_key", Delete "/v1/namespaces/{name}/keys/{key_id}", &[("name", "namespace"), ("key_id", "key_id")],
        Body::None, &[], 200, REVOKE_KEY, &[], "Dakera: revoke a key granted this namespace"),
    dakera!("get_memory", Get "/v1/memory/get/{id}", &[("id", "id")], Body::None, &[p("agent_id", Kind::Text)], 200,
        GET_MEMORY, &[], "Dakera: get a memory (agent_id names the namespace)"),
    dakera!("update_memory", Put "/v1/memory/update/{id}", &[("id", "id")], Body::Object, &[p("agent_id", Kind::Text)], 200,
        UPDATE_MEMORY, &["content", "metadata", "memory_type", "importance", "tags"],
        "Dakera: update a memory (agent_id names the namespace)"),
    dakera!("batch_forget", Delete "/v1/memories/forget/batch", &[], Body::Object, &[], 200,
        BATCH_FORGET, &["agent_id", "filter"], "Dakera: forget the memories matching a filter"),
    dakera!("start_session", Post "/v1/sessions/start", &[], Body::Object, &[], 201,
        START_SESSION, &["agent_id", "metadata", "idle_timeout_secs"], "Dakera: start a session"),
    dakera!("end_session", Post "/v1/sessions/{id}/end", &[("id", "id")], Body::Object, &[], 200,
        ONE_SESSION, &["summary"], "Dakera: end a session"),
    dakera!("get_session", Get "/v1/sessions/{id}", &[("id", "id")], Body::None, &[], 200,
        ONE_SESSION, &[], "Dakera: get a session"),
    dakera!("list_sessions", Get "/v1/sessions", &[], Body::None,
        &[p("agent_id", Kind::Text), p("active_only", Kind::Boolean), p("limit", Kind::Integer), p("offset", Kind::Integer)],
        200, LIST_SESSIONS, &[], "Dakera: list sessions (a bare array)"),
    dakera!("session_memories", Get "/v1/sessions/{id}/memories", &[("id", "id")], Body::None,
        &[p("limit", Kind::Integer), p("offset", Kind::Integer), p("content_preview_chars", Kind::Integer)],
        200, SESSION_MEMORIES, &[], "Dakera: a session's memories"),
];

/// Dakera routes memsilo refuses, each with why and what to do instead: the SDK's call gets
/// `400 invalid_argument` naming `route` and saying so, not a bare `404`. The refusal comes
/// before authentication and reads no body (nothing of what was sent is kept or logged).
pub const REFUSED: &[(Method, &str, &str)] = &[(
    Method::Post,
    "/v1/admin/encryption/rotate-key",
    "is refused: memsilo never takes key material (new_key) in a request, where it would \
     cross the network and any proxy in the clear (memsilo serve speaks plain HTTP), and keys \
     live in its key provider (--keyring). Rotate a tenant's key with POST \
     /api/v1/tenants/{id}/rotate-key {\"new_key_id\"} (to bring your own key, put it in the \
     keyring under that id first); the instance key is not rotated online: export and import \
     into a directory created with a new keyring (docs: encryption)",
)];

/// The refusal for `method` `path` when it is one of [`REFUSED`].
pub fn refusal(method: &str, path: &str) -> Option<Error> {
    REFUSED
        .iter()
        .find(|(m, p, _)| m.as_str() == method && *p == path)
        .map(|(m, p, why)| Error::invalid("route", format!("{} {p} {why}", m.as_str())))
}

/// API.md's error body in Dakera's shape, for a Dakera client: `error` and `details` are
/// the message, `code` is Dakera's `ErrorCode` (absent where Dakera has none), and
/// `memsilo_error` keeps our code; every other field (`namespace`, `field`, `retry_after`,
/// ...) stays.
pub fn error_body(mut body: Map<String, Value>, code: Option<&str>) -> Map<String, Value> {
    let message = body.remove("message").unwrap_or(Value::Null);
    if let Some(ours) = body.remove("error") {
        body.insert("memsilo_error".into(), ours);
    }
    body.remove("code");
    if let Some(code) = code {
        body.insert("code".into(), json!(code));
    }
    body.insert("error".into(), message.clone());
    body.insert("details".into(), message);
    body
}

/// The Dakera routes whose operation this build has.
pub fn routes() -> impl Iterator<Item = &'static DakeraRoute> {
    ROUTES.iter().filter(|r| memsilo::api::Request::OPERATIONS.contains(&r.route.op))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dakera_client_is_told_by_its_user_agent_in_any_case() {
        let with_ua = |ua: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(USER_AGENT, axum::http::HeaderValue::from_static(ua));
            h
        };
        for ua in ["dakera-py/0.14.1", "Dakera-JS/1.0", "DAKERA"] {
            assert!(is_dakera_client(&with_ua(ua)), "{ua}");
        }
        for ua in ["dak", "memsilo-py/0.1", "my-dakera"] {
            assert!(!is_dakera_client(&with_ua(ua)), "{ua}");
        }
        assert!(!is_dakera_client(&HeaderMap::new()));
    }

    #[test]
    fn dakera_routes_are_apart_from_memsilo_routes_and_shared_ones_exist() {
        for d in ROUTES {
            for r in crate::routes::ROUTES {
                assert!(
                    !(d.route.method == r.method && d.route.path == r.path),
                    "{} {}",
                    r.method.as_str(),
                    r.path
                );
            }
            for (placeholder, _) in d.route.path_args {
                assert!(d.route.path.contains(&format!("{{{placeholder}}}")), "{}", d.route.path);
            }
        }
        let shared = crate::routes::ROUTES.iter().filter(|r| shared_route_adapter(r).is_some());
        assert_eq!(shared.count(), 6);
    }

    #[test]
    fn dakeras_encryption_key_rotation_is_refused_saying_why_and_what_instead() {
        let e = refusal("POST", "/v1/admin/encryption/rotate-key").expect("refused");
        assert_eq!(e.code(), memsilo::ErrorCode::InvalidArgument);
        let text = e.to_string();
        assert!(
            text.starts_with("route: POST /v1/admin/encryption/rotate-key is refused"),
            "{text}"
        );
        assert!(text.contains("never takes key material"), "{text}");
        assert!(text.contains("/api/v1/tenants/{id}/rotate-key"), "{text}");
        assert!(refusal("GET", "/v1/admin/encryption/rotate-key").is_none());
        assert!(refusal("POST", "/v1/admin/encryption/rotate-keys").is_none());
    }

    #[test]
    fn dakera_clients_are_told_by_user_agent_or_header() {
        let mut h = HeaderMap::new();
        assert!(!is_dakera_client(&h));
        h.insert(USER_AGENT, "dakera-py/0.14.1".parse().unwrap());
        assert!(is_dakera_client(&h));
        h.insert(USER_AGENT, "curl/8".parse().unwrap());
        assert!(!is_dakera_client(&h));
        h.insert(DIALECT_HEADER, "Dakera".parse().unwrap());
        assert!(is_dakera_client(&h));
    }

    #[test]
    fn a_uniform_dakera_policy_maps_onto_ttl_default_and_the_rest_is_noted() {
        let mut notes = Vec::new();
        let mut a = Map::new();
        a.insert("namespace".into(), json!("ns"));
        for t in TYPES {
            a.insert(format!("{t}_ttl_seconds"), json!(3600));
            a.insert(format!("{t}_decay"), json!("flat"));
        }
        a.insert("dedup_on_store".into(), json!(false));
        let out = policy_args(a.clone(), &mut notes).unwrap();
        assert_eq!(out["policy"], json!({ "ttl_default": 3600, "decay_rate": 0.0 }));
        assert!(notes.is_empty(), "{notes:?}");
        a.insert("working_ttl_seconds".into(), json!(60));
        a.insert("dedup_on_store".into(), json!(true));
        let out = policy_args(a, &mut notes).unwrap();
        assert_eq!(out["policy"], json!({ "decay_rate": 0.0 }));
        assert_eq!(notes.len(), 2, "{notes:?}");
    }

    #[test]
    fn dakera_batch_filters_become_the_filter_language() {
        let a = Map::from_iter([
            ("agent_id".into(), json!("ns")),
            (
                "filter".into(),
                json!({ "tags": ["a"], "created_before": 0, "memory_type": "working" }),
            ),
        ]);
        let out = batch_forget_args(a, &mut Vec::new()).unwrap();
        assert_eq!(out["namespace"], "ns");
        assert_eq!(
            out["filter"],
            json!({ "$and": [
                { "tags": { "$contains_all": ["a"] } },
                { "created_at": { "$lte": "1970-01-01T00:00:00Z" } },
                { "memory_type": "working" },
            ] })
        );
        let bad = Map::from_iter([("filter".into(), json!({ "colour": "red" }))]);
        let err = batch_forget_args(bad, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().starts_with("filter.colour: "), "{err}");
        let empty = Map::from_iter([("filter".into(), json!({}))]);
        assert!(batch_forget_args(empty, &mut Vec::new()).is_err());
    }
}
