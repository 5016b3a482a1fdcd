"""The asyncio API on real loopback sockets, on the default loop and on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

import rudp
from rudp.core.connection import State
from rudp.core.wire import ACK, FIN, PSH, SYN, Segment, decode, encode, segment_of

Run = Callable[..., Any]


def pattern(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(seed.to_bytes(4, "big")).digest() * 2048  # 64 KiB
    reps = size // len(block) + 1
    return (block * reps)[:size]


async def echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1 << 16):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def start_echo(host: str = "127.0.0.1", **options: Any) -> tuple[rudp.Server, int]:
    server = await rudp.start_server(echo_handler, host, 0, **options)
    return server, server.sockets[0].getsockname()[1]


def test_echo_10mb_sha256(run: Run) -> None:
    """10 MB each way through an echo server arrives intact and in order."""
    data = pattern(10_000_000)

    async def main() -> None:
        server, port = await start_echo()
        async with server:
            reader, writer = await rudp.open_connection("127.0.0.1", port)

            async def send() -> None:
                for i in range(0, len(data), 1 << 16):
                    writer.write(data[i : i + (1 << 16)])
                    await writer.drain()
                writer.write_eof()

            sender = asyncio.ensure_future(send())
            digest = hashlib.sha256()
            n = 0
            while chunk := await reader.read(1 << 20):
                digest.update(chunk)
                n += len(chunk)
            await sender
            assert n == len(data)
            assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
            writer.close()
            await writer.wait_closed()

    run(main(), timeout=240)


def test_half_close(run: Run) -> None:
    """write_eof sends FIN; the server sees EOF and can still answer (RFC 9293 §3.6)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.read()  # until the client's FIN
        writer.write(b"got %d bytes" % len(request))
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> None:
        server = await rudp.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await rudp.open_connection("127.0.0.1", port)
            writer.write(b"x" * 5000)
            writer.write_eof()
            assert writer.can_write_eof()
            with pytest.raises(RuntimeError):
                writer.write(b"more")
            assert await reader.read() == b"got 5000 bytes"
            assert reader.at_eof()
            writer.close()
            await writer.wait_closed()

    run(main())


def test_abort_resets_peer(run: Run) -> None:
    """transport.abort() sends RST; the peer's reader raises ConnectionResetError."""
    seen: asyncio.Queue[BaseException | bytes] = asyncio.Queue()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readexactly(3)
            await seen.put(await reader.read(100))
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            await seen.put(exc)

    async def main() -> None:
        server = await rudp.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await rudp.open_connection("127.0.0.1", port)
            writer.write(b"abc")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.transport.abort()
            result = await asyncio.wait_for(seen.get(), 10)
            assert isinstance(result, ConnectionResetError)
            server.abort_clients()

    run(main())


def test_refused_by_closed_udp_port(run: Run) -> None:
    """Nothing on the UDP port: ICMP port unreachable refuses at once."""

    async def main() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectionRefusedError):
            await rudp.open_connection("127.0.0.1", port, connect_timeout=20)
        assert loop.time() - started < 15  # well before any timeout could fire

    run(main())


def test_peer_socket_gone_resets_established_connection(run: Run) -> None:
    """The server's UDP socket vanishes (no FIN, no RST): the client's next
    segment draws ICMP port unreachable, which ends the connection at once
    with ConnectionResetError (RFC 1122 §4.2.3.9, Endpoint.unreachable)."""

    async def quiet_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await echo_handler(reader, writer)
        except ConnectionError:
            pass  # its socket is closed under it

    async def main() -> None:
        server = await rudp.start_server(quiet_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await rudp.open_connection("127.0.0.1", port, connect_timeout=5)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        server.endpoint.close()
        await server.endpoint.wait_closed()
        loop = asyncio.get_running_loop()
        started = loop.time()
        writer.write(b"anyone there?")
        with pytest.raises(ConnectionResetError):
            await reader.read()
        assert loop.time() - started < 0.5  # no retransmission timeout was waited for
        conn = writer.transport.get_extra_info("connection")
        assert conn.state is State.CLOSED
        writer.close()
        server.close()
        await server.wait_closed()

    run(main(), timeout=30)


def test_refused_by_rst(run: Run) -> None:
    """A live rudp endpoint with no listener on that port answers RST."""

    async def main() -> None:
        server, port = await start_echo()
        async with server:
            with pytest.raises(ConnectionRefusedError):
                await rudp.open_connection("127.0.0.1", port, remote_port=port + 1 if port < 65535 else 1)
            assert server.endpoint.endpoint.counters["rst_sent"] >= 1

    run(main())


def test_handshake_timeout(run: Run) -> None:
    """A peer that swallows every datagram: TimeoutError after connect_timeout."""

    async def main() -> None:
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        try:
            port = sink.getsockname()[1]
            with pytest.raises(TimeoutError):
                await rudp.open_connection("127.0.0.1", port, connect_timeout=0.5)
        finally:
            sink.close()

    run(main())


def test_many_concurrent_connections(run: Run) -> None:
    """250 concurrent connections share one server UDP socket."""
    count = 250

    async def main() -> None:
        server, port = await start_echo()
        async with server:

            async def client(i: int) -> bytes:
                reader, writer = await rudp.open_connection("127.0.0.1", port)
                msg = b"client %d " % i * 20
                writer.write(msg)
                writer.write_eof()
                reply = await reader.read()
                writer.close()
                await writer.wait_closed()
                return reply == msg and True or b"bad"  # type: ignore[return-value]

            results = await asyncio.gather(*(client(i) for i in range(count)))
            assert results == [True] * count
            assert server.endpoint.endpoint.counters["accepted"] == count

    run(main(), timeout=180)


def test_flow_control_paused_reader_bounds_memory(run: Run) -> None:
    """A reader that stops reading stops a 100 MB writer: drain() blocks and
    neither side buffers more than its configured limits."""
    recv_buffer = 256 * 1024
    send_buffer = 256 * 1024
    total = 100 * 1024 * 1024
    chunk = pattern(1 << 16)
    state: dict[str, Any] = {}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state["reader"] = reader
        state["server_transport"] = writer.transport
        await asyncio.Event().wait()  # never reads until the test says so

    async def main() -> None:
        server = await rudp.start_server(handler, "127.0.0.1", 0, recv_buffer=recv_buffer)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await rudp.open_connection(
                "127.0.0.1", port, send_buffer=send_buffer
            )
            written = 0

            async def write_all() -> None:
                nonlocal written
                while written < total:
                    writer.write(chunk)
                    written += len(chunk)
                    await writer.drain()

            task = asyncio.ensure_future(write_all())
            # Let the window close and drain() block.
            last = -1
            for _ in range(200):
                await asyncio.sleep(0.05)
                if written == last:
                    break
                last = written
            assert not task.done()
            assert written < 8 * 1024 * 1024, written
            conn = writer.transport.get_extra_info("connection")
            high = writer.transport.get_write_buffer_limits()[1]
            assert conn.send_buffer_size <= send_buffer + high + len(chunk)
            server_conn = state["server_transport"].get_extra_info("connection")
            limit = 2 * 2**16  # StreamReader pauses reading above twice its limit
            assert len(state["reader"]._buffer) <= limit + 64 * 1024
            assert server_conn.readable <= recv_buffer
            assert conn.stats.zero_window_probes >= 0
            # Reading again lets the writer finish a few more megabytes.
            before = written
            drained = 0
            while drained < 4 * 1024 * 1024:
                drained += len(await state["reader"].read(1 << 20))
            await asyncio.sleep(0.1)
            assert written > before
            task.cancel()
            writer.transport.abort()
            server.abort_clients()

    run(main(), timeout=120)


def test_ipv6_echo(run: Run) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 support")
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        s.close()
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    data = pattern(300_000, seed=6)

    async def main() -> None:
        server, port = await start_echo("::1")
        async with server:
            # Any spelling of the address works: the connection is keyed by the
            # canonical one, which replies come from.
            for host in ("::1", "0:0:0:0:0:0:0:1"):
                reader, writer = await rudp.open_connection(host, port, connect_timeout=10)
                writer.write(data)
                writer.write_eof()
                assert await reader.read() == data
                assert writer.get_extra_info("peername")[0] == "::1"
                writer.close()
                await writer.wait_closed()

    run(main())


def test_wait_closed_after_fin_acked_and_server_close_lets_clients_finish(run: Run) -> None:
    """Closing the server stops accepting but lets an established transfer end;
    wait_closed() returns once the peer acknowledged our data and FIN."""
    data = pattern(2_000_000, seed=3)

    async def main() -> None:
        server, port = await start_echo()
        reader, writer = await rudp.open_connection("127.0.0.1", port)
        writer.write(b"hello")
        assert await reader.readexactly(5) == b"hello"
        server.close()  # the established connection goes on
        assert not server.is_serving()
        with pytest.raises((ConnectionRefusedError, TimeoutError)):
            await rudp.open_connection("127.0.0.1", port, connect_timeout=2)
        writer.write(data)
        writer.write_eof()
        got = await reader.read()
        assert got == data
        conn = writer.transport.get_extra_info("connection")
        writer.close()
        await writer.wait_closed()
        assert conn.send_buffer_size == 0
        assert conn.state in (State.TIME_WAIT, State.CLOSED, State.FIN_WAIT_2)
        await asyncio.wait_for(server.wait_closed(), 30)

    run(main())


def test_idle_connection_has_no_timer(run: Run) -> None:
    """An idle established connection arms no timer: it costs no CPU."""

    async def main() -> None:
        server, port = await start_echo()
        async with server:
            reader, writer = await rudp.open_connection("127.0.0.1", port)
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            await asyncio.sleep(1.5)  # past the delayed-ACK and any stale RTO timer
            ep = server.endpoint
            client_ep = writer.transport._owner  # type: ignore[attr-defined]
            assert ep.endpoint.get_timer() is None
            assert client_ep.endpoint.get_timer() is None
            assert ep._timer is None and client_ep._timer is None
            writer.close()
            await writer.wait_closed()

    run(main())


class _BusyEngine:
    """Stands in for a driver's Endpoint: it has work for ``rounds`` flush
    rounds, as callbacks that keep waking connections would make it."""

    def __init__(self, rounds: int) -> None:
        self.left = rounds

    @property
    def has_work(self) -> bool:
        return self.left > 0

    def poll_events(self) -> list[Any]:
        self.left -= 1
        return []

    def batches_to_send(self, now: float) -> list[Any]:
        return []

    def get_timer(self) -> None:
        return None

    def release_held(self) -> None:
        pass


def test_pump_reschedules_work_left_after_its_bounded_rounds(run: Run) -> None:
    """One flush runs at most 64 engine rounds, to stay fair to the loop; work
    still pending after them goes in a later flush instead of waiting for the
    next datagram or timer (REVIEW-structure point 4)."""

    async def main() -> None:
        driver = await rudp.create_endpoint("127.0.0.1")
        engine = _BusyEngine(150)
        driver.endpoint = engine  # type: ignore[assignment]
        driver.kick()
        for _ in range(10):
            await asyncio.sleep(0)
        assert engine.left == 0
        driver.close()
        await driver.wait_closed()

    run(main())


def test_shared_client_endpoint(run: Run) -> None:
    """Several client connections can share one UDP socket (endpoint=)."""

    async def main() -> None:
        server, port = await start_echo()
        async with server:
            ep = await rudp.create_endpoint("127.0.0.1")
            pairs = [
                await rudp.open_connection("127.0.0.1", port, endpoint=ep) for _ in range(5)
            ]
            ports = {w.get_extra_info("ports")[0] for _, w in pairs}
            assert len(ports) == 5
            assert {w.get_extra_info("sockname") for _, w in pairs} == {ep.sockname}
            for i, (r, w) in enumerate(pairs):
                w.write(b"%d" % i)
                w.write_eof()
            for i, (r, w) in enumerate(pairs):
                assert await r.read() == b"%d" % i
                w.close()
                await w.wait_closed()
            ep.close()

    run(main())


def test_bad_arguments(run: Run) -> None:
    async def main() -> None:
        with pytest.raises(TypeError):
            await rudp.open_connection("127.0.0.1", 9, bogus_option=1)
        with pytest.raises(ValueError):
            await rudp.open_connection("127.0.0.1", 0)
        with pytest.raises(ValueError):
            await rudp.open_connection("127.0.0.1", 9, mss=10)
        with pytest.raises(ValueError):
            await rudp.open_connection("127.0.0.1", 9, connect_timeout=-1)
        with pytest.raises(TypeError):
            await rudp.open_connection(1234, 9)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await rudp.start_server(echo_handler, "127.0.0.1", 70000)

    run(main())


def test_transport_api(run: Run) -> None:
    async def main() -> None:
        server, port = await start_echo()
        async with server:
            reader, writer = await rudp.open_connection("127.0.0.1", port)
            tr = writer.transport
            assert isinstance(tr, asyncio.Transport)
            assert tr.get_extra_info("peername") == ("127.0.0.1", port)
            assert tr.get_extra_info("sockname")[0] == "127.0.0.1"
            assert isinstance(tr.get_extra_info("socket"), (socket.socket, object))
            assert "segments_sent" in tr.get_extra_info("stats")
            tr.set_write_buffer_limits(high=1000, low=100)
            assert tr.get_write_buffer_limits() == (100, 1000)
            with pytest.raises(ValueError):
                tr.set_write_buffer_limits(high=10, low=100)
            tr.writelines([b"a", b"b", b"c"])
            assert await reader.readexactly(3) == b"abc"
            assert tr.is_reading()
            tr.pause_reading()
            assert not tr.is_reading()
            tr.resume_reading()
            assert not tr.is_closing()
            writer.close()
            assert tr.is_closing()
            await writer.wait_closed()

    run(main())


def test_client_socket_lingers_a_few_rtos_in_time_wait(run: Run) -> None:
    """A client that closes first passes TIME_WAIT: its private UDP socket
    stays open to ACK a retransmitted FIN for max(1 s, 3 * RTO)
    (Endpoint.linger_deadline), not for 2*MSL, then closes."""

    async def main() -> None:
        server, port = await start_echo()
        async with server:
            reader, writer = await rudp.open_connection("127.0.0.1", port, msl=30)
            sock = writer.get_extra_info("socket")
            conn = writer.get_extra_info("connection")
            writer.write(b"bye")
            assert await reader.readexactly(3) == b"bye"
            writer.close()
            await writer.wait_closed()
            loop = asyncio.get_running_loop()
            started = loop.time()
            while conn.state is not State.TIME_WAIT:
                await asyncio.sleep(0.01)
            while sock.fileno() != -1:
                assert loop.time() - started < 5, "the socket lingers too long"
                await asyncio.sleep(0.05)
            assert loop.time() - started >= 0.9  # stayed about a second, at least
            assert conn.state is State.TIME_WAIT  # the socket went, not the 2*MSL wait

    run(main(), timeout=30)


def test_time_wait_keeps_no_user_objects(run: Run) -> None:
    """A server that closes first keeps the connection in TIME_WAIT inside its
    endpoint, yet the transport and stream objects can be collected."""
    import gc
    import weakref

    refs: list[weakref.ref[Any]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        refs.append(weakref.ref(writer.transport))
        refs.append(weakref.ref(writer))
        refs.append(weakref.ref(reader))
        writer.write(b"bye")
        writer.close()  # the server's FIN goes first: it will pass TIME_WAIT
        await writer.wait_closed()

    async def main() -> None:
        server = await rudp.start_server(handler, "127.0.0.1", 0, msl=5)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await rudp.open_connection("127.0.0.1", port)
        assert await reader.read() == b"bye"
        writer.close()
        await writer.wait_closed()
        for _ in range(50):
            await asyncio.sleep(0.02)
            states = [c.state for c in server.endpoint.endpoint.connections.values()]
            if states == [State.TIME_WAIT]:
                break
        assert states == [State.TIME_WAIT]
        del reader, writer
        gc.collect()
        assert refs and all(ref() is None for ref in refs), [ref() for ref in refs]
        server.close()
        await server.wait_closed()

    run(main())


def test_peer_close_while_reading_is_paused_loses_nothing(run: Run) -> None:
    """The peer sends a burst and closes while our reader is paused (its buffer
    is over the limit): every byte and then EOF still reach the reader."""
    data = pattern(3_000_000, seed=9)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        writer.close()
        await writer.wait_closed()

    async def main() -> None:
        server = await rudp.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await rudp.open_connection("127.0.0.1", port, limit=1024)
            writer.write_eof()
            await asyncio.sleep(0.5)  # let everything arrive while nobody reads
            got = bytearray()
            while chunk := await reader.read(4096):
                got += chunk
            assert bytes(got) == data
            writer.close()
            await writer.wait_closed()

    run(main())


@pytest.mark.parametrize("cc", ["newreno", "bbr"])
def test_echo_with_each_controller(run: Run, cc: str) -> None:
    """2 MB each way with the non-default controllers (CUBIC, the default, is
    the 10 MB test's): BBR paces through the socket's one loop timer."""
    data = pattern(2_000_000, 7)

    async def main() -> None:
        server, port = await start_echo(congestion_control=cc)
        async with server:
            reader, writer = await rudp.open_connection("127.0.0.1", port, congestion_control=cc)
            writer.write(data)
            writer.write_eof()
            got = await reader.read(-1)
            assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
            writer.close()
            await writer.wait_closed()

    run(main(), timeout=120)


def test_reply_carries_the_ack_and_the_fin_its_ack(run: Run) -> None:
    """A request answered at once: the ACK of the request rides on the reply
    and the ACK of the peer's FIN on our FIN, as over kernel TCP, so that the
    server sends three segments (SYN,ACK, reply, FIN) and the client four
    (SYN, ACK, request, FIN; its last ACK is the fifth) - no pure ACKs."""

    async def main() -> tuple[dict[str, int], dict[str, int]]:
        conns: list[Any] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conns.append(writer.get_extra_info("connection"))
            writer.write(await reader.readexactly(1024))
            await reader.read()  # the client's FIN
            writer.close()
            await writer.wait_closed()

        server = await rudp.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await rudp.open_connection("127.0.0.1", port)
        client = writer.get_extra_info("connection")
        writer.write(bytes(1024))
        assert await reader.readexactly(1024) == bytes(1024)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return conns[0].stats.as_dict(), client.stats.as_dict()

    server_stats, client_stats = run(main(), timeout=30)
    for stats in (server_stats, client_stats):
        assert stats["retransmits"] == stats["tail_loss_probes"] == 0, stats  # no loss: exact counts hold
    assert server_stats["segments_sent"] == 3
    assert client_stats["segments_sent"] == 5


def raw_peer() -> socket.socket:
    """A scripted peer's UDP socket on loopback (non-blocking)."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    return peer


def test_data_on_the_handshake_ack_follows_connection_made_callbacks(run: Run) -> None:
    """A peer whose first data completes the handshake (it rode on the last
    ACK, or the pure ACK was lost): the protocol gets it only after what
    connection_made scheduled has run, as from asyncio's socket transports,
    whose first read comes an iteration later. So a stream handler's first
    step (a start_tls, a pause_reading) comes before any data."""

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        order: list[str] = []
        done = loop.create_future()
        transports: list[asyncio.BaseTransport] = []

        class Recorder(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                transports.append(transport)
                order.append("made")
                loop.call_soon(order.append, "scheduled")

            def data_received(self, data: bytes) -> None:
                order.append(f"data {data!r}")
                if not done.done():
                    done.set_result(None)

        server = await rudp.create_server(Recorder, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        peer = raw_peer()
        try:
            isn = 1000
            syn = segment_of((40000, port, isn, 0, SYN, 65535, b"", 1460, None, False, (), None, 0))
            peer.sendto(encode(syn), ("127.0.0.1", port))
            for _ in range(1000):  # bounded: ~10 s
                try:
                    synack = decode(peer.recv(2048))
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.01)
            else:
                raise AssertionError("no SYN,ACK")
            ack = segment_of((40000, port, isn + 1, (synack.seq + 1) & 0xFFFFFFFF, ACK | PSH,
                              65535, b"hello", None, None, False, (), None, 0))
            peer.sendto(encode(ack), ("127.0.0.1", port))
            await asyncio.wait_for(done, 10)
        finally:
            for tr in transports:
                tr.abort()  # the scripted peer never closes
            peer.close()
            server.close()
            await server.wait_closed()
        return order

    assert run(main(), timeout=30)[:3] == ["made", "scheduled", "data b'hello'"]


class ScriptedClients:
    """Scripted client connections on one raw UDP socket, told apart by their
    TCP source ports; what the server sends is kept per connection."""

    ISN = 1000

    def __init__(self, port: int, sports: tuple[int, ...] = (40001, 40002)) -> None:
        self.port = port
        self.sock = raw_peer()
        self.got: dict[int, list[Segment]] = {sport: [] for sport in sports}
        self.rcv_nxt: dict[int, int] = {}  # the server's next sequence number, per connection

    def send(self, sport: int, seq: int, flags: int, payload: bytes = b"", wscale: int | None = None) -> None:
        ack = self.rcv_nxt.get(sport, 0)
        mss = 1460 if flags & SYN else None
        seg = segment_of((sport, self.port, seq, ack, flags, 65535, payload, mss, wscale, False, (), None, 0))
        self.sock.sendto(encode(seg), ("127.0.0.1", self.port))

    async def receive_until(self, done: Callable[[], bool]) -> None:
        for _ in range(1000):  # bounded: ~10 s
            try:
                seg = decode(self.sock.recv(2048))
                self.got[seg.dst_port].append(seg)
            except BlockingIOError:
                if done():
                    return
                await asyncio.sleep(0.01)
        raise AssertionError(f"the server did not answer: {self.got}")

    async def open(self, wscale: int | None = None) -> None:
        """SYN from each and its SYN,ACK; the last ACKs are left to the test."""
        for sport in self.got:
            self.send(sport, self.ISN, SYN, wscale=wscale)
        await self.receive_until(lambda: all(self.got.values()))
        for sport, segs in self.got.items():
            self.rcv_nxt[sport] = (segs[0].seq + 1) & 0xFFFFFFFF
            segs.clear()

    async def until_fin_then_ack(self, seq: int) -> None:
        """Wait for each connection's FIN and acknowledge it: the server's ends close."""
        await self.receive_until(lambda: all(any(s.flags & FIN for s in segs) for segs in self.got.values()))
        for sport, segs in self.got.items():
            self.rcv_nxt[sport] = (segs[-1].seq + 1) & 0xFFFFFFFF
            self.send(sport, seq, ACK)


@contextlib.asynccontextmanager
async def scripted_clients(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
                           ) -> AsyncIterator[ScriptedClients]:
    """A stream server with ``handler``, and ScriptedClients aimed at it."""
    server = await rudp.start_server(handler, "127.0.0.1", 0)
    peers = ScriptedClients(server.sockets[0].getsockname()[1])
    try:
        yield peers
    finally:
        peers.sock.close()
        server.close()
        await server.wait_closed()


def test_acks_held_for_replies_are_not_sent_by_other_connections_writes(run: Run) -> None:
    """Two connections' FINs in one read: each handler's close() answers at
    once, and each FIN's ACK rides on that connection's own FIN. The first
    handler's close sends its FIN at once; that send must not take along
    the other connection's ACK, which its own FIN is about to carry (a pure
    ACK and then a FIN, two datagrams where one does). A scripted raw peer
    counts what the server sends."""

    async def main() -> dict[int, list[Segment]]:
        closed = 0
        both_closed = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal closed
            await reader.read()  # to the peer's FIN
            writer.close()
            closed += 1
            if closed == 2:
                both_closed.set_result(None)

        async with scripted_clients(handler) as peers:
            isn = peers.ISN
            await peers.open()
            for sport in peers.got:
                peers.send(sport, isn + 1, ACK)
            await asyncio.sleep(0.1)  # both established, handlers waiting
            for sport in peers.got:  # back to back: one read
                peers.send(sport, isn + 1, FIN | ACK)
            await asyncio.wait_for(both_closed, 10)
            await peers.until_fin_then_ack(isn + 2)
        return peers.got

    got = run(main(), timeout=30)
    for sport, segs in got.items():
        assert [s.flags for s in segs] == [FIN | ACK], (sport, segs)


def test_replies_to_data_on_handshake_acks_carry_their_acks(run: Run) -> None:
    """Two peers whose first data completes the handshake, both in one read:
    each handler echoes at once, and each echo carries the ACK of the data
    it answers. The first echo's send must not take along the other
    connection's ACK (a window update, due once its data was read), which
    that connection's own echo is about to carry."""

    async def main() -> dict[int, list[Segment]]:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(5))
            await reader.read()
            writer.close()

        async with scripted_clients(handler) as peers:
            isn = peers.ISN
            # Window scaling: the server's window grows past the SYN-ACK's
            # 65,535 after the handshake, so reading the data makes an ACK due.
            await peers.open(wscale=7)
            for sport in peers.got:  # back to back: one read
                peers.send(sport, isn + 1, ACK | PSH, b"hello")
            await peers.receive_until(lambda: all(any(s.payload for s in segs) for segs in peers.got.values()))
            for sport in peers.got:
                peers.send(sport, isn + 6, FIN | ACK)
            await peers.until_fin_then_ack(isn + 7)
        return peers.got

    got = run(main(), timeout=30)
    for sport, segs in got.items():
        first = segs[0]
        assert (first.payload, first.ack) == (b"hello", 1006), (sport, segs)


def test_write_and_close_send_before_returning(run: Run) -> None:
    """A lone write() hands its segment to the socket before it returns (no
    loop iteration in between, like a socket's send() with TCP_NODELAY), and
    close() its FIN: counted in datagrams, not time."""

    async def main() -> None:
        got = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.set_result(await reader.read())
            writer.close()

        server = await rudp.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        endpoint = await rudp.create_endpoint("127.0.0.1", 0)
        reader, writer = await rudp.open_connection("127.0.0.1", port, nodelay=True,
                                                    endpoint=endpoint)
        await asyncio.sleep(0.05)  # the handshake's last ACK is out: nothing else pending
        udp = endpoint.udp
        sent = udp.stats["sent"]
        writer.write(b"ping")
        assert udp.stats["sent"] == sent + 1  # before any loop iteration
        writer.close()
        assert udp.stats["sent"] == sent + 2  # the FIN too
        assert await got == b"ping"
        await writer.wait_closed()
        endpoint.close()
        server.close()
        await server.wait_closed()

    run(main(), timeout=30)
