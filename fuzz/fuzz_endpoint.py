#!/usr/bin/env python3
"""Coverage-guided fuzzing of a whole server ``Endpoint`` fed by hostile peers
(atheris/libFuzzer), in virtual time.

One fuzz input is a sequence of records (see ``Reader`` and the ``K_*`` kinds
below): raw datagrams, structured segments built with ``wire.encode`` whose
fields the fuzzer picks (flags, sequence and acknowledgment numbers relative to
what the peer has seen of the server, windows, MSS, window scale, SACK blocks,
timestamps, payload, checksum, a last byte-level mutation), bursts (SYN floods,
data streams, duplicate ACKs with SACK), replays of earlier datagrams, steps of
virtual time, and calls of the server's user (accept, read, send, shutdown,
close, abort, and an active connect). Datagrams come from three peer UDP
addresses. After every datagram the harness calls ``datagrams_to_send(now)``
and ``poll_events()``, and ``handle_timer(now)`` while a deadline is due.

The server is ``Endpoint(Config(), seed=1)`` listening on port 80 with the
default ``Config``; ports 81 and 82 listen with small and unusual configs
(see ``listeners_spec``) so that full windows, keep-alive and the paths without
options are in reach of short inputs. Port 83 has no listener.

Invariants (any violation raises, which libFuzzer reports as a crash):

* No exception escapes an Endpoint call; user calls raise nothing but
  ``ConnectionStateError``. No connection fault: the endpoint's fault
  isolation (``connection_faults``, logged "failed internally") means an
  exception inside the engine, i.e. a bug; the harness re-raises it.
* Every datagram sent decodes, goes to a peer address, and carries at most
  min(our MSS, the peer's clamped MSS) bytes of payload plus options.
* Memory is bounded: every connection is owned by the user (accepted or
  connected), waits in an accept queue, or is half open; half-open <=
  ``max_half_open``, accept queue <= ``backlog``; buffered
  received bytes (readable + out of order) <= ``recv_buffer`` (+ the
  window-scale rounding of the advertised window); the send buffer holds no
  more than the user wrote; the SACK scoreboard lies within [SND.UNA, SND.MAX].
* Timers: after each step every deadline is finite, in the future and no
  further than the longest configured timer; the endpoint's ``get_timer()``
  is exactly the earliest deadline of its connections (no lost timer); firing
  timers always moves time forward (no timer storm at one instant), and a
  connection whose peer is silent wakes at most IDLE_WAKEUPS times in a row
  without sending anything, changing state or reporting an event.
* Events: at most one Connected, EofReceived and Closed per connection,
  nothing after Closed, and no CLOSED connection left in the table.
* Nothing stuck: after the input, 2 hours of virtual time with no peer
  leave only connections that legitimately wait (idle ESTABLISHED,
  CLOSE_WAIT or half-closed FIN_WAIT_2 with nothing unsent or unacknowledged,
  or a connection whose next timer is set). Then the user closes everything
  (accepts and closes each connection, closes the listeners); 2 more hours
  must leave no connection at all, and every connection must have reported
  exactly one Closed.

Open engine bugs are listed in ``KNOWN_BUGS``; RUDP_FUZZ_WORKAROUNDS=all
steps around them.

Run: ``.venv/bin/python fuzz/fuzz_endpoint.py fuzz/work/endpoint fuzz/corpus/endpoint``
(see fuzz/README.md). ``test_one_input`` also runs without atheris.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # fuzz the working tree's rudp

MASK = 0xFFFFFFFF
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

# ----------------------------------------------------------------- input format
#
# An input is a list of records: kind byte, length byte (two bytes for
# K_RAW_LONG), then that many body bytes. Each body is read by its own Reader,
# which yields zeros past its end, so every byte string is a valid input and
# libFuzzer's splices and crossovers move whole records.

K_RAW, K_SEG, K_TIME, K_APP, K_BURST, K_RAW_LONG, K_DUP = range(7)
N_KINDS = 7
MAX_RECORDS = 300
MAX_DATAGRAMS = 3000

ADDRS = [("192.0.2.1", 5000), ("192.0.2.1", 5001), ("198.51.100.9", 5000)]
PEER_PORTS = [40000, 40001, 40002, 65535]
OUR_PORTS = [80, 81, 82, 83]
#: Steps of virtual time, in seconds (a datagram record's first byte, K_TIME).
DT = [0, 0, 0.0005, 0.001, 0.005, 0.01, 0.02, 0.04, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 1.5, 2, 3,
      5, 10, 30, 60, 61, 75, 120, 300, 600, 1000, 3600, 7200]
AUTO = None
FLAGS = [AUTO, SYN, ACK, ACK | PSH, FIN | ACK, RST, RST | ACK, SYN | ACK, FIN | PSH | ACK,
         SYN | ECE | CWR, ACK | URG, 0, FIN, SYN | FIN, SYN | RST, PSH]
DELTAS = [0, 0, 0, 1, -1, 2, -2, 10, -10, 100, 536, -536, 1000, 1432, -1432, 4000, 65535,
          65536, -65536, 1 << 20, 1 << 30, 1 << 31, -(1 << 31) + 1, MASK]
WINDOWS = [65535, 0, 1, 100, 536, 1000, 4096, 30000, 65534]
MSSES = [1432, 0, 1, 11, 12, 40, 48, 87, 88, 89, 536, 1000, 1460, 9000, 65535]
PAYLOADS = [0, 1, 2, 10, 47, 100, 500, 535, 536, 537, 1000, 1420, 1432, 1433, 1460, 2000,
            4000, 8000, 20000, 65000]
#: Open engine bugs the harness can step around (RUDP_FUZZ_WORKAROUNDS=name,...
#: or "all"), to keep fuzzing past them; their reproducers are in
#: fuzz/known_bugs/. Delete an entry once its bug is fixed.
KNOWN_BUGS: dict[str, str] = {}
#: Timer wakeups in a row that may send nothing while the peer is silent.
IDLE_WAKEUPS = 50
_env = os.environ.get("RUDP_FUZZ_WORKAROUNDS", "")
WORKAROUNDS = set(KNOWN_BUGS) if _env == "all" else {w for w in _env.split(",") if w}
SEND_CAP = 1 << 18  # the harness's user never has more than this unacknowledged
MAX_CONNECTS = 8
PATTERN = bytes(range(256)) * 257


class Reader:
    """Front-to-back reader of fuzz bytes; zeros once the bytes run out.

    (atheris.FuzzedDataProvider reads integers from the end and bytes from the
    front, with version-specific rules, so a committed corpus could not be
    written for it reliably; this format is fixed by this file, and
    fuzz/make_corpus.py writes records in it.)
    """

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return max(0, len(self.data) - self.pos)

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, nbytes: int) -> int:
        return int.from_bytes(self.take(nbytes).ljust(nbytes, b"\0"), "big")

    def u8(self) -> int:
        return self.uint(1)

    def u16(self) -> int:
        return self.uint(2)

    def u32(self) -> int:
        return self.uint(4)

    def s32(self) -> int:
        v = self.u32()
        return v - (1 << 32) if v >= 1 << 31 else v

    def pick(self, table: list[Any]) -> Any:
        """An entry of ``table``; the byte past the table's end means 'read raw'."""
        return table[self.u8() % len(table)]

    def code(self, table: list[Any], raw: Any) -> Any:
        """``table[c % len(table)]`` for a code byte c below 128, else ``raw(self)``."""
        c = self.u8()
        return table[c % len(table)] if c < 128 else raw(self)


# ------------------------------------------------------------------ the engine

wire: Any = None
Endpoint: Any = None
Config: Any = None
State: Any = None
ConnectionStateError: Any = None
events: Any = None
MIN_MSS = 88


def _load() -> None:
    """Import the engine (under atheris instrumentation when fuzzing)."""
    global wire, Endpoint, Config, State, ConnectionStateError, events, MIN_MSS
    if wire is not None:
        return
    from rudp.core import config as config_mod
    from rudp.core import events as events_mod
    from rudp.core import wire as wire_mod
    from rudp.core.connection import ConnectionStateError as cse
    from rudp.core.endpoint import Endpoint as ep_cls
    from rudp.core.state import State as state_cls

    wire, Endpoint, Config, State = wire_mod, ep_cls, config_mod.Config, state_cls
    ConnectionStateError, events = cse, events_mod
    MIN_MSS = getattr(config_mod, "MIN_MSS", 88)


def listeners_spec() -> list[tuple[int, Any, dict[str, Any]]]:
    """(port, config, listen() keywords) of the server's listeners."""
    small = Config(
        mss=536, recv_buffer=4000, window_scale=False, sack=False, timestamps=False,
        initial_window=2, keepalive=True, keepalive_idle=30.0, keepalive_interval=5.0,
        keepalive_count=3, user_timeout=60.0, syn_retries=2, max_retries=4, msl=5.0,
    )
    odd = Config(
        mss=1000, recv_buffer=20000, checksum=True, nodelay=True, header_prediction=False,
        batch_send=False, tail_loss_probe=False, delayed_ack=0.2, rto_min=0.05, rto_max=10.0,
        fin_wait_2_timeout=20.0, dupack_threshold=2,
    )
    return [
        (80, Config(), {"backlog": 4, "max_half_open": 8}),
        (81, small, {"backlog": 2, "max_half_open": 3}),
        (82, odd, {"backlog": 3, "max_half_open": 4, "syn_cookies": "never"}),
    ]


def horizon(cfg: Any) -> float:
    """The furthest a deadline of a connection with ``cfg`` may lie ahead."""
    spans = [cfg.rto_max, cfg.rto_initial, 2 * cfg.msl, cfg.delayed_ack]
    if cfg.fin_wait_2_timeout is not None:
        spans.append(cfg.fin_wait_2_timeout)
    if cfg.keepalive:
        spans += [cfg.keepalive_idle, cfg.keepalive_interval]
    return float(max(spans)) + 1e-6


class Violation(AssertionError):
    """An invariant of the engine's documented behaviour does not hold."""


class FaultCatcher(logging.Handler):
    """Collects the exceptions the endpoint's fault isolation logs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.faults: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.faults.append(record)


_catcher = FaultCatcher()


def sgt(a: int, b: int) -> bool:
    """Serial-number a > b (RFC 1982)."""
    return 0 < ((a - b) & MASK) < 1 << 31


class View:
    """What one peer (address, its port, our port) knows: its own sequence
    space, and what it has seen of the server's segments."""

    __slots__ = ("acked", "addr", "isn", "nxt", "our_port", "peer_port", "srv_ack", "srv_end",
                 "srv_isn", "srv_max", "srv_seq", "srv_ts", "srv_win", "tsval")

    def __init__(self, addr: Any, peer_port: int, our_port: int) -> None:
        self.addr, self.peer_port, self.our_port = addr, peer_port, our_port
        self.isn: int | None = None  # our (the peer's) ISN, once a SYN was sent
        self.nxt: int | None = None  # the peer's next sequence number
        self.acked: int | None = None  # the last ACK the peer sent
        self.tsval = 0
        self.srv_isn: int | None = None
        self.srv_seq = self.srv_end = self.srv_ack = self.srv_ts = 0
        self.srv_max: int | None = None
        self.srv_win = 0


class Harness:
    def __init__(self) -> None:
        self.ep = Endpoint(Config(), seed=1)
        self.now = 0.0
        self.horizon = 0.0
        self.listeners = []
        for port, cfg, kw in listeners_spec():
            try:
                lst = self.ep.listen(port, config=cfg, **kw)
            except TypeError:  # an engine without that keyword (syn_cookies)
                kw = {k: v for k, v in kw.items() if k in ("backlog", "max_half_open")}
                lst = self.ep.listen(port, config=cfg, **kw)
            self.listeners.append(lst)
            self.horizon = max(self.horizon, horizon(cfg))
        self.horizon = max(self.horizon, horizon(self.ep.config))
        self.ep.on_state_change = self._state_change
        self.conns: dict[Any, dict[str, int]] = {}  # every connection seen -> event counts
        self.transitions: set[tuple[str, str]] = set()  # (old, new) state names, for make_corpus
        self.owned: list[Any] = []  # accepted or connected by the user, in order
        self.connects = 0
        self.views: dict[tuple[Any, int, int], View] = {}
        self.history: list[tuple[bytes, Any]] = []
        self.datagrams = 0
        self.idle: dict[Any, tuple[int, int]] = {}  # conn -> (empty wakeups in a row, segments seen)
        _catcher.faults.clear()

    # ------------------------------------------------------------ plumbing

    def _state_change(self, conn: Any, old: Any, new: Any) -> None:
        self.conns.setdefault(conn, {})
        self.transitions.add((old.name, new.name))

    def view(self, addr: Any, peer_port: int, our_port: int) -> View:
        key = (addr, peer_port, our_port)
        v = self.views.get(key)
        if v is None:
            v = self.views[key] = View(addr, peer_port, our_port)
        return v

    def check_faults(self) -> None:
        if _catcher.faults:
            rec = _catcher.faults[0]
            exc = rec.exc_info[1] if rec.exc_info else None
            raise Violation(f"engine fault: {rec.getMessage()}") from exc
        faults = {k: v for k, v in self.ep.counters.items() if "fault" in k and v}
        if faults:
            raise Violation(f"engine fault counters: {faults}")

    def flush(self) -> set[Any]:
        """What a driver does after any input: send, then take the events.
        Returns the connections that sent something or had an event."""
        out = self.ep.datagrams_to_send(self.now)
        evs = self.ep.poll_events()
        self.check_faults()
        active = set()
        for data, addr in out:
            active.add(self.observe_output(data, addr))
        for conn, ev in evs:
            self.observe_event(conn, ev)
            active.add(conn)
        self.check_table()
        return active

    def settle(self) -> None:
        """Run the timers that are due now; they must not keep firing at one instant."""
        for _ in range(50):
            t = self.ep.get_timer()
            if t is None or t > self.now:
                return
            due = {c: (c.state, [n for n, d in self.timers(c).items() if d <= self.now])
                   for c in self.ep.connections.values()
                   if (d := c.get_timer()) is not None and d <= self.now}
            self.ep.handle_timer(self.now)
            active = self.flush()
            self.count_idle_wakeups(due, active)
        raise Violation(f"timer storm: a deadline stays due at t={self.now} ({self.ep.get_timer()})")

    def count_idle_wakeups(self, due: dict[Any, Any], active: set[Any]) -> None:
        """A connection whose timer keeps firing with nothing to show for it
        (no segment sent, no event, no state change) while nothing arrives
        from its peer burns CPU for nothing: at most IDLE_WAKEUPS in a row."""
        for conn, (state, _fired) in due.items():
            received = conn.stats.segments_received
            count, seen = self.idle.get(conn, (0, received))
            if conn in active or conn.state is not state or received != seen:
                self.idle.pop(conn, None)
                continue
            count += 1
            self.idle[conn] = (count, received)
            if count > IDLE_WAKEUPS:
                raise Violation(f"{conn!r}: {count} timer wakeups in a row at t={self.now} sent "
                                f"nothing (timers {self.timers(conn)}, snd_una {conn.snd_una}, "
                                f"snd_nxt {conn.snd_nxt}, snd_max {conn.snd_max})")

    def advance(self, dt: float) -> None:
        """Move virtual time forward by ``dt``, firing each deadline on the way at its time."""
        end = self.now + dt
        for _ in range(100_000):
            t = self.ep.get_timer()
            if t is None or t > end:
                break
            if not math.isfinite(t):
                raise Violation(f"deadline {t}")
            self.now = max(self.now, t)
            self.settle()
        else:
            raise Violation("timer storm: 100000 deadlines in one time step")
        self.now = end
        self.settle()
        self.check_timers()

    def deliver(self, data: bytes, addr: Any, dt: float) -> None:
        if self.datagrams >= MAX_DATAGRAMS:
            return
        if dt:
            self.advance(dt)
        self.datagrams += 1
        self.history.append((data, addr))
        if len(self.history) > 64:
            del self.history[0]
        self.ep.datagram_received(data, addr, self.now)
        self.flush()
        self.settle()
        self.check_timers()

    # ------------------------------------------------------------ observing

    def observe_output(self, data: bytes, addr: Any) -> Any:
        if addr not in ADDRS:
            raise Violation(f"datagram to {addr!r}, which never sent us anything")
        try:
            seg = wire.decode(data)
        except wire.DecodeError as e:
            raise Violation(f"the endpoint sent a segment that does not decode: {e}: {data.hex()}")
        conn = self.ep.connections.get((addr, seg.src_port, seg.dst_port))
        if seg.payload:
            if seg.flags & (SYN | RST):
                raise Violation(f"payload on a SYN or RST: {seg}")
            if conn is not None:
                options = (data[12] >> 4) * 4 - wire.HEADER_LEN
                limit = min(conn.config.mss, max(conn.peer_mss, MIN_MSS))
                if len(seg.payload) + options > limit:
                    raise Violation(f"{len(seg.payload)} bytes + {options} of options exceed "
                                    f"MSS {limit}: {seg}")
        v = self.view(addr, seg.dst_port, seg.src_port)
        end = (seg.seq + seg.seg_len) & MASK
        if seg.flags & SYN:
            v.srv_isn = seg.seq
        v.srv_seq, v.srv_end = seg.seq, end
        if v.srv_max is None or sgt(end, v.srv_max):
            v.srv_max = end
        if seg.flags & ACK:
            v.srv_ack = seg.ack
        v.srv_win = seg.window
        if seg.ts is not None:
            v.srv_ts = seg.ts[0]
        return conn

    def observe_event(self, conn: Any, ev: Any) -> None:
        if not isinstance(ev, events.Event):
            raise Violation(f"not an event: {ev!r}")
        seen = self.conns.setdefault(conn, {})
        if seen.get("Closed"):
            raise Violation(f"{ev!r} after Closed on {conn!r}")
        name = type(ev).__name__
        seen[name] = seen.get(name, 0) + 1
        if name in ("Connected", "EofReceived", "Closed") and seen[name] > 1:
            raise Violation(f"{name} twice on {conn!r}")

    def check_table(self) -> None:
        """Bounded memory, after every flush."""
        ep = self.ep
        owned = set(self.owned)
        queued: set[Any] = set()
        for lst in self.listeners:
            queued.update(lst.accept_queue)
            half = sum(1 for c in ep.connections.values()
                       if c.listener is lst and c.state is State.SYN_RCVD)
            if lst.half_open != half:
                raise Violation(f"{lst!r}: half_open={lst.half_open}, {half} in SYN_RCVD")
            if half > lst.max_half_open:
                raise Violation(f"{lst!r}: {half} half open > max_half_open {lst.max_half_open}")
            if len(lst.accept_queue) > lst.backlog:
                raise Violation(f"{lst!r}: accept queue {len(lst.accept_queue)} > backlog "
                                f"{lst.backlog}")
        for key, conn in ep.connections.items():
            if key != (conn.addr, conn.local_port, conn.remote_port):
                raise Violation(f"{conn!r} filed under {key}")
            st = conn.state
            if st is State.CLOSED or st is State.LISTEN:
                raise Violation(f"{conn!r} left in the table")
            if conn not in owned and conn not in queued and st is not State.SYN_RCVD:
                raise Violation(f"{conn!r} is neither owned, queued nor half open")
            cfg = conn.config
            buffered = conn.readable + conn.rcvq.ooo.nbytes
            if buffered > cfg.recv_buffer + (1 << conn.rcv_wscale) - 1:
                raise Violation(f"{conn!r} buffers {buffered} received bytes, recv_buffer "
                                f"{cfg.recv_buffer}, wscale {conn.rcv_wscale}")
            if conn.send_buffer_size > SEND_CAP:
                raise Violation(f"{conn!r} holds {conn.send_buffer_size} bytes to send")
            if not conn.snd_una <= conn.snd_max or not conn.snd_nxt <= conn.snd_max:
                raise Violation(f"{conn!r}: una {conn.snd_una} nxt {conn.snd_nxt} max {conn.snd_max}")
            for start, end in conn.recovery.sacks.ranges:
                if not conn.snd_una <= start < end <= conn.snd_max:
                    raise Violation(f"{conn!r}: SACKed [{start}, {end}) outside "
                                    f"[{conn.snd_una}, {conn.snd_max}]")
        total_bound = sum(lst.max_half_open + lst.backlog for lst in self.listeners) + len(owned)
        if len(ep.connections) > total_bound:
            raise Violation(f"{len(ep.connections)} connections > bound {total_bound}")

    def check_timers(self) -> None:
        """After a step: deadlines finite, ahead, bounded, and all in the endpoint's heap."""
        earliest = None
        for conn in self.ep.connections.values():
            t = conn.get_timer()
            if t is None:
                continue
            if not math.isfinite(t) or t <= self.now or t > self.now + self.horizon:
                raise Violation(f"{conn!r}: deadline {t} at now={self.now} "
                                f"(horizon {self.horizon}), timers {self.timers(conn)}")
            earliest = t if earliest is None else min(earliest, t)
        got = self.ep.get_timer()
        if got != earliest:
            lost = [(c, self.timers(c)) for c in self.ep.connections.values()
                    if c.get_timer() is not None and (got is None or c.get_timer() < got)]
            raise Violation(f"endpoint get_timer()={got} but the earliest connection "
                            f"deadline is {earliest}: {lost}")

    @staticmethod
    def timers(conn: Any) -> dict[str, float]:
        t = conn.timers
        names = ("rtx", "tlp", "persist", "delack", "keepalive", "close")
        return {n: getattr(t, n) for n in names if getattr(t, n, None) is not None}

    # ------------------------------------------------------------ records

    def run(self, data: bytes) -> None:
        top = Reader(data)
        records = 0
        while top.remaining() and records < MAX_RECORDS and self.datagrams < MAX_DATAGRAMS:
            records += 1
            kind = top.u8() % N_KINDS
            length = top.u16() if kind == K_RAW_LONG else top.u8()
            body = Reader(top.take(length))
            if kind in (K_RAW, K_RAW_LONG):
                dt = body.pick(DT)
                addr = body.pick(ADDRS)
                self.deliver(body.take(body.remaining()), addr, dt)
            elif kind == K_SEG:
                self.structured(body)
            elif kind == K_TIME:
                self.advance(body.code(DT, lambda r: r.u16() / 100))
            elif kind == K_APP:
                self.app(body)
                self.flush()
                self.settle()
                self.check_timers()
            elif kind == K_BURST:
                self.burst(body)
            elif kind == K_DUP and self.history:
                dt = body.pick(DT)
                raw, addr = self.history[-1 - body.u8() % len(self.history)]
                if body.u8() & 1:  # with one byte changed
                    pos, val = body.u16(), body.u8()
                    if raw:
                        b = bytearray(raw)
                        b[pos % len(b)] = val
                        raw = bytes(b)
                self.deliver(raw, addr, dt)
        self.finish()

    def pick_view(self, r: Reader) -> View:
        sel = r.u8()
        if sel < 128 and self.views:
            views = list(self.views.values())
            return views[sel % len(views)]
        addr = r.pick(ADDRS)
        peer_port = r.code(PEER_PORTS, lambda rr: rr.u16())
        our_port = r.code(OUR_PORTS, lambda rr: rr.u16())
        return self.view(addr, peer_port, our_port)

    def peer_ts(self) -> int:
        return (int(self.now * 1000) + 0x1234567) & MASK

    def structured(self, r: Reader) -> None:
        """A segment from a peer, fields chosen by the fuzzer relative to the peer's view."""
        dt = r.pick(DT)
        if dt:
            self.advance(dt)
        v = self.pick_view(r)
        flags = r.code(FLAGS, lambda rr: rr.u8())
        if flags is AUTO:
            flags = SYN if v.srv_isn is None and v.isn is None else ACK
        # Sequence number: relative to a base the peer knows.
        base = r.u8() % 6
        if base == 0:  # the peer's own next number (its ISN for a SYN)
            if flags & SYN:
                seq = v.isn if v.isn is not None else (0x10000000 * (v.peer_port % 16) + 1000) & MASK
            else:
                seq = v.nxt if v.nxt is not None else v.srv_ack
        elif base == 1:
            seq = v.srv_ack  # what the server expects
        elif base == 2:
            seq = v.isn or 0
        elif base == 3:
            seq = v.srv_ack + v.srv_win  # the right edge of the server's window
        elif base == 4:
            seq = 0
        else:
            seq = r.u32()
        seq = (seq + r.code(DELTAS, Reader.s32)) & MASK
        base = r.u8() % 6
        if base == 0:
            ack = v.srv_max if v.srv_max is not None else 0  # all the server sent
        elif base == 1:
            ack = v.srv_seq
        elif base == 2:
            ack = (v.srv_isn or 0) + 1
        elif base == 3:
            ack = v.acked if v.acked is not None else 0
        elif base == 4:
            ack = 0
        else:
            ack = r.u32()
        ack = (ack + r.code(DELTAS, Reader.s32)) & MASK
        window = r.code(WINDOWS, Reader.u16)
        mask = r.u8()
        mss = r.code(MSSES, Reader.u16) if mask & 1 else None
        wscale = None
        if mask & 2:
            wscale = r.u8()
            if wscale < 128:
                wscale %= 16  # mostly shifts up to 15; above 127 as they come
        sack_perm = bool(mask & 4)
        ts = None
        if mask & 8:
            c = r.u8() % 5
            tsval = [self.peer_ts(), 0, v.tsval - 1, (self.peer_ts() + (1 << 31)) & MASK, 0][c]
            if c == 4:
                tsval = r.u32()
            c = r.u8() % 4
            tsecr = [v.srv_ts, 0, (v.srv_ts - 1000) & MASK, 0][c]
            if c == 3:
                tsecr = r.u32()
            ts = (tsval & MASK, tsecr & MASK)
        sack: tuple[tuple[int, int], ...] = ()
        if mask & 16:
            blocks = []
            for _ in range(r.u8() % 5):
                left = (ack + r.s32() % 70000 - 1000) & MASK if r.u8() & 1 else r.u32()
                blocks.append((left, (left + r.u16()) & MASK))
            sack = tuple(blocks)
        n = r.code(PAYLOADS, Reader.u16)
        start = r.u8()
        payload = PATTERN[start : start + n] if n <= len(PATTERN) - 256 else bytes(n)
        urgent = r.u16() if mask & 64 else 0
        seg = wire.Segment(v.peer_port, v.our_port, seq, ack, flags & 0xFF, window, payload,
                           mss, wscale, sack_perm, sack, ts, urgent)
        data = self.encode(seg, bool(mask & 32))
        if mask & 128:
            data = mutate(data, r)
        self.sent_by_peer(v, seg)
        self.deliver(data, v.addr, 0)

    @staticmethod
    def encode(seg: Any, checksum: bool) -> bytes:
        """``wire.encode``, dropping SACK blocks, then options, until they fit in 40 bytes."""
        while True:
            try:
                return bytes(wire.encode(seg, checksum))
            except ValueError:
                if seg.sack:
                    seg = seg._replace(sack=seg.sack[:-1])
                elif seg.sack_permitted:
                    seg = seg._replace(sack_permitted=False)
                elif seg.wscale is not None:
                    seg = seg._replace(wscale=None)
                else:
                    seg = seg._replace(mss=None)

    def sent_by_peer(self, v: View, seg: Any) -> None:
        if seg.flags & SYN and v.isn is None:
            v.isn = seg.seq
        end = (seg.seq + seg.seg_len) & MASK
        if v.nxt is None or sgt(end, v.nxt):
            v.nxt = end
        if seg.flags & ACK:
            v.acked = seg.ack
        if seg.ts is not None:
            v.tsval = seg.ts[0]

    def burst(self, r: Reader) -> None:
        """Many datagrams at one instant: SYN flood, data stream, duplicate ACKs."""
        kind = r.u8() % 4
        count = r.u8() % 64 + 1
        if kind == 0:  # SYN flood from one address, one port each
            addr = r.pick(ADDRS)
            our_port = r.pick(OUR_PORTS)
            first = r.u16()
            opts = r.u8()
            for i in range(count):
                port = (first + i) % 65535 + 1
                seq = (port * 2654435761) & MASK
                seg = wire.Segment(port, our_port, seq, 0, SYN, 65535, b"",
                                   1432 if opts & 1 else None, 7 if opts & 2 else None,
                                   bool(opts & 4), (), (self.peer_ts(), 0) if opts & 8 else None)
                v = self.view(addr, port, our_port)
                self.sent_by_peer(v, seg)
                self.deliver(bytes(wire.encode(seg, False)), addr, 0)
            return
        v = self.pick_view(r)
        size = r.code(PAYLOADS, Reader.u16) or 1
        hole = r.u8()
        bits = r.u8()
        with_ts = bool(bits & 1)
        # A GRO read: the burst in one datagrams_received call, equal-sized
        # stretches as SegmentRuns over a buffer overwritten right after.
        gro = bool(bits & 2)
        batch: list[tuple[bytes, Any]] = []
        if v.nxt is None:
            v.nxt = v.srv_ack
        ack = v.srv_max if v.srv_max is not None else 0
        for i in range(count):
            ts = (self.peer_ts(), v.srv_ts) if with_ts else None
            if kind == 1:  # in-order data, one segment left out (a hole) when hole < count
                seq = v.nxt
                seg = wire.Segment(v.peer_port, v.our_port, seq, ack, ACK, 65535,
                                   PATTERN[i % 256 : i % 256 + size], ts=ts)
                v.nxt = (seq + size) & MASK
                if i == hole:
                    continue
            elif kind == 2:  # duplicate ACKs, SACKing more and more above the ACK
                una = v.acked if v.acked is not None else ack
                sack = ((una + size, una + size * (i + 2)),) if hole & 1 else ()
                seg = wire.Segment(v.peer_port, v.our_port, v.nxt, una & MASK, ACK, 65535, b"",
                                   sack=tuple((a & MASK, b & MASK) for a, b in sack), ts=ts)
            else:  # ACKs moving through what the server sent, size bytes at a time
                una = v.acked if v.acked is not None else ack
                target = una + size
                if v.srv_max is not None and sgt(target & MASK, v.srv_max):
                    target = v.srv_max
                seg = wire.Segment(v.peer_port, v.our_port, v.nxt, target & MASK, ACK,
                                   65535, b"", ts=ts)
            self.sent_by_peer(v, seg)
            if gro:
                batch.append((self.encode(seg, False), v.addr))
            else:
                self.deliver(self.encode(seg, False), v.addr, 0)
        if batch:
            self.deliver_gro(batch)

    def deliver_gro(self, items: list[tuple[bytes, Any]]) -> None:
        """``items`` at one instant as the asyncio adapter hands over a GRO
        read: one ``datagrams_received`` call, each stretch of two or more
        equal-sized datagrams from one address a ``SegmentRun``, all of them
        views of one buffer that is overwritten when the call returns (what
        the engine kept of it must have been copied)."""
        items = items[: max(0, MAX_DATAGRAMS - self.datagrams)]
        if not items:
            return
        self.datagrams += len(items)
        self.history.extend(items)
        del self.history[:-64]
        buf = bytearray(b"".join(d for d, _ in items))
        view = memoryview(buf)
        batch: list[tuple[Any, Any]] = []
        offset = i = 0
        while i < len(items):
            size, addr = len(items[i][0]), items[i][1]
            j = i + 1
            while j < len(items) and len(items[j][0]) == size and items[j][1] == addr:
                j += 1
            if j - i > 1:
                batch.append((wire.SegmentRun(view[offset : offset + (j - i) * size], size, j - i), addr))
            else:
                batch.append((view[offset : offset + size], addr))
            offset += (j - i) * size
            i = j
        self.ep.datagrams_received(batch, self.now)
        for conn in self.ep.connections.values():
            if conn.rcvq.views:
                raise Violation(f"{conn!r} kept views of the receive buffer after the call returned")
        del batch
        view.release()
        buf[:] = b"\xee" * len(buf)
        self.flush()
        self.settle()
        self.check_timers()

    def app(self, r: Reader) -> None:
        """One call of the server's user."""
        action = r.u8() % 9
        idx = r.u8()
        arg = r.u16()
        try:
            if action == 0:  # accept
                conn = self.listeners[idx % len(self.listeners)].accept()
                if conn is not None:
                    self.owned.append(conn)
                return
            if action == 6:  # active open to a peer
                if self.connects < MAX_CONNECTS:
                    self.connects += 1
                    port = [80, 40000, 40001, arg or 1][idx % 4]
                    self.owned.append(self.ep.connect(ADDRS[idx % len(ADDRS)], port, self.now))
                return
            if action == 8:  # a draining server: accept everything, read everything
                for lst in self.listeners:
                    while (conn := lst.accept()) is not None:
                        self.owned.append(conn)
                for conn in self.owned:
                    conn.read()
                return
            if not self.owned:
                return
            conn = self.owned[idx % len(self.owned)]
            if action == 1:
                conn.read(arg or -1)
            elif action == 2:
                n = min(arg * 4 if arg & 1 else arg, SEND_CAP - conn.send_buffer_size)
                if n > 0:
                    conn.send(PATTERN[arg % 256 : arg % 256 + n] if n < 65000 else bytes(n))
            elif action == 3:
                conn.shutdown()
            elif action == 4:
                conn.close()
            elif action == 5:
                conn.abort()
            elif action == 7:
                conn.read(1)
        except ConnectionStateError:
            pass  # a call the connection's state does not allow: documented

    # ------------------------------------------------------------ the end

    def finish(self) -> None:
        """Nothing stuck: 2 h with no peer, then the user closes everything and 2 h more."""
        self.advance(7200)
        idle = (State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_2)
        for conn in self.ep.connections.values():
            if conn.get_timer() is not None:
                continue
            waits = (conn.state in idle and conn.send_buffer_size == 0
                     and conn.snd_una == conn.snd_max)
            if not waits:
                raise Violation(f"{conn!r} is stuck: no timer, send buffer "
                                f"{conn.send_buffer_size}, una {conn.snd_una} max {conn.snd_max}")
        for lst in self.listeners:
            while (conn := lst.accept()) is not None:
                self.owned.append(conn)
        for conn in self.owned:
            conn.close()
        self.flush()
        for lst in self.listeners:
            self.ep.close_listener(lst)
        self.flush()
        self.settle()
        self.check_timers()
        self.advance(7200)
        if self.ep.connections:
            left = [(c, self.timers(c)) for c in self.ep.connections.values()]
            raise Violation(f"connections left 2 h after the user closed everything: {left}")
        for lst in self.listeners:
            if lst.half_open or lst.accept_queue:
                raise Violation(f"{lst!r} keeps half-open or queued connections")
        for conn, seen in self.conns.items():
            if seen.get("Closed") != 1:
                raise Violation(f"{conn!r} ({conn.state}) reported Closed {seen.get('Closed', 0)} times")


def mutate(data: bytes, r: Reader) -> bytes:
    """One byte-level change of an encoded segment."""
    op = r.u8() % 5
    pos = r.u16()
    val = r.u8()
    b = bytearray(data)
    if op == 0 and b:
        b[pos % len(b)] ^= 1 << (val % 8)
    elif op == 1 and b:
        b[pos % len(b)] = val
    elif op == 2:
        del b[pos % (len(b) + 1) :]
    elif op == 3:
        b += bytes([val]) * (pos % 64 + 1)
    elif op == 4 and len(b) > 12:
        b[12] = (val & 0xF0) | (b[12] & 0x0F)  # another data offset
    return bytes(b)


def run_input(data: bytes) -> Harness:
    """Run one input; the harness is returned for inspection (make_corpus.py)."""
    _load()
    log = logging.getLogger("rudp")
    log.addHandler(_catcher)
    try:
        harness = Harness()
        harness.run(data)
        return harness
    finally:
        log.removeHandler(_catcher)


def test_one_input(data: bytes) -> None:
    run_input(data)


def main() -> None:
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

    with atheris.instrument_imports(include=["rudp"]):
        _load()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
