"""benchmarks/_floor.py, the UDP floor anchor: its streams carry the
benchmarks' two patterns (the conn-rate echo with both closes, and a
ping-pong) with the datagram exchange rudp's connections have on a lossless
path, so that the anchor measures what it claims. Never a rate."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import _floor  # noqa: E402

Run = Callable[..., Any]


def test_conn_rate_pattern_ends_both_sides(run: Run) -> None:
    """Open, 1 KB each way, the client's FIN, the server's FIN, the last
    ACK: both wait_closed() return and the server forgets the connection."""

    async def main() -> tuple[int, int]:
        done: list[bytes] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.readexactly(1024)
            writer.write(data)
            await writer.drain()
            done.append(await reader.read())  # to the client's FIN
            writer.close()
            await writer.wait_closed()

        server = await _floor.start_floor_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        for i in range(3):
            reader, writer = await _floor.open_floor_connection("127.0.0.1", port)
            payload = bytes([i]) * 1024
            writer.write(payload)
            assert await reader.readexactly(1024) == payload
            writer.close()
            await writer.wait_closed()
        for _ in range(100):  # the server's side ends with the last ACK
            if len(done) == 3 and not server.connections:
                break
            await asyncio.sleep(0.01)
        server.close()
        return len(done), len(server.connections)

    assert run(main(), timeout=30) == (3, 0)


def test_datagrams_per_connection_match_rudp_on_a_lossless_path(run: Run) -> None:
    """The exchange rudp's trace shows for the conn-rate pattern: the server
    reads SYN, ACK, data, FIN, last ACK and sends SYN-ACK, data, FIN. A raw
    socket plays the client and counts."""

    async def main() -> list[bytes]:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(4))
            await reader.read()
            writer.close()

        server = await _floor.start_floor_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        got: list[bytes] = []

        async def expect(n: int) -> None:
            for _ in range(500):
                try:
                    got.append(peer.recv(2048))
                except BlockingIOError:
                    if len(got) >= n:
                        return
                    await asyncio.sleep(0.01)
            raise AssertionError(got)

        try:
            for datagram, answers in ((_floor.SYN, 1), (_floor.ACK, 1), (_floor.DATA + b"ping", 2),
                                      (_floor.FIN, 3)):
                peer.sendto(datagram, ("127.0.0.1", port))
                if datagram != _floor.ACK:
                    await expect(answers)
            peer.sendto(_floor.ACK, ("127.0.0.1", port))
            for _ in range(100):
                if not server.connections:
                    break
                await asyncio.sleep(0.01)
            assert not server.connections
        finally:
            peer.close()
            server.close()
        return got

    assert run(main(), timeout=30) == [_floor.SYN_ACK, _floor.DATA + b"ping", _floor.FIN]
