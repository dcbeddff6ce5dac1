use serde_json::Value;

use super::*;
use crate::records::memory::tests::memory;

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
