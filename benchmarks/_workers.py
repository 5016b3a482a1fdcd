"""Benchmark worker processes for benchmarks/run.py (one role per process).

Run as ``python benchmarks/_workers.py ROLE 'JSON-PARAMS'``; ``ROLE`` is
``server`` (receiver), ``client`` (sender) or, for the SYN flood,
``flooder``. The worker prints one JSON object
per line on stdout (``{"event": "ready", "port": N}``, ``{"event": "result",
...}``, ``{"event": "error", "error": "..."}``) and takes commands, one per line,
on stdin (``mark``: report RSS/CPU/counters now; ``go``: start the measured
phase; ``quit``). It exits by itself when stdin closes or its deadline passes,
so a dead orchestrator never leaves load running.

Every measurement is taken inside the worker with time.perf_counter and
resource.getrusage around the measured phase only (never process start-up).
Only 127.0.0.1 is used, apart from the SYN flood's kernel anchor, whose server
runs inside a network namespace made for it (10.200.0.2, see _synflood.py),
and the lossy-link benchmark, whose sender and receiver run in namespaces of
their own joined through a router namespace (10.211.x.x, see _lossy.py).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import socket
import statistics
import struct
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing
#: run.py --compiled: rudp from this tree (build/compiled: the mypyc-compiled core,
#: the rest of the checkout through symlinks, tests/compiled.py), ahead of the checkout.
COMPILED_TREE = os.environ.get("RUDP_BENCH_TREE")
if COMPILED_TREE:
    sys.path.insert(0, COMPILED_TREE)

HOST = "127.0.0.1"
CHUNK = bytes(range(256)) * 256  # 64 KiB per stream write
DGRAM_PAYLOAD = 1400  # plain UDP / kcp datagram size
SOCK_BUF = 4 << 20  # the same socket buffers rudp asks for
OP_TIMEOUT = 10.0  # one connection in the connection-rate / memory benchmarks

Params = dict[str, Any]
StreamPair = tuple[asyncio.StreamReader, asyncio.StreamWriter]


# -- plumbing -----------------------------------------------------------------


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout for the orchestrator."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def rss_bytes() -> int:
    """VmRSS of this process, from /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def set_udp_buffers(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCK_BUF)
        except OSError:
            pass


class Control:
    """Commands from the orchestrator on stdin, delivered into the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.handlers: dict[str, Callable[[], None]] = {}
        self.go = asyncio.Event()
        self.handlers["go"] = self.go.set
        self.handlers["quit"] = lambda: os._exit(0)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            cmd = line.strip()
            if cmd:
                self.loop.call_soon_threadsafe(self._dispatch, cmd)
        os._exit(0)  # the orchestrator went away: stop the load at once

    def _dispatch(self, cmd: str) -> None:
        handler = self.handlers.get(cmd)
        if handler is None:
            emit("error", error=f"unknown command {cmd!r}")
        else:
            handler()


def run_loop(loop_name: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``main()`` on uvloop or on asyncio's default loop."""
    if loop_name == "uvloop":
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    elif loop_name == "asyncio":
        factory = asyncio.new_event_loop
    else:
        raise ValueError(f"unknown loop {loop_name!r}")
    loop = factory()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main())
    finally:
        asyncio.set_event_loop(None)


def stream_options(p: Params) -> dict[str, Any]:
    opts: dict[str, Any] = dict(p.get("rudp_options") or {})
    opts.update(p.get("extra_rudp_options") or {})
    return opts


async def start_stream_server(
    impl: str, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]], p: Params
) -> tuple[Any, int]:
    """A stream server on 127.0.0.1: rudp, kernel TCP or the UDP floor (asyncio streams)."""
    if impl == "rudp":
        import rudp

        server: Any = await rudp.start_server(handler, HOST, 0, **stream_options(p))
    elif impl == "tcp":
        server = await asyncio.start_server(handler, HOST, 0, backlog=1024)
    elif impl == "floor":
        from _floor import start_floor_server

        server = await start_floor_server(handler, HOST, 0, set_udp_buffers)
    else:
        raise ValueError(f"{impl!r} is not a stream implementation")
    return server, server.sockets[0].getsockname()[1]


async def open_stream(impl: str, port: int, p: Params, endpoint: Any = None) -> StreamPair:
    if impl == "rudp":
        import rudp

        opts = stream_options(p)
        if endpoint is not None:
            opts["endpoint"] = endpoint
        return await rudp.open_connection(HOST, port, **opts)
    if impl == "tcp":
        return await asyncio.open_connection(HOST, port)
    if impl == "floor":
        from _floor import open_floor_connection

        return await open_floor_connection(HOST, port, set_udp_buffers)
    raise ValueError(f"{impl!r} is not a stream implementation")


async def shared_client_endpoint(impl: str, p: Params) -> Any:
    """One UDP socket for many rudp client connections (None for TCP)."""
    if impl != "rudp":
        return None
    import rudp

    return await rudp.create_endpoint(HOST, 0, **stream_options(p))


def set_tcp_nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def close_writers(writers: list[asyncio.StreamWriter], timeout: float) -> bool:
    """Graceful close of every writer; False if that did not finish in time."""
    for w in writers:
        w.close()

    async def wait_one(w: asyncio.StreamWriter) -> None:
        try:
            await w.wait_closed()
        except (ConnectionError, OSError):
            pass

    try:
        await asyncio.wait_for(asyncio.gather(*(wait_one(w) for w in writers)), timeout)
        return True
    except asyncio.TimeoutError:
        return False


async def forever() -> None:
    """Serve until the orchestrator stops this process (or the deadline does)."""
    await asyncio.Event().wait()


# -- bulk: rudp and kernel TCP through asyncio streams ------------------------


@dataclass
class Meter:
    """Receiver side of a bulk transfer: bytes, wall time and CPU time."""

    expected_conns: int = 1
    nbytes: int = 0
    finished: int = 0
    t_first: float | None = None
    cpu_first: float = 0.0
    t_end: float = 0.0
    cpu_end: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def got(self, n: int) -> None:
        if self.t_first is None:
            self.t_first = time.perf_counter()
            self.cpu_first = cpu_seconds()
        self.nbytes += n

    def finish_one(self) -> None:
        self.finished += 1
        if self.finished == self.expected_conns:
            self.t_end = time.perf_counter()
            self.cpu_end = cpu_seconds()
            self.done.set()

    def result(self) -> dict[str, Any]:
        assert self.t_first is not None
        return {
            "bytes": self.nbytes,
            "elapsed": self.t_end - self.t_first,
            "cpu": self.cpu_end - self.cpu_first,
        }


async def bulk_stream_server(p: Params, control: Control) -> None:
    meter = Meter(expected_conns=int(p.get("conns", 1)))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 18):
                meter.got(len(data))
        finally:
            meter.finish_one()
            writer.close()  # our FIN tells the sender everything arrived
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    server, port = await start_stream_server(p["impl"], handler, p)
    emit("ready", port=port)
    await meter.done.wait()
    emit("result", **meter.result())
    server.close()


async def send_then_await_fin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                              size: int) -> None:
    """Write ``size`` bytes, half-close, and read until the receiver's FIN:
    then it has everything."""
    remaining = size
    while remaining > 0:
        chunk = CHUNK if remaining >= len(CHUNK) else CHUNK[:remaining]
        writer.write(chunk)
        remaining -= len(chunk)
        await writer.drain()
    writer.write_eof()
    while await reader.read(1 << 16):
        pass


async def bulk_stream_client(p: Params, control: Control) -> None:
    impl, port, size, nconns = p["impl"], p["port"], int(p["size"]), int(p.get("conns", 1))
    pairs = [await open_stream(impl, port, p) for _ in range(nconns)]
    per_conn = size // nconns

    async def push(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send_then_await_fin(reader, writer, per_conn)

    t0, cpu0 = time.perf_counter(), cpu_seconds()
    await asyncio.gather(*(push(r, w) for r, w in pairs))
    t1, cpu1 = time.perf_counter(), cpu_seconds()
    closed = await close_writers([w for _, w in pairs], 10.0)
    emit("result", bytes=per_conn * nconns, elapsed=t1 - t0, cpu=cpu1 - cpu0, close_ok=closed)


# -- bulk: plain UDP, 64 datagrams in flight, one tiny ack each ---------------

_SEQ = struct.Struct("!cQ")  # type byte + 64-bit sequence number


class UdpSink(asyncio.DatagramProtocol):
    """Receiver: acks every data datagram with 9 bytes; answers 'E' with 'R'."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.meter = Meter()
        self.datagrams = 0
        self.t_last = 0.0
        self.cpu_last = 0.0
        self.reported = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        set_udp_buffers(transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        kind = data[:1]
        if kind == b"D":
            self.meter.got(len(data))
            self.datagrams += 1
            self.t_last = time.perf_counter()
            self.transport.sendto(b"A" + data[1:9], addr)
        elif kind == b"E":
            if not self.reported.is_set():
                self.cpu_last = cpu_seconds()
                self.reported.set()
            self.transport.sendto(b"R", addr)


class UdpSource(asyncio.DatagramProtocol):
    """Sender: keeps ``window`` datagrams beyond the highest ack outstanding.

    No reliability: a lost datagram is simply forgotten (the cumulative
    'highest ack' frees its slot, and a 50 ms stall watchdog frees the tail)."""

    def __init__(self, total: int, window: int) -> None:
        self.total = total
        self.window = window
        self.sent = 0
        self.acked_hi = 0
        self.acks = 0
        self.gave_up = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.pad = bytes(DGRAM_PAYLOAD - _SEQ.size)
        self.all_acked = asyncio.Event()
        self.reply = asyncio.Event()
        self.t_last_ack = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        set_udp_buffers(transport)

    def fill(self) -> None:
        assert self.transport is not None
        sendto, pack, pad = self.transport.sendto, _SEQ.pack, self.pad
        while self.sent < self.total and self.sent - self.acked_hi < self.window:
            sendto(pack(b"D", self.sent) + pad)
            self.sent += 1
        if self.acked_hi >= self.total:
            self.all_acked.set()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data[:1] == b"A":
            self.acks += 1
            self.t_last_ack = time.perf_counter()
            seq = _SEQ.unpack(data[:9])[1]
            self.acked_hi = max(self.acked_hi, seq + 1)
            self.fill()
        elif data[:1] == b"R":
            self.reply.set()

    def unstall(self) -> None:
        """Forget datagrams that got no ack (no retransmission in this anchor)."""
        self.gave_up += self.sent - self.acked_hi
        self.acked_hi = self.sent
        self.fill()


async def bulk_udp_server(p: Params, control: Control) -> None:
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(UdpSink, local_addr=(HOST, 0))
    emit("ready", port=transport.get_extra_info("sockname")[1])
    await sink.reported.wait()
    m = sink.meter
    t_first = m.t_first if m.t_first is not None else sink.t_last
    emit("result", bytes=m.nbytes, elapsed=sink.t_last - t_first, cpu=sink.cpu_last - m.cpu_first,
         datagrams=sink.datagrams)
    await asyncio.sleep(0.2)  # keep answering repeated 'E's briefly
    transport.close()


async def bulk_udp_client(p: Params, control: Control) -> None:
    loop = asyncio.get_running_loop()
    total = -(-int(p["size"]) // DGRAM_PAYLOAD)
    transport, src = await loop.create_datagram_endpoint(
        lambda: UdpSource(total, int(p.get("window", 64))), remote_addr=(HOST, p["port"])
    )
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    src.fill()
    last_progress = -1
    while not src.all_acked.is_set():
        try:
            await asyncio.wait_for(src.all_acked.wait(), 0.05)
        except asyncio.TimeoutError:
            if src.acks == last_progress:
                src.unstall()
            last_progress = src.acks
    t1, cpu1 = src.t_last_ack or time.perf_counter(), cpu_seconds()
    for _ in range(100):  # tell the receiver we are done; it answers 'R'
        transport.sendto(b"E")
        try:
            await asyncio.wait_for(src.reply.wait(), 0.02)
            break
        except asyncio.TimeoutError:
            pass
    emit("result", bytes=src.acks * DGRAM_PAYLOAD, elapsed=t1 - t0, cpu=cpu1 - cpu0,
         datagrams_sent=src.sent, acks=src.acks, lost=src.gave_up,
         datagrams_per_s=src.acks / (t1 - t0) if t1 > t0 else 0.0, close_ok=src.reply.is_set())
    transport.close()


# -- bulk: aioquic, one stream ------------------------------------------------


def quic_configuration(is_client: bool) -> Any:
    """aioquic configuration; the server gets a fresh self-signed certificate."""
    import datetime
    import ssl

    from aioquic.quic.configuration import QuicConfiguration

    cfg = QuicConfiguration(is_client=is_client, alpn_protocols=["rudp-bench"],
                            max_datagram_size=1452)  # a UDP payload like rudp's segments
    if is_client:
        cfg.verify_mode = ssl.CERT_NONE
        return cfg
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cfg.certificate = cert
    cfg.private_key = key
    return cfg


async def bulk_quic_server(p: Params, control: Control) -> None:
    from aioquic.asyncio import serve

    meter = Meter()
    tasks: set[asyncio.Task[None]] = set()

    async def consume(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1 << 18):
            meter.got(len(data))
        meter.finish_one()
        writer.write(b"k")
        writer.write_eof()

    def stream_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(consume(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await serve(HOST, 0, configuration=quic_configuration(False), stream_handler=stream_handler)
    transport = server._transport
    assert transport is not None
    port = transport.get_extra_info("sockname")[1]
    set_udp_buffers(transport)
    emit("ready", port=port)
    await meter.done.wait()
    emit("result", **meter.result())
    await asyncio.sleep(0.2)  # let the 'k' and FIN go out
    server.close()


async def bulk_quic_client(p: Params, control: Control) -> None:
    from aioquic.asyncio import QuicConnectionProtocol, connect

    limit = 1 << 20  # our own backpressure: aioquic streams buffer without bound

    class Proto(QuicConnectionProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.stream_id: int | None = None
            self.room = asyncio.Event()

        def buffered(self) -> int:
            if self.stream_id is None:
                return 0
            stream = self._quic._streams.get(self.stream_id)  # exists after the first write
            if stream is None:
                return 0
            return int(stream.sender._buffer_stop - stream.sender._buffer_start)

        def datagram_received(self, data: Any, addr: Any) -> None:
            super().datagram_received(data, addr)
            if self.buffered() <= limit // 2:
                self.room.set()

    size = int(p["size"])
    async with connect(HOST, p["port"], configuration=quic_configuration(True), create_protocol=Proto) as proto:
        assert isinstance(proto, Proto)
        if proto._transport is not None:
            set_udp_buffers(proto._transport)
        reader, writer = await proto.create_stream()
        proto.stream_id = writer.get_extra_info("stream_id")
        t0, cpu0 = time.perf_counter(), cpu_seconds()
        remaining = size
        while remaining > 0:
            while proto.buffered() > limit:
                proto.room.clear()
                await proto.room.wait()
            chunk = CHUNK if remaining >= len(CHUNK) else CHUNK[:remaining]
            writer.write(chunk)
            remaining -= len(chunk)
            await asyncio.sleep(0)  # let the transmit scheduled by write() run
        writer.write_eof()
        await reader.read()  # the receiver's b"k" and end of stream
        t1, cpu1 = time.perf_counter(), cpu_seconds()
        emit("result", bytes=size, elapsed=t1 - t0, cpu=cpu1 - cpu0)
        proto.close()


# -- bulk: KCP (the kcp package: C ikcp via Cython) driven from asyncio -------

KCP_MTU = DGRAM_PAYLOAD
KCP_WINDOW = 1024
KCP_INTERVAL_MS = 10


def make_kcp(send: Callable[[bytes], None]) -> Any:
    """KCP in its "fast" mode (nodelay, 10 ms interval, fast resend 2, no congestion control)."""
    from kcp import KCP

    k = KCP(1, max_transmission=KCP_MTU, no_delay=True, update_interval=KCP_INTERVAL_MS,
            resend_count=2, no_congestion_control=True,
            send_window_size=KCP_WINDOW, receive_window_size=KCP_WINDOW)
    k.include_outbound_handler(lambda _k, data: send(data))
    return k


class KcpPeer(asyncio.DatagramProtocol):
    """One KCP conversation on a UDP socket: ticks ``update`` every interval and
    flushes once per loop iteration after input (ACKs go out promptly)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.DatagramTransport | None = None
        self.addr: Any = None
        self.kcp: Any = None
        self.flush_scheduled = False
        self.on_message: Callable[[bytearray], None] = lambda m: None
        self.on_input: Callable[[], None] = lambda: None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        set_udp_buffers(transport)

    def start(self, addr: Any) -> None:
        assert self.transport is not None
        tr = self.transport
        self.addr = addr
        self.kcp = make_kcp(lambda data: tr.sendto(data, addr))
        self.kcp.update()
        self.tick()

    def tick(self) -> None:
        self.kcp.update()
        self.loop.call_later(KCP_INTERVAL_MS / 1000, self.tick)

    def schedule_flush(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        self.kcp.flush()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.kcp is None:
            self.start(addr)
        self.kcp.receive(data)
        for message in self.kcp.get_all_received():
            self.on_message(message)
        self.on_input()
        self.schedule_flush()


async def bulk_kcp_server(p: Params, control: Control) -> None:
    loop = asyncio.get_running_loop()
    size = int(p["size"])
    transport, peer = await loop.create_datagram_endpoint(lambda: KcpPeer(loop), local_addr=(HOST, 0))
    meter = Meter()

    def on_message(message: bytearray) -> None:
        meter.got(len(message))
        if meter.nbytes >= size and not meter.done.is_set():
            meter.finish_one()
            peer.kcp.enqueue(b"done")

    peer.on_message = on_message
    emit("ready", port=transport.get_extra_info("sockname")[1])
    await meter.done.wait()
    emit("result", **meter.result())
    await asyncio.sleep(0.5)  # keep acking/retransmitting "done"
    transport.close()


async def bulk_kcp_client(p: Params, control: Control) -> None:
    loop = asyncio.get_running_loop()
    size = int(p["size"])
    transport, peer = await loop.create_datagram_endpoint(lambda: KcpPeer(loop), remote_addr=(HOST, p["port"]))
    done = asyncio.Event()
    message = CHUNK[: 16 * (KCP_MTU - 24)]  # 16 KCP segments per enqueue (24-byte KCP header)
    queued = 0

    def top_up() -> None:
        nonlocal queued
        k = peer.kcp
        while queued < size and k.get_outbound_packets() < 2 * KCP_WINDOW:
            m = message if size - queued >= len(message) else message[: size - queued]
            k.enqueue(m)
            queued += len(m)

    def on_message(m: bytearray) -> None:
        if bytes(m) == b"done":
            done.set()

    peer.on_message = on_message
    peer.on_input = top_up
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    peer.start((HOST, p["port"]))
    top_up()
    peer.schedule_flush()
    await done.wait()
    t1, cpu1 = time.perf_counter(), cpu_seconds()
    emit("result", bytes=size, elapsed=t1 - t0, cpu=cpu1 - cpu0)
    transport.close()


# -- request/response: 64-byte ping-pong ---------------------------------------


def rr_summary(samples: list[float]) -> dict[str, Any]:
    us = sorted(s * 1e6 for s in samples)
    return {
        "count": len(us),
        "rtt_us_median": statistics.median(us),
        "rtt_us_p99": us[min(len(us) - 1, int(len(us) * 0.99))],
        "rtt_us_mean": statistics.fmean(us),
    }


async def rr_stream_server(p: Params, control: Control) -> None:
    size = int(p.get("msg", 64))

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if p["impl"] == "tcp":
            set_tcp_nodelay(writer)
        try:
            while True:
                data = await reader.readexactly(size)
                writer.write(data)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    _server, port = await start_stream_server(p["impl"], handler, p)  # referenced while serving
    emit("ready", port=port)
    await forever()


async def rr_stream_client(p: Params, control: Control) -> None:
    size, count, warmup = int(p.get("msg", 64)), int(p["count"]), int(p["warmup"])
    reader, writer = await open_stream(p["impl"], p["port"], p)
    if p["impl"] == "tcp":
        set_tcp_nodelay(writer)
    msg = bytes(size)
    samples: list[float] = []
    cpu0 = 0.0
    for i in range(warmup + count):
        if i == warmup:
            cpu0 = cpu_seconds()
        t0 = time.perf_counter()
        writer.write(msg)
        await reader.readexactly(size)
        if i >= warmup:
            samples.append(time.perf_counter() - t0)
    cpu_us = (cpu_seconds() - cpu0) / count * 1e6
    closed = await close_writers([writer], 5.0)
    emit("result", close_ok=closed, client_cpu_us_per_rt=cpu_us, **rr_summary(samples))


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


class UdpPinger(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiter: asyncio.Future[bytes] | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(data)


async def rr_udp_server(p: Params, control: Control) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(UdpEcho, local_addr=(HOST, 0))
    emit("ready", port=transport.get_extra_info("sockname")[1])
    await forever()


async def rr_udp_client(p: Params, control: Control) -> None:
    loop = asyncio.get_running_loop()
    size, count, warmup = int(p.get("msg", 64)), int(p["count"]), int(p["warmup"])
    transport, pinger = await loop.create_datagram_endpoint(UdpPinger, remote_addr=(HOST, p["port"]))
    msg = bytes(size)
    samples: list[float] = []
    lost = 0
    cpu0 = 0.0
    for i in range(warmup + count + 100):  # up to 100 lost pings are replaced
        if len(samples) >= count:
            break
        if i == warmup:
            cpu0 = cpu_seconds()
        pinger.waiter = loop.create_future()
        t0 = time.perf_counter()
        transport.sendto(msg)
        try:
            await asyncio.wait_for(pinger.waiter, 1.0)
        except asyncio.TimeoutError:
            lost += 1
            continue
        if i >= warmup:
            samples.append(time.perf_counter() - t0)
    cpu_us = (cpu_seconds() - cpu0) / max(1, len(samples)) * 1e6
    emit("result", lost=lost, client_cpu_us_per_rt=cpu_us, **rr_summary(samples))
    transport.close()


# -- connection rate and memory: a 1 KB echo server holding idle connections --


async def echo1k_server(p: Params, control: Control) -> None:
    """Each connection: read 1 KB, write it back, wait for EOF, close.
    A connection that sends nothing stays open and idle (a pending read)."""
    stats = {"accepted": 0, "completed": 0, "errors": 0}
    errors: list[str] = []
    keep: set[asyncio.StreamWriter] = set()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats["accepted"] += 1
        keep.add(writer)
        try:
            data = await reader.readexactly(1024)
            writer.write(data)
            await writer.drain()
            await reader.read()  # the client's FIN
            writer.close()
            await writer.wait_closed()
            stats["completed"] += 1
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            stats["errors"] += 1
            if len(errors) < 5:
                errors.append(repr(exc))
        finally:
            keep.discard(writer)

    def mark() -> None:
        gc.collect()
        emit("mark", t=time.perf_counter(), cpu=cpu_seconds(), rss=rss_bytes(),
             open=len(keep), error_samples=errors[:5], **stats)

    control.handlers["mark"] = mark
    _server, port = await start_stream_server(p["impl"], handler, p)  # referenced while serving
    await asyncio.sleep(0.2)  # let the loop settle before any baseline
    emit("ready", port=port)
    await forever()


async def open_many(impl: str, port: int, p: Params, count: int, concurrency: int,
                    endpoint: Any) -> tuple[list[StreamPair], int, list[str]]:
    """Open ``count`` idle connections, ``concurrency`` handshakes at a time."""
    pairs: list[StreamPair] = []
    errors: list[str] = []
    it = iter(range(count))

    async def opener() -> None:
        for _ in it:
            try:
                pairs.append(await asyncio.wait_for(open_stream(impl, port, p, endpoint), OP_TIMEOUT))
            except (OSError, asyncio.TimeoutError) as exc:
                errors.append(repr(exc))

    await asyncio.gather(*(opener() for _ in range(concurrency)))
    return pairs, len(errors), errors[:5]


async def connrate_client(p: Params, control: Control) -> None:
    impl, port = p["impl"], p["port"]
    raise_fd_limit()
    held: list[StreamPair] = []
    held_errors = 0
    if int(p.get("held", 0)):
        t0 = time.perf_counter()
        endpoint = await shared_client_endpoint(impl, p)
        held, held_errors, _ = await open_many(impl, port, p, int(p["held"]), 64, endpoint)
        emit("held", count=len(held), errors=held_errors, elapsed=time.perf_counter() - t0)
    else:
        emit("held", count=0, errors=0, elapsed=0.0)
    await control.go.wait()

    payload = bytes(1024)
    duration, concurrency, max_conns = float(p["duration"]), int(p["concurrency"]), int(p["max_conns"])
    completed = 0
    started = 0
    errors: list[str] = []
    latencies: list[float] = []
    t_last = 0.0

    async def one() -> None:
        reader, writer = await open_stream(impl, port, p)
        writer.write(payload)
        await reader.readexactly(1024)
        writer.close()
        await writer.wait_closed()

    t0, cpu0 = time.perf_counter(), cpu_seconds()
    deadline = t0 + duration

    async def worker() -> None:
        nonlocal completed, started, t_last
        while time.perf_counter() < deadline and started < max_conns:
            started += 1
            s = time.perf_counter()
            try:
                await asyncio.wait_for(one(), OP_TIMEOUT)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
                errors.append(repr(exc))
                continue
            t_last = time.perf_counter()
            latencies.append(t_last - s)
            completed += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = (t_last or time.perf_counter()) - t0
    cpu = cpu_seconds() - cpu0
    emit("result", completed=completed, errors=len(errors), error_samples=errors[:5], elapsed=elapsed,
         cpu=cpu, conns_per_s=completed / elapsed if elapsed > 0 else 0.0,
         latency_ms_median=statistics.median(latencies) * 1e3 if latencies else None,
         held=len(held), held_errors=held_errors)
    os._exit(0)  # no graceful teardown of the held connections


async def memory_client(p: Params, control: Control) -> None:
    impl, port, count = p["impl"], p["port"], int(p["count"])
    raise_fd_limit()
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    endpoint = await shared_client_endpoint(impl, p)
    pairs, nerr, samples = await open_many(impl, port, p, count, int(p.get("concurrency", 64)), endpoint)
    elapsed = time.perf_counter() - t0
    gc.collect()
    emit("opened", count=len(pairs), errors=nerr, error_samples=samples, elapsed=elapsed,
         client_bytes_per_conn=(rss_bytes() - rss0) / max(1, len(pairs)))
    await forever()  # hold them open until the orchestrator stops us


# -- SYN flood: echo server, legitimate client, flooder (benchmarks/_synflood.py) --


async def synflood_server(p: Params, control: Control) -> None:
    """An echo server with default options: rudp on 127.0.0.1, or kernel TCP
    (backlog 128) at the namespace address the process was moved into."""
    errors: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError) as exc:
            if len(errors) < 5:
                errors.append(repr(exc))
        finally:
            writer.close()

    if p["impl"] == "rudp":
        import rudp

        server: Any = await rudp.start_server(handler, p["host"], 0, **stream_options(p))
    else:
        server = await asyncio.start_server(handler, p["host"], 0, backlog=128)

    def mark() -> None:
        stats = server.stats() if p["impl"] == "rudp" else {}
        emit("mark", t=time.perf_counter(), cpu=cpu_seconds(), rss=rss_bytes(), stats=stats,
             handler_errors=errors[:5])

    control.handlers["mark"] = mark
    await asyncio.sleep(0.2)  # let the loop settle before any baseline
    emit("ready", port=server.sockets[0].getsockname()[1])
    await forever()


async def synflood_client(p: Params, control: Control) -> None:
    """Legitimate connections, one started every ``period_s`` whether or not
    the previous one has finished (so slow handshakes neither thin out the
    samples nor hide their own delay): handshake (timed), a 32-byte echo,
    close. A no-flood phase, then (after ``go``) the phase under flood; each
    ends once its last attempt has finished, with a summary."""
    import _synflood

    impl, host, port = p["impl"], p["host"], int(p["port"])
    timeout, period = float(p["connect_timeout"]), float(p["period_s"])
    msg = b"legitimate client, 32 bytes...\n"
    closing: set[asyncio.Task[None]] = set()
    if impl == "rudp":
        import rudp

    async def close(writer: asyncio.StreamWriter) -> None:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), timeout)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass

    async def attempt(t_phase: float) -> dict[str, Any]:
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"t": round(t0 - t_phase, 3), "ok": False, "connect_ms": None, "error": None}
        try:
            if impl == "rudp":
                opened = rudp.open_connection(host, port, connect_timeout=timeout, **stream_options(p))
                reader, writer = await asyncio.wait_for(opened, timeout + 1.0)  # backstop only
            else:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            rec["error"] = f"connect: {type(exc).__name__}"
            return rec
        t1 = time.perf_counter()
        rec["connect_ms"] = (t1 - t0) * 1e3
        try:
            writer.write(msg)
            data = await asyncio.wait_for(reader.readexactly(len(msg)), timeout)
            rec["ok"] = data == msg
            if not rec["ok"]:
                rec["error"] = "echo: wrong bytes"
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
            rec["error"] = f"echo: {type(exc).__name__}"
        rec["total_ms"] = (time.perf_counter() - t0) * 1e3
        task = asyncio.ensure_future(close(writer))  # not part of the attempt
        closing.add(task)
        task.add_done_callback(closing.discard)
        return rec

    async def open_stream_to_server() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if impl == "rudp":
            return await rudp.open_connection(host, port, connect_timeout=timeout, **stream_options(p))
        return await asyncio.open_connection(host, port)

    # One connection made before any flood, echoing 1 KB every 20 ms through
    # both phases: what a flood costs the server's established connections.
    held_reader, held_writer = await open_stream_to_server()
    held_msg = bytes(range(256)) * 4

    async def held_echoes(seconds: float) -> dict[str, Any]:
        rtts: list[float] = []
        failed = 0
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            try:
                held_writer.write(held_msg)
                echoed = await asyncio.wait_for(held_reader.readexactly(len(held_msg)), 5.0)
                if echoed != held_msg:
                    raise ValueError("echo: wrong bytes")
                rtts.append((time.perf_counter() - t0) * 1e3)
            except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                failed += 1
                break  # the stream is no longer usable
            await asyncio.sleep(max(0.0, 0.02 - (time.perf_counter() - t0)))
        return {"echoes": len(rtts), "failed": failed, "ms_p50": _synflood.percentile(rtts, 50),
                "ms_p99": _synflood.percentile(rtts, 99), "ms_max": max(rtts) if rtts else None}

    async def phase(seconds: float) -> dict[str, Any]:
        tasks: list[asyncio.Task[dict[str, Any]]] = []
        held = asyncio.ensure_future(held_echoes(seconds))
        t_phase, cpu0 = time.perf_counter(), cpu_seconds()
        i = 0
        while (start := t_phase + i * period) < t_phase + seconds:
            delay = start - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(attempt(t_phase)))
            i += 1
        attempts = list(await asyncio.gather(*tasks))
        failed = [a for a in attempts if not a["ok"]]
        return {"summary": _synflood.phase_summary(attempts), "failed_samples": failed[:20],
                "held": await held,
                "elapsed": time.perf_counter() - t_phase, "cpu_s": cpu_seconds() - cpu0}

    await attempt(time.perf_counter())  # warm-up (imports, first socket): not counted
    emit("baseline", **await phase(float(p["baseline_s"])))
    await control.go.wait()
    emit("result", **await phase(float(p["flood_s"])))
    os._exit(0)


async def synflood_flooder(p: Params, control: Control) -> None:
    """Spoofed SYNs at the server until ``stop`` (see benchmarks/_synflood.py)."""
    import functools

    import _synflood

    stop = threading.Event()
    control.handlers["stop"] = stop.set
    loop = asyncio.get_running_loop()
    common: dict[str, Any] = {"max_seconds": float(p["max_seconds"]), "max_count": int(p["max_count"]),
              "rate": float(p.get("rate") or 0.0), "on_start": lambda: emit("flooding")}
    if p["impl"] == "rudp":
        fn = functools.partial(_synflood.flood_rudp, int(p["port"]), stop, tail=float(p["tail_s"]), **common)
    else:
        fn = functools.partial(_synflood.flood_kernel, p["host"], int(p["port"]), stop, **common)
    # In a thread, so that the loop stays free to take ``stop`` from the orchestrator.
    cpu0 = cpu_seconds()
    res = await loop.run_in_executor(None, fn)
    emit("result", cpu_s=cpu_seconds() - cpu0, **res)


# -- lossy link: one transfer through the router namespace (see _lossy.py) ----

#: Offsets in struct tcp_info (linux/tcp.h); the RTO counters exist since Linux 6.7.
_TCPI_U32 = {"rto_us": 8, "lost": 32, "retrans": 36, "rtt_us": 68, "snd_cwnd": 80, "total_retrans": 100,
             "segs_out": 136, "min_rtt_us": 148, "data_segs_out": 156}
_TCPI_U64 = {"bytes_sent": 200, "bytes_retrans": 208}
_TCPI_U16 = {"total_rto": 240, "total_rto_recoveries": 242}


def tcp_info(sock: Any) -> dict[str, int]:
    """The sender's struct tcp_info, only the fields the kernel filled in."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)
    out = {"tcp_info_len": len(raw), "ca_state": raw[1], "backoff": raw[4]}
    for fields, fmt, size in ((_TCPI_U32, "=I", 4), (_TCPI_U64, "=Q", 8), (_TCPI_U16, "=H", 2)):
        for name, off in fields.items():
            if off + size <= len(raw):
                out[name] = struct.unpack_from(fmt, raw, off)[0]
    return out


async def lossy_receiver(p: Params, control: Control) -> None:
    """Reads one connection to its end: bytes, first/last read times and the
    longest gap between reads that delivered new in-order bytes."""
    done = asyncio.Event()
    res: dict[str, Any] = {}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = reads = 0
        t_first = t_last = None
        gap = 0.0
        try:
            while data := await reader.read(1 << 18):
                now = time.perf_counter()
                if t_last is None:
                    t_first = now
                else:
                    gap = max(gap, now - t_last)
                t_last = now
                n += len(data)
                reads += 1
        except (ConnectionError, OSError) as exc:
            res["error"] = f"receiver: {type(exc).__name__}: {exc}"
        res.update(bytes=n, reads=reads, t_first=t_first, t_last=t_last, max_gap=gap)
        done.set()
        writer.close()  # our FIN tells the sender everything arrived
        try:
            await asyncio.wait_for(writer.wait_closed(), 5.0)
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass

    if p["impl"] == "rudp":
        import rudp

        server: Any = await rudp.start_server(handler, p["host"], 0, **lossy_rudp_options(p))
    else:
        server = await asyncio.start_server(handler, p["host"], 0)
    cpu0 = cpu_seconds()
    emit("ready", port=server.sockets[0].getsockname()[1])
    await done.wait()
    if "error" in res:
        emit("error", error=res["error"])
        return
    emit("result", cpu=cpu_seconds() - cpu0, **res)
    await asyncio.sleep(0.5)  # the FIN's retransmissions, if the orchestrator lets us
    server.close()


def lossy_rudp_options(p: Params) -> dict[str, Any]:
    opts = stream_options(p)
    if p.get("rudp_cc"):
        opts["congestion_control"] = p["rudp_cc"]
    return opts


async def lossy_sender(p: Params, control: Control) -> None:
    """Connects, writes ``size`` bytes, half-closes and waits for the
    receiver's FIN; reports its start time and the stack's loss counters."""
    host, port, size = p["host"], int(p["port"]), int(p["size"])
    cpu0 = cpu_seconds()
    if p["impl"] == "tcp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # per socket: the namespace's default controller is whatever the host's is
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, p["tcp_cc"].encode())
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), 30.0)
        reader, writer = await asyncio.open_connection(sock=sock)
    else:
        import rudp

        reader, writer = await asyncio.wait_for(rudp.open_connection(host, port, **lossy_rudp_options(p)), 30.0)
    t0 = time.perf_counter()
    await send_then_await_fin(reader, writer, size)
    t1 = time.perf_counter()
    cpu1 = cpu_seconds()
    info: dict[str, Any] = {}
    if p["impl"] == "tcp":
        sk = writer.get_extra_info("socket")
        info["tcp_info"] = tcp_info(sk)
        info["cc"] = sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).split(b"\0")[0].decode()
    else:
        info["stats"] = writer.get_extra_info("stats")
        conn = writer.get_extra_info("connection")
        info["cc"] = type(conn.cc).__name__ if conn is not None else "?"
    closed = await close_writers([writer], 5.0)
    emit("result", bytes=size, t0=t0, t_end=t1, cpu=cpu1 - cpu0, close_ok=closed, **info)


# -- entry point -----------------------------------------------------------------

Role = Callable[[Params, Control], Coroutine[Any, Any, None]]
ROLES: dict[tuple[str, str, str], Role] = {}
for _impl in ("rudp", "tcp"):
    ROLES["bulk", _impl, "server"] = bulk_stream_server
    ROLES["bulk", _impl, "client"] = bulk_stream_client
    ROLES["rr", _impl, "server"] = rr_stream_server
    ROLES["rr", _impl, "client"] = rr_stream_client
    ROLES["connrate", _impl, "server"] = echo1k_server
    ROLES["connrate", _impl, "client"] = connrate_client
    ROLES["memory", _impl, "server"] = echo1k_server
    ROLES["memory", _impl, "client"] = memory_client
ROLES["bulk", "udp", "server"] = bulk_udp_server
ROLES["bulk", "udp", "client"] = bulk_udp_client
ROLES["bulk", "aioquic", "server"] = bulk_quic_server
ROLES["bulk", "aioquic", "client"] = bulk_quic_client
ROLES["bulk", "kcp", "server"] = bulk_kcp_server
ROLES["bulk", "kcp", "client"] = bulk_kcp_client
ROLES["rr", "udp", "server"] = rr_udp_server
ROLES["rr", "udp", "client"] = rr_udp_client
ROLES["rr", "floor", "server"] = rr_stream_server  # the same workers on _floor.py's streams
ROLES["rr", "floor", "client"] = rr_stream_client
ROLES["connrate", "floor", "server"] = echo1k_server
ROLES["connrate", "floor", "client"] = connrate_client
for _impl in ("rudp", "tcp_netns"):
    ROLES["synflood", _impl, "server"] = synflood_server
    ROLES["synflood", _impl, "client"] = synflood_client
    ROLES["synflood", _impl, "flooder"] = synflood_flooder
for _impl in ("rudp", "tcp"):
    ROLES["lossy", _impl, "server"] = lossy_receiver
    ROLES["lossy", _impl, "client"] = lossy_sender


def main(argv: list[str]) -> int:
    role, params = argv[1], json.loads(argv[2])
    kind = params["kind"]
    if params.get("netns"):  # before any thread starts: the whole process moves
        import _synflood

        _synflood.enter_netns(params["netns"])
    fn = ROLES[kind, params["impl"], role]
    if params.get("compiled"):
        import rudp.core
        if not rudp.core.COMPILED:
            emit("error", error=f"asked for the compiled core, loaded {rudp.core.__file__}")
            return 1
    deadline = float(params.get("deadline", 120.0))
    # Backstop in a thread: fires even if the event loop is stuck.
    def expire() -> None:
        emit("error", error=f"worker deadline {deadline:.0f} s")
        os._exit(3)

    timer = threading.Timer(deadline, expire)
    timer.daemon = True
    timer.start()
    async def run() -> None:
        await fn(params, Control(asyncio.get_running_loop()))

    try:
        run_loop(params["loop"], run)
    except BaseException as exc:  # report, never hang
        emit("error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        sys.stdout.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown (no lingering sockets or threads)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
