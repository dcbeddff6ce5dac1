"""Threads, asyncio, one engine per path, fork safety, and the GIL being released."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import unique

import memsilo


def test_threads_share_one_handle(db: memsilo.Memsilo) -> None:
    ns = unique("threads")
    db.create_namespace(ns)

    def work(i: int) -> str:
        stored = db.store_memory(ns, f"fact number {i} about topic {i % 7}", tags=[f"t{i % 4}"])
        hits = db.recall(ns, f"topic {i % 7}", top_k=3, tags=[f"t{i % 4}"])
        assert all(f"t{i % 4}" in h["tags"] for h in hits)
        return stored["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(work, range(160)))
    assert len(set(ids)) == 160
    assert db.get_namespace(ns)["memory_count"] == 160
    with ThreadPoolExecutor(max_workers=8) as pool:
        contents = list(pool.map(lambda i: db.get_memory(ns, ids[i])["content"], range(160)))
    assert contents == [f"fact number {i} about topic {i % 7}" for i in range(160)]


def test_asyncio_gather_overlaps_calls(db: memsilo.Memsilo) -> None:
    adb = memsilo.AsyncMemsilo(db)
    prefix = unique("aio")
    names = [f"{prefix}-{i}" for i in range(20)]

    async def main() -> None:
        created = await asyncio.gather(*[adb.create_namespace(n) for n in names])
        assert [c["name"] for c in created] == names
        await asyncio.gather(*[adb.store_memory(n, f"note for {n}") for n in names])
        hits = await asyncio.gather(*[adb.recall(n, "note") for n in names])
        assert [h[0]["content"] for h in hits] == [f"note for {n}" for n in names]
        key = await adb.create_key("aio", namespaces=[(names[0], "read")])
        scoped = await adb.scoped(key["key"])
        assert isinstance(scoped, memsilo.AsyncMemsilo)
        assert (await scoped.whoami())["principal"] == "scoped"
        with pytest.raises(memsilo.ForbiddenError):
            await scoped.recall(names[1], "note")

    asyncio.run(main())


def test_aio_open_is_the_same_engine(tmp_path: Path) -> None:
    adb = memsilo.aio.open(tmp_path)
    asyncio.run(adb.create_namespace("shared"))
    assert memsilo.open(tmp_path).get_namespace("shared")["name"] == "shared"


def test_same_path_twice_shares_one_engine(tmp_path: Path) -> None:
    first = memsilo.open(tmp_path / "data")
    second = memsilo.open(str(tmp_path / "data"))
    first.create_namespace("shared")
    second.store_memory("shared", "written through the second handle")
    assert first.get_namespace("shared")["memory_count"] == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
# The engine's background thread makes Python 3.12+ warn about fork(); that risk is the point.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_gets_internal_error_and_parent_keeps_working(tmp_path: Path) -> None:
    db = memsilo.open(tmp_path / "parent")
    db.create_namespace("before-fork")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report what happened through the pipe, then leave at once
        os.close(read)
        try:
            db.list_namespaces()
            outcome = "no error"
        except memsilo.InternalError as e:
            outcome = f"internal:{e.code}:{'fork' in str(e)}"
        except BaseException as e:  # noqa: BLE001 - anything else is a failure to report
            outcome = f"other:{type(e).__name__}"
        try:
            memsilo.open(tmp_path / "parent").whoami()
            outcome += ":reopen-no-error"
        except memsilo.MemsiloError as e:
            outcome += f":reopen-{e.code}"
        try:  # a directory the parent never opened is fine
            memsilo.open(tmp_path / "child").create_namespace("from-child")
            outcome += ":fresh-ok"
        except BaseException as e:  # noqa: BLE001
            outcome += f":fresh-{type(e).__name__}"
        os.write(write, outcome.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        outcome = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert outcome == "internal:internal:True:reopen-internal:fresh-ok"
    db.create_namespace("after-fork")
    assert {n["name"] for n in db.list_namespaces()} == {"before-fork", "after-fork"}


def test_gil_is_released_while_a_call_waits_on_the_network() -> None:
    """A remote call to a server run by a Python thread of this same process completes only
    if the native call released the GIL while it waited for the answer."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(20)
    port = listener.getsockname()[1]
    body = b'{"error":"unauthorized","message":"answered by a Python thread","code":401}'

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(20)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(rest) < length:
                rest += conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                + body
            )

    responder = threading.Thread(target=answer, daemon=True)
    responder.start()
    started = time.monotonic()
    with pytest.raises(memsilo.UnauthorizedError, match="answered by a Python thread"):
        memsilo.connect(f"http://127.0.0.1:{port}", "msk_whatever")  # checks the key at once
    assert time.monotonic() - started < 15
    responder.join(5)
    listener.close()
