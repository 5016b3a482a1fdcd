"""Wire format: the TCP header (RFC 9293 §3.1) carried one per UDP datagram.

The construct declarations below are the single definition of the format.
`decode_construct` parses with construct alone and is the reference.  The hot
path (`decode`, `encode`) packs and unpacks the fixed header with a
`struct.Struct` whose format and bit layout are derived from `TCP_HEADER` at
import time, and walks options with a small loop; hypothesis tests prove it
agrees with the reference on every input.

Checksum: RFC 1071 one's-complement sum over header and payload, with no IP
pseudo-header (NATs rewrite the UDP packet's addresses and ports).  A zero
checksum field means "not checksummed"; a computed zero is sent as 0xFFFF.
"""

from __future__ import annotations

import functools
import struct
from typing import Any, NamedTuple

from construct import (
    BitsInteger,
    BitStruct,
    Bytes,
    Check,
    Construct,
    ConstructError,
    FixedSized,
    Flag,
    FocusedSeq,
    FormatField,
    GreedyBytes,
    GreedyRange,
    Int8ub,
    Int16ub,
    Int32ub,
    OneOf,
    Pass,
    Struct,
    Switch,
    Terminated,
    Transformed,
    this,
)
from construct.lib import bytes2bits

# Flag bits, RFC 9293 §3.1 (CWR/ECE from RFC 3168).
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

# Option kinds: RFC 9293 §3.1 (EOL, NOP, MSS), RFC 7323 (window scale,
# timestamps), RFC 2018 (SACK-permitted, SACK).
OPT_EOL = 0
OPT_NOP = 1
OPT_MSS = 2
OPT_WSCALE = 3
OPT_SACK_PERMITTED = 4
OPT_SACK = 5
OPT_TIMESTAMPS = 8

MAX_OPTIONS_LEN = 40
MAX_SACK_BLOCKS = 4
#: Bytes the timestamps option takes as `encode` lays it out: NOP NOP TS(10).
TS_OPTION_LEN = 12


def sack_option_len(blocks: int) -> int:
    """Bytes a SACK option with ``blocks`` blocks takes as `encode` lays it
    out (NOP NOP SACK(2 + 8n)); 0 for none."""
    return 4 + 8 * blocks if blocks else 0

#: Valid length bytes (they count kind and length) of the known options.
OPTION_LENGTHS: dict[int, frozenset[int]] = {
    OPT_MSS: frozenset({4}),
    OPT_WSCALE: frozenset({3}),
    OPT_SACK_PERMITTED: frozenset({2}),
    OPT_SACK: frozenset(2 + 8 * n for n in range(1, MAX_SACK_BLOCKS + 1)),
    OPT_TIMESTAMPS: frozenset({10}),
}


class DecodeError(ValueError):
    """The one exception decode() raises for bytes that are not a valid segment."""


class ChecksumError(DecodeError):
    """The segment's RFC 1071 checksum does not verify."""


class Segment(NamedTuple):
    """One TCP segment, immutable. Options are decoded into fields."""

    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int  # raw 16-bit field (unscaled)
    payload: bytes = b""
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack: tuple[tuple[int, int], ...] = ()
    ts: tuple[int, int] | None = None  # (TSval, TSecr)
    urgent: int = 0

    @property
    def seg_len(self) -> int:
        """Sequence space the segment occupies (RFC 9293 §3.4: SYN and FIN count one)."""
        return len(self.payload) + (self.flags & SYN) // SYN + (self.flags & FIN)


# --- construct declarations -------------------------------------------------

#: The fixed header, RFC 9293 §3.1 Figure 1 (CWR and ECE from RFC 3168 §23.2).
TCP_HEADER = Struct(
    "src_port" / Int16ub,
    "dst_port" / Int16ub,
    "seq" / Int32ub,
    "ack" / Int32ub,
    "control" / BitStruct(
        "data_offset" / BitsInteger(4),
        "reserved" / BitsInteger(4),
        "cwr" / Flag,
        "ece" / Flag,
        "urg" / Flag,
        "ack" / Flag,
        "psh" / Flag,
        "rst" / Flag,
        "syn" / Flag,
        "fin" / Flag,
    ),
    "window" / Int16ub,
    "checksum" / Int16ub,
    "urgent" / Int16ub,
)

HEADER_LEN: int = TCP_HEADER.sizeof()


def _known(kind: int, *fields: Any) -> Struct:
    """Body of a known option: its length byte, validated, then its fields."""
    return Struct("length" / OneOf(Int8ub, OPTION_LENGTHS[kind]), *fields)


#: One option, RFC 9293 §3.1 "Options": a kind byte, then (except EOL and NOP)
#: a length byte and data.  EOL ends the list; what follows it is padding.
TCP_OPTION = Struct(
    "kind" / Int8ub,
    "body" / Switch(
        this.kind,
        {
            OPT_EOL: Struct("padding" / GreedyBytes),
            OPT_NOP: Pass,
            OPT_MSS: _known(OPT_MSS, "mss" / Int16ub),
            OPT_WSCALE: _known(OPT_WSCALE, "shift" / Int8ub),
            OPT_SACK_PERMITTED: _known(OPT_SACK_PERMITTED),
            OPT_SACK: _known(
                OPT_SACK,
                "blocks" / Struct("left" / Int32ub, "right" / Int32ub)[(this.length - 2) // 8],
            ),
            OPT_TIMESTAMPS: _known(OPT_TIMESTAMPS, "tsval" / Int32ub, "tsecr" / Int32ub),
        },
        default=Struct("length" / Int8ub, Check(this.length >= 2), "data" / Bytes(this.length - 2)),
    ),
)

#: The options area: options that fill it exactly.  A malformed option stops
#: the greedy range short of the end, so `Terminated` rejects the whole area.
TCP_OPTIONS = FocusedSeq("options", "options" / GreedyRange(TCP_OPTION), Terminated)

#: A whole segment: header, options (data offset counts 32-bit words), payload.
TCP_SEGMENT = Struct(
    "header" / TCP_HEADER,
    Check(this.header.control.data_offset * 4 >= HEADER_LEN),
    "options" / FixedSized(this.header.control.data_offset * 4 - HEADER_LEN, TCP_OPTIONS),
    "payload" / GreedyBytes,
)

_FLAG_BY_NAME = {
    "cwr": CWR, "ece": ECE, "urg": URG, "ack": ACK,
    "psh": PSH, "rst": RST, "syn": SYN, "fin": FIN,
}  # fmt: skip


# --- struct derived from the declaration -----------------------------------

_UNSIGNED_CODE = {1: "B", 2: "H", 4: "I", 8: "Q"}


class BitField(NamedTuple):
    """Position of a bit field inside its packed unsigned integer (bit 0 = LSB)."""

    shift: int
    width: int


def derive_struct(con: Struct) -> tuple[struct.Struct, tuple[str, ...], dict[str, BitField]]:
    """Derive a big-endian `struct.Struct`, field names and bit layout of a flat Struct.

    Each named big-endian `FormatField` keeps its format code; each `BitStruct`
    of N bytes becomes one unsigned N-byte code, its subfields laid out MSB first.
    """
    codes: list[str] = []
    names: list[str] = []
    bits: dict[str, BitField] = {}
    for named in con.subcons:
        field: Construct = named.subcon
        if isinstance(field, FormatField) and field.fmtstr[0] == ">":
            codes.append(field.fmtstr[1:])
        elif isinstance(field, Transformed) and field.decodefunc is bytes2bits:
            size = field.sizeof()
            codes.append(_UNSIGNED_CODE[size])
            shift = 8 * size
            for sub in field.subcon.subcons:
                width = sub.sizeof()  # inside Bitwise, sizes count bits
                shift -= width
                bits[sub.name] = BitField(shift, width)
        else:
            raise TypeError(f"no struct code for field {named.name!r}: {field!r}")
        names.append(named.name)
    return struct.Struct(">" + "".join(codes)), tuple(names), bits


HEADER_STRUCT, HEADER_FIELDS, CONTROL_BITS = derive_struct(TCP_HEADER)


def _flags_field(bits: dict[str, BitField]) -> BitField:
    """The flag bits as one field; they must sit where the flag constants say."""
    low = bits["fin"].shift
    for name, mask in _FLAG_BY_NAME.items():
        if bits[name] != BitField(low + mask.bit_length() - 1, 1):
            raise TypeError(f"flag {name!r} is not at bit {mask.bit_length() - 1} of the flags field")
    return BitField(low, len(_FLAG_BY_NAME))


_DOFF_SHIFT, _DOFF_WIDTH = CONTROL_BITS["data_offset"]
_DOFF_MASK = (1 << _DOFF_WIDTH) - 1
_FLAGS_SHIFT, _FLAGS_WIDTH = _flags_field(CONTROL_BITS)
_FLAGS_MASK = (1 << _FLAGS_WIDTH) - 1
_MIN_DOFF = HEADER_LEN // 4

#: ``Segment(*fields)`` without NamedTuple's Python-level ``__new__``: for
#: the per-segment paths, which pass all 13 fields in order.
segment_of = functools.partial(tuple.__new__, Segment)

# Options as `encode` lays them out.  NOP NOP TS (RFC 7323 Appendix A) is also
# the layout `decode` recognises by a bytes compare.
_TS_PREFIX = bytes((OPT_NOP, OPT_NOP, OPT_TIMESTAMPS, 10))
_TS_OPT = struct.Struct(">4sII")
_MSS_OPT = struct.Struct(">BBH")
_SACK_PERMITTED_OPT = bytes((OPT_NOP, OPT_NOP, OPT_SACK_PERMITTED, 2))
# SACK-permitted packed with timestamps, as Linux lays out its SYNs: 12 bytes, not 16.
_SACK_PERMITTED_TS_OPT = struct.Struct(">BBBBII")
_4B = struct.Struct(">4B")
_U16 = struct.Struct(">H")
_2U32 = struct.Struct(">II")
_SACK_EDGES = {length: struct.Struct(f">{(length - 2) // 4}I") for length in OPTION_LENGTHS[OPT_SACK]}

# The header as every segment after the handshake carries it when timestamps
# are on (NOP NOP TS), unpacked in one call on `decode`'s fast path.
_HEADER_TS = struct.Struct(HEADER_STRUCT.format + "III")
_HEADER_TS_LEN = _HEADER_TS.size
_TS_WORD = int.from_bytes(_TS_PREFIX, "big")
_DOFF_BITS = _DOFF_MASK << _DOFF_SHIFT
_TS_DOFF_BITS = (_HEADER_TS_LEN // 4) << _DOFF_SHIFT

#: ``parse_data_ts``: the control field's data offset and flags (reserved
#: bits aside) of a timestamped segment with ACK and maybe PSH, nothing else.
_DATA_TS_CONTROL_MASK = _DOFF_BITS | (_FLAGS_MASK & ~PSH) << _FLAGS_SHIFT
_DATA_TS_CONTROL = _TS_DOFF_BITS | ACK << _FLAGS_SHIFT
#: Where the payload of the segments ``parse_data_ts`` takes begins.
DATA_TS_OFFSET = _HEADER_TS_LEN


def _data_ts_at(buf: bytes | bytearray | memoryview,
                offset: int) -> tuple[int, int, int, int, int, int, int, int, int, int, int] | None:
    """The `_HEADER_TS` fields of the segment at ``offset`` in ``buf`` if it
    is the kind ``parse_data_ts`` takes (its length aside), else None."""
    fields = _HEADER_TS.unpack_from(buf, offset)
    if fields[8] != _TS_WORD or fields[4] & _DATA_TS_CONTROL_MASK != _DATA_TS_CONTROL or fields[6]:
        return None
    return fields


def parse_data_ts(data: bytes | memoryview) -> tuple[int, int, int, int, int, int, int, int, int, int, int] | None:
    """The header of the segment bulk data arrives in, unpacked without a
    `Segment`: ACK (and maybe PSH) and no other flag, the timestamp option
    alone (NOP NOP TS), no checksum, and data (its payload starts at
    ``DATA_TS_OFFSET``). The fields are `_HEADER_TS`'s, as `decode` reads
    them: (src, dst, seq, ack, control, window, checksum, urgent, TS word,
    tsval, tsecr); None for any other segment, which `decode` then takes."""
    if len(data) <= _HEADER_TS_LEN:
        return None
    return _data_ts_at(data, 0)


def parse_data_ts_run(buf: bytes | bytearray | memoryview, size: int,
                      count: int) -> list[tuple[int, int, int, int, int, int, int, int, int, int, int]]:
    """``parse_data_ts`` for each of ``count`` segments of ``size`` bytes back
    to back in ``buf`` (a GRO read), up to the first it refuses."""
    out: list[tuple[int, int, int, int, int, int, int, int, int, int, int]] = []
    if size <= _HEADER_TS_LEN:
        return out
    for offset in range(0, size * count, size):
        fields = _data_ts_at(buf, offset)
        if fields is None:
            break
        out.append(fields)
    return out


# The two 40-byte SYN layouts that make up nearly every SYN (and every SYN of
# a flood that copies a real stack), recognised by byte compares so that a SYN
# costs a struct unpack rather than an option walk: Linux's (MSS, SACK-permitted
# TS, NOP WS) and ours as `encode` lays it out (MSS, NOP WS, SACK-permitted TS).
_SYN_HLEN = HEADER_LEN + 20
_MSS_KIND = bytes((OPT_MSS, 4))
_SACK_PERMITTED_TS_KINDS = bytes((OPT_SACK_PERMITTED, 2, OPT_TIMESTAMPS, 10))
_NOP_WSCALE_KIND = bytes((OPT_NOP, OPT_WSCALE, 3))
_SYN_LINUX_OPTS = struct.Struct(">2sH4sII3sB")
_SYN_OURS_OPTS = struct.Struct(">2sH3sB4sII")
_SYN_OURS = struct.Struct(HEADER_STRUCT.format + _SYN_OURS_OPTS.format[1:])
_SYN_LINUX = struct.Struct(HEADER_STRUCT.format + _SYN_LINUX_OPTS.format[1:])
_SYN_DOFF_BITS = (_SYN_HLEN // 4) << _DOFF_SHIFT
_PLAIN_SYN_CONTROL = _SYN_DOFF_BITS | 0x02 << _FLAGS_SHIFT  # SYN alone, reserved bits 0


# --- checksum ----------------------------------------------------------------


def _residue(data: bytes | bytearray | memoryview) -> int:
    """Sum of the 16-bit big-endian words of `data`, mod 0xFFFF (as 2**16 ≡ 1).

    An odd last byte is padded on the right with zeros (RFC 9293 §3.1, Checksum).
    """
    r = int.from_bytes(data, "big") % 0xFFFF
    return (r << 8) % 0xFFFF if len(data) & 1 else r


def internet_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum: complement of the one's-complement word sum.

    The end-around-carry sum S is congruent to the word sum mod 0xFFFF and is 0
    only when every word is 0, so a zero residue means S = 0xFFFF (checksum 0)
    unless `data` is all zeros (S = 0, checksum 0xFFFF).
    """
    r = _residue(data)
    if r:
        return 0xFFFF - r
    return 0 if any(data) else 0xFFFF


def _verifies(data: bytes | memoryview) -> bool:
    """RFC 1071 §1(3): the sum over data holding a nonzero checksum field is 0xFFFF.

    An odd length needs no padding here: 256 is invertible mod 0xFFFF.
    """
    return int.from_bytes(data, "big") % 0xFFFF == 0


# --- decode -----------------------------------------------------------------

_Options = tuple[int | None, int | None, bool, tuple[tuple[int, int], ...], tuple[int, int] | None]


def _option_fields(options: list[Any]) -> _Options:
    """Map construct-parsed options to (mss, wscale, sack_permitted, sack, ts).

    A repeated option overrides the earlier one; unknown kinds are ignored.
    """
    mss = wscale = ts = None
    sack_permitted = False
    sack: tuple[tuple[int, int], ...] = ()
    for opt in options:
        kind, body = opt.kind, opt.body
        if kind == OPT_MSS:
            mss = body.mss
        elif kind == OPT_WSCALE:
            wscale = body.shift
        elif kind == OPT_SACK_PERMITTED:
            sack_permitted = True
        elif kind == OPT_SACK:
            sack = tuple((block.left, block.right) for block in body.blocks)
        elif kind == OPT_TIMESTAMPS:
            ts = (body.tsval, body.tsecr)
    return mss, wscale, sack_permitted, sack, ts


def _parse_options(data: bytes | memoryview, end: int) -> _Options:
    """Walk the options area ``data[HEADER_LEN:end]`` as `TCP_OPTIONS` declares it.

    A few microseconds where construct takes ~150, so no option layout a peer
    sends is a CPU-cost lever; `decode_construct` is the reference it matches.
    """
    mss = wscale = ts = None
    sack_permitted = False
    sack: tuple[tuple[int, int], ...] = ()
    i = HEADER_LEN
    while i < end:
        kind = data[i]
        if kind == OPT_EOL:
            break
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 == end:
            raise DecodeError(f"option kind {kind} at offset {i} has no length byte")
        length = data[i + 1]
        if length < 2 or i + length > end:
            raise DecodeError(f"option kind {kind} at offset {i}: length {length} not in 2..{end - i}")
        valid = OPTION_LENGTHS.get(kind)
        if valid is not None and length not in valid:
            raise DecodeError(f"option kind {kind} at offset {i}: wrong length {length}")
        if kind == OPT_MSS:
            mss = _U16.unpack_from(data, i + 2)[0]
        elif kind == OPT_WSCALE:
            wscale = data[i + 2]
        elif kind == OPT_SACK_PERMITTED:
            sack_permitted = True
        elif kind == OPT_SACK:
            edges = _SACK_EDGES[length].unpack_from(data, i + 2)
            sack = tuple(zip(edges[::2], edges[1::2]))
        elif kind == OPT_TIMESTAMPS:
            ts = _2U32.unpack_from(data, i + 2)
        i += length
    return mss, wscale, sack_permitted, sack, ts


def _syn_options(data: bytes | memoryview) -> tuple[int, int, int, int] | None:
    """(mss, wscale, tsval, tsecr) if the 20-byte options area is one of the two
    usual SYN layouts (MSS, SACK-permitted, timestamps, window scale), else None."""
    _, mss, kinds, tsval, tsecr, nop_ws, wscale = _SYN_LINUX_OPTS.unpack_from(data, HEADER_LEN)
    if kinds == _SACK_PERMITTED_TS_KINDS and nop_ws == _NOP_WSCALE_KIND:
        return mss, wscale, tsval, tsecr
    _, mss, nop_ws, wscale, kinds, tsval, tsecr = _SYN_OURS_OPTS.unpack_from(data, HEADER_LEN)
    if kinds == _SACK_PERMITTED_TS_KINDS and nop_ws == _NOP_WSCALE_KIND:
        return mss, wscale, tsval, tsecr
    return None


def parse_plain_syn(data: bytes | memoryview) -> tuple[int, int, int, int, int, int] | None:
    """(src_port, dst_port, seq, mss, wscale, tsval) of a 40-byte SYN with no
    other flag, no checksum, no payload and the options of one of the two usual
    SYN layouts (MSS, SACK-permitted, timestamps with TSecr 0, window scale);
    None for anything else, which `decode` then handles in full. The SYN-flood
    path: `decode` would give the same values (a test pins it)."""
    if len(data) != _SYN_HLEN:
        return None
    src, dst, seq, ack, control, _, csum, _, mss_kind, mss, kinds, tsval, tsecr, nop_ws, wscale = \
        _SYN_LINUX.unpack(data)
    if control != _PLAIN_SYN_CONTROL or csum or mss_kind != _MSS_KIND:
        return None
    if kinds != _SACK_PERMITTED_TS_KINDS or nop_ws != _NOP_WSCALE_KIND:
        _, _, _, _, _, _, _, _, _, _, nop_ws, wscale, kinds, tsval, tsecr = _SYN_OURS.unpack(data)
        if kinds != _SACK_PERMITTED_TS_KINDS or nop_ws != _NOP_WSCALE_KIND:
            return None
    return None if tsecr else (src, dst, seq, mss, wscale, tsval)


def encode_syn_ack(src: int, dst: int, seq: int, ack: int, window: int, mss: int, wscale: int,
                   ts: tuple[int, int]) -> bytes:
    """A SYN,ACK with MSS, window scale, SACK-permitted and timestamps and no
    checksum: what `encode` makes of that segment (the SYN-cookie flood path)."""
    try:
        return _SYN_OURS.pack(src, dst, seq, ack, _SYN_DOFF_BITS | (SYN | ACK) << _FLAGS_SHIFT, window,
                              0, 0, _MSS_KIND, mss, _NOP_WSCALE_KIND, wscale,
                              _SACK_PERMITTED_TS_KINDS, *ts)
    except struct.error as e:
        raise ValueError(f"segment field out of range: {e}") from None


def decode(data: bytes | memoryview, verify_checksum: bool = True) -> Segment:
    """Decode one segment (RFC 9293 §3.1); raise `DecodeError` for anything invalid.

    The checksum is checked first, so a corrupted segment is a `ChecksumError`
    rather than a malformed one; a zero checksum field is accepted unverified.
    Then data offset and options are validated.  Reserved bits are ignored.

    ``data`` may be a memoryview into a receive buffer that is reused once
    the caller returns (rudp.aio.udpio): the payload is always bytes of its
    own, copied here once (for bytes, the slice is that copy), so nothing
    the engine keeps refers to the buffer.
    """
    n = len(data)
    if n >= _HEADER_TS_LEN:
        src, dst, seq, ack, control, window, csum, urgent, word, tsval, tsecr = _HEADER_TS.unpack_from(data)
        if word == _TS_WORD and control & _DOFF_BITS == _TS_DOFF_BITS and not (csum and verify_checksum):
            # The common segment: the general path below would return the same.
            payload = data[_HEADER_TS_LEN:]
            return segment_of((src, dst, seq, ack, control >> _FLAGS_SHIFT & _FLAGS_MASK, window,
                               payload if type(payload) is bytes else bytes(payload), None, None, False,
                               (), (tsval, tsecr), urgent))
    if n < HEADER_LEN:
        raise DecodeError(f"segment of {n} bytes is shorter than the {HEADER_LEN}-byte header")
    src, dst, seq, ack, control, window, csum, urgent = HEADER_STRUCT.unpack_from(data)
    if verify_checksum and csum and not _verifies(data):
        raise ChecksumError(f"checksum {csum:#06x} does not verify")
    doff = control >> _DOFF_SHIFT & _DOFF_MASK
    flags = control >> _FLAGS_SHIFT & _FLAGS_MASK
    if doff == _MIN_DOFF:
        return segment_of((src, dst, seq, ack, flags, window, bytes(data[HEADER_LEN:]), None, None, False, (), None,
                           urgent))
    if doff < _MIN_DOFF:
        raise DecodeError(f"data offset {doff} is below the minimum {_MIN_DOFF}")
    hlen = doff * 4
    if hlen > n:
        raise DecodeError(f"data offset {doff} ({hlen} bytes) exceeds the segment's {n} bytes")
    if hlen == HEADER_LEN + _TS_OPT.size and data[HEADER_LEN : HEADER_LEN + 4] == _TS_PREFIX:
        ts = _2U32.unpack_from(data, HEADER_LEN + 4)
        return segment_of((src, dst, seq, ack, flags, window, bytes(data[hlen:]), None, None, False, (), ts, urgent))
    if hlen == _SYN_HLEN and data[HEADER_LEN : HEADER_LEN + 2] == _MSS_KIND:
        syn = _syn_options(data)
        if syn is not None:
            mss, wscale, tsval, tsecr = syn
            return segment_of((src, dst, seq, ack, flags, window, bytes(data[hlen:]), mss, wscale, True, (),
                               (tsval, tsecr), urgent))
    options = _parse_options(data, hlen)
    return segment_of((src, dst, seq, ack, flags, window, bytes(data[hlen:]), *options, urgent))


def decode_construct(data: bytes, verify_checksum: bool = True) -> Segment:
    """Reference decoder: header and options parsed by construct alone.

    Same contract and checks, in the same order, as `decode`; ~100x slower.
    """
    try:
        header = TCP_HEADER.parse(data)
    except ConstructError as e:
        raise DecodeError(f"truncated header: {e}") from None
    if verify_checksum and header.checksum and internet_checksum(data) != 0:
        raise ChecksumError(f"checksum {header.checksum:#06x} does not verify")
    try:
        seg = TCP_SEGMENT.parse(data)
    except ConstructError as e:
        raise DecodeError(f"malformed segment: {e}") from None
    control = seg.header.control
    flags = sum(mask for name, mask in _FLAG_BY_NAME.items() if control[name])
    return Segment(
        header.src_port,
        header.dst_port,
        header.seq,
        header.ack,
        flags,
        header.window,
        seg.payload,
        *_option_fields(seg.options),
        header.urgent,
    )


# --- encode -----------------------------------------------------------------


def _encode_options(
    mss: int | None,
    wscale: int | None,
    sack_permitted: bool,
    sack: tuple[tuple[int, int], ...],
    ts: tuple[int, int] | None,
) -> bytes:
    """Options in canonical order, each NOP-aligned to 32 bits (RFC 7323 Appendix A).

    MSS; NOP WS; NOP NOP SACK-permitted; NOP NOP TS; NOP NOP SACK, except that
    SACK-permitted and TS together are packed as Linux sends them (SACK-permitted
    TS, 12 bytes), so our SYN,ACK is no larger than a Linux SYN. Every piece is a
    multiple of 4 bytes, so the area never needs EOL padding.
    """
    parts: list[bytes] = []
    if mss is not None:
        parts.append(_MSS_OPT.pack(OPT_MSS, 4, mss))
    if wscale is not None:
        parts.append(_4B.pack(OPT_NOP, OPT_WSCALE, 3, wscale))
    if sack_permitted and ts is not None:
        parts.append(_SACK_PERMITTED_TS_OPT.pack(OPT_SACK_PERMITTED, 2, OPT_TIMESTAMPS, 10, *ts))
    elif sack_permitted:
        parts.append(_SACK_PERMITTED_OPT)
    elif ts is not None:
        parts.append(_TS_OPT.pack(_TS_PREFIX, *ts))
    if sack:
        parts.append(_4B.pack(OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(sack)))
        parts.extend(_2U32.pack(left, right) for left, right in sack)
    return b"".join(parts)


def encode(seg: Segment, checksum: bool = True) -> bytes:
    """Serialize `seg` (RFC 9293 §3.1); raise `ValueError` if a field does not fit.

    With `checksum` the RFC 1071 checksum is computed (a computed 0 is sent as
    its one's-complement equivalent 0xFFFF); without it the field is 0.
    """
    src, dst, seq, ack, flags, window, payload, mss, wscale, sack_permitted, sack, ts, urgent = seg
    if not 0 <= flags <= _FLAGS_MASK:
        raise ValueError(f"flags {flags:#x} do not fit in {_FLAGS_WIDTH} bits")
    try:
        if wscale is not None and sack_permitted and ts is not None and mss is not None and not sack \
                and not checksum:
            # A SYN or SYN,ACK with every option (the handshake, and each SYN
            # cookie under a flood): one pack, in `_encode_options`' layout.
            return _SYN_OURS.pack(src, dst, seq, ack, _SYN_DOFF_BITS | flags << _FLAGS_SHIFT, window,
                                  0, urgent, _MSS_KIND, mss, _NOP_WSCALE_KIND, wscale,
                                  _SACK_PERMITTED_TS_KINDS, *ts) + payload
        if mss is None and wscale is None and not sack_permitted and not sack:
            if not checksum:
                # Every segment after the handshake that carries no SACK
                # blocks: one pack, the layout below gives the same bytes.
                if ts is None:
                    return HEADER_STRUCT.pack(src, dst, seq, ack, _MIN_DOFF << _DOFF_SHIFT | flags << _FLAGS_SHIFT,
                                              window, 0, urgent) + payload
                return _HEADER_TS.pack(src, dst, seq, ack, _TS_DOFF_BITS | flags << _FLAGS_SHIFT, window, 0,
                                       urgent, _TS_WORD, *ts) + payload
            options = b"" if ts is None else _TS_OPT.pack(_TS_PREFIX, *ts)
        else:
            options = _encode_options(mss, wscale, sack_permitted, sack, ts)
        if len(options) > MAX_OPTIONS_LEN:
            raise ValueError(f"options need {len(options)} bytes, more than {MAX_OPTIONS_LEN}")
        control = (HEADER_LEN + len(options)) // 4 << _DOFF_SHIFT | flags << _FLAGS_SHIFT
        header = HEADER_STRUCT.pack(src, dst, seq, ack, control, window, 0, urgent) + options
        if checksum:
            # The header is 32-bit aligned, so its words and the payload's add up.
            csum = 0xFFFF - (_residue(header) + _residue(payload)) % 0xFFFF
            header = HEADER_STRUCT.pack(src, dst, seq, ack, control, window, csum, urgent) + options
    except struct.error as e:
        raise ValueError(f"segment field out of range: {e}") from None
    return header + payload


# --- runs of full-sized segments from a template ----------------------------

_SEQ_FIELD = struct.Struct(">I")  # the sequence number, 4 bytes into the header
_SEQ_OFFSET = 4
_CSUM_OFFSET = 16  # the checksum field's offset in the header


class SegmentRun:
    """``count`` encoded segments of ``size`` bytes each, back to back in
    ``buf``, all for one peer: what `HeaderTemplate.run` builds. The asyncio
    adapter hands ``buf`` to the socket as UDP GSO sends (segment size
    ``size``) or slices it per segment; no bytes object per segment exists
    on the way. ``index`` is where the run goes among the connection's other
    segments of the same flush (that many of them leave before it).

    The other way, a GRO read of equal-sized datagrams from one address is
    handed to `Endpoint.datagrams_received` as a run too, ``buf`` then a
    view of the receive buffer (valid during that call only)."""

    __slots__ = ("buf", "size", "count", "index")

    def __init__(self, buf: bytearray | memoryview, size: int, count: int, index: int = 0) -> None:
        self.buf = buf
        self.size = size
        self.count = count
        self.index = index

    def __repr__(self) -> str:
        return f"<SegmentRun {self.count} x {self.size} bytes>"

    def datagrams(self) -> list[bytes]:
        """Each segment as its own bytes: for the simulator, captures, tests."""
        size = self.size
        view = memoryview(self.buf)
        try:
            return [bytes(view[i : i + size]) for i in range(0, size * self.count, size)]
        finally:
            view.release()


class HeaderTemplate:
    """The header of one connection's full-sized data segments, stamped
    rather than encoded (issue 13: the bulk path does less per segment).

    Ports, data offset, flags and the option layout (none, or NOP NOP TS as
    `encode` lays it out) are fixed here once; per run the ACK, window and
    timestamps are packed once into a header that every segment's slot of the
    buffer starts as a copy of; per segment only the sequence number (and, if
    on, the checksum) is written, beside one copy of its payload. `encode`
    gives byte-identical segments (tests/test_wire.py pins it); segments with
    SACK blocks or other options are not covered and take `encode`."""

    __slots__ = ("src_port", "dst_port", "checksum", "_control", "_control_ts")

    def __init__(self, src_port: int, dst_port: int, checksum: bool, flags: int = ACK) -> None:
        if not 0 <= flags <= _FLAGS_MASK:
            raise ValueError(f"flags {flags:#x} do not fit in {_FLAGS_WIDTH} bits")
        self.src_port = src_port
        self.dst_port = dst_port
        self.checksum = checksum
        self._control = _MIN_DOFF << _DOFF_SHIFT | flags << _FLAGS_SHIFT
        self._control_ts = _TS_DOFF_BITS | flags << _FLAGS_SHIFT

    def run(self, data: bytearray | bytes, off: int, seq: int, count: int, mss: int, ack: int,
            window: int, ts: tuple[int, int] | None) -> SegmentRun:
        """``count`` segments of ``mss`` payload bytes each, taken from
        ``data[off:]`` in order, the first at sequence number ``seq``; raise
        `ValueError` if a field does not fit, as `encode` does."""
        try:
            if ts is None:
                header = HEADER_STRUCT.pack(self.src_port, self.dst_port, seq, ack, self._control,
                                            window, 0, 0)
            else:
                header = _HEADER_TS.pack(self.src_port, self.dst_port, seq, ack, self._control_ts,
                                         window, 0, 0, _TS_WORD, *ts)
        except struct.error as e:
            raise ValueError(f"segment field out of range: {e}") from None
        if count <= 0 or mss <= 0 or off < 0 or off + count * mss > len(data):
            raise ValueError(f"{count} segments of {mss} bytes from offset {off} "
                             f"do not fit in {len(data)} bytes")
        hlen = len(header)
        size = hlen + mss
        slot = bytearray(size)
        slot[:hlen] = header
        buf = slot * count
        pack_seq = _SEQ_FIELD.pack_into
        src = memoryview(data)
        try:
            o = 0
            for start in range(off, off + count * mss, mss):
                if o:
                    seq = (seq + mss) & 0xFFFFFFFF
                    pack_seq(buf, o + _SEQ_OFFSET, seq)
                buf[o + hlen : o + size] = src[start : start + mss]
                o += size
        finally:
            src.release()  # the send buffer must stay resizable
        if self.checksum:
            self._checksums(buf, size, count)
        return SegmentRun(buf, size, count)

    @staticmethod
    def _checksums(buf: bytearray, size: int, count: int) -> None:
        """Each segment's RFC 1071 checksum over its header and payload, as
        `encode` computes it (the field is zero while summing)."""
        pack = _U16.pack_into
        view = memoryview(buf)
        try:
            for o in range(0, size * count, size):
                pack(buf, o + _CSUM_OFFSET, 0xFFFF - _residue(view[o : o + size]))
        finally:
            view.release()
