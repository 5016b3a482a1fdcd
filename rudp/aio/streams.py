"""asyncio's streams on rudp: a StreamWriter whose ``start_tls`` works on every loop.

``asyncio.StreamWriter.start_tls`` calls ``loop.start_tls``, which uvloop
refuses for any transport but its own and the default loop accepts only for
its own kinds; this writer upgrades through ``rudp.aio.tls.start_tls``
instead, the same code on both loops (and on Python 3.10, whose writer has
no ``start_tls`` at all).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Callable

from . import tls


class StreamWriter(asyncio.StreamWriter):
    """``asyncio.StreamWriter`` plus a loop-independent ``start_tls``."""

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        protocol: asyncio.StreamReaderProtocol,
        reader: asyncio.StreamReader | None,
        loop: asyncio.AbstractEventLoop,
        *,
        server_side: bool,
        origin: asyncio.StreamWriter | None = None,
    ) -> None:
        super().__init__(transport, protocol, reader, loop)
        self._rudp_protocol = protocol
        self._server_side = server_side
        # asyncio's own writer for an accepted connection: in recent Pythons a
        # collected StreamWriter closes its transport, so it lives as long as this one.
        self._origin = origin

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
        protocol = self._rudp_protocol
        await self.drain()
        new_transport = await tls.start_tls(
            self.transport, protocol, sslcontext, server_side=self._server_side,
            server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout)
        self._transport = new_transport
        # The protocol learns it is over TLS (no half-close) as asyncio's
        # start_tls tells it: _replace_transport from 3.13, _replace_writer before.
        if hasattr(protocol, "_replace_transport"):
            protocol._replace_transport(new_transport)
        elif hasattr(protocol, "_replace_writer"):
            protocol._replace_writer(self)


def server_stream_protocol(
    client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
    limit: int,
    loop: asyncio.AbstractEventLoop,
) -> asyncio.StreamReaderProtocol:
    """A StreamReaderProtocol for one accepted connection whose callback gets
    our StreamWriter (asyncio's connection_made builds its own)."""
    reader = asyncio.StreamReader(limit=limit, loop=loop)

    def connected(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> Any:
        ours = StreamWriter(w.transport, protocol, r, loop, server_side=True, origin=w)
        if hasattr(protocol, "_replace_writer"):
            # 3.11/3.12 keep the writer they hand out (a handler may drop
            # its own): ours takes its place. 3.13 keeps none.
            protocol._replace_writer(ours)
        return client_connected_cb(r, ours)

    protocol = asyncio.StreamReaderProtocol(reader, connected, loop=loop)
    return protocol
