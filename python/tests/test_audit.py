"""The audit log from Python: control-plane actions and refusals, filters, cursor pages,
verification and access, in-process and against a live server (sync and async)."""

from __future__ import annotations

import asyncio

import pytest
from conftest import unique

import memsilo


def test_actions_and_refusals_are_recorded_and_verified(db: memsilo.Memsilo, mode: str) -> None:
    tenant = db.create_tenant(unique("audited"))
    tid = tenant["id"]
    ns = unique("audit-ns")
    db.create_namespace(ns, tenant_id=tid)
    admin_key = db.create_key("admin", tenant_id=tid, role="admin")
    viewer_key = db.create_key("viewer", tenant_id=tid, role="viewer")
    admin = db.scoped(admin_key["key"])
    viewer = db.scoped(viewer_key["key"])
    admin.add_member(tid, "ann@example.com", "viewer", metadata={"note": "PYTHON-SECRET-MARK"})
    with pytest.raises(memsilo.ForbiddenError):
        viewer.store_memory(ns, "PYTHON-SECRET-MARK in content")
    with pytest.raises(memsilo.ForbiddenError):
        viewer.list_audit(tid)

    page = admin.list_audit(tid, limit=100)
    actions = [(e["action"], e["result"]) for e in page["entries"]]
    assert actions == [
        ("create_tenant", "ok"),
        ("create_namespace", "ok"),
        ("create_key", "ok"),
        ("create_key", "ok"),
        ("add_member", "ok"),
        ("store_memory", "refused"),
        ("list_audit", "refused"),
    ]
    assert page["next_cursor"] is None
    refused = admin.list_audit(tid, actor=viewer_key["id"])["entries"]
    assert [e["status"] for e in refused] == [403, 403]
    assert refused[0]["actor"]["key_prefix"] == viewer_key["prefix"]
    assert refused[0]["target"] == ns
    assert "PYTHON-SECRET-MARK" not in repr(page) and admin_key["key"] not in repr(page)

    first = admin.list_audit(tid, limit=3)
    second = admin.list_audit(tid, limit=3, cursor=first["next_cursor"])
    assert [e["seq"] for e in first["entries"] + second["entries"]] == [1, 2, 3, 4, 5, 6]

    verified = admin.verify_audit(tid)
    assert verified["ok"] and verified["first_broken"] is None
    assert verified["head_seq"] == 7 and verified["head_hash"] == page["entries"][-1]["hash"]
    with pytest.raises(memsilo.InvalidArgumentError, match="cursor"):
        admin.list_audit(tid, cursor="not-a-cursor")

    async def both() -> None:
        adb = memsilo.AsyncMemsilo(admin)
        listed, checked = await asyncio.gather(adb.list_audit(tid, action="add_member"), adb.verify_audit(tid))
        assert [e["action"] for e in listed["entries"]] == ["add_member"] and checked["ok"]

    asyncio.run(both())
