"""tshark's TCP dissector reads our datagrams as TCP and finds nothing wrong.

The simulator's trace is written as a pcap (IPv4/UDP around each segment,
captured where it arrives) and dissected with ``-d udp.port==PORT,tcp``: the
handshake, options, sequence and ACK numbers, SACK blocks and the close must
all make sense to an independent TCP implementation.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rudp.core.config import Config
from rudp.tools.pcap import write_trace
from rudp.tools.sim import LinkConfig
from tests.simapps import CLIENT, SERVER, run_transfer

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (tests/setup.sh installs it as root)")


def dissect(pcap: Path, *fields: str, display_filter: str = "") -> list[list[str]]:
    assert TSHARK is not None
    cmd = [TSHARK, "-r", str(pcap), "-d", f"udp.port=={SERVER[1]},tcp", "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    if display_filter:
        cmd += ["-Y", display_filter]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    return [line.split("\t") for line in out.stdout.splitlines()]


def capture(tmp_path: Path, loss: float, config: Config = Config()) -> tuple[Path, int]:
    r = run_transfer(3, LinkConfig(delay=0.01, bandwidth=20e6, loss=loss), 200_000, config,
                     reply_size=30_000, trace=True)
    assert r.ok, r.summary()
    pcap = tmp_path / "rudp.tools.pcap"
    count = write_trace(str(pcap), r.net.sim.trace, {CLIENT: CLIENT, SERVER: SERVER})
    return pcap, count


@pytest.mark.parametrize("config", [Config(), Config(timestamps=False, sack=False, window_scale=False)],
                         ids=["all-options", "no-options"])
def test_lossless_transfer_dissects_cleanly(tmp_path: Path, config: Config) -> None:
    pcap, count = capture(tmp_path, 0.0, config)
    rows = dissect(pcap, "tcp.flags.str", "tcp.analysis.flags", "_ws.malformed", "_ws.expert.severity")
    assert len(rows) == count  # every datagram dissected as TCP
    flags = [r[0] for r in rows]
    assert flags[0].strip("·") == "S" and "S" in flags[1] and "A" in flags[1]
    assert sum("F" in f for f in flags) == 2 and not any("R" in f for f in flags)
    # No sequence-analysis complaint of any kind on a clean link, nothing malformed.
    assert [r for r in rows if r[1] or r[2]] == []
    # Every TCP stream is one connection, seen whole.
    streams = dissect(pcap, "tcp.stream")
    assert {s[0] for s in streams} == {"0"}


def test_options_are_understood(tmp_path: Path) -> None:
    pcap, _ = capture(tmp_path, 0.0)
    syn = dissect(pcap, "tcp.options.mss_val", "tcp.options.wscale.shift", "tcp.options.sack_perm",
                  "tcp.options.timestamp.tsval", display_filter="tcp.flags.syn==1")
    assert len(syn) == 2
    shift_wanted = str(Config().rcv_wscale)  # 7 for the 4 MiB default buffer
    for mss, shift, sack_perm, tsval in syn:
        assert mss == "1432" and shift == shift_wanted and sack_perm and tsval
    # Window scaling is applied: the calculated window exceeds the 16-bit field.
    wins = dissect(pcap, "tcp.window_size", display_filter="tcp.flags.syn==0")
    assert max(int(w[0]) for w in wins) > 65535


def test_lossy_transfer_has_only_loss_symptoms(tmp_path: Path) -> None:
    """With 5% loss the dissector sees retransmissions, duplicate ACKs and SACKs,
    but never an ACK for unseen data, a malformed segment or a bad window."""
    pcap, count = capture(tmp_path, 0.05)
    rows = dissect(pcap, "tcp.analysis.retransmission", "tcp.analysis.ack_lost_segment",
                   "_ws.malformed", "tcp.analysis.window_update", "tcp.options.sack_le")
    assert len(rows) == count
    assert any(r[0] for r in rows)  # it did see our retransmissions
    assert any(r[4] for r in rows)  # and our SACK blocks
    assert not any(r[1] for r in rows)  # "ACKed segment that wasn't captured"
    assert not any(r[2] for r in rows)
    expert = subprocess.run(
        [TSHARK, "-r", str(pcap), "-d", f"udp.port=={SERVER[1]},tcp", "-q", "-z", "expert,error"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert "Errors" not in expert, expert


def test_loopback_capture_of_a_real_transfer_dissects_cleanly(tmp_path: Path) -> None:
    """Capture a real rudp transfer on the loopback interface with tshark and
    dissect it: every UDP datagram is exactly one TCP segment (no batching
    artefacts), the handshake and FINs are seen, nothing is malformed, and the
    sequence analysis finds no gap on this lossless path. Both sides run with
    ``gso=False``: on lo a GSO batch is captured as one large datagram (the
    in-process ``pcap=`` capture, tests/test_capture.py, has no such limit)."""
    import asyncio
    import hashlib
    import os
    import signal
    import time

    import rudp

    assert TSHARK is not None
    if os.geteuid() != 0:
        pytest.skip("capturing on lo needs root")
    data = os.urandom(400_000)
    pcap = tmp_path / "lo.pcap"

    async def main() -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got = await reader.read()
            writer.write(hashlib.sha256(got).digest())
            writer.close()
            await writer.wait_closed()

        server = await rudp.start_server(handle, "127.0.0.1", 0, gso=False)
        port = server.sockets[0].getsockname()[1]
        cap = subprocess.Popen(
            [TSHARK, "-i", "lo", "-f", f"udp port {port}", "-w", str(pcap), "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 20
            assert cap.stderr is not None
            os.set_blocking(cap.stderr.fileno(), False)
            seen = b""
            while b"Capturing on" not in seen and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                seen += cap.stderr.read() or b""
            if b"Capturing on" not in seen:
                pytest.skip(f"tshark cannot capture on lo here: {seen.decode(errors='replace')}")
            # "Capturing on" comes before dumpcap's filter is live; tshark 4
            # reports "Capture started" once it is. Older ones say nothing more.
            started = time.monotonic() + 2
            while b"Capture started" not in seen and time.monotonic() < started:
                await asyncio.sleep(0.05)
                seen += cap.stderr.read() or b""
            async with server:
                reader, writer = await rudp.open_connection("127.0.0.1", port, gso=False)
                writer.write(data)
                writer.write_eof()
                assert await reader.read() == hashlib.sha256(data).digest()
                writer.close()
                await writer.wait_closed()
            await asyncio.sleep(0.5)
        finally:
            cap.send_signal(signal.SIGINT)
            cap.wait(timeout=20)
        return port

    port = asyncio.run(asyncio.wait_for(main(), 60))
    out = subprocess.run(
        [TSHARK, "-r", str(pcap), "-d", f"udp.port=={port},tcp", "-T", "fields",
         "-e", "udp.length", "-e", "tcp.hdr_len", "-e", "tcp.len", "-e", "tcp.flags.str",
         "-e", "tcp.analysis.flags", "-e", "_ws.malformed", "-e", "tcp.stream", "-e", "tcp.seq"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()
    rows = [line.split("\t") for line in out]
    assert len(rows) > 280  # the whole transfer was captured
    for udp_len, hdr_len, tcp_len, flags, analysis, malformed, _, _ in rows:
        assert int(udp_len) == 8 + int(hdr_len) + int(tcp_len)  # one segment per datagram
        assert not malformed
    # One FIN each way; one resent (its ACK came late on a busy machine: a tail
    # loss probe) is still that FIN, and the only retransmission allowed.
    fins = {(r[6], r[7]) for r in rows if "F" in r[3]}
    assert sum("S" in r[3] for r in rows) == 2 and len(fins) == 2
    assert sum(int(r[2]) for r in rows) >= len(data)
    flagged = [r for r in rows if r[4] and "F" not in r[3]]
    assert not flagged, flagged[:5]
