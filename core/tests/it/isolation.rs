//! Property test: random operations from several tenants and keys, checked against a simple
//! in-memory model of who may see what. No key may ever observe data outside its scope.

use std::collections::{BTreeMap, BTreeSet};

use memsilo::{
    Access, CreateKey, CreateTenant, Engine, ErrorCode, Forget, Handle, NamespaceOptions, Options,
    QuotasPatch, Recall, Role, StoreMemory,
};

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Can {
    Nothing,
    Read,
    Write,
    Manage,
}

struct Actor {
    handle: Handle,
    label: String,
    /// tenant index for member keys (they can reach namespaces created later in the tenant).
    tenant: Option<(usize, Role)>,
    /// explicit namespace grants.
    grants: BTreeMap<String, Access>,
}

struct Model {
    /// namespace name -> (tenant index, memory id -> content)
    namespaces: BTreeMap<String, (usize, BTreeMap<String, String>)>,
    /// namespace name -> its session ids (drawn from a small pool, so namespaces share ids)
    sessions: BTreeMap<String, BTreeSet<String>>,
}

impl Actor {
    fn can(&self, model: &Model, ns: &str) -> Can {
        let Some((tenant, _)) = model.namespaces.get(ns) else { return Can::Nothing };
        if let Some((t, role)) = self.tenant {
            if t != *tenant {
                return Can::Nothing;
            }
            return match role {
                Role::Viewer => Can::Read,
                Role::Editor => Can::Write,
                Role::Admin => Can::Manage,
            };
        }
        match self.grants.get(ns) {
            Some(Access::Write) => Can::Write,
            Some(Access::Read) => Can::Read,
            None => Can::Nothing,
        }
    }
}

fn expect_refused<T: std::fmt::Debug>(r: memsilo::Result<T>, ctx: &str) {
    let e = r.expect_err(ctx);
    assert!(
        matches!(e.code(), ErrorCode::Forbidden | ErrorCode::NotFound | ErrorCode::Unauthorized),
        "{ctx}: unexpected error {e}"
    );
}

#[test]
#[allow(clippy::too_many_lines)] // one loop over the operation kinds reads best as a whole
fn random_operations_never_cross_a_scope() {
    let seed = std::env::var("MEMSILO_PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_1234_u64);
    let ops: usize =
        std::env::var("MEMSILO_PROP_OPS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    eprintln!("isolation property test: seed {seed}, {ops} operations");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let engine =
        Engine::open(dir.path(), Options { background: false, ..Options::default() }).unwrap();
    let root = engine.root();

    let mut model = Model { namespaces: BTreeMap::new(), sessions: BTreeMap::new() };
    let mut tenants = Vec::new();
    for t in 0..3 {
        let tenant = root
            .create_tenant(CreateTenant {
                name: format!("tenant_{t}"),
                quotas: Some(QuotasPatch { qps_limit: Some(1_000_000), ..Default::default() }),
                ..Default::default()
            })
            .unwrap()
            .tenant;
        for n in 0..2 {
            let name = format!("t{t}-ns{n}");
            root.create_namespace(
                &name,
                NamespaceOptions { tenant_id: Some(tenant.id.clone()), ..Default::default() },
            )
            .unwrap();
            model.namespaces.insert(name, (t, BTreeMap::new()));
        }
        tenants.push(tenant);
    }

    let mut actors = Vec::new();
    for (t, tenant) in tenants.iter().enumerate() {
        for role in [Role::Viewer, Role::Editor, Role::Admin] {
            let member =
                root.add_member(&tenant.id, &format!("{role:?}@t{t}"), role, None).unwrap();
            let key = root
                .create_key(CreateKey::member(format!("{role:?}"), &tenant.id, &member.member_id))
                .unwrap();
            actors.push(Actor {
                handle: engine.scoped(&key.key).unwrap(),
                label: format!("t{t}-{role:?}"),
                tenant: Some((t, role)),
                grants: BTreeMap::new(),
            });
        }
        for (n, access) in [(0, Access::Write), (1, Access::Read)] {
            let ns = format!("t{t}-ns{n}");
            let key = root
                .create_key(CreateKey::namespaces(format!("k{t}{n}"), [(ns.as_str(), access)]))
                .unwrap();
            actors.push(Actor {
                handle: engine.scoped(&key.key).unwrap(),
                label: format!("scoped-{ns}-{access:?}"),
                tenant: None,
                grants: BTreeMap::from([(ns, access)]),
            });
        }
    }

    let mut created = 0usize;
    let mut stats = BTreeMap::<&str, usize>::new();
    for step in 0..ops {
        let actor = &actors[rng.below(actors.len())];
        let names: Vec<String> = model.namespaces.keys().cloned().collect();
        // Sometimes aim at a namespace that does not exist (or no longer exists).
        let ns = if rng.below(10) == 0 {
            format!("ghost-{}", rng.below(5))
        } else {
            names[rng.below(names.len())].clone()
        };
        let can = actor.can(&model, &ns);
        let ctx = format!("step {step} seed {seed}: {} on {ns} ({can:?})", actor.label);
        match rng.below(100) {
            0..=29 => {
                *stats.entry("store").or_default() += 1;
                let content = format!("memory {step} of {ns}");
                let r = actor.handle.store_memory(StoreMemory {
                    namespace: Some(ns.clone()),
                    ..StoreMemory::text(&content)
                });
                if matches!(can, Can::Write | Can::Manage) {
                    let m = r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    model.namespaces.get_mut(&ns).unwrap().1.insert(m.id, content);
                } else {
                    expect_refused(r, &ctx);
                }
            }
            30..=54 => {
                *stats.entry("recall").or_default() += 1;
                let r = actor.handle.recall(Recall::text("memory of").namespace(&ns).top_k(50));
                if can == Can::Nothing {
                    expect_refused(r, &ctx);
                } else {
                    let hits = r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    let mine = &model.namespaces[&ns].1;
                    for h in &hits {
                        assert_eq!(
                            mine.get(&h.id),
                            Some(&h.content),
                            "{ctx}: recall returned a memory not in {ns}"
                        );
                    }
                    assert_eq!(hits.len(), mine.len().min(50), "{ctx}: recall missed memories");
                }
            }
            55..=69 => {
                *stats.entry("get_guessed_id").or_default() += 1;
                // An id from anywhere, possibly another tenant's.
                let all: Vec<(String, String)> = model
                    .namespaces
                    .iter()
                    .flat_map(|(n, (_, m))| m.keys().map(move |id| (n.clone(), id.clone())))
                    .collect();
                if all.is_empty() {
                    continue;
                }
                let (home, id) = &all[rng.below(all.len())];
                let r = actor.handle.get_memory(Some(&ns), id);
                match (can, home == &ns) {
                    (Can::Nothing, _) => expect_refused(r, &ctx),
                    (_, true) => assert_eq!(r.unwrap_or_else(|e| panic!("{ctx}: {e}")).id, *id),
                    (_, false) => {
                        assert_eq!(r.expect_err(&ctx).code(), ErrorCode::NotFound, "{ctx}");
                    }
                }
            }
            70..=79 => {
                *stats.entry("forget").or_default() += 1;
                let mine: Vec<String> = model
                    .namespaces
                    .get(&ns)
                    .map(|n| n.1.keys().cloned().collect())
                    .unwrap_or_default();
                let foreign: Vec<String> = model
                    .namespaces
                    .iter()
                    .filter(|(n, _)| **n != ns)
                    .flat_map(|(_, (_, m))| m.keys().cloned())
                    .take(3)
                    .collect();
                let mut ids: Vec<String> = mine.iter().take(2).cloned().collect();
                ids.extend(foreign);
                let r = actor.handle.batch_forget(Forget {
                    namespace: Some(ns.clone()),
                    ids: Some(ids),
                    ..Default::default()
                });
                if matches!(can, Can::Write | Can::Manage) {
                    let n = r.unwrap_or_else(|e| panic!("{ctx}: {e}")).forgotten;
                    let expected = mine.len().min(2);
                    assert_eq!(n as usize, expected, "{ctx}: forget reached outside its namespace");
                    for id in mine.iter().take(2) {
                        model.namespaces.get_mut(&ns).unwrap().1.remove(id);
                    }
                } else {
                    expect_refused(r, &ctx);
                }
            }
            80..=89 => {
                *stats.entry("list").or_default() += 1;
                let listed: BTreeSet<String> = actor
                    .handle
                    .list_namespaces(memsilo::Page::new(0, 100), None)
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"))
                    .items
                    .into_iter()
                    .map(|n| n.name)
                    .collect();
                let visible: BTreeSet<String> = model
                    .namespaces
                    .keys()
                    .filter(|n| actor.can(&model, n) != Can::Nothing)
                    .cloned()
                    .collect();
                assert_eq!(listed, visible, "{ctx}: list shows the wrong namespaces");
            }
            90..=92 => {
                *stats.entry("session").or_default() += 1;
                // Start a session whose id other namespaces may have too, then read a session
                // id seen anywhere: only this namespace's session of that id may answer.
                let id = format!("s{}", rng.below(6));
                let r = actor.handle.start_session(memsilo::StartSession {
                    namespace: Some(ns.clone()),
                    id: Some(id.clone()),
                    ..Default::default()
                });
                let exists = model.sessions.get(&ns).is_some_and(|s| s.contains(&id));
                match can {
                    Can::Write | Can::Manage if exists => {
                        let e = r.expect_err(&ctx);
                        assert_eq!(e.code(), ErrorCode::Conflict, "{ctx}");
                    }
                    Can::Write | Can::Manage => {
                        assert_eq!(r.unwrap_or_else(|e| panic!("{ctx}: {e}")).namespace, ns);
                        model.sessions.entry(ns.clone()).or_default().insert(id);
                    }
                    _ => expect_refused(r, &ctx),
                }
                let id = format!("s{}", rng.below(6));
                let r = actor.handle.get_session(Some(&ns), &id);
                let exists = model.sessions.get(&ns).is_some_and(|s| s.contains(&id));
                match (can, exists) {
                    (Can::Nothing, _) => expect_refused(r, &ctx),
                    (_, true) => {
                        let s = r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        assert_eq!((s.id, s.namespace), (id, ns.clone()), "{ctx}");
                    }
                    (_, false) => {
                        assert_eq!(r.expect_err(&ctx).code(), ErrorCode::NotFound, "{ctx}");
                    }
                }
                let r = actor.handle.list_sessions(memsilo::ListSessions {
                    namespace: Some(ns.clone()),
                    limit: Some(100),
                    ..Default::default()
                });
                if can == Can::Nothing {
                    expect_refused(r, &ctx);
                } else {
                    let listed: BTreeSet<String> = r
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"))
                        .sessions
                        .into_iter()
                        .map(|s| s.id)
                        .collect();
                    let expected = model.sessions.get(&ns).cloned().unwrap_or_default();
                    assert_eq!(listed, expected, "{ctx}: list_sessions crossed a namespace");
                }
            }
            93..=95 => {
                *stats.entry("create_namespace").or_default() += 1;
                let Some((t, _)) = actor.tenant else { continue };
                let name = format!("t{t}-extra{created}");
                created += 1;
                let r = actor.handle.create_namespace(&name, NamespaceOptions::default());
                if actor.tenant.is_some_and(|(_, role)| role == Role::Admin) {
                    r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    model.namespaces.insert(name, (t, BTreeMap::new()));
                } else {
                    expect_refused(r, &ctx);
                }
            }
            _ => {
                *stats.entry("delete_namespace").or_default() += 1;
                if !ns.contains("extra") && !ns.starts_with("ghost") {
                    continue;
                }
                let r = actor.handle.delete_namespace(&ns);
                if can == Can::Manage {
                    r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    model.namespaces.remove(&ns);
                    model.sessions.remove(&ns);
                } else {
                    expect_refused(r, &ctx);
                }
            }
        }
    }
    eprintln!("operations by kind: {stats:?}");
    assert!(stats.values().sum::<usize>() > ops * 9 / 10);
}
