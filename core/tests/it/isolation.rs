//! Property test: random operations from several tenants and keys, checked against a simple
//! in-memory model of who may see what. No key may ever observe data outside its scope.
//!
//! Caller-chosen memory ids and session ids are drawn from small pools shared by every
//! namespace, so the same id lives in several namespaces at once: storing, upserting, getting,
//! updating or forgetting an id must only ever reach the memory of that id in the namespace
//! named. `list_memories` cursors are kept and replayed on other namespaces (and altered):
//! those are refused (`invalid_argument`) without returning anything. Listed and counted
//! memories equal the model's.

use std::collections::{BTreeMap, BTreeSet};

use memsilo::{
    Access, CountMemories, CreateKey, CreateTenant, Engine, ErrorCode, Forget, Handle,
    ListMemories, NamespaceOptions, Options, OrderBy, QuotasPatch, Recall, Role, StoreMemory,
    UpdateMemory,
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

/// What the model knows of one memory.
#[derive(Clone, Debug, PartialEq)]
struct Mem {
    content: String,
    /// Tagged `hot` (what the filtered list and count select).
    hot: bool,
}

/// A `list_memories` cursor seen earlier, with what it was made for.
struct SeenCursor {
    namespace: String,
    cursor: String,
    order: OrderBy,
    descending: bool,
}

struct Model {
    /// namespace name -> (tenant index, memory id -> memory)
    namespaces: BTreeMap<String, (usize, BTreeMap<String, Mem>)>,
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

/// A caller-chosen memory id from a pool every namespace draws from.
fn pool_id(rng: &mut Rng) -> String {
    format!("m{}", rng.below(8))
}

fn expect_invalid<T: std::fmt::Debug>(r: memsilo::Result<T>, field: &str, ctx: &str) {
    let e = r.expect_err(ctx);
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{ctx}: {e}");
    assert!(e.to_string().contains(field), "{ctx}: error does not name {field}: {e}");
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
    let mut cursors: Vec<SeenCursor> = Vec::new();
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
            0..=19 => {
                // Half of the stores name an id from the shared pool: a new memory, or an
                // upsert of this namespace's memory of that id (never another namespace's).
                let id = (rng.below(2) == 0).then(|| pool_id(&mut rng));
                *stats.entry(if id.is_some() { "store_with_id" } else { "store" }).or_default() +=
                    1;
                let content = format!("memory {step} of {ns}");
                let hot = rng.below(3) == 0;
                let r = actor.handle.store_memory(StoreMemory {
                    namespace: Some(ns.clone()),
                    id: id.clone(),
                    tags: if hot { vec!["hot".into()] } else { Vec::new() },
                    ..StoreMemory::text(&content)
                });
                if matches!(can, Can::Write | Can::Manage) {
                    let m = r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    assert_eq!(m.namespace, ns, "{ctx}");
                    if let Some(id) = &id {
                        assert_eq!(&m.id, id, "{ctx}");
                    }
                    model.namespaces.get_mut(&ns).unwrap().1.insert(m.id, Mem { content, hot });
                } else {
                    expect_refused(r, &ctx);
                }
            }
            20..=21 => {
                *stats.entry("store_batch_with_ids").or_default() += 1;
                // A batch of pool ids; a repeated id refuses the whole batch.
                let ids: Vec<String> = (0..=rng.below(3)).map(|_| pool_id(&mut rng)).collect();
                let repeated = ids.iter().collect::<BTreeSet<_>>().len() != ids.len();
                let batch: Vec<StoreMemory> = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| StoreMemory {
                        id: Some(id.clone()),
                        ..StoreMemory::text(format!("memory {step}.{i} of {ns}"))
                    })
                    .collect();
                let r = actor.handle.store_memories(&ns, batch);
                match can {
                    Can::Write | Can::Manage if repeated => expect_invalid(r, ".id", &ctx),
                    Can::Write | Can::Manage => {
                        let got = r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        assert_eq!(got, ids, "{ctx}");
                        for (i, id) in ids.into_iter().enumerate() {
                            let content = format!("memory {step}.{i} of {ns}");
                            model
                                .namespaces
                                .get_mut(&ns)
                                .unwrap()
                                .1
                                .insert(id, Mem { content, hot: false });
                        }
                    }
                    _ => expect_refused(r, &ctx),
                }
            }
            22..=24 => {
                *stats.entry("get_memories").or_default() += 1;
                let ids: Vec<String> = (0..=rng.below(4))
                    .map(|_| pool_id(&mut rng))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let r = actor.handle.get_memories(Some(&ns), &ids, false);
                if can == Can::Nothing {
                    expect_refused(r, &ctx);
                } else {
                    let mine = &model.namespaces[&ns].1;
                    let got: BTreeMap<String, Mem> = r
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"))
                        .into_iter()
                        .map(|m| {
                            assert_eq!(m.namespace, ns, "{ctx}: get_memories left the namespace");
                            let hot = m.tags.iter().any(|t| t == "hot");
                            (m.id, Mem { content: m.content, hot })
                        })
                        .collect();
                    let expected: BTreeMap<String, Mem> = ids
                        .iter()
                        .filter_map(|id| mine.get(id).map(|m| (id.clone(), m.clone())))
                        .collect();
                    assert_eq!(got, expected, "{ctx}: get_memories by shared ids");
                }
            }
            25..=27 => {
                *stats.entry("update_memory").or_default() += 1;
                let id = pool_id(&mut rng);
                let content = format!("memory {step} of {ns} updated");
                let r = actor.handle.update_memory(UpdateMemory {
                    namespace: Some(ns.clone()),
                    id: id.clone(),
                    content: Some(content.clone()),
                    ..Default::default()
                });
                let exists = model.namespaces.get(&ns).is_some_and(|n| n.1.contains_key(&id));
                match can {
                    Can::Write | Can::Manage if exists => {
                        let m = r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        assert_eq!((&m.id, &m.namespace), (&id, &ns), "{ctx}");
                        model.namespaces.get_mut(&ns).unwrap().1.get_mut(&id).unwrap().content =
                            content;
                    }
                    Can::Write | Can::Manage => {
                        // Absent here even if other namespaces hold that id.
                        assert_eq!(r.expect_err(&ctx).code(), ErrorCode::NotFound, "{ctx}");
                    }
                    _ => expect_refused(r, &ctx),
                }
            }
            28..=29 => {
                *stats.entry("delete_memory").or_default() += 1;
                let id = pool_id(&mut rng);
                let r = actor.handle.delete_memory(Some(&ns), &id);
                let exists = model.namespaces.get(&ns).is_some_and(|n| n.1.contains_key(&id));
                match can {
                    Can::Write | Can::Manage if exists => {
                        let m = r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        assert_eq!((&m.id, &m.namespace), (&id, &ns), "{ctx}");
                        model.namespaces.get_mut(&ns).unwrap().1.remove(&id);
                    }
                    Can::Write | Can::Manage => {
                        assert_eq!(r.expect_err(&ctx).code(), ErrorCode::NotFound, "{ctx}");
                    }
                    _ => expect_refused(r, &ctx),
                }
            }
            30..=49 => {
                *stats.entry("recall").or_default() += 1;
                let r = actor.handle.recall(Recall::text("memory of").namespace(&ns).top_k(50));
                if can == Can::Nothing {
                    expect_refused(r, &ctx);
                } else {
                    let hits = r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    let mine = &model.namespaces[&ns].1;
                    for h in &hits {
                        assert_eq!(
                            mine.get(&h.id).map(|m| &m.content),
                            Some(&h.content),
                            "{ctx}: recall returned a memory not in {ns}"
                        );
                    }
                    assert_eq!(hits.len(), mine.len().min(50), "{ctx}: recall missed memories");
                }
            }
            50..=59 => {
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
                let (_, id) = &all[rng.below(all.len())];
                let r = actor.handle.get_memory(Some(&ns), id);
                // Pool ids live in several namespaces: only this one's memory of that id answers.
                match (can, model.namespaces.get(&ns).and_then(|n| n.1.get(id))) {
                    (Can::Nothing, _) => expect_refused(r, &ctx),
                    (_, Some(mem)) => {
                        let m = r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        assert_eq!((&m.id, &m.namespace, &m.content), (id, &ns, &mem.content));
                    }
                    (_, None) => {
                        assert_eq!(r.expect_err(&ctx).code(), ErrorCode::NotFound, "{ctx}");
                    }
                }
            }
            60..=67 => {
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
                    .skip(rng.below(5))
                    .take(3)
                    .collect();
                let mut ids: BTreeSet<String> = mine.iter().take(2).cloned().collect();
                ids.extend(foreign);
                ids.insert(pool_id(&mut rng));
                // A foreign id (a pool id, say) may also name a memory of this namespace: that
                // one, and only that one, goes.
                let here: Vec<String> =
                    ids.iter().filter(|id| mine.contains(id)).cloned().collect();
                let r = actor.handle.batch_forget(Forget {
                    namespace: Some(ns.clone()),
                    ids: Some(ids.into_iter().collect()),
                    ..Default::default()
                });
                if matches!(can, Can::Write | Can::Manage) {
                    let n = r.unwrap_or_else(|e| panic!("{ctx}: {e}")).forgotten;
                    assert_eq!(n as usize, here.len(), "{ctx}: forget reached outside {ns}");
                    for id in &here {
                        model.namespaces.get_mut(&ns).unwrap().1.remove(id);
                    }
                } else {
                    expect_refused(r, &ctx);
                }
            }
            68..=77 => {
                *stats.entry("list_memories").or_default() += 1;
                if let Some(replayed) =
                    list_and_replay(actor, can, &model, &ns, &mut cursors, &mut rng, &ctx)
                {
                    *stats.entry(replayed).or_default() += 1;
                }
            }
            78..=84 => {
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
            85..=89 => {
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
            90..=94 => {
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
    eprintln!("cursors kept for replay: {}", cursors.len());
    assert!(stats.values().sum::<usize>() > ops * 9 / 10);
    if ops >= 1000 {
        for kind in ["cursor_replay_foreign", "cursor_replay_own", "store_with_id", "update_memory"]
        {
            assert!(stats.get(kind).copied().unwrap_or(0) > 10, "too few {kind}: {stats:?}");
        }
    }
}

/// `list_memories` (all pages, in a random order, sometimes filtered) and `count_memories` of
/// `ns` against the model; then a cursor kept from earlier replayed here: one of another
/// namespace, or altered, is refused without data. Returns which replay it made.
fn list_and_replay(
    actor: &Actor,
    can: Can,
    model: &Model,
    ns: &str,
    cursors: &mut Vec<SeenCursor>,
    rng: &mut Rng,
    ctx: &str,
) -> Option<&'static str> {
    let order = [OrderBy::CreatedAt, OrderBy::UpdatedAt, OrderBy::Importance][rng.below(3)];
    let descending = rng.below(2) == 0;
    let hot_only = rng.below(3) == 0;
    let filter = hot_only.then(|| serde_json::json!({ "tags": { "$contains": "hot" } }));
    let list = |limit: usize, cursor: Option<String>| {
        actor.handle.list_memories(ListMemories {
            namespace: Some(ns.to_string()),
            filter: filter.clone(),
            order_by: Some(order),
            descending,
            limit: Some(limit),
            cursor,
            ..Default::default()
        })
    };
    let count = actor
        .handle
        .count_memories(CountMemories { namespace: Some(ns.to_string()), filter: filter.clone() });
    if can == Can::Nothing {
        expect_refused(list(10, None), ctx);
        expect_refused(count, ctx);
        return None;
    }
    let expected: BTreeMap<String, String> = model.namespaces[ns]
        .1
        .iter()
        .filter(|(_, m)| m.hot || !hot_only)
        .map(|(id, m)| (id.clone(), m.content.clone()))
        .collect();
    assert_eq!(
        count.unwrap_or_else(|e| panic!("{ctx}: {e}")),
        expected.len() as u64,
        "{ctx}: count"
    );
    let limit = (expected.len() / (1 + rng.below(6))).clamp(1, 1000);
    let mut listed = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = list(limit, cursor).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        for m in page.memories {
            assert_eq!(m.namespace, ns, "{ctx}: list_memories left the namespace");
            assert!(listed.insert(m.id, m.content).is_none(), "{ctx}: a memory listed twice");
        }
        match page.next_cursor {
            Some(c) => {
                if rng.below(4) == 0 || cursors.len() < 4 {
                    cursors.push(SeenCursor {
                        namespace: ns.to_string(),
                        cursor: c.clone(),
                        order,
                        descending,
                    });
                }
                cursor = Some(c);
            }
            None => break,
        }
    }
    assert_eq!(listed, expected, "{ctx}: list_memories differs from the model");
    if cursors.is_empty() {
        return None;
    }
    let seen = &cursors[rng.below(cursors.len())];
    let replay = |cursor: String| {
        actor.handle.list_memories(ListMemories {
            namespace: Some(ns.to_string()),
            order_by: Some(seen.order),
            descending: seen.descending,
            limit: Some(1000),
            cursor: Some(cursor),
            ..Default::default()
        })
    };
    let replayed = if seen.namespace == ns {
        // A cursor of this namespace, however old, pages on through this namespace only.
        let page = replay(seen.cursor.clone()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        for m in page.memories {
            assert_eq!(m.namespace, ns, "{ctx}: a replayed cursor left the namespace");
            assert_eq!(
                model.namespaces[ns].1.get(&m.id).map(|x| &x.content),
                Some(&m.content),
                "{ctx}: a replayed cursor returned a memory not in {ns}"
            );
        }
        "cursor_replay_own"
    } else {
        expect_invalid(replay(seen.cursor.clone()), "cursor", ctx);
        "cursor_replay_foreign"
    };
    // Altered: one hex digit changed anywhere (namespace, order, position or MAC).
    let mut bytes = seen.cursor.clone().into_bytes();
    let at = rng.below(bytes.len());
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    expect_invalid(replay(String::from_utf8(bytes).unwrap()), "cursor", ctx);
    Some(replayed)
}
