"""IPv4 headers for the tools: build one with its checksum, verify, parse.

rudp itself never sees an IP header; `rudp.tools.pcap` wraps segments in
IPv4/UDP for tshark and `rudp.tools.tunbridge` exchanges IPv4/TCP packets with
the kernel.
The header checksum is RFC 1071's, `rudp.core.wire.checksum` (RFC 791 §3.1).
A tools-layer module: it only formats bytes.
"""

from __future__ import annotations

import dataclasses
import struct

from ..core.wire import internet_checksum

HEADER = struct.Struct("!BBHHHBBH4s4s")  # no options: IHL 5
DF = 0x4000  # flags: don't fragment
PROTO_TCP = 6
PROTO_UDP = 17


def build_header(src: bytes, dst: bytes, proto: int, payload_len: int, ident: int = 0, ttl: int = 64) -> bytes:
    """A 20-byte IPv4 header (no options, DF set) for `payload_len` bytes, with its checksum."""
    header = HEADER.pack(0x45, 0, HEADER.size + payload_len, ident & 0xFFFF, DF, ttl, proto, 0, src, dst)
    return header[:10] + internet_checksum(header).to_bytes(2, "big") + header[12:]


def header_checksum_ok(header: bytes) -> bool:
    """True if an IPv4 header (options included) verifies: RFC 1071's checksum
    over a header holding a correct checksum field is 0."""
    return internet_checksum(header) == 0


def pseudo_header(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    """The IPv4 pseudo-header of the TCP and UDP checksums (RFC 9293 §3.1, RFC 768)."""
    return src + dst + struct.pack("!BBH", 0, proto, length)


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
