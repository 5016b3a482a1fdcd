"""TLS over rudp (rudp.aio.tls), on the default loop and on uvloop.

Certificates are made per session (tests/tlscerts.py). Where asyncio has a
say (which exception, which message), the test asks asyncio itself over a
kernel TCP socket on loopback and expects the same from rudp.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

pytest.importorskip("cryptography", reason="the test extra's cryptography makes the certificates")

import rudp  # noqa: E402
from rudp.aio.tls import TlsTransport  # noqa: E402
from tests.tlscerts import Pki, make_pki  # noqa: E402

STEP = 15.0  # bound on any single wait
Run = Callable[..., Any]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(Path(tmp_path_factory.mktemp("pki")))


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def write_all(writer: asyncio.StreamWriter, data: bytes, chunk: int = 1 << 16) -> None:
    for i in range(0, len(data), chunk):
        writer.write(data[i : i + chunk])
        await asyncio.wait_for(writer.drain(), STEP)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def port_of(server: Any) -> int:
    return int(server.sockets[0].getsockname()[1])


# --------------------------------------------------------------------------


def test_echo_a_few_megabytes_sha256(run: Run, pki: Pki) -> None:
    """4 MB each way through TLS; the server sees close_notify as EOF."""
    data = payload(4_000_000, 1)
    server_saw: dict[str, Any] = {}

    async def counting_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        h = hashlib.sha256()
        while chunk := await reader.read(1 << 16):
            h.update(chunk)
            writer.write(chunk)
            await writer.drain()
        server_saw.update(digest=h.digest(), eof=reader.at_eof())
        writer.close()
        await writer.wait_closed()

    async def main() -> None:
        server = await rudp.start_server(counting_echo, "127.0.0.1", 0, ssl=pki.server_context())
        async with server:
            reader, writer = await rudp.open_connection(
                "127.0.0.1", port_of(server), ssl=pki.client_context(), server_hostname="localhost")
            assert isinstance(writer.transport, TlsTransport)
            sender = asyncio.ensure_future(write_all(writer, data))
            got = await asyncio.wait_for(reader.readexactly(len(data)), 60)
            await sender
            assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
            writer.close()  # close_notify, the peer's close_notify, FIN
            await asyncio.wait_for(writer.wait_closed(), STEP)
            assert await reader.read() == b""
        assert server_saw == {"digest": hashlib.sha256(data).digest(), "eof": True}

    run(main())


def test_echo_through_a_lossy_relay(run: Run, pki: Pki) -> None:
    """1 MB each way through a relay that drops, duplicates and reorders
    datagrams: every TLS record authenticates (AES-GCM would fail on a
    single wrong, missing or repeated byte of the stream) and the SHA-256 matches."""
    from rudp.tools.proxy import LossyProxy

    data = payload(1_000_000, 7)

    async def main() -> None:
        server = await rudp.start_server(echo, "127.0.0.1", 0, ssl=pki.server_context())
        port = port_of(server)
        proxy = LossyProxy(("127.0.0.1", port), loss=0.03, duplicate=0.02, reorder=0.1,
                           delay=0.002, seed=11)
        host, relay_port = await proxy.start()
        try:
            # The relay outlives the server's wait_closed: the server's last
            # FIN or its ACK may need a retransmission through it.
            async with server:
                reader, writer = await rudp.open_connection(
                    host, relay_port, remote_port=port, ssl=pki.client_context(),
                    server_hostname="localhost")
                sender = asyncio.ensure_future(write_all(writer, data))
                got = await asyncio.wait_for(reader.readexactly(len(data)), 90)
                await sender
                assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
                assert writer.get_extra_info("stats")["retransmits"] > 0
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 30)
        finally:
            proxy.close()
        assert proxy.dropped > 0

    run(main())


def test_extra_info(run: Run, pki: Pki) -> None:
    """ssl_object, peercert, cipher on both sides; the connection's own extra
    info still shows through."""
    seen: dict[str, Any] = {}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.update(ssl_object=writer.get_extra_info("ssl_object"),
                    peercert=writer.get_extra_info("peercert"),
                    cipher=writer.get_extra_info("cipher"))
        await echo(reader, writer)

    async def main() -> None:
        server = await rudp.start_server(handler, "127.0.0.1", 0, ssl=pki.server_context())
        async with server:
            reader, writer = await rudp.open_connection(
                "127.0.0.1", port_of(server), ssl=pki.client_context(), server_hostname="localhost")
            sslobj = writer.get_extra_info("ssl_object")
            assert isinstance(sslobj, ssl.SSLObject) and sslobj.version() == "TLSv1.3"
            assert sslobj.server_hostname == "localhost"
            cert = writer.get_extra_info("peercert")
            assert dict(x[0] for x in cert["subject"])["commonName"] == "localhost"
            assert ("DNS", "localhost") in cert["subjectAltName"]
            name, version, bits = writer.get_extra_info("cipher")
            assert version == "TLSv1.3" and bits >= 128 and name == sslobj.cipher()[0]
            assert isinstance(writer.get_extra_info("sslcontext"), ssl.SSLContext)
            assert writer.get_extra_info("peername")[1] == port_of(server)  # the connection's
            assert writer.get_extra_info("stats")["segments_sent"] > 0
            assert writer.get_extra_info("no such thing", 42) == 42
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            assert seen["ssl_object"].server_side and seen["peercert"] is None  # no client cert
            assert seen["cipher"] == writer.get_extra_info("cipher")
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), STEP)

    run(main())


def test_bad_certificate_is_ssl_cert_verification_error(run: Run, pki: Pki) -> None:
    """An unknown CA, and a name the certificate does not carry: both fail in
    open_connection with ssl.SSLCertVerificationError, and the server's
    handler never runs."""
    handled = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handled.append(writer)
        writer.close()

    async def main() -> None:
        server = await rudp.start_server(handler, "127.0.0.1", 0, ssl=pki.server_context())
        async with server:
            port = port_of(server)
            with pytest.raises(ssl.SSLCertVerificationError) as unknown:
                await rudp.open_connection("127.0.0.1", port, server_hostname="localhost",
                                           ssl=pki.client_context(trust_other_ca=True))
            assert "certificate verify failed" in str(unknown.value)
            with pytest.raises(ssl.SSLCertVerificationError) as mismatch:
                await rudp.open_connection("127.0.0.1", port, ssl=pki.client_context(),
                                           server_hostname="not-localhost.example")
            assert "Hostname mismatch" in str(mismatch.value)
            with pytest.raises(ssl.SSLCertVerificationError):  # ssl=True: the system's CAs
                await rudp.open_connection("127.0.0.1", port, ssl=True, server_hostname="localhost")
            # The default server_hostname is the host: 127.0.0.1 is in the certificate.
            _, writer = await rudp.open_connection("127.0.0.1", port, ssl=pki.client_context())
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), STEP)
        assert handled and len(handled) == 1

    run(main())


async def _asyncio_handshake_timeout(timeout: float) -> BaseException:
    """What asyncio's own open_connection raises against a TCP peer that never speaks TLS."""
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        with pytest.raises(OSError) as info:
            await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port_of(server), ssl=ssl.create_default_context(),
                server_hostname="localhost", ssl_handshake_timeout=timeout), STEP)
        return info.value
    finally:
        server.close()


def test_handshake_timeout_as_asyncio(run: Run, pki: Pki) -> None:
    """A client against a peer that never speaks TLS gets what asyncio gives
    (ConnectionAbortedError, same message); a TLS server drops a client that
    never speaks TLS after its timeout without calling the handler."""
    handled = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handled.append(writer)

    async def main() -> None:
        expected = await _asyncio_handshake_timeout(0.5)

        writers = []  # accepts, never speaks
        plain = await rudp.start_server(lambda r, w: writers.append(w), "127.0.0.1", 0)
        async with plain:
            with pytest.raises(OSError) as info:
                await rudp.open_connection("127.0.0.1", port_of(plain), ssl=pki.client_context(),
                                           server_hostname="localhost", ssl_handshake_timeout=0.5)
            plain.close_clients()
        assert type(info.value) is type(expected) is ConnectionAbortedError
        assert str(info.value) == str(expected)

        server = await rudp.start_server(handler, "127.0.0.1", 0, ssl=pki.server_context(),
                                         ssl_handshake_timeout=0.5)
        async with server:
            reader, writer = await rudp.open_connection("127.0.0.1", port_of(server))
            # The server aborts: the plain client hears the reset.
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), STEP)
            writer.close()
        assert not handled

    run(main())


def test_handshake_cut_short_is_an_error_not_success(run: Run, pki: Pki) -> None:
    """The peer closes during the handshake: open_connection raises
    ConnectionResetError (never returns a dead TLS transport)."""
    async def main() -> None:
        async def closer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)  # the ClientHello arrived
            writer.close()

        plain = await rudp.start_server(closer, "127.0.0.1", 0)
        async with plain:
            with pytest.raises(ConnectionResetError):
                await rudp.open_connection("127.0.0.1", port_of(plain), ssl=pki.client_context(),
                                           server_hostname="localhost")

        async def resetter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            writer.transport.abort()

        plain = await rudp.start_server(resetter, "127.0.0.1", 0)
        async with plain:
            with pytest.raises(ConnectionResetError):
                await rudp.open_connection("127.0.0.1", port_of(plain), ssl=pki.client_context(),
                                           server_hostname="localhost")

    run(main())


def test_cancelled_during_the_handshake_resets_the_connection(run: Run, pki: Pki) -> None:
    """open_connection cancelled while the TLS handshake waits: the rudp
    connection is aborted, and the peer hears the reset."""
    async def main() -> None:
        reset: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        accepted = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.set()
            try:
                await reader.read()
                reset.set_result(None)
            except ConnectionResetError as exc:
                reset.set_result(exc)

        plain = await rudp.start_server(silent, "127.0.0.1", 0)
        async with plain:
            opening = asyncio.ensure_future(rudp.open_connection(
                "127.0.0.1", port_of(plain), ssl=pki.client_context(), server_hostname="localhost"))
            await asyncio.wait_for(accepted.wait(), STEP)  # the ClientHello is on its way
            opening.cancel()
            with pytest.raises(asyncio.CancelledError):
                await opening
            assert isinstance(await asyncio.wait_for(reset, STEP), ConnectionResetError)

    run(main())


def test_starttls_upgrade(run: Run, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    """A plain exchange, then writer.start_tls on both sides (STARTTLS), then
    1 MB echoed over TLS on the same rudp connection; the stream protocols
    know they are over TLS now (no half-close to keep open for)."""
    data = payload(1_000_000, 2)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readline() == b"STARTTLS\r\n"
        writer.write(b"220 go ahead\r\n")
        await writer.start_tls(pki.server_context())
        assert writer.get_extra_info("ssl_object").server_side
        await echo(reader, writer)

    async def main() -> None:
        server = await rudp.start_server(handler, "127.0.0.1", 0)
        async with server:
            reader, writer = await rudp.open_connection("127.0.0.1", port_of(server))
            conn = writer.get_extra_info("connection")
            assert writer.get_extra_info("ssl_object") is None and writer.can_write_eof()
            writer.write(b"STARTTLS\r\n")
            assert await reader.readline() == b"220 go ahead\r\n"
            await writer.start_tls(pki.client_context(), server_hostname="localhost")
            assert isinstance(writer.transport, TlsTransport)
            assert writer.get_extra_info("connection") is conn  # the same rudp connection
            assert writer.get_extra_info("cipher")[1] == "TLSv1.3"
            sender = asyncio.ensure_future(write_all(writer, data))
            got = await asyncio.wait_for(reader.readexactly(len(data)), 60)
            await sender
            assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), STEP)
        # A failed upgrade raises (a peer that never answers TLS), as asyncio's.
        writers = []
        silent = await rudp.start_server(lambda r, w: writers.append(w), "127.0.0.1", 0)
        async with silent:
            reader, writer = await rudp.open_connection("127.0.0.1", port_of(silent))
            with pytest.raises(TypeError):
                await writer.start_tls("not a context")  # type: ignore[arg-type]
            with pytest.raises(ConnectionAbortedError, match="SSL handshake is taking longer"):
                await writer.start_tls(pki.client_context(), server_hostname="localhost",
                                       ssl_handshake_timeout=0.5)
            assert writer.is_closing()
            with pytest.raises(ConnectionAbortedError):  # the reader hears why
                await asyncio.wait_for(reader.read(), STEP)
            writer.close()
            silent.close_clients()

    run(main())
    assert not [r for r in caplog.records if "has no effect when using ssl" in r.getMessage()]


def test_backpressure_drain_blocks_while_reader_paused(run: Run, pki: Pki) -> None:
    """The server reads nothing: the client's drain() blocks with a bounded
    amount in flight; once the server reads, everything arrives intact."""
    chunk = payload(1 << 16, 3)
    state: dict[str, Any] = {}

    async def main() -> None:
        start_reading = asyncio.Event()
        received: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()

        async def lazy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await start_reading.wait()
            h = hashlib.sha256()
            n = 0
            while data := await reader.read(1 << 16):
                h.update(data)
                n += len(data)
            received.set_result((n, h.digest()))
            writer.close()

        server = await rudp.start_server(lazy, "127.0.0.1", 0, ssl=pki.server_context())
        async with server:
            reader, writer = await rudp.open_connection(
                "127.0.0.1", port_of(server), ssl=pki.client_context(), server_hostname="localhost")
            sent = 0
            blocked = None
            for _ in range(400):  # at most 26 MB
                writer.write(chunk)
                sent += len(chunk)
                drain = asyncio.ensure_future(writer.drain())
                done, _ = await asyncio.wait({drain}, timeout=0.5)
                if not done:
                    blocked = drain
                    break
            assert blocked is not None, f"drain() never blocked after {sent} bytes"
            state["sent_when_blocked"] = sent
            assert writer.transport.get_write_buffer_size() >= writer.transport.get_write_buffer_limits()[1]
            start_reading.set()
            await asyncio.wait_for(blocked, STEP)
            for _ in range(8):
                writer.write(chunk)
                sent += len(chunk)
                await asyncio.wait_for(writer.drain(), STEP)
            writer.close()  # close_notify after the data: the server reads to EOF
            n, digest = await asyncio.wait_for(received, 60)
            assert n == sent and digest == hashlib.sha256(chunk * (sent // len(chunk))).digest()
            await asyncio.wait_for(writer.wait_closed(), STEP)

    run(main())
    # Bounded: the TLS write buffer (512 KiB), the connection's send buffer
    # (1 MiB), the peer's receive buffer and its TLS and stream buffers.
    assert state["sent_when_blocked"] < 8_000_000, state
    print(f"drain() blocked after {state['sent_when_blocked']} bytes")


def test_close_and_abort(run: Run, pki: Pki) -> None:
    """close(): data, close_notify both ways, EOF, clean connection_lost;
    writes after close are dropped; abort(): the peer's read fails with
    ConnectionResetError; the server closing first delivers its data then EOF."""
    async def main() -> None:
        events: asyncio.Queue[Any] = asyncio.Queue()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            first = await reader.readexactly(5)
            await events.put(first)
            if first == b"close":
                writer.write(b"x" * 100_000)
                writer.close()  # the client reads the data, then EOF
                await writer.wait_closed()
                await events.put("server closed")
                return
            try:
                data = await reader.read()
                await events.put(("eof", data))
            except ConnectionResetError as exc:
                await events.put(("reset", type(exc)))
            writer.close()

        server = await rudp.start_server(handler, "127.0.0.1", 0, ssl=pki.server_context())
        async with server:
            port = port_of(server)
            ctx = pki.client_context()
            # 1. Client close: the server reads everything, then EOF.
            reader, writer = await rudp.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
            writer.write(b"hello world")
            assert await asyncio.wait_for(events.get(), STEP) == b"hello"
            writer.close()
            writer.write(b"dropped")  # asyncio drops writes on a closing TLS transport
            assert writer.is_closing()
            await asyncio.wait_for(writer.wait_closed(), STEP)
            assert await asyncio.wait_for(events.get(), STEP) == ("eof", b" world")
            # 2. Client abort: RST, the server's read fails.
            reader, writer = await rudp.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
            writer.write(b"abort")
            assert await asyncio.wait_for(events.get(), STEP) == b"abort"
            writer.transport.abort()
            assert writer.is_closing()
            await asyncio.wait_for(writer.wait_closed(), STEP)
            assert await asyncio.wait_for(events.get(), STEP) == ("reset", ConnectionResetError)
            # 3. Server close: data first, then EOF.
            reader, writer = await rudp.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
            writer.write(b"close")
            assert await asyncio.wait_for(events.get(), STEP) == b"close"
            assert await asyncio.wait_for(reader.readexactly(100_000), STEP) == b"x" * 100_000
            assert await asyncio.wait_for(reader.read(), STEP) == b""
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), STEP)
            assert await asyncio.wait_for(events.get(), STEP) == "server closed"

    run(main())


def test_shutdown_timeout_reaches_connection_lost(run: Run, pki: Pki) -> None:
    """A peer that never answers close_notify: after ssl_shutdown_timeout the
    connection is aborted and wait_closed() raises asyncio's TimeoutError."""
    async def main() -> None:
        release = asyncio.Event()

        async def stuck(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.transport.pause_reading()  # never sees the close_notify
            await release.wait()
            writer.transport.abort()

        server = await rudp.start_server(stuck, "127.0.0.1", 0, ssl=pki.server_context())
        async with server:
            reader, writer = await rudp.open_connection(
                "127.0.0.1", port_of(server), ssl=pki.client_context(), server_hostname="localhost",
                ssl_shutdown_timeout=0.5)
            writer.close()
            with pytest.raises(TimeoutError, match="SSL shutdown timed out"):
                await asyncio.wait_for(writer.wait_closed(), STEP)
            release.set()

    run(main())


def test_tls_over_ipv6(run: Run, pki: Pki) -> None:
    """The server on ::1; the client verifies the certificate's IP ::1 (the
    default server_hostname is the host) and echoes 1 MB."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    data = payload(1_000_000, 4)

    async def main() -> None:
        server = await rudp.start_server(echo, "::1", 0, ssl=pki.server_context())
        async with server:
            reader, writer = await rudp.open_connection("::1", port_of(server), ssl=pki.client_context())
            assert writer.get_extra_info("peername")[0] == "::1"
            assert writer.get_extra_info("ssl_object").server_hostname == "::1"
            sender = asyncio.ensure_future(write_all(writer, data))
            got = await asyncio.wait_for(reader.readexactly(len(data)), 60)
            await sender
            assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), STEP)

    run(main())


def test_protocol_level_create_connection_and_server(run: Run, pki: Pki) -> None:
    """create_connection/create_server with ssl=: connection_made only after
    the handshake, the transport is the TLS one, connection_lost(None) on close."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[Any] = loop.create_future()

        class Echo(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert transport.get_extra_info("ssl_object") is not None  # handshake done
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                self.transport.write(data)  # type: ignore[attr-defined]

        class Client(asyncio.Protocol):
            def __init__(self) -> None:
                self.buf = bytearray()
                self.got = loop.create_future()

            def data_received(self, data: bytes) -> None:
                self.buf += data
                if len(self.buf) >= 5 and not self.got.done():
                    self.got.set_result(bytes(self.buf))

            def connection_lost(self, exc: Exception | None) -> None:
                lost.set_result(exc)

        server = await rudp.create_server(Echo, "127.0.0.1", 0, ssl=pki.server_context())
        async with server:
            transport, proto = await rudp.create_connection(
                Client, "127.0.0.1", port_of(server), ssl=pki.client_context(), server_hostname="localhost")
            assert isinstance(transport, TlsTransport) and transport.get_protocol() is proto
            transport.write(b"hello")
            assert await asyncio.wait_for(proto.got, STEP) == b"hello"  # type: ignore[attr-defined]
            transport.close()
            assert await asyncio.wait_for(lost, STEP) is None

    run(main())


def test_rudp_start_tls_on_a_protocol_connection(run: Run, pki: Pki) -> None:
    """rudp.start_tls, the loop.start_tls of rudp, upgrades a create_connection
    transport: the protocol keeps working on the TLS transport it returns."""
    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await writer.start_tls(pki.server_context())
            await echo(reader, writer)

        class Client(asyncio.Protocol):
            def __init__(self) -> None:
                self.got = loop.create_future()

            def data_received(self, data: bytes) -> None:
                if not self.got.done():
                    self.got.set_result(data)

        server = await rudp.start_server(handler, "127.0.0.1", 0)
        async with server:
            plain, proto = await rudp.create_connection(Client, "127.0.0.1", port_of(server))
            transport = await rudp.start_tls(plain, proto, pki.client_context(), server_hostname="localhost")
            assert transport.get_protocol() is proto and plain.get_protocol() is not proto
            transport.write(b"secret")
            assert await asyncio.wait_for(proto.got, STEP) == b"secret"  # type: ignore[attr-defined]
            transport.close()

    run(main())


def test_argument_checks(run: Run, pki: Pki) -> None:
    """The same argument errors as asyncio's create_connection/create_server."""
    async def main() -> None:
        with pytest.raises(ValueError, match="server_hostname is only meaningful with ssl"):
            await rudp.open_connection("127.0.0.1", 9, server_hostname="x")
        with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful with ssl"):
            await rudp.open_connection("127.0.0.1", 9, ssl_handshake_timeout=1.0)
        with pytest.raises(ValueError, match="ssl_shutdown_timeout should be a positive number"):
            await rudp.open_connection("127.0.0.1", 9, ssl=pki.client_context(), ssl_shutdown_timeout=0)
        with pytest.raises(TypeError, match="SSLContext"):
            await rudp.start_server(echo, "127.0.0.1", 0, ssl=True)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="ssl_handshake_timeout is only meaningful with ssl"):
            await rudp.start_server(echo, "127.0.0.1", 0, ssl_handshake_timeout=1.0)

    run(main())


def test_readme_snippet_runs(tmp_path: Path) -> None:
    """The README's TLS example, certificate command included, runs as shown."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command for the README's certificate")
    root = Path(__file__).resolve().parent.parent
    text = (root / "README.md").read_text()
    match = re.search(r"<!-- tls-snippet -->\n```python\n(.*?)```", text, re.S)
    assert match, "README lost its TLS snippet"
    code = match.group(1)
    command = re.match(r"# (openssl .*?)\n(?!#)", code.replace("\\\n#  ", " "), re.S)
    assert command, "the snippet's first lines give the openssl command"
    subprocess.run(shlex.split(command.group(1)), cwd=tmp_path, check=True, capture_output=True, timeout=30)
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "'TLSv1.3'" in proc.stdout and "b'hello over TLS\\n'" in proc.stdout, proc.stdout


@pytest.mark.parametrize("first", ["client", "server"])
def test_half_close_over_tls13(run: Run, pki: Pki, first: str) -> None:
    """TLS 1.3's close_notify closes one direction (RFC 8446 §6.1): after
    one side's write_eof the other still sends 1 MB, which arrives whole,
    then closes; both sides end cleanly. Either side may half-close first."""
    data = {"client": payload(1 << 20, 21), "server": payload(1 << 20, 22)}
    got: dict[str, bytes] = {}
    done: dict[str, asyncio.Future[None]] = {}

    async def side(name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert writer.can_write_eof()
        if name == first:
            await write_all(writer, data[name])
            writer.write_eof()  # close_notify: our direction only
            assert writer.can_write_eof()  # still open; a second write_eof does nothing
            writer.write_eof()
            with pytest.raises(RuntimeError, match="after write_eof"):
                writer.write(b"late")
            got[name] = await asyncio.wait_for(reader.read(), STEP)
        else:
            got[name] = await asyncio.wait_for(reader.read(), STEP)  # the peer's close_notify
            assert writer.can_write_eof() and not writer.is_closing()
            await write_all(writer, data[name])  # after the peer's EOF
            writer.close()
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), STEP)
        done[name].set_result(None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done.update(client=loop.create_future(), server=loop.create_future())
        server = await rudp.start_server(lambda r, w: side("server", r, w), "127.0.0.1", 0,
                                         ssl=pki.server_context(), ssl_half_close=True)
        async with server:
            reader, writer = await rudp.open_connection(
                "127.0.0.1", port_of(server), ssl=pki.client_context(), server_hostname="localhost",
                ssl_half_close=True)
            await side("client", reader, writer)
            await asyncio.wait_for(done["server"], STEP)

    run(main())
    assert got["client"] == data["server"] and got["server"] == data["client"]


def test_no_half_close_by_default_as_asyncio(run: Run, pki: Pki) -> None:
    """Without ssl_half_close, TLS 1.3 or not, the transport is asyncio's:
    can_write_eof() is False, write_eof() raises, and a handler that reads
    to EOF sees the connection close (the peer's close() completes)."""
    async def reader_to_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert not writer.can_write_eof()
        with pytest.raises(NotImplementedError):
            writer.write_eof()
        assert await reader.read() == b"bye"

    async def main() -> None:
        server = await rudp.start_server(reader_to_eof, "127.0.0.1", 0, ssl=pki.server_context())
        async with server:
            reader, writer = await rudp.open_connection(
                "127.0.0.1", port_of(server), ssl=pki.client_context(), server_hostname="localhost")
            assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
            assert not writer.can_write_eof()
            writer.write(b"bye")
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), STEP)

    run(main())


def test_no_half_close_before_tls13(run: Run, pki: Pki) -> None:
    """Over TLS 1.2 a close_notify asks for an immediate close: write_eof is
    refused as on asyncio's TLS transports, and the peer's EOF closes both ways."""
    async def main() -> None:
        server = await rudp.start_server(echo, "127.0.0.1", 0, ssl=pki.server_context())
        async with server:
            context = pki.client_context()
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            reader, writer = await rudp.open_connection(
                "127.0.0.1", port_of(server), ssl=context, server_hostname="localhost",
                ssl_half_close=True)
            assert writer.get_extra_info("ssl_object").version() == "TLSv1.2"
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), STEP) == b"ping"
            assert not writer.can_write_eof()
            with pytest.raises(NotImplementedError, match="TLS 1.3 was negotiated"):
                writer.write_eof()
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), STEP)

    run(main())
