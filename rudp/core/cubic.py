"""CUBIC (RFC 9438) with HyStart++ (RFC 9406) for slow start.

The window grows as a cubic function of the time since the last congestion
event, centred on W_max, the window where that event happened: fast while
far below it, flat near it, probing beyond it. In the Reno-friendly region
(short RTTs, small windows) it grows at least as fast as an AIMD flow with
the same loss rate would (W_est). Windows are in bytes; the RFC's formulas,
in segments, are multiplied by the MSS.
"""

from __future__ import annotations

from .congestion import PACING_CA_RATIO, PACING_SS_RATIO, CongestionControl
from .hystart import EXIT, SLOW_START, HyStart

C = 0.4  # RFC 9438 §5.1, segments / s^3
BETA = 0.7  # §4.6 multiplicative decrease factor
ALPHA = 3 * (1 - BETA) / (1 + BETA)  # §4.3 Reno-friendly additive increase
SS_BETA = 0.5  # the decrease after a loss in slow start (see Cubic._reduce)
#: HyStart++'s cap L on the bytes one ACK may add in slow start, in segments
#: (RFC 9406 §4.2: 8 when not paced; kept even with pacing, against bursts
#: from stretch ACKs).
SS_CAP = 8


class Cubic(CongestionControl):
    """RFC 9438 §4; fast convergence on (§4.7)."""

    __slots__ = ("w_max", "k", "t_epoch", "cwnd_epoch", "w_est", "srtt", "_acc",
                 "hystart", "_prior", "_hystart_done", "_last_ack")

    def __init__(self, mss: int, initial_window: int, hystart: bool = True) -> None:
        super().__init__(mss, initial_window)
        self.w_max = 0.0  # bytes; window before the last congestion event
        self.k = 0.0  # seconds until W_cubic reaches W_max again (§4.2 eq. 2)
        self.t_epoch: float | None = None  # start of the current avoidance epoch
        self.cwnd_epoch = 0.0
        self.w_est = 0.0  # Reno-friendly estimate (§4.3), bytes
        self.srtt = 0.0  # our own smoothing of the RTT samples (RFC 6298 weights)
        self._acc = 0.0  # fractional bytes of growth not yet in cwnd
        self.hystart = HyStart()
        self._hystart_done = not hystart  # only the first slow start uses HyStart++
        self._prior: tuple[float, float, float | None, float, float] | None = None
        self._last_ack = 0.0  # when on_ack or on_app_limited last ran

    # ------------------------------------------------------------ events

    def on_rtt_sample(self, rtt: float, now: float) -> None:
        self.srtt = rtt if not self.srtt else self.srtt + (rtt - self.srtt) / 8
        if self.cwnd < self.ssthresh and not self._hystart_done:
            self.hystart.on_rtt_sample(rtt)

    def on_app_limited(self, now: float) -> None:
        # RFC 9438 §5.8: the time the window went unused is not time on the
        # curve; shift the epoch by it, as Linux does after an idle period.
        if self.t_epoch is not None:
            self.t_epoch += now - self._last_ack
        self._last_ack = now

    def on_ack(self, acked: int, in_flight: int, now: float) -> None:
        self._last_ack = now
        mss = self.mss
        if self.cwnd < self.ssthresh:
            inc = min(acked, SS_CAP * mss)
            if not self._hystart_done:
                divisor = self.hystart.on_ack(acked, in_flight, now, self.cwnd // mss)
                if divisor == EXIT:
                    # RFC 9406 §4.2: CSS is over, congestion avoidance from here.
                    self._hystart_done = True
                    self.ssthresh = self.cwnd
                    return
                if divisor == SLOW_START:
                    self.cwnd += inc
                else:
                    self._grow(inc / divisor)
            else:
                self.cwnd += inc  # RFC 9438 §4.10: standard slow start
            return
        cwnd = self.cwnd
        t_epoch = self.t_epoch
        if t_epoch is None:
            # §4.2: a new epoch starts with the first ACK of congestion avoidance.
            self.t_epoch = t_epoch = now
            self.cwnd_epoch = float(cwnd)  # float(): the attributes are floats (mypyc)
            self.w_est = float(cwnd)
            if self.w_max <= cwnd:
                self.w_max = float(cwnd)  # no event to return to: grow convexly from here
                self.k = 0.0
            else:
                self.k = ((self.w_max - cwnd) / (C * mss)) ** (1 / 3)
        t = now - t_epoch
        # §4.3: the Reno-friendly window, alpha = 1 once it passed W_max.
        alpha = 1.0 if self.w_est >= self.w_max else ALPHA
        self.w_est += alpha * mss * acked / cwnd
        w_cubic = self.w_cubic(t)
        if w_cubic < self.w_est:
            self._grow(self.w_est - cwnd)
        else:
            # §4.4/§4.5: approach W_cubic one RTT ahead, at most 1.5x per RTT.
            target = min(max(self.w_cubic(t + self.srtt), cwnd), 1.5 * cwnd)
            self._grow((target - cwnd) * acked / cwnd)

    def on_congestion(self, in_flight: int, now: float) -> None:
        self._reduce(in_flight)
        self.cwnd = self.ssthresh  # §4.6

    def on_recovery_end(self, in_flight: int, now: float) -> None:
        # RFC 6675 §5: recovery ends with cwnd = ssthresh.
        self.cwnd = self.ssthresh

    def on_timeout(self, in_flight: int, now: float) -> None:
        # §4.8: the reduction of a congestion event, then one segment.
        self._reduce(in_flight)
        self.cwnd = self.mss

    def on_congestion_undone(self, now: float) -> None:
        # §4.9: a spurious event; the connection restored cwnd and ssthresh.
        if self._prior is not None:
            self.w_max, self.k, self.t_epoch, self.cwnd_epoch, self.w_est = self._prior
            self._prior = None

    def pacing_rate(self, srtt: float | None) -> float:
        # Our own smoothing sees every sample, the RTO estimator's only those
        # its stale-echo guard lets through (rudp.core.input.ack_advance).
        rtt = self.srtt or srtt
        if not rtt:
            return 0.0
        # window_pacing_rate, inlined: every send asks.
        return (PACING_SS_RATIO if self.cwnd < self.ssthresh else PACING_CA_RATIO) * self.cwnd / rtt

    # ------------------------------------------------------------ helpers

    def w_cubic(self, t: float) -> float:
        """RFC 9438 §4.2 eq. 1, in bytes."""
        d = t - self.k
        return C * d * d * d * self.mss + self.w_max

    def _grow(self, inc: float) -> None:
        if inc <= 0:
            return
        acc = self._acc + inc
        whole = int(acc)
        self.cwnd += whole
        self._acc = acc - whole

    def _reduce(self, flight_size: int) -> None:
        """The window reduction of any congestion event (§4.6, §4.7): W_max
        from cwnd, ssthresh from FlightSize as RFC 5681 eq. 4 (§4.6: an
        implementation using cwnd must keep cwnd from outgrowing the data
        in flight, which ours does not track)."""
        self._prior = (self.w_max, self.k, self.t_epoch, self.cwnd_epoch, self.w_est)
        self._hystart_done = True
        cwnd = float(self.cwnd)
        if cwnd < self.w_max:
            self.w_max = cwnd * (1 + BETA) / 2  # fast convergence (§4.7)
        else:
            self.w_max = cwnd
        # A loss in slow start: the window doubled in the last round and may
        # be up to twice what the path holds, so 0.7 of it still overflows the
        # queue while the retransmissions go out; halve it as Reno does (as
        # FreeBSD's CUBIC did for its first congestion event).
        beta = SS_BETA if self.cwnd < self.ssthresh else BETA
        self.ssthresh = max(int(flight_size * beta), 2 * self.mss)
        self.t_epoch = None
        self._acc = 0.0
