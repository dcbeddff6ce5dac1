"""LangChain ``VectorStore`` and retriever backed by one memsilo namespace.

::

    import memsilo
    from memsilo.integrations.langchain import MemsiloVectorStore

    db = memsilo.connect("http://127.0.0.1:3300", "msk_...")       # a key scoped to tenant-acme
    store = MemsiloVectorStore(db, "tenant-acme", embedding=my_embeddings)
    store.add_documents(docs, ids=["a", "b"])                      # same id again = upsert
    store.similarity_search_with_score("roadmap", k=4, filter={"team": {"$in": ["ml", "infra"]}})
    retriever = store.as_retriever(search_type="mmr", search_kwargs={"k": 3})

A document is one memory: ``page_content`` is its content, ``metadata`` its metadata, ``id`` its
id. Filters are memsilo's filter language over the documents' metadata (``{"genre": "sf"}``,
``{"year": {"$gte": 2000}}``, ``$and``/``$or``/``$not``, ``$in``, ``$contains`` ...).
Without ``embedding`` the engine embeds content and queries itself. Scores are cosine
similarities in [-1, 1]; relevance scores map them onto [0, 1].
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from ..client import Memsilo
from ._filters import scoped_filter

__all__ = ["MemsiloRetriever", "MemsiloVectorStore"]

# store_memories and get_memories take at most this many items per call.
_BATCH = 1000


def _document(memory: Dict[str, Any]) -> Document:
    return Document(
        id=memory["id"], page_content=memory["content"], metadata=dict(memory.get("metadata") or {})
    )


class MemsiloVectorStore(VectorStore):
    """A LangChain vector store over the memsilo namespace ``namespace`` reached through
    ``client`` (``memsilo.open``, ``memsilo.connect`` or ``db.scoped(key)``)."""

    def __init__(
        self,
        client: Memsilo,
        namespace: str,
        embedding: Optional[Embeddings] = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self._embedding = embedding

    @property
    def embeddings(self) -> Optional[Embeddings]:
        return self._embedding

    def _filter(self, filter: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
        return scoped_filter(filter, "metadata")

    # -- writes ----------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[List[Dict[Any, Any]]] = None,
        *,
        ids: Optional[List[Optional[str]]] = None,
        **kwargs: Any,
    ) -> List[str]:
        """Stores the texts (an id already present is replaced); returns their ids in order."""
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"got {len(metadatas)} metadatas for {len(texts)} texts")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"got {len(ids)} ids for {len(texts)} texts")
        vectors = self._embedding.embed_documents(texts) if self._embedding else None
        items: List[Dict[str, Any]] = []
        for i, text in enumerate(texts):
            item: Dict[str, Any] = {"content": text}
            if metadatas is not None and metadatas[i]:
                item["metadata"] = dict(metadatas[i])
            if ids is not None and ids[i] is not None:
                item["id"] = ids[i]
            if vectors is not None:
                item["embedding"] = vectors[i]
            items.append(item)
        out: List[str] = []
        for start in range(0, len(items), _BATCH):
            out.extend(self.client.store_memories(self.namespace, items[start : start + _BATCH]))
        return out

    def delete(self, ids: Optional[List[str]] = None, **kwargs: Any) -> Optional[bool]:
        """Deletes the given ids (absent ones are ignored); with ``ids=None``, every document."""
        if ids is None:
            self.client.batch_forget(self.namespace, filter={})
            return True
        for start in range(0, len(ids), _BATCH):
            chunk = list(ids[start : start + _BATCH])
            if chunk:
                self.client.batch_forget(self.namespace, ids=chunk)
        return True

    # -- reads -----------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        """The documents with these ids, in that order; absent ids are left out."""
        out: List[Document] = []
        for start in range(0, len(ids), _BATCH):
            memories = self.client.get_memories(self.namespace, list(ids[start : start + _BATCH]))
            out.extend(_document(m) for m in memories)
        return out

    def _recall(
        self,
        query: Optional[str],
        vector: Optional[List[float]],
        k: int,
        filter: Optional[Dict[str, Any]],
    ) -> List[Dict[str, Any]]:
        args: Dict[str, Any] = {"top_k": k}
        flt = self._filter(filter)
        if flt is not None:
            args["filter"] = flt
        if vector is not None:
            return list(self.client.recall(self.namespace, vector=vector, **args))
        return list(self.client.recall(self.namespace, query, **args))

    def _query_vector(self, query: str) -> Optional[List[float]]:
        return self._embedding.embed_query(query) if self._embedding else None

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> List[Tuple[Document, float]]:
        """The ``k`` documents most similar to ``query`` with their cosine similarity, best first."""
        hits = self._recall(query, self._query_vector(query), k, filter)
        return [(_document(h), float(h["similarity"])) for h in hits]

    def similarity_search_by_vector_with_score(
        self,
        embedding: List[float],
        k: int = 4,
        filter: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> List[Tuple[Document, float]]:
        hits = self._recall(None, embedding, k, filter)
        return [(_document(h), float(h["similarity"])) for h in hits]

    def similarity_search(
        self,
        query: str,
        k: int = 4,
        filter: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> List[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter)]

    def similarity_search_by_vector(
        self,
        embedding: List[float],
        k: int = 4,
        filter: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> List[Document]:
        return [doc for doc, _ in self.similarity_search_by_vector_with_score(embedding, k, filter)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return lambda similarity: min(1.0, max(0.0, (similarity + 1.0) / 2.0))

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: List[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> List[Document]:
        """``k`` documents among the ``fetch_k`` most similar, chosen for similarity to the
        query and diversity among themselves (``lambda_mult`` 1 = similarity only)."""
        hits = self._recall(None, embedding, max(fetch_k, k), filter)
        if not hits:
            return []
        stored = self.client.get_memories(
            self.namespace, [h["id"] for h in hits], include_vectors=True
        )
        vectors = {m["id"]: m["vector"] for m in stored}
        hits = [h for h in hits if h["id"] in vectors]
        chosen = maximal_marginal_relevance(
            _as_array(embedding), [vectors[h["id"]] for h in hits], lambda_mult=lambda_mult, k=k
        )
        return [_document(hits[i]) for i in chosen]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> List[Document]:
        if self._embedding is None:
            raise ValueError(
                "max_marginal_relevance_search needs the store's embedding (the query vector)"
            )
        return self.max_marginal_relevance_search_by_vector(
            self._embedding.embed_query(query), k, fetch_k, lambda_mult, filter
        )

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_texts(
        cls: Type[MemsiloVectorStore],
        texts: List[str],
        embedding: Optional[Embeddings],
        metadatas: Optional[List[Dict[Any, Any]]] = None,
        *,
        client: Optional[Memsilo] = None,
        namespace: Optional[str] = None,
        ids: Optional[List[Optional[str]]] = None,
        **kwargs: Any,
    ) -> MemsiloVectorStore:
        """A store over ``namespace`` (reached through ``client``) holding ``texts``."""
        if client is None or namespace is None:
            raise ValueError("from_texts needs client= (a memsilo handle) and namespace=")
        store = cls(client, namespace, embedding)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    def as_retriever(self, **kwargs: Any) -> MemsiloRetriever:
        """A retriever over this store (``search_type``: similarity, mmr or
        similarity_score_threshold; ``search_kwargs``; or ``k=`` and ``filter=`` directly)."""
        tags = list(kwargs.pop("tags", None) or []) + self._get_retriever_tags()
        return MemsiloRetriever(vectorstore=self, tags=tags, **kwargs)


def _as_array(vector: List[float]) -> Any:
    import numpy as np  # langchain_core's MMR needs numpy already

    return np.asarray(vector, dtype=np.float32)


class MemsiloRetriever(VectorStoreRetriever):
    """LangChain's vector-store retriever with ``k`` and ``filter`` as fields of their own
    (``MemsiloRetriever(vectorstore=store, k=3)``); ``invoke(query, k=1)`` overrides them."""

    k: Optional[int] = None
    filter: Optional[Dict[str, Any]] = None

    def _with_fields(self, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        fields: Dict[str, Any] = {}
        if self.k is not None:
            fields["k"] = self.k
        if self.filter is not None:
            fields["filter"] = self.filter
        return {**fields, **kwargs}

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> List[Document]:
        return super()._get_relevant_documents(
            query, run_manager=run_manager, **self._with_fields(kwargs)
        )

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> List[Document]:
        return await super()._aget_relevant_documents(
            query, run_manager=run_manager, **self._with_fields(kwargs)
        )
