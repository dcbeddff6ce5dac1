"""The shapes memsilo returns and accepts, as TypedDicts.

Results are plain ``dict``/``list`` values decoded from the core's JSON (the same fields as the
HTTP API reference, docs/src/api/); these types only describe them. Times are ISO 8601 strings.
"""

from __future__ import annotations

from datetime import datetime
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Literal,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    TypedDict,
    Union,
)

Access = Literal["read", "write"]
Role = Literal["admin", "editor", "viewer"]
TenantStatus = Literal["active", "provisioning", "suspended", "deleting", "deleted"]
IsolationMode = Literal["logical", "hybrid", "physical"]


class SupportsToList(Protocol):
    """Anything with ``tolist()``, such as a 1-D numpy array."""

    def tolist(self) -> Any: ...


#: A vector: a sequence of floats or a 1-D numpy array.
VectorLike = Union[Sequence[float], SupportsToList]
#: A time: a ``datetime`` (naive means local time) or an ISO 8601 string.
TimeLike = Union[datetime, str]
#: Turns texts into vectors (one per text, in order): ``list[str] -> list[list[float]]``.
EmbeddingFunction = Callable[[List[str]], Iterable[VectorLike]]


class DecayPolicy(TypedDict):
    decay_rate: float
    min_importance: float
    ttl_default: Optional[int]


class DecayPolicyInput(TypedDict, total=False):
    decay_rate: float
    min_importance: float
    ttl_default: Optional[int]


class Namespace(TypedDict):
    name: str
    tenant_id: Optional[str]
    created_at: str
    memory_count: int
    storage_bytes: int
    isolation_mode: IsolationMode
    policy: DecayPolicy
    dimensions: Optional[int]
    embedder: Optional[str]
    entity_count: int
    relation_count: int


class DeletedNamespace(TypedDict):
    name: str
    deleted_at: str


class Quotas(TypedDict):
    storage_quota_bytes: int
    qps_limit: int
    max_connections: int
    compute_quota_cores: float
    max_members: int
    max_namespaces: int


class QuotasInput(TypedDict, total=False):
    storage_quota_bytes: int
    qps_limit: int
    max_connections: int
    compute_quota_cores: float
    max_members: int
    max_namespaces: int


class TenantUsage(TypedDict):
    storage_bytes: int
    namespaces: int
    members: int


class _TenantBase(TypedDict):
    id: str
    name: str
    status: TenantStatus
    isolation_mode: IsolationMode
    parent_id: Optional[str]
    settings: Dict[str, Any]
    features: Any
    tags: Any
    quotas: Quotas
    encryption_key_id: Optional[str]
    created_at: str
    updated_at: str
    usage: TenantUsage


class Tenant(_TenantBase, total=False):
    message: str
    deleted_at: str


class NamespaceList(List[Namespace]):
    """One page of ``list_namespaces``: a list of namespaces with the total over all pages and
    ``next_cursor``, where the next page starts (``None`` on the last page)."""

    total_count: int
    next_cursor: Optional[str]

    def __init__(
        self, items: Iterable[Namespace] = (), total_count: int = 0, next_cursor: Optional[str] = None
    ) -> None:
        super().__init__(items)
        self.total_count = total_count
        self.next_cursor = next_cursor


KeyRotationState = Literal["rewriting", "done"]


class KeyRotation(TypedDict):
    tenant_id: str
    old_key_id: Optional[str]
    new_key_id: str
    state: KeyRotationState
    environments_total: int
    environments_done: int
    started_at: str
    finished_at: Optional[str]


class InstanceKeyRotation(TypedDict):
    old_key_id: str
    new_key_id: str
    state: KeyRotationState
    environments_total: int
    environments_done: int
    started_at: str
    finished_at: Optional[str]


class TenantList(TypedDict):
    tenants: List[Tenant]
    total_count: int
    offset: int
    limit: int


class _MemberBase(TypedDict):
    tenant_id: str
    member_id: str
    user_identifier: str
    role: Role
    metadata: Dict[str, Any]
    added_at: str


class Member(_MemberBase, total=False):
    message: str


class MemberList(TypedDict):
    tenant_id: str
    members: List[Member]
    total_count: int


class RemovedMember(TypedDict):
    tenant_id: str
    member_id: str
    message: str
    removed_at: str


class NamespaceGrant(TypedDict):
    namespace: str
    access: Access


#: A grant for ``create_key``: ``("ns", "write")`` or ``{"namespace": "ns", "access": "write"}``.
GrantLike = Union[Tuple[str, Access], NamespaceGrant]


class ApiKey(TypedDict):
    id: str
    name: str
    prefix: str
    tenant_id: Optional[str]
    member_id: Optional[str]
    role: Optional[Role]
    namespaces: List[NamespaceGrant]
    created_at: str
    expires_at: Optional[str]
    revoked: bool


class CreatedKey(ApiKey):
    key: str


MemoryType = Literal["episodic", "semantic", "procedural", "working"]


class _MemoryBase(TypedDict):
    id: str
    namespace: str
    agent_id: Optional[str]
    content: str
    importance: float
    tags: List[str]
    metadata: Dict[str, Any]
    memory_type: MemoryType
    session_id: Optional[str]
    created_at: str
    updated_at: str
    expires_at: Optional[str]


class Memory(_MemoryBase, total=False):
    entities: List[str]
    vector: List[float]


class MemoryPage(TypedDict):
    memories: List[Memory]
    next_cursor: Optional[str]


OrderBy = Literal["created_at", "updated_at", "importance"]
Filter = Dict[str, Any]


class _MemoryInputBase(TypedDict):
    content: str


class MemoryInput(_MemoryInputBase, total=False):
    """One item of ``store_memories`` (an ``id`` already stored is replaced)."""

    id: Optional[str]
    memory_type: Optional[MemoryType]
    session_id: Optional[str]
    agent_id: Optional[str]
    importance: Optional[float]
    tags: List[str]
    metadata: Optional[Dict[str, Any]]
    ttl: Optional[int]
    embedding: Optional[VectorLike]
    entities: List[str]


class Session(TypedDict):
    """A session: its memories are those whose ``session_id`` is its ``id``."""

    id: str
    namespace: str
    agent_id: Optional[str]
    metadata: Dict[str, Any]
    started_at: str
    ended_at: Optional[str]
    summary: Optional[str]
    memory_count: int


class SessionPage(TypedDict):
    sessions: List[Session]
    total_count: int


class MemoryList(TypedDict):
    memories: List[Memory]
    total_count: int


class DeletedMemory(TypedDict):
    id: str
    namespace: str
    deleted: bool


class _RecallHitBase(TypedDict):
    id: str
    content: str
    score: float
    similarity: float
    importance: float
    effective_importance: float
    agent_id: Optional[str]
    tags: List[str]
    metadata: Dict[str, Any]
    memory_type: MemoryType
    session_id: Optional[str]
    created_at: str
    updated_at: str


class RecallHit(_RecallHitBase, total=False):
    via_graph: bool
    keyword_score: Optional[float]
    vector_score: Optional[float]


class Forgotten(TypedDict):
    forgotten: int


# ``type`` is a keyword-ish name in these shapes, so they use the functional syntax.
Entity = TypedDict(
    "Entity",
    {
        "id": str,
        "name": str,
        "type": str,
        "properties": Dict[str, Any],
        "created_at": str,
        "updated_at": str,
    },
)

Relation = TypedDict(
    "Relation",
    {
        "id": str,
        "source": str,
        "target": str,
        "source_name": str,
        "target_name": str,
        "type": str,
        "weight": float,
        "properties": Dict[str, Any],
        "created_at": str,
    },
)


class GraphView(TypedDict):
    entities: List[Entity]
    relations: List[Relation]


class GraphPath(TypedDict):
    entities: List[Entity]
    relations: List[Relation]
    total_weight: float


class DeletedEntity(TypedDict):
    id: str
    name: str
    deleted: bool


class DeletedRelation(TypedDict):
    id: str
    deleted: bool


class _WhoAmIBase(TypedDict):
    principal: Literal["root", "member", "scoped"]


class WhoAmI(_WhoAmIBase, total=False):
    key_id: str
    tenant_id: Optional[str]
    role: Role
    namespaces: List[NamespaceGrant]


class AuditActor(TypedDict):
    principal: Literal["root", "member", "scoped", "anonymous"]
    key_id: Optional[str]
    key_prefix: Optional[str]
    member_id: Optional[str]


class AuditEntry(TypedDict):
    seq: int
    time: str
    tenant_id: str
    actor: AuditActor
    action: str
    target: Optional[str]
    result: Literal["ok", "refused", "failed"]
    error: Optional[str]
    status: int
    request_id: str
    prev_hash: str
    hash: str


class AuditPage(TypedDict):
    tenant_id: str
    entries: List[AuditEntry]
    next_cursor: Optional[str]


class BrokenEntry(TypedDict):
    seq: int
    reason: str


class AuditVerification(TypedDict):
    tenant_id: str
    ok: bool
    checked: int
    first_broken: Optional[BrokenEntry]
    head_seq: int
    head_hash: str


__all__ = [
    "Access",
    "AuditActor",
    "AuditEntry",
    "AuditPage",
    "AuditVerification",
    "BrokenEntry",
    "ApiKey",
    "CreatedKey",
    "DecayPolicy",
    "DecayPolicyInput",
    "DeletedEntity",
    "DeletedMemory",
    "DeletedNamespace",
    "DeletedRelation",
    "EmbeddingFunction",
    "Entity",
    "Forgotten",
    "GrantLike",
    "GraphPath",
    "GraphView",
    "IsolationMode",
    "KeyRotation",
    "InstanceKeyRotation",
    "KeyRotationState",
    "Member",
    "MemberList",
    "Memory",
    "MemoryInput",
    "Namespace",
    "NamespaceGrant",
    "NamespaceList",
    "Quotas",
    "QuotasInput",
    "RecallHit",
    "Relation",
    "RemovedMember",
    "Role",
    "SupportsToList",
    "Tenant",
    "TenantList",
    "TenantStatus",
    "TenantUsage",
    "TimeLike",
    "VectorLike",
    "WhoAmI",
]
