"""A server no hostile peer can take down: peer values clamped before use, and
faults isolated to the connection that caused them."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from rudp.core import congestion
from rudp.core.config import MIN_MSS, Config
from rudp.core.state import CLOSED
from rudp.core.wire import ACK, SYN
from rudp.tools.sim import LinkConfig

try:
    from scripted import (  # type: ignore[import-not-found]
        BASE, LOCAL_SEQ, REMOTE_SEQ, deliver, established, new_conn, recv, seg,
    )
    from simapps import (  # type: ignore[import-not-found]
        SERVER, PORT, EchoServer, Net, half_close_client, payload,
    )
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests.scripted import (
        BASE, LOCAL_SEQ, REMOTE_SEQ, deliver, established, new_conn, recv, seg,
    )
    from tests.simapps import SERVER, PORT, EchoServer, Net, half_close_client, payload


# ------------------------------------------------------------ clamped values


@pytest.mark.parametrize("peer_mss", [0, 1, 11, 12, 40, 87])
@pytest.mark.parametrize("timestamps", [True, False])
def test_tiny_peer_mss_is_clamped_to_the_floor(peer_mss: int, timestamps: bool) -> None:
    """A SYN,ACK announcing MSS 12 with timestamps made the batched sender
    divide by zero; with MSS 11 or less nothing was ever sent. The peer's MSS
    is clamped to MIN_MSS (88, as Linux), so the connection sends segments of
    88 - options bytes and every byte arrives."""
    config = BASE.replace(timestamps=timestamps)
    conn = new_conn(config)
    conn.connect(0.0)
    recv(conn, 0.0)  # our SYN
    ts = (1000, conn.ts_now(0.0)) if timestamps else None
    deliver(conn, seg(REMOTE_SEQ, LOCAL_SEQ + 1, SYN | ACK, window=65535, mss=peer_mss, ts=ts), 0.01)
    assert conn.peer_mss == MIN_MSS
    data = bytes(range(256)) * 40
    conn.send(data)
    sent = recv(conn, 0.01)  # ACK of the SYN,ACK and the initial window of data
    payloads = [s.payload for s in sent if s.payload]
    assert payloads and all(0 < len(p) <= MIN_MSS - (12 if timestamps else 0) for p in payloads)
    assert b"".join(payloads) == data[: sum(map(len, payloads))]


def test_mss_floor_leaves_room_for_data_beside_every_option() -> None:
    """The size the sender divides by can never be zero: 40 bytes of options
    at most (RFC 9293 §3.1) leave MIN_MSS - 40 > 0 bytes of data."""
    assert MIN_MSS - 40 > 0
    with pytest.raises(ValueError):
        Config(mss=MIN_MSS - 1)


@pytest.mark.parametrize("wscale", [15, 100, 255])
def test_window_scale_above_14_is_taken_as_14(wscale: int) -> None:
    """RFC 7323 §2.3: a shift above 14 is used as 14 (a 32-bit window could
    otherwise exceed the sequence space's half)."""
    conn = established(BASE.replace(window_scale=True), wscale=wscale)
    assert conn.ws_ok and conn.snd_wscale == 14


def test_sack_blocks_outside_what_we_sent_change_nothing() -> None:
    """RFC 2018 §4: SACK blocks below SND.UNA, beyond SND.MAX, inverted or
    wrapping around are ignored; the scoreboard only holds what we sent."""
    conn = established(BASE.replace(sack=True), sack_permitted=True)
    conn.send(bytes(5000))
    recv(conn, 0.1)
    una, top = conn.snd_una, conn.snd_max
    bogus = (((una - 5000) & 0xFFFFFFFF, (una - 10) & 0xFFFFFFFF),  # below SND.UNA
             ((top + 10) & 0xFFFFFFFF, (top + 5000) & 0xFFFFFFFF),  # beyond SND.MAX
             ((una + 900) & 0xFFFFFFFF, (una + 100) & 0xFFFFFFFF),  # inverted
             (0, 0xFFFFFFFF))  # the whole sequence space
    deliver(conn, seg(REMOTE_SEQ + 1, una, window=65535, sack=bogus), 0.2)
    assert conn.recovery.sacks.ranges == [] and conn.recovery.sacks.sacked == 0
    assert not conn.recovery.in_recovery


# ------------------------------------------------------------ fault isolation


class _Faulty(congestion.CongestionControl):
    """NewReno that raises, in one connection only: ``victim`` is the number of
    the instance (counted from 0) that fails, at ``where``. It wraps a NewReno
    (a compiled NewReno takes no Python subclass; the interface does) and
    keeps cwnd and ssthresh in step with it, the connection's writes included."""

    created = 0
    victim = -1
    where = "receive"

    def __init__(self, mss: int, initial_window: int) -> None:
        super().__init__(mss, initial_window)
        self.inner = congestion.NewReno(mss, initial_window)
        self.faulty = _Faulty.created == _Faulty.victim
        _Faulty.created += 1

    def _call(self, hook: Any, *args: Any) -> None:
        inner = self.inner
        inner.cwnd, inner.ssthresh = self.cwnd, self.ssthresh
        hook(*args)
        self.cwnd, self.ssthresh = inner.cwnd, inner.ssthresh

    def on_ack(self, acked: int, in_flight: int, now: float) -> None:
        if self.faulty and _Faulty.where == "receive":
            raise RuntimeError("injected fault while receiving")
        self._call(self.inner.on_ack, acked, in_flight, now)

    # In a timer, only while data is in flight: a fault at the closing FIN's
    # retransmission could come after the peer has everything and is gone.
    def on_timeout(self, in_flight: int, now: float) -> None:
        if self.faulty and _Faulty.where == "timer" and in_flight > self.mss:
            raise RuntimeError("injected fault in a timer")
        self._call(self.inner.on_timeout, in_flight, now)

    def on_congestion(self, in_flight: int, now: float) -> None:
        if self.faulty and _Faulty.where == "timer" and in_flight > self.mss:
            raise RuntimeError("injected fault in a timer")
        self._call(self.inner.on_congestion, in_flight, now)

    def on_recovery_end(self, in_flight: int, now: float) -> None:
        self._call(self.inner.on_recovery_end, in_flight, now)

    def on_rtt_sample(self, rtt: float, now: float) -> None:
        self._call(self.inner.on_rtt_sample, rtt, now)

    def on_congestion_undone(self, now: float) -> None:
        self._call(self.inner.on_congestion_undone, now)

    def pacing_rate(self, srtt: float | None) -> float:
        inner = self.inner
        inner.cwnd, inner.ssthresh = self.cwnd, self.ssthresh
        return inner.pacing_rate(srtt)


@pytest.fixture
def faulty_controller() -> Any:
    congestion.CONTROLLERS["faulty-test"] = _Faulty
    yield _Faulty
    del congestion.CONTROLLERS["faulty-test"]
    _Faulty.created, _Faulty.victim = 0, -1


@pytest.mark.parametrize("where", ["receive", "timer"])
def test_a_fault_in_one_of_100_connections_costs_the_others_nothing(
    where: str, faulty_controller: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception while handling one connection aborts that connection
    alone (RST to its peer, an error to its user, counted, logged once with
    its traceback); the other 99 echo every byte intact and close cleanly."""
    faulty_controller.victim = 37
    faulty_controller.where = where
    net = Net(7)
    net.sim.trace = []
    server = net.host(SERVER, Config(congestion_control="faulty-test"), factory=EchoServer)
    server.endpoint.listen(PORT)
    clients: list[tuple[Any, Any, bytes]] = []
    loss = 0.05 if where == "timer" else 0.0  # timeouts and recoveries need loss
    # Keep-alives on the clients: the one RST can be lost on this lossy path,
    # and a half-closed client waiting for the rest of its echo would then
    # wait for ever (so would the kernel's); a probe draws another RST.
    client_config = Config(keepalive=True, keepalive_idle=30.0, keepalive_interval=5.0)
    for h in range(4):
        addr = (f"10.2.0.{h + 1}", 5000)
        host = net.host(addr, client_config)
        net.link(addr, SERVER, LinkConfig(delay=0.005, loss=loss, bandwidth=50e6))
        for i in range(25):
            data = payload(20_000, 100 * h + i)
            clients.append((host, half_close_client(data, data, write="all"), data))
    for n, (host, app, _) in enumerate(clients):
        net.sim.call_at(0.002 * n, lambda host=host, app=app: host.connect(SERVER, PORT, app))
    with caplog.at_level(logging.ERROR, logger="rudp"):
        net.sim.run(until=3600)
    counters = server.endpoint.counters
    assert counters["connection_faults"] == 1 and not counters["connection_faults_repeated"]
    faults = [r for r in caplog.records if "failed internally" in r.getMessage()]
    assert len(faults) == 1 and faults[0].exc_info is not None  # once, with its traceback
    broken = [app for _, app, _ in clients if app.errors]
    assert len(broken) == 1  # the victim's client heard the RST
    intact = [(app, data) for _, app, data in clients if not app.errors]
    assert len(intact) == 99
    for app, data in intact:
        assert app.sha_ok and app.order_ok and app.received == len(data)
        assert app.conn.state is CLOSED
    failed = [echo for echo in server.apps if echo.errors]
    assert len(failed) == 1
    assert getattr(failed[0].errors[0], "reason", None) == "internal error"
    assert not server.endpoint.connections  # nothing left behind, the victim included


def test_a_failing_protocol_callback_aborts_its_connection_only(run: Any) -> None:
    """User code that raises in ``data_received`` for one connection: as
    asyncio's transports do, the loop's exception handler hears it and that
    connection is aborted (its peer sees a reset); the pump goes on, and the
    connections beside it echo every byte."""
    import asyncio

    import rudp

    seen: list[dict[str, Any]] = []

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            if data.startswith(b"boom"):
                raise RuntimeError("the application failed")
            self.transport.write(data)

        def eof_received(self) -> None:
            self.transport.close()

    async def client(port: int, first: bytes) -> bytes:
        reader, writer = await rudp.open_connection("127.0.0.1", port)
        writer.write(first + b"x" * 5000)
        writer.write_eof()
        try:
            return await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, ctx: seen.append(ctx))
        server = await rudp.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            good = [client(port, b"ok%d" % i) for i in range(5)]
            results = await asyncio.gather(client(port, b"boom"), *good, return_exceptions=True)
        assert isinstance(results[0], ConnectionResetError), results[0]
        for i, got in enumerate(results[1:]):
            assert got == b"ok%d" % i + b"x" * 5000
        assert len(seen) == 1 and isinstance(seen[0]["exception"], RuntimeError)

    run(main())


# ------------------------------------------------------------------ rate limits

from rudp.core.endpoint import Endpoint  # noqa: E402
from rudp.core.ratelimit import RST_BURST, RST_RATE, ChallengeLimiter  # noqa: E402
from rudp.core.seqnum import MASK  # noqa: E402
from rudp.core.wire import RST, Segment, decode, encode  # noqa: E402

PEER = ("198.51.100.7", 5555)


def _send(ep: Endpoint, seg: Segment, t: float, addr: Any = PEER) -> None:
    ep.datagram_received(encode(seg, False), addr, t)


def _out(ep: Endpoint, t: float) -> list[Segment]:
    return [decode(d) for d, _ in ep.datagrams_to_send(t)]


def test_rsts_to_segments_that_match_nothing_are_rate_limited() -> None:
    """A flood of stray ACKs draws at most RST_BURST RSTs at once, then
    RST_RATE a second; the rest are counted."""
    ep = Endpoint(Config(), seed=1)
    for i in range(3000):
        _send(ep, Segment(40000 + i % 1000, 80, i, i, ACK, 100), 0.0)
    assert len(_out(ep, 0.0)) == RST_BURST
    assert ep.counters["rst_rate_limited"] == 3000 - RST_BURST
    for i in range(3000):
        _send(ep, Segment(40000, 80, i, i, ACK, 100), 1.0)
    assert len(_out(ep, 1.0)) == min(RST_BURST, int(RST_RATE * 1.0))


def test_challenge_acks_fit_a_randomised_per_second_budget() -> None:
    """RFC 5961 §7 and CVE-2016-5696: the endpoint's challenge ACK budget is
    drawn each second between half and one and a half times the limit, so
    an off-path attacker cannot count it; a connection adds its own 0.5 s."""
    import random

    limiter = ChallengeLimiter(random.Random(5), limit=100)
    budgets = []
    for second in range(20):
        budgets.append(sum(limiter.allow(second + i / 1000) for i in range(400)))
    assert all(50 <= b < 150 for b in budgets)
    assert len(set(budgets)) > 10  # not a fixed number an attacker could count


def _established(ep: Endpoint, sport: int, t: float) -> Any:
    isn = 1000 * sport
    _send(ep, Segment(sport, 80, isn, 0, SYN, 65535, b"", 1400), t)
    (synack,) = [s for s in _out(ep, t) if s.dst_port == sport]
    _send(ep, Segment(sport, 80, isn + 1, (synack.seq + 1) & MASK, ACK, 65535), t)
    _out(ep, t)
    return ep.connections[(PEER, 80, sport)], isn + 1, (synack.seq + 1) & MASK


def test_in_window_rsts_to_many_connections_draw_a_bounded_number_of_challenges() -> None:
    ep = Endpoint(Config(), seed=2, challenge_ack_limit=10)
    ep.listen(80, max_half_open=1000, max_half_open_per_source=1000)
    conns = [_established(ep, 20000 + i, 0.0) for i in range(60)]
    for conn, rcv, _ in conns:
        _send(ep, Segment(conn.remote_port, 80, rcv + 100, 0, RST, 0), 0.5)
    challenges = [s for s in _out(ep, 0.5) if s.flags == ACK]
    assert 5 <= len(challenges) < 15  # the endpoint's budget, not one per connection
    assert all(conn.state is not CLOSED for conn, _, _ in conns)  # RFC 5961 §3.2


def test_out_of_window_bare_acks_are_answered_once_per_interval_but_data_always() -> None:
    ep = Endpoint(Config(), seed=3)
    ep.listen(80)
    conn, rcv, snd = _established(ep, 30000, 0.0)
    far = rcv + 10_000_000  # far outside the window
    for i in range(10):
        _send(ep, Segment(30000, 80, far, snd, ACK, 65535), 1.0 + i / 100)
    acks = sum(len(_out(ep, 1.0 + i / 100)) for i in range(10))
    assert acks == 1 and conn.counters["refusal_acks_limited"] == 9
    for i in range(5):  # old data again: the ACK may settle a retransmission
        _send(ep, Segment(30000, 80, rcv - 100, snd, ACK, 65535, b"x" * 50), 1.2)
        assert len(_out(ep, 1.2)) == 1


def test_a_half_open_address_never_gets_more_than_three_times_what_it_sent() -> None:
    """Anti-amplification (the rule of RFC 9000 §8.1): a spoofed SYN of 20
    bytes gets its SYN,ACK (24 bytes, MSS only) and one retransmission; the
    next would pass 60 bytes and is not sent."""
    ep = Endpoint(Config(), seed=4)
    ep.listen(80, syn_cookies="never")
    syn = encode(Segment(40000, 80, 7, 0, SYN, 65535), False)
    assert len(syn) == 20
    ep.datagram_received(syn, PEER, 0.0)
    sent = [d for d, _ in ep.datagrams_to_send(0.0)]
    t = 0.0
    while (t := ep.get_timer() or 0.0) and t < 120:
        ep.handle_timer(t)
        sent += [d for d, _ in ep.datagrams_to_send(t)]
    assert sum(map(len, sent)) <= 3 * len(syn)
    assert len(sent) == 2 and ep.counters["amplification_limited"] >= 1
    assert not ep.connections  # the half-open entry timed out and left


def test_backlog_bounds_the_accept_queue_even_for_handshakes_already_under_way() -> None:
    """Found by fuzzing: the backlog was checked only when a SYN arrived, so
    half-open connections admitted earlier all joined a full accept queue.
    Now the completing ACK is dropped while the queue is full (as Linux), the
    connection stays half open, and accept() makes room for it."""
    ep = Endpoint(Config(), seed=1)
    listener = ep.listen(80, backlog=2, max_half_open=8, max_half_open_per_source=8)
    synacks = {}
    for i in range(8):
        _send(ep, Segment(40000 + i, 80, 1000, 0, SYN, 65535, b"", 1432), 0.0)
    for s in _out(ep, 0.0):
        synacks[s.dst_port] = s
    for port, sa in synacks.items():
        _send(ep, Segment(port, 80, 1001, (sa.seq + 1) & MASK, ACK, 65535), 0.01)
    _out(ep, 0.01)
    assert len(listener.accept_queue) == 2 and listener.half_open == 6
    assert listener.counters["listen_overflow"] == 6
    listener.accept()
    port = next(p for p in synacks if (PEER, 80, p) in ep.connections
                and ep.connections[(PEER, 80, p)].state is not CLOSED
                and ep.connections[(PEER, 80, p)] in listener.pending)
    _send(ep, Segment(port, 80, 1001, (synacks[port].seq + 1) & MASK, ACK, 65535), 0.02)
    assert len(listener.accept_queue) == 2 and listener.half_open == 5


def test_close_in_fin_wait_2_schedules_the_fin_wait_2_timeout() -> None:
    """Found by fuzzing: close() after a half-close whose FIN was ACKed armed
    the FIN_WAIT_2 timeout without waking the connection, so the endpoint
    never scheduled it and the connection sat in FIN_WAIT_2 for ever."""
    ep = Endpoint(Config(), seed=1)
    listener = ep.listen(80)
    (synack,) = (_send(ep, Segment(40000, 80, 1000, 0, SYN, 65535, b"", 1432), 0.0), _out(ep, 0.0))[1]
    _send(ep, Segment(40000, 80, 1001, (synack.seq + 1) & MASK, ACK, 65535), 0.0)
    conn = listener.accept()
    assert conn is not None
    conn.shutdown()
    (fin,) = _out(ep, 0.0)
    _send(ep, Segment(40000, 80, 1001, (fin.seq + 1) & MASK, ACK, 65535), 0.01)
    assert _out(ep, 0.01) == [] and ep.get_timer() is None  # FIN_WAIT_2, nothing to time
    conn.close()
    _out(ep, 0.02)
    assert ep.get_timer() == 0.01 + Config().fin_wait_2_timeout  # from the last input
    t = ep.get_timer()
    ep.handle_timer(t)
    _out(ep, t)
    assert conn.state is CLOSED and not ep.connections


def test_no_idle_tail_loss_probe_wakeups_after_an_rto() -> None:
    """Found by fuzzing: after a fast retransmit and then an RTO, the TLP timer
    re-armed every 10 ms and fired without sending (send_tlp needs SND.NXT ==
    SND.MAX, which go-back-N breaks), ~100 wakeups a second towards a silent
    peer. RFC 8985 §7.2 schedules a probe only for a flight with no loss
    recovery under way; now every wakeup is a backed-off RTO that sends."""
    ep = Endpoint(Config(), seed=1)
    listener = ep.listen(80)
    now = [0.0]

    def send(seg: Segment) -> list[Segment]:
        _send(ep, seg, now[0])
        return _out(ep, now[0])

    def ts(last: Segment) -> tuple[int, int]:
        return (int(now[0] * 1000) + 7, last.ts[0] if last.ts else 0)

    (sa,) = send(Segment(40000, 80, 1000, 0, SYN, 65535, b"", 1432, 7, True, (), (7, 0)))
    send(Segment(40000, 80, 1001, (sa.seq + 1) & MASK, ACK, 65535, ts=ts(sa)))
    conn = listener.accept()
    assert conn is not None
    conn.send(bytes(30000))
    sent = _out(ep, 0.0)
    now[0] = 0.01
    first = sent[0]
    una = (first.seq + len(first.payload)) & MASK
    for i in range(4):  # the first segment's ACK, then 3 duplicates with SACK
        sack = () if i == 0 else (((una + 1420) & MASK, (una + 1420 * (i + 1)) & MASK),)
        send(Segment(40000, 80, 1001, una, ACK, 65535, sack=sack, ts=ts(first)))
    assert conn.recovery.in_recovery
    wakeups = idle = 0
    log = []
    while (t := ep.get_timer()) is not None and t < 30:
        now[0] = t
        timers = (conn.timers.rtx, conn.timers.tlp, conn.timers.delack, conn.timers.persist)
        ep.handle_timer(t)
        wakeups += 1
        got = _out(ep, t)
        idle += not got
        log.append((t, timers, len(got)))
    assert idle == 0 and wakeups == conn.stats.timeouts < 12, log


def test_acks_after_a_zero_window_probe_stay_inside_the_peers_window() -> None:
    """Found by the live attack test: after a zero-window probe, SND.MAX is one
    byte past the peer's RCV.NXT, and bare ACKs carried SEQ = SND.MAX; a peer
    whose window is closed drops those (RFC 9293 §3.10.7.4: with RCV.WND = 0
    only SEG.SEQ = RCV.NXT is acceptable), so it never learned that its own
    data arrived, and both directions stalled. A bare ACK's SEQ is now kept
    within SND.UNA + SND.WND, as Linux's tcp_acceptable_seq."""
    from rudp.core.connection import Connection

    cfg = Config(mss=1000, recv_buffer=10_000, timestamps=False, sack=False,
                 window_scale=False, tail_loss_probe=False)
    a = Connection(cfg, local_port=1, remote_port=2, addr="b", iss=1000)
    b = Connection(cfg, local_port=2, remote_port=1, addr="a", iss=900_000)
    a.connect(0.0)
    b.listen(0.0)

    def settle(t: float) -> None:
        for _ in range(50):
            moved = 0
            for src, dst in ((a, b), (b, a)):
                for s in src.segments_to_send(t):
                    dst.receive(s, t)
                    moved += 1
            if not moved:
                return

    t = 0.0
    settle(t)
    a.send(b"x" * 20_000)  # b never reads: its window closes
    for _ in range(20):
        t += 0.05
        settle(t)
    assert a.snd_wnd == 0
    t = a.get_timer() or t
    a.handle_timer(t)  # the persist timer: a probe byte past the closed window
    settle(t)
    assert a.snd_max == b.rcv_nxt + 1
    b.send(b"y" * 500)
    settle(t)
    for _ in range(3):  # a's delayed ACK
        t = min(a.get_timer() or t + 0.05, t + 0.05)
        a.handle_timer(t)
        settle(t)
    assert b.snd_una == b.snd_max and not b.counters["out_of_window"]


def test_under_pressure_new_half_open_connections_give_up_sooner() -> None:
    """RFC 4987 §3.3 (as Linux lowers tcp_synack_retries): once half the
    half-open table is taken, a new SYN_RCVD entry gets no SYN,ACK
    retransmission instead of five, so it lives ~1 s instead of ~63 s, and its
    address gets no more bytes than it sent."""
    from rudp.core.listener import PRESSURE_SYN_RETRIES

    ep = Endpoint(Config(), seed=6)
    listener = ep.listen(80, max_half_open=8, max_half_open_per_source=8, syn_cookies="never")
    for i in range(5):  # 4 fill half the table; the 5th arrives under pressure
        _send(ep, Segment(41000 + i, 80, 7, 0, SYN, 65535, b"", 1400), 0.0)
    _out(ep, 0.0)
    conns = [ep.connections[(PEER, 80, 41000 + i)] for i in range(5)]
    assert [c.config.syn_retries for c in conns] == [5] * 4 + [PRESSURE_SYN_RETRIES]
    gone_at = None
    t = 0.0
    while (t := ep.get_timer() or 0.0) and t < 100:
        ep.handle_timer(t)
        _out(ep, t)
        if gone_at is None and (PEER, 80, 41004) not in ep.connections:
            gone_at = t
    assert gone_at is not None and gone_at <= 1.0  # one RTO of 1 s, no retry
    assert listener.counters["syn_received"] == 5 and not ep.connections
