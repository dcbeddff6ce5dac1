//! Dispatch: [`Handle::execute`] runs one decoded operation on a handle, records it in the
//! audit log, and words its answer.
//!
//! [`Handle::execute`]: crate::Handle::execute

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{with_message, Answer, EncodedReply, Reply, Request};
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::page::Page;

fn now_string(h: &Handle) -> DateTime<Utc> {
    h.state.options.clock.now()
}

impl Handle {
    /// Runs one operation. Every transport calls this and nothing else. Control-plane
    /// operations and refusals are recorded in the audit log (see the `audit` module).
    pub fn execute(&self, req: Request) -> Result<Reply> {
        let op = req.name();
        let subject = crate::audit::Subject::of(&self.state.catalog, &req);
        self.execute_audited(op, subject, req)
    }

    /// [`Handle::execute`] answering JSON text: the result is serialised once, straight from
    /// the operation's types (a transport that sends JSON need not build a `Value` first).
    ///
    /// [`Handle::execute`]: crate::Handle::execute
    pub fn execute_encoded(&self, req: Request) -> Result<EncodedReply> {
        let op = req.name();
        let subject = crate::audit::Subject::of(&self.state.catalog, &req);
        if subject.is_control() {
            // Control-plane entries are completed from the answer's fields.
            return self.execute_audited(op, subject, req).and_then(EncodedReply::from_reply);
        }
        let result = self.run::<EncodedReply>(req);
        self.audit_failure(op, subject, &result);
        result
    }

    /// Whether [`Handle::call_encoded_async`] runs `op` to its durable commit without
    /// holding a thread meanwhile: a namespace's creation, and a single store when the
    /// engine's embedder is fast (see [`crate::Embedder::is_fast`]: its text is embedded on
    /// the calling thread); both while the environments' commit threads, which lead such
    /// writes' groups, are not at their bound (many environments written at once).
    ///
    /// [`Handle::call_encoded_async`]: crate::Handle::call_encoded_async
    pub fn awaits_commit(&self, op: &str) -> bool {
        let awaits = match op {
            "store_memory" => self.state.options.embedder.is_fast(),
            "create_namespace" => true,
            _ => false,
        };
        awaits && crate::store::commit_threads() < crate::store::MAX_COMMIT_THREADS
    }

    /// [`Handle::call_encoded`] for a transport on an async executor. An operation for
    /// which [`Handle::awaits_commit`] holds does its work on the calling thread (embedding a text
    /// included), queues its write for the next group commit and awaits that commit's sync
    /// without a thread waiting for it (see `Store::write_ns_async`); it is answered only
    /// after its commit is on disk, as ever. A recall awaits (without a thread) a share of
    /// the scan of its namespace's vectors when another recall of them is scanning, and
    /// answers what `call_encoded` answers. Any other operation runs at once, as
    /// `call_encoded` runs it (so a write blocks the calling thread).
    ///
    /// [`Handle::call_encoded`]: crate::Handle::call_encoded
    /// [`Handle::awaits_commit`]: crate::Handle::awaits_commit
    pub async fn call_encoded_async(&self, op: &str, args: Value) -> Result<EncodedReply> {
        let req = Request::parse(op, args)?;
        let op = req.name();
        let subject = crate::audit::Subject::of(&self.state.catalog, &req);
        match req {
            Request::StoreMemory(a) => {
                let result = self.store_memory_async(a).await.and_then(EncodedReply::of);
                self.audit_failure(op, subject, &result);
                result
            }
            Request::CreateNamespace(a) => {
                // A control-plane request: its entry is written with its outcome, before the
                // answer (see `create_namespace_async`).
                let entry = self.draft(op, subject);
                let (name, options) = a.into_parts();
                self.create_namespace_async(&name, options, entry).await.and_then(EncodedReply::of)
            }
            Request::Recall(a) => {
                let result = self.recall_json_async(a).await.map(|body| EncodedReply {
                    body,
                    total_count: None,
                    next_cursor: None,
                });
                self.audit_failure(op, subject, &result);
                result
            }
            req => self.execute_encoded(req),
        }
    }

    /// Records a failed data-plane call in the audit log when it is a refusal.
    fn audit_failure<R>(&self, op: &str, subject: crate::audit::Subject, result: &Result<R>) {
        if let Err(e) = result {
            if subject.recorded(Some(e)) {
                self.audit(op, subject, Err(e.code()));
            }
        }
    }

    fn execute_audited(
        &self,
        op: &str,
        subject: crate::audit::Subject,
        req: Request,
    ) -> Result<Reply> {
        let (result, written) = if subject.is_control() {
            self.with_entry_in_commit(op, &subject, || self.run::<Reply>(req))
        } else {
            (self.run::<Reply>(req), false)
        };
        // An entry written with the change says `ok`; if the request failed after that commit
        // (describing what it made, say), a `failed` entry with the caller's code follows it.
        if (!written && subject.recorded(result.as_ref().err())) || (written && result.is_err()) {
            self.audit(op, subject, result.as_ref().map(|r| &r.value).map_err(Error::code));
        }
        result
    }

    /// Parses and runs an operation, answering JSON text (see [`Handle::execute_encoded`]).
    ///
    /// [`Handle::execute_encoded`]: crate::Handle::execute_encoded
    pub fn call_encoded(&self, op: &str, args: Value) -> Result<EncodedReply> {
        self.execute_encoded(Request::parse(op, args)?)
    }

    #[allow(clippy::too_many_lines)] // one arm per operation: the table reads best whole
    fn run<R: Answer>(&self, req: Request) -> Result<R> {
        match req {
            Request::CreateTenant(a) => {
                let t = self.create_tenant(a)?;
                let message = format!("Tenant '{}' created successfully", t.tenant.name);
                R::from_reply(with_message(t, &message)?)
            }
            Request::ListTenants(a) => {
                let page = self.list_tenants(
                    Page { offset: a.offset, limit: a.limit },
                    a.status,
                    a.parent_id.as_deref(),
                )?;
                R::of(json!({
                    "tenants": page.items,
                    "total_count": page.total_count,
                    "offset": a.offset.unwrap_or(0),
                    "limit": a.limit.unwrap_or(crate::page::DEFAULT_LIMIT),
                }))
            }
            Request::GetTenant(a) => R::of(self.get_tenant(&a.tenant_id)?),
            Request::UpdateTenant(a) => {
                let (id, changes) = a.into_parts();
                let t = self.update_tenant(&id, changes)?;
                let message = format!("Tenant '{}' updated successfully", t.tenant.name);
                R::from_reply(with_message(t, &message)?)
            }
            Request::DeleteTenant(a) => {
                let t = self.delete_tenant(&a.tenant_id)?;
                let message = format!("Tenant '{}' has been deleted", t.tenant.name);
                let mut r = with_message(t, &message)?;
                r.value["deleted_at"] = json!(now_string(self));
                R::from_reply(r)
            }
            Request::RotateTenantKey(a) => {
                R::of(self.rotate_tenant_key(&a.tenant_id, a.new_key_id.as_deref())?)
            }
            Request::GetKeyRotation(a) => R::of(self.key_rotation(&a.tenant_id)?),
            Request::RotateInstanceKey(a) => {
                R::of(self.rotate_instance_key(a.new_key_id.as_deref())?)
            }
            Request::GetInstanceKeyRotation(_) => R::of(self.instance_key_rotation()?),
            Request::AddMember(a) => {
                let m = self.add_member(&a.tenant_id, &a.user_identifier, a.role, a.metadata)?;
                let message = format!("Member added successfully to tenant {}", m.tenant_id);
                R::from_reply(with_message(m, &message)?)
            }
            Request::ListMembers(a) => R::of(self.list_members(
                &a.tenant_id,
                a.role,
                Page { offset: a.offset, limit: a.limit },
            )?),
            Request::RemoveMember(a) => {
                let m = self.remove_member(&a.tenant_id, &a.member_id)?;
                R::of(json!({
                    "tenant_id": m.tenant_id,
                    "member_id": m.member_id,
                    "message": format!("Member {} removed from tenant {}", m.member_id, m.tenant_id),
                    "removed_at": now_string(self),
                }))
            }
            Request::CreateNamespace(a) => {
                let (name, options) = a.into_parts();
                R::of(self.create_namespace(&name, options)?)
            }
            Request::ListNamespaces(a) => R::listed(self.list_namespaces_from(
                Page { offset: a.offset, limit: a.limit },
                a.tenant_id.as_deref(),
                a.cursor.as_deref(),
            )?),
            Request::GetNamespace(a) => R::of(self.get_namespace(&a.name)?),
            Request::DeleteNamespace(a) => R::of(self.delete_namespace(&a.name)?),
            Request::GetMemoryPolicy(a) => R::of(self.get_memory_policy(&a.namespace)?),
            Request::SetMemoryPolicy(a) => R::of(self.set_memory_policy(&a.namespace, a.policy)?),
            Request::CreateKey(a) => R::of(self.create_key(a)?),
            Request::ListKeys(a) => {
                let page = self.list_keys_granting(
                    Page { offset: a.offset, limit: a.limit },
                    a.tenant_id.as_deref(),
                    a.namespace.as_deref(),
                )?;
                R::listed(page)
            }
            Request::RevokeKey(a) => R::of(match &a.namespace {
                Some(ns) => self.revoke_namespace_key(&a.key_id, ns)?,
                None => self.revoke_key(&a.key_id)?,
            }),
            Request::RotateKey(a) => R::of(self.rotate_key(&a.key_id)?),
            Request::StoreMemory(a) => R::of(self.store_memory(a)?),
            Request::StoreMemories(a) => {
                R::of(json!({ "ids": self.store_memories(&a.namespace, a.memories)? }))
            }
            Request::Recall(a) => R::recall(self, a),
            Request::GetMemory(a) => R::of(self.get_memory(a.namespace.as_deref(), &a.id)?),
            Request::GetMemories(a) => R::of(json!({
                "memories": self.get_memories(a.namespace.as_deref(), &a.ids, a.include_vectors)?
            })),
            Request::UpdateMemory(a) => R::of(self.update_memory(a)?),
            Request::ListMemories(a) => R::of(self.list_memories(a)?),
            Request::CountMemories(a) => R::of(json!({ "count": self.count_memories(a)? })),
            Request::DeleteMemory(a) => {
                let m = self.delete_memory(a.namespace.as_deref(), &a.id)?;
                R::of(json!({ "id": m.id, "namespace": m.namespace, "deleted": true }))
            }
            Request::BatchForget(a) => R::of(self.batch_forget(a)?),
            Request::AddEntity(a) => R::of(self.add_entity(a)?),
            Request::AddRelation(a) => R::of(self.add_relation(a)?),
            Request::GetEntity(a) => {
                R::of(self.get_entity(&a.namespace, &a.entity, a.entity_type.as_deref())?)
            }
            Request::Neighbors(a) => R::of(self.neighbors(a)?),
            Request::Subgraph(a) => R::of(self.subgraph(a)?),
            Request::ShortestPath(a) => R::of(self.shortest_path(&a.namespace, &a.from, &a.to)?),
            Request::DeleteEntity(a) => {
                let e = self.delete_entity(&a.namespace, &a.entity, a.entity_type.as_deref())?;
                R::of(json!({ "id": e.id, "name": e.name, "deleted": true }))
            }
            Request::DeleteRelation(a) => {
                let r = self.delete_relation(&a.namespace, &a.id)?;
                R::of(json!({ "id": r.id, "deleted": true }))
            }
            Request::WhoAmI(_) => R::of(self.whoami()?),
            Request::ListAudit(a) => R::of(self.list_audit(a)?),
            Request::VerifyAudit(a) => R::of(self.verify_audit(&a.tenant_id)?),
            Request::ExportNamespace(a) => R::of(self.export_page(a)?),
            Request::ImportNamespace(a) => R::of(self.import_batch(a)?),
            Request::StartSession(a) => R::of(self.start_session(a)?),
            Request::EndSession(a) => R::of(self.end_session(a)?),
            Request::GetSession(a) => R::of(self.get_session(a.namespace.as_deref(), &a.id)?),
            Request::ListSessions(a) => R::of(self.list_sessions(a)?),
            Request::SessionMemories(a) => R::of(self.session_memories(a)?),
        }
    }

    /// Parses and runs an operation given as a name and JSON arguments (the bindings' entry).
    pub fn call(&self, op: &str, args: Value) -> Result<Reply> {
        self.execute(Request::parse(op, args)?)
    }

    /// Describes the caller: `{"principal": "root"|"member"|"scoped", "tenant_id", "role", "namespaces"}`.
    pub fn whoami(&self) -> Result<Value> {
        use crate::auth::Principal;
        Ok(match self.principal()? {
            Principal::Root => json!({ "principal": "root" }),
            Principal::Member { key_id, tenant_id, role, .. } => {
                json!({ "principal": "member", "key_id": key_id, "tenant_id": tenant_id, "role": role })
            }
            Principal::Scoped { key_id, tenant_id, grants } => json!({
                "principal": "scoped",
                "key_id": key_id,
                "tenant_id": tenant_id,
                "namespaces": grants.iter().map(|g| json!({ "namespace": g.namespace, "access": g.access })).collect::<Vec<_>>(),
            }),
        })
    }
}
