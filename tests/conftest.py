"""Shared fixtures: run a coroutine on the default asyncio loop and on uvloop."""

from __future__ import annotations

import asyncio
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


@pytest.fixture
def run(loop_name: str) -> Callable[[Awaitable[Any]], Any]:
    """``run(coro)`` on the loop named by ``loop_name``, with a hard time bound."""

    def runner(coro: Awaitable[Any], timeout: float = 120.0) -> Any:
        async def bounded() -> Any:
            return await asyncio.wait_for(coro, timeout)

        factory = uvloop.new_event_loop if loop_name == "uvloop" else asyncio.new_event_loop
        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(bounded())

    return runner
