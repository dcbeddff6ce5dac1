"""A multi-tenant SaaS flow, run in-process and against a live server (the ``db`` fixture)."""

from __future__ import annotations

import asyncio

import pytest
from conftest import unique

import memsilo


def test_tenants_keys_memories_isolation_and_deletion(db: memsilo.Memsilo, mode: str) -> None:
    # Provision two tenants, each with a namespace and a key scoped to it.
    acme = db.create_tenant(unique("acme"), quotas={"max_namespaces": 5})
    globex = db.create_tenant(unique("globex"))
    assert acme["status"] == "active" and acme["quotas"]["max_namespaces"] == 5
    acme_ns = unique("tenant-acme")
    globex_ns = unique("tenant-globex")
    db.create_namespace(acme_ns, tenant_id=acme["id"])
    db.create_namespace(globex_ns, tenant_id=globex["id"])
    acme_key = db.create_key("acme-backend", namespaces=[(acme_ns, "write")], tenant_id=acme["id"])
    globex_key = db.create_key(
        "globex-backend", namespaces=[{"namespace": globex_ns, "access": "write"}]
    )
    assert acme_key["key"].startswith("msk_") and acme_key["namespaces"] == [
        {"namespace": acme_ns, "access": "write"}
    ]

    granted = db.list_keys(namespace=acme_ns)
    assert [k["id"] for k in granted] == [acme_key["id"]]
    with pytest.raises(memsilo.NotFoundError):
        db.revoke_key(acme_key["id"], namespace=globex_ns)

    acme_db = db.scoped(acme_key["key"])
    globex_db = db.scoped(globex_key["key"])
    who = acme_db.whoami()
    assert who["principal"] == "scoped" and who["namespaces"][0]["namespace"] == acme_ns

    # Each tenant stores and recalls its own memories.
    roadmap = acme_db.store_memory(
        acme_ns, "Acme Q3 roadmap: launch Omega in September", importance=0.9, tags=["roadmap"]
    )
    acme_db.store_memory(acme_ns, "Customer c_9k2m prefers email", agent_id="customer-c_9k2m")
    globex_db.store_memory(globex_ns, "Globex roadmap: acquire Initech", tags=["roadmap"])
    hits = acme_db.recall(acme_ns, "product roadmap", top_k=5)
    assert hits[0]["id"] == roadmap["id"]
    assert all("Globex" not in h["content"] for h in hits)
    assert [h["content"] for h in globex_db.recall(globex_ns, "roadmap")] == [
        "Globex roadmap: acquire Initech"
    ]
    assert acme_db.get_memory(acme_ns, roadmap["id"])["content"] == roadmap["content"]

    # Cross-tenant attempts are refused, reading and writing, whether the namespace exists or not.
    for attempt in (
        lambda: acme_db.recall(globex_ns, "roadmap"),
        lambda: acme_db.store_memory(globex_ns, "sneaky"),
        lambda: acme_db.get_memory(globex_ns, roadmap["id"]),
        lambda: acme_db.recall("no-such-namespace", "roadmap"),
    ):
        with pytest.raises(memsilo.ForbiddenError) as info:
            attempt()
        assert info.value.code == "forbidden" and info.value.status == 403
    with pytest.raises(memsilo.MemsiloError) as refused:
        acme_db.list_tenants()
    assert refused.value.code == "forbidden"

    # The operator audits namespaces per tenant.
    audit = db.list_namespaces(tenant_id=acme["id"])
    assert [(n["name"], n["memory_count"]) for n in audit] == [(acme_ns, 2)]

    # Forget one customer's memories, then delete the namespace: its data is gone.
    assert acme_db.batch_forget(acme_ns, agent_id="customer-c_9k2m") == {"forgotten": 1}
    deleted = db.delete_namespace(acme_ns)
    assert deleted["name"] == acme_ns and deleted["deleted_at"]
    with pytest.raises(memsilo.NotFoundError):
        db.get_namespace(acme_ns)
    with pytest.raises(memsilo.ForbiddenError, match=f"Key not authorized for namespace {acme_ns}"):
        acme_db.recall(acme_ns, "roadmap")  # the key's only namespace is gone
    assert db.list_namespaces(tenant_id=acme["id"]) == []
    # Recreating the name gives an empty namespace, not the old memories.
    db.create_namespace(acme_ns, tenant_id=acme["id"])
    with pytest.raises(memsilo.NotFoundError):
        db.get_memory(acme_ns, roadmap["id"])
    # The other tenant is untouched.
    assert len(globex_db.recall(globex_ns, "roadmap")) == 1


def test_members_roles_and_key_lifecycle(db: memsilo.Memsilo) -> None:
    tenant = db.create_tenant(unique("initech"), quotas={"max_members": 10})
    ns = unique("initech-main")
    db.create_namespace(ns, tenant_id=tenant["id"])
    editor = db.add_member(tenant["id"], "alice@initech.example", "editor", metadata={"team": "ai"})
    viewer = db.add_member(tenant["id"], "bob@initech.example", "viewer")
    assert editor["role"] == "editor" and editor["message"]
    with pytest.raises(memsilo.ConflictError):
        db.add_member(tenant["id"], "alice@initech.example", "viewer")
    listed = db.list_members(tenant["id"], role="viewer")
    assert listed["total_count"] == 1 and listed["members"][0]["member_id"] == viewer["member_id"]

    editor_key = db.create_key(
        "alice", tenant_id=tenant["id"], member_id=editor["member_id"], role="editor"
    )
    viewer_key = db.create_key(
        "bob", tenant_id=tenant["id"], member_id=viewer["member_id"], role="viewer"
    )
    alice = db.scoped(editor_key["key"])
    bob = db.scoped(viewer_key["key"])
    stored = alice.store_memory(ns, "Initech moves to the cloud in 2027")
    assert bob.recall(ns, "cloud migration")[0]["id"] == stored["id"]
    with pytest.raises(memsilo.ForbiddenError):
        bob.store_memory(ns, "viewers cannot write")

    # Rotation replaces the secret; revocation and member removal take effect at once.
    rotated = db.rotate_key(editor_key["id"])
    assert rotated["key"] != editor_key["key"]
    with pytest.raises(memsilo.UnauthorizedError):
        alice.recall(ns, "cloud")
    alice = db.scoped(rotated["key"])
    assert alice.recall(ns, "cloud")
    assert any(k["id"] == editor_key["id"] for k in db.list_keys(tenant_id=tenant["id"]))
    assert db.revoke_key(rotated["id"])["revoked"] is True
    with pytest.raises(memsilo.UnauthorizedError):
        alice.recall(ns, "cloud")
    removed = db.remove_member(tenant["id"], viewer["member_id"])
    assert removed["member_id"] == viewer["member_id"]
    with pytest.raises(memsilo.UnauthorizedError):
        bob.recall(ns, "cloud")

    # Suspending the tenant locks its keys out; the tenant record reflects every change.
    admin_key = db.create_key("ops", tenant_id=tenant["id"], role="admin")
    ops = db.scoped(admin_key["key"])
    assert ops.get_tenant(tenant["id"])["usage"]["namespaces"] == 1
    db.update_tenant(tenant["id"], status="suspended", quotas={"qps_limit": 50})
    with pytest.raises(memsilo.ForbiddenError):
        ops.recall(ns, "cloud")
    updated = db.get_tenant(tenant["id"])
    assert updated["status"] == "suspended" and updated["quotas"]["qps_limit"] == 50
    assert any(t["id"] == tenant["id"] for t in db.list_tenants(status="suspended", limit=100)["tenants"])
    assert db.delete_tenant(tenant["id"])["id"] == tenant["id"]
    with pytest.raises(memsilo.NotFoundError):
        db.get_tenant(tenant["id"])


def test_memory_policy_round_trip(db: memsilo.Memsilo) -> None:
    ns = unique("policy")
    db.create_namespace(ns, policy={"decay_rate": 0.5})
    assert db.get_memory_policy(ns)["decay_rate"] == 0.5
    policy = db.set_memory_policy(ns, {"decay_rate": 0.01, "min_importance": 0.1, "ttl_default": 3600})
    assert policy == {"decay_rate": 0.01, "min_importance": 0.1, "ttl_default": 3600}
    stored = db.store_memory(ns, "expires in an hour by default")
    assert stored["expires_at"] is not None
    assert db.create_namespace(ns, exist_ok=True)["name"] == ns
    deleted = db.delete_memory(ns, stored["id"])
    assert deleted == {"id": stored["id"], "namespace": ns, "deleted": True}
    with pytest.raises(memsilo.NotFoundError):
        db.get_memory(ns, stored["id"])


def test_caller_ids_upsert_get_memories_and_update(db: memsilo.Memsilo) -> None:
    ns = unique("ids")
    db.create_namespace(ns)
    first = db.store_memory(ns, "first text", id="doc-1#p1", session_id="s-1", metadata={"a": 1})
    assert first["id"] == "doc-1#p1"
    assert first["memory_type"] == "episodic" and first["session_id"] == "s-1"
    again = db.store_memory(ns, "second text", id="doc-1#p1", memory_type="semantic")
    assert again["created_at"] == first["created_at"]
    assert again["memory_type"] == "semantic" and again["metadata"] == {}
    assert db.get_namespace(ns)["memory_count"] == 1
    with pytest.raises(memsilo.InvalidArgumentError) as err:
        db.store_memories(ns, [{"id": "x", "content": "a"}, {"id": "x", "content": "b"}])
    assert err.value.details is not None and err.value.details["field"] == "memories[1].id"
    db.store_memories(ns, [{"id": "x", "content": "a"}, {"id": "y", "content": "b"}])
    got = db.get_memories(ns, ["y", "absent", "doc-1#p1"], include_vectors=True)
    assert [m["id"] for m in got] == ["y", "doc-1#p1"]
    assert all(len(m["vector"]) > 0 for m in got)
    updated = db.update_memory(ns, "doc-1#p1", metadata={"tier": "gold"}, importance=0.2)
    assert updated["metadata"] == {"tier": "gold"} and updated["importance"] == 0.2
    assert updated["content"] == "second text"
    with pytest.raises(memsilo.NotFoundError):
        db.update_memory(ns, "absent", importance=0.5)
    hits = db.recall(ns, "second text", top_k=10)
    assert [h["id"] for h in hits].count("doc-1#p1") == 1


def test_list_by_cursor_count_and_filters(db: memsilo.Memsilo) -> None:
    ns = unique("list")
    db.create_namespace(ns)
    db.store_memories(
        ns,
        [
            {"id": f"m{i}", "content": f"note {i}", "metadata": {"n": i}, "session_id": "s" + str(i % 2)}
            for i in range(9)
        ],
    )
    seen = []
    cursor = None
    while True:
        page = db.list_memories(ns, limit=4, cursor=cursor, order_by="created_at")
        seen += [m["id"] for m in page["memories"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"m{i}" for i in range(9)]
    assert db.count_memories(ns) == 9
    assert db.count_memories(ns, {"session_id": "s0", "metadata.n": {"$gte": 4}}) == 3
    hits = db.recall(ns, "note", top_k=20, filter={"metadata.n": {"$in": [1, 2]}})
    assert sorted(h["id"] for h in hits) == ["m1", "m2"]
    with pytest.raises(memsilo.InvalidArgumentError) as err:
        db.count_memories(ns, {"metadata.n": {"$bogus": 1}})
    assert err.value.details is not None and err.value.details["field"] == "filter.metadata.n.$bogus"
    assert db.batch_forget(ns, filter={"session_id": "s1"})["forgotten"] == 4
    assert db.count_memories(ns) == 5


def test_namespaces_page_by_cursor(db: memsilo.Memsilo) -> None:
    """``list_namespaces`` pages carry ``total_count`` and ``next_cursor``; the cursor walks a
    tenant's namespaces once each in name order, blocking and async."""
    tenant = db.create_tenant(unique("paged"))
    names = sorted(unique(f"paged-{i}") for i in range(5))
    for name in names:
        db.create_namespace(name, tenant_id=tenant["id"])

    seen: list[str] = []
    page = db.list_namespaces(tenant_id=tenant["id"], limit=2)
    while True:
        assert isinstance(page, list) and page.total_count == 5
        seen += [n["name"] for n in page]
        if page.next_cursor is None:
            break
        page = db.list_namespaces(tenant_id=tenant["id"], limit=2, cursor=page.next_cursor)
    assert seen == names

    first = db.list_namespaces(tenant_id=tenant["id"], limit=4)
    assert first.next_cursor is not None
    with pytest.raises(memsilo.InvalidArgumentError) as bad:
        db.list_namespaces(tenant_id=tenant["id"], offset=1, cursor=first.next_cursor)
    assert bad.value.details is not None and bad.value.details["field"] == "offset"

    async def rest() -> list[str]:
        adb = memsilo.aio.AsyncMemsilo(db)
        page = await adb.list_namespaces(tenant_id=tenant["id"], limit=4, cursor=first.next_cursor)
        assert page.next_cursor is None
        return [n["name"] for n in page]

    assert asyncio.run(rest()) == names[4:]
