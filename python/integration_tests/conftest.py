"""Fixtures of the framework suites: a root handle in each mode (in-process, and a real
``python -m memsilo serve``), and tenants whose adapters are built from scoped keys."""

from __future__ import annotations

import importlib.util
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

import memsilo

# The package's own test fixtures start the server; load them under another module name.
_spec = importlib.util.spec_from_file_location(
    "memsilo_package_tests_conftest", Path(__file__).parents[1] / "tests" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_package_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_package_tests)
Server = _package_tests.Server
ADMIN_KEY = _package_tests.ADMIN_KEY

# potion-base-8M (model2vec format), fetched by `make test-integrations` (see the Makefile).
MODEL_DIR = Path(
    os.environ.get(
        "MEMSILO_TEST_MODEL2VEC",
        Path(__file__).parents[2] / "target" / "models" / "potion-base-8M",
    )
)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@dataclass
class Tenant:
    """A namespace and a handle acting as a key scoped to it (write access)."""

    namespace: str
    handle: memsilo.Memsilo


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    srv = Server(tmp_path_factory.mktemp("server-data"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def local_root(tmp_path_factory: pytest.TempPathFactory) -> memsilo.Memsilo:
    return memsilo.open(tmp_path_factory.mktemp("local-data"))


def root_handle(mode: str, request: pytest.FixtureRequest) -> memsilo.Memsilo:
    if mode == "local":
        return request.getfixturevalue("local_root")  # type: ignore[no-any-return]
    srv = request.getfixturevalue("server")
    return memsilo.connect(srv.url, ADMIN_KEY)


@pytest.fixture(params=["local", "remote"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def root(mode: str, request: pytest.FixtureRequest) -> memsilo.Memsilo:
    return root_handle(mode, request)


def make_tenant(root: memsilo.Memsilo) -> Tenant:
    """A fresh namespace and a handle on a key scoped to it alone."""
    name = unique("tenant")
    root.create_namespace(name)
    key = root.create_key(name + "_key", namespaces=[(name, "write")])
    return Tenant(name, root.scoped(key["key"]))


@pytest.fixture
def new_tenant(root: memsilo.Memsilo) -> Iterator[Callable[[], Tenant]]:
    made: List[str] = []

    def make() -> Tenant:
        tenant = make_tenant(root)
        made.append(tenant.namespace)
        return tenant

    yield make
    for name in made:
        root.delete_namespace(name)


@pytest.fixture
def tenant(new_tenant: Callable[[], Tenant]) -> Tenant:
    return new_tenant()


@pytest.fixture(scope="session")
def model2vec_embeddings() -> Any:
    """A real embedder (potion-base-8M, 256-d static embeddings) as LangChain ``Embeddings``."""
    if not (MODEL_DIR / "model.safetensors").exists():
        pytest.fail(f"model files missing in {MODEL_DIR}: run `make test-integrations`")
    from langchain_core.embeddings import Embeddings
    from model2vec import StaticModel

    model = StaticModel.from_pretrained(str(MODEL_DIR))

    class Model2VecEmbeddings(Embeddings):
        def embed_documents(self, texts: List[str]) -> List[List[float]]:
            return [list(map(float, v)) for v in model.encode(list(texts))]

        def embed_query(self, text: str) -> List[float]:
            return self.embed_documents([text])[0]

    return Model2VecEmbeddings()
