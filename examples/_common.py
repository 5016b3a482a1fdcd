"""Helpers shared by the rudp examples: event loop choice, signals, stdin.

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


def _pollable(fd: int) -> bool:
    """True for what an event loop can watch: pipes, FIFOs, sockets, terminals.

    Other character devices (/dev/null) and regular files are refused by
    epoll, and the loops report that late (asyncio) or not at all (uvloop).
    """
    import os
    import stat

    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)


class StdinReader:
    """Read stdin from asyncio without blocking the event loop.

    Pipes, FIFOs, sockets and terminals go through ``loop.connect_read_pipe``
    (a terminal is reopened by name first, so that the O_NONBLOCK flag the pipe
    transport sets does not leak to the shell or to stdout, which share the
    terminal's file description). Anything the loop cannot watch (a regular
    file, /dev/null under epoll) falls back to a daemon thread doing blocking
    reads: a daemon thread, not ``run_in_executor``, because an executor thread
    stuck in ``read()`` would keep the interpreter from exiting when the other
    side ends the session first.
    """

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.mode = ""
        self._transport: asyncio.BaseTransport | None = None
        self._file: Any = None
        self._restore_blocking: int | None = None

    async def open(self, stream: Any = None) -> asyncio.StreamReader:
        import os

        loop = asyncio.get_running_loop()
        stream = sys.stdin if stream is None else stream
        reader = asyncio.StreamReader(limit=1 << 20)
        self.reader = reader
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is not None and _pollable(fd):
            try:
                if os.isatty(fd):
                    self._file = open(os.ttyname(fd), "rb", buffering=0)  # noqa: SIM115
                    pipe = self._file
                    self.mode = "tty"
                else:
                    # A dup shares the file description: put O_NONBLOCK back on close.
                    if os.get_blocking(fd):
                        self._restore_blocking = fd
                    pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
                    self._file = pipe
                    self.mode = "pipe"
                protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
                self._transport, _ = await loop.connect_read_pipe(lambda: protocol, pipe)
                return reader
            except (OSError, ValueError, NotImplementedError):
                if self._file is not None:
                    self._file.close()
                    self._file = None
                self._unblock()
        self.mode = "thread"
        self._start_thread(loop, reader, stream)
        return reader

    @staticmethod
    def _start_thread(loop: asyncio.AbstractEventLoop, reader: asyncio.StreamReader, stream: Any) -> None:
        import threading

        source = getattr(stream, "buffer", stream)

        def pump() -> None:
            try:
                while True:
                    line = source.readline()
                    if not line:
                        break
                    loop.call_soon_threadsafe(reader.feed_data, line)
            except (OSError, ValueError):
                pass
            finally:
                try:
                    loop.call_soon_threadsafe(reader.feed_eof)
                except RuntimeError:  # the loop is already closed
                    pass

        threading.Thread(target=pump, name="stdin-reader", daemon=True).start()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        # the transport closes the file object (and so only our dup/reopened fd)
        self._file = None
        self._unblock()

    def _unblock(self) -> None:
        import os

        fd, self._restore_blocking = self._restore_blocking, None
        if fd is not None:
            try:
                os.set_blocking(fd, True)
            except OSError:
                pass


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
