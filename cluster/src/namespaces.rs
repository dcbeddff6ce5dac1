//! Creating, listing and deleting namespaces in cluster mode.
//!
//! - **Creating** puts the namespace's record (its creation arguments and time) in the control
//!   plane with a guarded transaction: refused if the name is taken, and for a tenant's
//!   namespace counted against its `max_namespaces` and its ancestors'. The owner creates its
//!   local copy when it takes the namespace over.
//! - **Listing** reads the control plane's records (`namespaces/<hex name>` in etcd, whose key
//!   order is the names' byte order, as on one node), keeps those the caller may see (the
//!   rules of the engine's `list_namespaces`: root all, a tenant key its tenant's, a scoped key
//!   its grants), and pages them by offset or by cursor. A cursor is the name it continues
//!   after, sealed as the engine seals its own (`memsilo::cursor`) with a key every node shares
//!   (`cursor_key` in etcd), so a cursor made by one node is read by any other. Each item's
//!   figures are its owner's (the HTTP face asks the owner for `get_namespace`).
//! - **Deleting** runs on the owner, holding the namespace's log: the namespace stops taking
//!   writes and reads; every object under its prefix that holds data (log objects with writes,
//!   snapshots, the manifest) is deleted, keeping only fences (log objects without writes, which
//!   keep an older owner refused), after a last fence of this owner; then one guarded etcd
//!   transaction removes its record, its owner key, its count in the tenant and its storage
//!   reservation; then the owner's LMDB copy is deleted (the engine erases it from disk in the
//!   background). The objects go first: a deletion cut short leaves a namespace that exists,
//!   emptied, never a removed name whose old writes a new namespace of the same name would load.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use etcd_client::{Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp};
use memsilo::api::{ListArgs, Reply, Request};
use memsilo::{Error, Page, Result};
use serde_json::{json, Value};

use crate::control::{hex, Caller};
use crate::node::{namespace_of, Node, Owned};
use crate::quota::Reservations;
use crate::tenants::to_json;
use crate::wal::NamespaceLog;

/// One page of namespace names the caller may see, in name order.
pub struct NamePage {
    /// The names on the page.
    pub names: Vec<String>,
    /// Names the caller may see in all pages.
    pub total_count: u64,
    /// Where the next page starts (`None`: none follows).
    pub next_cursor: Option<String>,
}

impl Node {
    /// Creates a namespace in the control plane: the admin key, or a tenant admin's key in its
    /// tenant (its own tenant when none is given), by core's rule (`CreateNamespace`). Its
    /// owner creates it in its engine when it takes it over.
    pub async fn create_namespace(&self, caller: &Caller, mut args: Value) -> Result<String> {
        if let Caller::Member { tenant_id, .. } = caller {
            if args.is_object() && args.get("tenant_id").is_none_or(Value::is_null) {
                args["tenant_id"] = Value::String(tenant_id.clone());
            }
        }
        let Request::CreateNamespace(req) = Request::parse("create_namespace", args.clone())?
        else {
            return Err(Error::Internal("create_namespace decoded as another operation".into()));
        };
        memsilo::auth::authorize(
            &caller.principal(),
            memsilo::auth::Action::CreateNamespace(req.tenant_id.as_deref()),
        )?;
        let name = namespace_of("get_namespace", &args)?;
        let key = self.ns_key("namespaces", &name);
        // The record is the creation's arguments and its time (the owners' copies are
        // created when they load it).
        let mut record = args.clone();
        record["created_at"] = serde_json::to_value(chrono::Utc::now())?;
        let record = record.to_string();
        // Taken: `conflict`, unless `exist_ok` and it is the same tenant's.
        let tenant = req.tenant_id.clone();
        let exists = |found: &etcd_client::GetResponse| {
            let same_tenant = found.kvs().first().is_some_and(|kv| {
                let rec: Value = serde_json::from_slice(kv.value()).unwrap_or(Value::Null);
                rec.get("tenant_id").and_then(Value::as_str) == tenant.as_deref()
            });
            if req.exist_ok && same_tenant {
                Ok(name.clone())
            } else {
                Err(Error::Conflict(format!("Namespace already exists: {name}")))
            }
        };
        let Some(tenant_id) = req.tenant_id else {
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.clone(), record, None)]);
            if self.txn(&txn).await?.succeeded() {
                return Ok(name);
            }
            return exists(&self.get(&key, None).await?);
        };
        // A tenant's namespace: counted against its `max_namespaces` (and its ancestors') with
        // a compare on the counts' revisions, so concurrent creations through several nodes
        // cannot exceed it.
        for _ in 0..20 {
            let found = self.get(&key, None).await?;
            if !found.kvs().is_empty() {
                return exists(&found);
            }
            let (tenant, _) = match self.tenant_record(&tenant_id).await {
                Err(e) if e.code() == memsilo::ErrorCode::NotFound => {
                    return Err(Error::invalid(
                        "tenant_id",
                        format!("no tenant with id {tenant_id}"),
                    ))
                }
                other => other?,
            };
            if tenant.status != memsilo::TenantStatus::Active {
                return Err(Error::invalid("tenant_id", "the tenant is not active"));
            }
            // Counted against the tenant's limit and every ancestor's (each its subtree).
            let (mut when, mut then) =
                self.count(&tenant_id, crate::tenants::Counted::Namespaces, true).await?;
            when.push(Compare::create_revision(key.clone(), CompareOp::Equal, 0));
            then.push(TxnOp::put(key.clone(), record.clone(), None));
            let txn = Txn::new().when(when).and_then(then);
            if self.txn(&txn).await?.succeeded() {
                return Ok(name);
            }
        }
        Err(Error::Internal("the control plane kept changing under this request; retry".into()))
    }

    /// The names of one page of `list_namespaces` for `caller`.
    pub async fn list_namespace_names(&self, caller: &Caller, args: Value) -> Result<NamePage> {
        let a: ListArgs = match memsilo::api::Request::parse("list_namespaces", args)? {
            memsilo::api::Request::ListNamespaces(a) => a,
            _ => return Err(Error::Internal("list_namespaces decoded as another op".into())),
        };
        let (offset, limit) = Page { offset: a.offset, limit: a.limit }.bounds()?;
        let after = match &a.cursor {
            Some(c) => {
                if offset > 0 {
                    return Err(Error::invalid("offset", "cannot be combined with cursor"));
                }
                Some(self.open_cursor(c).await?)
            }
            None => None,
        };
        let wanted = a.tenant_id.as_deref();
        let own_tenant = match caller {
            Caller::Member { tenant_id, .. } => {
                if wanted.is_some_and(|t| t != tenant_id) {
                    return Err(Error::forbidden("Key not authorized for this tenant"));
                }
                Some(tenant_id.as_str())
            }
            _ => None,
        };
        let prefix = self.key("namespaces", "");
        let options = GetOptions::new().with_prefix().with_sort(SortTarget::Key, SortOrder::Ascend);
        let resp = self.get(&prefix, Some(options)).await?;
        let (mut total, mut skipped, mut names, mut more) = (0u64, 0usize, Vec::new(), false);
        for kv in resp.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            let Some(name) = key.strip_prefix(prefix.as_str()).and_then(unhex) else { continue };
            let record: Value = serde_json::from_slice(kv.value()).unwrap_or(Value::Null);
            let tenant = record.get("tenant_id").and_then(Value::as_str);
            let visible = match caller {
                Caller::Admin => true,
                Caller::Member { .. } => tenant == own_tenant,
                Caller::Scoped(rec) => rec.namespaces.iter().any(|g| g.namespace == name),
            };
            if !visible || wanted.is_some_and(|t| tenant != Some(t)) {
                continue;
            }
            total += 1;
            if more || after.as_deref().is_some_and(|a| name.as_str() <= a) {
                continue;
            }
            if names.len() >= limit {
                more = true;
            } else if skipped < offset {
                skipped += 1;
            } else {
                names.push(name);
            }
        }
        let next_cursor = match names.last() {
            Some(last) if more => Some(self.seal_cursor(last).await?),
            _ => None,
        };
        Ok(NamePage { names, total_count: total, next_cursor })
    }

    /// The key that seals namespace list cursors, the same on every node (created once).
    async fn cursor_key(&self) -> Result<[u8; 32]> {
        self.cursor_key
            .get_or_try_init(|| async {
                let key = self.key("cursor_key", "");
                let mut fresh = [0u8; 32];
                getrandom::fill(&mut fresh).map_err(|e| Error::internal_from("random", e))?;
                let txn = Txn::new()
                    .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key.clone(), hex(&fresh), None)])
                    .or_else([TxnOp::get(key.clone(), None)]);
                let resp = self.txn(&txn).await?;
                if resp.succeeded() {
                    return Ok(fresh);
                }
                let stored = self.get(&key, None).await?;
                let text = stored.kvs().first().map(|kv| kv.value().to_vec()).unwrap_or_default();
                unhex_bytes(&String::from_utf8_lossy(&text))
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| Error::Internal("the cluster's cursor key is corrupt".into()))
            })
            .await
            .copied()
    }

    async fn seal_cursor(&self, name: &str) -> Result<String> {
        Ok(memsilo::cursor::seal_after_name(&self.cursor_key().await?, name))
    }

    async fn open_cursor(&self, text: &str) -> Result<String> {
        memsilo::cursor::unseal_after_name(&self.cursor_key().await?, text)
    }

    /// Deletes an owned namespace (see the module's documentation): answers core's
    /// `DeletedNamespace`, and how many objects were erased.
    pub async fn delete_namespace(&self, owned: &Arc<Owned>) -> Result<(Reply, usize)> {
        let ns = owned.name.clone();
        let _no_snapshot = owned.checkpoint.lock().await;
        let mut writer = owned.writer.lock().await;
        if owned.deleted.swap(true, Ordering::AcqRel) {
            return Err(Error::not_found("namespace", &ns));
        }
        // From here on the namespace takes nothing more here; a last fence, then the data.
        self.drop_namespace(&ns);
        let erased = async {
            writer.append(Vec::new()).await?;
            NamespaceLog::new(self.store.clone(), &self.config.prefix, &ns).erase().await
        }
        .await
        .map_err(|e| Error::internal_from(format!("namespace {ns}: not deleted (retry)"), e))?;
        let record_key = self.ns_key("namespaces", &ns);
        let owner_key = self.ns_key("owners", &ns);
        for _ in 0..20 {
            let mut when = vec![Compare::lease(owner_key.clone(), CompareOp::Equal, owned.lease)];
            let mut then = vec![
                TxnOp::delete(record_key.clone(), None),
                TxnOp::delete(owner_key.clone(), None),
            ];
            if let Some(tenant) = owned.tenant_id.as_deref() {
                let (guards, moves) =
                    self.count(tenant, crate::tenants::Counted::Namespaces, false).await?;
                when.extend(guards);
                then.extend(moves);
                // Its reservation leaves its tenant's map and every ancestor's.
                for (link, _) in self.quota_chain(tenant).await? {
                    let (mut map, revision): (Reservations, i64) = self.reservations(&link).await?;
                    if map.remove(&hex(ns.as_bytes())).is_some() {
                        let quota_key = self.key("quota", &link);
                        when.push(Compare::mod_revision(
                            quota_key.clone(),
                            CompareOp::Equal,
                            revision,
                        ));
                        then.push(TxnOp::put(quota_key, to_json(&map)?, None));
                    }
                }
            }
            let resp = self.txn(&Txn::new().when(when).and_then(then)).await?;
            if resp.succeeded() {
                // The local copy: the watch event of the deletion may have dropped it already.
                let engine = self.engine.clone();
                let name = ns.clone();
                crate::node::blocking(move || {
                    match engine.root().call("delete_namespace", json!({ "name": name })) {
                        Err(e) if e.code() != memsilo::ErrorCode::NotFound => Err(e),
                        _ => Ok(()),
                    }
                })
                .await?;
                let deleted =
                    memsilo::DeletedNamespace { name: ns, deleted_at: chrono::Utc::now() };
                let deleted = Reply::of_value(serde_json::to_value(deleted)?);
                return Ok((deleted, erased));
            }
            if self
                .get(&owner_key, None)
                .await?
                .kvs()
                .first()
                .is_none_or(|kv| kv.lease() != owned.lease)
            {
                return Err(Error::Internal(format!(
                    "namespace {ns}: this node stopped owning it while deleting it; retry"
                )));
            }
        }
        Err(Error::Internal("the control plane kept changing under this request; retry".into()))
    }

    /// After another node deleted namespace `ns` (its record left the control plane): drops
    /// this node's stale copy, unless it owns the name again.
    pub(crate) fn forget_copy(&self, ns: String) {
        if self.owned.lock().contains_key(&ns) {
            return;
        }
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let root = engine.root();
            if root.call("get_namespace", json!({ "name": ns })).is_ok() {
                let _ = root.call("delete_namespace", json!({ "name": ns }));
            }
        });
    }
}

/// The name a hex key part stands for.
pub(crate) fn unhex(text: &str) -> Option<String> {
    String::from_utf8(unhex_bytes(text)?).ok()
}

fn unhex_bytes(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}
