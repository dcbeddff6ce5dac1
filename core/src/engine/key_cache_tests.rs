use crate::auth::Access;
use crate::keys::CreateKey;
use crate::namespace::NamespaceOptions;
use crate::{Engine, Options};

/// A catalog write drops only the cached key resolutions it changes: new namespaces and
/// keys, a policy or another key's revocation keep a key's resolution; its own rotation
/// or revocation, or the deletion of a namespace it is granted, drop it.
#[test]
fn catalog_writes_drop_only_the_key_resolutions_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    let root = engine.root();
    for ns in ["a", "b"] {
        root.create_namespace(ns, NamespaceOptions::default()).unwrap();
    }
    let mint = |name: &str, ns: &[&str]| {
        root.create_key(CreateKey::namespaces(name, ns.iter().map(|n| (*n, Access::Write))))
            .unwrap()
    };
    let on_a = mint("on-a", &["a"]);
    let on_b = mint("on-b", &["b"]);
    let other = mint("other", &["a"]);
    let cached = |k: &crate::keys::CreatedKey| engine.inner.state.key_cached(&k.info.id);
    for k in [&on_a, &on_b, &other] {
        engine.scoped(&k.key).unwrap().whoami().unwrap();
        assert!(cached(k));
    }

    root.create_namespace("c", NamespaceOptions::default()).unwrap();
    mint("new", &["c"]);
    root.set_memory_policy("a", crate::namespace::DecayPolicy::default()).unwrap();
    root.revoke_key(&other.info.id).unwrap();
    assert!(cached(&on_a) && cached(&on_b), "kept across writes that do not change them");
    assert!(!cached(&other), "a revoked key's resolution is dropped");
    assert!(engine.scoped(&other.key).is_err());

    root.delete_namespace("b").unwrap();
    assert!(cached(&on_a));
    assert!(!cached(&on_b), "a key granted a deleted namespace is resolved again");

    let rotated = root.rotate_key(&on_a.info.id).unwrap();
    assert!(!cached(&on_a));
    assert!(engine.scoped(&on_a.key).is_err());
    assert!(engine.scoped(&rotated.key).is_ok());
}
