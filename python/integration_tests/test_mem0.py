"""mem0's ``Memory`` end to end on the "memsilo" vector store provider, offline: a real embedder
(potion-base-8M static embeddings through mem0's "langchain" embedder) and, for ``infer=True``,
mem0's "langchain" LLM provider on a fake chat model that returns fixed facts. Each Memory is
built from a key scoped to its tenant's namespace, in-process and through a real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

import memsilo
from conftest import Tenant
from memsilo.integrations import mem0 as memsilo_mem0


mem0 = pytest.importorskip("mem0")
memsilo_mem0.register()

FACTS = ["Alice is vegetarian", "Alice's dog is called Rex", "Alice works at Acme as an engineer"]


def build_memory(
    tenant: Tenant, embeddings: Any, tmp_path: Path, llm_replies: List[str] | None = None
) -> Any:
    llm = FakeListChatModel(responses=llm_replies or ['{"memory": []}'])
    return mem0.Memory.from_config(
        {
            "vector_store": {
                "provider": "memsilo",
                "config": {
                    "client": tenant.handle,
                    "namespace": tenant.namespace,
                    "embedding_model_dims": 256,
                },
            },
            "embedder": {"provider": "langchain", "config": {"model": embeddings}},
            "llm": {"provider": "langchain", "config": {"model": llm}},
            "history_db_path": str(tmp_path / f"history-{tenant.namespace}.db"),
        }
    )


@pytest.fixture
def memory(tenant: Tenant, model2vec_embeddings: Any, tmp_path: Path) -> Any:
    return build_memory(tenant, model2vec_embeddings, tmp_path)


def texts(result: Dict[str, Any]) -> List[str]:
    return [r["memory"] for r in result["results"]]


def test_add_without_inference_search_get_all_update_delete_history(memory: Any) -> None:
    added = memory.add("I love hiking in the Alps", user_id="alice", infer=False)
    assert [r["event"] for r in added["results"]] == ["ADD"]
    memory.add("My favourite food is spicy ramen", user_id="alice", infer=False)
    memory.add("Bob plays the cello", user_id="bob", infer=False)

    listed = memory.get_all(filters={"user_id": "alice"})
    assert sorted(texts(listed)) == ["I love hiking in the Alps", "My favourite food is spicy ramen"]

    found = memory.search("mountain walks", filters={"user_id": "alice"}, threshold=0.0)
    assert texts(found)[0] == "I love hiking in the Alps"
    assert 0.0 <= found["results"][0]["score"] <= 1.0
    assert texts(memory.search("cello", filters={"user_id": "alice"}, threshold=0.0)).count(
        "Bob plays the cello"
    ) == 0

    memory_id = added["results"][0]["id"]
    memory.update(memory_id, text="I love hiking in the Dolomites")
    assert memory.get(memory_id)["memory"] == "I love hiking in the Dolomites"
    found = memory.search("Dolomites hiking", filters={"user_id": "alice"}, threshold=0.0)
    assert texts(found)[0] == "I love hiking in the Dolomites"

    history = memory.history(memory_id)
    assert [h["event"] for h in history] == ["ADD", "UPDATE"]
    assert history[1]["old_memory"] == "I love hiking in the Alps"

    memory.delete(memory_id)
    assert memory.get(memory_id) is None
    assert texts(memory.get_all(filters={"user_id": "alice"})) == ["My favourite food is spicy ramen"]
    assert [h["event"] for h in memory.history(memory_id)][-1] == "DELETE"

    memory.delete_all(user_id="alice")
    assert texts(memory.get_all(filters={"user_id": "alice"})) == []
    assert texts(memory.get_all(filters={"user_id": "bob"})) == ["Bob plays the cello"]


def test_add_with_inference_stores_the_llm_facts(
    tenant: Tenant, model2vec_embeddings: Any, tmp_path: Path
) -> None:
    reply = json.dumps({"memory": [{"text": f} for f in FACTS]})
    memory = build_memory(tenant, model2vec_embeddings, tmp_path, [reply])
    added = memory.add(
        [
            {"role": "user", "content": "Hi, I'm Alice. I don't eat meat and I work at Acme."},
            {"role": "assistant", "content": "Nice to meet you, Alice!"},
        ],
        user_id="alice",
    )
    assert sorted(r["memory"] for r in added["results"]) == sorted(FACTS)
    assert sorted(texts(memory.get_all(filters={"user_id": "alice"}))) == sorted(FACTS)
    found = memory.search("what is the name of her pet", filters={"user_id": "alice"}, threshold=0.0)
    assert texts(found)[0] == "Alice's dog is called Rex"


def test_metadata_filters(memory: Any) -> None:
    memory.add("Meeting notes from Monday", user_id="u", metadata={"kind": "notes", "n": 1}, infer=False)
    memory.add("Grocery list: milk, eggs", user_id="u", metadata={"kind": "todo", "n": 2}, infer=False)
    memory.add("Meeting notes from Friday", user_id="u", metadata={"kind": "notes", "n": 5}, infer=False)
    notes = memory.get_all(filters={"user_id": "u", "kind": "notes"})
    assert sorted(texts(notes)) == ["Meeting notes from Friday", "Meeting notes from Monday"]
    late = memory.search("notes", filters={"user_id": "u", "n": {"gte": 2}}, threshold=0.0)
    assert sorted(texts(late)) == ["Grocery list: milk, eggs", "Meeting notes from Friday"]
    either = memory.get_all(filters={"user_id": "u", "OR": [{"n": 1}, {"kind": "todo"}]})
    assert sorted(texts(either)) == ["Grocery list: milk, eggs", "Meeting notes from Monday"]


def test_tenant_a_memory_cannot_see_tenant_b(
    new_tenant: Callable[[], Tenant], model2vec_embeddings: Any, tmp_path: Path
) -> None:
    a, b = new_tenant(), new_tenant()
    mem_a = build_memory(a, model2vec_embeddings, tmp_path)
    mem_b = build_memory(b, model2vec_embeddings, tmp_path)
    mem_a.add("A's launch date is in March", user_id="same-user", infer=False)
    mem_b.add("B's launch date is in June", user_id="same-user", infer=False)
    assert texts(mem_a.get_all(filters={"user_id": "same-user"})) == ["A's launch date is in March"]
    found = mem_a.search("launch date", filters={"user_id": "same-user"}, threshold=0.0)
    assert texts(found) == ["A's launch date is in March"]
    # A's key pointed at B's namespace is refused.
    a_on_b = memsilo_mem0.MemsiloVectorStore(client=a.handle, namespace=b.namespace)
    with pytest.raises(memsilo.ForbiddenError):
        a_on_b.list(filters={"user_id": "same-user"})


def test_vector_store_contract(tenant: Tenant) -> None:
    """The VectorStoreBase calls mem0 makes, directly (collections are tags of one namespace)."""
    store = memsilo_mem0.MemsiloVectorStore(client=tenant.handle, namespace=tenant.namespace)
    other = memsilo_mem0.MemsiloVectorStore(
        client=tenant.handle, namespace=tenant.namespace, collection_name="mem0_entities"
    )
    store.create_col("mem0", 3, "cosine")
    store.insert([[1, 0, 0], [0, 1, 0]], [{"data": "x", "user_id": "u"}, {"data": "y"}], ["id-x", "id-y"])
    other.insert([[1, 0, 0]], [{"data": "entity"}], ["id-e"])
    hits = store.search("x", [1, 0, 0], top_k=5)
    assert [h.id for h in hits] == ["id-x", "id-y"] and hits[0].score == pytest.approx(1.0)
    assert store.get("id-x").payload == {"data": "x", "user_id": "u"}  # type: ignore[union-attr]
    assert store.get("id-e") is None  # another collection
    store.update("id-x", vector=[0, 0, 1], payload={"data": "z"})
    assert store.get("id-x").payload == {"data": "z"}  # type: ignore[union-attr]
    assert [h.id for h in store.search("z", [0, 0, 1], top_k=1)] == ["id-x"]
    assert sorted(r.id for r in store.list()[0]) == ["id-x", "id-y"]
    assert store.col_info()["count"] == 2
    store.delete("id-y")
    store.delete("id-y")  # deleting twice is fine
    store.reset()
    assert store.list()[0] == []
    assert [r.id for r in other.list()[0]] == ["id-e"]
