"""Lossy-link benchmark: rudp against the kernel's TCP (CUBIC and BBR) through
an impaired router (benchmarks/run.py --only lossy).

The topology is built for the run and removed after it, also on Ctrl-C or a
crash of a run (a later run removes the namespaces of a dead one):

    sender ns          router ns                    receiver ns
    10.211.1.1 s0 ---- r0 10.211.1.2  10.211.2.2 r1 ---- v0 10.211.2.1

Three network namespaces, two veth pairs, nothing in this namespace; GRO,
GSO and TSO off on every end (so the kernel's TCP sends MSS-sized packets,
as rudp does). Both directions are impaired on the router's egress (r1: data,
r0: ACKs) by one qdisc tree each:

    htb 1: (a classifier only: both classes at 10 Gbit/s)
      cBPF filter: `ld rand; jge THRESHOLD` -> class 1:20, a blackhole qdisc
                   (random loss of LOSS% of the IPv4 packets; this kernel has no netem)
      default class 1:10 -> tbf RATE, limit RATE x 25 ms (bytes), burst 1 ms of RATE
                            (>= 2 packets); pfifo where the rate is unlimited

Loss is drawn independently per packet and per direction, before the queue.
A fixed delay (the RTT scenarios) is a user-space delay line on the router:
an iptables FORWARD rule sends every forwarded packet to NFQUEUE 0 and
benchmarks/_delayline.py accepts each one DELAY later, in arrival order
(packets enter the qdiscs above after their delay). The path's RTT is
measured with ping before each scenario, before the loss filter goes in.

Each run: a receiver process in the receiver namespace, a sender process in
the sender namespace (benchmarks/_workers.py, roles lossy/server and
lossy/client), SIZE bytes over one connection. Stacks: kernel TCP with each
``--tcp-cc`` controller (set per socket, TCP_CONGESTION) and rudp with each
``--rudp-cc`` controller ("default": rudp's own default), in alternation,
``repeat`` times per scenario; the table shows medians.

Per run: goodput (bytes / (last byte read at the receiver - first write at
the sender); both processes read CLOCK_MONOTONIC), RTOs (rudp: the
connection's ``timeouts``; kernel: tcp_info's tcpi_total_rto, Linux >= 6.7,
else the sender namespace's TcpExt TCPTimeouts), retransmitted segments as %
of data segments sent, queue drops (the tbf/pfifo leaf on the data path) and
loss drops (the blackhole, both directions) from ``tc -s`` on the router,
the longest gap between two reads that delivered new bytes at the receiver,
and the CPU seconds of the two processes (getrusage, inside each).

Needs root, iproute2 (ip, tc), ethtool; iptables for the delay line and ping
for the RTT check. Missing Debian packages are installed with apt-get when
possible; otherwise the benchmark (or the RTT scenarios) is skipped with the
reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from _synflood import remove_stale_netns

HERE = os.path.dirname(os.path.abspath(__file__))
NS_PREFIX = "rudp-lossy-"
SENDER_ADDR, ROUTER_S_ADDR = "10.211.1.1", "10.211.1.2"
RECEIVER_ADDR, ROUTER_V_ADDR = "10.211.2.1", "10.211.2.2"
QUEUE_MS = 25.0  # tbf queue: limit = rate x 25 ms
NFQUEUE_NUM = 0
MB = 1_000_000

Metrics = dict[str, Any]


class Unavailable(Exception):
    """The benchmark (or a scenario) cannot run here; the message says why."""


@dataclass(frozen=True)
class Scenario:
    rate_mbit: float | None  # None: no rate limit
    loss_pct: float
    rtt_ms: float  # added round-trip delay (half each way)
    size: int  # bytes per transfer

    @property
    def name(self) -> str:
        rate = f"{self.rate_mbit:g} Mbit/s" if self.rate_mbit else "no limit"
        rtt = f" +{self.rtt_ms:g} ms RTT" if self.rtt_ms else ""
        return f"{rate}{rtt}, {self.loss_pct:g}% loss"

    @property
    def key(self) -> str:
        """Short name for --lossy-scenarios: 20M-1, 100M-0, 20M+20ms-1, nolimit-1."""
        rate = f"{self.rate_mbit:g}M" if self.rate_mbit else "nolimit"
        rtt = f"+{self.rtt_ms:g}ms" if self.rtt_ms else ""
        return f"{rate}{rtt}-{self.loss_pct:g}"

    def timeout(self) -> float:
        """Seconds one run may take: ten times the transfer at line rate, at least 40."""
        line = self.size / (self.rate_mbit * MB / 8) if self.rate_mbit else self.size / (50 * MB)
        return max(40.0, 10.0 * line)


def scenarios(quick: bool) -> list[Scenario]:
    """The scenario list; sizes give a few seconds per transfer at line rate."""
    m = MB
    full = [
        *(Scenario(20, loss, 0, 8 * m) for loss in (0, 0.5, 1, 2)),
        Scenario(20, 5, 0, 4 * m),
        *(Scenario(100, loss, 0, 30 * m) for loss in (0, 1, 2)),
        *(Scenario(20, loss, 20, 8 * m) for loss in (0, 1)),
        Scenario(None, 1, 0, 100 * m),
    ]
    if not quick:
        return full
    keep = {"20M-0", "20M-2", "100M-1", "20M+20ms-1"}
    return [Scenario(s.rate_mbit, s.loss_pct, s.rtt_ms, s.size // 2) for s in full if s.key in keep]


@dataclass(frozen=True)
class Stack:
    impl: str  # "tcp" or "rudp"
    cc: str  # controller name; "default" for rudp's default

    @property
    def label(self) -> str:
        return f"kernel TCP {self.cc}" if self.impl == "tcp" else f"rudp {self.cc}"


# -- tools -------------------------------------------------------------------------------------


def _run(cmd: list[str], timeout: float = 15.0, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise Unavailable(f"{' '.join(cmd)}: {(r.stderr or r.stdout).strip() or f'exit {r.returncode}'}")
    return r


def ensure_tools(log: Callable[[str], None]) -> dict[str, str]:
    """Installs missing Debian packages when root with apt-get; returns the
    tools still missing, with the reason (the caller decides what to skip)."""
    wanted = {"ethtool": "ethtool", "iptables": "iptables", "ping": "iputils-ping"}
    missing = [tool for tool in wanted if shutil.which(tool) is None]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        pkgs = sorted({wanted[t] for t in missing})
        log(f"[lossy] installing {' '.join(pkgs)} (apt-get)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(["apt-get", "install", "-y", "-qq", *pkgs], capture_output=True, text=True,
                           timeout=600, env=env, check=False)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600, env=env, check=False)
            subprocess.run(["apt-get", "install", "-y", "-qq", *pkgs], capture_output=True, timeout=600,
                           env=env, check=False)
    return {t: f"{t} not installed (Debian package {wanted[t]})" for t in wanted if shutil.which(t) is None}


def check_basics() -> str | None:
    """Why the benchmark cannot run at all here, or None."""
    if sys.platform != "linux":
        return "Linux only (network namespaces, tc)"
    if os.geteuid() != 0:
        return "needs root (network namespaces, tc, iptables)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} (iproute2) not found"
    if not os.path.exists("/proc/self/ns/net"):
        return "no network namespaces in this kernel"
    return None


def tcp_controllers(wanted: list[str]) -> tuple[list[str], dict[str, str]]:
    """The kernel controllers available (loading modules when needed) and why others are not."""
    path = "/proc/sys/net/ipv4/tcp_available_congestion_control"

    def available() -> set[str]:
        try:
            with open(path) as f:
                return set(f.read().split())
        except OSError:
            return set()

    ok: list[str] = []
    skipped: dict[str, str] = {}
    for cc in wanted:
        if cc not in available() and shutil.which("modprobe"):
            subprocess.run(["modprobe", f"tcp_{cc}"], capture_output=True, timeout=15, check=False)
        if cc in available():
            ok.append(cc)
        else:
            skipped[cc] = f"kernel TCP {cc} skipped: not in {path} and `modprobe tcp_{cc}` did not add it"
    return ok, skipped


# -- the topology ------------------------------------------------------------------------------


class Topology:
    """Sender, router and receiver namespaces; the router's impairment."""

    def __init__(self) -> None:
        tag = f"{NS_PREFIX}{os.getpid()}"
        self.sender, self.router, self.receiver = f"{tag}-s", f"{tag}-r", f"{tag}-v"
        self.created: list[str] = []
        self.delay: DelayLine | None = None
        self.rule = False
        self._iptables = "iptables"

    @staticmethod
    def remove_stale() -> None:
        remove_stale_netns(re.escape(NS_PREFIX) + r"(\d+)-[srv]")

    def ns(self, ns: str, *cmd: str, check: bool = True, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "netns", "exec", ns, *cmd], timeout=timeout, check=check)

    def setup(self) -> None:
        self.remove_stale()
        try:
            for name in (self.sender, self.router, self.receiver):
                _run(["ip", "netns", "add", name])
                self.created.append(name)
                _run(["ip", "-n", name, "link", "set", "lo", "up"])
            # Both ends of each pair are created inside the namespaces, never in ours.
            _run(["ip", "link", "add", "s0", "netns", self.sender, "type", "veth",
                  "peer", "name", "r0", "netns", self.router])
            _run(["ip", "link", "add", "v0", "netns", self.receiver, "type", "veth",
                  "peer", "name", "r1", "netns", self.router])
            for ns, dev, addr in ((self.sender, "s0", SENDER_ADDR), (self.router, "r0", ROUTER_S_ADDR),
                                  (self.router, "r1", ROUTER_V_ADDR), (self.receiver, "v0", RECEIVER_ADDR)):
                _run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev])
                _run(["ip", "-n", ns, "link", "set", dev, "up"])
                self.ns(ns, "ethtool", "-K", dev, "gro", "off", "gso", "off", "tso", "off")
            _run(["ip", "-n", self.sender, "route", "add", "default", "via", ROUTER_S_ADDR])
            _run(["ip", "-n", self.receiver, "route", "add", "default", "via", ROUTER_V_ADDR])
            self.ns(self.router, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
        except BaseException:
            self.teardown()
            raise

    # -- impairment

    def impair(self, scn: Scenario, *, loss: bool = True) -> None:
        """The qdisc tree of the module docstring on both router devices."""
        for dev in ("r0", "r1"):
            _run(["tc", "-n", self.router, "qdisc", "del", "dev", dev, "root"], check=False)
            tc = ["tc", "-n", self.router]
            _run([*tc, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10", "r2q", "100000"])
            for cls in ("1:10", "1:20"):
                _run([*tc, "class", "add", "dev", dev, "parent", "1:", "classid", cls, "htb", "rate", "10gbit"])
            _run([*tc, "qdisc", "add", "dev", dev, "parent", "1:20", "handle", "20:", "blackhole"])
            if scn.rate_mbit:
                rate = scn.rate_mbit * MB / 8  # bytes per second
                limit = int(rate * QUEUE_MS / 1000)
                burst = max(3028, int(rate / 1000))
                _run([*tc, "qdisc", "add", "dev", dev, "parent", "1:10", "handle", "10:", "tbf",
                      "rate", f"{scn.rate_mbit:g}mbit", "burst", str(burst), "limit", str(limit)])
            else:
                _run([*tc, "qdisc", "add", "dev", dev, "parent", "1:10", "handle", "10:", "pfifo", "limit", "1000"])
        if loss:
            self.add_loss(scn.loss_pct)

    def add_loss(self, loss_pct: float) -> None:
        if loss_pct <= 0:
            return
        # ld rand (SKF_AD_RANDOM); A >= threshold: class 1:20 (the blackhole), else no match (default 1:10)
        threshold = min(0xFFFFFFFF, round((1 - loss_pct / 100) * 2**32))
        code = f"4,32 0 0 4294963256,53 0 1 {threshold},6 0 0 65568,6 0 0 0,"
        for dev in ("r0", "r1"):
            _run(["tc", "-n", self.router, "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip",
                  "bpf", "bytecode", code])

    def qdisc_counters(self) -> dict[str, int]:
        """Drops of the queue leaf (10:) and of the blackhole (20:), per direction."""
        out: dict[str, int] = {}
        for dev, direction in (("r1", "data"), ("r0", "ack")):
            r = _run(["tc", "-n", self.router, "-s", "-j", "qdisc", "show", "dev", dev], check=False)
            try:
                qdiscs = json.loads(r.stdout or "[]")
            except json.JSONDecodeError:
                continue
            for q in qdiscs:
                if q.get("handle") == "10:":
                    out[f"queue_drops_{direction}"] = int(q.get("drops", 0))
                    out[f"packets_{direction}"] = int(q.get("packets", 0))
                elif q.get("handle") == "20:":
                    out[f"loss_drops_{direction}"] = int(q.get("drops", 0))
        return out

    def start_delay(self, rtt_ms: float) -> None:
        """Half the RTT each way: every forwarded packet through the NFQUEUE delay line."""
        if shutil.which("iptables") is None:
            raise Unavailable("iptables not installed: the delay line cannot be set up")
        self.delay = DelayLine(self.router, NFQUEUE_NUM, rtt_ms / 2)
        last = ""
        for iptables in ("iptables", "iptables-legacy"):
            if shutil.which(iptables) is None:
                continue
            r = self.ns(self.router, iptables, "-w", "-A", "FORWARD", "-j", "NFQUEUE", "--queue-num",
                        str(NFQUEUE_NUM), check=False)
            if r.returncode == 0:
                self.rule = True
                self._iptables = iptables
                return
            last = (r.stderr or r.stdout).strip()
        self.stop_delay()
        raise Unavailable(f"cannot add the NFQUEUE rule: {last}")

    def stop_delay(self) -> dict[str, Any] | None:
        if self.rule:
            self.ns(self.router, self._iptables, "-w", "-F", "FORWARD", check=False)
            self.rule = False
        counters = None
        if self.delay is not None:
            counters = self.delay.stop()
            self.delay = None
        return counters

    def ping(self, count: int = 20) -> dict[str, Any] | None:
        """RTT sender -> receiver through the router (min/avg/max ms, or the
        error), or None without ping."""
        if shutil.which("ping") is None:
            return None
        r = self.ns(self.sender, "ping", "-n", "-q", "-c", str(count), "-i", "0.05", "-W", "2", RECEIVER_ADDR,
                    check=False, timeout=30)
        m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", r.stdout)
        if not m:
            return {"error": (r.stdout + r.stderr).strip()[-200:]}
        return {"min_ms": float(m.group(1)), "avg_ms": float(m.group(2)), "max_ms": float(m.group(3))}

    def teardown(self) -> None:
        try:
            self.stop_delay()
        finally:
            for name in reversed(self.created):
                _run(["ip", "netns", "del", name], check=False)
            self.created.clear()


class DelayLine:
    """benchmarks/_delayline.py in the router namespace, for one scenario."""

    def __init__(self, netns: str, queue: int, delay_ms: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "_delayline.py"), "--netns", netns, str(queue), str(delay_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()  # "ready", or EOF when it failed
        if line != "ready":
            err = self.stop_error()
            raise Unavailable(f"the NFQUEUE delay line did not start: {err or line or 'no output'}")

    def stop_error(self) -> str:
        self.kill()
        assert self.proc.stderr is not None
        return self.proc.stderr.read().strip()[-300:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> dict[str, Any] | None:
        """Close its stdin (it releases what it holds and reports), else kill it."""
        try:
            out, _ = self.proc.communicate(timeout=5)  # closes its stdin first
            return json.loads(out.strip().splitlines()[-1]) if out.strip() else None
        except (subprocess.TimeoutExpired, ValueError, OSError):
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


def net_counters(topo: Topology, ns: str) -> dict[str, int]:
    """TcpExt and Udp counters of a namespace (/proc/net/netstat and snmp there)."""
    r = topo.ns(ns, "cat", "/proc/net/netstat", "/proc/net/snmp", check=False)
    lines = r.stdout.splitlines()
    out: dict[str, int] = {}
    for head, vals in zip(lines[::2], lines[1::2]):
        prefix, _, keys = head.partition(":")
        if prefix in ("TcpExt", "Udp") and vals.startswith(prefix + ":"):
            for k, v in zip(keys.split(), vals.split()[1:]):
                if v.lstrip("-").isdigit():
                    out[f"{prefix}.{k}"] = int(v)
    return out


# -- one run -----------------------------------------------------------------------------------


def run_once(topo: Topology, scn: Scenario, stack: Stack, make_worker: Callable[[str, dict[str, Any]], Any],
             loop: str, timeout: float, rudp_options: dict[str, Any]) -> Metrics:
    """One transfer; raises on a worker error or timeout (the caller records it)."""
    deadline = time.monotonic() + timeout
    base: dict[str, Any] = {"impl": stack.impl, "loop": loop, "kind": "lossy", "deadline": timeout + 10,
                            "size": scn.size, "rudp_options": rudp_options}
    if stack.impl == "tcp":
        base["tcp_cc"] = stack.cc
    elif stack.cc != "default":
        base["rudp_cc"] = stack.cc
    workers: list[Any] = []
    q0 = topo.qdisc_counters()
    ends = {"sender": topo.sender, "receiver": topo.receiver}
    n0 = {side: net_counters(topo, ns) for side, ns in ends.items()}
    try:
        receiver = make_worker("server", {**base, "netns": topo.receiver, "host": RECEIVER_ADDR})
        workers.append(receiver)
        port = receiver.expect("ready", deadline)["port"]
        sender = make_worker("client", {**base, "netns": topo.sender, "host": RECEIVER_ADDR, "port": port})
        workers.append(sender)
        sent = sender.expect("result", deadline)
        recv = receiver.expect("result", deadline)
    finally:
        for w in reversed(workers):
            w.stop()
    q1 = topo.qdisc_counters()
    n1 = {side: net_counters(topo, ns) for side, ns in ends.items()}

    def delta(side: str, key: str) -> int | None:
        a, b = n0[side].get(key), n1[side].get(key)
        return b - a if a is not None and b is not None else None
    if topo.delay is not None and not topo.delay.alive():
        raise RuntimeError("the delay line died during the run")
    elapsed = recv["t_last"] - sent["t0"]
    m: Metrics = {
        "goodput_mb_s": recv["bytes"] / elapsed / MB if elapsed > 0 else None,
        "bytes": recv["bytes"],
        "complete": recv["bytes"] == scn.size,
        "seconds": elapsed,
        "max_stall_ms": recv["max_gap"] * 1000,
        "cpu_s": sent["cpu"] + recv["cpu"],
        "sender_cpu_s": sent["cpu"],
        "receiver_cpu_s": recv["cpu"],
        "cc": sent.get("cc"),
        "close_ok": sent.get("close_ok"),
        # datagrams the kernel dropped at a full UDP socket buffer (rudp's own losses, not the link's)
        "udp_rcvbuf_drops": {side: delta(side, "Udp.RcvbufErrors") for side in ends},
    }
    m["udp_drops"] = sum(v for v in m["udp_rcvbuf_drops"].values() if v is not None)
    for key in ("queue_drops_data", "queue_drops_ack", "loss_drops_data", "loss_drops_ack",
                "packets_data", "packets_ack"):
        if key in q0 and key in q1:
            m[key] = q1[key] - q0[key]
    if stack.impl == "tcp":
        ti = sent["tcp_info"]
        m["tcp_info"] = ti
        ns_rtos = delta("sender", "TcpExt.TCPTimeouts")
        m["netns_tcp_timeouts"] = ns_rtos
        m["rtos"] = ti.get("total_rto", ns_rtos)
        m["retransmits"] = ti.get("total_retrans")
        segs = ti.get("data_segs_out")
    else:
        st = sent["stats"]
        m["stats"] = st
        m["rtos"] = st["timeouts"]
        m["retransmits"] = st["retransmits"]
        segs = st["segments_sent"]
    m["retrans_pct"] = 100.0 * m["retransmits"] / segs if segs and m["retransmits"] is not None else None
    return m


# -- the whole benchmark -----------------------------------------------------------------------


@dataclass
class Plan:
    scenarios: list[Scenario]
    stacks: list[Stack]
    repeat: int
    loop: str
    timeout: float | None  # per run; None: each scenario's own
    rudp_options: dict[str, Any] = field(default_factory=dict)


def median(runs: list[Metrics], key: str) -> float | None:
    vals = [r[key] for r in runs if "error" not in r and isinstance(r.get(key), (int, float))
            and not isinstance(r.get(key), bool)]
    return statistics.median(vals) if vals else None


def _f(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def summary_rows(results: list[dict[str, Any]], stacks: list[Stack]) -> list[dict[str, Any]]:
    """One row per scenario and stack: medians, and rudp's ratio to each kernel anchor."""
    rows: list[dict[str, Any]] = []
    anchors = [s for s in stacks if s.impl == "tcp"]
    for res in results:
        runs_of = res["runs"]
        goodput = {s.label: median(runs_of.get(s.label, []), "goodput_mb_s") for s in stacks}
        for s in stacks:
            runs = runs_of.get(s.label, [])
            if not runs and s.label not in res.get("skipped", {}):
                continue
            drops = [r.get("loss_drops_data", 0) + r.get("loss_drops_ack", 0) for r in runs if "error" not in r]
            row: dict[str, Any] = {
                "scenario": res["scenario"]["name"],
                "key": res["scenario"]["key"],
                "stack": s.label,
                # the controller the runs reported (rudp: its class, e.g. NewReno for "default")
                "cc": statistics.mode([r["cc"] for r in runs if r.get("cc")] or [None]),
                "goodput_mb_s": goodput[s.label],
                "ratios": {},
                "rtos": median(runs, "rtos"),
                "retrans_pct": median(runs, "retrans_pct"),
                "queue_drops": median(runs, "queue_drops_data"),
                "loss_drops": statistics.median(drops) if drops else None,
                "udp_drops": median(runs, "udp_drops"),
                "max_stall_ms": median(runs, "max_stall_ms"),
                "cpu_s": median(runs, "cpu_s"),
                "runs": len(runs),
                "runs_ok": sum(1 for r in runs if "error" not in r and r.get("complete")),
                "errors": [r["error"] for r in runs if "error" in r],
            }
            if s.impl == "rudp":
                for a in anchors:
                    g, ga = goodput[s.label], goodput[a.label]
                    row["ratios"][a.cc] = g / ga if g is not None and ga else None
            rows.append(row)
    return rows


def render_markdown(rows: list[dict[str, Any]], anchors: list[str]) -> str:
    ratio_cols = [f"x {cc}" for cc in anchors]
    head = ["scenario", "stack", "goodput MB/s", *ratio_cols, "RTOs", "retrans %", "queue drops",
            "loss drops", "UDP buf drops", "max stall ms", "CPU-s", "runs ok"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        ratios = [("-" if r["ratios"].get(cc) is None else f"{r['ratios'][cc]:.2f}x") if r["ratios"] else ""
                  for cc in anchors]
        stack = r["stack"] + (f" ({r['cc']})" if r["stack"].endswith(" default") and r.get("cc") else "")
        cells = [r["scenario"], stack, _f(r["goodput_mb_s"]), *ratios, _f(r["rtos"], 1),
                 _f(r["retrans_pct"]), _f(r["queue_drops"]), _f(r["loss_drops"]),
                 _f(r["udp_drops"]) if r["stack"].startswith("rudp") else "-", _f(r["max_stall_ms"], 0),
                 _f(r["cpu_s"]), f"{r['runs_ok']}/{r['runs']}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


class _Interrupted(BaseException):
    pass


def run(plan: Plan, make_worker: Callable[[str, dict[str, Any]], Any], log: Callable[[str], None],
        notes: list[str]) -> list[dict[str, Any]]:
    """Every scenario, stacks in alternation; the topology is removed whatever happens."""
    topo = Topology()

    def on_term(signum: int, frame: Any) -> None:
        raise _Interrupted(f"signal {signum}")

    old_term = signal.signal(signal.SIGTERM, on_term)
    results: list[dict[str, Any]] = []
    try:
        topo.setup()
        base_rtt = topo.ping(10)
        if base_rtt:
            notes.append(f"unimpaired path RTT (ping): {base_rtt}")
        for scn in plan.scenarios:
            res: dict[str, Any] = {"scenario": {"name": scn.name, "key": scn.key, **asdict(scn)},
                                   "runs": {}, "skipped": {}}
            results.append(res)
            try:
                topo.impair(scn, loss=False)
                if scn.rtt_ms:
                    topo.start_delay(scn.rtt_ms)
                rtt = topo.ping()
                res["path_rtt"] = rtt
                topo.add_loss(scn.loss_pct)
            except Unavailable as exc:
                topo.stop_delay()
                res["skipped"]["all"] = str(exc)
                notes.append(f"{scn.name}: skipped: {exc}")
                log(f"[lossy {scn.key}] skipped: {exc}")
                continue
            rtt_s = f", path RTT {rtt['avg_ms']:.2f} ms" if rtt and "avg_ms" in rtt else ""
            log(f"[lossy {scn.key}] {scn.name}, {scn.size / MB:g} MB per transfer{rtt_s}")
            timeout = plan.timeout or scn.timeout()
            for rep in range(plan.repeat):
                order = plan.stacks if rep % 2 == 0 else list(reversed(plan.stacks))
                for stack in order:
                    t0 = time.monotonic()
                    try:
                        m = run_once(topo, scn, stack, make_worker, plan.loop, timeout, plan.rudp_options)
                    except (KeyboardInterrupt, _Interrupted):
                        raise
                    except Exception as exc:  # a worker error or timeout becomes an error run
                        m = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                    m["wall_s"] = round(time.monotonic() - t0, 2)
                    res["runs"].setdefault(stack.label, []).append(m)
                    if "error" in m:
                        msg = f"ERROR {m['error']}"
                    else:
                        msg = (f"{_f(m['goodput_mb_s'])} MB/s, RTOs {m['rtos']}, retrans {_f(m['retrans_pct'])}%, "
                               f"stall {m['max_stall_ms']:.0f} ms, CPU {m['cpu_s']:.2f} s")
                    log(f"[lossy {scn.key} {rep + 1}/{plan.repeat}] {stack.label:18} {msg} ({m['wall_s']:.1f} s)")
            res["delay_line"] = topo.stop_delay()
    except KeyboardInterrupt:
        log("[lossy] interrupted: removing the namespaces")
        raise
    except _Interrupted as exc:
        log(f"[lossy] {exc}: removing the namespaces")
        raise KeyboardInterrupt from None
    finally:
        topo.teardown()
        signal.signal(signal.SIGTERM, old_term)
    return results
