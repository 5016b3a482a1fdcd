"""TLS between rudp and the Linux kernel's TCP, through the TUN bridge.

As in tests/test_kernel_interop.py (whose namespace fixture, bridge and
helpers this reuses), each scenario runs in a fresh network namespace in a
subprocess (``python -m tests.test_tls_kernel SCENARIO ARGS``), where a TUN
bridge joins rudp and a kernel TCP socket on one event loop; on the kernel
side TLS is asyncio's own (Python's ssl). The exchange, since TLS cannot
half-close: the client sends an 8-byte length and that many bytes; the
server answers with their SHA-256 and its own bytes, then closes with
close_notify; the client reads to EOF. Both SHA-256s are checked both ways.

Needs root, /dev/net/tun and ``ip netns``: skipped otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import struct
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

pytest.importorskip("cryptography", reason="the test extra's cryptography makes the certificates")

from tests.test_kernel_interop import (  # noqa: E402
    RESULT, STEP, Ctx, _assert_clean, _bridge, netns, payload, run_module_scenario,
)
from tests.tlscerts import make_pki  # noqa: E402

__all__ = ["netns"]  # the fixture, re-exported for pytest
SUBPROCESS_TIMEOUT = 45.0
UP, DOWN = 2_000_000, 2_000_000


def run_scenario(ns: str, name: str, **kwargs: Any) -> dict[str, Any]:
    """Run scenario ``name`` in namespace ``ns``; its JSON facts, or fail with its stderr."""
    return run_module_scenario("tests.test_tls_kernel", SUBPROCESS_TIMEOUT, ("mbit_s", "timings"),
                               ("ca", "cert", "key"), ns, name, kwargs)


def _pki_args(tmp_path: Path) -> dict[str, str]:
    pki = make_pki(tmp_path)
    return {"ca": str(pki.ca_cert), "cert": str(pki.server_cert), "key": str(pki.server_key)}


def _assert_exchange(r: dict[str, Any]) -> None:
    assert r["server_received"] == UP and r["server_digest_ok"], r
    assert r["client_received"] == DOWN and r["client_digest_ok"] and r["client_reply_ok"], r
    assert r["client_saw_eof"], r
    assert r["client_tls"]["version"] == r["server_tls"]["version"] == "TLSv1.3", r
    assert r["client_tls"]["cipher"] == r["server_tls"]["cipher"], r
    assert r["client_tls"]["peer_cn"] == "localhost", r
    _assert_clean(r)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_rudp_tls_client_to_kernel_tls_server(netns: str, tmp_path: Path, loop: str) -> None:
    """rudp's TLS client -> bridge -> asyncio TLS server on a kernel TCP socket."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    r = run_scenario(netns, "exchange", client="rudp", loop=loop, **_pki_args(tmp_path))
    _assert_exchange(r)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_kernel_tls_client_to_rudp_tls_server(netns: str, tmp_path: Path, loop: str) -> None:
    """asyncio TLS client on a kernel TCP socket -> bridge -> rudp's TLS server."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    r = run_scenario(netns, "exchange", client="kernel", loop=loop, **_pki_args(tmp_path))
    _assert_exchange(r)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("client", ["rudp", "kernel"])
def test_starttls_with_the_kernel(netns: str, tmp_path: Path, client: str, loop: str) -> None:
    """A plain line each way, then STARTTLS: rudp's writer.start_tls facing
    asyncio's (the loop's own start_tls) on a kernel socket, in both roles."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    r = run_scenario(netns, "exchange", client=client, loop=loop, starttls=True, **_pki_args(tmp_path))
    _assert_exchange(r)


# --------------------------------------------------------------------------
# Scenario side: runs inside the namespace (python -m tests.test_tls_kernel).


def _tls_facts(writer: asyncio.StreamWriter) -> dict[str, Any]:
    sslobj = writer.get_extra_info("ssl_object")
    cert = writer.get_extra_info("peercert") or {}
    subject = dict(x[0] for x in cert.get("subject", ()))
    return {"version": sslobj.version(), "cipher": sslobj.cipher()[0],
            "peer_cn": subject.get("commonName")}


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, down: bytes,
                 server_ctx: ssl.SSLContext, starttls: bool) -> dict[str, Any]:
    """The server's side: (STARTTLS,) length, data; SHA-256 and ``down``; close."""
    if starttls:
        assert await asyncio.wait_for(reader.readline(), STEP) == b"STARTTLS\r\n"
        writer.write(b"220 ready\r\n")
        await writer.start_tls(server_ctx)
    (n,) = struct.unpack(">Q", await asyncio.wait_for(reader.readexactly(8), STEP))
    h = hashlib.sha256()
    left = n
    while left:
        chunk = await asyncio.wait_for(reader.read(min(left, 1 << 16)), STEP)
        if not chunk:
            raise ConnectionError(f"EOF with {left} bytes to come")
        h.update(chunk)
        left -= len(chunk)
    writer.write(h.digest())
    for i in range(0, len(down), 1 << 16):
        writer.write(down[i : i + (1 << 16)])
        await asyncio.wait_for(writer.drain(), STEP)
    facts = {"n": n, "digest": h.hexdigest(), "tls": _tls_facts(writer)}
    writer.close()  # close_notify, then the connection's FIN
    await asyncio.wait_for(writer.wait_closed(), STEP)
    return facts


async def _client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bytes,
                  client_ctx: ssl.SSLContext, starttls: bool) -> dict[str, Any]:
    if starttls:
        writer.write(b"STARTTLS\r\n")
        assert await asyncio.wait_for(reader.readline(), STEP) == b"220 ready\r\n"
        await writer.start_tls(client_ctx, server_hostname="localhost")
    writer.write(struct.pack(">Q", len(up)))
    for i in range(0, len(up), 1 << 16):
        writer.write(up[i : i + (1 << 16)])
        await asyncio.wait_for(writer.drain(), STEP)
    reply = await asyncio.wait_for(reader.readexactly(32), STEP)
    h = hashlib.sha256()
    n = 0
    while chunk := await asyncio.wait_for(reader.read(1 << 16), STEP):
        h.update(chunk)
        n += len(chunk)
    facts = {"reply": reply, "n": n, "digest": h.hexdigest(), "eof": reader.at_eof(),
             "tls": _tls_facts(writer)}
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), STEP)
    return facts


async def scenario_exchange(client: str, ca: str, cert: str, key: str, starttls: bool = False,
                            **_: Any) -> dict[str, Any]:
    import rudp

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(ca)
    bridge = await _bridge()
    ctx = Ctx(bridge)
    up, down = payload(UP, 5), payload(DOWN, 6)
    served: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            served.set_result(await _serve(reader, writer, down, server_ctx, starttls))
        except BaseException as exc:
            served.set_exception(exc)

    tls_server = None if starttls else server_ctx
    tls_client: dict[str, Any] = {} if starttls else {"ssl": client_ctx, "server_hostname": "localhost"}
    ctx.mark("start")
    if client == "rudp":  # the kernel listens
        server: Any = await asyncio.start_server(handler, bridge.local_ip, 0, ssl=tls_server)
        kport = server.sockets[0].getsockname()[1]
        endpoint = await rudp.create_endpoint("127.0.0.1")
        ctx.endpoints.append(endpoint.endpoint)
        reader, writer = await asyncio.wait_for(rudp.open_connection(
            "127.0.0.1", bridge.udp_address[1], remote_port=kport, endpoint=endpoint, **tls_client), STEP)
    else:  # rudp listens
        server = await rudp.start_server(handler, "127.0.0.1", 0, ssl=tls_server)
        ctx.endpoints.append(server.endpoint.endpoint)
        port = server.sockets[0].getsockname()[1]
        bridge.route(port, ("127.0.0.1", port))
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(bridge.remote_ip, port, **tls_client), STEP)
    ctx.mark("connected")
    c = await _client(reader, writer, up, client_ctx, starttls)
    ctx.mark("client_done")
    s = await asyncio.wait_for(served, STEP)
    server.close()
    await asyncio.wait_for(server.wait_closed(), STEP)
    if client == "rudp":
        endpoint.close()
    bridge.close()
    return ctx.report(
        server_received=s["n"], server_digest_ok=s["digest"] == hashlib.sha256(up).hexdigest(),
        client_received=c["n"], client_digest_ok=c["digest"] == hashlib.sha256(down).hexdigest(),
        client_reply_ok=c["reply"] == hashlib.sha256(up).digest(), client_saw_eof=c["eof"],
        client_tls=c["tls"], server_tls=s["tls"],
        mbit_s=round((UP + DOWN) * 8 / 1e6 / (ctx.timings["client_done"] - ctx.timings["connected"]), 1),
    )


SCENARIOS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {"exchange": scenario_exchange}


def _main(argv: list[str]) -> None:
    name, kwargs = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}

    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(SCENARIOS[name](**kwargs), SUBPROCESS_TIMEOUT - 5)

    if kwargs.get("loop") == "uvloop":
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    else:
        runner = asyncio.Runner()
    with runner:
        result = runner.run(bounded())
    print(RESULT + json.dumps(result), flush=True)


if __name__ == "__main__":
    _main(sys.argv[1:])
