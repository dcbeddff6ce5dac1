"""Export and import: a namespace copied as JSON Lines, in-process and against a server."""

import asyncio
import io
import json

import pytest

import memsilo


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
        return done["memories"]

    assert asyncio.run(run()) == 1
