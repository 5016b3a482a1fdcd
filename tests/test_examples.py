"""The examples end to end: real processes talking rudp over 127.0.0.1.

Each test runs on the default asyncio loop and on uvloop: the test's own
coroutine runs on that loop and the example processes get ``--loop`` with the
same name. Servers bind port 0 and print their address, so there is no race
for a free port. Every wait has a deadline, and every process is killed in a
``finally`` if it is still running.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import signal
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from tests.conftest import run_on

import rudp


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STEP = 10.0  # longest wait for any single expected event


@pytest.fixture
def loop_kind(loop_name: str) -> str:
    """The loop the example processes run on (conftest's parametrized loop_name)."""
    return loop_name


@pytest.fixture
def run_on_loop(loop_kind: str) -> Callable[..., Any]:
    """``run_on_loop(coro, timeout)``: run on the chosen loop, bounded in time."""

    def runner(coro: Awaitable[Any], timeout: float = 30.0) -> Any:
        return run_on(loop_kind, coro, timeout)

    return runner


class Proc:
    """One example process: stdin pipe, stdout read line by line, stderr to a file."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.stderr_path = stderr_path
        self.lines: list[str] = []  # everything read from stdout (the transcript)
        self.pending: list[str] = []  # read while waiting for something else, not matched yet

    @property
    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def transcript(self) -> str:
        out = "\n".join(f"    {line}" for line in self.lines)
        return f"--- {self.name} stdout:\n{out}\n--- {self.name} stderr:\n{self.stderr}"

    async def expect(self, pattern: str, timeout: float = STEP) -> re.Match[str]:
        """The first unmatched stdout line matching ``pattern`` (regex search).

        Lines may arrive in any order relative to other expectations: lines
        read while looking for one pattern stay pending for later ones.
        """
        rx = re.compile(pattern)
        for i, line in enumerate(self.pending):
            if m := rx.search(line):
                del self.pending[i]
                return m
        assert self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"{self.name}: no line matching {pattern!r} in {timeout} s\n{self.transcript()}")
            try:
                raw = await asyncio.wait_for(self.proc.stdout.readline(), left)
            except asyncio.TimeoutError:
                continue
            if not raw:
                raise AssertionError(f"{self.name}: EOF before a line matching {pattern!r}\n{self.transcript()}")
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if m := rx.search(line):
                return m
            self.pending.append(line)

    async def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    async def rest(self, timeout: float = STEP) -> list[str]:
        """Everything left on stdout until EOF."""
        assert self.proc.stdout is not None
        data = await asyncio.wait_for(self.proc.stdout.read(), timeout)
        new = data.decode(errors="replace").splitlines()
        self.lines.extend(new)
        self.pending.extend(new)
        return new

    async def wait(self, timeout: float = STEP) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.name} did not exit within {timeout} s\n{self.transcript()}") from None


class Procs:
    """Starts example processes and kills whatever is left at the end."""

    def __init__(self, tmp: Path, loop_kind: str) -> None:
        self.tmp = tmp
        self.loop_kind = loop_kind
        self.all: list[Proc] = []

    async def start(self, name: str, script: str, *args: str, stdin: bool = True) -> Proc:
        stderr_path = self.tmp / f"{name}.stderr"
        with open(stderr_path, "wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-u", str(EXAMPLES / script), *args, "--loop", self.loop_kind,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                cwd=str(self.tmp),
            )
        p = Proc(name, proc, stderr_path)
        self.all.append(p)
        return p

    async def server(self, name: str, script: str, *args: str) -> tuple[Proc, int]:
        """Start a server example and read its port from 'listening on HOST:PORT'."""
        p = await self.start(name, script, *args, stdin=False)
        m = await p.expect(r"listening on 127\.0\.0\.1:(\d+)")
        return p, int(m.group(1))

    async def stop(self, p: Proc) -> int:
        """SIGTERM, as a user stopping a server would; the exit status."""
        p.proc.send_signal(signal.SIGTERM)
        return await p.wait()

    async def cleanup(self) -> None:
        for p in self.all:
            if p.proc.returncode is None:
                p.proc.kill()
        for p in self.all:
            if p.proc.returncode is None:
                try:
                    await asyncio.wait_for(p.proc.wait(), 5)
                except asyncio.TimeoutError:  # pragma: no cover
                    pass

    def transcripts(self) -> str:
        return "\n".join(p.transcript() for p in self.all)


def with_procs(tmp_path: Path, loop_kind: str, body: Callable[[Procs], Awaitable[None]]) -> Callable[[], Any]:
    async def main() -> None:
        procs = Procs(tmp_path, loop_kind)
        try:
            await body(procs)
        finally:
            await procs.cleanup()

    return main


# -- echo


def test_echo_example(tmp_path: Path, loop_kind: str, run_on_loop: Callable[..., Any]) -> None:
    async def body(procs: Procs) -> None:
        server, port = await procs.server("echo_server", "echo_server.py", "127.0.0.1", "0")

        # --message: lines sent, echo printed, exit 0
        msg = await procs.start("echo_msg", "echo_client.py", "127.0.0.1", str(port),
                                "--message", "hello", "--message", "wörld", stdin=False)
        assert await msg.rest() == ["hello", "wörld"], msg.transcript()
        assert await msg.wait() == 0, msg.transcript()

        # stdin: interactive line by line (each echo comes back before the next line) ...
        inter = await procs.start("echo_stdin", "echo_client.py", "127.0.0.1", str(port))
        for i in range(3):
            await inter.send(f"line {i}")
            await inter.expect(rf"^line {i}$")
        inter.close_stdin()
        assert await inter.rest() == []
        assert await inter.wait() == 0, inter.transcript()

        # ... and a bigger piped input, echoed byte for byte
        data = b"".join(b"%06d %s\n" % (i, b"x" * (i % 97)) for i in range(4000))  # ~210 KB
        bulk = await procs.start("echo_bulk", "echo_client.py", "127.0.0.1", str(port))
        out, _ = await asyncio.wait_for(bulk.proc.communicate(data), STEP)
        assert bulk.proc.returncode == 0, bulk.stderr
        assert out == data

        assert await procs.stop(server) == 0, server.transcript()

    run_on_loop(with_procs(tmp_path, loop_kind, body)())


# -- file transfer


def test_send_file_example(tmp_path: Path, loop_kind: str, run_on_loop: Callable[..., Any]) -> None:
    src = tmp_path / "payload.bin"
    payload = random.Random(1234).randbytes(2 * 1024 * 1024 + 17)
    src.write_bytes(payload)
    out = tmp_path / "received"

    async def body(procs: Procs) -> None:
        server, port = await procs.server("receiver", "send_file.py", "serve", "0",
                                          "--host", "127.0.0.1", "--out", str(out))
        sender = await procs.start("sender", "send_file.py", "send", "127.0.0.1", str(port), str(src),
                                   stdin=False)
        await sender.rest(30)
        assert await sender.wait() == 0, sender.transcript()
        digest = hashlib.sha256(payload).hexdigest()
        assert any(f"sha256 {digest} verified" in line for line in sender.lines), sender.transcript()
        # the progress bar: plain text on stderr (not a terminal: one line per update)
        bars = [line for line in sender.stderr.splitlines() if line.startswith("payload.bin [")]
        assert bars and "100.0%" in bars[-1], sender.stderr
        await server.expect(rf"received .*payload\.bin \({len(payload)} bytes, sha256 {digest}\)")
        assert (out / "payload.bin").read_bytes() == payload
        assert not list(out.glob("*.part"))

        # the receiver refuses paths and short files, and keeps serving
        async def raw(header: dict[str, Any], body: bytes) -> str:
            reader, writer = await rudp.open_connection("127.0.0.1", port, connect_timeout=STEP)
            writer.write(json.dumps(header).encode() + b"\n" + body)
            writer.write_eof()
            reply = await asyncio.wait_for(reader.readline(), STEP)
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), STEP)
            return reply.decode()

        assert (await raw({"name": "../escape", "size": 3}, b"abc")).startswith("ERR bad header")
        assert (await raw({"name": "short", "size": 10}, b"abc")).startswith("ERR short file")
        assert (await raw({"name": "fine.txt", "size": 3}, b"abc")) == (
            f"OK {hashlib.sha256(b'abc').hexdigest()}\n")
        assert sorted(p.name for p in out.iterdir()) == ["fine.txt", "payload.bin"]
        assert not (tmp_path / "escape").exists()

        assert await procs.stop(server) == 0, server.transcript()

    run_on_loop(with_procs(tmp_path, loop_kind, body)(), 45)


# -- chat


def test_chat_example(tmp_path: Path, loop_kind: str, run_on_loop: Callable[..., Any]) -> None:
    async def body(procs: Procs) -> None:
        server, port = await procs.server("chat_server", "chat_server.py", "--host", "127.0.0.1", "--port", "0")
        addr = ("127.0.0.1", str(port))

        async def client(nick: str) -> Proc:
            return await procs.start(nick, "chat_client.py", *addr, "--nick", nick)

        alice, bob = await asyncio.gather(client("alice"), client("bob"))
        await alice.expect(r"^\* welcome alice; online: ")
        await bob.expect(r"^\* welcome bob; online: ")
        carol = await client("carol")
        await carol.expect(r"^\* welcome carol; online: alice, bob, carol$")
        for p in (alice, bob):
            await p.expect(r"^\* carol joined$")

        # duplicate and empty nicknames: an error line, exit status 2
        dup, empty = await asyncio.gather(client("bob"), procs.start("empty", "chat_client.py", *addr, "--nick", ""))
        assert await dup.wait() == 2
        assert "already in use" in dup.stderr, dup.transcript()
        assert await empty.wait() == 2
        assert "empty nickname" in empty.stderr, empty.transcript()

        # messages reach everyone, the sender included
        await alice.send("hello from alice")
        await bob.send("hi alice, bob here")
        for p in (alice, bob, carol):
            await p.expect(r"^<alice> hello from alice$")
            await p.expect(r"^<bob> hi alice, bob here$")

        await bob.send("/who")
        await bob.expect(r"^\* online \(3\): alice, bob, carol$")
        await bob.send("/nonsense")
        await bob.expect(r"^! error: unknown command /nonsense")

        # a client that resets its connection (RST) is removed; the server goes on
        reader, writer = await rudp.open_connection(*addr[:1], port, connect_timeout=STEP)
        writer.write(b"mallory\n")
        assert (await asyncio.wait_for(reader.readline(), STEP)).startswith(b"* welcome mallory")
        for p in (alice, bob, carol):
            await p.expect(r"^\* mallory joined$")
        writer.transport.abort()
        for p in (alice, bob, carol):
            await p.expect(r"^\* mallory left$")

        # /quit: "* bye", the server closes, the client exits 0
        await carol.send("/quit")
        await carol.expect(r"^\* bye$")
        assert await carol.wait() == 0, carol.transcript()
        for p in (alice, bob):
            await p.expect(r"^\* carol left$")

        # stdin EOF: the client half-closes and exits once the server has closed
        bob.close_stdin()
        assert await bob.wait() == 0, bob.transcript()
        await alice.expect(r"^\* bob left$")

        await alice.send("/who")
        await alice.expect(r"^\* online \(1\): alice$")

        # the server shuts down: the remaining client is told and exits 0
        assert await procs.stop(server) == 0, server.transcript()
        await alice.expect(r"^\* server shutting down$")
        assert await alice.wait() == 0, alice.transcript()

        await server.rest()
        log = "\n".join(server.lines)
        for nick in ("alice", "bob", "carol", "mallory"):
            assert f"{nick} joined from" in log, log
        for what in ("carol left (/quit)", "bob left (EOF)", "mallory left"):
            assert what in log, log
        assert "Traceback" not in server.stderr, server.stderr

    run_on_loop(with_procs(tmp_path, loop_kind, body)(), 45)


def test_chat_room_example(tmp_path: Path, loop_kind: str, run_on_loop: Callable[..., Any]) -> None:
    """``--room``: two peers meet at a rendezvous server and chat directly."""
    async def body(procs: Procs) -> None:
        transport, server = await rudp.start_rendezvous_server("127.0.0.1", 0)
        rv = f"127.0.0.1:{transport.get_extra_info('sockname')[1]}"
        try:
            alice, bob = [await procs.start(nick, "chat_client.py", "--rendezvous", rv, "--room", "r1",
                                            "--nick", nick) for nick in ("alice", "bob")]
            await alice.expect(r"^\* bob is here, directly at 127\.0\.0\.1:\d+ ")
            await bob.expect(r"^\* alice is here, directly at 127\.0\.0\.1:\d+ ")
            await alice.send("hello bob")
            await bob.expect(r"^<alice> hello bob$")
            await bob.send("/who")
            await bob.expect(r"^\* bob \(you\), alice$")
            await bob.send("hi alice")
            await alice.expect(r"^<bob> hi alice$")
            await alice.send("/quit")  # half-closes; alice exits once bob is done too
            await bob.expect(r"^\* alice left$")
            bob.close_stdin()
            assert await bob.wait() == 0, bob.transcript()
            await alice.expect(r"^\* bob left$")
            assert await alice.wait() == 0, alice.transcript()
        finally:
            transport.close()
        assert server.counters["introductions"] == 1

    run_on_loop(with_procs(tmp_path, loop_kind, body)(), 45)


def test_chat_client_exits_when_server_unreachable(tmp_path: Path, loop_kind: str,
                                                   run_on_loop: Callable[..., Any]) -> None:
    """No server: the client reports the refusal and exits 1 instead of hanging."""
    import socket

    async def body(procs: Procs) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # a UDP port nobody serves
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        p = await procs.start("lonely", "chat_client.py", "127.0.0.1", str(port), "--nick", "x",
                              "--timeout", "3")
        assert await p.wait(STEP) == 1, p.transcript()
        assert "cannot connect" in p.stderr, p.transcript()

    run_on_loop(with_procs(tmp_path, loop_kind, body)())


def test_chat_server_shutdown_closes_clients_cleanly(tmp_path: Path, loop_kind: str,
                                                     run_on_loop: Callable[..., Any]) -> None:
    """SIGTERM on the server: each client is told, closes, and its FIN is ACKed at once.

    The server closes first (FIN), each client answers with its own FIN; the
    server's side must acknowledge it before its UDP socket goes away, or the
    client is left retransmitting its FIN to a closed port.
    """

    async def body(procs: Procs) -> None:
        server, port = await procs.server("chat_server", "chat_server.py", "--host", "127.0.0.1", "--port", "0")
        clients = []
        for nick in ("ann", "ben"):
            c = await procs.start(nick, "chat_client.py", "127.0.0.1", str(port), "--nick", nick)
            await c.expect(r"^\* welcome ")
            clients.append(c)
        await clients[0].expect(r"^\* ben joined$")
        assert await procs.stop(server) == 0, server.transcript()
        loop = asyncio.get_running_loop()
        for c in clients:
            await c.expect(r"^\* server shutting down$")
        started = loop.time()
        for c in clients:
            assert await c.wait() == 0, c.transcript()
        took = loop.time() - started
        for c in clients:
            assert "did not acknowledge" not in c.stderr, c.transcript()
        assert took < 1.5, f"clients took {took:.2f} s to finish closing\n{procs.transcripts()}"

    run_on_loop(with_procs(tmp_path, loop_kind, body)())
