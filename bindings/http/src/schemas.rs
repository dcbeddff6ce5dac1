//! JSON schemas of each operation's arguments and result, for the `OpenAPI` document,
//! derived from core's Rust types (`memsilo` built with its `schema` feature).

use memsilo::api::{
    AddMemberArgs, CreateNamespaceArgs, EntityArgs, GetMemoriesArgs, KeyArgs, ListArgs,
    ListKeysArgs, ListMembersArgs, ListTenantsArgs, MemberArgs, MemoryArgs, NamespaceArgs, NoArgs,
    PathArgs, PolicyArgs, RelationArgs, RevokeKeyArgs, SetPolicyArgs, StoreBatchArgs, TenantArgs,
    UpdateTenantArgs,
};
use memsilo::{
    AddEntity, AddRelation, ApiKey, CountMemories, CreateKey, CreateTenant, CreatedKey,
    DecayPolicy, DeletedNamespace, Entity, Forget, Forgotten, GraphPath, GraphView, ListMemories,
    Member, MemberList, Memory, MemoryPage, Namespace, Neighbors, Recall, RecallHit, Relation,
    StoreMemory, TenantInfo, UpdateMemory,
};
use memsilo::{AuditPage, AuditVerification, ListAudit};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{json, Map, Value};

const DEFS: &str = "#/components/schemas/";

/// An operation's argument schema, split the way the routes need it.
#[derive(Debug, Default)]
pub struct Args {
    /// The whole argument object (a reference, or inline when path arguments were removed).
    pub body: Value,
    /// Each argument's schema.
    pub fields: Map<String, Value>,
    /// Required arguments.
    pub required: Vec<String>,
}

/// Two generators (arguments are read with serde's deserialize rules, results written with
/// its serialize rules) and the named schemas they collect.
pub struct Components {
    input: SchemaGenerator,
    output: SchemaGenerator,
}

impl std::fmt::Debug for Components {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Components").finish_non_exhaustive()
    }
}

/// Prefix of argument schemas whose name a result schema also uses.
const INPUT_SUFFIX: &str = "Input";

fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas/".into();
        s.meta_schema = None;
    })
}

impl Default for Components {
    fn default() -> Self {
        Components {
            input: settings().for_deserialize().into_generator(),
            output: settings().for_serialize().into_generator(),
        }
    }
}

macro_rules! schema_of {
    ($gen:expr, $op:expr, { $($name:literal => $ty:ty,)* }) => {
        match $op {
            $( $name => Some(Value::from($gen.subschema_for::<$ty>())), )*
            _ => None,
        }
    };
}

impl Components {
    /// The argument schema of `op`, without the arguments in `path_args` (they travel in
    /// the URL), or `None` for an unknown operation.
    pub fn request(&mut self, op: &str, path_args: &[&str]) -> Option<Args> {
        let schema = schema_of!(self.input, op, {
            "create_tenant" => CreateTenant,
            "list_tenants" => ListTenantsArgs,
            "get_tenant" => TenantArgs,
            "update_tenant" => UpdateTenantArgs,
            "delete_tenant" => TenantArgs,
            "rotate_tenant_key" => memsilo::api::RotateTenantKeyArgs,
            "get_key_rotation" => TenantArgs,
            "rotate_instance_key" => memsilo::api::RotateInstanceKeyArgs,
            "get_instance_key_rotation" => NoArgs,
            "add_member" => AddMemberArgs,
            "list_members" => ListMembersArgs,
            "remove_member" => MemberArgs,
            "create_namespace" => CreateNamespaceArgs,
            "list_namespaces" => ListArgs,
            "get_namespace" => NamespaceArgs,
            "delete_namespace" => NamespaceArgs,
            "get_memory_policy" => PolicyArgs,
            "set_memory_policy" => SetPolicyArgs,
            "create_key" => CreateKey,
            "list_keys" => ListKeysArgs,
            "revoke_key" => RevokeKeyArgs,
            "rotate_key" => KeyArgs,
            "store_memory" => StoreMemory,
            "store_memories" => StoreBatchArgs,
            "recall" => Recall,
            "get_memory" => MemoryArgs,
            "delete_memory" => MemoryArgs,
            "get_memories" => GetMemoriesArgs,
            "update_memory" => UpdateMemory,
            "list_memories" => ListMemories,
            "count_memories" => CountMemories,
            "batch_forget" => Forget,
            "add_entity" => AddEntity,
            "add_relation" => AddRelation,
            "get_entity" => EntityArgs,
            "neighbors" => Neighbors,
            "subgraph" => Neighbors,
            "shortest_path" => PathArgs,
            "delete_entity" => EntityArgs,
            "delete_relation" => RelationArgs,
            "whoami" => NoArgs,
            "list_audit" => ListAudit,
            "verify_audit" => TenantArgs,
            "export_namespace" => memsilo::transfer::ExportArgs,
            "import_namespace" => memsilo::transfer::ImportArgs,
            "start_session" => memsilo::StartSession,
            "end_session" => memsilo::EndSession,
            "get_session" => memsilo::SessionArgs,
            "list_sessions" => memsilo::ListSessions,
            "session_memories" => memsilo::SessionMemories,
        })?;
        let object = self.resolve(&schema);
        let fields = object["properties"].as_object().cloned().unwrap_or_default();
        let required: Vec<String> = object["required"]
            .as_array()
            .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let body = if path_args.iter().any(|a| fields.contains_key(*a)) {
            let mut body = object.clone();
            if let Some(props) = body["properties"].as_object_mut() {
                props.retain(|k, _| !path_args.contains(&k.as_str()));
            }
            if let Some(req) = body["required"].as_array_mut() {
                req.retain(|k| !k.as_str().is_some_and(|k| path_args.contains(&k)));
            }
            body
        } else {
            schema
        };
        Some(Args { body, fields, required })
    }

    /// The result schema of `op`, or `None` for an unknown operation.
    pub fn response(&mut self, op: &str) -> Option<Value> {
        let g = &mut self.output;
        let message = json!({ "type": "object", "properties": { "message": { "type": "string" } }, "required": ["message"] });
        let time = json!({ "type": "string", "format": "date-time" });
        let tenant = Value::from(g.subschema_for::<TenantInfo>());
        Some(match op {
            "create_tenant" | "update_tenant" => json!({ "allOf": [tenant, message] }),
            "delete_tenant" => json!({ "allOf": [tenant, message, {
                "type": "object", "properties": { "deleted_at": time }, "required": ["deleted_at"] }] }),
            "get_tenant" => tenant,
            "rotate_tenant_key" | "get_key_rotation" => {
                g.subschema_for::<memsilo::KeyRotation>().into()
            }
            "rotate_instance_key" | "get_instance_key_rotation" => {
                g.subschema_for::<memsilo::InstanceKeyRotation>().into()
            }
            "list_tenants" => json!({
                "type": "object",
                "properties": {
                    "tenants": { "type": "array", "items": tenant },
                    "total_count": { "type": "integer", "minimum": 0 },
                    "offset": { "type": "integer", "minimum": 0 },
                    "limit": { "type": "integer", "minimum": 0 },
                },
                "required": ["tenants", "total_count", "offset", "limit"],
            }),
            "add_member" => json!({ "allOf": [Value::from(g.subschema_for::<Member>()), message] }),
            "list_members" => g.subschema_for::<MemberList>().into(),
            "remove_member" => json!({
                "type": "object",
                "properties": { "tenant_id": { "type": "string" }, "member_id": { "type": "string" },
                                "message": { "type": "string" }, "removed_at": time },
                "required": ["tenant_id", "member_id", "message", "removed_at"],
            }),
            "create_namespace" | "get_namespace" => g.subschema_for::<Namespace>().into(),
            "list_namespaces" => g.subschema_for::<Vec<Namespace>>().into(),
            "delete_namespace" => g.subschema_for::<DeletedNamespace>().into(),
            "get_memory_policy" | "set_memory_policy" => g.subschema_for::<DecayPolicy>().into(),
            "create_key" | "rotate_key" => g.subschema_for::<CreatedKey>().into(),
            "list_keys" => g.subschema_for::<Vec<ApiKey>>().into(),
            "revoke_key" => g.subschema_for::<ApiKey>().into(),
            "store_memory" | "get_memory" | "update_memory" => g.subschema_for::<Memory>().into(),
            "list_memories" => g.subschema_for::<MemoryPage>().into(),
            "count_memories" => json!({
                "type": "object",
                "properties": { "count": { "type": "integer", "minimum": 0 } },
                "required": ["count"],
            }),
            "get_memories" => json!({
                "type": "object",
                "properties": { "memories": Value::from(g.subschema_for::<Vec<Memory>>()) },
                "required": ["memories"],
            }),
            "store_memories" => json!({
                "type": "object",
                "properties": { "ids": { "type": "array", "items": { "type": "string" } } },
                "required": ["ids"],
            }),
            "recall" => g.subschema_for::<Vec<RecallHit>>().into(),
            "delete_memory" => json!({
                "type": "object",
                "properties": { "id": { "type": "string" }, "namespace": { "type": "string" }, "deleted": { "type": "boolean" } },
                "required": ["id", "namespace", "deleted"],
            }),
            "batch_forget" => g.subschema_for::<Forgotten>().into(),
            "add_entity" | "get_entity" => g.subschema_for::<Entity>().into(),
            "add_relation" => g.subschema_for::<Relation>().into(),
            "neighbors" | "subgraph" => g.subschema_for::<GraphView>().into(),
            "shortest_path" => g.subschema_for::<GraphPath>().into(),
            "delete_entity" => json!({
                "type": "object",
                "properties": { "id": { "type": "string" }, "name": { "type": "string" }, "deleted": { "type": "boolean" } },
                "required": ["id", "name", "deleted"],
            }),
            "delete_relation" => json!({
                "type": "object",
                "properties": { "id": { "type": "string" }, "deleted": { "type": "boolean" } },
                "required": ["id", "deleted"],
            }),
            "list_audit" => g.subschema_for::<AuditPage>().into(),
            "verify_audit" => g.subschema_for::<AuditVerification>().into(),
            "export_namespace" => g.subschema_for::<memsilo::transfer::ExportPage>().into(),
            "import_namespace" => g.subschema_for::<memsilo::transfer::ImportSummary>().into(),
            "start_session" | "end_session" | "get_session" => {
                g.subschema_for::<memsilo::Session>().into()
            }
            "list_sessions" => g.subschema_for::<memsilo::SessionPage>().into(),
            "session_memories" => g.subschema_for::<memsilo::MemoryList>().into(),
            "whoami" => json!({
                "type": "object",
                "properties": {
                    "principal": { "type": "string", "enum": ["root", "member", "scoped"] },
                    "key_id": { "type": "string" },
                    "tenant_id": { "type": ["string", "null"] },
                    "role": { "type": "string" },
                    "namespaces": { "type": "array", "items": { "type": "object" } },
                },
                "required": ["principal"],
            }),
            _ => return None,
        })
    }

    /// Follows a `$ref` into the input definitions.
    fn resolve(&self, schema: &Value) -> Value {
        match schema["$ref"].as_str().and_then(|r| r.strip_prefix(DEFS)) {
            Some(name) => self.input.definitions().get(name).cloned().unwrap_or_else(|| json!({})),
            None => schema.clone(),
        }
    }

    /// The named schemas, argument schemas renamed where a result schema of the same name
    /// differs. `refs` (the operations' schemas) are rewritten to match.
    pub fn finish(mut self, refs: &mut [&mut Value]) -> Map<String, Value> {
        let output = self.output.take_definitions(true);
        let input = self.input.take_definitions(true);
        let renamed: Vec<String> = input
            .iter()
            .filter(|(name, schema)| output.get(*name).is_some_and(|o| o != *schema))
            .map(|(name, _)| name.clone())
            .collect();
        let mut all = output;
        for (name, mut schema) in input {
            rename_refs(&mut schema, &renamed);
            let key = if renamed.contains(&name) { format!("{name}{INPUT_SUFFIX}") } else { name };
            all.insert(key, schema);
        }
        for r in refs {
            rename_refs(r, &renamed);
        }
        all
    }
}

fn rename_refs(v: &mut Value, renamed: &[String]) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                if let Some(name) = r.strip_prefix(DEFS) {
                    if renamed.iter().any(|n| n == name) {
                        *r = format!("{DEFS}{name}{INPUT_SUFFIX}");
                    }
                }
            }
            m.values_mut().for_each(|v| rename_refs(v, renamed));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| rename_refs(v, renamed)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_argument_and_result_schemas() {
        let mut c = Components::default();
        for op in memsilo::api::Request::OPERATIONS {
            assert!(c.request(op, &[]).is_some(), "no argument schema for {op}");
            assert!(c.response(op).is_some(), "no result schema for {op}");
        }
    }

    #[test]
    fn argument_schemas_follow_serde_and_drop_path_arguments() {
        let mut c = Components::default();
        let args = c.request("add_entity", &["namespace"]).unwrap();
        assert!(args.fields.contains_key("type"), "renamed field: {:?}", args.fields.keys());
        assert!(args.required.contains(&"namespace".to_owned()));
        assert!(args.body["properties"].get("namespace").is_none());
        assert_eq!(args.body["required"], json!(["name"]));
        let recall = c.request("recall", &[]).unwrap();
        assert!(recall.fields.contains_key("vector"));
        assert!(recall.required.is_empty());
    }
}
