"""Rendezvous server and hole-punched connections over loopback (no NAT; see
tests/test_nat.py for real ones), on the default loop and uvloop."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import rudp
from rudp.aio import holepunch, rendezvous
from rudp.aio.rendezvous import MAGIC, Inbox, RendezvousError, decode, encode, meet
from rudp.core.config import Config
from rudp.core.endpoint import Endpoint
from rudp.tools import cli


def reg(**fields: Any) -> bytes:
    """A REGISTER padded as clients pad it."""
    msg = {"op": "register", **fields}
    msg["pad"] = "." * max(0, rendezvous.MIN_REGISTER - len(encode(msg)) - 9)
    return encode(msg)


async def _server() -> tuple[asyncio.DatagramTransport, rendezvous.RendezvousServer, tuple[str, int]]:
    transport, server = await rudp.start_rendezvous_server("127.0.0.1", 0)
    return transport, server, ("127.0.0.1", transport.get_extra_info("sockname")[1])


async def exchange(where: Any, room: str, data: bytes, info: str, **options: Any) -> tuple[bytes, Any]:
    """One peer: meet in ``room``, send ``data`` and half-close, read to EOF;
    (what came back, the connection's extra info ``info``)."""
    reader, writer = await rudp.open_rendezvous_connection(where, room, **options)
    writer.write(data)
    writer.write_eof()
    got = await reader.read()
    extra = writer.get_extra_info(info)
    writer.close()
    await writer.wait_closed()
    return got, extra


def test_two_peers_meet_and_connect(run: Callable[..., Any]) -> None:
    async def main() -> None:
        transport, server, addr = await _server()
        data = {"a": os.urandom(300_000), "b": os.urandom(200_000)}

        async def peer(name: str) -> tuple[bytes, Any]:
            reader, writer = await rudp.open_rendezvous_connection(addr, "room", nodelay=True)
            writer.write(data[name])
            writer.write_eof()
            got = await reader.read()
            info = (writer.get_extra_info("public_address"), writer.get_extra_info("nat_mapping"),
                    writer.get_extra_info("connection").config, writer.get_extra_info("sockname"))
            writer.close()
            await writer.wait_closed()
            # The socket closes after its TIME_WAIT linger (bounded by the engine).
            await asyncio.wait_for(writer.get_extra_info("endpoint").wait_closed(), 10)
            assert writer.get_extra_info("socket").fileno() == -1
            return got, info

        (got_a, info_a), (got_b, info_b) = await asyncio.gather(peer("a"), peer("b"))
        transport.close()
        assert hashlib.sha256(got_a).digest() == hashlib.sha256(data["b"]).digest()
        assert hashlib.sha256(got_b).digest() == hashlib.sha256(data["a"]).digest()
        assert info_a[1]["initiator"] != info_b[1]["initiator"]
        for (public, nat, config, sockname), (other_public, *_) in ((info_a, info_b), (info_b, info_a)):
            assert public == ("127.0.0.1", sockname[1])  # no NAT: the mapping is the socket
            assert nat["public"] == public and nat["translated"] is False
            assert nat["peer"] == other_public == nat["peer_public"]
            assert nat["rendezvous"] == addr and nat["room"] == "room" and nat["relayed"] is False
            # NAT keep-alives by default; the caller's options still apply.
            assert config.keepalive and config.keepalive_idle == 15.0
            assert config.nodelay
        assert server.counters["introductions"] == 1
        assert server.counters["malformed"] == 0

    run(main(), 30)


def test_ipv6(run: Callable[..., Any]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")

    async def main() -> None:
        transport, _ = await rudp.start_rendezvous_server("::1", 0)
        where = f"[::1]:{transport.get_extra_info('sockname')[1]}"

        (got_a, pub_a), (got_b, pub_b) = await asyncio.gather(
            exchange(where, "six", b"a" * 5000, "public_address"),
            exchange(where, "six", b"b" * 7000, "public_address"))
        transport.close()
        assert (got_a, got_b) == (b"b" * 7000, b"a" * 5000)
        assert pub_a[0] == pub_b[0] == "::1"

    run(main(), 30)


def test_tls_between_peers(run: Callable[..., Any], tmp_path: Any) -> None:
    """ssl= and ssl_server= on both sides: the initiator is the TLS client,
    the other the server; the certificate is verified; 1 MB each way."""
    pytest.importorskip("cryptography")
    from tests.tlscerts import make_pki

    pki = make_pki(tmp_path)

    async def main() -> None:
        transport, _, addr = await _server()
        data = {"a": os.urandom(1 << 20), "b": os.urandom(1 << 20)}

        async def peer(name: str) -> tuple[bytes, Any, Any]:
            reader, writer = await rudp.open_rendezvous_connection(
                addr, "tls", ssl=pki.client_context(), ssl_server=pki.server_context(),
                server_hostname="localhost")
            writer.write(data[name])
            got = await reader.readexactly(1 << 20)  # TLS has no half-close
            info = (writer.get_extra_info("nat_mapping")["initiator"], writer.get_extra_info("cipher"))
            endpoint = writer.get_extra_info("endpoint")
            writer.close()
            await writer.wait_closed()
            await asyncio.wait_for(endpoint.wait_closed(), 10)
            return got, *info

        (got_a, init_a, cipher_a), (got_b, init_b, cipher_b) = await asyncio.gather(peer("a"), peer("b"))
        transport.close()
        assert hashlib.sha256(got_a).digest() == hashlib.sha256(data["b"]).digest()
        assert hashlib.sha256(got_b).digest() == hashlib.sha256(data["a"]).digest()
        assert init_a != init_b and cipher_a is not None and cipher_a == cipher_b

    run(main(), 60)


def test_tls_between_peers_refuses_an_unknown_certificate(run: Callable[..., Any], tmp_path: Any) -> None:
    pytest.importorskip("cryptography")
    import ssl

    from tests.tlscerts import make_pki

    pki = make_pki(tmp_path)

    async def main() -> None:
        transport, _, addr = await _server()

        async def peer() -> None:
            await rudp.open_rendezvous_connection(
                addr, "tls-bad", ssl=pki.client_context(trust_other_ca=True),
                ssl_server=pki.server_context(), server_hostname="localhost")

        results = await asyncio.gather(peer(), peer(), return_exceptions=True)
        transport.close()
        # The client side refuses the certificate; the server side sees the
        # handshake fail or the connection end.
        assert any(isinstance(r, ssl.SSLCertVerificationError) for r in results), results
        assert all(isinstance(r, (ssl.SSLError, ConnectionError, OSError)) for r in results), results

    run(main(), 60)


def test_tls_arguments_checked() -> None:
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    async def main() -> None:
        with pytest.raises(ValueError, match="ssl_server="):
            await rudp.open_rendezvous_connection(("127.0.0.1", 9), "r", ssl=ctx)
        with pytest.raises(ValueError, match="server_hostname"):
            await rudp.open_rendezvous_connection(("127.0.0.1", 9), "r", ssl=ctx,
                                                  ssl_server=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        with pytest.raises(ValueError, match="only meaningful with ssl"):
            await rudp.open_rendezvous_connection(("127.0.0.1", 9), "r", server_hostname="x")

    asyncio.run(main())


def test_options_override_the_keepalive(run: Callable[..., Any]) -> None:
    async def main() -> None:
        transport, _, addr = await _server()

        async def peer() -> asyncio.StreamWriter:
            _, writer = await rudp.open_rendezvous_connection(f"127.0.0.1:{addr[1]}", "r", keepalive=False)
            return writer

        writers = await asyncio.gather(peer(), peer())
        configs = [w.get_extra_info("connection").config for w in writers]
        for w in writers:
            w.transport.abort()
        transport.close()
        assert not any(c.keepalive for c in configs)

    run(main(), 30)


def test_third_peer_finds_the_room_full(run: Callable[..., Any]) -> None:
    async def main() -> None:
        transport, server, addr = await _server()
        socks = []
        for mid in ("one", "two"):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(reg(room="full", id=mid, local=[]), addr)
            socks.append(s)
        with pytest.raises(RendezvousError, match="already has two peers"):
            await rudp.open_rendezvous_connection(addr, "full")
        transport.close()
        for s in socks:
            s.close()
        assert server.counters["room_full"] == 1

    run(main(), 30)


def test_no_server_no_peer(run: Callable[..., Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))  # bound, never answers
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(("127.0.0.1", 0))
        inbox = Inbox(loop, sock)
        try:
            with pytest.raises(RendezvousError, match="does not answer"):
                await meet(inbox, silent.getsockname(), "r", answer_timeout=0.5)
            transport, _, addr = await _server()
            with pytest.raises(RendezvousError, match="no peer came"):
                await meet(inbox, addr, "alone", wait_timeout=0.5)
            transport.close()
        finally:
            sock.close()
            silent.close()

    run(main(), 30)


def test_no_direct_path_is_a_clear_error(run: Callable[..., Any]) -> None:
    """A (fake) rendezvous that sends us to a port nobody listens on: the
    punches provoke ICMP port unreachable, which ends nothing; after
    ``punch_timeout`` a NatTraversalError says there is no direct path."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dead.bind(("127.0.0.1", 0))
        dead_addr = dead.getsockname()
        dead.close()  # the port is closed: datagrams to it get ICMP port unreachable

        class Fake(asyncio.DatagramProtocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: Any) -> None:
                msg = decode(data)
                assert msg is not None
                self.transport.sendto(encode({"op": "peer", "you": list(addr), "peer": {
                    "id": "ghost", "public": list(dead_addr), "local": [list(dead_addr)]}}), addr)

        transport, _ = await loop.create_datagram_endpoint(Fake, local_addr=("127.0.0.1", 0))
        with pytest.raises(rudp.NatTraversalError, match="no direct path"):
            await rudp.open_rendezvous_connection(transport.get_extra_info("sockname"), "r",
                                                  punch_timeout=1.0)
        transport.close()

    run(main(), 30)


def test_punches_that_provoke_icmp_errors_end_nothing(run: Callable[..., Any]) -> None:
    """Each peer is also told of a local address where nothing listens (as a
    peer's private address often is): the punches sent there come back as
    ICMP port unreachable, and the connection is made all the same."""
    async def main() -> None:
        dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dead.bind(("127.0.0.1", 0))
        dead_addr = list(dead.getsockname())
        dead.close()

        class WithDeadAddress(rendezvous.RendezvousServer):
            def register(self, room_name: str, mid: str, public: Any, local: Any) -> None:
                super().register(room_name, mid, public, [tuple(dead_addr)] + list(local))

        loop = asyncio.get_running_loop()
        transport, server = await loop.create_datagram_endpoint(WithDeadAddress, local_addr=("127.0.0.1", 0))
        addr = transport.get_extra_info("sockname")

        (got_a, nat_a), (got_b, nat_b) = await asyncio.gather(
            exchange(addr, "icmp", b"x" * 20000, "nat_mapping"),
            exchange(addr, "icmp", b"y" * 30000, "nat_mapping"))
        transport.close()
        assert (got_a, got_b) == (b"y" * 30000, b"x" * 20000)
        assert tuple(dead_addr) in nat_a["peer_local"] and nat_a["peer"] != tuple(dead_addr)

    run(main(), 30)


def test_server_counts_and_drops_bad_datagrams() -> None:
    server = rendezvous.RendezvousServer(clock=lambda: 0.0)
    sent: list[tuple[bytes, Any]] = []

    class Transport:
        def is_closing(self) -> bool:
            return False

        def sendto(self, data: bytes, addr: Any) -> None:
            sent.append((data, addr))

    server.transport = Transport()  # type: ignore[assignment]
    src = ("192.0.2.1", 5000)
    for bad in (b"", b"hello", MAGIC, MAGIC + b"{", MAGIC + b"[1]", MAGIC + b'{"op": 1}',
                MAGIC + b"x" * 2000, encode({"op": "punch"}),
                reg(room="", id="a"), reg(room="r" * 200, id="a"), reg(room="r", id=5),
                reg(room="r", id="a", local=[[1, 2]] * 20)):
        server.datagram_received(bad, src)
    assert server.counters["malformed"] == 12
    # A valid but unpadded REGISTER: answering it could amplify a spoofed flood.
    server.datagram_received(encode({"op": "register", "room": "r", "id": "a", "local": []}), src)
    assert server.counters["short"] == 1
    assert sent == [] and server.rooms == {}
    # Garbage local addresses are left out of what the peer is told.
    server.datagram_received(reg(room="r", id="a", local=[["10.0.0.1", 7], ["nonsense", 1], [1, 2],
                                                           ["10.0.0.2", 0]]), src)
    server.datagram_received(reg(room="r", id="b", local=[]), ("198.51.100.7", 6000))
    peer_msgs = [decode(d) for d, a in sent if a == src]
    assert peer_msgs[0]["op"] == "wait" and peer_msgs[0]["you"] == list(src)
    assert peer_msgs[-1]["op"] == "peer"
    assert peer_msgs[-1]["peer"] == {"id": "b", "public": ["198.51.100.7", 6000], "local": []}
    to_b = decode(sent[-1][0])
    assert to_b["peer"]["local"] == [["10.0.0.1", 7]]


def test_replies_are_smaller_than_registers() -> None:
    """The largest reply (IPv6 everywhere, the longest id, every local
    address) is smaller than the smallest REGISTER the server answers."""
    server = rendezvous.RendezvousServer(clock=lambda: 0.0)
    sent: list[bytes] = []

    class Transport:
        def is_closing(self) -> bool:
            return False

        def sendto(self, data: bytes, addr: Any) -> None:
            sent.append(data)

    server.transport = Transport()  # type: ignore[assignment]
    v6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    local = [[v6, 65535]] * rendezvous.MAX_LOCAL
    server.datagram_received(reg(room="r" * rendezvous.MAX_ROOM, id="i" * 64, local=local), (v6, 65535, 0, 0))
    server.datagram_received(reg(room="r" * rendezvous.MAX_ROOM, id="j" * 64, local=local), (v6, 65534, 0, 0))
    assert [decode(d)["op"] for d in sent] == ["wait", "peer", "peer"]
    assert max(len(d) for d in sent) < rendezvous.MIN_REGISTER


def test_relay_forwards_only_for_pairs_that_both_asked() -> None:
    server = rendezvous.RendezvousServer(relay=True, clock=lambda: 0.0)
    sent: list[tuple[bytes, Any]] = []

    class Transport:
        def is_closing(self) -> bool:
            return False

        def sendto(self, data: bytes, addr: Any) -> None:
            sent.append((data, addr))

    server.transport = Transport()  # type: ignore[assignment]
    a, b, c = ("192.0.2.1", 1), ("198.51.100.2", 2), ("203.0.113.3", 3)
    seg = rendezvous.RELAY_MAGIC + b"segment"
    server.datagram_received(reg(room="r", id="a"), a)
    server.datagram_received(seg, a)  # not introduced, no relay asked
    server.datagram_received(reg(room="r", id="b"), b)
    relay_a = encode(rendezvous.padded({"op": "relay", "room": "r", "id": "a"}))
    server.datagram_received(relay_a, a)
    assert decode(sent[-1][0]) == {"op": "relay-wait"}
    server.datagram_received(seg, a)  # b has not asked yet
    server.datagram_received(encode(rendezvous.padded({"op": "relay", "room": "r", "id": "a"})), c)
    assert decode(sent[-1][0])["op"] == "error" and sent[-1][1] == c  # not a's address
    assert server.counters["relay_dropped"] == 2 and server.counters["relay_refused"] == 1
    sent.clear()
    server.datagram_received(encode(rendezvous.padded({"op": "relay", "room": "r", "id": "b"})), b)
    assert sorted((decode(d)["op"], addr) for d, addr in sent) == [("relay-ok", a), ("relay-ok", b)]
    sent.clear()
    server.datagram_received(seg, a)
    server.datagram_received(seg + b"back", b)
    server.datagram_received(seg, c)  # a stranger
    assert sent == [(seg, b), (seg + b"back", a)]
    assert server.counters["relayed"] == 2 and server.counters["relay_dropped"] == 3
    # A server without relay=True refuses, and says how to allow it.
    plain = rendezvous.RendezvousServer(clock=lambda: 0.0)
    plain.transport = Transport()  # type: ignore[assignment]
    plain.datagram_received(relay_a, a)
    assert "does not relay" in decode(sent[-1][0])["reason"]


def test_relay_fallback_over_loopback(run: Callable[..., Any]) -> None:
    """No direct path (the server points each peer at a dead port), both ask
    for the relay: the connection goes through the server, and says so."""
    async def main() -> None:
        dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dead.bind(("127.0.0.1", 0))
        dead_addr = dead.getsockname()
        dead.close()

        class NoPath(rendezvous.RendezvousServer):
            @staticmethod
            def _peer_message(to: rendezvous.Member, peer: rendezvous.Member) -> dict[str, Any]:
                return {"op": "peer", "you": list(to.public),
                        "peer": {"id": peer.id, "public": list(dead_addr), "local": []}}

        loop = asyncio.get_running_loop()
        transport, server = await loop.create_datagram_endpoint(lambda: NoPath(relay=True),
                                                                local_addr=("127.0.0.1", 0))
        addr = transport.get_extra_info("sockname")
        reasons: list[str] = []

        def peer(data: bytes) -> Any:
            return exchange(addr, "relay", data, "nat_mapping", punch_timeout=0.5, relay=True,
                            on_relay=reasons.append)

        (got_a, nat_a), (got_b, nat_b) = await asyncio.gather(peer(b"p" * 100_000), peer(b"q" * 50_000))
        transport.close()
        assert (got_a, got_b) == (b"q" * 50_000, b"p" * 100_000)
        assert nat_a["relayed"] and nat_b["relayed"] and nat_a["peer"] == addr
        assert len(reasons) == 2 and all("no direct path" in r for r in reasons)
        assert server.counters["relays"] == 1 and server.counters["relayed_bytes"] > 150_000

    run(main(), 30)


def test_a_member_that_went_silent_frees_its_place() -> None:
    now = [0.0]
    server = rendezvous.RendezvousServer(clock=lambda: now[0])
    server.transport = None
    server.register("r", "a", ("192.0.2.1", 1), [])
    server.register("r", "b", ("192.0.2.2", 2), [])
    server.register("r", "c", ("192.0.2.3", 3), [])
    assert server.counters["room_full"] == 1
    now[0] = rendezvous.STALE + 1
    server.register("r", "c", ("192.0.2.3", 3), [])
    server.register("r", "d", ("192.0.2.4", 4), [])
    assert set(server.rooms["r"].members) == {"c", "d"}
    assert server.counters["introductions"] == 2


def test_stray_rendezvous_datagrams_are_malformed_segments() -> None:
    """A late server reply or the peer's last punch reaching the rudp endpoint
    that took the socket over is a counted drop, never a segment."""
    ep = Endpoint(Config(), seed=1)
    ep.datagram_received(encode({"op": "punch", "room": "r", "from": "a", "to": "b"}), ("192.0.2.1", 1), 0.0)
    ep.datagram_received(encode({"op": "peer"}), ("192.0.2.1", 1), 0.0)
    assert ep.counters["malformed"] == 2
    assert ep.datagrams_to_send(0.0) == []


def test_parse_host_port() -> None:
    assert rendezvous.parse_host_port("203.0.113.1:9000") == ("203.0.113.1", 9000)
    assert rendezvous.parse_host_port("[2001:db8::1]:9000") == ("2001:db8::1", 9000)
    assert rendezvous.parse_host_port("example.org:1") == ("example.org", 1)
    for bad in ("203.0.113.1", "h:0", "h:70000", "h:x", ":9000", "2001:db8::1"):
        with pytest.raises(ValueError):
            rendezvous.parse_host_port(bad)


def test_both_sides_pick_the_same_port() -> None:
    m = rendezvous.Meeting(("s", 1), "r", "aa", [], ("p", 1), "bb", ("q", 2), [])
    mirrored = rendezvous.Meeting(("s", 1), "r", "bb", [], ("q", 2), "aa", ("p", 1), [])
    assert holepunch.tcp_port(m) == holepunch.tcp_port(mirrored)
    assert 1024 <= holepunch.tcp_port(m) < 65536


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["connect", "--rendezvous", "127.0.0.1:9", "h", "1"],  # both kinds
                 ["connect", "--rendezvous", "127.0.0.1:9"],  # no room
                 ["connect", "--rendezvous", "127.0.0.1", "--room", "r"],  # no port
                 ["connect"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2, argv
    assert "--room" in capsys.readouterr().err


def test_cli_tls_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    """--tls needs all of --cert, --key, --cafile, --peer-name, files that load,
    and --rendezvous; those options mean nothing without --tls."""
    base = ["connect", "--rendezvous", "127.0.0.1:9", "--room", "r"]
    missing = str(tmp_path / "missing.pem")
    for argv, says in (
        ([*base, "--tls", "--cert", "c", "--key", "k", "--cafile", "a"], "--tls needs --peer-name"),
        ([*base, "--tls"], "--tls needs --cert, --key, --cafile, --peer-name"),
        ([*base, "--cafile", "a"], "--cafile only with --tls"),
        (["connect", "127.0.0.1", "9", "--tls"], "--tls is for connect --rendezvous"),
        ([*base, "--tls", "--cert", missing, "--key", missing, "--cafile", missing, "--peer-name", "p"],
         "cannot load"),
    ):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2, argv
        assert says in capsys.readouterr().err, argv


def _readme_block(marker: str) -> str:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\n```sh\n(.*?)```", text, re.S)
    assert match, f"README lost its {marker} block"
    return match.group(1)


def test_readme_nat_tls_commands_run(tmp_path: Path) -> None:
    """README, "With TLS": its openssl commands, run as written, make the CA and
    the two certificates; its two `rudp connect` lines, run as written (only
    RENDEZVOUS_HOST:9000 pointing at a loopback server), each in a directory
    with that peer's files only, exchange their stdin both ways and exit 0.
    Then bob trusting another CA: both sides exit 1 and say why."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command for the README's certificates")
    root = Path(__file__).resolve().parent.parent
    subprocess.run(["sh", "-e", "-c", _readme_block("nat-tls-certs")], cwd=tmp_path, check=True,
                   capture_output=True, timeout=60)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "rudp").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m rudp "$@"\n')
    (bindir / "rudp").chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    lines = [x for x in _readme_block("nat-tls-run").splitlines() if x.startswith("rudp connect")]
    assert len(lines) == 2 and "--peer-name bob" in lines[0] and "--peer-name alice" in lines[1]

    def exchange(ca_of: dict[str, str], round: str) -> dict[str, tuple[int, bytes, str]]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "rudp", "rendezvous", str(port), "--host", "127.0.0.1"],
                                  env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        procs = {}
        try:
            assert server.stderr is not None and f"port {port}" in server.stderr.readline()
            for name, line in zip(("alice", "bob"), lines):
                home = tmp_path / round / name
                home.mkdir(parents=True)
                for f in (f"{name}.pem", f"{name}.key"):
                    shutil.copy(tmp_path / f, home / f)
                shutil.copy(tmp_path / ca_of[name], home / "ca.pem")
                (home / "to-send").write_bytes(name.encode() * 100_000)
                procs[name] = subprocess.Popen(
                    ["sh", "-c", line.replace("RENDEZVOUS_HOST:9000", f"127.0.0.1:{port}")],
                    cwd=home, env=env, stderr=subprocess.PIPE)
            results = {}
            for name, proc in procs.items():
                _, err = proc.communicate(timeout=60)
                home = tmp_path / round / name
                results[name] = (proc.returncode, (home / "received").read_bytes(), err.decode())
            return results
        finally:
            for proc in (*procs.values(), server):
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
            assert server.stderr is not None
            server.stderr.close()

    results = exchange({"alice": "ca.pem", "bob": "ca.pem"}, "same-ca")
    for name, other in (("alice", "bob"), ("bob", "alice")):
        rc, received, err = results[name]
        assert rc == 0, err
        assert received == other.encode() * 100_000, (name, len(received), err)
        assert f"rudp: TLS TLSv1.3 with '{other}', its certificate verified against ca.pem" in err

    # bob trusts a CA that did not sign alice's certificate.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-keyout", "other.key", "-out", "other.pem",
                    "-subj", "/CN=other-ca"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    results = exchange({"alice": "ca.pem", "bob": "other.pem"}, "other-ca")
    for name in ("alice", "bob"):
        rc, received, err = results[name]
        assert rc == 1 and received == b"", (name, rc, err)
    assert "certificate verify failed" in results["bob"][2], results["bob"][2]
    assert "--cafile must hold the CA that signed the peer's certificate" in results["bob"][2]
    assert "rudp: TLS: " in results["alice"][2], results["alice"][2]  # the alert bob sent
