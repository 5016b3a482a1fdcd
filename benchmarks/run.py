"""rudp benchmarks against their anchors, on uvloop and on asyncio's default loop.

One command runs everything; every rudp number is measured next to its anchors
in the same run, on the same loop, with sender and receiver in separate
processes (benchmarks/_workers.py), over 127.0.0.1 only (apart from the SYN
flood's kernel anchor, in a network namespace of its own):

  bulk          one connection, SIZE bytes; MB/s at the receiver.
                anchors: kernel TCP (asyncio streams); plain UDP with 64
                datagrams in flight and one tiny ack each (no reliability: the
                ceiling of one-ack-per-segment designs on asyncio); aioquic, one
                stream; KCP (the kcp package) driven from asyncio.
  bulk8         eight concurrent connections to one server, aggregate MB/s.
                anchor: kernel TCP x8.
  rr            64-byte ping-pong; median round trip in microseconds.
                anchors: plain UDP ping-pong, kernel TCP ping-pong.
  connrate      handshake + 1 KB each way + close, 16 at a time for a fixed
                time; connections/s against an idle server and against one
                holding 1,000 open connections. anchor: kernel TCP.
  memory        server RSS growth per idle established connection with
                COUNT connections on one server socket.
                anchor (for scale): kernel TCP + asyncio streams, userland only.
  cpu           CPU-seconds per GB for sender and receiver, taken from the bulk
                runs (so --only cpu runs bulk).
  synflood      a default echo server flooded with spoofed SYNs from random
                127/8 sources (one Python process, as fast as it can) while a
                client opens legitimate connections one after another:
                success %, connect p50/p99 against a no-flood baseline, server
                CPU and RSS growth, flood rate, bytes sent to flood sources per
                byte received from them. One loop (uvloop when listed), once
                per run unless --repeat is given (see _synflood.py).
                anchor: the kernel's TCP listener with tcp_syncookies=1 in a
                network namespace, flooded with raw spoofed SYNs (root only).
  lossy         (not in the default set: run it with --only lossy; root only)
                one connection through a router namespace with a rate limit
                (tbf, 25 ms queue), random loss both ways and, in some
                scenarios, a fixed added RTT: goodput, RTOs, retransmitted %,
                queue drops, longest receiver stall, CPU-s, per scenario.
                anchors: the kernel's TCP with CUBIC and with BBR, same path,
                runs alternating (see _lossy.py). Markdown table on stdout,
                DIR/lossy.json, and --json FILE.

Benchmarks report, they never fail on a number: the exit status is 0 unless
the harness itself crashes; a run that errors or times out becomes an error
row. Results: a table on stdout, DIR/results.json, DIR/results.png.

Usage: python benchmarks/run.py [--quick] [--only NAME[,NAME]] [--loops uvloop,asyncio]
                                [--repeat N] [--out DIR] [--timeout S] [--rudp-opt KEY=VALUE]
                                [--synflood-rate SYN_PER_S]
                                [--rudp-cc default,NAME] [--tcp-cc cubic,bbr]
                                [--lossy-scenarios KEY,KEY] [--lossy-bytes N] [--json FILE]
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKERS = os.path.join(HERE, "_workers.py")
sys.path.insert(0, ROOT)  # rudp from this checkout, as the workers use it
#: The implementations that are rudp: its table rows compare each with the anchor.
RUDP_FORMS = ("rudp", "rudp_c")
sys.path.insert(0, HERE)  # _synflood, also when run.py is imported

import _lossy
import _synflood

from tests import compiled  # build/compiled, for --compiled

BENCHMARKS = ("bulk", "bulk8", "rr", "connrate", "memory", "cpu", "synflood", "lossy")
#: What runs without --only: the lossy-link benchmark takes ~9 minutes and root, so it is asked for by name.
DEFAULT_BENCHMARKS = tuple(b for b in BENCHMARKS if b != "lossy")
LOOPS = ("uvloop", "asyncio")

#: Human names of the implementations, as they appear in the table.
IMPL_LABEL = {
    "rudp": "rudp",
    "rudp_c": "rudp (compiled)",  # --compiled: the same workers on the mypyc-compiled core
    "tcp": "kernel TCP",
    "udp": "plain UDP",
    "floor": "UDP floor",  # _floor.py: asyncio streams over bare datagrams, no reliability
    "aioquic": "aioquic",
    "kcp": "kcp",
    "tcp_netns": "kernel TCP",  # the SYN-flood anchor: a netns listener with tcp_syncookies=1
}

Params = dict[str, Any]
Metrics = dict[str, Any]


# -- sizes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    repeat: int
    bulk_bytes: int
    bulk8_bytes: int
    rr_count: int
    rr_warmup: int
    connrate_seconds: float
    connrate_held: int
    connrate_concurrency: int
    connrate_max: int
    memory_count: int
    synflood_baseline_s: float = 3.0  # legitimate connections without a flood
    synflood_flood_s: float = 10.0  # and under the flood (which starts synflood_lead_s earlier)
    synflood_lead_s: float = 1.0
    synflood_tail_s: float = 3.5  # counting the answers to flood sources after the flood
    synflood_repeat: int = 1

    @staticmethod
    def full() -> Sizes:
        return Sizes(repeat=3, bulk_bytes=100_000_000, bulk8_bytes=100_000_000, rr_count=2000,
                     rr_warmup=200, connrate_seconds=5.0, connrate_held=1000, connrate_concurrency=16,
                     connrate_max=100_000, memory_count=10_000, synflood_baseline_s=3.0,
                     synflood_flood_s=10.0)

    @staticmethod
    def quick() -> Sizes:
        return Sizes(repeat=1, bulk_bytes=20_000_000, bulk8_bytes=20_000_000, rr_count=500,
                     rr_warmup=100, connrate_seconds=2.0, connrate_held=1000, connrate_concurrency=16,
                     connrate_max=40_000, memory_count=2000, synflood_baseline_s=2.0,
                     synflood_flood_s=6.0)


# -- worker processes ----------------------------------------------------------------


class WorkerError(Exception):
    pass


class Worker:
    """One benchmark process: JSON events from its stdout, commands to its stdin."""

    def __init__(self, role: str, params: Params) -> None:
        self.role = role
        self.stderr = tempfile.TemporaryFile(mode="w+")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        env.pop("RUDP_BENCH_TREE", None)
        if params.get("impl") == "rudp_c":  # rudp's workers, on the compiled core
            params = {**params, "impl": "rudp", "compiled": True}
            env["RUDP_BENCH_TREE"] = compiled.TREE.as_posix()
        self.proc = subprocess.Popen(
            [sys.executable, WORKERS, role, json.dumps(params)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            text=True, cwd=ROOT, env=env, start_new_session=True,  # own process group
        )
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.events.put(json.loads(line))
                except json.JSONDecodeError:
                    pass
        self.events.put(None)  # end of output

    def stderr_tail(self, n: int = 6) -> str:
        self.stderr.seek(0)
        lines = [ln.rstrip() for ln in self.stderr.read().splitlines() if ln.strip()]
        return " | ".join(lines[-n:])

    def expect(self, name: str, deadline: float) -> dict[str, Any]:
        """The next event called ``name``; WorkerError on an error, exit or timeout."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerError(f"{self.role}: timed out waiting for {name!r}")
            try:
                ev = self.events.get(timeout=remaining)
            except queue.Empty:
                raise WorkerError(f"{self.role}: timed out waiting for {name!r}") from None
            if ev is None:
                rc = self.proc.wait()
                tail = self.stderr_tail()
                raise WorkerError(f"{self.role} exited (rc={rc}) before {name!r}" + (f": {tail}" if tail else ""))
            if ev.get("event") == "error":
                raise WorkerError(f"{self.role}: {ev.get('error')}")
            if ev.get("event") == name:
                return ev

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def stop(self) -> None:
        """Close stdin (the worker exits by itself), then kill its process group."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=2.0)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.stderr.close()


@dataclass
class Case:
    """One measurement: a server and a client process for one implementation."""

    bench: str
    impl: str
    loop: str
    params: Params
    timeout: float

    def worker_params(self, **extra: Any) -> Params:
        return {"impl": self.impl, "loop": self.loop, "deadline": self.timeout + 15, **self.params, **extra}


def run_case(case: Case) -> Metrics:
    """Start the server, then the client, and turn their reports into metrics."""
    deadline = time.monotonic() + case.timeout
    workers: list[Worker] = []
    try:
        server = Worker("server", case.worker_params())
        workers.append(server)
        port = server.expect("ready", deadline)["port"]

        def start_client(**extra: Any) -> Worker:
            client = Worker("client", case.worker_params(port=port, **extra))
            workers.append(client)
            return client

        return MEASURE[case.params["kind"]](case, server, start_client, deadline)
    finally:
        for w in reversed(workers):
            w.stop()


def measure_bulk(case: Case, server: Worker, start_client: Callable[..., Worker], deadline: float) -> Metrics:
    client = start_client()
    sent = client.expect("result", deadline)
    recv = server.expect("result", deadline)
    gb_sent, gb_recv = sent["bytes"] / 1e9, recv["bytes"] / 1e9
    m: Metrics = {
        "mb_per_s": recv["bytes"] / recv["elapsed"] / 1e6 if recv["elapsed"] > 0 else 0.0,
        "sender_mb_per_s": sent["bytes"] / sent["elapsed"] / 1e6 if sent["elapsed"] > 0 else 0.0,
        "send_cpu_s_per_gb": sent["cpu"] / gb_sent if gb_sent else None,
        "recv_cpu_s_per_gb": recv["cpu"] / gb_recv if gb_recv else None,
        "bytes": recv["bytes"],
        "receiver_elapsed_s": recv["elapsed"],
        "sender_elapsed_s": sent["elapsed"],
    }
    for key in ("datagrams_per_s", "lost", "close_ok"):
        if key in sent:
            m[key] = sent[key]
    if case.impl == "udp":
        m["mb_per_s_acked"] = sent["bytes"] / sent["elapsed"] / 1e6 if sent["elapsed"] > 0 else 0.0
    return m


def measure_rr(case: Case, server: Worker, start_client: Callable[..., Worker], deadline: float) -> Metrics:
    res = start_client().expect("result", deadline)
    return {k: v for k, v in res.items() if k != "event"}


def measure_connrate(case: Case, server: Worker, start_client: Callable[..., Worker], deadline: float) -> Metrics:
    client = start_client()
    held = client.expect("held", deadline)
    before = _mark(server, deadline)
    client.send("go")
    res = client.expect("result", deadline)
    time.sleep(0.05)  # let the server finish the last closes
    after = _mark(server, deadline)
    server_cpu = after["cpu"] - before["cpu"]
    done = after["completed"] - before["completed"]
    m: Metrics = {k: v for k, v in res.items() if k != "event"}
    m.update({
        "held_open_s": held["elapsed"],
        "server_cpu_s": server_cpu,
        "server_completed": done,
        "server_errors": after["errors"] - before["errors"],
        "server_conns_per_cpu_s": done / server_cpu if server_cpu > 0 else None,
        "client_conns_per_cpu_s": res["completed"] / res["cpu"] if res["cpu"] > 0 else None,
    })
    return m


def measure_memory(case: Case, server: Worker, start_client: Callable[..., Worker], deadline: float) -> Metrics:
    base = _mark(server, deadline)
    client = start_client()
    opened = client.expect("opened", deadline)
    target = opened["count"]
    settle = min(deadline, time.monotonic() + 30.0)
    mark = _mark(server, deadline)
    while mark["open"] < target and time.monotonic() < settle:
        time.sleep(0.25)
        mark = _mark(server, deadline)
    count = mark["open"]
    m: Metrics = {
        "bytes_per_conn": (mark["rss"] - base["rss"]) / count if count else None,
        "connections": count,
        "requested": case.params["count"],
        "open_errors": opened["errors"],
        "open_seconds": opened["elapsed"],
        "rss_before": base["rss"],
        "rss_after": mark["rss"],
        "client_bytes_per_conn": opened["client_bytes_per_conn"],
    }
    if opened["errors"]:
        m["error_samples"] = opened["error_samples"]
    return m


def run_synflood_case(case: Case) -> Metrics:
    """The SYN-flood case: its own processes (server, client, flooder) and, for
    the kernel anchor, its network namespace (benchmarks/_synflood.py).
    _synflood.Unavailable when the anchor cannot run here."""
    deadline = time.monotonic() + case.timeout

    def make_worker(role: str, extra: Params) -> Worker:
        return Worker(role, case.worker_params(**extra))

    return _synflood.measure(case.impl, case.params, make_worker, deadline)


def _mark(server: Worker, deadline: float) -> dict[str, Any]:
    server.send("mark")
    return server.expect("mark", deadline)


MEASURE: dict[str, Callable[[Case, Worker, Callable[..., Worker], float], Metrics]] = {
    "bulk": measure_bulk,
    "rr": measure_rr,
    "connrate": measure_connrate,
    "memory": measure_memory,
}


# -- what to run -------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """A benchmark variant: the unit that repeats, with its implementations."""

    name: str  # key in results
    title: str  # table label
    kind: str  # worker kind
    impls: tuple[str, ...]
    params: Params = field(default_factory=dict, hash=False, compare=False)


def variants(selected: set[str], sizes: Sizes, rudp_options: dict[str, Any],
             synflood_rate: float = 0.0, compiled_too: bool = False) -> list[Variant]:
    out = _variants(selected, sizes, rudp_options, synflood_rate)
    if compiled_too:  # rudp (compiled) right after rudp, in every variant
        out = [dataclasses.replace(
            v, impls=tuple(i for impl in v.impls for i in ((impl, "rudp_c") if impl == "rudp" else (impl,))))
               for v in out]
    return out


def _variants(selected: set[str], sizes: Sizes, rudp_options: dict[str, Any],
              synflood_rate: float) -> list[Variant]:
    ro = {"rudp_options": rudp_options}
    out: list[Variant] = []
    if selected & {"bulk", "cpu"}:
        out.append(Variant("bulk", "bulk", "bulk", ("rudp", "tcp", "udp", "aioquic", "kcp"),
                           {"size": sizes.bulk_bytes, "conns": 1, **ro}))
    if "bulk8" in selected:
        out.append(Variant("bulk8", "bulk x8", "bulk", ("rudp", "tcp"),
                           {"size": sizes.bulk8_bytes, "conns": 8, **ro}))
    if "rr" in selected:
        out.append(Variant("rr", "ping-pong 64 B", "rr", ("rudp", "udp", "floor", "tcp"),
                           {"count": sizes.rr_count, "warmup": sizes.rr_warmup, "msg": 64, **ro,
                            "extra_rudp_options": {"nodelay": True}}))
    if "connrate" in selected:
        common = {"duration": sizes.connrate_seconds, "concurrency": sizes.connrate_concurrency,
                  "max_conns": sizes.connrate_max, **ro}
        out.append(Variant("connrate", "conn rate, idle server", "connrate", ("rudp", "floor", "tcp"),
                           {"held": 0, **common}))
        out.append(Variant("connrate_held", f"conn rate, {sizes.connrate_held} held", "connrate",
                           ("rudp", "floor", "tcp"), {"held": sizes.connrate_held, **common}))
    if "memory" in selected:
        out.append(Variant("memory", f"memory, {sizes.memory_count} idle", "memory", ("rudp", "tcp"),
                           {"count": sizes.memory_count, "concurrency": 64, **ro}))
    if "synflood" in selected:
        flood = sizes.synflood_flood_s
        out.append(Variant("synflood", "SYN flood", "synflood", ("rudp", "tcp_netns"), {
            "baseline_s": sizes.synflood_baseline_s, "flood_s": flood, "lead_s": sizes.synflood_lead_s,
            "tail_s": sizes.synflood_tail_s, "period_s": 0.03, "connect_timeout": 3.0,
            "max_seconds": sizes.synflood_lead_s + flood + 10.0, "max_count": 3_000_000,
            "rate": synflood_rate, **ro}))
    return out


def available_impls() -> dict[str, str]:
    """Implementations that cannot run here, with the reason (shown as notes)."""
    missing: dict[str, str] = {}
    if importlib.util.find_spec("aioquic") is None:
        missing["aioquic"] = "aioquic not installed (pip install -e '.[bench]'); anchor skipped"
    try:
        import kcp.extension  # noqa: F401
    except Exception as exc:  # ImportError, or a broken build of the extension
        missing["kcp"] = f"kcp not importable ({type(exc).__name__}); anchor skipped"
    return missing


# -- results -------------------------------------------------------------------------------


@dataclass
class Results:
    """Every run's metrics: results[variant][loop][impl] = list of runs."""

    runs: dict[str, dict[str, dict[str, list[Metrics]]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def add(self, variant: str, loop: str, impl: str, metrics: Metrics) -> None:
        self.runs.setdefault(variant, {}).setdefault(loop, {}).setdefault(impl, []).append(metrics)

    def all_runs(self, variant: str, loop: str, impl: str) -> list[Metrics]:
        return self.runs.get(variant, {}).get(loop, {}).get(impl, [])

    def median(self, variant: str, loop: str, impl: str, key: str) -> float | None:
        vals = [r[key] for r in self.all_runs(variant, loop, impl)
                if "error" not in r and isinstance(r.get(key), (int, float))]
        return statistics.median(vals) if vals else None

    def errors(self, variant: str, loop: str, impl: str) -> list[str]:
        return [r["error"] for r in self.all_runs(variant, loop, impl) if "error" in r]


@dataclass(frozen=True)
class Comparison:
    """One table row template: rudp's ``key`` against an anchor's."""

    variant: str
    key: str
    unit: str
    anchor: str | None
    better: str  # "higher" or "lower"
    target: str = ""  # description shown in the table
    check: Callable[[float | None, float | None], bool | None] | None = None
    label: str = ""
    anchor_check: bool = False  # also say in the notes whether the anchor meets the target
    digits: int | None = None  # decimals in the table (default: fmt's)


def _ratio_at_least(x: float) -> Callable[[float | None, float | None], bool | None]:
    return lambda value, ratio: None if ratio is None else ratio >= x


def _ratio_at_most(x: float) -> Callable[[float | None, float | None], bool | None]:
    return lambda value, ratio: None if ratio is None else ratio <= x


def _value_at_least(x: float) -> Callable[[float | None, float | None], bool | None]:
    return lambda value, ratio: None if value is None else value >= x


def _value_at_most(x: float) -> Callable[[float | None, float | None], bool | None]:
    return lambda value, ratio: None if value is None else value <= x


def _value_below(x: float) -> Callable[[float | None, float | None], bool | None]:
    return lambda value, ratio: None if value is None else value < x


COMPARISONS: tuple[Comparison, ...] = (
    Comparison("bulk", "mb_per_s", "MB/s", "tcp", "higher"),
    Comparison("bulk", "mb_per_s", "MB/s", "udp", "higher", ">= 2x UDP ceiling", _ratio_at_least(2.0)),
    Comparison("bulk", "mb_per_s", "MB/s", "aioquic", "higher", ">= 30x aioquic", _ratio_at_least(30.0)),
    Comparison("bulk", "mb_per_s", "MB/s", "kcp", "higher"),
    Comparison("bulk8", "mb_per_s", "MB/s", "tcp", "higher"),
    Comparison("rr", "rtt_us_median", "us RTT", "udp", "lower"),
    Comparison("rr", "rtt_us_median", "us RTT", "floor", "lower"),
    Comparison("rr", "rtt_us_median", "us RTT", "tcp", "lower", "<= 1.5x kernel TCP", _ratio_at_most(1.5)),
    Comparison("connrate", "conns_per_s", "conn/s", "tcp", "higher", label="{title} (wall)"),
    Comparison("connrate", "server_conns_per_cpu_s", "conn/CPU-s", "floor", "higher",
               label="{title} (server core)"),
    Comparison("connrate", "server_conns_per_cpu_s", "conn/CPU-s", "tcp", "higher", ">= kernel TCP",
               _ratio_at_least(1.0), label="{title} (server core)"),
    Comparison("connrate_held", "conns_per_s", "conn/s", "tcp", "higher", label="{title} (wall)"),
    Comparison("connrate_held", "server_conns_per_cpu_s", "conn/CPU-s", "floor", "higher",
               label="{title} (server core)"),
    Comparison("connrate_held", "server_conns_per_cpu_s", "conn/CPU-s", "tcp", "higher",
               ">= kernel TCP", _ratio_at_least(1.0), label="{title} (server core)"),
    Comparison("memory", "bytes_per_conn", "B/conn", "tcp", "lower", "<= 16384 B/conn (rudp)",
               _value_at_most(16384)),
    Comparison("bulk", "send_cpu_s_per_gb", "CPU-s/GB", "tcp", "lower", "<= 1.5 CPU-s/GB", _value_at_most(1.5),
               label="cpu, sender"),
    Comparison("bulk", "recv_cpu_s_per_gb", "CPU-s/GB", "tcp", "lower", "<= 1.5 CPU-s/GB", _value_at_most(1.5),
               label="cpu, receiver"),
    Comparison("synflood", "success_pct", "% ok", "tcp_netns", "higher", ">= 99% legit conns",
               _value_at_least(99.0), label="{title}: legit success", anchor_check=True),
    Comparison("synflood", "connect_ms_p50", "ms", "tcp_netns", "lower", label="{title}: connect p50"),
    Comparison("synflood", "connect_ms_p99", "ms", "tcp_netns", "lower", label="{title}: connect p99"),
    Comparison("synflood", "p99_vs_baseline", "x no-flood", "tcp_netns", "lower", "p99 <= 3x no-flood p99",
               _value_at_most(3.0), label="{title}: p99 vs no flood", anchor_check=True),
    Comparison("synflood", "held_echo_ms_p99", "ms", "tcp_netns", "lower",
               label="{title}: established echo p99"),
    Comparison("synflood", "server_cpu_s", "CPU-s", "tcp_netns", "lower", label="{title}: server CPU"),
    Comparison("synflood", "rss_growth_mb", "MB", "tcp_netns", "lower", "< 10 MB RSS growth",
               _value_below(10.0), label="{title}: server RSS growth", anchor_check=True),
    Comparison("synflood", "flood_rate", "SYN/s", "tcp_netns", "higher", label="{title}: flood rate sent"),
    Comparison("synflood", "syn_processed_pct", "% of SYNs", "tcp_netns", "higher",
               label="{title}: SYNs that reached the server"),
    Comparison("synflood", "bytes_ratio", "B out/B in", "tcp_netns", "lower", "<= 1 (no amplification)",
               _value_at_most(1.0), label="{title}: bytes to flood sources", anchor_check=True, digits=3),
)


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e6):
        return f"{int(v):,}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table_rows(results: Results, vlist: list[Variant], loops: list[str]) -> list[dict[str, Any]]:
    titles = {v.name: v.title for v in vlist}
    rows: list[dict[str, Any]] = []
    for comp in COMPARISONS:
        if comp.variant not in titles:
            continue
        for loop, form in ((loop, form) for loop in loops for form in RUDP_FORMS):
            if form != "rudp" and not results.all_runs(comp.variant, loop, form):
                continue  # rudp (compiled) only with --compiled
            if not results.all_runs(comp.variant, loop, form) and not (
                    comp.anchor and results.all_runs(comp.variant, loop, comp.anchor)):
                continue  # not run on this loop (synflood runs on one)
            rudp = results.median(comp.variant, loop, form, comp.key)
            anchor = results.median(comp.variant, loop, comp.anchor, comp.key) if comp.anchor else None
            ratio = rudp / anchor if rudp is not None and anchor else None
            met = comp.check(rudp, ratio) if comp.check else None
            notes: list[str] = []
            if comp.anchor_check and comp.check and anchor is not None and comp.anchor:
                anchor_met = comp.check(anchor, None)
                if anchor_met is not None:
                    notes.append(f"{IMPL_LABEL[comp.anchor]} {'meets' if anchor_met else 'misses'} it")
            for impl in (form, comp.anchor):
                if impl is None:
                    continue
                errs = results.errors(comp.variant, loop, impl)
                n = len(results.all_runs(comp.variant, loop, impl))
                if impl in results.skipped:
                    notes.append(f"{IMPL_LABEL[impl]} skipped")
                elif errs:
                    notes.append(f"{IMPL_LABEL[impl]}: {len(errs)}/{n} runs failed")
            bench = comp.label.format(title=titles[comp.variant]) if comp.label else titles[comp.variant]
            rows.append({
                "benchmark": bench + (" [compiled]" if form == "rudp_c" else ""),
                "form": "compiled" if form == "rudp_c" else "pure",
                "variant": comp.variant,
                "metric": comp.key,
                "loop": loop,
                "unit": comp.unit,
                "better": comp.better,
                "rudp": rudp,
                "anchor": IMPL_LABEL.get(comp.anchor or "", "-"),
                "anchor_value": anchor,
                "anchor_skipped": comp.anchor in results.skipped,
                "ratio": ratio,
                "target": comp.target,
                "met": met,
                "digits": comp.digits,
                "notes": "; ".join(notes),
            })
    return rows


def fmt_cell(v: float | None, digits: int | None) -> str:
    return fmt(v) if digits is None or v is None else f"{v:.{digits}f}"


def anchor_cell(row: dict[str, Any]) -> str:
    if row["anchor_value"] is not None:
        return fmt_cell(row["anchor_value"], row.get("digits"))
    if row["anchor_skipped"]:
        return "skipped"
    return "ERR" if row["anchor"] != "-" else "-"


def render_table(rows: list[dict[str, Any]]) -> str:
    header = ["benchmark", "loop", "unit", "rudp", "anchor", "anchor val", "rudp/anchor", "target",
              "met?", "notes"]
    body: list[list[str]] = []
    for r in rows:
        met = {True: "yes", False: "NO", None: "-" if not r["target"] else "n/a"}[r["met"]]
        ratio = "-" if r["ratio"] is None else (f"{r['ratio']:.2f}x" if r["ratio"] < 100 else f"{r['ratio']:.0f}x")
        body.append([r["benchmark"], r["loop"], r["unit"] + (" ^" if r["better"] == "higher" else " v"),
                     "ERR" if r["rudp"] is None else fmt_cell(r["rudp"], r.get("digits")), r["anchor"],
                     anchor_cell(r),
                     ratio, r["target"], met, r["notes"]])
    widths = [max(len(header[i]), *(len(b[i]) for b in body)) if body else len(header[i])
              for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip() for b in body]
    return "\n".join(lines)


def render_details(results: Results, vlist: list[Variant], loops: list[str]) -> str:
    """Every implementation's medians, including numbers the main table leaves out."""
    keys = {
        "bulk": ("mb_per_s", "send_cpu_s_per_gb", "recv_cpu_s_per_gb", "datagrams_per_s"),
        "rr": ("rtt_us_median", "rtt_us_p99", "client_cpu_us_per_rt"),
        "connrate": ("conns_per_s", "server_conns_per_cpu_s", "client_conns_per_cpu_s", "latency_ms_median",
                     "errors"),
        "memory": ("bytes_per_conn", "client_bytes_per_conn", "connections", "open_seconds"),
        "synflood": ("success_pct", "baseline_success_pct", "connect_ms_p50", "connect_ms_p99",
                     "baseline_connect_ms_p50", "baseline_connect_ms_p99", "flood_rate", "syn_processed_pct",
                     "server_cpu_s", "server_cpu_per_wall_s", "client_cpu_s", "flooder_cpu_s", "softirq_cpu_s",
                     "other_cpu_s", "loadavg_1m", "rss_growth_mb", "bytes_ratio", "ip_bytes_ratio",
                     "bytes_ratio_of_sent", "server_socket_drops", "held_echo_ms_p50", "held_echo_ms_p99",
                     "held_echo_ms_max", "baseline_held_echo_ms_p99", "held_echoes", "held_failed"),
    }
    out: list[str] = []
    for v in vlist:
        ran = [loop for loop in loops if any(results.all_runs(v.name, loop, i) for i in v.impls)]
        for loop in ran or loops:
            for impl in v.impls:
                runs = results.all_runs(v.name, loop, impl)
                if impl in results.skipped:
                    out.append(f"{v.title:24} {loop:8} {IMPL_LABEL[impl]:15} skipped: {results.skipped[impl]}")
                    continue
                if not runs:
                    continue
                ok = [r for r in runs if "error" not in r]
                parts = [f"{k}={fmt(results.median(v.name, loop, impl, k))}" for k in keys[v.kind]
                         if results.median(v.name, loop, impl, k) is not None]
                line = f"{v.title:24} {loop:8} {IMPL_LABEL[impl]:15} {len(ok)}/{len(runs)} ok  " + " ".join(parts)
                out.append(line.rstrip())
                for r in runs:
                    if "error" in r:
                        out.append(f"{'':24} {'':8} {'':15} error: {r['error']}")
    return "\n".join(out)


# -- machine ---------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    commit = None
    try:
        commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], check=False, capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "uvloop": version("uvloop"),
        "rudp": version("rudp"),
        "rudp_commit": commit,
        "aioquic": version("aioquic"),
        "kcp": version("kcp"),
        "matplotlib": version("matplotlib"),
    }


def rudp_config() -> dict[str, Any]:
    """rudp's effective default configuration (it changes as rudp is tuned)."""
    try:
        import dataclasses

        from rudp.core.config import Config

        return dataclasses.asdict(Config())
    except Exception as exc:  # report, do not fail
        return {"error": repr(exc)}


# -- plot ---------------------------------------------------------------------------------------

#: Absolute targets drawn as dashed lines: (variant, key) -> value.
PLOT_TARGETS: dict[tuple[str, str], float] = {
    ("connrate", "server_conns_per_cpu_s"): 5000.0,
    ("memory", "bytes_per_conn"): 16384.0,
}

PLOTS: tuple[tuple[str, str, str], ...] = (
    ("bulk", "mb_per_s", "bulk, MB/s (higher is better)"),
    ("bulk8", "mb_per_s", "bulk x8, aggregate MB/s"),
    ("rr", "rtt_us_median", "64 B ping-pong, median RTT us (lower)"),
    ("connrate", "conns_per_s", "connections/s, idle server"),
    ("connrate_held", "conns_per_s", "connections/s, with held connections"),
    ("connrate", "server_conns_per_cpu_s", "connections per server CPU-second"),
    ("memory", "bytes_per_conn", "server bytes per idle connection (lower)"),
    ("bulk", "send_cpu_s_per_gb", "sender CPU-s per GB (lower)"),
    ("bulk", "recv_cpu_s_per_gb", "receiver CPU-s per GB (lower)"),
)


def plot(results: Results, vlist: list[Variant], loops: list[str], path: str, title: str) -> str | None:
    """Grouped bars per benchmark (log scale); returns a note when skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed (pip install -e '.[bench]'); plot skipped"
    impls_of = {v.name: v.impls for v in vlist}
    panels = [p for p in PLOTS if p[0] in impls_of]
    if not panels:
        return "nothing to plot"
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    colors = {"rudp": "#d62728", "rudp_c": "#ff9896", "tcp": "#1f77b4", "udp": "#7f7f7f", "aioquic": "#2ca02c", "kcp": "#9467bd"}
    for ax, (variant, key, label) in zip(axes.flat, panels):
        impls = [i for i in impls_of[variant] if i not in results.skipped
                 and not (key.endswith("cpu_s_per_gb") and i not in ("rudp", "rudp_c", "tcp"))]
        width = 0.8 / max(1, len(impls))
        values: list[float] = []
        for j, impl in enumerate(impls):
            xs, ys = [], []
            for li, loop in enumerate(loops):
                val = results.median(variant, loop, impl, key)
                if val is not None and val > 0:
                    xs.append(li + (j - (len(impls) - 1) / 2) * width)
                    ys.append(val)
            values += ys
            bars = ax.bar(xs, ys, width, label=IMPL_LABEL[impl], color=colors.get(impl))
            for b, y in zip(bars, ys):
                ax.annotate(fmt(y), (b.get_x() + b.get_width() / 2, y), ha="center", va="bottom", fontsize=6)
        target = PLOT_TARGETS.get((variant, key))
        if target is not None:
            ax.axhline(target, color="black", linestyle="--", linewidth=0.8, label=f"target {fmt(target)}")
            values.append(target)
        if values and max(values) > 20 * min(values):
            ax.set_yscale("log")  # anchors can be 100x apart
        ax.set_xticks(range(len(loops)))
        ax.set_xticklabels(loops)
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=8 if cols < 3 else 10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# -- main ---------------------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="rudp benchmarks with anchors (see benchmarks/README.md)")
    p.add_argument("--quick", action="store_true", help="1 repeat and smaller sizes")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    p.add_argument("--loops", default=",".join(LOOPS), help="comma-separated: uvloop,asyncio")
    p.add_argument("--repeat", type=int, default=None, help="runs per measurement (median); default 3, --quick 1")
    p.add_argument("--out", default=os.path.join(HERE, "results"), help="directory for results.json/png")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per run before its processes are killed")
    p.add_argument("--compiled", action="store_true",
                   help="also run rudp on its mypyc-compiled core (build/compiled, tests/compiled.py), "
                        "side by side with the pure Python one")
    p.add_argument("--rudp-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="rudp option for both sides, e.g. checksum=true (repeatable)")
    p.add_argument("--synflood-rate", type=float, default=0.0, metavar="SYN_PER_S",
                   help="pace the SYN flood (default 0: as fast as one Python process can)")
    p.add_argument("--rudp-cc", "--cc", dest="rudp_cc", default="default", metavar="NAME[,NAME]",
                   help="lossy: rudp congestion controllers to run ('default': rudp's own default)")
    p.add_argument("--tcp-cc", default="cubic,bbr", metavar="NAME[,NAME]",
                   help="lossy: kernel TCP controllers (anchors), set per socket")
    p.add_argument("--lossy-scenarios", default="", metavar="KEY[,KEY]",
                   help="lossy: only these scenarios, e.g. 20M-1,100M-0,20M+20ms-1,nolimit-1")
    p.add_argument("--lossy-bytes", type=int, default=None, metavar="N",
                   help="lossy: bytes per transfer in every scenario (default: per scenario)")
    p.add_argument("--json", default=None, metavar="FILE",
                   help="lossy: also write its results as JSON to FILE ('-': stdout, after the table)")
    args = p.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()} or set(DEFAULT_BENCHMARKS)
    unknown = only - set(BENCHMARKS)
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}")
    args.only_set = only
    args.lossy_requested = "lossy" in only
    args.timeout_given = any(a == "--timeout" or a.startswith("--timeout=") for a in (argv or sys.argv[1:]))
    loops = [s.strip() for s in args.loops.split(",") if s.strip()]
    bad = set(loops) - set(LOOPS)
    if bad:
        p.error(f"unknown loop(s): {', '.join(sorted(bad))}")
    args.loop_list = loops
    opts: dict[str, Any] = {}
    for item in args.rudp_opt:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--rudp-opt wants KEY=VALUE, got {item!r}")
        opts[key.strip()] = parse_value(value.strip())
    args.rudp_options = opts
    return args


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def headline(v: Variant, m: Metrics) -> str:
    if v.kind == "synflood":
        return (f"legit {fmt(m.get('success_pct'))}% ok, connect p99 {fmt(m.get('connect_ms_p99'))} ms "
                f"(no flood {fmt(m.get('baseline_connect_ms_p99'))} ms), flood {fmt(m.get('flood_rate'))} SYN/s, "
                f"{fmt(m.get('bytes_ratio'))} B out per B in")
    key = {"bulk": "mb_per_s", "rr": "rtt_us_median", "connrate": "conns_per_s", "memory": "bytes_per_conn"}[v.kind]
    unit = {"bulk": "MB/s", "rr": "us", "connrate": "conn/s", "memory": "B/conn"}[v.kind]
    return f"{fmt(m.get(key))} {unit}"


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    sizes = Sizes.quick() if args.quick else Sizes.full()
    repeat = args.repeat if args.repeat is not None else sizes.repeat
    loops: list[str] = list(args.loop_list)
    results = Results()
    notes: list[str] = []
    if "uvloop" in loops and importlib.util.find_spec("uvloop") is None:
        loops.remove("uvloop")
        notes.append("uvloop not installed: uvloop runs skipped")
    results.skipped = available_impls()
    if "synflood" in args.only_set:
        reason = _synflood.Netns.check()
        if reason:
            results.skipped["tcp_netns"] = reason
    if args.compiled:
        why = compiled.build()  # only when rudp/core changed since the last build (~1 min)
        if why:
            results.skipped["rudp_c"] = f"rudp (compiled) skipped: {why}"
    notes += list(results.skipped.values())
    vlist = variants(args.only_set, sizes, args.rudp_options, args.synflood_rate, args.compiled)
    os.makedirs(args.out, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t_start = time.monotonic()

    def snapshot() -> dict[str, Any]:
        rows = table_rows(results, vlist, loops)
        return {
            "started": started,
            "wall_seconds": round(time.monotonic() - t_start, 1),
            "machine": machine_info(),
            "rudp_config": rudp_config(),
            "rudp_options": args.rudp_options,
            "quick": args.quick,
            "repeat": repeat,
            "loops": loops,
            "sizes": sizes.__dict__,
            "notes": notes,
            "table": rows,
            "runs": results.runs,
        }

    for v in vlist:
        v_loops, v_repeat = loops, repeat
        if v.kind == "synflood":  # long: one loop, once unless --repeat says otherwise
            v_loops = ["uvloop"] if "uvloop" in loops else loops[:1]
            v_repeat = args.repeat if args.repeat is not None else sizes.synflood_repeat
        for loop in v_loops:
            for rep in range(v_repeat):
                for impl in v.impls:
                    if impl in results.skipped:
                        continue
                    case = Case(v.name, impl, loop, {"kind": v.kind, **v.params}, args.timeout)
                    t0 = time.monotonic()
                    try:
                        m = run_synflood_case(case) if v.kind == "synflood" else run_case(case)
                    except _synflood.Unavailable as exc:
                        results.skipped[impl] = f"{IMPL_LABEL[impl]} ({v.name}) skipped: {exc}"
                        notes.append(results.skipped[impl])
                        log(f"[{v.name} {loop}] {IMPL_LABEL[impl]:10} skipped: {exc}")
                        continue
                    except WorkerError as exc:
                        m = {"error": str(exc)[:500]}
                    except Exception as exc:  # a harness bug must not lose the other results
                        m = {"error": f"harness: {type(exc).__name__}: {exc}"[:500]}
                    m["wall_s"] = round(time.monotonic() - t0, 2)
                    results.add(v.name, loop, impl, m)
                    msg = f"ERROR {m['error']}" if "error" in m else headline(v, m)
                    log(f"[{v.name} {loop} {rep + 1}/{v_repeat}] {IMPL_LABEL[impl]:10} {msg} ({m['wall_s']:.1f} s)")
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(snapshot(), f, indent=1)

    data = snapshot()
    mi = data["machine"]
    runs_of = f"median of {repeat}"
    if any(v.kind == "synflood" for v in vlist):
        flood_repeat = args.repeat if args.repeat is not None else sizes.synflood_repeat
        runs_of = ("" if all(v.kind == "synflood" for v in vlist) else runs_of + ", ") + (
            f"SYN flood median of {flood_repeat}" if flood_repeat > 1 else "SYN flood once")
    title = (f"rudp {mi['rudp_commit'] or ''}, {'quick' if args.quick else 'full'} run, {runs_of}\n"
             f"{mi['cores']} cores {mi['cpu_model']}, Python {mi['python']}, uvloop {mi['uvloop']}")
    plot_note = plot(results, vlist, loops, os.path.join(args.out, "results.png"), title)
    if plot_note:
        notes.append(plot_note)
    data["notes"] = notes
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(data, f, indent=1)

    print(title.replace("\n", " | "))
    print()
    print(render_table(data["table"]))
    print()
    print("units: ^ higher is better, v lower is better; ratio = rudp / anchor; "
          "MB = 10^6 bytes, GB = 10^9 bytes")
    print()
    print("all medians:")
    print(render_details(results, vlist, loops))
    for n in notes:
        print(f"note: {n}")
    print(f"\nwrote {os.path.join(args.out, 'results.json')}"
          + ("" if plot_note else f" and {os.path.join(args.out, 'results.png')}")
          + f" ({data['wall_seconds']:.0f} s)")
    return data


def lossy_plan(args: argparse.Namespace, notes: list[str]) -> _lossy.Plan:
    """What the lossy-link benchmark runs, from the command line."""
    scns = _lossy.scenarios(args.quick)
    if args.lossy_scenarios:
        want = [k.strip() for k in args.lossy_scenarios.split(",") if k.strip()]
        by_key = {s.key: s for s in _lossy.scenarios(False)}
        unknown = [k for k in want if k not in by_key]
        if unknown:
            raise SystemExit(f"unknown lossy scenario(s) {', '.join(unknown)}; choose from {', '.join(by_key)}")
        quick_size = {s.key: s.size for s in scns}
        scns = [by_key[k] for k in want]
        if args.quick:  # the quick sizes where the quick list has the scenario, else half
            scns = [dataclasses.replace(s, size=quick_size.get(s.key, s.size // 2)) for s in scns]
    if args.lossy_bytes:
        scns = [dataclasses.replace(s, size=args.lossy_bytes) for s in scns]
    tcp_ccs, skipped = _lossy.tcp_controllers([c.strip() for c in args.tcp_cc.split(",") if c.strip()])
    notes += skipped.values()
    rudp_ccs = [c.strip() for c in args.rudp_cc.split(",") if c.strip()] or ["default"]
    try:
        from rudp.core.congestion import CONTROLLERS

        for cc in [c for c in rudp_ccs if c != "default" and c not in CONTROLLERS]:
            rudp_ccs.remove(cc)
            notes.append(f"rudp {cc} skipped: not a registered controller (have: {', '.join(sorted(CONTROLLERS))})")
    except ImportError:
        pass
    stacks = [_lossy.Stack("tcp", c) for c in tcp_ccs] + [_lossy.Stack("rudp", c) for c in rudp_ccs]
    # rudp and the anchors alternate: cubic, rudp, bbr, rudp-2, ...
    order: list[_lossy.Stack] = []
    anchors, rudps = stacks[:len(tcp_ccs)], stacks[len(tcp_ccs):]
    for i in range(max(len(anchors), len(rudps))):
        order += anchors[i:i + 1] + rudps[i:i + 1]
    loop = "uvloop" if "uvloop" in args.loop_list and importlib.util.find_spec("uvloop") else args.loop_list[0]
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    timeout = args.timeout if args.timeout_given else None
    return _lossy.Plan(scns, order, repeat, loop, timeout, args.rudp_options)


def run_lossy(args: argparse.Namespace) -> dict[str, Any]:
    """benchmarks/_lossy.py from the command line: the table, DIR/lossy.json, --json."""
    notes: list[str] = []
    reason = _lossy.check_basics()
    missing = {} if reason else _lossy.ensure_tools(log)
    if not reason and "ethtool" in missing:
        reason = missing["ethtool"] + ": offloads cannot be turned off"
    for tool in ("iptables", "ping"):
        if tool in missing:
            notes.append(missing[tool] + (": the RTT scenarios are skipped" if tool == "iptables"
                                          else ": the path RTT is not checked"))
    plan = lossy_plan(args, notes)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.monotonic()
    results: list[dict[str, Any]] = []
    if reason:
        log(f"[lossy] skipped: {reason}")
        notes.append(f"lossy skipped: {reason}")
    else:
        log(f"[lossy] {len(plan.scenarios)} scenarios x {len(plan.stacks)} stacks x {plan.repeat} on {plan.loop}: "
            + ", ".join(s.label for s in plan.stacks))
        results = _lossy.run(plan, lambda role, params: Worker(role, params), log, notes)
    rows = _lossy.summary_rows(results, plan.stacks)
    anchors = [s.cc for s in plan.stacks if s.impl == "tcp"]
    table = _lossy.render_markdown(rows, anchors)
    mi = machine_info()
    title = (f"lossy link: rudp {mi['rudp_commit'] or ''} vs kernel TCP, "
             f"{'quick' if args.quick else 'full'} run, median of {plan.repeat}, {plan.loop}; "
             f"{mi['cores']} cores, kernel {mi['kernel']}, Python {mi['python']}")
    data = {
        "started": started,
        "wall_seconds": round(time.monotonic() - t0, 1),
        "title": title,
        "machine": mi,
        "rudp_config": rudp_config(),
        "rudp_options": args.rudp_options,
        "plan": {"repeat": plan.repeat, "loop": plan.loop, "timeout": plan.timeout,
                 "stacks": [s.label for s in plan.stacks], "scenarios": [s.key for s in plan.scenarios]},
        "notes": notes,
        "table": rows,
        "table_markdown": table,
        "scenarios": results,
    }
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "lossy.json")
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    print(title)
    print()
    for res in results:
        rtt = res.get("path_rtt") or {}
        if "avg_ms" in rtt:
            print(f"- {res['scenario']['name']}: path RTT (ping, no load) {rtt['avg_ms']:.2f} ms "
                  f"(min {rtt['min_ms']:.2f}, max {rtt['max_ms']:.2f})")
    print()
    print(table)
    print()
    print("goodput: MB/s (10^6 bytes) at the receiver, first write to last read; x NAME: rudp / kernel TCP NAME; "
          "RTOs, retrans % (of data segments), max stall (longest gap between reads delivering new bytes), "
          "CPU-s (sender + receiver): medians; queue drops: the router's tbf on the data path; "
          "loss drops: the random-loss filter, both directions")
    for row in rows:
        for err in row["errors"]:
            print(f"error: {row['key']} {row['stack']}: {err}")
    for n in notes:
        print(f"note: {n}")
    print(f"\nwrote {path} ({data['wall_seconds']:.0f} s)")
    if args.json == "-":
        print(json.dumps(data, indent=1))
    elif args.json:
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
    return data


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    others = args.only_set - {"lossy"}
    if others:
        args.only_set = others
        run_all(args)
    if args.lossy_requested:
        try:
            run_lossy(args)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the namespaces are gone already
            log("interrupted")
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
