use chrono::Utc;

use super::*;
use crate::catalog::CatalogTables;
use crate::store::Store;

fn catalog(dir: &std::path::Path) -> Store<CatalogTables> {
    Store::open(&dir.join("catalog"), 1 << 20, None).unwrap()
}

fn draft(tenant: &str, action: &str) -> Draft {
    Draft {
        time: Utc::now(),
        tenant_id: tenant.into(),
        actor: AuditActor { principal: "root".into(), ..AuditActor::default() },
        action: action.into(),
        target: None,
        outcome: Ok(()),
        request_id: "r".into(),
    }
}

fn verify(catalog: &Store<CatalogTables>, tenant: &str) -> AuditVerification {
    catalog.read(|r, t| verify_chain(r, &t.audit, tenant)).unwrap()
}

/// A catalog whose log holds a chain of `n` entries, as `n` control-plane requests leave it.
fn chain(n: usize) -> (tempfile::TempDir, Store<CatalogTables>, String) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog(dir.path());
    let id = "acme".to_owned();
    let batch: Vec<Draft> = (0..n)
        .map(|i| draft(&id, if i == 0 { "create_tenant" } else { "create_namespace" }))
        .collect();
    catalog.write(|w, t| write_batch(w, &t.audit, &batch)).unwrap();
    assert!(verify(&catalog, &id).ok);
    (dir, catalog, id)
}

/// Changes one stored row of `tenant`'s chain, as someone with the files could.
fn tamper(
    catalog: &Store<CatalogTables>,
    tenant: &str,
    seq: u64,
    f: impl Fn(&mut AuditEntry) -> bool + Sync,
) {
    catalog
        .write(|w, t| {
            let t = &t.audit;
            let key = entry_key(tenant, seq);
            let mut entry = t.entries.get(w, &key)?.unwrap();
            if f(&mut entry) {
                t.entries.put(w, &key, &entry)?;
            } else {
                t.entries.delete(w, &key)?;
            }
            Ok(())
        })
        .unwrap();
}

fn broken(catalog: &Store<CatalogTables>, tenant: &str) -> BrokenEntry {
    let v = verify(catalog, tenant);
    assert!(!v.ok);
    v.first_broken.unwrap()
}

#[test]
fn an_edited_entry_is_named_by_verify() {
    let (_dir, catalog, id) = chain(6);
    tamper(&catalog, &id, 3, |e| {
        e.actor.principal = "member".into();
        true
    });
    let b = broken(&catalog, &id);
    assert_eq!(b.seq, 3);
    assert!(b.reason.contains("edited"), "{}", b.reason);
}

#[test]
fn an_edited_entry_with_a_recomputed_hash_breaks_the_next_link() {
    let (_dir, catalog, id) = chain(6);
    tamper(&catalog, &id, 2, |e| {
        e.result = "refused".into();
        e.hash = entry_hash(e);
        true
    });
    assert_eq!(broken(&catalog, &id).seq, 3);
}

#[test]
fn a_removed_entry_is_named_by_verify_in_the_middle_and_at_the_end() {
    let (_dir, catalog, id) = chain(6);
    tamper(&catalog, &id, 4, |_| false);
    let b = broken(&catalog, &id);
    assert_eq!(b.seq, 4);
    assert!(b.reason.contains("missing"), "{}", b.reason);

    let (_dir, catalog, id) = chain(6);
    tamper(&catalog, &id, 6, |_| false);
    let b = broken(&catalog, &id);
    assert_eq!(b.seq, 6);
    assert!(b.reason.contains("missing"), "{}", b.reason);
}

#[test]
fn an_entry_moved_to_another_tenant_does_not_verify_there() {
    let (_dir, catalog, id) = chain(3);
    tamper(&catalog, &id, 2, |e| {
        e.tenant_id = "someone-else".into();
        e.hash = entry_hash(e);
        true
    });
    assert_eq!(broken(&catalog, &id).seq, 2);
}

fn entries(catalog: &Store<CatalogTables>, tenant: &str) -> Vec<AuditEntry> {
    catalog
        .read(|r, t| {
            let rows = t.audit.entries.prefix_iter(r, &format!("{tenant}/"))?;
            Ok(rows.map(|e| e.map(|(_, v)| v)).collect::<heed3::Result<_>>()?)
        })
        .unwrap()
}

/// A data directory of an earlier version kept the log in its own environment
/// (`DIR/audit`): opening it moves the chains into the catalog, intact, and removes it.
#[test]
fn a_log_in_its_own_environment_is_moved_into_the_catalog_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let old = Store::<OldAuditTables>::open(&dir.path().join("audit"), 1 << 20, None).unwrap();
        let batch = [draft("t1", "create_tenant"), draft("t1", "create_namespace")];
        old.write(|w, t| write_batch(w, &t.0, &batch)).unwrap();
    }
    let catalog = catalog(dir.path());
    adopt_old_log(dir.path(), &catalog).unwrap();
    assert!(!dir.path().join("audit").exists());
    let actions: Vec<String> = entries(&catalog, "t1").into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["create_tenant", "create_namespace"]);
    let v = verify(&catalog, "t1");
    assert!(v.ok && v.head_seq == 2, "{v:?}");
}
