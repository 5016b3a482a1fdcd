"""SYN cookies (RFC 4987 §3.6): a listener that answers a SYN without keeping
any state, and rebuilds the connection when the peer's ACK brings the cookie back.

The cookie is the ISN of our SYN,ACK, 32 bits laid out as Linux's are in spirit:

    counter (5 bits) | MSS index (3 bits) | MAC (24 bits)

``counter`` is a coarse clock (one tick per ``SLOT`` seconds), the MSS index
points into :data:`MSS_TABLE`, and the MAC is a keyed BLAKE2s of the 4-tuple,
the peer's ISN, the counter and the MSS index. Each slot of the clock has its
own key, drawn from the randomness the endpoint was given and forgotten
after ``MAX_AGE`` slots: keys rotate, and a cookie older than that cannot
validate. When the peer offers timestamps, its window scale and SACK-permitted
ride in the low bits of our TSval, which the ACK echoes (as Linux does).
"""

from __future__ import annotations

import bisect
import hashlib
import random
import struct
from typing import Hashable

from .seqnum import MASK, seq_gt

SLOT = 64.0  # seconds per tick of the cookie clock
MAX_AGE = 2  # a cookie validates for this many slots after its own (2-3 minutes)
MSS_TABLE = (88, 536, 1024, 1220, 1300, 1400, 1432, 1460)
_TS_BITS = 5  # TSval bits that carry options: SACK-permitted, then 4 of window scale
_TS_MASK = (1 << _TS_BITS) - 1
_NO_WSCALE = 0xF
_MAC_HEAD = struct.Struct(">HHIBB")


class CookieJar:
    """Makes and checks cookies for one listener."""

    __slots__ = ("_rng", "_keys")

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        # absolute slot -> BLAKE2s keyed with that slot's key, copied per use
        # (cheaper than keying a new one for every SYN under a flood)
        self._keys: dict[int, hashlib.blake2s] = {}

    def _key(self, slot: int, create: bool) -> hashlib.blake2s | None:
        key = self._keys.get(slot)
        if key is None and create:
            secret = self._rng.getrandbits(128).to_bytes(16, "big")
            key = self._keys[slot] = hashlib.blake2s(key=secret, digest_size=3)
            for old in [s for s in self._keys if s < slot - MAX_AGE]:
                del self._keys[old]  # rotated out: its cookies no longer validate
        return key

    @staticmethod
    def _mac(key: hashlib.blake2s, addr: Hashable, lport: int, rport: int, peer_isn: int,
             counter: int, mss_index: int) -> int:
        h = key.copy()
        h.update(_mac_input(addr, lport, rport, peer_isn, counter, mss_index))
        return int.from_bytes(h.digest(), "big")

    def make(self, now: float, addr: Hashable, lport: int, rport: int, peer_isn: int,
             peer_mss: int) -> int:
        """The ISN for a SYN,ACK answering the SYN with ``peer_isn`` and ``peer_mss``."""
        slot = int(now // SLOT)
        counter = slot & 0x1F
        mss_index = max(bisect.bisect_right(MSS_TABLE, peer_mss) - 1, 0)  # largest entry <= peer's
        key = self._keys.get(slot) or self._key(slot, create=True)
        assert key is not None
        h = key.copy()
        h.update(_mac_input(addr, lport, rport, peer_isn, counter, mss_index))
        return counter << 27 | mss_index << 24 | int.from_bytes(h.digest(), "big")

    def check(self, now: float, addr: Hashable, lport: int, rport: int, peer_isn: int,
              cookie: int) -> int | None:
        """The MSS the cookie carries, or None if it is forged, mangled or too old."""
        counter = cookie >> 27
        mss_index = cookie >> 24 & 0x7
        slot = int(now // SLOT)
        for age in range(MAX_AGE + 1):
            if (slot - age) & 0x1F == counter:
                key = self._key(slot - age, create=False)
                if key is not None and self._mac(key, addr, lport, rport, peer_isn, counter,
                                                 mss_index) == cookie & 0xFFFFFF:
                    return MSS_TABLE[mss_index]
                return None
        return None

    def recently_used(self, now: float) -> bool:
        """Whether a cookie made now could still validate: worth checking ACKs then."""
        return bool(self._keys) and max(self._keys) >= int(now // SLOT) - MAX_AGE


def _mac_input(addr: Hashable, lport: int, rport: int, peer_isn: int, counter: int,
               mss_index: int) -> bytes:
    """What the MAC covers: the 4-tuple, the peer's ISN, the clock and the MSS index
    (a UDP address as "host:port", which the port's digits at the end make unique)."""
    head = _MAC_HEAD.pack(lport, rport, peer_isn, counter, mss_index)
    if type(addr) is tuple and len(addr) == 2:
        return head + f"{addr[0]}:{addr[1]}".encode()
    return head + repr(addr).encode()


def encode_ts_options(tsval: int, wscale: int | None, sack_permitted: bool) -> int:
    """Our TSval with the peer's window scale and SACK-permitted in its low bits,
    never ahead of the clock (as Linux's cookie_init_timestamp)."""
    bits = (_NO_WSCALE if wscale is None else min(wscale, 14)) | (0x10 if sack_permitted else 0)
    ts = (tsval & ~_TS_MASK & MASK) | bits
    if seq_gt(ts, tsval):
        ts = (ts - (1 << _TS_BITS)) & MASK
    return ts


def decode_ts_options(tsecr: int) -> tuple[int | None, bool]:
    """(window scale or None, SACK-permitted) from the TSecr of the cookie's ACK."""
    wscale = tsecr & 0xF
    return (None if wscale == _NO_WSCALE else wscale), bool(tsecr & 0x10)
