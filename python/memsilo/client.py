"""``Memsilo``: the SDK over one native client (in-process or remote).

Each method only builds the arguments of one core operation (see core/src/api/) and returns
the core's JSON result as plain dicts and lists. ``None`` arguments are left out; tuples become
grant objects; numpy arrays become lists; ``datetime`` values become ISO 8601 strings.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import AsyncIterable
from datetime import datetime
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union, cast

try:  # numpy is optional: vectors pack faster with it
    import numpy as _np
except ImportError:  # pragma: no cover - exercised where numpy is absent
    _np = None  # type: ignore[assignment]

from . import _native
from .types import (
    ApiKey,
    AuditPage,
    AuditVerification,
    CreatedKey,
    DecayPolicy,
    DecayPolicyInput,
    DeletedEntity,
    DeletedMemory,
    DeletedNamespace,
    DeletedRelation,
    EmbeddingFunction,
    Entity,
    Forgotten,
    GrantLike,
    GraphPath,
    GraphView,
    IsolationMode,
    KeyRotation,
    InstanceKeyRotation,
    Member,
    MemberList,
    Memory,
    Filter,
    MemoryInput,
    MemoryPage,
    MemoryType,
    OrderBy,
    Namespace,
    NamespaceList,
    QuotasInput,
    RecallHit,
    Relation,
    MemoryList,
    RemovedMember,
    Role,
    Session,
    SessionPage,
    Session,
    SessionPage,
    MemoryList,
    Tenant,
    TenantList,
    TenantStatus,
    TimeLike,
    VectorLike,
    WhoAmI,
)


def _encode(value: Any) -> Any:
    """``json.dumps`` hook for the few non-JSON types callers pass."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.astimezone()
        return aware.isoformat()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"memsilo cannot send a value of type {type(value).__name__}")


def _unsendable(value: Any, path: str) -> Optional[Tuple[str, str]]:
    """The path (``metadata.score``, ``embedding[3]``) of the first value in ``value`` that
    JSON cannot carry as given (a NaN or infinity, a type ``_encode`` does not know, a mapping
    key that is not a string or number), with why; or ``None``."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, "must be a finite number")
    if isinstance(value, str):
        return _not_unicode(value, path)
    if value is None or isinstance(value, (int, datetime, set, frozenset)):
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if not isinstance(key, (str, int, float, bool)):
                return here, f"keys must be strings, got {type(key).__name__}"
            if isinstance(key, str) and _not_unicode(key, here) is not None:
                return _not_unicode(key, here)
            found = _unsendable(item, here)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _unsendable(item, f"{path}[{i}]")
            if found is not None:
                return found
    elif hasattr(value, "tolist"):  # numpy arrays and scalars, as _encode sends them
        return _unsendable(value.tolist(), path)
    else:
        return path, f"cannot be sent: a value of type {type(value).__name__}"
    return None


def _not_unicode(text: str, path: str) -> Optional[Tuple[str, str]]:
    """``(path, why)`` when ``text`` holds a lone surrogate (a ``str`` that is not Unicode
    text, e.g. from ``os.fsdecode`` of bytes that are not UTF-8); else ``None``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return path, f"must be valid Unicode text, got a lone surrogate at index {e.start}"
    return None


def _dumps(args: Mapping[str, Any]) -> str:
    """The arguments as JSON. JSON has no NaN or infinity (``json.dumps`` would write ``NaN``,
    which the engine refuses as unreadable ``args``), ``json.dumps`` raises a bare
    ``TypeError`` for a value of another type, and writes a lone surrogate as an escape the
    engine refuses as unreadable ``args``: each is refused here as ``InvalidArgumentError``
    naming its field, as the engine names any other bad value."""
    body = {k: v for k, v in args.items() if v is not None}
    try:
        text = json.dumps(body, default=_encode, allow_nan=False)
    except (ValueError, TypeError):
        found = _unsendable(body, "")
        if found is None:
            raise
    else:
        # Surrogates are escaped as \udXXX: only then can a string be one the engine refuses.
        if "\\ud" not in text:
            return text
        found = _unsendable(body, "")
        if found is None:
            return text
    raise _invalid(*found)


def _invalid(field: str, reason: str) -> _native.InvalidArgumentError:
    """memsilo's ``invalid_argument`` for ``field``, as the engine would report it."""
    message = f"{field}: {reason}"
    err = _native.InvalidArgumentError(message)
    err.message = message
    err.retry_after = None
    err.field = field
    err.details = {"error": "invalid_argument", "message": message, "code": 400, "field": field}
    return err


def _pack(rows: Sequence[Any]) -> Optional[Tuple[bytes, int]]:
    """Packs equal-length vectors as one native float32 block, so they cross into the engine
    without being written as text; ``None`` (send them as JSON, where a bad one is reported by
    field) when they are not a clean rectangle of numbers."""
    if len(rows) == 0:
        return None
    if _np is not None:
        try:
            block = _np.asarray(rows)
            # numpy would read "0.5" or True as a number, where the engine refuses them by field.
            if block.dtype.kind not in "fiu":
                return None
            with _np.errstate(over="ignore"):  # beyond float32 is inf: the engine refuses it
                block = _np.ascontiguousarray(block, dtype=_np.float32)
        except (TypeError, ValueError, OverflowError):
            return None
        if not _np.isfinite(block).all():
            return None  # as JSON, refused naming the value ("embedding[3]"), as in Node and Go
        if block.ndim != 2 or block.shape[1] == 0:
            return None
        return block.tobytes(), int(block.shape[1])
    try:
        dims = len(rows[0])
        if dims == 0 or any(len(r) != dims for r in rows):
            return None
        packed = array("f")
        for row in rows:
            packed.extend(row)
    except (TypeError, ValueError, OverflowError):
        return None
    if not all(map(math.isfinite, packed)):
        return None
    return packed.tobytes(), dims


def _grant(grant: GrantLike) -> Mapping[str, Any]:
    if isinstance(grant, (tuple, list)):
        namespace, access = grant
        return {"namespace": namespace, "access": access}
    return grant


#: What ``import_namespace`` reads: a file object, the whole text as ``str`` or ``bytes``, or
#: an iterable of lines (dicts, or one line's text as ``str`` or ``bytes``; each item is one
#: line, see ``import_namespace``).
ImportLines = Union[str, bytes, Iterable[Union[str, bytes, Mapping[str, Any]]]]

class Memsilo:
    """A handle on memsilo acting as one principal: the embedded root (``memsilo.open``), a
    server key (``memsilo.connect``), or a scoped key (``scoped``). Thread-safe: share one
    handle between threads; calls run without the GIL."""

    def __init__(
        self, client: _native.Client, *, embedding_function: Optional[EmbeddingFunction] = None
    ) -> None:
        self._client = client
        self._embed_fn = embedding_function

    def __repr__(self) -> str:
        return f"<memsilo.Memsilo {self._client!r}>"

    def _call(self, op: str, args: Mapping[str, Any]) -> Any:
        return json.loads(self._client.call(op, _dumps(args)))

    def _call_with_vectors(self, op: str, args: Mapping[str, Any], rows: Sequence[Any]) -> Any:
        """``_call`` with the vectors as a binary block when they pack cleanly."""
        packed = _pack(rows)
        if packed is None:
            return None
        return json.loads(self._client.call_vectors(op, _dumps(args), packed[0], packed[1]))

    def _embed(self, texts: List[str]) -> List[Any]:
        assert self._embed_fn is not None
        vectors = list(self._embed_fn(texts))
        if len(vectors) != len(texts):
            raise ValueError(
                f"embedding_function returned {len(vectors)} vectors for {len(texts)} texts"
            )
        return vectors

    def scoped(self, api_key: str) -> Memsilo:
        """A handle acting as ``api_key`` (same engine or server, same embedding function)."""
        return Memsilo(self._client.scoped(api_key), embedding_function=self._embed_fn)

    def whoami(self) -> WhoAmI:
        """Who this handle acts as: principal kind, tenant, role or namespace grants."""
        return cast(WhoAmI, self._call("whoami", {}))

    # -- namespaces ----------------------------------------------------------------------

    def create_namespace(
        self,
        name: str,
        tenant_id: Optional[str] = None,
        policy: Optional[DecayPolicyInput] = None,
        dimensions: Optional[int] = None,
        exist_ok: bool = False,
    ) -> Namespace:
        """Creates a namespace (``exist_ok`` returns the existing one instead of ``ConflictError``)."""
        args = {"name": name, "tenant_id": tenant_id, "policy": policy, "dimensions": dimensions}
        return cast(Namespace, self._call("create_namespace", {**args, "exist_ok": exist_ok}))

    def list_namespaces(
        self,
        tenant_id: Optional[str] = None,
        offset: int = 0,
        limit: int = 50,
        cursor: Optional[str] = None,
    ) -> NamespaceList:
        """Namespaces visible to this handle in name order, one page (``limit`` at most 100).

        The page is a list with ``total_count`` (of the whole list, on every page) and
        ``next_cursor``: pass ``next_cursor`` as ``cursor`` for the next page (same cost at any
        depth; not with ``offset``)."""
        args = {"tenant_id": tenant_id, "offset": offset, "limit": limit, "cursor": cursor}
        page = json.loads(self._client.call_listed("list_namespaces", _dumps(args)))
        return NamespaceList(page["value"], page["total_count"] or 0, page["next_cursor"])

    def get_namespace(self, name: str) -> Namespace:
        """One namespace with its counts and policy."""
        return cast(Namespace, self._call("get_namespace", {"name": name}))

    def delete_namespace(self, name: str) -> DeletedNamespace:
        """Deletes a namespace and all its data, atomically."""
        return cast(DeletedNamespace, self._call("delete_namespace", {"name": name}))

    def get_memory_policy(self, namespace: str) -> DecayPolicy:
        """The namespace's decay policy."""
        return cast(DecayPolicy, self._call("get_memory_policy", {"namespace": namespace}))

    def set_memory_policy(self, namespace: str, policy: DecayPolicyInput) -> DecayPolicy:
        """Replaces the namespace's decay policy."""
        args = {"namespace": namespace, "policy": policy}
        return cast(DecayPolicy, self._call("set_memory_policy", args))

    # -- memories ------------------------------------------------------------------------

    def store_memory(
        self,
        namespace: Optional[str],
        content: str,
        importance: Optional[float] = None,
        tags: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        agent_id: Optional[str] = None,
        ttl: Optional[int] = None,
        embedding: Optional[VectorLike] = None,
        entities: Optional[Sequence[str]] = None,
        *,
        id: Optional[str] = None,
        memory_type: Optional[MemoryType] = None,
        session_id: Optional[str] = None,
    ) -> Memory:
        """Stores one memory; with an ``embedding_function`` and no ``embedding``, embeds ``content``.

        An ``id`` already stored in the namespace is replaced (upsert): its ``created_at`` stays."""
        if embedding is None and self._embed_fn is not None:
            embedding = self._embed([content])[0]
        args = {
            "namespace": namespace,
            "content": content,
            "importance": importance,
            "tags": tags,
            "metadata": metadata,
            "agent_id": agent_id,
            "ttl": ttl,
            "entities": entities,
            "id": id,
            "memory_type": memory_type,
            "session_id": session_id,
        }
        if embedding is not None:
            stored = self._call_with_vectors("store_memory", args, [embedding])
            if stored is not None:
                return cast(Memory, stored)
        return cast(Memory, self._call("store_memory", {**args, "embedding": embedding}))

    def store_memories(self, namespace: str, memories: Sequence[MemoryInput]) -> List[str]:
        """Stores up to 1000 memories, all or nothing; returns their ids in order."""
        if isinstance(memories, (str, bytes, Mapping)) or not isinstance(memories, Iterable):
            raise _invalid("memories", f"must be a list of dicts, got {type(memories).__name__}")
        items: List[Dict[str, Any]] = []
        for i, m in enumerate(memories):
            if not isinstance(m, Mapping):
                reason = f"must be a dict of a memory's fields, got {type(m).__name__}"
                raise _invalid(f"memories[{i}]", reason)
            items.append(dict(m))
        if self._embed_fn is not None:
            missing = [m for m in items if m.get("embedding") is None]
            if missing:
                for item, vector in zip(missing, self._embed([m["content"] for m in missing])):
                    item["embedding"] = vector
        vectors = [m.get("embedding") for m in items]
        if items and all(v is not None for v in vectors):
            bare = [{k: v for k, v in m.items() if k != "embedding"} for m in items]
            reply = self._call_with_vectors(
                "store_memories", {"namespace": namespace, "memories": bare}, vectors
            )
            if reply is not None:
                return cast(List[str], reply["ids"])
        reply = self._call("store_memories", {"namespace": namespace, "memories": items})
        return cast(List[str], reply["ids"])

    def recall(
        self,
        namespace: Optional[str],
        query: Optional[str] = None,
        *,
        vector: Optional[VectorLike] = None,
        top_k: int = 10,
        agent_id: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        min_importance: Optional[float] = None,
        since: Optional[TimeLike] = None,
        until: Optional[TimeLike] = None,
        expand: Optional[int] = None,
        mode: Optional[str] = None,
        vector_weight: Optional[float] = None,
        filter: Optional[Filter] = None,
        memory_type: Optional[MemoryType] = None,
        session_id: Optional[str] = None,
    ) -> List[RecallHit]:
        """The ``top_k`` memories closest to ``query`` (or to ``vector``), best first."""
        if vector is None and query is not None and self._embed_fn is not None:
            vector, query = self._embed([query])[0], None
        args = {
            "namespace": namespace,
            "query": query,
            "top_k": top_k,
            "agent_id": agent_id,
            "tags": tags,
            "min_importance": min_importance,
            "since": since,
            "until": until,
            "expand": expand,
            "mode": mode,
            "vector_weight": vector_weight,
            "filter": filter,
            "memory_type": memory_type,
            "session_id": session_id,
        }
        if vector is not None:
            hits = self._call_with_vectors("recall", args, [vector])
            if hits is not None:
                return cast(List[RecallHit], hits)
        return cast(List[RecallHit], self._call("recall", {**args, "vector": vector}))

    def get_memory(self, namespace: Optional[str], id: str) -> Memory:
        """One memory by id."""
        return cast(Memory, self._call("get_memory", {"namespace": namespace, "id": id}))

    def get_memories(
        self, namespace: Optional[str], ids: Sequence[str], *, include_vectors: bool = False
    ) -> List[Memory]:
        """The memories of ``ids`` (at most 1000) in that order; absent ids are left out."""
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            # list("doc-1") would ask for the ids "d", "o", "c", ... and find none.
            raise _invalid("ids", f"must be a list of ids, got {type(ids).__name__}")
        args = {"namespace": namespace, "ids": list(ids), "include_vectors": include_vectors}
        return cast(List[Memory], self._call("get_memories", args)["memories"])

    def update_memory(
        self,
        namespace: Optional[str],
        id: str,
        *,
        content: Optional[str] = None,
        embedding: Optional[VectorLike] = None,
        importance: Optional[float] = None,
        tags: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        replace: bool = False,
        ttl: Optional[int] = None,
        memory_type: Optional[MemoryType] = None,
        session_id: Optional[str] = None,
    ) -> Memory:
        """Changes the given fields of memory ``id`` (``NotFoundError`` if absent).

        New ``content`` is re-embedded; ``metadata`` is merged key by key (``None`` values
        remove keys) unless ``replace=True``; ``tags`` replace the tags."""
        if content is not None and embedding is None and self._embed_fn is not None:
            embedding = self._embed([content])[0]
        args = {
            "namespace": namespace,
            "id": id,
            "content": content,
            "importance": importance,
            "tags": tags,
            "metadata": metadata,
            "replace": replace,
            "ttl": ttl,
            "memory_type": memory_type,
            "session_id": session_id,
        }
        if embedding is not None:
            updated = self._call_with_vectors("update_memory", args, [embedding])
            if updated is not None:
                return cast(Memory, updated)
        return cast(Memory, self._call("update_memory", {**args, "embedding": embedding}))

    def delete_memory(self, namespace: Optional[str], id: str) -> DeletedMemory:
        """Deletes one memory by id."""
        return cast(DeletedMemory, self._call("delete_memory", {"namespace": namespace, "id": id}))

    def batch_forget(
        self,
        namespace: Optional[str],
        ids: Optional[Sequence[str]] = None,
        agent_id: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        before: Optional[TimeLike] = None,
        below_importance: Optional[float] = None,
        filter: Optional[Filter] = None,
    ) -> Forgotten:
        """Deletes the memories matching every given filter (at least one is required)."""
        args = {
            "namespace": namespace,
            "ids": ids,
            "agent_id": agent_id,
            "tags": tags,
            "before": before,
            "below_importance": below_importance,
            "filter": filter,
        }
        return cast(Forgotten, self._call("batch_forget", args))

    # -- sessions --------------------------------------------------------------------------

    def start_session(
        self,
        namespace: Optional[str],
        *,
        id: Optional[str] = None,
        agent_id: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> Session:
        """Starts a session (``ConflictError`` if the namespace has one with ``id``)."""
        args = {"namespace": namespace, "id": id, "agent_id": agent_id, "metadata": metadata}
        return cast(Session, self._call("start_session", args))

    def end_session(self, namespace: Optional[str], id: str, *, summary: Optional[str] = None) -> Session:
        """Ends a session, keeping ``summary``; ending an ended session returns it unchanged."""
        args = {"namespace": namespace, "id": id, "summary": summary}
        return cast(Session, self._call("end_session", args))

    def get_session(self, namespace: Optional[str], id: str) -> Session:
        """One session with its ``memory_count`` (``NotFoundError`` if absent)."""
        return cast(Session, self._call("get_session", {"namespace": namespace, "id": id}))

    def list_sessions(
        self,
        namespace: Optional[str],
        *,
        agent_id: Optional[str] = None,
        active_only: Optional[bool] = None,
        offset: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> SessionPage:
        """The namespace's sessions, oldest first: ``{"sessions", "total_count"}``."""
        args = {
            "namespace": namespace,
            "agent_id": agent_id,
            "active_only": active_only,
            "offset": offset,
            "limit": limit,
        }
        return cast(SessionPage, self._call("list_sessions", args))

    def session_memories(
        self, namespace: Optional[str], id: str, *, offset: Optional[int] = None, limit: Optional[int] = None
    ) -> MemoryList:
        """A session's live memories, oldest first: ``{"memories", "total_count"}``."""
        args = {"namespace": namespace, "id": id, "offset": offset, "limit": limit}
        return cast(MemoryList, self._call("session_memories", args))
    def list_memories(
        self,
        namespace: Optional[str],
        *,
        filter: Optional[Filter] = None,
        order_by: Optional[OrderBy] = None,
        descending: bool = False,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        include_vectors: bool = False,
    ) -> MemoryPage:
        """One page of the memories matching ``filter`` in a stable order; pass the page's
        ``next_cursor`` as ``cursor`` for the next one (``None`` on the last page)."""
        args = {
            "namespace": namespace,
            "filter": filter,
            "order_by": order_by,
            "descending": descending,
            "limit": limit,
            "cursor": cursor,
            "include_vectors": include_vectors,
        }
        return cast(MemoryPage, self._call("list_memories", args))

    def count_memories(self, namespace: Optional[str], filter: Optional[Filter] = None) -> int:
        """How many live memories match ``filter`` (all of them without one)."""
        reply = self._call("count_memories", {"namespace": namespace, "filter": filter})
        return cast(int, reply["count"])

    # -- tenants and members -------------------------------------------------------------

    def create_tenant(
        self,
        name: str,
        quotas: Optional[QuotasInput] = None,
        isolation_mode: Optional[IsolationMode] = None,
        parent_id: Optional[str] = None,
        settings: Optional[Mapping[str, Any]] = None,
        features: Any = None,
        tags: Any = None,
        encryption_key_id: Optional[str] = None,
    ) -> Tenant:
        """Creates a tenant (quotas not given take their defaults). ``encryption_key_id``
        gives a ``physical`` or ``hybrid`` tenant a key of its own (created in the keyring
        if absent; destroyed when the tenant is deleted)."""
        args = {
            "name": name,
            "quotas": quotas,
            "isolation_mode": isolation_mode,
            "parent_id": parent_id,
            "settings": settings,
            "features": features,
            "tags": tags,
            "encryption_key_id": encryption_key_id,
        }
        return cast(Tenant, self._call("create_tenant", args))

    def get_tenant(self, tenant_id: str) -> Tenant:
        """One tenant with its quotas and usage."""
        return cast(Tenant, self._call("get_tenant", {"tenant_id": tenant_id}))

    def list_tenants(
        self,
        status: Optional[TenantStatus] = None,
        parent_id: Optional[str] = None,
        offset: int = 0,
        limit: int = 50,
    ) -> TenantList:
        """Tenants, one page: ``{"tenants", "total_count", "offset", "limit"}``."""
        args = {"status": status, "parent_id": parent_id, "offset": offset, "limit": limit}
        return cast(TenantList, self._call("list_tenants", args))

    def update_tenant(
        self,
        tenant_id: str,
        *,
        name: Optional[str] = None,
        status: Optional[TenantStatus] = None,
        quotas: Optional[QuotasInput] = None,
        settings: Optional[Mapping[str, Any]] = None,
        features: Any = None,
        tags: Any = None,
    ) -> Tenant:
        """Changes the given fields of a tenant (quotas are merged)."""
        args = {
            "tenant_id": tenant_id,
            "name": name,
            "status": status,
            "quotas": quotas,
            "settings": settings,
            "features": features,
            "tags": tags,
        }
        return cast(Tenant, self._call("update_tenant", args))

    def delete_tenant(self, tenant_id: str) -> Tenant:
        """Deletes a tenant with its namespaces, keys and members (``ConflictError`` if it has children)."""
        return cast(Tenant, self._call("delete_tenant", {"tenant_id": tenant_id}))

    def rotate_tenant_key(self, tenant_id: str, new_key_id: Optional[str] = None) -> KeyRotation:
        """Rotates a ``physical`` or ``hybrid`` tenant's encryption key to ``new_key_id`` (made
        in the keyring if absent; default ``<tenant name>.<ms>``): new data is written under
        it at once, and the tenant's files are rewritten under it in the background while
        the tenant keeps working; then the old key is destroyed. Poll
        :meth:`get_key_rotation` for progress. Root and the tenant's admins only."""
        args = {"tenant_id": tenant_id, "new_key_id": new_key_id}
        return cast(KeyRotation, self._call("rotate_tenant_key", args))

    def get_key_rotation(self, tenant_id: str) -> KeyRotation:
        """The tenant's last key rotation and its progress (``NotFoundError`` if none)."""
        return cast(KeyRotation, self._call("get_key_rotation", {"tenant_id": tenant_id}))

    def rotate_instance_key(self, new_key_id: Optional[str] = None) -> InstanceKeyRotation:
        """Rotates the instance key (the key of the catalog, the audit log, ``logical``
        tenants' files and the files of tenants without a key of their own) to ``new_key_id``
        (made in the keyring if absent; default ``instance.<ms>``): new files are written
        under it at once, and every file under the old key is rewritten in the background,
        the catalog last; then the old key is destroyed. Poll
        :meth:`get_instance_key_rotation` for progress. Root only."""
        args = {"new_key_id": new_key_id}
        return cast(InstanceKeyRotation, self._call("rotate_instance_key", args))

    def get_instance_key_rotation(self) -> InstanceKeyRotation:
        """The instance key's last rotation and its progress (``NotFoundError`` if none). Root only."""
        return cast(InstanceKeyRotation, self._call("get_instance_key_rotation", {}))

    def add_member(
        self,
        tenant_id: str,
        user_identifier: str,
        role: Role,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> Member:
        """Adds a member with a role (``admin``, ``editor`` or ``viewer``)."""
        args = {
            "tenant_id": tenant_id,
            "user_identifier": user_identifier,
            "role": role,
            "metadata": metadata,
        }
        return cast(Member, self._call("add_member", args))

    def list_members(
        self, tenant_id: str, role: Optional[Role] = None, offset: int = 0, limit: int = 50
    ) -> MemberList:
        """A tenant's members, one page: ``{"tenant_id", "members", "total_count"}``."""
        args = {"tenant_id": tenant_id, "role": role, "offset": offset, "limit": limit}
        return cast(MemberList, self._call("list_members", args))

    def remove_member(self, tenant_id: str, member_id: str) -> RemovedMember:
        """Removes a member and revokes its keys."""
        args = {"tenant_id": tenant_id, "member_id": member_id}
        return cast(RemovedMember, self._call("remove_member", args))

    # -- keys ----------------------------------------------------------------------------

    def create_key(
        self,
        name: str,
        namespaces: Optional[Sequence[GrantLike]] = None,
        tenant_id: Optional[str] = None,
        role: Optional[Role] = None,
        member_id: Optional[str] = None,
        expires_at: Optional[TimeLike] = None,
    ) -> CreatedKey:
        """Issues a key; the result's ``key`` is the only time the full key is shown."""
        args = {
            "name": name,
            "namespaces": None if namespaces is None else [_grant(g) for g in namespaces],
            "tenant_id": tenant_id,
            "role": role,
            "member_id": member_id,
            "expires_at": expires_at,
        }
        return cast(CreatedKey, self._call("create_key", args))

    def list_keys(
        self,
        tenant_id: Optional[str] = None,
        offset: int = 0,
        limit: int = 50,
        namespace: Optional[str] = None,
    ) -> List[ApiKey]:
        """Keys visible to this handle, one page (without their secrets); with `namespace`,
        only the keys granted that namespace."""
        args = {"tenant_id": tenant_id, "offset": offset, "limit": limit, "namespace": namespace}
        return cast(List[ApiKey], self._call("list_keys", args))

    def export_namespace(self, namespace: str, page_size: int = 1000) -> Iterator[Dict[str, Any]]:
        """The namespace as export lines (dicts with a ``kind``: the ``namespace`` line first,
        then entities, relations and memories with ids and vectors), fetched a page at a time.
        Write each with ``json.dumps`` on its own line for a JSON Lines file."""
        cursor: Optional[str] = None
        while True:
            page = self._call(
                "export_namespace", {"namespace": namespace, "cursor": cursor, "limit": page_size}
            )
            yield from page["lines"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def import_namespace(
        self,
        namespace: str,
        lines: ImportLines,
        batch_size: int = 1000,
    ) -> Dict[str, int]:
        """Imports export lines (dicts, or the text of JSON Lines, e.g. an open file) into an
        existing namespace in batches of ``batch_size``; each batch of one kind is all or
        nothing and running it again is idempotent. A bad line raises ``InvalidArgumentError``
        naming it (``line 12: ...``, ``.line`` 12); earlier batches stay, and the error's
        ``.imported`` is what they wrote. Returns the counts written.

        A file object (anything with ``read``) is read in chunks of 1 MiB as JSON Lines, and a
        whole ``str`` or ``bytes`` is the text of JSON Lines (not an iterable of characters).
        Of an iterable, each item is one line, numbered as one (its ending newline is optional;
        a ``str`` holding a JSON object written over several lines is that one line). In
        process the next batch is read while one is written; against a server the lines go as
        one streamed request body."""
        read = getattr(lines, "read", None)
        _check_import(namespace, lines, batch_size)
        # Out of range, it reaches the importer, which names batch_size (not an OverflowError).
        importer = self._client.importer(namespace, min(max(batch_size, 0), 1 << 32))
        if isinstance(lines, (str, bytes)):
            importer.feed(lines.encode("utf-8") if isinstance(lines, str) else lines)
        elif callable(read):
            while True:
                chunk = read(_IMPORT_CHUNK)
                if not chunk:
                    break
                importer.feed(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
        else:
            items = _LineItems()
            for line in lines:
                full = items.add(line)
                if full:
                    importer.feed_lines(full)
            importer.feed_lines(items.rest())
        return cast(Dict[str, int], json.loads(importer.finish()))

    def revoke_key(self, key_id: str, namespace: Optional[str] = None) -> ApiKey:
        """Revokes a key; it fails at once everywhere. With `namespace`, only a key granted
        that namespace (any other is `NotFoundError`)."""
        return cast(ApiKey, self._call("revoke_key", {"key_id": key_id, "namespace": namespace}))

    def rotate_key(self, key_id: str) -> CreatedKey:
        """Replaces a key's secret; the old text stops working."""
        return cast(CreatedKey, self._call("rotate_key", {"key_id": key_id}))

    # -- audit log -----------------------------------------------------------------------

    def list_audit(
        self,
        tenant_id: str,
        since: Optional[TimeLike] = None,
        until: Optional[TimeLike] = None,
        actor: Optional[str] = None,
        action: Optional[str] = None,
        cursor: Optional[str] = None,
        limit: int = 50,
    ) -> AuditPage:
        """A tenant's audit entries, oldest first (``tenant_id="instance"``: the instance log).

        ``actor`` matches a key id, key prefix or member id; pass ``next_cursor`` as ``cursor``
        for the next page. Root, or the tenant's admins."""
        args = {
            "tenant_id": tenant_id,
            "since": since,
            "until": until,
            "actor": actor,
            "action": action,
            "cursor": cursor,
            "limit": limit,
        }
        return cast(AuditPage, self._call("list_audit", args))

    def verify_audit(self, tenant_id: str) -> AuditVerification:
        """Checks a tenant's audit hash chain; ``first_broken`` names an edited or missing entry."""
        return cast(AuditVerification, self._call("verify_audit", {"tenant_id": tenant_id}))

    # -- knowledge graph -----------------------------------------------------------------

    def add_entity(
        self,
        namespace: str,
        name: str,
        type: Optional[str] = None,
        properties: Optional[Mapping[str, Any]] = None,
    ) -> Entity:
        """Adds (or updates, by name and type) an entity."""
        args = {"namespace": namespace, "name": name, "type": type, "properties": properties}
        return cast(Entity, self._call("add_entity", args))

    def add_relation(
        self,
        namespace: str,
        source: str,
        target: str,
        type: str,
        weight: Optional[float] = None,
        properties: Optional[Mapping[str, Any]] = None,
    ) -> Relation:
        """Adds a directed relation between two entities (ids or names)."""
        args = {
            "namespace": namespace,
            "source": source,
            "target": target,
            "type": type,
            "weight": weight,
            "properties": properties,
        }
        return cast(Relation, self._call("add_relation", args))

    def get_entity(self, namespace: str, entity: str, type: Optional[str] = None) -> Entity:
        """One entity by id or name."""
        args = {"namespace": namespace, "entity": entity, "type": type}
        return cast(Entity, self._call("get_entity", args))

    def neighbors(
        self, namespace: str, entity: str, depth: int = 1, type: Optional[str] = None
    ) -> GraphView:
        """Entities and relations within ``depth`` hops of ``entity``."""
        args = {"namespace": namespace, "entity": entity, "depth": depth, "type": type}
        return cast(GraphView, self._call("neighbors", args))

    def subgraph(
        self, namespace: str, entity: str, depth: int = 1, type: Optional[str] = None
    ) -> GraphView:
        """The subgraph induced by the entities within ``depth`` hops of ``entity``."""
        args = {"namespace": namespace, "entity": entity, "depth": depth, "type": type}
        return cast(GraphView, self._call("subgraph", args))

    def shortest_path(self, namespace: str, from_: str, to: str) -> GraphPath:
        """The lightest path from ``from_`` to ``to`` (``NotFoundError`` if none)."""
        args = {"namespace": namespace, "from": from_, "to": to}
        return cast(GraphPath, self._call("shortest_path", args))

    def delete_entity(self, namespace: str, entity: str) -> DeletedEntity:
        """Deletes an entity and its relations."""
        args = {"namespace": namespace, "entity": entity}
        return cast(DeletedEntity, self._call("delete_entity", args))

    def delete_relation(self, namespace: str, id: str) -> DeletedRelation:
        """Deletes one relation by id."""
        return cast(DeletedRelation, self._call("delete_relation", {"namespace": namespace, "id": id}))


def _check_import(namespace: Any, lines: Any, batch_size: Any) -> None:
    """Refuses import arguments of the wrong type as ``InvalidArgumentError`` naming them (the
    native importer would raise a bare ``TypeError``)."""
    if not isinstance(namespace, str):
        raise _invalid("namespace", f"must be a str, got {type(namespace).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise _invalid("batch_size", f"must be an int, got {type(batch_size).__name__}")
    if not isinstance(lines, (str, bytes, Iterable, AsyncIterable)) and not callable(
        getattr(lines, "read", None)
    ):
        raise _invalid(
            "lines", f"must be a file, a str or bytes, or an iterable of lines, got {type(lines).__name__}"
        )


class _LineItems:
    """Import lines (dicts, or one line's text as ``str`` or ``bytes``) as the bytes of each,
    handed out in lists of about 1 MiB (for the importer's ``feed_lines``: one item a line)."""

    def __init__(self) -> None:
        self.items: List[bytes] = []
        self.size = 0

    def add(self, line: Union[str, bytes, Mapping[str, Any]]) -> Optional[List[bytes]]:
        """Adds a line; returns the lines gathered once they hold about 1 MiB."""
        if isinstance(line, Mapping):
            text = json.dumps(line, separators=(",", ":")).encode("utf-8")
        elif isinstance(line, str):
            text = line.encode("utf-8")
        elif isinstance(line, (bytes, bytearray, memoryview)):
            text = bytes(line)
        else:  # bytes(5) would be five NUL bytes
            raise _invalid("lines", f"each line must be a dict, str or bytes, got {type(line).__name__}")
        self.items.append(text)
        self.size += len(text) + 1
        return self.rest() if self.size >= _IMPORT_CHUNK else None

    def rest(self) -> List[bytes]:
        """What is gathered (maybe nothing)."""
        items, self.items, self.size = self.items, [], 0
        return items


_IMPORT_CHUNK = 1 << 20
