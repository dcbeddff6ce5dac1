//! Listing tested through a whole engine: a namespace written without keyword postings
//! gets them when reopened.

/// A namespace written by 0.1.0 (memories, no postings, no flag) gets its postings when
/// the store is opened again and recalled by keyword; its statistics and storage charge
/// then equal those of the same memories written with the index.
#[test]
fn memories_written_without_postings_are_found_by_keyword_after_reopening() {
    use crate::auth::NamespaceAction;
    use crate::{Engine, NamespaceOptions, Options, Recall, StoreMemory};

    let dir = tempfile::tempdir().unwrap();
    let texts = ["Alice adopted a greyhound named Pixel", "Budget: $2.4M allocated", "x"];
    let open =
        || Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    let engine = open();
    let root = engine.root();
    for ns in ["fresh", "older"] {
        root.create_namespace(ns, NamespaceOptions::default()).unwrap();
        let batch = texts.iter().map(|t| StoreMemory::text(*t)).collect();
        root.store_memories(ns, batch).unwrap();
    }
    // (Names of one length: a record holds its namespace's name, and its size is charged.)
    // Make "older" what 0.1.0 wrote: no postings, no keyword statistics, no charge for them.
    let caller = root.caller().unwrap();
    let rec = root.namespace_for(&caller, "older", NamespaceAction::Manage).unwrap();
    let env = engine.root().state.data_env_of(&rec).unwrap();
    env.write_ns(rec.id, |w, t| {
        let mut charges = 0;
        for s in crate::records::memory::scan_memories(t, w, rec.id)? {
            charges += crate::keyword::charge(&s?.memory.content);
        }
        let mut keys = Vec::new();
        for row in t.postings.prefix_iter(w, &rec.id.to_be_bytes())? {
            keys.push(row?.0.to_vec());
        }
        assert!(!keys.is_empty());
        for k in keys {
            t.postings.delete(w, &k)?;
        }
        let mut stats = t.stats_of(w, rec.id)?;
        stats.storage_bytes -= charges;
        (stats.keyword_docs, stats.keyword_terms, stats.keyword_indexed) = (0, 0, false);
        t.put_stats(w, rec.id, &stats)
    })
    .unwrap();
    let keyword = |root: &crate::Handle, ns: &str, q: &str| {
        let req = Recall {
            mode: Some(crate::RecallMode::Keyword),
            ..Recall::text(q).namespace(ns).top_k(5)
        };
        root.recall(req).unwrap().into_iter().map(|h| h.content).collect::<Vec<_>>()
    };
    drop((env, root, engine));

    let engine = open();
    let root = engine.root();
    assert_eq!(keyword(&root, "older", "greyhound"), [texts[0]]);
    assert_eq!(keyword(&root, "older", "budget allocated"), [texts[1]]);
    // Hybrid recall ranks it too, with its keyword score.
    let hits = root.recall(Recall::text("Pixel").namespace("older").top_k(1)).unwrap();
    assert_eq!(hits[0].content, texts[0]);
    assert!(hits[0].keyword_score.is_some_and(|k| k > 0.0));
    let (old, indexed) =
        (root.get_namespace("older").unwrap(), root.get_namespace("fresh").unwrap());
    assert_eq!(old.storage_bytes, indexed.storage_bytes);
    let stats = |ns: &str| {
        let rec = root.namespace_for(&caller, ns, NamespaceAction::Manage).unwrap();
        let env = engine.root().state.data_env_of(&rec).unwrap();
        env.read(|r, t| t.stats_of(r, rec.id)).unwrap()
    };
    let (o, i) = (stats("older"), stats("fresh"));
    assert_eq!((o.keyword_docs, o.keyword_terms), (i.keyword_docs, i.keyword_terms));
    assert!(o.keyword_indexed && i.keyword_indexed);
    // A deletion afterwards releases what was charged, no more.
    let id = root.recall(Recall::text("Pixel").namespace("older").top_k(1)).unwrap()[0].id.clone();
    root.delete_memory(Some("older"), &id).unwrap();
    let id = root.recall(Recall::text("Pixel").namespace("fresh").top_k(1)).unwrap()[0].id.clone();
    root.delete_memory(Some("fresh"), &id).unwrap();
    assert_eq!(
        root.get_namespace("older").unwrap().storage_bytes,
        root.get_namespace("fresh").unwrap().storage_bytes
    );
}
