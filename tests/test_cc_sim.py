"""Congestion controllers end to end in the virtual-time simulator: figures
that hold without timing (rudp.tools.sim models a bottleneck's rate and a
finite tail-drop queue). The numbers are in the report of the change that
added them, and in the comments here."""

from __future__ import annotations

import os
import sys

import pytest

from rudp.core.config import Config
from rudp.core.congestion import CONTROLLERS
from rudp.core.cubic import Cubic
from rudp.tools.sim import LinkConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ccsim import bulk, mathis, steady_fraction  # type: ignore[import-not-found]  # noqa: E402

SMSS = 1420  # 1432 - 12 bytes of timestamps


@pytest.mark.parametrize("loss", [0.005, 0.01, 0.02])
@pytest.mark.parametrize("seed", [1, 2])
def test_cubic_beats_the_mathis_bound(loss: float, seed: int) -> None:
    """Random loss on a 50 ms path with room to spare (100 Mbit/s): CUBIC's
    goodput stays above MSS/RTT x 1.22/sqrt(p), what a Reno flow gets.
    Measured (3 MB, seeds 1-5): 1.15-1.53 x the bound at 0.5%, 1.23-1.64 x
    at 1%, 1.35-1.54 x at 2%."""
    r = bulk(Config(), LinkConfig(delay=0.025, bandwidth=100e6, loss=loss), 3_000_000, seed=seed)
    assert r.goodput > mathis(SMSS, 0.05, loss)


@pytest.fixture
def cubic_plain(monkeypatch: pytest.MonkeyPatch) -> str:
    """CUBIC with standard slow start, for comparison."""
    monkeypatch.setitem(CONTROLLERS, "cubic_plain", lambda m, iw: Cubic(m, iw, hystart=False))
    return "cubic_plain"


def test_hystart_leaves_slow_start_before_the_queue_overflows(cubic_plain: str) -> None:
    """20 Mbit/s, 50 ms, no random loss, a bottleneck queue of 4 BDP (344
    segments): with HyStart++ the first slow start ends in Conservative
    Slow Start and congestion avoidance without a queue drop; standard slow
    start overflows the queue by about a hundred segments (102 measured)."""
    link = LinkConfig(delay=0.025, bandwidth=20e6, queue_limit=344)
    hystart = bulk(Config(), link, 1_500_000)
    plain = bulk(Config(congestion_control=cubic_plain), link, 1_500_000)
    assert hystart.queue_drops == 0
    assert plain.drops_in_slow_start > 50


def test_hystart_cuts_slow_start_drops_with_a_shallower_queue(cubic_plain: str) -> None:
    """Queue of 2 BDP at 10 Mbit/s, where ACKs come 2.4 ms apart (too far
    apart for the ACK train): HyStart++ sees the delay one round after the
    queue starts to stand (its per-round minimum RTT), while slow start
    doubles the window in that round; CSS's quarter-speed growth then
    overflows the queue less than half as much (56 drops against 131
    measured)."""
    link = LinkConfig(delay=0.025, bandwidth=10e6, queue_limit=86)
    hystart = bulk(Config(), link, 1_500_000)
    plain = bulk(Config(congestion_control=cubic_plain), link, 1_500_000)
    assert hystart.drops_in_slow_start * 2 < plain.drops_in_slow_start


def test_ack_train_cuts_slow_start_drops_at_a_one_bdp_queue(cubic_plain: str) -> None:
    """The lossy benchmark's 20 Mbit/s, 20 ms path with a 25 ms queue (41
    segments, about one BDP): the delay test alone comes a round too late
    (77 slow-start drops without the ACK train, as with no HyStart at all),
    since the window outgrows BDP + queue in the round the queue begins to
    stand. The ACK train (ACKs 1.2 ms apart for over a min RTT) ends slow
    start sooner: 33 slow-start drops measured."""
    link = LinkConfig(delay=0.01, bandwidth=20e6, queue_limit=41)
    hystart = bulk(Config(), link, 1_500_000)
    plain = bulk(Config(congestion_control=cubic_plain), link, 1_500_000)
    assert hystart.drops_in_slow_start * 2 < plain.drops_in_slow_start


def test_no_ack_train_exit_without_a_bottleneck() -> None:
    """A 20 ms path with no rate limit: paced slow start spreads each window
    over half a round trip, and that must not read as a bottleneck's train
    (it did when the test took half the min RTT, as Linux's unpaced one)."""
    result = bulk(Config(), LinkConfig(delay=0.01), 20_000_000)
    assert result.ss_exit_at is None


def test_bbr_keeps_the_bottleneck_busy_at_one_percent_loss() -> None:
    """5 Mbit/s, 100 ms, queue of a BDP, 1% random loss: BBR's goodput from
    2 s to 10 s is at least 90% of the link rate (headers included in the
    rate, so ~92% of what the link can carry as payload), where loss-based
    CUBIC gets about half."""
    link = LinkConfig(delay=0.05, bandwidth=5e6, queue_limit=43, loss=0.01)
    assert steady_fraction(Config(congestion_control="bbr"), link, 2.0, 10.0) >= 0.90
    assert steady_fraction(Config(), link, 2.0, 10.0) < 0.7
