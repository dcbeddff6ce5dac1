"""MemsiloStore against the cases of LangGraph's own store tests (libs/checkpoint/tests/
test_store.py and the Postgres store's tests/test_store.py; written anew, same cases), in-process
and through a real server, each store reached through a key scoped to its tenant's namespace;
plus tenant isolation and a LangGraph agent graph that writes and searches memories."""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from typing import Any, Callable, Dict, List, TypedDict

import pytest
from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)

import memsilo
from conftest import Tenant
from memsilo.integrations.langgraph import MemsiloStore


DIMS = 128


class CharEmbeddings(Embeddings):
    """Deterministic: character counts hashed into DIMS buckets (texts sharing letters are near)."""

    def __init__(self, dims: int = DIMS) -> None:
        self.dims = dims

    def embed_query(self, text: str) -> List[float]:
        v = [0.0] * self.dims
        for ch, n in Counter(text).items():
            v[ord(ch) % self.dims] += n
        if not any(v):
            v[0] = 1.0
        return v

    def embed_documents(self, texts: List[str]) -> List[List[float]]:
        return [self.embed_query(t) for t in texts]


def cosine(a: List[float], b: List[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture
def store(tenant: Tenant) -> MemsiloStore:
    return MemsiloStore(tenant.handle, tenant.namespace)


@pytest.fixture
def new_vector_store(new_tenant: Callable[[], Tenant]) -> Callable[..., MemsiloStore]:
    def make(fields: Any = None) -> MemsiloStore:
        t = new_tenant()
        index: Dict[str, Any] = {"dims": DIMS, "embed": CharEmbeddings()}
        if fields is not None:
            index["fields"] = fields
        return MemsiloStore(t.handle, t.namespace, index=index)  # type: ignore[arg-type]

    return make


@pytest.fixture
def vector_store(new_vector_store: Callable[..., MemsiloStore]) -> MemsiloStore:
    return new_vector_store()


# -- batches ---------------------------------------------------------------------------------


def test_batch_order(store: MemsiloStore) -> None:
    store.put(("test", "foo"), "key1", {"data": "value1"})
    store.put(("test", "bar"), "key2", {"data": "value2"})
    results = store.batch(
        [
            GetOp(("test", "foo"), "key1"),
            PutOp(("test", "bar"), "key2", {"data": "value2"}),
            SearchOp(("test",), filter={"data": "value1"}, limit=10, offset=0),
            ListNamespacesOp(match_conditions=None, max_depth=None, limit=10, offset=0),
            GetOp(("test",), "key3"),
        ]
    )
    assert isinstance(results[0], Item) and results[0].value == {"data": "value1"}
    assert results[0].key == "key1" and results[0].namespace == ("test", "foo")
    assert results[1] is None
    assert [i.key for i in results[2]] == ["key1"]  # type: ignore[union-attr]
    assert sorted(results[3]) == [("test", "bar"), ("test", "foo")]  # type: ignore[arg-type]
    assert results[4] is None

    reordered = store.batch(
        [
            SearchOp(("test",), filter=None, limit=5, offset=0),
            GetOp(("test", "bar"), "key2"),
            ListNamespacesOp(match_conditions=None, max_depth=None, limit=5, offset=0),
            PutOp(("test",), "key3", {"data": "value3"}),
            GetOp(("test", "foo"), "key1"),
        ]
    )
    assert len(reordered[0]) >= 2  # type: ignore[arg-type]
    assert reordered[1].value == {"data": "value2"}  # type: ignore[union-attr]
    assert reordered[3] is None
    assert reordered[4].value == {"data": "value1"}  # type: ignore[union-attr]
    assert store.get(("test",), "key3").value == {"data": "value3"}  # type: ignore[union-attr]


def test_batch_get_and_put_ops(store: MemsiloStore) -> None:
    results = store.batch(
        [
            PutOp(("test",), "key1", {"data": "value1"}),
            PutOp(("test",), "key2", {"data": "value2"}),
            PutOp(("test",), "key3", None),  # deleting an absent item is fine
        ]
    )
    assert results == [None, None, None]
    got = store.batch([GetOp(("test",), "key1"), GetOp(("test",), "key2"), GetOp(("test",), "key3")])
    assert [g.key if g else None for g in got] == ["key1", "key2", None]  # type: ignore[union-attr]
    # The last put of a key in one batch wins; None deletes.
    store.batch([PutOp(("test",), "key1", {"v": 1}), PutOp(("test",), "key1", {"v": 2})])
    assert store.get(("test",), "key1").value == {"v": 2}  # type: ignore[union-attr]
    store.batch([PutOp(("test",), "key1", None)])
    assert store.get(("test",), "key1") is None


def test_batch_search_ops(store: MemsiloStore) -> None:
    for ns, key, value in [
        (("test", "foo"), "key1", {"data": "value1", "tag": "a"}),
        (("test", "bar"), "key2", {"data": "value2", "tag": "a"}),
        (("test", "baz"), "key3", {"data": "value3", "tag": "b"}),
    ]:
        store.put(ns, key, value)
    tagged, first_two, foo = store.batch(
        [
            SearchOp(("test",), filter={"tag": "a"}, limit=10, offset=0),
            SearchOp(("test",), filter=None, limit=2, offset=0),
            SearchOp(("test", "foo"), filter=None, limit=10, offset=0),
        ]
    )
    assert sorted(i.key for i in tagged) == ["key1", "key2"]  # type: ignore[union-attr]
    assert len(first_two) == 2  # type: ignore[arg-type]
    assert [(i.namespace, i.key) for i in foo] == [(("test", "foo"), "key1")]  # type: ignore[union-attr]


def test_basic_store_ops(store: MemsiloStore) -> None:
    ns = ("test", "documents")
    store.put(ns, "doc1", {"title": "Test Document", "content": "Hello, World!"})
    item = store.get(ns, "doc1")
    assert item and item.namespace == ns and item.key == "doc1"
    assert item.value == {"title": "Test Document", "content": "Hello, World!"}
    time.sleep(0.01)
    store.put(ns, "doc1", {"title": "Updated Document", "content": "Hello, Updated!"})
    updated = store.get(ns, "doc1")
    assert updated and updated.value["title"] == "Updated Document"
    assert updated.updated_at > item.updated_at
    assert updated.created_at == item.created_at
    assert store.get(("test", "other_documents"), "doc1") is None
    store.delete(ns, "doc1")
    assert store.get(ns, "doc1") is None


async def test_async_basic_ops(store: MemsiloStore) -> None:
    await store.aput(("a", "b"), "k", {"x": 1})
    item = await store.aget(("a", "b"), "k")
    assert item is not None and item.value == {"x": 1}
    assert [i.key for i in await store.asearch(("a",))] == ["k"]
    assert await store.alist_namespaces(prefix=("a",)) == [("a", "b")]
    await store.adelete(("a", "b"), "k")
    assert await store.aget(("a", "b"), "k") is None


def test_invalid_namespaces(store: MemsiloStore) -> None:
    for ns in [(), ("the", "thing.about"), ("some", "fun", "")]:
        with pytest.raises(InvalidNamespaceError):
            store.put(ns, "foo", {"foo": "bar"})
    with pytest.raises(InvalidNamespaceError):
        store.put(("langgraph", "foo"), "bar", {"foo": "bar"})
    # A reserved first label is refused by put, not by batch (as LangGraph's stores do).
    store.batch([PutOp(("langgraph", "foo"), "bar", {"foo": "bar"})])
    assert store.get(("langgraph", "foo"), "bar").value == {"foo": "bar"}  # type: ignore[union-attr]
    store.put(("foo", "langgraph", "foo"), "bar", {"foo": "bar"})
    assert store.search(("foo", "langgraph", "foo"))[0].value == {"foo": "bar"}


# -- namespaces ------------------------------------------------------------------------------


def put_namespaces(store: MemsiloStore, namespaces: List[tuple]) -> None:
    store.batch([PutOp(ns, f"id_{i}", {"data": f"value_{i:02d}"}) for i, ns in enumerate(namespaces)])


def test_list_namespaces_basic(store: MemsiloStore) -> None:
    put_namespaces(
        store,
        [
            ("a", "b", "c"),
            ("a", "b", "d", "e"),
            ("a", "b", "d", "i"),
            ("a", "b", "f"),
            ("a", "c", "f"),
            ("b", "a", "f"),
            ("users", "123"),
            ("users", "456", "settings"),
            ("admin", "users", "789"),
        ],
    )
    ab = [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f")]
    assert store.list_namespaces(prefix=("a", "b")) == ab
    assert store.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert store.list_namespaces(prefix=("a",), suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "b", "f"),
    ]
    assert store.list_namespaces(prefix=("a", "b"), limit=2) == ab[:2]
    assert store.list_namespaces(prefix=("a", "b"), offset=2) == ab[2:]
    assert store.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(suffix=("*", "f")) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
    ]
    assert store.list_namespaces(prefix=("nonexistent",)) == []
    assert store.list_namespaces(prefix=("users", "123")) == [("users", "123")]


def test_list_namespaces_with_wildcards(store: MemsiloStore) -> None:
    put_namespaces(
        store,
        [
            ("users", "123"),
            ("users", "456"),
            ("users", "789", "settings"),
            ("admin", "users", "789"),
            ("guests", "123"),
            ("guests", "456", "preferences"),
        ],
    )
    assert store.list_namespaces(prefix=("users", "*")) == [
        ("users", "123"),
        ("users", "456"),
        ("users", "789", "settings"),
    ]
    assert store.list_namespaces(suffix=("*", "preferences")) == [("guests", "456", "preferences")]
    assert store.list_namespaces(prefix=("*", "users"), suffix=("*", "settings")) == []


def test_list_namespaces_pagination_depth_and_empty(store: MemsiloStore) -> None:
    assert store.list_namespaces() == []
    put_namespaces(store, [("namespace", f"sub_{i:02d}") for i in range(20)])
    for offset in (0, 5, 15):
        page = store.list_namespaces(prefix=("namespace",), limit=5, offset=offset)
        assert page == [("namespace", f"sub_{i:02d}") for i in range(offset, offset + 5)]
    put_namespaces(store, [("a", "b", "c", "d"), ("a", "b", "c", "e"), ("a", "b", "f"), ("a", "g")])
    assert store.list_namespaces(prefix=("a",), max_depth=2) == [("a", "b"), ("a", "g")]
    assert len(store.list_namespaces(max_depth=1)) == 2  # ("a",), ("namespace",)


def test_deleted_items_leave_their_namespace(store: MemsiloStore) -> None:
    store.put(("x", "y"), "k", {"v": 1})
    assert store.list_namespaces() == [("x", "y")]
    store.delete(("x", "y"), "k")
    assert store.list_namespaces() == []


# -- search without a query ------------------------------------------------------------------


def test_search_filters_and_pagination(store: MemsiloStore) -> None:
    for ns, key, value in [
        (("test", "docs"), "doc1", {"title": "First Doc", "author": "Alice", "tags": ["important"]}),
        (("test", "docs"), "doc2", {"title": "Second Doc", "author": "Bob", "tags": ["draft"]}),
        (("test", "images"), "img1", {"title": "Image 1", "author": "Alice", "tags": ["final"]}),
    ]:
        store.put(ns, key, value)
    assert len(store.search(("test",))) == 3
    docs = store.search(("test", "docs"))
    assert sorted(i.key for i in docs) == ["doc1", "doc2"]
    assert all(i.namespace == ("test", "docs") for i in docs)
    alice = store.search(("test",), filter={"author": "Alice"})
    assert sorted(i.key for i in alice) == ["doc1", "img1"]
    assert len(store.search(("test",), limit=2)) == 2
    assert len(store.search(("test",), offset=2)) == 1
    # Newest first when there is no query; without a query there is no score.
    assert [i.key for i in store.search(("test",))][0] == "img1"
    assert all(i.score is None for i in store.search(("test",)))


def test_numeric_comparison_filters(store: MemsiloStore) -> None:
    ns = ("test", "scores")
    for key, score in [("a", 2), ("b", 9), ("c", 10), ("d", 11)]:
        store.put(ns, key, {"score": score})

    def scores(flt: Dict[str, Any]) -> List[Any]:
        return sorted(i.value["score"] for i in store.search(ns, filter=flt))

    assert scores({"score": {"$gte": 10}}) == [10, 11]
    assert scores({"score": {"$gt": 9}}) == [10, 11]
    assert scores({"score": {"$lt": 10}}) == [2, 9]
    assert scores({"score": {"$lte": 9}}) == [2, 9]
    assert scores({"score": {"$ne": 9}}) == [2, 10, 11]
    store.put(ns, "e", {"score": 9.5})
    assert scores({"score": {"$gt": 9}}) == [9.5, 10, 11]
    names = ("test", "names")
    store.put(names, "a", {"name": "apple"})
    store.put(names, "b", {"name": "banana"})
    assert [i.value["name"] for i in store.search(names, filter={"name": {"$gt": "apple"}})] == [
        "banana"
    ]


# -- semantic search -------------------------------------------------------------------------


def test_vector_insert_with_auto_embedding(vector_store: MemsiloStore) -> None:
    for key, value in [
        ("doc1", {"text": "short text"}),
        ("doc2", {"text": "longer text document"}),
        ("doc3", {"text": "longest text document here"}),
        ("doc4", {"description": "text in description field"}),
        ("doc5", {"content": "text in content field"}),
        ("doc6", {"body": "text in body field"}),
    ]:
        vector_store.put(("test",), key, value)
    keys = [r.key for r in vector_store.search(("test",), query="long text")]
    assert "doc2" in keys and "doc3" in keys
    assert all(r.score is not None for r in vector_store.search(("test",), query="long text"))


def test_vector_update_with_embedding(vector_store: MemsiloStore) -> None:
    vector_store.put(("test",), "doc1", {"text": "zany zebra Xerxes"})
    vector_store.put(("test",), "doc2", {"text": "something about dogs"})
    vector_store.put(("test",), "doc3", {"text": "text about birds"})
    initial = vector_store.search(("test",), query="Zany Xerxes")
    assert initial[0].key == "doc1"
    initial_score = initial[0].score
    assert initial_score is not None
    vector_store.put(("test",), "doc1", {"text": "new text about dogs"})
    after = vector_store.search(("test",), query="Zany Xerxes")
    after_score = next((r.score for r in after if r.key == "doc1"), 0.0)
    assert after_score is not None and after_score < initial_score
    for r in vector_store.search(("test",), query="new text about dogs"):
        if r.key == "doc1":
            assert r.score is not None and r.score > after_score
    vector_store.put(("test",), "doc4", {"text": "new text about dogs"}, index=False)
    top = vector_store.search(("test",), query="new text about dogs", limit=3)
    assert not any(r.key == "doc4" for r in top)
    # Not indexed, still stored, listed and got.
    assert vector_store.get(("test",), "doc4") is not None
    assert "doc4" in [r.key for r in vector_store.search(("test",))]


async def test_vector_search_with_filters(vector_store: MemsiloStore) -> None:
    for key, value in [
        ("doc1", {"text": "red apple", "color": "red", "score": 4.5}),
        ("doc2", {"text": "red car", "color": "red", "score": 3.0}),
        ("doc3", {"text": "green apple", "color": "green", "score": 4.0}),
        ("doc4", {"text": "blue car", "color": "blue", "score": 3.5}),
    ]:
        await vector_store.aput(("test",), key, value)
    results = await vector_store.asearch(("test",), query="apple", filter={"color": "red"})
    assert [r.key for r in results][:1] == ["doc1"] and len(results) == 2
    results = await vector_store.asearch(("test",), query="car", filter={"color": "red"})
    assert [r.key for r in results][:1] == ["doc2"] and len(results) == 2
    results = await vector_store.asearch(("test",), query="bbbbluuu", filter={"score": {"$gt": 3.2}})
    assert len(results) == 3 and results[0].key == "doc4"
    results = await vector_store.asearch(
        ("test",), query="apple", filter={"score": {"$gte": 4.0}, "color": "green"}
    )
    assert [r.key for r in results] == ["doc3"]


def test_vector_search_pagination_and_edge_cases(vector_store: MemsiloStore) -> None:
    for i in range(5):
        vector_store.put(("test",), f"doc{i}", {"text": f"test document number {i}"})
    page1 = vector_store.search(("test",), query="test", limit=2)
    page2 = vector_store.search(("test",), query="test", limit=2, offset=2)
    assert len(page1) == 2 and len(page2) == 2
    assert {r.key for r in page1}.isdisjoint({r.key for r in page2})
    assert len(vector_store.search(("test",), query="test", limit=10)) == 5
    for query in ["", None, "test " * 100, "test!@#$%^&*()"]:
        assert len(vector_store.search(("test",), query=query, limit=10)) == 5


def test_embed_with_field_paths(new_vector_store: Callable[..., MemsiloStore]) -> None:
    store = new_vector_store(fields=["key0", "key1", "key3"])
    store.put(("test",), "doc1", {"key1": "xxx", "key2": "yyy", "key3": "zzz"})  # 2 vectors
    store.put(("test",), "doc2", {"key0": "uuu", "key1": "vvv", "key2": "www", "key3": "xxx"})
    both = store.search(("test",), query="xxx")
    assert len(both) == 2 and both[0].key != both[1].key
    top = both[0].score
    assert top == pytest.approx(both[1].score, abs=1e-3)
    only2 = store.search(("test",), query="uuu")
    assert [r.key for r in only2] == ["doc2", "doc1"] and only2[0].score == pytest.approx(top, abs=1e-3)
    only1 = store.search(("test",), query="zzz")
    assert [r.key for r in only1] == ["doc1", "doc2"]
    unindexed = store.search(("test",), query="www")  # key2 is not an indexed field
    assert len(unindexed) == 2 and all(r.score is not None and r.score < top for r in unindexed)
    # Fewer texts on update: the item's old extra vectors go with them.
    store.put(("test",), "doc2", {"key0": "qqq"})
    assert [r.key for r in store.search(("test",), query="xxx")][0] == "doc1"
    assert [r.key for r in store.search(("test",), query="xxx", limit=10)] == ["doc1", "doc2"]


def test_embed_with_operation_level_index(new_vector_store: Callable[..., MemsiloStore]) -> None:
    store = new_vector_store(fields=["key17"])
    store.put(("test",), "doc3", {"key0": "aaa", "key1": "bbb", "key2": "ccc", "key3": "ddd"}, index=["key0", "key1"])
    store.put(("test",), "doc4", {"key0": "eee", "key1": "bbb", "key2": "fff", "key3": "ggg"}, index=["key1", "key3"])
    aaa = store.search(("test",), query="aaa")
    assert aaa[0].key == "doc3" and aaa[0].score > aaa[1].score  # type: ignore[operator]
    ggg = store.search(("test",), query="ggg")
    assert ggg[0].key == "doc4" and ggg[0].score > ggg[1].score  # type: ignore[operator]
    bbb = store.search(("test",), query="bbb")
    assert bbb[0].score == pytest.approx(bbb[1].score, abs=1e-3)
    assert all(r.score < 0.9 for r in store.search(("test",), query="ccc"))  # type: ignore[operator]
    store.put(("test",), "doc5", {"key0": "hhh", "key1": "iii"}, index=False)
    listed = store.search(("test",))
    assert len(listed) == 3 and all(r.score is None for r in listed)


@pytest.mark.parametrize("query", ["aaa", "bbb", "abcd", "poisson"])
def test_scores_are_cosine_similarity(
    new_vector_store: Callable[..., MemsiloStore], query: str
) -> None:
    store = new_vector_store(fields=["key0"])
    store.put(("test",), "doc", {"key0": "aaa"})
    results = store.search((), query=query)
    emb = CharEmbeddings()
    assert len(results) == 1
    assert results[0].score == pytest.approx(
        cosine(emb.embed_query(query), emb.embed_query("aaa")), abs=1e-3
    )


def test_non_ascii(vector_store: MemsiloStore) -> None:
    texts = ["这是中文", "これは日本語です", "이건 한국어야", "Это русский", "यह रूसी है"]
    for i, text in enumerate(texts, 1):
        vector_store.put(("user_123", "memories"), str(i), {"text": text})
    for i, text in enumerate(texts, 1):
        assert vector_store.search(("user_123", "memories"), query=text)[0].key == str(i)


def test_semantic_search_without_index_uses_memsilo_embedder(store: MemsiloStore) -> None:
    store.put(("docs",), "a", {"text": "quarterly roadmap for the Omega launch"})
    store.put(("docs",), "b", {"text": "hiring plan for machine learning engineers"})
    hits = store.search(("docs",), query="Omega launch roadmap")
    assert hits[0].key == "a" and hits[0].score is not None


# -- TTL -------------------------------------------------------------------------------------


def test_ttl_expires_and_reads_refresh(tenant: Tenant, mode: str) -> None:
    if mode == "remote":
        pytest.skip("timing case: run once, in-process")
    store = MemsiloStore(tenant.handle, tenant.namespace, ttl={"refresh_on_read": True})
    ns = ("foo",)
    store.put(ns, "item1", {"foo": "bar"}, ttl=2 / 60)  # 2 seconds
    store.put(ns, "item2", {"foo": "baz"}, ttl=2 / 60)
    time.sleep(1.2)
    assert store.get(ns, "item1") is not None  # refreshes item1 only
    time.sleep(1.2)  # 2.4 s after the put: item2 has expired, item1 was refreshed at 1.2 s
    assert store.get(ns, "item2", refresh_ttl=False) is None
    assert [i.key for i in store.search(ns, refresh_ttl=True)] == ["item1"]
    time.sleep(1.2)
    assert store.get(ns, "item1", refresh_ttl=False) is not None
    time.sleep(1.2)
    assert store.search(ns, refresh_ttl=False) == []
    assert store.list_namespaces() == []


# -- tenancy ---------------------------------------------------------------------------------


def test_tenant_a_store_cannot_see_tenant_b(new_tenant: Callable[[], Tenant]) -> None:
    a, b = new_tenant(), new_tenant()
    store_a = MemsiloStore(a.handle, a.namespace)
    store_b = MemsiloStore(b.handle, b.namespace)
    store_a.put(("users", "alice"), "pref", {"text": "alice likes tea"})
    store_b.put(("users", "alice"), "pref", {"text": "b's secret"})
    assert store_a.get(("users", "alice"), "pref").value == {"text": "alice likes tea"}  # type: ignore[union-attr]
    assert [i.value["text"] for i in store_a.search(("users",))] == ["alice likes tea"]
    assert [i.value["text"] for i in store_a.search(("users",), query="secret")] == ["alice likes tea"]
    # A's key aimed at B's namespace is refused whatever the call.
    a_on_b = MemsiloStore(a.handle, b.namespace)
    with pytest.raises(memsilo.ForbiddenError):
        a_on_b.get(("users", "alice"), "pref")
    with pytest.raises(memsilo.ForbiddenError):
        a_on_b.put(("users", "alice"), "pref", {"text": "overwrite"})
    with pytest.raises(memsilo.ForbiddenError):
        a_on_b.list_namespaces()
    assert store_b.get(("users", "alice"), "pref").value == {"text": "b's secret"}  # type: ignore[union-attr]


# -- a LangGraph agent graph -----------------------------------------------------------------


def test_agent_graph_writes_and_searches_memories(new_vector_store: Callable[..., MemsiloStore]) -> None:
    from langgraph.graph import END, START, StateGraph
    from langgraph.store.base import BaseStore

    store = new_vector_store(fields=["text"])

    class State(TypedDict):
        user: str
        message: str
        recalled: List[str]

    def remember(state: State, *, store: BaseStore) -> Dict[str, Any]:
        if state["message"].startswith("remember "):
            store.put(("memories", state["user"]), uuid.uuid4().hex, {"text": state["message"][9:]})
        return {}

    def recall(state: State, *, store: BaseStore) -> Dict[str, Any]:
        hits = store.search(("memories", state["user"]), query=state["message"], limit=1)
        return {"recalled": [h.value["text"] for h in hits]}

    graph = StateGraph(State)
    graph.add_node("remember", remember)
    graph.add_node("recall", recall)
    graph.add_edge(START, "remember")
    graph.add_edge("remember", "recall")
    graph.add_edge("recall", END)
    app = graph.compile(store=store)

    for message in ["remember I drink green tea", "remember my dog is Rex", "remember bikes"]:
        app.invoke({"user": "alice", "message": message, "recalled": []})
    app.invoke({"user": "bob", "message": "remember bob drinks coffee", "recalled": []})
    out = app.invoke({"user": "alice", "message": "what is my dog called Rex", "recalled": []})
    assert out["recalled"] == ["my dog is Rex"]
    out = app.invoke({"user": "bob", "message": "green tea", "recalled": []})
    assert out["recalled"] == ["bob drinks coffee"]  # bob's namespace holds only bob's memory
    assert store.list_namespaces(prefix=("memories",)) == [("memories", "alice"), ("memories", "bob")]
