"""rudp.recovery alone: loss detection and recovery fed explicit events.

Duplicate ACKs and fast recovery (RFC 5681 §3.2), Limited Transmit (RFC 3042),
SACK-based recovery and "pipe" (RFC 6675), NewReno partial and full ACKs
(RFC 6582), early retransmit (RFC 5827), Eifel undo (RFC 3522), SACK block
validity (RFC 2018, RFC 2883) and the retransmission timeout (RFC 5681 §3.1,
RFC 6298 §5).

Every number is worked out by hand with SMSS = 1000 bytes, an initial window of
10 segments (cwnd = 10_000), ISS = 999 and so SND.UNA = 1000 for the first data
byte: segment k covers [1000 + 1000k, 2000 + 1000k). Unless a test says
otherwise ten segments are in flight (SND.MAX = SND.NXT = 11_000) and the send
buffer holds more, so early retransmit does not apply. Times are explicit
arguments; no clock is read.
"""

from __future__ import annotations

import pytest

from rudp.core import congestion
from rudp.core.recovery import Recovery
from rudp.core.seqnum import ts_clock
from rudp.core.stats import Stats

SMSS = 1000
IW = 10
ISS = 999
UNA = 1000  # ISS + 1
MAX = 11_000  # ten segments in flight
DUPTHRESH = 3
HIGH = 1 << 62  # NewReno's initial ssthresh ("arbitrarily high", RFC 5681 §3.1)


def make(ts_offset: int = 0, sent_at: float = 0.0) -> Recovery:
    """A Recovery that saw the ten segments leave at ``sent_at``."""
    rec = Recovery(congestion.create("newreno", SMSS, IW), Stats(), ISS, ts_offset)
    rec.on_sent_run(UNA, 10, SMSS, sent_at)  # one flush: one send stamp
    return rec


def dupacks(rec: Recovery, n: int, sack_ok: bool = False) -> None:
    for _ in range(n):
        rec.on_dupack(SMSS, sack_ok)


def sack(rec: Recovery, start: int, end: int, una: int = UNA, snd_max: int = MAX,
         now: float = 1.0) -> None:
    rec.on_sack_block(start, end, una, snd_max, now)


def detect(
    rec: Recovery, una: int = UNA, snd_max: int = MAX, buf_end: int | None = None,
    sack_ok: bool = False, ts_ok: bool = False, now: float = 1.0,
) -> bool:
    if buf_end is None:
        buf_end = snd_max + 10 * SMSS  # unsent data waiting: no early retransmit
    return rec.detect_loss(una, snd_max, buf_end, SMSS, sack_ok, DUPTHRESH, ts_ok, now)


def first_segment_lost() -> Recovery:
    """A fresh recovery whose first segment, [1000, 2000), RACK has judged
    lost: the peer SACKed [2000, 5000) behind it."""
    rec = make()
    sack(rec, 2000, 5000)
    assert detect(rec, sack_ok=True)
    return rec


def next_rxt(
    rec: Recovery, cwnd: int, una: int = UNA, snd_max: int = MAX, snd_nxt: int | None = None,
    sack_ok: bool = True,
) -> tuple[int, int] | None:
    nxt = snd_max if snd_nxt is None else snd_nxt
    return rec.next_retransmission(una, snd_max, nxt, cwnd, SMSS, sack_ok)


def ack(
    rec: Recovery, new_una: int, old_una: int, snd_nxt: int = MAX, sack_ok: bool = False,
    tsecr: int | None = None, freed: int | None = None, now: float = 2.0,
) -> None:
    acked = new_una - old_una
    rec.on_ack(new_una, acked, acked if freed is None else freed, tsecr, snd_nxt, sack_ok,
               SMSS, now)


def reno_recovery(ts_ok: bool = False, now: float = 1.0, ts_offset: int = 0) -> Recovery:
    """Fast recovery without SACK, entered on the third duplicate ACK, and
    its fast retransmission of the segment at SND.UNA sent."""
    rec = make(ts_offset)
    dupacks(rec, 3)
    assert detect(rec, ts_ok=ts_ok, now=now)
    rec.resent(UNA, UNA + SMSS, now)
    return rec


# --- initial state -------------------------------------------------------------


def test_initial_state() -> None:
    rec = make()
    assert (rec.cc.cwnd, rec.cc.ssthresh) == (10_000, HIGH)
    assert not rec.in_recovery
    assert rec.recover == ISS  # RFC 6582 §3.2 step 1: recover = ISS
    assert (rec.dupacks, rec.reno_sacked) == (0, 0)
    assert rec.send_window(SMSS, False, UNA, MAX) == 10_000
    assert rec.next_retransmission(UNA, MAX, MAX, 100_000, SMSS, True) is None


# --- pipe (RFC 6675 §4) --------------------------------------------------------


def test_pipe_without_sack_is_flight_size() -> None:
    rec = make()
    assert rec.pipe(UNA, MAX, False) == 10_000
    assert rec.pipe(UNA, UNA, False) == 0  # nothing in flight
    assert rec.pipe(2000, UNA, False) == 0  # SND.NXT pulled back below SND.UNA: never negative


def test_dupacks_outside_recovery_do_not_shrink_pipe_without_sack() -> None:
    # RFC 3042 §2: Limited Transmit counts against FlightSize, which duplicate
    # ACKs do not reduce; only fast recovery's inflation does (RFC 6582 §3.2).
    rec = make()
    dupacks(rec, 2)
    assert rec.reno_sacked == 0
    assert rec.pipe(UNA, MAX, False) == 10_000


def test_pipe_with_sack_leaves_sacked_bytes_out() -> None:
    # RFC 6675 §4: octets SACKed are not in the network.
    rec = make()
    sack(rec, 3000, 5000)
    sack(rec, 7000, 8000)
    assert rec.pipe(UNA, MAX, True) == 10_000 - 3000
    # A connection without SACK ignores the scoreboard.
    assert rec.pipe(UNA, MAX, False) == 10_000


def test_pipe_counts_only_below_snd_nxt() -> None:
    # After a timeout SND.NXT goes back (go-back-N); only [SND.UNA, SND.NXT) is
    # in flight, and only SACKed bytes in it are taken off: 3000 - 1000.
    rec = make()
    sack(rec, 3000, 5000)
    assert rec.pipe(UNA, 4000, True) == 2000


def test_pipe_in_recovery_leaves_lost_holes_out() -> None:
    # RFC 6675 §4: a hole deemed lost (IsLost) is not in the network until it
    # is retransmitted; then the retransmission is. SACKed: [2000,3000) and
    # [4000,7000); 3000 bytes lie above 4000, more than (DupThresh-1)*SMSS, so
    # the holes [1000,2000) and [3000,4000) are lost, [7000,11000) is not.
    rec = make()
    sack(rec, 2000, 3000)
    sack(rec, 4000, 7000)
    assert detect(rec, sack_ok=True)
    assert (rec.high_rxt, rec.rxt_limit) == (1000, 4000)
    assert rec.pipe(UNA, MAX, True) == 10_000 - 4000 - 2000
    rec.retransmitted(1000, 1000)
    assert rec.pipe(UNA, MAX, True) == 10_000 - 4000 - 1000
    rec.retransmitted(3000, 1000)
    assert rec.pipe(UNA, MAX, True) == 10_000 - 4000


# --- Limited Transmit (RFC 3042) -----------------------------------------------


def test_limited_transmit_one_then_two_segments() -> None:
    # RFC 3042 §2: the first and second duplicate ACK each allow one more
    # segment beyond cwnd, and cwnd itself MUST NOT change.
    rec = make()
    rec.on_dupack(SMSS, False)
    assert rec.send_window(SMSS, False, UNA, MAX) == 11_000
    rec.on_dupack(SMSS, False)
    assert rec.send_window(SMSS, False, UNA, MAX) == 12_000
    rec.on_dupack(SMSS, False)  # a third, with recovery not (yet) entered
    assert rec.send_window(SMSS, False, UNA, MAX) == 12_000  # never more than two segments
    assert rec.cc.cwnd == 10_000
    assert rec.stats.dup_acks == 3


def test_no_limited_transmit_in_recovery() -> None:
    # In recovery PRR (RFC 6937) decides: before any ACK reports delivery it
    # allows nothing beyond the forced fast retransmit.
    rec = reno_recovery()
    assert rec.send_window(SMSS, False, UNA, MAX) == rec.prr_window == 0
    rec.on_dupack(SMSS, False)
    assert rec.send_window(SMSS, False, UNA, MAX) == 0


def test_limited_transmit_with_sack_counts_once() -> None:
    # RFC 6675 §5 / RFC 3042: with SACK, pipe already leaves the SACKed
    # segments out, so cwnd gets no extra segments on top: two duplicate
    # ACKs that SACK two segments let exactly two new segments out.
    rec = make()
    sack(rec, 2000, 3000)
    rec.on_dupack(SMSS, True)
    sack(rec, 3000, 4000)
    rec.on_dupack(SMSS, True)
    assert rec.send_window(SMSS, True, UNA, MAX) == rec.cc.cwnd == 10_000
    assert rec.send_window(SMSS, True, UNA, MAX) - rec.pipe(UNA, MAX, True) == 2000


def test_new_ack_ends_limited_transmit() -> None:
    rec = make()
    dupacks(rec, 2)
    ack(rec, 2000, UNA)
    assert rec.dupacks == 0
    # Slow start grew cwnd by the 1000 bytes acked (RFC 3465 §2.2); no extra.
    assert rec.send_window(SMSS, False, UNA, MAX) == rec.cc.cwnd == 11_000


# --- entering fast recovery ----------------------------------------------------


def test_recovery_on_third_dupack_not_second() -> None:
    # RFC 5681 §3.2 step 2: fast retransmit on the third duplicate ACK.
    rec = make()
    dupacks(rec, 2)
    assert not detect(rec)
    assert not rec.in_recovery
    assert (rec.cc.cwnd, rec.cc.ssthresh) == (10_000, HIGH)
    assert rec.stats.fast_retransmits == 0
    rec.on_dupack(SMSS, False)
    assert detect(rec)
    assert rec.in_recovery
    assert rec.recover == MAX  # RFC 6582 §3.2 step 2: recover = highest sent
    assert rec.stats.fast_retransmits == 1
    # RFC 5681 eq. 4: ssthresh = max(FlightSize / 2, 2*SMSS) = 10_000 / 2.
    assert (rec.cc.ssthresh, rec.cc.cwnd) == (5000, 5000)
    # The first unacknowledged segment is lost and goes out whatever the window.
    assert (rec.high_rxt, rec.rxt_limit, rec.force_rxt) == (1000, 2000, True)
    # RFC 5681 §3.2 step 3 inflates cwnd by the 3 segments that left the
    # network; here pipe leaves them out instead, and the lost segment too.
    assert rec.reno_sacked == 3000
    assert rec.pipe(UNA, MAX, False) == 10_000 - 3000 - 1000


def test_later_dupacks_in_recovery_inflate_without_sack() -> None:
    # RFC 6582 §3.2 step 4 / RFC 5681 §3.2 step 4: each further duplicate ACK
    # means one more segment left the network.
    rec = reno_recovery()
    dupacks(rec, 2)
    assert rec.reno_sacked == 5000
    assert rec.pipe(UNA, MAX, False) == 10_000 - 5000 - 1000
    dupacks(rec, 10)  # more than in flight: pipe bottoms out at zero
    assert rec.pipe(UNA, MAX, False) == 0


def test_dupacks_with_sack_do_not_count_as_delivered_bytes() -> None:
    # With SACK, pipe comes from the scoreboard (RFC 6675 §4), not from guesses;
    # and duplicate ACKs alone start nothing: RACK decides (RFC 8985 §6).
    rec = make()
    sack(rec, 2000, 3000)
    dupacks(rec, 3, sack_ok=True)
    assert not detect(rec, sack_ok=True)  # one segment SACKed: RACK waits reo_wnd
    sack(rec, 3000, 5000)
    assert detect(rec, sack_ok=True)
    assert rec.reno_sacked == 0
    dupacks(rec, 2, sack_ok=True)
    assert rec.reno_sacked == 0
    assert rec.pipe(UNA, MAX, True) == 10_000 - 3000 - 1000  # SACKed, and lost


def test_ssthresh_halves_flight_size_not_pipe() -> None:
    # RFC 6675 §5 step 4.2 / RFC 5681 eq. 4: ssthresh = FlightSize / 2, where
    # FlightSize is all data sent and not cumulatively acknowledged. With
    # [2000,8000) SACKed pipe is only 4000, which must not be halved instead.
    rec = make()
    sack(rec, 2000, 8000)
    dupacks(rec, 3, sack_ok=True)
    assert rec.pipe(UNA, MAX, True) == 4000
    assert detect(rec, sack_ok=True)
    assert (rec.cc.ssthresh, rec.cc.cwnd) == (5000, 5000)


def test_ssthresh_floor_is_two_segments() -> None:
    # RFC 5681 eq. 4: max(FlightSize / 2, 2*SMSS) with FlightSize = 3000.
    rec = make()
    dupacks(rec, 3)
    assert detect(rec, snd_max=4000)
    assert (rec.cc.ssthresh, rec.cc.cwnd) == (2000, 2000)


def test_rack_entry_waits_for_the_reordering_window() -> None:
    # RFC 8985 §6.2: segment 0 left before the SACKed segments 1-2 (RACK.rtt
    # = 1 s), but fewer than DupThresh segments are SACKed, so the reordering
    # window min_RTT / 4 = 0.25 s applies: lost at 1.25 s, and the timer says so.
    rec = make()
    sack(rec, 2000, 4000)
    assert not detect(rec, sack_ok=True, now=1.0)
    assert rec.reo_deadline == 1.25
    assert not detect(rec, sack_ok=True, now=1.2499)
    assert detect(rec, sack_ok=True, now=1.25)
    assert rec.dupacks == 0
    assert rec.rxt_limit == 2000
    assert (rec.cc.ssthresh, rec.cc.cwnd) == (5000, 5000)


def test_rack_entry_at_once_with_dupthresh_segments_sacked() -> None:
    # RFC 8985 §6.2 step 4: no reordering seen and DupThresh segments SACKed:
    # reo_wnd = 0, as the DupThresh rule would have it.
    rec = make()
    sack(rec, 2000, 5000)
    assert detect(rec, sack_ok=True, now=1.0)
    assert rec.reo_deadline is None


def test_rack_needs_a_later_sent_segment_delivered() -> None:
    # Only segments sent before RACK.xmit_ts (or at it, with a lower end_seq)
    # can be lost (RFC 8985 §6.2 step 5): segment 4 (sent at 0.0) is SACKed;
    # segments 0-3 left with it and before it in sequence; 5-9 and a segment
    # sent at 0.5 are not judged by it.
    rec = make()
    rec.on_sent(MAX, MAX + SMSS, MAX, 0.5)
    sack(rec, 5000, 6000, snd_max=MAX + SMSS, now=1.0)
    assert not detect(rec, snd_max=MAX + SMSS, sack_ok=True, now=1.0)
    assert rec.reo_deadline == 1.25
    assert detect(rec, snd_max=MAX + SMSS, sack_ok=True, now=1.25)
    assert rec.rxt_limit == 5000


def test_reordering_widens_the_window() -> None:
    # A segment delivered below the highest SACKed one, never resent, is
    # reordering (RFC 8985 §6.2 step 3): reo_wnd stays min_RTT / 4 even with
    # DupThresh segments SACKed; a D-SACK doubles it (step 4), once per round.
    rec = make()
    sack(rec, 3000, 6000)
    sack(rec, 2000, 3000)  # delivered below the SACKed 6000: reordering
    assert rec.reordering_seen
    assert rec.reo_wnd(None) == 0.25
    rec.on_dsack(1500, 1600, UNA, MAX, 1.0)
    assert rec.reo_wnd(None) == 0.5
    rec.on_dsack(1600, 1700, UNA, MAX, 1.0)  # same round trip: no further change
    assert rec.reo_wnd(None) == 0.5
    assert rec.reo_wnd(0.3) == 0.3  # never more than SRTT
    assert rec.stats.dsacks_received == 2


def test_sack_entry_marks_every_hole_below_the_lost_edge() -> None:
    # 3000 bytes SACKed at [5000,8000): every byte below 5000 has more than
    # 2*SMSS SACKed above it, so all of [1000,5000) is lost (RFC 6675 §4).
    rec = make()
    sack(rec, 5000, 8000)
    assert detect(rec, sack_ok=True)
    assert (rec.high_rxt, rec.rxt_limit) == (1000, 5000)
    assert rec.pipe(UNA, MAX, True) == 10_000 - 3000 - 4000


def test_sack_blocks_are_not_used_for_entry_without_sack() -> None:
    rec = make()
    sack(rec, 2000, 8000)
    assert not detect(rec, sack_ok=False)
    assert not rec.in_recovery


def test_nothing_outstanding_never_enters_recovery() -> None:
    rec = make()
    dupacks(rec, 5)
    assert not detect(rec, una=MAX, snd_max=MAX)
    assert not rec.in_recovery


# --- early retransmit (RFC 5827 §3.1) ------------------------------------------


def test_early_retransmit_three_segments() -> None:
    # oseg = 3 < DupThresh + 1 and nothing unsent: ER_thresh = oseg - 1 = 2.
    rec = make()
    rec.on_dupack(SMSS, False)
    assert not detect(rec, snd_max=4000, buf_end=4000)
    rec.on_dupack(SMSS, False)
    assert detect(rec, snd_max=4000, buf_end=4000)
    assert rec.recover == 4000
    assert (rec.cc.ssthresh, rec.cc.cwnd) == (2000, 2000)


def test_early_retransmit_two_segments() -> None:
    # oseg = 2: ER_thresh = 1.
    rec = make()
    rec.on_dupack(SMSS, False)
    assert detect(rec, snd_max=3000, buf_end=3000)


def test_early_retransmit_counts_a_partial_segment() -> None:
    # Byte-based ER: oseg = ceil(FlightSize / SMSS) = ceil(2500 / 1000) = 3.
    rec = make()
    rec.on_dupack(SMSS, False)
    assert not detect(rec, snd_max=3500, buf_end=3500)
    rec.on_dupack(SMSS, False)
    assert detect(rec, snd_max=3500, buf_end=3500)


def test_no_early_retransmit_with_unsent_data() -> None:
    # New data could still produce the third duplicate ACK: ER does not apply.
    rec = make()
    dupacks(rec, 2)
    assert not detect(rec, snd_max=4000, buf_end=5000)
    rec.on_dupack(SMSS, False)
    assert detect(rec, snd_max=4000, buf_end=5000)


def test_no_early_retransmit_with_four_segments() -> None:
    # oseg = 4 = DupThresh + 1: the usual threshold of three.
    rec = make()
    dupacks(rec, 2)
    assert not detect(rec, snd_max=5000, buf_end=5000)
    rec.on_dupack(SMSS, False)
    assert detect(rec, snd_max=5000, buf_end=5000)


def test_early_retransmit_never_raises_the_threshold() -> None:
    # oseg = 5 or 10 with nothing unsent: ER does not apply, so DupThresh
    # stays 3 (a rule applied beyond oseg < 4 would ask for oseg - 1 = 4 or 9).
    for snd_max in (6000, MAX):
        rec = make()
        dupacks(rec, 3)
        assert detect(rec, snd_max=snd_max, buf_end=snd_max), snd_max


def test_rack_covers_short_flights() -> None:
    # With SACK, RACK replaces early retransmit (RFC 8985 §3.3.1): one SACKed
    # segment of a three-segment flight marks the first lost once the
    # reordering window has passed.
    rec = make()
    sack(rec, 2000, 3000, snd_max=4000)
    assert not detect(rec, snd_max=4000, buf_end=4000, sack_ok=True, now=1.0)
    assert detect(rec, snd_max=4000, buf_end=4000, sack_ok=True, now=1.25)
    assert rec.rxt_limit == 2000


# --- once per window (RFC 6582 §3.2 step 2, §4) --------------------------------


def test_no_new_recovery_before_recover_is_acked() -> None:
    # After a timeout recover = SND.MAX (RFC 6582 §4); duplicate ACKs for data
    # sent before it must not start a fast retransmit or cut ssthresh again.
    rec = make()
    rec.on_timeout(UNA, MAX, 10_000, True, SMSS, 1.0)
    assert rec.recover == MAX
    ack(rec, 5000, UNA, snd_nxt=5000)
    before = (rec.cc.cwnd, rec.cc.ssthresh)
    dupacks(rec, 3)
    assert not detect(rec, una=5000)
    assert not rec.in_recovery
    assert (rec.cc.cwnd, rec.cc.ssthresh) == before
    assert rec.stats.fast_retransmits == 0
    # Once the cumulative ACK covers recover a new loss is a new event.
    ack(rec, MAX, 5000)
    dupacks(rec, 3)
    assert detect(rec, una=MAX, snd_max=15_000)
    assert rec.recover == 15_000
    assert rec.stats.fast_retransmits == 1


def test_in_recovery_detect_loss_never_reenters() -> None:
    rec = reno_recovery()
    cwnd, ssthresh = rec.cc.cwnd, rec.cc.ssthresh
    dupacks(rec, 5)
    assert not detect(rec)
    assert (rec.cc.cwnd, rec.cc.ssthresh) == (cwnd, ssthresh)
    assert rec.stats.fast_retransmits == 1
    assert rec.recover == MAX


def test_more_sacks_in_recovery_extend_the_lost_region() -> None:
    # RFC 6675 §5 (C): IsLost is reevaluated on every ACK; the lost edge only
    # moves up.
    rec = first_segment_lost()
    assert rec.rxt_limit == 2000
    sack(rec, 7000, 10_000)
    assert not detect(rec, sack_ok=True)
    assert rec.rxt_limit == 7000
    assert rec.pipe(UNA, MAX, True) == 10_000 - 6000 - 3000  # [1000,2000), [5000,7000) lost


# --- partial and full ACKs (RFC 6582 §3.2 steps 5 and 6) -----------------------


def test_partial_ack_without_sack() -> None:
    rec = reno_recovery()
    assert next_rxt(rec, rec.send_window(SMSS, False, UNA, MAX), sack_ok=False) == (1000, 1000)
    rec.retransmitted(1000, 1000)
    assert next_rxt(rec, 100_000, sack_ok=False) is None  # nothing else deemed lost yet
    # The retransmission arrives and SND.UNA moves to 3000, short of recover.
    ack(rec, 3000, UNA)
    assert rec.in_recovery  # step 5: stay in fast recovery
    assert (rec.cc.cwnd, rec.cc.ssthresh) == (5000, 5000)
    assert rec.dupacks == 0
    assert rec.reno_sacked == 3000 - 2000
    # ...and the first unacknowledged segment is retransmitted at once.
    assert (rec.high_rxt, rec.rxt_limit, rec.force_rxt) == (3000, 4000, True)
    # pipe = 8000 in flight - 1000 dupACKed - 1000 lost = 6000 > cwnd - SMSS:
    # only force_rxt lets the retransmission out.
    assert rec.pipe(3000, MAX, False) == 6000
    rec.force_rxt = False
    assert next_rxt(rec, 5000, una=3000, sack_ok=False) is None
    rec.force_rxt = True
    assert next_rxt(rec, 5000, una=3000, sack_ok=False) == (3000, 1000)
    assert rec.force_rxt is False
    rec.retransmitted(3000, 1000)
    assert next_rxt(rec, 100_000, una=3000, sack_ok=False) is None


def test_partial_ack_with_sack_is_not_forced() -> None:
    # [2000,5000) SACKed; the retransmission of [1000,2000) arrives and the
    # cumulative ACK jumps to 5000, short of recover = 11_000.
    rec = first_segment_lost()
    assert next_rxt(rec, 5000) == (1000, 1000)
    rec.on_sent(1000, 2000, MAX, 1.0)
    rec.retransmitted(1000, 1000)
    ack(rec, 5000, UNA, sack_ok=True)
    assert rec.in_recovery
    assert rec.sacks.ranges == []  # SACK information below SND.UNA is forgotten
    assert (rec.high_rxt, rec.rxt_limit, rec.force_rxt) == (5000, 2000, False)
    # RACK: the retransmission (sent at 1.0, acked at 2.0) is the newest
    # delivered segment; [5000,11000) left before it and is lost.
    assert not detect(rec, una=5000, sack_ok=True, now=2.0)
    assert rec.rxt_limit == MAX
    # pipe = 6000 - 6000 lost = 0: with SACK the window decides (RFC 6675 §5 (C)).
    assert rec.pipe(5000, MAX, True) == 0
    assert next_rxt(rec, 999, una=5000) is None
    assert next_rxt(rec, 1000, una=5000) == (5000, 1000)


def test_partial_ack_below_high_rxt_keeps_it() -> None:
    # [1000,5000) lost; [1000,3000) already retransmitted (HighRxt = 3000). A
    # partial ACK to 2000 must not make [2000,3000) go out a second time.
    rec = make()
    sack(rec, 5000, 8000)
    assert detect(rec, sack_ok=True)
    assert next_rxt(rec, 5000) == (1000, 1000)
    rec.retransmitted(1000, 1000)
    assert next_rxt(rec, 5000) == (2000, 1000)
    rec.retransmitted(2000, 1000)
    ack(rec, 2000, UNA, sack_ok=True)
    assert (rec.high_rxt, rec.rxt_limit, rec.force_rxt) == (3000, 5000, False)
    # pipe = 9000 - 3000 SACKed - [3000,5000) lost = 4000; 4000 + 1000 <= 5000.
    assert next_rxt(rec, 5000, una=2000) == (3000, 1000)


def test_full_ack_ends_recovery() -> None:
    # RFC 6582 §3.2 step 6, option 1: cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS).
    # 2000 bytes of new data went out during recovery.
    rec = reno_recovery()
    ack(rec, MAX, UNA, snd_nxt=13_000)
    assert not rec.in_recovery
    assert rec.reno_sacked == 0
    assert (rec.cc.ssthresh, rec.cc.cwnd) == (5000, 3000)  # min(5000, 2000 + 1000)


def test_full_ack_with_much_in_flight_sets_cwnd_to_ssthresh() -> None:
    rec = reno_recovery()
    ack(rec, MAX, UNA, snd_nxt=20_000)
    assert (rec.cc.ssthresh, rec.cc.cwnd) == (5000, 5000)  # min(5000, 9000 + 1000)


def test_full_ack_with_nothing_in_flight() -> None:
    rec = reno_recovery()
    ack(rec, MAX, UNA, snd_nxt=MAX)
    assert rec.cc.cwnd == 2000  # min(5000, max(0, SMSS) + SMSS)


def test_ack_beyond_recover_is_full() -> None:
    rec = reno_recovery()
    ack(rec, 12_000, UNA, snd_nxt=14_000)
    assert not rec.in_recovery
    assert rec.cc.cwnd == 3000  # min(5000, 2000 + 1000)


def test_after_recovery_acks_grow_cwnd_again() -> None:
    rec = reno_recovery()
    ack(rec, MAX, UNA, snd_nxt=13_000)
    assert rec.cc.cwnd == 3000
    ack(rec, 12_000, MAX, snd_nxt=13_000)
    assert rec.cc.cwnd == 4000  # slow start: cwnd < ssthresh, + min(1000, 2*SMSS)


def test_ack_outside_recovery_counts_data_bytes() -> None:
    # RFC 3465 §2.2 counts acknowledged data bytes: an ACK covering 500 bytes
    # and our FIN advances 501 in sequence space but frees 500.
    rec = make()
    rec.on_ack(1501, 501, 500, None, MAX, False, SMSS, 1.0)
    assert rec.cc.cwnd == 10_500
    rec.on_ack(1502, 1, 0, None, MAX, False, SMSS, 1.0)  # the FIN alone
    assert rec.cc.cwnd == 10_500


def test_cwnd_grows_only_while_the_window_is_used() -> None:
    # RFC 7661 §4.3, RFC 9438 §5.8. Slow start: cwnd may grow to twice the
    # most in flight this window (or the last) and no further.
    rec = make()  # ten segments in flight, cwnd 10_000
    rec.on_ack(2000, 1000, 1000, None, MAX, False, SMSS, 1.0)
    assert rec.cc.cwnd == 11_000  # 10_000 were in flight: may grow below 20_000
    # Only two segments out from here on (an application writing little):
    # a new window whose flight never passes 2_000 bytes.
    rec2 = Recovery(congestion.create("newreno", SMSS, IW), Stats(), ISS, 0)
    rec2.on_sent_run(UNA, 2, SMSS, 0.0)
    una, nxt = UNA, UNA + 2 * SMSS
    for k in range(20):
        rec2.on_ack(una + SMSS, SMSS, SMSS, None, nxt, False, SMSS, 1.0 + k)
        rec2.on_sent(nxt, nxt + SMSS, nxt, 1.0 + k)
        una, nxt = una + SMSS, nxt + SMSS
    assert rec2.cc.cwnd == 10_000  # never more than 2_000 in flight: no growth


def test_congestion_avoidance_grows_while_half_the_window_is_used() -> None:
    # RFC 7661 §4.3: cwnd is validated while pipeACK >= cwnd / 2.
    rec = make()
    rec.cc.ssthresh = 5_000  # congestion avoidance, cwnd 10_000
    rec.on_ack(2000, 1000, 1000, None, 7_000, False, SMSS, 1.0)  # 6_000 were in flight
    assert rec.cc._bytes_acked == 1000  # type: ignore[attr-defined]
    rec2 = make()
    rec2.cc.ssthresh = 5_000
    rec2.on_ack(2000, 1000, 1000, None, 6_000, False, SMSS, 1.0)  # only 5_000 were
    assert rec2.cc._bytes_acked == 0  # type: ignore[attr-defined]


def test_ack_forgets_sacks_and_counters() -> None:
    rec = make()
    sack(rec, 2000, 4000)
    dupacks(rec, 2, sack_ok=True)
    ack(rec, 3000, UNA, sack_ok=True)
    assert rec.sacks.ranges == [[3000, 4000]]
    assert rec.sacks.sacked == 1000
    assert rec.dupacks == 0


# --- Eifel detection and undo (RFC 3522, RFC 4015) -----------------------------


def test_recovery_remembers_state_for_undo() -> None:
    rec = reno_recovery(ts_ok=True, now=2.0, ts_offset=777)
    assert rec.undo == (10_000, HIGH)  # cwnd and ssthresh before the cut
    assert rec.rxt_ts == 2000 + 777  # our TSval clock: ms + offset (RFC 7323 §5.4)


def test_eifel_undo_on_echo_older_than_retransmission() -> None:
    # RFC 3522 §2: the first acceptable ACK echoes a timestamp older than the
    # retransmission's, so the original arrived: the recovery was spurious.
    # RFC 4015 §3.2: ssthresh = pipe_prev = max(FlightSize, ssthresh); cwnd =
    # FlightSize + min(bytes_acked, IW), at most what it was: 9000 + 1000.
    rec = reno_recovery(ts_ok=True, now=2.0)  # RetransmitTS = 2000
    assert (rec.cc.cwnd, rec.cc.ssthresh) == (5000, 5000)
    ack(rec, 2000, UNA, tsecr=1999)
    assert not rec.in_recovery
    assert (rec.cc.cwnd, rec.cc.ssthresh) == (10_000, HIGH)
    assert rec.stats.spurious_recoveries == 1
    assert rec.undo is None
    assert rec.reno_sacked == 0


def test_eifel_undo_beats_the_full_ack_rule() -> None:
    # RFC 4015 §3.2: no burst: cwnd = FlightSize (2000) + min(acked, IW = 4000),
    # and slow start back to ssthresh = pipe_prev does the rest.
    rec = reno_recovery(ts_ok=True, now=2.0)
    ack(rec, MAX, UNA, snd_nxt=13_000, tsecr=1500)
    assert (rec.cc.cwnd, rec.cc.ssthresh) == (6000, HIGH)  # not min(5000, 3000)
    assert rec.stats.spurious_recoveries == 1


def test_no_undo_when_the_retransmission_is_echoed() -> None:
    # An echo equal to or newer than RetransmitTS acknowledges the retransmission.
    for tsecr in (2000, 2001, 9000):
        rec = reno_recovery(ts_ok=True, now=2.0)
        ack(rec, 2000, UNA, tsecr=tsecr)
        assert rec.in_recovery, tsecr  # a partial ACK
        assert (rec.cc.cwnd, rec.cc.ssthresh) == (5000, 5000)
        assert rec.stats.spurious_recoveries == 0


def test_no_eifel_undo_for_an_ack_below_the_retransmission() -> None:
    # RFC 3522 §2 judges the ACK for the retransmitted segment. RACK resent a
    # hole at 4000 (above SND.UNA); an ACK for 1000-3000, sent before the
    # retransmission and so echoing an older timestamp, says nothing of it.
    rec = make()
    sack(rec, 5000, 7000)
    rec.enter_recovery(UNA, MAX, 5000, True, True, 2.0)  # RetransmitTS = 2000
    rec.resent(4000, 5000, 2.0)
    ack(rec, 3000, UNA, sack_ok=True, tsecr=1990)
    assert rec.in_recovery
    assert rec.stats.spurious_recoveries == 0
    ack(rec, 5000, 3000, sack_ok=True, tsecr=1995)  # it covers the retransmission
    assert not rec.in_recovery
    assert rec.stats.spurious_recoveries == 1


def test_a_loss_after_an_undo_starts_a_new_recovery() -> None:
    # The undone recovery was no loss event: RecoveryPoint (MAX) no longer
    # bars fast recovery for a real loss further on in the same window
    # (RFC 6675 §5), which only the RTO would repair otherwise.
    rec = reno_recovery(ts_ok=True, now=2.0)
    ack(rec, 2000, UNA, tsecr=1999)
    assert not rec.in_recovery and rec.stats.spurious_recoveries == 1
    assert rec.recover <= 2000
    dupacks(rec, 3)
    assert detect(rec, una=2000, ts_ok=True, now=2.1)
    assert rec.in_recovery


def test_no_undo_without_timestamps() -> None:
    # Eifel needs the timestamp option (RFC 3522 §2); the state is kept for a
    # D-SACK (RFC 3708), but no echo is trusted.
    rec = reno_recovery(ts_ok=False, now=2.0)
    assert rec.rxt_ts == 0
    ack(rec, 2000, UNA, tsecr=1)
    assert rec.in_recovery
    assert rec.cc.cwnd == 5000
    assert rec.stats.spurious_recoveries == 0


def test_no_undo_when_the_ack_carries_no_echo() -> None:
    rec = reno_recovery(ts_ok=True, now=2.0)
    ack(rec, 2000, UNA, tsecr=None)
    assert rec.in_recovery
    assert rec.cc.cwnd == 5000


def test_eifel_compares_timestamps_as_serial_numbers() -> None:
    # TSvals wrap at 2**32 (RFC 7323 §5.2): with the offset just below the wrap,
    # RetransmitTS = (2000 + 2**32 - 500) mod 2**32 = 1500, and 2**32 - 100 is
    # 1600 ms *before* it, not after.
    rec = reno_recovery(ts_ok=True, now=2.0, ts_offset=(1 << 32) - 500)
    assert rec.rxt_ts == 1500
    ack(rec, 2000, UNA, tsecr=(1 << 32) - 100)
    assert not rec.in_recovery
    assert rec.stats.spurious_recoveries == 1
    rec = reno_recovery(ts_ok=True, now=2.0, ts_offset=(1 << 32) - 500)
    ack(rec, 2000, UNA, tsecr=1600)  # 100 ms after: the retransmission's echo
    assert rec.in_recovery
    assert rec.stats.spurious_recoveries == 0


# --- retransmissions lost again ------------------------------------------------


def lost_rxt_setup() -> Recovery:
    """RACK recovery for [1000,2000), retransmitted at 1.0; then three new
    segments [11000,14000) were sent at 1.1."""
    rec = first_segment_lost()
    assert next_rxt(rec, 5000) == (1000, 1000)
    rec.on_sent(1000, 2000, MAX, 1.0)
    rec.retransmitted(1000, 1000)
    assert rec.high_rxt == 2000
    for k in range(3):
        rec.on_sent(MAX + k * SMSS, MAX + (k + 1) * SMSS, MAX + k * SMSS, 1.1)
    return rec


def test_lost_retransmission_of_snd_una() -> None:
    # RFC 8985 §6.2: a segment sent after the retransmission is SACKed, and
    # the retransmission is older than RACK.rtt + reo_wnd: it was lost too.
    rec = lost_rxt_setup()
    sack(rec, 11_000, 12_000, snd_max=14_000, now=2.0)  # RACK.rtt = 0.9 s
    # In recovery, no reordering seen: reo_wnd = 0; 1.0 + 0.9 <= 2.0.
    assert not detect(rec, snd_max=14_000, sack_ok=True, now=2.0)
    assert (rec.stats.lost_retransmits, rec.high_rxt) == (1, 1000)
    # [5000,11000), sent at 0.0, is lost as well.
    assert rec.rxt_limit == 11_000
    assert next_rxt(rec, 100_000, snd_max=14_000) == (1000, 1000)
    # Counted once: marked lost until it is sent again.
    assert not detect(rec, snd_max=14_000, sack_ok=True, now=2.0)
    assert rec.stats.lost_retransmits == 1
    rec.on_sent(1000, 2000, 14_000, 2.0)
    rec.retransmitted(1000, 1000)
    assert not detect(rec, snd_max=14_000, sack_ok=True, now=2.5)
    assert rec.stats.lost_retransmits == 1


def test_lost_retransmission_sent_in_the_same_flush_as_new_data() -> None:
    # The adapter hands one ``now`` to a whole flush: the retransmission and
    # the new segment after it share a time. The new one is SACKed half a
    # second later and the retransmission is not: it was lost (RFC 8985 §6.2;
    # equal send times are ordered by sequence number).
    rec = first_segment_lost()
    rec.on_sent(1000, 2000, MAX, 1.0)
    rec.retransmitted(1000, 1000)
    rec.on_sent(MAX, MAX + SMSS, MAX, 1.0)
    assert rec.sent_time(MAX) == rec.sent_time(1000) == 1.0
    sack(rec, MAX, MAX + SMSS, snd_max=MAX + SMSS, now=1.5)
    detect(rec, snd_max=MAX + SMSS, sack_ok=True, now=1.5)
    assert (rec.stats.lost_retransmits, rec.high_rxt) == (1, 1000)
    assert next_rxt(rec, 100_000, snd_max=MAX + SMSS) == (1000, 1000)


def test_a_retransmission_after_new_data_in_the_same_flush_is_not_lost() -> None:
    # The other order: new data left first, then the retransmission, at the
    # same ``now``. A SACK of the new data says nothing about the later one.
    rec = first_segment_lost()
    rec.on_sent(MAX, MAX + SMSS, MAX, 1.0)
    rec.on_sent(1000, 2000, MAX + SMSS, 1.0)
    rec.retransmitted(1000, 1000)
    assert rec.sent_time(1000) > rec.sent_time(MAX) == 1.0  # stamped after it
    sack(rec, MAX, MAX + SMSS, snd_max=MAX + SMSS, now=1.5)
    detect(rec, snd_max=MAX + SMSS, sack_ok=True, now=1.5)
    assert rec.stats.lost_retransmits == 0


def test_rack_rtt_is_that_of_the_most_recently_sent_delivered_segment() -> None:
    # RFC 8985 §6.2 step 2 takes newly delivered segments in send-time order,
    # so RACK.rtt is the newest one's. A late retransmission of [1000,2000)
    # and a cumulative ACK that also covers [5000,11000), sent 100 s earlier
    # and never SACKed (the peer's SACK blocks for them were lost): RACK.rtt
    # is the retransmission's 0.1 s, not the 100.1 s of the old segments met
    # after it in sequence order (with which no loss is ever declared again).
    rec = first_segment_lost()
    rec.on_sent(1000, 2000, MAX, 100.0)
    rec.retransmitted(1000, 1000)
    rec.on_ack(MAX, MAX - UNA, MAX - UNA, ts_clock(100.0, 0), MAX, True, SMSS, 100.1)
    assert rec.rack_xmit == 100.0
    assert rec.rack_rtt == pytest.approx(0.1)


def test_sacks_sent_before_the_retransmission_do_not_count() -> None:
    # 6000 bytes SACKed, but all of it was sent before the retransmission.
    rec = lost_rxt_setup()
    sack(rec, 5000, 11_000, snd_max=14_000, now=2.0)
    assert not detect(rec, snd_max=14_000, sack_ok=True, now=2.0)
    assert rec.stats.lost_retransmits == 0
    assert rec.high_rxt == 2000


def test_retransmission_acked_by_echo_gives_an_rtt_sample() -> None:
    # Karn's rule (RFC 6298 §3): no sample from a retransmitted segment,
    # unless the timestamp echo shows the retransmission was acked.
    rec = lost_rxt_setup()
    assert ack(rec, 2000, UNA, sack_ok=True, now=1.5) is None
    rec2 = lost_rxt_setup()
    sample = rec2.on_ack(2000, 1000, 1000, 1000, MAX, True, SMSS, 1.5)
    assert sample == 0.5  # TSecr 1000 = our TSval at 1.0 s: the retransmission
    rec3 = lost_rxt_setup()
    assert rec3.on_ack(2000, 1000, 1000, 999, MAX, True, SMSS, 1.5) == -1.0


# --- what to send again (RFC 6675 §5 (C), NextSeg) -----------------------------


def test_no_retransmission_outside_recovery() -> None:
    rec = make()
    sack(rec, 5000, 8000)
    assert next_rxt(rec, 100_000) is None


def test_retransmissions_go_lowest_hole_first() -> None:
    # [2000,3000) and [4000,7000) SACKed: holes [1000,2000) and [3000,4000) are
    # lost; [7000,11000) has nothing SACKed above it and is not.
    rec = make()
    sack(rec, 2000, 3000)
    sack(rec, 4000, 7000)
    assert detect(rec, sack_ok=True)
    assert next_rxt(rec, 100_000) == (1000, 1000)
    rec.retransmitted(1000, 1000)
    assert next_rxt(rec, 100_000) == (3000, 1000)
    rec.retransmitted(3000, 1000)
    assert next_rxt(rec, 100_000) is None


def test_retransmissions_are_cut_to_smss_and_limited_by_pipe() -> None:
    # [1000,5000) is lost ([5000,8000) SACKed); cwnd = 5000; pipe starts at
    # 10_000 - 3000 - 4000 = 3000 and grows by each retransmission.
    rec = make()
    sack(rec, 5000, 8000)
    assert detect(rec, sack_ok=True)
    assert rec.cc.cwnd == 5000
    assert next_rxt(rec, 5000) == (1000, 1000)  # forced: the fast retransmit
    rec.retransmitted(1000, 1000)
    assert rec.pipe(UNA, MAX, True) == 4000
    assert next_rxt(rec, 5000) == (2000, 1000)  # 4000 + 1000 <= 5000
    rec.retransmitted(2000, 1000)
    assert rec.pipe(UNA, MAX, True) == 5000
    assert next_rxt(rec, 5000) is None  # 5000 + 1000 > 5000
    assert next_rxt(rec, 5999) is None
    assert next_rxt(rec, 6000) == (3000, 1000)


def test_first_retransmission_ignores_the_window() -> None:
    # RFC 5681 §3.2 step 2 / RFC 6675 §5 step 4.3: the first lost segment is
    # retransmitted on entry, whatever cwnd and pipe say; only that one.
    rec = make()
    sack(rec, 5000, 8000)
    assert detect(rec, sack_ok=True)
    assert next_rxt(rec, 0) == (1000, 1000)
    assert rec.force_rxt is False
    rec.retransmitted(1000, 1000)
    assert next_rxt(rec, 0) is None


def test_retransmission_shorter_than_smss() -> None:
    # The hole [1000,1500) ends where SACKed data begins.
    rec = make()
    sack(rec, 1500, 4600)
    assert detect(rec, sack_ok=True)
    assert next_rxt(rec, 100_000) == (1000, 500)


def test_retransmission_stops_at_snd_max() -> None:
    # 500 bytes in flight (more unsent, so no early retransmit): the lost
    # region [1000, 2000) is cut at SND.MAX = 1500.
    rec = make()
    dupacks(rec, 3)
    assert detect(rec, snd_max=1500, buf_end=3000)
    assert rec.rxt_limit == 2000
    assert next_rxt(rec, 100_000, snd_max=1500, sack_ok=False) == (1000, 500)


def test_retransmitted_fin_moves_high_rxt_by_one() -> None:
    rec = reno_recovery()
    rec.retransmitted(1000, 0)
    assert rec.high_rxt == 1001


# --- retransmission timeout (RFC 5681 §3.1, RFC 6298 §5.5) ---------------------


def test_first_timeout() -> None:
    # RFC 5681 eq. 4 with FlightSize = 8000, and cwnd = LW = 1 SMSS.
    rec = make()
    sack(rec, 3000, 5000)
    dupacks(rec, 2, sack_ok=True)
    rec.on_timeout(UNA, 9000, 8000, True, SMSS, 1.0)
    assert (rec.cc.ssthresh, rec.cc.cwnd) == (4000, 1000)
    assert not rec.in_recovery
    assert rec.recover == 9000  # RFC 6582 §4
    assert (rec.dupacks, rec.reno_sacked) == (0, 0)
    # RFC 2018 §8: prior SACK information is ignored after a timeout.
    assert (rec.sacks.ranges, rec.sacks.sacked) == ([], 0)
    assert rec.pipe(UNA, 9000, True) == 8000


def test_later_timeout_holds_ssthresh() -> None:
    # RFC 5681 §3.1: when the segment retransmitted by the timer is lost again,
    # ssthresh is held constant; cwnd goes back to one segment.
    rec = make()
    rec.on_timeout(UNA, MAX, 10_000, True, SMSS, 1.0)
    assert (rec.cc.ssthresh, rec.cc.cwnd) == (5000, 1000)
    ack(rec, 3000, UNA)  # slow start: 1000 + 2000
    assert rec.cc.cwnd == 3000
    rec.on_timeout(UNA, MAX, 8000, False, SMSS, 5.0)
    assert (rec.cc.ssthresh, rec.cc.cwnd) == (5000, 1000)


def test_timeout_in_recovery_ends_it() -> None:
    # RFC 6675 §5.1: an RTO ends SACK recovery, RecoveryPoint = HighData, and
    # no new recovery begins until it is cumulatively acknowledged.
    rec = first_segment_lost()
    rec.on_timeout(UNA, 12_000, 11_000, True, SMSS, 3.0)
    assert not rec.in_recovery
    assert rec.recover == 12_000
    assert (rec.cc.ssthresh, rec.cc.cwnd) == (5500, 1000)
    assert next_rxt(rec, 100_000, snd_max=12_000) is None
    # SACKs arriving after the timeout refill the scoreboard but do not start a
    # recovery inside the old window.
    sack(rec, 2000, 6000, snd_max=12_000)
    dupacks(rec, 3, sack_ok=True)
    assert not detect(rec, snd_max=12_000, sack_ok=True)
    assert rec.stats.fast_retransmits == 1


# --- SACK block validity (RFC 2018 §4, RFC 2883) -------------------------------


def test_dsack_below_snd_una_is_ignored() -> None:
    # RFC 2883 §4: a first block at or below the cumulative ACK reports a
    # duplicate, not data held above SND.UNA.
    rec = make()
    sack(rec, 500, 1000)
    sack(rec, 0, 999)
    assert (rec.sacks.ranges, rec.sacks.sacked) == ([], 0)
    assert rec.pipe(UNA, MAX, True) == 10_000


def test_blocks_beyond_snd_max_are_ignored() -> None:
    # We never sent those bytes: the block is invalid.
    rec = make()
    sack(rec, 10_000, 11_001)
    sack(rec, 12_000, 13_000)
    assert rec.sacks.ranges == []
    sack(rec, 10_000, 11_000)  # right up to SND.MAX is fine
    assert rec.sacks.ranges == [[10_000, 11_000]]


def test_empty_and_inverted_blocks_are_ignored() -> None:
    rec = make()
    sack(rec, 3000, 3000)
    sack(rec, 4000, 3000)
    assert rec.sacks.ranges == []


def test_block_straddling_snd_una_is_clipped() -> None:
    rec = make()
    sack(rec, 500, 2000)
    assert rec.sacks.ranges == [[1000, 2000]]
    assert rec.sacks.sacked == 1000


def test_dsack_inside_sacked_data_counts_nothing_new() -> None:
    # RFC 2883 §4 case 2: a D-SACK above SND.UNA repeats data already SACKed.
    rec = make()
    sack(rec, 2000, 5000)
    sack(rec, 3000, 4000)
    assert rec.sacks.sacked == 3000
    assert rec.pipe(UNA, MAX, True) == 7000


def test_ignored_blocks_never_start_recovery() -> None:
    rec = make()
    for start in range(0, 1000, 100):
        sack(rec, start, start + 100)  # all below SND.UNA
    sack(rec, 11_000, 20_000)  # all beyond SND.MAX
    assert not detect(rec, sack_ok=True)


# --- send records (RFC 8985 §5.2) ----------------------------------------------


def test_send_records_split_on_a_partial_retransmission() -> None:
    # A retransmission of [1500, 2500) splits segments 0 and 1 so that only
    # the resent bytes carry the new send time and count as retransmitted.
    rec = make()
    rec.on_sent(1500, 2500, MAX, 3.0)
    assert rec.x_end[:4] == [1500, 2000, 2500, 3000]
    assert rec.x_time[:4] == [0.0, 3.0, 3.0, 0.0]
    assert rec.rxt_ends == [2000, 2500]
    assert rec.sent_time(1499) == 0.0 and rec.sent_time(2499) == 3.0


def test_rtt_sample_from_the_newest_segment_acked() -> None:
    rec = make(sent_at=0.0)
    rec.on_sent(MAX, MAX + SMSS, MAX, 0.5)
    assert rec.on_ack(3000, 2000, 2000, None, MAX + SMSS, False, SMSS, 0.25) == 0.25
    assert rec.on_ack(MAX + SMSS, 9000, 9000, None, MAX + SMSS, False, SMSS, 0.6) \
        == pytest.approx(0.1)
    assert (rec.x_end, rec.x_time) == ([], [])


# --- D-SACK undo (RFC 3708) ------------------------------------------------------


def test_dsack_of_every_retransmitted_byte_undoes_the_recovery() -> None:
    # Two holes resent; both come back as D-SACKs: nothing was lost (RFC 3708
    # §3). The response is RFC 4015's: ssthresh = pipe_prev, cwnd = FlightSize
    # + min(bytes_acked, IW) at most what it was.
    rec = make()
    sack(rec, 2000, 3000)
    sack(rec, 4000, 7000)
    assert detect(rec, sack_ok=True)
    for seq in (1000, 3000):
        rec.on_sent(seq, seq + SMSS, MAX, 1.0)
        rec.retransmitted(seq, SMSS)
    assert rec.undo_bytes == 2000
    rec.on_dsack(1000, 2000, UNA, MAX, 1.0)
    assert rec.in_recovery and rec.stats.spurious_recoveries == 0
    rec.on_dsack(3000, 4000, UNA, MAX, 1.0)
    assert not rec.in_recovery
    assert rec.stats.spurious_recoveries == 1
    assert rec.cc.ssthresh == HIGH
    assert rec.cc.cwnd == 10_000  # min(old cwnd, FlightSize 10_000 + 0)
    assert rec.reordering_seen


def test_dsack_outside_the_recovery_does_not_undo() -> None:
    rec = first_segment_lost()
    rec.on_sent(1000, 2000, MAX, 1.0)
    rec.on_dsack(MAX, MAX + 1000, UNA, MAX + 2000, 1.0)  # above what recovery covers
    assert rec.in_recovery and rec.stats.spurious_recoveries == 0


def test_reordering_window_shrinks_back_after_16_recoveries() -> None:
    # RFC 8985 §6.2 step 4: reo_wnd_mult returns to 1 after 16 recoveries
    # without a D-SACK.
    rec = make()
    rec.on_dsack(1500, 1600, UNA, MAX, 1.0)
    assert rec.reo_wnd_mult == 2
    una = UNA
    for n in range(16):
        assert rec.reo_wnd_mult == 2, n
        dupacks(rec, 3)
        assert detect(rec, una=una, snd_max=una + 10 * SMSS)
        ack(rec, una + 10 * SMSS, una, snd_nxt=una + 10 * SMSS)
        una += 10 * SMSS
    assert rec.reo_wnd_mult == 1


def test_dupacks_without_any_sack_block_still_recover() -> None:
    # SACK was negotiated but the duplicate ACKs carry no blocks: RACK has
    # nothing to go on, so the DupThresh rule (RFC 5681 §3.2) applies.
    rec = make()
    dupacks(rec, 2, sack_ok=True)
    assert not detect(rec, sack_ok=True)
    rec.on_dupack(SMSS, True)
    assert detect(rec, sack_ok=True)
    assert rec.rxt_limit == UNA + SMSS


def test_dsack_of_a_segment_never_resent_undoes_nothing() -> None:
    # A duplicate the network made (RFC 3708 §4: D-SACKs for data never
    # retransmitted say nothing about the retransmissions) neither undoes
    # the recovery nor counts as reordering; it still widens reo_wnd
    # (RFC 8985 §6.2 step 4).
    rec = first_segment_lost()
    rec.on_sent(1000, 2000, MAX, 1.0)
    rec.on_dsack(5000, 6000, UNA, MAX, 1.0)  # segment 4, sent once
    assert rec.in_recovery and rec.stats.spurious_recoveries == 0
    assert not rec.reordering_seen
    assert rec.reo_wnd_mult == 2
    rec.on_dsack(1000, 2000, UNA, MAX, 1.0)  # the retransmission came back twice
    assert not rec.in_recovery and rec.stats.spurious_recoveries == 1
