"""The UDP floor: asyncio streams over UDP that do nothing but the datagrams.

An anchor for the ping-pong and connection-rate benchmarks, not a transport.
A connection exchanges the datagrams rudp's does on a lossless path (client
SYN, server SYN-ACK, client ACK, the data, a FIN each way, the last ACK),
each a one-byte tag plus the payload, and hands them to the same asyncio
``StreamReaderProtocol``/``StreamWriter`` pair rudp's streams use. Nothing
else: no sequence numbers, no retransmission, no timers, no window, no
checks (an unexpected datagram is ignored). The client has a connected socket
of its own per connection, as rudp's has; the server one socket for all.

So whatever rudp costs beyond this is what reliability, the TCP state
machine and rudp's socket layer cost; and what this costs is the least any
stream transport written in Python on asyncio's datagram sockets can cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

SYN, SYN_ACK, ACK, DATA, FIN = b"S", b"T", b"A", b"D", b"F"
_SYN, _SYN_ACK, _ACK, _DATA, _FIN = SYN[0], SYN_ACK[0], ACK[0], DATA[0], FIN[0]
LIMIT = 2 ** 16  # asyncio's StreamReader limit

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class FloorTransport(asyncio.Transport):
    """One connection: ``write`` sends one datagram at once, ``close`` a FIN."""

    def __init__(self, send: Callable[[bytes], None], protocol: asyncio.Protocol,
                 extra: dict[str, Any]) -> None:
        super().__init__(extra)
        self._send = send
        self._protocol = protocol
        self._closing = False  # our FIN is sent
        self._fin_received = False
        self._lost = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing:
            self._send(DATA + data)

    def can_write_eof(self) -> bool:
        return False

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._send(FIN)

    def abort(self) -> None:
        self.close()
        self.lost()

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def received(self, data: bytes) -> bool:
        """One datagram of an open connection; True when the connection is over."""
        kind = data[0]
        if kind == _DATA:
            self._protocol.data_received(memoryview(data)[1:])  # type: ignore[arg-type]  # bytes-like
        elif kind == _FIN and not self._fin_received:
            self._fin_received = True
            if self._closing:  # ours was sent first: this FIN ends it, the peer gets the last ACK
                self._send(ACK)
                self._protocol.eof_received()
                self.lost()
                return True
            self._protocol.eof_received()  # half-closed; our close() sends the FIN
        elif kind == _ACK and self._closing and self._fin_received:
            self.lost()  # the last ACK, for our FIN
            return True
        return False

    def lost(self) -> None:
        if not self._lost:
            self._lost = True
            self._closing = True
            self._protocol.connection_lost(None)


class _ServerSocket(asyncio.DatagramProtocol):
    def __init__(self, handler: Handler, loop: asyncio.AbstractEventLoop) -> None:
        self.handler = handler
        self.loop = loop
        self.conns: dict[Any, FloorTransport] = {}
        self.half_open: set[Any] = set()  # SYN answered, no ACK yet

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not data:
            return
        conns = self.conns
        conn = conns.get(addr)
        if conn is not None:
            if conn.received(data):
                del conns[addr]
        elif addr in self.half_open:
            if data[0] == _ACK:
                self.half_open.discard(addr)
                reader = asyncio.StreamReader(limit=LIMIT, loop=self.loop)
                protocol = asyncio.StreamReaderProtocol(reader, self.handler, loop=self.loop)
                sendto = self.transport.sendto
                tr = FloorTransport(lambda d: sendto(d, addr), protocol, {"peername": addr})
                conns[addr] = tr
                protocol.connection_made(tr)
        elif data[0] == _SYN:
            self.half_open.add(addr)
            self.transport.sendto(SYN_ACK, addr)


class FloorServer:
    """What the benchmarks need of a server: its socket, and close()."""

    def __init__(self, transport: asyncio.DatagramTransport, sock: _ServerSocket) -> None:
        self._transport = transport
        self.sockets = [transport.get_extra_info("socket")]
        self.connections = sock.conns  # open ones, by peer address

    def close(self) -> None:
        self._transport.close()


async def start_floor_server(handler: Handler, host: str, port: int,
                             configure: Callable[[asyncio.BaseTransport], None] | None = None) -> FloorServer:
    loop = asyncio.get_running_loop()
    transport, sock = await loop.create_datagram_endpoint(lambda: _ServerSocket(handler, loop),
                                                          local_addr=(host, port))
    if configure is not None:
        configure(transport)
    return FloorServer(transport, sock)


class _ClientSocket(asyncio.DatagramProtocol):
    def __init__(self, protocol: asyncio.StreamReaderProtocol, loop: asyncio.AbstractEventLoop) -> None:
        self.protocol = protocol
        self.connected: asyncio.Future[FloorTransport] = loop.create_future()
        self.conn: FloorTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]
        self.transport.sendto(SYN)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not data:
            return
        if self.conn is None:
            if data[0] == _SYN_ACK and not self.connected.done():
                self.transport.sendto(ACK)
                self.conn = FloorTransport(self.transport.sendto, self.protocol, {"peername": addr})
                self.protocol.connection_made(self.conn)
                self.connected.set_result(self.conn)
        elif self.conn.received(data):
            self.transport.close()


async def open_floor_connection(host: str, port: int,
                                configure: Callable[[asyncio.BaseTransport], None] | None = None,
                                ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LIMIT, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, sock = await loop.create_datagram_endpoint(lambda: _ClientSocket(protocol, loop),
                                                          remote_addr=(host, port))
    if configure is not None:
        configure(transport)
    try:
        conn = await sock.connected
    except BaseException:
        transport.close()
        raise
    return reader, asyncio.StreamWriter(conn, protocol, reader, loop)
