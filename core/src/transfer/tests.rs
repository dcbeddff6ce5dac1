use serde_json::{json, Map, Value};

use super::*;
use crate::error::Error;

#[test]
fn lines_are_parsed_with_their_number_in_every_error() {
    let e = parse_line(7, b"{nope").unwrap_err();
    assert!(e.to_string().starts_with("line 7: not JSON"), "{e}");
    let e = parse_line(8, b"[1]").unwrap_err();
    assert_eq!(e.to_string(), "line 8: not a JSON object");
    let e = parse_line(9, br#"{"kind": "tensor"}"#).unwrap_err();
    assert!(e.to_string().starts_with("line 9: unknown kind"), "{e}");
    assert_eq!(parse_line(1, br#"{"kind": "memory"}"#).unwrap().0, Kind::Memory);
}

#[test]
fn batches_hold_one_kind_and_at_most_size_lines() {
    let mut b = Batcher::new(2);
    let mut out = Vec::new();
    for l in [
        r#"{"kind":"namespace"}"#,
        r#"{"kind":"entity"}"#,
        "",
        r#"{"kind":"entity"}"#,
        r#"{"kind":"entity"}"#,
        r#"{"kind":"memory"}"#,
    ] {
        out.extend(b.push(l.as_bytes()).unwrap());
    }
    out.extend(b.finish());
    let shape: Vec<(u64, usize)> = out.iter().map(|b| (b.first_line, b.lines.len())).collect();
    assert_eq!(shape, vec![(1, 1), (2, 2), (5, 1), (6, 1)]);
}

/// A memory's line as it was built before lines were typed: the memory as a JSON
/// object, without `namespace`, with its vector as base64 and its `kind`.
fn line_as_an_object(mut m: crate::memory::Memory) -> String {
    let vector = m.vector.take();
    let mut line = serde_json::to_value(m).unwrap();
    let map = line.as_object_mut().unwrap();
    map.remove("namespace");
    if let Some(v) = vector {
        map.insert("vector".into(), Value::String(encode_vector(&v)));
    }
    with_kind("memory", line).to_string()
}

#[test]
fn a_memory_line_is_the_text_it_was_when_built_as_an_object() {
    let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let full = crate::memory::Memory {
        id: "m-1 \"quoted\"".into(),
        namespace: "ns".into(),
        agent_id: Some("agent".into()),
        content: "caf\u{e9} \n line".into(),
        importance: 0.123_456_789,
        tags: vec!["b".into(), "a".into()],
        metadata: json!({"z": 1, "a": {"y": [1.5, null, "x"], "b": true}, "kind": "mine"})
            .as_object()
            .cloned()
            .unwrap(),
        entities: vec!["Ada".into()],
        memory_type: crate::memory::MemoryType::Procedural,
        session_id: Some("s".into()),
        created_at: at("2020-01-02T03:04:05.678Z"),
        updated_at: at("2021-01-02T03:04:05.678912Z"),
        expires_at: Some(at("2030-01-02T03:04:05Z")),
        vector: Some(vec![0.5, -1.0, 3.25e-8]),
    };
    let bare = crate::memory::Memory {
        agent_id: None,
        tags: Vec::new(),
        metadata: Map::new(),
        entities: Vec::new(),
        session_id: None,
        expires_at: None,
        vector: None,
        importance: 1.0,
        ..full.clone()
    };
    for m in [full, bare] {
        assert_eq!(export_memory(&m).unwrap().get(), line_as_an_object(m));
    }
}

#[test]
fn batch_errors_name_the_line_of_the_item() {
    let e = name_line(Error::invalid("memories[1].embedding", "bad"), "memories", &[10, 11]);
    assert_eq!(e.to_string(), "line 11: embedding: bad");
    let e = name_line(Error::invalid("namespace", "bad"), "memories", &[10]);
    assert_eq!(e.to_string(), "namespace: bad");
}
