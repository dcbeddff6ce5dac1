"""``AsyncMemsilo``: the same methods as :class:`memsilo.Memsilo`, as coroutines.

Each call runs the synchronous method in a worker thread (``asyncio.to_thread``); the native
call releases the GIL, so concurrent calls really overlap::

    db = memsilo.aio.open("./data")
    await asyncio.gather(*[db.create_namespace(n) for n in names])
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Coroutine, Dict, Mapping, Optional, Sequence, TypeVar, Union, cast

from . import _native
from .client import ImportLines, Memsilo, _check_import, _LineItems
from .types import EmbeddingFunction

if TYPE_CHECKING:
    from typing_extensions import Concatenate, ParamSpec

    P = ParamSpec("P")
R = TypeVar("R")


def _to_async(
    method: Callable[Concatenate[Memsilo, P], R],
) -> Callable[Concatenate[AsyncMemsilo, P], Coroutine[Any, Any, R]]:
    async def run(self: AsyncMemsilo, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(method, self.sync, *args, **kwargs)

    run.__name__ = method.__name__
    run.__qualname__ = f"AsyncMemsilo.{method.__name__}"
    run.__doc__ = method.__doc__
    return run


class AsyncMemsilo:
    """A memsilo handle whose methods are coroutines. ``sync`` is the blocking handle behind it."""

    def __init__(self, sync: Memsilo) -> None:
        self.sync = sync

    def __repr__(self) -> str:
        return f"<memsilo.AsyncMemsilo {self.sync._client!r}>"

    async def scoped(self, api_key: str) -> AsyncMemsilo:
        """A handle acting as ``api_key``."""
        return AsyncMemsilo(await asyncio.to_thread(self.sync.scoped, api_key))

    async def export_namespace(self, namespace: str, page_size: int = 1000) -> AsyncIterator[Dict[str, Any]]:
        """The namespace as export lines, a page at a time (see ``Memsilo.export_namespace``)."""
        pages = self.sync.export_namespace(namespace, page_size)
        # A page's worth of lines a hop to the worker thread (one hop a line cost more than
        # the export itself).
        chunk = max(page_size, 1) if isinstance(page_size, int) else 1
        while True:
            lines = await asyncio.to_thread(lambda: list(itertools.islice(pages, chunk)))
            if not lines:
                return
            for line in lines:
                yield line

    async def import_namespace(
        self,
        namespace: str,
        lines: Union[ImportLines, AsyncIterable[Union[str, bytes, Mapping[str, Any]]]],
        batch_size: int = 1000,
    ) -> Dict[str, int]:
        """Imports export lines (see ``Memsilo.import_namespace``); ``lines`` may also be an
        async iterable, read here while the importer writes in a worker thread."""
        if not isinstance(lines, AsyncIterable):
            return await asyncio.to_thread(self.sync.import_namespace, namespace, lines, batch_size)
        _check_import(namespace, lines, batch_size)
        size = min(max(batch_size, 0), 1 << 32)  # out of range: the importer names batch_size
        importer = await asyncio.to_thread(self.sync._client.importer, namespace, size)
        items = _LineItems()
        async for line in lines:
            full = items.add(line)
            if full:
                await asyncio.to_thread(importer.feed_lines, full)
        await asyncio.to_thread(importer.feed_lines, items.rest())
        return cast(Dict[str, int], json.loads(await asyncio.to_thread(importer.finish)))

    whoami = _to_async(Memsilo.whoami)
    create_namespace = _to_async(Memsilo.create_namespace)
    list_namespaces = _to_async(Memsilo.list_namespaces)
    get_namespace = _to_async(Memsilo.get_namespace)
    delete_namespace = _to_async(Memsilo.delete_namespace)
    get_memory_policy = _to_async(Memsilo.get_memory_policy)
    set_memory_policy = _to_async(Memsilo.set_memory_policy)
    store_memory = _to_async(Memsilo.store_memory)
    store_memories = _to_async(Memsilo.store_memories)
    recall = _to_async(Memsilo.recall)
    get_memory = _to_async(Memsilo.get_memory)
    get_memories = _to_async(Memsilo.get_memories)
    update_memory = _to_async(Memsilo.update_memory)
    delete_memory = _to_async(Memsilo.delete_memory)
    batch_forget = _to_async(Memsilo.batch_forget)
    start_session = _to_async(Memsilo.start_session)
    end_session = _to_async(Memsilo.end_session)
    get_session = _to_async(Memsilo.get_session)
    list_sessions = _to_async(Memsilo.list_sessions)
    session_memories = _to_async(Memsilo.session_memories)
    list_memories = _to_async(Memsilo.list_memories)
    count_memories = _to_async(Memsilo.count_memories)
    create_tenant = _to_async(Memsilo.create_tenant)
    get_tenant = _to_async(Memsilo.get_tenant)
    list_tenants = _to_async(Memsilo.list_tenants)
    update_tenant = _to_async(Memsilo.update_tenant)
    delete_tenant = _to_async(Memsilo.delete_tenant)
    rotate_tenant_key = _to_async(Memsilo.rotate_tenant_key)
    get_key_rotation = _to_async(Memsilo.get_key_rotation)
    rotate_instance_key = _to_async(Memsilo.rotate_instance_key)
    get_instance_key_rotation = _to_async(Memsilo.get_instance_key_rotation)
    add_member = _to_async(Memsilo.add_member)
    list_members = _to_async(Memsilo.list_members)
    remove_member = _to_async(Memsilo.remove_member)
    create_key = _to_async(Memsilo.create_key)
    list_keys = _to_async(Memsilo.list_keys)
    revoke_key = _to_async(Memsilo.revoke_key)
    rotate_key = _to_async(Memsilo.rotate_key)
    list_audit = _to_async(Memsilo.list_audit)
    verify_audit = _to_async(Memsilo.verify_audit)
    add_entity = _to_async(Memsilo.add_entity)
    add_relation = _to_async(Memsilo.add_relation)
    get_entity = _to_async(Memsilo.get_entity)
    neighbors = _to_async(Memsilo.neighbors)
    subgraph = _to_async(Memsilo.subgraph)
    shortest_path = _to_async(Memsilo.shortest_path)
    delete_entity = _to_async(Memsilo.delete_entity)
    delete_relation = _to_async(Memsilo.delete_relation)


def open(
    path: Union[str, "os.PathLike[str]"],
    *,
    embedding_function: Optional[EmbeddingFunction] = None,
    keyring: Optional[Union[str, "os.PathLike[str]"]] = None,
) -> AsyncMemsilo:
    """Opens the data directory at ``path`` in this process (root principal); ``keyring`` as
    :func:`memsilo.open` takes it."""
    return AsyncMemsilo(
        Memsilo(_native.open(path, keyring), embedding_function=embedding_function)
    )


def connect(
    url: Union[str, Sequence[str]],
    api_key: str,
    *,
    embedding_function: Optional[EmbeddingFunction] = None,
) -> AsyncMemsilo:
    """Connects to a ``memsilo serve`` server at ``url`` (or a list of a cluster's servers,
    as :func:`memsilo.connect`) with ``api_key``."""
    urls = url if isinstance(url, str) else [str(u) for u in url]
    return AsyncMemsilo(Memsilo(_native.connect(urls, api_key), embedding_function=embedding_function))


__all__ = ["AsyncMemsilo", "connect", "open"]
