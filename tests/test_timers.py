"""rudp.timers alone: the deadlines of one connection (RFC 9293 §3.8).

Deadlines are plain absolute numbers chosen by the test; nothing here reads a
clock.
"""

from __future__ import annotations

import itertools

import pytest

from rudp.core.timers import Timers

NAMES = ("rtx", "tlp", "persist", "delack", "keepalive", "close")


def test_nothing_armed_at_first() -> None:
    t = Timers()
    assert all(getattr(t, name) is None for name in NAMES)
    assert t.earliest() is None


@pytest.mark.parametrize("name", NAMES)
def test_earliest_of_one_armed_timer(name: str) -> None:
    # Each timer alone counts: a timer left out of earliest() would never fire.
    t = Timers()
    setattr(t, name, 7.5)
    assert t.earliest() == 7.5


@pytest.mark.parametrize("name", NAMES)
def test_earliest_when_each_timer_is_first(name: str) -> None:
    # All six armed; the one named is the earliest and must win whatever its
    # place in the scan (including rtx, the starting value, losing to later ones).
    t = Timers()
    for i, other in enumerate(NAMES):
        setattr(t, other, 100.0 + i)
    setattr(t, name, 3.0)
    assert t.earliest() == 3.0


@pytest.mark.parametrize("name", NAMES)
def test_earliest_when_each_timer_is_last(name: str) -> None:
    # The one named is the latest of all six: it must never be returned.
    t = Timers()
    for i, other in enumerate(NAMES):
        setattr(t, other, 10.0 + i)
    setattr(t, name, 50.0)
    expected = min(10.0 + i for i, other in enumerate(NAMES) if other != name)
    assert t.earliest() == expected


def test_earliest_over_every_subset() -> None:
    # Every subset of the six timers, armed with distinct deadlines in an order
    # that differs from the scan order: earliest() is min() of the armed ones.
    deadlines = dict(zip(NAMES, (4.0, 2.0, 6.0, 1.0, 5.0, 3.0)))
    for r in range(len(NAMES) + 1):
        for subset in itertools.combinations(NAMES, r):
            t = Timers()
            for name in subset:
                setattr(t, name, deadlines[name])
            expected = min((deadlines[n] for n in subset), default=None)
            assert t.earliest() == expected, subset


def test_earliest_zero_is_a_deadline() -> None:
    # 0.0 is a real deadline, not "unarmed": a truthiness test would skip it.
    t = Timers()
    t.rtx = 5.0
    t.delack = 0.0
    assert t.earliest() == 0.0
    t = Timers()
    t.rtx = 0.0
    t.keepalive = 5.0
    assert t.earliest() == 0.0


def test_earliest_with_equal_deadlines() -> None:
    t = Timers()
    t.persist = t.close = 9.0
    assert t.earliest() == 9.0


def test_stop_all_disarms_everything() -> None:
    # A finished connection has nothing left to time (Connection.release).
    t = Timers()
    for i, name in enumerate(NAMES):
        setattr(t, name, float(i + 1))
    t.stop_all()
    assert all(getattr(t, name) is None for name in NAMES)
    assert t.earliest() is None


def test_timers_can_be_rearmed_after_stop_all() -> None:
    t = Timers()
    t.rtx = 1.0
    t.stop_all()
    t.close = 60.0
    assert t.earliest() == 60.0


def test_due() -> None:
    # A deadline is due at and after its time, never before, never when unarmed.
    assert not Timers.due(None, 0.0)
    assert not Timers.due(None, 1e9)
    assert not Timers.due(10.0, 9.999)
    assert Timers.due(10.0, 10.0)  # at the deadline exactly
    assert Timers.due(10.0, 10.001)
    assert Timers.due(0.0, 0.0)  # 0.0 is armed, not None


def test_due_reads_the_instance_attribute() -> None:
    t = Timers()
    t.delack = 2.0
    assert t.due(t.delack, 2.0)
    assert not t.due(t.rtx, 2.0)
