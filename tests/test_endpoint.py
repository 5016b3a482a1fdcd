"""Scripted tests for rudp.core.endpoint: demultiplexing, RSTs for segments that
belong to nothing, sanity checks with counters, listener bounds, TIME_WAIT.

Datagrams are built with rudp.core.wire.encode and the endpoint's output is decoded
with rudp.core.wire.decode, so every test also crosses the real codec. Sections are
RFC 9293 unless another RFC is named.
"""

from __future__ import annotations

import errno
import random

import pytest

from rudp.core import events
from rudp.core.config import Config
from rudp.core.connection import Connection, State
from rudp.core.endpoint import EPHEMERAL_PORTS, Endpoint
from rudp.core.seqnum import MASK
from rudp.core.wire import ACK, FIN, PSH, RST, SYN, Segment, decode, encode

PEER = ("198.51.100.7", 5555)  # the scripted peer's UDP address
OTHER = ("198.51.100.8", 5555)
PORT = 80  # our listening TCP port
CPORT = 49_500  # the peer's TCP port
ISS = 5_000  # every ISN our endpoint picks
IRS = 700_000  # the peer's ISN
CFG = Config(mss=1000, recv_buffer=10_000, timestamps=False, sack=False, window_scale=False)
WIN = 10_000


def endpoint(config: Config = CFG) -> Endpoint:
    return Endpoint(config, seed=7, isn=lambda now, addr, lport, rport: ISS)


def seg(seq, ack=0, flags=ACK, payload=b"", *, sport=CPORT, dport=PORT, window=64_000, **opts):
    """A segment from the peer (src ``sport``) to our port ``dport``."""
    return Segment(sport, dport, seq & MASK, ack & MASK, flags, window, payload, **opts)


def reply(seq, ack=0, flags=ACK, payload=b"", *, sport=PORT, dport=CPORT, window=WIN, **opts):
    """A segment we expect the endpoint to send."""
    return Segment(sport, dport, seq & MASK, ack & MASK, flags, window, payload, **opts)


def deliver(ep: Endpoint, s: Segment, t: float, addr=PEER) -> None:
    ep.datagram_received(encode(s, ep.config.checksum), addr, t)


def sent(ep: Endpoint, t: float) -> list[tuple[Segment, object]]:
    return [(decode(data), addr) for data, addr in ep.datagrams_to_send(t)]


def expect(ep: Endpoint, t: float, *expected: tuple[Segment, object]) -> None:
    assert sent(ep, t) == list(expected)


def accept_one(ep: Endpoint, t: float = 0.0, sport: int = CPORT, addr=PEER) -> Connection:
    """Passive open through ``ep``'s listener on PORT: SYN, SYN,ACK, ACK."""
    deliver(ep, seg(IRS, 0, SYN, sport=sport, mss=1000), t, addr)
    expect(ep, t, (reply(ISS, IRS + 1, SYN | ACK, dport=sport, mss=1000), addr))
    deliver(ep, seg(IRS + 1, ISS + 1, sport=sport), t, addr)
    expect(ep, t)
    conn = ep.connections[(addr, PORT, sport)]
    assert conn.state is State.ESTABLISHED
    return conn


# ============================================================== demultiplexing


def test_demux_by_address_and_both_ports():
    """The wire format (README): a connection is (peer UDP address, local port,
    remote port). Two connections from one peer address that differ only in the
    peer's port, and one from another address with the same ports, stay apart."""
    ep = endpoint()
    ep.listen(PORT)
    a = accept_one(ep, sport=CPORT)
    b = accept_one(ep, sport=CPORT + 1)
    c = accept_one(ep, sport=CPORT, addr=OTHER)
    assert len({id(a), id(b), id(c)}) == 3
    assert set(ep.connections) == {(PEER, PORT, CPORT), (PEER, PORT, CPORT + 1), (OTHER, PORT, CPORT)}
    ep.poll_events()
    deliver(ep, seg(IRS + 1, ISS + 1, ACK | PSH, b"for b", sport=CPORT + 1), 1.0)
    assert ep.poll_events() == [(b, events.DataReceived())]
    assert b.read() == b"for b"
    assert a.read() == b"" and c.read() == b""
    deliver(ep, seg(IRS + 1, ISS + 1, ACK | PSH, b"for c"), 1.0, OTHER)
    assert ep.poll_events() == [(c, events.DataReceived())]
    assert c.read() == b"for c"
    # Replies go to the right peer address and port.
    b.send(b"to b")
    expect(ep, 1.0, (reply(ISS + 1, IRS + 6, ACK | PSH, b"to b", dport=CPORT + 1, window=WIN - 5), PEER))


def test_active_open_through_endpoint():
    """§3.10.1 OPEN (active) via the endpoint: an ephemeral source port (RFC 6056)
    and the SYN routed to the peer's address; the SYN,ACK finds the connection."""
    ep = endpoint()
    conn = ep.connect(PEER, PORT, 0.0)
    lport = conn.local_port
    assert lport in EPHEMERAL_PORTS
    expect(ep, 0.0, (Segment(lport, PORT, ISS, 0, SYN, WIN, mss=1000), PEER))
    deliver(ep, seg(IRS, ISS + 1, SYN | ACK, sport=PORT, dport=lport, mss=1000), 0.1)
    assert conn.state is State.ESTABLISHED
    expect(ep, 0.1, (Segment(lport, PORT, ISS + 1, IRS + 1, ACK, WIN), PEER))
    assert ep.poll_events() == [(conn, events.Connected())]


def test_batch_is_routed_in_order_and_bad_datagrams_only_count():
    """``datagrams_received`` (the adapter's batches of 64) does what one
    ``datagram_received`` per datagram does: in-order delivery per connection
    across interleaved connections, and a malformed datagram or a segment for
    nothing in the middle of a batch is counted (or answered with RST) without
    stopping the rest."""
    ep = endpoint()
    ep.listen(PORT)
    a = accept_one(ep, sport=CPORT)
    b = accept_one(ep, sport=CPORT + 1)
    ep.poll_events()

    def data(sport: int, offset: int, payload: bytes) -> bytes:
        return encode(seg(IRS + 1 + offset, ISS + 1, ACK, payload, sport=sport), False)

    stray = encode(seg(1, 1, ACK, sport=CPORT + 9), False)  # belongs to nothing
    batch = [
        (data(CPORT, 0, b"a1"), PEER),
        (b"\x00" * 7, PEER),  # shorter than a header
        (data(CPORT + 1, 0, b"b1"), PEER),
        (data(CPORT, 2, b"a2"), PEER),
        (stray, PEER),
        (data(CPORT + 1, 2, b"b2"), PEER),
    ]
    received = ep.segments_received
    ep.datagrams_received(batch, 1.0)
    assert a.read() == b"a1a2" and b.read() == b"b1b2"
    assert ep.counters["malformed"] == 1
    assert ep.segments_received == received + 5
    assert [ev for _, ev in ep.poll_events()] == [events.DataReceived()] * 2
    out = sent(ep, 1.0)
    assert (reply(1, 0, RST, dport=CPORT + 9, window=0), PEER) in out


# ============================================================== RSTs for nothing


@pytest.mark.parametrize("payload", [b"", b"hello"])
def test_syn_to_unknown_port_gets_rst_ack(payload):
    """§3.10.7.1 CLOSED: "If the ACK bit is off, sequence number zero is used,
    <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>" (a SYN counts one, its text too)."""
    ep = endpoint()
    ep.listen(PORT)
    deliver(ep, seg(IRS, 0, SYN, payload, dport=81, mss=1000), 0.0)
    expect(ep, 0.0, (reply(0, IRS + 1 + len(payload), RST | ACK, sport=81, window=0), PEER))
    assert ep.counters["rst_sent"] == 1
    assert ep.connections == {}


def test_ack_to_no_connection_gets_rst_at_its_ack():
    """§3.10.7.1 CLOSED: "If the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>"."""
    ep = endpoint()
    ep.listen(PORT)
    deliver(ep, seg(IRS + 1, 123_456, ACK | PSH, b"data"), 0.0)
    expect(ep, 0.0, (reply(123_456, 0, RST, window=0), PEER))
    deliver(ep, seg(IRS + 1, 2**32 - 1, FIN | ACK), 0.0)
    expect(ep, 0.0, (reply(2**32 - 1, 0, RST, window=0), PEER))
    assert ep.counters["rst_sent"] == 2


@pytest.mark.parametrize("flags", [RST, RST | ACK])
def test_rst_to_nothing_is_not_answered(flags):
    """§3.10.7.1 CLOSED: "An incoming segment containing a RST is discarded"."""
    ep = endpoint()
    ep.listen(PORT)
    deliver(ep, seg(IRS, 77, flags), 0.0)
    deliver(ep, seg(IRS, 77, flags, dport=81), 0.0)
    expect(ep, 0.0)
    assert ep.counters["rst_ignored"] == 2
    assert ep.counters["rst_sent"] == 0


# ============================================================== sanity checks


INVALID = [
    (SYN | FIN, b"", "invalid_syn_fin"),
    (SYN | RST, b"", "invalid_syn_rst"),
    (SYN | FIN | ACK, b"", "invalid_syn_fin"),
    (0, b"", "invalid_no_flags"),
    (0, b"data", "invalid_no_flags"),
    (FIN, b"", "invalid_fin_without_ack"),
    (FIN | PSH, b"x", "invalid_fin_without_ack"),
    (PSH, b"", "invalid_no_ack"),
    (PSH, b"data", "invalid_no_ack"),
]


@pytest.mark.parametrize("flags, payload, counter", INVALID)
@pytest.mark.parametrize("target", ["listener", "connection", "nothing"])
def test_invalid_flag_combinations_dropped_and_counted(flags, payload, counter, target):
    """SYN+FIN and SYN+RST mean nothing in RFC 9293; a segment with none of SYN,
    RST, ACK is dropped (§3.10.7.4 fifth: "if the ACK bit is off drop the
    segment"). Such segments are counted and never answered - not even with a
    RST - whatever they are addressed to."""
    ep = endpoint()
    ep.listen(PORT)
    conn = accept_one(ep)
    ep.poll_events()
    dport = {"listener": PORT, "connection": PORT, "nothing": 81}[target]
    sport = {"listener": CPORT + 1, "connection": CPORT, "nothing": CPORT}[target]
    deliver(ep, seg(IRS + 1, ISS + 1, flags, payload, sport=sport, dport=dport), 1.0)
    expect(ep, 1.0)
    assert ep.counters[counter] == 1
    assert ep.counters["rst_sent"] == 0
    assert len(ep.connections) == 1
    assert conn.state is State.ESTABLISHED
    assert conn.read() == b""
    assert ep.poll_events() == []


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00" * 19, encode(Segment(CPORT, PORT, 1, 0, SYN, 100), False)[:12] + b"\x40" + b"\x00" * 7,
     encode(Segment(CPORT, PORT, 1, 0, SYN, 100), False)[:12] + b"\xf0\x02" + b"\x00" * 6],
    ids=["empty", "short", "offset-below-5", "offset-beyond-end"],
)
def test_malformed_datagrams_counted(data):
    """Bytes that are not a segment (RFC 9293 §3.1 header rules) are counted as
    malformed and dropped without a reply."""
    ep = endpoint()
    ep.listen(PORT)
    ep.datagram_received(data, PEER, 0.0)
    expect(ep, 0.0)
    assert ep.counters["malformed"] == 1
    assert ep.connections == {}


def test_bad_checksum_counted():
    """The wire format (README): the RFC 1071 checksum is verified; a corrupted
    segment is counted (bad_checksum) and dropped, not answered."""
    ep = endpoint()
    ep.listen(PORT)
    raw = bytearray(encode(seg(IRS, 0, SYN, mss=1000), True))
    raw[5] ^= 0x40  # flip a bit of the sequence number
    ep.datagram_received(bytes(raw), PEER, 0.0)
    expect(ep, 0.0)
    assert ep.counters["bad_checksum"] == 1
    assert ep.counters["malformed"] == 0
    assert ep.connections == {}


# ============================================================ listener bounds


def test_listener_backlog_bound():
    """Accept queue bound (RFC 9293 §3.10.1 leaves queue limits local; Linux
    somaxconn): while `backlog` established connections wait for accept(), new
    SYNs are dropped without reply and counted; accept() makes room."""
    ep = endpoint()
    listener = ep.listen(PORT, backlog=1)
    first = accept_one(ep, sport=CPORT)
    assert list(listener.accept_queue) == [first]
    deliver(ep, seg(IRS, 0, SYN, sport=CPORT + 1, mss=1000), 1.0)
    expect(ep, 1.0)
    assert listener.counters["syn_dropped_backlog"] == 1
    assert (PEER, PORT, CPORT + 1) not in ep.connections
    assert listener.accept() is first
    second = accept_one(ep, 2.0, sport=CPORT + 1)
    assert listener.accept() is second
    assert ep.counters["accepted"] == 2


def test_listener_half_open_bound_evicts_the_oldest_without_cookies():
    """SYN-flood defence with cookies off (RFC 4987 §3.4): at most
    max_half_open connections in SYN-RECEIVED; a new SYN evicts the oldest
    half-open entry (its peer gets a RST) instead of being refused, so a
    flood cannot lock legitimate clients out for the whole SYN,ACK schedule."""
    ep = endpoint()
    listener = ep.listen(PORT, max_half_open=2, syn_cookies="never")
    for i in range(2):
        deliver(ep, seg(IRS, 0, SYN, sport=CPORT + i, mss=1000), 0.0)
    assert len(sent(ep, 0.0)) == 2
    assert listener.half_open == 2
    deliver(ep, seg(IRS, 0, SYN, sport=CPORT + 2, mss=1000), 0.0)
    replies = [decode(d) for d, _ in ep.datagrams_to_send(0.0)]
    assert sorted((s.dst_port, s.flags) for s in replies) == [
        (CPORT, RST | ACK), (CPORT + 2, SYN | ACK)]
    assert listener.counters["half_open_evicted"] == 1
    assert listener.half_open == 2
    assert set(ep.connections) == {(PEER, PORT, CPORT + 1), (PEER, PORT, CPORT + 2)}
    deliver(ep, seg(IRS + 1, ISS + 1, sport=CPORT + 1), 0.1)
    assert listener.half_open == 1 and len(listener.accept_queue) == 1


def test_listener_answers_with_cookies_once_half_open_is_full():
    """With the default syn_cookies="auto", a SYN that finds the half-open
    queue full gets a SYN cookie (RFC 4987 §3.6): a SYN,ACK, and no state."""
    ep = endpoint()
    listener = ep.listen(PORT, max_half_open=2)
    for i in range(2):
        deliver(ep, seg(IRS, 0, SYN, sport=CPORT + i, mss=1000), 0.0)
    assert len(sent(ep, 0.0)) == 2
    deliver(ep, seg(IRS, 0, SYN, sport=CPORT + 2, mss=1000), 0.0)
    (reply,) = [decode(d) for d, _ in ep.datagrams_to_send(0.0)]
    assert reply.flags == SYN | ACK and reply.dst_port == CPORT + 2
    assert listener.counters["cookies_sent"] == 1
    assert len(ep.connections) == 2 and listener.half_open == 2


def test_half_open_slot_freed_when_syn_ack_times_out():
    """A half-open connection whose SYN,ACK retransmissions run out is removed
    from the table and gives its slot back, without a RST."""
    ep = endpoint(CFG.replace(syn_retries=1))
    listener = ep.listen(PORT)
    deliver(ep, seg(IRS, 0, SYN, mss=1000), 0.0)
    synack = (reply(ISS, IRS + 1, SYN | ACK, mss=1000), PEER)
    expect(ep, 0.0, synack)
    assert ep.get_timer() == 1.0
    ep.handle_timer(1.0)
    expect(ep, 1.0, synack)
    assert ep.get_timer() == 3.0
    ep.handle_timer(3.0)
    expect(ep, 3.0)
    assert listener.half_open == 0
    assert ep.connections == {}
    assert ep.get_timer() is None


# ================================================================== TIME_WAIT


def client_in_time_wait(ep: Endpoint, local_port: int | None = None) -> Connection:
    """Active open and active close through ``ep`` against the scripted server on
    PEER:PORT, ending in TIME_WAIT at t=1."""
    conn = ep.connect(PEER, PORT, 0.0, local_port=local_port)
    lp = conn.local_port
    sent(ep, 0.0)
    deliver(ep, seg(IRS, ISS + 1, SYN | ACK, sport=PORT, dport=lp, mss=1000), 0.0)
    sent(ep, 0.0)
    conn.close()
    expect(ep, 0.5, (Segment(lp, PORT, ISS + 1, IRS + 1, FIN | ACK, WIN), PEER))
    deliver(ep, seg(IRS + 1, ISS + 2, FIN | ACK, sport=PORT, dport=lp), 1.0)
    expect(ep, 1.0, (Segment(lp, PORT, ISS + 2, IRS + 2, ACK, WIN - 1), PEER))
    assert conn.state is State.TIME_WAIT
    return conn


def test_time_wait_blocks_reuse_of_exact_four_tuple():
    """RFC 9293 §3.6.1 / RFC 1122 §4.2.2.13: a 4-tuple in TIME-WAIT cannot be
    reopened by an active open: an explicit local port fails with EADDRINUSE;
    other local ports, and other peers, are fine."""
    ep = endpoint()
    conn = client_in_time_wait(ep, local_port=50_000)
    assert ep.time_wait_count == 1
    with pytest.raises(OSError) as info:
        ep.connect(PEER, PORT, 2.0, local_port=50_000)
    assert info.value.errno == errno.EADDRINUSE
    assert ep.connections[(PEER, 50_000, PORT)] is conn
    ep.connect(PEER, PORT, 2.0, local_port=50_001)
    ep.connect(OTHER, PORT, 2.0, local_port=50_000)
    ep.connect(PEER, PORT + 1, 2.0, local_port=50_000)


class _FixedRandom(random.Random):
    """An RNG whose randrange always picks ``index``: makes the port choice land
    on a given port first."""

    def __init__(self, index: int) -> None:
        super().__init__(0)
        self.index = index

    def randrange(self, *args, **kwargs) -> int:  # type: ignore[override]
        return self.index


def test_ephemeral_port_choice_avoids_time_wait():
    """RFC 6056 §3.3.1 (simple port randomization): a port whose 4-tuple is
    still in TIME-WAIT counts as in use; the search goes on to the next one."""
    ep = endpoint()
    client_in_time_wait(ep, local_port=50_000)
    ep._rng = _FixedRandom(50_000 - EPHEMERAL_PORTS.start)
    conn = ep.connect(PEER, PORT, 2.0)
    assert conn.local_port == 50_001
    # To another peer that very port is free.
    assert ep.connect(OTHER, PORT, 2.0).local_port == 50_000


def test_time_wait_entry_removed_after_2msl():
    """§3.10.8: when the time-wait timeout expires the TCB is deleted: the
    4-tuple leaves the table and may be used again."""
    ep = endpoint()
    conn = client_in_time_wait(ep, local_port=50_000)
    assert ep.get_timer() == 1.0 + 2 * CFG.msl
    ep.handle_timer(61.0)
    expect(ep, 61.0)
    assert conn.state is State.CLOSED
    assert ep.connections == {}
    ep.connect(PEER, PORT, 62.0, local_port=50_000)


def test_time_wait_table_is_bounded_the_oldest_gives_way():
    """Past ``max_time_wait`` connections in TIME_WAIT the oldest ends early
    (as Linux past tcp_max_tw_buckets), silently and counted: memory stays
    bounded however fast connections close. The newest keep their 2*MSL."""
    ep = Endpoint(CFG, seed=7, isn=lambda now, addr, lport, rport: ISS, max_time_wait=2)
    conns = [client_in_time_wait(ep, local_port=50_000 + i) for i in range(3)]
    assert ep.counters["time_wait_evicted"] == 1
    assert ep.time_wait_count == 2
    assert [c.state for c in conns] == [State.CLOSED, State.TIME_WAIT, State.TIME_WAIT]
    # its user heard Closed on entering TIME_WAIT, and not again
    assert [type(ev) for ev in conns[0].events()].count(events.Closed) == 1
    expect(ep, 1.0)  # nothing sent for it
    assert (PEER, 50_000, PORT) not in ep.connections
    assert ep.connections[(PEER, 50_002, PORT)] is conns[2]
    ep.connect(PEER, PORT, 2.0, local_port=50_000)  # its 4-tuple is free again
    ep.handle_timer(61.0)
    assert ep.time_wait_count == 0 and ep.counters["time_wait_evicted"] == 1
    with pytest.raises(ValueError):
        Endpoint(CFG, seed=7, max_time_wait=0)


def server_closes_first(ep: Endpoint, *, fin_acked: bool = True) -> Connection:
    """The server side closes first and the peer's FIN arrives at t=1, with
    RCV.NXT = IRS+2 after it: TIME_WAIT if that FIN acknowledges ours, CLOSING
    if the two crossed (simultaneous close)."""
    conn = accept_one(ep)
    conn.close()
    expect(ep, 0.5, (reply(ISS + 1, IRS + 1, FIN | ACK), PEER))
    deliver(ep, seg(IRS + 1, ISS + 1 + fin_acked, FIN | ACK), 1.0)
    expect(ep, 1.0, (reply(ISS + 2, IRS + 2, window=WIN - 1), PEER))
    assert conn.state is (State.TIME_WAIT if fin_acked else State.CLOSING)
    return conn


def server_in_time_wait(ep: Endpoint) -> Connection:
    return server_closes_first(ep)


def test_new_syn_with_higher_seq_reopens_time_wait():
    """RFC 9293 §3.6.1 / RFC 1122 §4.2.2.13: a SYN for a 4-tuple in TIME-WAIT may
    start a new incarnation if its sequence number is above the largest one of
    the old connection; the old TCB goes, a listener takes the SYN."""
    ep = endpoint()
    ep.listen(PORT)
    old = server_in_time_wait(ep)
    new_irs = IRS + 100_000
    deliver(ep, seg(new_irs, 0, SYN, mss=1000), 2.0)
    expect(ep, 2.0, (reply(ISS, new_irs + 1, SYN | ACK, mss=1000), PEER))
    assert ep.counters["time_wait_reopened"] == 1
    new = ep.connections[(PEER, PORT, CPORT)]
    assert new is not old
    assert new.state is State.SYN_RCVD
    deliver(ep, seg(new_irs + 1, ISS + 1), 2.1)
    assert new.state is State.ESTABLISHED


@pytest.mark.parametrize("syn_seq", [IRS, IRS + 1, IRS + 2 - 2**31 + 1])
def test_old_syn_does_not_reopen_time_wait(syn_seq):
    """RFC 9293 §3.6.1: a SYN not above the old sequence space stays with the
    TIME-WAIT connection (RFC 5961 §4.2: a challenge ACK), no new incarnation."""
    ep = endpoint()
    ep.listen(PORT)
    old = server_in_time_wait(ep)
    deliver(ep, seg(syn_seq, 0, SYN, mss=1000), 2.0)
    expect(ep, 2.0, (reply(ISS + 2, IRS + 2, window=WIN - 1), PEER))
    assert ep.counters["time_wait_reopened"] == 0
    assert ep.connections[(PEER, PORT, CPORT)] is old
    assert old.state is State.TIME_WAIT


# ======================================================== table housekeeping


def test_closed_connections_removed_from_table():
    """A connection that reaches CLOSED (here LAST-ACK -> CLOSED, and a reset)
    leaves the table; later segments for it get the CLOSED-state RST."""
    ep = endpoint()
    ep.listen(PORT)
    conn = accept_one(ep)
    deliver(ep, seg(IRS + 1, ISS + 1, FIN | ACK), 1.0)
    expect(ep, 1.0, (reply(ISS + 1, IRS + 2, window=WIN - 1), PEER))
    conn.close()
    expect(ep, 1.1, (reply(ISS + 1, IRS + 2, FIN | ACK, window=WIN - 1), PEER))
    deliver(ep, seg(IRS + 2, ISS + 2), 1.2)
    assert conn.state is State.CLOSED
    expect(ep, 1.2)
    assert ep.connections == {}
    assert ep.get_timer() is None
    deliver(ep, seg(IRS + 2, ISS + 2), 1.3)
    expect(ep, 1.3, (reply(ISS + 2, 0, RST, window=0), PEER))
    # A reset connection goes too.
    other = accept_one(ep, 2.0, sport=CPORT + 1)
    deliver(ep, seg(IRS + 1, 0, RST, sport=CPORT + 1), 2.1)
    assert other.state is State.CLOSED
    expect(ep, 2.1)
    assert ep.connections == {}


def test_held_output_leaves_only_with_a_reply_or_on_release():
    """hold_output: a FIN's ACK held for a reply stays out of the sends that
    other connections' writes make; the held connection's own write carries it
    (RFC 9293 §3.8.6.3, an ACK may be delayed), and release_held lets an ACK
    nobody replied to go in the next send. A closed connection's hold ends."""
    ep = endpoint()
    ep.listen(PORT)
    a = accept_one(ep, sport=CPORT)
    b = accept_one(ep, sport=CPORT + 1)
    ep.poll_events()
    deliver(ep, seg(IRS + 1, ISS + 1, FIN | ACK, sport=CPORT), 1.0)
    deliver(ep, seg(IRS + 1, ISS + 1, FIN | ACK, sport=CPORT + 1), 1.0)
    assert a.ack_may_wait and b.ack_may_wait
    assert ep.poll_events() == [(a, events.EofReceived()), (b, events.EofReceived())]
    ep.hold_output(a)
    ep.hold_output(b)
    assert not ep.has_work
    expect(ep, 1.0)  # nothing leaves for either
    a.close()  # a's reply: its FIN carries the held ACK
    expect(ep, 1.1, (reply(ISS + 1, IRS + 2, FIN | ACK, window=WIN - 1), PEER))
    expect(ep, 1.1)  # b is still held
    ep.release_held()
    expect(ep, 1.2, (reply(ISS + 1, IRS + 2, dport=CPORT + 1, window=WIN - 1), PEER))
    expect(ep, 1.2)  # released once
    # A held connection that ends leaves nothing to release.
    c = accept_one(ep, 2.0, sport=CPORT + 2)
    deliver(ep, seg(IRS + 1, ISS + 1, FIN | ACK, sport=CPORT + 2), 2.0)
    ep.hold_output(c)
    c.abort()
    expect(ep, 2.1, (reply(ISS + 1, IRS + 2, RST | ACK, dport=CPORT + 2, window=WIN - 1), PEER))
    assert c.state is State.CLOSED and (PEER, PORT, CPORT + 2) not in ep.connections
    ep.release_held()
    expect(ep, 2.2)


def test_close_listener_resets_half_open_connections():
    """Closing a listener aborts its half-open and not-yet-accepted connections:
    §3.10.5 ABORT in SYN-RECEIVED/ESTABLISHED sends <SEQ=SND.NXT><CTL=RST>;
    established connections already accepted are not touched; new SYNs for the
    port are refused (§3.10.7.1)."""
    ep = endpoint()
    listener = ep.listen(PORT)
    kept = accept_one(ep, sport=CPORT)
    assert listener.accept() is kept
    unaccepted = accept_one(ep, sport=CPORT + 1)
    deliver(ep, seg(IRS, 0, SYN, sport=CPORT + 2, mss=1000), 1.0)
    expect(ep, 1.0, (reply(ISS, IRS + 1, SYN | ACK, dport=CPORT + 2, mss=1000), PEER))
    ep.close_listener(listener)
    out = sent(ep, 1.1)
    assert sorted(out, key=lambda x: x[0].dst_port) == [
        (reply(ISS + 1, IRS + 1, RST | ACK, dport=CPORT + 1), PEER),
        (reply(ISS + 1, IRS + 1, RST | ACK, dport=CPORT + 2), PEER),
    ]
    assert unaccepted.state is State.CLOSED
    assert set(ep.connections) == {(PEER, PORT, CPORT)}
    assert kept.state is State.ESTABLISHED
    assert listener.half_open == 0
    deliver(ep, seg(IRS, 0, SYN, sport=CPORT + 3, mss=1000), 1.2)
    expect(ep, 1.2, (reply(0, IRS + 1, RST | ACK, dport=CPORT + 3, window=0), PEER))


# ============================================== ICMP port unreachable, linger


def test_unreachable_refuses_handshake_and_resets_established():
    """RFC 1122 §4.2.3.9: port unreachable is a hard error, the connection SHOULD
    be aborted. A connect in SYN-SENT and an established connection to that
    address end, neither cleanly (§3.10.5 ABORT: RST only where synchronized);
    a connection to another address is not touched. One report, one count."""
    ep = endpoint()
    ep.listen(PORT)
    established = accept_one(ep)
    elsewhere = accept_one(ep, addr=OTHER)
    connecting = ep.connect(PEER, PORT, 1.0)
    sent(ep, 1.0)
    ep.poll_events()
    assert ep.unreachable(PEER) == [(established, False), (connecting, False)]
    assert ep.counters["icmp_refused"] == 1
    assert established.state is State.CLOSED and connecting.state is State.CLOSED
    assert elsewhere.state is State.ESTABLISHED
    assert ep.poll_events() == [(established, events.Closed()), (connecting, events.Closed())]
    expect(ep, 1.1, (reply(ISS + 1, IRS + 1, RST | ACK), PEER))
    assert list(ep.connections.values()) == [elsewhere]
    # A second report finds nothing left to end.
    assert ep.unreachable(PEER) == []
    assert ep.counters["icmp_refused"] == 2


def last_ack(ep: Endpoint, data: bytes = b"") -> Connection:
    """Peer closes first, we send ``data`` and close: LAST-ACK at t=1.1."""
    conn = accept_one(ep)
    deliver(ep, seg(IRS + 1, ISS + 1, FIN | ACK), 1.0)
    expect(ep, 1.0, (reply(ISS + 1, IRS + 2, window=WIN - 1), PEER))
    if data:
        conn.send(data)
    conn.close()
    sent(ep, 1.1)
    assert conn.state is State.LAST_ACK
    return conn


def fin_wait_1(ep: Endpoint, *, close: bool = True) -> Connection:
    """We close (or only shut down sending) first and every byte is
    acknowledged; the peer has not closed."""
    conn = accept_one(ep)
    conn.send(b"data")
    sent(ep, 0.1)
    deliver(ep, seg(IRS + 1, ISS + 5), 0.2)
    if close:
        conn.close()
    else:
        conn.shutdown()
    sent(ep, 0.5)
    assert conn.state is State.FIN_WAIT_1 and conn.send_buffer_size == 0
    return conn


@pytest.mark.parametrize(
    "make, clean",
    [
        (last_ack, True),
        (lambda ep: server_closes_first(ep, fin_acked=False), True),
        (lambda ep: last_ack(ep, b"unacknowledged"), False),
        (fin_wait_1, True),
        (lambda ep: fin_wait_1(ep, close=False), False),
    ],
    ids=["last_ack", "closing", "last_ack_data_unacked", "fin_wait_1_closed",
         "fin_wait_1_half_closed"],
)
def test_unreachable_is_clean_only_when_the_user_lost_nothing(make, clean):
    """Clean means the user lost nothing: all our data is acknowledged, and
    either the peer's FIN arrived or the user closed (and reads no more).
    Data still unacknowledged is lost; after a half-close (shutdown) the
    user still expects the peer's data, which may be lost too."""
    ep = endpoint()
    ep.listen(PORT)
    conn = make(ep)
    assert ep.unreachable(PEER) == [(conn, clean)]
    assert conn.state is State.CLOSED
    sent(ep, 2.0)
    assert ep.connections == {}


def test_unreachable_leaves_time_wait_alone():
    """TIME-WAIT needs nothing more from the peer: it stays (as in Linux), and
    keeps its 4-tuple until 2*MSL."""
    ep = endpoint()
    conn = client_in_time_wait(ep)
    assert ep.unreachable(PEER) == []
    assert conn.state is State.TIME_WAIT
    assert ep.counters["icmp_refused"] == 1


def test_linger_deadline_none_while_a_connection_needs_more_than_time_wait():
    """The socket may close once nothing but TIME-WAIT is left: not while a
    connection still has a handshake, data or a FIN to finish."""
    ep = endpoint()
    assert ep.linger_deadline(0.0, peers_hear_icmp=False) == 0.0  # nothing at all
    client_in_time_wait(ep, local_port=50_000)
    busy = ep.connect(PEER, PORT, 2.0, local_port=50_001)
    assert ep.linger_deadline(2.0, peers_hear_icmp=False) is None
    assert ep.linger_deadline(2.0, peers_hear_icmp=True) is None
    busy.abort()
    sent(ep, 2.0)
    assert ep.linger_deadline(2.0, peers_hear_icmp=True) == 2.0


@pytest.mark.parametrize(
    "rtos, linger",
    [((0.2,), 1.0), ((0.5,), 1.5), ((25.0,), 2 * CFG.msl), ((0.2, 0.6), 1.8)],
    ids=["floor_1s", "3_rto", "capped_at_2msl", "largest_rto"],
)
def test_time_wait_linger_is_a_few_rtos(rtos, linger):
    """A client's private socket, whose server does not hear ICMP, stays to ACK
    a FIN retransmitted because our last ACK was lost: max(1 s, 3 * RTO) of
    the slowest connection, at most the 2*MSL of TIME-WAIT. Peers that hear
    ICMP (a server's clients) need no linger: a FIN they resend to the closed
    port ends their LAST-ACK cleanly (``Endpoint.unreachable``)."""
    ep = endpoint()
    for i, rto in enumerate(rtos):
        client_in_time_wait(ep, local_port=50_000 + i).rtt.rto = rto
    assert ep.linger_deadline(2.0, peers_hear_icmp=False) == pytest.approx(2.0 + linger)
    assert ep.linger_deadline(2.0, peers_hear_icmp=True) == 2.0
