"""mem0 vector store provider ``"memsilo"`` (mem0ai 2.2).

mem0 has no public plug-in hook; :func:`register` adds the provider to mem0's provider tables
(``VectorStoreFactory.provider_to_class`` and ``VectorStoreConfig``'s config table) without
changing mem0's files. Call it once before building a ``Memory``::

    import memsilo
    from mem0 import Memory
    from memsilo.integrations import mem0 as memsilo_mem0

    memsilo_mem0.register()
    db = memsilo.connect("http://127.0.0.1:3300", "msk_...")        # a key scoped to tenant-acme
    m = Memory.from_config({
        "vector_store": {"provider": "memsilo",
                         "config": {"client": db, "namespace": "tenant-acme",
                                    "embedding_model_dims": 384}},
        "embedder": {...}, "llm": {...},
    })

(``"client"`` may be replaced by ``"path"`` for an in-process store, or ``"url"`` and
``"api_key"``.) Each mem0 collection (the memories, and mem0's ``<name>_entities``) lives in
the one memsilo namespace as the tag ``mem0:<collection>``; a payload is the memory's metadata
and its ``data`` the content, so mem0's filters (``user_id``, ``agent_id``, ``run_id``, ``AND``/
``OR``/``NOT``, ``eq ne gt gte lt lte in nin``, ``"*"``) become memsilo filters on
``metadata.*``. Scores are cosine similarities clamped to [0, 1].
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Optional

from mem0.vector_stores.base import VectorStoreBase
from pydantic import BaseModel, ConfigDict

import memsilo

from ..client import Memsilo

__all__ = ["MemsiloConfig", "MemsiloVectorStore", "OutputData", "PROVIDER", "register"]

PROVIDER = "memsilo"
_BATCH = 1000
_OPERATORS = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"}
_LOGICAL = {"AND": "$and", "$and": "$and", "OR": "$or", "$or": "$or", "NOT": "$not", "$not": "$not"}


class MemsiloConfig(BaseModel):
    """The ``vector_store.config`` of provider ``"memsilo"``."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    namespace: str
    collection_name: str = "mem0"
    embedding_model_dims: Optional[int] = None
    client: Optional[Any] = None
    path: Optional[str] = None
    url: Optional[str] = None
    api_key: Optional[str] = None

    def __deepcopy__(self, memo: Optional[Dict[int, Any]] = None) -> "MemsiloConfig":
        # mem0 copies the config for its entity collection; the copy shares the handle.
        return self.model_copy()


class OutputData(BaseModel):
    """One result row as mem0 reads it (``id``, ``score``, ``payload``)."""

    id: Optional[str]
    score: Optional[float]
    payload: Optional[Dict[str, Any]]


def _condition(value: Any) -> Any:
    """One mem0 field condition as a memsilo field condition."""
    if isinstance(value, dict):
        out = {}
        for op, operand in value.items():
            if op not in _OPERATORS:
                raise ValueError(f"memsilo does not support the mem0 filter operator {op!r}")
            out[f"${op}"] = operand
        return out
    if value == "*":
        return {"$exists": True}
    if isinstance(value, list):
        return {"$in": value}
    return value


def mem0_filter(filters: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """mem0's filter dict as a memsilo filter over the payload (``metadata.*``)."""
    if not filters:
        return None
    parts: List[Dict[str, Any]] = []
    for key, value in filters.items():
        logical = _LOGICAL.get(key)
        if logical is None:
            parts.append({f"metadata.{key}": _condition(value)})
            continue
        subs = [f for f in (mem0_filter(v) for v in value) if f]
        if not subs:
            continue
        if logical == "$not":
            parts.append({"$not": {"$or": subs}})  # none of them
        else:
            parts.append({logical: subs})
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _client(config: MemsiloConfig) -> Memsilo:
    if config.client is not None:
        return config.client
    if config.path is not None:
        return memsilo.open(config.path)
    if config.url is not None and config.api_key is not None:
        return memsilo.connect(config.url, config.api_key)
    raise ValueError("the memsilo vector store needs client, path, or url and api_key")


class MemsiloVectorStore(VectorStoreBase):
    """mem0 ``VectorStoreBase`` over one collection (a tag) of one memsilo namespace."""

    def __init__(self, **config: Any) -> None:
        cfg = MemsiloConfig(**config)
        self.config = cfg
        self.client = _client(cfg)
        self.namespace = cfg.namespace
        self.collection_name = cfg.collection_name
        self.tag = f"mem0:{cfg.collection_name}"

    def _where(self, filters: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        mine = {"tags": {"$contains": self.tag}}
        given = mem0_filter(filters)
        return mine if given is None else {"$and": [mine, given]}

    @staticmethod
    def _row(memory: Dict[str, Any], score: Optional[float] = None) -> OutputData:
        return OutputData(id=memory["id"], score=score, payload=dict(memory.get("metadata") or {}))

    # -- collections (one tag each) ----------------------------------------------------------

    def create_col(self, name: str, vector_size: int, distance: str = "cosine") -> None:
        """Nothing to create: the namespace fixes its dimensions at the first insert."""

    def list_cols(self) -> List[str]:
        return [self.collection_name]

    def delete_col(self) -> None:
        """Deletes every memory of this collection (the namespace stays)."""
        self.client.batch_forget(self.namespace, tags=[self.tag])

    def col_info(self) -> Dict[str, Any]:
        count = self.client.count_memories(self.namespace, self._where(None))
        return {"name": self.collection_name, "namespace": self.namespace, "count": count}

    def reset(self) -> None:
        self.delete_col()

    # -- rows -------------------------------------------------------------------------------

    def insert(
        self,
        vectors: List[List[float]],
        payloads: Optional[List[Dict[str, Any]]] = None,
        ids: Optional[List[str]] = None,
    ) -> None:
        items = []
        for i, vector in enumerate(vectors):
            payload = dict(payloads[i]) if payloads else {}
            item: Dict[str, Any] = {
                "content": _content(payload),
                "metadata": payload,
                "tags": [self.tag],
                "embedding": vector,
            }
            if ids is not None:
                item["id"] = str(ids[i])
            items.append(item)
        for start in range(0, len(items), _BATCH):
            self.client.store_memories(self.namespace, items[start : start + _BATCH])

    def search(
        self,
        query: str,
        vectors: List[float],
        top_k: int = 5,
        filters: Optional[Dict[str, Any]] = None,
    ) -> List[OutputData]:
        hits = self.client.recall(
            self.namespace, vector=vectors, top_k=top_k, filter=self._where(filters)
        )
        return [self._row(dict(h), max(0.0, min(1.0, float(h["similarity"])))) for h in hits]

    def get(self, vector_id: str) -> Optional[OutputData]:
        found = self.client.get_memories(self.namespace, [str(vector_id)])
        mine = [m for m in found if self.tag in (m.get("tags") or [])]
        return self._row(mine[0]) if mine else None

    def update(
        self,
        vector_id: str,
        vector: Optional[List[float]] = None,
        payload: Optional[Dict[str, Any]] = None,
    ) -> None:
        changes: Dict[str, Any] = {}
        if vector is not None:
            changes["embedding"] = vector
            if payload is not None:
                changes["content"] = _content(payload)
        if payload is not None:
            changes["metadata"] = dict(payload)
            changes["replace"] = True
        self.client.update_memory(self.namespace, str(vector_id), **changes)

    def delete(self, vector_id: str) -> None:
        self.client.batch_forget(self.namespace, ids=[str(vector_id)])

    def list(
        self, filters: Optional[Dict[str, Any]] = None, top_k: Optional[int] = 100
    ) -> List[List[OutputData]]:
        limit = 100 if top_k is None else int(top_k)
        rows: List[OutputData] = []
        cursor = None
        while len(rows) < limit:
            page = self.client.list_memories(
                self.namespace,
                filter=self._where(filters),
                limit=min(_BATCH, limit - len(rows)),
                cursor=cursor,
            )
            rows.extend(self._row(m) for m in page["memories"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return [rows]


def _content(payload: Dict[str, Any]) -> str:
    data = payload.get("data")
    if isinstance(data, str) and data.strip():
        return data
    return json.dumps(payload, sort_keys=True, default=str) or "{}"


def register() -> None:
    """Makes ``"memsilo"`` a mem0 vector store provider (idempotent)."""
    from mem0.utils.factory import VectorStoreFactory
    from mem0.vector_stores.configs import VectorStoreConfig

    # mem0's config validation imports mem0.configs.vector_stores.<provider>.<ConfigClass>.
    sys.modules.setdefault(f"mem0.configs.vector_stores.{PROVIDER}", sys.modules[__name__])
    table = VectorStoreConfig.__private_attributes__["_provider_configs"].default
    table[PROVIDER] = MemsiloConfig.__name__
    VectorStoreFactory.provider_to_class[PROVIDER] = f"{__name__}.MemsiloVectorStore"
