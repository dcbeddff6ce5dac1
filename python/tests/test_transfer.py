"""Export and import: a namespace copied as JSON Lines, in-process and against a server."""

import asyncio
import io
import json
import re
import urllib.request
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Dict, List, Tuple, Union

import pytest

import memsilo
from conftest import ADMIN_KEY, Server, unique
from memsilo.types import MemoryInput


def test_a_namespace_is_copied_through_json_lines(db: memsilo.Memsilo) -> None:
    db.create_namespace("src")
    db.store_memories(
        "src",
        [{"id": f"m{i}", "content": f"note {i}", "embedding": [float(i), 1.0, 0.0]} for i in range(30)],
    )
    db.add_relation("src", "Alice", "Acme", "works_at")
    lines = list(db.export_namespace("src", page_size=7))
    assert lines[0]["kind"] == "namespace"
    assert sum(1 for l in lines if l["kind"] == "memory") == 30
    text = io.StringIO("".join(json.dumps(l) + "\n" for l in lines))

    db.create_namespace("dst")
    done = db.import_namespace("dst", text, batch_size=8)
    assert (done["memories"], done["entities"], done["relations"]) == (30, 2, 1)
    assert db.get_memory("dst", "m12")["content"] == "note 12"
    assert db.import_namespace("dst", lines)["relations"] == 0  # again: nothing new

    bad = [json.dumps(l) for l in lines]
    bad[10] = '{"kind": "memory", "id": "x", "content": "y", "vector": [1.0]}'
    db.create_namespace("dst2", dimensions=3)
    with pytest.raises(memsilo.InvalidArgumentError) as e:
        db.import_namespace("dst2", bad)
    assert str(e.value).startswith("line 11: vector has 1 dimensions, namespace has 3")


def test_a_text_namespace_copy_takes_text_and_recalls_it(db: memsilo.Memsilo) -> None:
    db.create_namespace("notes")
    texts = ["the cat sleeps on the warm kitchen mat", "quarterly revenue grew in europe"]
    db.store_memories("notes", [{"id": f"t{i}", "content": t} for i, t in enumerate(texts)])
    lines = list(db.export_namespace("notes"))
    assert lines[0]["embedder"] == db.get_namespace("notes")["embedder"]
    text = io.StringIO("".join(json.dumps(l) + "\n" for l in lines))
    db.create_namespace("copy")
    # Batches of one line: the memories' batches come after the namespace line's.
    assert db.import_namespace("copy", text, batch_size=1)["memories"] == 2
    db.store_memory("copy", "backups run every night at two")
    hits = db.recall("copy", "the cat on the kitchen mat", top_k=3)
    assert hits[0]["id"] == "t0"


def test_the_async_handle_exports_and_imports(db: memsilo.Memsilo) -> None:
    adb = memsilo.aio.AsyncMemsilo(db)

    async def run() -> int:
        await adb.create_namespace("a")
        await adb.store_memory("a", "hello", importance=0.5)
        lines = [line async for line in adb.export_namespace("a")]
        await adb.create_namespace("b")
        done = await adb.import_namespace("b", lines)
        assert done["memories"] == 1

        # An async iterable too: read on the event loop, fed to the importer in a thread.
        async def each() -> AsyncIterator[Union[str, Dict[str, Any]]]:
            for i, line in enumerate(lines):
                yield json.dumps(line) if i % 2 else line

        await adb.create_namespace("c")
        done = await adb.import_namespace("c", each())
        assert (await adb.get_memory("c", lines[1]["id"]))["content"] == "hello"
        return done["memories"]

    assert asyncio.run(run()) == 1


def _memory_lines(n: int) -> List[str]:
    return [
        json.dumps({"kind": "memory", "id": f"m{i}", "content": f"note {i}", "vector": [1.0, float(i), 0.0]})
        for i in range(1, n + 1)
    ]


def test_a_bad_line_3500_stops_the_import_keeping_the_batches_before_it(db: memsilo.Memsilo) -> None:
    ns = unique("bad")
    db.create_namespace(ns, dimensions=3)
    lines = _memory_lines(5000)
    lines[3499] = json.dumps({"kind": "memory", "id": "m3500", "content": "x", "vector": [1.0]})
    with pytest.raises(memsilo.InvalidArgumentError) as e:
        db.import_namespace(ns, io.BytesIO("\n".join(lines).encode()))
    assert str(e.value) == "line 3500: vector has 1 dimensions, namespace has 3"
    # What the batches before the failing one wrote, and the line, on the exception itself.
    assert e.value.line == 3500
    assert e.value.imported == {"lines": 3000, "memories": 3000, "entities": 0, "relations": 0, "expired": 0}
    assert e.value.details is not None and e.value.details["imported"] == e.value.imported
    # Lines 1-3000 (three whole batches of 1000) stay; the bad line's batch and after do not.
    assert db.get_namespace(ns)["memory_count"] == 3000
    assert db.get_memories(ns, ["m3000", "m3001"])[0]["id"] == "m3000"
    assert len(db.get_memories(ns, ["m3001", "m4999"])) == 0


def test_import_arguments_of_the_wrong_type_are_refused_naming_them(db: memsilo.Memsilo) -> None:
    # Were a bare TypeError or OverflowError, or (an int line) five NUL bytes as the line.
    ns = unique("import-args")
    db.create_namespace(ns)
    adb = memsilo.AsyncMemsilo(db)

    async def lines() -> AsyncIterator[str]:
        yield "{}"

    cases: List[Tuple[Callable[[], object], str]] = [
        (lambda: db.import_namespace(5, []), "namespace"),  # type: ignore[arg-type]
        (lambda: db.import_namespace(ns, None), "lines"),  # type: ignore[arg-type]
        (lambda: db.import_namespace(ns, 5), "lines"),  # type: ignore[arg-type]
        (lambda: db.import_namespace(ns, [5]), "lines"),  # type: ignore[list-item]
        (lambda: db.import_namespace(ns, [], batch_size="10"), "batch_size"),  # type: ignore[arg-type]
        (lambda: db.import_namespace(ns, [], batch_size=-1), "batch_size"),
        (lambda: asyncio.run(adb.import_namespace(5, lines())), "namespace"),  # type: ignore[arg-type]
        (lambda: asyncio.run(adb.import_namespace(ns, lines(), batch_size=-1)), "batch_size"),
    ]
    for call, field in cases:
        with pytest.raises(memsilo.InvalidArgumentError) as err:
            call()
        assert err.value.field == field
    assert db.count_memories(ns) == 0


def test_each_item_of_an_iterable_is_one_line_and_errors_count_items(db: memsilo.Memsilo) -> None:
    ns = unique("items")
    db.create_namespace(ns, dimensions=3)

    def memory(i: int, vector: List[float], indent: Union[int, None] = None) -> str:
        line = {"kind": "memory", "id": f"m{i}", "content": f"note {i}", "vector": vector}
        return json.dumps(line, indent=indent)

    # A JSON object written over several lines is one item, so one line; a newline at the
    # end of an item is optional.
    items = [
        memory(1, [1.0, 1.0, 0.0]),
        memory(2, [1.0, 2.0, 0.0], indent=2),
        memory(3, [1.0, 3.0, 0.0]) + "\n",
        memory(4, [1.0], indent=2),
    ]
    with pytest.raises(memsilo.InvalidArgumentError) as e:
        db.import_namespace(ns, items, batch_size=2)
    assert str(e.value) == "line 4: vector has 1 dimensions, namespace has 3"
    assert e.value.line == 4 and e.value.imported is not None
    assert e.value.imported["memories"] == 2
    items[3] = memory(4, [1.0, 4.0, 0.0], indent=2)
    assert db.import_namespace(ns, items, batch_size=2)["memories"] == 4
    assert db.get_memory(ns, "m2")["content"] == "note 2"
    # The whole text as one str or bytes is JSON Lines, not an iterable of one-character lines.
    text = "".join(memory(i, [1.0, float(i), 0.0]) + "\n" for i in (5, 6))
    assert db.import_namespace(ns, text)["memories"] == 2
    assert db.import_namespace(ns, text.encode())["memories"] == 2
    # A line break inside a string is no JSON, as it is not over several lines: named by item.
    bad = items[:2] + ['{"kind": "memory", "id": "x",\n "content": "a\nb"}', items[2]]
    with pytest.raises(memsilo.InvalidArgumentError) as e:
        db.import_namespace(ns, bad)
    assert str(e.value).startswith("line 3: not JSON: control character"), str(e.value)


def _import_requests(server: Server) -> Tuple[int, int]:
    """Requests the server answered on the streamed import route and the batch route."""
    req = urllib.request.Request(server.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    with urllib.request.urlopen(req) as resp:
        text = resp.read().decode()
    counts = [0, 0]
    for route, n in re.findall(r'method="POST",route="/v1/namespaces/\{name\}/import(/batch)?",status="\d+"\} (\d+)', text):
        counts[1 if route else 0] += int(n)
    return counts[0], counts[1]


def test_a_remote_import_is_one_streamed_request_and_writes_what_a_local_one_does(
    server: Server, tmp_path: Path
) -> None:
    remote = memsilo.connect(server.url, ADMIN_KEY)
    local = memsilo.open(tmp_path / "data")
    src = local.create_namespace("src", dimensions=3)["name"]
    for start in range(0, 4999, 1000):
        items: List[MemoryInput] = [
            {"id": f"m{i}", "content": f"note {i}", "tags": ["t"], "embedding": [1.0, float(i), 0.5]}
            for i in range(start, min(4999, start + 1000))
        ]
        local.store_memories(src, items)
    local.add_relation(src, "Alice", "Acme", "works_at")
    text = "".join(json.dumps(line) + "\n" for line in local.export_namespace(src)).encode()
    ns = unique("copy")
    remote.create_namespace(ns)
    remote.import_namespace(ns, [])  # a client's first import asks whether the server streams
    before = _import_requests(server)
    done = remote.import_namespace(ns, io.BytesIO(text))
    assert _import_requests(server) == (before[0] + 1, before[1])
    local.create_namespace("copy")
    assert local.import_namespace("copy", io.BytesIO(text)) == done
    assert (done["memories"], done["entities"], done["relations"]) == (4999, 2, 1)

    def kept(db: memsilo.Memsilo, name: str) -> List[Any]:
        lines = db.export_namespace(name)
        return sorted((l["id"], l["content"], l["vector"], l["tags"]) for l in lines if l["kind"] == "memory")

    assert kept(remote, ns) == kept(local, "copy")
