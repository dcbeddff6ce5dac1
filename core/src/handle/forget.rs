//! Changing and removing memories: `update_memory`, `delete_memory`, `batch_forget`. A
//! change is validated before anything is written and rewrites the memory in one transaction.

use serde_json::Map;

use crate::auth::NamespaceAction;
use crate::datastore::ns_key;
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::memory::{
    effective_importance, is_live, memory_key, read_memory, scan_memories, validate_content,
    validate_id, validate_ids, validate_importance, validate_session, validate_tags, validate_ttl,
    Forget, Forgotten, Memory, MemoryType, Prepared, StoredMemory, UpdateMemory, CALLER_EMBEDDER,
};
use crate::namespace::NamespaceRecord;
use crate::vector::unit_vector;

impl Handle {
    /// Changes the given fields of a stored memory (`not_found` if absent): new content is
    /// re-embedded, metadata is merged unless `replace` is set, `ttl` restarts the expiry from
    /// now; `created_at` stays and `updated_at` moves to now.
    pub fn update_memory(&self, req: UpdateMemory) -> Result<Memory> {
        let caller = self.caller()?;
        let (rec, _) =
            self.memory_namespace(&caller, req.namespace.as_deref(), None, NamespaceAction::Write)?;
        validate_id(&req.id, "id")?;
        if let Some(c) = &req.content {
            validate_content(c, "content")?;
        }
        if let Some(i) = req.importance {
            validate_importance(i, "importance")?;
        }
        if let Some(tags) = &req.tags {
            validate_tags(tags, "tags")?;
        }
        if let Some(m) = &req.metadata {
            crate::document::check_object("metadata", m)?;
        }
        validate_ttl(req.ttl, "ttl")?;
        validate_session(req.session_id.as_deref(), "session_id")?;
        let vector = req.embedding.clone().map(|v| unit_vector(v, "embedding")).transpose()?;
        let caller_vector = vector.is_some();
        let now = self.state.options.clock.now();
        let now_micros = self.state.now_micros();
        let placeholder = Memory {
            id: req.id.clone(),
            namespace: rec.name.clone(),
            agent_id: None,
            content: req.content.clone().unwrap_or_default(),
            importance: 0.0,
            tags: Vec::new(),
            metadata: Map::new(),
            entities: Vec::new(),
            memory_type: MemoryType::default(),
            session_id: None,
            created_at: now,
            updated_at: now,
            expires_at: None,
            vector: None,
        };
        let mut p = Prepared::new(placeholder, vector)?;
        p.embed = req.content.is_some();
        let policy = rec.policy;
        let patch = move |old: Memory, _: &mut Prepared| -> Result<Memory> {
            if !is_live(&old, &policy, now_micros) {
                return Err(Error::not_found("memory", &old.id));
            }
            let mut m = old;
            if let Some(c) = &req.content {
                m.content.clone_from(c);
            }
            if let Some(i) = req.importance {
                m.importance = i;
            }
            if let Some(tags) = &req.tags {
                m.tags.clone_from(tags);
            }
            if let Some(meta) = &req.metadata {
                if req.replace {
                    m.metadata.clone_from(meta);
                } else {
                    for (k, v) in meta {
                        if v.is_null() {
                            m.metadata.remove(k);
                        } else {
                            m.metadata.insert(k.clone(), v.clone());
                        }
                    }
                }
                crate::document::check_object("metadata", &m.metadata)?;
            }
            if let Some(t) = req.ttl {
                m.expires_at = Some(now + chrono::Duration::seconds(t as i64));
            }
            if let Some(mt) = req.memory_type {
                m.memory_type = mt;
            }
            if let Some(sid) = &req.session_id {
                m.session_id = Some(sid.clone());
            }
            m.updated_at = now;
            m.vector = None;
            Ok(m)
        };
        let by = caller_vector.then_some(CALLER_EMBEDDER);
        let mut out = self.write_memories(&rec, vec![p], by, Some(&patch))?;
        out.pop().ok_or_else(|| Error::Internal("update wrote nothing".into()))
    }

    /// Deletes one memory; `not_found` if it does not exist.
    pub fn delete_memory(&self, namespace: Option<&str>, id: &str) -> Result<Memory> {
        let caller = self.caller()?;
        let (rec, _) = self.memory_namespace(&caller, namespace, None, NamespaceAction::Write)?;
        validate_id(id, "id")?;
        let mut removed = self.remove_memories(&rec, &[memory_key(id)])?;
        removed.pop().ok_or_else(|| Error::not_found("memory", id))
    }

    /// Deletes memories matching every given filter; at least one filter is required.
    pub fn batch_forget(&self, req: Forget) -> Result<Forgotten> {
        let caller = self.caller()?;
        let (rec, agent_is_ns) = self.memory_namespace(
            &caller,
            req.namespace.as_deref(),
            req.agent_id.as_deref(),
            NamespaceAction::Write,
        )?;
        let agent = if agent_is_ns { None } else { req.agent_id.as_deref() };
        let has_filter = req.ids.is_some()
            || agent.is_some()
            || req.tags.is_some()
            || req.before.is_some()
            || req.below_importance.is_some()
            || req.filter.is_some();
        if !has_filter {
            return Err(Error::invalid(
                "filter",
                "at least one of ids, agent_id, tags, before, below_importance, filter is required",
            ));
        }
        let filter = crate::listing::parse_filter(req.filter.as_ref())?;
        if filter.is_some() {
            self.state.ensure_fields(&rec)?;
        }
        if let Some(tags) = &req.tags {
            if tags.is_empty() {
                return Err(Error::invalid("tags", "must not be empty"));
            }
            validate_tags(tags, "tags")?;
        }
        if let Some(b) = req.below_importance {
            validate_importance(b, "below_importance")?;
        }
        if let Some(ids) = &req.ids {
            validate_ids(ids, "ids")?;
        }
        let ids: Option<Vec<[u8; 16]>> =
            req.ids.as_ref().map(|ids| ids.iter().map(|i| memory_key(i)).collect());
        let now = self.state.now_micros();
        let env = self.state.data_env_of(&rec)?;
        let matching: Vec<[u8; 16]> = env.read(|r, t| {
            let mut out = Vec::new();
            let indexed = match (&ids, &filter) {
                (None, Some(f)) => crate::filter::candidates(t, r, rec.id, f, usize::MAX)?
                    .map(|c| c.into_keys().collect::<Vec<_>>()),
                _ => None,
            };
            let candidates: Box<dyn Iterator<Item = Result<StoredMemory>>> =
                match ids.as_ref().or(indexed.as_ref()) {
                    Some(ids) => Box::new(
                        ids.iter()
                            .filter_map(|id| read_memory(t, r, &ns_key(rec.id, id)).transpose()),
                    ),
                    None => Box::new(scan_memories(t, r, rec.id)?),
                };
            for s in candidates {
                let m = s?.memory;
                let ok = agent.is_none_or(|a| m.agent_id.as_deref() == Some(a))
                    && req.tags.as_ref().is_none_or(|tags| tags.iter().all(|t| m.tags.contains(t)))
                    && req.before.is_none_or(|b| m.created_at < b)
                    && req
                        .below_importance
                        .is_none_or(|b| effective_importance(&m, &rec.policy, now) < b)
                    && filter.as_ref().is_none_or(|f| f.matches(&m));
                if ok {
                    out.push(memory_key(&m.id));
                }
            }
            Ok(out)
        })?;
        let removed = self.remove_memories(&rec, &matching)?;
        Ok(Forgotten { forgotten: removed.len() as u64 })
    }

    /// Removes memories by id in one transaction and releases their storage.
    fn remove_memories(&self, rec: &NamespaceRecord, ids: &[[u8; 16]]) -> Result<Vec<Memory>> {
        self.state.remove_memories(rec, ids)
    }
}
