"""rudp.core.ratesample: delivery rate estimation
(draft-cheng-iccrg-delivery-rate-estimation §3)."""

from __future__ import annotations

import pytest

from rudp.core.ratesample import RateSampler

MSS = 1000


def test_steady_flow_measures_the_ack_rate() -> None:
    # Ten segments sent back to back at t=0, ACKed one per ms from t=0.1:
    # the tenth ACK's sample covers 10 segments over max(send, ack) elapsed.
    rs = RateSampler()
    for i in range(10):
        rs.on_sent(i * MSS, (i + 1) * MSS, i * MSS, False, 0.0)
    for i in range(10):
        s = rs.on_ack((i + 1) * MSS, (i + 1) * MSS, 0, 0, 0.05, 0.1 + i * 0.001)
    assert rs.delivered == 10 * MSS
    # The last segment left with nothing delivered yet; its interval is the
    # ACK interval since the connection's first delivery, 0.109 s.
    assert s.delivered == 10 * MSS
    assert s.interval == pytest.approx(0.109)
    assert s.rate == pytest.approx(10 * MSS / 0.109)
    assert s.tx_in_flight == 10 * MSS  # in flight once that segment left


def test_interval_shorter_than_min_rtt_gives_no_rate() -> None:
    rs = RateSampler()
    rs.on_sent(0, MSS, 0, False, 0.0)
    s = rs.on_ack(MSS, MSS, 0, 0, 0.2, 0.1)  # 0.1 s < min RTT 0.2 s
    assert s.newly_delivered == MSS and s.rate == 0.0


def test_sacked_bytes_count_once() -> None:
    # Segment 0 lost, 1..3 SACKed, then the retransmission fills the hole:
    # the cumulative ACK delivers only segment 0's bytes anew.
    rs = RateSampler()
    for i in range(4):
        rs.on_sent(i * MSS, (i + 1) * MSS, i * MSS, False, 0.0)
    for i in range(1, 4):
        s = rs.on_ack(0, (i + 1) * MSS, i * MSS, 0, 0.0, 0.1)
        assert s.newly_delivered == MSS
    rs.on_sent(0, MSS, 3 * MSS, False, 0.15)  # the retransmission
    s = rs.on_ack(4 * MSS, 4 * MSS, 0, MSS, 0.0, 0.25)
    assert s.newly_delivered == MSS
    assert s.newly_lost == MSS
    assert rs.delivered == 4 * MSS


def test_forgotten_scoreboard_does_not_deliver_twice() -> None:
    # After an RTO the SACK scoreboard is cleared (RFC 2018 §8): the SACKed
    # bytes ACKed later were already counted.
    rs = RateSampler()
    for i in range(4):
        rs.on_sent(i * MSS, (i + 1) * MSS, i * MSS, False, 0.0)
    rs.on_ack(0, 4 * MSS, 3 * MSS, 0, 0.0, 0.1)
    assert rs.delivered == 3 * MSS
    s = rs.on_ack(0, 0, 0, 0, 0.0, 0.5)  # scoreboard gone
    assert s.newly_delivered == 0
    s = rs.on_ack(4 * MSS, 4 * MSS, 0, 0, 0.0, 0.7)
    assert s.newly_delivered == MSS and rs.delivered == 4 * MSS


def test_app_limited_marks_samples_until_delivered_past_it() -> None:
    rs = RateSampler()
    rs.on_sent(0, MSS, 0, True, 0.0)  # the last byte of the buffer
    s = rs.on_ack(MSS, MSS, 0, 0, 0.0, 0.1)
    assert s.is_app_limited
    assert rs.app_limited == 0  # delivered passed the mark: the spell is over
    rs.on_sent(MSS, 2 * MSS, 0, False, 0.2)
    s = rs.on_ack(2 * MSS, 2 * MSS, 0, 0, 0.0, 0.3)
    assert not s.is_app_limited
