use serde_json::json;

use super::*;

#[test]
fn a_vector_block_fills_each_memory_and_refuses_mismatches() {
    let args = json!({ "namespace": "ns", "memories": [{ "content": "a" }, { "content": "b" }] });
    let mut req = Request::parse("store_memories", args.clone()).unwrap();
    req.attach_vectors(&[1.0, 0.0, 0.0, 1.0], 2).unwrap();
    let Request::StoreMemories(batch) = &req else { panic!("wrong op") };
    assert_eq!(batch.memories[1].embedding, Some(vec![0.0, 1.0]));
    let mut nan = Request::parse("store_memories", args.clone()).unwrap();
    let err = nan.attach_vectors(&[1.0, 0.0, 0.0, f32::NAN], 2).unwrap_err();
    assert_eq!(err.to_string(), "memories[1].embedding: element 1 is not a finite number");
    let mut wrong_rows = Request::parse("store_memories", args).unwrap();
    assert!(wrong_rows.attach_vectors(&[1.0, 0.0], 2).is_err());
    let inline = json!({ "namespace": "ns", "memories": [{ "content": "a", "embedding": [1.0] }] });
    let err =
        Request::parse("store_memories", inline).unwrap().attach_vectors(&[1.0], 1).unwrap_err();
    assert!(err.to_string().starts_with("memories[0].embedding:"), "{err}");
    let mut recall = Request::parse("recall", json!({ "namespace": "ns" })).unwrap();
    recall.attach_vectors(&[0.5, 0.5], 2).unwrap();
    assert!(matches!(&recall, Request::Recall(r) if r.vector == Some(vec![0.5, 0.5])));
    assert!(Request::parse("whoami", json!({})).unwrap().attach_vectors(&[1.0], 1).is_err());
    assert!(Request::parse("recall", json!({}))
        .unwrap()
        .attach_vectors(&[1.0, 2.0, 3.0], 2)
        .is_err());
}
