"""Batch-level receive: UDP GRO super-datagrams split into per-segment views
(rudp.aio.udpio), and runs of segments for one connection taken as one step
by the engine (Endpoint.datagrams_received), which must end exactly where
taking them one at a time ends."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
from typing import Any

import pytest

from rudp.aio import udpio
from rudp.core import events
from rudp.core.config import Config
from rudp.core.endpoint import Endpoint
from rudp.core.wire import SegmentRun, decode, encode, segment_of

from .conftest import run_on

CLIENT = ("10.0.0.1", 5000)
CLIENT2 = ("10.0.0.3", 5001)
SERVER = ("10.0.0.2", 6000)
PORT = 80
T = 1.0  # every step of these exchanges happens at this virtual time
SEG = Config().mss - 12  # payload of a full segment: MSS less the timestamp option


class World:
    """A server endpoint and clients, wired back to back by hand."""

    def __init__(self, clients: int = 1) -> None:
        self.server = Endpoint(Config(), seed=2)
        self.server.listen(PORT)
        self.clients = [Endpoint(Config(), seed=10 + i) for i in range(clients)]
        self.addrs = [CLIENT, CLIENT2][:clients]
        self.conns = [ep.connect(SERVER, PORT, 0.0) for ep in self.clients]
        self.accepted: list[Any] = []
        self.events: list[tuple[int, str]] = []
        for _ in range(4):  # SYN, SYN-ACK, ACK
            for ep, addr in zip(self.clients, self.addrs):
                self.server.datagrams_received([(d, addr) for d, _ in ep.datagrams_to_send(0.0)], 0.0)
            self.poll_server()
            for d, addr in self.server.datagrams_to_send(0.0):
                self.clients[self.addrs.index(addr)].datagram_received(d, SERVER, 0.0)
            for ep in self.clients:
                ep.poll_events()
        assert len(self.accepted) == clients

    def poll_server(self) -> None:
        for conn, ev in self.server.poll_events():
            if isinstance(ev, events.Connected):
                self.accepted.append(conn)
            self.events.append((self.accepted.index(conn) if conn in self.accepted else -1,
                                type(ev).__name__))

    def client_data(self, i: int, data: bytes) -> list[bytes]:
        """The datagrams client ``i`` sends for ``data`` (within its first window)."""
        self.conns[i].send(data)
        return [d for d, _ in self.clients[i].datagrams_to_send(T)]

    def state(self) -> tuple[Any, ...]:
        """What the server would do next and what its user sees."""
        self.poll_server()
        out = self.server.datagrams_to_send(T)
        reads = tuple(conn.read() for conn in self.accepted)
        return (tuple(out), tuple(self.events), reads, self.server.segments_received,
                tuple((c.rcv_nxt, c.timers.delack, c.stats.segments_received) for c in self.accepted))


def payload(n: int, salt: int = 0) -> bytes:
    return bytes((i * 7 + salt) & 0xFF for i in range(n))


def one_at_a_time(world: World, datagrams: list[tuple[bytes, Any]]) -> None:
    for d, addr in datagrams:
        world.server.datagram_received(d, addr, T)


def as_one_batch(world: World, datagrams: list[tuple[bytes, Any]]) -> None:
    world.server.datagrams_received(datagrams, T)


@pytest.mark.parametrize("drop", [None, 0, 3, 7])
def test_run_ends_where_one_segment_at_a_time_ends(drop: int | None) -> None:
    """In-order runs, and a run with a hole in the middle (the segments after
    it go out of order, then the hole is filled)."""
    results = []
    for feed in (one_at_a_time, as_one_batch):
        w = World()
        data = payload(10 * SEG)
        dgrams = w.client_data(0, data)
        assert len(dgrams) >= 8
        first = [(d, CLIENT) for i, d in enumerate(dgrams) if i != drop]
        feed(w, first)
        mid = w.state()
        if drop is not None:
            feed(w, [(dgrams[drop], CLIENT)])
        end = w.state()
        results.append((mid, end))
    assert results[0] == results[1]
    mid, end = results[1]
    got = mid[2][0] + end[2][0]
    assert got == data[: len(got)]
    assert len(got) == sum(len(decode(d).payload) for d in dgrams)  # all of it, hole filled


def test_run_mixing_two_connections() -> None:
    """Datagrams of two connections interleaved in one batch: each run is
    its own, and the outcome is that of one segment at a time."""
    results = []
    for feed in (one_at_a_time, as_one_batch):
        w = World(clients=2)
        a = w.client_data(0, payload(6 * SEG, 1))
        b = w.client_data(1, payload(6 * SEG, 2))
        order = [(a[0], CLIENT), (a[1], CLIENT), (b[0], CLIENT2), (b[1], CLIENT2), (b[2], CLIENT2),
                 (a[2], CLIENT), (b[3], CLIENT2), (a[3], CLIENT), (a[4], CLIENT), (b[4], CLIENT2),
                 (b[5], CLIENT2), (a[5], CLIENT)]
        feed(w, order)
        results.append(w.state())
    assert results[0] == results[1]
    reads = results[1][2]
    assert sorted(reads) == sorted([payload(6 * SEG, 1), payload(6 * SEG, 2)])
    assert results[1][3] - World(clients=2).server.segments_received == 12


def test_memoryview_datagrams_overwritten_later_do_not_corrupt_stored_data() -> None:
    """Datagrams handed as views of one buffer that is then overwritten (as
    udpio reuses its receive buffer): in-order data, out-of-order data held
    for later and the hole's filler all come out intact."""
    w = World()
    data = payload(8 * SEG, 5)
    dgrams = w.client_data(0, data)
    buf = bytearray(b"".join(dgrams))
    views: list[tuple[Any, Any]] = []
    offset = 0
    for d in dgrams:
        views.append((memoryview(buf)[offset : offset + len(d)], CLIENT))
        offset += len(d)
    hole = views.pop(2)
    w.server.datagrams_received(views, T)
    buf[:] = b"\xee" * len(buf)  # the next read lands here
    got = w.accepted[0].read()
    buf2 = bytearray(dgrams[2])
    w.server.datagram_received(memoryview(buf2), CLIENT, T)
    buf2[:] = b"\x11" * len(buf2)
    got += w.accepted[0].read()
    assert got == data
    assert hole[0].obj is buf  # the hole's view was never handed over


def as_views_of_a_reused_buffer(world: World, datagrams: list[tuple[bytes, Any]]) -> None:
    """One batch of views into one buffer, overwritten once the call returns
    (as udpio's GRO reads hand them over)."""
    buf = bytearray(b"".join(d for d, _ in datagrams))
    views: list[tuple[Any, Any]] = []
    offset = 0
    for d, addr in datagrams:
        views.append((memoryview(buf)[offset : offset + len(d)], addr))
        offset += len(d)
    world.server.datagrams_received(views, T)
    buf[:] = b"\xee" * len(buf)


def first_flight_then_close(world: World, data: bytes) -> list[bytes]:
    """Client 0 writes ``data`` and closes: the datagrams of its first flight."""
    world.conns[0].send(data)
    world.conns[0].close()
    return [d for d, _ in world.clients[0].datagrams_to_send(T)]


def receiver_state(world: World) -> tuple[Any, ...]:
    """``World.state`` and what else of the server connection a run moves."""
    conn = world.accepted[0]
    return (world.state(), conn.ts_recent, conn.snd_wl1, conn.snd_wl2, conn.snd_wnd,
            conn.unacked_bytes, conn.stats.bytes_received, dict(world.server.counters))


def as_gro_runs(world: World, datagrams: list[tuple[bytes, Any]]) -> None:
    """One batch as udpio hands over GRO reads: consecutive equal-sized
    datagrams from one address as a `SegmentRun` over one buffer, which is
    overwritten once the call returns; any other datagram as a view."""
    buf = bytearray(b"".join(d for d, _ in datagrams))
    view = memoryview(buf)
    items: list[tuple[Any, Any]] = []
    offset = i = 0
    while i < len(datagrams):
        d, addr = datagrams[i]
        j = i + 1
        while j < len(datagrams) and datagrams[j][1] == addr and len(datagrams[j][0]) == len(d):
            j += 1
        k = j - i
        if k > 1:
            items.append((SegmentRun(view[offset : offset + k * len(d)], len(d), k), addr))
        else:
            items.append((view[offset : offset + len(d)], addr))
        offset += k * len(d)
        i = j
    world.server.datagrams_received(items, T)
    buf[:] = b"\xee" * len(buf)


@pytest.mark.parametrize("order", ["in order", "hole", "duplicate", "reordered"])
def test_a_gro_run_ends_where_one_segment_at_a_time_ends(order: str) -> None:
    """A run taken in one step (Receiver.take_run) and what it leaves to
    the one-at-a-time path end exactly where bytes one at a time end: the
    output, events, data, counters and the receiver's state."""
    results = []
    for feed in (one_at_a_time, as_gro_runs):
        w = World()
        data = payload(12 * SEG, 9)
        first, *dgrams = first_flight_then_close(w, data)
        # The first data segment after the handshake takes the full path
        # (SND.WL1 is still RCV.NXT); runs come after it.
        one_at_a_time(w, [(first, CLIENT)])
        if order == "hole":
            dgrams = dgrams[:3] + dgrams[4:] + [dgrams[3]]
        elif order == "duplicate":
            dgrams = dgrams[:5] + [dgrams[2]] + dgrams[5:]
        elif order == "reordered":
            dgrams = dgrams[:4] + [dgrams[5], dgrams[4]] + dgrams[6:]
        feed(w, [(d, CLIENT) for d in dgrams])
        results.append(receiver_state(w))
    assert results[0] == results[1]
    got = results[1][0][2][0]
    assert got == data[: len(got)] and len(got) >= 8 * SEG  # the first flight (the initial window)


@pytest.mark.parametrize("twist", ["none", "ts rises", "ts goes back", "window changes", "ack of unsent data",
                                   "beyond the window", "ports differ"])
def test_every_check_of_a_gro_run_ends_as_one_at_a_time(twist: str) -> None:
    """Hand-made runs that break each condition ``take_run`` checks per
    segment, somewhere in the middle: the run and the one-at-a-time path
    must end in the same state (where the run stops, the rest is judged
    one datagram at a time, or by the full path)."""
    results = []
    for feed in (one_at_a_time, as_gro_runs):
        w = World()
        w.conns[0].send(payload(SEG, 1))
        first = w.clients[0].datagrams_to_send(T)[0][0]
        one_at_a_time(w, [(first, CLIENT)])
        f = decode(first)
        count = 50 if twist == "beyond the window" else 12  # 50 full segments exceed 64 KiB
        dgrams = []
        for i in range(count):
            tsval = f.ts[0] + (i if twist == "ts rises" else 0) - (7 if twist == "ts goes back" and i == 5 else 0)
            window = f.window - (1 if twist == "window changes" and i >= 4 else 0)
            ack = (f.ack + (1 if twist == "ack of unsent data" and i == 6 else 0)) & 0xFFFFFFFF
            src = f.src_port + (1 if twist == "ports differ" and i == 3 else 0)
            seq = (f.seq + SEG * (i + 1)) & 0xFFFFFFFF
            dgrams.append(encode(segment_of((src, f.dst_port, seq, ack, f.flags, window, payload(SEG, i + 2),
                                             None, None, False, (), (tsval, f.ts[1]), 0)), False))
        feed(w, [(d, CLIENT) for d in dgrams])
        results.append(receiver_state(w))
    assert results[0] == results[1]


def test_a_run_of_views_with_a_duplicate_and_a_fin_ends_as_bytes_one_at_a_time_do() -> None:
    """The run path keeps the payloads as views until the run ends: a
    duplicate in the middle (the full path, D-SACK) and the FIN at the end
    (ending ESTABLISHED) must find the data before them already in order,
    and nothing read later may come from the overwritten buffer."""
    results = []
    for feed in (one_at_a_time, as_views_of_a_reused_buffer):
        w = World()
        data = payload(9 * SEG, 3)
        dgrams = first_flight_then_close(w, data)
        assert decode(dgrams[-1]).flags & 0x01  # the FIN rides on the last one
        order = dgrams[:4] + [dgrams[2]] + dgrams[4:]
        feed(w, [(d, CLIENT) for d in order])
        results.append(w.state())
    assert results[0] == results[1]
    assert results[1][2][0] == data


def test_bad_datagrams_inside_a_run_are_counted_and_the_run_goes_on() -> None:
    w = World()
    dgrams = w.client_data(0, payload(4 * SEG))
    before = w.server.segments_received
    batch: list[tuple[Any, Any]] = [(dgrams[0], CLIENT), (b"\x00" * 7, CLIENT), (dgrams[1], CLIENT),
                                    (memoryview(b"\x01" * 3), CLIENT), (dgrams[2], CLIENT), (dgrams[3], CLIENT)]
    w.server.datagrams_received(batch, T)
    assert w.server.counters["malformed"] == 2
    assert w.server.segments_received - before == 4
    assert w.accepted[0].read() == payload(4 * SEG)


# ---------------------------------------------------------------- real sockets


def _gro_pair() -> tuple[socket.socket, socket.socket]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    return rx, tx


def test_gro_super_datagrams_split_at_segment_boundaries(loop_name: str) -> None:
    """A GSO sender's batches arrive (with GRO on) as super-datagrams, which
    are handed over as a run of their full segments (one view each when
    there is only one) and a view of the shorter last one, boundaries and
    bytes intact, every segment with the sender's address."""
    rx, tx = _gro_pair()
    if not udpio.enable_gro(rx) or not udpio.gso_supported(tx):
        rx.close()
        tx.close()
        pytest.skip("this kernel has no UDP GRO/GSO")
    rx.setsockopt(socket.SOL_UDP, udpio.UDP_GRO, 0)  # UdpSocket turns it on again itself
    size = 1000
    batches = [[payload(size, salt) for salt in range(k)] + [payload(size - 1 - k, 99)]
               for k in (1, 5, 40)]  # each ends with a shorter segment
    singles = [payload(77, 7), payload(size, 8)]

    runs: list[int] = []

    async def main() -> tuple[list[bytes], set[Any], dict[str, int], bool]:
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        addrs: set[Any] = set()
        done = asyncio.Event()
        expected = sum(len(b) for b in batches) + len(singles)

        def receive(batch: list[tuple[Any, Any]], now: float) -> None:
            for data, addr in batch:
                if isinstance(data, SegmentRun):
                    runs.append(data.count)
                    got.extend(data.datagrams())
                else:
                    got.append(bytes(data))  # the view is only valid during this call
                addrs.add(addr)
            if len(got) >= expected:
                done.set()

        udp = udpio.UdpSocket(loop, rx, receive, lambda: None, lambda exc: None, lambda: None, gro=True)
        for batch in batches:
            tx.sendmsg([b"".join(batch)], [(udpio.SOL_UDP, udpio.UDP_SEGMENT, struct.pack("=H", size))])
        for d in singles:
            tx.send(d)
        await asyncio.wait_for(done.wait(), 10)
        stats, gro = dict(udp.stats), udp.gro
        udp.close()
        await asyncio.sleep(0)
        return got, addrs, stats, gro

    sender = tx.getsockname()
    try:
        got, addrs, stats, gro = run_on(loop_name, main(), 30)
    finally:
        tx.close()
    assert gro
    assert got == [d for b in batches for d in b] + singles
    assert runs and all(count > 1 for count in runs)  # a run of one is a plain view
    assert addrs == {sender}
    assert stats["received"] == len(got)
    assert stats["recv_calls"] < stats["received"]  # the kernel coalesced: fewer reads than segments
    assert stats["truncated"] == 0


def test_gro_off_reads_one_datagram_per_call(loop_name: str) -> None:
    rx, tx = _gro_pair()

    async def main() -> tuple[list[bytes], dict[str, int], bool]:
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        done = asyncio.Event()

        def receive(batch: list[tuple[Any, Any]], now: float) -> None:
            got.extend(bytes(d) for d, _ in batch)
            if len(got) >= 20:
                done.set()

        udp = udpio.UdpSocket(loop, rx, receive, lambda: None, lambda exc: None, lambda: None, gro=False)
        for i in range(20):
            tx.send(payload(100 + i, i))
        await asyncio.wait_for(done.wait(), 10)
        stats, gro = dict(udp.stats), udp.gro
        udp.close()
        await asyncio.sleep(0)
        return got, stats, gro

    try:
        got, stats, gro = run_on(loop_name, main(), 30)
    finally:
        tx.close()
    assert not gro
    assert got == [payload(100 + i, i) for i in range(20)]
    assert stats["recv_calls"] >= stats["received"] == 20


@pytest.mark.parametrize("senders", [1, 16])
def test_gro_on_bulk_waits_for_a_full_batch_from_few_senders(loop_name: str, senders: int) -> None:
    """The adapter's GRO_ON_BULK: a full read batch from one sender turns GRO
    on (coalescing pays for its dearer read); the same datagrams from 16
    senders (handshakes from many clients, a spoofed SYN flood: never
    coalesced) leave the cheaper recvfrom reads in place."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    rx.setblocking(False)
    if not udpio.enable_gro(rx):
        rx.close()
        pytest.skip("this kernel has no UDP GRO")
    rx.setsockopt(socket.SOL_UDP, udpio.UDP_GRO, 0)
    txs = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(senders)]
    count = 2 * udpio._FLUSH_EVERY

    async def main() -> tuple[list[bytes], bool]:
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        done = asyncio.Event()

        def receive(batch: list[tuple[Any, Any]], now: float) -> None:
            got.extend(bytes(d) for d, _ in batch)
            if len(got) >= count:
                done.set()

        for i in range(count):  # queued before the socket is first read
            txs[i % senders].sendto(payload(200, i), rx.getsockname())
        udp = udpio.UdpSocket(loop, rx, receive, lambda: None, lambda exc: None, lambda: None,
                              gro=udpio.GRO_ON_BULK)
        await asyncio.wait_for(done.wait(), 10)
        gro = udp.gro
        udp.close()
        await asyncio.sleep(0)
        return got, gro

    try:
        got, gro = run_on(loop_name, main(), 30)
    finally:
        for tx in txs:
            tx.close()
    assert got == [payload(200, i) for i in range(count)]
    assert gro is (senders == 1)


def test_bulk_over_loopback_with_gro_counts_every_segment(run: Any) -> None:
    """A transfer with GSO and GRO on both sides: data intact, the server's
    socket read fewer times than it got segments, and its engine saw every
    segment the socket handed over."""
    import rudp

    total = 3_000_000
    blob = (payload(65536, 3) * (total // 65536 + 1))[:total]

    async def main() -> tuple[str, dict[str, int], int, bool]:
        loop = asyncio.get_running_loop()
        digest: asyncio.Future[str] = loop.create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            h = hashlib.sha256()
            n = 0
            while n < total:
                chunk = await reader.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
                n += len(chunk)
            digest.set_result(h.hexdigest())
            writer.close()

        server = await rudp.start_server(handle, "127.0.0.1", 0)
        driver = server.endpoint
        _, writer = await rudp.open_connection("127.0.0.1", driver.sockname[1])
        for i in range(0, total, 65536):
            writer.write(blob[i : i + 65536])
            await writer.drain()
        got = await asyncio.wait_for(digest, 60)
        writer.close()
        stats = dict(driver.udp.stats)
        seen = driver.endpoint.segments_received
        gro = driver.udp.gro
        server.close()
        await server.wait_closed()
        return got, stats, seen, gro

    got, stats, seen, gro = run(main(), timeout=90)
    assert got == hashlib.sha256(blob).hexdigest()
    assert seen == stats["received"]  # every segment of every super-datagram reached the engine
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert gro == udpio.enable_gro(probe)  # on by default wherever the kernel has it
    finally:
        probe.close()
    if gro:
        assert stats["recv_calls"] < stats["received"]
