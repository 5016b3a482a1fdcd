"""A server's connection requests queue in a socket of their own
(rudp.aio.udpio.open_syn_socket): a flood of SYNs can overflow that queue
only, never the one that carries handshake ACKs and established traffic."""

from __future__ import annotations

import asyncio
import errno
import random
import socket
from typing import Any, Callable

import pytest

import rudp
from rudp.aio import udpio
from rudp.core.wire import ACK, SYN, segment_of, encode

from .test_aio import echo_handler, pattern

Run = Callable[..., Any]


async def start_echo(host: str = "127.0.0.1", port: int = 0, **options: Any) -> tuple[rudp.Server, int]:
    server = await rudp.start_server(echo_handler, host, port, **options)
    return server, server.sockets[0].getsockname()[1]


def steering_available() -> str | None:
    """Why the kernel cannot steer here, or None."""
    if not hasattr(socket, "SO_REUSEPORT"):
        return "no SO_REUSEPORT"
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(("127.0.0.1", 0))
        syn = udpio.open_syn_socket(probe)
        if syn is None:
            return "the kernel refuses a reuseport steering program"
        syn.close()
        return None
    finally:
        probe.close()


needs_steering = pytest.mark.skipif(steering_available() is not None,
                                    reason=str(steering_available()))


def flood_syn(port: int, rng: random.Random) -> bytes:
    """A pure SYN with the usual options, from a random port and ISN."""
    return encode(segment_of((rng.randrange(1024, 65536), port, rng.getrandbits(32), 0, SYN,
                              65535, b"", 1460, 7, True, (), (rng.getrandbits(32), 0), 0)))


def stray_ack(port: int, rng: random.Random) -> bytes:
    """An ACK that matches nothing (no connection, no valid cookie)."""
    return encode(segment_of((rng.randrange(1024, 65536), port, rng.getrandbits(32),
                              rng.getrandbits(32), ACK, 65535, b"", None, None, False, (), None, 0)))


@needs_steering
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_syns_arrive_on_the_syn_socket_and_the_rest_on_the_main_one(run: Run, host: str) -> None:
    async def main() -> None:
        try:
            server, port = await start_echo(host)
        except OSError as exc:
            pytest.skip(f"no {host} here: {exc}")
        async with server:
            udp = server.endpoint.udp
            assert udp.syn_socket is not None
            assert udp.syn_socket.getsockname() == udp.sock.getsockname()
            reader, writer = await rudp.open_connection(host, port)
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            writer.close()
            await writer.wait_closed()
            # The SYN came through the SYN socket; the ACK, data and FIN through the other.
            assert udp.stats["syn_socket_received"] == 1
            assert udp.stats["received"] - udp.stats["syn_socket_received"] >= 3
            assert server.stats()["syn_received"] == 1
            assert server.stats()["socket_drops"] == 0

    run(main())


BURST = 15_000  # SYNs: more than even the main socket's 4 MB buffer (8 MB in the kernel) holds


@pytest.mark.parametrize("syn_socket", [
    pytest.param(True, marks=needs_steering), False])
def test_a_syn_burst_overflows_only_the_syn_socket(run: Run, syn_socket: bool) -> None:
    """SYNs far beyond what any receive buffer here holds arrive while the
    server cannot read (this coroutine holds the loop); with them, stray
    ACKs and an established connection's data. With a SYN socket the kernel
    drops SYNs only: every other datagram is read. Without one (the
    contrast) the same burst overflows the one socket, so the connection's
    segments share the SYNs' fate and wait for retransmission. Either way
    the data echoes intact."""
    rng = random.Random(7)
    data = pattern(64_000)

    async def main() -> None:
        server, port = await start_echo(syn_socket=syn_socket)
        async with server:
            reader, writer = await rudp.open_connection("127.0.0.1", port)
            writer.write(b"warm")
            assert await reader.readexactly(4) == b"warm"
            udp = server.endpoint.udp
            before = dict(udp.stats)
            flooder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                flooder.bind(("127.0.0.1", 0))
                for i in range(BURST):  # no await: the server reads none of this yet
                    flooder.sendto(flood_syn(port, rng), ("127.0.0.1", port))
                    if i % 50 == 0:
                        flooder.sendto(stray_ack(port, rng), ("127.0.0.1", port))
                writer.write(data)  # goes out at once (a window's worth and more)
                echoed = await reader.readexactly(len(data))
            finally:
                flooder.close()
            assert echoed == data
            writer.close()
            await writer.wait_closed()
            stats = server.stats()
            if not syn_socket:
                assert "syn_socket_drops" not in stats
                assert stats["socket_drops"] > 0, "the burst should overflow the one socket"
                return
            assert stats["syn_socket_drops"] > 0, "the burst should overflow the SYN socket"
            assert stats["socket_drops"] == 0
            read_main = (udp.stats["received"] - udp.stats["syn_socket_received"]
                         - before["received"] + before["syn_socket_received"])
            assert read_main >= 100  # the stray ACKs, besides the connection's segments

    run(main())


def test_without_a_syn_socket_everything_shares_one(run: Run) -> None:
    async def main() -> None:
        server, port = await start_echo(syn_socket=False)
        async with server:
            assert server.endpoint.udp.syn_socket is None
            reader, writer = await rudp.open_connection("127.0.0.1", port)
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            assert server.endpoint.udp.stats["syn_socket_received"] == 0
            writer.close()
            await writer.wait_closed()

    run(main())


def test_a_port_in_use_still_refuses_a_second_server(run: Run) -> None:
    """The SYN socket's SO_REUSEPORT must not let another server share the port."""

    async def main() -> None:
        server, port = await start_echo()
        async with server:
            with pytest.raises(OSError) as info:
                await start_echo(port=port)
            assert info.value.errno == errno.EADDRINUSE
            plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                with pytest.raises(OSError):
                    plain.bind(("127.0.0.1", port))
            finally:
                plain.close()

    run(main())


def test_closing_the_server_closes_both_sockets(run: Run) -> None:
    async def main() -> None:
        server, port = await start_echo()
        udp = server.endpoint.udp
        syn = udp.syn_socket
        server.close()
        await server.wait_closed()
        assert udp.sock.fileno() == -1
        assert syn is None or syn.fileno() == -1
        # The port is free again, for a server of either kind.
        again, _ = await start_echo(port=port, syn_socket=False)
        again.close()
        await again.wait_closed()

    run(main())
