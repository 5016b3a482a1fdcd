"""Loss detection and recovery end to end, in the simulator, with the
datagrams that go missing or late chosen by a script (Link.script):

- RACK-TLP repairs a tail loss without a retransmission timeout (RFC 8985 §7);
- on a path that reorders a few segments, RACK's reordering window adapts
  (D-SACK, RFC 8985 §6.2) and later reordering causes no fast retransmit;
- a delay spike that fires the RTO is found spurious, by Eifel (timestamps,
  RFC 3522) or F-RTO (RFC 5682), and undone (RFC 4015): the window is not
  resent and cwnd is not left at one segment.

Every test asserts what happened (counters, bytes delivered), never how fast.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import pytest

from rudp.core.config import Config
from rudp.core.connection import CLOSED, Connection
from rudp.core.wire import FIN, decode
from rudp.tools.sim import LinkConfig

from .simapps import CLIENT, PORT, SERVER, App, Net, StreamApp, payload

MSS_DATA = 1420  # payload of a full segment with timestamps (DEFAULT_MSS - 12)


@dataclasses.dataclass
class Run:
    client: Connection
    server_app: StreamApp
    done_at: float | None
    delivered_ok: bool


def transfer(
    size: int, script: Callable[[bytes, float], float | None] | None, *,
    config: Config = Config(), link: LinkConfig = LinkConfig(delay=0.01),
    back_script: Callable[[bytes, float], float | None] | None = None,
    at: Callable[[Net], None] | None = None, seed: int = 1,
) -> Run:
    """The client sends ``size`` bytes and closes; the forward link (client to
    server) follows ``script``, the reverse one ``back_script``."""
    data = payload(size, seed)
    net = Net(seed)
    sim = net.sim
    server: dict[str, StreamApp] = {}

    def make_server() -> App:
        app = StreamApp(b"", data, when_written=None, name="server")
        server["app"] = app
        return app

    client_host = net.host(CLIENT, config, seed=11)
    server_host = net.host(SERVER, config, factory=make_server, seed=12)
    net.link(CLIENT, SERVER, link)
    sim.link(CLIENT, SERVER).script = script
    sim.link(SERVER, CLIENT).script = back_script
    server_host.endpoint.listen(PORT)
    app = StreamApp(data, b"", write="all", when_written="close", name="client")
    holder: dict[str, Connection] = {}
    sim.call_at(0.0, lambda: holder.__setitem__("c", client_host.connect(SERVER, PORT, app)))
    if at is not None:
        at(net)

    def stop() -> bool:
        c = holder.get("c")
        s = server.get("app")
        return bool(c is not None and c.state is CLOSED and s is not None
                    and s.conn is not None and s.conn.state is CLOSED)

    sim.run(until=60.0, stop=stop, max_steps=2_000_000)
    s = server["app"]
    return Run(holder["c"], s, s.received_all_at, s.sha_ok and s.order_ok and s.received == size)


def data_segments(script: Callable[[int, int, float], float | None]
                  ) -> Callable[[bytes, float], float | None]:
    """A link script that sees (seq, payload length, now) of each segment."""
    def run(data: bytes, now: float) -> float | None:
        seg = decode(data, verify_checksum=False)
        return script(seg.seq, len(seg.payload) + (1 if seg.flags & FIN else 0), now)
    return run


# --- RACK-TLP repairs a tail loss without an RTO (RFC 8985 §7) ---------------


@pytest.mark.parametrize("timestamps", [True, False])
def test_tail_loss_repaired_by_tlp_without_rto(timestamps: bool) -> None:
    """The last two segments of a 20-segment write (the FIN rides on the
    last) are lost on their first transmission. Nothing after them can draw
    duplicate ACKs; the probe (the last segment again, after 2*SRTT) draws a
    SACK, RACK marks the other lost, and both are repaired without an RTO."""
    size = 20 * MSS_DATA
    seen: dict[int, int] = {}
    last = 0

    def script(seq: int, n: int, now: float) -> float | None:
        nonlocal last
        if n == 0:
            return 0.0
        seen[seq] = seen.get(seq, 0) + 1
        last = max(last, seq)
        return 0.0

    # Two passes: first learn the sequence numbers, then drop the last two
    # segments' first transmissions.
    probe = transfer(size, data_segments(script), config=Config(timestamps=timestamps))
    assert probe.delivered_ok
    tail = sorted(seen)[-2:]
    sent: dict[int, int] = {}

    def drop_tail(seq: int, n: int, now: float) -> float | None:
        if seq in tail:
            sent[seq] = sent.get(seq, 0) + 1
            if sent[seq] == 1:
                return None
        return 0.0

    run = transfer(size, data_segments(drop_tail), config=Config(timestamps=timestamps))
    st = run.client.stats
    assert run.delivered_ok
    assert st.timeouts == 0
    assert st.tail_loss_probes == 1
    assert st.tlp_repairs + st.fast_retransmits >= 1  # congestion control heard of it
    assert st.retransmits == 2  # the probe and the one RACK then marked lost
    print(f"tail loss (ts={timestamps}): done at {run.done_at:.4f} s, probes "
          f"{st.tail_loss_probes}, retransmits {st.retransmits}, timeouts {st.timeouts}")


# --- reordering: the window adapts (RFC 8985 §6.2) ---------------------------


def test_reordering_causes_no_spurious_fast_retransmit_once_the_window_adapts() -> None:
    """Every 25th data segment arrives 8 ms late on a 20 ms RTT path (more
    than min_RTT / 4 = 5 ms). The first such event may be taken for a loss:
    the echo (Eifel) or the D-SACK that comes back undoes the reduction and
    widens the reordering window; the later events retransmit nothing."""
    size = 300 * MSS_DATA
    count = {"n": 0, "late": 0}
    firsts: set[int] = set()

    def late(seq: int, n: int, now: float) -> float | None:
        if n == 0 or seq in firsts:
            return 0.0
        firsts.add(seq)
        count["n"] += 1
        if count["n"] % 25 == 0:
            count["late"] += 1
            return 0.008
        return 0.0

    run = transfer(size, data_segments(late), link=LinkConfig(delay=0.01, bandwidth=20e6))
    st = run.client.stats
    rec = run.client.recovery
    assert run.delivered_ok
    assert count["late"] >= 10
    assert st.timeouts == 0
    assert rec.reordering_seen
    # Only the events before the window adapted (the first, and one more
    # that came before the first one's D-SACK) are taken for losses, and
    # each is undone; the other ten or more retransmit nothing.
    assert rec.reo_wnd_mult >= 2
    assert st.fast_retransmits <= 2
    assert st.retransmits == st.fast_retransmits
    assert st.spurious_recoveries == st.fast_retransmits
    print(f"reordering: {count['late']} late segments, fast retransmits "
          f"{st.fast_retransmits}, retransmits {st.retransmits}, D-SACKs "
          f"{st.dsacks_received}, spurious recoveries {st.spurious_recoveries}, "
          f"reo_wnd_mult {rec.reo_wnd_mult}, done at {run.done_at:.4f} s")


# --- a delay spike: spurious RTO undone (RFC 3522, RFC 5682, RFC 4015) -------


@pytest.mark.parametrize("timestamps", [True, False])
def test_spurious_rto_from_a_delay_spike_is_undone(timestamps: bool) -> None:
    """From 0.1 s to 0.15 s every ACK is held 0.5 s (a route change, a
    radio link's retries): the sender's RTO fires though nothing was lost.
    The first ACK after the retransmission shows it: its echo predates the
    retransmission (Eifel) or, without timestamps, F-RTO's two new segments
    are acknowledged. The reduction is undone and the rest of the window is
    not sent again."""
    size = 400 * MSS_DATA

    def spike(data: bytes, now: float) -> float | None:
        return 0.5 if 0.1 <= now < 0.15 else 0.0

    def fifo_spike(net: Net) -> None:
        link = net.sim.link(SERVER, CLIENT)
        base = link.config

        def start() -> None:
            link.config = dataclasses.replace(base, delay=base.delay + 0.5)

        def end() -> None:
            link.config = base

        net.sim.call_at(0.1, start)
        net.sim.call_at(0.15, end)

    run = transfer(size, None, config=Config(timestamps=timestamps),
                   link=LinkConfig(delay=0.01, bandwidth=50e6), at=fifo_spike)
    st = run.client.stats
    cc = run.client.cc
    assert run.delivered_ok
    assert st.timeouts >= 1
    assert st.spurious_timeouts >= 1
    assert st.spurious_recoveries >= 1
    # Without the undo, go-back-N would resend everything in flight (dozens
    # of segments); with it, only the RTO's own retransmission(s) went out.
    assert st.retransmits <= 2 * st.timeouts
    assert cc.ssthresh > 10 * MSS_DATA  # not halved by the spurious timeout
    print(f"delay spike (ts={timestamps}): timeouts {st.timeouts}, spurious "
          f"{st.spurious_timeouts}, retransmits {st.retransmits} "
          f"({st.bytes_retransmitted} bytes), cwnd {cc.cwnd}, ssthresh {cc.ssthresh}, "
          f"done at {run.done_at:.4f} s")
