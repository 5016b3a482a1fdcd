"""Rendezvous: two peers behind NATs meet in a named room and learn each other's addresses.

A peer sends REGISTER (room, a random id, its local addresses) from the UDP
socket it will then use for its connection. The server answers WAIT (with the
address it saw, the peer's public mapping) until a second peer registers in
the same room, then PEER to each: the other's public address as the server
observed it and its self-reported local addresses. The server only introduces;
the peers' data never passes through it (``rudp.aio.holepunch`` connects them
directly) unless the server was started with ``relay=True`` and both peers,
having found no direct path, asked for the relay (``rudp.aio.relay``). Nothing is authenticated: the room name is all the peers share, so
use TLS (or check the peer's first bytes) where that matters.

A message is a 20-byte prefix then a small JSON object. The prefix has a TCP
data offset of 0, so an rudp endpoint that receives a stray one (a late
server reply, the peer's last punch) drops it as malformed and counts it.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import json
import logging
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, cast

MAGIC = b"rudp-nat/1" + bytes(10)
#: Prefix of a relayed segment (TCP data offset 0 too).
RELAY_MAGIC = b"rudp-relay/1" + bytes(8)
MAX_MESSAGE = 1200
MAX_ROOM = 128
MAX_LOCAL = 4
#: A REGISTER is padded to at least this size, and a shorter one is dropped:
#: every reply is smaller (at most MAX_LOCAL IPv6 addresses), so a spoofed
#: source gets back fewer bytes than were sent in its name (no amplification).
MIN_REGISTER = 512
RETRY = 0.5  # a waiting peer re-registers this often (it also keeps its NAT mapping)
STALE = 5.0  # a member silent this long has left (connected or gone): its place is free
TTL = 60.0  # entries silent this long are forgotten

Address = tuple[str, int]
logger = logging.getLogger("rudp")


class RendezvousError(ConnectionError):
    """The rendezvous failed: no answer from the server, room full, no peer in time."""


def encode(msg: dict[str, Any]) -> bytes:
    return MAGIC + json.dumps(msg, separators=(",", ":")).encode()


def decode(data: bytes) -> dict[str, Any] | None:
    """The message in ``data``, or None for anything that is not a valid one."""
    if len(data) > MAX_MESSAGE or not data.startswith(MAGIC):
        return None
    try:
        msg = json.loads(data[len(MAGIC):])
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
        return None
    return msg


def parse_address(value: Any) -> Address | None:
    """A JSON ``[host, port]`` pair, checked; None if it is not one."""
    if not (isinstance(value, list) and len(value) == 2):
        return None
    host, port = value
    if not isinstance(host, str) or not isinstance(port, int) or not 0 < port < 65536:
        return None
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return None
    return host, port


def parse_host_port(text: str, default_port: int | None = None) -> Address:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); a ValueError if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or (":" in host and not host.startswith("[")):
        if default_port is None:
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        host, port = text, str(default_port)
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT with a port in 1..65535, got {text!r}")
    return host, int(port)


# ------------------------------------------------------------------ the server


@dataclass
class Member:
    id: str
    public: Address
    local: list[Address]
    seen: float
    relay: bool = False  # asked for the relay


@dataclass
class Room:
    members: dict[str, Member] = field(default_factory=dict)
    introduced: bool = False


class RendezvousServer(asyncio.DatagramProtocol):
    """Introduces the two peers of each room; carries none of their data.

    Bad or foreign datagrams are counted (``counters``) and dropped. Replies go
    only to addresses that sent a valid REGISTER, which must be padded to
    MIN_REGISTER bytes, more than any reply: the server amplifies nothing.
    """

    def __init__(self, *, max_rooms: int = 10000, relay: bool = False,
                 clock: Callable[[], float] | None = None) -> None:
        self.rooms: dict[str, Room] = {}
        self.relay = relay
        #: Relayed pairs: a member's public address -> (that member, the other).
        self.relays: dict[Address, tuple[Member, Member]] = {}
        self.counters: collections.Counter[str] = collections.Counter()
        self.max_rooms = max_rooms
        self._clock = clock
        self.transport: asyncio.DatagramTransport | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self._schedule_sweep()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _schedule_sweep(self) -> None:
        self._sweeper = asyncio.get_running_loop().call_later(TTL / 4, self._sweep)

    def _sweep(self) -> None:
        now = self._now()
        for name in list(self.rooms):
            room = self.rooms[name]
            for old in [m for m in room.members.values() if now - m.seen > TTL]:
                del room.members[old.id]
                self.relays.pop(old.public, None)
            if not room.members:
                del self.rooms[name]
        self._schedule_sweep()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.counters["datagrams"] += 1
        self.counters["bytes_in"] += len(data)
        if data.startswith(RELAY_MAGIC):
            self.relay_datagram(data, (addr[0], addr[1]))
            return
        msg = decode(data)
        if msg is None or msg["op"] not in ("register", "relay"):
            self.counters["malformed"] += 1
            return
        if len(data) < MIN_REGISTER:
            self.counters["short"] += 1  # unpadded: answering could amplify
            return
        room_name, mid, local = msg.get("room"), msg.get("id"), msg.get("local", [])
        if (not isinstance(room_name, str) or not 0 < len(room_name) <= MAX_ROOM
                or not isinstance(mid, str) or not 0 < len(mid) <= 64
                or not isinstance(local, list) or len(local) > MAX_LOCAL):
            self.counters["malformed"] += 1
            return
        public: Address = (addr[0], addr[1])
        if msg["op"] == "relay":
            self.relay_request(room_name, mid, public)
            return
        locals_ = [a for a in (parse_address(v) for v in local) if a is not None]
        self.register(room_name, mid, public, locals_)

    def register(self, room_name: str, mid: str, public: Address, local: list[Address]) -> None:
        now = self._now()
        room = self.rooms.get(room_name)
        if room is None:
            if len(self.rooms) >= self.max_rooms:
                self.counters["rooms_full"] += 1
                self._send({"op": "error", "reason": "the rendezvous server has no room left"}, public)
                return
            room = self.rooms[room_name] = Room()
        member = room.members.get(mid)
        if member is None:
            # A member silent for STALE has connected or left: its place is
            # free (unless we relay for it: its traffic keeps ``seen`` fresh).
            for old in [m for m in room.members.values() if now - m.seen > STALE and not m.relay]:
                del room.members[old.id]
                room.introduced = False
            if len(room.members) >= 2:
                self.counters["room_full"] += 1
                self._send({"op": "error", "reason": f"room {room_name!r} already has two peers"}, public)
                return
            member = room.members[mid] = Member(mid, public, local, now)
            self.counters["registered"] += 1
        else:
            member.public, member.local, member.seen = public, local, now
        others = [m for m in room.members.values() if m.id != mid]
        if not others:
            self._send({"op": "wait", "you": list(public)}, public)
            return
        other = others[0]
        if not room.introduced:
            room.introduced = True
            self.counters["introductions"] += 1
            logger.info("room %r: introduced %s:%s and %s:%s", room_name, *public, *other.public)
            self._send(self._peer_message(other, member), other.public)
        self._send(self._peer_message(member, other), public)

    def relay_request(self, room_name: str, mid: str, public: Address) -> None:
        """A member of an introduced room found no direct path and asks for
        the relay; once both have asked, each one's RELAY_MAGIC datagrams go
        to the other (relay-ok), until then relay-wait."""
        room = self.rooms.get(room_name)
        member = room.members.get(mid) if room is not None else None
        if not self.relay:
            self.counters["relay_refused"] += 1
            self._send({"op": "error", "reason": "this rendezvous server does not relay "
                        "(start it with relay enabled: rudp rendezvous --relay)"}, public)
            return
        if room is None or member is None or not room.introduced or member.public != public:
            self.counters["relay_refused"] += 1
            self._send({"op": "error", "reason": "not a member of that room"}, public)
            return
        member.relay, member.seen = True, self._now()
        other = next((m for m in room.members.values() if m is not member), None)
        if other is None or not other.relay:
            self._send({"op": "relay-wait"}, public)
            return
        if public not in self.relays:
            self.counters["relays"] += 1
            logger.info("room %r: relaying between %s:%s and %s:%s", room_name, *public, *other.public)
        self.relays[public] = (member, other)
        self.relays[other.public] = (other, member)
        self._send({"op": "relay-ok"}, public)
        self._send({"op": "relay-ok"}, other.public)

    def relay_datagram(self, data: bytes, addr: Address) -> None:
        """Forward a relayed segment, unchanged, to the sender's partner; the
        same size goes out as came in."""
        pair = self.relays.get(addr)
        if pair is None or self.transport is None or self.transport.is_closing():
            self.counters["relay_dropped"] += 1
            return
        member, other = pair
        member.seen = self._now()
        self.counters["relayed"] += 1
        self.counters["relayed_bytes"] += len(data)
        self.transport.sendto(data, other.public)

    @staticmethod
    def _peer_message(to: Member, peer: Member) -> dict[str, Any]:
        return {"op": "peer", "you": list(to.public), "peer": {
            "id": peer.id, "public": list(peer.public), "local": [list(a) for a in peer.local]}}

    def _send(self, msg: dict[str, Any], addr: Address) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        data = encode(msg)
        self.counters["bytes_out"] += len(data)
        self.transport.sendto(data, addr)


async def start_rendezvous_server(
    host: str | None = None, port: int = 0, *, max_rooms: int = 10000, relay: bool = False,
) -> tuple[asyncio.DatagramTransport, RendezvousServer]:
    """A rendezvous server on UDP ``host``:``port`` (every IPv4 address by default).

    ``relay=True`` lets peers that found no direct path ask it to carry
    their traffic (both must ask); it then sees and forwards all of it."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: RendezvousServer(max_rooms=max_rooms, relay=relay), local_addr=(host or "0.0.0.0", port))
    assert isinstance(protocol, RendezvousServer)
    return transport, protocol


# ------------------------------------------------------------------ the client


class Inbox:
    """Datagrams of a plain non-blocking UDP socket, one ``receive`` at a time
    (through the loop's readiness callbacks: the default loop and uvloop
    alike). Nothing is read ahead: what is not received yet stays in the
    socket's buffer for the rudp endpoint that takes the socket over (the
    peer's SYN can be there already)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self.loop = loop
        self.sock = sock

    def send(self, msg: dict[str, Any], addr: Any) -> None:
        try:
            self.sock.sendto(encode(msg), addr)
        except OSError:  # no route, a full buffer: like a lost datagram
            pass

    async def receive(self, timeout: float) -> tuple[bytes, Address] | None:
        """The next datagram, or None after ``timeout`` seconds."""
        loop = self.loop
        deadline = loop.time() + timeout
        fd = self.sock.fileno()
        while True:
            try:
                data, addr = self.sock.recvfrom(65536)
                return data, (addr[0], addr[1])
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                if exc.errno not in _ICMP_ERRORS:
                    raise
                continue  # an ICMP error an earlier send provoked: it ends nothing
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _wake, readable)
            try:
                await asyncio.wait_for(readable, remaining)
            except asyncio.TimeoutError:
                return None
            finally:
                loop.remove_reader(fd)


_ICMP_ERRORS = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH,
                          errno.EHOSTDOWN, errno.ENETDOWN})


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


@dataclass(frozen=True)
class Meeting:
    """What a peer learns at the rendezvous."""

    server: Address
    room: str
    id: str
    local: list[Address]
    public: Address  # our address as the server saw it: our NAT's mapping
    peer_id: str
    peer_public: Address
    peer_local: list[Address]


def padded(msg: dict[str, Any]) -> dict[str, Any]:
    """``msg`` with a "pad" field that makes it MIN_REGISTER bytes long."""
    return dict(msg, pad="." * max(0, MIN_REGISTER - len(encode(msg)) - len(',"pad":""')))


def local_addresses(sock: socket.socket, server: Any) -> list[Address]:
    """The address the socket uses towards ``server``: its interface's address
    (as routing picks it; no datagram is sent) with the socket's port."""
    name = sock.getsockname()
    if name[0] not in ("0.0.0.0", "::"):
        return [(name[0], name[1])]
    probe = socket.socket(sock.family, socket.SOCK_DGRAM)
    try:
        probe.connect(server)
        return [(probe.getsockname()[0], name[1])]
    except OSError:
        return []
    finally:
        probe.close()


async def meet(
    inbox: Inbox, server: Any, room: str, *, wait_timeout: float | None = 300.0,
    answer_timeout: float = 5.0, on_wait: Callable[[Address], None] | None = None,
) -> Meeting:
    """Register in ``room`` at ``server`` until the other peer is there.

    Retries every RETRY seconds (which also keeps our NAT's mapping to the
    server alive while we wait). RendezvousError if the server does not
    answer within ``answer_timeout``, refuses, or no peer comes within
    ``wait_timeout`` (None: wait for ever)."""
    if not isinstance(room, str) or not 0 < len(room) <= MAX_ROOM:
        raise ValueError(f"room must be a non-empty str of at most {MAX_ROOM} characters")
    loop = asyncio.get_running_loop()
    my_id = secrets.token_hex(8)
    local = local_addresses(inbox.sock, server)
    register = padded({"op": "register", "room": room, "id": my_id,
                       "local": [list(a) for a in local[:MAX_LOCAL]]})
    server_key = (server[0], server[1])
    start = loop.time()
    answered: Address | None = None
    next_send = start
    while True:
        now = loop.time()
        if answered is None and now - start > answer_timeout:
            raise RendezvousError(f"the rendezvous server {server_key[0]}:{server_key[1]} does not answer")
        if answered is not None and wait_timeout is not None and now - start > wait_timeout:
            raise RendezvousError(f"no peer came to room {room!r} within {wait_timeout:g} s")
        if now >= next_send:
            inbox.send(register, server)
            next_send = now + RETRY
        got = await inbox.receive(next_send - loop.time())
        if got is None:
            continue
        data, addr = got
        msg = decode(data)
        if msg is None or addr != server_key:
            continue
        if msg["op"] == "error":
            raise RendezvousError(f"rendezvous refused: {msg.get('reason')}")
        you = parse_address(msg.get("you"))
        if you is None:
            continue
        if msg["op"] == "wait":
            if answered is None and on_wait is not None:
                on_wait(you)
            answered = you
        elif msg["op"] == "peer":
            peer = msg.get("peer")
            if not isinstance(peer, dict) or not isinstance(peer.get("id"), str):
                continue
            public = parse_address(peer.get("public"))
            plocal = peer.get("local")
            if public is None or not isinstance(plocal, list):
                continue
            return Meeting(
                server_key, room, my_id, local, you, peer["id"], public,
                [a for a in (parse_address(v) for v in plocal[:MAX_LOCAL]) if a is not None])
