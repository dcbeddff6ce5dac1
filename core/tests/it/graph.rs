//! The knowledge graph: upserts, traversals on hand-built graphs, validation, isolation,
//! authorization, quota accounting, erasure with the namespace, and recall expansion.

use std::collections::BTreeSet;

use memsilo::{
    Access, AddEntity, AddRelation, CreateKey, CreateTenant, Engine, ErrorCode, GraphView, Handle,
    NamespaceOptions, Neighbors, Options, QuotasPatch, Recall, StoreMemory,
};
use serde_json::{json, Map, Value};

fn open() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    (dir, engine)
}

fn props(v: Value) -> Option<Map<String, Value>> {
    if let Value::Object(m) = v {
        Some(m)
    } else {
        None
    }
}

fn entity(ns: &str, name: &str, ty: Option<&str>) -> AddEntity {
    AddEntity {
        namespace: ns.into(),
        name: name.into(),
        entity_type: ty.map(Into::into),
        properties: None,
    }
}

fn rel(ns: &str, source: &str, target: &str, ty: &str, weight: Option<f64>) -> AddRelation {
    AddRelation {
        namespace: ns.into(),
        source: source.into(),
        target: target.into(),
        relation_type: ty.into(),
        weight,
        properties: None,
    }
}

fn around(ns: &str, entity: &str, depth: u32, ty: Option<&str>) -> Neighbors {
    Neighbors {
        namespace: ns.into(),
        entity: entity.into(),
        depth: Some(depth),
        relation_type: ty.map(Into::into),
    }
}

fn names(v: &GraphView) -> BTreeSet<String> {
    v.entities.iter().map(|e| e.name.clone()).collect()
}

fn relation_types(v: &GraphView) -> Vec<String> {
    let mut t: Vec<String> = v.relations.iter().map(|r| r.relation_type.clone()).collect();
    t.sort();
    t
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn graph_counts(h: &Handle, ns: &str) -> (u64, u64) {
    let (entities, relations, _) = counts(h, ns);
    (entities, relations)
}

/// Entities, relations and bytes charged, as the namespace reports them.
fn counts(h: &Handle, ns: &str) -> (u64, u64, u64) {
    let n = h.get_namespace(ns).unwrap();
    (n.entity_count, n.relation_count, n.storage_bytes)
}

/// A ─knows→ B ─knows→ C ─knows→ A (cycle), C ─owns→ D ─owns→ E, B ─self→ B (loop),
/// A ═likes═ B twice (parallel), and X ─knows→ Y apart from the rest.
fn sample(h: &Handle, ns: &str) {
    h.create_namespace(ns, NamespaceOptions::default()).unwrap();
    let edges = [
        ("A", "B", "knows"),
        ("B", "C", "knows"),
        ("C", "A", "knows"),
        ("C", "D", "owns"),
        ("D", "E", "owns"),
        ("B", "B", "self"),
        ("A", "B", "likes"),
        ("A", "B", "likes"),
        ("X", "Y", "knows"),
    ];
    for (s, t, ty) in edges {
        h.add_relation(rel(ns, s, t, ty, None)).unwrap();
    }
}

#[test]
fn entities_upsert_by_name_and_type_merging_properties() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("g", NamespaceOptions::default()).unwrap();
    let first = root
        .add_entity(AddEntity {
            properties: props(json!({"city": "Paris", "age": 30})),
            ..entity("g", "Alice", Some("person"))
        })
        .unwrap();
    assert_eq!(first.entity_type, "person");
    let again = root
        .add_entity(AddEntity {
            properties: props(json!({"age": 31, "role": "cto"})),
            ..entity("g", "Alice", Some("person"))
        })
        .unwrap();
    assert_eq!(again.id, first.id, "same name and type is the same entity");
    assert_eq!(
        Value::Object(again.properties.clone()),
        json!({"city": "Paris", "age": 31, "role": "cto"})
    );
    assert!(again.updated_at >= first.updated_at);
    // Same name, another type: a second entity; default type is "entity".
    let org = root.add_entity(entity("g", "Alice", Some("org"))).unwrap();
    assert_ne!(org.id, first.id);
    assert_eq!(root.add_entity(entity("g", "Bob", None)).unwrap().entity_type, "entity");
    assert_eq!(counts(&root, "g").0, 3);

    // get_entity: by id, by name+type; a name with two types needs the type or the id.
    assert_eq!(root.get_entity("g", &first.id, None).unwrap(), again);
    assert_eq!(root.get_entity("g", "Alice", Some("org")).unwrap().id, org.id);
    let err = root.get_entity("g", "Alice", None).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(err.to_string().starts_with("entity:"), "{err}");
    assert_eq!(root.get_entity("g", "Bob", None).unwrap().name, "Bob");
    assert_eq!(root.get_entity("g", "Carol", None).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(
        root.get_entity("g", "Alice", Some("place")).unwrap_err().code(),
        ErrorCode::NotFound
    );
}

#[test]
fn relations_resolve_names_ids_and_create_missing_entities() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("g", NamespaceOptions::default()).unwrap();
    let acme = root.add_entity(entity("g", "Acme", Some("org"))).unwrap();
    let r = root
        .add_relation(AddRelation {
            properties: props(json!({"since": 2020})),
            ..rel("g", "Alice", &acme.id, "works_at", Some(2.5))
        })
        .unwrap();
    assert_eq!(
        (r.source_name.as_str(), r.target.as_str(), r.weight),
        ("Alice", acme.id.as_str(), 2.5)
    );
    let alice = root.get_entity("g", "Alice", None).unwrap();
    assert_eq!((alice.entity_type.as_str(), alice.id.as_str()), ("entity", r.source.as_str()));
    // Weight defaults to 1; the same pair twice is two relations.
    let r2 = root.add_relation(rel("g", "Alice", "Acme", "works_at", None)).unwrap();
    assert!((r2.weight - 1.0).abs() < 1e-12, "{}", r2.weight);
    assert_ne!(r2.id, r.id);
    assert_eq!(graph_counts(&root, "g"), (2, 2));

    // Ambiguous name → invalid_argument naming the field; nothing is written.
    root.add_entity(entity("g", "Acme", Some("place"))).unwrap();
    let err = root.add_relation(rel("g", "Alice", "Acme", "visits", None)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(err.to_string().starts_with("target:"), "{err}");
    // An id that matches nothing is not_found, not a new entity named like a UUID.
    let ghost = "01890a5d-ac96-774b-bcce-b302099a8057";
    assert_eq!(
        root.add_relation(rel("g", ghost, "Alice", "x", None)).unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(graph_counts(&root, "g"), (3, 2));
}

#[test]
fn validation_errors_name_the_field_and_write_nothing() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("g", NamespaceOptions::default()).unwrap();
    let field_of = |e: memsilo::Error| {
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
        e.to_string().split(':').next().unwrap().to_owned()
    };
    let big = props(json!({"blob": "x".repeat(70_000)}));
    assert_eq!(field_of(root.add_entity(entity("g", "", None)).unwrap_err()), "name");
    assert_eq!(field_of(root.add_entity(entity("g", &"n".repeat(257), None)).unwrap_err()), "name");
    assert_eq!(field_of(root.add_entity(entity("g", "ok", Some("bad type"))).unwrap_err()), "type");
    assert_eq!(
        field_of(root.add_entity(entity("g", "ok", Some("t".repeat(65).as_str()))).unwrap_err()),
        "type"
    );
    assert_eq!(
        field_of(
            root.add_entity(AddEntity { properties: big.clone(), ..entity("g", "ok", None) })
                .unwrap_err()
        ),
        "properties"
    );
    assert_eq!(field_of(root.add_relation(rel("g", "a", "b", "", None)).unwrap_err()), "type");
    assert_eq!(field_of(root.add_relation(rel("g", "", "b", "t", None)).unwrap_err()), "source");
    assert_eq!(
        field_of(root.add_relation(rel("g", "a", &"b".repeat(300), "t", None)).unwrap_err()),
        "target"
    );
    assert_eq!(
        field_of(root.add_relation(rel("g", "a", "b", "t", Some(-1.0))).unwrap_err()),
        "weight"
    );
    assert_eq!(
        field_of(root.add_relation(rel("g", "a", "b", "t", Some(f64::NAN))).unwrap_err()),
        "weight"
    );
    assert_eq!(
        field_of(
            root.add_relation(AddRelation { properties: big, ..rel("g", "a", "b", "t", None) })
                .unwrap_err()
        ),
        "properties"
    );
    root.add_entity(entity("g", "a", None)).unwrap();
    assert_eq!(field_of(root.neighbors(around("g", "a", 0, None)).unwrap_err()), "depth");
    assert_eq!(field_of(root.neighbors(around("g", "a", 6, None)).unwrap_err()), "depth");
    assert_eq!(
        field_of(root.neighbors(around("g", "a", 1, Some("no spaces"))).unwrap_err()),
        "type"
    );
    // Batches name the item; a bad item anywhere writes none of them.
    let err = root
        .add_entities("g", vec![entity("", "b", None), entity("", "c", Some("?"))])
        .unwrap_err();
    assert_eq!(field_of(err), "entities[1].type");
    // A failure found only inside the transaction (ambiguous name) also rolls back the batch.
    root.add_entity(entity("g", "dup", Some("t1"))).unwrap();
    root.add_entity(entity("g", "dup", Some("t2"))).unwrap();
    let before = counts(&root, "g");
    let err = root
        .add_relations(
            "g",
            vec![rel("", "fresh1", "fresh2", "r", None), rel("", "fresh1", "dup", "r", None)],
        )
        .unwrap_err();
    assert_eq!(field_of(err), "relations[1].target");
    assert_eq!(counts(&root, "g"), before);
    assert_eq!(root.get_entity("g", "fresh1", None).unwrap_err().code(), ErrorCode::NotFound);
    // Over the wire: the type field is spelled "type"; unknown fields are refused.
    let e =
        root.call("add_entity", json!({"namespace": "g", "name": "wire", "type": "w"})).unwrap();
    assert_eq!(e.value["type"], "w");
    assert_eq!(
        root.call("add_entity", json!({"namespace": "g", "name": "w", "colour": 1}))
            .unwrap_err()
            .code(),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn neighbors_walk_cycles_loops_and_parallel_edges_to_the_depth_asked() {
    let (_d, engine) = open();
    let root = engine.root();
    sample(&root, "g");
    let d1 = root.neighbors(around("g", "B", 1, None)).unwrap();
    assert_eq!(d1.entities[0].name, "B", "the start entity comes first");
    assert_eq!(names(&d1), set(&["A", "B", "C"]));
    // A→B knows, B→C knows, B self loop, the two parallel likes: each once.
    assert_eq!(relation_types(&d1), ["knows", "knows", "likes", "likes", "self"]);
    let ids: BTreeSet<&str> = d1.relations.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), d1.relations.len());

    assert_eq!(
        names(&root.neighbors(around("g", "B", 2, None)).unwrap()),
        set(&["A", "B", "C", "D"])
    );
    assert_eq!(
        names(&root.neighbors(around("g", "B", 3, None)).unwrap()),
        set(&["A", "B", "C", "D", "E"])
    );
    // Never crosses into the disconnected part, however deep.
    assert_eq!(
        names(&root.neighbors(around("g", "E", 5, None)).unwrap()),
        set(&["A", "B", "C", "D", "E"])
    );
    assert_eq!(names(&root.neighbors(around("g", "X", 5, None)).unwrap()), set(&["X", "Y"]));
    // Default depth is 1; reaching against the direction of relations works.
    let e = root
        .neighbors(Neighbors { namespace: "g".into(), entity: "E".into(), ..Default::default() })
        .unwrap();
    assert_eq!(names(&e), set(&["D", "E"]));
    // Type filter: only "owns" from C reaches D and E, not A or B.
    let owns = root.neighbors(around("g", "C", 5, Some("owns"))).unwrap();
    assert_eq!(names(&owns), set(&["C", "D", "E"]));
    assert!(owns.relations.iter().all(|r| r.relation_type == "owns"));
    assert_eq!(names(&root.neighbors(around("g", "C", 5, Some("unknown"))).unwrap()), set(&["C"]));
    // Entities are ordered by distance: from E at depth 2, E then D then C.
    let order: Vec<String> = root
        .neighbors(around("g", "E", 2, None))
        .unwrap()
        .entities
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(order, ["E", "D", "C"]);
    // Unknown start → not_found "entity".
    let err = root.neighbors(around("g", "nobody", 1, None)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert!(err.to_string().starts_with("Entity not found"), "{err}");
}

#[test]
fn subgraph_adds_relations_among_the_outermost_entities() {
    let (_d, engine) = open();
    let root = engine.root();
    sample(&root, "g");
    let n = root.neighbors(around("g", "A", 1, Some("knows"))).unwrap();
    // A's knows-neighbours are B and C; the B→C relation lies between two depth-1 entities.
    assert_eq!(names(&n), set(&["A", "B", "C"]));
    assert_eq!(n.relations.len(), 2, "neighbors reports only relations traversed from A");
    let s = root.subgraph(around("g", "A", 1, Some("knows"))).unwrap();
    assert_eq!(names(&s), set(&["A", "B", "C"]));
    assert_eq!(s.relations.len(), 3, "subgraph also has B→C");
    let all = root.subgraph(around("g", "A", 1, None)).unwrap();
    assert_eq!(relation_types(&all), ["knows", "knows", "knows", "likes", "likes", "self"]);
}

#[test]
fn shortest_path_picks_the_cheaper_route_in_either_direction() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("g", NamespaceOptions::default()).unwrap();
    // Two hops of weight 1 each versus three hops costing 0.9 in total; one leg points backwards.
    root.add_relation(rel("g", "S", "M", "road", Some(1.0))).unwrap();
    root.add_relation(rel("g", "M", "T", "road", Some(1.0))).unwrap();
    root.add_relation(rel("g", "S", "P", "road", Some(0.3))).unwrap();
    root.add_relation(rel("g", "Q", "P", "road", Some(0.3))).unwrap();
    root.add_relation(rel("g", "Q", "T", "road", Some(0.3))).unwrap();
    root.add_relation(rel("g", "S", "T", "toll", Some(5.0))).unwrap();
    let p = root.shortest_path("g", "S", "T").unwrap();
    let route: Vec<&str> = p.entities.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(route, ["S", "P", "Q", "T"]);
    assert_eq!(p.relations.len(), 3);
    assert!((p.total_weight - 0.9).abs() < 1e-9, "{}", p.total_weight);
    let back = root.shortest_path("g", "T", "S").unwrap();
    assert_eq!(
        back.entities.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["T", "Q", "P", "S"]
    );
    // Making the cheap route expensive flips the answer (the cache sees the change).
    let cheap = p.relations[1].id.clone();
    root.delete_relation("g", &cheap).unwrap();
    root.add_relation(rel("g", "Q", "P", "road", Some(9.0))).unwrap();
    assert_eq!(root.shortest_path("g", "S", "T").unwrap().entities.len(), 3);
    let same = root.shortest_path("g", "S", "S").unwrap();
    assert_eq!((same.entities.len(), same.relations.len(), same.total_weight), (1, 0, 0.0));
    root.add_entity(entity("g", "Island", None)).unwrap();
    let err = root.shortest_path("g", "S", "Island").unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    assert_eq!(root.shortest_path("g", "S", "Nowhere").unwrap_err().code(), ErrorCode::NotFound);
}

#[test]
fn deleting_entities_and_relations_updates_traversals_and_counts() {
    let (_d, engine) = open();
    let root = engine.root();
    sample(&root, "g");
    assert_eq!(graph_counts(&root, "g"), (7, 9));
    // Warm the cache, then delete B with its 5 relations (the self loop counted once).
    assert_eq!(names(&root.neighbors(around("g", "A", 1, None)).unwrap()), set(&["A", "B", "C"]));
    let b = root.delete_entity("g", "B", None).unwrap();
    assert_eq!(b.name, "B");
    assert_eq!(graph_counts(&root, "g"), (6, 4));
    let a = root.neighbors(around("g", "A", 1, None)).unwrap();
    assert_eq!(names(&a), set(&["A", "C"]));
    assert_eq!(relation_types(&a), ["knows"]);
    assert_eq!(root.get_entity("g", &b.id, None).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(root.delete_entity("g", &b.id, None).unwrap_err().code(), ErrorCode::NotFound);
    // Delete a relation by id.
    let cd = root.neighbors(around("g", "D", 1, Some("owns"))).unwrap().relations;
    let c_to_d = cd.iter().find(|r| r.source_name == "C").unwrap().id.clone();
    assert_eq!(root.delete_relation("g", &c_to_d).unwrap().id, c_to_d);
    assert_eq!(names(&root.neighbors(around("g", "D", 5, None)).unwrap()), set(&["D", "E"]));
    assert_eq!(root.delete_relation("g", &c_to_d).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(root.delete_relation("g", "not-a-uuid").unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(counts(&root, "g").1, 3);
}

#[test]
fn graph_rows_are_charged_to_storage_and_the_quota() {
    let (_d, engine) = open();
    let root = engine.root();
    let t = root
        .create_tenant(CreateTenant {
            name: "small".into(),
            quotas: Some(QuotasPatch { storage_quota_bytes: Some(20_000), ..Default::default() }),
            ..Default::default()
        })
        .unwrap()
        .tenant;
    root.create_namespace(
        "g",
        NamespaceOptions { tenant_id: Some(t.id.clone()), ..Default::default() },
    )
    .unwrap();
    assert_eq!(counts(&root, "g").2, 0);
    let e = root
        .add_entity(AddEntity {
            properties: props(json!({"bio": "y".repeat(5_000)})),
            ..entity("g", "Big", None)
        })
        .unwrap();
    let after_entity = counts(&root, "g").2;
    assert!(after_entity > 5_000, "{after_entity}");
    assert_eq!(root.get_tenant(&t.id).unwrap().usage.storage_bytes, after_entity);
    root.add_relation(rel("g", "Big", "Small", "r", None)).unwrap();
    let after_rel = counts(&root, "g").2;
    assert!(after_rel > after_entity);
    // 3 × 5 KB more would pass 20 KB: refused, nothing written.
    let err = root
        .add_entities(
            "g",
            (0..3)
                .map(|i| AddEntity {
                    properties: props(json!({"bio": "z".repeat(5_000)})),
                    ..entity("", &format!("E{i}"), None)
                })
                .collect(),
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::QuotaExceeded);
    assert_eq!(counts(&root, "g"), (2, 1, after_rel));
    assert_eq!(root.get_tenant(&t.id).unwrap().usage.storage_bytes, after_rel);
    // Deleting gives every byte back.
    root.delete_entity("g", &e.id, None).unwrap();
    root.delete_entity("g", "Small", None).unwrap();
    assert_eq!(counts(&root, "g"), (0, 0, 0));
    assert_eq!(root.get_tenant(&t.id).unwrap().usage.storage_bytes, 0);
}

#[test]
fn one_namespace_graph_is_invisible_from_another() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("a", NamespaceOptions::default()).unwrap();
    root.create_namespace("b", NamespaceOptions::default()).unwrap();
    let secret = root.add_entity(entity("a", "Secret", None)).unwrap();
    let r = root.add_relation(rel("a", "Secret", "Plan", "about", None)).unwrap();
    // The name is not found from b; a's ids are not found in b, for every kind of call.
    assert_eq!(root.get_entity("b", "Secret", None).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(root.get_entity("b", &secret.id, None).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(
        root.neighbors(around("b", &secret.id, 1, None)).unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(root.delete_entity("b", &secret.id, None).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(root.delete_relation("b", &r.id).unwrap_err().code(), ErrorCode::NotFound);
    assert_eq!(
        root.add_relation(rel("b", &secret.id, "Mine", "x", None)).unwrap_err().code(),
        ErrorCode::NotFound
    );
    // A same-named entity in b is b's own, and traversals stay in b.
    root.add_relation(rel("b", "Secret", "Decoy", "about", None)).unwrap();
    assert_eq!(
        names(&root.neighbors(around("b", "Secret", 5, None)).unwrap()),
        set(&["Secret", "Decoy"])
    );
    assert_eq!(
        names(&root.neighbors(around("a", "Secret", 5, None)).unwrap()),
        set(&["Secret", "Plan"])
    );
    assert_eq!(graph_counts(&root, "a"), (2, 1));

    // A key scoped to a is refused on b, whether b exists or not, for reads and writes.
    let key = root.create_key(CreateKey::namespaces("a-only", [("a", Access::Write)])).unwrap();
    let scoped = engine.scoped(&key.key).unwrap();
    assert_eq!(scoped.get_entity("a", "Secret", None).unwrap().id, secret.id);
    for ns in ["b", "missing"] {
        let errs = [
            scoped.get_entity(ns, "Secret", None).unwrap_err(),
            scoped.neighbors(around(ns, "Secret", 1, None)).unwrap_err(),
            scoped.shortest_path(ns, "Secret", "Decoy").unwrap_err(),
            scoped.add_entity(entity(ns, "x", None)).unwrap_err(),
            scoped.add_relation(rel(ns, "x", "y", "z", None)).unwrap_err(),
            scoped.delete_entity(ns, "Secret", None).unwrap_err(),
        ];
        for e in errs {
            assert_eq!(e.code(), ErrorCode::Forbidden, "{ns}: {e}");
        }
    }
    assert_eq!(counts(&root, "b").0, 2);
}

#[test]
fn a_read_only_key_reads_the_graph_but_cannot_change_it() {
    let (_d, engine) = open();
    let root = engine.root();
    sample(&root, "g");
    let key = root.create_key(CreateKey::namespaces("reader", [("g", Access::Read)])).unwrap();
    let reader = engine.scoped(&key.key).unwrap();
    assert_eq!(names(&reader.neighbors(around("g", "A", 1, None)).unwrap()), set(&["A", "B", "C"]));
    assert_eq!(reader.shortest_path("g", "A", "E").unwrap().entities.len(), 4);
    let rid = reader.neighbors(around("g", "X", 1, None)).unwrap().relations[0].id.clone();
    let before = counts(&root, "g");
    let errs = [
        reader.add_entity(entity("g", "New", None)).unwrap_err(),
        reader.add_entities("g", vec![entity("", "New", None)]).unwrap_err(),
        reader.add_relation(rel("g", "A", "E", "x", None)).unwrap_err(),
        reader.delete_entity("g", "A", None).unwrap_err(),
        reader.delete_relation("g", &rid).unwrap_err(),
    ];
    for e in errs {
        assert_eq!(e.code(), ErrorCode::Forbidden, "{e}");
    }
    assert_eq!(counts(&root, "g"), before);
}

#[test]
fn deleting_the_namespace_leaves_no_graph_behind() {
    let (dir, engine) = open();
    let root = engine.root();
    sample(&root, "g");
    let marker = "GRAPH-ERASURE-MARKER-5d1e";
    root.add_entity(AddEntity {
        properties: props(json!({"k": marker})),
        ..entity("g", "A", Some("person"))
    })
    .unwrap();
    root.add_relation(AddRelation {
        properties: props(json!({"note": marker})),
        ..rel("g", &format!("{marker}-name"), "B", "secret", None)
    })
    .unwrap();
    assert!(!crate::keys::files_containing(dir.path(), marker.as_bytes()).is_empty());
    let a_id = root.get_entity("g", "A", Some("entity")).unwrap().id;
    root.store_memory(StoreMemory {
        namespace: Some("g".into()),
        entities: vec!["A".into()],
        ..StoreMemory::text("about A")
    })
    .unwrap();
    assert_eq!(root.neighbors(around("g", &a_id, 1, None)).unwrap().entities.len(), 3); // warm the cache
    root.delete_namespace("g").unwrap();
    assert_eq!(
        root.neighbors(around("g", &a_id, 1, None)).unwrap_err().code(),
        ErrorCode::NotFound
    );
    engine.run_pending_purges().unwrap();
    let left = crate::keys::files_containing(dir.path(), marker.as_bytes());
    assert!(left.is_empty(), "graph rows of a deleted namespace still on disk in {left:?}");
    root.create_namespace("g", NamespaceOptions::default()).unwrap();
    assert_eq!(counts(&root, "g"), (0, 0, 0));
    for r in ["A", a_id.as_str()] {
        assert_eq!(root.get_entity("g", r, None).unwrap_err().code(), ErrorCode::NotFound);
        assert_eq!(
            root.neighbors(around("g", r, 1, None)).unwrap_err().code(),
            ErrorCode::NotFound
        );
    }
    // A new graph under the old name starts from nothing (no stale cache, no old relations).
    root.add_entity(entity("g", "A", None)).unwrap();
    let v = root.neighbors(around("g", "A", 5, None)).unwrap();
    assert_eq!((v.entities.len(), v.relations.len()), (1, 0));
    assert_eq!(graph_counts(&root, "g"), (1, 0));
}

#[test]
fn recall_expand_adds_memories_linked_through_the_graph() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("g", NamespaceOptions::default()).unwrap();
    let mem = |content: &str, entities: &[&str], agent: &str| {
        root.store_memory(StoreMemory {
            namespace: Some("g".into()),
            agent_id: Some(agent.into()),
            entities: entities.iter().map(|e| (*e).to_owned()).collect(),
            ..StoreMemory::text(content)
        })
        .unwrap()
    };
    let direct = mem("Alice leads the Omega launch", &["alice"], "a");
    let linked = mem("Quarterly budget numbers for the finance team", &["Acme"], "a");
    let two_hops = mem("Weather report for the harbour", &["Globex"], "a");
    let other_agent = mem("Board minutes mentioning the company", &["ACME"], "b");
    for i in 0..20 {
        mem(&format!("unrelated note {i} about gardening"), &[], "a");
    }
    root.add_relation(rel("g", "Alice", "Acme", "works_at", None)).unwrap();
    root.add_relation(rel("g", "Acme", "Globex", "partner_of", None)).unwrap();

    let base = Recall {
        agent_id: Some("a".into()),
        ..Recall::text("Alice leads the Omega launch").namespace("g").top_k(1)
    };
    let plain = root.recall(base.clone()).unwrap();
    assert_eq!(plain.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), [direct.id.as_str()]);
    assert!(!plain[0].via_graph);

    let one = root.recall(Recall { expand: Some(1), ..base.clone() }).unwrap();
    let ids: Vec<&str> = one.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(
        ids,
        [direct.id.as_str(), linked.id.as_str()],
        "agent b's memory is filtered out, Globex is 2 hops away"
    );
    assert!(one[1].via_graph && !one[0].via_graph);
    assert!(one[1].score < one[0].score);

    let two = root.recall(Recall { expand: Some(2), ..base.clone() }).unwrap();
    let ids: Vec<&str> = two.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, [direct.id.as_str(), linked.id.as_str(), two_hops.id.as_str()]);
    assert!(two[2].score < two[1].score, "farther links rank lower");

    // Without the agent filter, the ACME memory (case differs) is linked too.
    let all = root.recall(Recall { agent_id: None, expand: Some(1), ..base.clone() }).unwrap();
    assert!(all.iter().any(|h| h.id == other_agent.id && h.via_graph));
    // Deleting the Acme entity drops the path: nothing reached through it any more.
    root.delete_entity("g", "Acme", None).unwrap();
    let gone = root.recall(Recall { expand: Some(2), ..base }).unwrap();
    assert_eq!(gone.len(), 1);
}

#[test]
fn batches_write_everything_in_order_and_see_their_own_items() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("g", NamespaceOptions::default()).unwrap();
    let out = root
        .add_entities(
            "g",
            vec![
                AddEntity { properties: props(json!({"a": 1})), ..entity("", "N1", None) },
                entity("g", "N2", Some("t")),
                AddEntity { properties: props(json!({"b": 2})), ..entity("", "N1", None) },
            ],
        )
        .unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[2].id, out[0].id, "a later item upserts an earlier one");
    assert_eq!(Value::Object(out[2].properties.clone()), json!({"a": 1, "b": 2}));
    assert_eq!(graph_counts(&root, "g"), (2, 0));
    // "Fresh" is created by the first relation and found by name in the second.
    let rels = root
        .add_relations(
            "g",
            vec![rel("", &out[0].id, "Fresh", "r", None), rel("", "Fresh", "N2", "r", Some(0.5))],
        )
        .unwrap();
    assert_eq!(rels[0].target, rels[1].source);
    assert_eq!(graph_counts(&root, "g"), (3, 2));
    assert_eq!(root.shortest_path("g", "N1", "N2").unwrap().entities.len(), 3);
    let err = root.add_entities("g", vec![entity("other", "x", None)]).unwrap_err();
    assert_eq!(err.to_string().split(':').next(), Some("entities[0].namespace"));
    assert_eq!(root.add_entities("g", vec![]).unwrap_err().code(), ErrorCode::InvalidArgument);
}

#[test]
fn concurrent_writers_see_their_own_relations_at_once() {
    let (_d, engine) = open();
    let root = engine.root();
    root.create_namespace("g", NamespaceOptions::default()).unwrap();
    root.add_entity(entity("g", "Hub", None)).unwrap();
    std::thread::scope(|s| {
        for w in 0..4 {
            let root = root.clone();
            s.spawn(move || {
                for i in 0..25 {
                    let leaf = format!("w{w}-{i}");
                    let r = root.add_relation(rel("g", "Hub", &leaf, "spoke", None)).unwrap();
                    // No stale topology may hide a relation from the writer that just added it.
                    let v = root.neighbors(around("g", &leaf, 1, None)).unwrap();
                    assert!(
                        v.relations.iter().any(|x| x.id == r.id),
                        "{leaf}: own relation missing"
                    );
                }
            });
        }
        let reader = root.clone();
        s.spawn(move || {
            for _ in 0..40 {
                let v = reader.neighbors(around("g", "Hub", 1, None)).unwrap();
                assert_eq!(
                    v.relations.len() + 1,
                    v.entities.len(),
                    "one snapshot: every spoke has its leaf"
                );
            }
        });
    });
    let v = root.neighbors(around("g", "Hub", 1, None)).unwrap();
    assert_eq!((v.entities.len(), v.relations.len()), (101, 100));
    assert_eq!(graph_counts(&root, "g"), (101, 100));
}

/// One step of the model-based test.
#[derive(Debug, Clone)]
enum Op {
    AddEntity(u8),
    AddRelation { source: u8, target: u8, kind_a: bool, weight: u8 },
    DeleteEntity(u8),
    DeleteRelation(usize),
    Neighbors { entity: u8, depth: u32, kind_a: Option<bool> },
    Path(u8, u8),
}

/// The expected graph: entity names `n0`..`n5` (one type) and relations by id.
#[derive(Default)]
struct Model {
    entities: BTreeSet<u8>,
    relations: Vec<(String, u8, u8, bool, f64)>,
}

fn kind(a: bool) -> &'static str {
    if a {
        "a"
    } else {
        "b"
    }
}

impl Model {
    /// Entities within `depth` hops and the relations traversed from nearer ones.
    fn reach(
        &self,
        start: u8,
        depth: u32,
        kind_a: Option<bool>,
    ) -> (BTreeSet<u8>, BTreeSet<String>) {
        let mut seen = BTreeSet::from([start]);
        let mut relations = BTreeSet::new();
        let mut frontier = vec![start];
        for _ in 0..depth {
            let mut next = Vec::new();
            for &n in &frontier {
                for (id, s, t, k, _) in &self.relations {
                    if (*s == n || *t == n) && kind_a.is_none_or(|a| a == *k) {
                        relations.insert(id.clone());
                        for other in [*s, *t] {
                            if seen.insert(other) {
                                next.push(other);
                            }
                        }
                    }
                }
            }
            frontier = next;
        }
        (seen, relations)
    }

    fn distance(&self, from: u8, to: u8) -> Option<f64> {
        let mut d = [[f64::INFINITY; 6]; 6];
        for (i, row) in d.iter_mut().enumerate() {
            row[i] = 0.0;
        }
        for (_, s, t, _, w) in &self.relations {
            let (s, t) = (usize::from(*s), usize::from(*t));
            d[s][t] = d[s][t].min(*w);
            d[t][s] = d[t][s].min(*w);
        }
        for k in 0..6 {
            for i in 0..6 {
                for j in 0..6 {
                    d[i][j] = d[i][j].min(d[i][k] + d[k][j]);
                }
            }
        }
        let v = d[usize::from(from)][usize::from(to)];
        v.is_finite().then_some(v)
    }
}

fn run_model(root: &Handle, ns: &str, ops: &[Op]) {
    root.create_namespace(ns, NamespaceOptions::default()).unwrap();
    let name = |n: u8| format!("n{n}");
    let mut model = Model::default();
    for op in ops {
        match *op {
            Op::AddEntity(n) => {
                root.add_entity(entity(ns, &name(n), None)).unwrap();
                model.entities.insert(n);
            }
            Op::AddRelation { source, target, kind_a, weight } => {
                let cost = f64::from(weight) * 0.5;
                let added = root
                    .add_relation(rel(ns, &name(source), &name(target), kind(kind_a), Some(cost)))
                    .unwrap();
                model.entities.extend([source, target]);
                model.relations.push((added.id, source, target, kind_a, cost));
            }
            Op::DeleteEntity(n) => match root.delete_entity(ns, &name(n), None) {
                Ok(_) => {
                    assert!(model.entities.remove(&n), "deleted an entity the model lacks");
                    model.relations.retain(|(_, s, t, _, _)| *s != n && *t != n);
                }
                Err(e) => {
                    assert_eq!(e.code(), ErrorCode::NotFound);
                    assert!(!model.entities.contains(&n));
                }
            },
            Op::DeleteRelation(k) => {
                if !model.relations.is_empty() {
                    let (id, ..) = model.relations.remove(k % model.relations.len());
                    assert_eq!(root.delete_relation(ns, &id).unwrap().id, id);
                }
            }
            Op::Neighbors { entity: n, depth, kind_a } => {
                let req = around(ns, &name(n), depth, kind_a.map(kind));
                if !model.entities.contains(&n) {
                    assert_eq!(root.neighbors(req).unwrap_err().code(), ErrorCode::NotFound);
                    continue;
                }
                let (want_entities, want_relations) = model.reach(n, depth, kind_a);
                let got = root.neighbors(req.clone()).unwrap();
                assert_eq!(got.entities[0].name, name(n));
                let got_entities: BTreeSet<String> = names(&got);
                assert_eq!(
                    got_entities,
                    want_entities.iter().map(|e| name(*e)).collect(),
                    "{op:?}"
                );
                let got_relations: BTreeSet<String> =
                    got.relations.iter().map(|r| r.id.clone()).collect();
                assert_eq!(got_relations, want_relations, "{op:?}");
                let sub = root.subgraph(req).unwrap();
                let want_sub: BTreeSet<String> = model
                    .relations
                    .iter()
                    .filter(|(_, s, t, k, _)| {
                        want_entities.contains(s)
                            && want_entities.contains(t)
                            && kind_a.is_none_or(|a| a == *k)
                    })
                    .map(|r| r.0.clone())
                    .collect();
                assert_eq!(
                    sub.relations.iter().map(|r| r.id.clone()).collect::<BTreeSet<_>>(),
                    want_sub,
                    "{op:?}"
                );
            }
            Op::Path(a, b) => {
                let got = root.shortest_path(ns, &name(a), &name(b));
                let want = if model.entities.contains(&a) && model.entities.contains(&b) {
                    model.distance(a, b)
                } else {
                    None
                };
                match (got, want) {
                    (Ok(p), Some(w)) => assert!(
                        (p.total_weight - w).abs() < 1e-9,
                        "{op:?}: {} vs {w}",
                        p.total_weight
                    ),
                    (Err(e), None) => assert_eq!(e.code(), ErrorCode::NotFound),
                    (got, want) => panic!("{op:?}: got {got:?}, model says {want:?}"),
                }
            }
        }
        assert_eq!(
            graph_counts(root, ns),
            (model.entities.len() as u64, model.relations.len() as u64),
            "after {op:?}"
        );
    }
}

#[test]
fn the_graph_matches_a_simple_model_under_random_operations() {
    use proptest::prelude::*;
    let (_d, engine) = open();
    let root = engine.root();
    let op = prop_oneof![
        1 => (0u8..6).prop_map(Op::AddEntity),
        4 => (0u8..6, 0u8..6, any::<bool>(), 0u8..4)
            .prop_map(|(source, target, kind_a, weight)| Op::AddRelation { source, target, kind_a, weight }),
        1 => (0u8..6).prop_map(Op::DeleteEntity),
        1 => any::<usize>().prop_map(Op::DeleteRelation),
        2 => (0u8..6, 1u32..4, proptest::option::of(any::<bool>()))
            .prop_map(|(entity, depth, kind_a)| Op::Neighbors { entity, depth, kind_a }),
        1 => (0u8..6, 0u8..6).prop_map(|(a, b)| Op::Path(a, b)),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 40,
        ..ProptestConfig::default()
    });
    let case = std::cell::Cell::new(0);
    runner
        .run(&proptest::collection::vec(op, 1..40), |ops| {
            case.set(case.get() + 1);
            run_model(&root, &format!("model-{}", case.get()), &ops);
            Ok(())
        })
        .unwrap();
}

#[test]
fn expansion_never_returns_expired_or_filtered_out_memories() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(memsilo::ManualClock::starting_now());
    let engine = Engine::open(
        dir.path(),
        Options { background: false, clock: clock.clone(), ..Options::default() },
    )
    .unwrap();
    let root = engine.root();
    root.create_namespace("g", NamespaceOptions::default()).unwrap();
    let mem = |content: &str, entity: &str, ttl: Option<u64>, tags: &[&str]| {
        root.store_memory(StoreMemory {
            namespace: Some("g".into()),
            entities: vec![entity.into()],
            ttl,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..StoreMemory::text(content)
        })
        .unwrap()
    };
    let direct = mem("Alice leads the Omega launch", "Alice", None, &["work"]);
    let short_lived = mem("Acme shipping schedule for this week", "Acme", Some(60), &["work"]);
    let untagged = mem("Acme holiday party photos", "Acme", None, &[]);
    let kept = mem("Acme signed the Omega contract", "Acme", None, &["work"]);
    root.add_relation(rel("g", "Alice", "Acme", "works_at", None)).unwrap();
    let recall = Recall {
        tags: vec!["work".into()],
        expand: Some(1),
        ..Recall::text("Alice leads the Omega launch").namespace("g").top_k(1)
    };
    let ids =
        |hits: Vec<memsilo::RecallHit>| hits.into_iter().map(|h| h.id).collect::<BTreeSet<_>>();
    let before = ids(root.recall(recall.clone()).unwrap());
    assert_eq!(before, [&direct.id, &short_lived.id, &kept.id].into_iter().cloned().collect());
    assert!(!before.contains(&untagged.id), "the tags filter applies to graph hits too");
    clock.advance_secs(120.0);
    let after = ids(root.recall(recall).unwrap());
    assert_eq!(
        after,
        [&direct.id, &kept.id].into_iter().cloned().collect(),
        "an expired memory is not reached through the graph"
    );
}

/// What a replicated log relies on (cluster mode): a graph write given fixed ids creates the
/// same rows wherever it is applied, and ids name only what the write creates.
#[test]
fn graph_writes_with_fixed_ids_create_the_same_rows_in_two_engines() {
    let ((_a, one), (_b, two)) = (open(), open());
    let add_entity = memsilo::GraphIds::fresh("add_entity").unwrap();
    let add_relation = memsilo::GraphIds::fresh("add_relation").unwrap();
    assert!(memsilo::GraphIds::fresh("delete_entity").is_none());
    let mut seen = Vec::new();
    for engine in [&one, &two] {
        let root = engine.root();
        root.create_namespace("g", NamespaceOptions::default()).unwrap();
        let ada = root.with_graph_ids(Some(add_entity.clone()));
        let ada = ada.call("add_entity", json!({"namespace": "g", "name": "Ada"})).unwrap().value;
        let fixed = root.with_graph_ids(Some(add_relation.clone()));
        let knows = fixed
            .call(
                "add_relation",
                json!({"namespace": "g", "source": "Bob", "target": "Ada", "type": "knows"}),
            )
            .unwrap()
            .value;
        // A merge into an existing entity keeps its id: a fixed id is only for a new row.
        let again = root.with_graph_ids(memsilo::GraphIds::fresh("add_entity"));
        let merged = again
            .call("add_entity", json!({"namespace": "g", "name": "Ada", "properties": {"x": 1}}))
            .unwrap()
            .value;
        assert_eq!(merged["id"], ada["id"]);
        seen.push((
            ada["id"].clone(),
            knows["id"].clone(),
            knows["source"].clone(),
            knows["target"].clone(),
        ));
    }
    assert_eq!(seen[0], seen[1], "the same rows in both engines");
    let (ada, knows, bob, target) = seen.remove(0);
    assert_eq!(ada.as_str(), add_entity.entity.as_deref());
    assert_eq!(knows.as_str(), add_relation.relation.as_deref());
    assert_eq!(bob.as_str(), add_relation.source.as_deref(), "Bob was created by name");
    assert_eq!(target, ada, "Ada existed: the fixed target id is unused");
    let bad = memsilo::GraphIds { entity: Some("not-a-uuid".into()), ..Default::default() };
    let err = one
        .root()
        .with_graph_ids(Some(bad))
        .call("add_entity", json!({"namespace": "g", "name": "Eve"}))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(err.to_string().contains("graph_ids.entity"), "{err}");
}
