"""``rudp perf``: an iperf3-like throughput test over rudp.

A test is one control connection and N data connections (``-P N``). The
client opens the control connection to the server's port and sends the
test's description as one JSON line (direction, duration or byte count,
stream count, congestion controller, GSO); the server opens a data listener
on a fresh UDP port with exactly those options and answers its port. The
client opens N data connections there; each starts with a 36-byte header
(the test's random cookie and the stream's index) so that the server knows
it belongs to this test. Once all N are in, the server says ``start``; the
sender (the client, or the server with ``-R``) writes for ``-t`` seconds or
``-n`` bytes, then half-closes. The receiver reads to EOF and closes, so the
sender's EOF means every byte was delivered: both ends count the same bytes.
Each side then sends its per-stream results over the control connection and
both print sender and receiver lines, as iperf3 does.

The data path uses asyncio Protocols (no stream buffering): the sender
writes until ``pause_writing``, the receiver only counts ``len(data)``.
Intervals are sampled once a second from the connections' state
(``rudp.core.stats.connection_info``), nothing per segment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from .. import aio
from ..aio import introspect
from ..core import congestion
from ..core.config import DEFAULT_MSS, Config
from ..core.connection import Connection
from ..core.stats import connection_info

DEFAULT_CC = Config().congestion_control  # what the library uses when not told

VERSION = 1
DEFAULT_PORT = 5201
CHUNK = 128 * 1024
COOKIE_LEN = 32  # hex digits
HEADER_LEN = COOKIE_LEN + 4  # + the stream index, 4 hex digits
MAX_STREAMS = 128
MAX_SECONDS = 86400.0
CONTROL_LINE_LIMIT = 1 << 20
#: How long the server waits for a client's test description, its data
#: connections, or its results, before it gives the test up.
SETUP_TIMEOUT = 15.0


class PerfError(Exception):
    """A test could not run; the message says why (printed, no traceback)."""


@dataclass
class Params:
    """One test as the client describes it to the server."""

    cookie: str
    streams: int = 1
    reverse: bool = False
    seconds: float | None = 10.0
    bytes: int | None = None
    cc: str = DEFAULT_CC
    gso: bool = True  # the library's default; the socket falls back where the kernel lacks it

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "cookie": self.cookie, "streams": self.streams,
                "reverse": self.reverse, "seconds": self.seconds, "bytes": self.bytes,
                "cc": self.cc, "gso": self.gso}

    @classmethod
    def from_json(cls, obj: Any) -> Params:
        """Validate a peer's description: every field checked, PerfError otherwise."""
        if not isinstance(obj, dict):
            raise PerfError("test description is not a JSON object")
        if obj.get("version") != VERSION:
            raise PerfError(f"unsupported perf protocol version {obj.get('version')!r}")
        cookie = obj.get("cookie")
        if not isinstance(cookie, str) or len(cookie) != COOKIE_LEN:
            raise PerfError("bad cookie")
        streams = obj.get("streams")
        if not isinstance(streams, int) or not 1 <= streams <= MAX_STREAMS:
            raise PerfError(f"streams must be an int in 1..{MAX_STREAMS}")
        seconds, nbytes = obj.get("seconds"), obj.get("bytes")
        if nbytes is not None:
            if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 1:
                raise PerfError("bytes must be a positive int")
            seconds = None
        elif (not isinstance(seconds, (int, float)) or isinstance(seconds, bool)
              or not 0 < seconds <= MAX_SECONDS):
            raise PerfError(f"seconds must be in (0, {MAX_SECONDS:.0f}]")
        cc, gso, reverse = obj.get("cc"), obj.get("gso"), obj.get("reverse")
        if not isinstance(cc, str) or cc not in congestion.CONTROLLERS:
            raise PerfError(f"unknown congestion control {cc!r}; "
                            f"choose from {sorted(congestion.CONTROLLERS)}")
        if not isinstance(gso, bool) or not isinstance(reverse, bool):
            raise PerfError("gso and reverse must be booleans")
        return cls(cookie, streams, reverse, None if seconds is None else float(seconds),
                   nbytes, cc, gso)


def check_cc(name: str) -> None:
    """An unknown controller name is a clean PerfError, before anything opens."""
    try:
        congestion.create(name, DEFAULT_MSS, 10)
    except ValueError as exc:
        raise PerfError(str(exc)) from None


# ---------------------------------------------------------------- data streams


class Stream(asyncio.Protocol):
    """One data connection's end: it sends (writing until paused) or receives
    (counting bytes). ``done`` resolves when the connection is over."""

    def __init__(self, index: int, sending: bool, loop: asyncio.AbstractEventLoop,
                 header: bytes = b"", expect_header: bool = False) -> None:
        self.index = index
        self.sending = sending
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.conn: Connection | None = None
        self.done: asyncio.Future[None] = loop.create_future()
        self.registered: int | None = None if expect_header else index
        self._header_out = header
        self._header_in = bytearray() if expect_header else None
        self.bytes = 0  # written by the sender, read by the receiver
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._payload = b""
        self._budget: int | None = None
        self._deadline: float | None = None
        self._paused = False
        self._eof_sent = False
        self.on_header: Any = None  # server side: (stream, cookie, index) -> bool

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conn = transport.get_extra_info("connection")
        if self._header_out:
            transport.write(self._header_out)

    def data_received(self, data: bytes) -> None:
        if self._header_in is not None:
            need = HEADER_LEN - len(self._header_in)
            self._header_in += data[:need]
            data = data[need:]
            if len(self._header_in) < HEADER_LEN:
                return
            header, self._header_in = bytes(self._header_in), None
            if not self._accept_header(header):
                assert self.transport is not None
                self.transport.abort()
                return
        if data and not self.sending:
            if self.started_at is None:
                self.started_at = self.loop.time()
            self.bytes += len(data)

    def _accept_header(self, header: bytes) -> bool:
        try:
            cookie = header[:COOKIE_LEN].decode("ascii")
            index = int(header[COOKIE_LEN:], 16)
        except ValueError:
            return False
        return bool(self.on_header is not None and self.on_header(self, cookie, index))

    def eof_received(self) -> bool:
        self.ended_at = self.loop.time()
        return False  # the transport closes: our FIN follows what we sent

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ended_at is None:
            self.ended_at = self.loop.time()
        if not self.done.done():
            if self.on_header is not None and self.registered is None:
                self.done.set_result(None)  # never part of a test: nothing to report
                return
            if exc is None and not self._complete():
                exc = ConnectionError("the data connection ended early")
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)

    def _complete(self) -> bool:
        """A receiver is complete at EOF; a sender once it sent its EOF (the
        peer's EOF then says everything was read)."""
        return self._eof_sent if self.sending else True

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._fill()

    # -- sending

    def start_sending(self, seconds: float | None, budget: int | None) -> None:
        self.started_at = now = self.loop.time()
        self._payload = os.urandom(CHUNK)
        self._budget = budget
        if seconds is not None:
            self._deadline = now + seconds
            self.loop.call_at(self._deadline, self._fill)
        self._fill()

    def _fill(self) -> None:
        tr = self.transport
        if tr is None or self._eof_sent or tr.is_closing():
            return
        deadline, payload = self._deadline, self._payload
        while not self._paused:
            budget = self._budget
            if (budget is not None and budget <= 0) or (
                    deadline is not None and self.loop.time() >= deadline):
                self._eof_sent = True
                tr.write_eof()
                return
            if budget is not None and budget < CHUNK:
                tr.write(payload[:budget])
                self._budget = 0
                self.bytes += budget
            else:
                tr.write(payload)
                self.bytes += CHUNK
                if budget is not None:
                    self._budget = budget - CHUNK

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- figures

    def sample(self) -> dict[str, Any]:
        """Cumulative figures now (once a second, not per segment)."""
        conn = self.conn
        if conn is None:
            return {"bytes": self.bytes, "retransmits": 0, "cwnd": None, "rtt_ms": None,
                    "rttvar_ms": None}
        info = connection_info(conn)
        acked = info["bytes_acked"]
        assert isinstance(acked, int)
        moved = min(acked, self.bytes) if self.sending else self.bytes
        return {"bytes": moved, "retransmits": info["retransmits"], "cwnd": info["cwnd"],
                "rtt_ms": info["rtt_ms"], "rttvar_ms": info["rttvar_ms"]}

    def result(self) -> dict[str, Any]:
        start = self.started_at if self.started_at is not None else self.loop.time()
        end = self.ended_at if self.ended_at is not None else self.loop.time()
        seconds = max(end - start, 1e-9)
        info = connection_info(self.conn) if self.conn is not None else {}
        return {"id": self.index + 1, "bytes": self.bytes, "seconds": round(seconds, 6),
                "bits_per_second": self.bytes * 8 / seconds,
                "retransmits": info.get("retransmits", 0) if self.sending else 0,
                "rtt_ms": info.get("rtt_ms")}


# ---------------------------------------------------------------- reporting


def fmt_bytes(n: float) -> str:
    for unit, scale in (("GBytes", 1 << 30), ("MBytes", 1 << 20), ("KBytes", 1 << 10)):
        if n >= scale:
            return f"{n / scale:6.2f} {unit}"
    return f"{n:6.0f} Bytes "


def fmt_bits(bps: float) -> str:
    for unit, scale in (("Gbits/sec", 1e9), ("Mbits/sec", 1e6), ("Kbits/sec", 1e3)):
        if bps >= scale:
            return f"{bps / scale:6.2f} {unit}"
    return f"{bps:6.0f} bits/sec"


class Reporter:
    """Samples the streams once a second; prints lines (and, on a terminal, a
    progress line) unless the output is JSON; keeps the interval records."""

    def __init__(self, streams: list[Stream], sending: bool, out: TextIO | None,
                 total_seconds: float | None, total_bytes: int | None) -> None:
        self.streams = streams
        self.sending = sending
        self.out = out
        self.tty = bool(out is not None and out.isatty())
        self.total_seconds = total_seconds
        self.total_bytes = total_bytes
        self.intervals: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._start = 0.0
        self._last_t = 0.0
        self._last: list[dict[str, Any]] = []
        self._progress_shown = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._start = self._last_t = loop.time()
        self._last = [{"bytes": 0, "retransmits": 0} for _ in self.streams]
        if self.out is not None:
            head = "[ ID] Interval".ljust(26) + "Transfer".ljust(16) + "Bitrate".ljust(16)
            self._print(head + ("  Retr          Cwnd        RTT" if self.sending else ""))
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = 0.25 if self.tty else 1.0
        next_interval = self._start + 1.0
        while True:
            await asyncio.sleep(max(0.0, min(next_interval, loop.time() + tick) - loop.time()))
            now = loop.time()
            if now >= next_interval - 0.005:
                self._record(now)
                next_interval += 1.0
            elif self.tty:
                self._progress(now)

    async def stop(self) -> None:
        """The test is over: the last, partial interval, then no more output."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        now = asyncio.get_running_loop().time()
        if not self.intervals or now - self._last_t > 0.05:
            self._record(now)
        self._clear_progress()

    def _record(self, now: float) -> None:
        secs = max(now - self._last_t, 1e-9)
        per_stream = []
        for stream, last in zip(self.streams, self._last):
            cur = stream.sample()
            moved = cur["bytes"] - last["bytes"]
            per_stream.append({
                "id": stream.index + 1, "bytes": moved, "bits_per_second": moved * 8 / secs,
                "retransmits": cur["retransmits"] - last["retransmits"],
                "cwnd": cur["cwnd"], "rtt_ms": cur["rtt_ms"], "rttvar_ms": cur["rttvar_ms"],
            })
            last.update(cur)
        total = sum(s["bytes"] for s in per_stream)
        rec = {"start": round(self._last_t - self._start, 3), "end": round(now - self._start, 3),
               "seconds": round(secs, 6), "bytes": total, "bits_per_second": total * 8 / secs,
               "retransmits": sum(s["retransmits"] for s in per_stream), "streams": per_stream}
        self.intervals.append(rec)
        self._last_t = now
        if self.out is not None:
            self._clear_progress()
            for s in per_stream:
                self._print(self._line(f"{s['id']:3d}", rec, s))
            if len(per_stream) > 1:
                self._print(self._line("SUM", rec, {"bytes": total, "bits_per_second":
                            rec["bits_per_second"], "retransmits": rec["retransmits"],
                            "cwnd": None, "rtt_ms": None}))

    def _line(self, ident: str, rec: dict[str, Any], s: dict[str, Any]) -> str:
        line = (f"[{ident}] {rec['start']:6.2f}-{rec['end']:<6.2f} sec  "
                f"{fmt_bytes(s['bytes'])}  {fmt_bits(s['bits_per_second'])}")
        if self.sending:
            cwnd = "" if s["cwnd"] is None else fmt_bytes(s["cwnd"])
            rtt = "" if s["rtt_ms"] is None else f"{s['rtt_ms']:.2f} ms"
            line += f"  {s['retransmits']:4d}  {cwnd:>12}  {rtt:>9}"
        return line

    def _progress(self, now: float) -> None:
        assert self.out is not None
        done = sum(s.sample()["bytes"] for s in self.streams)
        elapsed = now - self._start
        if self.total_seconds:
            frac = min(1.0, elapsed / self.total_seconds)
        elif self.total_bytes:
            frac = min(1.0, done / self.total_bytes)
        else:
            frac = 0.0
        bar = "#" * int(frac * 30)
        rate = done * 8 / max(elapsed, 1e-9)
        self.out.write(f"\r[{bar:<30}] {frac:4.0%} {elapsed:6.1f} s {fmt_bytes(done)} "
                       f"{fmt_bits(rate)}\x1b[K")
        self.out.flush()
        self._progress_shown = True

    def _clear_progress(self) -> None:
        if self._progress_shown and self.out is not None:
            self.out.write("\r\x1b[K")
            self._progress_shown = False

    def _print(self, line: str) -> None:
        assert self.out is not None
        self.out.write(line + "\n")
        self.out.flush()


def summarize(sender: list[dict[str, Any]], receiver: list[dict[str, Any]]) -> dict[str, Any]:
    """Sums over the streams of both ends' results."""

    def total(results: list[dict[str, Any]]) -> dict[str, Any]:
        nbytes = sum(int(r["bytes"]) for r in results)
        seconds = max((float(r["seconds"]) for r in results), default=0.0)
        return {"bytes": nbytes, "seconds": seconds,
                "bits_per_second": nbytes * 8 / seconds if seconds > 0 else 0.0,
                "retransmits": sum(int(r.get("retransmits") or 0) for r in results)}

    snd, rcv = total(sender), total(receiver)
    return {"bytes": rcv["bytes"], "seconds": rcv["seconds"],
            "bits_per_second": rcv["bits_per_second"], "retransmits": snd["retransmits"],
            "sender": snd, "receiver": rcv}


def print_summary(out: TextIO, sender: list[dict[str, Any]], receiver: list[dict[str, Any]],
                  summary: dict[str, Any]) -> None:
    out.write("- " * 30 + "\n")
    out.write("[ ID] Interval".ljust(26) + "Transfer".ljust(16) + "Bitrate".ljust(16) + "   Retr\n")

    def line(ident: str, r: dict[str, Any], role: str, retr: bool) -> None:
        retr_text = f"  {int(r.get('retransmits') or 0):5d}" if retr else "       "
        out.write(f"[{ident}]   0.00-{float(r['seconds']):<6.2f} sec  {fmt_bytes(r['bytes'])}  "
                  f"{fmt_bits(r['bits_per_second'])}{retr_text}  {role}\n")

    for s, r in zip(sender, receiver):
        line(f"{int(s['id']):3d}", s, "sender", True)
        line(f"{int(r['id']):3d}", r, "receiver", False)
    if len(sender) > 1:
        line("SUM", summary["sender"], "sender", True)
        line("SUM", summary["receiver"], "receiver", False)
    out.flush()


# ---------------------------------------------------------------- control


class Control:
    """The control connection's incoming JSON lines, read by one task: a
    message that arrives early (the peer's results while our streams still
    run) waits in the queue, and ``closed`` says the peer went away."""

    _END = object()

    def __init__(self, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._reader = reader
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            while True:
                line = await self._reader.readline()
                if not line.endswith(b"\n"):
                    break  # EOF
                try:
                    msg = json.loads(line)
                except ValueError:
                    msg = PerfError("malformed control message")
                self._queue.put_nowait(msg)
        except ValueError:  # longer than the reader's limit
            self._queue.put_nowait(PerfError("control message too long"))
        except (ConnectionError, OSError) as exc:
            self._queue.put_nowait(PerfError(f"the control connection failed: {exc}"))
        finally:
            self._queue.put_nowait(self._END)
            if not self.closed.done():
                self.closed.set_result(None)

    async def get(self, timeout: float | None) -> Any:
        """The next message; PerfError if it is malformed, late or missing."""
        try:
            msg = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            raise PerfError("the peer sent no control message in time") from None
        if msg is self._END:
            self._queue.put_nowait(msg)
            raise PerfError("the control connection closed")
        if isinstance(msg, PerfError):
            raise msg
        return msg

    async def stop(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


def _send_json(writer: asyncio.StreamWriter, obj: Any) -> None:
    writer.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")


async def _wait_streams(streams: list[Stream], control_closed: asyncio.Future[None],
                        limit: float | None) -> None:
    """Every stream done, or raise: one failed, the control connection
    closed, or the test overran ``limit`` seconds."""
    done_all = asyncio.gather(*(s.done for s in streams))
    waiting: set[asyncio.Future[Any]] = {done_all, control_closed}
    finished, _ = await asyncio.wait(waiting, timeout=limit,
                                     return_when=asyncio.FIRST_COMPLETED)
    if done_all in finished:
        done_all.result()
        return
    done_all.cancel()
    for s in streams:
        if s.done.done() and not s.done.cancelled():
            s.done.exception()  # retrieved: the PerfError below says what happened
    if control_closed in finished:
        raise PerfError("the peer closed the control connection during the test")
    raise PerfError("the test overran its time limit")


def _split(total: int | None, n: int) -> list[int | None]:
    if total is None:
        return [None] * n
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def _time_limit(params: Params) -> float | None:
    """A guard against a test that never ends (a vanished peer): the
    duration plus a margin; byte counts rely on the connection's own timeouts."""
    return None if params.seconds is None else params.seconds + 60.0


def _loop_name() -> str:
    mod = type(asyncio.get_running_loop()).__module__
    return "uvloop" if mod.startswith("uvloop") else "asyncio"


# ---------------------------------------------------------------- server


class PerfServer:
    """Serves tests one after another; a client that arrives during a test
    is told the server is busy."""

    def __init__(self, host: str | None, port: int, out: TextIO, once: bool = False) -> None:
        self.host = host
        self.port = port
        self.out = out
        self.once = once
        self.busy = False
        self.tests = 0
        self.finished: asyncio.Future[None] | None = None
        #: Set once the server listens: its (host, port).
        self.ready: asyncio.Future[tuple[str, int]] | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.finished = loop.create_future()
        self.ready = loop.create_future()
        server = await aio.start_server(self._control, self.host, self.port,
                                        limit=CONTROL_LINE_LIMIT, nodelay=True)
        sockname = server.sockets[0].getsockname()
        self.bind_host = sockname[0]
        self.port = sockname[1]
        self._banner(f"Server listening on {sockname[1]} (rudp, {_loop_name()})")
        self.ready.set_result((self.bind_host, self.port))
        try:
            await self.finished
        finally:
            server.close()
            server.abort_clients()

    def _banner(self, text: str) -> None:
        self.out.write("-" * 60 + f"\n{text}\n" + "-" * 60 + "\n")
        self.out.flush()

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            if self.busy:
                _send_json(writer, {"error": "the server is busy running a test"})
                return
            self.busy = True
            try:
                await self._test(reader, writer, peer)
            finally:
                self.busy = False
                self.tests += 1
                if self.once and self.finished is not None and not self.finished.done():
                    self.finished.set_result(None)
        except (PerfError, ConnectionError, OSError) as exc:
            self.out.write(f"rudp perf: test from {peer[0]} failed: {exc}\n")
            self.out.flush()
        finally:
            writer.close()
            try:  # bounded: a client that vanished must not hold the server
                await asyncio.wait_for(writer.wait_closed(), SETUP_TIMEOUT)
            except (ConnectionError, OSError, asyncio.TimeoutError):
                writer.transport.abort()
            if self.busy is False and not self.once:
                self._banner(f"Server listening on {self.port} (rudp, {_loop_name()})")

    async def _test(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    peer: Any) -> None:
        control = Control(reader)
        try:
            await self._run_test(control, writer, peer)
        finally:
            await control.stop()

    async def _run_test(self, control: Control, writer: asyncio.StreamWriter,
                        peer: Any) -> None:
        loop = asyncio.get_running_loop()
        try:
            params = Params.from_json(await control.get(SETUP_TIMEOUT))
        except PerfError as exc:
            _send_json(writer, {"error": str(exc)})
            raise
        self.out.write(f"Accepted connection from {peer[0]}, port {peer[1]}\n")
        streams: dict[int, Stream] = {}
        all_in: asyncio.Future[None] = loop.create_future()
        sending = params.reverse

        def on_header(stream: Stream, cookie: str, index: int) -> bool:
            if cookie != params.cookie or not 0 <= index < params.streams or index in streams:
                return False
            stream.index = stream.registered = index
            streams[index] = stream
            if len(streams) == params.streams and not all_in.done():
                all_in.set_result(None)
            return True

        def factory() -> Stream:
            s = Stream(0, sending, loop, expect_header=True)
            s.on_header = on_header
            return s

        try:
            data_server = await aio.create_server(
                factory, self.bind_host, 0, congestion_control=params.cc, gso=params.gso)
        except (ValueError, OSError) as exc:
            _send_json(writer, {"error": f"cannot open a data listener: {exc}"})
            raise PerfError(str(exc)) from None
        try:
            _send_json(writer, {"port": data_server.sockets[0].getsockname()[1]})
            waiting: set[asyncio.Future[Any]] = {all_in, control.closed}
            await asyncio.wait(waiting, timeout=SETUP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
            if not all_in.done():
                raise PerfError("the client's data connections did not arrive")
            ordered = [streams[i] for i in range(params.streams)]
            for s in ordered:
                conn = s.conn
                self.out.write(f"[{s.index + 1:3d}] local {self.bind_host} port "
                               f"{conn.local_port if conn else '?'} connected to {peer[0]} "
                               f"port {conn.remote_port if conn else '?'}\n")
            reporter = Reporter(ordered, sending, self.out, params.seconds, params.bytes)
            _send_json(writer, {"start": True})
            reporter.start()
            if sending:
                for s, budget in zip(ordered, _split(params.bytes, params.streams)):
                    s.start_sending(params.seconds, budget)
            try:
                await _wait_streams(ordered, control.closed, _time_limit(params))
            finally:
                await reporter.stop()
            mine = [s.result() for s in ordered]
            _send_json(writer, {"results": mine})
            theirs = await control.get(SETUP_TIMEOUT)
            other = _results(theirs, params.streams)
            sender, receiver = (mine, other) if sending else (other, mine)
            print_summary(self.out, sender, receiver, summarize(sender, receiver))
        finally:
            for s in streams.values():
                if not s.done.done():
                    s.abort()
            data_server.close()
            data_server.abort_clients()


def _results(obj: Any, n: int) -> list[dict[str, Any]]:
    """The peer's per-stream results, checked."""
    if isinstance(obj, dict) and "error" in obj:
        raise PerfError(f"peer: {obj['error']}")
    res = obj.get("results") if isinstance(obj, dict) else None
    if not isinstance(res, list) or len(res) != n or not all(
            isinstance(r, dict) and isinstance(r.get("bytes"), int)
            and isinstance(r.get("seconds"), (int, float)) for r in res):
        raise PerfError("malformed results from the peer")
    return res


# ---------------------------------------------------------------- client


async def run_client(host: str, port: int, params: Params, out: TextIO,
                     json_output: bool, capture: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one test against ``host``; returns the JSON result (printed as
    lines on ``out`` unless ``json_output``). ``capture`` (``pcap=``,
    ``event_log=``): the data streams then share one UDP socket, which
    captures them all."""
    check_cc(params.cc)
    loop = asyncio.get_running_loop()
    shared: Any = None
    text = None if json_output else out
    try:
        reader, writer = await aio.open_connection(
            host, port, limit=CONTROL_LINE_LIMIT, nodelay=True, connect_timeout=SETUP_TIMEOUT)
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise PerfError(f"cannot reach the server at {host} port {port}: {exc}") from None
    streams: list[Stream] = []
    control = Control(reader)
    try:
        if text:
            text.write(f"Connecting to host {host}, port {port} (rudp, {_loop_name()})\n")
            if params.reverse:
                text.write("Reverse mode, remote host is sending\n")
        _send_json(writer, params.to_json())
        reply = await control.get(SETUP_TIMEOUT)
        if not isinstance(reply, dict) or "error" in reply or not isinstance(reply.get("port"), int):
            err = reply.get("error") if isinstance(reply, dict) else None
            raise PerfError(f"server: {err}" if err else "malformed reply from the server")
        data_port = reply["port"]
        sending = not params.reverse
        if capture:
            shared = await aio.create_endpoint(gso=params.gso, **capture)
        for i in range(params.streams):
            header = params.cookie.encode() + f"{i:04x}".encode()
            stream = Stream(i, sending, loop, header=header)
            per_socket: dict[str, Any] = {"endpoint": shared} if shared else {"gso": params.gso}
            await aio.create_connection(lambda s=stream: s, host, data_port,  # type: ignore[misc]
                                        congestion_control=params.cc,
                                        connect_timeout=SETUP_TIMEOUT, **per_socket)
            streams.append(stream)
            if text:
                conn = stream.conn
                tr = stream.transport
                local = tr.get_extra_info("sockname") if tr else ("?", "?")
                text.write(f"[{i + 1:3d}] local {local[0]} port {local[1]} (tcp {conn.local_port if conn else '?'}) "
                           f"connected to {host} port {data_port}\n")
        start = await control.get(SETUP_TIMEOUT)
        if not isinstance(start, dict) or start.get("start") is not True:
            err = start.get("error") if isinstance(start, dict) else None
            raise PerfError(f"server: {err}" if err else "the server did not start the test")
        reporter = Reporter(streams, sending, text, params.seconds, params.bytes)
        started = time.time()
        reporter.start()
        if sending:
            for s, budget in zip(streams, _split(params.bytes, params.streams)):
                s.start_sending(params.seconds, budget)
        try:
            await _wait_streams(streams, control.closed, _time_limit(params))
        except ConnectionError as exc:
            raise PerfError(f"a data connection failed: {exc}") from None
        finally:
            await reporter.stop()
        mine = [s.result() for s in streams]
        _send_json(writer, {"results": mine})
        other = _results(await control.get(SETUP_TIMEOUT), params.streams)
        # The server closes first; closing once its FIN is in means both
        # FINs are acknowledged before this process exits.
        try:
            await asyncio.wait_for(asyncio.shield(control.closed), SETUP_TIMEOUT)
        except asyncio.TimeoutError:
            pass
    finally:
        for s in streams:
            if not s.done.done():
                s.abort()
        await control.stop()
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
        if shared is not None:
            shared.close_when_idle()  # its capture ends once the streams' TIME_WAIT does
            await shared.wait_closed()
    sender, receiver = (mine, other) if sending else (other, mine)
    summary = summarize(sender, receiver)
    if text:
        print_summary(text, sender, receiver, summary)
    result: dict[str, Any] = {
        "protocol": "rudp", "loop": _loop_name(), "host": host, "port": port,
        "reverse": params.reverse, "stream_count": params.streams,
        "congestion_control": params.cc, "gso": params.gso,
        "duration": params.seconds, "bytes_requested": params.bytes,
        "timestamp": started,
    }
    result.update(summary)
    result["streams"] = [{"id": s["id"], "sender": s, "receiver": r}
                         for s, r in zip(sender, receiver)]
    result["intervals"] = reporter.intervals
    return result


# ---------------------------------------------------------------- entry points


def parse_size(text: str) -> int:
    """'20MB', '1.5G', '4096' -> bytes (K/M/G are powers of 1024, as iperf3)."""
    t = text.strip().upper().rstrip("B")
    scale = 1
    if t and t[-1] in "KMG":
        scale = 1 << {"K": 10, "M": 20, "G": 30}[t[-1]]
        t = t[:-1]
    try:
        value = float(t)
    except ValueError:
        raise ValueError(f"not a size: {text!r}") from None
    if value <= 0:
        raise ValueError(f"size must be positive: {text!r}")
    return int(value * scale)


async def main_server(host: str | None, port: int, once: bool, out: TextIO) -> int:
    introspect.expose_or_warn()  # `rudp ss` sees the tests as they run
    try:
        await PerfServer(host, port, out, once=once).run()
    except OSError as exc:  # the port is taken, the address is not ours, ...
        print(f"rudp perf: cannot listen on {host or '0.0.0.0'} port {port}: {exc}",
              file=sys.stderr)
        return 1
    return 0


async def main_client(host: str, port: int, params: Params, json_output: bool,
                      out: TextIO, capture: dict[str, Any] | None = None) -> int:
    introspect.expose_or_warn()
    try:
        result = await run_client(host, port, params, out, json_output, capture)
    except PerfError as exc:
        if json_output:
            json.dump({"error": str(exc)}, out)
            out.write("\n")
        print(f"rudp perf: {exc}", file=sys.stderr)
        return 1
    if json_output:
        json.dump(result, out, indent=1)
        out.write("\n")
    else:
        out.write("\nperf Done.\n")
    return 0


def new_params(streams: int, reverse: bool, seconds: float | None, nbytes: int | None,
               cc: str, gso: bool) -> Params:
    return Params(secrets.token_hex(COOKIE_LEN // 2), streams, reverse,
                  None if nbytes is not None else seconds, nbytes, cc, gso)


__all__ = ["PerfError", "Params", "add_arguments", "main", "PerfServer", "run_client", "main_client", "main_server",
           "new_params", "parse_size", "DEFAULT_PORT"]


def add_arguments(p: Any) -> None:
    """``rudp perf``'s options (an argparse sub-parser)."""
    role = p.add_mutually_exclusive_group(required=True)
    role.add_argument("-s", "--server", action="store_true", help="serve tests one after another")
    role.add_argument("-c", "--client", metavar="HOST", help="run a test against HOST")
    p.add_argument("-p", "--port", type=int, default=DEFAULT_PORT,
                   help=f"server port (default {DEFAULT_PORT})")
    p.add_argument("-B", "--bind", metavar="HOST", help="server: address to bind")
    p.add_argument("-1", "--one-off", action="store_true", help="server: one test, then exit")
    amount = p.add_mutually_exclusive_group()
    amount.add_argument("-t", "--time", type=float, default=10.0, help="seconds to send (10)")
    amount.add_argument("-n", "--bytes", type=parse_size, help="bytes to send, e.g. 20MB")
    p.add_argument("-P", "--parallel", type=int, default=1, help="parallel streams (1)")
    p.add_argument("-R", "--reverse", action="store_true", help="the server sends")
    p.add_argument("--json", action="store_true", help="one JSON object at the end")
    p.add_argument("--gso", action=argparse.BooleanOptionalAction, default=True,
                   help="send with UDP GSO where the kernel has it (the default); --no-gso: one "
                        "datagram per send call")
    p.add_argument("--cc", default=DEFAULT_CC, help=f"congestion control (default {DEFAULT_CC})")


async def main(args: Any, parser: Any) -> int:
    """Run ``rudp perf`` from parsed arguments; usage errors exit 2."""
    if not 0 < args.port < 65536 and not (args.server and args.port == 0):
        parser.error("perf: --port must be in 1..65535")
    if args.server:
        return await main_server(args.bind, args.port, args.one_off, sys.stdout)
    if not 1 <= args.parallel <= MAX_STREAMS:
        parser.error(f"perf: -P must be in 1..{MAX_STREAMS}")
    if args.bytes is None and not 0 < args.time <= MAX_SECONDS:
        parser.error(f"perf: -t must be in (0, {MAX_SECONDS:.0f}]")
    try:
        check_cc(args.cc)
    except PerfError as exc:
        print(f"rudp perf: {exc}", file=sys.stderr)
        return 2
    params = new_params(args.parallel, args.reverse, args.time, args.bytes, args.cc, args.gso)
    capture: dict[str, Any] = {}
    if getattr(args, "pcap", None):
        capture["pcap"] = args.pcap
    if getattr(args, "event_log", None):
        capture["event_log"] = sys.stderr if args.event_log == "-" else args.event_log
    return await main_client(args.client, args.port, params, args.json, sys.stdout, capture)
