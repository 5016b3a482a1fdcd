"""rudp.core.bbr: BBRv3 (draft-ietf-ccwg-bbr), alone and through the simulator."""

from __future__ import annotations

import os
import sys

import pytest

from rudp.core.bbr import (
    DRAIN, PROBE_BW_CRUISE, PROBE_BW_DOWN, PROBE_BW_REFILL, PROBE_BW_UP, PROBE_RTT, STARTUP,
    STARTUP_PACING_GAIN, Bbr,
)
from rudp.core.config import Config
from rudp.core.connection import Connection
from rudp.core.endpoint import Endpoint
from rudp.core.state import State
from rudp.tools.sim import LinkConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ccsim import Net as ccsim_Net  # type: ignore[import-not-found]  # noqa: E402
from ccsim import bulk  # noqa: E402

MSS = 1000


def test_starts_in_startup_with_a_high_gain() -> None:
    cc = Bbr(MSS, 10)
    assert cc.state == STARTUP and cc.wants_delivery
    assert cc.pacing_rate(None) == 0.0  # no RTT yet: the window alone limits
    cc.on_rtt_sample(0.1, 0.0)
    # §4.6.2 BBRInitPacingRate: 2.77 x initial window / first RTT.
    assert cc.pacing_rate(0.1) == pytest.approx(STARTUP_PACING_GAIN * 10_000 / 0.1)
    assert cc.min_rtt == 0.1


def test_loss_events_do_not_cut_the_window_but_timeouts_do() -> None:
    cc = Bbr(MSS, 10)
    cc.cwnd = 50_000
    cc.on_congestion(50_000, 1.0)
    assert cc.cwnd == 50_000  # §4.2.3: loss reaches BBR through its model
    cc.on_recovery_end(10_000, 1.1)
    assert cc.cwnd == 50_000
    cc.on_timeout(50_000, 2.0)
    assert cc.cwnd == MSS and cc.prior_cwnd == 50_000


def test_ack_aggregation_is_the_excess_over_bw_times_time() -> None:
    """§4.6.4.3: an epoch starts when ACKs come no faster than bw; what it
    delivers beyond bw x its duration is extra_acked, at most cwnd, and it
    widens the window (§4.6.4.2)."""
    cc = Bbr(MSS, 10)
    cc.bw = 1e6  # bytes/s
    cc.cwnd = 100_000
    cc.full_bw_reached = True
    cc.update_ack_aggregation(10_000, 1.0)  # a new epoch
    assert max(cc.extra_acked) == 10_000
    cc.update_ack_aggregation(10_000, 1.005)  # 20 kB in 5 ms where bw says 5 kB
    assert max(cc.extra_acked) == 15_000
    cc.update_ack_aggregation(2_000, 1.2)  # slower than bw: a new epoch
    assert cc.ack_epoch_acked == 2_000
    assert max(cc.extra_acked) == 15_000  # the filter keeps its maximum
    cc.cwnd = 12_000
    cc.update_ack_aggregation(30_000, 1.2)
    assert max(cc.extra_acked) == 15_000  # this epoch's 32 kB, capped at cwnd


def test_min_rtt_filter_expires_after_ten_seconds() -> None:
    cc = Bbr(MSS, 10)
    cc.on_rtt_sample(0.05, 0.0)
    cc.on_rtt_sample(0.08, 5.0)
    assert cc.min_rtt == 0.05
    cc.on_rtt_sample(0.08, 10.5)  # §4.6.2: the 10 s window passed
    assert cc.min_rtt == 0.08


def test_a_clock_far_from_zero_does_not_start_in_probe_rtt() -> None:
    """The adapter's clock is the loop's (seconds since boot): the first RTT
    sample starts the ProbeRTT and min-RTT stamps (the draft's BBROnInit sets
    them to Now()) instead of finding them expired. They were 0.0, and every
    real connection spent its first 200 ms in ProbeRTT at four segments."""
    cc = Bbr(MSS, 10)
    cc.on_rtt_sample(0.02, 86_400.0)
    assert not cc.probe_rtt_expired and cc.min_rtt == 0.02
    cc.check_probe_rtt(86_400.0)
    assert cc.state == STARTUP
    cc.on_rtt_sample(0.03, 86_405.5)  # PROBE_RTT_INTERVAL (5 s) without a new minimum
    assert cc.probe_rtt_expired


class StateRecorder:
    """An observer (rudp.core.observer) that remembers the BBR states each
    connection passed through, looked at after every ACK of new data (no
    subclass of the engine's Bbr: a compiled one takes none)."""

    def __init__(self) -> None:
        self.seen: dict[Connection, list[int]] = {}

    def _look(self, conn: Connection) -> None:
        assert isinstance(conn.cc, Bbr)
        seen = self.seen.setdefault(conn, [conn.cc.state])
        if conn.cc.state != seen[-1]:
            seen.append(conn.cc.state)

    def state_changed(self, conn: Connection, old: State, new: State) -> None:
        self._look(conn)

    def rtt_sample(self, conn: Connection, rtt: float) -> None:
        self._look(conn)

    def acked(self, conn: Connection) -> None:
        self._look(conn)

    def loss(self, conn: Connection, kind: str) -> None:
        self._look(conn)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> StateRecorder:
    """Every endpoint ccsim's helpers make gets the one recorder as observer."""
    rec = StateRecorder()

    def attach(ep: Endpoint) -> None:
        ep.observer = rec

    monkeypatch.setattr(sys.modules[ccsim_Net.__module__], "ENDPOINT_HOOKS", [attach])
    return rec


def test_model_and_state_machine_on_a_clean_bottleneck(recorder: StateRecorder) -> None:
    """10 Mbit/s, 50 ms, queue of a BDP, no loss, ~7 s: Startup finds the
    bandwidth, Drain empties the queue, ProbeBW cycles, ProbeRTT comes after
    5 s without a lower RTT; the model matches the link."""
    bw = 10e6
    r = bulk(Config(congestion_control="bbr"), LinkConfig(delay=0.025, bandwidth=bw,
                                                          queue_limit=43), 8_000_000)
    cc = r.cc
    seen = recorder.seen[r.conn]
    # Drain ends in ProbeBW_DOWN, which may turn CRUISE on the same ACK.
    assert seen[:2] == [STARTUP, DRAIN] and seen[2] in (PROBE_BW_DOWN, PROBE_BW_CRUISE)
    assert {PROBE_BW_DOWN, PROBE_BW_CRUISE, PROBE_BW_REFILL, PROBE_BW_UP, PROBE_RTT} <= set(seen)
    payload_rate = bw / 8 * 1420 / 1452  # the link also carries the headers
    assert 0.95 * payload_rate < cc.max_bw <= 1.01 * payload_rate
    assert cc.min_rtt == pytest.approx(0.05, abs=0.002)
    assert r.goodput > 0.85 * bw / 8
    assert r.queue_drops < 50  # Startup's overshoot only
