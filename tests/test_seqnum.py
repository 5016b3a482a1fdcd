"""rudp.core.seqnum: sequence arithmetic modulo 2**32 (RFC 9293 §3.4, RFC 1982)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rudp.core.seqnum import MASK, MOD, seq_diff, seq_gt, ts_clock

SEQ = st.integers(0, MASK)
NEAR_WRAP = st.integers(MOD - 1000, MASK) | st.integers(0, 1000)
ANY_SEQ = SEQ | NEAR_WRAP
# Distances the comparisons are defined for: |d| < 2**31.
DIST = st.integers(-(2**31) + 1, 2**31 - 1)


def test_constants() -> None:
    assert MOD == 2**32 and MASK == 0xFFFFFFFF


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (0, 0, 0),
        (1, 0, 1),
        (0, 1, -1),
        (0, MASK, 1),  # 0 is one past 2**32 - 1
        (MASK, 0, -1),
        (10, MOD - 10, 20),
        (2**31 - 1, 0, 2**31 - 1),
        (2**31, 0, -(2**31)),  # exactly half the ring apart: the range is [-2**31, 2**31)
        (0, 2**31, -(2**31)),
    ],
)
def test_seq_diff_known_values(a: int, b: int, expected: int) -> None:
    assert seq_diff(a, b) == expected


@given(ANY_SEQ, ANY_SEQ)
def test_seq_diff_range_and_congruence(a: int, b: int) -> None:
    d = seq_diff(a, b)
    assert -(2**31) <= d < 2**31
    assert (d - (a - b)) % MOD == 0
    assert (b + d) & MASK == a


@given(ANY_SEQ, DIST)
@example(MASK, 1)
@example(0, -1)
def test_seq_diff_inverts_addition(a: int, d: int) -> None:
    b = (a + d) & MASK
    assert seq_diff(b, a) == d
    assert seq_diff(a, b) == -d


@given(ANY_SEQ, DIST)
@example(MASK, 1)
@example(0, 1)
@example(2**31 - 1, 1)
def test_seq_gt_follows_the_sign_of_the_distance(a: int, d: int) -> None:
    b = (a + d) & MASK
    assert seq_gt(b, a) == (d > 0)
    assert seq_gt(a, b) == (d < 0)


def test_seq_gt_across_the_wrap() -> None:
    assert seq_gt(0, MASK) and not seq_gt(MASK, 0)
    assert seq_gt(100, MOD - 100)
    assert not seq_gt(7, 7)


@pytest.mark.parametrize(
    ("now", "offset", "expected"),
    [
        (0.0, 0, 0),
        (1.0, 0, 1000),  # RFC 7323 §5.4: a clock between 1 ms and 1 s per tick; ours is 1 ms
        (0.0019, 5, 6),  # truncated to whole milliseconds, then offset
        (1.0, MASK, 999),  # wraps mod 2**32
    ],
)
def test_ts_clock(now: float, offset: int, expected: int) -> None:
    assert ts_clock(now, offset) == expected
