//! Every bad input of the catalogue, through the core operation table (`Handle::call`), and
//! the non-finite numbers only the typed Rust API can carry: each is refused with a 4xx code
//! naming the field, never `internal`, and nothing is written.

use memsilo::{
    AddRelation, CreateTenant, DecayPolicy, Engine, Error, ErrorCode, Forget, Handle,
    NamespaceOptions, Options, QuotasPatch, Recall, StoreMemory,
};
use memsilo_reliability::snapshot;

use crate::catalogue::{cases, fixture, TEXT_NS, VEC_NS};

fn open(dir: &std::path::Path) -> Engine {
    Engine::open(dir, Options { background: false, ..Options::default() }).unwrap()
}

/// Whether a refusal names `field` (in its field, or in its message).
pub fn names_field(e: &Error, field: &str) -> bool {
    match e {
        Error::InvalidArgument { field: f, .. } | Error::PayloadTooLarge { field: f, .. }
            if f.contains(field) =>
        {
            true
        }
        _ => message_names(&e.to_string(), field),
    }
}

/// Whether a message names `what`, in any case: "Memory not found: x" names "memory".
pub fn message_names(message: &str, what: &str) -> bool {
    message.to_lowercase().contains(&what.to_lowercase())
}

/// Checks one refusal; returns a description of what is wrong, if anything.
fn judge(
    what: &str,
    result: memsilo::Result<impl std::fmt::Debug>,
    field: &str,
    codes: &[ErrorCode],
) -> Option<String> {
    match result {
        Ok(v) => Some(format!("{what}: accepted ({v:?})").chars().take(300).collect()),
        Err(e) if e.code() == ErrorCode::Internal => Some(format!("{what}: internal error: {e}")),
        Err(e) if !codes.contains(&e.code()) => {
            Some(format!("{what}: code {} ({e}), wanted one of {codes:?}", e.code()))
        }
        Err(e) if !names_field(&e, field) => {
            Some(format!("{what}: refusal does not name {field:?}: {e:?}"))
        }
        Err(_) => None,
    }
}

#[test]
fn every_bad_input_of_the_catalogue_is_refused_naming_the_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let root = engine.root();
    let fx = fixture(&root);
    let cases = cases(&fx);
    let mut failures = Vec::new();
    let mut ops = std::collections::BTreeSet::new();
    for case in &cases {
        ops.insert(case.op);
        let before = snapshot(&root).unwrap();
        let what = format!("{} / {}", case.op, case.what);
        if let Some(f) = judge(&what, root.call(case.op, case.args.clone()), case.field, case.codes)
        {
            failures.push(f);
        }
        let after = snapshot(&root).unwrap();
        if before != after {
            failures.push(format!("{what}: the store changed"));
        }
    }
    let table: std::collections::BTreeSet<&str> =
        memsilo::api::Request::OPERATIONS.iter().copied().collect();
    let untested: Vec<_> = table.difference(&ops).collect();
    eprintln!(
        "bad inputs tried through Handle::call: {} over {} operations",
        cases.len(),
        ops.intersection(&table).count()
    );
    assert!(untested.is_empty(), "operations without a bad-input case: {untested:?}");
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs mishandled:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The values JSON cannot carry (NaN, infinities) reach core through the typed Rust API.
#[test]
fn non_finite_numbers_from_the_rust_api_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let root = engine.root();
    let fx = fixture(&root);
    let mut failures = Vec::new();
    let mut tried = 0;
    let mut check = |what: &str, root: &Handle, result: memsilo::Result<String>, field: &str| {
        tried += 1;
        if let Some(f) = judge(what, result, field, crate::catalogue::INVALID) {
            failures.push(f);
        }
        let _ = root;
    };
    let before = snapshot(&root).unwrap();
    let vec_mem = |v: Vec<f32>| StoreMemory {
        namespace: Some(VEC_NS.into()),
        embedding: Some(v),
        ..StoreMemory::text("nan")
    };
    for (name, bad) in [("NaN", f32::NAN), ("+inf", f32::INFINITY), ("-inf", f32::NEG_INFINITY)] {
        let mut v = vec![1.0f32; 8];
        v[3] = bad;
        check(
            &format!("store_memory embedding with {name}"),
            &root,
            root.store_memory(vec_mem(v.clone())).map(|m| m.id),
            "embedding",
        );
        let mut batch: Vec<StoreMemory> = (0..10).map(|_| vec_mem(vec![1.0; 8])).collect();
        batch[7].embedding = Some(v.clone());
        check(
            &format!("store_memories item 7 with {name}"),
            &root,
            root.store_memories(VEC_NS, batch).map(|ids| ids.join(",")),
            "memories[7]",
        );
        check(
            &format!("recall vector with {name}"),
            &root,
            root.recall(Recall::vector(v).namespace(VEC_NS)).map(|h| format!("{h:?}")),
            "vector",
        );
        let bad64 = f64::from(bad);
        let text = StoreMemory {
            namespace: Some(TEXT_NS.into()),
            importance: Some(bad64),
            ..StoreMemory::text("x")
        };
        check(
            &format!("store_memory importance {name}"),
            &root,
            root.store_memory(text).map(|m| m.id),
            "importance",
        );
        let recall =
            Recall { min_importance: Some(bad64), ..Recall::text("roadmap").namespace(TEXT_NS) };
        check(
            &format!("recall min_importance {name}"),
            &root,
            root.recall(recall).map(|h| format!("{h:?}")),
            "min_importance",
        );
        let forget = Forget {
            namespace: Some(TEXT_NS.into()),
            below_importance: Some(bad64),
            ..Forget::default()
        };
        check(
            &format!("batch_forget below_importance {name}"),
            &root,
            root.batch_forget(forget).map(|f| f.forgotten.to_string()),
            "below_importance",
        );
        let rel = AddRelation {
            namespace: TEXT_NS.into(),
            source: "Alice".into(),
            target: "Bob".into(),
            relation_type: "knows".into(),
            weight: Some(bad64),
            properties: None,
        };
        check(
            &format!("add_relation weight {name}"),
            &root,
            root.add_relation(rel).map(|r| r.id),
            "weight",
        );
        let policy = DecayPolicy { decay_rate: bad64, ..DecayPolicy::default() };
        check(
            &format!("set_memory_policy decay_rate {name}"),
            &root,
            root.set_memory_policy(TEXT_NS, policy).map(|p| format!("{p:?}")),
            "decay_rate",
        );
        let policy = DecayPolicy { min_importance: bad64, ..DecayPolicy::default() };
        let opts = NamespaceOptions { policy: Some(policy), ..NamespaceOptions::default() };
        check(
            &format!("create_namespace min_importance {name}"),
            &root,
            root.create_namespace("nan-ns", opts).map(|n| n.name),
            "min_importance",
        );
        let quotas = QuotasPatch { compute_quota_cores: Some(bad64), ..QuotasPatch::default() };
        let tenant = CreateTenant {
            name: "nan_tenant".into(),
            quotas: Some(quotas),
            ..CreateTenant::default()
        };
        check(
            &format!("create_tenant compute_quota_cores {name}"),
            &root,
            root.create_tenant(tenant).map(|t| t.tenant.id),
            "compute_quota_cores",
        );
    }
    let after = snapshot(&root).unwrap();
    let _ = fx;
    eprintln!("non-finite inputs tried through the Rust API: {tried}");
    assert_eq!(before, after, "a refused non-finite input changed the store");
    assert!(
        failures.is_empty(),
        "{} of {tried} non-finite inputs mishandled:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// JSON nested deeper than a reader accepts must be refused when written: a stored record
/// that cannot be read back would break every later read of its namespace.
#[test]
fn deeply_nested_json_is_refused_or_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let root = engine.root();
    let _fx = fixture(&root);
    let mut failures = Vec::new();
    for depth in [100, 126, 127, 128, 200] {
        let meta = crate::catalogue::nested(depth);
        let stored = root.call("store_memory", serde_json::json!({ "namespace": TEXT_NS, "content": format!("deep {depth}"), "metadata": meta }));
        match stored {
            Err(e) if e.code() == ErrorCode::InvalidArgument && names_field(&e, "metadata") => {}
            Err(e) => failures.push(format!("metadata depth {depth}: refused badly: {e}")),
            Ok(r) => {
                let id = r.value["id"].as_str().unwrap().to_owned();
                if let Err(e) =
                    root.call("get_memory", serde_json::json!({ "namespace": TEXT_NS, "id": id }))
                {
                    failures.push(format!(
                        "metadata depth {depth}: stored, then get_memory fails: {e}"
                    ));
                }
                if let Err(e) = root
                    .call("recall", serde_json::json!({ "namespace": TEXT_NS, "query": "deep" }))
                {
                    failures.push(format!(
                        "metadata depth {depth}: stored, then recall of the namespace fails: {e}"
                    ));
                }
            }
        }
        let props = crate::catalogue::nested(depth);
        let added = root.call("add_entity", serde_json::json!({ "namespace": TEXT_NS, "name": format!("Deep{depth}"), "properties": props }));
        match added {
            Err(e) if e.code() == ErrorCode::InvalidArgument && names_field(&e, "properties") => {}
            Err(e) => failures.push(format!("properties depth {depth}: refused badly: {e}")),
            Ok(_) => {
                if let Err(e) = root.call(
                    "get_entity",
                    serde_json::json!({ "namespace": TEXT_NS, "entity": format!("Deep{depth}") }),
                ) {
                    failures.push(format!(
                        "properties depth {depth}: stored, then get_entity fails: {e}"
                    ));
                }
                if let Err(e) = root.call(
                    "neighbors",
                    serde_json::json!({ "namespace": TEXT_NS, "entity": "Alice" }),
                ) {
                    failures.push(format!(
                        "properties depth {depth}: stored, then neighbors fails: {e}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Known gap, kept visible: serde decodes a struct from a JSON array, so a nested object
/// argument given as an array (`"policy": [0.1]`) is accepted positionally. Top-level
/// arguments are checked to be an object; nested ones are not yet.
#[test]
#[ignore = "known core gap: nested struct arguments accept JSON arrays (reported)"]
fn a_nested_object_argument_given_as_an_array_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let root = engine.root();
    let _fx = fixture(&root);
    let r = root
        .call("set_memory_policy", serde_json::json!({ "namespace": TEXT_NS, "policy": [0.1] }));
    assert_eq!(r.map(|r| r.value).map_err(|e| e.code()), Err(ErrorCode::InvalidArgument));
}
