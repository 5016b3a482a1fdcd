#!/usr/bin/env python3
"""Write the seed corpora: fuzz/corpus/decode/ and fuzz/corpus/endpoint/.

decode seeds are datagrams: real segments (SYN with every option, SYN,ACK,
data, FIN, RST, SACK blocks, checksummed) and broken ones (truncated headers,
bad data offsets, bad option lengths, bad checksums).

endpoint seeds are record sequences in the format of fuzz_endpoint.py (the
writers below mirror its Reader): handshakes on each listener, data both ways,
FIN in each order, RSTs in and out of window, SACK recovery, zero windows,
keep-alive, SYN floods, TIME_WAIT, simultaneous open, malformed datagrams.

Each seed is run through its target once here (they must pass), and the
state transitions the endpoint seeds reach are printed.

    .venv/bin/python fuzz/make_corpus.py          # rewrite both corpora
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fuzz_decode  # noqa: I001 - the compact block below, as rudp's own imports
import fuzz_endpoint as fe
from fuzz_endpoint import (
    ACK, AUTO, CWR, DELTAS, DT, ECE, FIN, FLAGS, K_APP, K_BURST, K_DUP, K_RAW, K_RAW_LONG,
    K_SEG, K_TIME, MASK, MSSES, OUR_PORTS, PAYLOADS, PEER_PORTS, PSH, RST, SYN, WINDOWS,
)

fe._load()
wire = fe.wire
Segment = wire.Segment
encode = wire.encode


# ------------------------------------------------------------ decode seeds


def raw_header(src: int = 40000, dst: int = 80, seq: int = 1000, ack: int = 0, doff: int = 5,
               flags: int = ACK, window: int = 65535, csum: int = 0, urgent: int = 0) -> bytes:
    return struct.pack(">HHIIBBHHH", src, dst, seq, ack, doff << 4, flags, window, csum, urgent)


def with_options(options: bytes, payload: bytes = b"", **kw: Any) -> bytes:
    options += bytes(-len(options) % 4)
    return raw_header(doff=5 + len(options) // 4, **kw) + options + payload


def decode_seeds() -> dict[str, bytes]:
    ts = (0x01020304, 0x05060708)
    s: dict[str, bytes] = {}
    s["syn_all_options"] = encode(Segment(40000, 80, 1000, 0, SYN, 65535, mss=1460, wscale=7,
                                          sack_permitted=True, ts=ts), False)
    s["syn_all_options_checksum"] = encode(Segment(40000, 80, 1000, 0, SYN, 65535, mss=1460,
                                                   wscale=7, sack_permitted=True, ts=ts))
    s["synack"] = encode(Segment(80, 40000, 5000, 1001, SYN | ACK, 65535, mss=1432, wscale=7,
                                 sack_permitted=True, ts=ts))
    s["syn_ecn"] = encode(Segment(40000, 80, 1000, 0, SYN | ECE | CWR, 65535, mss=536), False)
    s["ack_ts_fast_path"] = encode(Segment(40000, 80, 1001, 5001, ACK, 512, ts=ts), False)
    s["data_ts"] = encode(Segment(40000, 80, 1001, 5001, ACK | PSH, 512, b"hello world" * 10,
                                  ts=ts), False)
    s["data_no_options_checksum"] = encode(Segment(40000, 80, 1001, 5001, ACK | PSH, 512,
                                                   bytes(range(256)) * 4))
    s["fin"] = encode(Segment(40000, 80, 2001, 5001, FIN | ACK, 512, ts=ts), False)
    s["rst"] = encode(Segment(40000, 80, 2001, 0, RST, 0))
    s["rst_ack"] = encode(Segment(40000, 80, 0, 1001, RST | ACK, 0), False)
    s["urgent"] = encode(Segment(40000, 80, 1001, 5001, ACK | URG_FLAG, 512, b"!", urgent=1), False)
    for n in range(1, 5):
        s[f"sack_{n}_blocks"] = encode(Segment(40000, 80, 1001, 5001, ACK, 512,
                                               sack=tuple((5001 + 2000 * i, 6001 + 2000 * i)
                                                          for i in range(n))), False)
    s["sack_3_blocks_ts"] = encode(Segment(40000, 80, 1001, 5001, ACK, 512, ts=ts,
                                           sack=((6001, 7001), (8001, 9001), (10001, 11001))), False)
    s["sack_wraps"] = encode(Segment(40000, 80, 1001, 0xFFFFFF00, ACK, 512,
                                     sack=((0xFFFFFFF0, 0x10),)), False)
    # Tight layouts encode never produces: no NOPs, EOL padding, unknown options.
    s["tight_all_options"] = with_options(
        b"\x02\x04\x05\xb4" + b"\x03\x03\x07" + b"\x04\x02" + b"\x08\x0a" + bytes(8)
        + b"\x05\x12" + bytes(16), flags=SYN)
    s["eol_then_garbage"] = with_options(b"\x03\x03\x0e\x00\x02\x05\xff\xff")
    s["unknown_options"] = with_options(b"\x1e\x06abcd\xfe\x02\x02\x04\x05\xb4\x01\x01\x01\x00",
                                        b"data")
    s["repeated_mss"] = with_options(b"\x02\x04\x00\x01\x02\x04\x00\x02")
    s["ts_not_nop_aligned"] = with_options(b"\x08\x0a" + bytes(8) + b"\x01\x01", b"x")
    # Broken ones.
    s["empty"] = b""
    s["one_byte"] = b"\x00"
    s["truncated_header_19"] = encode(Segment(40000, 80, 1, 2, ACK, 5), False)[:19]
    s["truncated_header_12"] = encode(Segment(40000, 80, 1, 2, ACK, 5), False)[:12]
    for doff in (0, 1, 4):
        s[f"doff_{doff}"] = raw_header(doff=doff) + bytes(40)
    s["doff_past_end"] = raw_header(doff=6) + b"\x01\x01"
    s["doff_15_short"] = raw_header(doff=15) + b"\x01" * 39
    s["opt_no_length_byte"] = with_options(b"\x01\x01\x01\x02")
    s["opt_length_0"] = with_options(b"\x1e\x00\x00\x00")
    s["opt_length_1"] = with_options(b"\x1e\x01\x00\x00")
    s["opt_past_end"] = with_options(b"\x01\x01\x1e\x03")
    s["mss_length_3"] = with_options(b"\x02\x03\x00\x00")
    s["ws_length_4"] = with_options(b"\x03\x04\x00\x00")
    s["sack_length_9"] = with_options(b"\x05\x09" + bytes(10))
    s["sack_5_blocks"] = with_options(b"\x05\x2a" + bytes(38))
    s["ts_length_12"] = with_options(b"\x08\x0c" + bytes(10))
    s["ts_past_end"] = with_options(b"\x01\x01\x08\x0a" + bytes(4))
    good = encode(Segment(40000, 80, 1001, 5001, ACK | PSH, 512, b"payload!", ts=ts))
    s["bad_checksum"] = good[:-1] + bytes([good[-1] ^ 0x20])
    s["bad_checksum_and_options"] = with_options(b"\x02\x05\x00\x00", csum=0x1234)
    s["checksum_ffff_all_zero"] = bytes(12) + b"\x50\x00" + bytes(2) + b"\xff\xff" + bytes(2)
    return s


URG_FLAG = 0x20


# ------------------------------------------------------------ endpoint records


def u8(v: int) -> bytes:
    return bytes([v & 0xFF])


def u16(v: int) -> bytes:
    return (v & 0xFFFF).to_bytes(2, "big")


def u32(v: int) -> bytes:
    return (v & MASK).to_bytes(4, "big")


def code(table: list[Any], value: Any, raw: Callable[[Any], bytes]) -> bytes:
    """The inverse of Reader.code: a table index, or 0x80 and the raw value."""
    for i, entry in enumerate(table):
        if entry == value and type(entry) is type(value):
            return u8(i)
    return b"\x80" + raw(value)


def pick(table: list[Any], value: Any) -> bytes:
    return u8(table.index(value))


def record(kind: int, body: bytes) -> bytes:
    if kind == K_RAW_LONG:
        return u8(kind) + u16(len(body)) + body
    assert len(body) <= 255, (kind, len(body))
    return u8(kind) + u8(len(body)) + body


def view(addr: int = 0, peer_port: int = 40000, our_port: int = 80) -> bytes:
    """A view selected by its key (address index, peer's port, our port)."""
    return b"\xff" + u8(addr) + code(PEER_PORTS, peer_port, u16) + code(OUR_PORTS, our_port, u16)


def known_view(i: int) -> bytes:
    """The i-th view the harness made (in order of first datagram either way)."""
    return u8(i)


SeqSpec = Any  # base index 0..4, or ("raw", value); with a delta


def seg(v: bytes | None = None, flags: int | None = AUTO, seq: SeqSpec = 0, seq_delta: int = 0,
        ack: SeqSpec = 0, ack_delta: int = 0, window: int = 65535, mss: int | None = None,
        wscale: int | None = None, sack_perm: bool = False, ts: tuple[Any, Any] | None = None,
        sack: tuple[tuple[Any, ...], ...] = (), payload: int = 0, checksum: bool = False,
        urgent: int | None = None, mutation: tuple[int, int, int] | None = None,
        dt: float = 0) -> bytes:
    """A K_SEG record. seq/ack bases: 0 auto, 1 what the server expects / the
    server's last seq, 2 the peer's ISN / server ISN + 1, 3 window edge / the
    peer's last ACK, 4 zero, ("raw", n) a number. ts = (tsval, tsecr) choices:
    tsval 0 the peer's clock, 1 zero, 2 older than the last, 3 clock + 2**31,
    ("raw", n); tsecr 0 the server's last TSval, 1 zero, 2 that - 1000, ("raw", n).
    sack blocks: ("rel", offset from the ACK, length) or ("abs", left, length)."""
    body = pick(DT, dt) + (v if v is not None else view())
    body += code(FLAGS, flags, u8)
    for base, delta in ((seq, seq_delta), (ack, ack_delta)):
        body += u8(5) + u32(base[1]) if isinstance(base, tuple) else u8(base)
        body += code(DELTAS, delta, u32)
    body += code(WINDOWS, window, u16)
    mask = ((mss is not None) | (wscale is not None) << 1 | sack_perm << 2 | (ts is not None) << 3
            | bool(sack) << 4 | checksum << 5 | (urgent is not None) << 6
            | (mutation is not None) << 7)
    body += u8(mask)
    if mss is not None:
        body += code(MSSES, mss, u16)
    if wscale is not None:
        assert wscale < 16 or wscale >= 128
        body += u8(wscale)
    if ts is not None:
        tsval, tsecr = ts
        body += u8(4) + u32(tsval[1]) if isinstance(tsval, tuple) else u8(tsval)
        body += u8(3) + u32(tsecr[1]) if isinstance(tsecr, tuple) else u8(tsecr)
    if sack:
        body += u8(len(sack))
        for how, where, length in sack:
            if how == "rel":
                assert -1000 <= where < 69000
                body += u8(1) + u32(where + 1000)
            else:
                body += u8(0) + u32(where)
            body += u16(length)
    body += code(PAYLOADS, payload, u16) + u8(0)
    if urgent is not None:
        body += u16(urgent)
    if mutation is not None:
        op, pos, val = mutation
        body += u8(op) + u16(pos) + u8(val)
    return record(K_SEG, body)


def tick(dt: float) -> bytes:
    return record(K_TIME, code(DT, dt, lambda v: u16(round(v * 100))))


ACCEPT, READ, SEND, SHUTDOWN, CLOSE, ABORT, CONNECT, READ1, DRAIN = range(9)


def app(action: int, idx: int = 0, arg: int = 0) -> bytes:
    return record(K_APP, u8(action) + u8(idx) + u16(arg))


def syn_flood(count: int, addr: int = 0, our_port: int = 80, first: int = 1000,
              opts: int = 15) -> bytes:
    return record(K_BURST, u8(0) + u8(count - 1) + u8(addr) + pick(OUR_PORTS, our_port)
                  + u16(first) + u8(opts))


STREAM, DUPACKS, ACKS = 1, 2, 3


def burst(kind: int, count: int, v: bytes | None = None, size: int = 536, hole: int = 255,
          ts: bool = False) -> bytes:
    return record(K_BURST, u8(kind) + u8(count - 1) + (v if v is not None else view())
                  + code(PAYLOADS, size, u16) + u8(hole) + u8(ts))


def raw(data: bytes, addr: int = 0, dt: float = 0) -> bytes:
    body = pick(DT, dt) + u8(addr) + data
    return record(K_RAW_LONG if len(body) > 255 else K_RAW, body)


def dup(back: int = 0, dt: float = 0, change: tuple[int, int] | None = None) -> bytes:
    body = pick(DT, dt) + u8(back)
    body += u8(1) + u16(change[0]) + u8(change[1]) if change else u8(0)
    return record(K_DUP, body)


TS = (0, 0)  # the peer's clock, echoing the server's last TSval


def handshake(v: bytes | None = None, options: bool = True, **syn: Any) -> bytes:
    """SYN (ISN auto), then the ACK of the SYN,ACK."""
    if options:
        syn = {"mss": 1432, "wscale": 7, "sack_perm": True, "ts": TS, **syn}
    return seg(v, SYN, **syn) + seg(v, ACK, ts=TS if syn.get("ts") else None)


def endpoint_seeds() -> dict[str, bytes]:
    v80, v81, v82 = view(0, 40000, 80), view(1, 40001, 81), view(2, 40002, 82)
    s: dict[str, bytes] = {}
    s["handshake_80_all_options"] = handshake(v80)
    s["handshake_80_no_options"] = handshake(v80, options=False)
    s["handshake_81_small"] = handshake(v81, options=False, mss=536)
    s["handshake_82_checksummed"] = seg(v82, SYN, mss=1000, checksum=True, ts=TS, sack_perm=True) \
        + seg(v82, ACK, ts=TS, checksum=True)
    s["data_in_then_fin_then_close"] = (
        handshake(v80) + seg(v80, ACK | PSH, ts=TS, payload=1000)
        + seg(v80, ACK | PSH, ts=TS, payload=1420, dt=0.01) + app(DRAIN)
        + seg(v80, FIN | ACK, ts=TS, dt=0.05) + app(CLOSE) + seg(v80, ACK, ts=TS, dt=0.01))
    s["server_sends_peer_acks"] = (
        handshake(v80) + app(ACCEPT) + app(SEND, 0, 20000)
        + burst(ACKS, 20, v80, size=1420, ts=True) + tick(0.2)
        + burst(ACKS, 20, v80, size=4000, ts=True) + app(CLOSE)
        + seg(v80, ACK, ts=TS, dt=0.05) + seg(v80, FIN | ACK, ts=TS) + tick(61))
    s["sack_recovery"] = (
        handshake(v80) + app(ACCEPT) + app(SEND, 0, 30000)
        + seg(v80, ACK, ts=TS, ack=3, dt=0.01)
        + burst(DUPACKS, 6, v80, size=1420, hole=1, ts=True) + tick(0.05)
        + burst(ACKS, 30, v80, size=1420, ts=True))
    s["newreno_recovery_81"] = (
        handshake(v81, options=False, mss=536) + app(ACCEPT, 1) + app(SEND, 0, 8000)
        + burst(DUPACKS, 5, v81, size=536) + tick(0.3) + burst(ACKS, 20, v81, size=536))
    s["rto_backoff_and_give_up"] = handshake(v81, options=False) + app(ACCEPT, 1) \
        + app(SEND, 0, 3000) + tick(600)
    s["zero_window_persist"] = (
        handshake(v81, options=False) + app(ACCEPT, 1) + seg(v81, ACK, window=0, dt=0.01)
        + app(SEND, 0, 2000) + tick(5) + tick(10) + seg(v81, ACK, window=1000) + tick(1))
    s["peer_fills_our_window_81"] = (
        handshake(v81, options=False) + burst(STREAM, 12, v81, size=536) + tick(1)
        + app(ACCEPT, 1) + app(READ1) + app(READ, 0, 2000) + tick(1)
        + burst(STREAM, 12, v81, size=536))
    s["out_of_order_hole_then_fill"] = (
        handshake(v80) + burst(STREAM, 6, v80, size=1000, hole=1, ts=True)
        + seg(v80, ACK | PSH, seq=1, payload=1000, ts=TS))
    s["ooo_fin"] = (
        handshake(v80, options=False) + seg(v80, FIN | ACK, seq=0, seq_delta=1000)
        + seg(v80, ACK | PSH, seq=1, payload=1000) + app(DRAIN) + app(CLOSE) + tick(1))
    s["rst_exact_and_challenged"] = (
        handshake(v80) + seg(v80, RST, seq=1, seq_delta=1) + seg(v80, RST, seq=1)
        + seg(v80, SYN, seq=1, ts=TS))
    s["rst_in_syn_rcvd"] = seg(v80, SYN, mss=1432) + seg(v80, RST, seq=1)
    s["bad_ack_in_syn_rcvd"] = seg(v80, SYN, mss=1432) + seg(v80, ACK, ack=0, ack_delta=10) \
        + seg(v80, ACK, ack=4)
    s["syn_retransmitted_then_synack_timeout"] = seg(v80, SYN, mss=1432) + seg(v80, SYN, dt=1) \
        + tick(120)
    s["syn_with_data_and_fin"] = seg(v80, SYN, mss=1432, payload=100) \
        + seg(v80, SYN | FIN) + seg(v80, ACK, payload=100)
    s["syn_flood_80"] = syn_flood(20, 0, 80) + syn_flood(10, 2, 80, first=3000)
    s["syn_flood_81_82"] = syn_flood(10, 1, 81, opts=0) + syn_flood(10, 2, 82) + tick(10)
    s["syn_cookie_ack"] = (
        syn_flood(16, 0, 80, first=2000)
        + seg(view(1, 40001, 80), SYN, mss=1432, ts=TS, wscale=7, sack_perm=True)
        + seg(view(1, 40001, 80), ACK, seq=0, ack=2, ts=TS)
        + seg(view(1, 40001, 80), ACK | PSH, seq=0, ack=2, ts=TS, payload=100))
    s["server_closes_first_time_wait"] = (
        handshake(v80) + app(ACCEPT) + app(CLOSE) + seg(v80, ACK, ts=TS, dt=0.01)
        + seg(v80, FIN | ACK, ts=TS) + tick(10) + seg(v80, FIN | ACK, seq=0, seq_delta=-1, ts=TS)
        + seg(v80, SYN, seq=0, seq_delta=100000, ts=TS, mss=1432) + tick(120))
    s["fin_wait_2_then_close"] = (  # found by the fuzzer; fixed in 4ec7a29
        handshake(v80) + app(ACCEPT) + app(SHUTDOWN) + seg(v80, ACK, ts=TS, dt=0.01)
        + app(CLOSE) + tick(3600))
    s["backlog_full_drops_completing_ack"] = (  # found by the fuzzer; fixed in 4ec7a29
        syn_flood(8, 0, 80, first=5000, opts=0) + syn_flood(4, 2, 80, first=6000, opts=0)
        + b"".join(seg(known_view(i), ACK, seq=0, ack=2) for i in range(12)) + tick(1)
        + app(DRAIN) + tick(3))
    s["peer_silent_after_fast_retransmit"] = (  # found by the fuzzer; fixed in c958640
        handshake(v80) + app(ACCEPT) + app(SEND, 0, 30000)
        + seg(v80, ACK, ts=TS, ack=3, ack_delta=1432, dt=0.01)
        + burst(DUPACKS, 4, v80, size=1420, hole=1, ts=True) + tick(30))
    s["simultaneous_close"] = (
        handshake(v80, options=False) + app(ACCEPT) + app(SHUTDOWN)
        + seg(v80, FIN | ACK, ack=3) + seg(v80, ACK, dt=0.01) + tick(200))
    s["close_wait_last_ack"] = (
        handshake(v82, ts=TS) + seg(v82, FIN | ACK, ts=TS) + app(ACCEPT, 2) + app(SEND, 0, 5000)
        + app(CLOSE) + burst(ACKS, 10, v82, size=1000, ts=True))
    s["data_after_close_gets_rst"] = (
        handshake(v80) + app(ACCEPT) + app(SHUTDOWN) + app(CLOSE)
        + seg(v80, ACK | PSH, ts=TS, payload=100))
    s["keepalive_81"] = handshake(v81, options=False) + tick(31) + tick(5) \
        + seg(v81, ACK, seq=0, seq_delta=-1) + tick(60)
    s["active_open_synack"] = (
        app(CONNECT, 1) + seg(known_view(0), SYN | ACK, seq=0, ack=2, mss=1432, wscale=7,
                              sack_perm=True, ts=(0, 0))
        + seg(known_view(0), ACK | PSH, ts=TS, payload=500) + app(DRAIN) + app(CLOSE))
    s["simultaneous_open"] = (
        app(CONNECT, 1) + seg(known_view(0), SYN, mss=536) + seg(known_view(0), ACK, ack=2)
        + tick(1))
    s["active_open_refused"] = app(CONNECT, 2) + seg(known_view(0), RST | ACK, ack=2) + tick(1)
    s["active_open_times_out"] = app(CONNECT, 0) + tick(300)
    s["timestamps_paws_and_bogus_echo"] = (
        seg(v80, SYN, mss=1432, ts=TS) + seg(v80, ACK, ts=(0, ("raw", 12345)))
        + seg(v80, ACK | PSH, ts=(2, 0), payload=100) + seg(v80, ACK | PSH, ts=(3, 0), payload=100)
        + seg(v80, ACK | PSH, ts=(1, 1), payload=100))
    s["odd_mss_and_wscale"] = (
        seg(v80, SYN, mss=12, wscale=14, ts=TS) + seg(v80, ACK, ts=TS)
        + seg(view(1, 40001, 80), SYN, mss=0, wscale=255) + seg(view(1, 40001, 80), ACK)
        + app(DRAIN) + app(SEND, 0, 4000) + app(SEND, 1, 4000) + tick(1))
    s["window_edges"] = (
        handshake(v80) + seg(v80, ACK | PSH, seq=3, payload=100, ts=TS)
        + seg(v80, ACK, seq=3, ts=TS) + seg(v80, ACK | PSH, seq=0, seq_delta=1 << 30,
                                            payload=10, ts=TS))
    s["sack_blocks_outside"] = (
        handshake(v80) + app(ACCEPT) + app(SEND, 0, 10000)
        + seg(v80, ACK, ts=TS, ack=3, sack=(("rel", 1000, 1000), ("abs", 0xFFFFFFF0, 0x20),
                                            ("rel", 60000, 5000)), dt=0.01)
        + seg(v80, ACK, ts=TS, ack=3, ack_delta=-1000, sack=(("rel", -1000, 500),)))
    s["duplicates_and_mutations"] = (
        handshake(v80) + seg(v80, ACK | PSH, ts=TS, payload=536) + dup(0) + dup(1, 0.01)
        + dup(0, 0, (13, 0xFF)) + dup(2, 0, (12, 0x30))
        + seg(v80, ACK | PSH, ts=TS, payload=100, mutation=(0, 30, 3))
        + seg(v80, ACK | PSH, ts=TS, payload=100, mutation=(4, 0, 0xF0)))
    good = encode(Segment(40000, 80, 1000, 0, SYN, 65535, mss=1460), False)
    s["malformed_datagrams"] = (
        raw(b"") + raw(good[:19]) + raw(good[:12] + b"\x40" + good[13:])
        + raw(good[:12] + b"\xf0" + good[13:]) + raw(good[:20] + b"\x02\x05\x05\xb4")
        + raw(encode(Segment(40000, 80, 1000, 0, SYN, 65535, b"x"), True)[:-1] + b"y")
        + raw(encode(Segment(40000, 83, 1000, 0, ACK, 65535, bytes(400)), False))
        + raw(encode(Segment(40000, 80, 1000, 0, 0, 65535), False)))
    s["no_listener_rst"] = (
        seg(view(0, 40000, 83), SYN) + seg(view(0, 40000, 83), ACK | PSH, payload=10)
        + seg(view(0, 40000, 83), FIN) + seg(view(0, 40000, 83), RST))
    s["large_datagrams"] = handshake(v80) + seg(v80, ACK | PSH, payload=65000, ts=TS) \
        + seg(v80, ACK | PSH, seq=0, seq_delta=-536, payload=8000, ts=TS)
    return s


def known_bug_seeds() -> dict[str, tuple[str, bytes]]:
    """Reproducers of open engine bugs: name -> (fuzz_endpoint.KNOWN_BUGS key, input).
    Each must fail as it stands and pass with its workaround; they go to
    fuzz/known_bugs/endpoint/<bug>--<name>.bin (tests/test_fuzz.py expects
    them to fail, strictly: once the bug is fixed, move the seed into
    endpoint_seeds() and its workaround out of fuzz_endpoint.KNOWN_BUGS)."""
    # None open. An entry, as the two bugs found so far had until their fixes:
    #   "fin_wait_2_then_close": ("fin-wait-2-close", handshake(v80) + app(ACCEPT) + ...),
    return {}


def write(folder: Path, seeds: dict[str, bytes]) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, data in seeds.items():
        (folder / f"{name}.bin").write_bytes(data)


def main() -> None:
    corpus = HERE / "corpus"
    fe.WORKAROUNDS.clear()
    fe.WORKAROUNDS.update(fe.KNOWN_BUGS)  # seeds step around known bugs, as the tests do
    dec = decode_seeds()
    for name, data in dec.items():
        fuzz_decode.test_one_input(data)
    write(corpus / "decode", dec)
    ep = endpoint_seeds()
    reached: set[tuple[str, str]] = set()
    for name, data in ep.items():
        h = fe.run_input(data)
        reached |= h.transitions
        print(f"{name:40s} {len(data):5d} B  {h.datagrams:3d} datagrams  "
              f"{sorted(f'{a}>{b}' for a, b in h.transitions if a != 'CLOSED')}")
    write(corpus / "endpoint", ep)
    known: dict[str, bytes] = {}
    for name, (bug, data) in known_bug_seeds().items():
        fe.WORKAROUNDS.discard(bug)
        try:
            fe.test_one_input(data)
        except fe.Violation as e:
            print(f"known bug {bug}: {name} fails as expected: {str(e)[:200]}")
        else:
            print(f"known bug {bug}: {name} PASSES: the bug is fixed? move it to endpoint_seeds()")
            continue
        finally:
            fe.WORKAROUNDS.add(bug)
        fe.test_one_input(data)  # must pass with its workaround
        known[f"{bug}--{name}"] = data
    if known:
        write(HERE / "known_bugs" / "endpoint", known)
    else:
        shutil.rmtree(HERE / "known_bugs", ignore_errors=True)
    print(f"decode: {len(dec)} seeds; endpoint: {len(ep)} seeds; transitions reached:")
    print(" ", sorted(f"{a}>{b}" for a, b in reached))
    digest = hashlib.sha256(b"".join(sorted(ep.values()) + sorted(dec.values()))).hexdigest()
    print("corpus sha256", digest[:16])


if __name__ == "__main__":
    main()
