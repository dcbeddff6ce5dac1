use serde_json::Value;

use super::*;
use crate::datastore::{ns_key, DataTables, EnvLocation};
use crate::records::memory::tests::memory;
use crate::records::{IsolationMode, NamespaceRecord};
use crate::store::Store;

#[test]
fn an_upsert_sets_created_at_in_the_json_as_serialising_it_again_would() {
    let mut m = memory();
    // Caller text that looks like the field must not be taken for it.
    m.content = r#"{"created_at":"2001-01-01T00:00:00Z"}"#.into();
    m.metadata.insert("created_at".into(), Value::String("2001-01-01T00:00:00Z".into()));
    m.expires_at = Some(m.created_at + chrono::Duration::seconds(60));
    let mut json = serde_json::to_vec(&m).unwrap();
    for earlier in [
        "2020-05-06T07:08:09Z",
        "2020-05-06T07:08:09.123Z",
        "2020-05-06T07:08:09.123456Z",
        "2020-05-06T07:08:09.123456789Z",
    ] {
        m.created_at = earlier.parse().unwrap();
        set_created_at(&mut json, &m.created_at).unwrap();
        assert_eq!(String::from_utf8_lossy(&json), serde_json::to_string(&m).unwrap());
    }
}

/// A stored record whose fields are the new memory's but for its times is read without
/// decoding it whole: what that read gives is what decoding it gives, and the JSON written is
/// the one setting `created_at` writes. A record with any other field changed is decoded.
#[test]
fn a_record_replaced_by_the_same_fields_is_read_as_decoding_it_would() {
    let mut stored = memory();
    stored.content = r#"{"created_at":"2001-01-01T00:00:00Z"}"#.into();
    stored.metadata.insert("created_at".into(), Value::String("2001-01-01T00:00:00Z".into()));
    stored.metadata.insert("n".into(), serde_json::json!(1.5));
    stored.created_at = "2020-05-06T07:08:09.123Z".parse().unwrap();
    stored.updated_at = "2020-05-06T07:08:09.123456Z".parse().unwrap();
    for expires in [None, Some(stored.created_at + chrono::Duration::seconds(60))] {
        stored.expires_at = expires;
        let record = encode_record(Some(4), &serde_json::to_vec(&stored).unwrap());
        let mut new = stored.clone();
        new.created_at = chrono::Utc::now();
        new.updated_at = new.created_at;
        new.expires_at = Some(new.created_at + chrono::Duration::seconds(5));
        let json = serde_json::to_vec(&new).unwrap();
        let (slot, times, written) = same_but_times(&record, &json).unwrap();
        let read = times.of(&new, slot);
        let decoded = decode_record(&record).unwrap();
        assert_eq!((&read.memory, read.slot), (&decoded.memory, decoded.slot));
        // The new memory's keys, with the stored `created_at`, from the stored memory's.
        let kept = Memory { created_at: stored.created_at, ..new.clone() };
        let keys = crate::filter::keys_of(&decoded.memory);
        assert_ne!(keys, crate::filter::keys_of(&kept));
        assert_eq!(
            crate::filter::with_updated_at(&keys, new.updated_at),
            crate::filter::keys_of(&kept)
        );
        let mut want = json.clone();
        set_created_at(&mut want, &stored.created_at).unwrap();
        assert_eq!(String::from_utf8(written).unwrap(), String::from_utf8(want).unwrap());
    }
    let changed: [&dyn Fn(&mut Memory); 4] = [
        &|m| m.content.push('!'),
        &|m| m.importance = 0.75,
        &|m| {
            m.metadata.insert("n".into(), serde_json::json!(2));
        },
        &|m| m.entities.push("e".into()),
    ];
    let record = encode_record(Some(4), &serde_json::to_vec(&stored).unwrap());
    for change in changed {
        let mut new = stored.clone();
        change(&mut new);
        assert!(same_but_times(&record, &serde_json::to_vec(&new).unwrap()).is_none());
    }
    // Records of the earlier format are decoded.
    let legacy = serde_json::to_vec(&StoredMemory { memory: stored.clone(), slot: Some(4) });
    assert!(same_but_times(&legacy.unwrap(), &serde_json::to_vec(&stored).unwrap()).is_none());
}

#[test]
fn a_stored_record_is_charged_the_same_read_whole_or_in_part() {
    let mut m = memory();
    m.content = "three \"distinct\" words, words".into();
    let json = serde_json::to_vec(&m).unwrap();
    let legacy = serde_json::to_vec(&StoredMemory { memory: m.clone(), slot: Some(3) }).unwrap();
    for bytes in [encode_record(Some(3), &json), legacy] {
        let want = charged_size(bytes.len(), 100) + postings_charge(Some(3), &m.content);
        assert_eq!(stored_charge(&bytes, 100).unwrap(), want);
    }
    let bytes = encode_record(None, &json);
    assert_eq!(stored_charge(&bytes, 100).unwrap(), charged_size(bytes.len(), 0));
}

/// A write trusts what [`look_ahead`] read on its snapshot only while no write has changed the
/// namespace since: an upsert of an id that another write changed in between is applied to
/// what that write left, here a vector row the snapshot held equal to the upsert's own.
#[test]
fn a_write_reads_again_what_another_write_changed_after_its_look_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let env: Store<DataTables> = Store::open(dir.path(), 1 << 24, None).unwrap();
    let rec = NamespaceRecord {
        id: 3,
        name: "ns".into(),
        tenant_id: None,
        created_at: chrono::Utc::now(),
        policy: crate::records::DecayPolicy::default(),
        dimensions: Some(2),
        isolation_mode: IsolationMode::Logical,
        location: EnvLocation::Shard { n: 0 },
    };
    let item = |content: &str, v: [f32; 2]| {
        let m = Memory { id: "x".into(), content: content.into(), ..memory() };
        Prepared::new(m, Some(v.to_vec())).unwrap()
    };
    let write = |items: &mut [Prepared]| {
        env.write(|w, t| write_rows(&|_| false, &rec, items, CALLER_EMBEDDER, None, w, t)).unwrap();
    };
    write(&mut [item("first", [1.0, 0.0])]);
    let mut upsert = [item("first", [1.0, 0.0])];
    look_ahead(&env, rec.id, &mut upsert, None).unwrap();
    write(&mut [item("second", [0.0, 1.0])]);
    write(&mut upsert);
    let (stored, vector) = env
        .read(|r, t| {
            let bytes = t.memories.get(r, &ns_key(rec.id, &memory_key("x")))?.unwrap().to_vec();
            let stored = decode_record(&bytes)?;
            let vector = read_vector(t, r, rec.id, stored.slot)?;
            Ok((stored, vector))
        })
        .unwrap();
    assert_eq!(stored.memory.content, "first");
    assert_eq!(vector, Some(vec![1.0, 0.0]), "the other write's row was overwritten");
}
