"""rudp.aio.udpio sending segment runs (one buffer, issue 13): over GSO or
one datagram per segment, in order with the datagrams around them, and
queued from the middle of a run when the socket is full. Loopback only."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Callable

import pytest

from rudp.aio.udpio import Outgoing, UdpSocket, gso_supported, split_runs
from rudp.core.wire import HeaderTemplate, SegmentRun


class FillingSocket:
    """A real UDP socket whose sends raise BlockingIOError once, after
    ``take`` datagrams went out: a socket buffer that filled up."""

    def __init__(self, sock: socket.socket, take: int) -> None:
        self.sock = sock
        self.take = take
        self.family = sock.family

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    def _spend(self, n: int) -> None:
        if self.take is not None and self.take < n:
            self.take = None  # type: ignore[assignment]  # full once, then drained
            raise BlockingIOError
        if self.take is not None:
            self.take -= n

    def send(self, data: Any) -> int:
        self._spend(1)
        return self.sock.send(data)

    def sendto(self, data: Any, addr: Any) -> int:
        self._spend(1)
        return self.sock.sendto(data, addr)

    def sendmsg(self, buffers: list[Any], ancdata: list[Any], flags: int = 0, addr: Any = None) -> int:
        size = int.from_bytes(ancdata[0][2], "little") if ancdata else 0
        total = sum(len(b) for b in buffers)
        self._spend(-(-total // size) if size else 1)
        if addr is None:
            return self.sock.sendmsg(buffers, ancdata, flags)
        return self.sock.sendmsg(buffers, ancdata, flags, addr)


def a_run(count: int, mss: int = 100, seq: int = 1000) -> SegmentRun:
    data = bytearray(i % 251 for i in range(count * mss))
    return HeaderTemplate(1, 2, False).run(data, 0, seq, count, mss, 7, 8, (9, 10))


async def exchange(items: list[Outgoing], gso: bool, connected: bool, take: int | None) -> tuple[list[bytes], dict[str, int]]:
    """Send ``items`` from a UdpSocket to a plain socket on loopback; what arrived."""
    loop = asyncio.get_running_loop()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    tx.setblocking(False)
    addr = rx.getsockname()
    if connected:
        tx.connect(addr)
    sock: Any = tx if take is None else FillingSocket(tx, take)
    errors: list[OSError] = []
    udp = UdpSocket(loop, sock, lambda batch, now: None, lambda: None, errors.append, lambda: None, gso=gso)
    udp.send([(data, addr) for data, _ in items])
    want = len(split_runs(items))
    got: list[bytes] = []
    for _ in range(500):  # bounded
        try:
            while True:
                got.append(rx.recv(65536))
        except BlockingIOError:
            pass
        if len(got) >= want:
            break
        await asyncio.sleep(0.005)
    stats = dict(udp.stats)
    udp.close()
    rx.close()
    assert not errors
    return got, stats


@pytest.mark.parametrize("gso", [True, False], ids=["gso", "no-gso"])
@pytest.mark.parametrize("connected", [True, False], ids=["connected", "unconnected"])
@pytest.mark.parametrize("take", [None, 0, 3, 50, 72],
                         ids=["room", "full-at-once", "full-in-run", "full-later", "full-in-gso-run"])
def test_runs_arrive_as_their_segments_in_order(run: Callable[..., Any], gso: bool, connected: bool,
                                                take: int | None) -> None:
    first, second = a_run(5), a_run(70, mss=900, seq=5000)  # the second needs several GSO sends
    items: list[Outgoing] = [(b"before", None), (first, None), (b"between", None), (b"x" * 20, None),
                             (second, None), (b"after", None)]
    want = [bytes(d) for d, _ in split_runs(items)]
    got, stats = run(exchange(items, gso, connected, take))
    assert got == want
    assert stats["sent"] == len(want)
    if take is not None:
        assert stats["queued"] > 0
    if gso and take is None:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            here = gso_supported(probe)
        finally:
            probe.close()
        if here:
            assert stats["send_calls"] < len(want)  # the runs went out as GSO batches
    elif not gso:
        assert stats["send_calls"] == len(want)


def test_split_runs_slices_without_copying() -> None:
    r = a_run(3)
    parts = split_runs([(b"a", 1), (r, 2)])
    assert [a for _, a in parts] == [1, 2, 2, 2]
    assert all(isinstance(d, memoryview) for d, _ in parts[1:])
    assert [bytes(d) for d, _ in parts[1:]] == r.datagrams()
