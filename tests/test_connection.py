"""Scripted segment-exchange tests for rudp.core.connection (smoltcp style).

Each test feeds exact segments at exact times and expects exact segments (all
fields: ports, seq, ack, flags, window, payload, options) or silence. Section
numbers refer to RFC 9293 unless another RFC is named. The harness lives in
tests/scripted.py.
"""

from __future__ import annotations

import pytest

from rudp.core import events
from rudp.core.config import Config
from rudp.core.connection import Connection, ConnectionStateError, State
from rudp.core.seqnum import MASK

try:
    from scripted import *  # noqa: F403 - the harness is the test vocabulary
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests.scripted import *  # noqa: F403

ISS = LOCAL_SEQ
IRS = REMOTE_SEQ
CONNECTED = events.Connected()
DATA = events.DataReceived()
EOF_ = events.EofReceived()
CLOSED_EV = events.Closed()
SENT_ALL = events.SendComplete()

#: Everything offered (the defaults), with a 1 MiB buffer -> window shift 5.
OPT = Config(mss=LOCAL_MSS, recv_buffer=1 << 20)
#: Window scaling alone.
WS = BASE.replace(window_scale=True, recv_buffer=1 << 20)
#: SACK alone.
SACK = BASE.replace(sack=True)


def passive_established(config: Config = BASE, t: float = 0.0) -> Connection:
    conn = syn_rcvd(config, t=t)
    deliver(conn, seg(IRS + 1, ISS + 1), t)
    assert conn.state is State.ESTABLISHED
    recv_nothing(conn, t)
    assert conn.events() == [CONNECTED]
    return conn


def data(n: int, start: int = 0) -> bytes:
    """``n`` recognisable bytes."""
    return bytes((start + i) % 251 for i in range(n))


# ============================================================ state transitions


def test_connect_closed_to_syn_sent():
    """§3.10.1 OPEN in CLOSED (active): send <SEQ=ISS><CTL=SYN>, go to SYN-SENT;
    the SYN carries our MSS (§3.7.1) and the window unscaled (RFC 7323 §2.2)."""
    conn = closed()
    assert conn.state is State.CLOSED
    conn.connect(0.0)
    assert conn.state is State.SYN_SENT
    expect(conn, 0.0, out(ISS, 0, SYN, window=LOCAL_WIN, mss=LOCAL_MSS))
    recv_nothing(conn, 0.0)
    assert timer(conn) == 1.0  # RFC 6298 §2.1 initial RTO
    with pytest.raises(ConnectionStateError):
        conn.connect(0.0)


def test_syn_sent_to_established_on_syn_ack():
    """§3.10.7.3 SYN-SENT: an acceptable SYN,ACK moves to ESTABLISHED and is
    answered with <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>."""
    conn = syn_sent()
    deliver(conn, seg(IRS, ISS + 1, SYN | ACK, mss=REMOTE_MSS), 0.1)
    assert conn.state is State.ESTABLISHED
    expect(conn, 0.1, out(ISS + 1, IRS + 1))
    assert conn.events() == [CONNECTED]
    assert timer(conn) is None  # nothing outstanding, no keepalive by default
    recv_nothing(conn, 0.2)


def test_simultaneous_open_syn_sent_to_syn_rcvd_to_established():
    """§3.10.7.3 SYN-SENT, SYN without ACK: enter SYN-RECEIVED and send
    <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> (§3.5 Figure 8). The peer's SYN,ACK
    repeats the SYN we hold and acknowledges ours: both sides are ESTABLISHED
    (Figure 8 line 7) without a further segment."""
    conn = syn_sent()
    deliver(conn, syn_from_peer(), 0.1)
    assert conn.state is State.SYN_RCVD
    expect(conn, 0.1, out(ISS, IRS + 1, SYN | ACK, mss=LOCAL_MSS))
    assert conn.events() == []
    # Figure 8 line 6: the peer's SYN,ACK.
    deliver(conn, seg(IRS, ISS + 1, SYN | ACK, mss=REMOTE_MSS), 0.2)
    assert conn.state is State.ESTABLISHED
    assert conn.events() == [CONNECTED]
    recv_nothing(conn, 0.2)
    assert timer(conn) is None


def test_simultaneous_open_rst_in_syn_rcvd_is_refused():
    """§3.10.7.4 second, SYN-RECEIVED from an active OPEN: an acceptable RST
    means "the connection was refused; signal the user"."""
    conn = syn_sent()
    deliver(conn, syn_from_peer(), 0.1)
    recv(conn, 0.1)
    deliver(conn, seg(IRS + 1, 0, RST), 0.2)
    assert conn.state is State.CLOSED
    assert conn.events() == [events.ConnectionReset(refused=True), CLOSED_EV]
    recv_nothing(conn, 0.2)


def test_listen_to_syn_rcvd_to_established():
    """§3.10.7.2 LISTEN: a SYN sets RCV.NXT=SEG.SEQ+1, IRS=SEG.SEQ, sends
    <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and enters SYN-RECEIVED; §3.10.7.4 fifth:
    an ACK with SND.UNA < SEG.ACK =< SND.NXT enters ESTABLISHED."""
    conn = listen()
    recv_nothing(conn, 0.0)
    deliver(conn, syn_from_peer(), 0.0)
    assert conn.state is State.SYN_RCVD
    expect(conn, 0.0, out(ISS, IRS + 1, SYN | ACK, mss=LOCAL_MSS))
    assert timer(conn) == 1.0
    deliver(conn, seg(IRS + 1, ISS + 1), 0.1)
    assert conn.state is State.ESTABLISHED
    assert conn.events() == [CONNECTED]
    recv_nothing(conn, 0.1)
    assert timer(conn) is None


def test_passive_open_exchanges_data():
    """After a passive open the sequence spaces line up both ways: the peer's
    first byte is IRS+1, ours ISS+1 (§3.4), and the window is the free buffer."""
    conn = passive_established()
    deliver(conn, seg(IRS + 1, ISS + 1, ACK | PSH, b"ping"), 1.0)
    assert conn.events() == [DATA]
    assert conn.read() == b"ping"
    conn.send(b"pong")
    expect(conn, 1.0, out(ISS + 1, IRS + 5, ACK | PSH, b"pong", window=LOCAL_WIN - 4))
    deliver(conn, seg(IRS + 5, ISS + 5), 1.1)
    assert conn.events() == [SENT_ALL]
    assert timer(conn) is None


def test_syn_rcvd_passive_rst_closes_quietly():
    """§3.10.7.4 second, SYN-RECEIVED from a passive OPEN: an acceptable RST
    returns to LISTEN (the listener lives on in the endpoint); the user is not
    told of a reset of a connection it never saw, and nothing is sent."""
    conn = syn_rcvd()
    deliver(conn, seg(IRS + 1, 0, RST), 0.1)
    assert conn.state is State.CLOSED
    assert conn.events() == [CLOSED_EV]
    assert conn.error is None
    assert conn.counters["reset_half_open"] == 1
    recv_nothing(conn, 0.1)
    assert timer(conn) is None


def test_active_close_fin_wait_1_fin_wait_2_time_wait_closed_after_2msl():
    """§3.10.4 CLOSE in ESTABLISHED -> FIN-WAIT-1; §3.10.7.4 fifth: the ACK of our
    FIN -> FIN-WAIT-2; eighth: the peer's FIN -> TIME-WAIT, ACKed; §3.10.8: the
    time-wait timeout of 2*MSL deletes the TCB, not a moment earlier."""
    cfg = BASE.replace(msl=7.5)
    conn = established(cfg)
    conn.shutdown()
    assert conn.state is State.FIN_WAIT_1
    expect(conn, 1.0, out(ISS + 1, IRS + 1, FIN | ACK))
    deliver(conn, seg(IRS + 1, ISS + 2), 1.1)
    assert conn.state is State.FIN_WAIT_2
    recv_nothing(conn, 1.1)
    assert conn.events() == [SENT_ALL]
    deliver(conn, seg(IRS + 1, ISS + 2, FIN | ACK), 2.0)
    assert conn.state is State.TIME_WAIT
    expect(conn, 2.0, out(ISS + 2, IRS + 2, window=LOCAL_WIN - 1))
    assert conn.events() == [EOF_, CLOSED_EV]
    assert timer(conn) == 2.0 + 15.0
    conn.handle_timer(16.999)
    assert conn.state is State.TIME_WAIT
    fire(conn, 17.0)
    assert conn.state is State.CLOSED
    recv_nothing(conn, 17.0)
    assert conn.events() == []  # Closed was already reported on entering TIME-WAIT
    assert timer(conn) is None


def test_passive_close_close_wait_last_ack_closed():
    """§3.10.7.4 eighth: the peer's FIN in ESTABLISHED -> CLOSE-WAIT (ACKed at
    once); §3.10.4 CLOSE in CLOSE-WAIT -> LAST-ACK sending FIN; fifth: the ACK of
    our FIN in LAST-ACK deletes the TCB (CLOSED, no TIME-WAIT)."""
    conn = established()
    deliver(conn, seg(IRS + 1, ISS + 1, FIN | ACK), 1.0)
    assert conn.state is State.CLOSE_WAIT
    expect(conn, 1.0, out(ISS + 1, IRS + 2, window=LOCAL_WIN - 1))
    assert conn.events() == [EOF_]
    conn.close()
    assert conn.state is State.LAST_ACK
    expect(conn, 1.5, out(ISS + 1, IRS + 2, FIN | ACK, window=LOCAL_WIN - 1))
    assert timer(conn) == pytest.approx(1.7)  # the FIN is retransmitted on RTO (0.2 s)
    deliver(conn, seg(IRS + 2, ISS + 2), 1.6)
    assert conn.state is State.CLOSED
    assert conn.events() == [SENT_ALL, CLOSED_EV]
    recv_nothing(conn, 1.6)
    assert timer(conn) is None


def test_simultaneous_close_fin_wait_1_closing_time_wait():
    """§3.10.7.4 eighth: a FIN in FIN-WAIT-1 that does not ACK our FIN -> CLOSING;
    fifth: the ACK of our FIN in CLOSING -> TIME-WAIT (§3.6 Figure 13)."""
    conn = fin_wait_1()
    deliver(conn, seg(IRS + 1, ISS + 1, FIN | ACK), 0.5)
    assert conn.state is State.CLOSING
    expect(conn, 0.5, out(ISS + 2, IRS + 2, window=LOCAL_WIN - 1))
    assert conn.events() == [EOF_]
    deliver(conn, seg(IRS + 2, ISS + 2), 0.6)
    assert conn.state is State.TIME_WAIT
    recv_nothing(conn, 0.6)
    assert conn.events() == [SENT_ALL, CLOSED_EV]
    assert timer(conn) == pytest.approx(0.6 + 2 * BASE.msl)


def test_fin_wait_1_to_time_wait_on_fin_acking_our_fin():
    """§3.10.7.4 eighth, FIN-WAIT-1: "If our FIN has been ACKed (perhaps in this
    segment), then enter TIME-WAIT, start the time-wait timer"."""
    conn = fin_wait_1()
    deliver(conn, seg(IRS + 1, ISS + 2, FIN | ACK), 0.5)
    assert conn.state is State.TIME_WAIT
    expect(conn, 0.5, out(ISS + 2, IRS + 2, window=LOCAL_WIN - 1))
    assert conn.events() == [SENT_ALL, EOF_, CLOSED_EV]
    assert timer(conn) == 0.5 + 2 * BASE.msl


def test_shutdown_in_syn_rcvd_queues_fin_until_established():
    """§3.10.4 CLOSE in SYN-RECEIVED: "If no SENDs have been issued and there is
    no pending data to send, then form a FIN segment and send it" - we queue the
    FIN until ESTABLISHED, then enter FIN-WAIT-1 and send it."""
    conn = syn_rcvd()
    conn.shutdown()
    assert conn.state is State.SYN_RCVD
    recv_nothing(conn, 0.1)
    deliver(conn, seg(IRS + 1, ISS + 1), 0.2)
    assert conn.state is State.FIN_WAIT_1
    expect(conn, 0.2, out(ISS + 1, IRS + 1, FIN | ACK))
    assert conn.events() == [CONNECTED]
    deliver(conn, seg(IRS + 1, ISS + 2), 0.3)
    assert conn.state is State.FIN_WAIT_2


def test_close_in_syn_sent_deletes_tcb_silently():
    """§3.10.4 CLOSE in SYN-SENT: "Delete the TCB" - CLOSED, nothing sent, no
    retransmission timer left."""
    conn = syn_sent()
    conn.close()
    assert conn.state is State.CLOSED
    recv_nothing(conn, 0.5)
    assert timer(conn) is None
    assert conn.events() == [CLOSED_EV]
    recv_nothing(conn, 5.0)


# ==================================================================== handshake


def test_syn_carries_all_offered_options():
    """RFC 9293 §3.7.1 (MSS), RFC 7323 §2.2/§3.2 (window scale, timestamps with
    TSecr=0), RFC 2018 §2 (SACK-permitted); the SYN's window is never scaled
    (RFC 7323 §2.2), so a 1 MiB buffer advertises 65535 with shift 5. A
    retransmitted SYN carries a TSval 1000 ticks (ms) later."""
    conn = closed(OPT)
    conn.connect(0.0)
    [syn] = recv(conn, 0.0)
    tsval = syn.ts[0]
    assert syn == out(
        ISS, 0, SYN, window=65535, mss=LOCAL_MSS, wscale=5, sack_permitted=True, ts=(tsval, 0)
    )
    fire(conn, 1.0)
    [again] = recv(conn, 1.0)
    assert again == syn._replace(ts=((tsval + 1000) & 0xFFFFFFFF, 0))


@pytest.mark.parametrize(
    "offered, echoed",
    [
        ({}, {}),
        ({"mss": 1200}, {}),
        ({"wscale": 7}, {"wscale": 5}),
        ({"sack_permitted": True}, {"sack_permitted": True}),
        ({"ts": (777, 0)}, {"ts": 777}),
        (
            {"mss": 1200, "wscale": 2, "sack_permitted": True, "ts": (5, 0)},
            {"wscale": 5, "sack_permitted": True, "ts": 5},
        ),
    ],
    ids=["none", "mss", "wscale", "sack", "ts", "all"],
)
def test_syn_ack_echoes_only_what_the_peer_offered(offered, echoed):
    """RFC 7323 §2.2: a SYN,ACK carries window scale only if the SYN did;
    §3.2: timestamps likewise, with TSecr = the SYN's TSval; RFC 2018 §2:
    SACK-permitted only in a SYN,ACK answering one. MSS is always sent
    (RFC 9293 §3.7.1)."""
    conn = listen(OPT)
    deliver(conn, seg(IRS, 0, SYN, **offered), 0.0)
    [synack] = recv(conn, 0.0)
    expected = {"mss": LOCAL_MSS}
    expected.update({k: v for k, v in echoed.items() if k != "ts"})
    if "ts" in echoed:
        assert synack.ts is not None and synack.ts[1] == echoed["ts"]
        expected["ts"] = synack.ts
    assert synack == out(ISS, IRS + 1, SYN | ACK, window=65535, **expected)


def test_window_in_syn_is_unscaled_and_negotiated_scale_applies_after():
    """RFC 7323 §2.2: "The Window field in a SYN (i.e., a <SYN> or <SYN,ACK>)
    segment itself is never scaled"; §2.3: from then on SND.WND = SEG.WND <<
    Snd.Wind.Shift and we send RCV.WND >> Rcv.Wind.Shift."""
    conn = closed(WS)
    conn.connect(0.0)
    expect(conn, 0.0, out(ISS, 0, SYN, window=65535, mss=LOCAL_MSS, wscale=5))
    deliver(conn, seg(IRS, ISS + 1, SYN | ACK, window=1000, mss=1000, wscale=7), 0.1)
    # Our first scaled window: 1 MiB >> 5.
    expect(conn, 0.1, out(ISS + 1, IRS + 1, window=(1 << 20) >> 5))
    conn.send(data(3000))
    # The SYN,ACK's 1000 is 1000 bytes, not 1000 << 7.
    expect(conn, 0.1, out(ISS + 1, IRS + 1, payload=data(1000), window=1 << 15))
    deliver(conn, seg(IRS + 1, ISS + 1001, window=5), 0.2)
    # Now 5 << 7 = 640 bytes of window.
    expect(conn, 0.2, out(ISS + 1001, IRS + 1, payload=data(3000)[1000:1640], window=1 << 15))
    recv_nothing(conn, 0.2)


def test_window_scale_ignored_unless_both_sides_offer_it():
    """RFC 7323 §2.2: scaling is used only when both SYNs carried the option; a
    SYN,ACK without it leaves both shifts at zero (and our window field capped at
    65535, RFC 7323 §2.3)."""
    conn = closed(WS)
    conn.connect(0.0)
    recv(conn, 0.0)
    deliver(conn, seg(IRS, ISS + 1, SYN | ACK, window=1000, mss=1000), 0.1)
    expect(conn, 0.1, out(ISS + 1, IRS + 1, window=65535))
    deliver(conn, seg(IRS + 1, ISS + 1, window=600), 0.2)
    conn.send(data(1000))
    expect(conn, 0.2, out(ISS + 1, IRS + 1, ACK, data(600), window=65535))


def test_peer_without_mss_option_gets_536():
    """RFC 9293 §3.7.1: without an MSS option the send MSS defaults to 536
    (RFC 1122 §4.2.2.6, IPv4 576 - 40)."""
    conn = syn_sent(BASE.replace(nodelay=True))
    deliver(conn, seg(IRS, ISS + 1, SYN | ACK), 0.1)
    expect(conn, 0.1, out(ISS + 1, IRS + 1))
    conn.send(data(1072))
    expect(
        conn,
        0.1,
        out(ISS + 1, IRS + 1, payload=data(536)),
        out(ISS + 537, IRS + 1, ACK | PSH, data(1072)[536:]),
    )


def test_syn_retransmitted_with_exponential_backoff_then_timeout():
    """RFC 6298 §5.5 (back off the timer: 1, 2, 4, 8, 16 s) and RFC 9293
    §3.8.3 (R2 for a SYN): after syn_retries retransmissions the open fails with
    a ConnectionError("timeout"); nothing is sent (no TCB was synchronized)."""
    conn = syn_sent()
    syn = out(ISS, 0, SYN, mss=LOCAL_MSS)
    for t in (1.0, 3.0, 7.0, 15.0, 31.0):
        assert conn.state is State.SYN_SENT
        recv_nothing(conn, t - 0.001)
        fire(conn, t)
        expect(conn, t, syn)
    assert conn.stats.retransmits == 5
    fire(conn, 63.0)
    assert conn.state is State.CLOSED
    assert conn.events() == [events.ConnectionError("timeout"), CLOSED_EV]
    assert conn.error == "timeout"
    recv_nothing(conn, 63.0)
    assert timer(conn) is None


def test_syn_ack_retransmitted_with_backoff_then_quiet_close():
    """SYN-RECEIVED: the SYN,ACK is retransmitted on RTO with backoff (RFC 6298
    §5.5); after syn_retries the half-open connection is dropped without a RST
    and without telling a user who never accepted it."""
    conn = syn_rcvd(BASE.replace(syn_retries=3))
    synack = out(ISS, IRS + 1, SYN | ACK, mss=LOCAL_MSS)
    for t in (1.0, 3.0, 7.0):
        fire(conn, t)
        expect(conn, t, synack)
    fire(conn, 15.0)
    assert conn.state is State.CLOSED
    assert conn.events() == [CLOSED_EV]
    assert conn.counters["synack_timeout"] == 1
    recv_nothing(conn, 15.0)
    assert timer(conn) is None


def test_retransmitted_syn_in_syn_rcvd_gets_syn_ack_again():
    """The peer retransmits its SYN because our SYN,ACK was lost: SYN-RECEIVED
    answers with the same SYN,ACK (RFC 9293 §3.5 Figure 10 recovery; RFC 5961
    §4.2 challenges only SYNs that do not repeat the one we hold)."""
    conn = syn_rcvd()
    deliver(conn, syn_from_peer(), 0.5)
    assert conn.state is State.SYN_RCVD
    expect(conn, 0.5, out(ISS, IRS + 1, SYN | ACK, mss=LOCAL_MSS))
    recv_nothing(conn, 0.5)
    deliver(conn, seg(IRS + 1, ISS + 1), 0.6)
    assert conn.state is State.ESTABLISHED


TS = BASE.replace(timestamps=True, nodelay=True)


def ts_established() -> tuple[Connection, int]:
    """Active open with timestamps; returns the connection and our TSval at t=0."""
    conn = closed(TS)
    conn.connect(0.0)
    [syn] = recv(conn, 0.0)
    t0 = syn.ts[0]
    assert syn == out(ISS, 0, SYN, mss=LOCAL_MSS, ts=(t0, 0))
    deliver(conn, seg(IRS, ISS + 1, SYN | ACK, mss=1000, ts=(500, t0)), 0.1)
    expect(conn, 0.1, out(ISS + 1, IRS + 1, ts=(t0 + 100, 500)))
    assert conn.events() == [CONNECTED]
    return conn, t0


def test_timestamps_on_every_segment_and_mss_less_options():
    """RFC 7323 §3.2: once negotiated, every segment (except RST) carries TSval
    from our millisecond clock and TSecr = TS.Recent; RFC 6691 / RFC 7323 §3.2:
    the 12 option bytes come off the MSS (1000 -> 988 bytes of data)."""
    conn, t0 = ts_established()
    conn.send(data(1000))
    expect(
        conn,
        0.1,
        out(ISS + 1, IRS + 1, payload=data(988), ts=(t0 + 100, 500)),
        out(ISS + 989, IRS + 1, ACK | PSH, data(1000)[988:], ts=(t0 + 100, 500)),
    )
    conn.abort()
    expect(conn, 0.2, out(ISS + 1001, IRS + 1, RST | ACK))  # no options on a RST


def test_timestamps_ts_recent_update_rule():
    """RFC 7323 §4.3: TS.Recent takes the TSval of a segment with SEG.SEQ =<
    Last.ACK.sent (in order); an out-of-order segment's TSval is not echoed."""
    conn, t0 = ts_established()
    deliver(conn, seg(IRS + 1001, ISS + 1, payload=b"later", ts=(900, t0 + 150)), 0.2)
    expect(conn, 0.2, out(ISS + 1, IRS + 1, ts=(t0 + 200, 500)))  # dup ACK, old TS.Recent
    deliver(conn, seg(IRS + 1, ISS + 1, payload=data(1000), ts=(600, t0 + 150)), 0.3)
    expect(conn, 0.3, out(ISS + 1, IRS + 1006, ts=(t0 + 300, 600), window=LOCAL_WIN - 1005))


def test_paws_drops_an_old_duplicate_and_acknowledges_it():
    """RFC 7323 §5.3 R1: in-window data whose TSval is older than TS.Recent is
    an old duplicate (perhaps from a wrapped sequence space): not delivered,
    answered with an ACK, counted. The same data with a current TSval is taken."""
    conn, t0 = ts_established()
    deliver(conn, seg(IRS + 1, ISS + 1, payload=b"old", ts=(499, t0 + 150)), 0.2)
    expect(conn, 0.2, out(ISS + 1, IRS + 1, ts=(t0 + 200, 500)))
    assert conn.events() == [] and conn.counters["paws_rejected"] == 1
    deliver(conn, seg(IRS + 1, ISS + 1, payload=b"new", ts=(501, t0 + 150)), 0.3)
    assert conn.events() == [DATA] and conn.read() == b"new"


def test_blind_in_window_segment_cannot_move_ts_recent():
    """RFC 5961 meets RFC 7323: an attacker's in-window segment with an
    unacceptable ACK (or a SYN, or a RST off the exact sequence number) and a
    TSval far ahead gets a challenge ACK and leaves TS.Recent alone (as
    Linux updates it only in tcp_ack), so PAWS keeps taking the real peer."""
    conn, t0 = ts_established()
    far = (500 + 0x7000_0000) & MASK
    for i, (flags, ack) in enumerate([(ACK, ISS + 1 + 0x4000_0000), (ACK, ISS + 1 - 0x4000_0000),
                                      (SYN | ACK, ISS + 1), (RST, 0)]):
        deliver(conn, seg({ACK: IRS + 1 - 2, RST: IRS + 11}.get(flags, IRS + 1), ack, flags,
                          payload=b"evil" if flags == ACK else b"",
                          ts=(far, t0)), 0.2 + i)
        assert conn.ts_recent == 500 and conn.state is State.ESTABLISHED
    deliver(conn, seg(IRS + 1, ISS + 1, payload=b"real", ts=(501, t0)), 5.0)
    assert conn.read() == b"real" and conn.ts_recent == 501


def test_paws_lets_a_rst_through_and_forgets_ts_recent_after_24_days():
    """RFC 7323 §5.3 R1 applies to everything but RSTs; §5.5: after 24 days
    without a segment TS.Recent is no longer valid, so an 'old' TSval (the
    peer's clock wrapped) is accepted and becomes TS.Recent."""
    conn, t0 = ts_established()
    later = 0.1 + 25 * 24 * 3600.0
    deliver(conn, seg(IRS + 1, ISS + 1, payload=b"hi", ts=(100, t0)), later)
    assert conn.events() == [DATA] and conn.ts_recent == 100
    deliver(conn, seg(IRS + 3, 0, RST, ts=(50, 0)), later + 1)
    assert conn.state is State.CLOSED and not conn.counters["paws_rejected"]


def test_paws_spares_a_duplicate_ack_overtaken_by_a_later_one():
    """A duplicate ACK reordered behind a newer one fails PAWS harmlessly;
    as Linux's tcp_disordered_ack, it still counts as a duplicate ACK
    (RFC 5681 §2) rather than being refused."""
    conn, t0 = ts_established()
    conn.send(data(3000))
    recv(conn, 0.1)
    deliver(conn, seg(IRS + 1, ISS + 1, ts=(510, t0 + 100)), 0.2)
    deliver(conn, seg(IRS + 1, ISS + 1, ts=(505, t0 + 100)), 0.21)
    assert not conn.counters["paws_rejected"] and conn.stats.dup_acks == 2


def test_timestamps_give_rtt_samples_even_for_retransmissions():
    """RFC 7323 §4.1 (RTTM): the echoed TSval times the segment that was
    actually acknowledged, so a retransmission yields a valid sample (Karn's
    ambiguity does not arise) and ends the backoff (RFC 6298 §5.7)."""
    conn, t0 = ts_established()  # SRTT 0.1 from the SYN,ACK's echo
    assert conn.rtt.srtt == pytest.approx(0.1)
    conn.send(b"x")
    recv(conn, 0.1)
    fire(conn, 0.4)
    expect(conn, 0.4, out(ISS + 1, IRS + 1, ACK | PSH, b"x", ts=(t0 + 400, 500)))
    assert conn.rtt.backoff == 1
    deliver(conn, seg(IRS + 1, ISS + 2, ts=(501, t0 + 400)), 0.45)  # R = 0.05
    assert conn.rtt.backoff == 0
    assert conn.rtt.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.05)


def test_syn_rcvd_unacceptable_ack_answered_with_rst():
    """§3.10.7.4 fifth, SYN-RECEIVED: "If the segment acknowledgment is not
    acceptable, form a reset segment <SEQ=SEG.ACK><CTL=RST> and send it"; the
    half-open connection stays."""
    conn = syn_rcvd()
    deliver(conn, seg(IRS + 1, ISS + 50), 0.1)
    expect(conn, 0.1, out(ISS + 50, 0, RST, window=0))
    assert conn.state is State.SYN_RCVD
    deliver(conn, seg(IRS + 1, ISS + 1), 0.2)
    assert conn.state is State.ESTABLISHED


@pytest.mark.parametrize("ack", [ISS, ISS - 5, ISS + 2, ISS + 1000])
def test_syn_sent_unacceptable_ack_answered_with_rst(ack):
    """§3.10.7.3 SYN-SENT, first: if SEG.ACK =< ISS or SEG.ACK > SND.NXT, send
    <SEQ=SEG.ACK><CTL=RST> and discard the segment; the open goes on."""
    conn = syn_sent()
    deliver(conn, seg(IRS, ack, SYN | ACK, mss=REMOTE_MSS), 0.1)
    expect(conn, 0.1, out(ack, 0, RST, window=0))
    assert conn.state is State.SYN_SENT
    assert conn.events() == []
    # Still waiting for the right SYN,ACK.
    deliver(conn, seg(IRS, ISS + 1, SYN | ACK, mss=REMOTE_MSS), 0.2)
    assert conn.state is State.ESTABLISHED


def test_syn_sent_rst_with_bad_ack_dropped():
    """§3.10.7.3 SYN-SENT, first: an unacceptable ACK with RST set is dropped
    without a reply."""
    conn = syn_sent()
    deliver(conn, seg(0, ISS + 7, RST | ACK), 0.1)
    recv_nothing(conn, 0.1)
    assert conn.state is State.SYN_SENT


def test_syn_sent_rst_with_acceptable_ack_is_refused():
    """§3.10.7.3 SYN-SENT, second: RST with an acceptable ACK - "signal to the
    user 'error: connection reset', drop the segment, enter CLOSED"."""
    conn = syn_sent()
    deliver(conn, seg(0, ISS + 1, RST | ACK), 0.1)
    assert conn.state is State.CLOSED
    assert conn.events() == [events.ConnectionReset(refused=True), CLOSED_EV]
    assert conn.error == "refused"
    recv_nothing(conn, 0.1)
    assert timer(conn) is None


def test_syn_sent_rst_without_ack_ignored():
    """§3.10.7.3 SYN-SENT, second: "Otherwise (no ACK), drop the segment and
    return" (RFC 5961 §3 keeps blind RSTs from killing the open)."""
    conn = syn_sent()
    deliver(conn, seg(IRS, 0, RST), 0.1)
    assert conn.state is State.SYN_SENT
    recv_nothing(conn, 0.1)
    assert conn.events() == []
    assert conn.counters["rst_without_ack"] == 1
    assert timer(conn) == 1.0


def test_rto_after_syn_timeout_starts_at_3s():
    """RFC 6298 §5.7: if the timer expired awaiting the ACK of a SYN and the RTO
    is below 3 s, it MUST be re-initialized to 3 s when data transmission
    begins. The SYN,ACK answers a retransmitted SYN, so Karn's rule (§3) gives
    no sample."""
    conn = syn_sent()
    fire(conn, 1.0)
    expect(conn, 1.0, out(ISS, 0, SYN, mss=LOCAL_MSS))
    deliver(conn, seg(IRS, ISS + 1, SYN | ACK, mss=REMOTE_MSS), 1.1)
    expect(conn, 1.1, out(ISS + 1, IRS + 1))
    conn.send(b"abc")
    expect(conn, 1.1, out(ISS + 1, IRS + 1, ACK | PSH, b"abc"))
    assert timer(conn) == pytest.approx(4.1)


# ========================================================================= data


def test_in_order_data_delivered_and_ack_delayed():
    """§3.10.7.4 seventh: in-order text goes to the user (DataReceived, read());
    the ACK may be delayed (§3.8.6.3, RFC 5681 §4.2) by config.delayed_ack."""
    conn = established(BASE.replace(delayed_ack=0.2))
    deliver(conn, seg(IRS + 1, ISS + 1, ACK | PSH, b"hello"), 1.0)
    assert conn.events() == [DATA]
    recv_nothing(conn, 1.0)
    assert timer(conn) == pytest.approx(1.2)
    recv_nothing(conn, 1.199)
    assert conn.read() == b"hello"
    assert conn.read() == b""
    fire(conn, 1.2)
    expect(conn, 1.2, out(ISS + 1, IRS + 6, window=LOCAL_WIN - 5))
    assert timer(conn) is None


def test_one_data_event_for_several_segments():
    """DataReceived means "read() has data": consecutive arrivals before the user
    looks produce one event, and read() returns all of it in order."""
    conn = established()
    deliver(conn, seg(IRS + 1, ISS + 1, payload=b"abc"), 1.0)
    deliver(conn, seg(IRS + 4, ISS + 1, payload=b"def"), 1.0)
    assert conn.events() == [DATA]
    assert conn.read(4) == b"abcd"
    assert conn.read() == b"ef"


def test_second_full_sized_segment_acked_at_once():
    """RFC 5681 §4.2 / RFC 1122 §4.2.3.2: an ACK SHOULD be generated for at least
    every second full-sized segment; the first waits for the delayed-ACK timer."""
    conn = established()
    deliver(conn, seg(IRS + 1, ISS + 1, payload=data(1000)), 1.0)
    recv_nothing(conn, 1.0)
    assert timer(conn) == pytest.approx(1.0 + BASE.delayed_ack)
    deliver(conn, seg(IRS + 1001, ISS + 1, payload=data(1000, 1000)), 1.01)
    expect(conn, 1.01, out(ISS + 1, IRS + 2001, window=LOCAL_WIN - 2000))
    assert timer(conn) is None
    assert conn.read() == data(2000)


def test_out_of_order_segment_gets_immediate_dup_ack_with_sack_block():
    """RFC 5681 §4.2: an out-of-order segment SHOULD be ACKed immediately (a
    duplicate ACK); RFC 2018 §4: the first SACK block reports the segment that
    triggered the ACK. The right edge of the window does not move left."""
    conn = established(SACK, sack_permitted=True)
    deliver(conn, seg(IRS + 1001, ISS + 1, payload=data(1000, 1000)), 1.0)
    expect(conn, 1.0, out(ISS + 1, IRS + 1, sack=((IRS + 1001, IRS + 2001),)))
    assert conn.events() == []
    assert conn.read() == b""
    deliver(conn, seg(IRS + 3001, ISS + 1, payload=data(500, 3000)), 1.1)
    expect(
        conn,
        1.1,
        out(ISS + 1, IRS + 1, sack=((IRS + 3001, IRS + 3501), (IRS + 1001, IRS + 2001))),
    )


def test_out_of_order_segment_dup_ack_without_sack():
    """RFC 5681 §4.2 without SACK negotiated: the immediate duplicate ACK carries
    no SACK option (RFC 2018 §3: only if SACK-permitted was received)."""
    conn = established(SACK)  # we offer SACK, the peer does not
    deliver(conn, seg(IRS + 1001, ISS + 1, payload=data(1000, 1000)), 1.0)
    expect(conn, 1.0, out(ISS + 1, IRS + 1))


def test_filling_the_hole_acks_everything_at_once():
    """RFC 5681 §4.2: a segment that fills in all or part of a gap SHOULD be ACKed
    immediately; the cumulative ACK covers the reassembled data."""
    conn = established(SACK, sack_permitted=True)
    deliver(conn, seg(IRS + 1001, ISS + 1, payload=data(1000, 1000)), 1.0)
    recv(conn, 1.0)
    deliver(conn, seg(IRS + 1, ISS + 1, payload=data(1000)), 1.2)
    expect(conn, 1.2, out(ISS + 1, IRS + 2001, window=LOCAL_WIN - 2000))
    assert conn.events() == [DATA]
    assert conn.read() == data(2000)
    assert timer(conn) is None


def test_overlapping_and_duplicate_segments_delivered_once():
    """§3.10.7.4 first/seventh: a wholly old duplicate is unacceptable (ACK and
    drop); a segment starting left of RCV.NXT is trimmed to the new part; every
    byte reaches the user exactly once."""
    conn = established()
    deliver(conn, seg(IRS + 1, ISS + 1, payload=b"abcdef"), 1.0)
    deliver(conn, seg(IRS + 1, ISS + 1, payload=b"abcdef"), 1.01)
    expect(conn, 1.01, out(ISS + 1, IRS + 7, window=LOCAL_WIN - 6))
    deliver(conn, seg(IRS + 4, ISS + 1, payload=b"defghi"), 1.02)
    recv_nothing(conn, 1.02)  # new in-order data: delayed ACK
    assert conn.read() == b"abcdefghi"
    fire(conn, 1.02 + BASE.delayed_ack)
    expect(conn, 1.06, out(ISS + 1, IRS + 10, window=LOCAL_WIN - 9))
    assert conn.counters["out_of_window"] == 1


def test_data_beyond_window_trimmed():
    """§3.10.7.4 seventh (and first): only the part of a segment inside the
    receive window is accepted; the rest is trimmed and must be resent."""
    cfg = BASE.replace(recv_buffer=1500)
    conn = syn_sent(cfg)
    deliver(conn, seg(IRS, ISS + 1, SYN | ACK, mss=REMOTE_MSS), 0.0)
    expect(conn, 0.0, out(ISS + 1, IRS + 1, window=1500))
    deliver(conn, seg(IRS + 1, ISS + 1, payload=data(1000)), 1.0)
    deliver(conn, seg(IRS + 1001, ISS + 1, payload=data(1000, 1000)), 1.0)
    assert conn.counters["beyond_window"] == 1
    fire(conn, 1.0 + cfg.delayed_ack)
    expect(conn, 1.04, out(ISS + 1, IRS + 1501, window=0))
    assert conn.read() == data(1500)
    # The window reopens: a window update at once (§3.8.6.2.2).
    expect(conn, 1.05, out(ISS + 1, IRS + 1501, window=1500))


def test_advertised_window_is_free_buffer_and_reopens_after_read():
    """§3.8.6.2.2: RCV.WND is the free receive buffer; it shrinks while data is
    unread and, once the user frees at least min(buffer/2, 2*MSS), a window
    update is sent; smaller reads wait (receiver SWS avoidance)."""
    conn = established()
    for i in range(2):
        deliver(conn, seg(IRS + 1 + 1000 * i, ISS + 1, payload=data(1000)), 1.0)
    expect(conn, 1.0, out(ISS + 1, IRS + 2001, window=8000))
    for i in range(2, 4):
        deliver(conn, seg(IRS + 1 + 1000 * i, ISS + 1, payload=data(1000)), 1.1)
    expect(conn, 1.1, out(ISS + 1, IRS + 4001, window=6000))
    assert len(conn.read(1500)) == 1500
    recv_nothing(conn, 1.2)  # 1500 < 2*MSS: no update yet
    assert len(conn.read()) == 2500
    expect(conn, 1.3, out(ISS + 1, IRS + 4001, window=10000))
    recv_nothing(conn, 1.3)


def test_window_scaling_math():
    """RFC 7323 §2.3: SND.WND = SEG.WND << Snd.Wind.Shift and SEG.WND =
    RCV.WND >> Rcv.Wind.Shift (rounded up so the right edge never moves left,
    RFC 7323 §2.4)."""
    conn = closed(WS)
    conn.connect(0.0)
    recv(conn, 0.0)
    deliver(conn, seg(IRS, ISS + 1, SYN | ACK, window=1000, mss=1000, wscale=3), 0.0)
    expect(conn, 0.0, out(ISS + 1, IRS + 1, window=(1 << 20) >> 5))
    deliver(conn, seg(IRS + 1, ISS + 1, window=100), 0.1)  # 800 bytes
    conn.send(data(2000))
    expect(conn, 0.1, out(ISS + 1, IRS + 1, payload=data(800), window=1 << 15))
    deliver(conn, seg(IRS + 1, ISS + 1, payload=data(1000), window=100), 0.2)
    fire(conn, 0.2 + WS.delayed_ack)
    # 1048576 - 1000 free = 32736.75 units of 32: advertised as 32737.
    expect(conn, 0.24, out(ISS + 801, IRS + 1001, window=32737))


def test_zero_window_persist_probes_with_backoff_and_resume():
    """§3.8.6.1: with a zero window the sender stops, then probes with one byte
    when the persist timer expires, at exponentially growing intervals (RFC 1122
    §4.2.2.17), and MUST NOT give up while the probes are ACKed - however long
    (here past user_timeout and max_retries). A window update resumes sending."""
    cfg = BASE.replace(max_retries=3, user_timeout=60.0)
    conn = established(cfg, window=2000)
    payload = data(3000)
    conn.send(payload)
    expect(
        conn,
        0.0,
        out(ISS + 1, IRS + 1, payload=payload[:1000]),
        out(ISS + 1001, IRS + 1, payload=payload[1000:2000]),
    )
    deliver(conn, seg(IRS + 1, ISS + 2001, window=0), 0.1)
    recv_nothing(conn, 0.1)
    rto = conn.rtt.rto
    assert rto == 0.2  # rto_min: handshake sample 0 s, data sample 0.1 s
    t = 0.1
    interval = rto
    probe = out(ISS + 2001, IRS + 1, payload=payload[2000:2001])
    for _ in range(14):
        t += interval
        recv_nothing(conn, t - 0.001)
        fire(conn, t)
        expect(conn, t, probe)
        deliver(conn, seg(IRS + 1, ISS + 2001, window=0), t + 0.01)
        recv_nothing(conn, t + 0.01)
        interval = min(interval * 2, cfg.rto_max)
    assert t > 300
    assert conn.state is State.ESTABLISHED
    assert conn.stats.zero_window_probes == 14
    assert conn.stats.fast_retransmits == 0
    deliver(conn, seg(IRS + 1, ISS + 2001, window=4000), t + 1)
    expect(conn, t + 1, out(ISS + 2001, IRS + 1, ACK | PSH, payload[2000:]))
    deliver(conn, seg(IRS + 1, ISS + 3001, window=4000), t + 2)
    assert conn.events() == [SENT_ALL]
    assert timer(conn) is None


def test_zero_window_unanswered_probes_abort_after_user_timeout():
    """§3.8.6.1 forbids giving up only while probes are ACKed; unanswered, the
    user timeout (§3.8.3, RFC 5482; 10 s here) ends the connection with a RST
    <SEQ=SND.NXT> instead of a further probe."""
    conn = established(BASE.replace(user_timeout=10.0), window=2000)
    payload = data(3000)
    conn.send(payload)
    recv(conn, 0.0)
    deliver(conn, seg(IRS + 1, ISS + 2001, window=0), 0.1)
    recv_nothing(conn, 0.1)
    probe = out(ISS + 2001, IRS + 1, payload=payload[2000:2001])
    sent = run_until(conn, 7.0)
    assert [s for _, s in sent] == [probe] * 5
    assert [t for t, _ in sent] == pytest.approx([0.3, 0.7, 1.5, 3.1, 6.3])
    assert conn.state is State.ESTABLISHED
    fire(conn, 12.7)
    assert conn.state is State.CLOSED
    expect(conn, 12.7, out(ISS + 2001, IRS + 1, RST | ACK))
    assert conn.events() == [events.ConnectionError("timeout"), CLOSED_EV]


def test_nagle_holds_small_segment_until_ack():
    """§3.7.4 (Nagle, RFC 1122 §4.2.3.4): while data is unacknowledged, a small
    segment waits; full-sized segments go at once; the ACK releases the rest."""
    conn = established()
    conn.send(b"a")
    expect(conn, 0.0, out(ISS + 1, IRS + 1, ACK | PSH, b"a"))
    conn.send(b"b")
    recv_nothing(conn, 0.0)
    conn.send(data(2499))
    expect(
        conn,
        0.0,
        out(ISS + 2, IRS + 1, payload=(b"b" + data(2499))[:1000]),
        out(ISS + 1002, IRS + 1, payload=(b"b" + data(2499))[1000:2000]),
    )
    deliver(conn, seg(IRS + 1, ISS + 2), 0.1)
    recv_nothing(conn, 0.1)  # still unacknowledged data in flight
    deliver(conn, seg(IRS + 1, ISS + 2002), 0.2)
    expect(conn, 0.2, out(ISS + 2002, IRS + 1, ACK | PSH, (b"b" + data(2499))[2000:]))


def test_nodelay_sends_small_segments_at_once():
    """§3.7.4: an application may disable Nagle; small writes go out at once."""
    conn = established(BASE.replace(nodelay=True))
    conn.send(b"a")
    expect(conn, 0.0, out(ISS + 1, IRS + 1, ACK | PSH, b"a"))
    conn.send(b"b")
    expect(conn, 0.0, out(ISS + 2, IRS + 1, ACK | PSH, b"b"))


# =============================================================== retransmission


def handshake(config: Config = BASE, rtt: float = 0.1, **peer_options) -> Connection:
    """Active open at t=0; the SYN,ACK arrives at ``rtt``: the first RTT sample
    (RFC 6298 §2.2), so RTO = 3 * rtt, bounded by rto_min."""
    peer_options.setdefault("mss", REMOTE_MSS)
    conn = syn_sent(config)
    deliver(conn, seg(IRS, ISS + 1, SYN | ACK, **peer_options), rtt)
    recv(conn, rtt)
    assert conn.events() == [CONNECTED]
    return conn


def test_rto_doubles_on_each_timeout():
    """RFC 6298 §5.4: on expiry retransmit the earliest unacknowledged segment;
    §5.5: back off the timer, RTO = RTO * 2; §5.6: restart it. (The initial
    1 s RTO of §2.1 shows in the SYN test above.)"""
    conn = handshake()  # RTO 0.3
    assert conn.rtt.rto == pytest.approx(0.3)
    conn.send(data(100))
    first = out(ISS + 1, IRS + 1, ACK | PSH, data(100))
    expect(conn, 0.1, first)
    for t in (0.4, 1.0, 2.2, 4.6, 9.4, 19.0):
        recv_nothing(conn, t - 0.001)
        fire(conn, t)
        expect(conn, t, first)
    assert timer(conn) == pytest.approx(19.0 + 0.3 * 64)
    assert conn.stats.timeouts == 6


def test_rto_bounded_by_rto_max():
    """RFC 6298 §2.5: a maximum value may be placed on RTO (here 2 s): backoff
    stops doubling there."""
    conn = handshake(BASE.replace(rto_max=2.0), rtt=0.1)
    conn.send(b"x")
    recv(conn, 0.1)
    times = [t for t, _ in run_until(conn, 9.0)]
    assert times == pytest.approx([0.4, 1.0, 2.2, 4.2, 6.2, 8.2])


def test_rto_bounded_by_rto_min():
    """RFC 6298 §2.4: RTO below the minimum (config rto_min = 0.2 s) is rounded
    up. A 10 ms sample gives SRTT + 4*RTTVAR = 30 ms -> 200 ms."""
    conn = handshake(rtt=0.01)
    assert conn.rtt.rto == pytest.approx(0.2)
    conn.send(b"x")
    recv(conn, 1.0)
    assert timer(conn) == pytest.approx(1.2)


def test_rto_recomputed_from_samples():
    """RFC 6298 §2.2: first sample R: SRTT=R, RTTVAR=R/2, RTO=SRTT+4*RTTVAR;
    §2.3: RTTVAR=3/4 RTTVAR + 1/4 |SRTT-R'|, SRTT=7/8 SRTT + 1/8 R'."""
    conn = handshake()  # SRTT 0.1, RTTVAR 0.05 -> RTO 0.3
    assert conn.rtt.rto == pytest.approx(0.3)
    conn.send(b"x")
    recv(conn, 1.0)
    assert timer(conn) == pytest.approx(1.3)
    deliver(conn, seg(IRS + 1, ISS + 2), 1.3)  # R' = 0.3
    # RTTVAR = 0.0375 + 0.05 = 0.0875, SRTT = 0.0875 + 0.0375 = 0.125
    assert conn.rtt.srtt == pytest.approx(0.125)
    assert conn.rtt.rto == pytest.approx(0.125 + 4 * 0.0875)
    assert timer(conn) is None  # §5.2: all data acknowledged, timer off
    conn.send(b"y")
    recv(conn, 2.0)
    assert timer(conn) == pytest.approx(2.0 + 0.475)


def test_karn_no_sample_from_retransmitted_segment():
    """RFC 6298 §3 (Karn): no RTT sample from a retransmitted segment (timestamps
    off), so the backed-off RTO stays (§5.7) until a segment sent once is ACKed."""
    conn = handshake()  # RTO 0.3
    conn.send(b"x")
    recv(conn, 0.1)
    fire(conn, 0.4)
    expect(conn, 0.4, out(ISS + 1, IRS + 1, ACK | PSH, b"x"))
    fire(conn, 1.0)  # RTO now 0.6, then 1.2
    expect(conn, 1.0, out(ISS + 1, IRS + 1, ACK | PSH, b"x"))
    deliver(conn, seg(IRS + 1, ISS + 2), 1.05)  # ambiguous: no sample
    assert conn.rtt.srtt == pytest.approx(0.1)
    assert timer(conn) is None
    conn.send(b"y")
    expect(conn, 1.1, out(ISS + 2, IRS + 1, ACK | PSH, b"y"))
    assert timer(conn) == pytest.approx(1.1 + 1.2)  # still backed off
    deliver(conn, seg(IRS + 1, ISS + 3), 1.2)  # sent once: sample R' = 0.1
    assert conn.rtt.srtt == pytest.approx(0.1)
    assert conn.rtt.rto == pytest.approx(0.1 + 4 * 0.0375)
    conn.send(b"z")
    recv(conn, 1.3)
    assert timer(conn) == pytest.approx(1.3 + 0.25)


def test_max_retries_then_timeout_error_and_rst():
    """RFC 9293 §3.8.3 (R2): after max_retries retransmissions the connection is
    given up: ConnectionError("timeout") for the user and a RST
    <SEQ=SND.NXT> for the peer (§3.10.5 ABORT)."""
    conn = handshake(BASE.replace(max_retries=3, user_timeout=None))
    conn.send(b"abc")
    recv(conn, 0.1)
    for t in (0.4, 1.0, 2.2):
        fire(conn, t)
        expect(conn, t, out(ISS + 1, IRS + 1, ACK | PSH, b"abc"))
    fire(conn, 4.6)
    assert conn.state is State.CLOSED
    expect(conn, 4.6, out(ISS + 4, IRS + 1, RST | ACK))
    assert conn.events() == [events.ConnectionError("timeout"), CLOSED_EV]
    assert conn.error == "timeout"
    recv_nothing(conn, 100.0)
    assert timer(conn) is None


def test_user_timeout_counts_from_first_unacknowledged_send():
    """RFC 9293 §3.8.3 / RFC 5482: the connection aborts when data stays
    unacknowledged for user_timeout (2 s here), checked at retransmission
    timeouts. Idle time before the data was written does not count."""
    conn = handshake(BASE.replace(max_retries=100, user_timeout=2.0))
    conn.send(b"abc")
    recv(conn, 100.1)  # idle for 100 s first
    for t in (100.4, 101.0):
        fire(conn, t)
        expect(conn, t, out(ISS + 1, IRS + 1, ACK | PSH, b"abc"))
    fire(conn, 102.2)  # 2.1 s unacknowledged
    assert conn.state is State.CLOSED
    expect(conn, 102.2, out(ISS + 4, IRS + 1, RST | ACK))
    assert conn.events() == [events.ConnectionError("timeout"), CLOSED_EV]


def send_ten(conn, t: float = 0.0) -> bytes:
    """Send ten full segments (cwnd is 10 MSS, RFC 6928) and check them."""
    payload = data(10_000)
    conn.send(payload)
    got = recv(conn, t)
    assert [(s.seq, len(s.payload)) for s in got] == [
        ((ISS + 1 + 1000 * i) & 0xFFFFFFFF, 1000) for i in range(10)
    ]
    return payload


def test_fast_retransmit_on_third_duplicate_ack_not_second():
    """RFC 5681 §3.2: "The fast retransmit algorithm uses the arrival of 3
    duplicate ACKs ... as an indication that a segment has been lost"; step 4:
    retransmit it. Two are not enough (reordering)."""
    conn = handshake()
    payload = send_ten(conn, 0.1)
    deliver(conn, seg(IRS + 1, ISS + 1001), 0.2)  # segment 0 arrived; 1 is lost
    recv_nothing(conn, 0.2)  # nothing new to send (cwnd grows, buffer empty)
    deliver(conn, seg(IRS + 1, ISS + 1001), 0.21)
    recv_nothing(conn, 0.21)
    deliver(conn, seg(IRS + 1, ISS + 1001), 0.22)
    recv_nothing(conn, 0.22)  # the second duplicate
    deliver(conn, seg(IRS + 1, ISS + 1001), 0.23)
    expect(conn, 0.23, out(ISS + 1001, IRS + 1, payload=payload[1000:2000]))
    assert conn.stats.fast_retransmits == 1


def test_cwnd_halves_on_fast_retransmit():
    """RFC 5681 §3.2 step 2 (eq. 4): ssthresh = max(FlightSize/2, 2*SMSS);
    RFC 6675 §5 step 4.2: cwnd = ssthresh."""
    conn = handshake()
    send_ten(conn, 0.1)
    assert conn.cc.cwnd == 10_000
    for i in range(3):
        deliver(conn, seg(IRS + 1, ISS + 1), 0.2 + i / 100)
    recv(conn, 0.22)
    assert conn.cc.ssthresh == 5000
    assert conn.cc.cwnd == 5000


def test_cwnd_halves_flight_size_on_sack_recovery():
    """RFC 6675 §5 (4.2): "ssthresh = cwnd = (FlightSize / 2)" - FlightSize as
    in RFC 5681 (sent and not cumulatively ACKed), SACKed bytes included."""
    conn = handshake(SACK, sack_permitted=True)
    send_ten(conn, 0.1)
    S = [ISS + 1 + 1000 * i for i in range(11)]
    for i, sack in enumerate([((S[1], S[2]),), ((S[1], S[3]),), ((S[1], S[4]),)]):
        deliver(conn, seg(IRS + 1, ISS + 1, sack=sack), 0.2 + i / 100)
    expect(conn, 0.22, out(ISS + 1, IRS + 1, payload=data(1000)))
    assert conn.cc.ssthresh == 5000
    assert conn.cc.cwnd == 5000


def test_cwnd_one_mss_on_rto():
    """RFC 5681 §3.1: on a retransmission timeout ssthresh = max(FlightSize/2,
    2*SMSS) and cwnd = 1 full-sized segment; only one segment is resent."""
    conn = handshake()
    payload = send_ten(conn, 0.1)
    fire(conn, 0.4)
    expect(conn, 0.4, out(ISS + 1, IRS + 1, payload=payload[:1000]))
    assert conn.cc.cwnd == 1000
    assert conn.cc.ssthresh == 5000


def test_rto_with_sacked_data_halves_flight_size():
    """RFC 5681 eq. 4 on RTO: ssthresh = FlightSize/2, where SACKed bytes count
    (they are not cumulatively ACKed); cwnd = 1 MSS, one segment resent."""
    conn = handshake(SACK, sack_permitted=True)
    payload = send_ten(conn, 0.1)
    S = [ISS + 1 + 1000 * i for i in range(11)]
    deliver(conn, seg(IRS + 1, ISS + 1, sack=((S[1], S[2]),)), 0.2)
    deliver(conn, seg(IRS + 1, ISS + 1, sack=((S[1], S[3]),)), 0.21)
    recv_nothing(conn, 0.21)  # two duplicates, 2000 bytes SACKed: no recovery yet
    # RACK (RFC 8985 §6.2): segment 0 is lost once RACK.rtt (0.11 s) plus the
    # reordering window (min_RTT / 4 = 0.025 s) have passed since it left.
    fire(conn, 0.235)
    expect(conn, 0.235, out(S[0], IRS + 1, payload=payload[:1000]))
    fire(conn, 0.4)  # the retransmission was lost too
    expect(conn, 0.4, out(S[0], IRS + 1, payload=payload[:1000]))
    assert conn.cc.ssthresh == 5000
    assert conn.cc.cwnd == 1000
    deliver(conn, seg(IRS + 1, S[3]), 0.5)  # segments 0-2 in: slow start, cwnd 3000
    expect(
        conn,
        0.5,
        out(S[3], IRS + 1, payload=payload[3000:4000]),
        out(S[4], IRS + 1, payload=payload[4000:5000]),
        out(S[5], IRS + 1, payload=payload[5000:6000]),
    )


def test_rto_forgets_sack_scoreboard():
    """RFC 2018 §8: after a retransmission timeout the sender MUST ignore prior
    SACK information in choosing what to resend (the receiver may have reneged);
    SACKs that arrive afterwards are used again (RFC 6675 §5.1)."""
    conn = handshake(SACK, sack_permitted=True)
    payload = send_ten(conn, 0.1)
    S = [ISS + 1 + 1000 * i for i in range(11)]
    deliver(conn, seg(IRS + 1, ISS + 1, sack=((S[1], S[3]),)), 0.2)
    fire(conn, 0.225)  # RACK: RACK.rtt 0.1 s + reo_wnd 0.025 s after segment 0 left
    expect(conn, 0.225, out(S[0], IRS + 1, payload=payload[:1000]))
    fire(conn, 0.4)
    expect(conn, 0.4, out(S[0], IRS + 1, payload=payload[:1000]))
    # The receiver reneged: it ACKs segment 0 and SACKs nothing.
    deliver(conn, seg(IRS + 1, S[1]), 0.5)
    expect(
        conn,
        0.5,
        out(S[1], IRS + 1, payload=payload[1000:2000]),
        out(S[2], IRS + 1, payload=payload[2000:3000]),
    )
    # A fresh SACK of 4-5 is honoured: after 3 comes 6, not 4 (cwnd now 4000,
    # pipe counts 3, 6, 7, 8).
    deliver(conn, seg(IRS + 1, S[3], sack=((S[4], S[6]),)), 0.6)
    assert [s.seq for s in recv(conn, 0.6)] == [S[3], S[6], S[7], S[8]]


def test_newreno_partial_ack_retransmits_next_hole():
    """RFC 6582 §3.2 step 5: a partial ACK (acknowledging some but not all data
    outstanding when recovery began) retransmits the first unacknowledged
    segment at once; a full ACK ends recovery (step 6)."""
    conn = handshake()
    payload = send_ten(conn, 0.1)
    # Segments 0 and 2 are lost: segments 1, 3, 4 cause three duplicate ACKs
    # (5 to 9 are still on their way).
    for i in range(3):
        deliver(conn, seg(IRS + 1, ISS + 1), 0.2 + i / 100)
    expect(conn, 0.22, out(ISS + 1, IRS + 1, payload=payload[:1000]))
    # The retransmitted segment 0 fills the first hole: ACK up to segment 2.
    # Retransmit segment 2 at once, whatever cwnd says (step 5).
    deliver(conn, seg(IRS + 1, ISS + 2001), 0.3)
    expect(conn, 0.3, out(ISS + 2001, IRS + 1, payload=payload[2000:3000]))
    recv_nothing(conn, 0.3)
    assert conn.recovery.in_recovery
    deliver(conn, seg(IRS + 1, ISS + 10_001), 0.4)
    assert not conn.recovery.in_recovery
    recv_nothing(conn, 0.4)
    assert conn.stats.fast_retransmits == 1
    assert conn.stats.timeouts == 0


def test_sack_recovery_retransmits_only_the_holes():
    """RFC 6675 §5: with SACK the sender retransmits the holes the scoreboard
    marks lost (NextSeg, §4) and never data the receiver has SACKed."""
    conn = handshake(SACK, rtt=0.1, sack_permitted=True)
    payload = send_ten(conn, 0.1)
    S = [ISS + 1 + 1000 * i for i in range(11)]  # segment boundaries
    # Segments 0 and 2 are lost; 1, 3, 4, ..., 9 arrive and are SACKed.
    sent = []
    t = 0.2
    blocks = [((S[1], S[2]),)]
    for i in range(3, 10):
        blocks.append(((S[3], S[i + 1]), (S[1], S[2])))
    for sack in blocks:
        deliver(conn, seg(IRS + 1, ISS + 1, sack=sack), t)
        sent += [(t, s.seq) for s in recv(conn, t)]
        t += 0.01
    assert [seq for _, seq in sent] == [S[0], S[2]]
    assert conn.stats.bytes_retransmitted == 2000
    # The first hole's retransmission arrives: cumulative ACK to segment 2.
    deliver(conn, seg(IRS + 1, S[2], sack=((S[3], S[10]),)), 0.4)
    recv_nothing(conn, 0.4)
    deliver(conn, seg(IRS + 1, S[10]), 0.5)
    assert not conn.recovery.in_recovery
    assert conn.events() == [SENT_ALL]
    assert payload == data(10_000)


# ================================================ acceptability, RST and SYN rules


@pytest.mark.parametrize(
    "seq, payload",
    [(IRS + 1 + LOCAL_WIN, b"x"), (IRS + 50_000, b"abc"), (IRS - 100, b"abc"), (IRS, b"")],
    ids=["right-of-window", "far-right", "left-of-window", "empty-old"],
)
def test_unacceptable_segment_acked_and_dropped(seq, payload):
    """§3.10.7.4 first: "If an incoming segment is not acceptable, an
    acknowledgment should be sent in reply ... <SEQ=SND.NXT><ACK=RCV.NXT>
    <CTL=ACK>. After sending the acknowledgment, drop the unacceptable segment"."""
    conn = established()
    deliver(conn, seg(seq, ISS + 1, payload=payload), 1.0)
    expect(conn, 1.0, out(ISS + 1, IRS + 1))
    assert conn.events() == []
    assert conn.read() == b""
    assert conn.counters["out_of_window"] == 1
    assert conn.state is State.ESTABLISHED


def test_data_accepted_before_a_rst_stays_readable():
    """Data that arrived in order just before the peer's RST (a TLS alert, a
    server's last error line) is still read ahead of the reset, as Linux's
    receive queue is (recv() returns it, then ECONNRESET); the out-of-order
    data goes with the connection (RFC 9293 §3.10.7.4: queues flushed)."""
    conn = established()
    deliver(conn, seg(IRS + 1, ISS + 1, ACK | PSH, b"last words"), 1.0)
    deliver(conn, seg(IRS + 100, ISS + 1, ACK | PSH, b"later"), 1.0)  # out of order
    deliver(conn, seg(IRS + 11, 0, RST), 1.0)
    assert conn.state is State.CLOSED
    assert conn.events() == [DATA, events.ConnectionReset(refused=False), CLOSED_EV]
    assert conn.read() == b"last words"
    assert conn.read() == b""


def test_rst_exactly_at_rcv_nxt_resets():
    """§3.10.7.4 second (RFC 5961 §3.2): a RST whose SEQ exactly matches RCV.NXT
    resets the connection: ConnectionReset, CLOSED, nothing sent."""
    conn = established()
    deliver(conn, seg(IRS + 1, 0, RST), 1.0)
    assert conn.state is State.CLOSED
    assert conn.events() == [events.ConnectionReset(refused=False), CLOSED_EV]
    assert conn.error == "reset"
    recv_nothing(conn, 1.0)
    assert timer(conn) is None


def test_rst_in_window_but_not_exact_gets_challenge_ack():
    """RFC 5961 §3.2: a RST inside the window but not at RCV.NXT MUST be answered
    with a challenge ACK <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>; the connection
    survives."""
    conn = established()
    deliver(conn, seg(IRS + 1 + 5, 0, RST), 1.0)
    expect(conn, 1.0, out(ISS + 1, IRS + 1))
    assert conn.state is State.ESTABLISHED
    assert conn.events() == []
    assert conn.counters["rst_challenged"] == 1
    # RFC 5961 §7: challenge ACKs are rate-limited: one more within
    # INVALID_RATELIMIT (0.5 s) is counted and not answered...
    deliver(conn, seg(IRS + 1 + 7, 0, RST), 1.1)
    recv_nothing(conn, 1.1)
    assert conn.counters["rst_challenged"] == 2 and conn.counters["refusal_acks_limited"] == 1
    # ...after it, a RST with ACK at an in-window SEQ is challenged too.
    deliver(conn, seg(IRS + 1 + 9999, ISS + 1, RST | ACK), 1.6)
    expect(conn, 1.6, out(ISS + 1, IRS + 1))
    assert conn.state is State.ESTABLISHED


@pytest.mark.parametrize("seq", [IRS, IRS + 2 + LOCAL_WIN, IRS + 1_000_000])
def test_rst_out_of_window_ignored_silently(seq):
    """RFC 5961 §3.2 / §3.10.7.4 first: an out-of-window RST is dropped without
    any reply (no ACK to a RST). (SEQ = RCV.NXT+RCV.WND itself is accepted for
    zero-length segments, as Linux's tcp_sequence does, so it is not used here.)"""
    conn = established()
    deliver(conn, seg(seq, 0, RST), 1.0)
    recv_nothing(conn, 1.0)
    assert conn.state is State.ESTABLISHED
    assert conn.events() == []


@pytest.mark.parametrize("seq", [IRS + 1, IRS + 500, IRS, IRS + 100_000])
def test_syn_in_established_gets_challenge_ack(seq):
    """RFC 5961 §4.2 (RFC 9293 §3.10.7.4 fourth): a SYN in a synchronized state,
    whatever its sequence number, is answered with a challenge ACK and
    dropped; the connection stays."""
    conn = established()
    deliver(conn, seg(seq, 0, SYN, mss=1000), 1.0)
    expect(conn, 1.0, out(ISS + 1, IRS + 1))
    assert conn.state is State.ESTABLISHED
    assert conn.events() == []


def test_ack_for_unsent_data_acked_and_dropped():
    """§3.10.7.4 fifth: "If the ACK acks something not yet sent (SEG.ACK >
    SND.NXT), then send an ACK, drop the segment, and return" - its text too."""
    conn = established()
    deliver(conn, seg(IRS + 1, ISS + 500, payload=b"abc"), 1.0)
    expect(conn, 1.0, out(ISS + 1, IRS + 1))
    assert conn.events() == []
    assert conn.read() == b""
    assert conn.counters["ack_unsent"] == 1


@pytest.mark.parametrize("flags", [0, PSH, FIN, FIN | PSH])
def test_segment_without_ack_dropped_and_counted(flags):
    """§3.10.7.4 fifth: "if the ACK bit is off, drop the segment and return" -
    silently, text and FIN ignored."""
    conn = established()
    deliver(conn, seg(IRS + 1, 0, flags, b"abc"), 1.0)
    recv_nothing(conn, 1.0)
    assert conn.counters["no_ack"] == 1
    assert conn.events() == []
    assert conn.read() == b""
    assert conn.state is State.ESTABLISHED
    assert timer(conn) is None


def test_time_wait_retransmitted_fin_acked_and_2msl_restarted():
    """§3.10.7.4 eighth, TIME-WAIT: "Remain in the TIME-WAIT state. Restart the
    2 MSL time-wait timeout" - and acknowledge the retransmitted FIN again."""
    conn = time_wait()
    assert timer(conn) == 60.0
    deliver(conn, seg(IRS + 1, ISS + 2, FIN | ACK), 10.0)
    expect(conn, 10.0, out(ISS + 2, IRS + 2, window=LOCAL_WIN - 1))
    assert conn.state is State.TIME_WAIT
    assert timer(conn) == 70.0
    conn.handle_timer(60.0)
    assert conn.state is State.TIME_WAIT
    fire(conn, 70.0)
    assert conn.state is State.CLOSED
    assert conn.events() == []


def test_time_wait_bogus_fin_does_not_restart_2msl():
    """§3.10.7.4 first: a FIN outside the sequence space (not the peer's FIN
    again) is unacceptable: ACK it and drop it; it must not prolong TIME-WAIT."""
    conn = time_wait()
    deliver(conn, seg(IRS + 50_000, ISS + 2, FIN | ACK), 10.0)
    expect(conn, 10.0, out(ISS + 2, IRS + 2, window=LOCAL_WIN - 1))
    assert timer(conn) == 60.0
    # In the window but not at RCV.NXT: it cannot be processed either.
    deliver(conn, seg(IRS + 5000, ISS + 2, FIN | ACK), 20.0)
    assert timer(conn) == 60.0
    assert conn.state is State.TIME_WAIT


def test_abort_sends_rst_at_snd_nxt_and_discards_queue():
    """§3.10.5 ABORT in ESTABLISHED: "Send a reset segment: <SEQ=SND.NXT>
    <CTL=RST>", flush queued SENDs and RECEIVEs, delete the TCB; nothing is sent
    afterwards, whatever arrives."""
    conn = established()
    conn.send(data(30_000))
    assert len(recv(conn, 0.0)) == 10  # cwnd: 10 segments, 20000 bytes queued
    deliver(conn, seg(IRS + 1, ISS + 1, payload=b"unread"), 0.05)
    conn.abort()
    assert conn.state is State.CLOSED
    assert conn.send_buffer_size == 0
    assert conn.read() == b""
    expect(conn, 0.1, out(ISS + 10_001, IRS + 7, RST | ACK, window=LOCAL_WIN - 6))
    assert conn.events() == [DATA, CLOSED_EV]
    assert timer(conn) is None
    deliver(conn, seg(IRS + 7, ISS + 1001), 0.2)
    recv_nothing(conn, 0.2)
    recv_nothing(conn, 100.0)


def test_data_after_close_answered_with_rst():
    """RFC 1122 §4.2.2.13: if new data is received after CLOSE is called, TCP
    SHOULD send a RST to show that data was lost."""
    conn = established()
    conn.close()
    expect(conn, 0.0, out(ISS + 1, IRS + 1, FIN | ACK))
    deliver(conn, seg(IRS + 1, ISS + 2), 0.1)
    assert conn.state is State.FIN_WAIT_2
    assert conn.events() == [SENT_ALL]
    deliver(conn, seg(IRS + 1, ISS + 2, ACK | PSH, b"late"), 0.2)
    assert conn.state is State.CLOSED
    expect(conn, 0.2, out(ISS + 2, IRS + 1, RST | ACK))
    assert conn.events() == [CLOSED_EV]
    assert conn.counters["data_after_close"] == 1


def test_close_with_unread_data_sends_rst():
    """RFC 1122 §4.2.2.13: CLOSE while received data is still pending SHOULD
    send a RST (instead of a FIN)."""
    conn = established()
    deliver(conn, seg(IRS + 1, ISS + 1, payload=b"unread"), 0.1)
    conn.close()
    assert conn.state is State.CLOSED
    expect(conn, 0.1, out(ISS + 1, IRS + 7, RST | ACK, window=LOCAL_WIN - 6))


def test_fin_wait_2_timeout_after_close():
    """After close() (not shutdown()) FIN-WAIT-2 does not wait forever for the
    peer's FIN: fin_wait_2_timeout (RFC 9293 §3.10.4 leaves this to the
    implementation; Linux tcp_fin_timeout)."""
    conn = established(BASE.replace(fin_wait_2_timeout=5.0))
    conn.close()
    recv(conn, 0.0)
    deliver(conn, seg(IRS + 1, ISS + 2), 1.0)
    assert conn.state is State.FIN_WAIT_2
    fire(conn, 6.0)
    assert conn.state is State.CLOSED
    recv_nothing(conn, 6.0)


# ==================================================================== keepalive


def test_keepalive_off_by_default():
    """RFC 9293 §3.8.4 / RFC 1122 §4.2.3.6: keep-alives MUST default to off."""
    conn = established()
    assert timer(conn) is None
    assert run_until(conn, 10 * 3600.0) == []
    recv_nothing(conn, 10 * 3600.0)
    assert conn.state is State.ESTABLISHED


KA = BASE.replace(keepalive=True, keepalive_idle=100.0, keepalive_interval=10.0, keepalive_count=3)


def test_keepalive_probe_after_idle_answered_keeps_connection():
    """RFC 1122 §4.2.3.6: after keepalive_idle without any segment from the peer,
    send <SEQ=SND.NXT-1> with no data (= SND.UNA-1 when idle); an answer keeps
    the connection and restarts the idle period."""
    conn = established(KA)
    assert timer(conn) == 100.0
    fire(conn, 100.0)
    probe = out(ISS, IRS + 1)
    expect(conn, 100.0, probe)
    deliver(conn, seg(IRS + 1, ISS + 1), 100.5)  # the peer's ACK
    recv_nothing(conn, 100.5)
    assert run_until(conn, 200.4) == []
    fire(conn, 200.5)
    expect(conn, 200.5, probe)
    assert conn.state is State.ESTABLISHED
    assert conn.stats.keepalives_sent == 2


def test_keepalive_unanswered_aborts_with_error_and_rst():
    """RFC 1122 §4.2.3.6 / RFC 9293 §3.8.4: keepalive_count unanswered probes,
    keepalive_interval apart, declare the peer dead: ConnectionError and RST."""
    conn = established(KA)
    sent = run_until(conn, 200.0)
    assert sent == [
        (100.0, out(ISS, IRS + 1)),
        (110.0, out(ISS, IRS + 1)),
        (120.0, out(ISS, IRS + 1)),
        (130.0, out(ISS + 1, IRS + 1, RST | ACK)),
    ]
    assert conn.state is State.CLOSED
    assert conn.events() == [events.ConnectionError("keepalive timeout"), CLOSED_EV]


def test_keepalive_idle_counts_from_last_segment_received():
    """RFC 1122 §4.2.3.6: probes only when no data or ACK was received for the
    idle interval."""
    conn = established(KA)
    deliver(conn, seg(IRS + 1, ISS + 1, payload=b"hi"), 50.0)
    fire(conn, 50.0 + BASE.delayed_ack)
    recv(conn, 50.04)
    assert run_until(conn, 149.9) == []
    sent = run_until(conn, 150.0)
    assert sent == [(150.0, out(ISS, IRS + 3, window=LOCAL_WIN - 2))]


def test_keepalive_probes_a_half_closed_connection_in_fin_wait_2():
    """After shutdown() the connection waits in FIN-WAIT-2 for the peer's data
    and FIN; if the peer is gone (its RST lost) nothing would ever arrive.
    Keep-alives probe there too, as Linux's do, and a dead peer ends it."""
    conn = fin_wait_2(KA)
    sent = run_until(conn, 200.0)
    assert [seg for _, seg in sent] == [out(ISS + 1, IRS + 1)] * 3 + [out(ISS + 2, IRS + 1, RST | ACK)]
    assert conn.state is State.CLOSED
    assert events.ConnectionError("keepalive timeout") in conn.events()


# ==================================================================== half-close


def test_half_close_keeps_receiving_in_fin_wait_2():
    """§3.10.4 / §3.10.7.4 seventh: after our FIN (shutdown) the receive side is
    open: data in FIN-WAIT-2 is delivered and ACKed; the peer's FIN gives EOF."""
    conn = fin_wait_2()
    deliver(conn, seg(IRS + 1, ISS + 2, ACK | PSH, b"hello"), 1.0)
    assert conn.events() == [DATA]
    assert conn.read() == b"hello"
    fire(conn, 1.0 + BASE.delayed_ack)
    expect(conn, 1.04, out(ISS + 2, IRS + 6, window=LOCAL_WIN - 5))
    deliver(conn, seg(IRS + 6, ISS + 2, FIN | ACK, b" world"), 2.0)
    expect(conn, 2.0, out(ISS + 2, IRS + 13, window=LOCAL_WIN - 12))
    assert conn.events() == [DATA, EOF_, CLOSED_EV]
    assert conn.read() == b" world"
    assert conn.at_eof
    assert conn.state is State.TIME_WAIT


def test_peer_fin_gives_eof_and_we_can_still_send_in_close_wait():
    """§3.10.7.4 eighth: FIN -> "signal the user 'connection closing'"
    (EofReceived); §3.10.2 SEND in CLOSE-WAIT is allowed."""
    conn = established()
    deliver(conn, seg(IRS + 1, ISS + 1, FIN | ACK, b"bye"), 1.0)
    expect(conn, 1.0, out(ISS + 1, IRS + 5, window=LOCAL_WIN - 4))
    assert conn.events() == [DATA, EOF_]
    assert conn.read() == b"bye"
    assert conn.at_eof
    conn.send(b"still here")
    expect(conn, 1.1, out(ISS + 1, IRS + 5, ACK | PSH, b"still here", window=LOCAL_WIN - 4))
    deliver(conn, seg(IRS + 5, ISS + 11), 1.2)
    assert conn.events() == [SENT_ALL]
    conn.shutdown()
    expect(conn, 1.3, out(ISS + 11, IRS + 5, FIN | ACK, window=LOCAL_WIN - 4))
    deliver(conn, seg(IRS + 5, ISS + 12), 1.4)
    assert conn.state is State.CLOSED


def test_fin_out_of_order_waits_for_the_hole():
    """§3.10.7.4 eighth: a FIN is processed only when every byte before it has
    arrived (RCV.NXT reaches it)."""
    conn = established()
    deliver(conn, seg(IRS + 4, ISS + 1, FIN | ACK, b"def"), 1.0)
    expect(conn, 1.0, out(ISS + 1, IRS + 1))
    assert conn.state is State.ESTABLISHED
    deliver(conn, seg(IRS + 1, ISS + 1, payload=b"abc"), 1.1)
    expect(conn, 1.1, out(ISS + 1, IRS + 8, window=LOCAL_WIN - 7))
    assert conn.state is State.CLOSE_WAIT
    assert conn.events() == [DATA, EOF_]
    assert conn.read() == b"abcdef"


# ============================================================ sequence wraparound


def test_sequence_numbers_wrap_at_2_32():
    """RFC 9293 §3.4: sequence numbers are modulo 2**32. ISS = 2**32 - 10: our
    100 bytes span the wrap, the peer's ACK of them is a small number."""
    iss = 2**32 - 10
    conn = established(iss=iss)
    payload = data(100)
    conn.send(payload)
    expect(conn, 0.0, out(iss + 1, IRS + 1, ACK | PSH, payload))
    assert recv(conn, 0.0) == []
    ack = (iss + 101) % 2**32
    assert ack == 91
    deliver(conn, seg(IRS + 1, ack), 0.1)
    assert conn.events() == [SENT_ALL]
    assert timer(conn) is None
    conn.shutdown()
    expect(conn, 0.2, Segment(LOCAL_PORT, REMOTE_PORT, 91, IRS + 1, FIN | ACK, LOCAL_WIN))


def test_receive_sequence_wraps_at_2_32():
    """RFC 9293 §3.4 on the receive side: the peer's ISS = 2**32 - 5; 100 bytes
    arrive across the wrap, are delivered intact and ACKed with a small
    ACK number; a later segment past the wrap continues the stream."""
    irs = 2**32 - 5
    conn = established(remote_seq=irs)
    payload = data(100)
    deliver(conn, seg(irs + 1, ISS + 1, payload=payload[:60]), 1.0)
    deliver(conn, seg(irs + 61, ISS + 1, payload=payload[60:]), 1.0)
    assert seg(irs + 61, ISS + 1).seq == 56
    fire(conn, 1.04)
    expect(conn, 1.04, Segment(LOCAL_PORT, REMOTE_PORT, ISS + 1, 96, ACK, LOCAL_WIN - 100))
    assert conn.read() == payload


TLP = BASE.replace(tail_loss_probe=True)


def test_tail_loss_probe_resends_the_last_segment_after_2_srtt():
    """RFC 8985 §7.2: with no ACK for PTO = 2*SRTT, send a probe; §7.3: with no
    new data, the last segment again, and the RTO restarts from the probe."""
    conn = handshake(TLP, rtt=0.1)  # SRTT 0.1 s, RTTVAR 0.05 s: RTO 0.3 s
    payload = data(2000)
    conn.send(payload)
    got = recv(conn, 1.0)
    assert [len(s.payload) for s in got] == [1000, 1000]
    assert timer(conn) == pytest.approx(1.2)  # PTO fires before the RTO (1.3)
    fire(conn, 1.2)
    expect(conn, 1.2, out(ISS + 1001, IRS + 1, ACK | PSH, payload=payload[1000:2000]))
    assert conn.stats.tail_loss_probes == 1
    assert timer(conn) == pytest.approx(1.5)  # only the RTO, restarted; one probe per flight
    # The probe's ACK acknowledges everything: no timer is left.
    deliver(conn, seg(IRS + 1, ISS + 2001), 1.25)
    recv_nothing(conn, 1.25)
    assert timer(conn) is None


def test_tail_loss_probe_waits_for_a_delayed_ack_of_a_lone_segment():
    """RFC 8985 §7.2: a single segment in flight may be ACKed late by a
    delayed-ACK receiver, so the PTO adds that delay."""
    conn = handshake(TLP, rtt=0.1)
    conn.send(data(500))
    recv(conn, 1.0)
    assert timer(conn) == pytest.approx(1.0 + 0.2 + TLP.delayed_ack)


def test_tail_loss_probe_off_leaves_the_rto():
    conn = handshake(BASE, rtt=0.1)
    conn.send(data(2000))
    recv(conn, 1.0)
    assert timer(conn) == pytest.approx(1.3)


def test_send_buffer_keeps_every_byte_right_across_partial_acks_and_appends():
    """The send buffer drops acknowledged bytes in bulk (an append after each
    front delete would move the whole buffer): whatever the interleaving of
    partial ACKs and new writes, each segment carries the right bytes, and a
    timeout resends from SND.UNA what was written there (RFC 6298 §5.4)."""
    conn = established(BASE.replace(recv_buffer=64_000))
    stream = bytes(range(256)) * 200  # 51,200 distinct-looking bytes
    written = 0
    acked = 0
    t = 0.0
    for step in range(40):
        chunk = stream[written : written + 700 + 97 * step % 900]
        if chunk:
            conn.send(chunk)
            written += len(chunk)
        t += 0.01
        for s in recv(conn, t):
            start = (s.seq - (ISS + 1)) & MASK
            assert s.payload == stream[start : start + len(s.payload)]
        # The peer acknowledges part of what is in flight: half, rounded.
        acked = min(conn.snd_max - (ISS + 1), acked + (conn.snd_max - (ISS + 1) - acked) // 2 + 1)
        deliver(conn, seg(IRS + 1, ISS + 1 + acked), t)
        assert conn.send_buffer_size == written - acked
    conn.handle_timer(t + 10)  # RTO: go back to SND.UNA
    first = recv(conn, t + 10)[0]
    assert first.seq == (ISS + 1 + acked) & MASK
    assert first.payload == stream[acked : acked + len(first.payload)]


def test_read_returns_bytes_in_order_whole_or_in_parts():
    """read() hands back the received stream, in order, as bytes; a partial
    read keeps the rest for the next one, and freed space reopens the window."""
    conn = established()
    deliver(conn, seg(IRS + 1, ISS + 1, ACK | PSH, b"hello "), 0.1)
    # Segment.payload is bytes (the compiled core checks it: no bytearray here).
    deliver(conn, seg(IRS + 7, ISS + 1, ACK | PSH, b"world"), 0.1)
    assert conn.readable == 11
    part = conn.read(3)
    assert part == b"hel" and type(part) is bytes
    assert conn.readable == 8
    rest = conn.read()
    assert rest == b"lo world" and type(rest) is bytes
    assert conn.readable == 0 and conn.read() == b""
