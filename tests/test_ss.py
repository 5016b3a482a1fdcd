"""``rudp ss``: per-process introspection sockets and their snapshots, stale
socket cleanup, permissions, and ``rudp ss`` during a running ``rudp perf``."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

import rudp
from rudp.aio import introspect
from rudp.tools import ss
from tests.conftest import LOOPS
from tests.test_cli import free_udp_port

PY = sys.executable


@pytest.fixture
def ss_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    directory = tmp_path / "ss"
    monkeypatch.setenv(introspect.ENV_DIR, str(directory))
    monkeypatch.delenv(introspect.ENV_ENABLE, raising=False)
    yield directory
    introspect.close()


def test_snapshot_lists_listeners_and_connections(run: Callable[..., Any], ss_dir: Path) -> None:
    """The snapshot, read from another thread as `rudp ss` does, has the
    listener's counters and both ends of an established connection with
    their RTT, windows, byte counts and queues; -l keeps listeners only."""

    async def body() -> None:
        path = introspect.expose()
        assert path == str(ss_dir / f"{os.getpid()}.sock")
        got = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.set_result(await reader.readexactly(100_000))
            writer.write(b"ok")  # carries the ACK of all 100,000 bytes
            try:
                await reader.read()
            finally:
                writer.close()

        server = await rudp.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await rudp.open_connection("127.0.0.1", port)
        writer.write(b"x" * 100_000)
        await writer.drain()
        await got
        assert await reader.readexactly(2) == b"ok"
        snaps = await asyncio.to_thread(ss.collect)
        assert [s["pid"] for s in snaps] == [os.getpid()]
        table = ss.rows(snaps, listening_only=False)
        listen = [r for r in table if r["state"] == "LISTEN"]
        assert len(listen) == 1 and listen[0]["local"] == f"127.0.0.1:{port}"
        for key in ("half_open", "backlog", "accept_queue", "cookies_sent", "syn_received"):
            assert key in listen[0], key
        estab = [r for r in table if r["state"] == "ESTABLISHED"]
        assert len(estab) == 2
        client = next(r for r in estab if r["peer"] == f"127.0.0.1:{port}")
        served = next(r for r in estab if r["local"] == f"127.0.0.1:{port}")
        for row in (client, served):
            for key in ("rtt_ms", "rttvar_ms", "cwnd", "ssthresh", "bytes_acked",
                        "bytes_received", "retransmits", "send_queue", "recv_queue", "mss"):
                assert key in row, key
        assert client["bytes_acked"] == 100_000 and client["send_queue"] == 0
        assert client["bytes_received"] == 2 and client["recv_queue"] == 0
        assert served["bytes_received"] == 100_000 and served["recv_queue"] == 0
        assert client["rtt_ms"] is not None and client["cwnd"] > 0
        assert ss.rows(snaps, listening_only=True) == listen
        text = ss.format_table(table)
        assert text.splitlines()[0].split()[:3] == ["State", "Recv-Q", "Send-Q"]
        assert text.count("ESTAB ") == 2 and "LISTEN" in text and "bytes_acked:100000" in text
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(body(), timeout=30)
    # The directory and the socket are private.
    assert stat.S_IMODE(os.stat(ss_dir).st_mode) == 0o700


def test_socket_modes_and_close(run: Callable[..., Any], ss_dir: Path) -> None:
    async def body() -> None:
        path = introspect.expose()
        assert introspect.expose() == path  # idempotent on the same loop
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        introspect.close()
        assert not os.path.exists(path) and introspect.exposed_path() is None

    run(body(), timeout=30)


def test_stale_sockets_are_removed(ss_dir: Path) -> None:
    """A dead pid's socket, and a live pid's socket nobody listens on, are removed."""
    ss_dir.mkdir(mode=0o700)
    dead = subprocess.Popen([PY, "-c", "pass"])
    dead.wait()
    stale = []
    for pid in (dead.pid, os.getppid()):
        path = ss_dir / f"{pid}.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(str(path))  # bound, never listening: refused
        stale.append(path)
    (ss_dir / "notes.txt").write_text("not ours")
    assert ss.collect(str(ss_dir)) == []
    assert not any(p.exists() for p in stale)
    assert (ss_dir / "notes.txt").exists()


def test_environment_variable_exposes_a_library_program(tmp_path: Path) -> None:
    """RUDP_SS=1: a program that only calls rudp.start_server is listed."""
    directory = tmp_path / "ss"
    script = ("import asyncio, rudp\n"
              "async def main():\n"
              "    s = await rudp.start_server(lambda r, w: None, '127.0.0.1', 0)\n"
              "    print('ready', flush=True)\n"
              "    await asyncio.sleep(30)\n"
              "asyncio.run(main())\n")
    env = dict(os.environ, RUDP_SS="1", RUDP_SS_DIR=str(directory))
    proc = subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        out = subprocess.run([PY, "-m", "rudp", "ss", "--json", "-l"], capture_output=True,
                             timeout=30, env=env)
        assert out.returncode == 0, out.stderr.decode()
        doc = json.loads(out.stdout)
        assert doc["processes"] == 1
        assert [(r["pid"], r["state"]) for r in doc["sockets"]] == [(proc.pid, "LISTEN")]
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("loop", LOOPS)
def test_ss_during_a_running_perf(loop: str, tmp_path: Path) -> None:
    """`rudp ss` lists the listeners and the data connections of a running
    `rudp perf` (server and client processes), and the test still completes
    with both ends counting the same bytes."""
    directory = tmp_path / "ss"
    env = dict(os.environ, PYTHONUNBUFFERED="1", RUDP_SS_DIR=str(directory))
    port = free_udp_port()
    server = subprocess.Popen(
        [PY, "-m", "rudp", "--loop", loop, "perf", "-s", "-p", str(port), "-B", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    client = None
    try:
        assert server.stdout is not None
        server.stdout.readline()
        assert b"Server listening" in server.stdout.readline()
        client = subprocess.Popen(
            [PY, "-m", "rudp", "--loop", loop, "perf", "-c", "127.0.0.1", "-p", str(port),
             "-t", "5", "-P", "2", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        data: list[dict[str, Any]] = []
        table: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # bounded: until both data streams move
            # What `rudp ss --json` prints, read in this process: no start-up
            # delay, so a loaded machine still sees the test while it runs.
            table = ss.rows(ss.collect(str(directory)), listening_only=False)
            data = [r for r in table if r["state"] == "ESTABLISHED"
                    and r["pid"] == client.pid and r["bytes_acked"] > 0
                    and r["peer"] != f"127.0.0.1:{port}"]
            if len(data) == 2:
                break
            time.sleep(0.1)
        assert len(data) == 2, table
        assert {r["pid"] for r in table} == {server.pid, client.pid}
        listeners = [r for r in table if r["state"] == "LISTEN"]
        assert {r["pid"] for r in listeners} == {server.pid}
        assert f"127.0.0.1:{port}" in {r["local"] for r in listeners}  # control + data listener
        assert len(listeners) == 2
        served = [r for r in table if r["pid"] == server.pid
                  and r["state"] == "ESTABLISHED" and r["bytes_received"] > 0]
        assert len(served) >= 2
        # The commands themselves, while the control connection still runs.
        text = subprocess.run([PY, "-m", "rudp", "ss"], capture_output=True, timeout=30,
                              env=env).stdout.decode()
        assert text.startswith("State") and "ESTAB" in text and "LISTEN" in text
        out = subprocess.run([PY, "-m", "rudp", "ss", "--json"], capture_output=True,
                             timeout=30, env=env)
        assert out.returncode == 0, out.stderr.decode()
        doc = json.loads(out.stdout)
        assert doc["processes"] == 2
        assert {r["pid"] for r in doc["sockets"]} == {server.pid, client.pid}
        lonly = subprocess.run([PY, "-m", "rudp", "ss", "-l"], capture_output=True, timeout=30,
                               env=env).stdout.decode()
        assert "LISTEN" in lonly and "ESTAB" not in lonly
        out_bytes, err = client.communicate(timeout=60)
        assert client.returncode == 0, err.decode()
        res = json.loads(out_bytes)
        assert res["sender"]["bytes"] == res["receiver"]["bytes"] == res["bytes"] > 0
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        server.terminate()
        server.communicate(timeout=30)
    assert not list(directory.glob("*.sock"))
