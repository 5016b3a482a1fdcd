"""Helpers shared by the rudp examples: event loop choice, signals, keep-alive.

Reading stdin is `rudp.tools.stdio.StdinReader`, shared with the ``rudp`` command line.

The examples import this module as ``_common``: run them as scripts
(``python examples/chat_server.py``), which puts this directory on sys.path.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")

LOOPS = ("auto", "uvloop", "asyncio")


def add_loop_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default="auto",
        help="event loop: uvloop when importable (auto, the default), or force one",
    )


def loop_factory(name: str) -> Any:
    """The event loop factory for ``--loop NAME``; None means asyncio's default."""
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise SystemExit("--loop uvloop: uvloop is not installed")
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], loop: str = "auto") -> T:
    """asyncio.run on the chosen loop (asyncio.Runner on 3.11+).

    Ctrl-C cancels ``main`` (its ``finally`` blocks run, so connections are
    closed) and exits with status 130 instead of a traceback.
    """
    factory = loop_factory(loop)
    main = _exposed(main)
    try:
        if factory is None:
            return asyncio.run(main)
        if sys.version_info >= (3, 11):
            with asyncio.Runner(loop_factory=factory) as runner:
                return runner.run(main)
        import uvloop  # Python 3.10: no Runner, install the policy instead

        uvloop.install()
        return asyncio.run(main)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        raise SystemExit(130) from None


async def _exposed(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` with this process's connections listed by ``rudp ss``."""
    from rudp.aio import introspect

    introspect.expose_or_warn()
    return await main


def loop_name() -> str:
    loop = asyncio.get_running_loop()
    mod = type(loop).__module__
    return "uvloop" if mod.startswith("uvloop") else "asyncio"


def server_address(server: Any) -> str:
    """'host:port' of the first socket of an rudp Server (port 0 resolved)."""
    host, port = server.sockets[0].getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def until_signalled() -> str:
    """Return the name of the first SIGINT/SIGTERM received (Ctrl-C, kill).

    From then on both signals are ignored, for good: the graceful shutdown that
    follows is bounded in time, and a repeated signal must not kill it half-way
    - nor after the loop has closed, when asyncio would have put the default
    action back. (`timeout CMD`, for one, delivers the signal it relays more
    than once.) The signals are blocked while the handlers are swapped, and
    setting SIG_IGN discards one already pending.
    """
    import signal

    loop = asyncio.get_running_loop()
    fut: asyncio.Future[str] = loop.create_future()
    sigs = (signal.SIGINT, signal.SIGTERM)
    for sig in sigs:
        loop.add_signal_handler(sig, lambda s=sig: fut.done() or fut.set_result(s.name))
    try:
        return await fut
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
        try:
            for sig in sigs:
                loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_IGN)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, sigs)


async def close_server(server: Any, grace: float = 5.0) -> None:
    """Close a server after a signal: connections get ``grace`` seconds to
    finish their exchange (FINs), then the stragglers are reset."""
    server.close()
    try:
        await asyncio.wait_for(server.wait_closed(), grace)
    except asyncio.TimeoutError:
        server.abort_clients()
        await asyncio.wait_for(server.wait_closed(), grace)


def add_keepalive_argument(parser: argparse.ArgumentParser, default: float) -> None:
    parser.add_argument(
        "--keepalive", type=float, default=default, metavar="SECS",
        help=f"send keep-alive probes after SECS idle (default {default:g}; 0 = off): keeps NAT "
             "mappings alive and notices a vanished peer",
    )


def keepalive_options(secs: float) -> dict[str, Any]:
    """rudp options for ``--keepalive SECS``: probe after SECS idle, give up after ~6 probes."""
    if secs <= 0:
        return {}
    interval = max(1.0, secs / 5)
    return {"keepalive": True, "keepalive_idle": secs, "keepalive_interval": interval, "keepalive_count": 6}
