"""Write rudp datagrams to a pcap file, wrapped in IPv4/UDP headers.

Opened with ``tshark -d udp.port==PORT,tcp`` (or Wireshark's "Decode As"),
every datagram is dissected as the TCP segment it carries, with full TCP
sequence analysis. A tools-layer module: it only formats bytes.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import BinaryIO, Hashable, Iterable

from . import ipv4

LINKTYPE_RAW = 101  # raw IPv4/IPv6, no link-layer header
_GLOBAL_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")
_UDP = struct.Struct("!HHHH")


class PcapWriter:
    """Appends IPv4/UDP packets to a classic (microsecond) pcap stream."""

    def __init__(self, stream: BinaryIO, snaplen: int = 65535) -> None:
        self._out = stream
        self._ident = 0
        stream.write(_GLOBAL_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, snaplen, LINKTYPE_RAW))

    def write(self, ts: float, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> None:
        """One UDP datagram from ``src`` to ``dst`` (IPv4 addresses) at time ``ts``."""
        self._ident = (self._ident + 1) & 0xFFFF
        udp_len = _UDP.size + len(payload)
        src_ip = ipaddress.IPv4Address(src[0]).packed
        dst_ip = ipaddress.IPv4Address(dst[0]).packed
        header = ipv4.build_header(src_ip, dst_ip, ipv4.PROTO_UDP, udp_len, self._ident)
        # UDP checksum 0: "not computed", allowed over IPv4 (RFC 768).
        packet = header + _UDP.pack(src[1], dst[1], udp_len, 0) + payload
        sec = int(ts)
        usec = int(round((ts - sec) * 1_000_000))
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        self._out.write(_RECORD_HEADER.pack(sec, usec, len(packet), len(packet)))
        self._out.write(packet)


def write_trace(
    path: str,
    trace: Iterable[tuple[float, Hashable, Hashable, bytes, str]],
    addresses: dict[Hashable, tuple[str, int]],
    *,
    outcomes: tuple[str, ...] = ("delivered",),
) -> int:
    """Save a ``rudp.tools.sim`` trace as pcap, mapping simulator addresses to IPv4
    (host, port) pairs; returns the number of packets written."""
    count = 0
    with open(path, "wb") as f:
        writer = PcapWriter(f)
        for ts, src, dst, data, outcome in trace:
            if outcome in outcomes:
                writer.write(ts, addresses[src], addresses[dst], data)
                count += 1
    return count
