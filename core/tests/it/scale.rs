//! Many namespaces on one instance (issue 19): environments of their own are closed least
//! recently used first, so open files stay bounded however many namespaces are touched; a
//! closed one opens again with its data; storage use is read again after a restart; listing
//! pages in name order. The million itself is `make bench-namespaces`.

use memsilo::{CreateTenant, Engine, IsolationMode, NamespaceOptions, Options, Page, StoreMemory};

/// Files of this process open under `dir` (other tests run beside this one: only ours count).
fn open_files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

fn open(dir: &std::path::Path, limit: usize) -> Engine {
    let options = Options { background: false, max_open_environments: limit, ..Options::default() };
    Engine::open(dir, options).unwrap()
}

#[test]
fn touching_many_physical_namespaces_keeps_files_bounded_and_closed_ones_reopen_with_their_data() {
    const LIMIT: usize = 5;
    const NAMESPACES: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    let engine = open(&dir_path, LIMIT);
    let root = engine.root();
    let req = CreateTenant {
        name: "many".into(),
        isolation_mode: Some(IsolationMode::Physical),
        ..Default::default()
    };
    let tid = root.create_tenant(req).unwrap().tenant.id;
    let mut most_files = 0;
    for i in 0..NAMESPACES {
        let name = format!("ns-{i:02}");
        let opts = NamespaceOptions { tenant_id: Some(tid.clone()), ..Default::default() };
        root.create_namespace(&name, opts).unwrap();
        let memory =
            StoreMemory { namespace: Some(name), ..StoreMemory::text(format!("note {i}")) };
        root.store_memory(memory).unwrap();
        // The limit, plus the shared shards (4 by default), whichever namespaces were touched.
        assert!(engine.open_environments() <= LIMIT + 4, "{} open", engine.open_environments());
        most_files = most_files.max(open_files_under(&dir_path));
    }
    assert!(dir_path.join("namespaces").read_dir().unwrap().count() >= NAMESPACES);
    // Catalog (+ its lock file) and the directory lock, the shards opened so far and at most
    // LIMIT environments of their own, each a data file and a lock file (LMDB may keep one
    // more descriptor per environment for its meta page).
    assert!(most_files <= 3 + 3 * (4 + LIMIT), "{most_files} files open under the directory");

    // Each namespace, closed long ago or not, answers with its own memory.
    let used = root.get_tenant(&tid).unwrap().usage.storage_bytes;
    assert!(used > 0);
    for i in (0..NAMESPACES).rev() {
        let name = format!("ns-{i:02}");
        let listed = root.list_memories(memsilo::ListMemories {
            namespace: Some(name.clone()),
            ..Default::default()
        });
        let contents: Vec<String> =
            listed.unwrap().memories.into_iter().map(|m| m.content).collect();
        assert_eq!(contents, [format!("note {i}")], "{name}");
        assert!(engine.open_environments() <= LIMIT + 4);
    }
    drop(root);
    drop(engine);

    // After a restart nothing is opened until used; the tenant's storage use is read again
    // from its namespaces when first asked for, and is what it was.
    let engine = open(&dir_path, LIMIT);
    assert_eq!(engine.open_environments(), 0);
    assert_eq!(engine.root().get_tenant(&tid).unwrap().usage.storage_bytes, used);
    assert!(engine.open_environments() <= LIMIT + 4);
}

/// Creates tenant `tenant_t` and namespaces `n000`, `n001`, ... (`n` of them), those for which
/// `in_tenant(i)` holds in the tenant and the others in none; returns the tenant's id.
fn namespaces_n000_on(
    root: &memsilo::Handle,
    n: usize,
    in_tenant: impl Fn(usize) -> bool,
) -> String {
    let tid = root
        .create_tenant(CreateTenant { name: "tenant_t".into(), ..Default::default() })
        .unwrap()
        .tenant
        .id;
    for i in 0..n {
        let tenant_id = in_tenant(i).then(|| tid.clone());
        let opts = NamespaceOptions { tenant_id, ..Default::default() };
        root.create_namespace(&format!("n{i:03}"), opts).unwrap();
    }
    tid
}

#[test]
fn namespaces_list_in_pages_in_name_order_for_root_and_for_a_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), 8);
    let root = engine.root();
    let tid = namespaces_n000_on(&root, 230, |i| i % 2 == 0);
    root.delete_namespace("n004").unwrap();
    let all = |tenant: Option<&str>| {
        let mut names = Vec::new();
        let mut offset = 0;
        loop {
            let page = root.list_namespaces(Page::new(offset, 100), tenant).unwrap();
            let n = page.items.len() as u64;
            names.extend(page.items.into_iter().map(|ns| ns.name));
            if n < 100 {
                return (names, page.total_count);
            }
            offset += n;
        }
    };
    let (names, total) = all(None);
    let expect: Vec<String> = (0..230).filter(|i| *i != 4).map(|i| format!("n{i:03}")).collect();
    assert_eq!((names, total), (expect.clone(), 229));
    let (names, total) = all(Some(&tid));
    let even: Vec<String> =
        expect.into_iter().filter(|n| n[1..].parse::<u32>().unwrap() % 2 == 0).collect();
    assert_eq!((names, total), (even, 114));
}

/// The names of every page of `list_namespaces` by cursor (through the operation table, as
/// every binding calls it), `between` run after the first page; and the last page's total.
fn walk_by_cursor(
    h: &memsilo::Handle,
    args: serde_json::Value,
    mut between: impl FnMut(),
) -> (Vec<String>, u64) {
    let (mut names, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let mut args = args.clone();
        if let Some(c) = &cursor {
            args["cursor"] = c.clone().into();
        }
        let reply = h.call("list_namespaces", args).unwrap();
        let items = reply.value.as_array().unwrap();
        names.extend(items.iter().map(|ns| ns["name"].as_str().unwrap().to_owned()));
        pages += 1;
        if pages == 1 {
            between();
        }
        match reply.next_cursor {
            Some(c) => cursor = Some(c),
            None => return (names, reply.total_count.unwrap()),
        }
    }
}

#[test]
fn namespaces_page_by_cursor_once_each_in_name_order_while_others_come_and_go() {
    use memsilo::{CreateKey, Role};
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), 8);
    let root = engine.root();
    let tid = namespaces_n000_on(&root, 250, |i| i % 2 == 1);
    // After the first page (n000..n039): one namespace behind the cursor appears (not
    // listed), one ahead of it is deleted (not listed), one ahead appears (listed once).
    let (names, total) = walk_by_cursor(&root, json!({"limit": 40}), || {
        root.create_namespace("n0005", NamespaceOptions::default()).unwrap();
        root.delete_namespace("n100").unwrap();
        root.create_namespace("n2005", NamespaceOptions::default()).unwrap();
    });
    let mut expect: Vec<String> =
        (0..250).filter(|i| *i != 100).map(|i| format!("n{i:03}")).collect();
    expect.push("n2005".into());
    expect.sort();
    assert_eq!(names, expect);
    assert_eq!(total, 251);

    // A tenant's admin pages through its tenant's namespaces only.
    let key = root.create_key(CreateKey::tenant_role("t-admin", &tid, Role::Admin)).unwrap();
    let admin = engine.scoped(&key.key).unwrap();
    let (names, total) = walk_by_cursor(&admin, json!({"limit": 7}), || {});
    let odd: Vec<String> = (0..250).filter(|i| i % 2 == 1).map(|i| format!("n{i:03}")).collect();
    assert_eq!((names, total), (odd.clone(), 125));
    let (names, _) = walk_by_cursor(&root, json!({"limit": 100, "tenant_id": tid}), || {});
    assert_eq!(names, odd);

    // A page that ends the list has no cursor; offset still pages as before.
    let last = root.call("list_namespaces", json!({"offset": 200, "limit": 100})).unwrap();
    assert_eq!((last.value.as_array().unwrap().len(), last.next_cursor), (51, None));

    let field = |args: serde_json::Value| match root.call("list_namespaces", args) {
        Err(memsilo::Error::InvalidArgument { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let cursor = root.call("list_namespaces", json!({"limit": 3})).unwrap().next_cursor.unwrap();
    assert_eq!(field(json!({"cursor": cursor, "offset": 3})), "offset");
    let mut altered = cursor.clone().into_bytes();
    altered[3] = if altered[3] == b'0' { b'1' } else { b'0' };
    assert_eq!(field(json!({"cursor": String::from_utf8(altered).unwrap()})), "cursor");
    assert_eq!(field(json!({"cursor": "not a cursor"})), "cursor");
    // A cursor of a memory list is no cursor of the namespace list.
    for i in 0..3 {
        let memory = StoreMemory {
            namespace: Some("n000".into()),
            ..StoreMemory::text(format!("note {i}"))
        };
        root.store_memory(memory).unwrap();
    }
    let listed = root
        .list_memories(memsilo::ListMemories {
            namespace: Some("n000".into()),
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(field(json!({"cursor": listed.next_cursor.unwrap()})), "cursor");
}
