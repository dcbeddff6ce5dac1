"""Sessions: started, listed, ended, with their memories; in-process and against a server."""

import asyncio

import pytest

import memsilo
from conftest import unique


def test_a_session_is_started_filled_ended_and_listed(db: memsilo.Memsilo) -> None:
    ns = unique("chat")
    db.create_namespace(ns)
    s = db.start_session(ns, id="s-1", agent_id="bot", metadata={"channel": "web"})
    assert (s["id"], s["agent_id"], s["ended_at"], s["memory_count"]) == ("s-1", "bot", None, 0)
    with pytest.raises(memsilo.ConflictError):
        db.start_session(ns, id="s-1")
    db.store_memory(ns, "asked about SSO", session_id="s-1")
    db.store_memory(ns, "asked about billing", session_id="s-1")
    db.store_memory(ns, "unrelated")
    page = db.session_memories(ns, "s-1", limit=1)
    assert page["total_count"] == 2 and [m["content"] for m in page["memories"]] == ["asked about SSO"]
    ended = db.end_session(ns, "s-1", summary="SSO and billing")
    assert ended["ended_at"] and ended["summary"] == "SSO and billing" and ended["memory_count"] == 2
    again = db.end_session(ns, "s-1", summary="other")
    assert again["summary"] == "SSO and billing" and again["ended_at"] == ended["ended_at"]
    other = db.start_session(ns)
    listed = db.list_sessions(ns)
    assert [x["id"] for x in listed["sessions"]] == ["s-1", other["id"]]
    assert [x["id"] for x in db.list_sessions(ns, active_only=True)["sessions"]] == [other["id"]]
    assert db.list_sessions(ns, agent_id="bot")["total_count"] == 1
    with pytest.raises(memsilo.NotFoundError):
        db.get_session(ns, "nope")
    with pytest.raises(memsilo.InvalidArgumentError) as e:
        db.start_session(ns, id="x" * 300)
    assert "id" in str(e.value)


def test_sessions_go_with_their_namespace_and_keep_to_a_keys_scope(db: memsilo.Memsilo) -> None:
    mine_ns, theirs = unique("mine"), unique("theirs")
    db.create_namespace(mine_ns)
    db.create_namespace(theirs)
    db.start_session(theirs, id="secret")
    key = db.create_key("k", namespaces=[(mine_ns, "write")])["key"]
    scoped = db.scoped(key)
    with pytest.raises(memsilo.ForbiddenError):
        scoped.get_session(theirs, "secret")
    with pytest.raises(memsilo.ForbiddenError):
        scoped.list_sessions(theirs)
    mine = scoped.start_session(mine_ns, id="secret")  # the same id as theirs: another session
    assert mine["namespace"] == mine_ns
    db.delete_namespace(theirs)
    db.create_namespace(theirs)
    with pytest.raises(memsilo.NotFoundError):
        db.get_session(theirs, "secret")


def test_the_async_handle_has_sessions(db: memsilo.Memsilo) -> None:
    adb = memsilo.aio.AsyncMemsilo(db)

    async def run() -> int:
        ns = unique("a")
        await adb.create_namespace(ns)
        s = await adb.start_session(ns)
        await adb.end_session(ns, s["id"])
        return (await adb.list_sessions(ns))["total_count"]

    assert asyncio.run(run()) == 1
