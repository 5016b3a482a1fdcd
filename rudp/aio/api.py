"""asyncio adapter: one DatagramProtocol per UDP socket drives a sans-IO Endpoint.

The adapter only moves bytes and keeps one timer per socket; every protocol
decision lives in ``rudp.core.endpoint`` and ``rudp.core.connection``. Each connection
is exposed as an ``asyncio.Transport`` whose flow control follows
``asyncio.selector_events``: ``pause_writing``/``resume_writing`` around a
high/low water mark, ``pause_reading`` stops reading so the advertised window
closes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import random
import socket
from typing import Any, Callable, Hashable

from ..core import events
from ..core.config import Config
from ..core.connection import Connection, ConnectionStateError, State
from ..core.endpoint import Endpoint, Listener
from .udpio import UdpSocket, open_socket

Address = Hashable

#: Adapter options accepted next to the Config fields.
_ADAPTER_OPTIONS = ("send_buffer", "connect_timeout", "gso")
_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(Config))
_SOCKET_BUFFER = 4 << 20
logger = logging.getLogger("rudp")


def _log_state(conn: Connection, old: State, new: State) -> None:
    logger.debug(
        "%s:%s port %s->%s: %s -> %s",
        *conn.addr, conn.local_port, conn.remote_port, old.value, new.value,  # type: ignore[misc]
    )


def split_options(options: dict[str, Any]) -> tuple[Config, dict[str, Any]]:
    """Keyword options -> (Config, adapter options); unknown names are a TypeError."""
    unknown = set(options) - _CONFIG_FIELDS - set(_ADAPTER_OPTIONS)
    if unknown:
        raise TypeError(f"unexpected rudp option(s): {', '.join(sorted(unknown))}")
    config = Config(**{k: v for k, v in options.items() if k in _CONFIG_FIELDS})
    adapter = {k: v for k, v in options.items() if k in _ADAPTER_OPTIONS}
    send_buffer = adapter.setdefault("send_buffer", 1 << 20)
    if not isinstance(send_buffer, int) or send_buffer < 0:
        raise ValueError(f"send_buffer must be a non-negative int, got {send_buffer!r}")
    if not isinstance(adapter.setdefault("gso", False), bool):
        raise TypeError(f"gso must be a bool, got {adapter['gso']!r}")
    timeout = adapter.setdefault("connect_timeout", 30.0)
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"connect_timeout must be a positive number or None, got {timeout!r}")
    return config, adapter


def _norm(addr: Any) -> Address:
    """(host, port) for both families; IPv6 flow info and scope are not part of the key."""
    return (addr[0], addr[1])


class RudpTransport(asyncio.Transport):
    """One rudp connection as an asyncio Transport."""

    # Slotted, like asyncio's own transports' base class: one per connection.
    __slots__ = (
        "_closed_future", "_closing", "_conn", "_eof_delivered", "_eof_written", "_high",
        "_lost", "_lost_pending", "_low", "_owner", "_protocol", "_reading_paused",
        "_send_buffer", "_writing_paused",
        "__weakref__",
    )

    def __init__(
        self,
        owner: EndpointProtocol,
        conn: Connection,
        protocol: asyncio.BaseProtocol,
        send_buffer: int,
    ) -> None:
        super().__init__()
        self._owner = owner
        self._conn = conn
        self._protocol = protocol
        self._send_buffer = send_buffer
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._writing_paused = False
        self._reading_paused = False
        self._closing = False
        self._lost = False
        self._eof_delivered = False
        self._eof_written = False
        self._lost_pending = False
        self._closed_future: asyncio.Future[None] = owner.loop.create_future()

    # -- asyncio.BaseTransport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        conn = self._conn
        if name == "peername":
            return conn.addr
        if name == "sockname":
            return self._owner.sockname
        if name == "socket":
            return self._owner.socket
        if name == "stats":
            return conn.stats.as_dict()
        if name == "connection":
            return conn
        if name == "ports":
            return (conn.local_port, conn.remote_port)
        return default

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def close(self) -> None:
        """Graceful close: queued data first, then FIN (RFC 9293 §3.10.4)."""
        if self._closing or self._lost:
            return
        self._closing = True
        self._conn.close()
        self._owner.kick()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    # -- asyncio.ReadTransport

    def is_reading(self) -> bool:
        return not self._reading_paused and not self._lost

    def pause_reading(self) -> None:
        """Stop delivering data; the receive buffer fills and the window closes."""
        self._reading_paused = True

    def resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            self._owner.loop.call_soon(self._deliver)

    # -- asyncio.WriteTransport

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._check_pause()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def get_write_buffer_size(self) -> int:
        """Bytes beyond the connection's send buffer (what SO_SNDBUF would hold)."""
        return max(0, self._conn.send_buffer_size - self._send_buffer)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self._eof_written:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._lost or self._closing:
            return  # asyncio silently drops writes on a closing transport
        if not data:
            return
        try:
            self._conn.send(data)
        except ConnectionStateError as exc:
            raise RuntimeError(str(exc)) from None
        # Like a socket's send(): segments leave now (Nagle and the windows
        # still decide how many), not one loop iteration later.
        self._owner.flush_now()
        self._check_pause()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        """Half-close: FIN after queued data; reading goes on."""
        if self._eof_written or self._lost:
            return
        self._eof_written = True
        self._conn.shutdown()
        self._owner.kick()

    def can_write_eof(self) -> bool:
        return True

    def abort(self) -> None:
        """Abortive close: RST, queued data discarded (RFC 9293 §3.10.5)."""
        if self._lost:
            return
        self._closing = True
        self._conn.abort()
        self._owner.kick()
        self._connection_lost(None, now=True)

    # -- driven by EndpointProtocol

    def _check_pause(self) -> None:
        """pause_writing above the high-water mark, resume_writing at or below
        the low one (the contract of asyncio's _FlowControlMixin)."""
        size = self.get_write_buffer_size()
        if not self._writing_paused and size > self._high:
            self._writing_paused = True
            self._owner.paused_writers[self] = None
            self._call_protocol("pause_writing")
        elif self._writing_paused and size <= self._low:
            self._writing_paused = False
            self._owner.paused_writers.pop(self, None)
            self._call_protocol("resume_writing")

    def _call_protocol(self, name: str) -> None:
        try:
            getattr(self._protocol, name)()
        except Exception as exc:  # user code must not break the engine pump
            self._owner.loop.call_exception_handler(
                {"message": f"protocol.{name}() failed", "exception": exc,
                 "transport": self, "protocol": self._protocol}
            )

    def _deliver(self) -> None:
        """Hand in-order data, then EOF, to the protocol unless reading is paused."""
        if self._lost or self._reading_paused:
            return
        conn = self._conn
        proto = self._protocol
        while conn.readable and not self._reading_paused:
            data = conn.read()
            proto.data_received(data)  # type: ignore[attr-defined]
        if conn.at_eof and not self._eof_delivered and not self._reading_paused:
            self._eof_delivered = True
            keep_open = proto.eof_received()  # type: ignore[attr-defined]
            if not keep_open:
                self.close()
        if self._lost_pending and not self._undelivered():
            self._lost_pending = False
            self._connection_lost(None)
        owner = self._owner
        if not owner._flushing and owner.endpoint.has_work:
            owner.kick()  # reading reopened the window: announce it

    def _undelivered(self) -> bool:
        """Received bytes or an EOF the protocol has not been given yet."""
        conn = self._conn
        return bool(conn.readable) or (conn.at_eof and not self._eof_delivered)

    def _connection_lost(self, exc: Exception | None, *, now: bool = False) -> None:
        if self._lost:
            return
        if exc is None and not now and self._undelivered():
            # A clean end while reading is paused: every received byte (and
            # the EOF) still reaches the protocol first, then connection_lost.
            self._lost_pending = True
            return
        self._lost = True
        self._closing = True
        self._owner.paused_writers.pop(self, None)
        self._owner._forget(self._conn)
        if not self._closed_future.done():
            self._closed_future.set_result(None)
        self._owner.loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: Exception | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._owner.connection_done(self)

    def __repr__(self) -> str:
        return f"<RudpTransport {self._conn!r}>"


class EndpointProtocol:
    """Drives one Endpoint from one UDP socket; shared by its connections.

    Reads drain the socket and sends go out in GSO batches (``rudp.aio.udpio``):
    one engine flush per batch, which also coalesces ACKs and window updates.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        config: Config,
        sock: socket.socket,
        *,
        own: bool,
        gso: bool = False,
    ) -> None:
        self.loop = loop
        self.endpoint = Endpoint(config, rng=random.SystemRandom())
        self.config = config
        self.socket = sock
        self.sockname: Any = sock.getsockname()
        # Close the socket once no connection needs it any more (a client's
        # private socket from the start; a server's once it is closed).
        self.close_when_idle = own
        self._own = own
        self._linger_until: float | None = None
        self._transports: dict[Connection, RudpTransport] = {}
        # Transports whose writers wait in drain(): checked after each pump, so
        # that the check costs nothing per idle connection.
        self.paused_writers: dict[RudpTransport, None] = {}
        self._connecting: dict[Connection, asyncio.Future[None]] = {}
        self._servers: dict[Listener, Server] = {}
        self._kicked = False
        self._flushing = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = loop.create_future()
        if logger.isEnabledFor(logging.DEBUG):
            self.endpoint.on_state_change = _log_state  # --verbose; off the hot path otherwise
        # IPv4 addresses arrive as the (host, port) keys the endpoint uses, so
        # datagrams go straight to it; IPv6 ones lose flow info and scope first.
        receive = (
            self.endpoint.datagrams_received if sock.family == socket.AF_INET
            else self._datagrams_received
        )
        self.udp = UdpSocket(
            loop, sock, receive, self._flush, self.error_received,
            self._socket_closed, gso=gso,
        )
        self._peer = self.udp.peer

    def _datagrams_received(self, batch: list[tuple[bytes, Any]], now: float) -> None:
        self.endpoint.datagrams_received([(data, (a[0], a[1])) for data, a in batch], now)

    def error_received(self, exc: Exception) -> None:
        """ICMP port unreachable on a connected socket is a hard error (RFC 1122
        §4.2.3.9): connects are refused and established connections end."""
        if not isinstance(exc, ConnectionRefusedError) or self._peer is None:
            return
        self.endpoint.counters["icmp_refused"] += 1
        for conn, fut in list(self._connecting.items()):
            if not fut.done():
                fut.set_exception(
                    ConnectionRefusedError(f"connection to {conn.addr} refused (port unreachable)")
                )
            conn.abort()
        for conn, tr in list(self._transports.items()):
            # A user who closed and whose data was all acknowledged lost
            # nothing: only our FIN's ACK is missing, so the close is clean.
            clean = tr._closing and conn.send_buffer_size == 0
            conn.abort()
            tr._connection_lost(None if clean else ConnectionResetError("peer unreachable"))
        self.kick()

    def _socket_closed(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        err = ConnectionAbortedError("the UDP socket was closed")
        for fut in self._connecting.values():
            if not fut.done():
                fut.set_exception(err)
        for tr in list(self._transports.values()):
            tr._connection_lost(err)
        if not self._closed.done():
            self._closed.set_result(None)

    # -- the engine pump

    def kick(self) -> None:
        """Schedule one flush for this loop iteration (coalesces ACKs and writes)."""
        if not self._kicked:
            self._kicked = True
            self.loop.call_soon(self._flush)

    def flush_now(self) -> None:
        """Send what the engine has now (a write's segments), unless the pump
        is running (then it picks the work up before it returns). Protocol
        callbacks are left to the scheduled pump: like asyncio's transports,
        ``write()`` never calls back into the protocol."""
        if self._flushing or self.udp.is_closing():
            return
        ep = self.endpoint
        self.udp.send(ep.datagrams_to_send(self.loop.time()))
        self._arm_timer()
        if ep.has_work:
            self.kick()

    def _flush(self) -> None:
        self._kicked = False
        self._flushing = True
        try:
            self._pump()
        finally:
            self._flushing = False

    def _pump(self) -> None:
        ep = self.endpoint
        udp = self.udp
        now = self.loop.time()
        for _ in range(64):
            evs = ep.poll_events()
            for conn, ev in evs:
                self._dispatch(conn, ev)
            udp.send(ep.datagrams_to_send(now))
            if not ep.has_work:
                break  # callbacks above woke nothing new
        if self.paused_writers:
            for tr in list(self.paused_writers):
                tr._check_pause()
        self._arm_timer()
        if self.close_when_idle and not self._transports and not self._connecting:
            # The socket lives until its connections need nothing more (a FIN
            # still to ACK, say). A server's socket, which peers reach through
            # connected sockets that hear ICMP, closes then; a client's private
            # socket lingers a few RTOs in TIME_WAIT, to ACK a retransmitted FIN
            # if our last ACK was lost, rather than the whole 2*MSL.
            conns = ep.connections.values()
            if all(c.state is State.TIME_WAIT for c in conns):
                if not self._own or not conns:
                    self.close()
                elif self._linger_until is None:
                    rto = max(c.rtt.rto for c in conns)
                    linger = min(2 * self.config.msl, max(1.0, 3 * rto))
                    self._linger_until = now + linger
                    self.loop.call_at(self._linger_until, self.kick)
                elif now >= self._linger_until:
                    self.close()

    def _arm_timer(self) -> None:
        """One loop timer per socket, re-armed lazily: a deadline that moved
        later (an RTO restarted by an ACK, a delayed ACK sent early) keeps the
        armed timer, which then fires early, finds nothing due and re-arms."""
        when = self.endpoint.get_timer()
        if when == self._timer_at:
            return
        if self._timer is not None and (when is None or self._timer_at <= when):  # type: ignore[operator]
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when is not None:
            self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.endpoint.handle_timer(self.loop.time())
        self._flush()

    def _dispatch(self, conn: Connection, ev: events.Event) -> None:
        tr = self._transports.get(conn)
        kind = type(ev)  # the two per-segment kinds first, by identity
        if kind is events.DataReceived or kind is events.EofReceived:
            if tr is not None:
                tr._deliver()
        elif kind is events.SendComplete:
            if tr is not None and tr._closing:
                tr._connection_lost(None)  # our FIN is acknowledged
        elif isinstance(ev, events.Connected):
            fut = self._connecting.pop(conn, None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(None)
                else:
                    conn.abort()  # the caller gave up (timeout or cancel)
            elif conn.listener is not None:
                self._accept(conn)
        elif isinstance(ev, events.ConnectionReset):
            self._fail(conn, tr, ConnectionRefusedError("connection refused") if ev.refused
                       else ConnectionResetError("connection reset by peer"))
        elif isinstance(ev, events.ConnectionError):
            self._fail(conn, tr, TimeoutError(f"rudp connection failed: {ev.reason}"))
        elif isinstance(ev, events.Closed):
            if tr is not None:
                tr._connection_lost(None)
            fut = self._connecting.pop(conn, None)
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionAbortedError("connection closed during handshake"))

    def _fail(self, conn: Connection, tr: RudpTransport | None, exc: Exception) -> None:
        fut = self._connecting.pop(conn, None)
        if fut is not None and not fut.done():
            fut.set_exception(exc)
        if tr is not None:
            tr._connection_lost(exc)

    def _accept(self, conn: Connection) -> None:
        listener = conn.listener
        assert isinstance(listener, Listener)
        server = self._servers.get(listener)
        accepted = listener.accept()
        if server is None or accepted is None:
            conn.abort()
            return
        protocol = server.protocol_factory()
        tr = RudpTransport(self, accepted, protocol, server.send_buffer)
        self._transports[accepted] = tr
        server._attach(tr)
        protocol.connection_made(tr)
        tr._deliver()

    def _forget(self, conn: Connection) -> None:
        self._transports.pop(conn, None)

    def connection_done(self, tr: RudpTransport) -> None:
        for server in self._servers.values():
            server._detach(tr)
        self.kick()

    # -- opening

    async def open(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        addr: Address,
        port: int,
        *,
        config: Config,
        send_buffer: int,
        connect_timeout: float | None,
    ) -> tuple[RudpTransport, asyncio.BaseProtocol]:
        conn = self.endpoint.connect(addr, port, self.loop.time(), config=config)
        fut: asyncio.Future[None] = self.loop.create_future()
        self._connecting[conn] = fut
        self.kick()
        try:
            if connect_timeout is None:
                await fut
            else:
                await asyncio.wait_for(asyncio.shield(fut), connect_timeout)
        except asyncio.TimeoutError:
            self._connecting.pop(conn, None)
            conn.abort()
            self.kick()
            raise TimeoutError(f"rudp handshake with {addr}:{port} timed out") from None
        except BaseException:
            self._connecting.pop(conn, None)
            conn.abort()
            self.kick()
            raise
        protocol = protocol_factory()
        tr = RudpTransport(self, conn, protocol, send_buffer)
        self._transports[conn] = tr
        protocol.connection_made(tr)
        tr._deliver()
        return tr, protocol

    def close(self) -> None:
        self.udp.close()

    async def wait_closed(self) -> None:
        await self._closed


async def create_endpoint(
    host: str | None = None, port: int = 0, *, family: int = 0, **options: Any
) -> EndpointProtocol:
    """A UDP socket that several client connections can share (``endpoint=``)."""
    loop = asyncio.get_running_loop()
    config, adapter = split_options(options)
    if host is None:
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    sock = await open_socket(family, (host, port), buffer_size=_SOCKET_BUFFER)
    return EndpointProtocol(loop, config, sock, own=False, gso=adapter["gso"])


async def _resolve(host: str, port: int, family: int) -> tuple[int, Any]:
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {type(host).__name__}")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be an int in 1..65535, got {port!r}")
    try:  # a numeric address needs no resolver (on the default loop, a thread hop)
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        fam = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        if family in (0, fam):
            return fam, ((host, port) if fam == socket.AF_INET else (host, port, 0, 0))
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned nothing")
    fam, _, _, _, sockaddr = infos[0]
    return fam, sockaddr


async def create_connection(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: str,
    port: int,
    *,
    family: int = 0,
    local_addr: tuple[str, int] | None = None,
    endpoint: EndpointProtocol | None = None,
    remote_port: int | None = None,
    **options: Any,
) -> tuple[RudpTransport, asyncio.BaseProtocol]:
    """Like ``loop.create_connection``: open an rudp connection to (host, port).

    ``port`` is the server's UDP port; the TCP destination port is the same
    number unless ``remote_port`` says otherwise. Without ``endpoint`` the
    connection gets its own UDP socket, connected to the server so that an
    ICMP port-unreachable refuses the connection at once.
    """
    config, adapter = split_options(options)
    loop = asyncio.get_running_loop()
    fam, sockaddr = await _resolve(host, port, family)
    rport = port if remote_port is None else remote_port
    if not 0 < rport < 65536:
        raise ValueError(f"remote_port must be in 1..65535, got {rport}")
    if endpoint is None:
        if local_addr is None:
            local_addr = ("::" if fam == socket.AF_INET6 else "0.0.0.0", 0)
        sock = await open_socket(fam, local_addr, sockaddr, buffer_size=_SOCKET_BUFFER)
        ep = EndpointProtocol(loop, config, sock, own=True, gso=adapter["gso"])
    else:
        ep = endpoint
    try:
        return await ep.open(
            protocol_factory,
            _norm(sockaddr),
            rport,
            config=config,
            send_buffer=adapter["send_buffer"],
            connect_timeout=adapter["connect_timeout"],
        )
    except BaseException:
        if endpoint is None:
            ep.close()
        raise


class Server:
    """Mirrors ``asyncio.Server`` for an rudp listener on one UDP socket."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        endpoint: EndpointProtocol,
        listener: Listener,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        send_buffer: int,
    ) -> None:
        self._loop = loop
        self._endpoint = endpoint
        self._listener: Listener | None = listener
        self.protocol_factory = protocol_factory
        self.send_buffer = send_buffer
        self._transports: set[RudpTransport] = set()
        self._serving = True
        self._waiters: list[asyncio.Future[None]] = []
        self._serve_forever_fut: asyncio.Future[None] | None = None
        endpoint._servers[listener] = self

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        sock = self._endpoint.socket
        return (sock,) if sock is not None and self._listener is not None else ()

    @property
    def endpoint(self) -> EndpointProtocol:
        return self._endpoint

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        """Serving starts at creation, as ``start_serving=True`` does in asyncio."""

    async def serve_forever(self) -> None:
        if self._serve_forever_fut is not None:
            raise RuntimeError("server is already being awaited on serve_forever()")
        if self._listener is None:
            raise RuntimeError("server is closed")
        self._serve_forever_fut = self._loop.create_future()
        try:
            await self._serve_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serve_forever_fut = None

    def close(self) -> None:
        """Stop accepting; established connections go on until they finish."""
        listener = self._listener
        if listener is None:
            return
        self._listener = None
        self._serving = False
        self._endpoint.endpoint.close_listener(listener)
        self._endpoint.kick()
        if self._serve_forever_fut is not None and not self._serve_forever_fut.done():
            self._serve_forever_fut.cancel()
        self._maybe_done()

    def close_clients(self) -> None:
        for tr in list(self._transports):
            tr.close()

    def abort_clients(self) -> None:
        for tr in list(self._transports):
            tr.abort()

    async def wait_closed(self) -> None:
        """Wait until the server is closed and its connections are finished:
        every FIN sent and acknowledged, every FIN received acknowledged."""
        if self._listener is not None:
            fut = self._loop.create_future()
            self._waiters.append(fut)
            await fut
        await self._endpoint.wait_closed()

    def _attach(self, tr: RudpTransport) -> None:
        self._transports.add(tr)

    def _detach(self, tr: RudpTransport) -> None:
        self._transports.discard(tr)
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self._listener is None:
            self._endpoint.close_when_idle = True
            self._endpoint.kick()
            for fut in self._waiters:
                if not fut.done():
                    fut.set_result(None)
            self._waiters.clear()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()

    def __repr__(self) -> str:
        return f"<rudp.Server sockets={self.sockets!r}>"


async def create_server(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: str | None = None,
    port: int = 0,
    *,
    family: int = 0,
    backlog: int = 128,
    max_half_open: int = 256,
    listen_port: int | None = None,
    **options: Any,
) -> Server:
    """Like ``loop.create_server``: one UDP socket carries every accepted connection.

    The listener's TCP port is the UDP port's number unless ``listen_port`` is given.
    """
    config, adapter = split_options(options)
    loop = asyncio.get_running_loop()
    if host is None:
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError(f"port must be an int in 0..65535, got {port!r}")
    sock = await open_socket(family, (host, port), buffer_size=_SOCKET_BUFFER)
    ep = EndpointProtocol(loop, config, sock, own=False, gso=adapter["gso"])
    lport = listen_port if listen_port is not None else ep.sockname[1]
    try:
        listener = ep.endpoint.listen(lport, backlog=backlog, max_half_open=max_half_open, config=config)
    except BaseException:
        ep.close()
        raise
    return Server(loop, ep, listener, protocol_factory, adapter["send_buffer"])


async def open_connection(
    host: str, port: int, *, limit: int = 2**16, **kwds: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Like ``asyncio.open_connection``, over rudp."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(lambda: protocol, host, port, **kwds)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def start_server(
    client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
    host: str | None = None,
    port: int = 0,
    *,
    limit: int = 2**16,
    **kwds: Any,
) -> Server:
    """Like ``asyncio.start_server``, over rudp."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.StreamReaderProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return await create_server(factory, host, port, **kwds)
