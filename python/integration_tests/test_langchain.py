"""MemsiloVectorStore beyond the standard suite: from_texts, the filter language with scores,
max marginal relevance, as_retriever, the engine's own embedder, and tenant isolation."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding

import memsilo
from conftest import Tenant
from memsilo.integrations.langchain import MemsiloRetriever, MemsiloVectorStore

COLORS = [
    ("red apple", {"color": "red", "n": 1, "tags": ["fruit"]}),
    ("red car", {"color": "red", "n": 2, "tags": ["vehicle"]}),
    ("green apple", {"color": "green", "n": 3, "tags": ["fruit"]}),
    ("blue boat", {"color": "blue", "n": 4, "tags": ["vehicle", "sea"]}),
]


@pytest.fixture
def store(tenant: Tenant, model2vec_embeddings: Any) -> MemsiloVectorStore:
    return MemsiloVectorStore.from_texts(
        [t for t, _ in COLORS],
        model2vec_embeddings,
        [m for _, m in COLORS],
        client=tenant.handle,
        namespace=tenant.namespace,
        ids=["a", "b", "c", "d"],
    )


def test_from_texts_and_scores(store: MemsiloVectorStore) -> None:
    hits = store.similarity_search_with_score("apple", k=4)
    assert [d.id for d, _ in hits][:2] in (["a", "c"], ["c", "a"])
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True) and -1.0 <= scores[-1] <= scores[0] <= 1.0
    relevance = store.similarity_search_with_relevance_scores("apple", k=1)
    assert 0.0 <= relevance[0][1] <= 1.0


def test_filter_language(store: MemsiloVectorStore) -> None:
    def ids(flt: Any) -> list:
        return sorted(d.id for d, _ in store.similarity_search_with_score("thing", k=4, filter=flt))

    assert ids({"color": "red"}) == ["a", "b"]
    assert ids({"n": {"$gte": 3}}) == ["c", "d"]
    assert ids({"color": {"$in": ["green", "blue"]}, "n": {"$lt": 4}}) == ["c"]
    assert ids({"$or": [{"n": 1}, {"tags": {"$contains": "sea"}}]}) == ["a", "d"]
    assert ids({"$not": {"color": "red"}}) == ["c", "d"]
    assert ids({"tags": {"$contains_all": ["vehicle", "sea"]}}) == ["d"]
    assert ids({"missing": {"$exists": True}}) == []
    with pytest.raises(memsilo.InvalidArgumentError) as err:
        store.similarity_search("thing", k=4, filter={"n": {"$bogus": 1}})
    assert "filter" in str(err.value)


def test_max_marginal_relevance(tenant: Tenant, model2vec_embeddings: Any) -> None:
    store = MemsiloVectorStore(tenant.handle, tenant.namespace, model2vec_embeddings)
    store.add_texts(["apple pie recipe", "apple pie recipe!", "apple tart recipe", "zebra stripes"])
    plain = store.similarity_search("apple pie recipe", k=2)
    assert [d.page_content for d in plain] == ["apple pie recipe", "apple pie recipe!"]
    mmr = store.max_marginal_relevance_search("apple pie recipe", k=2, fetch_k=4, lambda_mult=0.1)
    assert mmr[0].page_content == "apple pie recipe"
    assert mmr[1].page_content != "apple pie recipe!"  # the near duplicate is not picked second
    retriever = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4})
    assert isinstance(retriever, MemsiloRetriever) and len(retriever.invoke("apple")) == 2


def test_as_retriever_with_filter_and_threshold(store: MemsiloVectorStore) -> None:
    red = store.as_retriever(search_kwargs={"k": 4, "filter": {"color": "red"}}).invoke("x")
    assert sorted(d.id for d in red) == ["a", "b"]
    assert len(MemsiloRetriever(vectorstore=store, k=1, filter={"n": 4}).invoke("x")) == 1
    high = store.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.99, "k": 4}
    ).invoke("red apple")
    assert [d.id for d in high] == ["a"]


def test_engine_embedder_when_no_embedding_is_given(tenant: Tenant) -> None:
    store = MemsiloVectorStore(tenant.handle, tenant.namespace)
    store.add_texts(["Q3 roadmap: launch Omega in September", "Hiring four ML engineers"], ids=["r", "h"])
    assert store.similarity_search("Omega launch roadmap", k=1)[0].id == "r"
    with pytest.raises(ValueError, match="embedding"):
        store.max_marginal_relevance_search("x")


def test_tenant_a_store_cannot_see_tenant_b(new_tenant: Callable[[], Tenant]) -> None:
    emb = DeterministicFakeEmbedding(size=8)
    a, b = new_tenant(), new_tenant()
    store_a = MemsiloVectorStore(a.handle, a.namespace, emb)
    store_b = MemsiloVectorStore(b.handle, b.namespace, emb)
    store_a.add_documents([Document("A's roadmap")], ids=["same"])
    store_b.add_documents([Document("B's secret")], ids=["same"])
    assert [d.page_content for d in store_a.similarity_search("B's secret", k=5)] == ["A's roadmap"]
    assert [d.page_content for d in store_a.get_by_ids(["same"])] == ["A's roadmap"]
    a_on_b = MemsiloVectorStore(a.handle, b.namespace, emb)
    for call in (
        lambda: a_on_b.similarity_search("secret", k=1),
        lambda: a_on_b.get_by_ids(["same"]),
        lambda: a_on_b.add_texts(["overwrite"], ids=["same"]),
        lambda: a_on_b.delete(["same"]),
        lambda: a_on_b.delete(),
    ):
        with pytest.raises(memsilo.ForbiddenError):
            call()
    assert [d.page_content for d in store_b.get_by_ids(["same"])] == ["B's secret"]
