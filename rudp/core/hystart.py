"""HyStart++: leave slow start on a rising RTT, before the queue overflows (RFC 9406).

Each round (a window of data, from one send to its ACK) keeps its minimum
RTT. When the current round's minimum exceeds the last round's by a
threshold, the queue is building: slow start gives way to Conservative Slow
Start (CSS), which grows four times slower for up to CSS_ROUNDS rounds and
then ends in congestion avoidance; an RTT that falls back below the
baseline means the rise was spurious and slow start resumes (§4.2).

The delay test sees a standing queue one round after it began to stand (the
round's minimum RTT comes from its first ACKs), and slow start doubles the
window in that round: with a queue of about a BDP the window outgrows BDP +
queue before CSS can begin. So, as Linux's CUBIC does, an ACK train within
a round that lasts longer than the minimum RTT also ends slow start: ACKs
arriving back to back for that long mean the window already keeps the
bottleneck busy. (Linux halves that time for a sender that does not pace;
ours paces slow start over half a round trip, so the train from pacing
alone lasts about half the RTT, and the halved test fired on links with no
bottleneck at all.) That test exits to congestion avoidance directly, as
Linux's HyStart sets ssthresh to cwnd.
"""

from __future__ import annotations

MIN_RTT_THRESH = 0.004  # RFC 9406 §4.3 constants, seconds
MAX_RTT_THRESH = 0.016
MIN_RTT_DIVISOR = 8
N_RTT_SAMPLE = 8
CSS_GROWTH_DIVISOR = 4
CSS_ROUNDS = 5
#: The ACK-train test (Ha and Rhee, "Taming the elephants", 2011; Linux's
#: tcp_cubic.c HYSTART_ACK_TRAIN): ACKs no further apart than this belong to
#: one train, and a window of at least LOW_WINDOW segments is needed.
ACK_TRAIN_DELTA = 0.002
LOW_WINDOW = 16
TRAIN_DIVISOR = 1.0

_INF = float("inf")

#: What ``on_ack`` tells the controller: grow as slow start, as CSS, or stop.
SLOW_START = 1
CSS = CSS_GROWTH_DIVISOR
EXIT = 0


class HyStart:
    """Round tracking and the delay-increase test; the controller grows cwnd.

    Rounds are counted in delivered bytes: a round ends once the bytes in
    flight when it began have been acknowledged (§4.2 "windowEnd", which is
    SND.NXT at the start of the round, in the sequence space of the ACKs).
    """

    __slots__ = ("delivered", "window_end", "last_round_min_rtt", "current_round_min_rtt",
                 "rtt_sample_count", "css_baseline_min_rtt", "css_rounds", "in_css",
                 "min_rtt", "round_start", "last_ack")

    def __init__(self) -> None:
        self.delivered = 0
        self.window_end = 0  # the first ACK starts round one
        self.last_round_min_rtt = _INF
        self.current_round_min_rtt = _INF
        self.rtt_sample_count = 0
        self.css_baseline_min_rtt = _INF
        self.css_rounds = 0
        self.in_css = False
        self.min_rtt = _INF  # the connection's, for the ACK train
        self.round_start = 0.0
        self.last_ack = 0.0

    def on_rtt_sample(self, rtt: float) -> None:
        if rtt < self.current_round_min_rtt:
            self.current_round_min_rtt = rtt
        if rtt < self.min_rtt:
            self.min_rtt = rtt
        self.rtt_sample_count += 1

    def on_ack(self, acked: int, in_flight: int, now: float, cwnd_segments: int) -> int:
        """One ACK in slow start or CSS: the growth divisor (SLOW_START or
        CSS), or EXIT when congestion avoidance must begin (§4.2, or the ACK
        train)."""
        self.delivered += acked
        if self.delivered >= self.window_end:
            self.round_start = self.last_ack = now
            # A new round: keep the last round's minimum, start counting afresh.
            self.last_round_min_rtt = self.current_round_min_rtt
            self.current_round_min_rtt = _INF
            self.rtt_sample_count = 0
            self.window_end = self.delivered + max(in_flight, 1)
            if self.in_css:
                self.css_rounds += 1
                if self.css_rounds >= CSS_ROUNDS:
                    return EXIT  # §4.2: CSS_ROUNDS rounds in CSS end slow start
        if cwnd_segments >= LOW_WINDOW and now - self.last_ack <= ACK_TRAIN_DELTA:
            self.last_ack = now
            if now - self.round_start > self.min_rtt:
                return EXIT
        if (
            self.rtt_sample_count >= N_RTT_SAMPLE
            and self.current_round_min_rtt != _INF
            and self.last_round_min_rtt != _INF
        ):
            if not self.in_css:
                thresh = min(max(self.last_round_min_rtt / MIN_RTT_DIVISOR, MIN_RTT_THRESH),
                             MAX_RTT_THRESH)
                if self.current_round_min_rtt >= self.last_round_min_rtt + thresh:
                    self.in_css = True
                    self.css_rounds = 0
                    self.css_baseline_min_rtt = self.current_round_min_rtt
            elif self.current_round_min_rtt < self.css_baseline_min_rtt:
                # The RTT fell back: the increase was spurious, resume slow start.
                self.in_css = False
                self.css_baseline_min_rtt = _INF
        return CSS if self.in_css else SLOW_START
