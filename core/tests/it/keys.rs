//! Keys: hashed at rest, rejected when expired, revoked, malformed or foreign; rotation.

use std::path::Path;

use chrono::{Duration, Utc};
use memsilo::{Access, CreateKey, Engine, ErrorCode, ManualClock, NamespaceOptions, Options};

/// Files under `dir` (recursively) whose bytes contain `needle`.
pub(crate) fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

#[test]
fn raw_secrets_never_reach_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = {
        let engine =
            Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
        let root = engine.root();
        root.create_namespace("ns", NamespaceOptions::default()).unwrap();
        let admin = engine.generate_admin_key().unwrap();
        let mut secrets = vec![admin];
        for i in 0..20 {
            let k = root
                .create_key(CreateKey::namespaces(format!("k{i}"), [("ns", Access::Write)]))
                .unwrap();
            let rotated = root.rotate_key(&k.info.id).unwrap();
            secrets.push(k.key);
            secrets.push(rotated.key);
        }
        secrets
    };
    for s in &secrets {
        // The secret part (after the id) must not be anywhere; nor the whole key text.
        let secret_part = &s[21..];
        assert!(
            files_containing(dir.path(), secret_part.as_bytes()).is_empty(),
            "secret of {} found on disk",
            &s[..20]
        );
        assert!(files_containing(dir.path(), s.as_bytes()).is_empty());
    }
}

#[test]
fn expired_revoked_malformed_and_foreign_keys_are_unauthorized() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(ManualClock::starting_now());
    let engine = Engine::open(
        dir.path(),
        Options { background: false, clock: clock.clone(), ..Options::default() },
    )
    .unwrap();
    let root = engine.root();
    root.create_namespace("ns", NamespaceOptions::default()).unwrap();
    let expiring = root
        .create_key(CreateKey {
            expires_at: Some(Utc::now() + Duration::seconds(60)),
            ..CreateKey::namespaces("short", [("ns", Access::Read)])
        })
        .unwrap();
    let h = engine.scoped(&expiring.key).unwrap();
    assert!(h.get_memory_policy("ns").is_ok());
    clock.advance_secs(61.0);
    assert_eq!(h.get_memory_policy("ns").unwrap_err().code(), ErrorCode::Unauthorized);
    assert_eq!(engine.scoped(&expiring.key).unwrap_err().code(), ErrorCode::Unauthorized);

    // A key from another data directory: well-formed, unknown here.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Engine::open(other_dir.path(), Options { background: false, ..Options::default() })
        .unwrap();
    other.root().create_namespace("ns", NamespaceOptions::default()).unwrap();
    let foreign =
        other.root().create_key(CreateKey::namespaces("f", [("ns", Access::Write)])).unwrap();
    assert_eq!(engine.scoped(&foreign.key).unwrap_err().code(), ErrorCode::Unauthorized);

    let good = root.create_key(CreateKey::namespaces("good", [("ns", Access::Write)])).unwrap();
    let mut truncated = good.key.clone();
    truncated.pop();
    let mut flipped = good.key.clone().into_bytes();
    flipped[30] = if flipped[30] == b'x' { b'y' } else { b'x' };
    for bad in [
        "",
        "Bearer",
        "msk_",
        truncated.as_str(),
        std::str::from_utf8(&flipped).unwrap(),
        "msk_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert_eq!(engine.scoped(bad).unwrap_err().code(), ErrorCode::Unauthorized, "{bad:?}");
    }

    // Rotation: the old secret fails at once, the new one works, on existing handles too.
    let h = engine.scoped(&good.key).unwrap();
    let rotated = root.rotate_key(&good.info.id).unwrap();
    assert_eq!(h.get_memory_policy("ns").unwrap_err().code(), ErrorCode::Unauthorized);
    assert!(engine.scoped(&rotated.key).unwrap().get_memory_policy("ns").is_ok());
    assert_eq!(rotated.info.id, good.info.id);

    // Listing never shows secrets.
    let listed =
        serde_json::to_string(&root.list_keys(memsilo::Page::default(), None).unwrap()).unwrap();
    assert!(!listed.contains(&rotated.key[21..]));
}

#[test]
fn suspended_tenants_keys_are_forbidden_until_reactivated() {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    let root = engine.root();
    let t = root
        .create_tenant(memsilo::CreateTenant { name: "acme".into(), ..Default::default() })
        .unwrap()
        .tenant;
    root.create_namespace(
        "acme-ns",
        NamespaceOptions { tenant_id: Some(t.id.clone()), ..Default::default() },
    )
    .unwrap();
    let k = root.create_key(CreateKey::namespaces("k", [("acme-ns", Access::Write)])).unwrap();
    let h = engine.scoped(&k.key).unwrap();
    let suspend = |status| memsilo::UpdateTenant { status: Some(status), ..Default::default() };
    root.update_tenant(&t.id, suspend(memsilo::TenantStatus::Suspended)).unwrap();
    assert_eq!(h.get_memory_policy("acme-ns").unwrap_err().code(), ErrorCode::Forbidden);
    root.update_tenant(&t.id, suspend(memsilo::TenantStatus::Active)).unwrap();
    assert!(h.get_memory_policy("acme-ns").is_ok());
    root.delete_tenant(&t.id).unwrap();
    assert_eq!(h.get_memory_policy("acme-ns").unwrap_err().code(), ErrorCode::Unauthorized);
}

#[test]
fn two_opens_of_one_path_share_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let a = Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    let b = Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    a.root().create_namespace("shared", NamespaceOptions::default()).unwrap();
    assert_eq!(b.root().get_namespace("shared").unwrap().name, "shared");
}
