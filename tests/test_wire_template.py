"""rudp.core.wire.HeaderTemplate: stamped runs of full-sized segments are
byte for byte what `encode` makes of the same segments (issue 13, batch-level
send), and an endpoint's output is the same with templates on or off."""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rudp.core import events
from rudp.core.config import Config
from rudp.core.endpoint import Endpoint
from rudp.core.wire import ACK, HeaderTemplate, Segment, SegmentRun, decode, encode

U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFFFFFF)
TS = st.one_of(st.none(), st.tuples(U32, U32))


def encoded_one_by_one(tpl: HeaderTemplate, data: bytes, off: int, seq: int, count: int, mss: int,
                       ack: int, window: int, ts: tuple[int, int] | None) -> list[bytes]:
    """The same segments through the general encoder."""
    return [
        encode(Segment(tpl.src_port, tpl.dst_port, (seq + i * mss) & 0xFFFFFFFF, ack, ACK, window,
                       data[off + i * mss : off + (i + 1) * mss], ts=ts), tpl.checksum)
        for i in range(count)
    ]


@given(U16, U16, U32, U32, U16, TS, st.booleans(), st.integers(1, 1500), st.integers(1, 6),
       st.integers(0, 50), st.data())
@settings(max_examples=400, deadline=None)
@example(1, 2, 0xFFFFFFFF - 10, 0, 0, None, True, 7, 4, 0, None)  # wraps; odd size with checksum
@example(0, 0, 0, 0, 0, (0, 0), True, 1, 2, 0, None)  # all-zero fields: the checksum is never 0
def test_run_equals_encode(src: int, dst: int, seq: int, ack: int, window: int,
                           ts: tuple[int, int] | None, checksum: bool, mss: int, count: int,
                           off: int, data: Any) -> None:
    payload = (data.draw(st.binary(min_size=off + count * mss, max_size=off + count * mss + 30))
               if data is not None else bytes(off + count * mss))
    tpl = HeaderTemplate(src, dst, checksum)
    run = tpl.run(bytearray(payload), off, seq, count, mss, ack, window, ts)
    want = encoded_one_by_one(tpl, payload, off, seq, count, mss, ack, window, ts)
    assert run.count == count
    assert run.size == len(want[0])
    assert bytes(run.buf) == b"".join(want)
    assert run.datagrams() == want
    for seg in want:
        decode(seg)  # and each verifies, checksum or not


@given(U16, U16, U32, U32, st.integers(0, 0xFF), U16, st.binary(max_size=64), TS, U16)
@settings(max_examples=300)
def test_encode_one_pack_path_equals_the_general_layout(src: int, dst: int, seq: int, ack: int, flags: int,
                                                        window: int, payload: bytes,
                                                        ts: tuple[int, int] | None, urgent: int) -> None:
    """`encode` without checksum packs a segment with no options but
    timestamps in one call; with checksum it lays the header out in parts:
    the same bytes but for the checksum field."""
    seg = Segment(src, dst, seq, ack, flags, window, payload, ts=ts, urgent=urgent)
    fast = encode(seg, False)
    general = bytearray(encode(seg, True))
    general[16:18] = b"\0\0"
    assert fast == general


@pytest.mark.parametrize("field", ["seq", "ack", "window", "ts"])
def test_a_field_out_of_range_is_a_value_error(field: str) -> None:
    args: dict[str, Any] = {"seq": 1, "ack": 2, "window": 3, "ts": (4, 5)}
    args[field] = (1 << 32, 0) if field == "ts" else 1 << 32
    with pytest.raises(ValueError, match="out of range"):
        HeaderTemplate(1, 2, False).run(bytearray(100), 0, args["seq"], 2, 10, args["ack"],
                                        args["window"], args["ts"])


@pytest.mark.parametrize("off,count,mss", [(0, 0, 10), (0, 2, 0), (-1, 1, 10), (0, 11, 10), (95, 1, 10)])
def test_a_run_outside_the_data_is_a_value_error(off: int, count: int, mss: int) -> None:
    with pytest.raises(ValueError, match="do not fit"):
        HeaderTemplate(1, 2, False).run(bytearray(100), off, 0, count, mss, 0, 0, None)


def test_flags_must_fit() -> None:
    with pytest.raises(ValueError, match="flags"):
        HeaderTemplate(1, 2, False, flags=0x100)


def test_the_send_buffer_stays_resizable() -> None:
    """The run copies out of the send buffer and lets go of it."""
    data = bytearray(b"x" * 100)
    HeaderTemplate(1, 2, False).run(data, 0, 0, 3, 10, 0, 0, None)
    data += b"more"  # raises BufferError if a view were still exported
    del data[:50]


# --- whole endpoints: the same datagrams with templates on or off ---------

CLIENT, SERVER, PORT = ("10.0.0.1", 40000), ("10.0.0.2", 5000), 5000


def transfer(templates: bool, config: Config, size: int, drop_every: int) -> tuple[list[bytes], int]:
    """A bulk transfer between two endpoints back to back, echoed by the
    server, every ``drop_every``-th client datagram lost (retransmissions,
    and SACK blocks on the server's data segments, which take `encode`);
    returns every datagram sent (runs split) and the number of runs."""
    eps = (Endpoint(config, seed=1, templates=templates), Endpoint(config, seed=2, templates=templates))
    client, server = eps
    server.listen(PORT)
    now = 0.0
    client.connect(SERVER, PORT, now)
    data = bytes(range(256)) * (size // 256)
    queues: tuple[deque[bytes], deque[bytes]] = (deque(), deque())
    wire: list[bytes] = []
    runs = 0
    done = [False, False]
    sent = [0]

    def service(i: int) -> None:
        nonlocal runs
        ep = eps[i]
        for conn, ev in ep.poll_events():
            if isinstance(ev, events.Connected) and i == 0:
                conn.send(data)
                conn.shutdown()  # half-close: the echo still comes back
            elif isinstance(ev, events.DataReceived):
                echo = conn.read()
                if i == 1:
                    conn.send(echo)  # data both ways: the server's carries SACK blocks
            elif isinstance(ev, events.EofReceived):
                conn.close()
            elif isinstance(ev, events.Closed):
                done[i] = True
            elif isinstance(ev, (events.ConnectionError, events.ConnectionReset)):
                raise AssertionError(ev)
        for item, _ in ep.batches_to_send(now):
            if isinstance(item, SegmentRun):
                runs += 1
                datagrams = item.datagrams()
            else:
                datagrams = [item]
            for d in datagrams:
                wire.append(d)
                sent[0] += 1
                if i == 0 and sent[0] % drop_every == 0:
                    continue
                queues[i].append(d)

    service(0)
    service(1)
    for _ in range(200_000):  # bounded
        if all(done):
            break
        busy = False
        for j in (1, 0):
            q = queues[1 - j]
            if q:
                while q:
                    now += 1e-5
                    eps[j].datagram_received(q.popleft(), CLIENT if j == 1 else SERVER, now)
                service(j)
                busy = True
        if not busy:
            due = [t for t in (client.get_timer(), server.get_timer()) if t is not None]
            if not due:
                break
            now = max(now, min(due))
            for j in (0, 1):
                eps[j].handle_timer(now)
                service(j)
    assert all(done)
    return wire, runs


@pytest.mark.parametrize("config", [
    Config(),
    Config(checksum=True),
    Config(timestamps=False),
    Config(sack=False, checksum=True),
    Config(congestion_control="newreno", pacing=False),
], ids=["default", "checksum", "no-timestamps", "no-sack", "newreno"])
@pytest.mark.parametrize("drop_every", [10_000, 23])
def test_endpoint_output_is_the_same_with_templates_on_or_off(config: Config, drop_every: int) -> None:
    on, runs = transfer(True, config, 300_000, drop_every)
    off, no_runs = transfer(False, config, 300_000, drop_every)
    assert runs > 0 and no_runs == 0
    assert on == off


def test_a_connection_returns_a_stamped_run_as_segments() -> None:
    """Connection.segments_to_send is complete even when an endpoint gave
    its sender a template: the run comes back decoded, in its place."""
    eps = [Endpoint(Config(), seed=s, templates=t) for s, t in ((1, True), (2, True))]
    client, server = eps
    server.listen(PORT)
    conn = client.connect(SERVER, PORT, 0.0)
    for _ in range(5):  # the handshake
        for d, _ in client.datagrams_to_send(0.0):
            server.datagram_received(d, CLIENT, 0.0)
        for d, _ in server.datagrams_to_send(0.0):
            client.datagram_received(d, SERVER, 0.0)
    client.poll_events()
    conn.send(b"z" * 20_000)
    segs = conn.segments_to_send(0.0)
    assert conn.output.run is None
    assert len(segs) > 2  # the initial window's worth: a run and the segment after it
    assert all(s.payload == b"z" * len(s.payload) for s in segs)
    assert all(a.seq + len(a.payload) == b.seq for a, b in zip(segs, segs[1:]))
