"""memsilo: a multi-tenant memory store for AI applications.

The same engine in-process (``memsilo.open``) or behind ``memsilo serve`` (``memsilo.connect``),
with the same operations, results and errors either way::

    import memsilo
    db = memsilo.open("./data")                                      # in-process, root
    db = memsilo.connect("http://127.0.0.1:3300", api_key="msk_...")  # remote
    db.create_namespace("tenant-acme")
    db.store_memory("tenant-acme", "Q3 roadmap: launch Omega", importance=0.9)
    db.recall("tenant-acme", "product roadmap", top_k=5)

Errors are :class:`MemsiloError` subclasses, one per code (``.code``, ``.status``, ``.message``).
"""

from __future__ import annotations

import os
from typing import Optional, Union

from . import _native, aio, types
from ._native import (
    ConflictError,
    ForbiddenError,
    InternalError,
    InvalidArgumentError,
    MemsiloError,
    NotFoundError,
    PayloadTooLargeError,
    QuotaExceededError,
    RateLimitedError,
    UnauthorizedError,
)
from .aio import AsyncMemsilo
from .client import Memsilo
from .types import EmbeddingFunction

__version__ = "0.1.0"


def open(
    path: Union[str, "os.PathLike[str]"],
    *,
    embedding_function: Optional[EmbeddingFunction] = None,
) -> Memsilo:
    """Opens (creating if needed) the data directory at ``path`` in this process, as root.

    Opening one path twice in a process shares one engine. LMDB must not cross ``fork()``: in
    a forked child, inherited handles and ``open`` of a path the parent has open raise
    :class:`InternalError` (use ``multiprocessing``'s ``spawn`` start method for workers).
    ``embedding_function`` (``list[str] -> list[vector]``) embeds stored content and text
    queries in Python instead of the engine's built-in embedder.
    """
    return Memsilo(_native.open(path), embedding_function=embedding_function)


def connect(
    url: str, api_key: str, *, embedding_function: Optional[EmbeddingFunction] = None
) -> Memsilo:
    """Connects to a ``memsilo serve`` server at ``url`` (e.g. ``http://127.0.0.1:3300``)."""
    return Memsilo(_native.connect(url, api_key), embedding_function=embedding_function)


__all__ = [
    "AsyncMemsilo",
    "ConflictError",
    "EmbeddingFunction",
    "ForbiddenError",
    "InternalError",
    "InvalidArgumentError",
    "Memsilo",
    "MemsiloError",
    "NotFoundError",
    "PayloadTooLargeError",
    "QuotaExceededError",
    "RateLimitedError",
    "UnauthorizedError",
    "aio",
    "connect",
    "open",
    "types",
]
