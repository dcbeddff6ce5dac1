//! Reads and writes on an owned namespace. A write is logged before it is applied: the writes
//! queued while the log is busy go into one log object (group commit), are applied to the
//! local engine in that order, and are answered only once that object is stored. Arguments
//! are first given every id the engine would pick at random, so a replay is the same write.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use memsilo::api::{Reply, Request};
use memsilo::{Error, Result};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::snapshots::storage_bytes;
use super::{blocking, Node, Owned};
use crate::wal::{LogError, Record};

/// A write waiting for its namespace's log: the record, whether it must keep the policy (an
/// import by a key that does not administer the namespace), and where its answer goes.
pub(super) type Waiting = (Record, bool, oneshot::Sender<Result<Reply>>);

impl Node {
    /// Runs a read on an owned namespace.
    pub async fn read(&self, owned: &Owned, op: &str, args: Value) -> Result<Reply> {
        let engine = self.engine.clone();
        let op = op.to_owned();
        let get_namespace = op == "get_namespace";
        if owned.deleted.load(Ordering::Acquire) {
            return Err(Error::not_found("namespace", &owned.name));
        }
        let mut reply = blocking(move || engine.root().call(&op, args)).await?;
        if get_namespace {
            // The local copy has no tenant: the control plane's record has it.
            reply.value["tenant_id"] = owned.tenant_id.clone().map_or(Value::Null, Value::String);
            if let Some(created_at) = &owned.created_at {
                reply.value["created_at"] = created_at.clone();
            }
        }
        Ok(reply)
    }

    /// Runs a write on an owned namespace: logged (grouped with the writes queued meanwhile)
    /// before it is applied; answered once its log object is stored. With `keep_policy` (an
    /// import by a tenant editor, who may import but not change the policy, as on one node)
    /// the import is checked when its group is formed, against the policy every earlier
    /// logged write left: refused (`forbidden`) if a namespace line carries another policy,
    /// or (`conflict`, retry) if a write before it in its group may change the policy; so its
    /// replay never changes the policy either.
    pub async fn write(
        &self,
        owned: &Arc<Owned>,
        op: &str,
        mut args: Value,
        keep_policy: bool,
    ) -> Result<Reply> {
        prepare(op, &owned.name, &mut args)?;
        Request::parse(op, args.clone())?;
        // Deletes and policy changes are never refused for storage.
        if !(op.starts_with("delete_") || matches!(op, "batch_forget" | "set_memory_policy")) {
            self.make_room(owned).await?;
        }
        let (tx, rx) = oneshot::channel();
        let record = Record { op: op.to_owned(), args, ids: memsilo::GraphIds::fresh(op) };
        owned.pending.lock().push((record, keep_policy, tx));
        {
            let mut writer = owned.writer.lock().await;
            let batch = std::mem::take(&mut *owned.pending.lock());
            let batch = if owned.deleted.load(Ordering::Acquire) {
                // Deleted while these waited: nothing of them is logged.
                for (_, _, tx) in batch {
                    let _ = tx.send(Err(Error::not_found("namespace", &owned.name)));
                }
                Vec::new()
            } else {
                self.keeping_policy(&owned.name, batch).await
            };
            if !batch.is_empty() {
                let (records, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                match writer.append(records.clone()).await {
                    Ok(()) => {
                        let engine = self.engine.clone();
                        let name = owned.name.clone();
                        let results = blocking(move || {
                            let root = engine.root();
                            let results =
                                records.into_iter().map(|r| r.apply(&root)).collect::<Vec<_>>();
                            // Read after the group; kept as it was if it cannot be read.
                            Ok((results, storage_bytes(&root, &name).ok()))
                        })
                        .await;
                        match results {
                            Ok((results, used)) => {
                                if let Some(used) = used {
                                    owned.used.store(used, Ordering::Release);
                                }
                                for (tx, r) in replies.into_iter().zip(results) {
                                    let _ = tx.send(r);
                                }
                                self.snapshot_if_due(owned, writer.next_seq());
                            }
                            Err(e) => {
                                // Logged but not applied here: this copy is no longer the log's.
                                self.drop_namespace(&owned.name);
                                let e = Arc::new(e);
                                for tx in replies {
                                    let _ = tx.send(Err(Error::Shared(e.clone())));
                                }
                            }
                        }
                    }
                    Err(e) => {
                        if matches!(e, LogError::Fenced(_)) {
                            self.drop_namespace(&owned.name);
                        }
                        let context = format!("namespace {}: write not stored (retry)", owned.name);
                        let e = Arc::new(Error::internal_from(context, e));
                        for tx in replies {
                            let _ = tx.send(Err(Error::Shared(e.clone())));
                        }
                    }
                }
            }
        }
        rx.await.map_err(|_| Error::Internal("write abandoned".into()))?
    }

    /// The group of writes `batch` without the imports marked to keep the policy that would
    /// change it (answered with their refusal); the others as they are.
    async fn keeping_policy(
        &self,
        ns: &str,
        batch: Vec<Waiting>,
    ) -> Vec<(Record, oneshot::Sender<Result<Reply>>)> {
        let policy_lines = |r: &Record| -> Vec<(u64, Value)> {
            let lines = r.args.get("lines").and_then(Value::as_array);
            let first = r.args.get("first_line").and_then(Value::as_u64).unwrap_or(1);
            (lines.into_iter().flatten().zip(first..))
                .filter(|(l, _)| l.get("kind").and_then(Value::as_str) == Some("namespace"))
                .map(|(l, n)| (n, l.get("policy").cloned().unwrap_or_else(|| json!({}))))
                .collect()
        };
        let current = if batch.iter().any(|(_, keep, _)| *keep) {
            let engine = self.engine.clone();
            let name = ns.to_owned();
            blocking(move || Ok(serde_json::to_value(engine.root().get_memory_policy(&name)?)?))
                .await
                .map_err(Arc::new)
        } else {
            Ok(Value::Null)
        };
        let mut changed = false;
        let mut out = Vec::with_capacity(batch.len());
        for (record, keep, tx) in batch {
            if !keep {
                // Conservatively: any policy write or import with a namespace line may change it.
                changed |= record.op == "set_memory_policy"
                    || (record.op == "import_namespace" && !policy_lines(&record).is_empty());
                out.push((record, tx));
                continue;
            }
            let lines = policy_lines(&record);
            let refusal = match &current {
                _ if lines.is_empty() => None,
                Err(e) => Some(Error::internal_from("reading the policy", Error::Shared(e.clone()))),
                Ok(_) if changed => Some(Error::Conflict(
                    "the namespace's policy may change in the same group of writes; retry".into(),
                )),
                Ok(policy) => lines.iter().find(|(_, p)| p != policy).map(|(line, _)| {
                    Error::Forbidden {
                        message: format!(
                            "line {line}: the export's decay policy differs and setting it needs an admin key"
                        ),
                        namespace: Some(ns.to_owned()),
                    }
                }),
            };
            match refusal {
                Some(e) => {
                    let _ = tx.send(Err(e));
                }
                None => out.push((record, tx)),
            }
        }
        out
    }
}

/// Fills in what the engine would choose at random in the arguments (memory and session ids;
/// a graph write's ids travel beside them, [`Record::ids`]), so the logged write and its
/// replay are the same write; refuses arguments that reach beyond the routed namespace.
fn prepare(op: &str, ns: &str, args: &mut Value) -> Result<()> {
    let new_id = || Value::String(uuid::Uuid::now_v7().to_string());
    match op {
        "store_memory" | "start_session" if args.get("id").is_none_or(Value::is_null) => {
            args["id"] = new_id();
        }
        // Only what is the same at every replay: an effective importance is decayed by the
        // time, so a replay later would forget more.
        "batch_forget" if args.get("below_importance").is_some_and(|v| !v.is_null()) => {
            return Err(Error::invalid(
                "below_importance",
                "not available in cluster mode: the effective importance depends on the time a \
                 logged forget is replayed; forget by ids, tags, agent_id, before or filter",
            ));
        }
        // Memory and entity lines without an id get one now (as a store does), so a replay
        // imports the same ids; lines given as text are logged as the objects they hold.
        "import_namespace" => {
            if let Some(lines) = args.get_mut("lines").and_then(Value::as_array_mut) {
                for line in lines.iter_mut() {
                    if let Some(parsed) =
                        line.as_str().and_then(|t| serde_json::from_str::<Value>(t).ok())
                    {
                        *line = parsed;
                    }
                    let kind = line.get("kind").and_then(Value::as_str);
                    if matches!(kind, Some("memory" | "entity"))
                        && line.get("id").is_none_or(Value::is_null)
                    {
                        line["id"] = new_id();
                    }
                }
            }
        }
        "store_memories" => {
            if let Some(items) = args.get_mut("memories").and_then(Value::as_array_mut) {
                for (i, item) in items.iter_mut().enumerate() {
                    if !item.is_object() {
                        continue;
                    }
                    match item.get("namespace").and_then(Value::as_str) {
                        Some(other) if other != ns => {
                            return Err(Error::invalid(
                                format!("memories[{i}].namespace"),
                                "must be the batch's namespace",
                            ))
                        }
                        _ => {}
                    }
                    if item.get("id").is_none_or(Value::is_null) {
                        item["id"] = new_id();
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}
