"""The knowledge graph through the Python API, in both modes."""

from __future__ import annotations

import pytest
from conftest import unique

import memsilo


def test_entities_relations_traversal_and_isolation(db: memsilo.Memsilo) -> None:
    ns, other = unique("graph"), unique("graph-other")
    db.create_namespace(ns)
    db.create_namespace(other)
    acme = db.add_entity(ns, "Acme", type="org", properties={"hq": "Berlin"})
    assert db.add_entity(ns, "Acme", type="org", properties={"hq": "Paris"})["id"] == acme["id"]
    assert db.get_entity(ns, "Acme", type="org")["properties"] == {"hq": "Paris"}
    db.add_entity(ns, "Alice", type="person")
    db.add_entity(ns, "Bob", type="person")
    works = db.add_relation(ns, "Alice", "Acme", "works_at", weight=2.0)
    assert (works["source_name"], works["target_name"], works["type"]) == ("Alice", "Acme", "works_at")
    db.add_relation(ns, "Bob", "Alice", "reports_to", weight=1.0)

    near = db.neighbors(ns, "Acme", depth=1)
    assert near["entities"][0]["name"] == "Acme"
    assert {e["name"] for e in near["entities"]} == {"Acme", "Alice"}
    assert {e["name"] for e in db.neighbors(ns, "Acme", depth=2)["entities"]} == {"Acme", "Alice", "Bob"}
    sub = db.subgraph(ns, "Alice", depth=1)
    assert {r["type"] for r in sub["relations"]} == {"works_at", "reports_to"}
    path = db.shortest_path(ns, from_="Bob", to="Acme")
    assert [e["name"] for e in path["entities"]] == ["Bob", "Alice", "Acme"]
    assert path["total_weight"] == 3.0

    # Memories that mention entities are reached through the graph on recall with expand.
    db.store_memory(ns, "Bob leads the payments team", entities=["Bob"])
    hits = db.recall(ns, "where does Alice work?", top_k=5, expand=2)
    assert any(h["content"] == "Bob leads the payments team" for h in hits)

    # The graph is per namespace, and a key for another namespace cannot see it.
    with pytest.raises(memsilo.NotFoundError):
        db.get_entity(other, "Acme")
    other_key = db.create_key("other", namespaces=[(other, "write")])
    with pytest.raises(memsilo.ForbiddenError):
        db.scoped(other_key["key"]).neighbors(ns, "Acme")

    assert db.delete_relation(ns, works["id"]) == {"id": works["id"], "deleted": True}
    with pytest.raises(memsilo.NotFoundError):
        db.shortest_path(ns, from_="Bob", to="Acme")
    deleted = db.delete_entity(ns, "Alice")
    assert deleted["name"] == "Alice" and deleted["deleted"] is True
    assert db.neighbors(ns, "Bob")["relations"] == []  # its relations went with it
