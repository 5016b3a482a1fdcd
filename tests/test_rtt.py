"""rudp.rtt alone: the RFC 6298 estimator fed explicit samples.

Samples are chosen as short binary fractions so that SRTT, RTTVAR and RTO are
exact floats and can be compared with ``==``. K = 4, alpha = 1/8, beta = 1/4,
G = 1 ms. Unless a test is about the bounds, rto_min = 0 and rto_max = 60 s.
"""

from __future__ import annotations

import pytest

from rudp.core.rtt import RttEstimator


def unbounded(initial: float = 1.0) -> RttEstimator:
    return RttEstimator(initial, 0.0, 60.0)


def test_initial_rto() -> None:
    # RFC 6298 §2.1: before any sample, RTO is the configured initial value.
    rtt = RttEstimator(1.0, 0.2, 60.0)
    assert rtt.rto == 1.0
    assert rtt.srtt is None
    assert rtt.rttvar == 0.0
    assert rtt.backoff == 0


@pytest.mark.parametrize(
    ("initial", "expected"),
    [(0.1, 0.2), (120.0, 60.0)],  # raised to rto_min (§2.4), cut to rto_max (§2.5)
)
def test_initial_rto_is_bounded(initial: float, expected: float) -> None:
    assert RttEstimator(initial, 0.2, 60.0).rto == expected


def test_first_sample() -> None:
    # §2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, K*RTTVAR).
    rtt = unbounded()
    rtt.sample(0.5)
    assert rtt.srtt == 0.5
    assert rtt.rttvar == 0.25
    assert rtt.rto == 1.5  # 0.5 + 4 * 0.25


def test_later_samples() -> None:
    # §2.3: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'| (using the old SRTT), then
    # SRTT = 7/8 SRTT + 1/8 R', RTO = SRTT + max(G, K*RTTVAR).
    rtt = unbounded()
    rtt.sample(0.5)
    rtt.sample(0.25)
    assert rtt.rttvar == 0.25  # 0.75*0.25 + 0.25*|0.5 - 0.25|
    assert rtt.srtt == 0.46875  # 0.875*0.5 + 0.125*0.25
    assert rtt.rto == 1.46875  # 0.46875 + 4*0.25
    rtt.sample(1.0)
    assert rtt.rttvar == 0.3203125  # 0.75*0.25 + 0.25*|0.46875 - 1.0|
    assert rtt.srtt == 0.53515625  # 0.875*0.46875 + 0.125*1.0
    assert rtt.rto == 1.81640625  # 0.53515625 + 4*0.3203125


def test_clock_granularity_floor() -> None:
    # §2.2/§2.3: the variance term is at least G = 1 ms. R = 2**-12 s gives
    # K*RTTVAR = 4 * 2**-13 = 0.49 ms < G, so RTO = R + G.
    rtt = unbounded()
    rtt.sample(2**-12)
    assert rtt.rto == pytest.approx(2**-12 + 0.001, rel=1e-12)


def test_rto_min() -> None:
    # §2.4: an RTO below the minimum is rounded up to it (0.1 + 4*0.05 = 0.3 -> 1).
    rtt = RttEstimator(3.0, 1.0, 60.0)
    rtt.sample(0.1)
    assert rtt.rto == 1.0


def test_rto_max() -> None:
    # §2.5: an upper bound may be placed on RTO (1 + 4*0.5 = 3 -> 2).
    rtt = RttEstimator(1.0, 0.2, 2.0)
    rtt.sample(1.0)
    assert rtt.rto == 2.0


def test_back_off_doubles_up_to_rto_max() -> None:
    # §5.5: on expiry RTO = RTO * 2; §2.5: the maximum still applies.
    rtt = RttEstimator(1.0, 0.2, 5.0)
    seen = []
    for _ in range(5):
        rtt.back_off()
        seen.append(rtt.rto)
    assert seen == [2.0, 4.0, 5.0, 5.0, 5.0]


def test_back_off_doubles_the_bounded_rto() -> None:
    # The RTO that doubles is the one after §2.4 rounding: 0.1 -> 0.25 -> 0.5.
    rtt = RttEstimator(0.1, 0.25, 60.0)
    rtt.back_off()
    assert rtt.rto == 0.5


def test_back_off_after_samples() -> None:
    rtt = unbounded()
    rtt.sample(0.5)  # RTO 1.5
    rtt.back_off()
    rtt.back_off()
    assert rtt.rto == 6.0  # 1.5 * 2 * 2
    assert rtt.srtt == 0.5  # backing off leaves the estimate alone


def test_new_sample_ends_back_off() -> None:
    # §5, after rule 5.7: a new RTT measurement recomputes RTO per §2, which may
    # "collapse" it back down after the exponential back-off of 5.5.
    rtt = RttEstimator(1.0, 0.2, 60.0)
    rtt.back_off()
    rtt.back_off()
    assert rtt.rto == 4.0
    rtt.sample(0.5)
    assert rtt.backoff == 0
    assert rtt.rto == 1.5
    rtt.back_off()
    assert rtt.rto == 3.0  # doubling starts again from the new RTO


def test_negative_sample_ignored() -> None:
    rtt = RttEstimator(1.0, 0.2, 60.0)
    rtt.sample(-0.1)
    assert rtt.srtt is None and rtt.rto == 1.0
    rtt.sample(0.5)
    rtt.back_off()
    rtt.sample(-0.25)
    assert (rtt.srtt, rtt.rttvar) == (0.5, 0.25)
    assert rtt.rto == 3.0  # still backed off: a bogus sample is no new measurement
