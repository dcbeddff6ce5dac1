"""Every operation of the core's table has a method, blocking and async (the test Node and Go
have): a new operation fails here until Python covers it."""

from __future__ import annotations

import inspect

import memsilo
from memsilo import _native


def test_every_core_operation_has_a_sync_and_an_async_method() -> None:
    assert len(_native.OPERATIONS) >= 30
    missing_sync = [op for op in _native.OPERATIONS if not callable(getattr(memsilo.Memsilo, op, None))]
    assert missing_sync == []
    missing_async = [
        op
        for op in _native.OPERATIONS
        if not (
            inspect.iscoroutinefunction(getattr(memsilo.AsyncMemsilo, op, None))
            or inspect.isasyncgenfunction(getattr(memsilo.AsyncMemsilo, op, None))
        )
    ]
    assert missing_async == []
