"""Bulk transfers through a bottleneck in the simulator, for the congestion
control tests (tests/test_cc_sim.py) and benchmarks/sim_figures.py-style
figures: goodput, the bottleneck's queue drops, when slow start ended."""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rudp.core.config import Config  # noqa: E402
from rudp.tools.sim import QUEUE_DROPPED, LinkConfig  # noqa: E402

from simapps import CLIENT, PORT, SERVER, Net, StreamApp, payload  # type: ignore[import-not-found]  # noqa: E402

_SS_UNSET = 1 << 62


@dataclasses.dataclass
class Bulk:
    size: int
    received: int
    started_at: float
    done_at: float | None
    ss_exit_at: float | None  # ssthresh first set: HyStart++'s exit or the first loss
    queue_drops: int
    drops_in_slow_start: int
    lost: int
    cc: Any
    conn: Any

    @property
    def goodput(self) -> float:
        """Bytes per second from the connect to the last byte read."""
        assert self.done_at is not None, "transfer did not finish"
        return self.size / (self.done_at - self.started_at)


def _setup(config: Config, link: LinkConfig, size: int, seed: int) -> tuple[Net, Any, StreamApp]:
    """A client that will send ``size`` bytes to a listening server over
    ``link``, ACKs back over a clean link of the same delay: (net, server host, client app)."""
    net = Net(seed)
    net.host(CLIENT, config)
    data = payload(size, seed)
    server = net.host(SERVER, config, factory=lambda: StreamApp(b"", data, when_written=None,
                                                                name="server"))
    net.link(CLIENT, SERVER, link, LinkConfig(delay=link.delay))
    server.endpoint.listen(PORT)
    return net, server, StreamApp(data, b"", write="all", name="client")


def bulk(config: Config, link: LinkConfig, size: int, *, seed: int = 1,
         until: float = 600.0) -> Bulk:
    """The client sends ``size`` bytes over ``link`` (ACKs come back over a
    clean link of the same delay) and we watch its controller."""
    net, server, client = _setup(config, link, size, seed)
    net.sim.trace = []
    conns: list[Any] = []
    ss_exit: list[float] = []
    net.sim.call_at(0.0, lambda: conns.append(net.hosts[CLIENT].connect(SERVER, PORT, client)))

    def watch() -> None:
        if conns and conns[0].cc.ssthresh < _SS_UNSET and not ss_exit:
            ss_exit.append(net.sim.now)
        if not ss_exit:
            net.sim.call_later(0.001, watch)

    net.sim.call_at(0.0, watch)
    done: list[float] = []

    def finished() -> bool:
        if server.apps and server.apps[0].received >= size and not done:
            done.append(net.sim.now)
        return bool(done)

    net.sim.run(until=until, stop=finished)
    fwd = net.sim.link(CLIENT, SERVER).stats
    ss_at = ss_exit[0] if ss_exit else None
    drops = [t for t, src, _, _, outcome in net.sim.trace
             if outcome == QUEUE_DROPPED and src == CLIENT]
    return Bulk(
        size=size,
        received=server.apps[0].received if server.apps else 0,
        started_at=0.0,
        done_at=done[0] if done else None,
        ss_exit_at=ss_at,
        queue_drops=fwd.queue_dropped,
        drops_in_slow_start=sum(1 for t in drops if ss_at is None or t < ss_at),
        lost=fwd.lost,
        cc=conns[0].cc,
        conn=conns[0],
    )


def mathis(mss: int, rtt: float, p: float) -> float:
    """The Mathis et al. bound on a Reno flow's rate: MSS/RTT x 1.22/sqrt(p)."""
    return mss / rtt * 1.22 / p ** 0.5


def steady_fraction(config: Config, link: LinkConfig, t1: float, t2: float, *,
                    seed: int = 1) -> float:
    """Goodput between ``t1`` and ``t2`` (after the start-up) of a transfer
    that lasts beyond ``t2``, as a fraction of the link's bit rate (the link
    also carries the headers: a full segment's payload is ~98% of it)."""
    assert link.bandwidth is not None
    net, server, client = _setup(config, link, int(link.bandwidth / 8 * (t2 + 1)), seed)
    net.sim.call_at(0.0, lambda: net.hosts[CLIENT].connect(SERVER, PORT, client))
    marks: list[int] = []
    for t in (t1, t2):
        net.sim.call_at(t, lambda: marks.append(server.apps[0].received))
    net.sim.run(until=t2 + 0.001)
    return (marks[1] - marks[0]) * 8 / (t2 - t1) / link.bandwidth
