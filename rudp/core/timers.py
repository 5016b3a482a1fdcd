"""The deadlines of one connection: absolute times, or None when not armed.

RFC 9293 §3.8 names the timers: retransmission (RFC 6298), persist
(§3.8.6.1), delayed ACK (§3.8.6.3), keep-alive (§3.8.4) and TIME-WAIT
(§3.10.8, shared here with the FIN_WAIT_2 timeout); the tail loss probe
comes from RFC 8985 §7, RACK's reordering timer from §6.3, and ``pace`` is
when the pacer (rudp.core.pacing) lets held-back data leave. What each does
on expiry is the connection's business; this object only keeps them and
says which is due.
"""

from __future__ import annotations


class Timers:
    __slots__ = ("rtx", "tlp", "reo", "persist", "delack", "keepalive", "close", "pace")

    def __init__(self) -> None:
        self.rtx: float | None = None  # retransmission timeout
        self.tlp: float | None = None  # tail loss probe
        self.reo: float | None = None  # RACK reordering window (RFC 8985 §6.3)
        self.persist: float | None = None  # zero-window probe / SWS override
        self.delack: float | None = None  # delayed ACK
        self.keepalive: float | None = None
        self.close: float | None = None  # TIME_WAIT or FIN_WAIT_2 expiry
        self.pace: float | None = None  # the pacer releases held-back data

    def earliest(self) -> float | None:
        """The first deadline of all, or None."""
        best = self.rtx
        for t in (self.tlp, self.reo, self.delack, self.persist, self.keepalive, self.close,
                  self.pace):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def stop_all(self) -> None:
        """A finished connection has nothing left to time."""
        self.rtx = self.tlp = self.reo = self.persist = self.delack = self.keepalive = None
        self.close = self.pace = None

    @staticmethod
    def due(deadline: float | None, now: float) -> bool:
        return deadline is not None and now >= deadline
