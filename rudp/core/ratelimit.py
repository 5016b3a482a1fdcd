"""Bounds on the replies a peer can draw from us without a valid connection.

RFC 5961 §7 asks for a limit on challenge ACKs. Linux applies one per host,
whose budget per second is randomised since CVE-2016-5696 (a fixed budget let
an off-path attacker count the challenge ACKs a connection sent, and so find
its sequence numbers), and one per connection for ACKs drawn by out-of-window
segments (tcp_invalid_ratelimit, 500 ms). RSTs to segments that match no
connection take a token bucket. Times are the caller's ``now``; the
randomness is the endpoint's.
"""

from __future__ import annotations

import random

#: Challenge ACKs per second for a whole endpoint (Linux's tcp_challenge_ack_limit).
CHALLENGE_ACK_LIMIT = 1000
#: Shortest interval between two ACKs one connection sends to segments it
#: refuses (challenges, out-of-window pure ACKs): Linux's tcp_invalid_ratelimit.
INVALID_RATELIMIT = 0.5
#: RSTs to segments that match nothing: a sustained rate and a burst.
RST_RATE = 1000.0
RST_BURST = 200


class ChallengeLimiter:
    """A per-second budget of challenge ACKs, drawn afresh each second between
    half the limit and one and a half times it (as Linux's tcp_send_challenge_ack)."""

    __slots__ = ("limit", "_rng", "_second", "_left")

    def __init__(self, rng: random.Random, limit: int = CHALLENGE_ACK_LIMIT) -> None:
        self.limit = limit
        self._rng = rng
        self._second = -1
        self._left = 0

    def allow(self, now: float) -> bool:
        second = int(now)
        if second != self._second:
            self._second = second
            self._left = (self.limit + 1) // 2 + self._rng.randrange(self.limit)
        if self._left > 0:
            self._left -= 1
            return True
        return False


class TokenBucket:
    """``rate`` events per second on average, at most ``burst`` at once."""

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        if self._last is not None and now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now if self._last is None or now > self._last else self._last
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
