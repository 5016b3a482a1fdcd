"""Congestion control behind a small interface (RFC 5681, RFC 6582, RFC 6675)."""

from __future__ import annotations

from typing import Callable


class CongestionControl:
    """Interface: the connection reports events, reads ``cwnd``.

    The connection owns loss detection and recovery bookkeeping (which bytes
    to resend); a controller only decides how much may be in flight.
    """

    __slots__ = ("mss", "cwnd", "ssthresh")

    def __init__(self, mss: int, initial_window: int) -> None:
        self.mss = mss
        self.cwnd = initial_window * mss
        self.ssthresh = 1 << 62  # RFC 5681 §3.1: arbitrarily high at first

    def on_ack(self, acked: int, in_flight: int, now: float) -> None:
        """New data was cumulatively acknowledged outside recovery."""
        raise NotImplementedError

    def on_congestion(self, in_flight: int, now: float) -> None:
        """Fast retransmit: a loss was detected by duplicate ACKs or SACK."""
        raise NotImplementedError

    def on_recovery_end(self, in_flight: int, now: float) -> None:
        """Fast recovery ended with a full ACK."""
        raise NotImplementedError

    def on_timeout(self, in_flight: int, now: float) -> None:
        """The retransmission timer expired."""
        raise NotImplementedError


class NewReno(CongestionControl):
    """Slow start and congestion avoidance per RFC 5681 §3.1, recovery per RFC 6582."""

    __slots__ = ("_bytes_acked",)

    def __init__(self, mss: int, initial_window: int) -> None:
        super().__init__(mss, initial_window)
        self._bytes_acked = 0

    def on_ack(self, acked: int, in_flight: int, now: float) -> None:
        if self.cwnd < self.ssthresh:
            # Slow start with appropriate byte counting, L = 2*SMSS (RFC 3465 §2.2).
            self.cwnd += min(acked, 2 * self.mss)
        else:
            # Congestion avoidance: one SMSS per window acknowledged (RFC 5681 eq. 3 note).
            self._bytes_acked += acked
            if self._bytes_acked >= self.cwnd:
                self._bytes_acked -= self.cwnd
                self.cwnd += self.mss

    def on_congestion(self, in_flight: int, now: float) -> None:
        # RFC 5681 eq. 4; RFC 6675 §5 step 4.2 sets cwnd = ssthresh.
        self.ssthresh = max(in_flight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh
        self._bytes_acked = 0

    def on_recovery_end(self, in_flight: int, now: float) -> None:
        # RFC 6582 §3.2 step 6, option (1) guarded against bursts.
        self.cwnd = min(self.ssthresh, max(in_flight, self.mss) + self.mss)

    def on_timeout(self, in_flight: int, now: float) -> None:
        # RFC 5681 eq. 4 and the loss window of one segment.
        self.ssthresh = max(in_flight // 2, 2 * self.mss)
        self.cwnd = self.mss
        self._bytes_acked = 0


CONTROLLERS: dict[str, Callable[[int, int], CongestionControl]] = {"newreno": NewReno}


def create(name: str, mss: int, initial_window: int) -> CongestionControl:
    try:
        factory = CONTROLLERS[name]
    except KeyError:
        raise ValueError(
            f"unknown congestion control {name!r}; choose from {sorted(CONTROLLERS)}"
        ) from None
    return factory(mss, initial_window)
