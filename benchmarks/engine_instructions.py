"""Instructions the sans-IO engine executes per bulk segment, per round trip and
per connection.

Two endpoints are wired back to back: no sockets, no asyncio, a virtual clock.
Every datagram one side returns from ``datagrams_to_send(now)`` (or, where
the engine has it, ``batches_to_send(now)``, as the adapter uses it, runs of
segments split one bytes per segment as the peer's socket would read them) is handed to
the other side's ``datagram_received(data, addr, now)``, one datagram per call,
the clock advancing TICK seconds per datagram. A side is serviced after it
was handed everything in flight towards it (events from ``poll_events()`` to a
tiny application, then ``datagrams_to_send``), as the asyncio adapter flushes
after draining its socket; due timers run through ``handle_timer``. Only
``Endpoint``, ``Config`` and ``events`` are imported, from ``rudp.core`` if
this checkout has it, else from ``rudp``. Everything is seeded, so a run
executes the same instructions every time.

Workloads (both endpoints in one process; one connection from start to finish
but for ``connections``):

``bulk N``      the client writes N full segments' worth of data (topping up
                its send buffer to HIGH_WATER in CHUNK writes), then close()s;
                the server reads everything, and close()s on EOF.
``pingpong N``  N round trips: the client sends 64 bytes, the server echoes
                them, the client reads the echo and sends again; then close().
``connections N``  N connections one after another: handshake, 64 bytes echoed,
                the client close()s once it has the echo, the server on EOF
                (the client's connections stay in TIME_WAIT, as they would).

``--batch`` hands each side everything in flight towards it in one
``datagrams_received(batch, now)`` call instead (the clock advancing TICK
per datagram before it), as the asyncio adapter hands over what it drained
from its socket: consecutive segments of one connection are then a run
that the engine takes as one step.

``--gro`` (with ``--batch``) hands each stretch of equal-sized datagrams in
flight over as one ``SegmentRun``, as the adapter hands over a GRO read:
the engine then takes their in-order data in one step.

``--measure`` runs this script under ``valgrind --tool=cachegrind
--cache-sim=no`` (user-space instructions, exact from run to run) for a short
and a long N per workload, and prints (I refs long - I refs short) / (extra
segments or round trips): the cost of both endpoints together, with start-up,
handshake and close cancelled out. That is how hot-path changes are judged
(benchmarks/README.md, "Measuring hot-path changes on a noisy machine").

Run: python benchmarks/engine_instructions.py bulk 2000
     python benchmarks/engine_instructions.py pingpong 200
     python benchmarks/engine_instructions.py connections 100
     python benchmarks/engine_instructions.py --measure [--bulk 2000 12000]
         [--pingpong 200 1200] [--connections 100 600] [--only bulk|pingpong|connections] [--valgrind PATH] [--jobs N]
         [--batch [--gro]] [--compiled]   (--compiled: the mypyc-compiled core, tests/compiled.py)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import pkgutil
import re
import subprocess
import sys
from collections import deque
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout

#: --compiled: the engine from build/compiled, this checkout's mypyc-compiled core
#: (tests/compiled.py; built here first when rudp/core changed since the last build).
COMPILED = "--compiled" in sys.argv[1:]
if COMPILED:
    from tests import compiled as _compiled

    _why = _compiled.build()
    if _why:
        sys.exit(f"--compiled: the compiled core is not available: {_why}")
    sys.path.insert(0, str(_compiled.TREE))

#: --gro (with --batch): consecutive equal-sized datagrams in flight go over as
#: one SegmentRun, as the asyncio adapter hands over a GRO read (where the
#: engine takes them: rudp.core.wire.SegmentRun on the receive side).
GRO = "--gro" in sys.argv[1:]

# The engine may move under rudp.core: try that layout first, fall back to the
# old one. Whether this checkout has rudp.core is asked of rudp's own __path__
# first: an editable install of another checkout (its finder sits on
# sys.meta_path) would otherwise serve *its* rudp.core to this checkout.
import rudp  # noqa: E402

_CORE = ("rudp.core", "rudp.core.events", "rudp.core.config", "rudp.core.endpoint")
try:
    if not any(m.name == "core" for m in pkgutil.iter_modules(rudp.__path__)):
        raise ModuleNotFoundError("this checkout's rudp has no core package", name="rudp.core")
    from rudp.core import events
    from rudp.core.config import Config
    from rudp.core.endpoint import Endpoint

    ENGINE = "rudp.core"
except ModuleNotFoundError as exc:
    if exc.name not in _CORE:
        raise  # rudp.core is there but something it imports is not
    from rudp import events  # type: ignore[no-redef]
    from rudp.config import Config  # type: ignore[no-redef]
    from rudp.endpoint import Endpoint  # type: ignore[no-redef]

    ENGINE = "rudp"
if COMPILED and not getattr(sys.modules["rudp.core"], "COMPILED", False):
    raise ImportError(f"--compiled, but rudp.core came from {sys.modules['rudp.core'].__file__}")
for _mod in (events, sys.modules[Config.__module__], sys.modules[Endpoint.__module__]):
    _file = os.path.realpath(_mod.__file__ or "")
    if not any(_file.startswith(os.path.realpath(d) + os.sep) for d in rudp.__path__):
        raise ImportError(f"{_mod.__name__} comes from {_file}, outside rudp at {list(rudp.__path__)}")

if GRO:  # the receive side of SegmentRun is newer than the engine's modules above
    from rudp.core.wire import SegmentRun

CLIENT = ("10.0.0.1", 5000)  # UDP addresses: only identities, nothing is bound
SERVER = ("10.0.0.2", 6000)
PORT = 80
CLIENT_SEED, SERVER_SEED = 1, 2
TICK = 10e-6  # virtual seconds per datagram delivered (~1400 bytes at 1 Gbit/s)
TS_OPTION_LEN = 12  # NOP NOP TS(10): every segment carries timestamps (Config default)
CHUNK = bytes(range(256)) * 256  # 64 KiB per write, as benchmarks/_workers.py
HIGH_WATER = 128 * 1024  # the bulk client tops its send buffer up to this
REQUEST = b"p" * 64
MAX_IDLE_JUMPS = 10_000  # a healthy run waits for a timer a handful of times

DEFAULT_BULK = (2000, 12000)
DEFAULT_PINGPONG = (200, 1200)
DEFAULT_CONNECTIONS = (100, 600)
WORKLOADS = ("bulk", "pingpong", "connections")

Connected = events.Connected
DataReceived = events.DataReceived
EofReceived = events.EofReceived
Closed = events.Closed
FAILURES = (events.ConnectionReset, events.ConnectionError)


class App:
    """One side's application: ``on_event(conn, ev)``; ``closed`` once it saw Closed."""

    def __init__(self) -> None:
        self.conn: Any = None
        self.closed = False
        self.endpoint: Any = None  # its side's Endpoint (run sets it)

    def fail(self, ev: Any) -> None:
        raise RuntimeError(f"{type(self).__name__}: {ev!r}")


class BulkClient(App):
    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total
        self.written = 0

    def on_event(self, conn: Any, ev: Any) -> None:
        kind = type(ev)
        if kind is Connected:
            self.conn = conn
        elif kind is Closed:
            self.closed = True
        elif kind in FAILURES:
            self.fail(ev)
        # DataReceived/EofReceived: the server sends nothing but its FIN.

    def pump(self, now: float) -> None:
        """Keep the send buffer topped up; close() once everything is written."""
        conn = self.conn
        if conn is None or self.written >= self.total:
            return
        chunk = len(CHUNK)
        while self.written < self.total and conn.send_buffer_size < HIGH_WATER:
            n = self.total - self.written
            conn.send(CHUNK if n >= chunk else CHUNK[:n])
            self.written += min(n, chunk)
        if self.written >= self.total:
            conn.close()


class Sink(App):
    def __init__(self) -> None:
        super().__init__()
        self.received = 0

    def on_event(self, conn: Any, ev: Any) -> None:
        kind = type(ev)
        if kind is DataReceived:
            self.received += len(conn.read())
        elif kind is EofReceived:
            self.received += len(conn.read())
            conn.close()
        elif kind is Connected:
            self.conn = conn
        elif kind is Closed:
            self.closed = True
        elif kind in FAILURES:
            self.fail(ev)


class PingClient(App):
    def __init__(self, rounds: int) -> None:
        super().__init__()
        self.left = rounds

    def on_event(self, conn: Any, ev: Any) -> None:
        kind = type(ev)
        if kind is DataReceived:
            if conn.readable >= len(REQUEST):
                conn.read(len(REQUEST))
                self.left -= 1
                if self.left:
                    conn.send(REQUEST)
                else:
                    conn.close()
        elif kind is Connected:
            self.conn = conn
            conn.send(REQUEST)
        elif kind is Closed:
            self.closed = True
        elif kind in FAILURES:
            self.fail(ev)


class EchoServer(App):
    def __init__(self) -> None:
        super().__init__()
        self.echoed = 0

    def on_event(self, conn: Any, ev: Any) -> None:
        kind = type(ev)
        if kind is DataReceived:
            data = conn.read()
            self.echoed += len(data)
            conn.send(data)
        elif kind is EofReceived:
            conn.close()
        elif kind is Connected:
            self.conn = conn
        elif kind is Closed:
            self.closed = True
        elif kind in FAILURES:
            self.fail(ev)


class ConnectClient(App):
    """``connections``: one connection at a time, each a 64-byte echo; the
    next is opened (``pump``) once the previous one reported Closed."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.left = count
        self.next_due = False

    def on_event(self, conn: Any, ev: Any) -> None:
        kind = type(ev)
        if kind is DataReceived:
            if conn.readable >= len(REQUEST):
                conn.read(len(REQUEST))
                conn.close()
        elif kind is Connected:
            conn.send(REQUEST)
        elif kind is Closed:
            self.left -= 1
            if self.left:
                self.next_due = True
            else:
                self.closed = True
        elif kind in FAILURES:
            self.fail(ev)

    def pump(self, now: float) -> None:
        if self.next_due:
            self.next_due = False
            self.endpoint.connect(SERVER, PORT, now)


class EchoServers(EchoServer):
    """``connections``: echoes on every connection; closed after ``count`` Closed."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.left = count

    def on_event(self, conn: Any, ev: Any) -> None:
        if type(ev) is Closed:
            self.left -= 1
            self.closed = not self.left
        else:
            super().on_event(conn, ev)


def run(client_app: App, server_app: App, pump: Callable[[float], None] | None = None,
        batch: bool = False) -> dict[str, Any]:
    """Connect, run until both applications saw Closed; return what happened.

    Each step hands the server every datagram in flight towards it, one
    ``datagram_received`` call per datagram, then services it; then the same
    for the client. Servicing a side is what the asyncio adapter does once it
    has drained its socket: events to the application, ``datagrams_to_send``
    queued for the peer, ``get_timer`` re-read. A side whose timer is due gets
    ``handle_timer`` and is serviced too. So, as on a loaded socket, the
    receiver of a bulk transfer ACKs once per batch it drained, not every
    second segment.
    """
    config = Config()
    eps = (Endpoint(config, seed=CLIENT_SEED), Endpoint(config, seed=SERVER_SEED))
    client, server = eps
    client_app.endpoint, server_app.endpoint = eps
    server.listen(PORT)
    now = 0.0
    client.connect(SERVER, PORT, now)
    handlers = (client_app.on_event, server_app.on_event)
    pumps = (pump, None)
    srcs = (CLIENT, SERVER)  # side i's address, as the other side sees it
    queues: tuple[deque[tuple[bytes, Any]], ...] = (deque(), deque())  # sent by side i, in flight
    deadline: list[float | None] = [None, None]
    sent = [0, 0]  # datagrams client -> server, server -> client
    batched = hasattr(client, "batches_to_send")  # this checkout's engine has runs

    def service(i: int, now: float) -> None:
        ep = eps[i]
        on_event = handlers[i]
        for conn, ev in ep.poll_events():
            on_event(conn, ev)
        side_pump = pumps[i]
        if side_pump is not None:
            side_pump(now)
        if batched:
            # As the asyncio adapter sends: a run of full segments is one
            # buffer (one GSO send); split here as the peer's socket would.
            out = ep.batches_to_send(now)
            for data, _ in out:
                if not isinstance(data, bytes):
                    out = [(d, dst) for item, dst in out
                           for d in ((item,) if isinstance(item, bytes) else item.datagrams())]
                    break
        else:
            out = ep.datagrams_to_send(now)
        if out:
            queues[i].extend(out)
            sent[i] += len(out)
        deadline[i] = ep.get_timer()

    service(0, now)
    service(1, now)
    idle_jumps = 0
    while not (client_app.closed and server_app.closed):
        busy = False
        for j in (1, 0):  # j receives
            q = queues[1 - j]
            if q:
                src = srcs[1 - j]
                if batch:
                    now += TICK * len(q)
                    items = [(data, src) for data, _dst in q]
                    eps[j].datagrams_received(gro_runs(items) if GRO else items, now)
                    q.clear()
                else:
                    receive = eps[j].datagram_received
                    while q:
                        data, _dst = q.popleft()
                        now += TICK
                        receive(data, src, now)
                service(j, now)
                busy = True
            due = deadline[j]
            if due is not None and due <= now:
                eps[j].handle_timer(now)
                service(j, now)
                busy = True
        if not busy and not (client_app.closed and server_app.closed):
            # Nothing in flight, nothing due: sleep until the next timer.
            armed = [t for t in deadline if t is not None]
            if not armed:
                raise RuntimeError("stalled: nothing in flight and no timer armed")
            idle_jumps += 1
            if idle_jumps > MAX_IDLE_JUMPS:
                raise RuntimeError(f"more than {MAX_IDLE_JUMPS} idle waits: stuck at t={now}")
            now = max(now, min(armed))
    return {"c2s": sent[0], "s2c": sent[1], "idle_jumps": idle_jumps, "t": now}


def gro_runs(items: list[tuple[bytes, Any]]) -> list[tuple[Any, Any]]:
    """``items`` with each stretch of two or more equal-sized datagrams made
    one ``SegmentRun`` over a buffer of their own, as a GRO read arrives."""
    out: list[tuple[Any, Any]] = []
    i = 0
    while i < len(items):
        size = len(items[i][0])
        j = i + 1
        while j < len(items) and len(items[j][0]) == size:
            j += 1
        if j - i > 1:
            out.append((SegmentRun(memoryview(b"".join(d for d, _ in items[i:j])), size, j - i), items[i][1]))
        else:
            out.append(items[i])
        i = j
    return out


def full_segment(config: Config) -> int:
    """Payload of a full segment: our MSS less the timestamp option (RFC 6691)."""
    return config.mss - TS_OPTION_LEN


def workload(name: str, n: int, batch: bool = False) -> str:
    """Run one workload, check it did what it should, and describe it in one line."""
    if name == "bulk":
        total = n * full_segment(Config())
        sender, sink = BulkClient(total), Sink()
        res = run(sender, sink, sender.pump, batch)
        if sink.received != total:
            raise RuntimeError(f"server read {sink.received} of {total} bytes")
        what = f"bytes={total}"
    elif name == "pingpong":
        pinger, echo = PingClient(n), EchoServer()
        res = run(pinger, echo, batch=batch)
        if pinger.left or echo.echoed != n * len(REQUEST):
            raise RuntimeError(f"{pinger.left} round trips left, {echo.echoed} bytes echoed")
        what = f"bytes={n * len(REQUEST)}"
    elif name == "connections":
        opener, echoes = ConnectClient(n), EchoServers(n)
        res = run(opener, echoes, opener.pump, batch)
        if opener.left or echoes.left or echoes.echoed != n * len(REQUEST):
            raise RuntimeError(f"{opener.left} connections left, {echoes.echoed} bytes echoed")
        what = f"bytes={n * len(REQUEST)}"
    else:
        raise ValueError(name)
    return (
        f"{name} {n}: {what} c2s={res['c2s']} s2c={res['s2c']} "
        f"idle_jumps={res['idle_jumps']} t={res['t']:.6f} engine={ENGINE}{' batch' if batch else ''}"
    )


# ------------------------------------------------------------------ --measure

IREFS = re.compile(r"I\s+refs:\s+([\d,]+)")
SUMMARY = re.compile(r"c2s=(\d+) s2c=(\d+)")


def datagrams(summary: str) -> tuple[int, int]:
    """(client -> server, server -> client) datagrams from a run's summary line."""
    m = SUMMARY.search(summary)
    if m is None:
        raise RuntimeError(f"no datagram counts in {summary!r}")
    return int(m.group(1)), int(m.group(2))


def under_valgrind(valgrind: str, name: str, n: int, batch: bool = False) -> tuple[int, str]:
    """(I refs, the run's summary line) of one workload under cachegrind."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = [
        valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
        sys.executable, os.path.abspath(__file__), name, str(n), *(["--batch"] if batch else []),
        *(["--compiled"] if COMPILED else []), *(["--gro"] if GRO else []),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    found = IREFS.findall(proc.stderr)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return int(found[-1].replace(",", "")), proc.stdout.strip()


def measure(runs: dict[str, tuple[int, int]], valgrind: str, jobs: int, batch: bool = False) -> int:
    # Once natively first: checks the workloads and writes the .pyc files, so
    # that no measured run pays for compiling and the short and long runs
    # start up identically.
    env = dict(os.environ, PYTHONHASHSEED="0")
    for name, (short, _) in runs.items():
        subprocess.run([sys.executable, os.path.abspath(__file__), name, str(min(short, 10)),
                        *(["--compiled"] if COMPILED else [])], env=env, check=True, capture_output=True)
    tasks = [(name, n) for name, pair in runs.items() for n in pair]
    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        results = dict(zip(tasks, pool.map(lambda t: under_valgrind(valgrind, *t, batch), tasks)))
    ok = True
    form = "mypyc-compiled" if COMPILED else "pure Python"
    print(f"engine: {ENGINE}, {form} ({os.path.dirname(sys.modules[Endpoint.__module__].__file__ or '')})")
    print(f"python: {sys.version.split()[0]}  valgrind: {valgrind} --tool=cachegrind --cache-sim=no")
    for (name, n), (irefs, line) in results.items():
        print(f"  {irefs:>15,} I refs  {line}")
    unit = {"bulk": "segment", "pingpong": "round trip", "connections": "connection"}
    for name, (short, long_) in runs.items():
        (i_s, l_s), (i_l, l_l) = results[(name, short)], results[(name, long_)]
        per = (i_l - i_s) / (long_ - short)
        print(f"{name}: {per:,.0f} instructions per {unit[name]} (both endpoints; "
              f"{long_} - {short} {unit[name]}s)")
        # Check that the extra work is what the division assumes.
        (c_s, s_s), (c_l, s_l) = (datagrams(line) for line in (l_s, l_l))
        extra = long_ - short
        if name == "bulk" and c_l - c_s != extra:
            ok = False
            print(f"  WARNING: {c_l - c_s} extra client datagrams for {extra} extra segments")
        if name == "pingpong" and (c_l - c_s != extra or s_l - s_s != extra):
            ok = False
            print(f"  WARNING: {c_l - c_s}/{s_l - s_s} extra datagrams for {extra} extra round trips")
        if name == "connections" and ((c_l - c_s) * short != c_s * extra or (s_l - s_s) * short != s_s * extra):
            ok = False
            print(f"  WARNING: {c_l - c_s}/{s_l - s_s} extra datagrams for {extra} extra connections "
                  f"({c_s}/{s_s} for {short})")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workload", nargs="?", choices=WORKLOADS)
    p.add_argument("n", nargs="?", type=int, help="segments (bulk), round trips (pingpong) or connections")
    p.add_argument("--measure", action="store_true", help="instruction counts under cachegrind")
    p.add_argument("--bulk", nargs=2, type=int, metavar=("SHORT", "LONG"), default=DEFAULT_BULK)
    p.add_argument("--pingpong", nargs=2, type=int, metavar=("SHORT", "LONG"), default=DEFAULT_PINGPONG)
    p.add_argument("--connections", nargs=2, type=int, metavar=("SHORT", "LONG"), default=DEFAULT_CONNECTIONS)
    p.add_argument("--only", choices=WORKLOADS, help="measure one workload")
    p.add_argument("--batch", action="store_true",
                   help="hand over what is in flight in one datagrams_received call")
    p.add_argument("--gro", action="store_true",
                   help="with --batch: equal-sized datagrams in flight as one SegmentRun (a GRO read)")
    p.add_argument("--valgrind", default="valgrind")
    p.add_argument("--compiled", action="store_true",
                   help="the mypyc-compiled core (build/compiled, tests/compiled.py) instead of the source")
    p.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                   help="valgrind runs at once (counts do not depend on it)")
    args = p.parse_args(argv)
    if args.measure:
        runs = {"bulk": tuple(args.bulk), "pingpong": tuple(args.pingpong),
                "connections": tuple(args.connections)}
        if args.only:
            runs = {args.only: runs[args.only]}
        for name, (short, long_) in runs.items():
            if not 0 < short < long_:
                p.error(f"--{name}: need 0 < SHORT < LONG")
        return measure(runs, args.valgrind, args.jobs, args.batch)  # type: ignore[arg-type]
    if args.workload is None or args.n is None or args.n < 1:
        p.error("give a workload and N >= 1, or --measure")
    print(workload(args.workload, args.n, args.batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
