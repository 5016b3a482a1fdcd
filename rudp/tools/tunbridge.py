"""A TUN bridge that makes the Linux kernel's own TCP a live rudp peer.

The bridge owns a TUN device (``IFF_TUN | IFF_NO_PI``) and a UDP socket::

    kernel TCP socket  <->  TUN (IPv4 + TCP)  <->  bridge  <->  UDP (one segment per datagram)  <->  rudp

The kernel sees a point-to-point /30: its own address ``local_ip`` (say
10.77.0.1) on the TUN and a fake peer ``remote_ip`` (10.77.0.2) behind it.
Every rudp connection appears to the kernel as a TCP connection with
``remote_ip``; the TCP ports are carried through unchanged.

Kernel -> rudp: an IPv4 packet with protocol 6 read from the TUN has its IP
header stripped; the TCP checksum (RFC 9293 §3.1, with the IPv4 pseudo-header)
is verified and replaced by rudp's wire contract checksum (RFC 1071 over TCP
header and payload, no pseudo-header; or zero when ``checksum=False``), and
the segment goes out as one UDP datagram.

rudp -> kernel: a datagram's rudp checksum, if nonzero, is verified; the
segment gets a pseudo-header checksum and an IPv4 header (src ``remote_ip``,
dst ``local_ip``) and is written to the TUN.

Addresses: the rudp side's TCP port identifies the rudp peer.  A datagram from
UDP address A whose TCP source port is P teaches the bridge "port P of the
fake peer is A"; `route` adds such entries by hand (for a rudp listener the
kernel connects to), and ``default_peer`` catches the rest.

A tools-layer module: it uses only the public functions of `rudp.core.wire` and
`rudp.tools.ipv4`.
Linux only; needs CAP_NET_ADMIN (usually: root in a network namespace).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import random
import socket
import struct
import time
from collections import Counter
from typing import Any, Callable

from ..core.wire import FIN, RST, SYN, DecodeError, Segment, decode, internet_checksum
from . import ipv4
from .ipv4 import PacketError, parse_ipv4

# <linux/if_tun.h>, <linux/sockios.h>, <linux/if.h>
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C
SIOCSIFMTU = 0x8922
IFF_UP = 0x1
IFNAMSIZ = 16

IPPROTO_TCP = ipv4.PROTO_TCP
_TCP_CSUM_OFFSET = 16
_TCP_MIN = 20

# --- packet helpers (pure functions, no privileges needed) -------------------


def tcp_checksum_ipv4(src: bytes, dst: bytes, segment: bytes) -> int:
    """The kernel-facing TCP checksum of `segment` (its checksum field zero)."""
    return internet_checksum(ipv4.pseudo_header(src, dst, IPPROTO_TCP, len(segment)) + segment)


def tcp_checksum_ipv4_ok(src: bytes, dst: bytes, segment: bytes) -> bool:
    """True if `segment`'s checksum field verifies with the IPv4 pseudo-header."""
    # Over data that includes a correct checksum the one's-complement sum is
    # 0xFFFF, so RFC 1071's checksum of the whole is 0 (the data is never all zero).
    return tcp_checksum_ipv4(src, dst, segment) == 0


def with_checksum(segment: bytes, value: int) -> bytes:
    """`segment` with its TCP checksum field set to `value`."""
    return segment[:_TCP_CSUM_OFFSET] + value.to_bytes(2, "big") + segment[_TCP_CSUM_OFFSET + 2 :]


def rudp_checksummed(segment: bytes, enabled: bool = True) -> bytes:
    """Apply rudp's wire contract checksum: RFC 1071 over header and payload with
    no pseudo-header; a computed 0 goes out as 0xFFFF (0 means "none"), as
    `rudp.core.wire.encode` does.  ``enabled=False`` zeroes the field."""
    bare = with_checksum(segment, 0)
    if not enabled:
        return bare
    return with_checksum(bare, internet_checksum(bare) or 0xFFFF)


def rudp_checksum_ok(segment: bytes) -> bool:
    """rudp's receive rule: a zero field is accepted unverified."""
    if segment[_TCP_CSUM_OFFSET : _TCP_CSUM_OFFSET + 2] == b"\0\0":
        return True
    return internet_checksum(segment) == 0


def build_ipv4_tcp(src: bytes, dst: bytes, segment: bytes, ident: int = 0, ttl: int = 64) -> bytes:
    """IPv4 header (no options, DF) + `segment` with a correct pseudo-header checksum."""
    tcp = with_checksum(segment, 0)
    tcp = with_checksum(tcp, tcp_checksum_ipv4(src, dst, tcp))
    return ipv4.build_header(src, dst, IPPROTO_TCP, len(tcp), ident, ttl) + tcp


# --- TUN device --------------------------------------------------------------


def open_tun(name: str) -> tuple[int, str]:
    """Open /dev/net/tun as an IFF_TUN | IFF_NO_PI device; returns (fd, name)."""
    import fcntl  # Unix only; the packet helpers above work anywhere

    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        ifr = struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI)
        res = fcntl.ioctl(fd, TUNSETIFF, ifr)
    except BaseException:
        os.close(fd)
        raise
    return fd, res[:IFNAMSIZ].rstrip(b"\0").decode()


def _sockaddr_in(ip: str) -> bytes:
    return struct.pack("<H", socket.AF_INET) + b"\0\0" + socket.inet_aton(ip) + b"\0" * 8


def configure_interface(name: str, ip: str, prefix: int, mtu: int) -> None:
    """Address, netmask, MTU and IFF_UP, by ioctl (what `ip addr/link` would do)."""
    import fcntl

    ifname = name.encode().ljust(IFNAMSIZ, b"\0")
    netmask = str(ipaddress.IPv4Network(f"0.0.0.0/{prefix}").netmask)
    try:  # no IPv6 chatter (router solicitations) on the TUN
        with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as f:
            f.write("1")
    except OSError:
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, SIOCSIFADDR, ifname + _sockaddr_in(ip))
        fcntl.ioctl(s, SIOCSIFNETMASK, ifname + _sockaddr_in(netmask))
        fcntl.ioctl(s, SIOCSIFMTU, ifname + struct.pack("i", mtu) + b"\0" * 20)
        flags = struct.unpack_from("H", fcntl.ioctl(s, SIOCGIFFLAGS, ifname + b"\0" * 24), IFNAMSIZ)[0]
        fcntl.ioctl(s, SIOCSIFFLAGS, ifname + struct.pack("H", flags | IFF_UP) + b"\0" * 22)


# --- the bridge ----------------------------------------------------------------

# Defaults of TunBridge and of its command line.
DEFAULT_IFNAME = "rtun%d"
DEFAULT_LOCAL_IP = "10.77.0.1"  # the kernel's address on the TUN
DEFAULT_REMOTE_IP = "10.77.0.2"  # the fake peer: where rudp peers appear
DEFAULT_PREFIX = 30
DEFAULT_MTU = 1500
DEFAULT_UDP_HOST = "127.0.0.1"

TO_RUDP = "to_rudp"  # kernel -> rudp
TO_KERNEL = "to_kernel"  # rudp -> kernel


@dataclasses.dataclass(frozen=True)
class Record:
    """One control segment (SYN, FIN or RST) seen by the bridge."""

    direction: str
    time: float
    segment: Segment | None  # None if rudp.core.wire.decode rejected it
    raw: bytes
    error: str | None = None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, bridge: TunBridge) -> None:
        self.bridge = bridge

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.bridge._from_rudp(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        self.bridge.counters["udp_error"] += 1


class TunBridge:
    """Kernel TCP on a TUN device <-> rudp segments over UDP.

    ``loss`` drops that fraction of segments in each direction (from a
    generator seeded with ``seed``); SYNs are spared unless ``drop_syn``, so
    that a test is not left waiting for a 1-second SYN retransmission.
    ``checksum`` selects rudp's checksum mode on the UDP side.  ``drop_if``,
    if given, is asked ``drop_if(direction, segment)`` for every segment (TCP
    header and payload) and drops it when it answers True: scripted losses.
    """

    def __init__(
        self,
        *,
        ifname: str = DEFAULT_IFNAME,
        local_ip: str = DEFAULT_LOCAL_IP,
        remote_ip: str = DEFAULT_REMOTE_IP,
        prefix: int = DEFAULT_PREFIX,
        mtu: int = DEFAULT_MTU,
        udp_host: str = DEFAULT_UDP_HOST,
        udp_port: int = 0,
        default_peer: tuple[str, int] | None = None,
        checksum: bool = True,
        loss: float = 0.0,
        loss_to_rudp: float | None = None,
        loss_to_kernel: float | None = None,
        drop_syn: bool = False,
        seed: int = 0,
        record_all: bool = False,
        drop_if: Callable[[str, bytes], bool] | None = None,
    ) -> None:
        self.ifname = ifname
        self.local_ip = local_ip
        self.remote_ip = remote_ip
        self.prefix = prefix
        self.mtu = mtu
        self.udp_host = udp_host
        self.udp_port = udp_port
        self.default_peer = default_peer
        self.checksum = checksum
        self.loss = {
            TO_RUDP: loss if loss_to_rudp is None else loss_to_rudp,
            TO_KERNEL: loss if loss_to_kernel is None else loss_to_kernel,
        }
        self.drop_syn = drop_syn
        self.rng = random.Random(seed)
        self.record_all = record_all
        self.drop_if = drop_if
        self.counters: Counter[str] = Counter()
        self.records: list[Record] = []
        self.routes: dict[int, tuple[str, int]] = {}  # rudp-side TCP port -> UDP address
        self._local = socket.inet_aton(local_ip)
        self._remote = socket.inet_aton(remote_ip)
        self._ident = 0
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._t0 = time.monotonic()

    # -- lifecycle

    @property
    def max_mss(self) -> int:
        """The largest MSS that fits the TUN's MTU: MTU - IPv4 20 - TCP 20."""
        return self.mtu - 40

    @property
    def udp_address(self) -> tuple[str, int]:
        assert self._udp is not None, "bridge not started"
        addr = self._udp.get_extra_info("sockname")
        return (addr[0], addr[1])

    async def start(self) -> TunBridge:
        loop = asyncio.get_running_loop()
        self._loop = loop
        fd, self.ifname = open_tun(self.ifname)
        self._fd = fd
        try:
            configure_interface(self.ifname, self.local_ip, self.prefix, self.mtu)
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.udp_host, self.udp_port)
            )
            sock = self._udp.get_extra_info("socket")
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
            loop.add_reader(fd, self._on_tun)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._fd is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._fd)
            os.close(self._fd)  # the device goes away with its last fd
            self._fd = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    async def __aenter__(self) -> TunBridge:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def route(self, port: int, udp_addr: tuple[str, int]) -> None:
        """Kernel segments to TCP port `port` of the fake peer go to `udp_addr`."""
        self.routes[port] = udp_addr

    # -- helpers

    def _drop(self, direction: str, segment: bytes) -> bool:
        if self.drop_if is not None and self.drop_if(direction, segment):
            self.counters[f"{direction}_dropped"] += 1
            return True
        p = self.loss[direction]
        if not p:
            return False
        if segment[13] & SYN and not self.drop_syn:
            return False
        if self.rng.random() < p:
            self.counters[f"{direction}_lost"] += 1
            return True
        return False

    def _inspect(self, direction: str, segment: bytes) -> None:
        """Decode with rudp.core.wire (count what it rejects); record control segments."""
        try:
            seg: Segment | None = decode(segment, verify_checksum=False)
            error = None
        except DecodeError as exc:
            seg, error = None, str(exc)
            self.counters[f"{direction}_decode_error"] += 1
        if self.record_all or error is not None or segment[13] & (SYN | FIN | RST):
            self.records.append(Record(direction, time.monotonic() - self._t0, seg, segment, error))

    # -- kernel -> rudp

    def _on_tun(self) -> None:
        fd = self._fd
        if fd is None:
            return
        for _ in range(256):
            try:
                packet = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                self.counters["tun_read_error"] += 1
                return
            self._from_kernel(packet)

    def _from_kernel(self, packet: bytes) -> None:
        c = self.counters
        c["tun_packets"] += 1
        if len(packet) > self.mtu:
            c["to_rudp_oversize"] += 1  # would mean TSO/GSO leaked through
        try:
            ip = parse_ipv4(packet)
        except PacketError:
            c["tun_not_ipv4"] += 1
            return
        if ip.proto != IPPROTO_TCP:
            c["tun_not_tcp"] += 1
            return
        if ip.src != self._local or ip.dst != self._remote:
            c["tun_foreign_address"] += 1
            return
        segment = ip.payload
        if len(segment) < _TCP_MIN:
            c["to_rudp_short"] += 1
            return
        if not tcp_checksum_ipv4_ok(ip.src, ip.dst, segment):
            c["to_rudp_bad_kernel_checksum"] += 1
            return
        self._inspect(TO_RUDP, segment)
        rudp_port = int.from_bytes(segment[2:4], "big")
        addr = self.routes.get(rudp_port, self.default_peer)
        if addr is None:
            c["to_rudp_no_route"] += 1
            return
        if self._drop(TO_RUDP, segment):
            return
        assert self._udp is not None
        self._udp.sendto(rudp_checksummed(segment, self.checksum), addr)
        c["to_rudp"] += 1

    # -- rudp -> kernel

    def _from_rudp(self, data: bytes, addr: tuple[str, int]) -> None:
        c = self.counters
        c["udp_datagrams"] += 1
        if len(data) < _TCP_MIN:
            c["to_kernel_short"] += 1
            return
        if not rudp_checksum_ok(data):
            c["to_kernel_bad_rudp_checksum"] += 1
            return
        if len(data) + ipv4.HEADER.size > self.mtu:
            c["to_kernel_oversize"] += 1  # rudp's segment does not fit the TUN's MTU
        self._inspect(TO_KERNEL, data)
        self.routes[int.from_bytes(data[0:2], "big")] = addr
        if self._drop(TO_KERNEL, data):
            return
        self._ident += 1
        packet = build_ipv4_tcp(self._remote, self._local, data, self._ident)
        assert self._fd is not None
        try:
            os.write(self._fd, packet)
        except OSError:
            c["tun_write_error"] += 1
            return
        c["to_kernel"] += 1


# --- command line: run a bridge on its own ---------------------------------------


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return (host or DEFAULT_UDP_HOST, int(port))


def main(argv: list[str] | None = None) -> None:
    """``python -m rudp.tools.tunbridge --route 8000=127.0.0.1:8000``: bridge until Ctrl-C.

    Kernel sockets then reach rudp listeners at ``REMOTE_IP:PORT``, and rudp
    clients reach kernel listeners on ``LOCAL_IP`` by connecting to the bridge's
    UDP address with ``remote_port=`` the listener's port.
    """
    import argparse
    import signal

    p = argparse.ArgumentParser(prog="python -m rudp.tools.tunbridge", description=main.__doc__)
    p.add_argument("--ifname", default=DEFAULT_IFNAME)
    p.add_argument("--local-ip", default=DEFAULT_LOCAL_IP, help="the kernel's address on the TUN")
    p.add_argument("--remote-ip", default=DEFAULT_REMOTE_IP, help="the address rudp peers appear at")
    p.add_argument("--prefix", type=int, default=DEFAULT_PREFIX)
    p.add_argument("--mtu", type=int, default=DEFAULT_MTU)
    p.add_argument("--udp", type=_hostport, default=(DEFAULT_UDP_HOST, 0), metavar="HOST:PORT")
    p.add_argument("--route", action="append", default=[], metavar="PORT=HOST:PORT",
                   help="kernel segments to REMOTE_IP:PORT go to this rudp UDP address")
    p.add_argument("--default-peer", type=_hostport, metavar="HOST:PORT")
    p.add_argument("--no-checksum", action="store_true", help="rudp side runs with checksum=False")
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    async def run() -> None:
        bridge = TunBridge(
            ifname=args.ifname, local_ip=args.local_ip, remote_ip=args.remote_ip, prefix=args.prefix,
            mtu=args.mtu, udp_host=args.udp[0], udp_port=args.udp[1], default_peer=args.default_peer,
            checksum=not args.no_checksum, loss=args.loss, seed=args.seed,
        )
        for spec in args.route:
            port, _, addr = spec.partition("=")
            bridge.route(int(port), _hostport(addr))
        await bridge.start()
        print(f"{bridge.ifname}: kernel {bridge.local_ip}, rudp peers at {bridge.remote_ip}; "
              f"UDP {bridge.udp_address[0]}:{bridge.udp_address[1]}", flush=True)
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.cancel)
        try:
            await stop
        except asyncio.CancelledError:
            pass
        finally:
            bridge.close()
            print(dict(bridge.counters), flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    main()
