"""Every error code reaches Python as its own exception class, in both modes."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Callable, Type

import pytest
from conftest import ADMIN_KEY, Server, unique

import memsilo
from memsilo import _native

CLASSES = {
    "invalid_argument": (memsilo.InvalidArgumentError, 400),
    "unauthorized": (memsilo.UnauthorizedError, 401),
    "forbidden": (memsilo.ForbiddenError, 403),
    "not_found": (memsilo.NotFoundError, 404),
    "conflict": (memsilo.ConflictError, 409),
    "quota_exceeded": (memsilo.QuotaExceededError, 403),
    "rate_limited": (memsilo.RateLimitedError, 429),
    "payload_too_large": (memsilo.PayloadTooLargeError, 413),
    "internal": (memsilo.InternalError, 500),
    "method_not_allowed": (memsilo.MethodNotAllowedError, 405),
}


def test_one_class_per_core_error_code() -> None:
    assert sorted(_native.ERROR_CODES) == sorted(CLASSES)
    for code, (cls, status) in CLASSES.items():
        assert issubclass(cls, memsilo.MemsiloError) and cls is not memsilo.MemsiloError
        assert (cls.code, cls.status) == (code, status)
        assert cls.__module__ == "memsilo"
    assert len({cls for cls, _ in CLASSES.values()}) == len(CLASSES)


def test_the_package_exports_and_types_each_core_error_class() -> None:
    # The class names spelled out in memsilo/__init__.py and _native.pyi follow core's table.
    stub = (Path(memsilo.__file__).parent / "_native.pyi").read_text()
    for code in _native.ERROR_CODES:
        name = "".join(word.capitalize() for word in code.split("_")) + "Error"
        assert getattr(memsilo, name) is getattr(_native, name), name
        assert name in memsilo.__all__, name
        assert f"class {name}(MemsiloError): ..." in stub, name


def check(
    cls: Type[memsilo.MemsiloError], call: Callable[[], object], message_part: str = ""
) -> memsilo.MemsiloError:
    with pytest.raises(cls) as info:
        call()
    err = info.value
    assert type(err) is cls
    assert err.code == cls.code and err.status == cls.status
    assert err.details is not None and err.details["error"] == err.code
    assert err.details["code"] == err.status
    # The fields of the body that apply are attributes too, None where they do not.
    for attr in ("field", "namespace", "tenant_id"):
        assert getattr(err, attr) == err.details.get(attr), attr
    assert err.message and message_part in err.message and str(err) == err.message
    return err


def test_invalid_argument(db: memsilo.Memsilo) -> None:
    err = check(memsilo.InvalidArgumentError, lambda: db.create_namespace("bad name!"), "name")
    assert err.field == "name"
    check(memsilo.InvalidArgumentError, lambda: db.list_namespaces(limit=101), "limit")
    ns = unique("inv")
    db.create_namespace(ns)
    check(memsilo.InvalidArgumentError, lambda: db.store_memory(ns, "x", importance=1.5))
    check(memsilo.InvalidArgumentError, lambda: db.batch_forget(ns))  # no filter: never "all"


def test_nan_and_infinity_are_refused_naming_their_field(db: memsilo.Memsilo) -> None:
    ns = unique("nan")
    db.create_namespace(ns)
    nan, inf = float("nan"), float("inf")
    for call, field in [
        (lambda: db.store_memory(ns, "x", importance=nan), "importance"),
        (lambda: db.store_memory(ns, "x", metadata={"score": {"raw": -inf}}), "metadata.score.raw"),
        (lambda: db.store_memories(ns, [{"content": "a"}, {"content": "b", "importance": inf}]),
         "memories[1].importance"),
        (lambda: db.recall(ns, "x", min_importance=nan), "min_importance"),
        # In a vector too: named by its index, as in Node and Go (the float32 block that
        # carries vectors named only "embedding" / "vector").
        (lambda: db.store_memory(ns, "x", embedding=[0.5, nan]), "embedding[1]"),
        (lambda: db.store_memories(ns, [{"content": "a", "embedding": [0.5, 0.5]},
                                        {"content": "b", "embedding": [inf, 0.5]}]),
         "memories[1].embedding[0]"),
        (lambda: db.recall(ns, vector=[-inf, 0.5]), "vector[0]"),
    ]:
        err = check(memsilo.InvalidArgumentError, call, field)
        assert err.field == field
    assert db.count_memories(ns) == 0


def test_values_json_cannot_carry_are_refused_naming_their_field(db: memsilo.Memsilo) -> None:
    ns = unique("types")
    db.create_namespace(ns)
    for call, field in [
        (lambda: db.store_memory(ns, "x", metadata={"when": object()}), "metadata.when"),
        (lambda: db.store_memory(ns, "x", metadata={"n": {(1, 2): "tuple key"}}), "metadata.n.(1, 2)"),
        (lambda: db.store_memories(ns, [{"content": "a"}, {"content": "b", "metadata": {"raw": b"x"}}]),
         "memories[1].metadata.raw"),
    ]:
        err = check(memsilo.InvalidArgumentError, call, field)
        assert err.field == field
    assert db.count_memories(ns) == 0


def test_text_that_is_not_unicode_is_refused_naming_its_field(db: memsilo.Memsilo) -> None:
    # A str with a lone surrogate (os.fsdecode of bytes that are not UTF-8, a half emoji) used
    # to reach the engine as a \udXXX escape it refused as unreadable "args", naming no field.
    ns = unique("utf")
    db.create_namespace(ns)
    for call, field in [
        (lambda: db.store_memory(ns, "bad \udcff text"), "content"),
        (lambda: db.store_memory(ns, "x", tags=["ok", "\ud83d"]), "tags[1]"),
        (lambda: db.store_memory(ns, "x", metadata={"path": {"\udc80": 1}}), "metadata.path.\udc80"),
        (lambda: db.store_memories(ns, [{"content": "a"}, {"content": "b", "agent_id": "\udfff"}]),
         "memories[1].agent_id"),
        (lambda: db.recall(ns, "half \ud800"), "query"),
    ]:
        err = check(memsilo.InvalidArgumentError, call, field)
        assert err.field == field and "lone surrogate" in (err.message or "")
    assert db.count_memories(ns) == 0
    # Text that only looks like an escape, and characters outside the BMP, go through as given.
    db.store_memory(ns, "C:\\udir \U0001f600", id="fine")
    assert db.get_memory(ns, "fine")["content"] == "C:\\udir \U0001f600"


def test_wrongly_shaped_lists_are_refused_naming_them(db: memsilo.Memsilo) -> None:
    # These used to be a bare TypeError or ValueError from dict()/list(), or, for a str of
    # ids, a silent empty answer (list("doc-1") asked for the ids "d", "o", "c", ...).
    ns = unique("shape")
    db.create_namespace(ns)
    db.store_memory(ns, "one", id="doc-1")
    for call, field in [
        (lambda: db.get_memories(ns, "doc-1"), "ids"),
        (lambda: db.get_memories(ns, None), "ids"),  # type: ignore[arg-type]
        (lambda: db.store_memories(ns, None), "memories"),  # type: ignore[arg-type]
        (lambda: db.store_memories(ns, {"content": "a"}), "memories"),  # type: ignore[arg-type]
        (lambda: db.store_memories(ns, [{"content": "a"}, "b"]), "memories[1]"),  # type: ignore[list-item]
        (lambda: db.store_memories(ns, [5]), "memories[0]"),  # type: ignore[list-item]
    ]:
        err = check(memsilo.InvalidArgumentError, call, field)
        assert err.field == field
    assert db.count_memories(ns) == 1
    assert [m["id"] for m in db.get_memories(ns, ("doc-1", "nope"))] == ["doc-1"]


def test_an_empty_tenant_id_is_an_unknown_tenant_in_the_audit_log(db: memsilo.Memsilo) -> None:
    # LMDB refuses an empty key: these were `internal` ("MDB_BAD_VALSIZE"), in both modes.
    check(memsilo.NotFoundError, lambda: db.list_audit(""), "Tenant not found")
    check(memsilo.NotFoundError, lambda: db.verify_audit(""), "Tenant not found")


def test_an_unknown_keyword_is_refused_naming_it(db: memsilo.Memsilo) -> None:
    # The signature is the check (mypy --strict flags it too): Python's own TypeError names it.
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        db.store_memory("any", "x", colour="red")  # type: ignore[call-arg]


def test_unauthorized(db: memsilo.Memsilo) -> None:
    check(memsilo.UnauthorizedError, lambda: db.scoped("msk_not_a_real_key").whoami())


def test_forbidden(db: memsilo.Memsilo) -> None:
    mine, theirs = unique("mine"), unique("theirs")
    db.create_namespace(mine)
    db.create_namespace(theirs)
    scoped = db.scoped(db.create_key("k", namespaces=[(mine, "read")])["key"])
    err = check(memsilo.ForbiddenError, lambda: scoped.recall(theirs, "x"), theirs)
    assert err.namespace == theirs and err.field is None
    check(memsilo.ForbiddenError, lambda: scoped.store_memory(mine, "read-only key"))


def test_not_found(db: memsilo.Memsilo) -> None:
    check(memsilo.NotFoundError, lambda: db.get_tenant("00000000-0000-0000-0000-000000000000"))
    ns = unique("nf")
    db.create_namespace(ns)
    check(memsilo.NotFoundError, lambda: db.get_memory(ns, "01900000-0000-7000-8000-000000000000"))


def test_conflict(db: memsilo.Memsilo) -> None:
    ns = unique("dup")
    db.create_namespace(ns)
    check(memsilo.ConflictError, lambda: db.create_namespace(ns))
    parent = db.create_tenant(unique("parent"))
    db.create_tenant(unique("child"), parent_id=parent["id"])
    check(memsilo.ConflictError, lambda: db.delete_tenant(parent["id"]))


def test_quota_exceeded(db: memsilo.Memsilo) -> None:
    tenant = db.create_tenant(unique("tiny"), quotas={"max_namespaces": 1, "storage_quota_bytes": 2000})
    ns = unique("only")
    db.create_namespace(ns, tenant_id=tenant["id"])
    err = check(
        memsilo.QuotaExceededError,
        lambda: db.create_namespace(unique("second"), tenant_id=tenant["id"]),
        "max_namespaces",
    )
    assert err.tenant_id == tenant["id"]
    check(memsilo.QuotaExceededError, lambda: db.store_memory(ns, "x" * 5000), "storage")
    assert db.get_namespace(ns)["memory_count"] == 0  # nothing partial was written


def test_rate_limited(db: memsilo.Memsilo) -> None:
    tenant = db.create_tenant(unique("slow"), quotas={"qps_limit": 1})
    ns = unique("slow")
    db.create_namespace(ns, tenant_id=tenant["id"])
    scoped = db.scoped(db.create_key("k", namespaces=[(ns, "read")], tenant_id=tenant["id"])["key"])
    deadline = time.monotonic() + 10
    with pytest.raises(memsilo.RateLimitedError) as info:
        while time.monotonic() < deadline:
            scoped.get_namespace(ns)
    err = info.value
    assert err.code == "rate_limited" and err.status == 429
    assert err.retry_after is not None and err.retry_after >= 1
    db.get_namespace(ns)  # the operator is not throttled


def test_payload_too_large(db: memsilo.Memsilo) -> None:
    ns = unique("big")
    db.create_namespace(ns)
    items: list[memsilo.types.MemoryInput] = [{"content": f"memory {i}"} for i in range(1001)]
    check(memsilo.PayloadTooLargeError, lambda: db.store_memories(ns, items))
    assert db.get_namespace(ns)["memory_count"] == 0
    assert len(db.store_memories(ns, items[:1000])) == 1000


def test_unknown_operation_is_invalid_argument(db: memsilo.Memsilo) -> None:
    check(memsilo.InvalidArgumentError, lambda: db._call("drop_everything", {}), "op")


def test_internal_when_the_server_cannot_be_reached() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    err = check(
        memsilo.InternalError,
        lambda: memsilo.connect(f"http://127.0.0.1:{port}", "msk_x"),
        "cannot reach",
    )
    assert err.status == 500
    # The connection failure is the cause, in its own words.
    assert err.__cause__ is not None and "refused" in str(err.__cause__), err.__cause__
    assert err.details is not None and err.details["causes"] == [str(err.__cause__)]
    check(memsilo.InvalidArgumentError, lambda: memsilo.connect("localhost:3300", "msk_x"), "url")


def test_a_list_of_urls_skips_a_dead_server(server: Server) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    db = memsilo.connect([dead, server.url], ADMIN_KEY)
    ns = unique("urls")
    db.create_namespace(ns)
    stored = db.store_memory(ns, "reached through the second URL")
    assert db.get_memory(ns, stored["id"])["content"] == "reached through the second URL"
    check(memsilo.InvalidArgumentError, lambda: memsilo.connect([server.url, "nope"], ADMIN_KEY), "urls[1]")


def test_an_io_failure_is_the_cause_of_the_internal_error(tmp_path: Path) -> None:
    # The lock file's place is taken by a directory: opening the data directory fails (EISDIR).
    (tmp_path / "LOCK").mkdir()
    with pytest.raises(memsilo.InternalError) as info:
        memsilo.open(tmp_path)
    err = info.value
    with pytest.raises(IsADirectoryError) as os_info:
        open(tmp_path / "LOCK", "r+b")
    words = f"{os_info.value.strerror} (os error {os_info.value.errno})"  # as Rust words it
    cause = err.__cause__
    assert cause is not None and str(cause) == words and cause.__cause__ is None
    assert err.message == f"internal error: io: {words}"
    assert err.details is not None and err.details["causes"] == [words]


def test_errors_without_a_failure_underneath_have_no_cause(db: memsilo.Memsilo) -> None:
    err = check(memsilo.NotFoundError, lambda: db.get_namespace(unique("missing")))
    assert err.__cause__ is None
    assert err.details is not None and "causes" not in err.details
