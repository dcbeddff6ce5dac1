//! An import's batches of memories written together (`Handle::write_batches`), tested
//! through a whole engine.

use crate::auth::NamespaceAction;
use crate::memory::CALLER_EMBEDDER;
use crate::{Engine, NamespaceOptions, Options, StoreMemory};

fn batch(from: usize, dims: usize) -> Vec<StoreMemory> {
    (from..from + 4)
        .map(|i| StoreMemory {
            id: Some(format!("m-{i}")),
            embedding: Some((0..dims).map(|d| (i + d + 1) as f32).collect()),
            ..StoreMemory::text(format!("note {i}"))
        })
        .collect()
}

/// Batches written together are made durable by one commit and are all there; when one of
/// them cannot be written (here its vectors have other dimensions than the batches before,
/// found inside the transaction), none is, and each is given back to be written alone.
#[test]
fn batches_written_together_share_one_commit_and_fail_together() {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    let root = engine.root();
    root.create_namespace("ns", NamespaceOptions::default()).unwrap();
    let caller = root.caller().unwrap();
    let rec = root.namespace_for(&caller, "ns", NamespaceAction::Manage).unwrap();
    let env = root.state.data_env_of(&rec).unwrap();
    let count = || root.get_namespace("ns").unwrap().memory_count;
    let prepare = |items| root.prepare_memories("ns", items, CALLER_EMBEDDER).unwrap();

    let mut batches = vec![prepare(batch(0, 4)), prepare(batch(4, 4)), prepare(batch(8, 4))];
    let before = env.commits();
    assert_eq!(root.write_batches(&mut batches).unwrap(), vec![4, 4, 4]);
    assert_eq!(env.commits(), before + 1, "three batches, one commit");
    assert!(batches.is_empty());
    assert_eq!(count(), 12);

    // The namespace holds 4-dimensional vectors now: a batch of 3-dimensional ones fails in
    // the transaction, after the rows of the batch before it were put there.
    let mut batches = vec![prepare(batch(12, 4)), prepare(batch(16, 3))];
    let err = root.write_batches(&mut batches).unwrap_err();
    assert!(err.to_string().contains("dimensions"), "{err}");
    assert_eq!(count(), 12, "nothing of either batch");
    assert_eq!(batches.len(), 2, "both given back");
    let mut alone = batches.into_iter();
    assert_eq!(root.write_batch(alone.next().unwrap()).unwrap().len(), 4);
    assert!(root.write_batch(alone.next().unwrap()).is_err());
    assert_eq!(count(), 16);
}
