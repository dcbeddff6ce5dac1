use chrono::Utc;
use serde_json::{json, Value};

use super::{f64_key, i64_key, Filter, TAG_CREATED, TAG_IMPORTANCE, TAG_UPDATED};
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

/// Value keys hold the slot before the memory key, so the keys of one value written by one
/// batch (adjacent slots) are adjacent whatever the memory keys; a namespace keyed by an
/// earlier version (keys without the slot) is read as it is, and a change of its memories
/// removes their old keys: nothing is counted under a value it no longer has.
#[test]
fn value_keys_follow_the_slot_and_keys_of_the_earlier_layout_are_removed() {
    use super::keys::{delete_keys, keys_of, put_keys, update_keys, Layout, TAG_AGENT};
    use super::{candidates::count_exact, Field};
    use crate::datastore::DataTables;
    use crate::store::Store;

    let dir = tempfile::tempdir().unwrap();
    let env: Store<DataTables> = Store::open(dir.path(), 1 << 24, None).unwrap();
    let ns = 4;
    let agent_keys = |env: &Store<DataTables>| -> Vec<Vec<u8>> {
        let prefix = crate::datastore::ns_key(ns, &[TAG_AGENT]);
        env.read(|r, t| {
            let mut out = Vec::new();
            for e in t.fields.prefix_iter(r, &prefix)? {
                out.push(e?.0.to_vec());
            }
            Ok(out)
        })
        .unwrap()
    };
    // Memory keys in descending order, slots ascending: the keys follow the slots.
    let mems: Vec<[u8; 16]> = (0..4u8).map(|i| [200 - i; 16]).collect();
    let m = memory();
    env.write(|w, t| {
        for (slot, mem) in mems.iter().enumerate() {
            put_keys(t, w, ns, mem, &keys_of(&m), Some(slot as u32))?;
        }
        Ok(())
    })
    .unwrap();
    let keys = agent_keys(&env);
    let order: Vec<[u8; 16]> = keys.iter().map(|k| k[k.len() - 16..].try_into().unwrap()).collect();
    assert_eq!(order, mems, "keys of one value in slot order");

    // What an earlier version wrote for memory `old`: its value keys end in the memory key.
    let old = [7u8; 16];
    let legacy_mem = m.clone();
    env.write(|w, t| {
        put_keys(t, w, ns, &old, &keys_of(&legacy_mem), Some(9))?;
        let mut rows = Vec::new();
        for e in t.fields.prefix_iter(w, &ns.to_be_bytes())? {
            let (k, v) = e?;
            let order = [TAG_IMPORTANCE, TAG_CREATED, TAG_UPDATED].contains(&k[8]);
            if k[k.len() - 16..] == old && !order {
                rows.push((k.to_vec(), v.to_vec()));
            }
        }
        for (k, v) in rows {
            t.fields.delete(w, &k)?;
            // The key without its slot part.
            let mut legacy = k[..k.len() - 20].to_vec();
            legacy.extend_from_slice(&old);
            t.fields.put(w, &legacy, &v)?;
        }
        Ok(())
    })
    .unwrap();
    let count = |agent: &str| {
        env.read(|r, t| count_exact(t, r, ns, &Field::AgentId, agent)).unwrap().unwrap()
    };
    assert_eq!(count("a"), 5, "four current keys and one of the earlier layout");
    let mut moved = legacy_mem.clone();
    moved.agent_id = Some("b".into());
    env.write(|w, t| {
        let layout = Layout::WithLegacy;
        let parts = (&keys_of(&legacy_mem)[..], &keys_of(&moved)[..]);
        update_keys(t, w, ns, (&old, Some(9)), parts, layout)?;
        Ok(())
    })
    .unwrap();
    assert_eq!((count("a"), count("b")), (4, 1), "the old agent's key is gone");
    env.write(|w, t| {
        delete_keys(t, w, ns, (&old, Some(9)), &moved, Layout::WithLegacy)?;
        for (slot, mem) in mems.iter().enumerate() {
            delete_keys(t, w, ns, (mem, Some(slot as u32)), &m, Layout::Current)?;
        }
        Ok(())
    })
    .unwrap();
    let left = env.read(|r, t| Ok(t.fields.prefix_iter(r, &ns.to_be_bytes())?.count())).unwrap();
    assert_eq!(left, 0, "every key of every layout deleted");
}
