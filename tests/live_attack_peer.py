"""Relay and attacker for tests/test_live_attack.py, run as a process of its own
so that its sending does not steal the event loop of the server under attack.

It relays the legitimate client's datagrams to the server and back (the
client connects to the relay), keeps the latest real datagrams of that
exchange, and on "GO" sends malformed and mutated datagrams to the server's
UDP port from plain UDP sockets (several source ports) and, on the
legitimate connection's own UDP path (the relay's sockets), segments aimed at
that connection's TCP ports with random sequence numbers, to both of its ends
(RFC 5961's checks). An on-path sender could of course inject data or an
exact RST; segments on that path that the RFCs would accept (an ACK in the
acceptable range, a RST whose sequence number could be RCV.NXT) are held
back, so the transfer's outcome never depends on luck (``unsafe``).

Its sending is paced by the server's socket: while the server socket's
receive queue (/proc/net/udp) holds more than ``QUEUE_LIMIT`` bytes, it waits
(bounded), so that the datagrams reach the server instead of the kernel's
drop counter. Every loop is bounded by a count and by the deadline.

Lines on stdout: "RELAY <port>" (ready; the client connects to that port),
"DONE <json>" (the attack is over), "RELAY_STATS <json>" (at exit).
Lines on stdin: "GO <lport> <rport> <client_iss> <server_iss>", then EOF to stop
(or ``--linger`` seconds after DONE).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import select
import socket
import struct
import sys
import time
from typing import Any

from rudp.core.wire import (
    ACK,
    FIN,
    RST,
    SYN,
    DecodeError,
    decode,
    internet_checksum,
)

MASK = 0xFFFFFFFF
HDR = struct.Struct(">HHIIHHHH")  # src dst seq ack (doff<<12|reserved<<8|flags) window csum urgent
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
QUEUE_LIMIT = 1 << 20  # bytes queued at the server's socket before the attacker waits
CHECK_EVERY = 128  # datagrams between two looks at the queue
MAX_WAIT = 5.0  # longest wait for the queue to drain, each time
PLAIN_SOCKETS = 8
RING = 512  # real datagrams kept per direction
SPECIAL_MSS = (0, 1, 12, 87, 88, 65535)


def udp_queues(ports: set[int]) -> dict[int, tuple[int, int]]:
    """(receive queue bytes, drops) of the 127.0.0.1 UDP sockets bound to ``ports``."""
    out: dict[int, tuple[int, int]] = {}
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            parts = line.split()
            addr, _, port = parts[1].partition(":")
            p = int(port, 16)
            if p in ports and addr == "0100007F":
                out[p] = (int(parts[4].partition(":")[2], 16), int(parts[-1]))
    return out


class Peer:
    """A hostile peer's connection to the listener, from one of the plain sockets:
    it completes the handshake (odd options), then sends segments that are
    valid but unkind: data larger than the MSS, out of order, overlapping with
    other bytes, beyond the window; lying SACK blocks, zero windows, partial,
    duplicate and impossible ACKs; urgent data, data after its FIN, SYNs."""

    __slots__ = ("index", "sport", "isn", "snd_nxt", "server_isn", "rcv_hi", "last_ack",
                 "ts", "tsval", "server_tsval", "established", "fin_sent", "wscale")

    def __init__(self, index: int, sport: int, isn: int, ts: bool, wscale: int | None) -> None:
        self.index = index
        self.sport = sport
        self.isn = isn
        self.snd_nxt = (isn + 1) & MASK
        self.server_isn = 0
        self.rcv_hi = 0  # highest end of the server's sequence space seen
        self.last_ack = self.snd_nxt  # the server's latest ACK
        self.ts = ts
        self.tsval = 1
        self.server_tsval = 0
        self.established = False
        self.fin_sent = False
        self.wscale = wscale


class Attack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.rng = random.Random(args.seed)
        self.server_port: int = args.server_port
        self.total: int = args.total
        self.count: int = args.count
        self.max_seconds: float = args.max_seconds
        self.hard_deadline = time.monotonic() + args.hard_deadline
        self.server = ("127.0.0.1", self.server_port)
        # The relay: A faces the client, B the server.
        self.a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for s in (self.a, self.b):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
        self.b.connect(self.server)
        self.client: tuple[str, int] | None = None
        self.plain = []
        for _ in range(PLAIN_SOCKETS):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.connect(self.server)
            s.setblocking(False)
            self.plain.append(s)
        self.c2s: collections.deque[bytes] = collections.deque(maxlen=RING)
        self.s2c: collections.deque[bytes] = collections.deque(maxlen=RING)
        self.first: list[bytes] = []  # the handshake and first segments, kept for good
        self.learned: dict[str, int] = {}
        self.stats: collections.Counter[str] = collections.Counter()
        self.by_category: collections.Counter[str] = collections.Counter()
        self.coverage: dict[str, set[int]] = collections.defaultdict(set)
        self.syns: set[tuple[int, int, int]] = set()  # (socket index, src port, seq); -1 = B
        self.peers: dict[tuple[int, int], Peer] = {}
        self.max_peers = args.hostile_peers
        # Set by GO.
        self.lport = self.rport = self.c_iss = self.s_iss = 0

    # ------------------------------------------------------------ the relay

    def pump(self, limit: int = 256) -> None:
        """Forward what waits on the relay's sockets (bounded)."""
        a, b = self.a, self.b
        st = self.stats
        for _ in range(limit):
            try:
                data, addr = a.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                st["relay_a_errors"] += 1
                break
            self.client = addr
            self.learn(data, True)
            try:
                b.send(data)
            except OSError:
                st["relay_c2s_dropped"] += 1
                continue
            st["relay_c2s"] += 1
            self.c2s.append(data)
        for _ in range(limit):
            try:
                data = b.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                st["relay_b_errors"] += 1
                break
            self.learn(data, False)
            if self.client is None:
                continue
            try:
                a.sendto(data, self.client)
            except OSError:
                st["relay_s2c_dropped"] += 1
                continue
            st["relay_s2c"] += 1
            self.s2c.append(data)

    def learn(self, data: bytes, from_client: bool) -> None:
        if len(self.first) < 64:
            self.first.append(data)
        if "server_iss" in self.learned:
            return
        try:
            seg = decode(data)
        except DecodeError:
            return
        if from_client and seg.flags & (SYN | ACK) == SYN:
            self.learned.update(lport=seg.src_port, rport=seg.dst_port, client_iss=seg.seq)
        elif not from_client and seg.flags & (SYN | ACK) == SYN | ACK:
            self.learned["server_iss"] = seg.seq

    # ------------------------------------------------------------ building

    def checksum(self, data: bytes, mode: int) -> bytes:
        """0: leave the field zero (not checked), 1: correct, 2: random."""
        if mode == 0 or len(data) < 18:
            return data
        b = bytearray(data)
        b[16:18] = b"\0\0"
        if mode == 1:
            value = internet_checksum(bytes(b)) or 0xFFFF
        else:
            value = self.rng.randrange(1, 0x10000)
        b[16:18] = U16.pack(value)
        return bytes(b)

    def header(self, src: int, dst: int, seq: int, ack: int, flags: int, *, doff: int = 5,
               window: int | None = None, urgent: int = 0, reserved: int = 0) -> bytes:
        if window is None:
            window = self.rng.getrandbits(16)
        return HDR.pack(src, dst, seq & MASK, ack & MASK,
                        (doff << 12) | (reserved << 8) | flags, window, 0, urgent)

    def segment(self, src: int, dst: int, seq: int, ack: int, flags: int, options: bytes = b"",
                payload: bytes = b"", *, window: int | None = None, csum: int = 0,
                urgent: int = 0) -> bytes:
        if len(options) % 4:
            options += b"\0" * (4 - len(options) % 4)
        options = options[:40]
        hdr = self.header(src, dst, seq, ack, flags, doff=5 + len(options) // 4,
                          window=window, urgent=urgent)
        return self.checksum(hdr + options + payload, csum)

    def port(self) -> int:
        r = self.rng.random()
        if r < 0.5:
            return self.server_port
        if r < 0.6 and self.lport:
            return self.rng.choice((self.lport, self.rport))
        return self.rng.getrandbits(16)

    def payload(self, big: int = 64) -> bytes:
        r = self.rng.random()
        if r < 0.5:
            return b""
        return self.rng.randbytes(self.rng.randrange(1, big + 1))

    def csum_mode(self) -> int:
        return self.rng.choice((0, 0, 1, 2))

    def good_options(self) -> bytes:
        rng = self.rng
        opts = b""
        if rng.random() < 0.5:
            opts += bytes((2, 4)) + U16.pack(rng.choice(SPECIAL_MSS + (rng.getrandbits(16),)))
        if rng.random() < 0.5:
            opts += bytes((1, 3, 3, rng.choice((0, 7, 14, 15, 16, 100, 255))))
        if rng.random() < 0.5:
            opts += bytes((1, 1, 4, 2))
        if rng.random() < 0.5:
            opts += bytes((1, 1, 8, 10)) + U32.pack(rng.getrandbits(32)) + U32.pack(rng.getrandbits(32))
        if len(opts) <= 28 and rng.random() < 0.3:
            n = rng.randrange(1, (40 - len(opts) - 4) // 8 + 1)
            opts += bytes((1, 1, 5, 2 + 8 * n)) + rng.randbytes(8 * n)
        return opts

    def bad_options(self) -> bytes:
        """An options area with at least one option of a bad length (or, a few
        times, oddities that are valid: unknown kinds, EOL then garbage)."""
        rng = self.rng
        kind = rng.choice((2, 3, 4, 5, 8, 6, 7, 9, 30, 34, 253, 254, 255))
        choice = rng.randrange(12)
        self.coverage["bad_option_case"].add(choice)
        prefix = self.good_options() if rng.random() < 0.3 else b""
        prefix = prefix[: rng.randrange(0, 24)] if prefix and rng.random() < 0.3 else prefix
        if choice == 0:  # length 0
            bad = bytes((kind, 0)) + rng.randbytes(rng.randrange(0, 8))
        elif choice == 1:  # length 1
            bad = bytes((kind, 1)) + rng.randbytes(rng.randrange(0, 8))
        elif choice == 2:  # beyond the options area
            bad = bytes((kind, rng.randrange(12, 256))) + rng.randbytes(rng.randrange(0, 8))
        elif choice == 3:  # MSS of a wrong length
            bad = bytes((2, rng.choice((2, 3, 5, 6, 8)))) + rng.randbytes(6)
        elif choice == 4:  # window scale of a wrong length
            bad = bytes((3, rng.choice((2, 4, 5, 8)))) + rng.randbytes(6)
        elif choice == 5:  # SACK-permitted of a wrong length
            bad = bytes((4, rng.choice((3, 4, 6, 10)))) + rng.randbytes(8)
        elif choice == 6:  # SACK of a wrong length
            n = rng.choice((2, 3, 9, 11, 17, 25, 35, 42))
            bad = bytes((5, n)) + rng.randbytes(min(n, 36))
        elif choice == 7:  # timestamps of a wrong length
            bad = bytes((8, rng.choice((2, 8, 9, 11, 12)))) + rng.randbytes(10)
        elif choice == 8:  # a kind with no length byte, the area's last byte
            bad = b"\1\1\1" + bytes((kind,))
        elif choice == 9:  # timestamps (length 10) cut by the end of the area
            bad = bytes((8, 10)) + rng.randbytes(2)
        elif choice == 10:  # valid: unknown kind, good length
            bad = bytes((rng.randrange(9, 256), 4)) + rng.randbytes(2)
        else:  # valid: EOL then garbage
            bad = b"\0" + rng.randbytes(rng.randrange(0, 12))
        if choice in (8, 9):
            if len(prefix) > 36:
                prefix = b""
            return prefix + b"\1" * ((-len(prefix)) % 4) + bad
        return (prefix + bad)[:40]

    # ------------------------------------------------------------ categories

    def flags_sweep(self) -> bytes:
        flags = self.by_category["flags_sweep"] & 0xFF
        self.coverage["flags"].add(flags)
        rng = self.rng
        opts = self.good_options() if rng.random() < 0.3 else b""
        return self.segment(rng.getrandbits(16), self.port(), rng.getrandbits(32),
                            rng.getrandbits(32), flags, opts, self.payload(),
                            csum=self.csum_mode(), urgent=rng.getrandbits(16) if flags & 0x20 else 0)

    def truncated(self) -> bytes:
        n = self.by_category["truncated"] % 20
        self.coverage["truncated_len"].add(n)
        if self.rng.random() < 0.5:
            return self.rng.randbytes(n)
        full = self.segment(self.rng.getrandbits(16), self.port(), self.rng.getrandbits(32),
                            self.rng.getrandbits(32), self.rng.getrandbits(8))
        return full[:n]

    def bad_data_offset(self) -> bytes:
        rng = self.rng
        doff = self.by_category["bad_data_offset"] % 16
        self.coverage["data_offset"].add(doff)
        length = rng.choice((20, 20, 24, 28, 32, 40, 44, 60, 64, rng.randrange(20, 80)))
        hdr = self.header(rng.getrandbits(16), self.port(), rng.getrandbits(32),
                          rng.getrandbits(32), rng.choice((SYN, ACK, ACK | 0x08, RST, rng.getrandbits(8))),
                          doff=doff, reserved=rng.getrandbits(4))
        rest = self.good_options() if rng.random() < 0.5 else rng.randbytes(40)
        data = (hdr + rest + rng.randbytes(40))[:length]
        return self.checksum(data, rng.choice((0, 0, 1)))

    def bad_option_lengths(self) -> bytes:
        rng = self.rng
        flags = rng.choice((SYN, ACK, SYN | ACK, ACK | 0x08, ACK | FIN, RST, rng.getrandbits(8)))
        return self.segment(rng.getrandbits(16), self.port(), rng.getrandbits(32),
                            rng.getrandbits(32), flags, self.bad_options(), self.payload(),
                            csum=rng.choice((0, 0, 0, 1)))

    def syn_options(self) -> bytes:
        """A well-formed SYN to the listener: odd MSS, window scale, SACK, data."""
        rng = self.rng
        mss = rng.choice(SPECIAL_MSS + (rng.getrandbits(16), 1432))
        ws = rng.choice((0, 2, 7, 14, 15, 16, 30, 100, 255))
        if mss in SPECIAL_MSS:
            self.coverage["mss"].add(mss)
        if ws > 14:
            self.coverage["wscale_over_14"].add(ws)
        opts = bytes((2, 4)) + U16.pack(mss) if rng.random() < 0.9 else b""
        if rng.random() < 0.8:
            opts += bytes((1, 3, 3, ws))
        if rng.random() < 0.7:
            opts += bytes((1, 1, 4, 2))
        if rng.random() < 0.7:
            opts += bytes((1, 1, 8, 10)) + U32.pack(rng.getrandbits(32)) + U32.pack(rng.choice((0, rng.getrandbits(32))))
        if rng.random() < 0.1 and len(opts) <= 28:
            opts += bytes((1, 1, 5, 10)) + rng.randbytes(8)  # SACK blocks in a SYN
        flags = SYN | rng.choice((0, 0, 0, 0x08, 0x20, 0x40 | 0x80))
        return self.segment(rng.getrandbits(16), self.server_port, rng.getrandbits(32),
                            rng.choice((0, rng.getrandbits(32))), flags, opts,
                            self.payload(200) if rng.random() < 0.1 else b"",
                            window=rng.choice((0, 1, 65535, rng.getrandbits(16))),
                            csum=rng.choice((0, 0, 1, 2)))

    def garbage_syn(self) -> bytes:
        rng = self.rng
        data = bytearray(rng.randbytes(rng.randrange(20, 120)))
        data[2:4] = U16.pack(self.server_port)
        data[13] = (data[13] | SYN) & ~(FIN | RST)
        if rng.random() < 0.7:
            data[12] = (rng.randrange(5, 16) << 4) | (data[12] & 0xF)
        if rng.random() < 0.7:
            data[16:18] = b"\0\0"
        return bytes(data)

    def sack_anywhere(self) -> bytes:
        rng = self.rng
        n = rng.randrange(1, 5)
        blocks = b"".join(U32.pack(rng.getrandbits(32)) for _ in range(2 * n))
        opts = bytes((1, 1, 5, 2 + 8 * n)) + blocks
        if n < 4 and rng.random() < 0.5:
            opts = bytes((1, 1, 8, 10)) + rng.randbytes(8) + opts
        flags = rng.choice((ACK, ACK | 0x08, ACK | FIN, SYN, SYN | ACK, RST | ACK, rng.getrandbits(8)))
        return self.segment(rng.getrandbits(16), self.port(), rng.getrandbits(32),
                            rng.getrandbits(32), flags, opts[:40], self.payload(),
                            csum=rng.choice((0, 0, 1, 2)))

    def random_bytes(self) -> bytes:
        rng = self.rng
        if rng.random() < 0.002:
            n = rng.randrange(8000, 65001)
            self.coverage["huge"].add(1)
        else:
            n = rng.randrange(20, 1500)
        return rng.randbytes(n)

    def bad_checksum(self) -> bytes:
        rng = self.rng
        seg = self.segment(rng.getrandbits(16), self.port(), rng.getrandbits(32), rng.getrandbits(32),
                           rng.choice((ACK, SYN, SYN | ACK, RST, ACK | 0x08)),
                           self.good_options() if rng.random() < 0.5 else b"", self.payload(600),
                           csum=1)
        b = bytearray(seg)
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)  # one flipped bit after the checksum
        return bytes(b)

    def mutate(self, data: bytes) -> bytes:
        """Bit flips, truncations, extensions and field changes of a real datagram."""
        rng = self.rng
        b = bytearray(data)
        op = rng.randrange(9)
        self.coverage["mutation_op"].add(op)
        if op == 0 and b:
            for _ in range(rng.randrange(1, 9)):
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b = b[: rng.randrange(len(b))]
        elif op == 2:
            b += rng.randbytes(rng.randrange(1, 64))
        elif op == 3 and len(b) >= 20:
            field = rng.randrange(4)
            if field == 0:
                b[4:8] = rng.randbytes(4)  # seq
            elif field == 1:
                b[8:12] = rng.randbytes(4)  # ack
            elif field == 2:
                b[0:4] = rng.randbytes(4)  # ports
            else:
                b[14:16] = rng.randbytes(2)  # window
        elif op == 4 and len(b) >= 20:
            b[13] = rng.getrandbits(8)  # flags
        elif op == 5 and len(b) >= 20:
            b[12] = (rng.randrange(16) << 4) | rng.getrandbits(4)  # data offset, reserved
        elif op == 6 and len(b) >= 20:
            b[16:18] = rng.choice((b"\0\0", rng.randbytes(2)))  # checksum
        elif op == 7 and len(b) > 20:
            end = min(len(b), (b[12] >> 4) * 4)
            if end > 20:
                i = rng.randrange(20, end)
                b[i] = rng.getrandbits(8)  # an options byte
        elif op == 8 and len(b) >= 20:
            b[16:18] = b"\0\0"
            b[16:18] = U16.pack(internet_checksum(bytes(b)) or 0xFFFF)  # made valid again
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
            if rng.random() < 0.5:
                b[16:18] = U16.pack(internet_checksum(bytes(b[:16]) + b"\0\0" + bytes(b[18:])) or 0xFFFF)
        return bytes(b)

    def captured(self) -> tuple[bytes, bool]:
        """A real datagram of the legitimate exchange, and whether it went client -> server."""
        rng = self.rng
        pools = [(p, d) for p, d in ((self.c2s, True), (self.s2c, False)) if p]
        if not pools or rng.random() < 0.1:
            if self.first:
                return rng.choice(self.first), True
            return self.segment(self.lport, self.rport, self.c_iss, self.s_iss, ACK), True
        pool, c2s = rng.choice(pools)
        return pool[rng.randrange(len(pool))], c2s

    # ------------------------------------------------------------ the legitimate connection

    def side(self, to_server: bool) -> tuple[int, int, int, int]:
        """(src port, dst port, ISN of the sender it poses as, ISN of the receiver)."""
        if to_server:
            return self.lport, self.rport, self.c_iss, self.s_iss
        return self.rport, self.lport, self.s_iss, self.c_iss

    def unsafe(self, data: bytes, to_server: bool) -> bool:
        """Could the receiver accept this as its peer's (an on-path injection
        that succeeds)? Conservative: a RST whose sequence number lies anywhere
        in the sender's sequence space of this transfer (it might be RCV.NXT),
        or a segment with an ACK the receiver could find acceptable."""
        try:
            seg = decode(data)
        except DecodeError:
            return False
        src, dst, peer_isn, own_isn = self.side(to_server)
        if seg.src_port != src or seg.dst_port != dst:
            return False
        f = seg.flags
        if f & SYN and f & (FIN | RST):
            return False  # invalid flags: dropped by the endpoint
        if not f & (SYN | RST | ACK):
            return False
        if f & RST:
            return (seg.seq - peer_isn) & MASK <= self.total + 2
        if f & SYN:
            return False  # a challenge ACK at most (RFC 5961 §4)
        off = (seg.ack - own_isn) & MASK
        return not self.total + 2 < off < (1 << 32) - (1 << 24)

    def rfc5961(self, to_server: bool) -> bytes:
        rng = self.rng
        src, dst, peer_isn, own_isn = self.side(to_server)
        total = self.total
        kind = rng.randrange(10)
        self.coverage["rfc5961_kind"].add(kind)
        if rng.random() < 0.5:
            seq = rng.getrandbits(32)
        else:  # near or in the receive window
            seq = peer_isn + rng.randrange(total + (4 << 20))
        r = rng.random()
        if r < 0.4:
            ack = own_isn + total + 3 + rng.randrange((1 << 31) - total - 3)  # not yet sent
        elif r < 0.7:
            ack = own_isn - (1 << 24) - rng.randrange(1 << 30)  # too old
        else:
            ack = rng.getrandbits(32)
        ts = bytes((1, 1, 8, 10)) + rng.randbytes(8) if rng.random() < 0.5 else b""
        if kind == 0:  # RST: in the window (a challenge ACK) or anywhere
            seq = peer_isn + total + 3 + rng.randrange(4 << 20) if rng.random() < 0.5 else seq
            return self.segment(src, dst, seq, 0, RST, ts)
        if kind == 1:
            seq = peer_isn + total + 3 + rng.randrange(4 << 20) if rng.random() < 0.5 else seq
            return self.segment(src, dst, seq, ack, RST | ACK, ts)
        if kind == 2:
            return self.segment(src, dst, seq, 0, SYN, bytes((2, 4)) + U16.pack(rng.choice(SPECIAL_MSS)) + ts)
        if kind == 3:
            return self.segment(src, dst, seq, ack, SYN | ACK, ts)
        if kind == 4:
            return self.segment(src, dst, seq, ack, ACK, ts)
        if kind == 5:
            return self.segment(src, dst, seq, ack, ACK | 0x08, ts, rng.randbytes(rng.randrange(1, 1400)))
        if kind == 6:
            return self.segment(src, dst, seq, ack, ACK | FIN, ts, self.payload())
        if kind == 7:
            n = rng.randrange(1, 4)
            blocks = b"".join(U32.pack(((peer_isn if rng.random() < 0.5 else own_isn)
                                        + rng.randrange(total + 2)) & MASK) for _ in range(2 * n))
            return self.segment(src, dst, seq, ack, ACK, ts + bytes((1, 1, 5, 2 + 8 * n)) + blocks)
        if kind == 8:
            return self.segment(src, dst, seq, ack, ACK | 0x20, ts, self.payload(), urgent=rng.getrandbits(16))
        return self.segment(src, dst, seq, ack, rng.choice((ACK, SYN, RST, ACK | 0x08)),
                            self.bad_options(), self.payload(), csum=rng.choice((0, 1, 2)))


    # ------------------------------------------------------------ hostile peers

    def hostile_open(self) -> None:
        rng = self.rng
        index = rng.randrange(PLAIN_SOCKETS)
        sport = rng.randrange(1, 1024)  # a range the other categories rarely draw
        if (index, sport) in self.peers:
            return
        ts = rng.random() < 0.7
        wscale = rng.choice((None, 0, 7, 14, 15, 255))
        mss = rng.choice(SPECIAL_MSS + (1432, 536))
        self.coverage["hostile_mss"].add(mss)
        peer = Peer(index, sport, rng.getrandbits(32), ts, wscale)
        opts = bytes((2, 4)) + U16.pack(mss)
        if wscale is not None:
            opts += bytes((1, 3, 3, wscale))
        if rng.random() < 0.7:
            opts += bytes((1, 1, 4, 2))
        if ts:
            opts += bytes((1, 1, 8, 10)) + U32.pack(peer.tsval) + U32.pack(0)
        self.peers[(index, sport)] = peer
        self.send_peer(peer, self.segment(sport, self.server_port, peer.isn, 0, SYN, opts,
                                          window=rng.choice((0, 1, 1000, 65535))))
        self.stats["hostile_opened"] += 1

    def send_peer(self, peer: Peer, data: bytes) -> None:
        try:
            self.plain[peer.index].send(data)
        except OSError:
            self.stats["send_errors"] += 1
            return
        self.stats["to_server"] += 1
        self.stats["plain_to_server"] += 1
        self.stats["hostile_segments"] += 1

    def drain_plain(self, limit: int = 64) -> None:
        """Read what the server sent to the plain sockets: the SYN,ACKs and
        segments of the hostile peers' connections (the rest is dropped)."""
        for index, sock in enumerate(self.plain):
            for _ in range(limit):
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                self.stats["plain_received"] += 1
                try:
                    seg = decode(data)
                except DecodeError:
                    continue
                peer = self.peers.get((index, seg.dst_port))
                if peer is None:
                    continue
                if seg.ts is not None:
                    peer.server_tsval = seg.ts[0]
                if seg.flags & RST:
                    del self.peers[(index, seg.dst_port)]
                    self.stats["hostile_reset_by_server"] += 1
                    continue
                if not peer.established:
                    if seg.flags & (SYN | ACK) == SYN | ACK and seg.ack == peer.snd_nxt:
                        peer.established = True
                        peer.server_isn = seg.seq
                        peer.rcv_hi = (seg.seq + 1) & MASK
                        peer.ts = peer.ts and seg.ts is not None
                        self.stats["hostile_established"] += 1
                        self.send_peer(peer, self.peer_segment(peer, ACK, b""))
                    continue
                end = (seg.seq + len(seg.payload) + (1 if seg.flags & FIN else 0)) & MASK
                if 0 < (end - peer.rcv_hi) & MASK < 1 << 30:
                    peer.rcv_hi = end
                if seg.flags & ACK:
                    peer.last_ack = seg.ack

    def peer_segment(self, peer: Peer, flags: int, payload: bytes, *, seq: int | None = None,
                     ack: int | None = None, window: int | None = None, sack: bytes = b"",
                     urgent: int = 0, extra: bytes = b"") -> bytes:
        rng = self.rng
        opts = b""
        if peer.ts:
            if rng.random() < 0.05:
                peer.tsval = rng.getrandbits(32)  # a jump, forward or back
            else:
                peer.tsval = (peer.tsval + 1) & MASK
            tsecr = peer.server_tsval if rng.random() < 0.9 else rng.getrandbits(32)
            opts = bytes((1, 1, 8, 10)) + U32.pack(peer.tsval) + U32.pack(tsecr)
        opts += sack + extra
        return self.segment(peer.sport, self.server_port, peer.snd_nxt if seq is None else seq,
                            peer.rcv_hi if ack is None else ack, flags, opts[:40], payload,
                            window=rng.choice((65535, 65535, 4096, 1)) if window is None else window,
                            urgent=urgent, csum=rng.choice((0, 0, 1)))

    def hostile_tick(self) -> None:
        rng = self.rng
        live = [p for p in self.peers.values() if p.established]
        if not live:
            return
        peer = rng.choice(live)
        action = rng.randrange(13)
        self.coverage["hostile_action"].add(action)
        self.stats["hostile_actions"] += 1
        out: list[bytes] = []
        if action == 0:  # in-order data, up to twice the MSS
            payload = rng.randbytes(rng.randrange(1, 3000))
            out.append(self.peer_segment(peer, ACK | 0x08, payload))
            peer.snd_nxt = (peer.snd_nxt + len(payload)) & MASK
        elif action == 1:  # out of order, inside or beyond the window
            payload = rng.randbytes(rng.randrange(1, 1500))
            seq = peer.snd_nxt + rng.randrange(1, 1 << rng.choice((12, 20, 23, 30)))
            out.append(self.peer_segment(peer, ACK, payload, seq=seq & MASK))
        elif action == 2:  # overlapping what was sent, with other bytes
            back = rng.randrange(1, 3000)
            payload = rng.randbytes(rng.randrange(1, 4000))
            seq = (peer.snd_nxt - back) & MASK
            out.append(self.peer_segment(peer, ACK, payload, seq=seq))
            if len(payload) > back:
                peer.snd_nxt = (seq + len(payload)) & MASK
        elif action == 3:  # SACK blocks: lies about what arrived, up to 4
            n = rng.randrange(1, 4 if peer.ts else 5)
            edges = []
            for _ in range(n):
                left = (peer.server_isn + rng.randrange(1, max(2, (peer.rcv_hi - peer.server_isn) & MASK) + 100_000)) & MASK
                right = (left + rng.choice((0, 1, rng.randrange(1, 100_000), -5))) & MASK
                edges += [left, right]
            sack = bytes((1, 1, 5, 2 + 8 * n)) + b"".join(U32.pack(e) for e in edges)
            out.append(self.peer_segment(peer, ACK, b"", ack=peer.last_ack if rng.random() < 0.5 else None,
                                         sack=sack))
        elif action == 4:  # a zero window, or the largest one
            out.append(self.peer_segment(peer, ACK, b"", window=rng.choice((0, 0, 65535))))
        elif action == 5:  # ACKs of odd numbers: partial, old, unsent
            base = peer.server_isn
            ack = rng.choice(((base + rng.randrange(1 << 24)) & MASK, rng.getrandbits(32),
                              (peer.rcv_hi + rng.randrange(1, 1 << 20)) & MASK, peer.last_ack))
            out.append(self.peer_segment(peer, ACK, b"", ack=ack))
        elif action == 6:  # urgent data
            payload = rng.randbytes(rng.randrange(1, 500))
            out.append(self.peer_segment(peer, ACK | 0x20 | 0x08, payload, urgent=rng.getrandbits(16)))
            peer.snd_nxt = (peer.snd_nxt + len(payload)) & MASK
        elif action == 7:  # FIN, and later data after it
            if not peer.fin_sent:
                out.append(self.peer_segment(peer, ACK | FIN, b""))
                peer.snd_nxt = (peer.snd_nxt + 1) & MASK
                peer.fin_sent = True
            else:
                out.append(self.peer_segment(peer, ACK, rng.randbytes(100)))
        elif action == 8:  # a SYN on the established connection
            out.append(self.peer_segment(peer, SYN, b"", seq=(peer.isn + rng.choice((0, 1, 1000))) & MASK))
        elif action == 9:  # a huge segment: beyond the window, beyond the MSS
            payload = rng.randbytes(rng.randrange(8000, 60000))
            out.append(self.peer_segment(peer, ACK, payload))
        elif action == 10:  # three duplicate ACKs
            seg = self.peer_segment(peer, ACK, b"", ack=peer.last_ack)
            out += [seg, seg, seg]
        elif action == 11:  # a RST that is not exact: a challenge ACK
            out.append(self.peer_segment(peer, RST, b"", seq=(peer.snd_nxt + rng.randrange(1, 5000)) & MASK))
        else:  # options that are odd but well-formed, or not, on data
            payload = rng.randbytes(rng.randrange(0, 200))
            extra = self.bad_options() if rng.random() < 0.5 else self.good_options()
            out.append(self.peer_segment(peer, ACK, payload, extra=extra[:28]))
        for data in out:
            self.send_peer(peer, data)

    def hostile_close(self) -> None:
        """RST each hostile connection: at our in-order edge and at the
        server's latest ACK, one of which is its RCV.NXT."""
        for peer in list(self.peers.values()):
            if not peer.established:
                continue
            for seq in {peer.snd_nxt, peer.last_ack}:
                self.send_peer(peer, self.segment(peer.sport, self.server_port, seq, 0, RST))

    # ------------------------------------------------------------ sending

    def track_syn(self, data: bytes, index: int) -> None:
        """Remember each SYN that could leave a half-open connection behind, to
        reset it at the end (a RST with exactly its RCV.NXT)."""
        if len(data) >= 20 and data[13] & (SYN | ACK | RST | FIN) == SYN \
                and U16.unpack_from(data, 2)[0] == self.server_port:
            try:
                seg = decode(data)
            except DecodeError:
                return
            self.syns.add((index, seg.src_port, seg.seq))

    def send_plain(self, data: bytes) -> None:
        i = self.rng.randrange(PLAIN_SOCKETS)
        try:
            self.plain[i].send(data)
        except OSError:
            self.stats["send_errors"] += 1
            return
        self.stats["to_server"] += 1
        self.stats["plain_to_server"] += 1
        self.track_syn(data, i)

    def send_path(self, data: bytes, to_server: bool) -> None:
        """On the legitimate connection's UDP path, unless it could succeed."""
        if self.lport == 0 or self.unsafe(data, to_server):
            self.stats["held_back"] += 1
            self.send_plain(data)  # from another address, where it is harmless
            return
        try:
            if to_server:
                self.b.send(data)
            elif self.client is not None:
                self.a.sendto(data, self.client)
            else:
                return
        except OSError:
            self.stats["send_errors"] += 1
            return
        if to_server:
            self.stats["to_server"] += 1
            self.stats["path_to_server"] += 1
            self.track_syn(data, -1)
        else:
            self.stats["path_to_client"] += 1

    def one(self) -> None:
        rng = self.rng
        r = rng.randrange(100)
        if r < 10:
            cat, data = "flags_sweep", self.flags_sweep()
        elif r < 15:
            cat, data = "truncated", self.truncated()
        elif r < 21:
            cat, data = "bad_data_offset", self.bad_data_offset()
        elif r < 32:
            cat, data = "bad_option_lengths", self.bad_option_lengths()
        elif r < 40:
            cat, data = "syn_options", self.syn_options()
        elif r < 43:
            cat, data = "garbage_syn", self.garbage_syn()
        elif r < 48:
            cat, data = "sack_anywhere", self.sack_anywhere()
        elif r < 53:
            cat, data = "random_bytes", self.random_bytes()
        elif r < 57:
            cat, data = "bad_checksum", self.bad_checksum()
        elif r < 78:
            cat = "mutation"
            real, c2s = self.captured()
            data = self.mutate(real) if rng.random() < 0.95 else real
            self.by_category[cat] += 1
            if rng.random() < 0.3:
                self.send_path(data, to_server=c2s)
            else:
                self.send_plain(data)
            return
        else:
            cat = "rfc5961"
            to_server = rng.random() < 0.75
            data = self.rfc5961(to_server)
            self.by_category[cat] += 1
            if rng.random() < 0.9:
                self.send_path(data, to_server)
            else:
                self.send_plain(data)  # the right ports from a wrong address
            return
        self.by_category[cat] += 1
        if cat == "syn_options" and rng.random() < 0.2:
            # Valid SYNs from the legitimate client's UDP address, other ports.
            b = bytearray(data)
            if U16.unpack_from(b, 0)[0] == self.lport:
                b[0:2] = U16.pack((self.lport + 1) & 0xFFFF)
            self.send_path(bytes(b), to_server=True)
            return
        self.send_plain(data)

    def pace(self, deadline: float) -> None:
        """Wait while the server's (or client's) socket holds QUEUE_LIMIT bytes."""
        ports = {self.server_port}
        if self.client is not None:
            ports.add(self.client[1])
        until = min(time.monotonic() + MAX_WAIT, deadline, self.hard_deadline)
        waited = False
        while True:
            queues = udp_queues(ports)
            if max((q for q, _ in queues.values()), default=0) <= QUEUE_LIMIT:
                break
            if time.monotonic() >= until:
                self.stats["pace_timeouts"] += 1
                break
            waited = True
            select.select([self.a, self.b], [], [], 0.001)
            self.pump()
        if waited:
            self.stats["pace_waits"] += 1

    def attack(self) -> None:
        start = time.monotonic()
        deadline = min(start + self.max_seconds, self.hard_deadline)
        # A few hostile peers first, before the SYN flood fills the listener's
        # table: wait (bounded) for their handshakes.
        for _ in range(min(8, self.max_peers)):
            self.hostile_open()
        until = min(start + 10, deadline)
        while time.monotonic() < until and not all(p.established for p in self.peers.values()):
            select.select(self.plain + [self.a, self.b], [], [], 0.005)
            self.pump()
            self.drain_plain()
        sent = 0
        while sent < self.count and time.monotonic() < deadline:
            if sent % CHECK_EVERY == 0:
                self.pace(deadline)
            if sent % 32 == 0:
                self.pump()
                self.drain_plain()
                if self.stats["hostile_opened"] < self.max_peers and self.rng.random() < 0.25:
                    self.hostile_open()
            if sent % 16 == 0:
                self.hostile_tick()
            self.one()
            sent += 1
        self.drain_plain()
        self.hostile_close()
        # Reset every half-open connection our SYNs may have left (exact RCV.NXT).
        for n, (index, sport, seq) in enumerate(sorted(self.syns)):
            if n % CHECK_EVERY == 0:
                self.pace(deadline + 10)
                self.pump()
            data = self.segment(sport, self.server_port, seq + 1, 0, RST)
            if index < 0:
                try:
                    self.b.send(data)
                except OSError:
                    self.stats["send_errors"] += 1
                    continue
                self.stats["path_to_server"] += 1
            else:
                try:
                    self.plain[index].send(data)
                except OSError:
                    self.stats["send_errors"] += 1
                    continue
                self.stats["plain_to_server"] += 1
            self.stats["to_server"] += 1
            self.stats["syn_cleanup_rsts"] += 1
        self.stats["generated"] = sent
        self.stats["attack_seconds_x1000"] = int((time.monotonic() - start) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("server_port", type=int)
    parser.add_argument("--total", type=int, required=True, help="bytes the legitimate client sends (and gets back)")
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--hard-deadline", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--hostile-peers", type=int, default=48)
    parser.add_argument("--linger", type=float, default=60.0, help="seconds of relaying after DONE, at most")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "big")
    att = Attack(args)
    print(f"RELAY {att.a.getsockname()[1]}", flush=True)
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    buf = b""
    eof = False

    def read_stdin() -> None:
        nonlocal buf, eof
        for _ in range(16):
            try:
                chunk = os.read(stdin, 4096)
            except BlockingIOError:
                return
            if not chunk:
                eof = True
                return
            buf += chunk

    fds: list[Any] = [att.a, att.b, stdin]
    while b"\n" not in buf and not eof and time.monotonic() < att.hard_deadline:
        ready, _, _ = select.select(fds, [], [], 0.005)
        if stdin in ready:
            read_stdin()
        att.pump()
    if b"\n" not in buf:
        print("RELAY_STATS " + json.dumps({"error": "no GO"}), flush=True)
        return
    line, _, buf = buf.partition(b"\n")
    _, lport, rport, c_iss, s_iss = line.split()
    att.lport, att.rport, att.c_iss, att.s_iss = int(lport), int(rport), int(c_iss), int(s_iss)
    att.attack()
    done: dict[str, Any] = {
        "seed": args.seed,
        "stats": dict(att.stats),
        "by_category": dict(att.by_category),
        "coverage": {k: sorted(v) for k, v in att.coverage.items()},
        "learned": att.learned,
        "syns_tracked": len(att.syns),
    }
    print("DONE " + json.dumps(done), flush=True)
    fds = [att.a, att.b, stdin]
    until = time.monotonic() + args.linger  # relay the end of the legitimate transfer
    while not eof and time.monotonic() < until:
        ready, _, _ = select.select(fds, [], [], 0.005)
        if stdin in ready:
            read_stdin()
        att.pump()
    print("RELAY_STATS " + json.dumps(dict(att.stats)), flush=True)


if __name__ == "__main__":
    main()
