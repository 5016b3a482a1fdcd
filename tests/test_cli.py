"""The ``rudp`` command line: netcat-like listen/connect with half-close, and the demo."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import LOOPS

PY = sys.executable


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_bound(port: int, proc: subprocess.Popen[bytes], deadline: float = 20.0) -> None:
    """Until the listener process holds its UDP port (a fixed sleep lost the
    race on a loaded machine: the connect came first and was refused)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end and proc.poll() is None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return  # in use: the listener is up
        time.sleep(0.02)
    raise AssertionError(f"the listener did not bind port {port} (exit status {proc.poll()})")


@pytest.mark.parametrize("loop", LOOPS)
def test_listen_connect_pipe_both_ways_with_half_close(loop: str, tmp_path: Path) -> None:
    """stdin of each side arrives on the other's stdout; the client's stdin EOF
    half-closes (the listener sees EOF) while the listener's reply still arrives."""
    port = free_udp_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # The listener's stdout goes to a file: a pipe nobody drains would block it.
    out_file = open(tmp_path / "listener.out", "wb")
    listener = subprocess.Popen(
        [PY, "-m", "rudp", "--verbose", "--loop", loop, "listen", str(port), "--host", "127.0.0.1"],
        stdin=subprocess.PIPE, stdout=out_file, stderr=subprocess.PIPE, env=env,
    )
    try:
        wait_bound(port, listener)
        request = os.urandom(200_000)
        reply = b"reply from the listener\n" * 1000
        assert listener.stdin is not None
        listener.stdin.write(reply)
        listener.stdin.close()
        client = subprocess.run(
            [PY, "-m", "rudp", "--verbose", "--loop", loop, "connect", "127.0.0.1", str(port)],
            input=request, capture_output=True, timeout=60, env=env,
        )
        listener.wait(timeout=60)
        assert listener.stderr is not None
        err = listener.stderr.read()
        out_file.close()
        assert client.returncode == 0, client.stderr.decode()
        assert listener.returncode == 0, err.decode()
        assert (tmp_path / "listener.out").read_bytes() == request
        assert client.stdout == reply
        # --verbose logs state changes.
        assert re.search(rb"SYN_SENT -> ESTABLISHED", client.stderr), client.stderr
        assert re.search(rb"SYN_RCVD -> ESTABLISHED", err), err
        # ... and the listener's counters when it ends.
        assert re.search(rb"listener: .*half_open=0 .*syn_received=1", err), err
    finally:
        listener.kill()
        listener.wait()
        out_file.close()


def test_connect_refused_exit_code() -> None:
    port = free_udp_port()
    proc = subprocess.run(
        [PY, "-m", "rudp", "connect", "127.0.0.1", str(port)],
        input=b"", capture_output=True, timeout=60,
    )
    assert proc.returncode == 1
    assert b"refused" in proc.stderr


def test_demo_reports_a_verified_transfer() -> None:
    proc = subprocess.run(
        [PY, "-m", "rudp", "demo", "--size", "500000", "--loss", "0.03"],
        capture_output=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    text = proc.stdout.decode()
    assert "OK" in text and "retransmissions" in text and "dropped" in text


def test_sim_demo() -> None:
    proc = subprocess.run(
        [PY, "-m", "rudp", "demo", "--sim", "--size", "300000"], capture_output=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"OK" in proc.stdout


@pytest.mark.parametrize("loop", LOOPS)
def test_listen_with_stdin_from_dev_null(loop: str, tmp_path: Path) -> None:
    """A listener whose stdin is /dev/null (as under nohup or cron) still works:
    stdin that the loop cannot watch is read in a thread."""
    port = free_udp_port()
    with open(tmp_path / "out", "wb") as out:
        listener = subprocess.Popen(
            [PY, "-m", "rudp", "--loop", loop, "listen", str(port), "--host", "127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE,
        )
        try:
            wait_bound(port, listener)
            client = subprocess.run(
                [PY, "-m", "rudp", "--loop", loop, "connect", "127.0.0.1", str(port)],
                input=b"hello via rudp\n", capture_output=True, timeout=60,
            )
            listener.wait(timeout=60)
        finally:
            listener.kill()
            listener.wait()
    assert client.returncode == 0, client.stderr.decode()
    assert listener.returncode == 0
    assert (tmp_path / "out").read_bytes() == b"hello via rudp\n"


def test_listen_reports_a_peer_reset_and_exits_1(tmp_path: Path) -> None:
    """A peer that aborts (RST): the listener says so on stderr and exits 1,
    as ``rudp connect`` does, instead of an unhandled-exception traceback."""
    import asyncio

    import rudp

    port = free_udp_port()
    listener = subprocess.Popen(
        [PY, "-m", "rudp", "listen", str(port), "--host", "127.0.0.1"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )

    async def abort_after_hello() -> None:
        reader, writer = await rudp.open_connection("127.0.0.1", port, connect_timeout=10)
        writer.write(b"hello\n")
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.transport.abort()
        await asyncio.sleep(0.3)

    try:
        wait_bound(port, listener)
        asyncio.run(abort_after_hello())
        assert listener.wait(timeout=30) == 1
        err = listener.stderr.read().decode() if listener.stderr else ""
    finally:
        listener.kill()
        listener.wait()
    assert "rudp: " in err and "reset" in err, err
    assert "Traceback" not in err and "Unhandled exception" not in err, err


def test_listen_on_a_taken_port_is_a_one_line_error() -> None:
    """A UDP port another socket holds: one line on stderr and exit 1, no traceback."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        proc = subprocess.run([PY, "-m", "rudp", "listen", str(port), "--host", "127.0.0.1"],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert f"cannot listen on port {port}" in err and "Traceback" not in err, err
