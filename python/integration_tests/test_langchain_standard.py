"""LangChain's published standard suites, unmodified, against MemsiloVectorStore and
MemsiloRetriever: each case gets an empty store over a fresh namespace, reached through a key
scoped to that namespace alone, in-process and through a real server."""

from __future__ import annotations

from typing import Any, Dict, Iterator, Type

import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import (
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)

from conftest import make_tenant, root_handle
from memsilo.integrations.langchain import MemsiloRetriever, MemsiloVectorStore


class TestMemsiloVectorStore(VectorStoreIntegrationTests):
    @pytest.fixture(params=["local", "remote"])
    def vectorstore(self, request: pytest.FixtureRequest) -> Iterator[VectorStore]:
        root = root_handle(request.param, request)
        tenant = make_tenant(root)
        try:
            yield MemsiloVectorStore(tenant.handle, tenant.namespace, self.get_embeddings())
        finally:
            root.delete_namespace(tenant.namespace)


_retriever_store: Dict[str, MemsiloVectorStore] = {}


class TestMemsiloRetriever(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> Type[MemsiloRetriever]:
        return MemsiloRetriever

    @property
    def retriever_constructor_params(self) -> Dict[str, Any]:
        return {"vectorstore": _retriever_store["store"]}

    @property
    def retriever_query_example(self) -> str:
        return "what does the fox eat"

    @pytest.fixture(autouse=True, params=["local", "remote"])
    def _store(self, request: pytest.FixtureRequest) -> Iterator[None]:
        root = root_handle(request.param, request)
        tenant = make_tenant(root)
        store = MemsiloVectorStore(
            tenant.handle, tenant.namespace, VectorStoreIntegrationTests.get_embeddings()
        )
        store.add_documents(
            [
                Document(page_content=text, metadata={"n": i})
                for i, text in enumerate(
                    ["the fox eats berries", "the owl eats mice", "the cat sleeps", "rain"]
                )
            ]
        )
        _retriever_store["store"] = store
        try:
            yield
        finally:
            _retriever_store.pop("store", None)
            root.delete_namespace(tenant.namespace)
