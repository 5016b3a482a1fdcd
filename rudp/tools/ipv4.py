"""IPv4 headers for the tools: build one with its checksum, verify, parse.

rudp itself never sees an IP header; its packet captures (`rudp.aio.capture`,
used by `rudp.tools.pcap` for the simulator) wrap segments in IP/UDP for
tshark, and `rudp.tools.tunbridge` exchanges IPv4/TCP packets with the kernel.
Building a header and the pseudo-header live with the capture writer, which
the asyncio adapter needs without reaching up into the tools; they are
re-exported here. The header checksum is RFC 1071's (RFC 791 §3.1).
A tools-layer module: it only formats bytes.
"""

from __future__ import annotations

import dataclasses

from ..aio.capture import DF, IPV4_HEADER, PROTO_UDP, pseudo_header  # noqa: F401 - re-exported
from ..aio.capture import ipv4_header as build_header
from ..core.wire import internet_checksum

HEADER = IPV4_HEADER  # no options: IHL 5
PROTO_TCP = 6

__all__ = ["DF", "HEADER", "PROTO_TCP", "PROTO_UDP", "IPv4Packet", "PacketError", "build_header",
           "header_checksum_ok", "parse_ipv4", "pseudo_header"]


def header_checksum_ok(header: bytes) -> bool:
    """True if an IPv4 header (options included) verifies: RFC 1071's checksum
    over a header holding a correct checksum field is 0."""
    return internet_checksum(header) == 0


@dataclasses.dataclass(frozen=True)
class IPv4Packet:
    src: bytes
    dst: bytes
    proto: int
    payload: bytes
    header: bytes


class PacketError(ValueError):
    """Not an IPv4 packet `parse_ipv4` accepts."""


def parse_ipv4(packet: bytes) -> IPv4Packet:
    """Validate an IPv4 header (version, lengths, checksum, no fragments)."""
    if len(packet) < HEADER.size:
        raise PacketError("short packet")
    vihl, _tos, total, _ident, frag, _ttl, proto, _csum, src, dst = HEADER.unpack_from(packet)
    if vihl >> 4 != 4:
        raise PacketError(f"IP version {vihl >> 4}")
    ihl = (vihl & 0xF) * 4
    if ihl < 20 or total < ihl or total > len(packet):
        raise PacketError(f"bad IHL {ihl} / total length {total} for {len(packet)} bytes")
    header = packet[:ihl]
    if not header_checksum_ok(header):
        raise PacketError("bad IPv4 header checksum")
    if frag & 0x3FFF:
        raise PacketError("fragment")
    return IPv4Packet(src, dst, proto, packet[ihl:total], header)
