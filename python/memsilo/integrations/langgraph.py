"""LangGraph long-term memory store (``BaseStore``) backed by one memsilo namespace.

::

    import memsilo
    from memsilo.integrations.langgraph import MemsiloStore

    db = memsilo.connect("http://127.0.0.1:3300", "msk_...")   # a key scoped to tenant-acme
    store = MemsiloStore(db, "tenant-acme", index={"dims": 384, "embed": embeddings,
                                                   "fields": ["text"]})
    store.put(("users", "alice", "memories"), "m1", {"text": "likes green tea"})
    store.search(("users", "alice"), query="drinks", filter={"kind": "pref"}, limit=5)

How LangGraph's namespaces map onto memsilo: **one memsilo namespace holds the whole store**
(typically one per tenant, reached through that tenant's scoped key), and each item's namespace
tuple is a path field of its memory. An item ``(namespace, key)`` is the memory whose id is
``lg:`` + the SHA-256 of the JSON ``[*namespace, key]``; its metadata holds
``{"lg": {"ns": {"0": label0, "1": label1, ...}, "depth": n, "key": key, ...}, "value": value}``,
so a namespace prefix is a conjunction of ``metadata.lg.ns.<i>`` equalities and a search filter
``{"color": "red"}`` is ``metadata.value.color``. A key scoped to one memsilo namespace therefore
confines the whole LangGraph store (every tuple in it) to that tenant.

With an ``index`` config, every text extracted from an item (``fields``, or ``index=[...]`` on
``put``; ``[*]`` paths give one text per element) is embedded by ``index["embed"]``; the first
vector goes on the item's memory and each further one on a memory ``<id>#<i>`` carrying a copy
of the item, so an item scores as its best-matching field. Items put with ``index=False`` keep a
fixed placeholder vector and are left out of semantic search by a filter. Without ``index``,
memsilo's own embedder embeds each item's JSON and ``query`` searches with it.

TTL (``ttl=`` minutes on ``put``, ``TTLConfig``) becomes the memory's expiry; memsilo drops
expired items from every read and sweeps them. A read with ``refresh_ttl`` restarts the expiry.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
    validate_op_namespace,
)

from ..client import Memsilo
from ._filters import all_of, scoped_filter

__all__ = ["MemsiloStore"]

_BATCH = 1000  # most memories per store/get call
_MAX_TOP_K = 1000
_MIN_FETCH = 10  # smallest recall request of a semantic search


def item_id(namespace: Tuple[str, ...], key: str) -> str:
    """The memsilo id of the item ``(namespace, key)``."""
    text = json.dumps([*namespace, key], separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"lg:{digest}"


def _row_id(base: str, row: int) -> str:
    return base if row == 0 else f"{base}#{row}"


def _prefix_filter(prefix: Sequence[str]) -> Optional[Dict[str, Any]]:
    """Namespaces starting with ``prefix`` (``*`` labels match anything)."""
    parts = {f"metadata.lg.ns.{i}": label for i, label in enumerate(prefix) if label != "*"}
    if len(prefix) > 0 and not parts:  # only wildcards: the depth still counts
        return {f"metadata.lg.ns.{len(prefix) - 1}": {"$exists": True}}
    return parts or None


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _matches(condition: MatchCondition, ns: Tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(ns) < len(path):
        return False
    part = ns[: len(path)] if condition.match_type == "prefix" else ns[len(ns) - len(path) :]
    return all(p == "*" or p == n for p, n in zip(path, part))


@dataclass
class _Plan:
    """One batch: its operations, the puts that survive de-duplication, and what to embed."""

    ops: List[Op]
    puts: Dict[Tuple[Tuple[str, ...], str], PutOp] = field(default_factory=dict)
    texts: Dict[Tuple[Tuple[str, ...], str], List[str]] = field(default_factory=dict)
    queries: Dict[int, str] = field(default_factory=dict)


class MemsiloStore(BaseStore):
    """A LangGraph ``BaseStore`` over the memsilo namespace ``namespace`` reached through
    ``client`` (``memsilo.open``, ``memsilo.connect`` or ``db.scoped(key)``)."""

    supports_ttl = True

    def __init__(
        self,
        client: Memsilo,
        namespace: str,
        *,
        index: Optional[IndexConfig] = None,
        ttl: Optional[TTLConfig] = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.ttl_config = ttl
        self.index_config = dict(index) if index else None
        self.embeddings = ensure_embeddings(index.get("embed")) if index else None
        self._fields: List[Tuple[str, Any]] = [
            (p, p if p == "$" else tokenize_path(p))
            for p in ((index or {}).get("fields") or ["$"])
        ]

    # -- planning and embedding -------------------------------------------------------------

    def _plan(self, ops: Iterable[Op]) -> _Plan:
        plan = _Plan(list(ops))
        for i, op in enumerate(plan.ops):
            validate_op_namespace(op)
            if isinstance(op, PutOp):
                if not op.namespace:
                    raise InvalidNamespaceError("Namespace cannot be empty.")
                plan.puts.pop((op.namespace, op.key), None)
                plan.puts[(op.namespace, op.key)] = op  # the last put of a key wins
            elif isinstance(op, SearchOp) and op.query and self.embeddings is not None:
                plan.queries[i] = op.query
            elif not isinstance(op, (GetOp, SearchOp, ListNamespacesOp)):
                raise ValueError(f"Unknown operation type: {type(op)}")
        if self.embeddings is not None:
            for where, op in plan.puts.items():
                if op.value is not None and op.index is not False:
                    plan.texts[where] = self._texts(op)
        return plan

    def _texts(self, op: PutOp) -> List[str]:
        paths = self._fields if op.index is None else [(p, tokenize_path(p)) for p in op.index]
        texts: List[str] = []
        for _, tokens in paths:
            texts.extend(t for t in get_text_at_path(op.value, tokens) if t)
        return texts

    def _embed(self, plan: _Plan) -> Tuple[List[List[float]], Dict[int, List[float]]]:
        flat = [t for texts in plan.texts.values() for t in texts]
        assert self.embeddings is not None or not (flat or plan.queries)
        docs = self.embeddings.embed_documents(flat) if flat and self.embeddings else []
        queries = {
            i: self.embeddings.embed_query(q) for i, q in plan.queries.items() if self.embeddings
        }
        return docs, queries

    async def _aembed(self, plan: _Plan) -> Tuple[List[List[float]], Dict[int, List[float]]]:
        flat = [t for texts in plan.texts.values() for t in texts]
        docs = await self.embeddings.aembed_documents(flat) if flat and self.embeddings else []
        queries: Dict[int, List[float]] = {}
        for i, q in plan.queries.items():
            if self.embeddings is not None:
                queries[i] = await self.embeddings.aembed_query(q)
        return docs, queries

    # -- BaseStore --------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> List[Result]:
        plan = self._plan(ops)
        docs, queries = self._embed(plan)
        return self._run(plan, docs, queries)

    async def abatch(self, ops: Iterable[Op]) -> List[Result]:
        plan = self._plan(ops)
        docs, queries = await self._aembed(plan)
        return await asyncio.to_thread(self._run, plan, docs, queries)

    def _run(
        self, plan: _Plan, docs: List[List[float]], queries: Dict[int, List[float]]
    ) -> List[Result]:
        # Writes first, so the reads of a batch see its puts.
        if plan.puts:
            self._apply_puts(plan, docs)
        gets = [op for op in plan.ops if isinstance(op, GetOp)]
        found = self._get_rows([item_id(op.namespace, op.key) for op in gets])
        results: List[Result] = []
        refresh: List[Dict[str, Any]] = []
        for i, op in enumerate(plan.ops):
            if isinstance(op, GetOp):
                memory = found.get(item_id(op.namespace, op.key))
                results.append(None if memory is None else self._item(memory))
                if memory is not None and self._refresh(op.refresh_ttl):
                    refresh.append(memory)
            elif isinstance(op, SearchOp):
                hits = self._search(op, queries.get(i))
                results.append([item for item, _ in hits])
                if self._refresh(op.refresh_ttl):
                    refresh.extend(memory for _, memory in hits)
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            else:
                results.append(None)
        self._refresh_ttls(refresh)
        return results

    # -- writes -----------------------------------------------------------------------------

    def _apply_puts(self, plan: _Plan, docs: List[List[float]]) -> None:
        ids = {where: item_id(*where) for where in plan.puts}
        before = self._get_rows(list(ids.values()))
        rows: List[Dict[str, Any]] = []
        stale: List[str] = []
        vectors = iter(docs)
        for where, op in plan.puts.items():
            base = ids[where]
            had = int(before[base]["metadata"]["lg"].get("rows", 1)) if base in before else 0
            if op.value is None:
                stale.extend(_row_id(base, r) for r in range(had))
                continue
            texts = plan.texts.get(where, [])
            item_rows = self._rows(where, op, base, texts, [next(vectors) for _ in texts])
            rows.extend(item_rows)
            stale.extend(_row_id(base, r) for r in range(len(item_rows), had))
        for start in range(0, len(rows), _BATCH):
            self.client.store_memories(self.namespace, rows[start : start + _BATCH])
        for start in range(0, len(stale), _BATCH):
            self.client.batch_forget(self.namespace, ids=stale[start : start + _BATCH])

    def _rows(
        self,
        where: Tuple[Tuple[str, ...], str],
        op: PutOp,
        base: str,
        texts: List[str],
        vectors: List[List[float]],
    ) -> List[Dict[str, Any]]:
        namespace, key = where
        value = dict(op.value or {})
        indexed = self.embeddings is None or bool(texts)
        count = max(1, len(texts))
        lg: Dict[str, Any] = {
            "ns": {str(i): label for i, label in enumerate(namespace)},
            "depth": len(namespace),
            "key": key,
            "item": base,
            "rows": count,
            "indexed": indexed,
        }
        ttl_seconds = None
        if op.ttl is not None:
            lg["ttl"] = op.ttl
            ttl_seconds = max(1, math.ceil(op.ttl * 60))
        rows = []
        for r in range(count):
            row: Dict[str, Any] = {
                "id": _row_id(base, r),
                "metadata": {"lg": {**lg, "row": r}, "value": value},
            }
            if self.embeddings is None:
                row["content"] = json.dumps(value, sort_keys=True, ensure_ascii=False)
            elif texts:
                row["content"], row["embedding"] = texts[r], vectors[r]
            else:
                row["content"], row["embedding"] = key, self._placeholder()
            if ttl_seconds is not None:
                row["ttl"] = ttl_seconds
            rows.append(row)
        return rows

    def _placeholder(self) -> List[float]:
        """The vector of an item kept out of semantic search (never matched: see _search)."""
        dims = int((self.index_config or {}).get("dims") or 0)
        if dims <= 0:
            raise ValueError("index['dims'] is required to store items with index=False")
        return [1.0] + [0.0] * (dims - 1)

    # -- reads ------------------------------------------------------------------------------

    def _get_rows(self, ids: List[str]) -> Dict[str, Dict[str, Any]]:
        out: Dict[str, Dict[str, Any]] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _BATCH):
            chunk = unique[start : start + _BATCH]
            for memory in self.client.get_memories(self.namespace, chunk):
                out[memory["id"]] = memory
        return out

    @staticmethod
    def _namespace(memory: Dict[str, Any]) -> Tuple[str, ...]:
        lg = memory["metadata"]["lg"]
        return tuple(lg["ns"][str(i)] for i in range(int(lg["depth"])))

    def _item(self, memory: Dict[str, Any]) -> Item:
        return Item(
            value=memory["metadata"]["value"],
            key=memory["metadata"]["lg"]["key"],
            namespace=self._namespace(memory),
            created_at=_time(memory["created_at"]),
            updated_at=_time(memory.get("updated_at") or memory["created_at"]),
        )

    def _search_item(self, memory: Dict[str, Any], score: Optional[float]) -> SearchItem:
        return SearchItem(
            namespace=self._namespace(memory),
            key=memory["metadata"]["lg"]["key"],
            value=memory["metadata"]["value"],
            created_at=_time(memory["created_at"]),
            updated_at=_time(memory.get("updated_at") or memory["created_at"]),
            score=score,
        )

    def _search(
        self, op: SearchOp, vector: Optional[List[float]]
    ) -> List[Tuple[SearchItem, Dict[str, Any]]]:
        where = all_of(
            _prefix_filter(op.namespace_prefix), scoped_filter(op.filter, "metadata.value")
        )
        wanted = max(0, op.offset) + max(0, op.limit)
        if wanted == 0:
            return []
        if op.query and (vector is not None or self.embeddings is None):
            return self._ranked(op, where, vector, wanted)[op.offset : op.offset + op.limit]
        flt = all_of(where, {"metadata.lg.row": 0})
        found: List[Tuple[SearchItem, Dict[str, Any]]] = []
        cursor = None
        while len(found) < wanted:
            page = self.client.list_memories(
                self.namespace,
                filter=flt,
                order_by="updated_at",
                descending=True,
                limit=min(_MAX_TOP_K, wanted - len(found)),
                cursor=cursor,
            )
            found.extend((self._search_item(m, None), m) for m in page["memories"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return found[op.offset : op.offset + op.limit]

    def _ranked(
        self,
        op: SearchOp,
        where: Optional[Dict[str, Any]],
        vector: Optional[List[float]],
        wanted: int,
    ) -> List[Tuple[SearchItem, Dict[str, Any]]]:
        """Items by their best-matching row, best first (rows of one item are merged)."""
        flt = all_of(where, {"metadata.lg.indexed": True})
        # One request size for the first pages, so paging through equal scores stays stable.
        top_k = min(_MAX_TOP_K, max(wanted, _MIN_FETCH) * max(1, len(self._fields)))
        while True:
            if vector is not None:
                hits = self.client.recall(self.namespace, vector=vector, top_k=top_k, filter=flt)
            else:
                hits = self.client.recall(self.namespace, op.query, top_k=top_k, filter=flt)
            best: Dict[str, Tuple[SearchItem, Dict[str, Any]]] = {}
            for hit in hits:
                base = hit["metadata"]["lg"]["item"]
                if base not in best:
                    best[base] = (self._search_item(dict(hit), float(hit["similarity"])), dict(hit))
            if len(best) >= wanted or len(hits) < top_k or top_k >= _MAX_TOP_K:
                ranked = list(best.values())
                ranked.sort(key=lambda pair: (-(pair[0].score or 0.0), pair[0].namespace, pair[0].key))
                return ranked
            top_k = min(_MAX_TOP_K, top_k * 4)

    def _list_namespaces(self, op: ListNamespacesOp) -> List[Tuple[str, ...]]:
        prefixes = [c for c in op.match_conditions or () if c.match_type == "prefix"]
        flt = all_of({"metadata.lg.row": 0}, *(_prefix_filter(c.path) for c in prefixes))
        seen = set()
        cursor = None
        while True:
            page = self.client.list_memories(
                self.namespace, filter=flt, limit=_MAX_TOP_K, cursor=cursor
            )
            for memory in page["memories"]:
                seen.add(self._namespace(memory))
            cursor = page.get("next_cursor")
            if not cursor:
                break
        found = [ns for ns in seen if all(_matches(c, ns) for c in op.match_conditions or ())]
        if op.max_depth is not None:
            found = list({ns[: op.max_depth] for ns in found})
        return sorted(found)[op.offset : op.offset + op.limit]

    # -- TTL --------------------------------------------------------------------------------

    def _refresh(self, asked: Optional[bool]) -> bool:
        if asked is not None:
            return asked
        return bool((self.ttl_config or {}).get("refresh_on_read", True))

    def _refresh_ttls(self, memories: List[Dict[str, Any]]) -> None:
        """Restarts the expiry of every row of the items read that have a TTL."""
        done = set()
        for memory in memories:
            lg = memory["metadata"]["lg"]
            if lg.get("ttl") is None or lg["item"] in done:
                continue
            done.add(lg["item"])
            seconds = max(1, math.ceil(float(lg["ttl"]) * 60))
            for r in range(int(lg.get("rows", 1))):
                self.client.update_memory(self.namespace, _row_id(lg["item"], r), ttl=seconds)
