#!/usr/bin/env python3
"""Coverage-guided fuzzing of ``rudp.core.wire.decode`` (atheris/libFuzzer).

The input is one datagram, as it would arrive on the UDP socket. For both
``verify_checksum`` settings the invariants are:

1. ``decode`` raises nothing but ``wire.DecodeError`` (``ChecksumError`` is a
   subclass); ``ChecksumError`` only with verification on and a nonzero
   checksum field.
2. ``decode_construct`` (the construct reference parser) reaches the same
   outcome: an equal ``Segment``, or a ``DecodeError`` of the same type
   (what tests/test_wire.py asserts with hypothesis).
3. Verification only adds failures: a datagram that decodes verified decodes
   unverified to the same segment; one that decodes with a nonzero checksum
   field verified has an RFC 1071 sum of zero.
4. A decoded segment is what the bytes say: ports, seq, ack, flags, window
   and urgent pointer equal the header's, the payload is everything after
   data offset * 4 bytes.
5. Round trip: ``encode(seg, checksum=False)`` raises ``ValueError`` only when
   the options ``encode`` lays out canonically (MSS; NOP WS; NOP NOP
   SACK-permitted; NOP NOP TS; NOP NOP SACK) need more than 40 bytes (a peer
   may pack them tighter, without the NOPs); otherwise ``decode`` of the
   encoding gives an equal ``Segment`` (byte equality with the input does
   not hold: option order, NOP/EOL padding, unknown options, repeated
   options and reserved bits are not preserved), the encoding is a fixed
   point (encode(decode(e)) == e), and ``encode(seg)`` with the checksum
   verifies.

Run: ``.venv/bin/python fuzz/fuzz_decode.py fuzz/work/decode fuzz/corpus/decode``
(see fuzz/README.md). ``test_one_input`` also runs without atheris.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # fuzz the working tree's rudp

wire: Any = None  # rudp.core.wire, imported by _load() (under instrumentation when fuzzing)


def _load() -> None:
    global wire
    if wire is None:
        from rudp.core import wire as w

        wire = w


def canonical_options_len(seg: Any) -> int:
    """Bytes of options ``encode`` lays out for ``seg`` (see wire._encode_options)."""
    return int(
        4 * (seg.mss is not None)
        + 4 * (seg.wscale is not None)
        + 4 * bool(seg.sack_permitted and seg.ts is None)  # packed beside TS otherwise
        + 12 * (seg.ts is not None)
        + wire.sack_option_len(len(seg.sack))
    )


def outcome(dec: Any, data: bytes, verify: bool) -> Any:
    """The segment, or the type of the DecodeError raised; anything else propagates."""
    try:
        return dec(data, verify)
    except wire.DecodeError as e:
        return type(e)


def check_fields(data: bytes, seg: Any) -> None:
    """Invariant 4: the fields are the header's bytes."""
    assert type(seg) is wire.Segment, type(seg)
    assert type(seg.payload) is bytes, type(seg.payload)
    hlen = (data[12] >> 4) * 4
    assert wire.HEADER_LEN <= hlen <= len(data), (hlen, len(data))
    assert seg.src_port == int.from_bytes(data[0:2], "big")
    assert seg.dst_port == int.from_bytes(data[2:4], "big")
    assert seg.seq == int.from_bytes(data[4:8], "big")
    assert seg.ack == int.from_bytes(data[8:12], "big")
    assert seg.flags == data[13]
    assert seg.window == int.from_bytes(data[14:16], "big")
    assert seg.urgent == int.from_bytes(data[18:20], "big")
    assert seg.payload == data[hlen:]
    assert seg.mss is None or 0 <= seg.mss <= 0xFFFF
    assert seg.wscale is None or 0 <= seg.wscale <= 0xFF
    assert len(seg.sack) <= wire.MAX_SACK_BLOCKS
    assert all(0 <= e <= 0xFFFFFFFF for block in seg.sack for e in block)
    assert seg.ts is None or (len(seg.ts) == 2 and all(0 <= v <= 0xFFFFFFFF for v in seg.ts))


def check_round_trip(seg: Any) -> None:
    """Invariant 5."""
    try:
        enc = wire.encode(seg, checksum=False)
    except ValueError:
        assert canonical_options_len(seg) > wire.MAX_OPTIONS_LEN, seg
        return
    assert canonical_options_len(seg) <= wire.MAX_OPTIONS_LEN, seg
    assert len(enc) == wire.HEADER_LEN + canonical_options_len(seg) + len(seg.payload)
    again = wire.decode(enc)
    assert again == seg, (again, seg)
    assert wire.decode_construct(enc) == seg
    assert wire.encode(again, checksum=False) == enc  # canonical: a fixed point
    summed = wire.encode(seg, checksum=True)
    assert summed[16:18] != b"\0\0" and wire.internet_checksum(summed) == 0
    assert wire.decode(summed, True) == seg


def test_one_input(data: bytes) -> None:
    _load()
    results = {}
    for verify in (True, False):
        fast = outcome(wire.decode, data, verify)
        ref = outcome(wire.decode_construct, data, verify)
        assert fast == ref, f"decode and decode_construct disagree (verify={verify}): {fast!r} != {ref!r}"
        results[verify] = fast
    verified, unverified = results[True], results[False]
    csum = int.from_bytes(data[16:18], "big") if len(data) >= wire.HEADER_LEN else 0
    assert unverified is not wire.ChecksumError
    if verified is wire.ChecksumError:
        assert csum != 0
        assert wire.internet_checksum(data) != 0
    elif isinstance(verified, type):
        assert verified is wire.DecodeError and unverified is wire.DecodeError
    else:
        assert verified == unverified
        if csum:
            assert wire.internet_checksum(data) == 0
    if not isinstance(unverified, type):
        check_fields(data, unverified)
        check_round_trip(unverified)
    check_data_ts(data, verified)


def check_data_ts(data: bytes, seg: object) -> None:
    """The run path's header reading (wire.parse_data_ts, parse_data_ts_run)
    takes only segments that decode to data with ACK (maybe PSH), the
    timestamp option alone and no checksum, and reads the same fields."""
    fields = wire.parse_data_ts(data)
    run = wire.parse_data_ts_run(data, len(data), 1)
    assert run == ([] if fields is None else [fields])
    if fields is None:
        return
    assert isinstance(seg, wire.Segment), f"parse_data_ts took what decode refuses: {seg!r}"
    assert (fields[0], fields[1], fields[2], fields[3], fields[5]) == \
        (seg.src_port, seg.dst_port, seg.seq, seg.ack, seg.window)
    assert seg.flags & ~wire.PSH == wire.ACK and seg.ts == (fields[9], fields[10])
    assert not seg.sack and seg.mss is None and seg.wscale is None and not seg.sack_permitted
    assert seg.payload == data[wire.DATA_TS_OFFSET :] and seg.payload


def main() -> None:
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

    with atheris.instrument_imports(include=["rudp"]):
        _load()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
