"""End-to-end transfers through the deterministic simulator (rudp.tools.sim).

Two real Endpoints talk over simulated links with loss, duplication,
reordering, jitter, corruption, bandwidth and queue limits. Everything is
seeded, so every failure reproduces exactly: the failing parameters are in the
test id and the assertion message (``Result.summary()``).

Assertions are on behaviour and counters, never on wall-clock time.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from rudp.core import events
from rudp.core.config import DEFAULT_MSS, Config
from rudp.core.connection import CLOSED, ESTABLISHED, TIME_WAIT, State
from rudp.tools.sim import LinkConfig

try:
    from simapps import (  # type: ignore[import-not-found]
        CLIENT, PORT, SERVER, EchoServer, Net, RawHost, ReplyServer, Result, StreamApp,
        bulk_sender, closed_per_rfc, half_close_client, payload, ping_pong_trace,
        run_transfer, sha256, sink, states_path, syn_datagram,
    )
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests.simapps import (
        CLIENT, PORT, SERVER, EchoServer, Net, RawHost, ReplyServer, Result, StreamApp,
        bulk_sender, closed_per_rfc, half_close_client, payload, ping_pong_trace,
        run_transfer, sha256, sink, states_path, syn_datagram,
    )

MSL = Config().msl


# ----------------------------------------------------------------- helpers


def random_link(rng: random.Random, max_loss: float = 0.2) -> LinkConfig:
    """A random impaired one-way link (loss up to ``max_loss``)."""
    return LinkConfig(
        delay=rng.uniform(0.001, 0.05),
        jitter=rng.choice([0.0, 0.0, rng.uniform(0.0, 0.01)]),
        bandwidth=rng.choice([None, 2e6, 10e6, 100e6]),
        queue_limit=rng.choice([None, 8, 30, 200]),
        loss=rng.uniform(0.0, max_loss),
        duplicate=rng.choice([0.0, rng.uniform(0.0, 0.05)]),
        reorder=rng.choice([0.0, rng.uniform(0.0, 0.1)]),
        corrupt=rng.choice([0.0, rng.uniform(0.0, 0.03)]),
    )


def random_config(rng: random.Random, sack: bool | None = None) -> Config:
    return Config(
        mss=rng.choice([536, 1000, DEFAULT_MSS]),
        recv_buffer=rng.choice([8192, 65536, 1 << 20]),
        nodelay=rng.random() < 0.3,
        sack=rng.random() < 0.8 if sack is None else sack,
        timestamps=rng.random() < 0.8,
        window_scale=rng.random() < 0.8,
        initial_window=rng.choice([1, 4, 10]),
        checksum=True,  # corruption is on: the checksum must catch it
    )


def random_case(seed: int, *, bidirectional: bool, sack: bool | None = None) -> dict[str, Any]:
    rng = random.Random(f"transfer-{seed}-{bidirectional}")
    link = random_link(rng)
    back = random_link(rng) if rng.random() < 0.5 else None
    config = random_config(rng, sack)
    server_config = random_config(rng, sack) if rng.random() < 0.5 else None
    size = rng.choice([0, 1, 1000, rng.randrange(1, 200_000), rng.randrange(1, 200_000)])
    reply = rng.randrange(1, 100_000) if bidirectional else 0
    return dict(
        link_config=link, link_back=back, config=config, server_config=server_config,
        size=size, reply_size=reply, write=rng.choice(["all", "chunked"]),
        early=rng.random() < 0.2,
    )


def event_problems(names: list[str]) -> list[str]:
    """The event stream of one connection must be well formed."""
    problems = []
    if not names or names[0] != "Connected":
        problems.append(f"first event is not Connected: {names[:3]}")
    if names.count("Closed") != 1 or names[-1] != "Closed":
        problems.append("Closed is not the one last event")
    if names.count("EofReceived") > 1:
        problems.append("EofReceived twice")
    if "EofReceived" in names and "DataReceived" in names[names.index("EofReceived"):]:
        problems.append("DataReceived after EofReceived")
    return problems


def close_problems(trace: Any, history: list[tuple[float, State, State]], addr: Any) -> str | None:
    """closed_per_rfc; a RST never cuts TIME_WAIT short (RFC 1337, see
    test_time_wait_ignores_rst)."""
    return closed_per_rfc(history, MSL)


def check_transfer(r: Result, config: Config, server_config: Config) -> None:
    """Everything a clean transfer and close must satisfy."""
    why = r.summary()
    assert not r.errors, why
    # Every byte exactly once and in order, both ways.
    assert r.sent == r.size and r.received == r.size, why
    assert r.order_ok and r.sha_ok, why
    assert r.reply_received == r.reply_size and r.reply_ok, why
    assert r.server_stats["bytes_received"] == r.size, why
    assert r.client_stats["bytes_received"] == r.reply_size, why
    assert r.client_stats["bytes_sent"] == r.size and r.server_stats["bytes_sent"] == r.reply_size
    assert r.client_stats["bytes_sent"] + r.client_stats["bytes_retransmitted"] >= r.size
    # Both ends finished as RFC 9293 §3.6 says.
    assert r.client_state is CLOSED and r.server_state is CLOSED, why
    assert close_problems(r.net.sim.trace, r.client_history, CLIENT) is None, why
    assert close_problems(r.net.sim.trace, r.server_history, SERVER) is None, why
    assert "TIME_WAIT" in states_path(r.client_history) + states_path(r.server_history), why
    for names in (r.client_events, r.server_events):
        assert event_problems(names) == [], (names, why)
        assert "SendComplete" in names and "EofReceived" in names, why
    # The receive buffer never held more than it advertised.
    assert r.max_buffered["server"] <= server_config.recv_buffer, why
    assert r.max_buffered["client"] <= config.recv_buffer, why
    # Corrupted copies die at the checksum, never in the stream.
    assert r.server_counters.get("bad_checksum", 0) <= r.forward.corrupted
    assert r.client_counters.get("bad_checksum", 0) <= r.back.corrupted
    # Closed connections leave their endpoints.
    assert not r.net.hosts[CLIENT].endpoint.connections
    assert not r.net.hosts[SERVER].endpoint.connections


def run_case(seed: int, case: dict[str, Any]) -> Result:
    return run_transfer(seed, trace=True, **case)


# ------------------------------------------------------------ property tests


N_UNI = 100
N_BIDI = 50


@pytest.mark.parametrize("seed", range(N_UNI))
def test_random_link_unidirectional(seed: int) -> None:
    case = random_case(seed, bidirectional=False)
    r = run_case(seed, case)
    check_transfer(r, case["config"], case["server_config"] or case["config"])
    # The client closed first: it is the one that waited in TIME_WAIT.
    assert "TIME_WAIT" in states_path(r.client_history), r.summary()
    assert states_path(r.server_history)[-3:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]


@pytest.mark.parametrize("seed", range(N_BIDI))
def test_random_link_bidirectional(seed: int) -> None:
    case = random_case(seed, bidirectional=True)
    r = run_case(seed, case)
    check_transfer(r, case["config"], case["server_config"] or case["config"])


def test_random_links_actually_impair() -> None:
    """The random cases above do exercise every impairment the simulator has."""
    seen: dict[str, int] = {}
    for seed in range(N_UNI):
        case = random_case(seed, bidirectional=False)
        for name in ("loss", "duplicate", "reorder", "corrupt", "jitter"):
            if getattr(case["link_config"], name) > 0:
                seen[name] = seen.get(name, 0) + 1
        for name in ("bandwidth", "queue_limit"):
            if getattr(case["link_config"], name) is not None:
                seen[name] = seen.get(name, 0) + 1
    assert all(seen.get(k, 0) >= 10 for k in
               ("loss", "duplicate", "reorder", "corrupt", "jitter", "bandwidth", "queue_limit")), seen


def test_bidirectional_without_sack_many_seeds() -> None:
    failed = []
    for seed in range(20):
        r = run_transfer(seed, LinkConfig(delay=0.01, loss=0.2), 100_000, Config(sack=False),
                         reply_size=100_000)
        if not r.ok:
            failed.append(r.summary())
    assert not failed, failed


def test_pure_ack_after_rto_deadlock() -> None:
    """Minimal reproduction: bidirectional 100 kB each way, 10% loss, no SACK.

    Both sides rewind SND.NXT to SND.UNA on a timeout; their pure ACKs then
    carry a sequence number below the other side's RCV.NXT, fail the
    acceptability test and are dropped *with* the ACK field, so neither side
    ever learns its data was received: both hit ConnectionError('timeout').
    BSD sends ACK-only segments with snd_max for exactly this reason.
    """
    r = run_transfer(4, LinkConfig(delay=0.01, loss=0.1), 100_000, Config(sack=False),
                     reply_size=100_000)
    assert r.ok, r.summary()


# --------------------------------------------------------- close sequences


def test_lossless_close_timing_exact() -> None:
    """Clean link: the active closer sits in TIME_WAIT exactly 2*MSL."""
    r = run_transfer(1, LinkConfig(delay=0.02, bandwidth=10e6), 300_000)
    assert r.ok, r.summary()
    assert states_path(r.client_history) == [
        "CLOSED", "SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT", "CLOSED"]
    assert states_path(r.server_history) == [
        "CLOSED", "LISTEN", "SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    (t_tw,) = [t for t, _, new in r.client_history if new is TIME_WAIT]
    assert r.client_history[-1][0] - t_tw == pytest.approx(2 * MSL)
    assert r.client_stats["retransmits"] == 0 and r.server_stats["retransmits"] == 0


def test_time_wait_ignores_rst() -> None:
    """Every client segment is duplicated: the server closes on the first copy
    of the final ACK and answers the second with a RST (no connection), which
    the client, in TIME_WAIT, accepts. RFC 9293 §3.10.7.4 allows that, but
    RFC 1337 (fix F1) says to ignore RSTs in TIME_WAIT, and TIME_WAIT then
    no longer protects 2*MSL worth of old duplicates."""
    r = run_transfer(1, LinkConfig(delay=0.01, duplicate=1.0), 10_000, link_back=LinkConfig(delay=0.01),
                     trace=True)
    assert r.ok, r.summary()
    assert r.server_counters.get("rst_sent", 0) >= 1  # the stray RST really happened
    assert closed_per_rfc(r.client_history, MSL) is None, r.summary()


def _close_together(net: Net, apps: Any, expect_sizes: list[int]) -> list[float]:
    """Once every app (``apps()``) has read all it expects and all its data is
    acked, call close() on all of them at the same instant: a simultaneous close."""
    when: list[float] = []

    def check() -> None:
        current = apps()
        ready = len(current) == len(expect_sizes) and all(
            a.conn is not None and a.received == n and a.conn.send_buffer_size == 0
            and a.conn.state is ESTABLISHED for a, n in zip(current, expect_sizes))
        if ready:
            when.append(net.sim.now)
            for a in current:
                a.conn.close()
        elif net.sim.now < 600:
            net.sim.call_later(0.05, check)

    net.sim.call_later(0.05, check)
    return when


@pytest.mark.parametrize("seed,loss", [(0, 0.0), (1, 0.0), (2, 0.05), (3, 0.1), (4, 0.15), (5, 0.2)])
def test_simultaneous_close(seed: int, loss: float) -> None:
    net = Net(seed)
    a_data, b_data = payload(20_000, seed), payload(30_000, seed + 1)
    net.host(CLIENT)
    server = net.host(SERVER, factory=lambda: StreamApp(b_data, a_data, when_written=None,
                                                        close_on_eof=False, name="server"))
    net.link(CLIENT, SERVER, LinkConfig(delay=0.015, loss=loss, bandwidth=10e6))
    server.endpoint.listen(PORT)
    client_app = StreamApp(a_data, b_data, when_written=None, close_on_eof=False, name="client")
    net.sim.call_at(0.0, lambda: net.hosts[CLIENT].connect(SERVER, PORT, client_app))
    when = _close_together(net, lambda: [client_app, *server.apps], [len(b_data), len(a_data)])
    net.sim.run(until=3600)
    assert when, "never got ready to close"
    (s,) = server.apps
    assert isinstance(s, StreamApp)
    assert client_app.sha_ok and client_app.order_ok and s.sha_ok and s.order_ok
    for app in (client_app, s):
        hist = net.history(app.conn)  # type: ignore[arg-type]
        path = states_path(hist)
        # Both closed first: neither passes CLOSE_WAIT, both wait 2*MSL.
        assert "CLOSE_WAIT" not in path and "FIN_WAIT_1" in path, path
        assert closed_per_rfc(hist, MSL) is None, path
        assert not app.errors
        assert app.conn.state is CLOSED  # type: ignore[union-attr]
    if loss == 0.0:
        # FINs cross on a clean link: FIN_WAIT_1 -> CLOSING -> TIME_WAIT on both.
        for app in (client_app, s):
            assert states_path(net.history(app.conn))[-4:] == [  # type: ignore[arg-type]
                "FIN_WAIT_1", "CLOSING", "TIME_WAIT", "CLOSED"]


# --------------------------------------------------------------- half-close


@pytest.mark.parametrize("seed,loss", [(0, 0.0), (1, 0.03), (2, 0.1), (3, 0.2)])
def test_half_close_request_then_reply(seed: int, loss: float) -> None:
    """Client sends a request and shutdown()s; the server reads to EOF, then
    replies from CLOSE_WAIT and closes; the client reads the reply to EOF."""
    request = payload(50_000, seed)
    tail = payload(80_000, seed + 7)
    reply = sha256(request).encode() + tail
    net = Net(seed)
    net.host(CLIENT)
    server = net.host(SERVER, factory=lambda: ReplyServer(lambda req: sha256(req).encode() + tail))
    net.link(CLIENT, SERVER, LinkConfig(delay=0.02, loss=loss, reorder=loss / 2, bandwidth=20e6))
    server.endpoint.listen(PORT)
    client = half_close_client(request, reply)
    net.sim.call_at(0.0, lambda: net.hosts[CLIENT].connect(SERVER, PORT, client))
    net.sim.run(until=3600)
    (srv,) = server.apps
    assert isinstance(srv, ReplyServer)
    assert bytes(srv.request) == request
    assert client.sha_ok and client.order_ok and client.received == len(reply)
    assert not client.errors and not srv.errors
    # The client got its reply *after* it half-closed: it kept reading in FIN_WAIT_2.
    assert client.written_all_at is not None and client.received_all_at is not None
    assert client.received_all_at > client.written_all_at
    cpath = states_path(net.history(client.conn))  # type: ignore[arg-type]
    spath = states_path(net.history(srv.conn))  # type: ignore[arg-type]
    assert cpath[-4:] == ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT", "CLOSED"], cpath
    assert spath[-3:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"], spath
    assert srv.conn.stats.bytes_sent == len(reply)  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", range(4))
def test_half_close_echo(seed: int) -> None:
    """An echo server keeps echoing after the client's FIN until all is back."""
    data = payload(120_000, seed)
    net = Net(seed)
    net.host(CLIENT)
    server = net.host(SERVER, factory=EchoServer)
    net.link(CLIENT, SERVER, LinkConfig(delay=0.01, loss=0.05, duplicate=0.02, reorder=0.02,
                                        bandwidth=20e6))
    server.endpoint.listen(PORT)
    client = half_close_client(data, data, write="chunked")
    net.sim.call_at(0.0, lambda: net.hosts[CLIENT].connect(SERVER, PORT, client))
    net.sim.run(until=3600)
    (echo,) = server.apps
    assert client.sha_ok and client.order_ok and not client.errors and not echo.errors
    assert client.conn.state is CLOSED and echo.conn.state is CLOSED  # type: ignore[union-attr]
    assert "FIN_WAIT_2" in states_path(net.history(client.conn))  # type: ignore[arg-type]


# ------------------------------------------------------------ wraparound


WRAP_ISN = 2**32 - 5000


def _wrap_isn(now: float, addr: Any, lp: int, rp: int) -> int:
    return WRAP_ISN


@pytest.mark.parametrize(
    "seed,sack,reply",
    [(0, True, 0), (1, True, 150_000), (2, False, 0), (3, True, 150_000), (4, False, 0)],
)
def test_sequence_numbers_wrap_mid_transfer(seed: int, sack: bool, reply: int) -> None:
    cfg = Config(sack=sack)
    link = LinkConfig(delay=0.01, loss=0.05, reorder=0.05, duplicate=0.02, bandwidth=20e6)
    r = run_transfer(seed, link, 200_000, cfg, reply_size=reply, isn=_wrap_isn, trace=True)
    assert r.client.conn.iss == WRAP_ISN and r.server.conn.iss == WRAP_ISN  # type: ignore[union-attr]
    check_transfer(r, cfg, cfg)
    # The stream really crossed 2**32 (in both directions when bidirectional).
    assert WRAP_ISN + r.size > 2**32
    assert r.client_stats["retransmits"] > 0  # and loss recovery ran across the wrap


# ------------------------------------------------------------ big transfer


def test_10mb_over_lossy_reordering_duplicating_link() -> None:
    size = 10_000_000
    link = LinkConfig(delay=0.001, bandwidth=1e9, loss=0.10, reorder=0.05, duplicate=0.05)
    cfg = Config(recv_buffer=4 << 20)
    r = run_transfer(2024, link, size, cfg, monitor=False)
    assert r.ok, r.summary()
    assert r.server.digest == sha256(payload(size, 2024))  # type: ignore[union-attr]
    assert r.client_state is CLOSED and r.server_state is CLOSED
    assert r.forward.lost > 500 and r.forward.duplicated > 200 and r.forward.reordered > 200
    assert r.client_stats["retransmits"] >= r.forward.lost // 2


# ------------------------------------------------------------ flow control


@pytest.mark.parametrize(
    "seed,k,t,recv_buffer,loss,write,probes",
    [
        (0, 1000, 0.5, 8192, 0.0, "all", True),
        (1, 2000, 0.3, 16384, 0.0, "chunked", False),  # window updates come in time
        (2, 700, 0.25, 4096, 0.05, "all", True),
        (3, 1500, 0.4, 8192, 0.1, "chunked", True),
        (4, 3000, 1.0, 8192, 0.02, "chunked", True),
    ],
)
def test_flow_control_slow_reader(seed: int, k: int, t: float, recv_buffer: int, loss: float,
                                  write: str, probes: bool) -> None:
    size = 60_000
    server_cfg = Config(recv_buffer=recv_buffer)
    r = run_transfer(seed, LinkConfig(delay=0.01, loss=loss, bandwidth=10e6), size, Config(),
                     server_config=server_cfg, slow=(k, t), write=write, trace=True)
    check_transfer(r, Config(), server_cfg)
    srv = r.server
    assert srv is not None
    # The receiver never held more than its buffer; the reader really was slow.
    assert r.max_buffered["server"] <= recv_buffer
    assert srv.max_read <= k and srv.reads >= size // k
    # The reader alone sets the pace: the sender could not push ahead.
    assert r.done_at is not None and r.done_at >= (size // k - 1) * t
    # The window closed and the sender probed it (RFC 9293 §3.8.6.1).
    if probes:
        assert r.client_stats["zero_window_probes"] > 0
        assert srv.conn.counters["zero_window"] > 0 or loss > 0  # type: ignore[union-attr]
    # The sender's buffer drained completely and it was told so.
    assert r.client.conn.send_buffer_size == 0  # type: ignore[union-attr]
    assert "SendComplete" in r.client_events


def test_stats_count_each_byte_once() -> None:
    """Stats.bytes_sent counts each stream byte once, when first sent;
    bytes_retransmitted only bytes sent again. Lossless link, so no byte but a
    zero-window probe byte is ever sent twice."""
    r = run_transfer(0, LinkConfig(delay=0.01, bandwidth=10e6), 60_000, Config(),
                     server_config=Config(recv_buffer=8192), slow=(1000, 0.5), write="all")
    assert r.ok, r.summary()
    probes = r.client_stats["zero_window_probes"]
    assert probes > 0
    assert r.client_stats["bytes_sent"] == 60_000, r.client_stats
    assert r.client_stats["bytes_retransmitted"] <= probes, r.client_stats


def test_flow_control_lossless_needs_no_retransmission() -> None:
    """A closed window is a flow-control matter: on a clean link it must be
    handled by window updates and probes, never by retransmission timeouts."""
    r = run_transfer(0, LinkConfig(delay=0.01, bandwidth=10e6), 100_000, Config(),
                     server_config=Config(recv_buffer=8192), slow=(1000, 0.5), write="all")
    assert r.ok, r.summary()
    assert r.client_stats["zero_window_probes"] > 0
    assert r.client_stats["timeouts"] == 0, r.client_stats
    assert r.client_stats["fast_retransmits"] == 0, r.client_stats


# ------------------------------------------------------------ failures


def test_connection_refused() -> None:
    net = Net(1)
    client = net.host(CLIENT)
    server = net.host(SERVER)
    server.endpoint.listen(PORT + 1)  # listening, but on another port
    net.link(CLIENT, SERVER, LinkConfig(delay=0.01))
    app = sink(b"")
    net.sim.call_at(0.0, lambda: client.connect(SERVER, PORT, app))
    net.sim.run(until=60)
    assert [type(e) for _, e in app.events] == [events.ConnectionReset, events.Closed]
    assert app.errors == [events.ConnectionReset(refused=True)]
    assert app.conn.state is CLOSED and app.conn.error == "refused"  # type: ignore[union-attr]
    assert server.endpoint.counters["rst_sent"] == 1
    assert not server.endpoint.connections and not client.endpoint.connections
    assert app.closed_at == pytest.approx(0.02)  # one round trip, no retries


def test_connection_refused_on_lossy_link_retries_syn() -> None:
    net = Net(3)
    client = net.host(CLIENT)
    net.host(SERVER)
    net.link(CLIENT, SERVER, LinkConfig(delay=0.01, loss=0.5))
    app = sink(b"")
    net.sim.call_at(0.0, lambda: client.connect(SERVER, PORT, app))
    net.sim.run(until=300)
    assert app.errors == [events.ConnectionReset(refused=True)] or app.errors == [
        events.ConnectionError("timeout")]
    assert app.conn.state is CLOSED  # type: ignore[union-attr]


def _start_bulk(seed: int, server_config: Config | None = None,
                client_config: Config | None = None) -> tuple[Net, StreamApp, list[StreamApp]]:
    net = Net(seed)
    data = payload(1_000_000, seed)
    sinks: list[StreamApp] = []

    def factory() -> StreamApp:
        s = sink(data)
        sinks.append(s)
        return s

    client = net.host(CLIENT, client_config)
    server = net.host(SERVER, server_config, factory=factory)
    net.link(CLIENT, SERVER, LinkConfig(delay=0.025, bandwidth=10e6))
    server.endpoint.listen(PORT)
    app = bulk_sender(data)
    net.sim.call_at(0.0, lambda: client.connect(SERVER, PORT, app))
    return net, app, sinks


@pytest.mark.parametrize(
    "client_config,bound",
    [
        (Config(), 300.0 + 60.0 + 1.0),  # user_timeout, plus at most one backed-off RTO
        (Config(user_timeout=None, max_retries=5, rto_max=10.0), 6 * 10.0 + 1.0),
    ],
)
def test_peer_vanishes_mid_transfer(client_config: Config, bound: float) -> None:
    net, app, sinks = _start_bulk(5, client_config=client_config)
    cut_at = 0.3
    net.sim.call_at(cut_at, lambda: net.cut(CLIENT, SERVER))
    net.sim.run(until=3600)
    assert app.errors == [events.ConnectionError("timeout")], app.event_types()
    assert app.conn.state is CLOSED and app.conn.error == "timeout"  # type: ignore[union-attr]
    assert app.closed_at is not None and cut_at < app.closed_at <= cut_at + bound
    assert app.conn.stats.timeouts >= 1  # type: ignore[union-attr]
    # The receiver, idle and without keep-alive, cannot know: it stays open.
    (s,) = sinks
    assert s.conn.state is ESTABLISHED and not s.errors  # type: ignore[union-attr]
    assert 0 < s.received < 1_000_000 and s.order_ok


def test_peer_vanishes_idle_receiver_detects_with_keepalive() -> None:
    ka = Config(keepalive=True, keepalive_idle=10.0, keepalive_interval=2.0, keepalive_count=3)
    net, app, sinks = _start_bulk(6, server_config=ka)
    net.sim.call_at(0.3, lambda: net.cut(CLIENT, SERVER))
    net.sim.run(until=3600)
    (s,) = sinks
    assert s.errors == [events.ConnectionError("keepalive timeout")], s.event_types()
    assert s.conn.state is CLOSED  # type: ignore[union-attr]
    assert s.closed_at is not None and 0.3 + 10.0 <= s.closed_at <= 0.3 + 10.0 + 2.0 * 4 + 1.0
    assert s.conn.stats.keepalives_sent == 3  # type: ignore[union-attr]
    assert app.errors == [events.ConnectionError("timeout")]


def test_peer_vanishes_before_handshake() -> None:
    net, app, sinks = _start_bulk(7)
    net.sim.call_at(0.0, lambda: net.cut(CLIENT, SERVER))  # runs before the connect
    net.sim.run(until=3600)
    cfg = Config()
    syn_time = sum(min(cfg.rto_initial * 2**i, cfg.rto_max) for i in range(cfg.syn_retries + 1))
    assert app.errors == [events.ConnectionError("timeout")]
    assert app.closed_at == pytest.approx(syn_time)
    assert app.conn.stats.retransmits == cfg.syn_retries  # type: ignore[union-attr]
    assert not sinks


# ------------------------------------------------------------ many connections


def test_fifty_concurrent_connections_to_one_listener() -> None:
    net = Net(50)
    net.sim.trace = []
    server = net.host(SERVER, factory=EchoServer)
    listener = server.endpoint.listen(PORT)
    clients: list[tuple[Any, StreamApp, bytes]] = []
    for h in range(5):
        addr = (f"10.1.0.{h + 1}", 5000)
        host = net.host(addr)
        net.link(addr, SERVER, LinkConfig(delay=0.005 + 0.005 * h, loss=0.03, duplicate=0.01,
                                          reorder=0.02, bandwidth=20e6, queue_limit=100))
        for i in range(10):
            data = payload(10_000 + 1000 * i, 100 * h + i)
            app = half_close_client(data, data, write="all")
            clients.append((host, app, data))

    def start(host: Any, app: StreamApp) -> None:
        host.connect(SERVER, PORT, app)

    for n, (host, app, _) in enumerate(clients):
        net.sim.call_at(0.001 * n, lambda host=host, app=app: start(host, app))

    max_half_open = [0]

    def stop() -> bool:
        max_half_open[0] = max(max_half_open[0], listener.half_open)
        return False

    net.sim.run(until=3600, stop=stop)
    assert len(server.router.accepted) == 50
    for host, app, data in clients:
        assert app.sha_ok and app.order_ok and app.received == len(data), app.event_types()
        assert not app.errors and app.conn.state is CLOSED  # type: ignore[union-attr]
        hist = net.history(app.conn)  # type: ignore[arg-type]
        assert close_problems(net.sim.trace, hist, host.addr) is None, states_path(hist)
        assert "TIME_WAIT" in states_path(hist)
    for echo in server.apps:
        assert echo.conn.state is CLOSED and not echo.errors  # type: ignore[union-attr]
    # Ten connections per client host, all on distinct ephemeral ports.
    for h in range(5):
        ports = {a.conn.local_port for host, a, _ in clients if host.addr == (f"10.1.0.{h + 1}", 5000)}
        assert len(ports) == 10 and all(49152 <= p <= 65535 for p in ports)
    assert listener.half_open == 0 and not listener.accept_queue
    assert max_half_open[0] >= 1
    assert not server.endpoint.connections
    assert all(not h.endpoint.connections for h in net.hosts.values())


# ------------------------------------------------------------ SYN flood


@pytest.mark.parametrize("syn_cookies", ["auto", "always", "never"])
def test_syn_flood_bounded_and_legit_clients_get_through(syn_cookies: str) -> None:
    """200 spoofed SYNs from 200 addresses against a listener with 32
    half-open slots, then three legitimate clients on lossy links. RFC 4987's
    defences: the half-open table never overflows; beyond it, SYN cookies
    ("auto", "always") or eviction of the oldest entry ("never") answer, so
    the legitimate clients connect at once instead of after the flood's
    entries time out; no spoofed address gets more than 3x the bytes it sent;
    and nothing is left behind."""
    max_half_open = 32
    spoofed = 200
    net = Net(99)
    server = net.host(SERVER, factory=lambda: sink(None))
    listener = server.endpoint.listen(PORT, max_half_open=max_half_open,
                                      syn_cookies=syn_cookies, config=Config(syn_retries=2))
    attackers: list[tuple[RawHost, bytes]] = []
    rng = random.Random(99)
    for i in range(spoofed):
        addr = (f"172.16.{i // 250}.{i % 250 + 1}", rng.randrange(1024, 65536))
        raw = RawHost()
        net.sim.add_endpoint(addr, raw)
        net.link(addr, SERVER, LinkConfig(delay=0.01))
        syn = syn_datagram(rng.randrange(1024, 65536), PORT, rng.getrandbits(32))
        attackers.append((raw, syn))
        net.sim.call_at(0.2 * i / spoofed, lambda raw=raw, syn=syn: raw.send(syn, SERVER))
    legit = []
    for j in range(3):
        addr = (f"10.0.1.{j + 1}", 5000)
        host = net.host(addr)
        net.link(addr, SERVER, LinkConfig(delay=0.02, loss=0.02))
        data = payload(30_000, j)
        app = bulk_sender(data)
        legit.append((host, app, data, 0.5 + j))
        net.sim.call_at(0.5 + j, lambda host=host, app=app: host.connect(SERVER, PORT, app))

    seen = [0]
    most_conns = [0]

    def stop() -> bool:
        seen[0] = max(seen[0], listener.half_open)
        most_conns[0] = max(most_conns[0], len(server.endpoint.connections))
        return False

    net.sim.run(until=3600, stop=stop)
    counters = listener.counters
    assert seen[0] <= max_half_open  # never beyond the table
    assert most_conns[0] <= max_half_open + len(legit)  # no state for the rest
    if syn_cookies == "always":
        assert seen[0] == 0 and counters["cookies_sent"] >= spoofed
    elif syn_cookies == "auto":
        assert seen[0] == max_half_open
        assert counters["cookies_sent"] >= spoofed - max_half_open
    if syn_cookies == "always":
        assert counters["cookies_validated"] == len(legit) and not counters["cookies_rejected"]
    elif syn_cookies == "auto":
        # The table was full: the first client came in on a cookie. Entries made
        # under pressure live one RTO (no SYN,ACK retransmission), so later
        # clients may find a free slot.
        assert 1 <= counters["cookies_validated"] <= len(legit) and not counters["cookies_rejected"]
    else:
        assert counters["half_open_evicted"] >= spoofed - max_half_open
        assert counters["cookies_sent"] == 0
    # Anti-amplification: no spoofed address got more than 3x what it sent.
    for raw, syn in attackers:
        assert sum(map(len, raw.received)) <= 3 * len(syn)
    if syn_cookies != "never":  # (an evicted entry's RST comes on top)
        # Under pressure (half the table taken) each SYN got one SYN,ACK, no larger.
        for raw, syn in attackers[max_half_open // 2:]:
            assert sum(map(len, raw.received)) <= len(syn)
    assert sum(1 for raw, _ in attackers if raw.received) >= max_half_open
    # Every half-open entry of the flood timed out or was evicted, and left.
    assert listener.half_open == 0 and not server.endpoint.connections
    # The legitimate clients got in at once (their first SYN, or one
    # retransmission on the 2%-lossy link), and every byte arrived.
    sinks = server.apps
    assert len(sinks) == len(legit)
    for host, app, data, started in legit:
        assert not app.errors, app.event_types()
        assert app.connected_at is not None and app.connected_at - started < 3.5
        assert app.conn.state is CLOSED  # type: ignore[union-attr]
    for s in sinks:
        assert isinstance(s, StreamApp) and not s.errors
    assert sorted(s.digest for s in sinks) == sorted(sha256(d) for _, _, d, _ in legit)  # type: ignore[attr-defined]


@pytest.mark.parametrize("reply_size", [0, 120_000], ids=["one-way", "two-way"])
@pytest.mark.parametrize("seed", range(4))
def test_header_prediction_changes_nothing_on_the_wire(seed: int, reply_size: int) -> None:
    """The predicted fast path (Connection.receive_predicted) must reach exactly what
    the full RFC 9293 §3.10.7.4 path reaches: the same datagrams at the same
    times, over a lossy, reordering two-way transfer."""
    link = LinkConfig(delay=0.005, bandwidth=20e6, loss=0.03, reorder=0.02, duplicate=0.01)

    def trace(config: Config) -> list[Any]:
        r = run_transfer(seed, link, 150_000, config, reply_size=reply_size, trace=True)
        assert r.ok, r.summary()
        return list(r.net.sim.trace)

    assert trace(Config()) == trace(Config(header_prediction=False))


def _ping_pong_trace(seed: int, rounds: int, config: Config) -> list[Any]:
    return ping_pong_trace(seed, rounds, config, LinkConfig(delay=0.002, loss=0.02, jitter=0.001))


@pytest.mark.parametrize("seed", range(3))
def test_header_prediction_request_response(seed: int) -> None:
    """The request/response branch of the prediction (data that ACKs all in
    flight) leaves the wire exactly as the full path does."""
    fast = _ping_pong_trace(seed, 200, Config())
    assert fast == _ping_pong_trace(seed, 200, Config(header_prediction=False))


@pytest.mark.parametrize("seed", range(4))
def test_batched_send_changes_nothing_on_the_wire(seed: int) -> None:
    """Runs of full segments built in one step (the batched send path) are the
    segments the per-segment path builds, at the same times, with loss."""
    link = LinkConfig(delay=0.005, bandwidth=50e6, loss=0.02, reorder=0.01)

    def trace(config: Config) -> list[Any]:
        r = run_transfer(seed, link, 300_000, config, reply_size=100_000, trace=True)
        assert r.ok, r.summary()
        return list(r.net.sim.trace)

    assert trace(Config()) == trace(Config(batch_send=False))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("sack,timestamps", [(True, True), (True, False), (False, True)])
def test_no_datagram_outgrows_the_mss_in_force(seed: int, sack: bool, timestamps: bool) -> None:
    """RFC 9293 §3.7.1, RFC 6691: the MSS bounds the data plus the options of
    each segment. On a path whose MTU the default MSS is sized for (1452 bytes
    of UDP payload: 20 + MSS 1432), a lossy two-way transfer puts SACK blocks
    on data segments; none may exceed 20 + MSS, so the simulator drops none
    as too big."""
    from rudp.core.wire import decode

    mss = Config().mss
    link = LinkConfig(delay=0.01, loss=0.02, bandwidth=20e6, mtu=20 + mss)
    config = Config(sack=sack, timestamps=timestamps)
    r = run_transfer(seed, link, 400_000, config, reply_size=400_000, trace=True)
    assert r.ok, r.summary()
    assert r.forward.too_big == 0 and r.back.too_big == 0, r.summary()
    sizes = [len(data) for _, _, _, data, _ in r.net.sim.trace]
    assert max(sizes) <= 20 + mss
    if sack:
        # The case that matters happened: data segments carrying SACK blocks.
        assert any(decode(data).sack and decode(data).payload for _, _, _, data, _ in r.net.sim.trace)
