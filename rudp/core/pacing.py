"""Pacing: when the next data segment may leave (the core's half of it).

A token bucket filled at the controller's pacing rate. It holds at most a
burst of about BURST_TIME of data (at least MIN_BURST_SEGMENTS segments):
the event loop's timers are good to about a millisecond, so spacing each
segment would wake the loop per segment for nothing, while a burst of a
millisecond's worth leaves the bottleneck queue no worse than that. When
the bucket is empty the connection stops sending and asks, through its
``pace`` timer, to be woken when a full burst is due again.
"""

from __future__ import annotations

BURST_TIME = 0.001
MIN_BURST_SEGMENTS = 2
UNPACED = 1 << 62


class Pacer:
    __slots__ = ("tokens", "last", "rate", "burst")

    def __init__(self) -> None:
        self.tokens = 0.0  # bytes that may leave now (negative: owed)
        self.last = float("-inf")  # when tokens were last refilled
        self.rate = 0.0
        self.burst = 0.0

    def allowance(self, rate: float, smss: int, now: float) -> int:
        """Refill at ``rate`` bytes/s up to a burst; the bytes that may leave
        now (sending continues while it is positive, so one segment may
        overdraw it and is repaid by the next refill)."""
        burst = rate * BURST_TIME
        if burst < MIN_BURST_SEGMENTS * smss:
            burst = float(MIN_BURST_SEGMENTS * smss)
        tokens = self.tokens + (now - self.last) * rate
        if tokens > burst:
            tokens = burst
        self.tokens = tokens
        self.last = now
        self.rate = rate
        self.burst = burst
        return int(tokens) if tokens >= 1 else 0

    def spent(self, n: int) -> None:
        self.tokens -= n

    def release_time(self, now: float) -> float:
        """When a whole burst will have refilled (the rate of the last
        ``allowance``): the pace timer's deadline while sending is held back."""
        return now + (self.burst - self.tokens) / self.rate
