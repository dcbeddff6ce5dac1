//! A tenant's members (`members/<tenant>/<member>`): one per user and tenant, kept so by
//! `member_users/<tenant>/<hex user>` created if absent in the same transaction; counted
//! against `max_members` (the tenant's and each ancestor's). Keys bound to a member, or issued
//! by one, die with the membership: authentication reads it.

use etcd_client::{Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp};
use memsilo::{Error, Member, MemberList, Page, Result};
use serde_json::{json, Value};

use super::{changed_meanwhile, to_json, with_message, Counted, TRIES};
use crate::control::hex;
use crate::node::Node;

impl Node {
    pub(super) async fn add_member(&self, a: memsilo::api::AddMemberArgs) -> Result<Value> {
        let member =
            Member::new(&a.tenant_id, &a.user_identifier, a.role, a.metadata, chrono::Utc::now())?;
        let user_key = self.key(
            "member_users",
            &format!("{}/{}", a.tenant_id, hex(member.user_identifier.as_bytes())),
        );
        for _ in 0..TRIES {
            let (tenant, _) = self.tenant_record(&a.tenant_id).await?;
            tenant.accepts_members()?;
            let (mut when, mut then) = self.count(&a.tenant_id, Counted::Members, true).await?;
            when.push(Compare::create_revision(user_key.clone(), CompareOp::Equal, 0));
            then.extend([
                TxnOp::put(
                    self.key("members", &format!("{}/{}", a.tenant_id, member.member_id)),
                    to_json(&member)?,
                    None,
                ),
                TxnOp::put(user_key.clone(), member.member_id.clone(), None),
            ]);
            if self.txn(&Txn::new().when(when).and_then(then)).await?.succeeded() {
                let message = format!("Member added successfully to tenant {}", member.tenant_id);
                return with_message(&member, &message);
            }
            if !self.get(&user_key, None).await?.kvs().is_empty() {
                return Err(Error::Conflict(format!(
                    "member {} already exists in tenant",
                    member.user_identifier
                )));
            }
        }
        Err(changed_meanwhile())
    }

    pub(super) async fn list_members(&self, a: memsilo::api::ListMembersArgs) -> Result<Value> {
        let (offset, limit) = Page { offset: a.offset, limit: a.limit }.bounds()?;
        self.tenant_record(&a.tenant_id).await?;
        let options = GetOptions::new().with_prefix().with_sort(SortTarget::Key, SortOrder::Ascend);
        let resp =
            self.get(&self.key("members", &format!("{}/", a.tenant_id)), Some(options)).await?;
        let mut members = Vec::new();
        let mut total = 0u64;
        for kv in resp.kvs() {
            let Ok(m) = serde_json::from_slice::<Member>(kv.value()) else { continue };
            if a.role.is_some_and(|want| want != m.role) {
                continue;
            }
            if total as usize >= offset && members.len() < limit {
                members.push(m);
            }
            total += 1;
        }
        Ok(serde_json::to_value(MemberList {
            tenant_id: a.tenant_id,
            members,
            total_count: total,
        })?)
    }

    pub(super) async fn remove_member(&self, a: memsilo::api::MemberArgs) -> Result<Value> {
        self.tenant_record(&a.tenant_id).await?;
        let member_key = self.key("members", &format!("{}/{}", a.tenant_id, a.member_id));
        for _ in 0..TRIES {
            let found = self.get(&member_key, None).await?;
            let Some(kv) = found.kvs().first() else {
                return Err(Error::not_found("member", &a.member_id));
            };
            let member: Member = serde_json::from_slice(kv.value())?;
            let (mut when, mut then) = self.count(&a.tenant_id, Counted::Members, false).await?;
            let user_key = self.key(
                "member_users",
                &format!("{}/{}", a.tenant_id, hex(member.user_identifier.as_bytes())),
            );
            when.push(Compare::mod_revision(
                member_key.clone(),
                CompareOp::Equal,
                kv.mod_revision(),
            ));
            then.extend([TxnOp::delete(member_key.clone(), None), TxnOp::delete(user_key, None)]);
            if self.txn(&Txn::new().when(when).and_then(then)).await?.succeeded() {
                return Ok(json!({
                    "tenant_id": member.tenant_id,
                    "member_id": member.member_id,
                    "message": format!("Member {} removed from tenant {}", member.member_id, member.tenant_id),
                    "removed_at": chrono::Utc::now(),
                }));
            }
        }
        Err(changed_meanwhile())
    }
}
