"""The relay fallback, only when asked for: segments through the rendezvous server.

Where no direct path exists (symmetric NATs on both sides), two peers that
both pass ``relay=True`` ask the rendezvous server (started with
``relay=True``) to forward their datagrams. The server then sees and carries
all their traffic, so this is never done silently: the caller asked for it,
``nat_mapping["relayed"]`` says so and ``rudp connect --relay`` prints it.

The rudp endpoint stays as it is: it talks to a loopback socket of a
``RelayShim``, which wraps each datagram (RELAY_MAGIC + segment) towards the
server from the socket the peer met the server with (so the NAT mapping the
server knows is the one used), and unwraps what the server forwards back.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from .rendezvous import RELAY_MAGIC, RETRY, Address, Inbox, Meeting, RendezvousError, decode, padded

#: Relayed segments carry RELAY_MAGIC too: a smaller MSS keeps them within 1500 bytes.
RELAY_MSS = 1432 - len(RELAY_MAGIC)


async def request_relay(inbox: Inbox, meeting: Meeting, timeout: float) -> None:
    """Ask the server to relay until it says both peers asked (relay-ok);
    RendezvousError if it refuses or the peer does not ask within ``timeout``."""
    loop = inbox.loop
    msg = padded({"op": "relay", "room": meeting.room, "id": meeting.id})
    deadline = loop.time() + timeout
    next_send = loop.time()
    while True:
        now = loop.time()
        if now >= deadline:
            raise RendezvousError(f"no relay within {timeout:g} s: the peer did not ask for one "
                                  "(both sides need relay enabled)")
        if now >= next_send:
            inbox.send(msg, meeting.server)
            next_send = now + RETRY
        got = await inbox.receive(min(next_send, deadline) - loop.time())
        if got is None or got[1] != meeting.server:
            continue
        reply = decode(got[0])
        if reply is None:
            continue
        if reply["op"] == "error":
            raise RendezvousError(f"relay refused: {reply.get('reason')}")
        if reply["op"] == "relay-ok":
            return


class RelayShim:
    """Moves datagrams between a local rudp endpoint and the relay.

    ``outer`` is the socket that met the server; ``inner`` a loopback socket
    the endpoint (at ``endpoint_addr``) sends to. A full socket buffer or an
    error drops the datagram, as the network would; the engine retransmits.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, outer: socket.socket, server: Address,
                 inner: socket.socket, endpoint_addr: Any) -> None:
        self.loop = loop
        self.outer = outer
        self.inner = inner
        self.server = server
        self.endpoint_addr = endpoint_addr
        self.counters = {"to_relay": 0, "from_relay": 0, "dropped": 0}
        self._closed = False
        loop.add_reader(outer.fileno(), self._from_relay)
        loop.add_reader(inner.fileno(), self._to_relay)

    @property
    def address(self) -> Any:
        """Where the endpoint sends to reach the peer."""
        return self.inner.getsockname()

    def _from_relay(self) -> None:
        for _ in range(64):
            try:
                data, addr = self.outer.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            if (addr[0], addr[1]) != self.server or not data.startswith(RELAY_MAGIC):
                self.counters["dropped"] += 1  # a late punch or server reply
                continue
            try:
                self.inner.sendto(data[len(RELAY_MAGIC):], self.endpoint_addr)
                self.counters["from_relay"] += 1
            except OSError:
                self.counters["dropped"] += 1

    def _to_relay(self) -> None:
        for _ in range(64):
            try:
                data, addr = self.inner.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            if addr != self.endpoint_addr:
                self.counters["dropped"] += 1  # only our endpoint talks to this socket
                continue
            try:
                self.outer.sendto(RELAY_MAGIC + data, self.server)
                self.counters["to_relay"] += 1
            except OSError:
                self.counters["dropped"] += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for sock in (self.outer, self.inner):
            self.loop.remove_reader(sock.fileno())
            sock.close()
