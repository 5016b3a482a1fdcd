"""Shared fixtures: run a coroutine on the default asyncio loop and on uvloop."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Awaitable, Callable

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
    uvloop = None  # type: ignore[assignment]

LOOPS = ["asyncio", "uvloop"]


@pytest.fixture(params=LOOPS)
def loop_name(request: pytest.FixtureRequest) -> str:
    if request.param == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed")
    return str(request.param)


def run_on(loop_name: str, coro: Awaitable[Any], timeout: float) -> Any:
    """Run ``coro`` on a fresh loop of the named kind, bounded by ``timeout``."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    factory = uvloop.new_event_loop if loop_name == "uvloop" else asyncio.new_event_loop
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(bounded())
    loop = factory()  # pragma: no cover - Python 3.10 has no asyncio.Runner
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(bounded())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


@pytest.fixture
def run(loop_name: str) -> Callable[..., Any]:
    """``run(coro, timeout=120)`` on the loop named by ``loop_name``."""

    def runner(coro: Awaitable[Any], timeout: float = 120.0) -> Any:
        return run_on(loop_name, coro, timeout)

    return runner
