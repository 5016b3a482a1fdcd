"""rudp.core.seqnum: sequence arithmetic modulo 2**32 (RFC 9293 §3.4, RFC 1982)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rudp.core.seqnum import (
    MASK,
    MOD,
    seq_add,
    seq_diff,
    seq_ge,
    seq_gt,
    seq_in,
    seq_le,
    seq_lt,
    seq_max,
    seq_min,
)

SEQ = st.integers(0, MASK)
NEAR_WRAP = st.integers(MOD - 1000, MASK) | st.integers(0, 1000)
ANY_SEQ = SEQ | NEAR_WRAP
# Distances the comparisons are defined for: |d| < 2**31.
DIST = st.integers(-(2**31) + 1, 2**31 - 1)


def test_constants() -> None:
    assert MOD == 2**32 and MASK == 0xFFFFFFFF


@pytest.mark.parametrize(
    ("a", "n", "expected"),
    [
        (0, 0, 0),
        (MASK, 1, 0),
        (MASK, 2, 1),
        (0, -1, MASK),
        (5, -10, MOD - 5),
        (2**31, 2**31, 0),
        (123, 3 * MOD, 123),
    ],
)
def test_seq_add_wraps(a: int, n: int, expected: int) -> None:
    assert seq_add(a, n) == expected


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
    assert seq_add(b, d) == a


@given(ANY_SEQ, DIST)
@example(MASK, 1)
@example(0, -1)
def test_seq_diff_inverts_seq_add(a: int, d: int) -> None:
    b = seq_add(a, d)
    assert 0 <= b <= MASK
    assert seq_diff(b, a) == d
    assert seq_diff(a, b) == -d


@given(ANY_SEQ, DIST)
@example(MASK, 1)
@example(0, 1)
@example(2**31 - 1, 1)
def test_comparisons_follow_the_sign_of_the_distance(a: int, d: int) -> None:
    b = seq_add(a, d)
    assert seq_lt(a, b) == (d > 0) == seq_gt(b, a)
    assert seq_le(a, b) == (d >= 0) == seq_ge(b, a)
    assert seq_lt(a, b) != seq_ge(a, b)
    assert seq_max(a, b) == (b if d > 0 else a)
    assert seq_min(a, b) == (a if d > 0 else b)


def test_comparisons_across_the_wrap() -> None:
    assert seq_lt(MASK, 0) and seq_gt(0, MASK)
    assert seq_lt(MOD - 100, 100)
    assert seq_le(7, 7) and seq_ge(7, 7) and not seq_lt(7, 7) and not seq_gt(7, 7)
    assert seq_max(MASK, 3) == 3 and seq_min(MASK, 3) == MASK


@given(ANY_SEQ, st.integers(0, MASK), st.integers(0, MASK))
@example(MASK, 2, 1)
@example(MASK, 2, 2)
@example(5, 0, 0)
def test_seq_in_is_half_open_from_lo(lo: int, size: int, k: int) -> None:
    hi = seq_add(lo, size)
    assert seq_in(seq_add(lo, k), lo, hi) == (k < size)


def test_seq_in_known_values() -> None:
    assert seq_in(MASK, MASK - 1, 1)  # window straddling the wrap
    assert seq_in(0, MASK - 1, 1)
    assert not seq_in(1, MASK - 1, 1)  # hi is excluded
    assert seq_in(MASK - 1, MASK - 1, 1)  # lo is included
    assert not seq_in(MASK - 2, MASK - 1, 1)
    assert not seq_in(5, 5, 5)  # an empty range holds nothing
    assert seq_in(2**31 + 5, 0, 2**31 + 10)  # windows may exceed half the ring here
