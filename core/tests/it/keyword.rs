//! Keyword (BM25) and hybrid recall through the public API: exact words found, read-your-writes,
//! deletes and updates leave the index, both scores on every hit, and bad modes refused.

use memsilo::api::Request;
use memsilo::{
    Engine, ErrorCode, Forget, NamespaceOptions, Options, Recall, RecallMode, StoreMemory,
};

fn open() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    e.root().create_namespace("ns", NamespaceOptions::default()).unwrap();
    (dir, e)
}

fn recall(e: &Engine, q: &str, mode: RecallMode) -> Vec<memsilo::RecallHit> {
    let req = Recall { mode: Some(mode), ..Recall::text(q).namespace("ns").top_k(5) };
    e.root().recall(req).unwrap()
}

#[test]
fn keyword_recall_finds_exact_words_as_soon_as_they_are_written_and_forgets_deleted_ones() {
    let (_d, e) = open();
    let texts = [
        "Invoice INV-88231 was paid on Tuesday",
        "The customer prefers email over phone calls",
        "Flight to Berlin departs at 7am",
    ];
    let ids = e
        .root()
        .store_memories("ns", texts.iter().map(|t| StoreMemory::text(*t)).collect())
        .unwrap();
    let hits = recall(&e, "INV-88231", RecallMode::Keyword);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].id, ids[0]);
    assert!(hits[0].keyword_score.unwrap() > 0.0);
    // Stemming and case folding: "Emails" matches "email".
    assert_eq!(recall(&e, "Emails", RecallMode::Keyword)[0].id, ids[1]);
    // Hybrid (the default for text) carries both scores on every hit.
    let hybrid = e.root().recall(Recall::text("berlin flight").namespace("ns")).unwrap();
    assert_eq!(hybrid[0].id, ids[2]);
    assert!(hybrid.iter().all(|h| h.keyword_score.is_some() && h.vector_score.is_some()));
    let weighted = Recall { vector_weight: Some(0.0), ..Recall::text("berlin").namespace("ns") };
    assert_eq!(e.root().recall(weighted).unwrap()[0].id, ids[2]);

    e.root().delete_memory(Some("ns"), &ids[0]).unwrap();
    assert!(recall(&e, "INV-88231", RecallMode::Keyword).is_empty());
    e.root()
        .batch_forget(Forget {
            namespace: Some("ns".into()),
            ids: Some(vec![ids[1].clone()]),
            ..Default::default()
        })
        .unwrap();
    assert!(recall(&e, "email", RecallMode::Keyword).is_empty());
    // Storing again after deletes: the index stays consistent.
    e.root()
        .store_memory(StoreMemory {
            namespace: Some("ns".into()),
            ..StoreMemory::text("email invoice")
        })
        .unwrap();
    assert_eq!(recall(&e, "invoice", RecallMode::Keyword).len(), 1);
}

#[test]
fn namespaces_do_not_see_each_others_words() {
    let (_d, e) = open();
    e.root().create_namespace("other", NamespaceOptions::default()).unwrap();
    e.root()
        .store_memory(StoreMemory {
            namespace: Some("other".into()),
            ..StoreMemory::text("zebra crossing")
        })
        .unwrap();
    assert!(recall(&e, "zebra", RecallMode::Keyword).is_empty());
}

#[test]
fn bad_modes_and_queries_are_invalid_arguments_naming_the_field() {
    let (_d, e) = open();
    let field = |r: Recall| match e.root().recall(r) {
        Err(memsilo::Error::InvalidArgument { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let parsed = Request::parse(
        "recall",
        serde_json::json!({"namespace": "ns", "query": "q", "mode": "fuzzy"}),
    );
    let err = parsed.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(err.to_string().contains("mode"), "{err}");
    assert_eq!(field(Recall::text("x".repeat(65 * 1024)).namespace("ns")), "query");
    let vector_keyword = Recall {
        mode: Some(RecallMode::Keyword),
        ..Recall::vector(vec![0.5; 256]).namespace("ns")
    };
    assert_eq!(field(vector_keyword), "mode");
    let weight = Recall { vector_weight: Some(1.5), ..Recall::text("q").namespace("ns") };
    assert_eq!(field(weight), "vector_weight");
}
