"""Pacing: rudp.core.pacing alone, then through a connection and the simulator."""

from __future__ import annotations

import pytest

from rudp.core.config import Config
from rudp.core.pacing import MAX_LAG, MIN_BURST_SEGMENTS, Pacer
import os
import sys

from rudp.tools.sim import LinkConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ccsim import bulk  # type: ignore[import-not-found]


def test_bucket_starts_full_and_refills_at_the_rate() -> None:
    p = Pacer()
    # 10 MB/s: a 1 ms burst is 10 kB.
    assert p.allowance(10e6, 1000, 1.0) == 10_000
    p.spent(12_000)  # a segment may overdraw it
    assert p.allowance(10e6, 1000, 1.0) == 0
    assert p.release_time(1.0) == pytest.approx(1.0 + 12_000 / 10e6)
    assert p.allowance(10e6, 1000, 1.0012) == pytest.approx(10_000, abs=1)


def test_a_late_wake_up_keeps_what_it_earned() -> None:
    """The pace timer fired 1.5 ms after the release time: the tokens of
    those 1.5 ms are kept on top of the burst (the loop's lateness must not
    lower the rate), but never more than MAX_LAG's worth."""
    p = Pacer()
    assert p.allowance(10e6, 1000, 1.0) == 10_000
    p.spent(10_000)
    due = p.release_time(1.0)
    assert due == pytest.approx(1.001)
    assert p.allowance(10e6, 1000, due + 0.0015) == pytest.approx(25_000, abs=1)
    p.spent(25_000)
    p.release_time(due + 0.0015)
    # Woken very late: one burst plus MAX_LAG's worth at most.
    assert p.allowance(10e6, 1000, 2.0) == pytest.approx(10_000 + MAX_LAG * 10e6, abs=1)
    # An early call (an ACK) before any hold: the plain burst cap.
    assert p.allowance(10e6, 1000, 3.0) == 10_000


def test_burst_is_at_least_two_segments() -> None:
    p = Pacer()
    assert p.allowance(100_000.0, 1000, 5.0) == MIN_BURST_SEGMENTS * 1000
    p.spent(2000)
    # At 100 kB/s two segments refill in 20 ms: the timer wakes once per pair.
    assert p.release_time(5.0) == pytest.approx(5.02)


def test_connection_holds_data_back_and_arms_the_pace_timer() -> None:
    """A CUBIC connection in the simulator: while the window allows more than
    the pacer, segments leave in bursts and the endpoint's deadline is the
    pacer's release time."""
    r = bulk(Config(), LinkConfig(delay=0.05, bandwidth=100e6), 2_000_000)
    assert r.done_at is not None
    # Pacing spread each window over the RTT: 100 Mbit/s would let a burst
    # of a whole window through; the pace timer fired many times.
    assert r.conn.stats.segments_sent > 1000


def test_pacing_spreads_a_window_over_the_rtt() -> None:
    """Unpaced, a window leaves as one burst and a shallow queue overflows;
    paced at 2 cwnd / SRTT (slow start) the same queue holds."""
    link = LinkConfig(delay=0.05, bandwidth=20e6, queue_limit=8)
    paced = bulk(Config(congestion_control="cubic"), link, 300_000)
    unpaced = bulk(Config(congestion_control="cubic", pacing=False), link, 300_000)
    assert paced.drops_in_slow_start < unpaced.drops_in_slow_start


def test_endpoint_deadline_includes_the_pacing_release() -> None:
    """While the pacer holds data back, the connection's ``pace`` timer is
    armed and the endpoint's next deadline (what the driver's one loop timer
    and the simulator wait for) is no later than it."""
    from ccsim import CLIENT, PORT, SERVER, Net, StreamApp, payload  # type: ignore[import-not-found]

    net = Net(3)
    cfg = Config()
    client_host = net.host(CLIENT, cfg)
    data = payload(1_000_000, 3)
    server = net.host(SERVER, cfg, factory=lambda: StreamApp(b"", data, when_written=None))
    net.link(CLIENT, SERVER, LinkConfig(delay=0.05, bandwidth=50e6))
    server.endpoint.listen(PORT)
    app = StreamApp(data, b"", write="all")
    conns: list = []  # type: ignore[type-arg]
    net.sim.call_at(0.0, lambda: conns.append(client_host.connect(SERVER, PORT, app)))
    held: list[tuple[float, float | None]] = []

    def watch() -> None:
        if conns and conns[0].timers.pace is not None:
            held.append((conns[0].timers.pace, client_host.endpoint.get_timer()))
        net.sim.call_later(0.0005, watch)

    net.sim.call_at(0.0, watch)
    net.sim.run(until=1.0)
    assert len(held) > 50
    assert all(deadline is not None and deadline <= pace for pace, deadline in held)
