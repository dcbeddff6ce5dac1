//! Storing and reading memories: validation, embedding of text given without a vector,
//! quota reservation, then one write per namespace (see [`crate::memory`] for the rows).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::auth::NamespaceAction;
use crate::datastore::{ns_key, DataTables, NamespaceStats};
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::handle::{Caller, Handle};
use crate::memory::{
    decode_record, is_live, look_ahead, memory_key, read_memory, read_vector, row_len, split_map,
    target_namespace, validate_agent, validate_content, validate_id, validate_ids,
    validate_importance, validate_session, validate_tags, validate_ttl, write_rows, Memory, Patch,
    Prepared, StoreMemory, WriteEffects, WriteStart, CALLER_EMBEDDER, MAX_BATCH, MAX_GET,
};
use crate::namespace::NamespaceRecord;
use crate::quota::ComputePermit;
use crate::records::memory::agent_key;
use crate::vector::{normalize, unit_vector, NewRow};

/// A batch of memories checked and built, not yet written (see [`Handle::prepare_memories`]).
pub(crate) struct PreparedBatch {
    caller: Caller,
    rec: NamespaceRecord,
    items: Vec<Prepared>,
    /// What made the items' vectors; `None`: they have none (the namespace's embedder embeds
    /// their text).
    vectors_by: Option<String>,
}

impl Handle {
    /// Resolves the namespace of a memory call and authorizes `action` on it.
    pub(crate) fn memory_namespace(
        &self,
        caller: &Caller,
        namespace: Option<&str>,
        agent_id: Option<&str>,
        action: NamespaceAction,
    ) -> Result<(NamespaceRecord, bool)> {
        let (name, agent_is_ns) = target_namespace(caller.principal(), namespace, agent_id)?;
        let rec = self.namespace_for(caller, &name, action)?;
        Ok((rec, agent_is_ns))
    }

    /// Checks a memory to store and builds it. The fields are checked under their own names;
    /// the failure of a batch's item `item` names its place (`memories[3].content`), so an item
    /// that passes formats no names.
    #[allow(clippy::unused_self)] // a method so every step of a store reads `self.…`
    fn prepare(
        &self,
        rec: &NamespaceRecord,
        mut m: StoreMemory,
        item: Option<usize>,
        now: DateTime<Utc>,
    ) -> Result<Prepared> {
        validate_agent(m.agent_id.as_deref())?;
        let importance = m.importance.unwrap_or(0.5);
        let metadata = m.metadata.take().unwrap_or_default();
        let ttl = m.ttl.or(rec.policy.ttl_default);
        let vector = (|| -> Result<Option<Vec<f32>>> {
            validate_content(&m.content, "content")?;
            validate_importance(importance, "importance")?;
            validate_tags(&m.tags, "tags")?;
            validate_tags(&m.entities, "entities")?;
            crate::document::check_object("metadata", &metadata)?;
            validate_ttl(ttl, "ttl")?;
            let vector = m.embedding.take().map(|v| unit_vector(v, "embedding")).transpose()?;
            if let Some(id) = &m.id {
                validate_id(id, "id")?;
            }
            validate_session(m.session_id.as_deref(), "session_id")?;
            Ok(vector)
        })()
        .map_err(|e| match item {
            Some(i) => of_item(e, i),
            None => e,
        })?;
        let id = m.id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let memory = Memory {
            namespace: rec.name.clone(),
            agent_id: m.agent_id,
            content: m.content,
            importance,
            tags: m.tags,
            metadata,
            entities: m.entities,
            memory_type: m.memory_type.unwrap_or_default(),
            session_id: m.session_id,
            created_at: now,
            updated_at: now,
            expires_at: ttl.map(|t| now + chrono::Duration::seconds(t as i64)),
            vector: None,
            id,
        };
        Prepared::new(memory, vector)
    }

    /// Embeds the text of items without a caller vector, using the namespace's embedder.
    fn embed_missing(embedder: &dyn Embedder, items: &mut [Prepared]) -> Result<()> {
        let missing: Vec<usize> =
            (0..items.len()).filter(|i| items[*i].vector.is_none() && items[*i].embed).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let texts: Vec<&str> = missing.iter().map(|i| items[*i].memory.content.as_str()).collect();
        let vectors = embedder.embed(&texts)?;
        for (i, mut v) in missing.into_iter().zip(vectors) {
            normalize(&mut v);
            items[i].vector = Some(v);
        }
        Ok(())
    }

    /// Writes prepared memories in one transaction (all or none) through [`put_memory`],
    /// charging the tenant's storage quota by the difference with the memories they replace.
    /// `vectors_by` names what made the items' vectors ([`CALLER_EMBEDDER`] for the caller's,
    /// an embedder's name for an import's); `None`: the namespace's embedder embeds the text of
    /// items without one. With `patch`, each item is an update of the memory stored under its
    /// id (`not_found` when there is none): `patch` builds the new memory from the stored one
    /// inside the transaction, so concurrent updates do not lose each other's fields.
    pub(crate) fn write_memories(
        &self,
        rec: &NamespaceRecord,
        mut items: Vec<Prepared>,
        vectors_by: Option<&str>,
        patch: Option<&Patch<'_>>,
    ) -> Result<Vec<Memory>> {
        let start = self.begin_write(rec, &mut items, vectors_by)?;
        let written = start.env.write_ns(rec.id, |w, t| {
            write_rows(
                &|id| self.state.is_dead(id),
                rec,
                &mut items,
                &start.embedder_name,
                patch,
                w,
                t,
            )
        })?;
        Ok(self.finish_write(rec, start, items, written))
    }

    /// [`Handle::write_memories`] of new memories (no patch) for a caller on an async
    /// executor: the commit is awaited without holding a thread (see
    /// [`crate::store::Store::write_ns_async`]).
    async fn write_memories_async(
        &self,
        rec: &NamespaceRecord,
        mut items: Vec<Prepared>,
        vectors_by: Option<&str>,
    ) -> Result<Vec<Memory>> {
        let start = self.begin_write(rec, &mut items, vectors_by)?;
        let rows = Arc::new(parking_lot::Mutex::new(items));
        let job = {
            let (state, rec, rows) = (self.state.clone(), rec.clone(), rows.clone());
            let name = start.embedder_name.clone();
            move |w: &mut heed3::RwTxn<'_>, t: &DataTables| {
                write_rows(&|id| state.is_dead(id), &rec, &mut rows.lock(), &name, None, w, t)
            }
        };
        let written = start.env.write_ns_async(rec.id, job).await?;
        let items = std::mem::take(&mut *rows.lock());
        Ok(self.finish_write(rec, start, items, written))
    }

    /// Gives each item to embed whose content is the content its id holds already the stored
    /// vector, so that storing the same text again (a framework adding the same documents
    /// again) embeds nothing: the namespace's embedder (`embedder`, recorded in its stats)
    /// made that vector from that very text. Read before the write's transaction; a change of
    /// the id meanwhile cannot make the vector wrong, as it is the embedding of the item's
    /// own content.
    fn keep_stored_vectors(
        &self,
        rec: &NamespaceRecord,
        embedder: &str,
        items: &mut [Prepared],
    ) -> Result<()> {
        let to_embed = |p: &Prepared| p.vector.is_none() && p.embed;
        if !items.iter().any(to_embed) {
            return Ok(());
        }
        self.state.data_env_of(rec)?.read(|r, t| {
            if t.stats_of(r, rec.id)?.embedder.as_deref() != Some(embedder) {
                return Ok(());
            }
            for p in items.iter_mut().filter(|p| to_embed(p)) {
                let Some(bytes) = t.memories.get(r, &ns_key(rec.id, &p.id))? else { continue };
                let stored = decode_record(bytes)?;
                let same =
                    stored.memory.id == p.memory.id && stored.memory.content == p.memory.content;
                let Some(slot) = stored.slot.filter(|_| same) else { continue };
                if let Some(v) = read_vector(t, r, rec.id, Some(slot))? {
                    p.vector = Some(v);
                }
            }
            Ok(())
        })
    }

    /// What a write of memories does before its transaction: embeds the items without a
    /// vector (unless `vectors_by` names what made theirs), does what the transaction would do
    /// for them that needs no write (see [`look_ahead`]), and reserves the tenant's storage for
    /// the difference with the memories they replace.
    fn begin_write(
        &self,
        rec: &NamespaceRecord,
        items: &mut [Prepared],
        vectors_by: Option<&str>,
    ) -> Result<WriteStart<'_>> {
        let embedder_name = if let Some(name) = vectors_by {
            name.to_owned()
        } else {
            let embedder = self.state.embedder_for(rec)?;
            self.keep_stored_vectors(rec, embedder.name(), items)?;
            Self::embed_missing(embedder.as_ref(), items)?;
            embedder.name().to_owned()
        };
        self.state.ensure_keywords(rec)?;
        let env = self.state.data_env_of(rec)?;
        let chain = match &rec.tenant_id {
            Some(t) => self.state.catalog.read(|r, c| crate::tenant::quota_chain(c, r, t))?,
            None => Vec::new(),
        };
        // The reservation is the difference between what the items are expected to be charged
        // and what the memories they replace are charged now. With no quota to check (a
        // namespace outside tenants) it is nothing, and the latter is not summed.
        let charge_row = if chain.is_empty() {
            None
        } else {
            let dims = env.read(|r, t| Ok(t.stats_of(r, rec.id)?.dimensions))?;
            Some(dims.map_or(0, |d| row_len(d as usize)))
        };
        let replaced = look_ahead(&env, rec.id, items, charge_row)?;
        let delta = if chain.is_empty() {
            0
        } else {
            let total: u64 = items.iter().map(Prepared::estimate).sum();
            total.saturating_sub(replaced)
        };
        let reservation = self.state.usage.reserve(&chain, delta)?;
        Ok(WriteStart { env, embedder_name, chain, reservation })
    }

    /// What a write of memories does after its commit: keeps the storage it used, and
    /// applies the new rows to the cached vectors before returning (read-your-writes).
    fn finish_write(
        &self,
        rec: &NamespaceRecord,
        start: WriteStart<'_>,
        items: Vec<Prepared>,
        (effects, stats): (WriteEffects, NamespaceStats),
    ) -> Vec<Memory> {
        let WriteStart { chain, reservation, .. } = start;
        reservation.keep(effects.charged);
        if effects.freed > 0 {
            self.state.usage.adjust(&chain, -(effects.freed as i64));
        }
        // Apply the new rows to the cached vectors before returning (read-your-writes); the
        // rows of replaced memories go at the same time, so a recall never sees both.
        let rows = |written: &[(u32, usize)]| -> Vec<NewRow<'_>> {
            written
                .iter()
                .filter_map(|(slot, i)| {
                    let p = &items[*i];
                    let agent = agent_key(p.memory.agent_id.as_deref());
                    Some((*slot, p.id, p.vector.as_deref()?, agent))
                })
                .collect()
        };
        let (added, replaced) = (rows(&effects.added), rows(&effects.replaced));
        let seq = stats.vector_writes;
        self.state.vectors.apply(rec.id, seq, &added, &replaced, &effects.removed_slots);
        self.state.indexes.note_write(rec, &stats);
        items.into_iter().map(|p| p.memory).collect()
    }

    /// Stores one memory and returns it. The namespace is `req.namespace`; if absent, the
    /// `agent_id` value; if both are absent, the key's only namespace. The memory is
    /// recallable as soon as this returns.
    pub fn store_memory(&self, req: StoreMemory) -> Result<Memory> {
        let (rec, p, by, _slot) = self.start_store(req)?;
        let mut out = self.write_memories(&rec, vec![p], by, None)?;
        out.pop().ok_or_else(|| Error::Internal("store wrote nothing".into()))
    }

    /// [`Handle::store_memory`] for a caller on an async executor: the durable commit is
    /// awaited without holding a thread. Everything else runs on the calling thread (the
    /// text is embedded there), as a recall does.
    pub(crate) async fn store_memory_async(&self, req: StoreMemory) -> Result<Memory> {
        let (rec, p, by, _slot) = self.start_store(req)?;
        let mut out = self.write_memories_async(&rec, vec![p], by).await?;
        out.pop().ok_or_else(|| Error::Internal("store wrote nothing".into()))
    }

    /// A single store up to its write: the namespace authorized, the memory checked and
    /// built, what made its vector, and the compute slot its embedding takes.
    fn start_store(
        &self,
        req: StoreMemory,
    ) -> Result<(NamespaceRecord, Prepared, Option<&'static str>, Option<ComputePermit<'_>>)> {
        let caller = self.caller()?;
        let (rec, _) = self.memory_namespace(
            &caller,
            req.namespace.as_deref(),
            req.agent_id.as_deref(),
            NamespaceAction::Write,
        )?;
        let caller_vector = req.embedding.is_some();
        let p = self.prepare(&rec, req, None, self.state.options.clock.now())?;
        // Embedding the text is heavy work under the tenant's compute quota.
        let slot = if caller_vector { None } else { Some(self.compute_slot(&caller)?) };
        Ok((rec, p, caller_vector.then_some(CALLER_EMBEDDER), slot))
    }

    /// Stores many memories in one transaction: all of them or none. Either every item
    /// carries an `embedding` or none does. Returns the ids in order.
    pub fn store_memories(
        &self,
        namespace: &str,
        memories: Vec<StoreMemory>,
    ) -> Result<Vec<String>> {
        self.store_memories_by(namespace, memories, CALLER_EMBEDDER)
    }

    /// [`Handle::store_memories`] of memories whose vectors `vectors_by` made (an import's
    /// vectors of the target namespace's own embedder, or [`CALLER_EMBEDDER`]).
    pub(crate) fn store_memories_by(
        &self,
        namespace: &str,
        memories: Vec<StoreMemory>,
        vectors_by: &str,
    ) -> Result<Vec<String>> {
        let batch = self.prepare_memories(namespace, memories, vectors_by)?;
        self.write_batch(batch)
    }

    /// The part of [`Handle::store_memories_by`] before its write: the caller authorized,
    /// every memory checked and built (serialised once). The batch is written by
    /// [`Handle::write_batch`], which may run on another thread meanwhile writing the
    /// previous batch (an import's pipeline).
    pub(crate) fn prepare_memories(
        &self,
        namespace: &str,
        memories: Vec<StoreMemory>,
        vectors_by: &str,
    ) -> Result<PreparedBatch> {
        let caller = self.caller()?;
        let (rec, _) =
            self.memory_namespace(&caller, Some(namespace), None, NamespaceAction::Write)?;
        if memories.is_empty() {
            return Err(Error::invalid("memories", "must contain at least one memory"));
        }
        if memories.len() > MAX_BATCH {
            return Err(Error::PayloadTooLarge {
                field: "memories".into(),
                reason: format!("at most {MAX_BATCH} memories per batch"),
            });
        }
        let with_vectors = memories.iter().filter(|m| m.embedding.is_some()).count();
        if with_vectors != 0 && with_vectors != memories.len() {
            return Err(Error::invalid(
                "memories",
                "either every memory has an embedding or none does",
            ));
        }
        let mut seen = std::collections::HashMap::new();
        for (i, m) in memories.iter().enumerate() {
            if let Some(id) = &m.id {
                if let Some(first) = seen.insert(id.as_str(), i) {
                    return Err(Error::invalid(
                        format!("memories[{i}].id"),
                        format!("repeats the id of memories[{first}]"),
                    ));
                }
            }
        }
        let mut memories = memories;
        for (i, m) in memories.iter_mut().enumerate() {
            if m.namespace.as_deref().is_some_and(|n| n != namespace) {
                return Err(Error::invalid(
                    format!("memories[{i}].namespace"),
                    "differs from the batch namespace",
                ));
            }
            m.namespace = None;
            // Generated here, in the items' order (the checks below may run on several
            // threads): a batch's new ids sort as its items, each after the one before.
            if m.id.is_none() {
                m.id = Some(uuid::Uuid::now_v7().to_string());
            }
        }
        let now = self.state.options.clock.now();
        let items = split_map(memories, |i, m| self.prepare(&rec, m, Some(i), now))?;
        let vectors_by = (with_vectors > 0).then(|| vectors_by.to_owned());
        Ok(PreparedBatch { caller, rec, items, vectors_by })
    }

    /// Writes a batch [`Handle::prepare_memories`] prepared: all of it or none. Returns the
    /// ids in order.
    pub(crate) fn write_batch(&self, batch: PreparedBatch) -> Result<Vec<String>> {
        let PreparedBatch { caller, rec, items, vectors_by } = batch;
        let _slot = self.compute_slot(&caller)?;
        Ok(self
            .write_memories(&rec, items, vectors_by.as_deref(), None)?
            .into_iter()
            .map(|m| m.id)
            .collect())
    }

    /// Writes batches [`Handle::prepare_memories`] prepared for one namespace in one
    /// transaction, made durable by one commit and one sync instead of one each: all of them
    /// or none (on failure `batches` is left as it was, for the caller to write them one by
    /// one and so learn which failed). Returns how many memories each batch wrote. Each batch
    /// is reserved, written and applied to the cached vectors as [`Handle::write_batch`] does.
    pub(crate) fn write_batches(&self, batches: &mut Vec<PreparedBatch>) -> Result<Vec<usize>> {
        let Some(first) = batches.first() else { return Ok(Vec::new()) };
        let ns = first.rec.id;
        if batches.iter().any(|b| b.rec.id != ns) {
            return Err(Error::Internal("batches of different namespaces".into()));
        }
        let _slot = self.compute_slot(&first.caller)?;
        let mut starts = Vec::with_capacity(batches.len());
        for b in batches.iter_mut() {
            starts.push(self.begin_write(&b.rec, &mut b.items, b.vectors_by.as_deref())?);
        }
        let env = starts[0].env.clone();
        let written = env.write_ns(ns, |w, t| {
            batches
                .iter_mut()
                .zip(&starts)
                .map(|(b, start)| {
                    let is_dead = |id| self.state.is_dead(id);
                    write_rows(&is_dead, &b.rec, &mut b.items, &start.embedder_name, None, w, t)
                })
                .collect::<Result<Vec<_>>>()
        })?;
        Ok(batches
            .drain(..)
            .zip(starts)
            .zip(written)
            .map(|((b, start), effects)| self.finish_write(&b.rec, start, b.items, effects).len())
            .collect())
    }

    /// One memory by id (`not_found` if absent, expired or decayed away).
    pub fn get_memory(&self, namespace: Option<&str>, id: &str) -> Result<Memory> {
        let caller = self.caller()?;
        let (rec, _) = self.memory_namespace(&caller, namespace, None, NamespaceAction::Read)?;
        validate_id(id, "id")?;
        let mut found = self.read_memories(&rec, &[id], false)?;
        found.pop().ok_or_else(|| Error::not_found("memory", id))
    }

    /// Many memories by id, in the order asked; ids that are absent (or expired, or decayed
    /// away) are left out. With `include_vectors`, each memory carries its stored vector.
    pub fn get_memories(
        &self,
        namespace: Option<&str>,
        ids: &[String],
        include_vectors: bool,
    ) -> Result<Vec<Memory>> {
        let caller = self.caller()?;
        let (rec, _) = self.memory_namespace(&caller, namespace, None, NamespaceAction::Read)?;
        if ids.len() > MAX_GET {
            return Err(Error::invalid("ids", format!("at most {MAX_GET} ids")));
        }
        validate_ids(ids, "ids")?;
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.read_memories(&rec, &ids, include_vectors)
    }

    /// Up to `limit` live memories of `namespace` with their vectors, in storage order after
    /// the position `after` (what the previous call returned): how an export pages through a
    /// namespace without holding it. The position is `None` after the last memory.
    pub(crate) fn memory_rows(
        &self,
        namespace: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Memory>, Option<String>)> {
        let caller = self.caller()?;
        let (rec, _) =
            self.memory_namespace(&caller, Some(namespace), None, NamespaceAction::Read)?;
        let after = match after {
            Some(hex) => {
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .filter(|b| b.len() == 16)
                    .ok_or_else(|| Error::invalid("cursor", "malformed"))?;
                Some(bytes)
            }
            None => None,
        };
        let now = self.state.now_micros();
        let env = self.state.data_env_of(&rec)?;
        env.read(|r, t| {
            let start = ns_key(rec.id, after.as_deref().unwrap_or(&[]));
            let stop = (rec.id + 1).to_be_bytes();
            let lower = match after {
                Some(_) => std::ops::Bound::Excluded(start),
                None => std::ops::Bound::Included(start),
            };
            let (mut out, mut next) = (Vec::new(), None);
            let upper = std::ops::Bound::Excluded(stop.to_vec());
            crate::storage::scan(&t.memories, r, lower, upper, false, |r, k, v| {
                let s = decode_record(v)?;
                if !is_live(&s.memory, &rec.policy, now) {
                    return Ok(true);
                }
                let mut m = s.memory;
                m.vector = read_vector(t, r, rec.id, s.slot)?;
                out.push(m);
                if out.len() == limit {
                    next = Some(crate::auth::to_hex(&k[8..]));
                    return Ok(false);
                }
                Ok(true)
            })?;
            Ok((out, next))
        })
    }

    /// The live memories of `ids` (in that order, each at most once) in one read transaction.
    fn read_memories(
        &self,
        rec: &NamespaceRecord,
        ids: &[&str],
        include_vectors: bool,
    ) -> Result<Vec<Memory>> {
        let now = self.state.now_micros();
        let env = self.state.data_env_of(rec)?;
        env.read(|r, t| {
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if !seen.insert(*id) {
                    continue;
                }
                let Some(s) = read_memory(t, r, &ns_key(rec.id, &memory_key(id)))? else {
                    continue;
                };
                if s.memory.id != *id || !is_live(&s.memory, &rec.policy, now) {
                    continue;
                }
                let mut m = s.memory;
                if include_vectors {
                    m.vector = read_vector(t, r, rec.id, s.slot)?;
                }
                out.push(m);
            }
            Ok(out)
        })
    }
}

/// Error `e` of a batch's item `i`: its field named as the batch names it
/// (`memories[3].content`).
fn of_item(e: Error, i: usize) -> Error {
    match e {
        Error::InvalidArgument { field, reason } => {
            Error::InvalidArgument { field: format!("memories[{i}].{field}"), reason }
        }
        Error::PayloadTooLarge { field, reason } => {
            Error::PayloadTooLarge { field: format!("memories[{i}].{field}"), reason }
        }
        e => e,
    }
}
