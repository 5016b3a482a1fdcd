"""Every transition of rudp.core.state.TRANSITIONS, reached by real exchanges.

RFC 9293 §3.3.2 draws the connection state diagram; rudp.core.state lists
its edges as data (``TRANSITIONS``), plus the ways out the diagram leaves
implicit: RST (§3.10.7.4 second), ABORT (§3.10.5), the user and
retransmission timeouts (§3.8.3), keep-alive (§3.8.4), the FIN_WAIT_2
timeout and 2*MSL (§3.10.8). ``Connection.set_state`` refuses any other pair.

Each scenario below drives a connection with exact segments (tests/scripted.py),
user calls (connect, listen, send, shutdown, close, abort) and timer expiries
(``handle_timer`` at the deadline ``get_timer`` names: virtual time only),
records every state change through ``on_state_change`` and asserts the path.
The last test runs all scenarios together and asserts that the pairs they
took are exactly the pairs ``TRANSITIONS`` lists: a listed pair no exchange
reaches fails it, and so would an unlisted one (``InvalidTransition``).
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Callable, Iterator

import pytest

from rudp.core import events
from rudp.core.config import Config
from rudp.core.connection import Connection
from rudp.core.endpoint import Endpoint
from rudp.core.state import (
    CLOSE_WAIT, CLOSED, CLOSING, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, LAST_ACK, LISTEN,
    SYN_RCVD, SYN_SENT, TIME_WAIT, TRANSITIONS, InvalidTransition, State, check_transition,
)

try:
    import scripted
    from scripted import *  # noqa: F403 - the harness is the test vocabulary
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests import scripted  # type: ignore[no-redef]
    from tests.scripted import *  # noqa: F403

ISS = LOCAL_SEQ
IRS = REMOTE_SEQ
Pair = tuple[State, State]

#: Quick give-up: two retransmissions, no user timeout racing them (§3.8.3 R2).
FEW_RETRIES = BASE.replace(max_retries=2, syn_retries=2, user_timeout=None)
#: Keep-alive after 100 s idle, 3 probes 10 s apart (§3.8.4, RFC 1122 §4.2.3.6).
KEEPALIVE = BASE.replace(
    keepalive=True, keepalive_idle=100.0, keepalive_interval=10.0, keepalive_count=3
)


# ==================================================================== recording


class Recorder:
    """The state path of every connection it watches, in order (RFC 9293 §3.3.2).

    Used as ``Connection.on_state_change`` or ``Endpoint.on_state_change``;
    each call is checked against the previous one, so a path is exactly the
    sequence of states the connection went through.
    """

    def __init__(self) -> None:
        self.paths: dict[Connection, list[State]] = {}

    def watch(self, conn: Connection) -> Connection:
        """Record ``conn``'s changes from now on; it must be brand new (CLOSED)."""
        assert conn.state is CLOSED
        self.paths[conn] = [CLOSED]
        conn.on_state_change = self.changed
        return conn

    def changed(self, conn: Connection, old: State, new: State) -> None:
        path = self.paths.setdefault(conn, [CLOSED])  # connections an Endpoint made
        assert path[-1] is old, f"{conn!r}: reported {old} -> {new} after {path}"
        assert conn.state is new
        path.append(new)

    def path(self, conn: Connection) -> list[State]:
        """The states ``conn`` went through, CLOSED first; its current state last."""
        path = self.paths[conn]
        assert path[-1] is conn.state
        return path

    @property
    def pairs(self) -> set[Pair]:
        """Every (old, new) transition any watched connection took."""
        return {pair for path in self.paths.values() for pair in zip(path, path[1:])}


@contextlib.contextmanager
def recording() -> Iterator[Recorder]:
    """Watch every connection the scripted builders create (they all come from
    ``scripted.new_conn``), so paths start at CLOSED, before connect/listen."""
    rec = Recorder()
    original = scripted.new_conn

    def new_conn(config: Config = BASE, iss: int = LOCAL_SEQ) -> Connection:
        return rec.watch(original(config, iss))

    scripted.new_conn = new_conn
    try:
        yield rec
    finally:
        scripted.new_conn = original


def expire(conn: Connection) -> float:
    """Run the timers at the connection's next deadline and send what that
    implies (which re-arms them); return the deadline."""
    deadline = conn.get_timer()
    assert deadline is not None, f"{conn!r} has no timer armed"
    conn.handle_timer(deadline)
    conn.segments_to_send(deadline)
    return deadline


def expire_until_closed(conn: Connection, limit: int = 20) -> float:
    """Let the connection's timers run, with no input, until it gives up."""
    for _ in range(limit):
        t = expire(conn)
        if conn.state is CLOSED:
            return t
    raise AssertionError(f"{conn!r} still open after {limit} timer expiries")


def flags_sent(conn: Connection, t: float) -> list[int]:
    return [s.flags for s in recv(conn, t)]


# ==================================================================== scenarios

Scenario = Callable[[Recorder], None]
SCENARIOS: list[Scenario] = []


def scenario(fn: Scenario) -> Scenario:
    """Register ``fn``: it drives connections and asserts their paths."""
    SCENARIOS.append(fn)
    return fn


# ------------------------------------------------ the diagram's main paths


@scenario
def active_open_active_close(rec: Recorder) -> None:
    """§3.10.1 OPEN -> SYN-SENT; §3.10.7.3 SYN,ACK -> ESTABLISHED; §3.10.4 CLOSE
    -> FIN-WAIT-1; §3.10.7.4 fifth, the ACK of our FIN -> FIN-WAIT-2; eighth,
    the peer's FIN -> TIME-WAIT; §3.10.8 the 2*MSL timeout -> CLOSED. A RST
    in TIME-WAIT does not cut it short (RFC 1337)."""
    conn = time_wait()
    deliver(conn, seg(IRS + 2, 0, RST), 1.0)
    assert conn.state is TIME_WAIT and conn.counters["rst_in_time_wait"] == 1
    assert expire(conn) == 2 * BASE.msl
    assert rec.path(conn) == [
        CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, TIME_WAIT, CLOSED
    ]


@scenario
def passive_open_passive_close(rec: Recorder) -> None:
    """Passive OPEN -> LISTEN; §3.10.7.2 SYN -> SYN-RECEIVED; §3.10.7.4 fifth,
    the ACK of our SYN -> ESTABLISHED; eighth, FIN -> CLOSE-WAIT; §3.10.4 CLOSE
    -> LAST-ACK; fifth, the ACK of our FIN -> CLOSED."""
    conn = syn_rcvd()
    deliver(conn, seg(IRS + 1, ISS + 1), 0.1)
    deliver(conn, seg(IRS + 1, ISS + 1, FIN | ACK), 0.2)
    assert flags_sent(conn, 0.2) == [ACK]
    conn.close()
    assert flags_sent(conn, 0.3) == [FIN | ACK]
    deliver(conn, seg(IRS + 2, ISS + 2), 0.4)
    assert rec.path(conn) == [
        CLOSED, LISTEN, SYN_RCVD, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED
    ]


@scenario
def simultaneous_open(rec: Recorder) -> None:
    """§3.10.7.3: a SYN without ACK in SYN-SENT -> SYN-RECEIVED, answered with
    SYN,ACK; the peer's SYN,ACK acknowledges ours -> ESTABLISHED (§3.5 Figure 8)."""
    conn = syn_sent()
    deliver(conn, syn_from_peer(), 0.1)
    assert flags_sent(conn, 0.1) == [SYN | ACK]
    deliver(conn, seg(IRS, ISS + 1, SYN | ACK, mss=REMOTE_MSS), 0.2)
    assert rec.path(conn) == [CLOSED, SYN_SENT, SYN_RCVD, ESTABLISHED]


@scenario
def simultaneous_open_syn_and_syn_ack_together(rec: Recorder) -> None:
    """Simultaneous open where the peer's SYN and then its SYN,ACK arrive before
    we sent anything (one batch off the socket, as after a hole punch): the
    SYN,ACK acknowledges our SYN -> ESTABLISHED, and since our SYN,ACK never
    left, the peer's SYN still needs its ACK now, not after the peer's
    retransmission timeout."""
    conn = syn_sent()
    recv(conn, 0.0)  # our SYN
    deliver(conn, syn_from_peer(), 0.1)
    deliver(conn, seg(IRS, ISS + 1, SYN | ACK, mss=REMOTE_MSS), 0.1)
    assert rec.path(conn) == [CLOSED, SYN_SENT, SYN_RCVD, ESTABLISHED]
    out = recv(conn, 0.1)
    assert [(s.flags, s.seq, s.ack) for s in out] == [(ACK, ISS + 1, IRS + 1)]


@scenario
def simultaneous_close(rec: Recorder) -> None:
    """§3.10.7.4 eighth: the peer's FIN in FIN-WAIT-1, not acknowledging ours ->
    CLOSING; fifth: the ACK of our FIN -> TIME-WAIT (§3.6 Figure 13); §3.10.8."""
    conn = closing()
    deliver(conn, seg(IRS + 2, ISS + 2), 0.6)
    assert conn.state is TIME_WAIT
    assert expire(conn) == pytest.approx(0.6 + 2 * BASE.msl)
    assert rec.path(conn) == [
        CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, CLOSING, TIME_WAIT, CLOSED
    ]


@scenario
def fin_acking_our_fin_in_fin_wait_1(rec: Recorder) -> None:
    """§3.10.7.4: one segment that ACKs our FIN and carries the peer's: the fifth
    step enters FIN-WAIT-2 and "continues processing in that state", the eighth
    enters TIME-WAIT."""
    conn = fin_wait_1()
    deliver(conn, seg(IRS + 1, ISS + 2, FIN | ACK), 0.5)
    assert rec.path(conn) == [
        CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, TIME_WAIT
    ]


@scenario
def shutdown_in_syn_rcvd(rec: Recorder) -> None:
    """§3.10.4 CLOSE in SYN-RECEIVED: the FIN waits for ESTABLISHED, then the
    connection enters FIN-WAIT-1 at once."""
    conn = syn_rcvd()
    conn.shutdown()
    assert conn.state is SYN_RCVD
    deliver(conn, seg(IRS + 1, ISS + 1), 0.2)
    assert flags_sent(conn, 0.2) == [FIN | ACK]
    assert rec.path(conn) == [CLOSED, LISTEN, SYN_RCVD, ESTABLISHED, FIN_WAIT_1]


@scenario
def two_endpoints(rec: Recorder) -> None:
    """The same diagram through two Endpoints and the real codec, recorded with
    ``Endpoint.on_state_change``: the client closes first (§3.6 Figure 12)."""
    client_addr, server_addr = ("192.0.2.1", 4000), ("192.0.2.2", 5000)
    client_ep, server_ep = Endpoint(BASE, seed=1), Endpoint(BASE, seed=2)
    client_ep.on_state_change = server_ep.on_state_change = rec.changed
    listener = server_ep.listen(80)

    def pump(t: float) -> None:
        """Carry datagrams both ways, without loss or delay, until both are quiet."""
        while True:
            to_server = client_ep.datagrams_to_send(t)
            to_client = server_ep.datagrams_to_send(t)
            if not to_server and not to_client:
                return
            for data, _ in to_server:
                server_ep.datagram_received(data, client_addr, t)
            for data, _ in to_client:
                client_ep.datagram_received(data, server_addr, t)

    client = client_ep.connect(server_addr, 80, 0.0)
    pump(0.0)
    server = listener.accept()
    assert server is not None
    client.send(b"hello")
    client.close()
    pump(0.1)
    assert server.read() == b"hello" and server.at_eof
    server.close()
    pump(0.2)
    deadline = client_ep.get_timer()
    assert deadline == pytest.approx(0.2 + 2 * BASE.msl)
    client_ep.handle_timer(deadline)
    pump(deadline)
    assert rec.path(client) == [
        CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, TIME_WAIT, CLOSED
    ]
    assert rec.path(server) == [
        CLOSED, LISTEN, SYN_RCVD, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED
    ]


# ------------------------------------------------ LISTEN -> CLOSED


@scenario
def close_in_listen(rec: Recorder) -> None:
    """§3.10.4 CLOSE in LISTEN: "Any outstanding RECEIVEs are returned ...
    Delete TCB, enter CLOSED state"."""
    conn = listen()
    conn.close()
    recv_nothing(conn, 0.1)
    assert rec.path(conn) == [CLOSED, LISTEN, CLOSED]


@scenario
def abort_in_listen(rec: Recorder) -> None:
    """§3.10.5 ABORT in LISTEN: delete the TCB, send nothing."""
    conn = listen()
    conn.abort()
    recv_nothing(conn, 0.1)
    assert rec.path(conn) == [CLOSED, LISTEN, CLOSED]


# ------------------------------------------------ SYN_SENT -> CLOSED


@scenario
def rst_in_syn_sent(rec: Recorder) -> None:
    """§3.10.7.3 second: a RST with an acceptable ACK in SYN-SENT: "connection
    reset", CLOSED (the connection was refused)."""
    conn = syn_sent()
    deliver(conn, seg(0, ISS + 1, RST | ACK), 0.1)
    assert conn.events() == [events.ConnectionReset(refused=True), events.Closed()]
    assert rec.path(conn) == [CLOSED, SYN_SENT, CLOSED]


@scenario
def close_in_syn_sent(rec: Recorder) -> None:
    """§3.10.4 CLOSE in SYN-SENT: delete the TCB, send nothing."""
    conn = syn_sent()
    conn.close()
    recv_nothing(conn, 0.1)
    assert rec.path(conn) == [CLOSED, SYN_SENT, CLOSED]


@scenario
def abort_in_syn_sent(rec: Recorder) -> None:
    """§3.10.5 ABORT in SYN-SENT: delete the TCB, send nothing."""
    conn = syn_sent()
    conn.abort()
    recv_nothing(conn, 0.1)
    assert rec.path(conn) == [CLOSED, SYN_SENT, CLOSED]


@scenario
def syn_retries_exhausted(rec: Recorder) -> None:
    """§3.8.3 R2 for a SYN (RFC 6298 §5.5 backoff): after syn_retries
    retransmissions the open fails with a timeout."""
    conn = syn_sent(FEW_RETRIES)
    expire_until_closed(conn)
    assert conn.error == "timeout"
    assert rec.path(conn) == [CLOSED, SYN_SENT, CLOSED]


# ------------------------------------------------ SYN_RCVD -> CLOSED


@scenario
def rst_in_syn_rcvd_passive(rec: Recorder) -> None:
    """§3.10.7.4 second, SYN-RECEIVED from a passive OPEN: an acceptable RST
    ends the half-open connection quietly (the Endpoint's listener lives on)."""
    conn = syn_rcvd()
    deliver(conn, seg(IRS + 1, 0, RST), 0.1)
    assert conn.error is None
    assert rec.path(conn) == [CLOSED, LISTEN, SYN_RCVD, CLOSED]


@scenario
def rst_in_syn_rcvd_active(rec: Recorder) -> None:
    """§3.10.7.4 second, SYN-RECEIVED from an active OPEN (simultaneous open):
    "the connection was refused; signal the user"."""
    conn = syn_sent()
    deliver(conn, syn_from_peer(), 0.1)
    recv(conn, 0.1)
    deliver(conn, seg(IRS + 1, 0, RST), 0.2)
    assert conn.error == "refused"
    assert rec.path(conn) == [CLOSED, SYN_SENT, SYN_RCVD, CLOSED]


@scenario
def abort_in_syn_rcvd(rec: Recorder) -> None:
    """§3.10.5 ABORT in SYN-RECEIVED: send <SEQ=SND.NXT><CTL=RST>, CLOSED."""
    conn = syn_rcvd()
    conn.abort()
    assert flags_sent(conn, 0.1) == [RST | ACK]
    assert rec.path(conn) == [CLOSED, LISTEN, SYN_RCVD, CLOSED]


@scenario
def syn_ack_retries_exhausted_passive(rec: Recorder) -> None:
    """SYN-RECEIVED from a passive OPEN: after syn_retries retransmissions of the
    SYN,ACK (RFC 6298 §5.5) the half-open connection is dropped, no RST."""
    conn = syn_rcvd(FEW_RETRIES)
    t = expire_until_closed(conn)
    recv_nothing(conn, t)
    assert conn.counters["synack_timeout"] == 1
    assert rec.path(conn) == [CLOSED, LISTEN, SYN_RCVD, CLOSED]


@scenario
def syn_ack_retries_exhausted_active(rec: Recorder) -> None:
    """SYN-RECEIVED after a simultaneous open: the SYN,ACK goes unanswered
    (§3.8.3 R2), the user's open fails with a timeout."""
    conn = syn_sent(FEW_RETRIES)
    deliver(conn, syn_from_peer(), 0.1)
    recv(conn, 0.1)
    expire_until_closed(conn)
    assert conn.error == "timeout"
    assert rec.path(conn) == [CLOSED, SYN_SENT, SYN_RCVD, CLOSED]


# ------------------------------------------------ ESTABLISHED -> CLOSED


@scenario
def rst_in_established(rec: Recorder) -> None:
    """§3.10.7.4 second (RFC 5961 §3.2): a RST at exactly RCV.NXT resets."""
    conn = established()
    deliver(conn, seg(IRS + 1, 0, RST), 1.0)
    assert conn.error == "reset"
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, CLOSED]


@scenario
def abort_in_established(rec: Recorder) -> None:
    """§3.10.5 ABORT in ESTABLISHED: send a RST, delete the TCB."""
    conn = established()
    conn.abort()
    assert flags_sent(conn, 0.1) == [RST | ACK]
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, CLOSED]


@scenario
def close_with_unread_data(rec: Recorder) -> None:
    """RFC 1122 §4.2.2.13: CLOSE with received data unread sends a RST, not a
    FIN: ESTABLISHED goes straight to CLOSED."""
    conn = established()
    deliver(conn, seg(IRS + 1, ISS + 1, payload=b"unread"), 0.1)
    conn.close()
    assert flags_sent(conn, 0.1) == [RST | ACK]
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, CLOSED]


@scenario
def retransmissions_exhausted_in_established(rec: Recorder) -> None:
    """§3.8.3 R2: data unacknowledged after max_retries retransmissions: give
    up with a timeout and a RST (§3.10.5)."""
    conn = established(FEW_RETRIES)
    conn.send(b"abc")
    recv(conn, 0.0)
    t = expire_until_closed(conn)
    assert conn.error == "timeout"
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, CLOSED]
    recv_nothing(conn, t)  # the RST left with the last expiry


@scenario
def user_timeout_in_established(rec: Recorder) -> None:
    """§3.8.3 / RFC 5482: data unacknowledged for the user timeout aborts the
    connection, even with retransmissions to spare."""
    conn = established(BASE.replace(user_timeout=2.0))
    conn.send(b"abc")
    recv(conn, 0.0)
    expire_until_closed(conn)
    assert conn.error == "timeout" and conn.retries < BASE.max_retries
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, CLOSED]


@scenario
def zero_window_probes_unanswered(rec: Recorder) -> None:
    """§3.8.6.1: persist probes unanswered for the user timeout (§3.8.3)
    abort the connection."""
    conn = established(BASE.replace(user_timeout=10.0), window=2000)
    conn.send(bytes(3000))
    recv(conn, 0.0)
    deliver(conn, seg(IRS + 1, ISS + 2001, window=0), 0.1)
    recv(conn, 0.1)
    expire_until_closed(conn)
    assert conn.error == "timeout"
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, CLOSED]


@scenario
def keepalive_unanswered_in_established(rec: Recorder) -> None:
    """§3.8.4 / RFC 1122 §4.2.3.6: keepalive_count unanswered probes declare
    the peer dead."""
    conn = established(KEEPALIVE)
    expire_until_closed(conn)
    assert conn.error == "keepalive timeout"
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, CLOSED]


# ------------------------------------------------ FIN_WAIT_1 -> CLOSED


@scenario
def rst_in_fin_wait_1(rec: Recorder) -> None:
    """§3.10.7.4 second: an acceptable RST in FIN-WAIT-1 resets."""
    conn = fin_wait_1()
    deliver(conn, seg(IRS + 1, 0, RST), 0.5)
    assert conn.error == "reset"
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, CLOSED]


@scenario
def abort_in_fin_wait_1(rec: Recorder) -> None:
    """§3.10.5 ABORT in FIN-WAIT-1: send a RST, delete the TCB."""
    conn = fin_wait_1()
    conn.abort()
    assert flags_sent(conn, 0.1) == [RST | ACK]
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, CLOSED]


@scenario
def fin_retransmissions_exhausted_in_fin_wait_1(rec: Recorder) -> None:
    """§3.8.3 R2: our FIN unacknowledged after max_retries retransmissions."""
    conn = fin_wait_1(FEW_RETRIES)
    expire_until_closed(conn)
    assert conn.error == "timeout"
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, CLOSED]


@scenario
def data_after_close_in_fin_wait_1(rec: Recorder) -> None:
    """RFC 1122 §4.2.2.13: data arriving after CLOSE (before our FIN is ACKed)
    is answered with a RST."""
    conn = established()
    conn.close()
    recv(conn, 0.0)
    deliver(conn, seg(IRS + 1, ISS + 1, ACK | PSH, b"late"), 0.1)
    assert flags_sent(conn, 0.1) == [RST | ACK]
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, CLOSED]


# ------------------------------------------------ FIN_WAIT_2 -> CLOSED


@scenario
def fin_wait_2_timeout_after_close(rec: Recorder) -> None:
    """After CLOSE (not a half-close) FIN-WAIT-2 waits fin_wait_2_timeout for
    the peer's FIN (§3.10.4 leaves it to the implementation; Linux
    tcp_fin_timeout), then deletes the TCB."""
    conn = established(BASE.replace(fin_wait_2_timeout=5.0))
    conn.close()
    recv(conn, 0.0)
    deliver(conn, seg(IRS + 1, ISS + 2), 1.0)
    assert expire(conn) == 6.0
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSED]


@scenario
def rst_in_fin_wait_2(rec: Recorder) -> None:
    """§3.10.7.4 second: an acceptable RST in FIN-WAIT-2 resets."""
    conn = fin_wait_2()
    deliver(conn, seg(IRS + 1, 0, RST), 0.5)
    assert conn.error == "reset"
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSED]


@scenario
def abort_in_fin_wait_2(rec: Recorder) -> None:
    """§3.10.5 ABORT in FIN-WAIT-2: send a RST, delete the TCB."""
    conn = fin_wait_2()
    conn.abort()
    assert flags_sent(conn, 0.1) == [RST | ACK]
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSED]


@scenario
def data_after_close_in_fin_wait_2(rec: Recorder) -> None:
    """RFC 1122 §4.2.2.13: data after CLOSE, in FIN-WAIT-2, gets a RST."""
    conn = established()
    conn.close()
    recv(conn, 0.0)
    deliver(conn, seg(IRS + 1, ISS + 2), 0.1)
    deliver(conn, seg(IRS + 1, ISS + 2, ACK | PSH, b"late"), 0.2)
    assert flags_sent(conn, 0.2) == [RST | ACK]
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSED]


# ------------------------------------------------ CLOSE_WAIT -> CLOSED


@scenario
def rst_in_close_wait(rec: Recorder) -> None:
    """§3.10.7.4 second: an acceptable RST (at RCV.NXT, past the peer's FIN)
    in CLOSE-WAIT resets."""
    conn = close_wait()
    deliver(conn, seg(IRS + 2, 0, RST), 0.5)
    assert conn.error == "reset"
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, CLOSE_WAIT, CLOSED]


@scenario
def abort_in_close_wait(rec: Recorder) -> None:
    """§3.10.5 ABORT in CLOSE-WAIT: send a RST, delete the TCB."""
    conn = close_wait()
    conn.abort()
    assert flags_sent(conn, 0.1) == [RST | ACK]
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, CLOSE_WAIT, CLOSED]


@scenario
def retransmissions_exhausted_in_close_wait(rec: Recorder) -> None:
    """§3.8.3 R2: the half-closed side still sends; data unacknowledged after
    max_retries retransmissions gives up."""
    conn = close_wait(FEW_RETRIES)
    conn.send(b"abc")
    recv(conn, 0.0)
    expire_until_closed(conn)
    assert conn.error == "timeout"
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, CLOSE_WAIT, CLOSED]


@scenario
def keepalive_unanswered_in_close_wait(rec: Recorder) -> None:
    """§3.8.4: keep-alive goes on in CLOSE-WAIT (the peer may still read);
    unanswered probes declare the peer dead."""
    conn = close_wait(KEEPALIVE)
    expire_until_closed(conn)
    assert conn.error == "keepalive timeout"
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, CLOSE_WAIT, CLOSED]


# ------------------------------------------------ CLOSING -> CLOSED


@scenario
def rst_in_closing(rec: Recorder) -> None:
    """§3.10.7.4 second, CLOSING: "If the RST bit is set, then enter the CLOSED
    state, delete the TCB" (the peer is done with us too: no error)."""
    conn = closing()
    deliver(conn, seg(IRS + 2, 0, RST), 0.6)
    assert conn.error is None
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, CLOSING, CLOSED]


@scenario
def abort_in_closing(rec: Recorder) -> None:
    """§3.10.5 ABORT in CLOSING: "respond with 'ok' and delete the TCB", no RST."""
    conn = closing()
    conn.abort()
    recv_nothing(conn, 0.6)
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, CLOSING, CLOSED]


@scenario
def fin_retransmissions_exhausted_in_closing(rec: Recorder) -> None:
    """§3.8.3 R2: our FIN, retransmitted in CLOSING, is never acknowledged."""
    conn = closing(FEW_RETRIES)
    expire_until_closed(conn)
    assert conn.error == "timeout"
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, CLOSING, CLOSED]


# ------------------------------------------------ LAST_ACK -> CLOSED


@scenario
def rst_in_last_ack(rec: Recorder) -> None:
    """§3.10.7.4 second, LAST-ACK: a RST enters CLOSED, no error."""
    conn = last_ack()
    deliver(conn, seg(IRS + 2, 0, RST), 0.6)
    assert conn.error is None
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED]


@scenario
def abort_in_last_ack(rec: Recorder) -> None:
    """§3.10.5 ABORT in LAST-ACK: delete the TCB, no RST."""
    conn = last_ack()
    conn.abort()
    recv_nothing(conn, 0.6)
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED]


@scenario
def fin_retransmissions_exhausted_in_last_ack(rec: Recorder) -> None:
    """§3.8.3 R2: our FIN, retransmitted in LAST-ACK, is never acknowledged."""
    conn = last_ack(FEW_RETRIES)
    expire_until_closed(conn)
    assert conn.error == "timeout"
    assert rec.path(conn) == [CLOSED, SYN_SENT, ESTABLISHED, CLOSE_WAIT, LAST_ACK, CLOSED]


# ------------------------------------------------ TIME_WAIT -> CLOSED


@scenario
def abort_in_time_wait(rec: Recorder) -> None:
    """§3.10.5 ABORT in TIME-WAIT: delete the TCB, no RST."""
    conn = time_wait()
    conn.abort()
    recv_nothing(conn, 0.1)
    assert conn.get_timer() is None
    assert rec.path(conn) == [
        CLOSED, SYN_SENT, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, TIME_WAIT, CLOSED
    ]


@pytest.mark.parametrize("run", SCENARIOS, ids=[fn.__name__ for fn in SCENARIOS])
def test_scenario_path(run: Scenario) -> None:
    """Each scenario takes the path it asserts (RFC 9293 §3.3.2)."""
    with recording() as rec:
        run(rec)
    assert rec.paths, "the scenario recorded no connection"


def test_scenarios_reach_exactly_the_listed_transitions() -> None:
    """The union of all scenarios' transitions is TRANSITIONS, no more, no less:
    every listed pair is reachable by a real exchange (§3.3.2 and the implicit
    RST/ABORT/timeout edges of §3.10.5, §3.10.7.4, §3.8.3)."""
    with recording() as rec:
        for run in SCENARIOS:
            run(rec)
    listed = {(old, new) for old, news in TRANSITIONS.items() for new in news}
    assert sorted_pairs(listed - rec.pairs) == [], "listed but never reached"
    assert sorted_pairs(rec.pairs - listed) == [], "taken but not listed"
    assert rec.pairs == listed


def sorted_pairs(pairs: set[Pair]) -> list[str]:
    order = list(State)
    return [
        f"{a.value} -> {b.value}"
        for a, b in sorted(pairs, key=lambda p: (order.index(p[0]), order.index(p[1])))
    ]


# ==================================================================== the table


def test_every_state_has_an_entry() -> None:
    """RFC 9293 §3.3.2 names eleven states; TRANSITIONS has a row for each,
    every row leads somewhere, and no row lists the state itself."""
    assert len(State) == 11
    assert set(TRANSITIONS) == set(State)
    for old, news in TRANSITIONS.items():
        assert news, f"{old} has no way out"
        assert old not in news
        assert all(isinstance(new, State) and cause for new, cause in news.items())


def test_listed_pairs_pass_check_transition() -> None:
    for old, news in TRANSITIONS.items():
        for new in news:
            check_transition(old, new)


def test_unlisted_pairs_raise() -> None:
    """Every ordered pair of distinct states that is not listed raises
    InvalidTransition (e.g. CLOSED -> ESTABLISHED skips the handshake, §3.5)."""
    unlisted = [
        (old, new)
        for old, new in itertools.permutations(State, 2)
        if new not in TRANSITIONS[old]
    ]
    assert len(unlisted) == 11 * 10 - sum(len(news) for news in TRANSITIONS.values())
    for old, new in unlisted:
        with pytest.raises(InvalidTransition, match=f"{old.value} -> {new.value}"):
            check_transition(old, new)


def fresh_in(state: State) -> Connection:
    """A new connection brought to ``state`` by the user call that enters it."""
    conn = new_conn()
    if state is LISTEN:
        conn.listen(0.0)
    elif state is SYN_SENT:
        conn.connect(0.0)
    assert conn.state is state
    return conn


@pytest.mark.parametrize(
    "get_conn, new",
    [
        pytest.param(lambda: fresh_in(CLOSED), ESTABLISHED, id="CLOSED->ESTABLISHED"),
        pytest.param(lambda: fresh_in(CLOSED), TIME_WAIT, id="CLOSED->TIME_WAIT"),
        pytest.param(lambda: fresh_in(LISTEN), ESTABLISHED, id="LISTEN->ESTABLISHED"),
        pytest.param(lambda: fresh_in(LISTEN), SYN_SENT, id="LISTEN->SYN_SENT"),
        pytest.param(lambda: fresh_in(SYN_SENT), FIN_WAIT_1, id="SYN_SENT->FIN_WAIT_1"),
        pytest.param(time_wait, ESTABLISHED, id="TIME_WAIT->ESTABLISHED"),
        pytest.param(close_wait, FIN_WAIT_1, id="CLOSE_WAIT->FIN_WAIT_1"),
    ],
)
def test_set_state_refuses_unlisted_pairs(get_conn: Callable[[], Connection], new: State) -> None:
    """Connection.set_state raises on an unlisted pair and changes nothing:
    the state stays, no callback, no event."""
    conn = get_conn()
    conn.events()
    old = conn.state
    calls: list[Pair] = []
    conn.on_state_change = lambda c, a, b: calls.append((a, b))
    with pytest.raises(InvalidTransition):
        conn.set_state(new)
    assert conn.state is old
    assert calls == []
    assert conn.events() == []
