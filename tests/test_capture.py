"""In-process packet captures (``pcap=``) and the JSON-lines event log (``event_log=``).

Real transfers over loopback, on both loops, IPv4 and IPv6, GSO on and off:
each side's capture is dissected by tshark as TCP with 0 malformed packets,
correct IP and UDP checksums, both directions, the handshake and the FINs,
one record per segment even when GSO sent them in batches, and no TCP
analysis complaint on a clean path. The event log is checked on a lossy path
(rudp.tools.proxy) against the connection's own counters. The CLI's --pcap
and --event-log are run as processes.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

import rudp
from rudp.aio.capture import PcapWriter, udp_packet
from rudp.aio.udpio import gso_supported
from rudp.tools.proxy import LossyProxy
from tests.conftest import LOOPS
from tests.test_cli import wait_bound

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (tests/setup.sh installs it as root)")

FIELDS = ("frame.time_epoch", "ip.src", "ipv6.src", "udp.srcport", "ip.dst", "ipv6.dst", "udp.dstport",
          "udp.length", "tcp.hdr_len", "tcp.len", "tcp.flags.str", "tcp.analysis.flags", "_ws.malformed",
          "udp.checksum.status", "ip.checksum.status", "tcp.stream", "tcp.seq", "tcp.analysis.retransmission",
          "tcp.analysis.fast_retransmission", "tcp.analysis.spurious_retransmission",
          "tcp.analysis.lost_segment", "tcp.analysis.ack_lost_segment", "tcp.analysis.out_of_order")
#: How tshark marks data it saw before ("out of order" when it came less than
#: an RTT after the highest segment).
RESENT = ("tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
          "tcp.analysis.spurious_retransmission", "tcp.analysis.out_of_order")


def dissect(pcap: Path, port: int, tcp_port: int | None = None) -> list[dict[str, str]]:
    """Every frame of ``pcap`` as TCP over UDP port ``port``, checksums
    verified; the payload of TCP port ``tcp_port`` (default ``port``) as
    plain data, not whatever application a random port would suggest."""
    assert TSHARK is not None
    # No TCP reassembly: the payload is random bytes, and an application
    # dissector that a random port happens to select would reassemble
    # retransmissions cut at other boundaries and call that malformed.
    cmd = [TSHARK, "-r", str(pcap), "-d", f"udp.port=={port},tcp",
           "-d", f"tcp.port=={tcp_port or port},data", "-o", "udp.check_checksum:TRUE",
           "-o", "ip.check_checksum:TRUE", "-o", "tcp.desegment_tcp_streams:FALSE", "-T", "fields"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    return [dict(zip(FIELDS, line.split("\t"))) for line in out.splitlines()]


def expert_errors(pcap: Path, port: int) -> str:
    """tshark's expert errors about the IP, UDP and TCP layers (an application
    dissector that a random port selects may complain about random payload)."""
    assert TSHARK is not None
    out = subprocess.run(
        [TSHARK, "-r", str(pcap), "-d", f"udp.port=={port},tcp", "-d", f"tcp.port=={port},data",
         "-q", "-z", "expert,error"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    return "\n".join(line for line in out.splitlines()
                     if len(line.split()) > 2 and line.split()[2] in ("TCP", "UDP", "IPv4", "IPv6"))


def check_capture(rows: list[dict[str, str]], family: int, own: tuple[str, int] | None = None) -> None:
    """What every capture must show, lossy or not. ``own``: the capturing
    socket's address, if only some of its peer's segments may be missing
    (lost on the way, or dropped by a full socket buffer on a busy machine);
    without it none may be."""
    assert rows
    for r in rows:
        assert r["tcp.flags.str"], r  # dissected as TCP
        assert not r["_ws.malformed"], r
        assert int(r["udp.length"]) == 8 + int(r["tcp.hdr_len"]) + int(r["tcp.len"]), r  # one segment
        assert r["udp.checksum.status"] == "1", r  # 1 = Good
        if family == socket.AF_INET:
            assert r["ip.checksum.status"] == "1" and r["ip.src"] and not r["ipv6.src"], r
        else:
            assert r["ipv6.src"] and not r["ip.src"], r
        # Nothing the socket sent is missing: no ACK of unseen data either way
        # (each side ACKs only what it received, which its capture holds, and
        # what the peer ACKs, it sent), no gap before a segment sent.
        assert not r["tcp.analysis.ack_lost_segment"], r
        assert not r["tcp.analysis.lost_segment"] or dst(r) == own, r
    times = [float(r["frame.time_epoch"]) for r in rows]
    assert times == sorted(times)


def resent(r: dict[str, str]) -> bool:
    return any(r[f] for f in RESENT)


def check_sent_count(sent: list[dict[str, str]], counted: int) -> None:
    """``sent`` holds the ``counted`` segments of the connection's counters,
    in order, and after them at most bare ACKs: a FIN the peer sent again
    after the counters were read is answered from TIME_WAIT."""
    assert len(sent) >= counted
    late = [r["tcp.flags.str"].strip("·") for r in sent[counted:]]
    assert all(f == "A" for f in late) and all(r["tcp.len"] == "0" for r in sent[counted:]), late


def src(r: dict[str, str]) -> tuple[str, int]:
    return (r["ip.src"] or r["ipv6.src"], int(r["udp.srcport"]))


def dst(r: dict[str, str]) -> tuple[str, int]:
    return (r["ip.dst"] or r["ipv6.dst"], int(r["udp.dstport"]))


def read_log(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for rec in records:
        assert isinstance(rec["time"], float) and isinstance(rec["conn"], int) and rec["event"], rec
    return records


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@needs_tshark
@pytest.mark.parametrize("gso", [True, False], ids=["gso", "no-gso"])
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"], ids=["ipv4", "ipv6"])
def test_transfer_captured_on_both_sides_dissects_cleanly(
    run: Callable[..., Any], tmp_path: Path, host: str, gso: bool
) -> None:
    if host == "::1" and not ipv6_available():
        pytest.skip("no IPv6 loopback here")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    up, down = os.urandom(300_000), os.urandom(250_000)
    paths = {name: tmp_path / name for name in ("client.pcap", "server.pcap", "client.jsonl", "server.jsonl")}

    async def main() -> dict[str, Any]:
        server_stats: list[dict[str, int]] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert await reader.read() == up
            writer.write(down)
            writer.close()
            await writer.wait_closed()
            server_stats.append(writer.get_extra_info("stats"))

        server = await rudp.start_server(handle, host, 0, gso=gso, pcap=paths["server.pcap"],
                                         event_log=str(paths["server.jsonl"]))
        sname = server.sockets[0].getsockname()
        async with server:
            reader, writer = await rudp.open_connection(host, sname[1], gso=gso, pcap=str(paths["client.pcap"]),
                                                        event_log=paths["client.jsonl"])
            cname = writer.get_extra_info("sockname")
            sock = writer.get_extra_info("socket")
            writer.write(up)
            writer.write_eof()
            assert await reader.read() == down
            writer.close()
            await writer.wait_closed()
            stats = writer.get_extra_info("stats")
            server_udp = dict(server.endpoint.udp.stats)
        return {"server": sname, "client": cname, "stats": {"client": stats, "server": server_stats[0]},
                "server_udp": server_udp,
                "gso_here": gso_supported(sock) if not sock._closed else None}

    started = time.time()
    r = run(main(), timeout=60)
    ended = time.time()
    port = r["server"][1]
    client_addr, server_addr = (host, r["client"][1]), (host, port)
    if gso and r["gso_here"] is not False:
        # The server's reply went out in GSO batches: fewer sends than datagrams.
        assert r["server_udp"]["send_calls"] < r["server_udp"]["sent"], r["server_udp"]
    elif not gso:
        assert r["server_udp"]["send_calls"] == r["server_udp"]["sent"], r["server_udp"]
    for side in ("client", "server"):
        rows = dissect(paths[f"{side}.pcap"], port)
        check_capture(rows, family, client_addr if side == "client" else server_addr)
        assert started - 1 <= float(rows[0]["frame.time_epoch"]) <= float(rows[-1]["frame.time_epoch"]) <= ended + 1
        up_rows = [x for x in rows if src(x) == client_addr and dst(x) == server_addr]
        down_rows = [x for x in rows if src(x) == server_addr and dst(x) == client_addr]
        assert len(up_rows) + len(down_rows) == len(rows)  # real addresses and ports, both ways
        assert {x["tcp.stream"] for x in rows} == {"0"}
        assert up_rows[0]["tcp.flags.str"].strip("·") == "S"
        assert "S" in down_rows[0]["tcp.flags.str"] and "A" in down_rows[0]["tcp.flags.str"]
        assert any("F" in x["tcp.flags.str"] for x in up_rows)
        assert any("F" in x["tcp.flags.str"] for x in down_rows)
        assert not any("R" in x["tcp.flags.str"] for x in rows)
        # What this side sent, exactly: every segment one record (GSO or
        # not), each byte once apart from what it counted as sent again (a
        # tail loss probe, or a loss if a socket buffer overflowed on a busy
        # machine).
        sent, got, data_sent, data_got = ((up_rows, down_rows, up, down) if side == "client"
                                          else (down_rows, up_rows, down, up))
        stats = r["stats"][side]
        check_sent_count(sent, stats["segments_sent"])
        assert sum(map(resent, sent)) == stats["retransmits"]
        size = len(data_sent)
        assert sum(int(x["tcp.len"]) for x in sent if not resent(x)) == size
        # What it received: everything up to the peer's FIN (relative
        # sequence numbers: the first data byte is 1).
        size = len(data_got)
        assert max(int(x["tcp.seq"]) + int(x["tcp.len"]) for x in got if int(x["tcp.len"])) == size + 1
        if not any(x["tcp.analysis.lost_segment"] for x in rows):
            assert not expert_errors(paths[f"{side}.pcap"], port)
    for side in ("client", "server"):
        log = read_log(paths[f"{side}.jsonl"])
        kinds = {rec["event"] for rec in log}
        assert {"connection", "state", "rtt", "cwnd"} <= kinds, kinds
        first = log[0]
        assert first["event"] == "connection" and first["passive"] is (side == "server")
        states = [(rec["old"], rec["new"]) for rec in log if rec["event"] == "state"]
        assert ("SYN_SENT" if side == "client" else "SYN_RCVD", "ESTABLISHED") in states
        losses = [rec["kind"] for rec in log if rec["event"] == "loss"]
        stats = r["stats"][side]
        assert sum(rec["event"] == "spurious_recovery" for rec in log) == stats["spurious_recoveries"]
        assert losses.count("tlp") == stats["tail_loss_probes"]
        assert losses.count("fast_retransmit") == stats["fast_retransmits"]
        assert losses.count("rto") == stats["timeouts"]


@needs_tshark
@pytest.mark.parametrize("bind", ["0.0.0.0", "::"], ids=["any-ipv4", "any-dual-stack"])
def test_wildcard_server_captures_the_addresses_it_used(run: Callable[..., Any], tmp_path: Path,
                                                        bind: str) -> None:
    """A server bound to 0.0.0.0 (or :: taking IPv4 clients) writes the real
    local address of each datagram, and IPv4 peers of an IPv6 socket as IPv4."""
    if bind == "::" and not ipv6_available():
        pytest.skip("no IPv6 here")
    pcap = tmp_path / "server.pcap"

    async def main() -> tuple[int, int]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read())
            writer.close()

        server = await rudp.start_server(handle, bind, 0, pcap=pcap)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await rudp.open_connection("127.0.0.1", port)
            writer.write(b"x" * 5000)
            writer.write_eof()
            assert await reader.read() == b"x" * 5000
            cport = writer.get_extra_info("sockname")[1]
            writer.close()
            await writer.wait_closed()
        return port, cport

    port, cport = run(main(), timeout=30)
    rows = dissect(pcap, port)
    check_capture(rows, socket.AF_INET, own=("127.0.0.1", port))
    assert {(src(x), dst(x)) for x in rows} == {(("127.0.0.1", cport), ("127.0.0.1", port)),
                                               (("127.0.0.1", port), ("127.0.0.1", cport))}


@needs_tshark
def test_lossy_transfer_event_log_and_capture(run: Callable[..., Any], tmp_path: Path) -> None:
    """Through a relay that drops 5%, reorders and duplicates: the client's event
    log holds every kind of event a lossy transfer makes, each loss kind as
    often as the connection's counters say; its capture (written to a file
    object) still dissects cleanly, with the retransmissions tshark expects."""
    data = os.urandom(1_500_000)
    log_path = tmp_path / "client.jsonl"
    pcap_file = tmp_path / "client.pcap"

    async def main() -> tuple[dict[str, int], int, int, int, float, float]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got = await reader.read()
            writer.write(len(got).to_bytes(8, "big"))
            writer.close()

        server = await rudp.start_server(handle, "127.0.0.1", 0)
        sport = server.sockets[0].getsockname()[1]
        proxy = LossyProxy(("127.0.0.1", sport), loss=0.05, delay=0.002, reorder=0.05, duplicate=0.02, seed=7)
        phost, pport = await proxy.start()
        started = time.time()
        try:
            with open(pcap_file, "wb") as f:
                async with server:
                    reader, writer = await rudp.open_connection(phost, pport, remote_port=sport, pcap=f,
                                                                event_log=log_path)
                    writer.write(data)
                    writer.write_eof()
                    assert int.from_bytes(await reader.read(), "big") == len(data)
                    cport = writer.get_extra_info("sockname")[1]
                    writer.close()
                    await writer.wait_closed()
                    stats = writer.get_extra_info("stats")
                assert not f.closed  # a file object the caller gave stays open
        finally:
            proxy.close()
        return stats, pport, sport, cport, started, time.time()

    stats, pport, sport, cport, started, ended = run(main(), timeout=120)
    log = read_log(log_path)
    assert {rec["conn"] for rec in log} == {1}
    assert all(started - 1 <= rec["time"] <= ended + 1 for rec in log)
    kinds = {rec["event"] for rec in log}
    assert {"connection", "state", "rtt", "cwnd", "loss"} <= kinds, kinds
    losses = [rec for rec in log if rec["event"] == "loss"]
    count = lambda kind: sum(rec["kind"] == kind for rec in losses)  # noqa: E731
    assert stats["fast_retransmits"] > 0, stats
    assert count("fast_retransmit") == stats["fast_retransmits"]
    assert count("tlp") == stats["tail_loss_probes"]
    assert count("rto") == stats["timeouts"]
    assert sum(rec["event"] == "spurious_recovery" for rec in log) == stats["spurious_recoveries"]
    for rec in losses:
        assert rec["cwnd"] > 0 and 0 <= rec["snd_una"] <= rec["snd_max"], rec
        if rec["kind"] != "tlp":
            assert rec["ssthresh"] is not None, rec  # the controller reacted
    # Each fast recovery ends: by a full ACK, an undo, or a timeout.
    ends = sum(rec["event"] in ("recovery_end", "spurious_recovery") for rec in log)
    assert ends + count("rto") >= 1
    cwnds = [rec["cwnd"] for rec in log if rec["event"] == "cwnd"]
    assert len(set(cwnds)) > 2  # the window moved both ways
    states = [rec["new"] for rec in log if rec["event"] == "state"]
    assert states[:2] == ["SYN_SENT", "ESTABLISHED"] and "FIN_WAIT_1" in states
    rows = dissect(pcap_file, pport, tcp_port=sport)
    check_capture(rows, socket.AF_INET, own=("127.0.0.1", cport))
    # Every segment we sent again is one tshark finds sent before (out of
    # order, in its words, when it left less than an RTT after the highest).
    ours = [r for r in rows if int(r["udp.dstport"]) == pport]
    check_sent_count(ours, stats["segments_sent"])
    assert sum(map(resent, ours)) == stats["retransmits"] > 0
    size = len(data)
    assert sum(int(r["tcp.len"]) for r in ours if not resent(r)) == size
    assert any(r["tcp.analysis.fast_retransmission"] for r in rows)


def test_bad_capture_options_are_refused(run: Callable[..., Any], tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="pcap"):
            await rudp.open_connection("127.0.0.1", 9, pcap=123)
        with pytest.raises(TypeError, match="event_log"):
            await rudp.start_server(lambda r, w: None, "127.0.0.1", 0, event_log=b"/tmp/x")
        with pytest.raises(FileNotFoundError):
            await rudp.start_server(lambda r, w: None, "127.0.0.1", 0, pcap=tmp_path / "no" / "such.pcap")
        ep = await rudp.create_endpoint("127.0.0.1", 0)
        try:
            with pytest.raises(ValueError, match="create_endpoint"):
                await rudp.open_connection("127.0.0.1", 9, endpoint=ep, pcap=tmp_path / "x.pcap")
        finally:
            ep.close()

    run(main(), timeout=30)


@needs_tshark
def test_shared_endpoint_capture_holds_every_connection(run: Callable[..., Any], tmp_path: Path) -> None:
    """``create_endpoint(pcap=...)``: one capture for the socket, one TCP stream
    per connection through it; the file is closed with the endpoint."""
    pcap = tmp_path / "endpoint.pcap"
    buf = io.StringIO()

    async def main() -> tuple[int, int]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read())
            writer.close()

        server = await rudp.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ep = await rudp.create_endpoint("127.0.0.1", 0, pcap=pcap, event_log=buf)
        own = ep.sockname[1]
        async with server:
            for i in range(3):
                reader, writer = await rudp.open_connection("127.0.0.1", port, endpoint=ep)
                writer.write(bytes([i]) * 3000)
                writer.write_eof()
                assert await reader.read() == bytes([i]) * 3000
                writer.close()
                await writer.wait_closed()
        ep.close()
        await ep.wait_closed()
        return port, own

    port, own = run(main(), timeout=30)
    rows = dissect(pcap, port)
    check_capture(rows, socket.AF_INET, own=("127.0.0.1", own))
    assert {r["tcp.stream"] for r in rows} == {"0", "1", "2"}
    log = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert {rec["conn"] for rec in log} == {1, 2, 3}
    assert sum(rec["event"] == "connection" for rec in log) == 3


def test_pcap_writer_formats_ipv4_and_ipv6_checksums() -> None:
    """The UDP checksum verifies over each family's pseudo-header (a correct
    packet sums to 0xFFFF, i.e. checksums to 0), and the pcap records parse."""
    from rudp.core.wire import internet_checksum
    from rudp.aio.capture import pseudo_header

    for a, b in ((bytes([127, 0, 0, 1]), bytes([127, 0, 0, 2])),
                 (bytes(15) + b"\x01", bytes(15) + b"\x02")):
        pkt = udp_packet(a, 1234, b, 80, b"payload!", 7)
        hl = 20 if len(a) == 4 else 40
        udp = pkt[hl:]
        assert int.from_bytes(udp[4:6], "big") == len(udp) == 16
        assert internet_checksum(pseudo_header(a, b, 17, len(udp)) + udp) == 0
        if len(a) == 4:
            assert internet_checksum(pkt[:20]) == 0 and int.from_bytes(pkt[2:4], "big") == len(pkt)
        else:
            assert pkt[0] >> 4 == 6 and int.from_bytes(pkt[4:6], "big") == len(udp)
    out = io.BytesIO()
    w = PcapWriter(out)
    w.write(1.9999999, ("::1", 5), ("::1", 6), b"x")
    raw = out.getvalue()
    assert raw[:4] == bytes.fromhex("d4c3b2a1") and len(raw) == 24 + 16 + 40 + 8 + 1
    sec, usec = int.from_bytes(raw[24:28], "little"), int.from_bytes(raw[28:32], "little")
    assert (sec, usec) == (2, 0)


@needs_tshark
@pytest.mark.parametrize("loop", LOOPS)
def test_cli_pcap_and_event_log(loop: str, tmp_path: Path) -> None:
    """``rudp listen --pcap --event-log`` and ``rudp connect --pcap --event-log -``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    out_file = open(tmp_path / "listener.out", "wb")
    listener = subprocess.Popen(
        [sys.executable, "-m", "rudp", "--loop", loop, "listen", str(port), "--host", "127.0.0.1",
         "--pcap", str(tmp_path / "listen.pcap"), "--event-log", str(tmp_path / "listen.jsonl")],
        stdin=subprocess.PIPE, stdout=out_file, stderr=subprocess.PIPE, env=env,
    )
    try:
        wait_bound(port, listener)
        assert listener.stdin is not None
        listener.stdin.write(b"reply\n" * 5000)
        listener.stdin.close()
        request = os.urandom(100_000)
        client = subprocess.run(
            [sys.executable, "-m", "rudp", "--loop", loop, "connect", "127.0.0.1", str(port),
             "--pcap", str(tmp_path / "connect.pcap"), "--event-log", "-"],
            input=request, capture_output=True, timeout=60, env=env,
        )
        listener.wait(timeout=60)
        assert client.returncode == 0, client.stderr.decode()
        assert listener.returncode == 0
        assert client.stdout == b"reply\n" * 5000
        assert (tmp_path / "listener.out").read_bytes() == request
    finally:
        listener.kill()
        listener.wait()
        out_file.close()
    for name in ("listen.pcap", "connect.pcap"):
        rows = dissect(tmp_path / name, port)
        check_capture(rows, socket.AF_INET, own=("127.0.0.1", port) if name == "listen.pcap" else src(rows[0]))
        flags = [r["tcp.flags.str"] for r in rows]
        assert flags[0].strip("·") == "S" and sum("F" in f for f in flags) >= 2, name
        assert len({(src(r), dst(r)) for r in rows}) == 2  # both directions
    client_log = [json.loads(line) for line in client.stderr.decode().splitlines()]
    assert {"connection", "state", "rtt", "cwnd"} <= {rec["event"] for rec in client_log}
    listen_log = read_log(tmp_path / "listen.jsonl")
    assert ("SYN_RCVD", "ESTABLISHED") in [(r["old"], r["new"]) for r in listen_log if r["event"] == "state"]
