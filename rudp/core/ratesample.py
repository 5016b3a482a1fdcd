"""Delivery rate estimation (draft-cheng-iccrg-delivery-rate-estimation).

Each sent segment keeps a snapshot of how much had been delivered, and
when, at its send; the ACK of a segment then yields the data delivered
between the two and the interval it took, the larger of the send and the
ACK intervals (§3.3) so neither a send burst nor an ACK compression
inflates the rate. The snapshots are our own, keyed by the segment's end
sequence number, so this does not depend on the loss-recovery scoreboard.
"""

from __future__ import annotations


class RateSample:
    """One delivery-rate sample (§3.2 "rs"); ``rate`` 0 means none this ACK."""

    __slots__ = ("rate", "delivered", "interval", "prior_delivered", "is_app_limited",
                 "tx_in_flight", "newly_delivered", "newly_lost", "prior_lost")

    def __init__(self) -> None:
        self.rate = 0.0  # bytes per second
        self.delivered = 0  # bytes delivered over the interval
        self.interval = 0.0
        self.prior_delivered = 0  # C.delivered when the newest acked segment left
        self.is_app_limited = False
        self.tx_in_flight = 0  # bytes in flight when that segment left (BBR)
        self.newly_delivered = 0  # bytes this ACK delivered
        self.newly_lost = 0  # bytes newly deemed lost (resent) since the last ACK
        self.prior_lost = 0  # C.lost when that segment left


class RateSampler:
    """The connection-wide counters (§3.1 "C.") and the per-segment snapshots."""

    __slots__ = ("delivered", "delivered_time", "first_sent_time", "app_limited", "lost",
                 "_sent", "_una", "_sacked", "sample")

    def __init__(self) -> None:
        self.delivered = 0  # C.delivered: bytes ACKed or SACKed, never decreasing
        self.delivered_time = 0.0
        self.first_sent_time = 0.0
        self.app_limited = 0  # C.app_limited: delivered mark ending an app-limited spell
        self.lost = 0  # bytes sent again (deemed lost) so far
        # end seq -> (delivered, delivered_time, first_sent_time, sent_time,
        #             app_limited, tx_in_flight, lost)
        self._sent: dict[int, tuple[int, float, float, float, bool, int, int]] = {}
        self._una: int | None = None
        self._sacked = 0  # high-water mark of ACKed plus SACKed bytes
        self.sample = RateSample()

    def on_sent(self, seq: int, end: int, in_flight: int, app_limited: bool, now: float) -> None:
        """§3.2 "Upon transmitting": snapshot the counters for ``[seq, end)``."""
        if self._una is None:
            self._una = seq  # the sequence number delivered counts from
        if in_flight <= 0:
            # Nothing in flight: start the intervals afresh (after idle).
            self.first_sent_time = self.delivered_time = now
        if app_limited:
            self.app_limited = max(self.delivered + in_flight, 1)
        sent = self._sent
        sent.pop(end, None)  # a retransmission replaces the original's snapshot
        sent[end] = (self.delivered, self.delivered_time, self.first_sent_time, now,
                     self.app_limited != 0, in_flight + end - seq, self.lost)

    def on_ack(self, snd_una: int, newest: int, sacked: int, lost: int, min_rtt: float,
               now: float) -> RateSample:
        """§3.3 "Upon receiving ACK": ``newest`` is the end of the segment
        newest delivered (SND.UNA, or the first SACK block's right edge);
        ``sacked`` the SACKed bytes above SND.UNA; ``lost`` bytes resent so far."""
        rs = self.sample
        if self._una is None:
            self._una = snd_una
        # Delivered so far: the cumulative ACK plus what is SACKed above it.
        # Its high-water mark only grows: after a timeout the scoreboard is
        # forgotten (RFC 2018 §8) and the same bytes, ACKed again, are not
        # delivered twice.
        level = snd_una - self._una + sacked
        newly = level - self._sacked
        if newly > 0:
            self._sacked = level
        rs.newly_lost = max(0, lost - self.lost)
        self.lost = lost
        rs.rate = 0.0
        rs.newly_delivered = 0
        if newly <= 0:
            return rs
        rs.newly_delivered = newly
        self.delivered += newly
        self.delivered_time = now
        if self.app_limited and self.delivered > self.app_limited:
            self.app_limited = 0
        sent = self._sent
        snap = sent.pop(newest, None)
        # Forget what SND.UNA passed (insertion order is send order, mostly).
        while sent:
            first = next(iter(sent))
            if first > snd_una:
                break
            del sent[first]
        if snap is None:
            return rs
        p_delivered, p_time, p_first, p_sent, p_app, p_inflight, p_lost = snap
        self.first_sent_time = p_sent
        send_elapsed = p_sent - p_first
        ack_elapsed = now - p_time
        interval = max(send_elapsed, ack_elapsed)
        rs.prior_delivered = p_delivered
        rs.is_app_limited = p_app
        rs.tx_in_flight = p_inflight
        rs.prior_lost = p_lost
        rs.delivered = self.delivered - p_delivered
        rs.interval = interval
        # §3.3: an interval shorter than the min RTT is ACK compression or a
        # timing artefact, not a delivery rate.
        if interval <= 0 or interval < min_rtt or rs.delivered <= 0:
            return rs
        rs.rate = rs.delivered / interval
        return rs
