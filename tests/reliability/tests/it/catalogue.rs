//! The bad-input catalogue: for every operation of the core table, inputs beyond each
//! field's limits, of the wrong type, missing, unknown or malformed. Each case says which
//! field the refusal must name and which codes are acceptable. The same table runs
//! in-process (`bad_input.rs`) and over HTTP (`http_bad_input.rs`).

use memsilo::{
    Access, AddEntity, AddRelation, CreateKey, CreateTenant, ErrorCode, Handle, NamespaceOptions,
    StoreMemory,
};
use serde_json::{json, Value};

/// Refusals for a malformed request.
pub const INVALID: &[ErrorCode] = &[ErrorCode::InvalidArgument, ErrorCode::PayloadTooLarge];
/// Refusals for an id that cannot exist (a malformed id may be reported as unknown).
pub const INVALID_OR_UNKNOWN: &[ErrorCode] = &[ErrorCode::InvalidArgument, ErrorCode::NotFound];
/// Refusals for a batch over the size limit.
pub const TOO_LARGE: &[ErrorCode] = &[ErrorCode::PayloadTooLarge];

/// One bad input.
#[derive(Debug, Clone)]
pub struct Case {
    /// Operation name.
    pub op: &'static str,
    /// What is wrong, for the failure message.
    pub what: String,
    /// The arguments.
    pub args: Value,
    /// A text the refusal must name (the field, or its path).
    pub field: &'static str,
    /// Acceptable codes.
    pub codes: &'static [ErrorCode],
}

/// What the cases refer to: one tenant with a member, a text namespace with memories, a
/// vector namespace (8 dimensions), a key and a small graph.
#[derive(Debug, Clone)]
#[allow(clippy::struct_field_names)] // they are ids, named as on the wire
pub struct Fixture {
    pub tenant_id: String,
    pub key_id: String,
    pub memory_id: String,
    pub relation_id: String,
}

pub const TEXT_NS: &str = "bad-input-text";
pub const VEC_NS: &str = "bad-input-vec";

/// Builds the fixture through the typed API.
pub fn fixture(root: &Handle) -> Fixture {
    let tenant = root
        .create_tenant(CreateTenant { name: "bad_input_corp".into(), ..Default::default() })
        .unwrap();
    let _member = root
        .add_member(&tenant.tenant.id, "alice@example.com", memsilo::Role::Editor, None)
        .unwrap();
    let opts = NamespaceOptions { tenant_id: Some(tenant.tenant.id.clone()), ..Default::default() };
    root.create_namespace(TEXT_NS, opts.clone()).unwrap();
    root.create_namespace(VEC_NS, NamespaceOptions { dimensions: Some(8), ..opts }).unwrap();
    let m = root
        .store_memory(StoreMemory {
            namespace: Some(TEXT_NS.into()),
            tags: vec!["t".into()],
            ..StoreMemory::text("the roadmap for Q3")
        })
        .unwrap();
    root.store_memory(StoreMemory {
        namespace: Some(TEXT_NS.into()),
        ..StoreMemory::text("the budget for Q4")
    })
    .unwrap();
    root.store_memory(StoreMemory {
        namespace: Some(VEC_NS.into()),
        embedding: Some(vec![1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25]),
        ..StoreMemory::text("a vector memory")
    })
    .unwrap();
    let key = root
        .create_key(CreateKey::namespaces("bad-input-key", [(TEXT_NS, Access::Write)]))
        .unwrap();
    root.add_entity(AddEntity {
        namespace: TEXT_NS.into(),
        name: "Alice".into(),
        entity_type: Some("person".into()),
        properties: None,
    })
    .unwrap();
    let rel = root
        .add_relation(AddRelation {
            namespace: TEXT_NS.into(),
            source: "Alice".into(),
            target: "Acme".into(),
            relation_type: "works_at".into(),
            ..Default::default()
        })
        .unwrap();
    Fixture {
        tenant_id: tenant.tenant.id,
        key_id: key.info.id,
        memory_id: m.id,
        relation_id: rel.id,
    }
}

/// A JSON object nested `depth` levels deep: `{"a": {"a": ... {} }}`.
pub fn nested(depth: usize) -> Value {
    let mut v = json!({});
    for _ in 0..depth {
        v = json!({ "a": v });
    }
    v
}

fn with(base: &Value, key: &str, value: Value) -> Value {
    let mut out = base.clone();
    out[key] = value;
    out
}

fn without(base: &Value, key: &str) -> Value {
    let mut out = base.clone();
    if let Some(m) = out.as_object_mut() {
        m.remove(key);
    }
    out
}

fn s(n: usize) -> String {
    "x".repeat(n)
}

/// Builds the catalogue.
#[allow(clippy::too_many_lines)]
pub fn cases(fx: &Fixture) -> Vec<Case> {
    let mut out = Vec::new();
    let mut add = |op: &'static str,
                   what: &str,
                   args: Value,
                   field: &'static str,
                   codes: &'static [ErrorCode]| {
        out.push(Case { op, what: what.to_owned(), args, field, codes });
    };
    let tid = fx.tenant_id.as_str();

    // Operation names.
    for op in ["drop_database", "", "STORE_MEMORY", "store_memory ", "../create_tenant"] {
        add(op, "unknown operation", json!({}), "op", INVALID);
    }

    // Tenants.
    let ct = json!({ "name": "new_tenant_ok" });
    add("create_tenant", "name of 2 chars", with(&ct, "name", json!("ab")), "name", INVALID);
    add("create_tenant", "name of 65 chars", with(&ct, "name", json!(s(65))), "name", INVALID);
    add(
        "create_tenant",
        "name with a space",
        with(&ct, "name", json!("bad name")),
        "name",
        INVALID,
    );
    add(
        "create_tenant",
        "name with a NUL",
        with(&ct, "name", json!("bad\u{0}name")),
        "name",
        INVALID,
    );
    add("create_tenant", "name as a number", with(&ct, "name", json!(123)), "name", INVALID);
    add("create_tenant", "missing name", json!({}), "name", INVALID);
    add("create_tenant", "unknown field", with(&ct, "bogus", json!(1)), "bogus", INVALID);
    add(
        "create_tenant",
        "qps_limit as a string",
        with(&ct, "quotas", json!({ "qps_limit": "fast" })),
        "qps_limit",
        INVALID,
    );
    add(
        "create_tenant",
        "negative storage quota",
        with(&ct, "quotas", json!({ "storage_quota_bytes": -1 })),
        "storage_quota_bytes",
        INVALID,
    );
    add(
        "create_tenant",
        "qps_limit 0",
        with(&ct, "quotas", json!({ "qps_limit": 0 })),
        "qps_limit",
        INVALID,
    );
    add(
        "create_tenant",
        "compute cores 1e300",
        with(&ct, "quotas", json!({ "compute_quota_cores": 1e300 })),
        "compute_quota_cores",
        INVALID,
    );
    add(
        "create_tenant",
        "unknown quota",
        with(&ct, "quotas", json!({ "gpus": 4 })),
        "gpus",
        INVALID,
    );
    add(
        "create_tenant",
        "bad isolation mode",
        with(&ct, "isolation_mode", json!("weird")),
        "isolation_mode",
        INVALID,
    );
    add(
        "create_tenant",
        "unknown parent",
        with(&ct, "parent_id", json!("no-such-tenant")),
        "parent_id",
        INVALID_OR_UNKNOWN,
    );
    add(
        "create_tenant",
        "settings as a string",
        with(&ct, "settings", json!("on")),
        "settings",
        INVALID,
    );
    add("create_tenant", "tags as a number", with(&ct, "tags", json!(7)), "tags", INVALID);
    add(
        "create_tenant",
        "settings of 70 KiB",
        with(&ct, "settings", json!({ "blob": s(70_000) })),
        "settings",
        INVALID,
    );
    add("create_tenant", "arguments as an array", json!(["new_tenant_ok"]), "body", INVALID);
    add("list_tenants", "limit 101", json!({ "limit": 101 }), "limit", INVALID);
    add("list_tenants", "limit 0", json!({ "limit": 0 }), "limit", INVALID);
    add("list_tenants", "offset as text", json!({ "offset": "ten" }), "offset", INVALID);
    add("list_tenants", "unknown status", json!({ "status": "zombie" }), "status", INVALID);
    add("list_tenants", "unknown field", json!({ "sort": "name" }), "sort", INVALID);
    add("get_tenant", "missing tenant_id", json!({}), "tenant_id", INVALID);
    add("get_tenant", "tenant_id as a number", json!({ "tenant_id": 5 }), "tenant_id", INVALID);
    let ut = json!({ "tenant_id": tid });
    add("update_tenant", "name of 2 chars", with(&ut, "name", json!("ab")), "name", INVALID);
    add("update_tenant", "name of 65 chars", with(&ut, "name", json!(s(65))), "name", INVALID);
    add(
        "update_tenant",
        "status deleted",
        with(&ut, "status", json!("deleted")),
        "status",
        INVALID,
    );
    // Flattened arguments lose serde's field path: these refusals name "body" and quote the
    // bad value (reported; the field should be named).
    add("update_tenant", "status unknown", with(&ut, "status", json!("paused")), "paused", INVALID);
    add(
        "update_tenant",
        "negative max_members",
        with(&ut, "quotas", json!({ "max_members": -3 })),
        "-3",
        INVALID,
    );
    add(
        "update_tenant",
        "max_namespaces 2^40",
        with(&ut, "quotas", json!({ "max_namespaces": 1u64 << 40 })),
        "1099511627776",
        INVALID,
    );
    add("update_tenant", "unknown field", with(&ut, "owner", json!("bob")), "owner", INVALID);
    add("update_tenant", "missing tenant_id", json!({ "name": "renamed" }), "tenant_id", INVALID);
    add("delete_tenant", "missing tenant_id", json!({}), "tenant_id", INVALID);
    add("rotate_tenant_key", "missing tenant_id", json!({}), "tenant_id", INVALID);
    add(
        "rotate_tenant_key",
        "a key id that is a path",
        json!({ "tenant_id": tid, "new_key_id": "../keys/other" }),
        "new_key_id",
        INVALID,
    );
    add(
        "rotate_tenant_key",
        "a logical tenant (no key of its own)",
        json!({ "tenant_id": tid }),
        "tenant_id",
        INVALID,
    );
    add(
        "rotate_tenant_key",
        "unknown field",
        json!({ "tenant_id": tid, "new_key": "x" }),
        "new_key",
        INVALID,
    );
    add(
        "rotate_instance_key",
        "a key id that is a path",
        json!({ "new_key_id": "../keys/other" }),
        "new_key_id",
        INVALID,
    );
    add("rotate_instance_key", "unknown field", json!({ "new_key": "x" }), "new_key", INVALID);
    add(
        "rotate_instance_key",
        "new_key_id as a number",
        json!({ "new_key_id": 5 }),
        "new_key_id",
        INVALID,
    );
    add(
        "get_instance_key_rotation",
        "unknown field",
        json!({ "verbose": true }),
        "verbose",
        INVALID,
    );
    add("get_key_rotation", "missing tenant_id", json!({}), "tenant_id", INVALID);
    add(
        "get_key_rotation",
        "tenant_id as a number",
        json!({ "tenant_id": 5 }),
        "tenant_id",
        INVALID,
    );
    add(
        "delete_tenant",
        "tenant_id as an object",
        json!({ "tenant_id": {} }),
        "tenant_id",
        INVALID,
    );

    // Members.
    let am = json!({ "tenant_id": tid, "user_identifier": "bob@example.com", "role": "viewer" });
    add("add_member", "unknown role", with(&am, "role", json!("owner")), "role", INVALID);
    add(
        "add_member",
        "empty user",
        with(&am, "user_identifier", json!("")),
        "user_identifier",
        INVALID,
    );
    add(
        "add_member",
        "user of 257 chars",
        with(&am, "user_identifier", json!(s(257))),
        "user_identifier",
        INVALID,
    );
    add("add_member", "missing role", without(&am, "role"), "role", INVALID);
    add(
        "add_member",
        "metadata as a string",
        with(&am, "metadata", json!("vip")),
        "metadata",
        INVALID,
    );
    add("list_members", "limit 101", json!({ "tenant_id": tid, "limit": 101 }), "limit", INVALID);
    add(
        "list_members",
        "unknown role",
        json!({ "tenant_id": tid, "role": "god" }),
        "role",
        INVALID,
    );
    add("remove_member", "missing member_id", json!({ "tenant_id": tid }), "member_id", INVALID);

    // Namespaces.
    let cn = json!({ "name": "new-ns", "tenant_id": tid });
    add("create_namespace", "name of 0 chars", with(&cn, "name", json!("")), "name", INVALID);
    add("create_namespace", "name of 129 chars", with(&cn, "name", json!(s(129))), "name", INVALID);
    add("create_namespace", "name with a space", with(&cn, "name", json!("a b")), "name", INVALID);
    add(
        "create_namespace",
        "name with a slash",
        with(&cn, "name", json!("ns/../x")),
        "name",
        INVALID,
    );
    add(
        "create_namespace",
        "name with non-ASCII",
        with(&cn, "name", json!("näme")),
        "name",
        INVALID,
    );
    add("create_namespace", "name as an array", with(&cn, "name", json!(["a"])), "name", INVALID);
    add(
        "create_namespace",
        "dimensions 0",
        with(&cn, "dimensions", json!(0)),
        "dimensions",
        INVALID,
    );
    add(
        "create_namespace",
        "dimensions 4097",
        with(&cn, "dimensions", json!(4097)),
        "dimensions",
        INVALID,
    );
    add("create_namespace", "dimensions -1", with(&cn, "dimensions", json!(-1)), "-1", INVALID);
    add(
        "create_namespace",
        "negative decay",
        with(&cn, "policy", json!({ "decay_rate": -1.0 })),
        "decay_rate",
        INVALID,
    );
    add(
        "create_namespace",
        "min_importance 2",
        with(&cn, "policy", json!({ "min_importance": 2.0 })),
        "min_importance",
        INVALID,
    );
    add(
        "create_namespace",
        "ttl_default 0",
        with(&cn, "policy", json!({ "ttl_default": 0 })),
        "ttl_default",
        INVALID,
    );
    add(
        "create_namespace",
        "unknown tenant",
        with(&cn, "tenant_id", json!("nope")),
        "tenant_id",
        INVALID_OR_UNKNOWN,
    );
    add("create_namespace", "unknown field", with(&cn, "shards", json!(3)), "shards", INVALID);
    add("create_namespace", "missing name", without(&cn, "name"), "name", INVALID);
    add("list_namespaces", "limit 101", json!({ "limit": 101 }), "limit", INVALID);
    add("list_namespaces", "negative offset", json!({ "offset": -1 }), "offset", INVALID);
    add("get_namespace", "missing name", json!({}), "name", INVALID);
    add("delete_namespace", "missing name", json!({}), "name", INVALID);
    add("delete_namespace", "name as a number", json!({ "name": 1 }), "name", INVALID);
    add("get_memory_policy", "missing namespace", json!({}), "namespace", INVALID);
    let sp = json!({ "namespace": TEXT_NS, "policy": { "decay_rate": 0.1, "min_importance": 0.0, "ttl_default": null } });
    add("set_memory_policy", "missing policy", without(&sp, "policy"), "policy", INVALID);
    add(
        "set_memory_policy",
        "decay_rate as text",
        with(&sp, "policy", json!({ "decay_rate": "fast" })),
        "decay_rate",
        INVALID,
    );
    add(
        "set_memory_policy",
        "decay_rate 1e9",
        with(&sp, "policy", json!({ "decay_rate": 1e9 })),
        "decay_rate",
        INVALID,
    );
    add(
        "set_memory_policy",
        "min_importance -0.1",
        with(&sp, "policy", json!({ "min_importance": -0.1 })),
        "min_importance",
        INVALID,
    );
    add(
        "set_memory_policy",
        "ttl_default 0",
        with(&sp, "policy", json!({ "ttl_default": 0 })),
        "ttl_default",
        INVALID,
    );

    // Keys.
    let ck = json!({ "name": "k", "namespaces": [{ "namespace": TEXT_NS, "access": "read" }] });
    add("create_key", "empty name", with(&ck, "name", json!("")), "name", INVALID);
    add("create_key", "name of 129 chars", with(&ck, "name", json!(s(129))), "name", INVALID);
    add("create_key", "missing name", without(&ck, "name"), "name", INVALID);
    add("create_key", "no namespaces", with(&ck, "namespaces", json!([])), "namespaces", INVALID);
    add(
        "create_key",
        "neither namespaces nor tenant",
        without(&ck, "namespaces"),
        "namespaces",
        INVALID,
    );
    add(
        "create_key",
        "access admin",
        with(&ck, "namespaces", json!([{ "namespace": TEXT_NS, "access": "admin" }])),
        "access",
        INVALID,
    );
    add(
        "create_key",
        "grant without namespace",
        with(&ck, "namespaces", json!([{ "access": "read" }])),
        "namespace",
        INVALID,
    );
    add(
        "create_key",
        "namespace listed twice",
        with(
            &ck,
            "namespaces",
            json!([{ "namespace": TEXT_NS, "access": "read" }, { "namespace": TEXT_NS, "access": "write" }]),
        ),
        "namespaces",
        INVALID,
    );
    let many: Vec<Value> =
        (0..1001).map(|i| json!({ "namespace": format!("ns-{i}"), "access": "read" })).collect();
    add(
        "create_key",
        "1001 namespaces",
        with(&ck, "namespaces", json!(many)),
        "namespaces",
        INVALID,
    );
    add("create_key", "role with namespaces", with(&ck, "role", json!("admin")), "role", INVALID);
    add(
        "create_key",
        "expires in the past",
        with(&ck, "expires_at", json!("2001-01-01T00:00:00Z")),
        "expires_at",
        INVALID,
    );
    add(
        "create_key",
        "expires_at not a date",
        with(&ck, "expires_at", json!("tomorrow")),
        "expires_at",
        INVALID,
    );
    add(
        "create_key",
        "unknown member",
        json!({ "name": "k", "tenant_id": tid, "member_id": "nobody" }),
        "member_id",
        INVALID_OR_UNKNOWN,
    );
    add(
        "create_key",
        "tenant key without role",
        json!({ "name": "k", "tenant_id": tid }),
        "role",
        INVALID,
    );
    add("list_keys", "limit 101", json!({ "limit": 101 }), "limit", INVALID);
    add("revoke_key", "missing key_id", json!({}), "key_id", INVALID);
    add("revoke_key", "key_id as a number", json!({ "key_id": 7 }), "key_id", INVALID);
    add("rotate_key", "missing key_id", json!({}), "key_id", INVALID);
    add(
        "rotate_key",
        "unknown field",
        json!({ "key_id": fx.key_id, "keep_old": true }),
        "keep_old",
        INVALID,
    );

    // Memories.
    let sm = json!({ "namespace": TEXT_NS, "content": "hello" });
    add("store_memory", "empty content", with(&sm, "content", json!("")), "content", INVALID);
    add("store_memory", "blank content", with(&sm, "content", json!(" \n\t ")), "content", INVALID);
    add(
        "store_memory",
        "content of 65,537 bytes",
        with(&sm, "content", json!(s(65_537))),
        "content",
        INVALID,
    );
    add(
        "store_memory",
        "content as an object",
        with(&sm, "content", json!({ "text": "hi" })),
        "content",
        INVALID,
    );
    add("store_memory", "missing content", without(&sm, "content"), "content", INVALID);
    add(
        "store_memory",
        "importance -0.1",
        with(&sm, "importance", json!(-0.1)),
        "importance",
        INVALID,
    );
    add(
        "store_memory",
        "importance 1.1",
        with(&sm, "importance", json!(1.1)),
        "importance",
        INVALID,
    );
    add(
        "store_memory",
        "importance 1e300",
        with(&sm, "importance", json!(1e300)),
        "importance",
        INVALID,
    );
    add(
        "store_memory",
        "importance as text",
        with(&sm, "importance", json!("high")),
        "importance",
        INVALID,
    );
    add(
        "store_memory",
        "importance as text NaN",
        with(&sm, "importance", json!("NaN")),
        "importance",
        INVALID,
    );
    add(
        "store_memory",
        "65 tags",
        with(&sm, "tags", json!((0..65).map(|i| format!("t{i}")).collect::<Vec<_>>())),
        "tags",
        INVALID,
    );
    add("store_memory", "tag of 129 bytes", with(&sm, "tags", json!([s(129)])), "tags", INVALID);
    add("store_memory", "empty tag", with(&sm, "tags", json!(["ok", ""])), "tags", INVALID);
    add("store_memory", "tags as an object", with(&sm, "tags", json!({ "a": 1 })), "tags", INVALID);
    add("store_memory", "tags as a string", with(&sm, "tags", json!("a,b")), "tags", INVALID);
    add(
        "store_memory",
        "agent_id of 257 bytes",
        with(&sm, "agent_id", json!(s(257))),
        "agent_id",
        INVALID,
    );
    add("store_memory", "empty agent_id", with(&sm, "agent_id", json!("")), "agent_id", INVALID);
    add(
        "store_memory",
        "metadata nested 200 levels",
        with(&sm, "metadata", nested(200)),
        "metadata",
        INVALID,
    );
    add(
        "store_memory",
        "metadata of 70 KiB",
        with(&sm, "metadata", json!({ "blob": s(70_000) })),
        "metadata",
        INVALID,
    );
    add(
        "store_memory",
        "metadata as an array",
        with(&sm, "metadata", json!([1, 2])),
        "metadata",
        INVALID,
    );
    add("store_memory", "ttl 0", with(&sm, "ttl", json!(0)), "ttl", INVALID);
    add("store_memory", "ttl -5", with(&sm, "ttl", json!(-5)), "ttl", INVALID);
    add(
        "store_memory",
        "ttl 200 years",
        with(&sm, "ttl", json!(200u64 * 365 * 86_400)),
        "ttl",
        INVALID,
    );
    add(
        "store_memory",
        "65 entities",
        with(&sm, "entities", json!((0..65).map(|i| format!("e{i}")).collect::<Vec<_>>())),
        "entities",
        INVALID,
    );
    add("store_memory", "unknown field", with(&sm, "priority", json!(1)), "priority", INVALID);
    let sv = json!({ "namespace": VEC_NS, "content": "v" });
    add(
        "store_memory",
        "10,000-dim vector",
        with(&sv, "embedding", json!(vec![0.5f32; 10_000])),
        "embedding",
        INVALID,
    );
    add("store_memory", "empty vector", with(&sv, "embedding", json!([])), "embedding", INVALID);
    add(
        "store_memory",
        "zero vector",
        with(&sv, "embedding", json!(vec![0.0f32; 8])),
        "embedding",
        INVALID,
    );
    add(
        "store_memory",
        "element beyond f32 (1e39)",
        with(&sv, "embedding", json!([1e39, 1, 1, 1, 1, 1, 1, 1])),
        "embedding",
        INVALID,
    );
    add(
        "store_memory",
        "element as text",
        with(&sv, "embedding", json!(["1", 1, 1, 1, 1, 1, 1, 1])),
        "embedding",
        INVALID,
    );
    add(
        "store_memory",
        "element null",
        with(&sv, "embedding", json!([null, 1, 1, 1, 1, 1, 1, 1])),
        "embedding",
        INVALID,
    );
    add(
        "store_memory",
        "wrong dimension",
        with(&sv, "embedding", json!([1.0, 2.0, 3.0])),
        "embedding",
        INVALID,
    );
    add("store_memory", "text into a vector namespace", sv.clone(), "embedding", INVALID);
    let item = json!({ "content": "batch item" });
    let batch = |n: usize| Value::Array(vec![item.clone(); n]);
    add(
        "store_memories",
        "empty batch",
        json!({ "namespace": TEXT_NS, "memories": [] }),
        "memories",
        INVALID,
    );
    add(
        "store_memories",
        "1001 items",
        json!({ "namespace": TEXT_NS, "memories": batch(1001) }),
        "memories",
        TOO_LARGE,
    );
    let mut bad_middle = batch(1000);
    bad_middle[500] = json!({ "content": "" });
    add(
        "store_memories",
        "bad item 500 of 1000",
        json!({ "namespace": TEXT_NS, "memories": bad_middle }),
        "memories[500]",
        INVALID,
    );
    let mut bad_last = batch(20);
    bad_last[19] = json!({ "content": "x", "importance": 7 });
    add(
        "store_memories",
        "bad importance in the last item",
        json!({ "namespace": TEXT_NS, "memories": bad_last }),
        "memories[19]",
        INVALID,
    );
    let mut mixed = vec![json!({ "content": "a", "embedding": vec![1.0f32; 8] }); 3];
    mixed.push(json!({ "content": "b" }));
    add(
        "store_memories",
        "some items with vectors, some without",
        json!({ "namespace": VEC_NS, "memories": mixed }),
        "memories",
        INVALID,
    );
    add(
        "store_memories",
        "item in another namespace",
        json!({ "namespace": TEXT_NS, "memories": [{ "content": "a", "namespace": VEC_NS }] }),
        "namespace",
        INVALID,
    );
    add(
        "store_memories",
        "missing namespace",
        json!({ "memories": batch(2) }),
        "namespace",
        INVALID,
    );
    add(
        "store_memories",
        "memories as a string",
        json!({ "namespace": TEXT_NS, "memories": "many" }),
        "memories",
        INVALID,
    );
    add(
        "store_memories",
        "unknown field in an item",
        json!({ "namespace": TEXT_NS, "memories": [{ "content": "a", "colour": "red" }] }),
        "colour",
        INVALID,
    );
    let rc = json!({ "namespace": TEXT_NS, "query": "roadmap" });
    add("recall", "top_k 0", with(&rc, "top_k", json!(0)), "top_k", INVALID);
    add("recall", "top_k 1001", with(&rc, "top_k", json!(1001)), "top_k", INVALID);
    add("recall", "top_k -1", with(&rc, "top_k", json!(-1)), "top_k", INVALID);
    add("recall", "top_k as text", with(&rc, "top_k", json!("ten")), "top_k", INVALID);
    add("recall", "top_k 2^64", with(&rc, "top_k", json!(1.8e19)), "top_k", INVALID);
    add("recall", "empty query", with(&rc, "query", json!("")), "query", INVALID);
    add("recall", "query of 65,537 bytes", with(&rc, "query", json!(s(65_537))), "query", INVALID);
    add("recall", "neither query nor vector", without(&rc, "query"), "query", INVALID);
    add(
        "recall",
        "both query and vector",
        with(&rc, "vector", json!(vec![1.0f32; 8])),
        "vector",
        INVALID,
    );
    add(
        "recall",
        "min_importance 1.5",
        with(&rc, "min_importance", json!(1.5)),
        "min_importance",
        INVALID,
    );
    add(
        "recall",
        "min_importance as text",
        with(&rc, "min_importance", json!("low")),
        "min_importance",
        INVALID,
    );
    add(
        "recall",
        "65 tags",
        with(&rc, "tags", json!((0..65).map(|i| format!("t{i}")).collect::<Vec<_>>())),
        "tags",
        INVALID,
    );
    add("recall", "expand 6", with(&rc, "expand", json!(6)), "expand", INVALID);
    add("recall", "since not a date", with(&rc, "since", json!("yesterday")), "since", INVALID);
    add("recall", "unknown field", with(&rc, "rerank", json!(true)), "rerank", INVALID);
    add(
        "recall",
        "agent_id of 257 bytes as the namespace",
        json!({ "agent_id": s(257), "query": "x" }),
        "namespace",
        &[ErrorCode::InvalidArgument, ErrorCode::NotFound],
    );
    let rv = json!({ "namespace": VEC_NS });
    add(
        "recall",
        "10,000-dim vector",
        with(&rv, "vector", json!(vec![0.5f32; 10_000])),
        "vector",
        INVALID,
    );
    add("recall", "zero vector", with(&rv, "vector", json!(vec![0.0f32; 8])), "vector", INVALID);
    add(
        "recall",
        "vector element 1e39",
        with(&rv, "vector", json!([1e39, 1, 1, 1, 1, 1, 1, 1])),
        "vector",
        INVALID,
    );
    add("recall", "wrong dimension", with(&rv, "vector", json!([1.0, 2.0])), "vector", INVALID);
    add(
        "recall",
        "text query in a vector namespace",
        with(&rv, "query", json!("hello")),
        "query",
        INVALID,
    );
    add("get_memory", "missing id", json!({ "namespace": TEXT_NS }), "id", INVALID);
    add(
        "get_memory",
        "id not a UUID",
        json!({ "namespace": TEXT_NS, "id": "../../etc/passwd" }),
        "memory",
        INVALID_OR_UNKNOWN,
    );
    add("get_memory", "no namespace for root", json!({ "id": fx.memory_id }), "namespace", INVALID);
    add("get_memories", "missing ids", json!({ "namespace": TEXT_NS }), "ids", INVALID);
    add(
        "get_memories",
        "ids not a list",
        json!({ "namespace": TEXT_NS, "ids": "a" }),
        "ids",
        INVALID,
    );
    add(
        "get_memories",
        "an id as a number",
        json!({ "namespace": TEXT_NS, "ids": ["a", 7] }),
        "ids",
        INVALID,
    );
    add(
        "update_memory",
        "missing id",
        json!({ "namespace": TEXT_NS, "importance": 0.5 }),
        "id",
        INVALID,
    );
    add(
        "update_memory",
        "importance above 1",
        json!({ "namespace": TEXT_NS, "id": fx.memory_id, "importance": 3.0 }),
        "importance",
        INVALID,
    );
    add(
        "update_memory",
        "tags not a list",
        json!({ "namespace": TEXT_NS, "id": fx.memory_id, "tags": "x" }),
        "tags",
        INVALID,
    );
    add(
        "list_memories",
        "unknown filter operator",
        json!({ "namespace": TEXT_NS, "filter": {"metadata.tier": {"$near": 1}} }),
        "filter.metadata.tier.$near",
        INVALID,
    );
    add("list_memories", "limit 0", json!({ "namespace": TEXT_NS, "limit": 0 }), "limit", INVALID);
    add(
        "list_memories",
        "tampered cursor",
        json!({ "namespace": TEXT_NS, "cursor": "00".repeat(51) }),
        "cursor",
        INVALID,
    );
    add(
        "list_memories",
        "unknown order",
        json!({ "namespace": TEXT_NS, "order_by": "colour" }),
        "order_by",
        INVALID,
    );
    add(
        "count_memories",
        "filter not an object",
        json!({ "namespace": TEXT_NS, "filter": [1] }),
        "filter",
        INVALID,
    );
    add(
        "count_memories",
        "unknown field",
        json!({ "namespace": TEXT_NS, "filter": {"colour": "red"} }),
        "filter.colour",
        INVALID,
    );
    add(
        "recall",
        "range on tags",
        json!({ "namespace": TEXT_NS, "query": "x", "filter": {"tags": {"$gt": "a"}} }),
        "filter.tags.$gt",
        INVALID,
    );
    add(
        "batch_forget",
        "$in not a list",
        json!({ "namespace": TEXT_NS, "filter": {"agent_id": {"$in": "a"}} }),
        "filter.agent_id.$in",
        INVALID,
    );
    add(
        "start_session",
        "id of 300 characters",
        json!({ "namespace": TEXT_NS, "id": s(300) }),
        "id",
        INVALID,
    );
    add("end_session", "missing id", json!({ "namespace": TEXT_NS }), "id", INVALID);
    add("get_session", "missing id", json!({ "namespace": TEXT_NS }), "id", INVALID);
    add(
        "list_sessions",
        "limit not a number",
        json!({ "namespace": TEXT_NS, "limit": "ten" }),
        "limit",
        INVALID,
    );
    add("session_memories", "missing id", json!({ "namespace": TEXT_NS }), "id", INVALID);
    add(
        "export_namespace",
        "tampered cursor",
        json!({ "namespace": TEXT_NS, "cursor": "00".repeat(51) }),
        "cursor",
        INVALID,
    );
    add(
        "import_namespace",
        "lines not a list",
        json!({ "namespace": TEXT_NS, "lines": "x" }),
        "lines",
        INVALID,
    );
    add("delete_memory", "missing id", json!({ "namespace": TEXT_NS }), "id", INVALID);
    add(
        "delete_memory",
        "id as a number",
        json!({ "namespace": TEXT_NS, "id": 42 }),
        "id",
        INVALID,
    );
    add(
        "delete_memory",
        "no namespace for root",
        json!({ "id": fx.memory_id }),
        "namespace",
        INVALID,
    );
    let bf = json!({ "namespace": TEXT_NS });
    add("batch_forget", "no filter", bf.clone(), "filter", INVALID);
    add("batch_forget", "empty tags", with(&bf, "tags", json!([])), "tags", INVALID);
    add(
        "batch_forget",
        "65 tags",
        with(&bf, "tags", json!((0..65).map(|i| format!("t{i}")).collect::<Vec<_>>())),
        "tags",
        INVALID,
    );
    add(
        "batch_forget",
        "below_importance 2",
        with(&bf, "below_importance", json!(2)),
        "below_importance",
        INVALID,
    );
    add("batch_forget", "ids as a string", with(&bf, "ids", json!(fx.memory_id)), "ids", INVALID);
    add(
        "batch_forget",
        "before not a date",
        with(&bf, "before", json!("last week")),
        "before",
        INVALID,
    );
    add("batch_forget", "unknown field", with(&bf, "all", json!(true)), "all", INVALID);

    // Graph.
    let ae = json!({ "namespace": TEXT_NS, "name": "Bob" });
    add("add_entity", "empty name", with(&ae, "name", json!("")), "name", INVALID);
    add("add_entity", "name of 257 bytes", with(&ae, "name", json!(s(257))), "name", INVALID);
    add("add_entity", "name with a NUL", with(&ae, "name", json!("B\u{0}b")), "name", INVALID);
    add("add_entity", "type with a space", with(&ae, "type", json!("bad type")), "type", INVALID);
    add("add_entity", "type of 65 chars", with(&ae, "type", json!(s(65))), "type", INVALID);
    add(
        "add_entity",
        "properties of 70 KiB",
        with(&ae, "properties", json!({ "blob": s(70_000) })),
        "properties",
        INVALID,
    );
    add(
        "add_entity",
        "properties nested 200 levels",
        with(&ae, "properties", nested(200)),
        "properties",
        INVALID,
    );
    add(
        "add_entity",
        "properties as an array",
        with(&ae, "properties", json!([1])),
        "properties",
        INVALID,
    );
    add("add_entity", "missing namespace", without(&ae, "namespace"), "namespace", INVALID);
    let ar = json!({ "namespace": TEXT_NS, "source": "Alice", "target": "Bob", "type": "knows" });
    add("add_relation", "empty source", with(&ar, "source", json!("")), "source", INVALID);
    add(
        "add_relation",
        "target of 257 bytes",
        with(&ar, "target", json!(s(257))),
        "target",
        INVALID,
    );
    add("add_relation", "missing type", without(&ar, "type"), "type", INVALID);
    add("add_relation", "type with a slash", with(&ar, "type", json!("a/b")), "type", INVALID);
    add("add_relation", "negative weight", with(&ar, "weight", json!(-1.0)), "weight", INVALID);
    add("add_relation", "weight as text", with(&ar, "weight", json!("heavy")), "weight", INVALID);
    add(
        "add_relation",
        "properties nested 200 levels",
        with(&ar, "properties", nested(200)),
        "properties",
        INVALID,
    );
    add(
        "get_entity",
        "empty entity",
        json!({ "namespace": TEXT_NS, "entity": "" }),
        "entity",
        INVALID_OR_UNKNOWN,
    );
    add("get_entity", "missing entity", json!({ "namespace": TEXT_NS }), "entity", INVALID);
    let nb = json!({ "namespace": TEXT_NS, "entity": "Alice" });
    add("neighbors", "depth 0", with(&nb, "depth", json!(0)), "depth", INVALID);
    add("neighbors", "depth 6", with(&nb, "depth", json!(6)), "depth", INVALID);
    add("neighbors", "depth -1", with(&nb, "depth", json!(-1)), "depth", INVALID);
    add("neighbors", "depth as text", with(&nb, "depth", json!("deep")), "depth", INVALID);
    add("neighbors", "missing entity", without(&nb, "entity"), "entity", INVALID);
    add("subgraph", "depth 6", with(&nb, "depth", json!(6)), "depth", INVALID);
    add("subgraph", "depth 2^32", with(&nb, "depth", json!(1u64 << 32)), "depth", INVALID);
    add(
        "shortest_path",
        "empty from",
        json!({ "namespace": TEXT_NS, "from": "", "to": "Acme" }),
        "entity",
        INVALID_OR_UNKNOWN,
    );
    add(
        "shortest_path",
        "missing to",
        json!({ "namespace": TEXT_NS, "from": "Alice" }),
        "to",
        INVALID,
    );
    add(
        "delete_entity",
        "empty entity",
        json!({ "namespace": TEXT_NS, "entity": "" }),
        "entity",
        INVALID_OR_UNKNOWN,
    );
    add("delete_relation", "missing id", json!({ "namespace": TEXT_NS }), "id", INVALID);
    add(
        "delete_relation",
        "id not a UUID",
        json!({ "namespace": TEXT_NS, "id": "rel-1" }),
        "relation",
        INVALID_OR_UNKNOWN,
    );
    add(
        "delete_relation",
        "unknown field",
        json!({ "namespace": TEXT_NS, "id": fx.relation_id, "cascade": true }),
        "cascade",
        INVALID,
    );
    add("whoami", "unknown field", json!({ "verbose": true }), "verbose", INVALID);
    let tid = fx.tenant_id.as_str();
    add("list_audit", "missing tenant_id", json!({}), "tenant_id", INVALID);
    add("list_audit", "limit 0", json!({ "tenant_id": tid, "limit": 0 }), "limit", INVALID);
    add("list_audit", "limit 1001", json!({ "tenant_id": tid, "limit": 1001 }), "limit", INVALID);
    add(
        "list_audit",
        "cursor not a number",
        json!({ "tenant_id": tid, "cursor": "x" }),
        "cursor",
        INVALID,
    );
    add(
        "list_audit",
        "since not a time",
        json!({ "tenant_id": tid, "since": "monday" }),
        "since",
        INVALID,
    );
    add(
        "list_audit",
        "since after until",
        json!({ "tenant_id": tid, "since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z" }),
        "since",
        INVALID,
    );
    add(
        "list_audit",
        "unknown field",
        json!({ "tenant_id": tid, "order": "desc" }),
        "order",
        INVALID,
    );
    add("verify_audit", "missing tenant_id", json!({}), "tenant_id", INVALID);
    add(
        "verify_audit",
        "unknown tenant",
        json!({ "tenant_id": "no-such-tenant" }),
        "tenant",
        INVALID_OR_UNKNOWN,
    );
    add("verify_audit", "unknown field", json!({ "tenant_id": tid, "from": 1 }), "from", INVALID);
    out
}
