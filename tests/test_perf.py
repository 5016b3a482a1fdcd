"""``rudp perf``: the control exchange, byte agreement between the ends, the
JSON and text reports, and clean errors. Bounded transfers on loopback;
assertions on structure and byte counts, never on rates."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from typing import Any, Callable

import pytest

import rudp
from rudp.tools import perf
from rudp.tools.perf import Params, PerfServer, new_params, run_client
from tests.conftest import LOOPS
from tests.test_cli import free_udp_port

PY = sys.executable
MB = 1 << 20


async def _with_server(body: Callable[[int, io.StringIO], Any]) -> Any:
    out = io.StringIO()
    srv = PerfServer("127.0.0.1", 0, out)
    task = asyncio.ensure_future(srv.run())
    try:
        while srv.ready is None:  # run() has not started yet
            await asyncio.sleep(0)
        _, port = await srv.ready
        return await body(port, out)
    finally:
        assert srv.finished is not None
        if not srv.finished.done():
            srv.finished.set_result(None)
        await task


def _check_result(res: dict[str, Any], streams: int) -> None:
    for key in ("bytes", "seconds", "bits_per_second", "retransmits"):
        assert key in res, key
    assert res["sender"]["bytes"] == res["receiver"]["bytes"] == res["bytes"]
    assert len(res["streams"]) == res["stream_count"] == streams
    assert sum(s["receiver"]["bytes"] for s in res["streams"]) == res["bytes"]
    for s in res["streams"]:
        assert s["sender"]["bytes"] == s["receiver"]["bytes"]
    assert res["intervals"], "at least the final interval"
    for rec in res["intervals"]:
        assert {"start", "end", "bytes", "bits_per_second", "retransmits", "streams"} <= set(rec)
        assert len(rec["streams"]) == streams
    # The sender's intervals count acknowledged bytes: together, everything.
    if not res["reverse"]:
        assert sum(r["bytes"] for r in res["intervals"]) == res["bytes"]
    json.dumps(res)  # serializable as it is


def test_forward_bytes_and_reverse_duration(run: Callable[..., Any]) -> None:
    """-n: both ends count exactly the requested bytes over -P streams; -R -t:
    the server sends for the duration and both ends agree on the bytes."""

    async def body(port: int, out: io.StringIO) -> None:
        params = new_params(3, False, None, 6 * MB + 5, "newreno", False)
        res = await run_client("127.0.0.1", port, params, io.StringIO(), True)
        _check_result(res, 3)
        assert res["bytes"] == 6 * MB + 5
        assert [s["sender"]["bytes"] for s in res["streams"]] == [2 * MB + 2, 2 * MB + 2, 2 * MB + 1]
        params = new_params(2, True, 0.5, None, "newreno", False)
        res = await run_client("127.0.0.1", port, params, io.StringIO(), True)
        _check_result(res, 2)
        assert res["reverse"] and res["bytes"] > 0
        # The server printed both tests' summaries (the server is the sender in the second).
        text = out.getvalue()
        assert text.count("Accepted connection from 127.0.0.1") == 2
        assert text.count("[SUM]") >= 4 and "sender" in text and "receiver" in text

    run(_with_server(body), timeout=60)


def test_text_report_lines(run: Callable[..., Any]) -> None:
    async def body(port: int, out: io.StringIO) -> None:
        client_out = io.StringIO()
        params = new_params(1, False, None, 3 * MB, "newreno", True)  # --gso too
        res = await run_client("127.0.0.1", port, params, client_out, False)
        assert res["bytes"] == 3 * MB and res["gso"] is True
        text = client_out.getvalue()
        assert "Connecting to host 127.0.0.1" in text
        assert "Retr" in text and "Cwnd" in text and "RTT" in text
        lines = [ln for ln in text.splitlines() if ln.startswith("[  1]")]
        assert lines[-2].endswith("sender") and lines[-1].endswith("receiver")
        assert "3.00 MBytes" in lines[-1]

    run(_with_server(body), timeout=60)


def test_bad_control_messages_get_errors_and_the_server_goes_on(run: Callable[..., Any]) -> None:
    async def body(port: int, out: io.StringIO) -> None:
        bad = [b"not json\n", b"[1, 2]\n",
               json.dumps({**Params("a" * 32).to_json(), "streams": 0}).encode() + b"\n",
               json.dumps({**Params("a" * 32).to_json(), "cc": "bogus"}).encode() + b"\n",
               json.dumps({**Params("a" * 32).to_json(), "seconds": -1}).encode() + b"\n",
               json.dumps({**Params("a" * 32).to_json(), "version": 99}).encode() + b"\n"]
        for line in bad:
            reader, writer = await rudp.open_connection("127.0.0.1", port)
            writer.write(line)
            reply = json.loads(await reader.readline())
            assert "error" in reply, (line, reply)
            writer.close()
            await writer.wait_closed()
        # A data connection with a wrong cookie is refused; the test still runs.
        params = new_params(1, False, None, 1 * MB, "newreno", False)
        res = await run_client("127.0.0.1", port, params, io.StringIO(), True)
        assert res["bytes"] == MB
        assert "unknown congestion control 'bogus'" in out.getvalue()

    run(_with_server(body), timeout=60)


def test_unknown_cc_is_a_clean_client_error(run: Callable[..., Any]) -> None:
    async def body() -> None:
        with pytest.raises(perf.PerfError, match="unknown congestion control 'cubicle'"):
            await run_client("127.0.0.1", 9, new_params(1, False, 1, None, "cubicle", False),
                             io.StringIO(), True)

    run(body(), timeout=20)


def test_parse_size() -> None:
    assert perf.parse_size("20MB") == 20 * MB
    assert perf.parse_size("1.5k") == 1536
    assert perf.parse_size("4096") == 4096
    for bad in ("", "x", "-1M", "0"):
        with pytest.raises(ValueError):
            perf.parse_size(bad)


@pytest.mark.parametrize("loop", LOOPS)
def test_cli_server_and_client(loop: str, tmp_path: Any) -> None:
    """The commands as users run them: -s serves tests one after another, -c
    prints JSON; errors exit non-zero without a traceback."""
    port = free_udp_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1", RUDP_SS_DIR=str(tmp_path / "ss"))
    server = subprocess.Popen([PY, "-m", "rudp", "--loop", loop, "perf", "-s", "-p", str(port),
                               "-B", "127.0.0.1"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env)
    try:
        assert server.stdout is not None
        assert b"Server listening on" in server.stdout.readline() + server.stdout.readline()
        client = [PY, "-m", "rudp", "--loop", loop, "perf", "-c", "127.0.0.1", "-p", str(port)]
        for extra in (["-n", "4MB", "-P", "2", "--json"], ["-R", "-t", "0.5", "--json"]):
            proc = subprocess.run(client + extra, capture_output=True, timeout=60, env=env)
            assert proc.returncode == 0, proc.stderr.decode()
            res = json.loads(proc.stdout)
            assert res["loop"] == loop
            assert res["sender"]["bytes"] == res["receiver"]["bytes"] == res["bytes"] > 0
        assert res["reverse"] is True
        proc = subprocess.run(client + ["--cc", "nope", "-t", "1"], capture_output=True,
                              timeout=60, env=env)
        assert proc.returncode == 2
        assert b"unknown congestion control 'nope'" in proc.stderr
        assert b"Traceback" not in proc.stderr
        proc = subprocess.run([PY, "-m", "rudp", "perf", "-s", "-p", str(port), "-B", "127.0.0.1"],
                              capture_output=True, timeout=60, env=env)
        assert proc.returncode == 1 and b"cannot listen on 127.0.0.1" in proc.stderr
        assert b"Traceback" not in proc.stderr
        proc = subprocess.run(client[:-1] + [str(free_udp_port()), "-t", "1"],
                              capture_output=True, timeout=60, env=env)
        assert proc.returncode == 1 and b"cannot reach the server" in proc.stderr
        assert b"Traceback" not in proc.stderr
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert server.returncode == 143, err.decode()
    assert b"Traceback" not in err, err.decode()
    assert out.count(b"Accepted connection from 127.0.0.1") == 2
    assert not list((tmp_path / "ss").glob("*.sock")), "the ss socket is removed at exit"


def test_busy_server_and_vanished_client(run: Callable[..., Any]) -> None:
    """A second client during a test is told the server is busy; a client
    that goes away mid-setup costs the server that test only."""

    async def body(port: int, out: io.StringIO) -> None:
        first = asyncio.ensure_future(run_client(
            "127.0.0.1", port, new_params(1, False, 1.0, None, "newreno", False),
            io.StringIO(), True))
        for _ in range(500):  # bounded: until the first test is accepted
            if "Accepted connection" in out.getvalue():
                break
            await asyncio.sleep(0.01)
        with pytest.raises(perf.PerfError, match="busy"):
            await run_client("127.0.0.1", port, new_params(1, False, 1.0, None, "newreno", False),
                             io.StringIO(), True)
        assert (await first)["bytes"] > 0
        # Valid parameters, then the client vanishes before its data connections.
        reader, writer = await rudp.open_connection("127.0.0.1", port)
        writer.write(json.dumps(Params("b" * 32).to_json()).encode() + b"\n")
        assert "port" in json.loads(await reader.readline())
        writer.transport.abort()
        for _ in range(500):
            if "test from 127.0.0.1 failed" in out.getvalue():
                break
            await asyncio.sleep(0.01)
        res = await run_client("127.0.0.1", port, new_params(1, False, None, MB, "newreno", False),
                               io.StringIO(), True)
        assert res["bytes"] == MB

    run(_with_server(body), timeout=60)


def test_client_capture_holds_every_stream(run: Callable[..., Any], tmp_path: Any) -> None:
    """--pcap on the client (run_client's ``capture``): the -P streams share one
    socket whose capture tshark dissects as TCP with nothing malformed, each
    stream's handshake and FIN in it, and every data byte the client sent."""
    from tests.test_capture import TSHARK, dissect
    if TSHARK is None:
        pytest.skip("tshark is not installed (tests/setup.sh installs it as root)")
    pcap = tmp_path / "perf.pcap"

    async def body(port: int, out: io.StringIO) -> dict[str, Any]:
        params = new_params(2, False, None, 2 * MB, perf.DEFAULT_CC, True)
        return await run_client("127.0.0.1", port, params, io.StringIO(), True, {"pcap": str(pcap)})

    res = run(_with_server(body), timeout=60)
    _check_result(res, 2)
    sent_to = [r["udp.dstport"] for r in dissect(pcap, 1)]  # any port: find the data port first
    data_port = max(set(sent_to), key=sent_to.count)
    rows = dissect(pcap, int(data_port))
    assert not any(r["_ws.malformed"] for r in rows)
    syns = [r for r in rows if "S" in r["tcp.flags.str"] and "A" not in r["tcp.flags.str"]]
    # One FIN per stream; one resent (its ACK came late on a busy machine: a
    # tail loss probe) is still that FIN.
    fins = {(r["tcp.stream"], r["tcp.seq"]) for r in rows
            if "F" in r["tcp.flags.str"] and r["udp.dstport"] == data_port}
    assert len(syns) == 2 and len(fins) == 2
    payload = sum(int(r["tcp.len"]) for r in rows if r["udp.dstport"] == data_port
                  and not any(r[f] for f in ("tcp.analysis.retransmission",
                                             "tcp.analysis.fast_retransmission",
                                             "tcp.analysis.spurious_retransmission")))
    assert payload >= 2 * MB  # the data, plus each stream's header line
