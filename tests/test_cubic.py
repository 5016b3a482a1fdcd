"""rudp.core.cubic alone: CUBIC (RFC 9438) fed explicit events, SMSS 1000 bytes.

Expected values come from the RFC's formulas, computed here beside the rule
they check (as aioquic's tests/test_recovery_cubic.py and smoltcp's cubic
tests do).
"""

from __future__ import annotations

import pytest

from rudp.core.cubic import ALPHA, BETA, C, Cubic

SMSS = 1000


def avoidance(cwnd_segments: int = 100) -> Cubic:
    """Congestion avoidance after one congestion event at ``cwnd_segments``
    (leaving slow start by a loss, so the decrease is RFC 9438's beta after
    the first event; the first is the slow-start halving)."""
    cc = Cubic(SMSS, 10)
    cc.ssthresh = 1  # pretend slow start is over: the next event uses beta
    cc.cwnd = cwnd_segments * SMSS
    cc.on_congestion(cwnd_segments * SMSS, 0.0)
    return cc


def test_constants() -> None:
    # RFC 9438 §5.1 and §4.3: C = 0.4, beta = 0.7, alpha = 3(1-beta)/(1+beta).
    assert (C, BETA) == (0.4, 0.7)
    assert ALPHA == pytest.approx(0.5294, abs=1e-4)


def test_congestion_event_reduces_by_beta_and_sets_w_max() -> None:
    # §4.6: ssthresh = flight_size * beta, cwnd = ssthresh; W_max = cwnd (§4.7
    # without fast convergence, since this is the first event).
    cc = avoidance(100)
    assert cc.ssthresh == cc.cwnd == 70_000
    assert cc.w_max == 100_000
    assert cc.t_epoch is None  # §4.2: the epoch restarts on the next ACK


def test_loss_in_slow_start_halves() -> None:
    # A loss in slow start: the window doubled in the last round; halving it
    # (Reno's rule) instead of 0.7 keeps the retransmissions from overflowing
    # the queue again (see Cubic._reduce).
    cc = Cubic(SMSS, 10)
    cc.cwnd = 80_000
    cc.on_congestion(80_000, 0.0)
    assert cc.ssthresh == cc.cwnd == 40_000
    assert cc.w_max == 80_000


def test_fast_convergence() -> None:
    # §4.7: an event below the last W_max lowers W_max to cwnd (1 + beta) / 2.
    cc = avoidance(100)  # W_max 100 segments, cwnd 70
    cc.on_congestion(70_000, 1.0)
    assert cc.w_max == pytest.approx(70_000 * 1.7 / 2)
    assert cc.cwnd == 49_000


def test_k_and_w_cubic() -> None:
    # §4.2 eq. 2: K = cbrt((W_max - cwnd_epoch) / C) in segments; eq. 1:
    # W_cubic(K) = W_max.
    cc = avoidance(100)
    cc.on_rtt_sample(0.1, 0.0)
    cc.on_ack(1000, 70_000, 10.0)  # the epoch starts here
    assert cc.t_epoch == 10.0
    assert cc.k == pytest.approx((30 / 0.4) ** (1 / 3))  # 4.217 s
    assert cc.w_cubic(cc.k) == pytest.approx(100_000)
    assert cc.w_cubic(0.0) == pytest.approx(70_000)


def test_concave_growth_reaches_w_max_near_k() -> None:
    # A steady ACK stream: cwnd climbs towards W_max and plateaus there
    # around t = K (concave region, §4.4), then grows beyond (convex, §4.5).
    cc = avoidance(100)
    cc.on_rtt_sample(0.1, 0.0)
    t = 0.0
    seen = {}
    while t < 8.0:
        for _ in range(10):  # ten ACKs of 1000 bytes per 10 ms
            cc.on_ack(1000, cc.cwnd, t)
        seen[round(t, 2)] = cc.cwnd
        t += 0.01
    k = (30 / 0.4) ** (1 / 3)
    assert 95_000 < seen[round(k - 0.5, 2)] < 100_000
    assert abs(seen[round(k, 2)] - 100_000) < 2_000
    assert seen[7.99] > 110_000  # convex probing beyond W_max


def test_growth_is_bounded_by_one_and_a_half_per_rtt() -> None:
    # §4.4: target = min(W_cubic(t + RTT), 1.5 cwnd): far below W_max the
    # window grows at most by half per RTT worth of ACKs.
    cc = Cubic(SMSS, 10)
    cc.ssthresh = 1
    cc.w_max = 10_000_000  # a far-off W_max: K is large, W_cubic steep
    cc.cwnd = 10_000
    cc.on_rtt_sample(0.1, 0.0)
    cc.on_ack(1000, 10_000, 100.0)
    for _ in range(10):  # one window of ACKs
        cc.on_ack(1000, 10_000, 100.1)
    assert cc.cwnd <= 15_000 + 1000


def test_reno_friendly_region() -> None:
    # §4.3: with a small window and short RTT CUBIC grows at least as the
    # AIMD estimate W_est, by alpha segments per window acknowledged.
    cc = avoidance(10)  # cwnd 7 segments, W_max 10
    cc.on_rtt_sample(0.001, 0.0)
    cc.on_ack(1000, 7000, 0.0)
    w_est0 = cc.w_est
    for _ in range(7):
        cc.on_ack(1000, 7000, 0.001)
    # About alpha segments for the window acknowledged.
    assert cc.w_est - w_est0 == pytest.approx(ALPHA * 1000, rel=0.1)
    assert cc.cwnd >= int(cc.w_est) - 1


def test_timeout() -> None:
    # §4.8: the reduction of a congestion event, then cwnd = 1 segment.
    cc = avoidance(100)
    cc.on_timeout(70_000, 1.0)
    assert cc.cwnd == 1000
    assert cc.ssthresh == 49_000
    assert cc.t_epoch is None


def test_spurious_congestion_undo_restores_the_epoch() -> None:
    # §4.9: a spurious event is undone: cwnd/ssthresh come back (the
    # connection's Eifel undo restores those) and W_max, K and the epoch too.
    cc = avoidance(100)
    cc.on_rtt_sample(0.1, 0.0)
    cc.on_ack(1000, 70_000, 5.0)
    before = (cc.w_max, cc.k, cc.t_epoch, cc.cwnd_epoch, cc.w_est)
    saved = (cc.cwnd, cc.ssthresh)
    cc.on_congestion(70_000, 6.0)
    assert cc.w_max != before[0]
    cc.cwnd, cc.ssthresh = saved
    cc.on_congestion_undone(6.1)
    assert (cc.w_max, cc.k, cc.t_epoch, cc.cwnd_epoch, cc.w_est) == before


def test_slow_start_cap_per_ack() -> None:
    # RFC 9406 §4.2: one ACK adds at most L = 8 SMSS in slow start.
    cc = Cubic(SMSS, 10, hystart=False)
    cc.on_ack(20_000, 0, 0.0)
    assert cc.cwnd == 18_000


def test_recovery_end_sets_cwnd_to_ssthresh() -> None:
    cc = avoidance(100)
    cc.cwnd = 30_000
    cc.on_recovery_end(10_000, 1.0)
    assert cc.cwnd == cc.ssthresh == 70_000


def test_pacing_rate_follows_linux_ratios() -> None:
    cc = Cubic(SMSS, 10)
    assert cc.pacing_rate(None) == 0.0
    assert cc.pacing_rate(0.1) == pytest.approx(2 * 10_000 / 0.1)  # slow start
    cc = avoidance(100)
    assert cc.pacing_rate(0.1) == pytest.approx(1.2 * 70_000 / 0.1)
