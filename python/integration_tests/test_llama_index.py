"""MemsiloVectorStore for LlamaIndex: the BasePydanticVectorStore calls, metadata filters, and a
VectorStoreIndex round trip with a real embedder (potion-base-8M), each store reached through a
key scoped to its tenant's namespace, in-process and through a real server."""

from __future__ import annotations

from typing import Any, Callable, List

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

import memsilo
from conftest import Tenant
from memsilo.integrations.llama_index import MemsiloVectorStore



class Model2VecEmbedding(BaseEmbedding):
    """LlamaIndex embedding over the LangChain model2vec embeddings of conftest."""

    _inner: Any = PrivateAttr()

    def __init__(self, inner: Any) -> None:
        super().__init__(model_name="potion-base-8M")
        self._inner = inner

    def _get_query_embedding(self, query: str) -> List[float]:
        return self._inner.embed_query(query)  # type: ignore[no-any-return]

    def _get_text_embedding(self, text: str) -> List[float]:
        return self._inner.embed_query(text)  # type: ignore[no-any-return]

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return self._get_query_embedding(query)


def node(node_id: str, text: str, vector: List[float], ref: str, **metadata: Any) -> TextNode:
    n = TextNode(id_=node_id, text=text, embedding=vector, metadata=metadata)
    n.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=ref)
    return n


@pytest.fixture
def store(tenant: Tenant) -> MemsiloVectorStore:
    return MemsiloVectorStore(client=tenant.handle, namespace=tenant.namespace)


@pytest.fixture
def filled(store: MemsiloVectorStore) -> MemsiloVectorStore:
    store.add(
        [
            node("n1", "red apple", [1.0, 0.0, 0.0], "doc-a", color="red", year=2019, tags=["fruit"]),
            node("n2", "red car", [0.9, 0.1, 0.0], "doc-a", color="red", year=2023, tags=["vehicle"]),
            node("n3", "green pear", [0.0, 1.0, 0.0], "doc-b", color="green", year=2021, tags=["fruit"]),
            node("n4", "blue boat", [0.0, 0.0, 1.0], "doc-c", color="blue", year=2024, tags=["vehicle", "sea"]),
        ]
    )
    return store


def query(store: MemsiloVectorStore, vector: List[float], k: int = 10, **kw: Any) -> List[str]:
    return list(store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=k, **kw)).ids or [])


def test_add_and_query(filled: MemsiloVectorStore) -> None:
    result = filled.query(VectorStoreQuery(query_embedding=[1.0, 0.0, 0.0], similarity_top_k=2))
    assert result.ids == ["n1", "n2"]
    assert result.similarities is not None and result.similarities[0] == pytest.approx(1.0)
    assert result.nodes is not None and result.nodes[0].get_content() == "red apple"
    assert result.nodes[0].metadata == {"color": "red", "year": 2019, "tags": ["fruit"]}
    assert result.nodes[0].ref_doc_id == "doc-a"


def test_metadata_filters(filled: MemsiloVectorStore) -> None:
    def f(*filters: MetadataFilter, condition: FilterCondition = FilterCondition.AND) -> MetadataFilters:
        return MetadataFilters(filters=list(filters), condition=condition)

    red = f(MetadataFilter(key="color", value="red"))
    assert query(filled, [0.0, 1.0, 0.0], filters=red) == ["n2", "n1"]
    recent = f(MetadataFilter(key="year", value=2021, operator=FilterOperator.GTE))
    assert sorted(query(filled, [1.0, 0.0, 0.0], filters=recent)) == ["n2", "n3", "n4"]
    either = f(
        MetadataFilter(key="color", value="blue"),
        MetadataFilter(key="year", value=2019, operator=FilterOperator.LTE),
        condition=FilterCondition.OR,
    )
    assert sorted(query(filled, [1.0, 0.0, 0.0], filters=either)) == ["n1", "n4"]
    colors = f(MetadataFilter(key="color", value=["green", "blue"], operator=FilterOperator.IN))
    assert sorted(query(filled, [1.0, 0.0, 0.0], filters=colors)) == ["n3", "n4"]
    sea = f(MetadataFilter(key="tags", value="sea", operator=FilterOperator.CONTAINS))
    assert query(filled, [1.0, 0.0, 0.0], filters=sea) == ["n4"]
    nested = MetadataFilters(
        filters=[
            MetadataFilter(key="tags", value=["fruit"], operator=FilterOperator.ANY),
            f(MetadataFilter(key="color", value="green", operator=FilterOperator.NE)),
        ]
    )
    assert query(filled, [1.0, 0.0, 0.0], filters=nested) == ["n1"]
    assert sorted(query(filled, [1.0, 0.0, 0.0], doc_ids=["doc-b", "doc-c"])) == ["n3", "n4"]
    assert query(filled, [1.0, 0.0, 0.0], node_ids=["n3"]) == ["n3"]
    with pytest.raises(ValueError, match="text_match"):
        filled.query(
            VectorStoreQuery(
                query_embedding=[1.0, 0.0, 0.0],
                filters=f(MetadataFilter(key="color", value="re", operator=FilterOperator.TEXT_MATCH)),
            )
        )


def test_get_delete_and_clear(filled: MemsiloVectorStore) -> None:
    got = filled.get_nodes(node_ids=["n3", "n1", "missing"])
    assert [n.node_id for n in got] == ["n3", "n1"]
    assert got[0].get_content() == "green pear" and got[0].embedding is None
    fruit = filled.get_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="color", value="red")]))
    assert sorted(n.node_id for n in fruit) == ["n1", "n2"]
    filled.delete("doc-a")  # by ref_doc_id: both of doc-a's nodes
    assert sorted(query(filled, [1.0, 0.0, 0.0])) == ["n3", "n4"]
    filled.delete_nodes(node_ids=["n3"])
    assert query(filled, [1.0, 0.0, 0.0]) == ["n4"]
    filled.add([node("n5", "yellow kite", [0.0, 1.0, 0.0], "doc-d", color="yellow")])
    filled.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="color", value="blue")]))
    assert query(filled, [1.0, 0.0, 0.0]) == ["n5"]
    filled.clear()
    assert query(filled, [1.0, 0.0, 0.0]) == []


def test_vector_store_index_round_trip(store: MemsiloVectorStore, model2vec_embeddings: Any) -> None:
    embed = Model2VecEmbedding(model2vec_embeddings)
    docs = [
        Document(text="The Omega launch is planned for September.", doc_id="roadmap", metadata={"team": "product"}),
        Document(text="We are hiring four machine learning engineers.", doc_id="hiring", metadata={"team": "people"}),
        Document(text="The budget for next year is 2.4 million dollars.", doc_id="budget", metadata={"team": "finance"}),
    ]
    index = VectorStoreIndex.from_documents(
        docs, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed
    )
    retriever = index.as_retriever(similarity_top_k=1)
    assert retriever.retrieve("when do we launch Omega")[0].node.ref_doc_id == "roadmap"
    assert retriever.retrieve("recruiting engineers")[0].node.ref_doc_id == "hiring"

    # Reopen over the same namespace: the index lives in memsilo, not in the Python object.
    again = VectorStoreIndex.from_vector_store(
        MemsiloVectorStore(client=store.client, namespace=store.namespace), embed_model=embed
    )
    hit = again.as_retriever(similarity_top_k=1).retrieve("how much money is in the budget")[0]
    assert hit.node.ref_doc_id == "budget" and hit.node.metadata == {"team": "finance"}
    again.delete_ref_doc("budget")
    remaining = again.as_retriever(similarity_top_k=5).retrieve("budget money dollars")
    assert sorted(n.node.ref_doc_id for n in remaining) == ["hiring", "roadmap"]
    again.insert(Document(text="The office moves to Berlin in May.", doc_id="office"))
    assert again.as_retriever(similarity_top_k=1).retrieve("relocation Berlin")[0].node.ref_doc_id == "office"


def test_tenant_a_store_cannot_see_tenant_b(new_tenant: Callable[[], Tenant]) -> None:
    a, b = new_tenant(), new_tenant()
    store_a = MemsiloVectorStore(client=a.handle, namespace=a.namespace)
    store_b = MemsiloVectorStore(client=b.handle, namespace=b.namespace)
    store_a.add([node("same-id", "A's note", [1.0, 0.0], "doc")])
    store_b.add([node("same-id", "B's note", [1.0, 0.0], "doc")])
    assert [n.get_content() for n in store_a.get_nodes(node_ids=["same-id"])] == ["A's note"]
    a_on_b = MemsiloVectorStore(client=a.handle, namespace=b.namespace)
    with pytest.raises(memsilo.ForbiddenError):
        a_on_b.query(VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=1))
    with pytest.raises(memsilo.ForbiddenError):
        a_on_b.clear()
    assert [n.get_content() for n in store_b.get_nodes(node_ids=["same-id"])] == ["B's note"]
