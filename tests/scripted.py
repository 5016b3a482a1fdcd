"""Scripted-exchange harness for the sans-IO engine, in the style of smoltcp's
``src/socket/tcp.rs`` tests: at time ``t`` feed exactly this segment, expect
exactly this segment (or nothing).

Conventions
-----------
* "Local" is the connection under test, "remote" the scripted peer.
* ``seg(...)`` builds a segment *from* the peer (src=REMOTE_PORT, dst=LOCAL_PORT);
  ``out(...)`` builds a segment we expect the connection to send. Both reduce
  ``seq``/``ack`` mod 2**32, so tests may write ``LOCAL_SEQ + 1`` even when
  ``LOCAL_SEQ`` is close to 2**32.
* ``BASE`` turns timestamps, SACK and window scaling off so that expected
  segments stay small; the option tests use their own configs.
* Builders (``established()``, ``fin_wait_2()`` ...) drive a fresh connection
  through the real handshake and teardown with scripted segments, check every
  segment on the way, and return the connection with its events drained and
  nothing left to send. Their ``t`` is the time of the last step.
"""

from __future__ import annotations

from typing import Any

import pytest

from rudp.core import events
from rudp.core.config import Config
from rudp.core.connection import Connection, State
from rudp.core.seqnum import MASK
from rudp.core.wire import ACK, FIN, PSH, RST, SYN, Segment

__all__ = [
    "ACK", "FIN", "PSH", "RST", "SYN", "Segment", "State", "events",
    "LOCAL_PORT", "REMOTE_PORT", "ADDR", "LOCAL_SEQ", "REMOTE_SEQ", "LOCAL_MSS",
    "REMOTE_MSS", "BUF", "LOCAL_WIN", "REMOTE_WIN", "BASE",
    "seg", "out", "syn_from_peer", "deliver", "recv", "recv_nothing", "expect",
    "fire", "timer", "run_until", "drain_events", "new_conn", "closed", "listen",
    "syn_sent", "syn_rcvd", "established", "fin_wait_1", "fin_wait_2", "close_wait",
    "last_ack", "closing", "time_wait", "show", "expect_in_fixture",
]

LOCAL_PORT = 7000
REMOTE_PORT = 49500
ADDR = ("192.0.2.2", 6000)
LOCAL_SEQ = 10_000  # our ISS
REMOTE_SEQ = 3_000_000  # the peer's ISS
LOCAL_MSS = 1000
REMOTE_MSS = 1000
BUF = 10_000  # receive buffer: the window we advertise while nothing is unread
LOCAL_WIN = BUF
REMOTE_WIN = 64_000

BASE = Config(
    mss=LOCAL_MSS,
    recv_buffer=BUF,
    timestamps=False,
    sack=False,
    window_scale=False,
    tail_loss_probe=False,  # exact RTO schedules; TLP has tests of its own
    congestion_control="newreno",  # the RFC 5681 numbers the scripts check (unpaced)
)


# ------------------------------------------------------------------ segments


def seg(
    seq: int,
    ack: int = 0,
    flags: int = ACK,
    payload: bytes = b"",
    window: int = REMOTE_WIN,
    **options: Any,
) -> Segment:
    """A segment from the peer to the connection under test."""
    return Segment(
        REMOTE_PORT, LOCAL_PORT, seq & MASK, ack & MASK, flags, window, payload, **options
    )


def out(
    seq: int,
    ack: int = 0,
    flags: int = ACK,
    payload: bytes = b"",
    window: int = LOCAL_WIN,
    **options: Any,
) -> Segment:
    """A segment we expect the connection under test to send."""
    return Segment(
        LOCAL_PORT, REMOTE_PORT, seq & MASK, ack & MASK, flags, window, payload, **options
    )


def syn_from_peer(seq: int = REMOTE_SEQ, **options: Any) -> Segment:
    """The peer's SYN, announcing REMOTE_MSS and nothing else by default."""
    options.setdefault("mss", REMOTE_MSS)
    return seg(seq, 0, SYN, **options)


_FLAG_NAMES = ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"))


def show(s: Segment) -> str:
    """A one-line human form for assertion messages."""
    flags = "|".join(name for bit, name in _FLAG_NAMES if s.flags & bit) or "-"
    extra = []
    for name in ("mss", "wscale", "ts"):
        if getattr(s, name) is not None:
            extra.append(f"{name}={getattr(s, name)}")
    if s.sack_permitted:
        extra.append("sack_perm")
    if s.sack:
        extra.append(f"sack={list(s.sack)}")
    return (
        f"<{s.src_port}->{s.dst_port} SEQ={s.seq} ACK={s.ack} {flags} WND={s.window} "
        f"LEN={len(s.payload)}{' ' if extra else ''}{' '.join(extra)}>"
    )


# ------------------------------------------------------------------ driving


def deliver(conn: Connection, s: Segment, t: float) -> None:
    """The peer's segment ``s`` arrives at time ``t``."""
    conn.receive(s, t)


def recv(conn: Connection, t: float) -> list[Segment]:
    """Everything the connection transmits at time ``t``."""
    return conn.segments_to_send(t)


def expect(conn: Connection, t: float, *expected: Segment) -> None:
    """The connection transmits exactly ``expected`` (all fields) at time ``t``."""
    got = recv(conn, t)
    assert got == list(expected), (
        f"at t={t}\n  got:      {[show(s) for s in got]}\n"
        f"  expected: {[show(s) for s in expected]}"
    )


def recv_nothing(conn: Connection, t: float) -> None:
    """The connection transmits nothing at time ``t``."""
    got = recv(conn, t)
    assert got == [], f"at t={t} expected silence, got {[show(s) for s in got]}"


def timer(conn: Connection) -> float | None:
    """The connection's next deadline."""
    return conn.get_timer()


def fire(conn: Connection, t: float) -> None:
    """Assert the next deadline is ``t`` (to 1 ns, float sums drift) and run the
    timers at that deadline."""
    deadline = conn.get_timer()
    assert deadline == pytest.approx(t, abs=1e-9), f"next deadline {deadline}, expected {t}"
    conn.handle_timer(max(t, deadline))


def run_until(conn: Connection, t: float) -> list[tuple[float, Segment]]:
    """Run every deadline up to ``t`` with no input; return what was sent, timed."""
    sent: list[tuple[float, Segment]] = []
    while True:
        deadline = conn.get_timer()
        if deadline is None or deadline > t:
            return sent
        conn.handle_timer(deadline)
        sent.extend((deadline, s) for s in conn.segments_to_send(deadline))


def drain_events(conn: Connection) -> list[events.Event]:
    return conn.events()


# ------------------------------------------------------------------ builders


def new_conn(config: Config = BASE, iss: int = LOCAL_SEQ) -> Connection:
    return Connection(
        config, local_port=LOCAL_PORT, remote_port=REMOTE_PORT, addr=ADDR, iss=iss
    )


def closed(config: Config = BASE, iss: int = LOCAL_SEQ) -> Connection:
    return new_conn(config, iss)


def listen(config: Config = BASE, iss: int = LOCAL_SEQ, t: float = 0.0) -> Connection:
    conn = new_conn(config, iss)
    conn.listen(t)
    assert conn.state is State.LISTEN
    return conn


def syn_sent(config: Config = BASE, iss: int = LOCAL_SEQ, t: float = 0.0) -> Connection:
    """connect() at ``t`` and check the SYN (BASE config: only the MSS option)."""
    conn = new_conn(config, iss)
    conn.connect(t)
    assert conn.state is State.SYN_SENT
    got = recv(conn, t)
    assert len(got) == 1 and got[0].flags == SYN and got[0].seq == iss & MASK
    if config == BASE:
        assert got == [out(iss, 0, SYN, mss=LOCAL_MSS)]
    return conn


def syn_rcvd(config: Config = BASE, iss: int = LOCAL_SEQ, t: float = 0.0) -> Connection:
    """Passive open: LISTEN, the peer's SYN at ``t``, our SYN,ACK checked."""
    conn = listen(config, iss, t)
    deliver(conn, syn_from_peer(), t)
    assert conn.state is State.SYN_RCVD
    got = recv(conn, t)
    assert len(got) == 1 and got[0].flags == SYN | ACK
    if config == BASE:
        assert got == [out(iss, REMOTE_SEQ + 1, SYN | ACK, mss=LOCAL_MSS)]
    return conn


def established(
    config: Config = BASE,
    iss: int = LOCAL_SEQ,
    t: float = 0.0,
    remote_seq: int = REMOTE_SEQ,
    window: int = REMOTE_WIN,
    **peer_options: Any,
) -> Connection:
    """Active open completed at ``t``; the peer's SYN,ACK announces REMOTE_MSS
    and ``peer_options`` (e.g. ``sack_permitted=True``, ``wscale=3``)."""
    peer_options.setdefault("mss", REMOTE_MSS)
    conn = syn_sent(config, iss, t)
    deliver(conn, seg(remote_seq, iss + 1, SYN | ACK, window=window, **peer_options), t)
    assert conn.state is State.ESTABLISHED
    got = recv(conn, t)
    if config == BASE and set(peer_options) <= {"mss", "sack_permitted"}:
        assert got == [out(iss + 1, remote_seq + 1)]
    else:  # options in play: check the essentials only
        assert [(s.seq, s.ack, s.flags) for s in got] == [
            ((iss + 1) & MASK, (remote_seq + 1) & MASK, ACK)
        ]
    assert conn.events() == [events.Connected()]
    return conn


def expect_in_fixture(conn: Connection, t: float, config: Config, expected: Segment) -> None:
    """A state fixture's one segment: exactly ``expected`` under BASE; with
    other options in play (window, timestamps...), just its flags."""
    if config == BASE:
        expect(conn, t, expected)
    else:
        assert [s.flags for s in recv(conn, t)] == [expected.flags]


def fin_wait_1(config: Config = BASE, iss: int = LOCAL_SEQ, t: float = 0.0) -> Connection:
    """ESTABLISHED, then shutdown(): our FIN is out, not yet acknowledged."""
    conn = established(config, iss, t)
    conn.shutdown()
    assert conn.state is State.FIN_WAIT_1
    expect_in_fixture(conn, t, config, out(iss + 1, REMOTE_SEQ + 1, FIN | ACK))
    return conn


def fin_wait_2(config: Config = BASE, iss: int = LOCAL_SEQ, t: float = 0.0) -> Connection:
    """FIN_WAIT_1, then the peer acknowledges our FIN."""
    conn = fin_wait_1(config, iss, t)
    deliver(conn, seg(REMOTE_SEQ + 1, iss + 2), t)
    assert conn.state is State.FIN_WAIT_2
    recv_nothing(conn, t)
    assert conn.events() == [events.SendComplete()]
    return conn


def close_wait(config: Config = BASE, iss: int = LOCAL_SEQ, t: float = 0.0) -> Connection:
    """ESTABLISHED, then the peer's FIN (which we ACK at once)."""
    conn = established(config, iss, t)
    deliver(conn, seg(REMOTE_SEQ + 1, iss + 1, FIN | ACK), t)
    assert conn.state is State.CLOSE_WAIT
    expect_in_fixture(conn, t, config, out(iss + 1, REMOTE_SEQ + 2, window=LOCAL_WIN - 1))
    assert conn.events() == [events.EofReceived()]
    return conn


def last_ack(config: Config = BASE, iss: int = LOCAL_SEQ, t: float = 0.0) -> Connection:
    """CLOSE_WAIT, then shutdown(): our FIN is out."""
    conn = close_wait(config, iss, t)
    conn.shutdown()
    assert conn.state is State.LAST_ACK
    expect_in_fixture(conn, t, config, out(iss + 1, REMOTE_SEQ + 2, FIN | ACK, window=LOCAL_WIN - 1))
    return conn


def closing(config: Config = BASE, iss: int = LOCAL_SEQ, t: float = 0.0) -> Connection:
    """FIN_WAIT_1, then the peer's FIN that does not acknowledge ours."""
    conn = fin_wait_1(config, iss, t)
    deliver(conn, seg(REMOTE_SEQ + 1, iss + 1, FIN | ACK), t)
    assert conn.state is State.CLOSING
    expect_in_fixture(conn, t, config, out(iss + 2, REMOTE_SEQ + 2, window=LOCAL_WIN - 1))
    assert conn.events() == [events.EofReceived()]
    return conn


def time_wait(config: Config = BASE, iss: int = LOCAL_SEQ, t: float = 0.0) -> Connection:
    """FIN_WAIT_2, then the peer's FIN: TIME_WAIT entered at ``t``."""
    conn = fin_wait_2(config, iss, t)
    deliver(conn, seg(REMOTE_SEQ + 1, iss + 2, FIN | ACK), t)
    assert conn.state is State.TIME_WAIT
    expect_in_fixture(conn, t, config, out(iss + 2, REMOTE_SEQ + 2, window=LOCAL_WIN - 1))
    assert conn.events() == [events.EofReceived(), events.Closed()]
    return conn
