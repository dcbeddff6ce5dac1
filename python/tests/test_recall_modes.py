"""Recall modes (issue 17) in both modes of the package: keyword, vector and hybrid."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import unique

import memsilo

CONTENTS = [
    "Q3 roadmap: Omega in Sept",
    "Hiring 4 ML engineers",
    "Budget: $2.4M allocated",
    "Order ZX-4471 shipped to the Lisbon warehouse",
]


def test_keyword_vector_and_hybrid_recall(db: memsilo.Memsilo) -> None:
    ns = unique("modes")
    db.create_namespace(ns)
    db.store_memories(ns, [{"content": c} for c in CONTENTS])

    # A word only one memory holds: keyword recall finds it and nothing else.
    keyword = db.recall(ns, "zx-4471", mode="keyword", top_k=10)
    assert [h["content"] for h in keyword] == [CONTENTS[3]]
    assert (keyword[0]["keyword_score"] or 0) > 0
    # Vector recall ranks every memory.
    assert len(db.recall(ns, "zx-4471", mode="vector", top_k=10)) == 4

    # Fused, the memory in both lists (the only one with the word "hiring") comes first,
    # with both of its scores; hybrid is the default for text.
    query = "how much money goes to hiring"
    hybrid = db.recall(ns, query, mode="hybrid", top_k=10)
    assert hybrid[0]["content"] == CONTENTS[1]
    assert (hybrid[0]["keyword_score"] or 0) > 0 and hybrid[0]["vector_score"] is not None
    assert db.recall(ns, query, top_k=10)[0]["content"] == CONTENTS[1]
    vector = db.recall(ns, query, mode="vector", top_k=10)
    weighted = db.recall(ns, query, mode="hybrid", vector_weight=1.0, top_k=10)
    assert weighted[0]["content"] == vector[0]["content"]


def test_bad_recall_arguments_name_their_field(db: memsilo.Memsilo) -> None:
    ns = unique("bad")
    db.create_namespace(ns)
    db.store_memories(ns, [{"content": c} for c in CONTENTS])
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"query": "x", "mode": "fuzzy"}, "mode", "unknown variant `fuzzy`"),
        ({"query": "x", "mode": "keyword", "vector_weight": 0.5}, "vector_weight", "hybrid"),
        ({"query": "x", "vector_weight": 1.5}, "vector_weight", "between 0 and 1"),
        ({"query": "x", "vector_weight": -0.1}, "vector_weight", "between 0 and 1"),
        ({"query": "x" * (64 * 1024 + 1)}, "query", "at most 65536 bytes"),
    ]
    for args, field, says in cases:
        with pytest.raises(memsilo.InvalidArgumentError) as e:
            db.recall(ns, **args)
        assert e.value.field == field and says in str(e.value), (list(args), e.value)
    # A query of exactly 64 KiB is allowed.
    assert db.recall(ns, "x " * (32 * 1024), mode="keyword") == []
