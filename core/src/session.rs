//! Sessions: named spans of an agent's work inside a namespace (the guide: a namespace holds
//! "memories, sessions, graphs"). A session is started, ended once (with an optional summary)
//! and listed; its memories are the namespace's memories whose `session_id` is its id (a
//! memory's `session_id` is a free label: storing into a session that was never started, or
//! has ended, is allowed). Sessions live in the namespace's environment (table `sessions`,
//! `ns ‖ key(id)`), so they go with the namespace when it is deleted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::memory::Memory;

/// Most sessions one namespace holds (a list reads them all).
pub const MAX_SESSIONS: usize = 100_000;

/// A session as returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Session {
    /// The caller's id, or a UUID v7.
    pub id: String,
    /// Namespace name.
    pub namespace: String,
    /// The agent the session belongs to, if given.
    pub agent_id: Option<String>,
    /// Free-form metadata object.
    pub metadata: Map<String, Value>,
    /// When it was started.
    pub started_at: DateTime<Utc>,
    /// When it was ended (`null` while active).
    pub ended_at: Option<DateTime<Utc>>,
    /// The summary given when it was ended.
    pub summary: Option<String>,
    /// Live memories whose `session_id` is this session's id.
    pub memory_count: u64,
}

/// A session as stored (the namespace and the count are filled in when read).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub(crate) id: String,
    pub(crate) agent_id: Option<String>,
    pub(crate) metadata: Map<String, Value>,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) ended_at: Option<DateTime<Utc>>,
    pub(crate) summary: Option<String>,
}

impl SessionRecord {
    pub(crate) fn view(self, namespace: &str, memory_count: u64) -> Session {
        Session {
            id: self.id,
            namespace: namespace.to_owned(),
            agent_id: self.agent_id,
            metadata: self.metadata,
            started_at: self.started_at,
            ended_at: self.ended_at,
            summary: self.summary,
            memory_count,
        }
    }
}

/// Arguments of `start_session`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StartSession {
    /// Namespace (else `agent_id`, else the key's only namespace, as for memories).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The agent the session belongs to.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The session's id (1-256 printable characters; a UUID v7 when absent). An id the
    /// namespace has already is `conflict`.
    #[serde(default)]
    pub id: Option<String>,
    /// Free-form metadata object.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// Arguments of `end_session`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EndSession {
    /// Namespace (optional for a key with exactly one namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Session id.
    pub id: String,
    /// A summary of the session (at most 64 KiB).
    #[serde(default)]
    pub summary: Option<String>,
}

/// Arguments of `get_session`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionArgs {
    /// Namespace (optional for a key with exactly one namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Session id.
    pub id: String,
}

/// Arguments of `list_sessions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListSessions {
    /// Namespace (else `agent_id`, else the key's only namespace, as for memories).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only this agent's sessions (when `namespace` is given; otherwise it names the
    /// namespace).
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Only sessions not yet ended.
    #[serde(default)]
    pub active_only: Option<bool>,
    /// Items to skip.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Page size (default 50, at most 100).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Arguments of `session_memories`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SessionMemories {
    /// Namespace (optional for a key with exactly one namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Session id.
    pub id: String,
    /// Items to skip.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Page size (default 50, at most 100).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// A page of a session's memories, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MemoryList {
    /// The memories of this page.
    pub memories: Vec<Memory>,
    /// Memories in all pages.
    pub total_count: u64,
}

/// A page of sessions, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SessionPage {
    /// The sessions of this page.
    pub sessions: Vec<Session>,
    /// Sessions matching in all pages.
    pub total_count: u64,
}

pub(crate) fn decode_session(bytes: &[u8]) -> Result<SessionRecord> {
    serde_json::from_slice(bytes).map_err(|e| Error::internal_from("session record", e))
}

/// The filter "`session_id` is one of `ids`".
pub(crate) fn of_sessions(ids: &[&str]) -> Result<crate::filter::Filter> {
    crate::filter::Filter::parse(&serde_json::json!({ "session_id": { "$in": ids } }), "filter")
}
