"""rudp.core.newreno alone: NewReno fed explicit events (RFC 5681, RFC 3465, RFC 6582).

Every expected number is worked out by hand from the RFC rule quoted next to it,
with SMSS = 1000 bytes and an initial window of 10 segments.
"""

from __future__ import annotations

import pytest

from rudp.core.congestion import CONTROLLERS, CongestionControl, create
from rudp.core.newreno import NewReno

SMSS = 1000
IW = 10


def in_avoidance(flight: int = 20_000) -> NewReno:
    """A controller in congestion avoidance with cwnd = ssthresh = flight / 2."""
    cc = NewReno(SMSS, IW)
    cc.on_congestion(flight, 0.0)
    assert cc.cwnd == cc.ssthresh == flight // 2
    return cc


def test_initial_window() -> None:
    # RFC 5681 §3.1: cwnd starts at IW (here given in segments), ssthresh
    # "arbitrarily high" so the connection starts in slow start.
    cc = NewReno(SMSS, IW)
    assert cc.mss == SMSS
    assert cc.cwnd == 10_000
    assert cc.ssthresh > 10**12


def test_slow_start_counts_bytes_up_to_two_smss() -> None:
    # RFC 3465 §2.2: in slow start cwnd += min(N, L) with L = 2*SMSS.
    cc = NewReno(SMSS, IW)
    cc.on_ack(1000, 10_000, 0.0)
    assert cc.cwnd == 11_000  # N = 1000 < L
    cc.on_ack(500, 10_000, 0.0)
    assert cc.cwnd == 11_500  # a partial segment counts its bytes only
    cc.on_ack(2000, 10_000, 0.0)
    assert cc.cwnd == 13_500  # N = L
    cc.on_ack(5000, 10_000, 0.0)
    assert cc.cwnd == 15_500  # N = 5000 is capped at L = 2000


def test_slow_start_until_cwnd_reaches_ssthresh() -> None:
    # RFC 5681 §3.1: slow start while cwnd < ssthresh; at cwnd == ssthresh either
    # may be used, and this controller switches to congestion avoidance there.
    cc = NewReno(SMSS, IW)
    cc.on_timeout(12_000, 0.0)  # ssthresh = 6000, cwnd = 1000
    cc.on_ack(2000, 1000, 0.0)
    cc.on_ack(2000, 1000, 0.0)
    assert cc.cwnd == 5000
    cc.on_ack(1000, 1000, 0.0)
    assert cc.cwnd == 6000 == cc.ssthresh
    cc.on_ack(2000, 1000, 0.0)  # avoidance now: 2000 of 6000 bytes, no growth yet
    assert cc.cwnd == 6000


def test_congestion_avoidance_one_smss_per_window() -> None:
    # RFC 5681 §3.1 (byte counting, RFC 3465 §2.1): once bytes_acked >= cwnd,
    # bytes_acked -= cwnd and cwnd += SMSS.
    cc = in_avoidance()  # cwnd = 10_000
    for _ in range(9):
        cc.on_ack(1000, 10_000, 0.0)
    assert cc.cwnd == 10_000  # 9000 < 10_000
    cc.on_ack(1000, 10_000, 0.0)
    assert cc.cwnd == 11_000  # 10_000 >= 10_000
    for _ in range(10):
        cc.on_ack(1000, 11_000, 0.0)
    assert cc.cwnd == 11_000  # the next step needs a full 11_000 bytes
    cc.on_ack(1000, 11_000, 0.0)
    assert cc.cwnd == 12_000


def test_congestion_avoidance_carries_the_remainder() -> None:
    # bytes_acked -= cwnd keeps what overshot the window (RFC 3465 §2.1).
    cc = in_avoidance()  # cwnd = 10_000
    for _ in range(7):
        cc.on_ack(1500, 10_000, 0.0)
    assert cc.cwnd == 11_000  # 10_500 acked: one step, 500 carried
    for _ in range(6):
        cc.on_ack(1500, 11_000, 0.0)
    assert cc.cwnd == 11_000  # 500 + 9000 = 9500 < 11_000
    cc.on_ack(1500, 11_000, 0.0)
    assert cc.cwnd == 12_000  # 500 + 10_500 = 11_000


def test_congestion_halves_flight_size() -> None:
    # RFC 5681 eq. 4: ssthresh = max(FlightSize / 2, 2*SMSS); RFC 6675 §5 step
    # 4.2: cwnd = ssthresh.
    cc = NewReno(SMSS, IW)
    cc.on_congestion(15_001, 0.0)
    assert (cc.ssthresh, cc.cwnd) == (7500, 7500)


def test_congestion_uses_flight_size_not_cwnd() -> None:
    # RFC 5681 §3.1 note: halve FlightSize, which may be well below cwnd.
    cc = NewReno(SMSS, IW)
    for _ in range(4):
        cc.on_ack(2000, 10_000, 0.0)
    assert cc.cwnd == 18_000
    cc.on_congestion(6000, 0.0)
    assert (cc.ssthresh, cc.cwnd) == (3000, 3000)


def test_congestion_floor_is_two_smss() -> None:
    # RFC 5681 eq. 4: FlightSize / 2 = 1500 is raised to 2*SMSS = 2000.
    cc = NewReno(SMSS, IW)
    cc.on_congestion(3000, 0.0)
    assert (cc.ssthresh, cc.cwnd) == (2000, 2000)


def test_congestion_restarts_the_avoidance_count() -> None:
    # Bytes counted against the old, larger window must not grow the new one.
    cc = in_avoidance()  # cwnd = 10_000
    for _ in range(9):
        cc.on_ack(1000, 10_000, 0.0)
    cc.on_congestion(16_000, 0.0)  # ssthresh = cwnd = 8000
    cc.on_ack(1000, 8000, 0.0)  # 1000 of 8000, not 10_000 of 8000
    assert cc.cwnd == 8000


@pytest.mark.parametrize(
    ("flight", "expected"),
    [
        (4000, 5000),  # min(10_000, max(4000, 1000) + 1000)
        (12_000, 10_000),  # min(10_000, 13_000): capped at ssthresh
        (9000, 10_000),  # min(10_000, 10_000)
        (0, 2000),  # min(10_000, max(0, 1000) + 1000)
    ],
)
def test_recovery_end_option_one(flight: int, expected: int) -> None:
    # RFC 6582 §3.2 step 6, option (1):
    # cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS).
    cc = in_avoidance()  # ssthresh = 10_000
    cc.on_recovery_end(flight, 0.0)
    assert cc.cwnd == expected
    assert cc.ssthresh == 10_000  # unchanged by the end of recovery


def test_timeout_loss_window_is_one_smss() -> None:
    # RFC 5681 §3.1: on RTO, ssthresh = max(FlightSize / 2, 2*SMSS) (eq. 4) and
    # cwnd = LW = 1 SMSS, then slow start again.
    cc = NewReno(SMSS, IW)
    cc.on_timeout(12_000, 0.0)
    assert (cc.ssthresh, cc.cwnd) == (6000, 1000)
    cc.on_ack(1000, 1000, 0.0)
    assert cc.cwnd == 2000  # slow start: cwnd < ssthresh


def test_timeout_floor_is_two_smss() -> None:
    cc = NewReno(SMSS, IW)
    cc.on_timeout(1000, 0.0)
    assert (cc.ssthresh, cc.cwnd) == (2000, 1000)


def test_timeout_restarts_the_avoidance_count() -> None:
    cc = in_avoidance()  # cwnd = ssthresh = 10_000
    for _ in range(9):
        cc.on_ack(1000, 10_000, 0.0)  # 9000 counted
    cc.on_timeout(4000, 0.0)  # ssthresh = 2000, cwnd = 1000
    cc.on_ack(1000, 1000, 0.0)  # slow start to 2000 = ssthresh
    cc.on_ack(1000, 2000, 0.0)  # avoidance: 1000 of 2000 (9000 + 1000 would grow)
    assert cc.cwnd == 2000
    cc.on_ack(1000, 2000, 0.0)
    assert cc.cwnd == 3000


def test_create_newreno() -> None:
    cc = create("newreno", SMSS, IW)
    assert isinstance(cc, NewReno)
    assert isinstance(cc, CongestionControl)
    assert (cc.mss, cc.cwnd) == (1000, 10_000)
    assert "newreno" in CONTROLLERS
