"""Caller-supplied vectors (lists and numpy arrays), embedding functions, and time filters."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, List, Tuple

import numpy as np
import pytest
from conftest import unique

import memsilo


def test_numpy_vectors_store_and_recall(db: memsilo.Memsilo) -> None:
    ns = unique("vectors")
    db.create_namespace(ns, dimensions=4)
    north = db.store_memory(ns, "north", embedding=np.array([1, 0, 0, 0], dtype=np.float32))
    east = db.store_memory(ns, "east", embedding=[0.0, 1.0, 0.0, 0.0])
    ids = db.store_memories(
        ns,
        [
            {"content": "up", "embedding": np.array([0.0, 0.0, 1.0, 0.0])},
            {"content": "mostly north", "embedding": np.array([0.9, 0.1, 0.0, 0.0], dtype=np.float64)},
        ],
    )
    assert len(ids) == 2
    hits = db.recall(ns, vector=np.array([1.0, 0.05, 0.0, 0.0], dtype=np.float32), top_k=2)
    assert [h["content"] for h in hits] == ["north", "mostly north"]
    assert hits[0]["id"] == north["id"] and hits[0]["similarity"] > 0.99
    assert db.recall(ns, vector=[0.0, 1.0, 0.0, 0.0], top_k=1)[0]["id"] == east["id"]
    with pytest.raises(memsilo.InvalidArgumentError, match="dimensions"):
        db.recall(ns, vector=np.zeros(3) + 1.0)
    with pytest.raises(memsilo.InvalidArgumentError):
        db.recall(ns, "text needs the namespace's embedder")


def keyword_embedding(calls: List[List[str]]) -> memsilo.EmbeddingFunction:
    """An embedder that only knows three animals: a text's vector says which it mentions."""
    words = {"cat": 0, "kitten": 0, "dog": 1, "puppy": 1, "bird": 2}

    def embed(texts: List[str]) -> List[List[float]]:
        calls.append(list(texts))
        out = []
        for text in texts:
            v = [0.0, 0.0, 0.0, 0.01]
            for word, axis in words.items():
                if word in text.lower():
                    v[axis] = 1.0
            out.append(v)
        return out

    return embed


def test_embedding_function_embeds_stores_and_queries(tmp_path: Path) -> None:
    calls: List[List[str]] = []
    db = memsilo.open(tmp_path, embedding_function=keyword_embedding(calls))
    db.create_namespace("pets")
    cat = db.store_memory("pets", "The cat sleeps on the sofa")
    db.store_memories("pets", [{"content": "A dog barks at night"}, {"content": "Bird song at dawn"}])
    assert calls == [["The cat sleeps on the sofa"], ["A dog barks at night", "Bird song at dawn"]]
    # "kitten" shares no word with the cat memory: only our embedding function links them.
    hits = db.recall("pets", "where is the kitten?", top_k=1)
    assert hits[0]["id"] == cat["id"] and hits[0]["similarity"] > 0.99
    assert db.recall("pets", "puppy", top_k=1)[0]["content"] == "A dog barks at night"
    assert calls[-1] == ["puppy"]
    assert db.get_namespace("pets")["dimensions"] == 4
    # The scoped handle keeps the embedding function.
    key = db.create_key("reader", namespaces=[("pets", "read")])
    assert db.scoped(key["key"]).recall("pets", "kitten", top_k=1)[0]["id"] == cat["id"]
    # An explicit embedding is used as given.
    db.store_memory("pets", "no animal here", embedding=[0.0, 0.0, 1.0, 0.0])
    assert calls[-1] == ["kitten"]


def test_embedding_function_may_return_a_numpy_matrix(tmp_path: Path) -> None:
    def embed(texts: List[str]) -> "np.ndarray":
        return np.array([[1.0, float(len(t) % 2)] for t in texts], dtype=np.float32)

    adb = memsilo.aio.open(tmp_path, embedding_function=embed)

    async def main() -> None:
        await adb.create_namespace("m")
        ids = await adb.store_memories("m", [{"content": "odd"}, {"content": "even"}])
        hits = await adb.recall("m", "abc", top_k=1)  # odd length: the vector [1, 1]
        assert hits[0]["id"] == ids[0] and hits[0]["similarity"] > 0.99

    asyncio.run(main())


def test_embedding_function_must_return_one_vector_per_text(tmp_path: Path) -> None:
    db = memsilo.open(tmp_path, embedding_function=lambda texts: [[1.0, 0.0]])
    db.create_namespace("ns")
    with pytest.raises(ValueError, match="returned 1 vectors for 2 texts"):
        db.store_memories("ns", [{"content": "a"}, {"content": "b"}])


def test_datetimes_filter_recall_and_forget(db: memsilo.Memsilo) -> None:
    ns = unique("times")
    db.create_namespace(ns)
    db.store_memory(ns, "an old note about budgets")
    now = datetime.now(timezone.utc)
    assert len(db.recall(ns, "budgets", since=now - timedelta(hours=1))) == 1
    assert db.recall(ns, "budgets", since=now + timedelta(hours=1)) == []
    assert len(db.recall(ns, "budgets", until=(now + timedelta(hours=1)).isoformat())) == 1
    naive_future = datetime.now() + timedelta(hours=1)  # local time
    assert db.batch_forget(ns, before=naive_future) == {"forgotten": 1}
    expiring = db.create_key("temp", namespaces=[(ns, "read")], expires_at=now + timedelta(days=1))
    assert expiring["expires_at"] is not None and expiring["expires_at"].startswith(
        str((now + timedelta(days=1)).year)
    )


def test_vectors_cross_as_a_binary_block_and_bad_ones_still_name_their_field(
    db: memsilo.Memsilo,
) -> None:
    ns = unique("binary-block")
    db.create_namespace(ns)
    rng = np.random.default_rng(7)
    block = rng.standard_normal((300, 16)).astype(np.float32)
    ids = db.store_memories(
        ns, [{"content": f"row {i}", "embedding": block[i]} for i in range(300)]
    )
    assert len(ids) == 300
    hits = db.recall(ns, vector=block[42], top_k=1)
    assert hits[0]["id"] == ids[42] and hits[0]["similarity"] > 0.999
    one = db.store_memory(ns, "single", embedding=[float(x) for x in block[0]])
    assert one["content"] == "single"
    # Ragged or non-numeric vectors fall back to JSON, where the error names the field.
    with pytest.raises(memsilo.InvalidArgumentError) as err:
        db.store_memories(
            ns,
            [{"content": "a", "embedding": [1.0] * 16}, {"content": "b", "embedding": [1.0] * 3}],
        )
    assert "memories[1].embedding" in str(err.value)
    with pytest.raises(memsilo.InvalidArgumentError) as err:
        db.store_memories(ns, [{"content": "nan", "embedding": [float("nan")] * 16}])
    assert "memories[0].embedding" in str(err.value)
    # Numbers only: numpy read "0.5" and True as floats, so these were stored (or, with the
    # namespace's dimensions, refused for those) where the engine refuses them by field.
    cases: List[Tuple[Any, str]] = [(["0.5"] * 16, "embedding[0]"), ([True] * 16, "embedding[0]")]
    for bad, field in cases:
        with pytest.raises(memsilo.InvalidArgumentError) as err:
            db.store_memory(ns, "not numbers", embedding=bad)
        assert err.value.field == field
        with pytest.raises(memsilo.InvalidArgumentError) as err:
            db.recall(ns, vector=bad)
        assert err.value.field == field.replace("embedding", "vector")
    assert db.get_namespace(ns)["memory_count"] == 301
