"""32-bit sequence-number arithmetic (RFC 9293 §3.4, RFC 1982 serial numbers).

Sequence numbers live in a ring of 2**32; comparisons are only meaningful for
numbers less than 2**31 apart, which TCP's window sizes guarantee.
"""

from __future__ import annotations

MOD = 1 << 32
MASK = MOD - 1
_HALF = 1 << 31


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b``, in ``[-2**31, 2**31)``."""
    return ((a - b + _HALF) & MASK) - _HALF


def seq_gt(a: int, b: int) -> bool:
    return seq_diff(a, b) > 0


def ts_clock(now: float, offset: int) -> int:
    """A TSval: a millisecond clock with a per-connection offset (RFC 7323 §5.4)."""
    return (int(now * 1000) + offset) & MASK
