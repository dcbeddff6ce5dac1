//! Sessions: starting, ending and listing them, and the memories stored in one.

use std::collections::HashMap;

use crate::auth::NamespaceAction;
use crate::datastore::ns_key;
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::memory::{memory_key, validate_id, MAX_CONTENT_BYTES};
use crate::namespace::NamespaceRecord;
use crate::page::Page;
use crate::session::{
    decode_session, of_sessions, EndSession, ListSessions, MemoryList, Session, SessionMemories,
    SessionPage, SessionRecord, StartSession, MAX_SESSIONS,
};

impl Handle {
    /// Resolves and authorizes the namespace of a session call.
    fn session_namespace(
        &self,
        namespace: Option<&str>,
        agent_id: Option<&str>,
        action: NamespaceAction,
    ) -> Result<(NamespaceRecord, bool)> {
        let caller = self.caller()?;
        self.memory_namespace(&caller, namespace, agent_id, action)
    }

    /// Starts a session. `conflict` if the namespace has a session with that id.
    pub fn start_session(&self, req: StartSession) -> Result<Session> {
        let (rec, _) = self.session_namespace(
            req.namespace.as_deref(),
            req.agent_id.as_deref(),
            NamespaceAction::Write,
        )?;
        if let Some(id) = &req.id {
            validate_id(id, "id")?;
        }
        if req.agent_id.as_ref().is_some_and(|a| a.is_empty() || a.len() > 256) {
            return Err(Error::invalid("agent_id", "must be 1-256 bytes"));
        }
        let metadata = req.metadata.unwrap_or_default();
        crate::document::check_object("metadata", &metadata)?;
        let record = SessionRecord {
            id: req.id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            // An agent that named the namespace is still the session's agent.
            agent_id: req.agent_id,
            metadata,
            started_at: self.state.options.clock.now(),
            ended_at: None,
            summary: None,
        };
        let key = ns_key(rec.id, &memory_key(&record.id));
        let json = serde_json::to_vec(&record)?;
        let env = self.state.data_env_of(&rec)?;
        env.write_ns(rec.id, |w, t| {
            if self.state.is_dead(rec.id) {
                return Err(Error::namespace_forbidden(&rec.name));
            }
            if let Some(old) = t.sessions.get(w, &key)? {
                let old = decode_session(old)?;
                return Err(Error::Conflict(format!(
                    "session {} already exists in namespace {}",
                    old.id, rec.name
                )));
            }
            let prefix = rec.id.to_be_bytes();
            if t.sessions.prefix_iter(w, &prefix)?.count() >= MAX_SESSIONS {
                return Err(Error::invalid(
                    "id",
                    format!("the namespace has {MAX_SESSIONS} sessions, the most it holds"),
                ));
            }
            t.sessions.put(w, &key, &json)?;
            Ok(())
        })?;
        Ok(record.view(&rec.name, 0))
    }

    /// Ends a session, keeping `summary`. Ending an ended session returns it unchanged.
    pub fn end_session(&self, req: EndSession) -> Result<Session> {
        let (rec, _) =
            self.session_namespace(req.namespace.as_deref(), None, NamespaceAction::Write)?;
        validate_id(&req.id, "id")?;
        if req.summary.as_ref().is_some_and(|s| s.len() > MAX_CONTENT_BYTES) {
            return Err(Error::invalid(
                "summary",
                format!("must be at most {MAX_CONTENT_BYTES} bytes"),
            ));
        }
        let key = ns_key(rec.id, &memory_key(&req.id));
        let now = self.state.options.clock.now();
        let env = self.state.data_env_of(&rec)?;
        let record = env.write_ns(rec.id, |w, t| {
            let mut s = match t.sessions.get(w, &key)? {
                Some(bytes) => decode_session(bytes)?,
                None => return Err(Error::not_found("session", &req.id)),
            };
            if s.id != req.id {
                return Err(Error::not_found("session", &req.id));
            }
            if s.ended_at.is_none() {
                s.ended_at = Some(now);
                s.summary.clone_from(&req.summary);
                t.sessions.put(w, &key, &serde_json::to_vec(&s)?)?;
            }
            Ok(s)
        })?;
        let count = self.session_memory_counts(&rec, &[record.id.as_str()])?;
        let n = count.get(&record.id).copied().unwrap_or(0);
        Ok(record.view(&rec.name, n))
    }

    /// One session (`not_found` if the namespace has none with that id).
    pub fn get_session(&self, namespace: Option<&str>, id: &str) -> Result<Session> {
        let (rec, _) = self.session_namespace(namespace, None, NamespaceAction::Read)?;
        validate_id(id, "id")?;
        let key = ns_key(rec.id, &memory_key(id));
        let env = self.state.data_env_of(&rec)?;
        let record = env.read(|r, t| match t.sessions.get(r, &key)? {
            Some(bytes) => decode_session(bytes),
            None => Err(Error::not_found("session", id)),
        })?;
        if record.id != id {
            return Err(Error::not_found("session", id));
        }
        let count = self.session_memory_counts(&rec, &[id])?;
        let n = count.get(id).copied().unwrap_or(0);
        Ok(record.view(&rec.name, n))
    }

    /// A namespace's sessions, oldest first (then by id), optionally one agent's or only the
    /// active ones, paged by `offset` and `limit`.
    pub fn list_sessions(&self, req: ListSessions) -> Result<SessionPage> {
        let (rec, agent_is_ns) = self.session_namespace(
            req.namespace.as_deref(),
            req.agent_id.as_deref(),
            NamespaceAction::Read,
        )?;
        let (offset, limit) = Page { offset: req.offset, limit: req.limit }.bounds()?;
        let agent = if agent_is_ns { None } else { req.agent_id.as_deref() };
        let active_only = req.active_only.unwrap_or(false);
        let env = self.state.data_env_of(&rec)?;
        let mut all = env.read(|r, t| {
            let mut out = Vec::new();
            for e in t.sessions.prefix_iter(r, &rec.id.to_be_bytes())? {
                let s = decode_session(e?.1)?;
                if agent.is_some_and(|a| s.agent_id.as_deref() != Some(a))
                    || (active_only && s.ended_at.is_some())
                {
                    continue;
                }
                out.push(s);
            }
            Ok(out)
        })?;
        all.sort_by(|a, b| a.started_at.cmp(&b.started_at).then_with(|| a.id.cmp(&b.id)));
        let total_count = all.len() as u64;
        let page: Vec<SessionRecord> = all.into_iter().skip(offset).take(limit).collect();
        let ids: Vec<&str> = page.iter().map(|s| s.id.as_str()).collect();
        let counts = self.session_memory_counts(&rec, &ids)?;
        let sessions = page
            .into_iter()
            .map(|s| {
                let n = counts.get(&s.id).copied().unwrap_or(0);
                s.view(&rec.name, n)
            })
            .collect();
        Ok(SessionPage { sessions, total_count })
    }

    /// A session's memories (the live memories whose `session_id` is its id), oldest first,
    /// paged by `offset` and `limit`; `not_found` if the namespace has no such session.
    pub fn session_memories(&self, req: SessionMemories) -> Result<MemoryList> {
        let (offset, limit) = Page { offset: req.offset, limit: req.limit }.bounds()?;
        let session = self.get_session(req.namespace.as_deref(), &req.id)?;
        let (rec, _) =
            self.session_namespace(Some(&session.namespace), None, NamespaceAction::Read)?;
        let mut all = Vec::new();
        self.each_matching(&rec, &of_sessions(&[&req.id])?, |m| {
            all.push(m);
        })?;
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        let total_count = all.len() as u64;
        let memories = all.into_iter().skip(offset).take(limit).collect();
        Ok(MemoryList { memories, total_count })
    }

    /// Live memories per session id, for the sessions `ids` (from the `session_id` keys).
    fn session_memory_counts(
        &self,
        rec: &NamespaceRecord,
        ids: &[&str],
    ) -> Result<HashMap<String, u64>> {
        let mut counts = HashMap::new();
        if ids.is_empty() {
            return Ok(counts);
        }
        self.state.ensure_fields(rec)?;
        let env = self.state.data_env_of(rec)?;
        // Every memory live: a session's count is its number of session_id keys.
        let from_keys = env.read(|r, t| {
            if !crate::listing::all_live(rec, &t.stats_of(r, rec.id)?) {
                return Ok(None);
            }
            let field = crate::filter::Field::SessionId;
            for id in ids {
                let Some(n) = crate::filter::count_exact(t, r, rec.id, &field, id)? else {
                    return Ok(None);
                };
                counts.insert((*id).to_owned(), n);
            }
            Ok(Some(()))
        })?;
        if from_keys.is_some() {
            return Ok(counts);
        }
        counts.clear();
        self.each_matching(rec, &of_sessions(ids)?, |m| {
            if let Some(sid) = m.session_id {
                *counts.entry(sid).or_insert(0) += 1;
            }
        })?;
        Ok(counts)
    }
}
