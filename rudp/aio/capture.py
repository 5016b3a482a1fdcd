"""Packet captures from inside: every datagram a socket sends or receives, as pcap.

A capture taken by tcpdump on the sending host (or on lo or a veth) sees a
UDP GSO batch as one large datagram holding many segments, which tshark
cannot dissect as TCP. rudp itself knows where each segment starts, so the
``pcap=`` option writes one record per segment, wrapped in the IPv4 or IPv6
and UDP headers it had (the socket's real addresses and ports, correct
lengths and checksums), timestamped with the wall clock when rudp handed it
to the socket or read it. ``tshark -r FILE -d udp.port==PORT,tcp`` then
dissects it with full TCP sequence analysis, GSO or not.

``PcapWriter`` only formats bytes (the simulator's traces use it too, through
``rudp.tools.pcap``); ``SocketCapture`` knows one socket's addresses and
owns the file. Neither is touched unless a capture was asked for.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from typing import Any, BinaryIO, Union

from ..core.wire import internet_checksum

LINKTYPE_RAW = 101  # raw IPv4/IPv6, no link-layer header
SNAPLEN = 262144  # as tcpdump's default: a whole UDP datagram always fits
_GLOBAL_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")
IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")  # no options: IHL 5
IPV6_HEADER = struct.Struct("!IHBB16s16s")
UDP_HEADER = struct.Struct("!HHHH")
DF = 0x4000  # IPv4 flags: don't fragment
PROTO_UDP = 17
TTL = 64

#: What ``pcap=`` accepts: a path (the file is created, and closed with the
#: socket) or a binary file object open for writing (flushed, left open).
Target = Union[str, "os.PathLike[str]", BinaryIO]


def ipv4_header(src: bytes, dst: bytes, proto: int, payload_len: int, ident: int = 0,
                ttl: int = TTL) -> bytes:
    """A 20-byte IPv4 header (no options, DF set) for ``payload_len`` bytes,
    with its RFC 1071 checksum (RFC 791 §3.1)."""
    header = IPV4_HEADER.pack(0x45, 0, IPV4_HEADER.size + payload_len, ident & 0xFFFF, DF, ttl,
                              proto, 0, src, dst)
    return header[:10] + internet_checksum(header).to_bytes(2, "big") + header[12:]


def pseudo_header(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    """The pseudo-header of the TCP and UDP checksums: IPv4's (RFC 768, RFC
    9293 §3.1) for 4-byte addresses, IPv6's (RFC 8200 §8.1) for 16-byte ones."""
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


def udp_packet(src: bytes, sport: int, dst: bytes, dport: int, payload: bytes | memoryview,
               ident: int = 0) -> bytes:
    """An IPv4 (4-byte addresses) or IPv6 (16-byte) packet holding one UDP
    datagram, with correct lengths and checksums. The UDP checksum is
    computed over both (mandatory over IPv6, RFC 8200 §8.1); a computed 0 is
    sent as 0xFFFF (RFC 768)."""
    udp_len = UDP_HEADER.size + len(payload)
    header = UDP_HEADER.pack(sport, dport, udp_len, 0)
    csum = internet_checksum(pseudo_header(src, dst, PROTO_UDP, udp_len) + header + payload)
    udp = UDP_HEADER.pack(sport, dport, udp_len, csum or 0xFFFF)
    if len(src) == 4:
        return ipv4_header(src, dst, PROTO_UDP, udp_len, ident) + udp + payload
    # Version 6, traffic class 0, flow label 0; payload length, next header, hop limit.
    return IPV6_HEADER.pack(6 << 28, udp_len, PROTO_UDP, TTL, src, dst) + udp + payload


def packed_ip(host: str) -> bytes:
    """The 4 or 16 bytes of a numeric address (an IPv6 ``%scope`` is dropped)."""
    return ipaddress.ip_address(host.partition("%")[0]).packed


class PcapWriter:
    """Appends IPv4/IPv6 UDP packets to a classic (microsecond, LINKTYPE_RAW) pcap stream."""

    def __init__(self, stream: BinaryIO, snaplen: int = SNAPLEN) -> None:
        self.stream = stream
        self._ident = 0
        stream.write(_GLOBAL_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, snaplen, LINKTYPE_RAW))

    def write(self, ts: float, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> None:
        """One UDP datagram from ``src`` to ``dst`` (numeric IPv4 or IPv6 hosts) at ``ts``."""
        self.write_udp(ts, packed_ip(src[0]), src[1], packed_ip(dst[0]), dst[1], payload)

    def write_udp(self, ts: float, src: bytes, sport: int, dst: bytes, dport: int,
                  payload: bytes) -> None:
        """As ``write``, the addresses already packed (both 4 or both 16 bytes)."""
        self.stream.write(self.record(ts, src, sport, dst, dport, payload))

    def record(self, ts: float, src: bytes, sport: int, dst: bytes, dport: int,
               payload: bytes | memoryview) -> bytes:
        """The bytes ``write_udp`` would append: a record header and the packet."""
        self._ident = ident = (self._ident + 1) & 0xFFFF
        packet = udp_packet(src, sport, dst, dport, payload, ident)
        sec = int(ts)
        usec = int(round((ts - sec) * 1_000_000))
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        return _RECORD_HEADER.pack(sec, usec, len(packet), len(packet)) + packet


class SocketCapture:
    """The capture of one UDP socket: who each datagram went to or came from.

    A socket bound to a wildcard address (a server on 0.0.0.0 or ::) does
    not know which of its addresses a datagram used; the capture asks the
    kernel which source address it would pick for that peer (a connected
    UDP socket's name, once per peer), the address the replies leave from.
    IPv4 peers of a dual-stack IPv6 socket (::ffff:a.b.c.d) are written as
    IPv4 packets.

    A file the capture opens itself is unbuffered and each batch of
    datagrams is one ``write``: the file always ends on a whole record, and
    can be read while the socket lives (as ``tcpdump -U``).
    """

    _CACHE_LIMIT = 4096  # peers whose addresses are kept packed

    def __init__(self, target: Target, sock: socket.socket) -> None:
        if isinstance(target, (str, os.PathLike)):
            self._file: BinaryIO = open(target, "wb", buffering=0)  # noqa: SIM115 - close()
            self._own = True
        elif callable(getattr(target, "write", None)):
            self._file = target
            self._own = False
        else:
            raise TypeError(f"pcap must be a path or a binary file object, not {type(target).__name__}")
        self._family = sock.family
        name = sock.getsockname()
        self._local_host: str = name[0]
        self._local_port: int = name[1]
        self._wildcard = ipaddress.ip_address(self._local_host.partition("%")[0]).is_unspecified
        # peer address -> (local IP, peer IP) packed, for both directions.
        self._peers: dict[Any, tuple[bytes, bytes]] = {}
        self.writer = PcapWriter(self._file)
        self.closed = False

    def _addresses(self, peer: Any) -> tuple[bytes, bytes]:
        key = (peer[0], peer[1])
        found = self._peers.get(key)
        if found is not None:
            return found
        if len(self._peers) >= self._CACHE_LIMIT:
            self._peers.clear()
        peer_ip = ipaddress.ip_address(peer[0].partition("%")[0])
        local_host = self._local_host
        if peer_ip.version == 6 and peer_ip.ipv4_mapped is not None:
            peer_ip = peer_ip.ipv4_mapped
            mapped = ipaddress.ip_address(local_host.partition("%")[0])
            if mapped.version == 6 and mapped.ipv4_mapped is not None:
                local_host = str(mapped.ipv4_mapped)
        if self._wildcard or peer_ip.version == 4 and ":" in local_host:
            local_host = self._route_source(peer_ip, peer)
        local = packed_ip(local_host)
        if len(local) != len(peer_ip.packed):
            local = bytes(len(peer_ip.packed))  # unknown: 0.0.0.0 or ::
        found = self._peers[key] = (local, peer_ip.packed)
        return found

    @staticmethod
    def _route_source(peer_ip: ipaddress.IPv4Address | ipaddress.IPv6Address, peer: Any) -> str:
        """The source address the kernel picks towards ``peer`` (no datagram is sent)."""
        family = socket.AF_INET if peer_ip.version == 4 else socket.AF_INET6
        probe = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET:
                probe.connect((str(peer_ip), peer[1]))
            else:  # the scope of a link-local peer, when its address has one
                probe.connect((peer[0], peer[1], 0, peer[3] if len(peer) >= 4 else 0))
            return str(probe.getsockname()[0])
        except OSError:
            return "0.0.0.0" if family == socket.AF_INET else "::"
        finally:
            probe.close()

    def sent(self, datagrams: list[tuple[bytes, Any]], ts: float) -> None:
        """Datagrams that left this socket, each one segment, at ``ts``."""
        record = self.writer.record
        port = self._local_port
        records = []
        for data, addr in datagrams:
            local, peer = self._addresses(addr)
            records.append(record(ts, local, port, peer, addr[1], data))
        self._file.write(b"".join(records))

    def received(self, datagrams: list[tuple[bytes | memoryview, Any]], ts: float) -> None:
        """Datagrams read from this socket at ``ts`` (views are written out
        before the receive buffer is reused)."""
        record = self.writer.record
        port = self._local_port
        records = []
        for data, addr in datagrams:
            local, peer = self._addresses(addr)
            records.append(record(ts, peer, addr[1], local, port, data))
        self._file.write(b"".join(records))

    def close(self) -> None:
        """Flush; close the file if the capture opened it."""
        if self.closed:
            return
        self.closed = True
        if self._own:
            self._file.close()
        else:
            self._file.flush()
