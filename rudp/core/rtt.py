"""Retransmission timeout estimator (RFC 6298)."""

from __future__ import annotations

_ALPHA = 1 / 8
_BETA = 1 / 4
_K = 4
_G = 0.001  # RFC 6298 G: samples are in microseconds now, but 1 ms stays the floor of K*RTTVAR


class RttEstimator:
    """SRTT/RTTVAR/RTO per RFC 6298 §2, with exponential backoff (§5.5)."""

    __slots__ = ("srtt", "rttvar", "rto_min", "rto_max", "_base", "backoff", "rto")

    def __init__(self, initial: float, rto_min: float, rto_max: float) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto_min = rto_min
        self.rto_max = rto_max
        self._base = initial
        self.backoff = 0
        #: Current RTO, bounded (§2.4, §2.5) and doubled per backoff step (§5.5);
        #: recomputed when an input changes, since every send reads it.
        self.rto = 0.0
        self._update()

    def _update(self) -> None:
        rto = max(self.rto_min, min(self._base, self.rto_max))
        self.rto = min(rto * (1 << self.backoff), self.rto_max)

    def sample(self, rtt: float) -> None:
        """Feed one RTT measurement (never from a retransmitted segment: Karn, §3)."""
        if rtt < 0:
            return
        srtt = self.srtt
        if srtt is None:  # §2.2 first measurement
            self.srtt = srtt = rtt
            self.rttvar = rttvar = rtt / 2
        else:  # §2.3
            self.rttvar = rttvar = (1 - _BETA) * self.rttvar + _BETA * abs(srtt - rtt)
            self.srtt = srtt = (1 - _ALPHA) * srtt + _ALPHA * rtt
        self._base = srtt + max(_G, _K * rttvar)
        self.backoff = 0  # §5.7: a new sample ends the backoff
        self._update()

    def back_off(self) -> None:
        if self.rto < self.rto_max:
            self.backoff += 1
            self._update()
