//! Which operations run on a namespace's owner (the rest are control-plane operations any
//! node answers), whether they write, and the namespace their arguments name.

use memsilo::api::Request;
use memsilo::{Error, Result};
use serde_json::Value;

/// The operations of one namespace served in cluster mode, on its owner. Which of them write
/// (and are logged before they are applied) is the operation table's flag
/// ([`memsilo::api::Effect`]).
const SERVED: &[&str] = &[
    "store_memory",
    "store_memories",
    "update_memory",
    "delete_memory",
    "recall",
    "get_memory",
    "get_memories",
    "get_namespace",
    "delete_namespace",
    "get_memory_policy",
    "set_memory_policy",
    "batch_forget",
    "import_namespace",
    "list_memories",
    "count_memories",
    "export_namespace",
    "get_entity",
    "neighbors",
    "subgraph",
    "shortest_path",
    "add_entity",
    "add_relation",
    "delete_entity",
    "delete_relation",
    "get_session",
    "list_sessions",
    "session_memories",
    "start_session",
    "end_session",
];

/// Whether `op` runs on a namespace's owner, and whether it writes.
pub fn namespace_op(op: &str) -> Option<bool> {
    if !SERVED.contains(&op) {
        return None;
    }
    Request::effect_of(op).map(|e| e != memsilo::api::Effect::Read)
}

/// The namespace an operation's arguments name.
pub fn namespace_of(op: &str, args: &Value) -> Result<String> {
    let field =
        if matches!(op, "get_namespace" | "delete_namespace") { "name" } else { "namespace" };
    let given = args.get(field).and_then(Value::as_str);
    // Core reads the namespace of these calls from `agent_id` when `namespace` is absent
    // (how Dakera's SDKs name it); the owner runs them with the arguments as they are.
    let agent = || {
        AGENT_NAMES_NAMESPACE
            .contains(&op)
            .then(|| args.get("agent_id").and_then(Value::as_str))
            .flatten()
    };
    given
        .or_else(agent)
        .map(str::to_owned)
        .ok_or_else(|| Error::invalid(field, "required in cluster mode"))
}

/// The operations whose missing `namespace` core takes from `agent_id`
/// (`Handle::memory_namespace` with an agent).
const AGENT_NAMES_NAMESPACE: &[&str] =
    &["store_memory", "recall", "batch_forget", "start_session", "list_sessions"];
