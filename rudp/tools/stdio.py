"""Read stdin from asyncio without blocking the loop, and leave the terminal as found.

Used by the command line (``rudp connect``/``rudp listen``) and the examples.
A tools-layer module: nothing in the engine or the adapter depends on it.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import threading
from typing import Any

__all__ = ["StdinReader"]

_CHUNK = 64 * 1024  # what the fallback thread reads at a time


def _pollable(fd: int) -> bool:
    """True for what an event loop can watch: pipes, FIFOs, sockets, terminals.

    Other character devices (/dev/null) and regular files are refused by
    epoll, and the loops report that late (asyncio) or not at all (uvloop).
    """
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
    terminal's file description; a pipe is read through a dup of stdin, which
    shares its flags, and `close` makes it blocking again). Anything the loop cannot watch (a regular file,
    /dev/null under epoll) falls back to a daemon thread doing blocking reads:
    a daemon thread, not ``run_in_executor``, because an executor thread stuck
    in ``read()`` would keep the interpreter from exiting when the other side
    ends the session first.

    Call `close` when done (also after EOF): it restores the blocking flag.
    """

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.mode = ""
        self._transport: asyncio.BaseTransport | None = None
        self._file: Any = None
        self._restore_blocking: int | None = None

    async def open(self, stream: Any = None) -> asyncio.StreamReader:
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
        self._start_thread(loop, reader, stream, fd)
        return reader

    @staticmethod
    def _start_thread(
        loop: asyncio.AbstractEventLoop, reader: asyncio.StreamReader, stream: Any, fd: int | None
    ) -> None:
        def read() -> bytes:
            # Whatever one read returns: data without newlines (or an endless
            # device such as /dev/zero) flows in pieces.
            if fd is not None:
                # os.read, not sys.stdin.buffer: a daemon thread blocked in a
                # BufferedReader holds its lock, and the interpreter aborts
                # ("could not acquire lock ... at interpreter shutdown") at exit.
                return os.read(fd, _CHUNK)
            source = getattr(stream, "buffer", stream)
            return source.read1(_CHUNK) if hasattr(source, "read1") else source.read(_CHUNK)

        def pump() -> None:
            try:
                while data := read():
                    loop.call_soon_threadsafe(reader.feed_data, data)
            except (AttributeError, OSError, ValueError):  # AttributeError: no stdin at all (None)
                pass
            except RuntimeError:  # the loop is closed: nobody is reading any more
                return
            try:
                loop.call_soon_threadsafe(reader.feed_eof)
            except RuntimeError:
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
        fd, self._restore_blocking = self._restore_blocking, None
        if fd is not None:
            try:
                os.set_blocking(fd, True)
            except OSError:
                pass
