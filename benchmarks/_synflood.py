"""SYN-flood benchmark: the flooders, the network namespace of the kernel
anchor, and the orchestration (benchmarks/run.py --only synflood).

Two cases, measured the same way:

* ``rudp``: a default ``rudp.start_server`` echo server on 127.0.0.1 in its
  own process. The flooder sends spoofed SYN segments (one TCP header with
  the MSS, SACK-permitted, timestamps and window-scale options of a Linux
  SYN, per UDP datagram, checksum field zero as rudp allows) from a fresh
  random source address in 127.1.0.0-127.254.255.255 for every SYN: its
  UDP sockets are bound to 0.0.0.0 and each ``sendmsg`` names its source
  address with ``IP_PKTINFO`` (Linux accepts any 127/8 source on loopback).
  Every spoofed address is therefore local and the server's answers come
  back to the flooder's sockets, which count them: the bytes sent to flood
  sources per byte received from them. (Sockets bound one per 127.x.y.z
  address send ~15% faster, but give one source per socket rather than one
  per SYN.)
* ``tcp_netns``: the Linux kernel's TCP listener (``asyncio.start_server``,
  backlog 128) in a network namespace made for the run, with
  ``tcp_syncookies=1`` and ``tcp_max_syn_backlog=128``, reached over a veth
  pair (10.200.0.1/24 here, 10.200.0.2/24 there). The flooder sends raw IPv4
  TCP SYNs (``IPPROTO_RAW``, so ``IP_HDRINCL``; TCP checksum computed) from
  random sources in 10.201.0.0/16 to 10.200.0.2 only. Inside the namespace
  10.201.0.0/16 is routed out of a second veth pair (ARP off) that goes
  nowhere: the SYN,ACKs leave the namespace there and its transmit counters
  are the bytes sent to flood sources. Namespace and links are removed when
  the case ends.

Meanwhile a client process opens legitimate connections one after another
(no flood first, then under the flood), each a handshake, a 32-byte echo and
a close, and records success and connect time. Everything the flooder sends
goes to 127.0.0.1 or to the namespace's address.

This module is imported by run.py (orchestration) and by _workers.py (the
flooders run inside a worker process); it imports neither.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import random
import re
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
CLONE_NEWNET = 0x40000000

#: The TCP options of a Linux SYN: MSS 1460, SACK-permitted, timestamps, NOP, window scale 7.
SYN_OPTS_HEAD = b"\x02\x04\x05\xb4\x04\x02\x08\x0a"  # MSS, SACK-permitted, TS kind/len
SYN_OPTS_TAIL = b"\x01\x03\x03\x07"  # NOP, WS 7 (after TSval, TSecr)
_TCP_SYN = struct.Struct(">HHIIHHHH8sII4s")  # 40 bytes: header + 20 bytes of options
SYN_SIZE = _TCP_SYN.size
_IP_TCP_SYN = struct.Struct(">BBHHHBBHII" "HHIIHHHH8sII4s")  # 20-byte IPv4 header + the above
_PKTINFO = struct.Struct("=iII")  # struct in_pktinfo: ifindex, spec_dst, addr (network order)
_DOFF_SYN = (10 << 12) | 0x002  # data offset 10 words, SYN
_WINDOW = 64240
_UDP_IP_OVERHEAD = 28  # IPv4 20 + UDP 8 around a rudp segment
_ETH_HEADER = 14

NETNS_HOST_ADDR = "10.200.0.1"
NETNS_NS_ADDR = "10.200.0.2"
NETNS_NET = ipaddress.ip_network("10.200.0.0/24")
FLOOD_SRC_NET = ipaddress.ip_network("10.201.0.0/16")
NETNS_PREFIX = "rudp-synflood-"
SINK_DEV = "sfsink0"  # in the namespace: where the SYN,ACKs to flood sources leave
SINK_PEER = "sfsink1"


def remove_stale_netns(pattern: str) -> None:
    """Delete the namespaces of earlier runs whose process is gone (a crash or
    SIGKILL): those whose whole name matches ``pattern``, group 1 the pid."""
    try:
        names = os.listdir("/run/netns")
    except OSError:
        return
    for name in names:
        m = re.fullmatch(pattern, name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10, check=False)


class Unavailable(Exception):
    """The case cannot run here (not root, no netns, no veth): skip it with this reason."""


# -- flooders (run inside a worker process) -------------------------------------------------


def flood_rudp(port: int, stop: threading.Event, *, max_seconds: float, max_count: int,
               rate: float = 0.0, tail: float = 0.0, sockets: int = 16,
               on_start: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Spoofed rudp SYNs to 127.0.0.1:``port`` until ``stop``, ``max_seconds`` or
    ``max_count``; then ``tail`` seconds more of counting the answers.
    ``rate`` > 0 paces the SYNs (per second); 0 sends as fast as it can."""
    dst = ("127.0.0.1", port)
    socks = []
    ep = select.epoll()
    by_fd: dict[int, socket.socket] = {}
    for _ in range(sockets):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        except OSError:
            pass
        s.bind(("0.0.0.0", 0))  # receives what is sent to any 127/8 address at its port
        socks.append(s)
        by_fd[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN)
    sendmsgs = [s.sendmsg for s in socks]
    mask = len(socks) - 1
    assert len(socks) & mask == 0 and len(socks) <= 256, "sockets: a power of two, at most 256"
    pack, ppack, rnd = _TCP_SYN.pack, _PKTINFO.pack, random.Random().getrandbits
    htonl = socket.htonl
    head, tail_opts = SYN_OPTS_HEAD, SYN_OPTS_TAIL
    sol_ip = socket.IPPROTO_IP
    buf = bytearray(2048)
    rx = {"datagrams": 0, "bytes": 0}
    sources: set[int] = set()
    sample_every = 64

    def drain(timeout: float = 0.0) -> None:
        for fd, _ in ep.poll(timeout):
            recv_into = by_fd[fd].recv_into
            n = c = 0
            try:
                while True:
                    n += recv_into(buf)
                    c += 1
            except (BlockingIOError, InterruptedError):
                pass
            rx["bytes"] += n
            rx["datagrams"] += c

    sent = failed = 0
    batch = 64
    t0 = time.perf_counter()
    end = t0 + max_seconds
    on_start()
    while sent < max_count and not stop.is_set():
        for _ in range(batch):
            # bits: source port 0-15, ISN 16-47, TSval 48-79, address 80-103, socket 104-111
            r = rnd(112)
            # source 127.1.0.0-127.254.255.255: never 127.0.x.x, where the real client is
            src = 0x7F000000 | (((r >> 80) & 0xFFFF) % 0xFE00 + 0x100) << 8 | (r >> 96) & 0xFF
            seg = pack((r & 0xFFFF) | 0x400, port, (r >> 16) & 0xFFFFFFFF, 0, _DOFF_SYN, _WINDOW, 0, 0,
                       head, (r >> 48) & 0xFFFFFFFF, 0, tail_opts)
            try:
                sendmsgs[(r >> 104) & mask]([seg], [(sol_ip, IP_PKTINFO, ppack(0, htonl(src), 0))], 0, dst)
                sent += 1
            except (BlockingIOError, InterruptedError):
                failed += 1
            if not sent % sample_every:
                sources.add(src)
        drain()
        now = time.perf_counter()
        if now >= end:
            break
        if rate > 0:
            ahead = sent / rate - (now - t0)
            if ahead > 0:
                time.sleep(ahead)
    t1 = time.perf_counter()
    t_tail = t1 + tail
    while time.perf_counter() < t_tail:
        drain(0.05)
    drops = sum(udp_socket_drops(s.getsockname()[1]) for s in socks)
    for s in socks:
        s.close()
    ep.close()
    return {
        "sent": sent, "send_failed": failed, "elapsed": t1 - t0,
        "rate": sent / (t1 - t0) if t1 > t0 else 0.0,
        "bytes_sent": sent * SYN_SIZE, "ip_bytes_sent": sent * (SYN_SIZE + _UDP_IP_OVERHEAD),
        "replies": rx["datagrams"], "bytes_received": rx["bytes"],
        "ip_bytes_received": rx["bytes"] + rx["datagrams"] * _UDP_IP_OVERHEAD,
        "distinct_sources_sampled": len(sources), "sample_every": sample_every,
        "flooder_socket_drops": drops, "tail_s": tail,
    }


def _fold(s: int) -> int:
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return s


def internet_checksum(data: bytes) -> int:
    """RFC 1071 (for the tests of the fast path in :func:`flood_kernel`)."""
    if len(data) % 2:
        data += b"\0"
    return ~_fold(sum(struct.unpack(f">{len(data) // 2}H", data))) & 0xFFFF


def syn_packet(src: int, dst: int, sport: int, dport: int, seq: int, tsval: int,
               base: int | None = None) -> bytes:
    """One IPv4 TCP SYN with Linux's options; ``base`` is :func:`checksum_base`'s
    precomputed constant part of the TCP checksum."""
    if base is None:
        base = checksum_base(dst, dport)
    s = base + (src >> 16) + (src & 0xFFFF) + sport + (seq >> 16) + (seq & 0xFFFF) + (tsval >> 16) + (tsval & 0xFFFF)
    csum = ~_fold(s) & 0xFFFF
    return _IP_TCP_SYN.pack(0x45, 0, 20 + SYN_SIZE, 0, 0x4000, 64, socket.IPPROTO_TCP, 0, src, dst,
                            sport, dport, seq, 0, _DOFF_SYN, _WINDOW, csum, 0, SYN_OPTS_HEAD, tsval, 0,
                            SYN_OPTS_TAIL)


def checksum_base(dst: int, dport: int) -> int:
    """The TCP checksum sum of everything in a flood SYN that does not change:
    the pseudo-header's destination, protocol and length, and the constant header
    words (the variable ones, source address, port, ISN and TSval, are added per packet)."""
    const = _TCP_SYN.pack(0, dport, 0, 0, _DOFF_SYN, _WINDOW, 0, 0, SYN_OPTS_HEAD, 0, 0, SYN_OPTS_TAIL)
    words = struct.unpack(f">{SYN_SIZE // 2}H", const)
    return (dst >> 16) + (dst & 0xFFFF) + socket.IPPROTO_TCP + SYN_SIZE + sum(words)


def flood_kernel(dst_ip: str, port: int, stop: threading.Event, *, max_seconds: float, max_count: int,
                 rate: float = 0.0, on_start: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Raw IPv4 SYNs (IP_HDRINCL) from random 10.201.0.0/16 sources to ``dst_ip``."""
    dst = int(ipaddress.IPv4Address(dst_ip))
    if ipaddress.IPv4Address(dst) not in NETNS_NET:
        raise ValueError(f"flood target {dst_ip} is outside {NETNS_NET}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # implies IP_HDRINCL
    sock.setblocking(False)
    sendto = sock.sendto
    addr = (dst_ip, 0)
    src_hi = int(FLOOD_SRC_NET.network_address)  # a /16: the low 16 bits are random
    base = checksum_base(dst, port) + (src_hi >> 16)
    pack, rnd = _IP_TCP_SYN.pack, random.Random().getrandbits
    head, tail_opts = SYN_OPTS_HEAD, SYN_OPTS_TAIL
    tcp, total = socket.IPPROTO_TCP, 20 + SYN_SIZE
    sent = failed = 0
    batch = 64
    t0 = time.perf_counter()
    end = t0 + max_seconds
    on_start()
    while sent < max_count and not stop.is_set():
        for _ in range(batch):
            r = rnd(96)
            lo = r & 0xFFFF
            sport = ((r >> 16) & 0xFFFF) | 0x400
            seq = (r >> 32) & 0xFFFFFFFF
            ts = r >> 64
            s = base + lo + sport + (seq >> 16) + (seq & 0xFFFF) + (ts >> 16) + (ts & 0xFFFF)
            s = (s & 0xFFFF) + (s >> 16)
            s = (s & 0xFFFF) + (s >> 16)
            try:
                sendto(pack(0x45, 0, total, 0, 0x4000, 64, tcp, 0, src_hi | lo, dst, sport, port, seq, 0,
                            _DOFF_SYN, _WINDOW, ~s & 0xFFFF, 0, head, ts, 0, tail_opts), addr)
                sent += 1
            except (BlockingIOError, InterruptedError):
                failed += 1
        now = time.perf_counter()
        if now >= end:
            break
        if rate > 0:
            ahead = sent / rate - (now - t0)
            if ahead > 0:
                time.sleep(ahead)
    t1 = time.perf_counter()
    sock.close()
    return {
        "sent": sent, "send_failed": failed, "elapsed": t1 - t0,
        "rate": sent / (t1 - t0) if t1 > t0 else 0.0,
        "bytes_sent": sent * SYN_SIZE, "ip_bytes_sent": sent * (20 + SYN_SIZE),
    }


# -- /proc readers -------------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def proc_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def machine_cpu() -> dict[str, float]:
    """System-wide CPU seconds from /proc/stat: busy (all but idle and iowait),
    softirq and steal (taken by the hypervisor)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return {"busy": (sum(v[:8]) - idle) / _CLK_TCK, "softirq": v[6] / _CLK_TCK, "steal": v[7] / _CLK_TCK}


def udp_socket_drops(port: int, proc_net: str = "/proc/net") -> int:
    """Datagrams the kernel dropped for the UDP sockets bound to ``port`` (full buffer)."""
    total = 0
    hexport = f":{port:04X}"
    try:
        with open(os.path.join(proc_net, "udp")) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1].endswith(hexport):
                    total += int(parts[-1])
    except OSError:
        pass
    return total


def net_counters(pid: int) -> dict[str, int]:
    """TcpExt and Tcp counters of the network namespace ``pid`` lives in."""
    out: dict[str, int] = {}
    for name in ("netstat", "snmp"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for head, vals in zip(lines[::2], lines[1::2]):
            prefix, keys = head.split(":", 1)
            _, values = vals.split(":", 1)
            if prefix in ("TcpExt", "Tcp"):
                for k, v in zip(keys.split(), values.split()):
                    try:
                        out[f"{prefix}.{k}"] = int(v)
                    except ValueError:
                        pass
    return out


def dev_counters(pid: int, dev: str) -> dict[str, int]:
    """rx/tx bytes and packets of ``dev`` in the namespace of ``pid`` (/proc/PID/net/dev)."""
    with open(f"/proc/{pid}/net/dev") as f:
        for line in f:
            name, sep, rest = line.partition(":")
            if sep and name.strip() == dev:
                v = [int(x) for x in rest.split()]
                return {"rx_bytes": v[0], "rx_packets": v[1], "tx_bytes": v[8], "tx_packets": v[9],
                        "rx_dropped": v[3], "tx_dropped": v[11]}
    raise RuntimeError(f"no device {dev} in /proc/{pid}/net/dev")


def enter_netns(name: str) -> None:
    """Move this (still single-threaded) process into the named network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


# -- the kernel anchor's namespace ---------------------------------------------------------------


class Netns:
    """A network namespace with a veth pair to this one and a sink for the flood's answers."""

    def __init__(self) -> None:
        self.name = f"{NETNS_PREFIX}{os.getpid()}"
        tag = os.getpid() % 100000
        self.host_dev = f"rsf{tag}h"
        self.ns_dev = f"rsf{tag}n"
        self.created = False

    @staticmethod
    def check() -> str | None:
        """Why the anchor cannot run here, or None."""
        if os.geteuid() != 0:
            return "not root: the kernel SYN-cookie anchor needs a network namespace and raw sockets"
        if shutil.which("ip") is None:
            return "iproute2 (ip) not found: kernel SYN-cookie anchor skipped"
        if not os.path.exists("/proc/self/ns/net"):
            return "no network namespaces in this kernel: kernel SYN-cookie anchor skipped"
        return None

    def _ip(self, *args: str, ns: bool = False) -> None:
        cmd = ["ip", *(["-n", self.name] if ns else []), *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
        if r.returncode != 0:
            raise Unavailable(f"{' '.join(cmd)}: {r.stderr.strip() or r.returncode}")

    def _sysctl(self, key: str, value: str) -> None:
        r = subprocess.run(["ip", "netns", "exec", self.name, "sysctl", "-q", "-w", f"{key}={value}"],
                           capture_output=True, text=True, timeout=10, check=False)
        if r.returncode != 0:
            # sysctl may be missing: write /proc/sys from a shell inside the namespace instead
            path = "/proc/sys/" + key.replace(".", "/")
            r = subprocess.run(["ip", "netns", "exec", self.name, "sh", "-c", f"echo {value} > {path}"],
                               capture_output=True, text=True, timeout=10, check=False)
            if r.returncode != 0:
                raise Unavailable(f"cannot set {key}={value} in {self.name}: {r.stderr.strip()}")

    @staticmethod
    def remove_stale() -> None:
        remove_stale_netns(re.escape(NETNS_PREFIX) + r"(\d+)")

    def setup(self) -> None:
        reason = self.check()
        if reason:
            raise Unavailable(reason)
        self.remove_stale()
        for net in (NETNS_NET, FLOOD_SRC_NET):  # never take over addresses in use here
            r = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, timeout=10, check=False)
            for m in re.finditer(r"inet (\S+)", r.stdout):
                if ipaddress.ip_interface(m.group(1)).network.overlaps(net):
                    raise Unavailable(f"{net} is already used here ({m.group(1)}): kernel anchor skipped")
        self._ip("netns", "add", self.name)
        self.created = True
        try:
            self._ip("link", "add", self.host_dev, "type", "veth", "peer", "name", self.ns_dev,
                     "netns", self.name)
            self._ip("addr", "add", f"{NETNS_HOST_ADDR}/24", "dev", self.host_dev)
            self._ip("link", "set", self.host_dev, "up")
            self._ip("link", "set", "lo", "up", ns=True)
            self._ip("addr", "add", f"{NETNS_NS_ADDR}/24", "dev", self.ns_dev, ns=True)
            self._ip("link", "set", self.ns_dev, "up", ns=True)
            self._ip("link", "add", SINK_DEV, "type", "veth", "peer", "name", SINK_PEER, ns=True)
            for key, value in (
                ("net.ipv4.tcp_syncookies", "1"),
                ("net.ipv4.tcp_max_syn_backlog", "128"),
                ("net.ipv4.ip_forward", "0"),  # what reaches the sink's peer goes no further
                ("net.ipv4.conf.all.rp_filter", "0"),  # flood sources route out of the sink
                ("net.ipv4.conf.default.rp_filter", "0"),
                (f"net.ipv4.conf.{self.ns_dev}.rp_filter", "0"),
            ):
                self._sysctl(key, value)
            for dev in (SINK_DEV, SINK_PEER):  # no IPv6 chatter in the sink's counters
                try:
                    self._sysctl(f"net.ipv6.conf.{dev}.disable_ipv6", "1")
                except Unavailable:
                    pass
            self._ip("link", "set", SINK_DEV, "arp", "off", ns=True)
            self._ip("link", "set", SINK_PEER, "up", ns=True)
            self._ip("link", "set", SINK_DEV, "up", ns=True)
            self._ip("route", "add", str(FLOOD_SRC_NET), "dev", SINK_DEV, ns=True)
        except BaseException:
            self.teardown()
            raise

    def teardown(self) -> None:
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10, check=False)
            self.created = False
        # Deleting the namespace deletes its end of the pair, and with it ours;
        # if a process still holds the namespace, remove ours by hand.
        if os.path.exists(f"/sys/class/net/{self.host_dev}"):
            subprocess.run(["ip", "link", "del", self.host_dev], capture_output=True, timeout=10, check=False)


# -- orchestration (run.py) ----------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


class RssSampler(threading.Thread):
    """The peak VmRSS of a process, sampled every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.peak = max(self.peak, proc_rss_bytes(self.pid))
                self.samples += 1
            except (OSError, RuntimeError):
                return
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join(1.0)
        try:
            self.peak = max(self.peak, proc_rss_bytes(self.pid))
        except (OSError, RuntimeError):
            pass
        return self.peak


def phase_summary(attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """Success and connect-time figures of a list of attempts (from the client)."""
    n = len(attempts)
    ok = [a for a in attempts if a["ok"]]
    connect_ms = [a["connect_ms"] for a in attempts if a.get("connect_ms") is not None]
    errors: dict[str, int] = {}
    for a in attempts:
        if not a["ok"]:
            errors[a["error"]] = errors.get(a["error"], 0) + 1
    return {
        "attempts": n,
        "ok": len(ok),
        "success_pct": 100.0 * len(ok) / n if n else None,
        "connect_ms_p50": percentile(connect_ms, 50),
        "connect_ms_p99": percentile(connect_ms, 99),
        "connect_ms_max": max(connect_ms) if connect_ms else None,
        "total_ms_p99": percentile([a["total_ms"] for a in ok], 99),
        "errors": errors,
    }


def measure(impl: str, params: dict[str, Any], make_worker: Callable[[str, dict[str, Any]], Any],
            deadline: float) -> dict[str, Any]:
    """One case: server (in the namespace for ``tcp_netns``), legitimate client,
    no-flood baseline, then the flood. ``make_worker(role, extra_params)``
    starts a worker process (run.Worker) and returns it."""
    ns: Netns | None = None
    workers: list[Any] = []
    if impl == "tcp_netns":
        ns = Netns()
        ns.setup()  # Unavailable: run.py marks the anchor skipped
    try:
        extra: dict[str, Any] = {"host": "127.0.0.1"}
        if ns is not None:
            extra = {"host": NETNS_NS_ADDR, "netns": ns.name}
        server = make_worker("server", extra)
        workers.append(server)
        ready = server.expect("ready", deadline)
        port, spid = ready["port"], server.proc.pid
        client = make_worker("client", {"host": extra["host"], "port": port})
        workers.append(client)
        base = client.expect("baseline", deadline)

        def mark() -> dict[str, Any]:
            server.send("mark")
            return server.expect("mark", deadline)

        stats0 = mark()
        counters0 = net_counters(spid) if ns is not None else {}
        sink0 = dev_counters(spid, SINK_DEV) if ns is not None else {}
        cpu0, rss0 = proc_cpu_seconds(spid), proc_rss_bytes(spid)
        drops0 = udp_socket_drops(port) if ns is None else 0
        mach0 = machine_cpu()
        sampler = RssSampler(spid)
        sampler.start()
        t_flood = time.monotonic()
        flooder = make_worker("flooder", {"host": extra["host"], "port": port})
        workers.append(flooder)
        flooder.expect("flooding", deadline)
        time.sleep(float(params["lead_s"]))  # the table fills and the defences engage first
        client.send("go")
        res = client.expect("result", deadline)
        flooder.send("stop")
        fl = flooder.expect("result", deadline)  # after its tail: the answers to the last SYNs
        if ns is None:
            time.sleep(0.2)
        else:
            time.sleep(float(params["tail_s"]))  # the sink counts the late SYN,ACKs meanwhile
        peak = sampler.stop()
        cpu1, rss1 = proc_cpu_seconds(spid), proc_rss_bytes(spid)
        mach1 = machine_cpu()
        load = os.getloadavg()[0]
        wall = time.monotonic() - t_flood
        drops1 = udp_socket_drops(port) if ns is None else 0
        stats1 = mark()
        counters1 = net_counters(spid) if ns is not None else {}
        sink1 = dev_counters(spid, SINK_DEV) if ns is not None else {}
    finally:
        stderr = {w.role: w.stderr_tail(40) for w in workers}  # tracebacks, warnings
        for w in reversed(workers):
            w.stop()
        if ns is not None:
            ns.teardown()

    b, f = base["summary"], res["summary"]
    m: dict[str, Any] = {
        "success_pct": f["success_pct"],
        "connect_ms_p50": f["connect_ms_p50"],
        "connect_ms_p99": f["connect_ms_p99"],
        "baseline_success_pct": b["success_pct"],
        "baseline_connect_ms_p50": b["connect_ms_p50"],
        "baseline_connect_ms_p99": b["connect_ms_p99"],
        "p99_vs_baseline": (f["connect_ms_p99"] / b["connect_ms_p99"]
                            if f["connect_ms_p99"] is not None and b["connect_ms_p99"] else None),
        # the connection made before the flood, echoing 1 KB every 20 ms
        "held_echo_ms_p50": res["held"]["ms_p50"],
        "held_echo_ms_p99": res["held"]["ms_p99"],
        "held_echo_ms_max": res["held"]["ms_max"],
        "held_echoes": res["held"]["echoes"],
        "held_failed": res["held"]["failed"],
        "baseline_held_echo_ms_p99": base["held"]["ms_p99"],
        "flood_rate": fl["rate"],
        "flood_sent": fl["sent"],
        "flood_seconds": fl["elapsed"],
        "server_cpu_s": cpu1 - cpu0,
        "server_cpu_per_wall_s": (cpu1 - cpu0) / wall if wall > 0 else None,
        "softirq_cpu_s": mach1["softirq"] - mach0["softirq"],
        "machine_busy_cpu_s": mach1["busy"] - mach0["busy"],
        "steal_cpu_s": mach1["steal"] - mach0["steal"],
        # CPU used by everything else on the machine meanwhile (other jobs; and the
        # part of the kernel's packet work that no process of ours was charged for)
        "other_cpu_s": (mach1["busy"] - mach0["busy"]) - (cpu1 - cpu0) - fl.get("cpu_s", 0.0)
                       - res.get("cpu_s", 0.0),
        "loadavg_1m": load,
        "client_cpu_s": res.get("cpu_s"),
        "flooder_cpu_s": fl.get("cpu_s"),
        "measured_wall_s": wall,
        "server_rss_before": rss0,
        "server_rss_peak": peak,
        "server_rss_after": rss1,
        "rss_growth_mb": (peak - rss0) / 1e6,
        "baseline": {k: v for k, v in base.items() if k != "event"},
        "flood": {k: v for k, v in res.items() if k != "event"},
        "flooder": {k: v for k, v in fl.items() if k != "event"},
        "server_handler_errors": stats1.get("handler_errors", []),
    }
    for role, text in stderr.items():
        if text:
            m[f"{role}_stderr"] = text[-2000:]
    # Bytes to flood sources per byte of flood that reached the server (what
    # anti-amplification is about), and per byte the flooder sent (lower when
    # the kernel dropped SYNs before the server saw them). "Reached" counts
    # the legitimate client's few SYNs or segments too (well under 1%).
    if ns is None:
        reached = stats1.get("stats", {}).get("syn_received", 0) - stats0.get("stats", {}).get("syn_received", 0)
        m["bytes_out_to_flood"] = fl["bytes_received"]
        m["ip_bytes_out_to_flood"] = fl["ip_bytes_received"]
        m["replies_to_flood"] = fl["replies"]
        m["server_socket_drops"] = drops1 - drops0
        s0, s1 = stats0.get("stats", {}), stats1.get("stats", {})
        m["server_stats_delta"] = {k: v - s0.get(k, 0) for k, v in s1.items()
                                   if isinstance(v, int) and v != s0.get(k, 0)}
        m["server_stats_after"] = s1
        overhead = _UDP_IP_OVERHEAD
    else:
        delta = {k: v - counters0.get(k, 0) for k, v in counters1.items() if v != counters0.get(k, 0)}
        pkts = sink1["tx_packets"] - sink0["tx_packets"]
        ip_out = sink1["tx_bytes"] - sink0["tx_bytes"] - _ETH_HEADER * pkts
        reached = min(fl["sent"], delta.get("Tcp.InSegs", 0))
        m["ip_bytes_out_to_flood"] = ip_out
        m["bytes_out_to_flood"] = ip_out - 20 * pkts  # TCP segments, as for rudp
        m["replies_to_flood"] = pkts
        m["server_stats_delta"] = {k: v for k, v in delta.items()
                                   if any(s in k for s in ("Syncookies", "Listen", "ReqQ", "InSegs", "OutSegs",
                                                           "InErrs", "InCsumErrors", "OutRsts", "ActiveOpens",
                                                           "PassiveOpens", "SynRetrans", "TCPTimeouts"))}
        overhead = 20
    m["syn_processed"] = reached
    m["syn_processed_pct"] = 100.0 * reached / fl["sent"] if fl["sent"] else None
    m["bytes_in_from_flood"] = reached * SYN_SIZE
    m["ip_bytes_in_from_flood"] = reached * (SYN_SIZE + overhead)
    m["bytes_sent_by_flood"] = fl["bytes_sent"]
    m["bytes_ratio"] = m["bytes_out_to_flood"] / m["bytes_in_from_flood"] if reached else None
    m["ip_bytes_ratio"] = m["ip_bytes_out_to_flood"] / m["ip_bytes_in_from_flood"] if reached else None
    m["bytes_ratio_of_sent"] = m["bytes_out_to_flood"] / fl["bytes_sent"] if fl["bytes_sent"] else None
    return m
