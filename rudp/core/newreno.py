"""NewReno: slow start and congestion avoidance per RFC 5681 §3.1, recovery per RFC 6582."""

from __future__ import annotations

from .congestion import CongestionControl


class NewReno(CongestionControl):
    """Additive increase, multiplicative decrease by half; never paced (the
    golden traces pin its wire behaviour)."""

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
