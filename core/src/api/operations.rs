//! The operation table: every operation's name, argument type and effect, and the
//! decoding of a request from its name and JSON arguments.

use serde_json::{Map, Value};

use super::{
    AddMemberArgs, CreateNamespaceArgs, EntityArgs, GetMemoriesArgs, KeyArgs, ListArgs,
    ListKeysArgs, ListMembersArgs, ListTenantsArgs, MemberArgs, MemoryArgs, NamespaceArgs, NoArgs,
    PathArgs, PolicyArgs, RelationArgs, RevokeKeyArgs, RotateInstanceKeyArgs, RotateTenantKeyArgs,
    SetPolicyArgs, StoreBatchArgs, TenantArgs, UpdateTenantArgs,
};
use crate::audit::ListAudit;
use crate::document::decode;
use crate::error::{Error, Result};
use crate::graph::{AddEntity, AddRelation, Neighbors};
use crate::keys::CreateKey;
use crate::listing::{CountMemories, ListMemories};
use crate::memory::{Forget, Recall, StoreMemory, UpdateMemory};
use crate::tenant::CreateTenant;

/// What an operation does to stored data: one flag per operation in the table below, read by
/// every face that needs it (the remote client's choice to send a call again to another
/// server, the cluster's split between reads and logged writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads only: sending it twice changes nothing.
    Read,
    /// Stores memories: sending it twice changes nothing when every memory carries a
    /// caller-chosen id (the second send replaces each memory with the same content).
    Upsert,
    /// Changes data: a second send may apply it twice.
    Write,
}

macro_rules! operations {
    ($( $(#[$doc:meta])* $variant:ident($args:ty) = $name:literal, $effect:ident; )*) => {
        /// Every operation, with its arguments.
        #[derive(Debug, Clone)]
        #[allow(missing_docs)]
        pub enum Request {
            $( $(#[$doc])* $variant($args), )*
        }

        impl Request {
            /// Every operation name, as used on the wire and in the bindings.
            pub const OPERATIONS: &'static [&'static str] = &[$($name),*];

            /// Decodes an operation from its name and JSON arguments. Unknown operations,
            /// unknown fields and wrong types are `invalid_argument` naming the field.
            pub fn parse(op: &str, args: Value) -> Result<Request> {
                let args = if args.is_null() { Value::Object(Map::new()) } else { args };
                check_arguments_shape(&args)?;
                match op {
                    $( $name => Ok(Request::$variant(decode(args)?)), )*
                    other => Err(Error::invalid("op", format!("unknown operation {other:?}"))),
                }
            }

            /// The operation's name.
            pub fn name(&self) -> &'static str {
                match self { $( Request::$variant(_) => $name, )* }
            }

            /// What the operation does to stored data.
            pub fn effect(&self) -> Effect {
                match self { $( Request::$variant(_) => Effect::$effect, )* }
            }

            /// What operation `op` does to stored data (`None` for an unknown name).
            pub fn effect_of(op: &str) -> Option<Effect> {
                match op { $( $name => Some(Effect::$effect), )* _ => None }
            }

            /// The arguments as JSON (what [`Request::parse`] takes back).
            pub fn args(&self) -> Value {
                let v = match self { $( Request::$variant(a) => serde_json::to_value(a), )* };
                v.unwrap_or(Value::Null)
            }
        }
    };
}

operations! {
    CreateTenant(CreateTenant) = "create_tenant", Write;
    ListTenants(ListTenantsArgs) = "list_tenants", Read;
    GetTenant(TenantArgs) = "get_tenant", Read;
    UpdateTenant(UpdateTenantArgs) = "update_tenant", Write;
    DeleteTenant(TenantArgs) = "delete_tenant", Write;
    RotateTenantKey(RotateTenantKeyArgs) = "rotate_tenant_key", Write;
    GetKeyRotation(TenantArgs) = "get_key_rotation", Read;
    RotateInstanceKey(RotateInstanceKeyArgs) = "rotate_instance_key", Write;
    GetInstanceKeyRotation(NoArgs) = "get_instance_key_rotation", Read;
    AddMember(AddMemberArgs) = "add_member", Write;
    ListMembers(ListMembersArgs) = "list_members", Read;
    RemoveMember(MemberArgs) = "remove_member", Write;
    CreateNamespace(CreateNamespaceArgs) = "create_namespace", Write;
    ListNamespaces(ListArgs) = "list_namespaces", Read;
    GetNamespace(NamespaceArgs) = "get_namespace", Read;
    DeleteNamespace(NamespaceArgs) = "delete_namespace", Write;
    GetMemoryPolicy(PolicyArgs) = "get_memory_policy", Read;
    SetMemoryPolicy(SetPolicyArgs) = "set_memory_policy", Write;
    CreateKey(CreateKey) = "create_key", Write;
    ListKeys(ListKeysArgs) = "list_keys", Read;
    RevokeKey(RevokeKeyArgs) = "revoke_key", Write;
    RotateKey(KeyArgs) = "rotate_key", Write;
    StoreMemory(StoreMemory) = "store_memory", Upsert;
    StoreMemories(StoreBatchArgs) = "store_memories", Upsert;
    Recall(Recall) = "recall", Read;
    GetMemory(MemoryArgs) = "get_memory", Read;
    GetMemories(GetMemoriesArgs) = "get_memories", Read;
    UpdateMemory(UpdateMemory) = "update_memory", Write;
    ListMemories(ListMemories) = "list_memories", Read;
    CountMemories(CountMemories) = "count_memories", Read;
    DeleteMemory(MemoryArgs) = "delete_memory", Write;
    BatchForget(Forget) = "batch_forget", Write;
    AddEntity(AddEntity) = "add_entity", Write;
    AddRelation(AddRelation) = "add_relation", Write;
    GetEntity(EntityArgs) = "get_entity", Read;
    Neighbors(Neighbors) = "neighbors", Read;
    Subgraph(Neighbors) = "subgraph", Read;
    ShortestPath(PathArgs) = "shortest_path", Read;
    DeleteEntity(EntityArgs) = "delete_entity", Write;
    DeleteRelation(RelationArgs) = "delete_relation", Write;
    WhoAmI(NoArgs) = "whoami", Read;
    ListAudit(ListAudit) = "list_audit", Read;
    VerifyAudit(TenantArgs) = "verify_audit", Write;
    ExportNamespace(crate::transfer::ExportArgs) = "export_namespace", Read;
    ImportNamespace(crate::transfer::ImportArgs) = "import_namespace", Write;
    StartSession(crate::session::StartSession) = "start_session", Write;
    EndSession(crate::session::EndSession) = "end_session", Write;
    GetSession(crate::session::SessionArgs) = "get_session", Read;
    ListSessions(crate::session::ListSessions) = "list_sessions", Read;
    SessionMemories(crate::session::SessionMemories) = "session_memories", Read;
}

impl Request {
    /// Whether sending this request a second time (to another server, after the first may have
    /// applied it) cannot change the outcome: reads, and stores whose every memory has a
    /// caller-chosen id.
    pub fn safe_to_resend(&self) -> bool {
        match (self.effect(), self) {
            (Effect::Read, _) => true,
            (Effect::Upsert, Request::StoreMemory(m)) => m.id.is_some(),
            (Effect::Upsert, Request::StoreMemories(batch)) => {
                batch.memories.iter().all(|m| m.id.is_some())
            }
            _ => false,
        }
    }
}

/// Deepest nesting of arrays and objects accepted in an operation's arguments. Stored
/// records wrap caller JSON (metadata, properties, settings) in a few more levels and are
/// read back with `serde_json`'s limit of 128, so a deeper value could be written but never
/// read again: it would turn every later read of its namespace into `internal`.
pub const MAX_JSON_DEPTH: usize = 64;

/// Refuses arguments that are not a JSON object, or that nest deeper than [`MAX_JSON_DEPTH`]
/// (naming the outermost field that does).
fn check_arguments_shape(args: &Value) -> Result<()> {
    fn exceeds(v: &Value, left: usize) -> bool {
        match v {
            Value::Array(items) => left == 0 || items.iter().any(|x| exceeds(x, left - 1)),
            Value::Object(map) => left == 0 || map.values().any(|x| exceeds(x, left - 1)),
            _ => false,
        }
    }
    let Value::Object(map) = args else {
        return Err(Error::invalid("body", "the arguments must be a JSON object"));
    };
    let left = MAX_JSON_DEPTH - 1;
    for (name, value) in map {
        if !exceeds(value, left) {
            continue;
        }
        // Name the item of a batch (`memories[3].metadata`) when that is where it is.
        let mut field = name.clone();
        if let Value::Array(items) = value {
            if let Some((i, Value::Object(item))) =
                items.iter().enumerate().find(|(_, x)| exceeds(x, left - 1))
            {
                field = format!("{name}[{i}]");
                if let Some((k, _)) = item.iter().find(|(_, x)| exceeds(x, left - 2)) {
                    field = format!("{field}.{k}");
                }
            }
        }
        return Err(Error::invalid(field, format!("nested deeper than {MAX_JSON_DEPTH} levels")));
    }
    Ok(())
}
