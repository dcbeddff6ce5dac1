use chrono::Utc;
use serde_json::{json, Value};

use super::{f64_key, i64_key, Filter};
use crate::error::Error;
use crate::records::{Memory, MemoryType};

fn memory() -> Memory {
    let now = Utc::now();
    Memory {
        id: "m1".into(),
        namespace: "ns".into(),
        agent_id: Some("a".into()),
        content: "text".into(),
        importance: 0.4,
        tags: vec!["x".into(), "y".into()],
        metadata: json!({"customer": {"tier": "gold", "seats": 12}, "langs": ["en", "de"]})
            .as_object()
            .unwrap()
            .clone(),
        entities: Vec::new(),
        memory_type: MemoryType::Semantic,
        session_id: None,
        created_at: now,
        updated_at: now,
        expires_at: None,
        vector: None,
    }
}

fn check(f: Value) -> bool {
    Filter::parse(&f, "filter").unwrap().matches(&memory())
}

#[test]
fn operators_on_builtins_and_metadata_paths() {
    assert!(check(json!({"metadata.customer.tier": "gold"})));
    assert!(check(json!({"metadata.customer.seats": {"$gt": 10, "$lte": 12}})));
    assert!(!check(json!({"metadata.customer.seats": {"$gt": 12}})));
    assert!(check(json!({"metadata.customer.tier": {"$in": ["gold", "platinum"]}})));
    assert!(check(json!({"metadata.langs": "de"})), "equality on an array is contains");
    assert!(check(json!({"metadata.langs": {"$contains_all": ["en", "de"]}})));
    assert!(check(json!({"metadata.missing": {"$exists": false}})));
    assert!(check(json!({"metadata.missing": {"$ne": 3}})));
    assert!(!check(json!({"metadata.missing": {"$gt": 3}})));
    assert!(check(json!({"tags": {"$contains_any": ["q", "y"]}, "memory_type": "semantic"})));
    assert!(!check(json!({"tags": {"$contains_all": ["x", "q"]}})));
    assert!(check(json!({"$or": [{"agent_id": "b"}, {"importance": {"$lt": 0.5}}]})));
    assert!(check(json!({"$not": {"session_id": {"$exists": true}}})));
    assert!(check(json!({"created_at": {"$gte": "2020-01-01T00:00:00Z"}})));
    assert!(!check(json!({"$and": [{"agent_id": "a"}, {"memory_type": {"$nin": ["semantic"]}}]})));
}

#[test]
fn malformed_filters_name_the_path() {
    let err = |f: Value| match Filter::parse(&f, "filter").unwrap_err() {
        Error::InvalidArgument { field, .. } => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(err(json!({"metadata.tier": {"$gtx": 1}})), "filter.metadata.tier.$gtx");
    assert_eq!(err(json!({"colour": 1})), "filter.colour");
    assert_eq!(err(json!({"$or": [{"tags": {"$in": "x"}}]})), "filter.$or[0].tags.$in");
    assert_eq!(err(json!({"importance": {"$gt": "high"}})), "filter.importance.$gt");
    assert_eq!(err(json!({"created_at": {"$lt": "yesterday"}})), "filter.created_at.$lt");
    assert_eq!(err(json!({"memory_type": "dream"})), "filter.memory_type");
    assert_eq!(err(json!({"importance": {"$contains": 1}})), "filter.importance.$contains");
    assert_eq!(err(json!([1])), "filter");
    assert_eq!(err(json!({"$and": []})), "filter.$and");
    assert_eq!(err(json!({"metadata.": 1})), "filter.metadata.");
}

#[test]
fn key_encodings_keep_order() {
    let xs = [-1e9, -2.5, -0.0, 0.0, 1e-9, 0.5, 3.0, 1e12];
    for w in xs.windows(2) {
        assert!(f64_key(w[0]) <= f64_key(w[1]), "{w:?}");
    }
    assert!(i64_key(-5) < i64_key(0) && i64_key(0) < i64_key(7));
}
