"""HyStart++: leave slow start on a rising RTT, before the queue overflows (RFC 9406).

Each round (a window of data, from one send to its ACK) keeps its minimum
RTT. When the current round's minimum exceeds the last round's by a
threshold, the queue is building: slow start gives way to Conservative Slow
Start (CSS), which grows four times slower for up to CSS_ROUNDS rounds and
then ends in congestion avoidance; an RTT that falls back below the
baseline means the rise was spurious and slow start resumes (§4.2).
"""

from __future__ import annotations

MIN_RTT_THRESH = 0.004  # RFC 9406 §4.3 constants, seconds
MAX_RTT_THRESH = 0.016
MIN_RTT_DIVISOR = 8
N_RTT_SAMPLE = 8
CSS_GROWTH_DIVISOR = 4
CSS_ROUNDS = 5

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
                 "rtt_sample_count", "css_baseline_min_rtt", "css_rounds", "in_css")

    def __init__(self) -> None:
        self.delivered = 0
        self.window_end = 0  # the first ACK starts round one
        self.last_round_min_rtt = _INF
        self.current_round_min_rtt = _INF
        self.rtt_sample_count = 0
        self.css_baseline_min_rtt = _INF
        self.css_rounds = 0
        self.in_css = False

    def on_rtt_sample(self, rtt: float) -> None:
        if rtt < self.current_round_min_rtt:
            self.current_round_min_rtt = rtt
        self.rtt_sample_count += 1

    def on_ack(self, acked: int, in_flight: int) -> int:
        """One ACK in slow start or CSS: the growth divisor (SLOW_START or
        CSS), or EXIT when congestion avoidance must begin (§4.2)."""
        self.delivered += acked
        if self.delivered >= self.window_end:
            # A new round: keep the last round's minimum, start counting afresh.
            self.last_round_min_rtt = self.current_round_min_rtt
            self.current_round_min_rtt = _INF
            self.rtt_sample_count = 0
            self.window_end = self.delivered + max(in_flight, 1)
            if self.in_css:
                self.css_rounds += 1
                if self.css_rounds >= CSS_ROUNDS:
                    return EXIT  # §4.2: CSS_ROUNDS rounds in CSS end slow start
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
