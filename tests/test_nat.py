"""Peers behind real NATs (nftables masquerade in network namespaces) meet at a
rendezvous server and connect directly: ``rudp connect --rendezvous`` run with
``ip netns exec`` on each side.

The lab (tests/natlab.py): a public segment 203.0.113.0/24 with the rendezvous
server at 203.0.113.1, NAT routers at .11 and .12 with private LANs behind
them, and, for one case, a public peer at .20. The NATs drop unsolicited
inbound traffic silently, as home routers do. Needs root, ``ip netns`` and
nft (installed from Debian's nftables package when missing and possible);
skipped with the reason otherwise.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from typing import Any
from pathlib import Path

import pytest

from tests.natlab import NatLab, unavailable

_REASON = unavailable()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=str(_REASON))

ROOT = Path(__file__).resolve().parent.parent
RENDEZVOUS = "203.0.113.1"
PORT = 9000
DEADLINE = 60  # a bound on each peer process; the behaviour asserted is its own
SIZE = 1 << 20


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{path}" if path else str(ROOT))


@pytest.fixture
def lab() -> NatLab:
    with NatLab() as lab:
        lab.public("rv", RENDEZVOUS)
        lab.nft("rv", f"""
table inet acct {{
    counter rendezvous_in {{ }}
    counter other_in {{ }}
    chain input {{
        type filter hook input priority filter; policy accept;
        udp dport {PORT} counter name "rendezvous_in"
        udp dport != {PORT} counter name "other_in"
    }}
}}
""")
        yield lab


class Rendezvous:
    def __init__(self, lab: NatLab, *extra: str) -> None:
        self.proc = subprocess.Popen(
            lab.command("rv", sys.executable, "-m", "rudp", "rendezvous", str(PORT), *extra),
            env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "rudp: rendezvous server on ... port 9000"
        assert f"port {PORT}" in line, line

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stderr is not None
        self.proc.stderr.close()


def peers(lab: NatLab, tmp: Path, nodes: list[str], data: dict[str, bytes], *extra: str,
          loop: str = "uvloop", feed: dict[str, str] | None = None,
          own: dict[str, list[str]] | None = None,
          ) -> dict[str, tuple[int, bytes, str, float]]:
    """Run ``rudp connect --rendezvous`` on each node at once, stdin from ``data``
    (or from the shell command ``feed[node]``, piped in), with ``extra`` and
    the node's ``own`` arguments; node -> (exit status, stdout, stderr, seconds to exit)."""
    procs = {}
    started = time.monotonic()
    for node in nodes:
        (tmp / f"{node}.in").write_bytes(data[node])
        argv = [sys.executable, "-m", "rudp", "--loop", loop, "connect",
                "--rendezvous", f"{RENDEZVOUS}:{PORT}", "--room", "lab", *extra,
                *(own or {}).get(node, [])]
        if feed and node in feed:
            argv = ["sh", "-c", f"({feed[node]}) | exec \"$@\"", "feed", *argv]
        with open(tmp / f"{node}.in", "rb") as stdin, open(tmp / f"{node}.out", "wb") as stdout, \
                open(tmp / f"{node}.err", "wb") as stderr:
            procs[node] = subprocess.Popen(lab.command(node, *argv), env=_env(), stdin=stdin,
                                           stdout=stdout, stderr=stderr)
    results = {}
    for node, proc in procs.items():
        try:
            proc.wait(max(1.0, DEADLINE - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        results[node] = (proc.returncode, (tmp / f"{node}.out").read_bytes(),
                         (tmp / f"{node}.err").read_text(errors="replace"), time.monotonic() - started)
    return results


def meet(lab: NatLab, tmp: Path, server_args: tuple[str, ...], nodes: list[str],
         data: dict[str, bytes], *extra: str, **kwds: Any) -> dict[str, tuple[int, bytes, str, float]]:
    """``peers`` with a rendezvous server (``server_args``) running for them."""
    rv = Rendezvous(lab, *server_args)
    try:
        return peers(lab, tmp, nodes, data, *extra, **kwds)
    finally:
        rv.stop()


def assert_exchanged(results: dict[str, tuple[int, bytes, str, float]], data: dict[str, bytes]) -> None:
    a, b = results
    for me, other in ((a, b), (b, a)):
        rc, out, err, _ = results[me]
        assert rc == 0, f"{me}: exit {rc}\n{err}"
        assert len(out) == len(data[other]), (me, len(out), err)
        assert hashlib.sha256(out).digest() == hashlib.sha256(data[other]).digest(), me
        assert "connected directly to" in err, err


def _public_of(err: str) -> str:
    """'203.0.113.11:40000' from 'rudp: connected directly to ... (our public address ...)'."""
    line = next(x for x in err.splitlines() if "connected directly" in x)
    return line.rsplit("our public address ", 1)[1].rstrip(")")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_both_behind_nat(lab: NatLab, tmp_path: Path, loop: str) -> None:
    """Port-preserving masquerade on both sides: 1 MB each way, directly
    between the two NATs' public addresses, not through the rendezvous server."""
    lab.nat("n1", "203.0.113.11", "10.1.0.0/24")
    lab.nat("n2", "203.0.113.12", "10.2.0.0/24")
    lab.host("h1", "n1", "10.1.0.2")
    lab.host("h2", "n2", "10.2.0.2")
    data = {"h1": os.urandom(SIZE), "h2": os.urandom(SIZE)}
    results = meet(lab, tmp_path, (), ["h1", "h2"], data, loop=loop)
    assert_exchanged(results, data)
    # Each side learned its NAT's mapping, and talked to the other's.
    assert _public_of(results["h1"][2]).startswith("203.0.113.11:")
    assert "connected directly to 203.0.113.12:" in results["h1"][2]
    assert _public_of(results["h2"][2]).startswith("203.0.113.12:")
    assert "connected directly to 203.0.113.11:" in results["h2"][2]
    # The megabytes crossed the public segment between the NATs; the
    # rendezvous server saw a few small datagrams and nothing else.
    for nat in ("n1", "n2"):
        c = lab.counters(nat)
        assert c["out_other"]["bytes"] > SIZE, (nat, c)
        assert c["in_other"]["bytes"] > SIZE, (nat, c)
        assert c["out_rendezvous"]["bytes"] < 4096, (nat, c)
    rvc = lab.counters("rv")
    assert 0 < rvc["rendezvous_in"]["bytes"] < 4096, rvc
    assert rvc["other_in"]["packets"] == 0, rvc


def test_both_behind_lossy_nats(lab: NatLab, tmp_path: Path) -> None:
    """Each NAT drops 5% of the UDP datagrams it forwards, either way (the
    rendezvous messages, the punches, the handshake and the data alike)."""
    lab.nat("n1", "203.0.113.11", "10.1.0.0/24", loss=0.05)
    lab.nat("n2", "203.0.113.12", "10.2.0.0/24", loss=0.05)
    lab.host("h1", "n1", "10.1.0.2")
    lab.host("h2", "n2", "10.2.0.2")
    data = {"h1": os.urandom(SIZE // 4), "h2": os.urandom(SIZE // 4)}
    results = meet(lab, tmp_path, (), ["h1", "h2"], data)
    assert_exchanged(results, data)
    assert lab.counters("n1")["lost"]["packets"] > 0 and lab.counters("n2")["lost"]["packets"] > 0


def test_one_peer_public(lab: NatLab, tmp_path: Path) -> None:
    """One peer on the public segment, the other behind a NAT."""
    lab.public("p", "203.0.113.20")
    lab.nat("n1", "203.0.113.11", "10.1.0.0/24")
    lab.host("h1", "n1", "10.1.0.2")
    data = {"p": os.urandom(SIZE // 4), "h1": os.urandom(SIZE // 4)}
    results = meet(lab, tmp_path, (), ["p", "h1"], data)
    assert_exchanged(results, data)
    assert _public_of(results["p"][2]).startswith("203.0.113.20:")
    assert _public_of(results["h1"][2]).startswith("203.0.113.11:")
    assert lab.counters("n1")["out_other"]["bytes"] > SIZE // 4


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_same_private_address_and_port(lab: NatLab, tmp_path: Path, loop: str) -> None:
    """Two home networks alike: the same private address and UDP port behind
    each NAT (each peer's local candidate is the other's own address)."""
    lab.nat("n1", "203.0.113.11", "10.0.0.0/24")
    lab.nat("n2", "203.0.113.12", "10.0.0.0/24")
    lab.host("h1", "n1", "10.0.0.2")
    lab.host("h2", "n2", "10.0.0.2")
    data = {"h1": os.urandom(SIZE // 4), "h2": os.urandom(SIZE // 4)}
    results = meet(lab, tmp_path, (), ["h1", "h2"], data, "--local-port", "40000", loop=loop)
    assert_exchanged(results, data)
    assert _public_of(results["h1"][2]) == "203.0.113.11:40000"
    assert _public_of(results["h2"][2]) == "203.0.113.12:40000"
    assert "connected directly to 203.0.113.12:40000" in results["h1"][2]


def test_both_behind_the_same_nat(lab: NatLab, tmp_path: Path) -> None:
    """Two hosts on one LAN behind one NAT, which does not hairpin: they
    reach each other at their local addresses, which they told the server."""
    lab.nat("n1", "203.0.113.11", "10.1.0.0/24")
    lab.host("h1", "n1", "10.1.0.2")
    lab.host("h2", "n1", "10.1.0.3")
    data = {"h1": os.urandom(SIZE // 4), "h2": os.urandom(SIZE // 4)}
    results = meet(lab, tmp_path, (), ["h1", "h2"], data)
    assert_exchanged(results, data)
    assert "connected directly to 10.1.0.3:" in results["h1"][2]
    assert "connected directly to 10.1.0.2:" in results["h2"][2]
    assert lab.counters("n1")["out_other"]["bytes"] == 0  # nothing left the LAN but the rendezvous


def test_symmetric_nats_fail_cleanly(lab: NatLab, tmp_path: Path) -> None:
    """``masquerade random`` on both sides (a new port for every destination):
    no direct path; both peers say so and exit non-zero within 30 s."""
    lab.nat("n1", "203.0.113.11", "10.1.0.0/24", random=True)
    lab.nat("n2", "203.0.113.12", "10.2.0.0/24", random=True)
    lab.host("h1", "n1", "10.1.0.2")
    lab.host("h2", "n2", "10.2.0.2")
    data = {"h1": b"hello\n", "h2": b"hello\n"}
    results = meet(lab, tmp_path, (), ["h1", "h2"], data)
    for node, (rc, out, err, elapsed) in results.items():
        assert rc == 1, (node, rc, err)
        assert out == b""
        assert "no direct path to the peer" in err and "symmetric NAT" in err, err
        assert "Traceback" not in err, err
        assert elapsed < 30, (node, elapsed)


@pytest.mark.parametrize("keepalive", [1, 0], ids=["keepalive", "none"])
def test_keepalives_hold_the_mappings(lab: NatLab, tmp_path: Path, keepalive: int) -> None:
    """NATs that forget an idle UDP mapping after 2 s; the connection idles
    for 5 s, then h1 sends again. With keep-alives (here every second of
    silence; 15 s by default) the mappings live and nothing is dropped;
    without them (the control) the NAT drops h1's segments until h2's own
    traffic opens the way again."""
    lab.nat("n1", "203.0.113.11", "10.1.0.0/24", udp_timeout=2)
    lab.nat("n2", "203.0.113.12", "10.2.0.0/24", udp_timeout=2)
    lab.host("h1", "n1", "10.1.0.2")
    lab.host("h2", "n2", "10.2.0.2")
    feed = {"h1": "echo first; sleep 5; echo second", "h2": "sleep 7"}
    sent = {"h1": b"first\nsecond\n", "h2": b""}
    results = meet(lab, tmp_path, (), ["h1", "h2"], sent, "--keepalive", str(keepalive), feed=feed)
    assert_exchanged(results, sent)
    dropped = lab.counters("n2")["dropped_ack"]["packets"]
    if keepalive:
        assert dropped == 0
    else:
        assert dropped > 0


def test_relay_only_when_asked(lab: NatLab, tmp_path: Path) -> None:
    """Symmetric NATs on both sides, both peers pass --relay and the server
    allows it: they say that no direct path exists, that the relay carries
    the traffic, and the data flows through the rendezvous server."""
    lab.nat("n1", "203.0.113.11", "10.1.0.0/24", random=True)
    lab.nat("n2", "203.0.113.12", "10.2.0.0/24", random=True)
    lab.host("h1", "n1", "10.1.0.2")
    lab.host("h2", "n2", "10.2.0.2")
    data = {"h1": os.urandom(SIZE // 4), "h2": os.urandom(SIZE // 4)}
    results = meet(lab, tmp_path, ("--relay",), ["h1", "h2"], data, "--relay", "--punch-timeout", "3")
    for node, (rc, out, err, _) in results.items():
        other = "h2" if node == "h1" else "h1"
        assert rc == 0, (node, err)
        assert hashlib.sha256(out).digest() == hashlib.sha256(data[other]).digest(), node
        assert "no direct path to the peer" in err and "relaying through the rendezvous server" in err, err
        assert f"connected through the relay at {RENDEZVOUS}:{PORT}" in err, err
    assert lab.counters("rv")["rendezvous_in"]["bytes"] > SIZE // 2
    assert lab.counters("n1")["out_other"]["bytes"] < 4096  # only the punches went to the other NAT


def test_relay_refused_by_the_server(lab: NatLab, tmp_path: Path) -> None:
    """--relay on the peers, but the server was not started with --relay:
    a clear error, exit 1, nothing relayed."""
    lab.nat("n1", "203.0.113.11", "10.1.0.0/24", random=True)
    lab.nat("n2", "203.0.113.12", "10.2.0.0/24", random=True)
    lab.host("h1", "n1", "10.1.0.2")
    lab.host("h2", "n2", "10.2.0.2")
    results = meet(lab, tmp_path, (), ["h1", "h2"], {"h1": b"x", "h2": b"y"}, "--relay",
                   "--punch-timeout", "3")
    for node, (rc, out, err, _) in results.items():
        assert rc == 1 and out == b"", (node, err)
        assert "relay refused: this rendezvous server does not relay" in err, err
        assert "Traceback" not in err, err


class Capture:
    """tcpdump on the public segment's bridge: every datagram between the NATs."""

    def __init__(self, lab: NatLab, path: Path) -> None:
        tcpdump = shutil.which("tcpdump")
        if tcpdump is None:
            pytest.skip("tcpdump is not installed (tests/setup.sh installs it as root)")
        self.proc = subprocess.Popen(
            lab.command("sw", tcpdump, "-i", "br0", "-U", "-s", "0", "-w", str(path), "udp"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # once the capture is live
        assert "listening on br0" in line, line

    def stop(self) -> None:
        self.proc.terminate()  # tcpdump writes out what it has and exits
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stderr is not None
        self.proc.stderr.close()


def _tls_args(pki: object, node: str, peer: str, ca: Path) -> list[str]:
    cert, key = pki.certs[node]  # type: ignore[attr-defined]
    return ["--tls", "--cert", str(cert), "--key", str(key), "--cafile", str(ca), "--peer-name", peer]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_between_peers_behind_nats(lab: NatLab, tmp_path: Path, loop: str) -> None:
    """README "With TLS" through the NATs: both peers behind port-preserving
    masquerade, authenticated both ways, 1 MB each way (TLS 1.3 half-close:
    each side's stdin EOF ends its direction only). On the public segment
    between the NATs no plaintext shows: not the markers spread through both
    inputs, nor any sampled stretch of them; the capture did see payloads (the
    room name in the rendezvous messages) and the megabytes."""
    pytest.importorskip("cryptography", reason="the test extra's cryptography makes the certificates")
    from tests.tlscerts import make_peer_pki

    pki = make_peer_pki(tmp_path, ("h1", "h2"))
    lab.nat("n1", "203.0.113.11", "10.1.0.0/24")
    lab.nat("n2", "203.0.113.12", "10.2.0.0/24")
    lab.host("h1", "n1", "10.1.0.2")
    lab.host("h2", "n2", "10.2.0.2")
    markers = {node: f"rudp-plaintext-marker-{node}-".encode() * 4 for node in ("h1", "h2")}
    data = {}
    for node, marker in markers.items():
        chunks = [marker + os.urandom(64 * 1024 - len(marker)) for _ in range(SIZE // (64 * 1024))]
        data[node] = b"".join(chunks)
    own = {"h1": _tls_args(pki, "h1", "h2", pki.ca_cert), "h2": _tls_args(pki, "h2", "h1", pki.ca_cert)}
    capture = Capture(lab, tmp_path / "public.pcap")
    try:
        results = meet(lab, tmp_path, (), ["h1", "h2"], data, own=own, loop=loop)
    finally:
        capture.stop()
    assert_exchanged(results, data)
    assert "rudp: TLS TLSv1.3 with 'h2'" in results["h1"][2], results["h1"][2]
    assert "rudp: TLS TLSv1.3 with 'h1'" in results["h2"][2], results["h2"][2]
    assert "connected directly to 203.0.113.12:" in results["h1"][2]
    wire = (tmp_path / "public.pcap").read_bytes()
    assert len(wire) > 2 * SIZE, len(wire)  # both megabytes crossed, as records
    assert b'"lab"' in wire  # the capture holds payloads: the rendezvous messages' room
    for node, plain in data.items():
        assert markers[node][:24] not in wire, node
        for offset in range(100, SIZE, SIZE // 64):
            assert plain[offset : offset + 32] not in wire, (node, offset)
    for nat in ("n1", "n2"):
        c = lab.counters(nat)
        assert c["out_other"]["bytes"] > SIZE and c["in_other"]["bytes"] > SIZE, (nat, c)


def test_tls_wrong_ca_behind_nats(lab: NatLab, tmp_path: Path) -> None:
    """h2 trusts a CA that did not sign h1's certificate: both exit 1 with the
    reason, and no data passes."""
    pytest.importorskip("cryptography", reason="the test extra's cryptography makes the certificates")
    from tests.tlscerts import make_peer_pki

    pki = make_peer_pki(tmp_path, ("h1", "h2"))
    lab.nat("n1", "203.0.113.11", "10.1.0.0/24")
    lab.nat("n2", "203.0.113.12", "10.2.0.0/24")
    lab.host("h1", "n1", "10.1.0.2")
    lab.host("h2", "n2", "10.2.0.2")
    own = {"h1": _tls_args(pki, "h1", "h2", pki.ca_cert),
           "h2": _tls_args(pki, "h2", "h1", pki.other_ca_cert)}
    data = {"h1": b"secret one\n", "h2": b"secret two\n"}
    results = meet(lab, tmp_path, (), ["h1", "h2"], data, own=own)
    for node in ("h1", "h2"):
        rc, out, err, _ = results[node]
        assert rc == 1 and out == b"", (node, rc, err)
    # h2 refused h1's certificate; h1 heard h2's alert (as the TLS client, after
    # its own side of the handshake had verified h2's certificate).
    assert "certificate verify failed" in results["h2"][2], results["h2"][2]
    assert "--cafile must hold the CA" in results["h2"][2]
    assert "rudp: TLS: [SSL: TLSV1_ALERT_UNKNOWN_CA]" in results["h1"][2], results["h1"][2]
    assert "the peer refused our certificate" in results["h1"][2]
