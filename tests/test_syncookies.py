"""SYN cookies (RFC 4987 §3.6): stateless SYN,ACKs, validated ACKs, options
carried in the TSval, bounded age, rotating keys."""

from __future__ import annotations

import random

import pytest

from rudp.core.config import Config
from rudp.core.endpoint import Endpoint
from rudp.core.seqnum import MASK
from rudp.core.state import ESTABLISHED
from rudp.core.syncookies import (
    MAX_AGE, MSS_TABLE, SLOT, CookieJar, decode_ts_options, encode_ts_options,
)
from rudp.core.wire import ACK, RST, SYN, Segment, decode, encode

PEER = ("198.51.100.7", 5555)
PORT = 80
CPORT = 49_500
IRS = 700_000
FULL = Config(mss=1432, recv_buffer=1 << 20)  # window scale, SACK and timestamps on


def endpoint(config: Config = FULL, mode: str = "always") -> Endpoint:
    ep = Endpoint(config, seed=11)
    ep.listen(PORT, syn_cookies=mode)
    return ep


def deliver(ep: Endpoint, s: Segment, t: float) -> None:
    ep.datagram_received(encode(s, False), PEER, t)


def replies(ep: Endpoint, t: float) -> list[Segment]:
    return [decode(d) for d, _ in ep.datagrams_to_send(t)]


def syn(*, mss: int | None = 1400, wscale: int | None = 7, sack: bool = True,
        ts: tuple[int, int] | None = (77, 0)) -> Segment:
    return Segment(CPORT, PORT, IRS, 0, SYN, 65535, b"", mss, wscale, sack, (), ts)


def ack_for(synack: Segment, payload: bytes = b"", *, tsval: int = 90) -> Segment:
    ts = (tsval, synack.ts[0]) if synack.ts is not None else None
    return Segment(CPORT, PORT, IRS + 1, (synack.seq + 1) & MASK, ACK, 1000, payload,
                   None, None, False, (), ts)


def test_cookie_syn_ack_keeps_no_state_and_is_never_retransmitted() -> None:
    ep = endpoint()
    deliver(ep, syn(), 10.0)
    (synack,) = replies(ep, 10.0)
    assert synack.flags == SYN | ACK and synack.ack == IRS + 1
    assert not ep.connections and ep.listeners[PORT].half_open == 0
    assert ep.get_timer() is None  # nothing to retransmit: the peer's SYN will be
    for t in (11.0, 20.0, 70.0):
        ep.handle_timer(t)
        assert replies(ep, t) == []
    assert ep.listeners[PORT].counters["cookies_sent"] == 1


def test_valid_cookie_creates_the_connection_with_the_negotiated_options() -> None:
    """MSS (rounded down to the table), window scale and SACK-permitted come
    back from the cookie and the TSval it echoes; data on the ACK is kept."""
    ep = endpoint()
    deliver(ep, syn(mss=1400, wscale=7, sack=True), 10.0)
    (synack,) = replies(ep, 10.0)
    assert synack.mss == 1432 and synack.wscale == FULL.rcv_wscale and synack.sack_permitted
    deliver(ep, ack_for(synack, b"hello"), 10.05)
    conn = ep.connections[(PEER, PORT, CPORT)]
    assert conn.state is ESTABLISHED and conn.iss == synack.seq
    assert conn.peer_mss == 1400 and 1400 in MSS_TABLE
    assert (conn.ws_ok, conn.snd_wscale, conn.sack_ok, conn.ts_ok) == (True, 7, True, True)
    assert conn.snd_wnd == 1000 << 7  # the ACK's window, scaled
    assert conn.read() == b"hello"
    listener = ep.listeners[PORT]
    assert listener.counters["cookies_validated"] == 1 and list(listener.accept_queue) == [conn]


def test_without_timestamps_the_cookie_offers_no_window_scale_or_sack() -> None:
    """The TSval is where window scale and SACK-permitted would ride; without
    it the SYN,ACK offers neither, so both sides agree on none (as Linux)."""
    ep = endpoint()
    deliver(ep, syn(mss=1000, ts=None), 1.0)
    (synack,) = replies(ep, 1.0)
    assert synack.wscale is None and not synack.sack_permitted and synack.ts is None
    deliver(ep, ack_for(synack), 1.1)
    conn = ep.connections[(PEER, PORT, CPORT)]
    assert conn.state is ESTABLISHED and conn.peer_mss == 536  # 1000 rounds down to 536
    assert not (conn.ws_ok or conn.sack_ok or conn.ts_ok)


@pytest.mark.parametrize("change", ["cookie", "peer_isn", "port", "mss_index"])
def test_forged_or_mangled_cookie_is_rejected_with_a_rst(change: str) -> None:
    ep = endpoint()
    deliver(ep, syn(), 1.0)
    (synack,) = replies(ep, 1.0)
    bad = ack_for(synack)
    if change == "cookie":
        bad = bad._replace(ack=(bad.ack ^ 0x1) & MASK)
    elif change == "peer_isn":
        bad = bad._replace(seq=bad.seq + 1)
    elif change == "port":
        bad = bad._replace(src_port=CPORT + 1)
    else:
        bad = bad._replace(ack=(bad.ack ^ (1 << 24)) & MASK)
    deliver(ep, bad, 1.1)
    (rst,) = replies(ep, 1.1)
    assert rst.flags == RST and not ep.connections
    assert ep.listeners[PORT].counters["cookies_rejected"] == 1


@pytest.mark.parametrize("age_slots, valid", [(0, True), (MAX_AGE, True), (MAX_AGE + 1, False)])
def test_cookie_validates_within_a_bounded_age(age_slots: int, valid: bool) -> None:
    ep = endpoint()
    t0 = 5 * SLOT + 1.0
    deliver(ep, syn(), t0)
    (synack,) = replies(ep, t0)
    deliver(ep, ack_for(synack), t0 + age_slots * SLOT)
    assert ((PEER, PORT, CPORT) in ep.connections) is valid


def test_keys_rotate_per_slot_and_old_ones_are_forgotten() -> None:
    jar = CookieJar(random.Random(3))
    cookies = [jar.make(s * SLOT, PEER, PORT, CPORT, IRS, 1460) for s in range(6)]
    assert len(set(c & 0xFFFFFF for c in cookies)) == 6  # a new key (and counter) each slot
    assert len(jar._keys) <= MAX_AGE + 1
    assert jar.check(5 * SLOT, PEER, PORT, CPORT, IRS, cookies[5]) == 1460
    assert jar.check(5 * SLOT, PEER, PORT, CPORT, IRS, cookies[3]) == 1460
    assert jar.check(5 * SLOT, PEER, PORT, CPORT, IRS, cookies[2]) is None  # key rotated out


@pytest.mark.parametrize("wscale", [None, 0, 7, 14])
@pytest.mark.parametrize("sack", [False, True])
@pytest.mark.parametrize("tsval", [0, 31, 32, 123_456, MASK])
def test_ts_options_round_trip_and_never_run_ahead_of_the_clock(
    wscale: int | None, sack: bool, tsval: int
) -> None:
    ts = encode_ts_options(tsval, wscale, sack)
    assert decode_ts_options(ts) == (wscale, sack)
    assert 0 <= (tsval - ts) & MASK < 64  # at most 63 ms behind, never ahead


def test_cookie_connection_transfers_data_both_ways_over_a_lossy_link() -> None:
    """End to end through the simulator with syn_cookies="always": the
    connection a cookie creates is a full one."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from simapps import CLIENT, SERVER, Net, StreamApp, payload  # type: ignore[import-not-found]

    from rudp.tools.sim import LinkConfig

    net = Net(5)
    data, reply = payload(200_000, 1), payload(150_000, 2)
    net.host(CLIENT)
    server = net.host(SERVER, factory=lambda: StreamApp(reply, data, when_written="shutdown",
                                                        name="server"))
    net.link(CLIENT, SERVER, LinkConfig(delay=0.01, loss=0.03, bandwidth=20e6))
    server.endpoint.listen(PORT, syn_cookies="always")
    client = StreamApp(data, reply, when_written="shutdown", name="client")
    net.sim.call_at(0.0, lambda: net.hosts[CLIENT].connect(SERVER, PORT, client))
    net.sim.run(until=3600)
    (srv,) = server.apps
    assert client.sha_ok and srv.sha_ok and not client.errors and not srv.errors
    assert server.endpoint.listeners[PORT].counters["cookies_validated"] == 1


# --- the flood path answers exactly as the full path -------------------------

_LINUX_LAYOUT = "020405b4" "0402080a" "{ts}" "00000000" "010303{ws}"


def _plain_syn(rng: random.Random, linux: bool) -> tuple[bytes, int, int, int]:
    """A 40-byte SYN in Linux's layout or ours, random ports, ISN, MSS, scale, TSval."""
    mss, ws, tsval = rng.choice([0, 1, 88, 536, 1460, 65535, rng.randrange(65536)]), \
        rng.choice([0, 7, 14, 15, 255]), rng.getrandbits(32)
    seg = Segment(rng.randrange(1, 65536), PORT, rng.getrandbits(32), 0, SYN, rng.randrange(65536),
                  b"", mss, ws, True, (), (tsval, 0))
    data = encode(seg, False)
    if linux:
        data = data[:20] + bytes.fromhex(_LINUX_LAYOUT.format(ts=f"{tsval:08x}", ws=f"{ws:02x}"))
        data = data[:22] + mss.to_bytes(2, "big") + data[24:]
    assert decode(data) == seg
    return data, seg.src_port, seg.seq, mss


@pytest.mark.parametrize("mode", ["always", "auto"])
@pytest.mark.parametrize("linux", [True, False])
def test_flood_path_sends_and_counts_what_the_full_path_does(mode: str, linux: bool) -> None:
    """Endpoint._plain_syn_cookie answers a usual SYN from its bytes; twin endpoints
    (same seed, so the same cookie keys), one fed through it and one through the
    full decode-and-admit path, send the same bytes and count the same."""
    rng = random.Random(5)
    fast, full = endpoint(mode=mode), endpoint(mode=mode)
    fast_listener, full_listener = fast.listeners[PORT], full.listeners[PORT]
    if mode == "auto":  # a full half-open table: cookies from now on
        for ep in (fast, full):
            ep.listeners[PORT].max_half_open = 0
    for i in range(300):
        data, _, _, _ = _plain_syn(rng, linux)
        addr = (f"127.{rng.randrange(256)}.{rng.randrange(256)}.1", rng.randrange(1, 65536))
        now = 1000.0 + i * 0.7
        assert fast._plain_syn_cookie(data, addr, now)
        full._syn_to_listener(full_listener, decode(data), addr, len(data), now)
        assert fast.datagrams_to_send(now) == full.datagrams_to_send(now)
    assert fast_listener.counters == full_listener.counters
    assert fast_listener.counters["cookies_sent"] == 300


def test_flood_path_leaves_everything_else_to_the_full_path() -> None:
    """Not a plain SYN (other flags, a checksum, payload, other options), not a
    cookie (a half-open slot is free, or an existing connection), checksums or
    options off in the config: the full path decides."""
    rng = random.Random(6)
    data, src, _, _ = _plain_syn(rng, True)
    ep = endpoint()
    assert ep._plain_syn_cookie(data, PEER, 0.0)
    for other in (data[:13] + bytes([SYN | ACK]) + data[14:], data[:16] + b"\x12\x34" + data[18:],
                  data + b"x", data[:20] + bytes.fromhex("020405b401010101" + "00" * 12)):
        assert not ep._plain_syn_cookie(other, PEER, 0.0)
    assert not endpoint(mode="auto")._plain_syn_cookie(data, PEER, 0.0)  # a slot is free
    for cfg in (FULL.replace(timestamps=False), FULL.replace(sack=False), FULL.replace(checksum=True)):
        assert not endpoint(cfg)._plain_syn_cookie(data, PEER, 0.0)
    ep = endpoint(mode="auto")
    ep.datagram_received(data, PEER, 0.0)  # becomes a half-open connection
    ep.listeners[PORT].max_half_open = 1
    assert not ep._plain_syn_cookie(data, PEER, 0.0)  # its retransmitted SYN goes to it
