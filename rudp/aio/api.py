"""The public asyncio API: endpoints, connections, servers and streams over rudp.

``create_connection``/``create_server`` mirror the loop's methods,
``open_connection``/``start_server`` asyncio's streams. They split keyword
options into a ``Config`` and adapter options, resolve addresses and open
UDP sockets; an ``EndpointDriver`` (``rudp.aio.driver``) then drives each
socket's sans-IO Endpoint, and every connection is a ``RudpTransport``
(``rudp.aio.transport``). With ``ssl=`` a ``TlsProtocol`` (``rudp.aio.tls``)
sits between that transport and the application, as asyncio's own TLS does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import socket
import ssl as _ssl
from typing import Any, Callable

from ..core.config import Config
from ..core.listener import Listener
from . import tls
from .driver import EndpointDriver, address_key
from .streams import StreamReaderProtocol, StreamWriter
from .transport import RudpTransport
from .udpio import open_socket

#: Adapter options accepted next to the Config fields.
_ADAPTER_OPTIONS = ("send_buffer", "connect_timeout", "gso", "gro", "pcap", "event_log")
#: Options of the UDP socket itself, which a shared ``endpoint=`` already has.
_SOCKET_OPTIONS = ("pcap", "event_log")
_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(Config))
SOCKET_BUFFER = 4 << 20  # SO_RCVBUF/SO_SNDBUF of the UDP sockets we open


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
    for flag in ("gso", "gro"):
        if not isinstance(adapter.setdefault(flag, True), bool):
            raise TypeError(f"{flag} must be a bool, got {adapter[flag]!r}")
    for name in _SOCKET_OPTIONS:
        target = adapter.setdefault(name, None)
        if target is not None and not isinstance(target, (str, os.PathLike)) \
                and not callable(getattr(target, "write", None)):
            raise TypeError(f"{name} must be a path or a file object, got {target!r}")
    timeout = adapter.setdefault("connect_timeout", 30.0)
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"connect_timeout must be a positive number or None, got {timeout!r}")
    return config, adapter


async def create_endpoint(
    host: str | None = None, port: int = 0, *, family: int = 0, **options: Any
) -> EndpointDriver:
    """A UDP socket that several client connections can share (``endpoint=``).

    ``pcap=`` and ``event_log=`` (rudp.aio.capture, rudp.aio.eventlog) cover
    every connection made through it."""
    loop = asyncio.get_running_loop()
    config, adapter = split_options(options)
    if host is None:
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    sock = await open_socket(family, (host, port), buffer_size=SOCKET_BUFFER)
    return EndpointDriver(loop, config, sock, own=False, gso=adapter["gso"], gro=adapter["gro"],
                          pcap=adapter["pcap"], event_log=adapter["event_log"])


async def resolve(host: str, port: int, family: int) -> tuple[int, Any]:
    """(family, socket address) of host:port; a numeric host in its canonical spelling."""
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
            # The canonical spelling: replies come from "::1", not "0:0:0:0:0:0:0:1",
            # and the connection is found by the address datagrams arrive from.
            text = str(ip)
            return fam, ((text, port) if fam == socket.AF_INET else (text, port, 0, 0))
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
    endpoint: EndpointDriver | None = None,
    remote_port: int | None = None,
    ssl: _ssl.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    ssl_half_close: bool = False,
    **options: Any,
) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """Like ``loop.create_connection``: open an rudp connection to (host, port).

    ``port`` is the server's UDP port; the TCP destination port is the same
    number unless ``remote_port`` says otherwise. Without ``endpoint`` the
    connection gets its own UDP socket, connected to the server so that an
    ICMP port-unreachable refuses the connection at once. ``pcap=`` (a path
    or binary file object) captures that socket's segments, ``event_log=``
    logs its connection's events as JSON lines; both are options of a
    socket, so with ``endpoint`` they belong to ``create_endpoint``.

    ``ssl`` (an SSLContext, or True for the default one), ``server_hostname``
    (default: ``host``), ``ssl_handshake_timeout`` (60 s) and
    ``ssl_shutdown_timeout`` (30 s) are asyncio's: the transport returned is
    then a ``TlsTransport`` whose handshake is complete, and the protocol
    heard ``connection_made`` only then. Like asyncio's, it cannot half-close,
    unless ``ssl_half_close`` asks for TLS 1.3's (see ``rudp.aio.tls``).
    """
    tls_client = tls.client_context(ssl, host, server_hostname,
                                    ssl_handshake_timeout, ssl_shutdown_timeout)
    config, adapter = split_options(options)
    loop = asyncio.get_running_loop()
    fam, sockaddr = await resolve(host, port, family)
    rport = port if remote_port is None else remote_port
    if not 0 < rport < 65536:
        raise ValueError(f"remote_port must be in 1..65535, got {rport}")
    if endpoint is None:
        if local_addr is None:
            local_addr = ("::" if fam == socket.AF_INET6 else "0.0.0.0", 0)
        sock = await open_socket(fam, local_addr, sockaddr, buffer_size=SOCKET_BUFFER)
        ep = EndpointDriver(loop, config, sock, own=True, gso=adapter["gso"], gro=adapter["gro"],
                            pcap=adapter["pcap"], event_log=adapter["event_log"])
    else:
        given = [name for name in _SOCKET_OPTIONS if adapter[name] is not None]
        if given:
            raise ValueError(f"{', '.join(given)} belong(s) to the shared endpoint's socket: "
                             "pass them to create_endpoint()")
        ep = endpoint
    factory = protocol_factory
    waiter: asyncio.Future[None] = loop.create_future()
    if tls_client is not None:
        context, hostname = tls_client

        def factory() -> tls.TlsProtocol:
            return tls.TlsProtocol(loop, protocol_factory(), context, waiter,
                                   server_hostname=hostname,
                                   ssl_handshake_timeout=ssl_handshake_timeout,
                                   ssl_shutdown_timeout=ssl_shutdown_timeout,
                                   half_close=ssl_half_close)
    try:
        transport, protocol = await ep.open(
            factory,
            address_key(sockaddr),
            rport,
            config=config,
            send_buffer=adapter["send_buffer"],
            connect_timeout=adapter["connect_timeout"],
        )
    except BaseException:
        if endpoint is None:
            ep.close()
        raise
    if tls_client is None:
        return transport, protocol
    assert isinstance(protocol, tls.TlsProtocol)
    try:
        await waiter  # the TLS handshake
    except BaseException:
        if protocol.state is not tls.TlsState.CLOSED:  # a failed handshake closed it already
            protocol.abort(None)
        raise
    return protocol.app_transport, protocol.get_app_protocol()


class Server:
    """Mirrors ``asyncio.Server`` for an rudp listener on one UDP socket."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        endpoint: EndpointDriver,
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
        endpoint.add_server(listener, self)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        sock = self._endpoint.socket
        return (sock,) if sock is not None and self._listener is not None else ()

    @property
    def endpoint(self) -> EndpointDriver:
        return self._endpoint

    def stats(self) -> dict[str, int]:
        """The listener's counters, netstat style: ``half_open`` now, ``backlog``,
        ``accept_queue``, ``syn_received``, ``cookies_sent``/``_validated``/
        ``_rejected``, ``syn_dropped_*``, ``half_open_evicted``, and the
        socket's refused or rate-limited replies (``rst_sent``,
        ``rst_rate_limited``, ``amplification_limited``, ``malformed``, ...),
        with what the kernel dropped from its full receive buffers
        (``socket_drops``, and ``syn_socket_drops`` for the socket that
        queues connection requests, ``create_server(syn_socket=True)``).
        Empty once the server is closed."""
        if self._listener is None:
            return {}
        stats = self._endpoint.endpoint.listener_stats(self._listener)
        stats.update(self._endpoint.udp.kernel_drops())
        return stats

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
        self._endpoint.close_listener(listener)
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

    # -- called by the EndpointDriver

    def attach(self, tr: RudpTransport) -> None:
        """An accepted connection's transport: ``close_clients`` reaches it."""
        self._transports.add(tr)

    def detach(self, tr: RudpTransport) -> None:
        """The transport's connection is over."""
        self._transports.discard(tr)
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self._listener is None:
            self._endpoint.close_when_idle()
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
    max_half_open_per_source: int | None = None,
    syn_cookies: str = "auto",
    syn_socket: bool = True,
    listen_port: int | None = None,
    ssl: _ssl.SSLContext | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    ssl_half_close: bool = False,
    **options: Any,
) -> Server:
    """Like ``loop.create_server``: one UDP socket carries every accepted connection.

    The listener's TCP port is the UDP port's number unless ``listen_port`` is given.
    ``syn_cookies`` ("auto", "always", "never"), ``max_half_open`` and
    ``max_half_open_per_source`` set its SYN-flood defences (rudp.core.listener);
    with ``syn_socket`` (Linux) connection requests queue in a second socket
    on the same port, so that a flood of them cannot crowd out the rest
    (rudp.aio.udpio.open_syn_socket).
    With ``ssl`` (a server SSLContext) each accepted connection does the TLS
    handshake first; the protocol hears ``connection_made`` once it is done,
    and a connection whose handshake fails or times out is closed unseen.
    ``pcap=`` and ``event_log=`` capture and log every connection on the socket.
    """
    context = tls.server_context(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    config, adapter = split_options(options)
    loop = asyncio.get_running_loop()
    if host is None:
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    if not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError(f"port must be an int in 0..65535, got {port!r}")
    sock = await open_socket(family, (host, port), buffer_size=SOCKET_BUFFER)
    ep = EndpointDriver(loop, config, sock, own=False, gso=adapter["gso"], gro=adapter["gro"],
                        pcap=adapter["pcap"], event_log=adapter["event_log"], syn_socket=syn_socket)
    lport = listen_port if listen_port is not None else ep.sockname[1]
    try:
        listener = ep.endpoint.listen(lport, backlog=backlog, max_half_open=max_half_open,
                                      max_half_open_per_source=max_half_open_per_source,
                                      syn_cookies=syn_cookies, config=config)
    except BaseException:
        ep.close()
        raise
    factory = protocol_factory
    if context is not None:
        tls_context = context

        def factory() -> tls.TlsProtocol:
            return tls.TlsProtocol(loop, protocol_factory(), tls_context, None, server_side=True,
                                   ssl_handshake_timeout=ssl_handshake_timeout,
                                   ssl_shutdown_timeout=ssl_shutdown_timeout,
                                   half_close=ssl_half_close)
    return Server(loop, ep, listener, factory, adapter["send_buffer"])


async def open_connection(
    host: str, port: int, *, limit: int = 2**16, **kwds: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Like ``asyncio.open_connection``, over rudp (``ssl=`` and the rest as there).
    The writer's ``start_tls`` upgrades the connection on either loop."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(lambda: protocol, host, port, **kwds)
    writer = StreamWriter(transport, protocol, reader, loop, server_side=False)
    return reader, writer


async def start_server(
    client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
    host: str | None = None,
    port: int = 0,
    *,
    limit: int = 2**16,
    **kwds: Any,
) -> Server:
    """Like ``asyncio.start_server``, over rudp (``ssl=`` and the rest as there).
    Each writer's ``start_tls`` upgrades its connection on either loop."""
    loop = asyncio.get_running_loop()

    def factory() -> StreamReaderProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return await create_server(factory, host, port, **kwds)
