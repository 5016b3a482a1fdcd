"""Initial sequence numbers (RFC 9293 §3.4.1, RFC 6528)."""

from __future__ import annotations

import hashlib
from typing import Hashable


class IsnGenerator:
    """ISN = M + F(4-tuple, secret): a 4-microsecond clock plus a keyed hash.

    The keyed hash makes ISNs unguessable off-path (RFC 6528 §3); the clock
    keeps successive incarnations of one 4-tuple moving forward.
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        # The core draws no randomness itself: the owner gives the key
        # (os.urandom in the asyncio adapter, a seed in the simulator).
        self._secret = secret

    def __call__(self, now: float, addr: Hashable, local_port: int, remote_port: int) -> int:
        h = hashlib.blake2s(
            repr((addr, local_port, remote_port)).encode(), key=self._secret, digest_size=4
        )
        return (int(now * 250_000) + int.from_bytes(h.digest(), "big")) & 0xFFFFFFFF
