"""Pacing: when the next data segment may leave (the core's half of it).

A token bucket filled at the controller's pacing rate. It holds at most a
burst of about BURST_TIME of data (at least MIN_BURST_SEGMENTS segments):
the event loop's timers are good to about a millisecond, so spacing each
segment would wake the loop per segment for nothing, while a burst of a
millisecond's worth leaves the bottleneck queue no worse than that. When
the bucket is empty the connection stops sending and asks, through its
``pace`` timer, to be woken when a full burst is due again.

That timer fires late (timers are rounded to the millisecond, and a busy
loop reaches them after its current batch): tokens for the time past the
release are kept, up to MAX_LAG, rather than cut at one burst. Cutting them
would send at burst / (burst + lateness) of the rate, and BBR, whose
delivery-rate samples then measure that shortfall, would lower its bandwidth
estimate, its pacing rate, and so on down. Linux's TCP likewise credits the
OS's lateness against the next departure (``tcp_update_skb_after_send``).
"""

from __future__ import annotations

BURST_TIME = 0.001
MIN_BURST_SEGMENTS = 2
MAX_LAG = 0.004  # seconds of late wake-up made up for (at most 4 bursts more)
UNPACED = 1 << 62


class Pacer:
    __slots__ = ("tokens", "last", "rate", "burst", "due")

    def __init__(self) -> None:
        self.tokens = 0.0  # bytes that may leave now (negative: owed)
        self.last = float("-inf")  # when tokens were last refilled
        self.rate = 0.0
        self.burst = 0.0
        self.due: float | None = None  # release time while data is held back

    def allowance(self, rate: float, smss: int, now: float) -> int:
        """Refill at ``rate`` bytes/s up to a burst; the bytes that may leave
        now (sending continues while it is positive, so one segment may
        overdraw it and is repaid by the next refill)."""
        burst = rate * BURST_TIME
        if burst < MIN_BURST_SEGMENTS * smss:
            burst = float(MIN_BURST_SEGMENTS * smss)
        tokens = self.tokens + (now - self.last) * rate
        cap = burst
        due = self.due
        if due is not None:
            # Held back until ``due``, woken at ``now``: the lateness is the
            # loop's, not the path's; what it earned may still leave.
            self.due = None
            if now > due:
                cap += (now - due if now - due < MAX_LAG else MAX_LAG) * rate
        if tokens > cap:
            tokens = cap
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
        due = now + (self.burst - self.tokens) / self.rate
        self.due = due
        return due
