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
from typing import Optional, Sequence, Union

from . import _native, aio, types
from ._native import (
    ConflictError,
    ForbiddenError,
    InternalError,
    InvalidArgumentError,
    MemsiloError,
    MethodNotAllowedError,
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
    keyring: Optional[Union[str, "os.PathLike[str]"]] = None,
) -> Memsilo:
    """Opens (creating if needed) the data directory at ``path`` in this process, as root.

    Opening one path twice in a process shares one engine. LMDB must not cross ``fork()``: in
    a forked child, inherited handles and ``open`` of a path the parent has open raise
    :class:`InternalError` (use ``multiprocessing``'s ``spawn`` start method for workers).
    ``embedding_function`` (``list[str] -> list[vector]``) embeds stored content and text
    queries in Python instead of the engine's built-in embedder. ``keyring`` is where
    encryption keys are kept (tenants' own keys): a directory outside the data directory, or
    ``"env:"`` for ``MEMSILO_KEY_<ID>`` variables; default the ``MEMSILO_KEYRING`` setting.
    """
    return Memsilo(_native.open(path, keyring), embedding_function=embedding_function)


def connect(
    url: Union[str, Sequence[str]],
    api_key: str,
    *,
    embedding_function: Optional[EmbeddingFunction] = None,
) -> Memsilo:
    """Connects to a ``memsilo serve`` server at ``url`` (e.g. ``http://127.0.0.1:3300``).

    ``url`` may be a list of the servers of one cluster: calls go to one of them and move to
    the next when it cannot be reached or answers 503, for reads and for stores with
    caller-chosen ids; any other write is never sent twice. A bad entry is
    :class:`InvalidArgumentError` naming ``urls[i]``.
    """
    urls = url if isinstance(url, str) else [str(u) for u in url]
    return Memsilo(_native.connect(urls, api_key), embedding_function=embedding_function)


__all__ = [
    "AsyncMemsilo",
    "ConflictError",
    "EmbeddingFunction",
    "ForbiddenError",
    "InternalError",
    "InvalidArgumentError",
    "Memsilo",
    "MemsiloError",
    "MethodNotAllowedError",
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
