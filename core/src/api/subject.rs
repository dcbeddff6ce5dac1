//! The audit subject of a request: what it is about and which tenant's chain records it,
//! worked out from the request before it runs.

use crate::api::{Request, TenantArgs};
use crate::audit::{ListAudit, Subject};
use crate::catalog::{namespace_tenant, CatalogTables};
use crate::store::Store;

impl Subject {
    /// The subject of `req`, its tenants read from `catalog`. Data-plane requests only note
    /// their namespace.
    pub(crate) fn of(catalog: &Store<CatalogTables>, req: &Request) -> Subject {
        let namespace_tenant = |name: &str| namespace_tenant(catalog, name);
        let key_tenant = |id: &str| {
            catalog.read(|r, t| Ok(t.keys.get(r, id)?.and_then(|k| k.tenant_id))).ok().flatten()
        };
        Subject::of_request(req, namespace_tenant, key_tenant)
    }

    /// The subject of `req`, the tenants of namespaces and keys told by the lookups (for logs
    /// kept outside an engine: the cluster's control plane knows them).
    pub fn of_request(
        req: &Request,
        namespace_tenant: impl Fn(&str) -> Option<String>,
        key_tenant: impl Fn(&str) -> Option<String>,
    ) -> Subject {
        let control = |tenant: Option<String>, target: Option<String>| Subject {
            tenant,
            target,
            control: true,
        };
        let data = |namespace: Option<&str>| Subject {
            tenant: None,
            target: namespace.map(str::to_owned),
            control: false,
        };
        match req {
            Request::CreateTenant(a) => control(None, Some(a.name.clone())),
            Request::UpdateTenant(a) => {
                control(Some(a.tenant_id.clone()), Some(a.tenant_id.clone()))
            }
            Request::DeleteTenant(a) => {
                control(Some(a.tenant_id.clone()), Some(a.tenant_id.clone()))
            }
            Request::RotateTenantKey(a) => {
                control(Some(a.tenant_id.clone()), Some(a.tenant_id.clone()))
            }
            Request::RotateInstanceKey(_) => control(None, Some("instance".to_owned())),
            Request::AddMember(a) => control(Some(a.tenant_id.clone()), None),
            Request::RemoveMember(a) => {
                control(Some(a.tenant_id.clone()), Some(a.member_id.clone()))
            }
            Request::CreateNamespace(a) => control(a.tenant_id.clone(), Some(a.name.clone())),
            Request::DeleteNamespace(a) => control(namespace_tenant(&a.name), Some(a.name.clone())),
            Request::SetMemoryPolicy(a) => {
                control(namespace_tenant(&a.namespace), Some(a.namespace.clone()))
            }
            Request::CreateKey(a) => control(a.tenant_id.clone(), None),
            Request::RevokeKey(a) => control(key_tenant(&a.key_id), Some(a.key_id.clone())),
            Request::RotateKey(a) => control(key_tenant(&a.key_id), Some(a.key_id.clone())),
            Request::ListTenants(_)
            | Request::ListMembers(_)
            | Request::ListNamespaces(_)
            | Request::ListKeys(_)
            | Request::WhoAmI(_)
            | Request::GetInstanceKeyRotation(_) => data(None),
            Request::ListAudit(ListAudit { tenant_id, .. })
            | Request::VerifyAudit(TenantArgs { tenant_id }) => data(Some(tenant_id)),
            Request::GetTenant(a) | Request::GetKeyRotation(a) => data(Some(&a.tenant_id)),
            Request::GetNamespace(a) => data(Some(&a.name)),
            Request::GetMemoryPolicy(a) => data(Some(&a.namespace)),
            Request::StoreMemory(a) => data(a.namespace.as_deref()),
            Request::StoreMemories(a) => data(Some(&a.namespace)),
            Request::Recall(a) => data(a.namespace.as_deref()),
            Request::GetMemory(a) | Request::DeleteMemory(a) => data(a.namespace.as_deref()),
            Request::GetMemories(a) => data(a.namespace.as_deref()),
            Request::UpdateMemory(a) => data(a.namespace.as_deref()),
            Request::BatchForget(a) => data(a.namespace.as_deref()),
            Request::ListMemories(a) => data(a.namespace.as_deref()),
            Request::CountMemories(a) => data(a.namespace.as_deref()),
            Request::AddEntity(a) => data(Some(&a.namespace)),
            Request::AddRelation(a) => data(Some(&a.namespace)),
            Request::Neighbors(a) | Request::Subgraph(a) => data(Some(&a.namespace)),
            Request::GetEntity(a) | Request::DeleteEntity(a) => data(Some(&a.namespace)),
            Request::ShortestPath(a) => data(Some(&a.namespace)),
            Request::DeleteRelation(a) => data(Some(&a.namespace)),
            // Every page of an export and every batch of an import is recorded: a cursor or a
            // line number chosen by the caller must not be a way around the log.
            Request::ExportNamespace(a) => {
                Subject::transfer(namespace_tenant(&a.namespace), &a.namespace)
            }
            Request::ImportNamespace(a) => {
                Subject::transfer(namespace_tenant(&a.namespace), &a.namespace)
            }
            Request::StartSession(a) => data(a.namespace.as_deref()),
            Request::EndSession(a) => data(a.namespace.as_deref()),
            Request::GetSession(a) => data(a.namespace.as_deref()),
            Request::ListSessions(a) => data(a.namespace.as_deref()),
            Request::SessionMemories(a) => data(a.namespace.as_deref()),
        }
    }
}
