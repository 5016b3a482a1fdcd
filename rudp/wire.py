"""Wire format: the TCP header (RFC 9293 §3.1) carried one per UDP datagram.

The construct declarations below are the single definition of the format.  The
hot path (`decode`, `encode`) uses a `struct.Struct` whose format and bit layout
are derived from `TCP_HEADER` at import time; `decode_construct` parses with
construct alone and is the reference the fast path is tested against.

Checksum: RFC 1071 one's-complement sum over header and payload, with no IP
pseudo-header (NATs rewrite the UDP packet's addresses and ports).  A zero
checksum field means "not checksummed"; a computed zero is sent as 0xFFFF.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from construct import (
    BitsInteger,
    BitStruct,
    Bytes,
    Check,
    Const,
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

#: The fixed header, RFC 9293 §3.1 Figure 1 (flag names as in RFC 3168 §23.2).
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

#: One option, RFC 9293 §3.1 "Options": kind, then (except EOL/NOP) a length
#: byte that counts kind and length.  EOL ends the list; what follows is padding.
TCP_OPTION = Struct(
    "kind" / Int8ub,
    "body" / Switch(
        this.kind,
        {
            OPT_EOL: Struct("padding" / GreedyBytes),
            OPT_NOP: Pass,
            OPT_MSS: Struct("length" / Const(4, Int8ub), "mss" / Int16ub),
            OPT_WSCALE: Struct("length" / Const(3, Int8ub), "shift" / Int8ub),
            OPT_SACK_PERMITTED: Struct("length" / Const(2, Int8ub)),
            OPT_SACK: Struct(
                "length" / OneOf(Int8ub, {2 + 8 * n for n in range(1, MAX_SACK_BLOCKS + 1)}),
                "blocks" / (Struct("left" / Int32ub, "right" / Int32ub)[(this.length - 2) // 8]),
            ),
            OPT_TIMESTAMPS: Struct(
                "length" / Const(10, Int8ub), "tsval" / Int32ub, "tsecr" / Int32ub
            ),
        },
        default=Struct(
            "length" / Int8ub, Check(this.length >= 2), "data" / Bytes(this.length - 2)
        ),
    ),
)

#: The options area: options that fill it exactly (a malformed option stops the
#: greedy range short of the end, so `Terminated` rejects the whole area).
TCP_OPTIONS = FocusedSeq("options", "options" / GreedyRange(TCP_OPTION), Terminated)

#: A whole segment: header, options (data offset in 32-bit words), payload.
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
    """Derive a big-endian `struct.Struct`, its field names and bit-field layout.

    Each named `FormatField` keeps its format code; each `BitStruct` of N bytes
    becomes one unsigned N-byte code, its subfields laid out MSB first.
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
                shift -= sub.sizeof()  # in bits, inside Bitwise
                bits[sub.name] = BitField(shift, sub.sizeof())
        else:
            raise TypeError(f"no struct code for field {named.name!r}: {field!r}")
        names.append(named.name)
    return struct.Struct(">" + "".join(codes)), tuple(names), bits


_HDR, HEADER_FIELDS, CONTROL_BITS = derive_struct(TCP_HEADER)


def _flags_field(bits: dict[str, BitField]) -> BitField:
    """The contiguous run of flag bits, CWR (MSB) to FIN (LSB)."""
    low = bits["fin"].shift
    if any(bits[name] != BitField(low + mask.bit_length() - 1, 1) for name, mask in _FLAG_BY_NAME.items()):
        raise TypeError("flag bits must be contiguous, CWR..FIN, matching the flag constants")
    return BitField(low, len(_FLAG_BY_NAME))


_DOFF_SHIFT, _DOFF_WIDTH = CONTROL_BITS["data_offset"]
_DOFF_MASK = (1 << _DOFF_WIDTH) - 1
_FLAGS_SHIFT, _FLAGS_WIDTH = _flags_field(CONTROL_BITS)
_FLAGS_MASK = (1 << _FLAGS_WIDTH) - 1
_MIN_DOFF = HEADER_LEN // 4

_OPTIONS_COMPILED = TCP_OPTIONS.compile()

# Fast-path option layouts (RFC 7323 Appendix A's recommended NOP NOP TS).
_TS_PREFIX = bytes((OPT_NOP, OPT_NOP, OPT_TIMESTAMPS, 10))
_TS_VALUES = struct.Struct(">II")
_MSS_PREFIX = bytes((OPT_MSS, 4))
_U16 = struct.Struct(">H")
_SACK_PERMITTED_OPT = bytes((OPT_NOP, OPT_NOP, OPT_SACK_PERMITTED, 2))
_WSCALE_OPT = struct.Struct(">BBBB")
_MSS_OPT = struct.Struct(">BBH")
_TS_OPT = struct.Struct(">BBBBII")
_SACK_HEAD = struct.Struct(">BBBB")
_SACK_BLOCK = struct.Struct(">II")


# --- checksum ----------------------------------------------------------------


def _residue(data: bytes) -> int:
    """Sum of the 16-bit big-endian words of `data` mod 0xFFFF (2**16 ≡ 1).

    An odd tail byte is padded with a zero byte on the right (RFC 1071 §4.1).
    """
    r = int.from_bytes(data, "big") % 0xFFFF
    return (r << 8) % 0xFFFF if len(data) & 1 else r


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum: complement of the one's-complement word sum.

    The end-around-carry sum S is congruent to the word sum mod 0xFFFF and is 0
    only when every word is 0, so a zero residue means S = 0xFFFF (checksum 0)
    unless `data` is all zeros (S = 0, checksum 0xFFFF).
    """
    r = _residue(data)
    if r:
        return 0xFFFF - r
    return 0 if any(data) else 0xFFFF


def _verifies(data: bytes) -> bool:
    """RFC 1071 §2(3): the sum over data including a nonzero checksum field is 0xFFFF.

    Odd length needs no padding here: 256 is invertible mod 0xFFFF.
    """
    return int.from_bytes(data, "big") % 0xFFFF == 0


# --- decode -----------------------------------------------------------------

_Options = tuple[int | None, int | None, bool, tuple[tuple[int, int], ...], tuple[int, int] | None]
_NO_OPTIONS: _Options = (None, None, False, (), None)


def _option_fields(options: list[Any]) -> _Options:
    """Map parsed options to (mss, wscale, sack_permitted, sack, ts); a later duplicate wins."""
    mss = wscale = None
    sack_permitted = False
    sack: tuple[tuple[int, int], ...] = ()
    ts = None
    for opt in options:
        kind, body = opt.kind, opt.body
        if kind == OPT_MSS:
            mss = body.mss
        elif kind == OPT_WSCALE:
            wscale = body.shift
        elif kind == OPT_SACK_PERMITTED:
            sack_permitted = True
        elif kind == OPT_SACK:
            sack = tuple((b.left, b.right) for b in body.blocks)
        elif kind == OPT_TIMESTAMPS:
            ts = (body.tsval, body.tsecr)
    return mss, wscale, sack_permitted, sack, ts


def decode(data: bytes, verify_checksum: bool = True) -> Segment:
    """Decode one segment (RFC 9293 §3.1); raise `DecodeError` for anything invalid.

    The checksum is checked first (a corrupted segment is a `ChecksumError`, not
    a malformed one), then data offset and options.  Reserved bits are ignored.
    """
    n = len(data)
    if n < HEADER_LEN:
        raise DecodeError(f"segment of {n} bytes is shorter than the {HEADER_LEN}-byte header")
    src, dst, seq, ack, control, window, csum, urgent = _HDR.unpack_from(data)
    if verify_checksum and csum and not _verifies(data):
        raise ChecksumError("checksum does not verify")
    doff = control >> _DOFF_SHIFT & _DOFF_MASK
    flags = control >> _FLAGS_SHIFT & _FLAGS_MASK
    if doff == _MIN_DOFF:
        return Segment(src, dst, seq, ack, flags, window, data[HEADER_LEN:], urgent=urgent)
    hlen = doff * 4
    if doff < _MIN_DOFF:
        raise DecodeError(f"data offset {doff} is below the minimum {_MIN_DOFF}")
    if hlen > n:
        raise DecodeError(f"data offset {doff} ({hlen} bytes) exceeds segment length {n}")
    if hlen == HEADER_LEN + 12 and data[HEADER_LEN : HEADER_LEN + 4] == _TS_PREFIX:
        opts: _Options = (None, None, False, (), _TS_VALUES.unpack_from(data, HEADER_LEN + 4))
    elif hlen == HEADER_LEN + 4 and data[HEADER_LEN : HEADER_LEN + 2] == _MSS_PREFIX:
        opts = (_U16.unpack_from(data, HEADER_LEN + 2)[0], None, False, (), None)
    else:
        try:
            opts = _option_fields(_OPTIONS_COMPILED.parse(data[HEADER_LEN:hlen]))
        except ConstructError as e:
            raise DecodeError(f"malformed options: {e}") from None
    return Segment(src, dst, seq, ack, flags, window, data[hlen:], *opts, urgent)


def decode_construct(data: bytes, verify_checksum: bool = True) -> Segment:
    """Reference decoder: header and options parsed by construct alone.

    Same contract as `decode`; slower, and the oracle it is tested against.
    """
    try:
        header = TCP_HEADER.parse(data)
    except ConstructError as e:
        raise DecodeError(f"truncated header: {e}") from None
    if verify_checksum and header.checksum and checksum(data) != 0:
        raise ChecksumError("checksum does not verify")
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


def _encode_options(seg: Segment) -> bytes:
    """Options in canonical order, each padded with NOPs to a 32-bit boundary.

    MSS; NOP WS; NOP NOP SACK-permitted; NOP NOP TS; NOP NOP SACK.  Every piece
    is a multiple of 4 bytes, so the area never needs EOL padding.
    """
    parts: list[bytes] = []
    if seg.mss is not None:
        parts.append(_MSS_OPT.pack(OPT_MSS, 4, seg.mss))
    if seg.wscale is not None:
        parts.append(_WSCALE_OPT.pack(OPT_NOP, OPT_WSCALE, 3, seg.wscale))
    if seg.sack_permitted:
        parts.append(_SACK_PERMITTED_OPT)
    if seg.ts is not None:
        parts.append(_TS_OPT.pack(OPT_NOP, OPT_NOP, OPT_TIMESTAMPS, 10, *seg.ts))
    if seg.sack:
        parts.append(_SACK_HEAD.pack(OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(seg.sack)))
        parts.extend(_SACK_BLOCK.pack(left, right) for left, right in seg.sack)
    options = b"".join(parts)
    if len(options) > MAX_OPTIONS_LEN:
        raise ValueError(f"options need {len(options)} bytes, more than {MAX_OPTIONS_LEN}")
    return options


def encode(seg: Segment, checksum: bool = True) -> bytes:
    """Serialize `seg` (RFC 9293 §3.1); raise `ValueError` if a field does not fit.

    With `checksum` the RFC 1071 checksum is computed (a computed 0 is sent as
    its one's-complement equivalent 0xFFFF); without it the field is 0.
    """
    if not 0 <= seg.flags <= _FLAGS_MASK:
        raise ValueError(f"flags {seg.flags:#x} out of range")
    try:
        has_options = (
            seg.mss is not None or seg.wscale is not None or seg.sack_permitted or seg.sack or seg.ts is not None
        )
        options = _encode_options(seg) if has_options else b""
        control = (HEADER_LEN + len(options)) // 4 << _DOFF_SHIFT | seg.flags << _FLAGS_SHIFT
        fields = (seg.src_port, seg.dst_port, seg.seq, seg.ack, control, seg.window)
        header = _HDR.pack(*fields, 0, seg.urgent) + options
        if not checksum:
            return header + seg.payload
        csum = 0xFFFF - (_residue(header) + _residue(seg.payload)) % 0xFFFF
        return _HDR.pack(*fields, csum, seg.urgent) + options + seg.payload
    except struct.error as e:
        raise ValueError(f"segment field out of range: {e}") from None
