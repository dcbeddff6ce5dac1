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

/// The batches of `text` fed in chunks of `chunk` bytes, up to the first error.
fn batches(text: &str, size: usize, chunk: usize) -> (Vec<Vec<u64>>, Option<String>) {
    let mut lines = ChunkBatcher::new(size);
    let mut out = Vec::new();
    let firsts = |b: Batch| (b.first_line..b.first_line + b.lines.len() as u64).collect();
    for part in text.as_bytes().chunks(chunk) {
        lines.feed(part);
        loop {
            match lines.next_batch() {
                Ok(Some(b)) => out.push(firsts(b)),
                Ok(None) => break,
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }
    match lines.finish() {
        Ok(last) => out.extend(last.into_iter().map(firsts)),
        Err(e) => return (out, Some(e.to_string())),
    }
    (out, None)
}

#[test]
fn chunks_cut_anywhere_make_the_same_batches_as_whole_lines() {
    let line = |i: usize| format!("{{\"kind\":\"entity\",\"name\":\"e{i}\"}}");
    let text = (0..7).map(line).collect::<Vec<_>>().join("\n");
    for chunk in [1, 5, 17, text.len()] {
        let (got, err) = batches(&text, 3, chunk);
        assert_eq!(err, None);
        assert_eq!(got, [vec![1, 2, 3], vec![4, 5, 6], vec![7]], "chunks of {chunk}");
    }
}

#[test]
fn a_bad_line_stops_the_batches_naming_it() {
    let text = "{\"kind\":\"entity\",\"name\":\"a\"}\n\nnot json\n";
    for chunk in [2, text.len()] {
        let (got, err) = batches(text, 10, chunk);
        assert!(err.as_deref().unwrap().starts_with("line 3: not JSON"), "{err:?}");
        assert!(got.is_empty(), "the batch before the bad line is not full: not handed on");
    }
    // A line without its end longer than an import reads is refused before its end comes.
    let mut lines = ChunkBatcher::new(10);
    lines.feed(b"{\"kind\":\"entity\"}\n");
    lines.feed(&vec![b' '; MAX_LINE_BYTES + 1]);
    let e = lines.next_batch().unwrap_err();
    assert_eq!(e.to_string(), format!("line 2: longer than {MAX_LINE_BYTES} bytes"));
}
