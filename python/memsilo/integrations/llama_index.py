"""LlamaIndex vector store (``BasePydanticVectorStore``) backed by one memsilo namespace.

::

    import memsilo
    from llama_index.core import StorageContext, VectorStoreIndex
    from memsilo.integrations.llama_index import MemsiloVectorStore

    db = memsilo.connect("http://127.0.0.1:3300", "msk_...")   # a key scoped to tenant-acme
    store = MemsiloVectorStore(client=db, namespace="tenant-acme")
    index = VectorStoreIndex.from_documents(
        docs, storage_context=StorageContext.from_defaults(vector_store=store))

A node is one memory: its id, its text as content, its embedding as vector, and LlamaIndex's
node metadata dict (the node's own metadata keys, ``ref_doc_id``, the serialised node) as the
memory's metadata. ``MetadataFilters`` become memsilo filters on ``metadata.<key>``
(``== != > >= < <= in nin any all contains is_empty``, and/or/not); ``text_match`` has no
memsilo counterpart and is refused. Similarities are cosine in [-1, 1].
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from ..client import Memsilo
from ._filters import all_of

__all__ = ["MemsiloVectorStore", "to_memsilo_filter"]

_BATCH = 1000
_OPS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.ANY: "$contains_any",
    FilterOperator.ALL: "$contains_all",
    FilterOperator.CONTAINS: "$contains",
}


def _one(f: MetadataFilter) -> Dict[str, Any]:
    path = f"metadata.{f.key}"
    if f.operator == FilterOperator.IS_EMPTY:
        return {"$or": [{path: {"$exists": False}}, {path: None}, {path: []}]}
    op = _OPS.get(f.operator)
    if op is None:
        raise ValueError(f"memsilo does not support the filter operator {f.operator.value!r}")
    return {path: {op: f.value}}


def to_memsilo_filter(filters: Optional[MetadataFilters]) -> Optional[Dict[str, Any]]:
    """LlamaIndex ``MetadataFilters`` as a memsilo filter (``None`` when empty)."""
    if filters is None or not filters.filters:
        return None
    parts = [
        to_memsilo_filter(f) if isinstance(f, MetadataFilters) else _one(f)
        for f in filters.filters
    ]
    present = [p for p in parts if p]
    if not present:
        return None
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.OR:
        return {"$or": present}
    joined = present[0] if len(present) == 1 else {"$and": present}
    return {"$not": joined} if condition == FilterCondition.NOT else joined


class MemsiloVectorStore(BasePydanticVectorStore):
    """Nodes in the memsilo namespace ``namespace`` reached through ``client``
    (``memsilo.open``, ``memsilo.connect`` or ``db.scoped(key)``)."""

    stores_text: bool = True
    flat_metadata: bool = False
    namespace: str

    _client: Memsilo = PrivateAttr()

    def __init__(self, client: Memsilo, namespace: str, **kwargs: Any) -> None:
        super().__init__(namespace=namespace, **kwargs)
        self._client = client

    @classmethod
    def class_name(cls) -> str:
        return "MemsiloVectorStore"

    @property
    def client(self) -> Memsilo:
        return self._client

    # -- writes -----------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Stores the nodes (a node id already present is replaced); returns their ids."""
        items = []
        for node in nodes:
            item: Dict[str, Any] = {
                "id": node.node_id,
                "content": node.get_content(metadata_mode=MetadataMode.NONE),
                "metadata": node_to_metadata_dict(
                    node, remove_text=True, flat_metadata=self.flat_metadata
                ),
            }
            if node.embedding is not None:
                item["embedding"] = node.get_embedding()
            items.append(item)
        for start in range(0, len(items), _BATCH):
            self._client.store_memories(self.namespace, items[start : start + _BATCH])
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Deletes every node of the source document ``ref_doc_id``."""
        self._client.batch_forget(self.namespace, filter={"metadata.ref_doc_id": ref_doc_id})

    def delete_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
        **delete_kwargs: Any,
    ) -> None:
        """Deletes the nodes with these ids and/or matching ``filters``."""
        if node_ids is not None and not node_ids:
            return  # no ids: nothing to delete
        where = all_of(self._ids(node_ids), to_memsilo_filter(filters))
        if where is None:
            return
        self._client.batch_forget(self.namespace, filter=where)

    def clear(self) -> None:
        """Deletes every node of the namespace."""
        self._client.batch_forget(self.namespace, filter={})

    # -- reads ------------------------------------------------------------------------------

    @staticmethod
    def _ids(node_ids: Optional[List[str]]) -> Optional[Dict[str, Any]]:
        return None if node_ids is None else {"id": {"$in": list(node_ids)}}

    @staticmethod
    def _node(memory: Dict[str, Any]) -> BaseNode:
        node = metadata_dict_to_node(dict(memory["metadata"]), text=memory["content"])
        if memory.get("vector") is not None:
            node.embedding = list(memory["vector"])
        return node

    def get_nodes(
        self,
        node_ids: Optional[List[str]] = None,
        filters: Optional[MetadataFilters] = None,
    ) -> List[BaseNode]:
        """The nodes with these ids (in that order) and/or matching ``filters``."""
        if node_ids is not None and not node_ids:
            return []
        if node_ids is not None and filters is None:
            found = []
            for start in range(0, len(node_ids), _BATCH):
                chunk = list(node_ids[start : start + _BATCH])
                found.extend(self._client.get_memories(self.namespace, chunk))
            return [self._node(m) for m in found]
        where = all_of(self._ids(node_ids), to_memsilo_filter(filters))
        nodes: List[BaseNode] = []
        cursor = None
        while True:
            page = self._client.list_memories(
                self.namespace, filter=where, limit=_BATCH, cursor=cursor
            )
            nodes.extend(self._node(m) for m in page["memories"])
            cursor = page.get("next_cursor")
            if not cursor:
                return nodes

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` nodes nearest ``query_embedding`` (or, without one, to
        ``query_str`` by memsilo's own embedder) that pass the filters, best first."""
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise ValueError(f"memsilo supports the default query mode, not {query.mode.value!r}")
        # LlamaIndex's retrievers send empty id lists for "no restriction".
        where = all_of(
            to_memsilo_filter(query.filters),
            self._ids(query.node_ids or None),
            {"metadata.ref_doc_id": {"$in": query.doc_ids}} if query.doc_ids else None,
        )
        args: Dict[str, Any] = {"top_k": query.similarity_top_k}
        if where is not None:
            args["filter"] = where
        if query.query_embedding is not None:
            hits = self._client.recall(self.namespace, vector=query.query_embedding, **args)
        elif query.query_str:
            hits = self._client.recall(self.namespace, query.query_str, **args)
        else:
            raise ValueError("the query needs query_embedding or query_str")
        return VectorStoreQueryResult(
            nodes=[self._node(dict(h)) for h in hits],
            similarities=[float(h["similarity"]) for h in hits],
            ids=[h["id"] for h in hits],
        )
