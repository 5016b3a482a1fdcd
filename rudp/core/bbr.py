"""BBR congestion control, version 3 (draft-ietf-ccwg-bbr).

BBR models the path by two numbers, the bottleneck bandwidth (the windowed
maximum of delivery-rate samples, rudp.core.ratesample) and the round-trip
propagation delay (the windowed minimum RTT), and paces at about their
product's rate instead of reacting to loss alone. Its states (§4.3):
Startup doubles the rate per round until the bandwidth stops growing;
Drain empties the queue Startup built; ProbeBW cycles DOWN, CRUISE, REFILL
and UP to probe for more bandwidth now and then while keeping the queue
small; ProbeRTT shrinks the window every 5 s to re-measure the minimum RTT.
Loss shapes two bounds (§4.5.10): inflight_longterm (inflight_hi), where a
probe saw more than 2% loss, and the short-term bw_lo/inflight_lo, cut by
Beta when a round outside probing lost more than 2% (see
``adapt_lower_bounds`` for how and why that differs from the draft).

ACK aggregation (§4.6.4.2-3) is: a receiver or an event loop that acks in
batches delivers more than bw x time in bursts, and the window gets that
excess on top of the BDP so sending does not stall between the batches.

Not modelled: the idle restart (§4.4.3) and the first recovery round's
packet conservation (§4.6.4.4).
"""

from __future__ import annotations

from .congestion import CongestionControl
from .ratesample import RateSampler

# §2.8 parameters
STARTUP_PACING_GAIN = 2.77  # 4 ln 2
STARTUP_CWND_GAIN = 2.0
DRAIN_PACING_GAIN = 0.35  # < 1 / 2.77: drains Startup's queue in about one round
DEFAULT_CWND_GAIN = 2.0
PROBE_UP_CWND_GAIN = 2.25
#: §4.6.4.3: the extra_acked max filter spans ~10 rounds, kept as two
#: slots of EXTRA_ACKED_WIN_ROUNDS rounds each (as Linux's tcp_bbr.c).
EXTRA_ACKED_WIN_ROUNDS = 5
ACK_EPOCH_RESET = 1 << 20  # bytes: restart an epoch this long (Linux's bbr_ack_epoch_acked_reset_thresh)
PACING_MARGIN = 0.01  # pace 1% below the estimate, to keep the queue small
LOSS_THRESH = 0.02
BETA = 0.7
HEADROOM = 0.15
FULL_BW_THRESH = 1.25
FULL_BW_COUNT = 3
STARTUP_FULL_LOSS_COUNT = 6
MIN_RTT_FILTER_LEN = 10.0
PROBE_RTT_INTERVAL = 5.0
PROBE_RTT_DURATION = 0.2
PROBE_RTT_CWND_GAIN = 0.5
MIN_PIPE_SEGMENTS = 4

STARTUP, DRAIN, PROBE_BW_DOWN, PROBE_BW_CRUISE, PROBE_BW_REFILL, PROBE_BW_UP, PROBE_RTT = range(7)
STATE_NAMES = ("Startup", "Drain", "ProbeBW_DOWN", "ProbeBW_CRUISE", "ProbeBW_REFILL",
               "ProbeBW_UP", "ProbeRTT")
_PROBE_BW = (PROBE_BW_DOWN, PROBE_BW_CRUISE, PROBE_BW_REFILL, PROBE_BW_UP)
# ack_phase (§4.3.3)
ACKS_INIT, ACKS_REFILLING, ACKS_PROBE_STARTING, ACKS_PROBE_FEEDBACK, ACKS_PROBE_STOPPING = range(5)

_INF = float("inf")
_BIG = 1 << 62


class Bbr(CongestionControl):
    """BBRv3 with its own delivery-rate sampler; sets ``cwnd`` and a pacing rate."""

    __slots__ = (
        "rs", "state", "pacing_gain", "cwnd_gain", "rate", "max_bw", "bw_hi", "bw", "bw_lo",
        "bw_latest", "inflight_lo", "inflight_hi", "inflight_latest", "min_rtt",
        "min_rtt_stamp", "probe_rtt_min_delay", "probe_rtt_min_stamp", "probe_rtt_done_stamp",
        "probe_rtt_round_done", "probe_rtt_expired", "round_count", "round_start", "next_round_delivered",
        "full_bw", "full_bw_count", "full_bw_reached", "loss_round_delivered",
        "loss_round_start", "loss_in_round", "loss_events", "cycle_count", "cycle_stamp",
        "ack_phase", "bw_probe_wait", "rounds_since_bw_probe", "bw_probe_up_cnt",
        "bw_probe_up_acks", "bw_probe_up_rounds", "bw_probe_samples", "prior_cwnd",
        "in_flight", "initial_cwnd", "_rand", "srtt", "round_lost", "round_delivered",
        "extra_acked", "extra_acked_idx", "extra_acked_rounds", "ack_epoch_stamp",
        "ack_epoch_acked",
    )

    def __init__(self, mss: int, initial_window: int) -> None:
        super().__init__(mss, initial_window)
        self.wants_delivery = True
        self.rs = RateSampler()
        self.initial_cwnd = initial_window * mss
        self.rate = 0.0  # pacing rate, bytes/s; 0 until the first RTT sample
        self.srtt = 0.0
        self.max_bw = 0.0
        self.bw_hi = [0.0, 0.0]  # max-filter slots of the last two ProbeBW cycles
        self.bw = 0.0
        self.bw_lo = _INF
        self.bw_latest = 0.0
        self.inflight_lo = _BIG
        self.inflight_hi = _BIG
        self.inflight_latest = 0
        self.min_rtt = _INF
        self.min_rtt_stamp = 0.0
        self.probe_rtt_min_delay = _INF
        self.probe_rtt_min_stamp = 0.0
        self.probe_rtt_done_stamp = 0.0
        self.probe_rtt_round_done = False
        self.probe_rtt_expired = False  # set by an RTT sample, read on the next ACK
        self.round_count = 0
        self.round_start = False
        self.next_round_delivered = 0
        self.full_bw = 0.0
        self.full_bw_count = 0
        self.full_bw_reached = False
        self.loss_round_delivered = 0
        self.loss_round_start = False
        self.loss_in_round = False
        self.loss_events = 0
        self.round_lost = 0
        self.round_delivered = 0
        self.cycle_count = 0
        self.cycle_stamp = 0.0
        self.ack_phase = ACKS_INIT
        self.bw_probe_wait = 0.0
        self.rounds_since_bw_probe = 0
        self.bw_probe_up_cnt = _BIG
        self.bw_probe_up_acks = 0
        self.bw_probe_up_rounds = 0
        self.bw_probe_samples = 0
        self.prior_cwnd = 0
        self.in_flight = 0
        self._rand = 0x2545F491  # deterministic stand-in for §4.3.3's random wait
        self.extra_acked = [0, 0]  # max-filter slots of the excess delivered, bytes
        self.extra_acked_idx = 0
        self.extra_acked_rounds = 0
        self.ack_epoch_stamp = 0.0
        self.ack_epoch_acked = 0
        self.state = STARTUP
        self.pacing_gain = STARTUP_PACING_GAIN
        self.cwnd_gain = STARTUP_CWND_GAIN

    # ------------------------------------------------- the interface's events

    def on_ack(self, acked: int, in_flight: int, now: float) -> None:
        """Everything happens in ``on_delivery``, which sees every ACK."""

    def on_congestion(self, in_flight: int, now: float) -> None:
        # BBR does not cut its window on a loss signal by itself (§4.2.3);
        # losses reach the model through the rate samples (inflight_hi, bw_lo).
        self.prior_cwnd = self._saved_cwnd()

    def on_recovery_end(self, in_flight: int, now: float) -> None:
        self.cwnd = max(self.cwnd, self.prior_cwnd)  # §4.6.4.4 restore

    def on_timeout(self, in_flight: int, now: float) -> None:
        # §4.6.4.4 BBROnEnterRTO: nothing is deemed in flight any more.
        self.prior_cwnd = self._saved_cwnd()
        self.cwnd = self.mss

    def on_rtt_sample(self, rtt: float, now: float) -> None:
        self.srtt = rtt if not self.srtt else self.srtt + (rtt - self.srtt) / 8
        # §4.6.2 BBRUpdateMinRTT. The draft starts both stamps at Now() when
        # the connection starts (BBROnInit); a controller has no clock then,
        # so the first sample starts them: with stamps of 0.0 the first
        # sample of a real clock (seconds since boot) found them "expired"
        # and sent startup into ProbeRTT at once, four segments for 200 ms.
        first = self.probe_rtt_min_delay == _INF
        probe_rtt_expired = not first and now > self.probe_rtt_min_stamp + PROBE_RTT_INTERVAL
        if probe_rtt_expired:
            self.probe_rtt_expired = True
        if rtt < self.probe_rtt_min_delay or probe_rtt_expired:
            self.probe_rtt_min_delay = rtt
            self.probe_rtt_min_stamp = now
        min_rtt_expired = not first and now > self.min_rtt_stamp + MIN_RTT_FILTER_LEN
        if self.probe_rtt_min_delay < self.min_rtt or min_rtt_expired:
            self.min_rtt = self.probe_rtt_min_delay
            self.min_rtt_stamp = self.probe_rtt_min_stamp
        if self.rate == 0.0:
            # §4.6.2 BBRInitPacingRate: the initial window over the first RTT.
            self.rate = STARTUP_PACING_GAIN * self.initial_cwnd / max(rtt, 0.001)

    def on_sent(self, seq: int, end: int, in_flight: int, app_limited: bool, now: float) -> None:
        self.rs.on_sent(seq, end, in_flight, app_limited, now)

    def on_delivery(self, snd_una: int, newest: int, sacked: int, lost: int, in_flight: int,
                    now: float) -> None:
        """§4.2 BBRUpdateOnACK, once per ACK."""
        min_rtt = self.min_rtt if self.min_rtt != _INF else 0.0
        rs = self.rs.on_ack(snd_una, newest, sacked, lost, min_rtt, now)
        self.in_flight = in_flight
        if rs.newly_delivered <= 0 and rs.newly_lost <= 0:
            return
        # BBRUpdateModelAndState
        self.update_latest_delivery_signals()
        self.update_congestion_signals(now)
        self.check_startup_done()
        self.check_drain_done(now)
        self.update_probe_bw_cycle_phase(now)
        self.check_probe_rtt(now)
        self.advance_latest_delivery_signals()
        self.bw = min(self.max_bw, self.bw_lo)
        self.update_ack_aggregation(rs.newly_delivered, now)
        # BBRUpdateControlParameters
        self.set_pacing_rate()
        self.set_cwnd()

    def pacing_rate(self, srtt: float | None) -> float:
        return self.rate

    # ------------------------------------------------------------ signals

    def update_latest_delivery_signals(self) -> None:
        """§4.5.10.2 and the round counting of §4.5.1."""
        rs = self.rs.sample
        sampler = self.rs
        self.round_start = False
        self.loss_round_start = False
        if rs.rate:
            if rs.prior_delivered >= self.next_round_delivered:
                self.next_round_delivered = sampler.delivered
                self.round_count += 1
                self.rounds_since_bw_probe += 1
                self.round_start = True
            if rs.prior_delivered >= self.loss_round_delivered:
                self.loss_round_delivered = sampler.delivered
                self.loss_round_start = True
        self.bw_latest = max(self.bw_latest, rs.rate)
        self.inflight_latest = max(self.inflight_latest, rs.delivered)
        self.round_delivered += rs.newly_delivered
        self.round_lost += rs.newly_lost
        if rs.newly_lost:
            self.loss_in_round = True
            self.loss_events += 1

    def update_ack_aggregation(self, acked: int, now: float) -> None:
        """§4.6.4.3 BBRUpdateACKAggregation: how much more than bw x time
        an ACK epoch delivered (capped at cwnd), windowed max over ~10 rounds."""
        if acked <= 0 or not self.bw:
            return
        if self.round_start:
            self.extra_acked_rounds += 1
            if self.extra_acked_rounds >= EXTRA_ACKED_WIN_ROUNDS or not self.full_bw_reached:
                # Startup: a one-round filter (§4.6.4.3's extra_acked_filter_len = 1).
                self.extra_acked_rounds = 0
                self.extra_acked_idx ^= 1
                self.extra_acked[self.extra_acked_idx] = 0
        expected = self.bw * (now - self.ack_epoch_stamp)
        if self.ack_epoch_acked <= expected or self.ack_epoch_acked + acked >= ACK_EPOCH_RESET:
            # ACKs came no faster than bw: a new epoch starts here.
            self.ack_epoch_acked = 0
            self.ack_epoch_stamp = now
            expected = 0.0
        self.ack_epoch_acked += acked
        extra = min(int(self.ack_epoch_acked - expected), self.cwnd)
        if extra > self.extra_acked[self.extra_acked_idx]:
            self.extra_acked[self.extra_acked_idx] = extra

    def advance_latest_delivery_signals(self) -> None:
        if self.loss_round_start:
            rs = self.rs.sample
            self.bw_latest = rs.rate
            self.inflight_latest = rs.delivered

    def update_congestion_signals(self, now: float) -> None:
        """§4.5.10.3: the max-bandwidth filter, and the loss of the last round."""
        rs = self.rs.sample
        if rs.rate and (rs.rate >= self.max_bw or not rs.is_app_limited):
            self.bw_hi[1] = max(self.bw_hi[1], rs.rate)
            self.max_bw = max(self.bw_hi[0], self.bw_hi[1])
        if not self.loss_round_start:
            return
        self.adapt_lower_bounds()
        if self.state == STARTUP and not self.full_bw_reached:
            self.check_startup_high_loss()
        self.loss_in_round = False
        self.loss_events = 0
        self.round_lost = self.round_delivered = 0

    def adapt_lower_bounds(self) -> None:
        """§4.5.10.3 BBRAdaptLowerBoundsFromCongestion: after a round with
        loss outside probing, bound bw and inflight by the latest samples.

        Deviation: the draft reacts to any loss in the round; here only to
        a round that lost more than LOSS_THRESH (the threshold the draft
        uses for inflight_hi) and more than one segment. With random loss of
        1% every round of a path holding 100 segments sees a loss (and one
        loss in a round of 40 is 2.5%); as BBR paces 1% below its estimate,
        each such round lowered bw_lo by that margin, and the rate decayed to
        half the bottleneck (50 Mbit/s, 50 ms) between two probes."""
        if self.state in (STARTUP, PROBE_BW_REFILL, PROBE_BW_UP):
            return
        total = self.round_delivered + self.round_lost
        if self.loss_in_round and self.round_lost > max(LOSS_THRESH * total, self.mss):
            if self.bw_lo == _INF:
                self.bw_lo = self.max_bw
            if self.inflight_lo == _BIG:
                self.inflight_lo = self.cwnd
            self.bw_lo = max(self.bw_latest, BETA * self.bw_lo)
            self.inflight_lo = max(self.inflight_latest, int(BETA * self.inflight_lo))

    def check_startup_high_loss(self) -> None:
        """§4.3.1.3: Startup ends early when a round lost more than 2% in
        several separate losses."""
        total = self.round_delivered + self.round_lost
        if (self.loss_events >= STARTUP_FULL_LOSS_COUNT and total
                and self.round_lost > LOSS_THRESH * total):
            self.full_bw_reached = True
            self.inflight_hi = max(self.bdp_multiple(1.0), self.inflight_latest)

    # ------------------------------------------------------------ states

    def check_startup_done(self) -> None:
        """§4.3.1.2: full bandwidth is reached after three rounds without 25% growth."""
        rs = self.rs.sample
        if self.state != STARTUP:
            return
        if not self.full_bw_reached and self.round_start and not rs.is_app_limited:
            if self.max_bw >= self.full_bw * FULL_BW_THRESH:
                self.full_bw = self.max_bw
                self.full_bw_count = 0
            else:
                self.full_bw_count += 1
                if self.full_bw_count >= FULL_BW_COUNT:
                    self.full_bw_reached = True
        if self.full_bw_reached:
            self.state = DRAIN
            self.pacing_gain = DRAIN_PACING_GAIN
            self.cwnd_gain = STARTUP_CWND_GAIN

    def check_drain_done(self, now: float) -> None:
        if self.state == DRAIN and self.in_flight <= self.bdp_multiple(1.0):
            self.start_probe_bw_down(now)

    def update_probe_bw_cycle_phase(self, now: float) -> None:
        """§4.3.3.6 BBRUpdateProbeBWCyclePhase."""
        if not self.full_bw_reached:
            return
        self.adapt_upper_bounds(now)
        st = self.state
        if st not in _PROBE_BW:
            return
        if st == PROBE_BW_DOWN:
            if self.check_time_to_probe_bw(now):
                return
            if self.check_time_to_cruise():
                self.set_state(PROBE_BW_CRUISE, 1.0, DEFAULT_CWND_GAIN)
        elif st == PROBE_BW_CRUISE:
            self.check_time_to_probe_bw(now)
        elif st == PROBE_BW_REFILL:
            if self.round_start:
                self.bw_probe_samples = 1
                self.start_probe_bw_up(now)
        elif st == PROBE_BW_UP:
            if (now - self.cycle_stamp > self.min_rtt
                    and self.in_flight > self.bdp_multiple(1.25)):
                self.start_probe_bw_down(now)

    def adapt_upper_bounds(self, now: float) -> None:
        """§4.3.3.6 BBRAdaptUpperBounds: inflight_hi from the probes' loss."""
        rs = self.rs.sample
        if self.ack_phase == ACKS_PROBE_STARTING and self.round_start:
            self.ack_phase = ACKS_PROBE_FEEDBACK
        if self.ack_phase == ACKS_PROBE_STOPPING and self.round_start:
            # The probe's samples are in: the best time to forget the cycle
            # before last (once per cycle; Linux's bbr_adapt_upper_bounds).
            self.bw_probe_samples = 0
            self.ack_phase = ACKS_INIT
            if self.state in _PROBE_BW and not rs.is_app_limited:
                self.advance_max_bw_filter()
        lost = self.rs.lost - rs.prior_lost
        if self.bw_probe_samples and rs.tx_in_flight and lost > LOSS_THRESH * rs.tx_in_flight:
            # §4.5.10.2 BBRHandleInflightTooHigh
            self.bw_probe_samples = 0
            if not rs.is_app_limited:
                self.inflight_hi = max(rs.tx_in_flight, int(BETA * self.bdp_multiple(self.cwnd_gain)))
            if self.state == PROBE_BW_UP:
                self.start_probe_bw_down(now)
            return
        if self.inflight_hi == _BIG:
            return
        if rs.tx_in_flight > self.inflight_hi:
            self.inflight_hi = rs.tx_in_flight
        if self.state == PROBE_BW_UP:
            self.probe_inflight_hi_upward(rs.newly_delivered)

    def probe_inflight_hi_upward(self, acked: int) -> None:
        """§4.3.3.6: grow inflight_hi exponentially per round while probing."""
        if self.in_flight + self.mss < self.cwnd or self.cwnd < self.inflight_hi:
            return  # not limited by inflight_hi
        self.bw_probe_up_acks += acked
        cnt = self.bw_probe_up_cnt * self.mss
        if self.bw_probe_up_acks >= cnt:
            delta = self.bw_probe_up_acks // cnt
            self.bw_probe_up_acks -= delta * cnt
            self.inflight_hi += delta * self.mss
        if self.round_start:
            self.raise_inflight_hi_slope()

    def raise_inflight_hi_slope(self) -> None:
        growth = 1 << self.bw_probe_up_rounds  # segments this round
        self.bw_probe_up_rounds = min(self.bw_probe_up_rounds + 1, 30)
        self.bw_probe_up_cnt = max(self.cwnd // self.mss // growth, 1)

    def advance_max_bw_filter(self) -> None:
        self.cycle_count += 1
        self.bw_hi[0] = self.bw_hi[1]
        self.bw_hi[1] = 0.0
        self.max_bw = self.bw_hi[0]

    def check_time_to_probe_bw(self, now: float) -> bool:
        """§4.3.3.5: after the wall-clock wait, or Reno's round count, refill."""
        reno_rounds = min(self.bdp_multiple(1.0) // self.mss, 63)
        if now - self.cycle_stamp > self.bw_probe_wait or self.rounds_since_bw_probe >= reno_rounds:
            self.start_probe_bw_refill()
            return True
        return False

    def check_time_to_cruise(self) -> bool:
        if self.in_flight > self.inflight_with_headroom():
            return False
        return self.in_flight <= self.bdp_multiple(1.0)

    def inflight_with_headroom(self) -> int:
        """§4.5.10.4: leave room for other flows below inflight_hi."""
        if self.inflight_hi == _BIG:
            return _BIG
        headroom = max(self.mss, int(HEADROOM * self.inflight_hi))
        return max(self.inflight_hi - headroom, MIN_PIPE_SEGMENTS * self.mss)

    def set_state(self, state: int, pacing_gain: float, cwnd_gain: float) -> None:
        self.state = state
        self.pacing_gain = pacing_gain
        self.cwnd_gain = cwnd_gain

    def start_round(self) -> None:
        self.next_round_delivered = self.rs.delivered

    def start_probe_bw_down(self, now: float) -> None:
        self.bw_probe_samples = 0  # §4.3.3.6 BBRResetCongestionSignals
        self.loss_in_round = False
        self.bw_latest = 0.0
        self.inflight_latest = 0
        self.bw_probe_up_cnt = _BIG
        # BBRPickProbeWait: 0 or 1 rounds, and 2 to 3 seconds.
        self._rand = (self._rand * 1103515245 + 12345) & 0x7FFFFFFF
        self.rounds_since_bw_probe = self._rand & 1
        self.bw_probe_wait = 2.0 + (self._rand >> 8) / float(1 << 23)
        self.cycle_stamp = now
        self.ack_phase = ACKS_PROBE_STOPPING
        self.start_round()
        self.set_state(PROBE_BW_DOWN, 0.9, DEFAULT_CWND_GAIN)

    def start_probe_bw_refill(self) -> None:
        self.bw_lo = _INF  # BBRResetShortTermModel
        self.inflight_lo = _BIG
        self.bw_probe_up_rounds = 0
        self.bw_probe_up_acks = 0
        self.ack_phase = ACKS_REFILLING
        self.start_round()
        self.set_state(PROBE_BW_REFILL, 1.0, DEFAULT_CWND_GAIN)

    def start_probe_bw_up(self, now: float) -> None:
        self.ack_phase = ACKS_PROBE_STARTING
        self.start_round()
        self.cycle_stamp = now
        self.set_state(PROBE_BW_UP, 1.25, PROBE_UP_CWND_GAIN)
        self.raise_inflight_hi_slope()

    def check_probe_rtt(self, now: float) -> None:
        """§4.3.4: every PROBE_RTT_INTERVAL without a new minimum, shrink the
        window to half the BDP for 200 ms and a round."""
        expired = self.probe_rtt_expired
        self.probe_rtt_expired = False
        if self.state != PROBE_RTT and expired:
            self.prior_cwnd = self._saved_cwnd()
            self.set_state(PROBE_RTT, 1.0, PROBE_RTT_CWND_GAIN)
            self.probe_rtt_done_stamp = 0.0
            self.ack_phase = ACKS_PROBE_STOPPING
            self.start_round()
        if self.state != PROBE_RTT:
            return
        sampler = self.rs
        sampler.app_limited = max(sampler.delivered + self.in_flight, 1)
        if not self.probe_rtt_done_stamp and self.in_flight <= self.probe_rtt_cwnd():
            self.probe_rtt_done_stamp = now + PROBE_RTT_DURATION
            self.probe_rtt_round_done = False
            self.start_round()
        elif self.probe_rtt_done_stamp:
            if self.round_start:
                self.probe_rtt_round_done = True
            if self.probe_rtt_round_done and now > self.probe_rtt_done_stamp:
                self.probe_rtt_min_stamp = now
                self.cwnd = max(self.cwnd, self.prior_cwnd)
                self.bw_lo = _INF
                self.inflight_lo = _BIG
                if self.full_bw_reached:
                    self.start_probe_bw_down(now)
                    self.set_state(PROBE_BW_CRUISE, 1.0, DEFAULT_CWND_GAIN)
                else:
                    self.set_state(STARTUP, STARTUP_PACING_GAIN, STARTUP_CWND_GAIN)

    # ------------------------------------------------------ control outputs

    def bdp_multiple(self, gain: float) -> int:
        """§4.6.4.2 BBRBDPMultiple: gain x bw x min_rtt, in bytes."""
        if self.min_rtt == _INF or not self.bw:
            return self.initial_cwnd
        return int(gain * self.bw * self.min_rtt)

    def probe_rtt_cwnd(self) -> int:
        return max(self.bdp_multiple(PROBE_RTT_CWND_GAIN), MIN_PIPE_SEGMENTS * self.mss)

    def send_quantum(self) -> int:
        """§4.6.3: about 1 ms of data at the pacing rate, 2 segments at least."""
        return min(max(int(self.rate * 0.001), 2 * self.mss), 64 * 1024)

    def set_pacing_rate(self) -> None:
        """§4.6.2 BBRSetPacingRateWithGain."""
        rate = self.pacing_gain * self.bw * (1 - PACING_MARGIN)
        if rate and (self.full_bw_reached or rate > self.rate):
            self.rate = rate

    def set_cwnd(self) -> None:
        """§4.6.4.6 BBRSetCwnd."""
        rs = self.rs.sample
        quanta = 3 * self.send_quantum()
        if self.state == PROBE_BW_UP:
            quanta += 2 * self.mss
        # §4.6.4.2 BBRUpdateMaxInflight: the BDP plus the ACK aggregation seen.
        max_inflight = self.bdp_multiple(self.cwnd_gain) + max(self.extra_acked) + quanta
        cwnd = self.cwnd
        acked = rs.newly_delivered
        if rs.newly_lost:
            cwnd = max(cwnd - rs.newly_lost, self.mss)  # §4.6.4.4 BBRModulateCwndForRecovery
        if self.full_bw_reached:
            cwnd = min(cwnd + acked, max_inflight)
        elif cwnd < max_inflight or self.rs.delivered < self.initial_cwnd:
            cwnd += acked
        min_pipe = MIN_PIPE_SEGMENTS * self.mss
        cwnd = max(cwnd, min_pipe)
        if self.state == PROBE_RTT:
            cwnd = min(cwnd, self.probe_rtt_cwnd())
        # §4.6.4.7 BBRBoundCwndForModel
        cap = _BIG
        if self.state in _PROBE_BW and self.state != PROBE_BW_CRUISE:
            cap = self.inflight_hi
        elif self.state == PROBE_RTT or self.state == PROBE_BW_CRUISE:
            cap = self.inflight_with_headroom()
        cap = max(min(cap, self.inflight_lo), min_pipe)
        self.cwnd = min(cwnd, cap)

    def _saved_cwnd(self) -> int:
        return max(self.prior_cwnd, self.cwnd) if self.state == PROBE_RTT else self.cwnd
