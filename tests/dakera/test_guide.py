"""The namespace guide's flow through the published Dakera SDK (PyPI `dakera`, pinned in the
Makefile) against a real `memsilo serve` on a loopback port.

`TenantMemoryService` is written the way a reader of the guide writes it: one admin client that
provisions a namespace and a scoped key per tenant, and per-tenant clients that only ever see
their own namespace. Only SDK calls are used; every step is one test, in order.
"""

import os
import subprocess
import tempfile
import threading

import pytest
from dakera import DakeraClient
from dakera.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ErrorCode,
    NotFoundError,
    ValidationError,
)
from dakera.models import BatchForgetRequest, BatchMemoryFilter, MemoryPolicy

ADMIN_KEY = "dakera-guide-admin-key-0123456789abcdef"


class TenantMemoryService:
    """One namespace per tenant, one scoped key per tenant."""

    def __init__(self, base_url: str, admin_key: str):
        self.base_url = base_url
        self.admin = DakeraClient(base_url, api_key=admin_key, max_retries=1)
        self.keys: dict[str, str] = {}
        self.key_ids: dict[str, str] = {}

    @staticmethod
    def namespace(tenant_id: str) -> str:
        return f"tenant-{tenant_id}"

    def provision(self, tenant_id: str) -> str:
        ns = self.namespace(tenant_id)
        self.admin.create_namespace(ns)
        created = self.admin.create_namespace_key(ns, name=f"{tenant_id}-backend", scope="write")
        self.keys[tenant_id] = created.key
        self.key_ids[tenant_id] = created.key_id
        return ns

    def client(self, tenant_id: str) -> DakeraClient:
        return DakeraClient(self.base_url, api_key=self.keys[tenant_id], max_retries=1)

    def remember(self, tenant_id: str, content: str, **fields) -> dict:
        return self.client(tenant_id).store_memory(self.namespace(tenant_id), content, **fields)

    def recall(self, tenant_id: str, query: str, top_k: int = 5, **fields):
        return self.client(tenant_id).recall(self.namespace(tenant_id), query, top_k=top_k, **fields)

    def offboard(self, tenant_id: str) -> None:
        self.admin.delete_namespace(self.namespace(tenant_id))


@pytest.fixture(scope="module")
def server():
    data = tempfile.mkdtemp(prefix="memsilo-dakera-")
    env = dict(os.environ, MEMSILO_ADMIN_KEY=ADMIN_KEY, MEMSILO_LOG="warn")
    proc = subprocess.Popen(
        [os.environ["MEMSILO_BIN"], "serve", "--data", data, "--listen", "127.0.0.1:0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = None
    for line in proc.stderr:  # the ready line names the port the kernel chose
        if "listening on " in line:
            url = line.split("listening on ", 1)[1].strip()
            break
    assert url, f"memsilo serve did not start (exit {proc.poll()})"
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def svc(server):
    return TenantMemoryService(server, ADMIN_KEY)


@pytest.fixture(scope="module")
def served(server):
    """What this server offers, from its own /openapi.json (not from the SDK)."""
    import requests

    doc = requests.get(f"{server}/openapi.json", timeout=10).json()
    forget = doc["paths"]["/v1/memory/forget"]["post"]["requestBody"]["content"]["application/json"]
    forget_fields = set()
    schema = forget["schema"]
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    forget_fields.update(schema.get("properties", {}))
    return {"filters": "filter" in forget_fields}


def needs(served, what: str) -> None:
    if not served[what]:
        pytest.skip(f"this build of memsilo has no {what} yet (issue #16 item 5)")


state: dict = {}


def test_01_create_namespaces_and_scoped_keys(svc):
    assert svc.provision("acme") == "tenant-acme"
    assert svc.provision("globex") == "tenant-globex"
    assert svc.keys["acme"].startswith("msk_") and svc.keys["acme"] != svc.keys["globex"]


def test_02_list_namespace_keys(svc):
    listed = svc.admin.list_namespace_keys("tenant-acme")
    assert [k.key_id for k in listed.keys] == [svc.key_ids["acme"]]
    assert listed.keys[0].scope == "write" and listed.keys[0].active


def test_03_store_with_the_scoped_key(svc):
    m = svc.remember("acme", "Acme Q3 roadmap: launch Omega in September", importance=0.9,
                     tags=["roadmap"], metadata={"owner": "pm"}, memory_type="semantic",
                     ttl_seconds=86400)
    assert m["id"] and m["content"].startswith("Acme Q3")
    assert m["memory_type"] == "semantic" and m["importance"] == 0.9
    state["memory_id"] = m["id"]
    svc.remember("globex", "Globex roadmap: ship the Hammock in Q4")


def test_04_recall_finds_the_tenants_own_memory(svc):
    hits = svc.recall("acme", "product roadmap launch").memories
    assert [h.id for h in hits] == [state["memory_id"]]
    assert hits[0].content.startswith("Acme Q3") and hits[0].memory_type == "semantic"


def test_05_cross_tenant_recall_is_403(svc):
    with pytest.raises(AuthorizationError) as e:
        svc.client("acme").recall("tenant-globex", "roadmap")
    # memsilo answers a Dakera client in Dakera's error shape: the SDK reads the code and
    # the message (our snake_case code stays in the body as `memsilo_error`).
    assert e.value.status_code == 403 and e.value.code == ErrorCode.NAMESPACE_ACCESS_DENIED
    assert str(e.value) == (
        "[403] NAMESPACE_ACCESS_DENIED: Key not authorized for namespace tenant-globex"
    )
    assert e.value.details == "Key not authorized for namespace tenant-globex"
    assert e.value.response_body["memsilo_error"] == "forbidden"


def test_06_cross_tenant_store_is_403(svc):
    with pytest.raises(AuthorizationError):
        svc.client("globex").store_memory("tenant-acme", "sneaky")


def test_07_list_and_get_namespaces(svc):
    names = {n.name for n in svc.admin.list_namespaces()}
    assert {"tenant-acme", "tenant-globex"} <= names
    info = svc.admin.get_namespace("tenant-acme")
    assert info.name == "tenant-acme" and info.vector_count == 1


def test_08_get_memory_policy(svc):
    policy = svc.admin.get_memory_policy("tenant-acme")
    assert policy.episodic_ttl_seconds is None  # no expiry by default
    assert policy.episodic_decay == "flat"


def test_09_set_memory_policy(svc):
    day = 86400
    wanted = MemoryPolicy(working_ttl_seconds=day, episodic_ttl_seconds=day,
                          semantic_ttl_seconds=day, procedural_ttl_seconds=day,
                          working_decay="flat", episodic_decay="flat",
                          semantic_decay="flat", procedural_decay="flat")
    got = svc.admin.set_memory_policy("tenant-acme", wanted)
    assert got.semantic_ttl_seconds == day
    assert svc.admin.get_memory_policy("tenant-acme").working_ttl_seconds == day


def test_10_get_memory(svc):
    m = svc.client("acme").get_memory("tenant-acme", state["memory_id"])
    assert m["id"] == state["memory_id"] and m["tags"] == ["roadmap"]
    with pytest.raises(AuthorizationError):
        svc.client("globex").get_memory("tenant-acme", state["memory_id"])


def test_11_update_memory(svc):
    c = svc.client("acme")
    updated = c.update_memory("tenant-acme", state["memory_id"], content="Acme Q3 roadmap: Omega slips to October",
                              importance=0.7, tags=["roadmap", "delay"])
    assert updated["content"].endswith("October") and updated["importance"] == 0.7
    hits = c.recall("tenant-acme", "Omega October").memories
    assert hits[0].id == state["memory_id"] and hits[0].content.endswith("October")


def test_12_sessions(svc):
    c = svc.client("acme")
    session = c.start_session("tenant-acme", metadata={"channel": "chat"})
    sid = session["id"]
    c.store_memory("tenant-acme", "The customer asked about SSO", session_id=sid, memory_type="episodic")
    in_session = c.session_memories(sid)
    assert [m["content"] for m in in_session] == ["The customer asked about SSO"]
    assert sid in [s["id"] for s in c.list_sessions(agent_id="tenant-acme")]
    ended = c.end_session(sid, summary="SSO question")
    assert ended["ended_at"] and ended["summary"] == "SSO question"
    assert c.get_session(sid)["memory_count"] == 1
    assert sid not in [s["id"] for s in c.list_sessions(agent_id="tenant-acme", active_only=True)]
    with pytest.raises(AuthorizationError):
        svc.client("globex").list_sessions(agent_id="tenant-acme")


def test_13_forget_one_memory(svc):
    c = svc.client("acme")
    c.forget("tenant-acme", state["memory_id"])
    with pytest.raises(NotFoundError) as e:
        c.get_memory("tenant-acme", state["memory_id"])
    assert e.value.code == ErrorCode.VECTOR_NOT_FOUND
    assert f"Memory not found: {state['memory_id']}" in str(e.value)


def test_14_batch_forget(svc, served):
    needs(served, "filters")
    c = svc.client("globex")
    c.store_memory("tenant-globex", "scratch note", tags=["scratch"])
    gone = c.batch_forget(BatchForgetRequest("tenant-globex", filter=BatchMemoryFilter(tags=["scratch"])))
    assert gone.deleted_count == 1
    assert [h.content for h in c.recall("tenant-globex", "roadmap Hammock").memories] == [
        "Globex roadmap: ship the Hammock in Q4"
    ]


def test_15_revoke_a_key(svc):
    svc.admin.delete_namespace_key("tenant-globex", svc.key_ids["globex"])
    with pytest.raises(AuthenticationError) as e:
        svc.client("globex").recall("tenant-globex", "roadmap")
    assert e.value.code == ErrorCode.AUTHENTICATION_REQUIRED
    assert "API key revoked" in str(e.value), str(e.value)
    assert svc.admin.list_namespace_keys("tenant-globex").keys == []


def test_16_delete_a_tenant(svc):
    svc.offboard("acme")
    with pytest.raises(NotFoundError) as e:
        svc.admin.get_namespace("tenant-acme")
    assert e.value.code == ErrorCode.NAMESPACE_NOT_FOUND
    assert str(e.value) == "[404] NAMESPACE_NOT_FOUND: Namespace not found: tenant-acme"
    assert "tenant-acme" not in {n.name for n in svc.admin.list_namespaces()}


def test_17_encryption_key_rotation_is_refused_without_echoing_the_key(svc):
    # Dakera's server-wide rotation sends key material; memsilo never takes it in a request.
    secret = "5ec12e7" * 9 + "f"  # 64 hex digits
    with pytest.raises(ValidationError) as refused:
        svc.admin.rotate_encryption_key(new_key=secret)
    assert refused.value.status_code == 400 and refused.value.code == ErrorCode.INVALID_REQUEST
    # The SDK's exception text carries the reason (the body's `error`, also its `details`).
    body = refused.value.response_body
    assert body["memsilo_error"] == "invalid_argument" and body["field"] == "route", body
    assert "never takes key material" in str(refused.value), str(refused.value)
    assert "/api/v1/tenants/{id}/rotate-key" in refused.value.details, body
    assert secret not in str(refused.value) and secret not in str(body)
