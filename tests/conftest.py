"""Shared fixtures: run a coroutine on the default asyncio loop and on uvloop."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, Awaitable, Callable

# RUDP_TEST_TREE=DIR: import rudp from DIR (a copy with the mypyc-compiled core,
# tests/compiled.py), ahead of the source tree pytest puts first on sys.path;
# PYTHONPATH carries it to the subprocesses the tests start.
_TREE = os.environ.get("RUDP_TEST_TREE")
if _TREE:
    sys.path.insert(0, _TREE)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (_TREE, os.environ.get("PYTHONPATH")) if p)

import pytest

from tests import compiled

if _TREE:
    _wrong = compiled.loaded_from_elsewhere(_TREE)
    if _wrong:
        raise pytest.UsageError(f"RUDP_TEST_TREE={_TREE} but these core modules are not its "
                                f"compiled ones: {_wrong}")

#: The compiled run (tests/compiled.py suite), started once tests/test_compiled.py
#: is collected, so it goes on while the rest of this session runs.
BACKGROUND = compiled.Background()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """tests/test_compiled.py waits for the compiled run: it goes last."""
    items.sort(key=lambda item: item.path.name == "test_compiled.py")


def pytest_collection_finish(session: pytest.Session) -> None:
    wanted = any(item.path.name == "test_compiled.py" and "against_the_compiled" in item.name
                 for item in session.items)
    if wanted and not _TREE and not session.config.option.collectonly:
        BACKGROUND.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    BACKGROUND.stop()

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
