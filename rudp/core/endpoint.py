"""Sans-IO demultiplexer for one UDP socket: many connections, listeners, RSTs.

A connection is identified by (peer UDP address, local port, remote port),
where the ports are the TCP header's (README, "Wire format"). Like the
connection it serves, the endpoint has no clock and no socket: the owner
feeds it datagrams and timer expiries with ``now`` and sends what
``datagrams_to_send(now)`` returns.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import random
from collections import Counter
from typing import Callable, Hashable, Iterable

from . import events
from .config import Config
from .connection import Connection
from .state import CLOSED, ESTABLISHED, SYN_RCVD, TIME_WAIT, State
from .isn import IsnGenerator
from .connection import DEFAULT_PEER_MSS, ts_offset_for
from .listener import ACCEPT, COOKIE, EVICT, Listener, source_of
from .observer import Observer
from .ratelimit import CHALLENGE_ACK_LIMIT, RST_BURST, RST_RATE, ChallengeLimiter, TokenBucket
from .syncookies import decode_ts_options, encode_ts_options
from .seqnum import MASK, seq_gt, ts_clock
from .wire import (ACK, FIN, RST, SYN, ChecksumError, DecodeError, HeaderTemplate, Segment, SegmentRun, decode,
                   encode, encode_syn_ack, parse_plain_syn, segment_of, parse_data_ts, parse_data_ts_run,
                   DATA_TS_OFFSET)

logger = logging.getLogger("rudp")

Address = Hashable
ConnKey = tuple[Address, int, int]
#: One item of `Endpoint.batches_to_send`: a datagram, or a run of equal-sized
#: segments in one buffer (`SegmentRun`), and where it goes.
Outgoing = tuple[bytes | SegmentRun, Address]

EPHEMERAL_PORTS = range(49152, 65536)  # RFC 6056 §2.1 / IANA dynamic ports


_SYN_ACK = SYN | ACK
_SYN_ACK_RST = SYN | ACK | RST


def invalid_flags(flags: int) -> str | None:
    """Name the rule an impossible flag combination breaks, or None if it is sane.

    SYN+FIN and SYN+RST have no meaning in RFC 9293; a segment with none of
    SYN, RST and ACK (a NULL scan, a bare FIN or PSH, data without ACK) can
    only be sent by a broken or hostile peer (RFC 9293 §3.10.7.4 fifth: "if
    the ACK bit is off, drop the segment").
    """
    if flags & SYN:
        if flags & FIN:
            return "invalid_syn_fin"
        if flags & RST:
            return "invalid_syn_rst"
        return None
    if flags & (RST | ACK):
        return None
    if not flags:
        return "invalid_no_flags"
    if flags & FIN:
        return "invalid_fin_without_ack"
    return "invalid_no_ack"


#: TIME_WAIT connections one endpoint keeps at most (as Linux's
#: tcp_max_tw_buckets): each holds ~6 KB for 2*MSL, so a peer that makes us
#: close first, or a client opening thousands a second, would otherwise
#: grow memory without bound (~700 MB at 2,000 connections a second).
MAX_TIME_WAIT = 16384


class Endpoint:
    """Connections and listeners sharing one UDP socket.

    Like the rest of the core it draws no randomness of its own: ``seed``
    makes ports and ISNs repeatable (for the simulator and tests); ``rng``
    gives it a source to draw from instead (``random.SystemRandom()`` in the
    asyncio adapter), which also keys the ISN generator. ``isn`` replaces
    the ISN generator: ``isn(now, addr, local_port, remote_port)``.
    ``challenge_ack_limit``: the mean of the per-second budget of challenge
    ACKs for all connections together (RFC 5961 §7).
    ``max_time_wait``: beyond this many connections in TIME_WAIT the oldest
    ends early (counted as ``time_wait_evicted``).
    ``templates``: stamp runs of full-sized segments from a per-connection
    header template (`HeaderTemplate`) rather than encoding each segment; the
    bytes are the same either way (off only to test that).
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        seed: int | None = None,
        rng: random.Random | None = None,
        isn: Callable[[float, Address, int, int], int] | None = None,
        challenge_ack_limit: int = CHALLENGE_ACK_LIMIT,
        max_time_wait: int = MAX_TIME_WAIT,
        templates: bool = True,
    ) -> None:
        if max_time_wait < 1:
            raise ValueError(f"max_time_wait must be >= 1, got {max_time_wait}")
        self.max_time_wait = max_time_wait
        self.config = config or Config()
        self.templates = templates
        self._isn: Callable[[float, Address, int, int], int]
        if seed is not None:
            self._rng = random.Random(seed)
            self._isn = IsnGenerator(seed.to_bytes(16, "big", signed=True))
        elif rng is not None:
            self._rng = rng
            self._isn = IsnGenerator(rng.getrandbits(128).to_bytes(16, "big"))
        else:
            raise TypeError("Endpoint needs seed= (repeatable) or rng= (e.g. random.SystemRandom())")
        if isn is not None:
            self._isn = isn  # e.g. to start near 2**32 and test wraparound
        self.connections: dict[ConnKey, Connection] = {}
        self.listeners: dict[int, Listener] = {}
        self.counters: Counter[str] = Counter()
        self.segments_received = 0  # a plain int: counted on the hot path
        #: Called on every state change of every connection (for tracing).
        self.on_state_change: Callable[[Connection, State, State], None] | None = None
        #: Given to every connection made from now on (rudp.core.observer).
        self.observer: Observer | None = None
        self._out: list[Outgoing] = []
        self._wake: dict[Connection, None] = {}  # ordered set: need output/events
        self._held: dict[Connection, None] = {}  # output held back by hold_output
        self._event_conns: dict[Connection, None] = {}
        self._closed: list[Connection] = []
        self._time_wait: dict[Connection, None] = {}  # ordered set, oldest first
        self._faulted: set[Connection] = set()  # failed internally once already
        #: Half-open passive connections: [bytes received, bytes sent] (anti-amplification).
        self._unvalidated: dict[Connection, list[int]] = {}
        self._challenges = ChallengeLimiter(self._rng, challenge_ack_limit)
        self._rst_limiter = TokenBucket(RST_RATE, RST_BURST)
        self._timers: list[tuple[float, int, Connection]] = []
        self._deadline: dict[Connection, float] = {}
        self._tiebreak = itertools.count()

    # ------------------------------------------------------------ user calls

    def listen(
        self,
        port: int,
        *,
        backlog: int = 128,
        max_half_open: int = 256,
        max_half_open_per_source: int | None = None,
        syn_cookies: str = "auto",
        config: Config | None = None,
    ) -> Listener:
        """Accept connections to ``port`` (the TCP destination port of SYNs).

        ``syn_cookies``: "auto" answers with SYN cookies once ``max_half_open``
        connections are half open (or one source holds its share,
        ``max_half_open_per_source``, by default an eighth); "always" answers
        every SYN with a cookie; "never" evicts the oldest half-open entry
        instead (RFC 4987 §3.4, §3.6)."""
        if not 0 < port < 65536:
            raise ValueError(f"port must be in 1..65535, got {port}")
        if backlog < 1 or max_half_open < 1:
            raise ValueError("backlog and max_half_open must be >= 1")
        if port in self.listeners:
            raise OSError(errno.EADDRINUSE, f"port {port} is already listening")
        listener = Listener(port, config or self.config, backlog, max_half_open, rng=self._rng,
                            syn_cookies=syn_cookies,
                            max_half_open_per_source=max_half_open_per_source)
        # Cookie SYN,ACKs that echo every option of a usual SYN, unchecksummed,
        # can take the flood path (_plain_syn_cookie).
        listener.full_options = (listener.config.timestamps and listener.config.window_scale
                                 and listener.config.sack and not self.config.checksum)
        self.listeners[port] = listener
        return listener

    def close_listener(self, listener: Listener) -> None:
        """Stop listening; half-open and unaccepted connections are reset."""
        if self.listeners.get(listener.port) is listener:
            del self.listeners[listener.port]
        while listener.accept_queue:
            listener.accept_queue.popleft().abort()
        for conn in list(listener.pending):
            conn.abort()

    def connect(
        self,
        addr: Address,
        remote_port: int,
        now: float,
        *,
        local_port: int | None = None,
        config: Config | None = None,
    ) -> Connection:
        """Active open to ``remote_port`` at UDP address ``addr``."""
        if not 0 < remote_port < 65536:
            raise ValueError(f"remote_port must be in 1..65535, got {remote_port}")
        if local_port is None:
            local_port = self._pick_port(addr, remote_port)
        elif (addr, local_port, remote_port) in self.connections:
            raise OSError(errno.EADDRINUSE, f"{local_port}->{addr}:{remote_port} is in use")
        conn = self._new_connection(config or self.config, addr, local_port, remote_port, now)
        conn.connect(now)
        return conn

    def _pick_port(self, addr: Address, remote_port: int) -> int:
        """A random free ephemeral port (RFC 6056 §3.3.1, "simple" randomization);
        entries in TIME_WAIT count as taken."""
        ports = EPHEMERAL_PORTS
        start = self._rng.randrange(len(ports))
        for i in range(len(ports)):
            port = ports[(start + i) % len(ports)]
            if (addr, port, remote_port) not in self.connections and port not in self.listeners:
                return port
        raise OSError(errno.EADDRNOTAVAIL, "no free ephemeral port")

    def _new_connection(
        self, config: Config, addr: Address, local_port: int, remote_port: int, now: float,
        iss: int | None = None,
    ) -> Connection:
        conn = Connection(
            config,
            local_port=local_port,
            remote_port=remote_port,
            addr=addr,
            iss=self._isn(now, addr, local_port, remote_port) if iss is None else iss,
            on_wake=self._wake_conn,
            on_state_change=self._state_changed,
            challenge_limiter=self._challenges,
        )
        conn.observer = self.observer
        if self.templates:
            conn.output.template = HeaderTemplate(local_port, remote_port, self.config.checksum)
        self.connections[(addr, local_port, remote_port)] = conn
        return conn

    # ---------------------------------------------------------------- inputs

    def datagram_received(self, data: bytes | memoryview, addr: Address, now: float) -> None:
        """Decode, sanity-check and route one datagram."""
        self.datagrams_received(((data, addr),), now)

    def datagrams_received(self, batch: Iterable[tuple[bytes | memoryview | SegmentRun, Address]],
                           now: float) -> None:
        """Decode, sanity-check and route each datagram of a batch, in order.

        The per-segment work sits in this loop rather than behind a call per
        datagram: the asyncio adapter drains its socket into batches of 64.
        A datagram may be a memoryview that is only valid during this call
        (``decode`` copies the payload).

        Consecutive datagrams for one ESTABLISHED connection (a GRO read is
        such a run) are a run: it is looked up, woken and its events noted
        once, and the ACK decision of the in-order segments that header
        prediction takes is made once, at the run's end (``Receiver.
        schedule_ack``). Each segment still gets its own header checks and,
        if header prediction declines it, the full RFC 9293 §3.10.7 path in
        arrival order. With one ``now`` per batch the connection ends the
        run exactly as it would have one segment at a time.
        """
        counters = self.counters
        connections = self.connections
        run: Connection | None = None  # the connection of the previous datagram, while ESTABLISHED
        deferred = 0  # segments of the run whose ACK decision waits for its end
        try:
            for data, addr in batch:
                if isinstance(data, SegmentRun):
                    run, deferred = self._segment_run(data, addr, now, run, deferred)
                    continue
                fields = parse_data_ts(data)
                predict = True  # header prediction may still take it below
                if fields is not None:
                    # Plain in-order data for an ESTABLISHED connection, taken
                    # from its bytes (no decode, no Segment) when header
                    # prediction takes it; else the full path below, as any
                    # segment. The run's connection needs no look-up.
                    conn = run
                    if conn is None or addr != conn.addr or fields[1] != conn.local_port \
                            or fields[0] != conn.remote_port:
                        conn = connections.get((addr, fields[1], fields[0]))
                    if conn is not None and conn.state is ESTABLISHED and conn.config.header_prediction:
                        try:
                            taken = conn.input.take_in_order(fields[2], fields[3], fields[5],
                                                             data[DATA_TS_OFFSET:], (fields[9], fields[10]), now)
                        except Exception as exc:  # noqa: BLE001 - one connection's fault is its own
                            self.segments_received += 1
                            if conn is run:
                                run = None
                                deferred = 0
                            self._fault(conn, exc)
                            continue
                        if taken:
                            self.segments_received += 1
                            if conn is not run:
                                if run is not None:
                                    self._end_run(run, deferred, now)
                                run = conn
                                deferred = 0
                                self._wake[conn] = None
                            deferred += 1
                            continue
                        predict = False  # declined from its fields: take_predicted would decline too
                if len(data) > 13 and data[13] == SYN and self._plain_syn_cookie(data, addr, now):
                    continue
                try:
                    seg = decode(data)  # nonzero checksums are always verified
                except ChecksumError:
                    counters["bad_checksum"] += 1
                    continue
                except DecodeError:
                    counters["malformed"] += 1
                    continue
                self.segments_received += 1
                src_port, dst_port, _, _, flags = seg[:5]  # one slice: cheaper than 3 field reads
                if flags & _SYN_ACK != ACK:  # the common case needs no closer look
                    reason = invalid_flags(flags)
                    if reason is not None:
                        counters[reason] += 1
                        continue
                if run is not None:
                    if (dst_port == run.local_port and src_port == run.remote_port and run.state is ESTABLISHED
                            and addr == run.addr):
                        # The run goes on: no look-up, and the connection is woken already.
                        inp = run.input
                        try:
                            if predict and run.config.header_prediction and inp.take_predicted(seg, now):
                                deferred += 1
                            else:
                                inp.receive(seg, now)
                        except Exception as exc:  # noqa: BLE001 - one connection's fault is its own
                            self._fault(run, exc)
                            run = None
                            deferred = 0
                        continue
                    self._end_run(run, deferred, now)
                    run = None
                    deferred = 0
                conn = connections.get((addr, dst_port, src_port))
                if conn is not None:
                    state = conn.state
                    if state is TIME_WAIT and self._reopens_time_wait(conn, seg):
                        counters["time_wait_reopened"] += 1
                        self._remove(conn)
                    else:
                        if state is SYN_RCVD and conn.listener is not None:
                            if self._listen_overflow(conn, flags):
                                continue
                            if conn in self._unvalidated:
                                self._unvalidated[conn][0] += len(data)
                        # Connection.receive, its parts called directly: this is
                        # the per-segment path. In-order data that header
                        # prediction takes starts a run (its ACK decision is
                        # made in _end_run, after the run's last segment).
                        inp = conn.input
                        ok = True
                        try:
                            if predict and state is ESTABLISHED and conn.config.header_prediction \
                                    and inp.take_predicted(seg, now):
                                deferred = 1
                            else:
                                inp.receive(seg, now)
                        except Exception as exc:  # noqa: BLE001 - one connection's fault is its own
                            self._fault(conn, exc)
                            ok = False
                        self._wake[conn] = None
                        if ok and conn.state is ESTABLISHED:
                            run = conn
                        elif conn.pending_events:
                            self._event_conns[conn] = None
                        continue
                listener = self.listeners.get(dst_port)
                if listener is not None:
                    kind = flags & _SYN_ACK_RST
                    if kind == SYN:
                        self._syn_to_listener(listener, seg, addr, len(data), now)
                        continue
                    if kind == ACK and self._cookie_ack(listener, seg, addr, now):
                        continue
                self._reply_rst(seg, addr, len(data), now)
            if run is not None:
                self._end_run(run, deferred, now)
                run = None
        finally:
            if run is not None and run.rcvq.views:
                run.rcvq.settle()  # never leave a view of the caller's buffer behind

    def _segment_run(self, item: SegmentRun, addr: Address, now: float, run: Connection | None,
                     deferred: int) -> tuple[Connection | None, int]:
        """A GRO read of equal-sized datagrams from ``addr`` (rudp.aio.udpio):
        the in-order data at its front for an ESTABLISHED connection in one
        step (Receiver.take_run), the rest one datagram at a time. Takes and
        returns the batch's run and its deferred count."""
        buf = item.buf if type(item.buf) is memoryview else memoryview(item.buf)
        size, count = item.size, item.count
        headers = parse_data_ts_run(buf, size, count)
        taken = 0
        if headers:
            h = headers[0]
            conn = run
            if conn is None or addr != conn.addr or h[1] != conn.local_port or h[0] != conn.remote_port:
                conn = self.connections.get((addr, h[1], h[0]))
            if conn is not None and conn.state is ESTABLISHED and conn.config.header_prediction:
                try:
                    taken = conn.input.take_run(headers, buf, size, now)
                except Exception as exc:  # noqa: BLE001 - one connection's fault is its own
                    self.segments_received += 1
                    if conn is run:
                        run, deferred = None, 0
                    self._fault(conn, exc)
                    taken = 1  # that segment is spent; the rest go one at a time
                else:
                    if taken:
                        self.segments_received += taken
                        if conn is not run:
                            if run is not None:
                                self._end_run(run, deferred, now)
                            run, deferred = conn, 0
                            self._wake[conn] = None
                        deferred += taken
        if taken < count:
            if run is not None:
                self._end_run(run, deferred, now)  # its views are settled before the rest is read
                run, deferred = None, 0
            self.datagrams_received([(buf[o : o + size], addr) for o in range(taken * size, count * size, size)],
                                    now)
        return run, deferred

    def _end_run(self, conn: Connection, deferred: int, now: float) -> None:
        """A run of segments for ``conn`` ended: its payloads still in the
        receive buffer copied out, the ACK decision its in-order segments
        left for now, and its events for the next poll."""
        if conn.rcvq.views:
            conn.rcvq.settle()
        if deferred:
            try:
                conn.input.schedule_ack(now)
            except Exception as exc:  # noqa: BLE001 - one connection's fault is its own
                self._fault(conn, exc)
        if conn.pending_events:
            self._event_conns[conn] = None

    @staticmethod
    def _reopens_time_wait(conn: Connection, seg: Segment) -> bool:
        """A new SYN may end TIME_WAIT if it starts above the old sequence space
        (RFC 9293 §3.6.1, RFC 6191 for the timestamp variant)."""
        if seg.flags & (SYN | ACK | RST) != SYN:
            return False
        if conn.ts_ok and seg.ts is not None:
            return seq_gt(seg.ts[0], conn.ts_recent)
        return seq_gt(seg.seq, conn.rcv_nxt & MASK)

    def _syn_to_listener(
        self, listener: Listener, seg: Segment, addr: Address, size: int, now: float
    ) -> None:
        """A SYN for a listening port: the defences of RFC 4987 decide (see
        rudp.core.listener) between a half-open connection, a SYN cookie, an
        eviction and a drop."""
        counters = listener.counters
        counters["syn_received"] += 1
        if len(listener.accept_queue) >= listener.backlog:
            counters["syn_dropped_backlog"] += 1
            return
        source = source_of(addr)
        decision = listener.admit(source)
        if decision == COOKIE:
            self._send_cookie(listener, seg, addr, size, now)
            return
        if decision == EVICT:
            victim = listener.oldest_half_open()
            if victim is not None:
                counters["half_open_evicted"] += 1
                victim.abort()  # RST to its peer, which may be real (§3.10.5)
        elif decision != ACCEPT:
            return
        conn = self._new_connection(listener.config_for_new(), addr, seg.dst_port, seg.src_port, now)
        conn.listener = listener
        conn.listen(now)
        try:
            conn.receive(seg, now)
        except Exception as exc:  # noqa: BLE001 - one connection's fault is its own
            self._fault(conn, exc)
        self._wake_conn(conn)
        if conn.state is SYN_RCVD:
            listener.half_opened(conn, source)
            # Until the handshake completes the address is unvalidated: it may
            # be spoofed, so it gets at most 3x what it sent (RFC 9000 §8.1's rule).
            self._unvalidated[conn] = [size, 0]

    def _plain_syn_cookie(self, data: bytes | memoryview, addr: Address, now: float) -> bool:
        """The SYN-flood path: a usual 40-byte SYN (``wire.parse_plain_syn``)
        that its listener answers with a cookie anyway, answered from its bytes
        with exactly what ``_syn_to_listener`` would send and count (a test
        pins it), at a third of the cost. False: the full path must decide."""
        fields = parse_plain_syn(data)
        if fields is None:
            return False
        src_port, dst_port, peer_isn, peer_mss, peer_wscale, peer_tsval = fields
        listener = self.listeners.get(dst_port)
        if (listener is None or not listener.full_options
                or (addr, dst_port, src_port) in self.connections
                or len(listener.accept_queue) >= listener.backlog
                or not listener.answers_with_cookie(source_of(addr))):
            return False
        self.segments_received += 1
        counters = listener.counters
        counters["syn_received"] += 1
        cookie = listener.cookies.make(now, addr, dst_port, src_port, peer_isn, peer_mss)
        tsval = encode_ts_options(ts_clock(now, ts_offset_for(cookie)), peer_wscale, True)
        self._out.append((encode_syn_ack(dst_port, src_port, cookie, (peer_isn + 1) & MASK,
                                         listener.syn_ack_window, listener.syn_ack_mss,
                                         listener.rcv_wscale, (tsval, peer_tsval)), addr))
        counters["cookies_sent"] += 1  # 40 bytes for 40: within the 3x of anti-amplification
        return True

    def _listen_overflow(self, conn: Connection, flags: int) -> bool:
        """The ACK that would complete a passive open while the accept queue is
        full is dropped, as Linux does: the connection stays half open and its
        SYN,ACK retransmission asks again later, so ``backlog`` bounds the queue."""
        listener = conn.listener
        if listener is None or not flags & ACK or flags & RST:
            return False
        if len(listener.accept_queue) < listener.backlog:
            return False
        listener.counters["listen_overflow"] += 1
        return True

    def _send_cookie(
        self, listener: Listener, seg: Segment, addr: Address, size: int, now: float
    ) -> None:
        """Answer a SYN with a SYN,ACK whose ISN is a SYN cookie (RFC 4987 §3.6),
        keeping no state; it is never retransmitted (the peer's SYN will be).
        Its options echo what the peer offered, as any SYN,ACK's (RFC 9293
        §3.7.1, RFC 7323, RFC 2018); window scale and SACK only with
        timestamps, whose TSval carries them back."""
        cfg = listener.config
        src_port, dst_port, peer_isn = seg[0], seg[1], seg[2]
        peer_mss = seg.mss
        cookie = listener.cookies.make(now, addr, dst_port, src_port, peer_isn,
                                       DEFAULT_PEER_MSS if peer_mss is None else peer_mss)
        wscale: int | None = None
        sack = False
        ts: tuple[int, int] | None = None
        peer_ts = seg.ts
        if peer_ts is not None and cfg.timestamps:
            peer_wscale = seg.wscale if cfg.window_scale else None
            sack = cfg.sack and seg.sack_permitted
            wscale = listener.rcv_wscale if peer_wscale is not None else None
            tsval = ts_clock(now, ts_offset_for(cookie))
            ts = (encode_ts_options(tsval, peer_wscale, sack), peer_ts[0])
        reply = encode(segment_of((dst_port, src_port, cookie, (peer_isn + 1) & MASK, _SYN_ACK,
                                   listener.syn_ack_window, b"", listener.syn_ack_mss, wscale, sack,
                                   (), ts, 0)), self.config.checksum)
        if len(reply) > 3 * size:  # anti-amplification: at most 3x what the address sent
            self.counters["amplification_limited"] += 1
            return
        listener.counters["cookies_sent"] += 1
        self._out.append((reply, addr))

    def _cookie_ack(self, listener: Listener, seg: Segment, addr: Address, now: float) -> bool:
        """An ACK for a listening port with no connection: if it returns a valid
        SYN cookie, create the connection it stands for and let it take the
        ACK (and any data on it) as SYN_RCVD would. False: no cookie of ours."""
        jar = listener.cookies
        if listener.syn_cookies == "never" or not jar.recently_used(now):
            return False
        cookie = (seg.ack - 1) & MASK
        peer_isn = (seg.seq - 1) & MASK
        mss = jar.check(now, addr, seg.dst_port, seg.src_port, peer_isn, cookie)
        counters = listener.counters
        if mss is None:
            counters["cookies_rejected"] += 1
            return False
        if len(listener.accept_queue) >= listener.backlog:
            counters["cookie_dropped_backlog"] += 1
            return True  # the peer retransmits its ACK or data later
        counters["cookies_validated"] += 1
        wscale, sack = decode_ts_options(seg.ts[1]) if seg.ts is not None else (None, False)
        syn = Segment(seg.src_port, seg.dst_port, peer_isn, 0, SYN, seg.window, b"", mss, wscale,
                      sack, (), (seg.ts[0], 0) if seg.ts is not None else None)
        conn = self._new_connection(listener.config, addr, seg.dst_port, seg.src_port, now, cookie)
        conn.listener = listener
        conn.listen(now)
        try:
            conn.accept_cookie(syn, min(listener.config.recv_buffer, 0xFFFF), now)
            conn.receive(seg, now)
        except Exception as exc:  # noqa: BLE001 - one connection's fault is its own
            self._fault(conn, exc)
        self._wake_conn(conn)
        return True

    def _reply_rst(self, seg: Segment, addr: Address, size: int, now: float) -> None:
        """A segment for no connection gets a RST (RFC 9293 §3.10.7.1), never a
        RST, and at most RST_RATE a second. A RST (20 bytes) is never larger
        than the segment it answers: no amplification."""
        if seg.flags & RST:
            self.counters["rst_ignored"] += 1
            return
        if not self._rst_limiter.allow(now):
            self.counters["rst_rate_limited"] += 1
            return
        if seg.flags & ACK:
            rst = Segment(seg.dst_port, seg.src_port, seg.ack, 0, RST, 0)
        else:
            rst = Segment(seg.dst_port, seg.src_port, 0, (seg.seq + seg.seg_len) & MASK, RST | ACK, 0)
        self.counters["rst_sent"] += 1
        self._out.append((encode(rst, self.config.checksum), addr))

    def handle_timer(self, now: float) -> None:
        """Run the timers of every connection whose deadline has passed."""
        heap = self._timers
        while heap and heap[0][0] <= now:
            deadline, _, conn = heapq.heappop(heap)
            if self._deadline.get(conn) != deadline:
                continue  # stale entry: the deadline moved
            del self._deadline[conn]
            try:
                conn.handle_timer(now)
            except Exception as exc:  # noqa: BLE001 - one connection's fault is its own
                self._fault(conn, exc)
            self._wake[conn] = None

    def get_timer(self) -> float | None:
        """The earliest deadline of any connection."""
        heap = self._timers
        while heap and self._deadline.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # --------------------------------------------------------------- outputs

    @property
    def has_work(self) -> bool:
        """Some connection has segments or events for the next flush."""
        return bool(self._wake or self._event_conns)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Encode what every woken connection has to send, one datagram per
        segment (`batches_to_send` with its runs split); re-arm their timers."""
        out: list[tuple[bytes, Address]] = []
        for data, addr in self.batches_to_send(now):
            if isinstance(data, SegmentRun):
                out.extend([(d, addr) for d in data.datagrams()])
            else:
                out.append((data, addr))
        return out

    def hold_output(self, conn: Connection) -> None:
        """Leave ``conn`` out of the sends until `release_held`: its owner
        expects a reply from the application at once, whose first segment
        will carry the ACK now due (RFC 9293 §3.8.6.3 lets an ACK wait). A
        write of its own wakes it again, and its segments take the ACK."""
        if conn in self._wake:
            del self._wake[conn]
            self._held[conn] = None

    def release_held(self) -> None:
        """What `hold_output` held back goes in the next sends."""
        if self._held:
            self._wake.update(self._held)
            self._held = {}

    def batches_to_send(self, now: float) -> list[Outgoing]:
        """Encode what every woken connection has to send; re-arm their timers.
        A bulk run of full-sized segments comes as one `SegmentRun` (one
        buffer, for one GSO send); everything else as one bytes per segment."""
        out = self._out
        self._out = []
        checksum = self.config.checksum
        pending = self._wake
        self._wake = {}
        unvalidated = self._unvalidated
        for conn in pending:
            sender = conn.output
            try:
                budget = unvalidated.get(conn) if unvalidated else None
                segs = sender.segments_to_send(now)
                run = sender.run
                if run is None:
                    if budget is None:
                        addr = conn.addr
                        for seg in segs:
                            out.append((encode(seg, checksum), addr))
                    else:
                        self._encode(out, segs, conn.addr, budget, checksum)
                else:
                    sender.run = None
                    at = run.index
                    self._encode(out, segs[:at], conn.addr, budget, checksum)
                    if budget is None:
                        out.append((run, conn.addr))
                    else:
                        for data in run.datagrams():
                            if self._within_budget(budget, len(data)):
                                out.append((data, conn.addr))
                    self._encode(out, segs[at:], conn.addr, budget, checksum)
                self._schedule(conn)
            except Exception as exc:  # noqa: BLE001 - one connection's fault is its own
                # What the others built stays in ``out``; this one's RST comes
                # from _fault, and its timers from the next round.
                sender.run = None
                self._fault(conn, exc)
                if conn in self._faulted and conn in self._wake:
                    out.extend(self._fault_output(conn, now))
        while self._closed:
            self._remove(self._closed.pop())
        return out

    def _encode(self, out: list[Outgoing], segs: list[Segment], addr: Address, budget: list[int] | None,
                checksum: bool) -> None:
        """Encode ``segs`` for ``addr`` onto ``out``, within an unvalidated
        address's budget if it has one."""
        for seg in segs:
            data = encode(seg, checksum)
            if budget is None or self._within_budget(budget, len(data)):
                out.append((data, addr))

    def _within_budget(self, budget: list[int], size: int) -> bool:
        """Never more than 3x the bytes an unvalidated address sent us; count what is sent."""
        if budget[1] + size > 3 * budget[0]:
            self.counters["amplification_limited"] += 1
            return False
        budget[1] += size
        return True

    def poll_events(self) -> list[tuple[Connection, events.Event]]:
        """(connection, event) pairs since the last call, in order per connection."""
        out: list[tuple[Connection, events.Event]] = []
        while self._event_conns:
            conns = self._event_conns
            self._event_conns = {}
            for conn in conns:
                for ev in conn.events():
                    out.append((conn, ev))
        return out

    # -------------------------------------------------------------- plumbing

    def _wake_conn(self, conn: Connection) -> None:
        self._wake[conn] = None
        if conn.pending_events:
            self._event_conns[conn] = None

    def _schedule(self, conn: Connection) -> None:
        deadline = conn.timers.earliest()
        if deadline is None:
            self._deadline.pop(conn, None)
        elif self._deadline.get(conn) != deadline:
            self._deadline[conn] = deadline
            heapq.heappush(self._timers, (deadline, next(self._tiebreak), conn))

    def _state_changed(self, conn: Connection, old: State, new: State) -> None:
        listener = conn.listener
        if listener is not None:
            if old is SYN_RCVD:
                listener.half_closed(conn)
                self._unvalidated.pop(conn, None)
                if new is ESTABLISHED:
                    listener.accept_queue.append(conn)
                    self.counters["accepted"] += 1
        if old is TIME_WAIT:
            self._time_wait.pop(conn, None)
        elif new is TIME_WAIT:
            self._time_wait[conn] = None
            if len(self._time_wait) > self.max_time_wait:
                # The oldest gives way, nearest its 2*MSL end anyway, as
                # Linux does past tcp_max_tw_buckets; timestamps (RFC 7323
                # §5 PAWS) still tell its old duplicates from new segments.
                self.counters["time_wait_evicted"] += 1
                next(iter(self._time_wait)).set_state(CLOSED)  # back here: leaves _time_wait
        if new is CLOSED:
            self._closed.append(conn)
        self._event_conns[conn] = None
        self._wake[conn] = None
        if self.on_state_change is not None:
            self.on_state_change(conn, old, new)

    def _fault(self, conn: Connection, exc: Exception) -> None:
        """An exception escaped while handling ``conn`` (a bug, or a peer value
        nothing clamped): abort that connection alone, as ABORT does (RST to
        the peer, RFC 9293 §3.10.5; a ConnectionError event with reason
        "internal error" to its user), count it, log it once with its
        traceback. Every other connection keeps its datagrams and timers."""
        if conn in self._faulted:
            # Its own abort failed too: forget it by hand, with a RST.
            self.counters["connection_faults_repeated"] += 1
            self._drop_faulted(conn)
            return
        self._faulted.add(conn)
        self.counters["connection_faults"] += 1
        logger.error("rudp: %r failed internally and was aborted", conn, exc_info=exc)
        try:
            conn.fail("internal error")
        except Exception:  # noqa: BLE001
            self._drop_faulted(conn)
            return
        self._wake[conn] = None
        self._event_conns[conn] = None

    def _fault_output(self, conn: Connection, now: float) -> list[Outgoing]:
        """The RST (and nothing else) of a connection that just faulted while sending."""
        self._wake.pop(conn, None)
        try:
            segs = conn.output.segments_to_send(now)
            conn.output.run = None  # an aborted connection sends no more data
            return [(encode(seg, self.config.checksum), conn.addr) for seg in segs]
        except Exception as exc:  # noqa: BLE001
            conn.output.run = None
            self._fault(conn, exc)
            return []

    def _drop_faulted(self, conn: Connection) -> None:
        """Remove a connection whose own machinery fails: a RST from its
        numbers, an error for its user, and no state left here."""
        rst = Segment(conn.local_port, conn.remote_port, conn.snd_nxt & MASK,
                      conn.rcv_nxt & MASK, RST | ACK, 0)
        self._out.append((encode(rst, self.config.checksum), conn.addr))
        conn.pending_events.append(events.ConnectionError("internal error"))
        self._event_conns[conn] = None
        self._wake.pop(conn, None)
        self._remove(conn)

    def _remove(self, conn: Connection) -> None:
        self._faulted.discard(conn)
        self._held.pop(conn, None)
        self._time_wait.pop(conn, None)  # a SYN reopened it (RFC 6191), or it faulted
        self._unvalidated.pop(conn, None)
        key = (conn.addr, conn.local_port, conn.remote_port)
        if self.connections.get(key) is conn:
            del self.connections[key]
        self._deadline.pop(conn, None)
        listener = conn.listener
        if listener is not None:
            listener.half_closed(conn)
            if conn in listener.accept_queue:
                listener.accept_queue.remove(conn)

    def listener_stats(self, listener: Listener) -> dict[str, int]:
        """``listener.stats()`` plus what this socket counted for everyone:
        refused, malformed and rate-limited datagrams and replies, and
        connections aborted by an internal fault."""
        out = dict(self.counters)
        out["connections"] = len(self.connections)
        out["time_wait"] = len(self._time_wait)
        out.update(listener.stats())
        return out

    @property
    def time_wait_count(self) -> int:
        return len(self._time_wait)

    # ------------------------------------------------ policy moved from the adapter

    def unreachable(self, addr: Address) -> list[tuple[Connection, bool]]:
        """ICMP port unreachable from ``addr`` (what a connected UDP socket reports
        as ECONNREFUSED): a hard error, the connection SHOULD be aborted (RFC 1122
        §4.2.3.9). Every connection to ``addr`` that still expects the peer is
        aborted; each is returned with whether its end was clean.

        Clean means the user lost nothing: every byte we sent is acknowledged,
        and either the peer's FIN arrived (CLOSING, LAST_ACK) or the user
        closed and will read no more; only the ACK of our FIN is missing. Any
        other loss is an error: a refused handshake or a reset connection. TIME_WAIT needs
        nothing more from the peer and stays, as in Linux. Counted once per
        report as ``icmp_refused``.
        """
        self.counters["icmp_refused"] += 1
        lost: list[tuple[Connection, bool]] = []
        for conn in list(self.connections.values()):
            state = conn.state
            if conn.addr != addr or state in (State.CLOSED, State.LISTEN, State.TIME_WAIT):
                continue
            clean = conn.send_buffer_size == 0 and (
                state is State.CLOSING or state is State.LAST_ACK or conn.user_closed)
            conn.abort()
            lost.append((conn, clean))
        return lost

    def linger_deadline(self, now: float, *, peers_hear_icmp: bool) -> float | None:
        """When the socket may close, once its owner needs none of its
        connections any more: None while some connection has more to do than
        TIME_WAIT (data or a FIN to send or to acknowledge); ``now`` when none
        is left, or when the peers hear ICMP (a server's socket, reached from
        clients' connected sockets: a FIN they retransmit to the closed port
        ends their close cleanly, see ``unreachable``).

        Otherwise (a client's private socket, whose server does not hear ICMP)
        the socket lingers in TIME_WAIT to ACK a FIN the peer retransmits
        because our last ACK was lost: a few RTOs, ``max(1 s, 3 * RTO)``,
        rather than the whole 2*MSL of TIME_WAIT, which caps it.
        """
        conns = self.connections.values()
        if any(conn.state is not State.TIME_WAIT for conn in conns):
            return None
        if peers_hear_icmp or not conns:
            return now
        return now + max(min(2 * conn.config.msl, max(1.0, 3 * conn.rtt.rto)) for conn in conns)
