"""A lossy UDP relay on loopback, for demos and tests of the real socket path.

Datagrams from a client to the proxy's port go to the target, and replies
come back, each direction dropped, delayed, duplicated or reordered with the
configured probabilities from a seeded generator. It forwards only to the one
target address it was given.
"""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any


class _Side(asyncio.DatagramProtocol):
    def __init__(self, proxy: LossyProxy, name: str) -> None:
        self.proxy = proxy
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Room for a sender's bursts: the relay models loss, not a tiny buffer.
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
                except OSError:  # pragma: no cover - platform limits
                    pass

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.proxy._received(self.name, data, addr)


class LossyProxy:
    """Relays one client <-> one target with loss, delay, duplication, reordering."""

    def __init__(
        self,
        target: tuple[str, int],
        *,
        loss: float = 0.0,
        delay: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        seed: int = 0,
    ) -> None:
        for name, p in (("loss", loss), ("duplicate", duplicate), ("reorder", reorder)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability, got {p}")
        self.target = target
        self.loss, self.delay, self.duplicate, self.reorder = loss, delay, duplicate, reorder
        self._rng = random.Random(seed)
        self._front: _Side | None = None
        self._back: _Side | None = None
        self._client: Any = None
        self.forwarded = 0
        self.dropped = 0

    async def start(self, host: str = "127.0.0.1") -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        _, self._front = await loop.create_datagram_endpoint(
            lambda: _Side(self, "front"), local_addr=(host, 0)
        )
        _, self._back = await loop.create_datagram_endpoint(
            lambda: _Side(self, "back"), remote_addr=self.target
        )
        assert self._front.transport is not None
        addr = self._front.transport.get_extra_info("sockname")
        return addr[0], addr[1]

    def _received(self, side: str, data: bytes, addr: Any) -> None:
        if side == "front":
            self._client = addr
            out, dest = self._back, None
        else:
            if self._client is None:
                return
            out, dest = self._front, self._client
        rng = self._rng
        if rng.random() < self.loss:
            self.dropped += 1
            return
        copies = 2 if rng.random() < self.duplicate else 1
        delay = self.delay * (3 if rng.random() < self.reorder else 1)
        loop = asyncio.get_running_loop()
        for _ in range(copies):
            self.forwarded += 1
            if delay:
                loop.call_later(delay, self._send, out, data, dest)
            else:
                self._send(out, data, dest)

    @staticmethod
    def _send(side: _Side | None, data: bytes, dest: Any) -> None:
        if side is not None and side.transport is not None and not side.transport.is_closing():
            side.transport.sendto(data, dest)

    def close(self) -> None:
        for side in (self._front, self._back):
            if side is not None and side.transport is not None:
                side.transport.close()
