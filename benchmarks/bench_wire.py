"""Microbenchmark of rudp.core.wire: microseconds per call for a 1400-byte segment.

Run: python benchmarks/bench_wire.py
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from rudp.core.wire import ACK, SYN, Segment, decode, decode_construct, encode

PAYLOAD = bytes(range(256)) * 5 + bytes(120)  # 1400 bytes
DATA = Segment(40000, 8080, 123456789, 987654321, ACK, 65535, PAYLOAD, ts=(1_000_000, 999_000))
CASES = {
    "data, TS": DATA,
    "data, no options": DATA._replace(ts=None),
    "ACK, TS + 3 SACK": DATA._replace(payload=b"", sack=((1, 2), (3, 4), (5, 6))),
    "SYN, all options": Segment(40000, 8080, 1, 0, SYN, 65535, mss=1400, wscale=7, sack_permitted=True, ts=(1, 0)),
}


def per_call_us(fn: Callable[[], object], number: int) -> float:
    """Best of 5 runs, in microseconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    print(f"{'segment':18} {'operation':28} {'us/call':>8}")
    for name, seg in CASES.items():
        with_sum, without_sum = encode(seg, True), encode(seg, False)
        rows: list[tuple[str, Callable[[], object], int]] = [
            ("encode, checksum", lambda: encode(seg, True), 20_000),
            ("encode, no checksum", lambda: encode(seg, False), 20_000),
            ("decode, verify", lambda: decode(with_sum, True), 20_000),
            ("decode, field 0", lambda: decode(without_sum, True), 20_000),
            ("decode_construct, verify", lambda: decode_construct(with_sum, True), 500),
            ("decode_construct, field 0", lambda: decode_construct(without_sum, True), 500),
        ]
        for op, fn, number in rows:
            print(f"{name:18} {op:28} {per_call_us(fn, number):8.2f}")


if __name__ == "__main__":
    main()
