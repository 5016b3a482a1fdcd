"""32-bit sequence-number arithmetic (RFC 9293 §3.4, RFC 1982 serial numbers).

Sequence numbers live in a ring of 2**32; comparisons are only meaningful for
numbers less than 2**31 apart, which TCP's window sizes guarantee.
"""

from __future__ import annotations

MOD = 1 << 32
MASK = MOD - 1
_HALF = 1 << 31


def seq_add(a: int, n: int) -> int:
    """``a + n`` in sequence space (``n`` may be negative)."""
    return (a + n) & MASK


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b``, in ``[-2**31, 2**31)``."""
    return ((a - b + _HALF) & MASK) - _HALF


def seq_lt(a: int, b: int) -> bool:
    return seq_diff(a, b) < 0


def seq_le(a: int, b: int) -> bool:
    return seq_diff(a, b) <= 0


def seq_gt(a: int, b: int) -> bool:
    return seq_diff(a, b) > 0


def seq_ge(a: int, b: int) -> bool:
    return seq_diff(a, b) >= 0


def seq_max(a: int, b: int) -> int:
    return a if seq_diff(a, b) >= 0 else b


def seq_min(a: int, b: int) -> int:
    return a if seq_diff(a, b) <= 0 else b


def seq_in(x: int, lo: int, hi: int) -> bool:
    """``lo <= x < hi`` in sequence space."""
    return 0 <= ((x - lo) & MASK) < ((hi - lo) & MASK)


def ts_clock(now: float, offset: int) -> int:
    """A TSval: a millisecond clock with a per-connection offset (RFC 7323 §5.4)."""
    return (int(now * 1000) + offset) & MASK
