"""Direct connections between peers behind NATs: rendezvous, UDP hole punching, simultaneous open.

Both peers meet at a rendezvous server (``rudp.aio.rendezvous``) from the UDP
socket they then connect from, so their NATs keep the mapping the server saw.
Each sends PUNCH datagrams to every address it learned of the other (public
mapping, local addresses): the first ones may die at the other's NAT, which
has not seen outbound traffic to us yet, but each outbound punch opens our
own NAT for the peer's. The first valid punch (or ACK, or SYN) that arrives
names the path, including a mapping the server never saw (a "peer-reflexive"
address, RFC 8445 §7.3.1.3). Then both open an rudp connection on that
socket to the same TCP port at once: the SYNs cross, a simultaneous open
(RFC 9293 §3.5 Figure 8). The socket is not connected, so an ICMP error that
an early punch provokes ends nothing.

NATs that map each destination to a new port (symmetric NAT, e.g. nftables'
``masquerade random``) on both sides leave no path: NatTraversalError after
``punch_timeout``, unless both peers asked for the relay fallback
(``relay=True``, ``rudp.aio.relay``): never silent.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl as _ssl
from typing import Any, Callable

from ..core.wire import SYN, DecodeError, decode as decode_segment
from . import tls
from .api import SOCKET_BUFFER, resolve, split_options
from .driver import EndpointDriver, address_key
from .relay import RELAY_MSS, RelayShim, request_relay
from .rendezvous import Address, Inbox, Meeting, decode, meet, parse_host_port
from .streams import StreamReaderProtocol, StreamWriter
from .transport import RudpTransport
from .udpio import open_socket

PUNCH_INTERVAL = 0.2
HANDSHAKE_TIMEOUT = 10.0


def keepalive_options(idle: float) -> dict[str, Any]:
    """Options for keep-alives after ``idle`` seconds of silence (0: none)."""
    if idle <= 0:
        return {"keepalive": False}
    return {"keepalive": True, "keepalive_idle": idle, "keepalive_interval": max(1.0, idle / 3),
            "keepalive_count": 6}


#: Keep-alives that hold the NATs' mappings: many NATs forget an idle UDP
#: mapping after 30 s or so (RFC 4787 REQ-5 asks for at least 2 minutes).
NAT_KEEPALIVE = keepalive_options(15.0)


class NatTraversalError(ConnectionError):
    """No direct path between the peers could be made."""


def tcp_port(meeting: Meeting) -> int:
    """The TCP port both sides use as source and destination: the same for
    both without a word exchanged (derived from the two ids)."""
    ids = "".join(sorted((meeting.id, meeting.peer_id)))
    return 1024 + int.from_bytes(hashlib.sha256(ids.encode()).digest()[:4], "big") % 64000


def candidates(meeting: Meeting) -> list[Address]:
    """Where to punch: the peer's public mapping, then its local addresses."""
    out = [meeting.peer_public]
    for addr in meeting.peer_local:
        if addr not in out:
            out.append(addr)
    return out


def _is_syn(data: bytes) -> bool:
    try:
        return bool(decode_segment(data).flags & SYN)
    except DecodeError:
        return False


async def punch(inbox: Inbox, meeting: Meeting, timeout: float) -> Address:
    """Punch until a datagram from the peer names the path; its address.

    A PUNCH or PUNCH_ACK carrying both ids proves that the peer reached us
    and that its NAT has a mapping towards us; our own punches to it were
    sent first, so ours holds one towards it: from now on both directions
    pass. A TCP SYN from a candidate address proves the same (the peer
    punched, found us and opened first; its SYN is retransmitted)."""
    loop = asyncio.get_running_loop()
    targets = candidates(meeting)
    msg = {"op": "punch", "room": meeting.room, "from": meeting.id, "to": meeting.peer_id}
    ack = dict(msg, op="punch-ack")
    deadline = loop.time() + timeout
    next_send = loop.time()
    while True:
        now = loop.time()
        if now >= deadline:
            where = ", ".join(f"{h}:{p}" for h, p in targets)
            raise NatTraversalError(
                f"no direct path to the peer ({where}) after {timeout:g} s: nothing came back "
                "through the NATs. NATs that map each destination to a new port (symmetric NAT) "
                "on both sides cannot be hole-punched; forward a UDP port to one of the peers")
        if now >= next_send:
            for addr in targets:
                inbox.send(msg, addr)
            next_send = now + PUNCH_INTERVAL
        got = await inbox.receive(min(next_send, deadline) - loop.time())
        if got is None:
            continue
        data, addr = got
        m = decode(data)
        if m is None:
            if addr in targets and _is_syn(data):
                return addr
            continue
        if (m["op"] in ("punch", "punch-ack") and m.get("room") == meeting.room
                and m.get("from") == meeting.peer_id and m.get("to") == meeting.id):
            inbox.send(ack, addr)  # the peer may still be waiting for word from us
            return addr


async def create_rendezvous_connection(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    rendezvous: tuple[str, int] | str,
    room: str,
    *,
    family: int = 0,
    local_addr: tuple[str, int] | None = None,
    wait_timeout: float | None = 300.0,
    punch_timeout: float = 10.0,
    on_wait: Callable[[Address], None] | None = None,
    relay: bool = False,
    on_relay: Callable[[str], None] | None = None,
    ssl: _ssl.SSLContext | None = None,
    ssl_server: _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    ssl_half_close: bool = False,
    **options: Any,
) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """Meet the other peer of ``room`` at the rendezvous server, punch through
    both NATs and open a direct rudp connection to it (simultaneous open).

    ``rendezvous`` is (host, port) or "HOST:PORT". Keep-alives every 15 s of
    silence hold the NAT mappings unless the options say otherwise. The
    transport's ``get_extra_info("public_address")`` is our address as the
    rendezvous server saw it (the NAT's mapping) and ``"nat_mapping"`` a dict
    of both sides' addresses. The connection has its own socket, which
    lingers a little in TIME_WAIT to re-ACK a FIN the peer retransmits (our
    last ACK may be lost, and the peer does not hear ICMP on its unconnected
    socket): a program about to exit awaits
    ``get_extra_info("endpoint").wait_closed()`` after ``writer.wait_closed()``,
    or the peer may retransmit its FIN for minutes. Errors: RendezvousError (no server, room full,
    no peer within ``wait_timeout``), NatTraversalError (no direct path within
    ``punch_timeout``), TimeoutError (no handshake within ``connect_timeout``,
    10 s by default here).

    ``relay=True``: where no direct path exists, ask the rendezvous server
    to relay (it must allow it, and the peer must ask too); ``on_relay`` is
    called with the reason first. The server then carries all the traffic;
    ``nat_mapping["relayed"]`` is True.

    TLS: the two peers are alike, so the role is settled at the rendezvous:
    the side whose ``nat_mapping["initiator"]`` is True is the TLS client and
    uses ``ssl`` (its ``server_hostname``: the name the peer's certificate must
    carry, or ``""`` when the context does not check names), the other the TLS
    server and uses ``ssl_server``. Give both on both sides (a server context
    that requires a client certificate authenticates both peers). The
    transport returned is then a TlsTransport whose handshake is complete.
    """
    if (ssl is None) != (ssl_server is None):
        raise ValueError("TLS between peers needs ssl= (the TLS client's context) and ssl_server= "
                         "(the TLS server's): which role this side takes is settled at the rendezvous")
    if ssl is not None:
        if not isinstance(ssl, _ssl.SSLContext) or not isinstance(ssl_server, _ssl.SSLContext):
            raise TypeError("ssl and ssl_server must be ssl.SSLContext objects")
        if server_hostname is None:
            raise ValueError("with ssl=, give server_hostname= (the peer's certificate name, "
                             "or '' when the context checks no name)")
        tls.client_context(ssl, None, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
    elif server_hostname is not None or ssl_handshake_timeout is not None or ssl_shutdown_timeout is not None:
        raise ValueError("server_hostname and ssl_*_timeout are only meaningful with ssl")
    if isinstance(rendezvous, str):
        rendezvous = parse_host_port(rendezvous)
    if not isinstance(punch_timeout, (int, float)) or punch_timeout <= 0:
        raise ValueError(f"punch_timeout must be a positive number, got {punch_timeout!r}")
    options = {**NAT_KEEPALIVE, "connect_timeout": HANDSHAKE_TIMEOUT, **options}
    config, adapter = split_options(options)
    loop = asyncio.get_running_loop()
    fam, server = await resolve(rendezvous[0], rendezvous[1], family)
    if local_addr is None:
        local_addr = ("::" if fam == socket.AF_INET6 else "0.0.0.0", 0)
    sock = await open_socket(fam, local_addr, buffer_size=SOCKET_BUFFER)
    inbox = Inbox(loop, sock)
    handed_over = False
    try:
        meeting = await meet(inbox, server, room, wait_timeout=wait_timeout, on_wait=on_wait)
        shim: RelayShim | None = None
        try:
            peer = await punch(inbox, meeting, punch_timeout)
        except NatTraversalError as exc:
            if not relay:
                raise
            if on_relay is not None:
                on_relay(str(exc))
            await request_relay(inbox, meeting, punch_timeout)
            inner = await open_socket(socket.AF_INET, ("127.0.0.1", 0))
            try:
                ep_sock = await open_socket(socket.AF_INET, ("127.0.0.1", 0), buffer_size=SOCKET_BUFFER)
            except BaseException:
                inner.close()
                raise
            shim = RelayShim(loop, sock, meeting.server, inner, ep_sock.getsockname())
            handed_over = True  # the shim owns the socket now
            config = config.replace(mss=min(config.mss, RELAY_MSS))
            peer = (shim.address[0], shim.address[1])
            ep = EndpointDriver(loop, config, ep_sock, own=True, gso=adapter["gso"], gro=adapter["gro"],
                                pcap=adapter["pcap"], event_log=adapter["event_log"])
            closer = asyncio.ensure_future(ep.wait_closed())
            closer.add_done_callback(lambda _: shim.close() if shim is not None else None)
        else:
            handed_over = True
            ep = EndpointDriver(loop, config, sock, own=True, gso=adapter["gso"], gro=adapter["gro"],
                                pcap=adapter["pcap"], event_log=adapter["event_log"])
        port = tcp_port(meeting)
        extra = {
            "endpoint": ep,
            "public_address": meeting.public,
            "nat_mapping": {
                "local": meeting.local[0] if meeting.local else address_key(sock.getsockname()),
                "public": meeting.public,
                "translated": meeting.public not in meeting.local,
                "peer": meeting.server if shim is not None else peer,
                "relayed": shim is not None,
                # An agreed role for protocols that need one side to lead
                # (who speaks first, the TLS client): opposite on the two sides.
                "initiator": meeting.id < meeting.peer_id,
                "peer_public": meeting.peer_public,
                "peer_local": list(meeting.peer_local),
                "rendezvous": meeting.server,
                "room": meeting.room,
            },
        }
        factory = protocol_factory
        waiter: asyncio.Future[None] = loop.create_future()
        if ssl is not None:
            initiator = meeting.id < meeting.peer_id
            context = ssl if initiator else ssl_server
            assert context is not None

            def factory() -> tls.TlsProtocol:
                return tls.TlsProtocol(loop, protocol_factory(), context, waiter,
                                       server_side=not initiator,
                                       server_hostname=(server_hostname or None) if initiator else None,
                                       ssl_handshake_timeout=ssl_handshake_timeout,
                                       ssl_shutdown_timeout=ssl_shutdown_timeout,
                                       half_close=ssl_half_close)
        try:
            transport, protocol = await ep.open(
                factory, peer, port, local_port=port, config=config,
                send_buffer=adapter["send_buffer"], connect_timeout=adapter["connect_timeout"],
                extra=extra,
            )
        except BaseException:
            ep.close()
            raise
        if ssl is None:
            return transport, protocol
        assert isinstance(protocol, tls.TlsProtocol)
        try:
            await waiter  # the TLS handshake
        except BaseException:
            if protocol.state is not tls.TlsState.CLOSED:
                protocol.abort(None)
            raise
        return protocol.app_transport, protocol.get_app_protocol()
    finally:
        if not handed_over:
            sock.close()


async def open_rendezvous_connection(
    rendezvous: tuple[str, int] | str, room: str, *, limit: int = 2**16, **kwds: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``open_connection`` for two peers behind NATs: see create_rendezvous_connection."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_rendezvous_connection(lambda: protocol, rendezvous, room, **kwds)
    writer = StreamWriter(transport, protocol, reader, loop, server_side=False)
    return reader, writer
