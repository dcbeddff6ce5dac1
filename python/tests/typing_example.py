"""Uses every public method with the types a user would; checked by ``mypy --strict`` in
test_typing.py (it is not run). A change to a signature or a result type breaks it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import List, Optional

import numpy as np

import memsilo
from memsilo.types import (
    ApiKey,
    AuditPage,
    AuditVerification,
    CreatedKey,
    DecayPolicy,
    Entity,
    GraphPath,
    GraphView,
    Member,
    Memory,
    Namespace,
    RecallHit,
    Tenant,
)


def embed(texts: List[str]) -> List[List[float]]:
    return [[float(len(t)), 1.0] for t in texts]


def sync_usage(path: str) -> None:
    db: memsilo.Memsilo = memsilo.open(path, embedding_function=embed)
    remote = memsilo.connect("http://127.0.0.1:3300", "msk_example")
    tenant: Tenant = db.create_tenant(
        "acme_corp", quotas={"qps_limit": 10}, isolation_mode="hybrid", tags=["gold"]
    )
    tenant_id: str = tenant["id"]
    db.get_tenant(tenant_id)
    total: int = db.list_tenants(status="active", offset=0, limit=10)["total_count"]
    db.update_tenant(tenant_id, name="acme_inc", status="active", quotas={"max_members": 5})
    member: Member = db.add_member(tenant_id, "a@x.com", "editor", metadata={"team": "ai"})
    db.list_members(tenant_id, role="editor")
    ns: Namespace = db.create_namespace(
        "tenant-acme", tenant_id=tenant_id, policy={"decay_rate": 0.01}, exist_ok=True
    )
    names: List[str] = [n["name"] for n in db.list_namespaces(tenant_id=tenant_id)]
    db.get_namespace(ns["name"])
    policy: DecayPolicy = db.get_memory_policy("tenant-acme")
    db.set_memory_policy("tenant-acme", {"decay_rate": policy["decay_rate"], "ttl_default": None})
    key: CreatedKey = db.create_key(
        "backend",
        namespaces=[("tenant-acme", "write"), {"namespace": "other", "access": "read"}],
        tenant_id=tenant_id,
        expires_at=datetime.now(timezone.utc),
    )
    db.create_key("alice", tenant_id=tenant_id, role="editor", member_id=member["member_id"])
    keys: List[ApiKey] = db.list_keys(tenant_id=tenant_id)
    db.rotate_key(key["id"])
    db.revoke_key(keys[0]["id"])
    scoped: memsilo.Memsilo = db.scoped(key["key"])
    memory: Memory = scoped.store_memory(
        "tenant-acme",
        "Q3 roadmap",
        importance=0.9,
        tags=["roadmap"],
        metadata={"source": "doc"},
        agent_id="agent-1",
        ttl=3600,
        embedding=np.zeros(2),
        entities=["Acme"],
    )
    ids: List[str] = scoped.store_memories(
        "tenant-acme", [{"content": "a", "importance": 0.5, "embedding": [0.1, 0.2]}]
    )
    hits: List[RecallHit] = scoped.recall(
        "tenant-acme",
        "roadmap",
        top_k=5,
        agent_id="agent-1",
        tags=["roadmap"],
        min_importance=0.1,
        since=datetime(2026, 1, 1, tzinfo=timezone.utc),
        until="2027-01-01T00:00:00Z",
        expand=1,
    )
    best: Optional[float] = hits[0]["score"] if hits else None
    scoped.recall("tenant-acme", vector=np.array([0.1, 0.2], dtype=np.float32))
    scoped.get_memory("tenant-acme", memory["id"])
    scoped.store_memory(
        "tenant-acme", "v2", id="doc-1", memory_type="semantic", session_id="s-1"
    )
    scoped.store_memories("tenant-acme", [{"id": "doc-2", "content": "b", "memory_type": "working"}])
    got: List[Memory] = scoped.get_memories("tenant-acme", ["doc-1", "doc-2"], include_vectors=True)
    kind: str = got[0]["memory_type"]
    updated: Memory = scoped.update_memory(
        "tenant-acme",
        "doc-1",
        content="v3",
        importance=0.3,
        tags=["t"],
        metadata={"k": None},
        replace=False,
        ttl=60,
        memory_type="procedural",
        session_id="s-2",
    )
    print(kind, updated["updated_at"])
    page = scoped.list_memories(
        "tenant-acme",
        filter={"metadata.tier": {"$in": ["gold"]}},
        order_by="importance",
        descending=True,
        limit=10,
        cursor=None,
        include_vectors=False,
    )
    nxt: Optional[str] = page["next_cursor"]
    listed: List[Memory] = page["memories"]
    n_gold: int = scoped.count_memories("tenant-acme", {"session_id": "s-1"})
    scoped.recall("tenant-acme", "q", filter={"tags": {"$contains": "x"}}, memory_type="episodic", session_id="s")
    scoped.batch_forget("tenant-acme", filter={"session_id": "s-1"})
    print(nxt, listed, n_gold)
    scoped.delete_memory("tenant-acme", ids[0])
    forgotten: int = scoped.batch_forget(
        "tenant-acme", ids=ids, agent_id="agent-1", tags=["x"], before=datetime.now(), below_importance=0.2
    )["forgotten"]
    entity: Entity = db.add_entity("tenant-acme", "Acme", type="org", properties={"size": 10})
    db.add_relation("tenant-acme", "Alice", "Acme", "works_at", weight=1.0, properties={})
    db.get_entity("tenant-acme", entity["id"], type="org")
    view: GraphView = db.neighbors("tenant-acme", "Acme", depth=2, type="works_at")
    db.subgraph("tenant-acme", "Acme", depth=1)
    route: GraphPath = db.shortest_path("tenant-acme", from_="Alice", to="Acme")
    db.delete_relation("tenant-acme", view["relations"][0]["id"])
    db.delete_entity("tenant-acme", "Acme")
    principal: str = remote.whoami()["principal"]
    db.remove_member(tenant_id, member["member_id"])
    audit_page: AuditPage = db.list_audit(tenant_id, since=datetime.now(timezone.utc), action="add_member")
    refused: List[str] = [e["request_id"] for e in audit_page["entries"] if e["result"] == "refused"]
    verified: AuditVerification = db.verify_audit(tenant_id)
    broken: Optional[int] = verified["first_broken"]["seq"] if verified["first_broken"] else None
    print(audit_page["next_cursor"], refused, broken)
    db.delete_namespace("tenant-acme")
    db.delete_tenant(tenant_id)
    print(total, names, best, forgotten, route["total_weight"], principal)

    try:
        db.get_tenant("missing")
    except memsilo.RateLimitedError as e:
        wait: Optional[int] = e.retry_after
        print(wait)
    except memsilo.MemsiloError as e:
        code: str = e.code
        status: int = e.status
        print(code, status, e.message, e.details)


async def async_usage(path: str) -> None:
    db: memsilo.AsyncMemsilo = memsilo.aio.open(path)
    created: List[Namespace] = await asyncio.gather(*[db.create_namespace(n) for n in ["a", "b"]])
    hits: List[RecallHit] = await db.recall("a", "query", top_k=3)
    scoped: memsilo.AsyncMemsilo = await db.scoped("msk_example")
    ids: List[str] = await scoped.store_memories("a", [{"content": "x"}])
    many: List[Memory] = await scoped.get_memories("a", ids)
    await scoped.update_memory("a", ids[0], metadata={"n": 1}, replace=True)
    first = await scoped.list_memories("a", limit=1)
    total: int = await scoped.count_memories("a")
    print(first["next_cursor"], total)
    print(many)
    remote = memsilo.aio.connect("http://127.0.0.1:3300", "msk_example")
    print(created, hits, ids, await remote.whoami())
    audit: AuditPage = await db.list_audit("instance", limit=10)
    print(audit["entries"], (await db.verify_audit("instance"))["ok"])
