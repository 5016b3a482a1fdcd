"""rudp.core.hystart and its use by CUBIC: HyStart++ (RFC 9406 §4.2)."""

from __future__ import annotations

from rudp.core.cubic import Cubic
from rudp.core.hystart import CSS, CSS_ROUNDS, EXIT, LOW_WINDOW, N_RTT_SAMPLE, SLOW_START, HyStart

MSS = 1000


def round_of(hs: HyStart, rtt: float, acks: int = 10, flight: int = 10_000) -> list[int]:
    """One round: ``acks`` ACKs of one segment, each with an RTT sample (a
    window of ten segments: below LOW_WINDOW, so no ACK-train test)."""
    out = []
    for _ in range(acks):
        hs.on_rtt_sample(rtt)
        out.append(hs.on_ack(MSS, flight, 0.0, flight // MSS))
    return out


def train(hs: HyStart, start: float, gap: float, acks: int, rtt: float = 0.02,
          cwnd_segments: int = LOW_WINDOW) -> list[int]:
    """``acks`` ACKs ``gap`` seconds apart from ``start``, flat RTT, in one
    round (a hundred segments in flight when it began)."""
    out = []
    for i in range(acks):
        hs.on_rtt_sample(rtt)
        out.append(hs.on_ack(MSS, 100 * MSS, start + i * gap, cwnd_segments))
    return out


def test_ack_train_longer_than_the_min_rtt_ends_slow_start() -> None:
    # 20 ms path; ACKs 1 ms apart: the round's train passes 20 ms at its 22nd ACK.
    hs = HyStart()
    res = train(hs, 0.0, 0.001, 40)
    assert res[:21] == [SLOW_START] * 21
    assert res[21] == EXIT
    assert not hs.in_css


def test_half_an_rtt_of_ack_train_is_what_pacing_alone_gives() -> None:
    # Slow start paces a window over half the RTT: a train that long says
    # nothing of a bottleneck.
    hs = HyStart()
    assert set(train(hs, 0.0, 0.001, 16)) == {SLOW_START}


def test_ack_gaps_break_the_train() -> None:
    # The same ACKs 3 ms apart (more than ACK_TRAIN_DELTA): no train, the
    # flat RTT keeps slow start going.
    hs = HyStart()
    assert set(train(hs, 0.0, 0.003, 40)) == {SLOW_START}


def test_no_ack_train_test_below_the_low_window() -> None:
    hs = HyStart()
    assert set(train(hs, 0.0, 0.001, 40, cwnd_segments=LOW_WINDOW - 1)) == {SLOW_START}


def test_stays_in_slow_start_while_the_rtt_is_flat() -> None:
    hs = HyStart()
    for _ in range(5):
        assert set(round_of(hs, 0.05)) == {SLOW_START}
    assert not hs.in_css


def test_rtt_rise_enters_css_after_enough_samples() -> None:
    # RttThresh = clamp(lastRoundMinRTT / 8, 4 ms, 16 ms) = 6.25 ms at 50 ms.
    hs = HyStart()
    round_of(hs, 0.05)
    round_of(hs, 0.05)
    # The next round's samples are 7 ms higher: CSS once N_RTT_SAMPLE are in.
    # (The sample of the ACK that opens a round arrives before the ACK is
    # seen to open it, so it counts in the round before: the 8th sample of
    # the round comes with its 9th ACK.)
    res = round_of(hs, 0.057)
    assert res[:N_RTT_SAMPLE] == [SLOW_START] * N_RTT_SAMPLE
    assert res[N_RTT_SAMPLE] == CSS
    assert hs.in_css and hs.css_baseline_min_rtt == 0.057


def test_small_rise_is_below_the_threshold() -> None:
    hs = HyStart()
    round_of(hs, 0.05)
    round_of(hs, 0.05)
    assert set(round_of(hs, 0.056)) == {SLOW_START}  # 6 ms < 6.25 ms


def test_threshold_is_clamped() -> None:
    # At 200 ms, lastRoundMinRTT / 8 = 25 ms is clamped to MAX_RTT_THRESH 16 ms.
    hs = HyStart()
    round_of(hs, 0.2)
    round_of(hs, 0.2)
    assert set(round_of(hs, 0.215)) == {SLOW_START}
    hs2 = HyStart()
    round_of(hs2, 0.2)
    round_of(hs2, 0.2)
    assert CSS in round_of(hs2, 0.217)


def test_css_resumes_slow_start_when_the_rtt_falls_back() -> None:
    hs = HyStart()
    round_of(hs, 0.05)
    round_of(hs, 0.05)
    round_of(hs, 0.06)
    assert hs.in_css
    assert round_of(hs, 0.05)[-1] == SLOW_START  # spurious: back to slow start
    assert not hs.in_css


def test_css_ends_in_congestion_avoidance_after_css_rounds() -> None:
    hs = HyStart()
    round_of(hs, 0.05)
    round_of(hs, 0.05)
    round_of(hs, 0.06)
    results = []
    for _ in range(CSS_ROUNDS):
        results += round_of(hs, 0.06)
    assert EXIT in results


def test_cubic_grows_a_quarter_as_fast_in_css_and_then_avoids_congestion() -> None:
    cc = Cubic(MSS, 10)

    def rnd(rtt: float) -> None:
        for _ in range(10):
            cc.on_rtt_sample(rtt, 0.0)
            cc.on_ack(MSS, 10_000, 0.0)

    rnd(0.05)
    rnd(0.05)
    before = cc.cwnd
    rnd(0.06)  # CSS from the 9th ACK on (the 8th sample of the round)
    assert cc.hystart.in_css
    assert cc.cwnd - before == 8 * MSS + 2 * MSS // 4
    for _ in range(CSS_ROUNDS + 1):
        rnd(0.06)
        if cc.cwnd >= cc.ssthresh:
            break
    # RFC 9406 §4.2: ssthresh = cwnd on leaving CSS; the ACKs after it are
    # congestion avoidance's (which grows by a fraction of a segment here).
    assert cc.ssthresh < 1 << 62
    assert cc.ssthresh <= cc.cwnd < cc.ssthresh + MSS


def test_cubic_without_hystart_ignores_rtt() -> None:
    cc = Cubic(MSS, 10, hystart=False)
    for rtt in (0.05, 0.05, 0.2, 0.2):
        for _ in range(10):
            cc.on_rtt_sample(rtt, 0.0)
            cc.on_ack(MSS, 10_000, 0.0)
    assert cc.cwnd == 50_000 and cc.ssthresh == 1 << 62
