//! The one operation table shared by every transport: the HTTP server, the remote client,
//! and the Python, Node and C bindings all speak [`Request`] (an operation name plus JSON
//! arguments) and get a [`Reply`] back, so each face behaves identically by construction.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::audit::ListAudit;
use crate::auth::Role;
pub use crate::error::{error_body, error_from_body};
use crate::error::{Error, Result};
use crate::graph::{AddEntity, AddRelation, Neighbors};
use crate::handle::Handle;
use crate::keys::CreateKey;
use crate::listing::{CountMemories, ListMemories};
use crate::memory::{Forget, Recall, StoreMemory, UpdateMemory};
use crate::namespace::{DecayPolicy, NamespaceOptions};
use crate::page::{Page, Paged};
use crate::tenant::{CreateTenant, TenantStatus, UpdateTenant};

/// Arguments naming one namespace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NamespaceArgs {
    /// Namespace name.
    pub name: String,
}

/// Arguments of `create_namespace`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateNamespaceArgs {
    /// Namespace name.
    pub name: String,
    /// Owning tenant (a tenant admin's own tenant by default).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Decay policy.
    #[serde(default)]
    pub policy: Option<DecayPolicy>,
    /// Fix the vector dimension now.
    #[serde(default)]
    pub dimensions: Option<u32>,
    /// Return the existing namespace instead of `conflict`.
    #[serde(default)]
    pub exist_ok: bool,
}

// The fields are spelled out rather than `#[serde(flatten)]`ed: serde loses the field path of
// an error inside a flattened struct, and the error must name the field.
impl CreateNamespaceArgs {
    fn into_parts(self) -> (String, NamespaceOptions) {
        let opts = NamespaceOptions {
            tenant_id: self.tenant_id,
            policy: self.policy,
            dimensions: self.dimensions,
            exist_ok: self.exist_ok,
        };
        (self.name, opts)
    }
}

/// Arguments of `list_namespaces`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// Only this tenant's.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Items to skip (not with `cursor`).
    #[serde(default)]
    pub offset: Option<u64>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page: the page starts after it.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Arguments of `list_keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListKeysArgs {
    /// Only this tenant's.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Only the keys granted this namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Items to skip.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Arguments of `revoke_key`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RevokeKeyArgs {
    /// Key id.
    pub key_id: String,
    /// Only if the key is granted this namespace (else `not_found`).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// Arguments of `list_tenants`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListTenantsArgs {
    /// Only tenants in this state.
    #[serde(default)]
    pub status: Option<TenantStatus>,
    /// Only children of this tenant.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Items to skip.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Arguments naming one tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TenantArgs {
    /// Tenant id.
    pub tenant_id: String,
}

/// Arguments of `update_tenant`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateTenantArgs {
    /// Tenant id.
    pub tenant_id: String,
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New status (`active`, `suspended` or `provisioning`).
    #[serde(default)]
    pub status: Option<TenantStatus>,
    /// Quota changes.
    #[serde(default)]
    pub quotas: Option<crate::tenant::QuotasPatch>,
    /// Settings merged key by key (a `null` value removes a key).
    #[serde(default)]
    pub settings: Option<Map<String, Value>>,
    /// Replaces the feature flags.
    #[serde(default)]
    pub features: Option<Value>,
    /// Replaces the tags.
    #[serde(default)]
    pub tags: Option<Value>,
}

impl UpdateTenantArgs {
    /// The tenant's id and the changes.
    pub fn into_parts(self) -> (String, UpdateTenant) {
        let changes = UpdateTenant {
            name: self.name,
            status: self.status,
            quotas: self.quotas,
            settings: self.settings,
            features: self.features,
            tags: self.tags,
        };
        (self.tenant_id, changes)
    }
}

/// Arguments of `add_member`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AddMemberArgs {
    /// Tenant id.
    pub tenant_id: String,
    /// User identifier.
    pub user_identifier: String,
    /// Role.
    pub role: Role,
    /// Metadata.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// Arguments of `list_members`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListMembersArgs {
    /// Tenant id.
    pub tenant_id: String,
    /// Only this role.
    #[serde(default)]
    pub role: Option<Role>,
    /// Items to skip.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Page size.
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Arguments of `remove_member`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MemberArgs {
    /// Tenant id.
    pub tenant_id: String,
    /// Member id.
    pub member_id: String,
}

/// Arguments naming one key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyArgs {
    /// Key id.
    pub key_id: String,
}

/// Arguments naming a namespace's policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyArgs {
    /// Namespace name.
    pub namespace: String,
}

/// Arguments of `set_memory_policy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SetPolicyArgs {
    /// Namespace name.
    pub namespace: String,
    /// The new policy.
    pub policy: DecayPolicy,
}

/// Arguments of `store_memories`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StoreBatchArgs {
    /// Namespace name.
    pub namespace: String,
    /// The memories (all stored, or none).
    pub memories: Vec<StoreMemory>,
}

/// Arguments naming one memory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct MemoryArgs {
    /// Namespace (optional for a key with exactly one namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Memory id.
    pub id: String,
}

/// Arguments of `get_memories`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GetMemoriesArgs {
    /// Namespace (optional for a key with exactly one namespace).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Memory ids (at most 1000); absent ones are left out of the answer.
    pub ids: Vec<String>,
    /// Return each memory's stored vector too.
    #[serde(default)]
    pub include_vectors: bool,
}

/// Arguments of `get_entity`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EntityArgs {
    /// Namespace.
    pub namespace: String,
    /// Entity id or name.
    pub entity: String,
    /// Entity type, to pick among same-named entities.
    #[serde(default, rename = "type")]
    pub entity_type: Option<String>,
}

/// Arguments of `shortest_path`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PathArgs {
    /// Namespace.
    pub namespace: String,
    /// Start entity (id or name).
    pub from: String,
    /// End entity (id or name).
    pub to: String,
}

/// Arguments of `delete_relation`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RelationArgs {
    /// Namespace.
    pub namespace: String,
    /// Relation id.
    pub id: String,
}

/// Arguments of `rotate_tenant_key`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateTenantKeyArgs {
    /// The tenant.
    pub tenant_id: String,
    /// The new key's id (made in the keyring if absent); default `<tenant name>.<ms>`.
    #[serde(default)]
    pub new_key_id: Option<String>,
}

/// Arguments of operations that take none.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

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

/// Decodes JSON into `T`; failures become `invalid_argument` naming the field path.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let field = match inner.split('`').nth(1) {
            Some(f) if inner.starts_with("missing field") => {
                if path == "." {
                    f.to_owned()
                } else {
                    format!("{path}.{f}")
                }
            }
            Some(f) if inner.starts_with("unknown field") => {
                // serde_path_to_error's path already ends with the unknown key itself.
                if path == "." {
                    f.to_owned()
                } else if path == f || path.ends_with(&format!(".{f}")) {
                    path
                } else {
                    format!("{path}.{f}")
                }
            }
            _ if path == "." => "body".to_owned(),
            _ => path,
        };
        Error::invalid(field, inner)
    })
}

/// An operation's result. `total_count` is set for the lists whose value is a bare array
/// (namespaces, keys), and `next_cursor` for those paged by cursor (namespaces) when a page
/// follows; HTTP carries them in `X-Total-Count` and `X-Next-Cursor`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The JSON result.
    pub value: Value,
    /// Items in all pages, for bare-array lists.
    pub total_count: Option<u64>,
    /// Where the next page of a bare-array list starts (`None`: no page follows).
    pub next_cursor: Option<String>,
}

impl Reply {
    /// A result that is not a bare-array list.
    pub fn of_value(value: Value) -> Reply {
        Reply { value, total_count: None, next_cursor: None }
    }
}

/// An operation's result as JSON text, serialised once from the operation's own types (see
/// [`Handle::call_encoded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedReply {
    /// The JSON result, as bytes.
    pub body: Vec<u8>,
    /// Items in all pages, for bare-array lists.
    pub total_count: Option<u64>,
    /// Where the next page of a bare-array list starts.
    pub next_cursor: Option<String>,
}

/// What [`Handle::run`] builds a result into: a JSON value ([`Reply`]) or JSON text
/// ([`EncodedReply`]).
trait Answer: Sized {
    /// The result `v`.
    fn of<T: Serialize>(v: T) -> Result<Self>;
    /// A bare-array list with its total and the cursor of the page after it.
    fn listed<T: Serialize>(page: Paged<T>) -> Result<Self>;
    /// A result already built as a JSON value.
    fn from_reply(r: Reply) -> Result<Self>;
}

impl Answer for Reply {
    fn of<T: Serialize>(v: T) -> Result<Reply> {
        Ok(Reply::of_value(serde_json::to_value(v)?))
    }

    fn listed<T: Serialize>(page: Paged<T>) -> Result<Reply> {
        Ok(Reply {
            value: serde_json::to_value(page.items)?,
            total_count: Some(page.total_count),
            next_cursor: page.next_cursor,
        })
    }

    fn from_reply(r: Reply) -> Result<Reply> {
        Ok(r)
    }
}

impl Answer for EncodedReply {
    fn of<T: Serialize>(v: T) -> Result<EncodedReply> {
        Ok(EncodedReply { body: to_json(&v)?, total_count: None, next_cursor: None })
    }

    fn listed<T: Serialize>(page: Paged<T>) -> Result<EncodedReply> {
        Ok(EncodedReply {
            body: to_json(&page.items)?,
            total_count: Some(page.total_count),
            next_cursor: page.next_cursor,
        })
    }

    fn from_reply(r: Reply) -> Result<EncodedReply> {
        Ok(EncodedReply {
            body: to_json(&r.value)?,
            total_count: r.total_count,
            next_cursor: r.next_cursor,
        })
    }
}

/// Writes numbers as a [`Value`] holds them (an `f32` widened to `f64`), so a reply's
/// text is the same whether or not it went through a `Value`.
struct AsValue;

impl serde_json::ser::Formatter for AsValue {
    fn write_f32<W: ?Sized + std::io::Write>(&mut self, w: &mut W, v: f32) -> std::io::Result<()> {
        self.write_f64(w, f64::from(v))
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    v.serialize(&mut serde_json::Serializer::with_formatter(&mut out, AsValue))?;
    Ok(out)
}

fn with_message<T: Serialize>(v: T, message: &str) -> Result<Reply> {
    let mut value = serde_json::to_value(v)?;
    if let Value::Object(map) = &mut value {
        map.insert("message".into(), Value::String(message.into()));
    }
    Ok(Reply::of_value(value))
}

fn now_string(h: &Handle) -> DateTime<Utc> {
    h.engine().inner.options.clock.now()
}

impl Handle {
    /// Runs one operation. Every transport calls this and nothing else. Control-plane
    /// operations and refusals are recorded in the audit log (see [`crate::audit`]).
    pub fn execute(&self, req: Request) -> Result<Reply> {
        let op = req.name();
        let subject = crate::audit::Subject::of(&self.inner, &req);
        self.execute_audited(op, subject, req)
    }

    /// [`Handle::execute`] answering JSON text: the result is serialised once, straight from
    /// the operation's types (a transport that sends JSON need not build a `Value` first).
    pub fn execute_encoded(&self, req: Request) -> Result<EncodedReply> {
        let op = req.name();
        let subject = crate::audit::Subject::of(&self.inner, &req);
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
    pub fn awaits_commit(&self, op: &str) -> bool {
        let awaits = match op {
            "store_memory" => self.inner.options.embedder.is_fast(),
            "create_namespace" => true,
            _ => false,
        };
        awaits && crate::store::commit_threads() < crate::store::MAX_COMMIT_THREADS
    }

    /// [`Handle::call_encoded`] for a transport on an async executor. An operation for
    /// which [`Handle::awaits_commit`] holds does its work on the calling thread (embedding a text
    /// included), queues its write for the next group commit and awaits that commit's sync
    /// without a thread waiting for it (see `Store::write_ns_async`); it is answered only
    /// after its commit is on disk, as ever. Any other operation runs at once, as
    /// `call_encoded` runs it (so a write blocks the calling thread).
    pub async fn call_encoded_async(&self, op: &str, args: Value) -> Result<EncodedReply> {
        let req = Request::parse(op, args)?;
        let op = req.name();
        let subject = crate::audit::Subject::of(&self.inner, &req);
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
            Request::Recall(a) => R::of(self.recall(a)?),
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

/// What every binding talks to: an in-process handle or a remote server, with the same
/// operations, results and errors.
pub trait Backend: Send + Sync {
    /// Runs one operation.
    fn call(&self, op: &str, args: Value) -> Result<Reply>;
    /// A backend acting as `api_key` (in-process: [`crate::Engine::scoped`]; remote: the
    /// same server with that key).
    fn scoped(&self, api_key: &str) -> Result<Box<dyn Backend>>;
    /// Runs one operation whose vectors travel beside the JSON arguments as one block of
    /// `dims`-wide f32 rows (see [`Request::attach_vectors`]), so bindings need not encode
    /// floats as text. By default the vectors are put into the JSON (what a remote call sends).
    fn call_with_vectors(
        &self,
        op: &str,
        args: Value,
        vectors: &[f32],
        dims: usize,
    ) -> Result<Reply> {
        let mut req = Request::parse(op, args)?;
        req.attach_vectors(vectors, dims)?;
        self.call(req.name(), req.args())
    }
}

impl Request {
    /// Moves a block of vectors into the request: row `i` becomes `memories[i].embedding`
    /// (`store_memories`), the `embedding` (`store_memory`) or the `vector` (`recall`).
    /// A vector given both inline and in the block, or a row count that does not match, is
    /// `invalid_argument`.
    pub fn attach_vectors(&mut self, vectors: &[f32], dims: usize) -> Result<()> {
        if dims == 0 || !vectors.len().is_multiple_of(dims) {
            return Err(Error::invalid(
                "vectors",
                "the block's length must be a whole number of rows of dims > 0 values",
            ));
        }
        // Checked here, before a remote client writes the block as JSON (where NaN would
        // become null): the same error in process and over HTTP.
        let field = |i: usize| match self {
            Request::StoreMemories(_) => format!("memories[{i}].embedding"),
            Request::Recall(_) => "vector".to_owned(),
            _ => "embedding".to_owned(),
        };
        for (i, row) in vectors.chunks_exact(dims).enumerate() {
            crate::vector::check_finite(row, &field(i))?;
        }
        let mut rows = vectors.chunks_exact(dims).map(<[f32]>::to_vec);
        let count = vectors.len() / dims;
        let one =
            |slot: &mut Option<Vec<f32>>, field: &str, rows: &mut dyn Iterator<Item = Vec<f32>>| {
                if count != 1 {
                    return Err(Error::invalid(
                        "vectors",
                        format!("this operation takes one vector, got {count}"),
                    ));
                }
                if slot.is_some() {
                    return Err(Error::invalid(field, "given both inline and in the vector block"));
                }
                *slot = rows.next();
                Ok(())
            };
        match self {
            Request::StoreMemories(a) => {
                if count != a.memories.len() {
                    return Err(Error::invalid(
                        "vectors",
                        format!("{count} vectors for {} memories", a.memories.len()),
                    ));
                }
                for (i, (m, row)) in a.memories.iter_mut().zip(rows).enumerate() {
                    if m.embedding.is_some() {
                        return Err(Error::invalid(
                            format!("memories[{i}].embedding"),
                            "given both inline and in the vector block",
                        ));
                    }
                    m.embedding = Some(row);
                }
                Ok(())
            }
            Request::StoreMemory(a) => one(&mut a.embedding, "embedding", &mut rows),
            Request::UpdateMemory(a) => one(&mut a.embedding, "embedding", &mut rows),
            Request::Recall(a) => one(&mut a.vector, "vector", &mut rows),
            other => Err(Error::invalid(
                "vectors",
                format!("operation {} takes no vectors", other.name()),
            )),
        }
    }
}

impl Backend for Handle {
    fn call(&self, op: &str, args: Value) -> Result<Reply> {
        Handle::call(self, op, args)
    }

    fn call_with_vectors(
        &self,
        op: &str,
        args: Value,
        vectors: &[f32],
        dims: usize,
    ) -> Result<Reply> {
        let mut req = Request::parse(op, args)?;
        req.attach_vectors(vectors, dims)?;
        self.execute(req)
    }

    fn scoped(&self, api_key: &str) -> Result<Box<dyn Backend>> {
        Ok(Box::new(self.engine().scoped(api_key)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_block_fills_each_memory_and_refuses_mismatches() {
        let args =
            json!({ "namespace": "ns", "memories": [{ "content": "a" }, { "content": "b" }] });
        let mut req = Request::parse("store_memories", args.clone()).unwrap();
        req.attach_vectors(&[1.0, 0.0, 0.0, 1.0], 2).unwrap();
        let Request::StoreMemories(batch) = &req else { panic!("wrong op") };
        assert_eq!(batch.memories[1].embedding, Some(vec![0.0, 1.0]));
        let mut nan = Request::parse("store_memories", args.clone()).unwrap();
        let err = nan.attach_vectors(&[1.0, 0.0, 0.0, f32::NAN], 2).unwrap_err();
        assert_eq!(err.to_string(), "memories[1].embedding: element 1 is not a finite number");
        let mut wrong_rows = Request::parse("store_memories", args).unwrap();
        assert!(wrong_rows.attach_vectors(&[1.0, 0.0], 2).is_err());
        let inline =
            json!({ "namespace": "ns", "memories": [{ "content": "a", "embedding": [1.0] }] });
        let err = Request::parse("store_memories", inline)
            .unwrap()
            .attach_vectors(&[1.0], 1)
            .unwrap_err();
        assert!(err.to_string().starts_with("memories[0].embedding:"), "{err}");
        let mut recall = Request::parse("recall", json!({ "namespace": "ns" })).unwrap();
        recall.attach_vectors(&[0.5, 0.5], 2).unwrap();
        assert!(matches!(&recall, Request::Recall(r) if r.vector == Some(vec![0.5, 0.5])));
        assert!(Request::parse("whoami", json!({})).unwrap().attach_vectors(&[1.0], 1).is_err());
        assert!(Request::parse("recall", json!({}))
            .unwrap()
            .attach_vectors(&[1.0, 2.0, 3.0], 2)
            .is_err());
    }
}
