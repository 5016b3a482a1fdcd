"""Write rudp datagrams to a pcap file, wrapped in IPv4 or IPv6 and UDP headers.

Opened with ``tshark -d udp.port==PORT,tcp`` (or Wireshark's "Decode As"),
every datagram is dissected as the TCP segment it carries, with full TCP
sequence analysis. The writer itself lives in ``rudp.aio.capture``, where the
asyncio adapter's in-process captures (``pcap=``) use it; here it saves the
simulator's traces. A tools-layer module: it only formats bytes.
"""

from __future__ import annotations

from typing import Hashable, Iterable

from ..aio.capture import LINKTYPE_RAW, PcapWriter

__all__ = ["LINKTYPE_RAW", "PcapWriter", "write_trace"]


def write_trace(
    path: str,
    trace: Iterable[tuple[float, Hashable, Hashable, bytes, str]],
    addresses: dict[Hashable, tuple[str, int]],
    *,
    outcomes: tuple[str, ...] = ("delivered",),
) -> int:
    """Save a ``rudp.tools.sim`` trace as pcap, mapping simulator addresses to
    numeric IPv4 or IPv6 (host, port) pairs; returns the number of packets written."""
    count = 0
    with open(path, "wb") as f:
        writer = PcapWriter(f)
        for ts, src, dst, data, outcome in trace:
            if outcome in outcomes:
                writer.write(ts, addresses[src], addresses[dst], data)
                count += 1
    return count
