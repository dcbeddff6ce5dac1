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

/// Recall ranks its candidates from a few fields of each record (importance, update time,
/// expiry, agent) and decodes only the hits it returns; a filter other than the agent makes it
/// decode every candidate whole. `min_importance: 0` filters nothing, so in every mode both
/// ways must return the same hits with the same scores: decay, expiry, the decay floor and the
/// agent applied alike.
#[test]
fn ranking_from_a_records_fields_is_the_ranking_of_the_whole_records() {
    use memsilo::{DecayPolicy, ManualClock};
    let clock = std::sync::Arc::new(ManualClock::starting_now());
    let dir = tempfile::tempdir().unwrap();
    let opts = Options { background: false, clock: clock.clone(), ..Options::default() };
    let e = Engine::open(dir.path(), opts).unwrap();
    let policy = DecayPolicy { decay_rate: 0.05, min_importance: 0.1, ttl_default: None };
    e.root()
        .create_namespace("ns", NamespaceOptions { policy: Some(policy), ..Default::default() })
        .unwrap();
    let words = ["rust", "memory", "engine", "invoice", "berlin", "flight", "email"];
    let mut expired = Vec::new();
    let mut faded = Vec::new();
    for i in 0..60usize {
        let importance = 0.05 + (i % 10) as f64 / 10.0;
        let ttl = (i % 7 == 0).then_some(3600);
        let content = format!(
            "note {i}: {} {} \"quoted\" \\ {}",
            words[i % 7],
            words[(i * 3 + 1) % 7],
            "x".repeat(i)
        );
        let m = StoreMemory {
            namespace: Some("ns".into()),
            agent_id: Some(if i % 2 == 0 { "a" } else { "b" }.into()),
            importance: Some(importance),
            ttl,
            metadata: Some(
                serde_json::json!({ "i": i, "nested": { "words": words } })
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            tags: vec![format!("t{}", i % 3)],
            ..StoreMemory::text(content)
        };
        let id = e.root().store_memory(m).unwrap().id;
        if ttl.is_some() {
            expired.push(id);
        } else if importance * (-0.05f64 * 2.0).exp() < 0.1 {
            faded.push(id);
        }
    }
    clock.advance_secs(2.0 * 86_400.0);
    assert!(!expired.is_empty() && !faded.is_empty());
    let live = 60 - expired.len() - faded.len();
    for mode in [RecallMode::Vector, RecallMode::Keyword, RecallMode::Hybrid] {
        for agent in [None, Some("a")] {
            for q in ["rust memory", "berlin flight email", "invoice"] {
                let base = Recall {
                    mode: Some(mode),
                    agent_id: agent.map(Into::into),
                    ..Recall::text(q).namespace("ns").top_k(100)
                };
                let whole = Recall { min_importance: Some(0.0), ..base.clone() };
                let fields = e.root().recall(base).unwrap();
                let whole = e.root().recall(whole).unwrap();
                let key = |h: &memsilo::RecallHit| {
                    (h.id.clone(), h.content.clone(), h.score, h.effective_importance)
                };
                assert_eq!(
                    fields.iter().map(key).collect::<Vec<_>>(),
                    whole.iter().map(key).collect::<Vec<_>>(),
                    "{mode:?} {agent:?} {q}"
                );
                assert!(!fields.is_empty(), "{mode:?} {agent:?} {q}");
                assert!(fields.iter().all(|h| !expired.contains(&h.id) && !faded.contains(&h.id)));
                assert!(fields
                    .iter()
                    .all(|h| agent.is_none_or(|a| h.agent_id.as_deref() == Some(a))));
                assert!(fields.windows(2).all(|w| w[0].score >= w[1].score));
                if mode != RecallMode::Keyword && agent.is_none() {
                    assert_eq!(fields.len(), live, "{mode:?} {q}: every live memory");
                }
            }
        }
    }
}

/// Which memories a filter of a test case matches.
type Check = Box<dyn Fn(&memsilo::Memory) -> bool>;

/// A keyword recall with a filter returns what the whole ranking gives once filtered: the same
/// memories in the same order with the same scores — whether the filter is selective (ranked
/// among the memories its secondary keys name) or matches most of the namespace.
#[test]
fn a_filtered_keyword_recall_is_the_whole_ranking_filtered() {
    let (_d, e) = open();
    let root = e.root();
    let words = ["invoice", "flight", "email", "berlin", "payment", "refund", "ticket"];
    let memories: Vec<StoreMemory> = (0..400)
        .map(|i| {
            let text = format!(
                "{} {} {} note {i}",
                words[i % 7],
                words[(i / 7) % 7],
                words[(i * 3 + 1) % 7]
            );
            StoreMemory {
                agent_id: Some(format!("agent-{}", i % 40)),
                tags: vec![format!("t{}", i % 25), "all".into()],
                metadata: Some(
                    serde_json::json!({ "c": format!("c{}", i % 50) }).as_object().unwrap().clone(),
                ),
                ..StoreMemory::text(text)
            }
        })
        .collect();
    for chunk in memories.chunks(100) {
        root.store_memories("ns", chunk.to_vec()).unwrap();
    }
    let query = "invoice berlin refund";
    let everything = Recall {
        mode: Some(RecallMode::Keyword),
        ..Recall::text(query).namespace("ns").top_k(1000)
    };
    let all = root.recall(everything).unwrap();
    assert!(all.len() > 300, "{}", all.len());
    let stored = |id: &str| root.get_memory(Some("ns"), id).unwrap();
    let cases: Vec<(Recall, Check)> = vec![
        (
            Recall { filter: Some(serde_json::json!({"metadata.c": "c7"})), ..Recall::default() },
            Box::new(|m| m.metadata["c"] == "c7"),
        ),
        (
            Recall { agent_id: Some("agent-3".into()), ..Recall::default() },
            Box::new(|m| m.agent_id.as_deref() == Some("agent-3")),
        ),
        (
            Recall { tags: vec!["t4".into()], ..Recall::default() },
            Box::new(|m| m.tags.contains(&"t4".to_owned())),
        ),
        (
            Recall { filter: Some(serde_json::json!({"tags": "all"})), ..Recall::default() },
            Box::new(|_| true),
        ),
    ];
    for (filter, matches) in cases {
        let req = Recall {
            mode: Some(RecallMode::Keyword),
            namespace: Some("ns".into()),
            query: Some(query.into()),
            top_k: Some(5),
            ..filter
        };
        let got = root.recall(req.clone()).unwrap();
        let want: Vec<_> = all.iter().filter(|h| matches(&stored(&h.id))).take(5).collect();
        assert_eq!(got.len(), want.len(), "{req:?}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((&g.id, g.score, g.keyword_score), (&w.id, w.score, w.keyword_score));
        }
    }
}

/// A batch writes its new memories' postings together (one append per term); the index must
/// be the one that writing them one at a time gives: the same hits with the same BM25 scores,
/// with terms whose postings span several blocks, and memories of an earlier batch replaced
/// after new ones in the same batch (a replacement writes the postings pending before it).
#[test]
fn a_batchs_postings_are_those_of_its_memories_written_one_at_a_time() {
    const WORDS: [&str; 7] = ["invoice", "berlin", "flight", "email", "budget", "hiring", "omega"];
    let (_d, e) = open();
    e.root().create_namespace("one", NamespaceOptions::default()).unwrap();
    let item = |id: String, text: String| StoreMemory { id: Some(id), ..StoreMemory::text(text) };
    let first: Vec<StoreMemory> = (0..300)
        .map(|i| item(format!("m{i}"), format!("alpha {} {} x{i}", WORDS[i % 7], WORDS[i % 3])))
        .collect();
    let mut second: Vec<StoreMemory> = (300..600)
        .map(|i| item(format!("m{i}"), format!("alpha {} gamma{} x{i}", WORDS[i % 5], i % 4)))
        .collect();
    second.extend((10..40).map(|i| item(format!("m{i}"), format!("beta alpha replaced x{i}"))));
    second.push(item("m600".into(), "alpha delta epsilon".into()));
    for batch in [first, second] {
        e.root().store_memories("ns", batch.clone()).unwrap();
        for m in batch {
            e.root().store_memory(StoreMemory { namespace: Some("one".into()), ..m }).unwrap();
        }
    }
    for query in
        ["alpha", "invoice budget", "gamma2 hiring", "beta x15", "delta epsilon", "replaced"]
    {
        let ranked = |ns: &str| -> Vec<(String, f64)> {
            let req = Recall {
                mode: Some(RecallMode::Keyword),
                ..Recall::text(query).namespace(ns).top_k(1000)
            };
            let hits = e.root().recall(req).unwrap();
            hits.into_iter().map(|h| (h.content, h.keyword_score.unwrap())).collect()
        };
        let (batched, single) = (ranked("ns"), ranked("one"));
        assert_eq!(batched, single, "{query}");
        assert!(!batched.is_empty(), "{query}");
    }
    assert_eq!(ranked_len(&e, "alpha"), 601);
    assert_eq!(ranked_len(&e, "replaced"), 30);
}

fn ranked_len(e: &Engine, query: &str) -> usize {
    let req = Recall {
        mode: Some(RecallMode::Keyword),
        ..Recall::text(query).namespace("ns").top_k(1000)
    };
    e.root().recall(req).unwrap().len()
}
