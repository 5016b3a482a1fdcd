"""A passive open on one port, and how it stands up to a SYN flood.

The defences of RFC 4987: a bounded half-open queue with a per-source share,
SYN cookies (§3.6) when the queue is full or always, eviction of the oldest
half-open entry when cookies are off (§3.4, "random drop" by age), and fewer
SYN,ACK retries (so a shorter SYN_RCVD lifetime) once the queue is half full
(§3.3, as Linux's tcp_synack_retries under pressure). The endpoint asks
:meth:`Listener.admit` what to do with each SYN and keeps the bookkeeping here
current; everything a netstat-like view needs is in :meth:`Listener.stats`.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from typing import TYPE_CHECKING, Hashable

from .config import Config
from .syncookies import CookieJar

if TYPE_CHECKING:
    from .connection import Connection

SYN_COOKIE_MODES = ("auto", "always", "never")

# What to do with a SYN (Listener.admit).
ACCEPT = "accept"  # keep a half-open connection (SYN_RCVD) as usual
COOKIE = "cookie"  # answer with a SYN cookie, keep nothing
EVICT = "evict"  # make room by dropping the oldest half-open connection, then accept
DROP = "drop"

#: SYN,ACK retransmissions for connections that start while the half-open
#: queue is at least half full: none, so such an entry lives one RTO and an
#: address that may be spoofed gets one SYN,ACK per SYN, never more bytes than
#: it sent (a real peer's retransmitted SYN is answered again). Linux lowers
#: tcp_synack_retries under pressure in the same spirit.
PRESSURE_SYN_RETRIES = 0


def source_of(addr: Hashable) -> Hashable:
    """The part of a UDP address that names a host: the IP, without the port."""
    return addr[0] if isinstance(addr, tuple) and addr else addr


class Listener:
    """A passive open on one port, with bounded accept and half-open queues."""

    __slots__ = ("port", "config", "pressure_config", "backlog", "max_half_open",
                 "max_half_open_per_source", "syn_cookies", "accept_queue", "pending",
                 "per_source", "counters", "cookies", "rcv_wscale", "syn_ack_window",
                 "syn_ack_mss", "full_options")

    def __init__(
        self,
        port: int,
        config: Config,
        backlog: int,
        max_half_open: int,
        *,
        rng: random.Random,
        syn_cookies: str = "auto",
        max_half_open_per_source: int | None = None,
    ) -> None:
        if syn_cookies not in SYN_COOKIE_MODES:
            raise ValueError(f"syn_cookies must be one of {SYN_COOKIE_MODES}, got {syn_cookies!r}")
        self.port = port
        self.config = config
        self.pressure_config = config.replace(
            syn_retries=min(config.syn_retries, PRESSURE_SYN_RETRIES))
        self.backlog = backlog
        self.max_half_open = max_half_open
        if max_half_open_per_source is None:
            max_half_open_per_source = max(4, max_half_open // 8)
        if max_half_open_per_source < 1:
            raise ValueError("max_half_open_per_source must be >= 1")
        self.max_half_open_per_source = max_half_open_per_source
        self.syn_cookies = syn_cookies
        self.accept_queue: deque[Connection] = deque()
        self.pending: dict[Connection, Hashable] = {}  # half-open, oldest first -> source
        self.per_source: Counter[Hashable] = Counter()  # half-open connections per source
        self.counters: Counter[str] = Counter()
        self.cookies = CookieJar(rng)
        # What cookie SYN,ACKs offer, computed once (a SYN,ACK's window is never scaled).
        self.rcv_wscale = config.rcv_wscale
        self.syn_ack_window = min(config.recv_buffer, 0xFFFF)
        self.syn_ack_mss = min(config.mss, 0xFFFF)
        #: Set by the endpoint: cookie SYN,ACKs may come from the raw-bytes path.
        self.full_options = False

    @property
    def half_open(self) -> int:
        """Connections in SYN_RCVD now."""
        return len(self.pending)

    @property
    def under_pressure(self) -> bool:
        return len(self.pending) * 2 >= self.max_half_open

    def accept(self) -> Connection | None:
        """The oldest established connection not yet accepted, if any."""
        return self.accept_queue.popleft() if self.accept_queue else None

    def admit(self, source: Hashable) -> str:
        """What to do with a SYN from ``source`` (RFC 4987 §3): ACCEPT, COOKIE,
        EVICT or DROP, counting the refusals."""
        mode = self.syn_cookies
        if mode == "always":
            return COOKIE
        if self.per_source[source] >= self.max_half_open_per_source:
            if mode == "auto":
                return COOKIE  # one address cannot hold the table, but is still answered
            self.counters["syn_dropped_per_source"] += 1
            return DROP
        if len(self.pending) >= self.max_half_open:
            return COOKIE if mode == "auto" else EVICT
        return ACCEPT

    def answers_with_cookie(self, source: Hashable) -> bool:
        """Whether :meth:`admit` would say COOKIE for ``source`` (it counts
        nothing in that case either)."""
        mode = self.syn_cookies
        if mode == "always":
            return True
        return mode == "auto" and (self.per_source[source] >= self.max_half_open_per_source
                                   or len(self.pending) >= self.max_half_open)

    def config_for_new(self) -> Config:
        """Options for a new half-open connection: fewer SYN,ACK retries under pressure."""
        return self.pressure_config if self.under_pressure else self.config

    def oldest_half_open(self) -> Connection | None:
        return next(iter(self.pending), None)

    def half_opened(self, conn: Connection, source: Hashable) -> None:
        self.pending[conn] = source
        self.per_source[source] += 1

    def half_closed(self, conn: Connection) -> None:
        """``conn`` left SYN_RCVD (established, reset, timed out or evicted)."""
        source = self.pending.pop(conn, None)
        if source is not None:
            left = self.per_source[source] - 1
            if left > 0:
                self.per_source[source] = left
            else:
                del self.per_source[source]

    def stats(self) -> dict[str, int]:
        """The netstat view: half-open now, queues, and every counter."""
        out = {"port": self.port, "half_open": len(self.pending), "backlog": self.backlog,
               "max_half_open": self.max_half_open, "accept_queue": len(self.accept_queue)}
        out.update(self.counters)
        return out

    def __repr__(self) -> str:
        return (f"<Listener port={self.port} queued={len(self.accept_queue)} "
                f"half_open={len(self.pending)}>")
