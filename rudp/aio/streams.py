"""asyncio's streams on rudp: a StreamWriter whose ``start_tls`` works on every loop.

``asyncio.StreamWriter.start_tls`` calls ``loop.start_tls``, which uvloop
refuses for any transport but its own and the default loop accepts only for
its own kinds; this writer upgrades through ``rudp.aio.tls.start_tls``
instead, the same code on both loops (and on Python 3.10, whose writer has
no ``start_tls`` at all). The protocol subclass hands accepted connections
our writer and learns of the upgrade without asyncio's private hooks.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Callable

from . import tls


class StreamReaderProtocol(asyncio.StreamReaderProtocol):
    """asyncio's, with what ``StreamWriter.start_tls`` and accepted
    connections need, through public members of its own instead of asyncio's
    private hooks (``_replace_writer``, ``_replace_transport``)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any] | None = None,
        *,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.loop = loop
        self.user_callback = client_connected_cb
        #: The accepted connection's writer: kept while the connection lives,
        #: so a handler may drop its reference (as asyncio 3.11/3.12 keep theirs).
        self.writer: StreamWriter | None = None
        #: Upgraded by start_tls.
        self.over_tls = False
        #: The transport the application writes to (the TLS one once upgraded).
        self.app_transport: asyncio.BaseTransport | None = None
        super().__init__(reader, None if client_connected_cb is None else self.connected, loop=loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.app_transport = transport
        super().connection_made(transport)

    def connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        """asyncio's connection_made built ``writer``; the callback gets ours."""
        assert self.user_callback is not None
        self.writer = StreamWriter(writer.transport, self, reader, self.loop, server_side=True,
                                   origin=writer)
        return self.user_callback(reader, self.writer)

    def connection_lost(self, exc: Exception | None) -> None:
        """As asyncio's, which drops its transport and writer here; ours go
        too, so that nothing closes a loop of references through the
        transport: a finished connection's adapter objects are freed at once,
        not left to the cyclic garbage collector."""
        super().connection_lost(exc)
        self.app_transport = None
        self.writer = None

    def eof_received(self) -> bool:
        """As asyncio's: the writer stays open after the peer's EOF, as over
        TCP, also over TLS 1.3, where the peer's close_notify closes only its
        direction (RFC 8446 §6.1); over older TLS nothing is kept open."""
        keep_open = super().eof_received()
        if isinstance(self.app_transport, tls.TlsTransport):
            return self.app_transport.can_write_eof()
        return False if self.over_tls else bool(keep_open)


class StreamWriter(asyncio.StreamWriter):
    """``asyncio.StreamWriter`` plus a loop-independent ``start_tls``."""

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        protocol: StreamReaderProtocol,
        reader: asyncio.StreamReader | None,
        loop: asyncio.AbstractEventLoop,
        *,
        server_side: bool,
        origin: asyncio.StreamWriter | None = None,
    ) -> None:
        super().__init__(transport, protocol, reader, loop)
        self.protocol = protocol
        self.server_side = server_side
        # asyncio's own writer for an accepted connection: in recent Pythons a
        # collected StreamWriter closes its transport, so it lives as long as this one.
        self.origin = origin

    async def start_tls(
        self,
        sslcontext: ssl.SSLContext,
        *,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> None:
        """Upgrade the connection to TLS (STARTTLS); the server side is the
        one ``start_server`` accepted."""
        await self.drain()
        new_transport = await tls.start_tls(
            self.transport, self.protocol, sslcontext, server_side=self.server_side,
            server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        self._transport = new_transport  # what asyncio's start_tls does: the writer's methods use it
        self.protocol.over_tls = True
        self.protocol.app_transport = new_transport
