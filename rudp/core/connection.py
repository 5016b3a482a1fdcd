"""One TCP connection as a sans-IO state machine (RFC 9293).

No sockets, no clock, no asyncio: inputs are received segments and timer
expiries, each with ``now``, plus user calls; outputs are segments to send,
the next deadline and events. Internally every sequence number is *unwrapped*
(a plain int that never wraps); values are reduced mod 2**32 only on the wire,
and wire values are unwrapped relative to SND.UNA or RCV.NXT on arrival.
"""

from __future__ import annotations

import enum
from collections import Counter
from typing import Callable, Hashable

from . import congestion, events
from .config import Config
from .ranges import ReassemblyQueue, Scoreboard
from .rtt import RttEstimator
from .seqnum import MASK, seq_diff
from .wire import ACK, FIN, PSH, RST, SYN, Segment, segment_of

_DATA_RECEIVED = events.DataReceived()
_SEND_COMPLETE = events.SendComplete()  # fieldless events are shared
_TS_OPTION_LEN = 12  # NOP NOP TS(10), RFC 7323 Appendix A layout
_DEFAULT_PEER_MSS = 536  # RFC 9293 §3.7.1 when the peer sends no MSS option


class State(enum.Enum):
    """The eleven states of RFC 9293 §3.3.2."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN_SENT"
    SYN_RCVD = "SYN_RCVD"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN_WAIT_1"
    FIN_WAIT_2 = "FIN_WAIT_2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"

    # Members are singletons compared by identity, so the identity hash is
    # consistent; Enum's own __hash__ is Python code, run on every
    # ``state in SYNCHRONIZED`` test of the per-segment paths.
    __hash__ = object.__hash__


CLOSED = State.CLOSED
LISTEN = State.LISTEN
SYN_SENT = State.SYN_SENT
SYN_RCVD = State.SYN_RCVD
ESTABLISHED = State.ESTABLISHED
FIN_WAIT_1 = State.FIN_WAIT_1
FIN_WAIT_2 = State.FIN_WAIT_2
CLOSE_WAIT = State.CLOSE_WAIT
CLOSING = State.CLOSING
LAST_ACK = State.LAST_ACK
TIME_WAIT = State.TIME_WAIT

#: States in which both sides have exchanged SYNs (RFC 9293 §3.10.7.4).
SYNCHRONIZED = frozenset(
    {ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT}
)
_CAN_SEND = frozenset({SYN_SENT, SYN_RCVD, ESTABLISHED, CLOSE_WAIT})
_CAN_RECEIVE_TEXT = frozenset({ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2})
_OUR_FIN_SENT = frozenset({FIN_WAIT_1, FIN_WAIT_2, CLOSING, LAST_ACK, TIME_WAIT})


class ConnectionStateError(RuntimeError):
    """A user call that the connection's state does not allow (local misuse)."""


class Stats:
    """Per-connection counters, readable at any time."""

    __slots__ = (
        "segments_sent",
        "segments_received",
        "bytes_sent",
        "bytes_received",
        "bytes_retransmitted",
        "retransmits",
        "fast_retransmits",
        "lost_retransmits",
        "spurious_recoveries",
        "tail_loss_probes",
        "timeouts",
        "dup_acks",
        "zero_window_probes",
        "keepalives_sent",
    )

    segments_sent: int
    segments_received: int
    bytes_sent: int
    bytes_received: int
    bytes_retransmitted: int
    retransmits: int
    fast_retransmits: int
    lost_retransmits: int
    spurious_recoveries: int
    tail_loss_probes: int
    timeouts: int
    dup_acks: int
    zero_window_probes: int
    keepalives_sent: int

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Connection:
    """A TCP control block plus its buffers, driven by ``receive``/``handle_timer``.

    User calls (``send``, ``read``, ``shutdown``, ``close``, ``abort``) never need
    ``now``: their segments are produced by the next ``segments_to_send(now)``.
    """

    # Slotted: ~80 attributes per connection, read on every segment.
    __slots__ = (
        "addr", "cc", "config", "drops", "error", "irs", "iss", "listener", "local_port",
        "max_snd_wnd", "on_state_change", "passive", "peer_mss", "rcv_nxt", "rcv_wscale",
        "remote_port", "rtt", "sack_ok", "snd_max", "snd_nxt", "snd_una", "snd_wl1", "snd_wl2",
        "snd_wnd", "snd_wscale", "state", "stats", "ts_ok", "ws_ok",
        "_ack_now", "_buf_seq", "_close_at", "_delack_at", "_dupacks", "_eof", "_events",
        "_fin_queued", "_force_rxt", "_high_rxt", "_in_recovery", "_keepalive_at",
        "_keepalive_probe", "_keepalive_probes", "_keepalive_sent_at", "_last_ack_sent",
        "_last_rcv", "_now", "_on_wake", "_ooo", "_ooo_fin", "_out", "_persist_at",
        "_persist_backoff", "_persist_probe", "_progress_at", "_rcv_adv", "_rcv_queued",
        "_rcvbuf", "_recover", "_reno_sacked", "_retries", "_rst_pending", "_rtt_seq",
        "_rtt_time", "_rtx_at", "_rxt_limit", "_rxt_ts", "_sacks", "_send_complete_sent",
        "_smss", "_snd_dead", "_sndbuf", "_syn_wnd", "_tlp_at", "_tlp_fire", "_tlp_out",
        "_ts_offset", "_ts_recent", "_una_rxt_mark", "_unacked_bytes", "_undo", "_user_closed",
        "__weakref__",
    )

    def __init__(
        self,
        config: Config,
        *,
        local_port: int,
        remote_port: int,
        addr: Hashable,
        iss: int,
        on_wake: Callable[[Connection], None] | None = None,
        on_state_change: Callable[[Connection, State, State], None] | None = None,
    ) -> None:
        self.config = config
        self.local_port = local_port
        self.remote_port = remote_port
        self.addr = addr
        self.state = CLOSED
        self.stats = Stats()
        self.drops: Counter[str] = Counter()
        self.listener: object | None = None  # set by the endpoint for passive opens
        self.passive = False
        self.error: str | None = None  # why the connection failed, if it did
        self._on_wake = on_wake
        self.on_state_change = on_state_change
        self._events: list[events.Event] = []
        self._out: list[Segment] = []

        # Send sequence variables (RFC 9293 §3.3.1), unwrapped.
        self.iss = iss & MASK
        self.snd_una = self.iss
        self.snd_nxt = self.iss
        self.snd_max = self.iss  # highest sequence number sent so far, plus one
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.max_snd_wnd = 0
        self.snd_wscale = 0
        # Receive sequence variables, unwrapped.
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_wscale = 0
        self._rcv_adv = 0  # right edge of the window we last advertised

        # Negotiated options.
        self.peer_mss = _DEFAULT_PEER_MSS
        self.ws_ok = False
        self.sack_ok = False
        self.ts_ok = False
        self._ts_recent = 0
        self._smss = 0
        self._update_smss()
        self._ts_offset = (iss * 2654435761) & MASK  # random-looking per-connection clock
        self._last_ack_sent = 0

        # Buffers.
        self._sndbuf = bytearray()
        self._buf_seq = self.iss + 1  # sequence number of _sndbuf[0]
        # Acknowledged bytes still at the front of _sndbuf. They are cut off
        # in bulk: an append after a front delete moves the whole bytearray,
        # which with a megabyte queued cost more than sending the segment.
        self._snd_dead = 0
        self._fin_queued = False
        self._user_closed = False
        # In-order data not yet read, as the received payloads themselves:
        # appending a reference costs nothing per byte, and read() copies once.
        self._rcvbuf: list[bytes] = []
        self._rcv_queued = 0  # bytes in _rcvbuf
        self._ooo = ReassemblyQueue()
        self._ooo_fin: int | None = None
        self._eof = False

        # Loss recovery (RFC 5681, RFC 6582, RFC 6675).
        self.rtt = RttEstimator(config.rto_initial, config.rto_min, config.rto_max)
        self.cc = congestion.create(config.congestion_control, config.mss, config.initial_window)
        self._sacks = Scoreboard()
        self._dupacks = 0
        self._reno_sacked = 0  # dupACKed segments' bytes when the peer lacks SACK
        self._in_recovery = False
        self._recover = self.iss
        self._high_rxt = 0
        self._rxt_limit = 0
        self._force_rxt = False
        self._una_rxt_mark: int | None = None  # SND.MAX when SND.UNA's segment was resent
        self._undo: tuple[int, int] | None = None  # (cwnd, ssthresh) before recovery
        self._rxt_ts = 0  # our TSval when the recovery's first retransmission left
        self._retries = 0
        self._rtt_seq: int | None = None  # segment being timed (Karn's rule)
        self._rtt_time = 0.0

        # Timers: absolute deadlines or None.
        self._rtx_at: float | None = None
        self._tlp_at: float | None = None  # tail loss probe timeout (RFC 8985 §7)
        self._tlp_fire = False
        self._tlp_out = False
        self._persist_at: float | None = None
        self._persist_backoff = 0
        self._persist_probe = False
        self._delack_at: float | None = None
        self._keepalive_at: float | None = None
        self._keepalive_probes = 0
        self._keepalive_sent_at = 0.0
        self._keepalive_probe = False
        self._close_at: float | None = None  # TIME_WAIT or FIN_WAIT_2 expiry
        self._progress_at = 0.0  # last time SND.UNA advanced, for the user timeout
        self._last_rcv = 0.0

        self._now = 0.0
        self._syn_wnd = 0
        self._ack_now = False
        self._unacked_bytes = 0
        self._rst_pending = False
        self._send_complete_sent = True

    # ------------------------------------------------------------------ misc

    def __repr__(self) -> str:
        return (
            f"<Connection {self.local_port}->{self.addr}:{self.remote_port} {self.state.value}>"
        )

    def _set_state(self, new: State) -> None:
        """Every transition goes through here (RFC 9293 §3.3.2 diagram)."""
        old = self.state
        if old is new:
            return
        self.state = new
        if new is CLOSED or new is TIME_WAIT:
            self._release()
            if new is TIME_WAIT:
                self._close_at = self._now + 2 * self.config.msl
            if old is not TIME_WAIT:
                self._events.append(events.Closed())
        if self.on_state_change is not None:
            self.on_state_change(self, old, new)

    def _drop_send_buffer(self) -> None:
        self._buf_seq += self._snd_dead
        self._snd_dead = 0
        self._sndbuf = bytearray()

    def _drop_received(self) -> None:
        self._rcvbuf = []
        self._rcv_queued = 0

    def _release(self) -> None:
        """Drop buffers and timers that a finished connection no longer needs."""
        self._drop_send_buffer()
        self._ooo = ReassemblyQueue()
        self._sacks.clear()
        self._rtx_at = self._persist_at = self._delack_at = self._keepalive_at = None
        self._tlp_at = None
        self._close_at = None

    def _wake(self) -> None:
        if self._on_wake is not None:
            self._on_wake(self)

    def _event(self, event: events.Event) -> None:
        self._events.append(event)

    def events(self) -> list[events.Event]:
        """Take the events that happened since the last call."""
        out, self._events = self._events, []
        return out

    @property
    def has_events(self) -> bool:
        return bool(self._events)

    @property
    def send_buffer_size(self) -> int:
        """Bytes written but not yet acknowledged."""
        return len(self._sndbuf) - self._snd_dead

    @property
    def readable(self) -> int:
        """In-order bytes waiting for ``read()``."""
        return self._rcv_queued

    @property
    def at_eof(self) -> bool:
        """The peer's FIN arrived and every byte before it was read."""
        return self._eof and not self._rcv_queued

    def _update_smss(self) -> None:
        """Largest payload of a segment we send, options subtracted (RFC 6691);
        kept as an attribute because the per-segment paths read it often."""
        self._smss = min(self.peer_mss, self.config.mss) - (_TS_OPTION_LEN if self.ts_ok else 0)

    @property
    def _buf_end(self) -> int:
        return self._buf_seq + len(self._sndbuf)

    # ------------------------------------------------------------ user calls

    def connect(self, now: float) -> None:
        """Active OPEN (RFC 9293 §3.10.1): CLOSED -> SYN_SENT."""
        if self.state is not CLOSED:
            raise ConnectionStateError(f"connect() in {self.state.value}")
        self._now = now
        self._set_state(SYN_SENT)
        self._wake()

    def listen(self, now: float) -> None:
        """Passive OPEN: CLOSED -> LISTEN; the next SYN moves on to SYN_RCVD."""
        if self.state is not CLOSED:
            raise ConnectionStateError(f"listen() in {self.state.value}")
        self._now = now
        self.passive = True
        self._set_state(LISTEN)

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Queue data (RFC 9293 §3.10.2); allowed before ESTABLISHED as the RFC allows."""
        if self.state not in _CAN_SEND or self._fin_queued:
            raise ConnectionStateError(
                f"send() in {self.state.value}" + (" after shutdown" if self._fin_queued else "")
            )
        if data:
            self._sndbuf += data
            self._send_complete_sent = False
            self._wake()

    def read(self, max_bytes: int = -1) -> bytes:
        """Take in-order received data; freeing buffer space may reopen the window."""
        chunks = self._rcvbuf
        queued = self._rcv_queued
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)  # chunks are bytes
        chunks.clear()
        if 0 <= max_bytes < queued:
            chunks.append(data[max_bytes:])
            data = data[:max_bytes]
        self._rcv_queued = queued - len(data)
        if data and self.state in _CAN_RECEIVE_TEXT:
            # RFC 9293 §3.8.6.2.2: tell the peer once the window grew enough.
            if self._window_right_edge() - self._rcv_adv >= min(
                self.config.recv_buffer // 2, 2 * self.config.mss
            ):
                self._ack_now = True
                self._wake()
        return data

    def shutdown(self) -> None:
        """Half-close: send FIN after the queued data; receiving goes on (RFC 9293 §3.10.4)."""
        st = self.state
        if self._fin_queued or st in _OUR_FIN_SENT:
            return
        if st is SYN_SENT or st is LISTEN or st is CLOSED:
            self._set_state(CLOSED)  # nothing was synchronized: delete the TCB
        else:
            self._fin_queued = True
            self._send_complete_sent = False
            if st is ESTABLISHED:
                self._set_state(FIN_WAIT_1)
            elif st is CLOSE_WAIT:
                self._set_state(LAST_ACK)
            # SYN_RCVD: the FIN waits for ESTABLISHED (§3.10.4).
        self._wake()

    def close(self) -> None:
        """Full close: FIN after queued data; later data from the peer is answered
        with RST, and so is unread data now (RFC 1122 §4.2.2.13)."""
        self._user_closed = True
        if self._rcv_queued and self.state in SYNCHRONIZED:
            self.abort()
            return
        self.shutdown()
        if self.state is FIN_WAIT_2 and self.config.fin_wait_2_timeout is not None:
            self._close_at = self._now + self.config.fin_wait_2_timeout

    def abort(self) -> None:
        """ABORT (RFC 9293 §3.10.5): RST in synchronized states, queued data discarded."""
        if self.state in (SYN_RCVD, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
            self._rst_pending = True
        self._drop_send_buffer()
        self._drop_received()
        self._set_state(CLOSED)
        self._wake()

    # ------------------------------------------------------------ receiving

    def receive(self, seg: Segment, now: float) -> None:
        """Process one arriving segment (RFC 9293 §3.10.7).

        Unlike user calls and timers, this does not call ``on_wake``: whoever
        delivers a segment asks for ``segments_to_send`` and ``events`` next.
        """
        if self.state is ESTABLISHED and self.config.header_prediction and self.receive_predicted(seg, now):
            return
        self.receive_full(seg, now)

    def receive_full(self, seg: Segment, now: float) -> None:
        """``receive`` without header prediction (for a caller that tried it)."""
        self._now = now
        self._last_rcv = now
        self.stats.segments_received += 1
        st = self.state
        if st is CLOSED:
            self.drops["closed"] += 1
        elif st is LISTEN:
            self._receive_listen(seg, now)
        elif st is SYN_SENT:
            self._receive_syn_sent(seg, now)
        else:
            self._receive_other(seg, now)

    def receive_predicted(self, seg: Segment, now: float) -> bool:
        """Header prediction (Jacobson, as in RFC 1323 Appendix; BSD tcp_input),
        in ESTABLISHED: the next in-order data segment, with no SACK blocks,
        nothing out of order, open windows, and either nothing of ours in
        flight or an ACK of all of it (request/response), is handled here in a
        few steps. Anything else returns False, untouched, for ``receive_full``,
        which would reach the same result."""
        # One unpack of the tuple instead of a descriptor call per field.
        _, _, seq, ack, flags, window, payload, _, _, _, sack, ts, _ = seg
        n = len(payload)
        if not n or flags & 0xF7 != ACK:  # data with only ACK (and PSH) set
            return False
        rcv_nxt = self.rcv_nxt
        snd_max = self.snd_max
        snd_una = self.snd_una
        acks_all = False  # the segment also acknowledges everything in flight
        if ack != snd_una & MASK:
            acks_all = (
                ack == snd_max & MASK
                and snd_max > snd_una
                and not self._in_recovery
                and snd_max <= self._buf_seq + len(self._sndbuf)  # no FIN of ours in flight
            )
            if not acks_all:
                return False
        elif snd_max != snd_una:
            return False
        if (
            seq != rcv_nxt & MASK
            or sack
            or self._ooo.nbytes
            or self._ooo_fin is not None
            or self._user_closed
            or n > self._rcv_adv - rcv_nxt
            or not window
            or not self.snd_wnd  # a closed window has the persist timer to settle
            or self.snd_wl1 >= rcv_nxt  # §3.10.7.4 SND.WL1 rule: let the full path judge
        ):
            return False
        self._now = self._last_rcv = now
        stats = self.stats
        stats.segments_received += 1
        if ts is not None and self.ts_ok:
            # RFC 7323 §4.3 (the wraparound test is seq_diff(...) >= 0, inlined).
            if rcv_nxt <= self._last_ack_sent and (ts[0] - self._ts_recent) & MASK < 0x80000000:
                self._ts_recent = ts[0]
            if acks_all:  # as _process_ack would: SND.UNA moves up to SND.MAX
                self._ack_advance(snd_max, now, ts[1])
        elif acks_all:
            self._ack_advance(snd_max, now, None)
        self._rcvbuf.append(bytes(payload))  # no-op for bytes; a caller's bytearray is not kept
        self._rcv_queued += n
        self.rcv_nxt = rcv_nxt + n
        # The window update of §3.10.7.4 (new data, so SND.WL1 < SEG.SEQ holds).
        wnd = window << self.snd_wscale
        self.snd_wnd = wnd
        if wnd > self.max_snd_wnd:
            self.max_snd_wnd = wnd
        self.snd_wl1 = rcv_nxt
        self.snd_wl2 = self.snd_una
        stats.bytes_received += n
        events_ = self._events
        if not events_ or events_[-1] is not _DATA_RECEIVED:
            events_.append(_DATA_RECEIVED)
        unacked = self._unacked_bytes + n
        self._unacked_bytes = unacked
        if unacked >= 2 * self._smss:
            self._ack_now = True  # RFC 5681 §4.2: every second full segment
        elif self._delack_at is None:
            self._delack_at = now + self.config.delayed_ack
        return True

    def _negotiate(self, seg: Segment) -> None:
        """Options from the peer's SYN (RFC 9293 §3.7.1, RFC 7323 §2-3, RFC 2018 §2)."""
        cfg = self.config
        if seg.mss:
            self.peer_mss = seg.mss
        if cfg.window_scale and seg.wscale is not None:
            self.ws_ok = True
            self.snd_wscale = min(seg.wscale, 14)  # RFC 7323 §2.3
            self.rcv_wscale = cfg.rcv_wscale
        self.sack_ok = cfg.sack and seg.sack_permitted
        if cfg.timestamps and seg.ts is not None:
            self.ts_ok = True
            self._ts_recent = seg.ts[0]
        self._update_smss()
        self.cc.mss = self._smss
        self.cc.cwnd = cfg.initial_window * self._smss

    def _receive_listen(self, seg: Segment, now: float) -> None:
        """LISTEN (RFC 9293 §3.10.7.2)."""
        flags = seg.flags
        if flags & RST:
            self.drops["rst_in_listen"] += 1
            return
        if flags & ACK:
            self._send_rst(seg.ack, 0, RST)
            return
        if not flags & SYN:
            self.drops["no_syn_in_listen"] += 1
            return
        self.irs = seg.seq
        self.rcv_nxt = seg.seq + 1
        self._last_ack_sent = self.rcv_nxt
        self._negotiate(seg)
        self.snd_wnd = seg.window  # never scaled in a SYN (RFC 7323 §2.2)
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1, self.snd_wl2 = seg.seq, self.iss
        self._set_state(SYN_RCVD)

    def _receive_syn_sent(self, seg: Segment, now: float) -> None:
        """SYN_SENT (RFC 9293 §3.10.7.3)."""
        flags = seg.flags
        ack = 0
        if flags & ACK:
            ack = self._unwrap_snd(seg.ack)
            if ack <= self.iss or ack > self.snd_max:  # first: check the ACK bit
                if not flags & RST:
                    self._send_rst(seg.ack, 0, RST)
                self.drops["bad_ack_syn_sent"] += 1
                return
        if flags & RST:  # second: the RST bit
            if flags & ACK:
                self.error = "refused"
                self._event(events.ConnectionReset(refused=True))
                self._set_state(CLOSED)
            else:
                self.drops["rst_without_ack"] += 1
            return
        if not flags & SYN:  # fourth: the SYN bit
            self.drops["no_syn_in_syn_sent"] += 1
            return
        self.irs = seg.seq
        self.rcv_nxt = seg.seq + 1
        self._rcv_adv = self.rcv_nxt + self._syn_wnd
        self._negotiate(seg)
        self.snd_wnd = seg.window
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1 = seg.seq
        if flags & ACK:
            self.snd_wl2 = ack
            self._sample_syn_rtt(seg, now)
            self._ack_advance(ack, now, None)
            self._established()
            self._ack_now = True
        else:
            # Simultaneous open: answer SYN,ACK with our ISS (§3.5, Figure 8).
            self.snd_wl2 = self.iss
            self.snd_nxt = self.iss
            self._set_state(SYN_RCVD)

    def _established(self) -> None:
        if self.rtt.srtt is None and self.rtt.backoff:
            # RFC 6298 §5.7: the SYN (or SYN,ACK) timed out and no RTT sample was
            # taken (Karn): the RTO MUST be re-initialized to 3 s for data.
            cfg = self.config
            self.rtt = RttEstimator(max(cfg.rto_initial, 3.0), cfg.rto_min, cfg.rto_max)
        self._set_state(ESTABLISHED)
        self._event(events.Connected())
        if self.config.keepalive:
            self._keepalive_at = self._now + self.config.keepalive_idle
        if self._fin_queued:
            self._set_state(FIN_WAIT_1)

    def _acceptable(self, seq: int, seg_len: int, rst: int) -> bool:
        """The segment acceptability test (RFC 9293 §3.10.7.4, first check)."""
        rcv_nxt = self.rcv_nxt
        wnd = max(0, self._rcv_adv - rcv_nxt)
        if seg_len == 0:
            if wnd == 0:
                return seq == rcv_nxt
            if rst:
                return rcv_nxt <= seq < rcv_nxt + wnd  # strict for RST (RFC 5961 §3.2)
            # A bare ACK from a peer whose data fills our whole window carries
            # SEQ = RCV.NXT + RCV.WND; accept it, as Linux does (tcp_sequence).
            return rcv_nxt <= seq <= rcv_nxt + wnd
        if wnd == 0:
            return False
        end = seq + seg_len - 1
        return rcv_nxt <= seq < rcv_nxt + wnd or rcv_nxt <= end < rcv_nxt + wnd

    def _receive_other(self, seg: Segment, now: float) -> None:
        """SYN_RCVD and the synchronized states (RFC 9293 §3.10.7.4)."""
        flags = seg.flags
        st = self.state
        seq = self._unwrap_rcv(seg.seq)
        payload = seg.payload
        fin = flags & FIN

        if flags & SYN and st is SYN_RCVD and seq == self.rcv_nxt - 1 and not flags & ACK:
            # The peer retransmitted its SYN: our SYN,ACK was lost; send it again,
            # echoing this SYN's timestamp so the peer's RTT sample is not
            # inflated by its own backoff (RFC 7323 §4.3).
            if seg.ts is not None and self.ts_ok and seq_diff(seg.ts[0], self._ts_recent) > 0:
                self._ts_recent = seg.ts[0]
            self.snd_nxt = self.iss
            return
        if flags & SYN and flags & ACK and st is SYN_RCVD and seq == self.rcv_nxt - 1:
            # Simultaneous open (§3.5 Figure 8, line 7): the peer's SYN,ACK repeats
            # the SYN we hold and acknowledges ours; take its ACK and carry on
            # as if the SYN bit were clear, so both sides reach ESTABLISHED.
            flags &= ~SYN
            seq += 1
        if (
            st is TIME_WAIT
            and fin
            and not flags & (RST | SYN)
            and seq + len(payload) + 1 == self.rcv_nxt
        ):
            # A retransmitted FIN: ACK it again, restart 2*MSL (§3.10.7.4, eighth).
            # Only the FIN we already hold qualifies; any other FIN fails the
            # sequence check (§3.10.7.4 first) and must not prolong TIME-WAIT.
            self._ack_now = True
            self._close_at = now + 2 * self.config.msl
            return

        # First: sequence number check.
        seg_len = len(payload) + fin + (1 if flags & SYN else 0)
        if not self._acceptable(seq, seg_len, flags & RST):
            if self._rcv_adv <= self.rcv_nxt and seq == self.rcv_nxt:
                # Zero window: still process ACK/RST at RCV.NXT (§3.10.7.4), drop
                # the text; a FIN takes no buffer and is kept.
                if payload:
                    self.drops["zero_window"] += 1
                    payload = b""
                    self._ack_now = True
                    if not flags & RST:
                        fin = 0
            else:
                if not flags & RST:
                    self._ack_now = True
                self.drops["out_of_window"] += 1
                return

        if (
            seg.ts is not None
            and self.ts_ok
            and seq <= self._last_ack_sent
            and seq_diff(seg.ts[0], self._ts_recent) >= 0
        ):
            self._ts_recent = seg.ts[0]  # RFC 7323 §4.3

        # Second: the RST bit (RFC 5961 §3.2: exact match resets, else challenge).
        if flags & RST:
            if st is TIME_WAIT:
                # RFC 1337 (fix F1): a RST must not cut TIME_WAIT short; a stray
                # RST for a late duplicate would otherwise end the protection.
                self.drops["rst_in_time_wait"] += 1
                return
            if seq != self.rcv_nxt:
                self._ack_now = True
                self.drops["rst_challenged"] += 1
                return
            self._reset_by_peer()
            return

        # Fourth: a SYN in a synchronized state gets a challenge ACK (RFC 5961 §4.2).
        if flags & SYN:
            self._ack_now = True
            self.drops["syn_challenged"] += 1
            return

        # Fifth: the ACK field.
        if not flags & ACK:
            self.drops["no_ack"] += 1
            return
        ack = self._unwrap_snd(seg.ack)
        if st is SYN_RCVD:
            if not self.snd_una < ack <= self.snd_max:
                self._send_rst(seg.ack, 0, RST)
                self.drops["bad_ack_syn_rcvd"] += 1
                return
            self.snd_wnd = seg.window << self.snd_wscale
            self.snd_wl1, self.snd_wl2 = seq, ack
            self._sample_syn_rtt(seg, now)
            self._ack_advance(ack, now, None)
            self._established()
        elif ack > self.snd_max:
            self._ack_now = True  # it acknowledges something not yet sent
            self.drops["ack_unsent"] += 1
            return
        elif ack < self.snd_una - max(self.max_snd_wnd, 1):
            self._ack_now = True  # RFC 5961 §5.2: too old to be believed
            self.drops["ack_too_old"] += 1
            return
        else:
            self._process_ack(seg, seq, ack, len(payload), fin, now)
        if self.state is CLOSED:
            return

        # Seventh: segment text.
        if payload or fin:
            st = self.state
            if st in _CAN_RECEIVE_TEXT:
                if payload and self._user_closed:
                    # RFC 1122 §4.2.2.13: the user cannot receive any more.
                    self.drops["data_after_close"] += 1
                    self.abort()
                    return
                self._receive_text(seq, payload, fin, flags, now)
            elif payload:
                self.drops["data_after_fin"] += 1
                self._ack_now = True

    def _process_ack(
        self, seg: Segment, seq: int, ack: int, plen: int, fin: int, now: float
    ) -> None:
        """ACK processing for the synchronized states (RFC 9293 §3.10.7.4, fifth)."""
        wnd = seg.window << self.snd_wscale
        if ack > self.snd_una:
            self._ack_advance(ack, now, seg.ts[1] if self.ts_ok and seg.ts else None)
            if self.state is CLOSED:
                return
        elif (
            ack == self.snd_una
            and self.snd_max > self.snd_una
            and plen == 0
            and not fin
            and wnd == self.snd_wnd
            and wnd != 0
        ):
            # A duplicate ACK (RFC 5681 §2). An ACK of a closed window answers a
            # zero-window probe and signals no loss: probes back off, they are
            # never fast-retransmitted (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17).
            self._dupacks += 1
            self.stats.dup_acks += 1
            if not self.sack_ok and self._in_recovery:
                self._reno_sacked += self._smss
        # Window update (§3.10.7.4: SND.WL1/SND.WL2 guard against old segments).
        if self.snd_wl1 < seq or (self.snd_wl1 == seq and self.snd_wl2 <= ack):
            if wnd > self.snd_wnd and self._persist_at is not None:
                self._persist_at = None
                self._persist_backoff = 0
            self.snd_wnd = wnd
            self.snd_wl1, self.snd_wl2 = seq, ack
            if wnd > self.max_snd_wnd:
                self.max_snd_wnd = wnd
        if self.sack_ok and seg.sack:
            for left, right in seg.sack:
                start = self._unwrap_snd(left)
                end = self._unwrap_snd(right)
                # Ignore D-SACKs and blocks outside what we sent (RFC 2018 §4).
                if self.snd_una < end <= self.snd_max and start < end:
                    self._sacks.add(max(start, self.snd_una), end)
        self._detect_loss(now)

    def _ack_advance(self, ack: int, now: float, tsecr: int | None) -> None:
        """SND.UNA moves forward: free the buffer, time the RTT, settle timers."""
        acked = ack - self.snd_una
        buf = self._sndbuf
        dead = self._snd_dead
        freed = min(ack, self._buf_seq + len(buf)) - self._buf_seq - dead
        if freed > 0:
            dead += freed
            if dead < len(buf) >> 1:
                self._snd_dead = dead  # mostly live: cut the dead front later
            else:  # amortized: each cut is at least half the buffer
                del buf[:dead]
                self._buf_seq += dead
                self._snd_dead = 0
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        if self._sacks.ranges:
            self._sacks.advance(ack)
        self._una_rxt_mark = None
        self._retries = 0
        prev_progress = self._progress_at
        self._progress_at = now
        self._dupacks = 0
        # RTT sample: from the timestamp echo if negotiated (RFC 7323 §4), else
        # from a timed segment never retransmitted (Karn's rule, RFC 6298 §3).
        if tsecr:
            sample = ((int(now * 1000) + self._ts_offset - tsecr) & MASK) / 1000  # _ts_now inlined
            # The acked data left after the previous progress: a longer sample
            # echoes a stale TS.Recent (RFC 7323 §4.3) and is discarded.
            if sample <= now - prev_progress + 0.001:
                self.rtt.sample(sample)
        elif self._rtt_seq is not None and ack > self._rtt_seq:
            self.rtt.sample(now - self._rtt_time)
            self._rtt_seq = None
        in_recovery = self._in_recovery
        if (
            in_recovery
            and tsecr
            and self._undo is not None
            and seq_diff(tsecr, self._rxt_ts) < 0
        ):
            # Eifel detection (RFC 3522): this ACK echoes a timestamp older than
            # our first retransmission, so the original arrived and the
            # "loss" was reordering. Undo the reduction (RFC 4015 §3).
            self.cc.cwnd, self.cc.ssthresh = self._undo
            self._undo = None
            self._in_recovery = False
            self._recover = ack
            self._reno_sacked = 0
            self.stats.spurious_recoveries += 1
        elif in_recovery:
            if ack >= self._recover:  # full ACK (RFC 6582 §3.2 step 6)
                self._in_recovery = False
                self._reno_sacked = 0
                self.cc.on_recovery_end(self._pipe(), now)
            else:  # partial ACK: the next hole is lost too (step 5)
                self._reno_sacked = max(0, self._reno_sacked - acked)
                if self._high_rxt <= ack:
                    self._high_rxt = ack
                    self._force_rxt = not self.sack_ok
                self._rxt_limit = max(self._rxt_limit, ack + self._smss)
        elif freed > 0:
            self.cc.on_ack(freed, self._pipe(), now)
        # RFC 6298 §5.2/§5.3: stop the timer when all is acked, else restart it.
        self._rtx_at = None if self.snd_max <= ack else now + self.rtt.rto
        self._tlp_at = None
        self._tlp_out = False
        if (
            not self._send_complete_sent
            and len(self._sndbuf) == self._snd_dead
            and ack >= self.snd_max
            and (not self._fin_queued or ack > self._buf_end)
        ):
            self._send_complete_sent = True
            self._events.append(_SEND_COMPLETE)
        if self._fin_queued:
            self._fin_acked_transitions()

    def _fin_acked_transitions(self) -> None:
        """Our FIN is acknowledged when SND.UNA passes it (§3.10.7.4, fifth)."""
        if not self._fin_queued or self.snd_una <= self._buf_end:
            return
        st = self.state
        if st is FIN_WAIT_1:
            self._set_state(FIN_WAIT_2)
            if self._user_closed and self.config.fin_wait_2_timeout is not None:
                self._close_at = self._now + self.config.fin_wait_2_timeout
        elif st is CLOSING:
            self._set_state(TIME_WAIT)
        elif st is LAST_ACK:
            self._set_state(CLOSED)

    def _sample_syn_rtt(self, seg: Segment, now: float) -> None:
        if self.ts_ok and seg.ts is not None and seg.ts[1]:
            self.rtt.sample(now - self._ts_to_time(seg.ts[1], now))
        elif self._rtt_seq is not None:
            self.rtt.sample(now - self._rtt_time)
        self._rtt_seq = None

    def _detect_loss(self, now: float) -> None:
        """Enter fast recovery on DupThresh duplicate ACKs or SACKed bytes
        (RFC 5681 §3.2, RFC 6675 §5), at most once per window (RFC 6582 §3.2)."""
        thresh = self.config.dupack_threshold
        smss = self._smss
        if self._in_recovery:
            if self.sack_ok:
                edge = self._sacks.lost_edge((thresh - 1) * smss + 1)
                if edge is not None and edge > self._rxt_limit:
                    self._rxt_limit = edge
                mark = self._una_rxt_mark
                if mark is not None and (
                    self._sacks.sacked - self._sacks.sacked_below(mark) > (thresh - 1) * smss
                ):
                    # Data sent after our retransmission of SND.UNA's segment was
                    # SACKed DupThresh times over: that retransmission was lost
                    # too (as RFC 8985 would conclude); send it again.
                    self._una_rxt_mark = None
                    self._high_rxt = self.snd_una
                    self.stats.lost_retransmits += 1
            return
        outstanding = self.snd_max - self.snd_una
        if outstanding <= 0:
            return
        segs = -(-outstanding // smss)
        if segs < thresh + 1 and self._buf_end <= self.snd_max:
            # Early retransmit (RFC 5827 §3.1): too few segments in flight to
            # ever see DupThresh duplicates, and no new data to send.
            thresh = max(1, segs - 1)
        lost_edge = self._sacks.lost_edge((thresh - 1) * smss + 1) if self.sack_ok else None
        if self._dupacks < thresh and lost_edge is None:
            return
        if self.snd_una < self._recover:
            return  # still within the window of the last recovery (RFC 6582 §3.2)
        # RFC 6675 §5 (4.2) / RFC 5681 eq. 4: halve FlightSize, the data sent and
        # not cumulatively ACKed - not "pipe", which leaves SACKed data out.
        in_flight = self.snd_max - self.snd_una
        self._in_recovery = True
        self._recover = self.snd_max
        self._high_rxt = self.snd_una
        self._rxt_limit = max(lost_edge or 0, self.snd_una + self._smss)
        self._reno_sacked = 0 if self.sack_ok else self._dupacks * self._smss
        self._force_rxt = True
        self.stats.fast_retransmits += 1
        self._rtt_seq = None
        self._undo = (self.cc.cwnd, self.cc.ssthresh) if self.ts_ok else None
        self._rxt_ts = self._ts_now(now)
        self.cc.on_congestion(in_flight, now)

    def _receive_text(self, seq: int, payload: bytes, fin: int, flags: int, now: float) -> None:
        """Seventh and eighth steps: queue in-order data, reassemble, process FIN."""
        if seq < self.rcv_nxt:  # trim the part we already have
            cut = self.rcv_nxt - seq
            payload = payload[cut:]
            seq = self.rcv_nxt
        room = self._rcv_adv - seq
        if len(payload) > room:  # trim what lies beyond the window
            payload = payload[: max(room, 0)]
            fin = 0
            self.drops["beyond_window"] += 1
        if fin:
            self._ooo_fin = seq + len(payload)
        if seq > self.rcv_nxt:
            self._ooo.add(seq, payload)
            self._ack_now = True  # out of order: ACK at once (RFC 5681 §4.2)
            return
        filled = bool(self._ooo)
        if payload:
            payload = bytes(payload)  # no-op for bytes; a caller's bytearray is not kept
            self._rcvbuf.append(payload)
            self._rcv_queued += len(payload)
            self.rcv_nxt += len(payload)
            self.stats.bytes_received += len(payload)
        if filled:
            for piece in self._ooo.pop_ready(self.rcv_nxt):
                piece = bytes(piece)
                self._rcvbuf.append(piece)
                self._rcv_queued += len(piece)
                self.rcv_nxt += len(piece)
                self.stats.bytes_received += len(piece)
            self._ack_now = True  # a hole was (partly) filled: ACK at once (§4.2)
        if payload or filled:
            if not self._events or self._events[-1] is not _DATA_RECEIVED:
                self._events.append(_DATA_RECEIVED)
            self._unacked_bytes += len(payload)
            if self._unacked_bytes >= 2 * self._smss:
                self._ack_now = True  # at least every second full segment (RFC 5681 §4.2)
            elif self._delack_at is None:
                self._delack_at = now + self.config.delayed_ack
        if self._ooo_fin is not None and self._ooo_fin == self.rcv_nxt:
            self._ooo_fin = None
            self._receive_fin()

    def _receive_fin(self) -> None:
        """Eighth: the FIN bit (RFC 9293 §3.10.7.4)."""
        self.rcv_nxt += 1
        self._eof = True
        self._ack_now = True
        self._event(events.EofReceived())
        st = self.state
        if st is ESTABLISHED:
            self._set_state(CLOSE_WAIT)
        elif st is FIN_WAIT_1:
            # Our FIN not yet acknowledged (it would have moved us to FIN_WAIT_2).
            self._set_state(CLOSING)
        elif st is FIN_WAIT_2:
            self._set_state(TIME_WAIT)

    def _reset_by_peer(self) -> None:
        """An acceptable RST (RFC 9293 §3.10.7.4, second)."""
        st = self.state
        if st is SYN_RCVD and self.passive:
            self.drops["reset_half_open"] += 1  # back to LISTEN: just forget it
        elif st in (CLOSING, LAST_ACK, TIME_WAIT):
            pass  # the peer is done with us too
        else:
            self.error = "refused" if st is SYN_RCVD else "reset"
            self._event(events.ConnectionReset(refused=st is SYN_RCVD))
        self._drop_received()
        self._set_state(CLOSED)

    # --------------------------------------------------------------- timers

    def get_timer(self) -> float | None:
        """The earliest deadline at which ``handle_timer`` must be called."""
        best = self._rtx_at
        for t in (self._tlp_at, self._delack_at, self._persist_at, self._keepalive_at,
                  self._close_at):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def handle_timer(self, now: float) -> None:
        """Run every timer whose deadline has passed."""
        self._now = now
        if self._close_at is not None and now >= self._close_at:
            self._close_at = None
            if self.state in (TIME_WAIT, FIN_WAIT_2):
                self._set_state(CLOSED)  # 2*MSL over (§3.10.8), or FIN_WAIT_2 gave up
                self._wake()
                return
        if self._tlp_at is not None and now >= self._tlp_at:
            self._tlp_at = None
            self._tlp_fire = True
        if self._rtx_at is not None and now >= self._rtx_at:
            self._rtx_at = None
            self._tlp_at = None
            self._tlp_fire = False
            self._on_rto(now)
            if self.state is CLOSED:
                self._wake()
                return
        if self._persist_at is not None and now >= self._persist_at:
            self._persist_at = None
            ut = self.config.user_timeout
            if (
                self.snd_wnd == 0
                and self._user_timeout_expired(now)
                and now - self._last_rcv >= (ut or 0)
            ):
                # Probes unanswered for the user timeout (RFC 9293 §3.8.6.1 only
                # forbids giving up while they are ACKed): abort here, so the RST
                # leaves in this round instead of a last probe (§3.8.3, RFC 5482).
                self._fail("timeout")
                self._wake()
                return
            self._persist_probe = True
        if self._delack_at is not None and now >= self._delack_at:
            self._delack_at = None
            self._ack_now = True
        if self._keepalive_at is not None and now >= self._keepalive_at:
            self._keepalive_at = None
            self._on_keepalive(now)
        self._wake()

    def _user_timeout_expired(self, now: float) -> bool:
        ut = self.config.user_timeout
        return ut is not None and now - self._progress_at >= ut

    def _fail(self, reason: str) -> None:
        """Give up on the connection: tell the user, tell the peer (RST)."""
        self.error = reason
        self._event(events.ConnectionError(reason))
        self.abort()

    def _on_rto(self, now: float) -> None:
        """Retransmission timeout (RFC 6298 §5.4-5.7, RFC 5681 §3.1)."""
        st = self.state
        self._rtt_seq = None  # Karn: nothing in flight may be timed now
        if st is SYN_SENT or st is SYN_RCVD:
            self._retries += 1
            if self._retries > self.config.syn_retries:
                if st is SYN_RCVD and self.passive:
                    self.drops["synack_timeout"] += 1
                    self._set_state(CLOSED)
                else:
                    self._fail("timeout")
                return
            self.rtt.back_off()
            self.snd_nxt = self.iss  # send the SYN (or SYN,ACK) again
            return
        if self.snd_max <= self.snd_una:
            return
        self._retries += 1
        if self._retries > self.config.max_retries or self._user_timeout_expired(now):
            self._fail("timeout")
            return
        self.stats.timeouts += 1
        flight = self.snd_max - self.snd_una  # FlightSize (RFC 5681 eq. 4)
        if self._retries == 1:
            self.cc.on_timeout(flight, now)
        else:
            self.cc.cwnd = self._smss
        self._in_recovery = False
        self._recover = self.snd_max  # RFC 6582 §3.2 step 4 / §4
        self._reno_sacked = 0
        self._dupacks = 0
        # RFC 2018 §8: after a timeout the receiver may have reneged, so prior SACK
        # information MUST be ignored in choosing what to resend; SACKs arriving
        # from now on refill the scoreboard (RFC 6675 §5.1) and are skipped again.
        self._sacks.clear()
        self.snd_nxt = self.snd_una  # resend from SND.UNA
        self.rtt.back_off()

    def _on_keepalive(self, now: float) -> None:
        """Keep-alive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6): after an idle spell,
        probe; any segment from the peer since the last probe answers it."""
        cfg = self.config
        if self.state not in (ESTABLISHED, CLOSE_WAIT):
            return
        if self._keepalive_probes and self._last_rcv >= self._keepalive_sent_at:
            self._keepalive_probes = 0  # the peer answered
        if self._keepalive_probes == 0:
            due = self._last_rcv + cfg.keepalive_idle
            if now < due:
                self._keepalive_at = due
                return
        elif self._keepalive_probes >= cfg.keepalive_count:
            self._fail("keepalive timeout")
            return
        self._keepalive_probes += 1
        self._keepalive_probe = True
        self._keepalive_sent_at = now
        self._keepalive_at = now + cfg.keepalive_interval

    # -------------------------------------------------------------- sending

    def _pipe(self) -> int:
        """Bytes presumed in the network (RFC 6675 §4 "pipe", counted in bytes)."""
        out = self.snd_nxt - self.snd_una
        if out <= 0:
            return 0
        if self.sack_ok:
            sacked = self._sacks.sacked_below(self.snd_nxt)
        else:
            sacked = min(self._reno_sacked, out)
        lost = 0
        if self._in_recovery:
            lost = self._sacks.hole_bytes(
                max(self._high_rxt, self.snd_una), min(self._rxt_limit, self.snd_nxt)
            )
        return max(0, out - sacked - lost)

    def segments_to_send(self, now: float) -> list[Segment]:
        """Everything to transmit now; re-arms the timers that sending implies."""
        self._now = now
        out = self._out
        st = self.state
        if (
            not out
            and st is ESTABLISHED
            and not self._ack_now
            and self.snd_nxt == self.snd_max == self._buf_seq + len(self._sndbuf)
            and not (self._in_recovery or self._fin_queued or self._persist_probe
                     or self._tlp_fire or self._keepalive_probe or self._rst_pending)
        ):
            # Nothing to send (an ACK is delayed, all data is out): only the
            # timers need a look. The common case after receiving in order.
            self._arm_timers(now)
            return []
        self._out = []
        if self._rst_pending:
            self._rst_pending = False
            out.append(self._make(self.snd_nxt, RST | ACK, b"", now))
            return out
        if st is CLOSED or st is LISTEN:
            return out
        if st is SYN_SENT or st is SYN_RCVD:
            if self.snd_nxt == self.iss:
                self._send_syn(out, now)
        elif st is not TIME_WAIT:
            self._send_data(out, now)
        if self._ack_now or (self._keepalive_probe and not out):
            if self._keepalive_probe:
                self.stats.keepalives_sent += 1
                out.append(self._make(self.snd_una - 1, ACK, b"", now))
            elif not out:
                # A bare ACK carries SND.MAX, not a rewound SND.NXT, so that it
                # stays inside the peer's window after a timeout (as BSD's
                # tcp_output does); otherwise both sides can drop each other's ACKs.
                out.append(self._make(self.snd_max, ACK, b"", now))
        self._keepalive_probe = False
        self._arm_timers(now)
        return out

    def _send_syn(self, out: list[Segment], now: float) -> None:
        """SYN or SYN,ACK with our options (RFC 9293 §3.5)."""
        cfg = self.config
        active = self.state is SYN_SENT and not self.passive
        flags = SYN if self.state is SYN_SENT else SYN | ACK
        wnd = min(self._window_right_edge() - self.rcv_nxt, 0xFFFF) if not active else min(
            cfg.recv_buffer, 0xFFFF
        )
        ts: tuple[int, int] | None = None
        if cfg.timestamps and (active or self.ts_ok):
            ts = (self._ts_now(now), self._ts_recent if not active else 0)
        wscale = cfg.rcv_wscale if cfg.window_scale and (active or self.ws_ok) else None
        sack_perm = cfg.sack and (active or self.sack_ok)
        seg = Segment(
            self.local_port,
            self.remote_port,
            self.iss,
            self.rcv_nxt & MASK if flags & ACK else 0,
            flags,
            wnd,
            b"",
            min(cfg.mss, 0xFFFF),
            wscale,
            sack_perm,
            (),
            ts,
        )
        out.append(seg)
        self.stats.segments_sent += 1
        self._syn_wnd = wnd
        if flags & ACK:
            self._acked_now(wnd)
        if self._retries == 0 and self._rtt_seq is None:
            self._rtt_seq, self._rtt_time = self.iss, now
        if self.snd_max == self.iss:
            self.snd_max = self.iss + 1
        else:
            self.stats.retransmits += 1
        self.snd_nxt = self.iss + 1
        if self._rtx_at is None:
            self._rtx_at = now + self.rtt.rto

    def _send_data(self, out: list[Segment], now: float) -> None:
        """Retransmissions in recovery, then new data and FIN within the windows."""
        smss = self._smss
        cwnd = self.cc.cwnd
        if self._dupacks and not self._in_recovery:
            cwnd += min(self._dupacks, 2) * smss  # Limited Transmit (RFC 3042 §2)
        sws_override = False
        if self._persist_probe:
            self._persist_probe = False
            if self.snd_wnd == 0:
                self._send_probe(out, now)
            else:
                sws_override = True  # the persist timer ends SWS avoidance's wait
        if self._tlp_fire:
            self._tlp_fire = False
            self._send_tlp(out, now, smss)
        # Loss recovery (RFC 6675 §5 step 4 / RFC 6582 §3.2 step 5).
        while self._in_recovery:
            start = max(self._high_rxt, self.snd_una)
            hole = self._sacks.next_hole(start, min(self._rxt_limit, self.snd_max))
            if hole is None:
                break
            if not self._force_rxt and self._pipe() + smss > cwnd:
                break
            self._force_rxt = False
            if hole[0] == self.snd_una:
                self._una_rxt_mark = self.snd_max
            sent = self._emit(out, hole[0], min(hole[1] - hole[0], smss), now)
            self._high_rxt = hole[0] + max(sent, 1)
        self._force_rxt = False
        if (
            self.config.batch_send
            and not self._in_recovery
            and self.snd_nxt == self.snd_max
            and self._buf_seq + len(self._sndbuf) - self.snd_nxt > smss
        ):
            self._send_full_segments(out, now, smss, cwnd)
        # New data, or data after a timeout (go-back-N from SND.UNA, RFC 6298 §5.4).
        while True:
            seq = self.snd_nxt
            if seq < self.snd_max:
                end = self._sacks.covering(seq)
                if end is not None:
                    self.snd_nxt = end
                    continue
            left = self._buf_end - seq
            if left > 0:
                n = min(smss, left, self.snd_una + self.snd_wnd - seq)
                if seq < self.snd_max:
                    nxt = self._sacks.next_start(seq)
                    if nxt is not None:
                        n = min(n, nxt - seq)
                if n <= 0:
                    break  # the peer's window is full: the persist timer takes over
                pipe = self._pipe()
                if pipe and pipe + n > cwnd:
                    break
                if n < smss and seq >= self.snd_max and not sws_override:
                    if n < left:
                        # Sender SWS avoidance (RFC 9293 §3.8.6.2.1).
                        if n < self.max_snd_wnd // 2:
                            break
                    elif (
                        not self.config.nodelay
                        and self.snd_max > self.snd_una
                        and not self._fin_queued
                    ):
                        break  # Nagle: one small segment in flight at a time (§3.7.4)
                self._emit(out, seq, n, now)
            elif self._fin_queued and left == 0:
                self._emit(out, seq, 0, now)  # FIN needs no window space
                break
            else:
                break

    def _send_full_segments(self, out: list[Segment], now: float, smss: int, cwnd: int) -> None:
        """The bulk case of the loop in ``_send_data``, batched: full-sized new
        segments that fit both windows and are not the last of the buffer
        (which may need PSH, FIN or Nagle's judgement). Same segments, same
        bookkeeping; the header fields are computed once per batch."""
        seq = self.snd_nxt
        una = self.snd_una
        buf = self._sndbuf
        buf_seq = self._buf_seq
        outstanding = seq - una
        sacked = self._sacks.sacked if self.sack_ok else min(self._reno_sacked, outstanding)
        pipe = max(0, outstanding - sacked)
        room = cwnd - pipe if pipe else max(cwnd, smss)
        limit = min(buf_seq + len(buf) - 1, una + self.snd_wnd)  # keep the last byte back
        count = min((limit - seq) // smss, room // smss)
        if count <= 0:
            return
        ack = self.rcv_nxt & MASK
        wnd = self._advertise()
        sack = self._sack_blocks()
        ts = (self._ts_now(now), self._ts_recent) if self.ts_ok else None
        lport, rport = self.local_port, self.remote_port
        view = memoryview(buf)
        try:
            off = seq - buf_seq
            for i in range(count):
                start = off + i * smss
                out.append(segment_of((lport, rport, (seq + i * smss) & MASK, ack, ACK, wnd,
                                       bytes(view[start : start + smss]), None, None, False,
                                       sack, ts, 0)))
        finally:
            view.release()  # the buffer must stay resizable
        n = count * smss
        self.snd_nxt = self.snd_max = seq + n
        stats = self.stats
        stats.bytes_sent += n
        stats.segments_sent += count
        if self._rtt_seq is None and not self.ts_ok:
            self._rtt_seq, self._rtt_time = seq, now
        if outstanding == 0:
            self._progress_at = now  # RFC 5482: the user timeout runs from here
        if self._rtx_at is None:
            self._rtx_at = now + self.rtt.rto

    def _send_tlp(self, out: list[Segment], now: float, smss: int) -> None:
        """Send the tail loss probe (RFC 8985 §7.3): a new segment if the
        windows allow one, else the last segment sent again."""
        if self._in_recovery or self.snd_max <= self.snd_una or self.snd_nxt != self.snd_max:
            return
        self._tlp_out = True
        self.stats.tail_loss_probes += 1
        seq = self.snd_max
        new = min(smss, self._buf_end - seq, self.snd_una + self.snd_wnd - seq)
        if new > 0:
            self._emit(out, seq, new, now)
        else:
            end = min(self.snd_max, self._buf_end)  # a sent FIN rides on the segment before it
            start = max(self.snd_una, end - smss)
            self._emit(out, start, end - start, now)
        self._rtx_at = now + self.rtt.rto  # §7.3: the RTO restarts after the probe

    def _send_probe(self, out: list[Segment], now: float) -> None:
        """Zero-window probe: one byte past the window (RFC 9293 §3.8.6.1)."""
        una = self.snd_una
        if self._buf_end > una:
            self.stats.zero_window_probes += 1
            nxt = self.snd_nxt
            self._emit(out, una, 1, now)
            # The receiver drops a probe byte that finds its window still closed,
            # so the probe must not advance SND.NXT: once the window opens the byte
            # is sent again in order (RFC 9293 §3.8.6.1; BSD's tcp_output leaves
            # snd_nxt alone for a forced probe). Otherwise Nagle holds the rest
            # behind a byte nobody will ACK until an RTO.
            self.snd_nxt = nxt
        elif self._fin_queued and una == self._buf_end:
            self._emit(out, una, 0, now)
        self._persist_backoff += 1

    def _emit(self, out: list[Segment], seq: int, n: int, now: float) -> int:
        """Send ``n`` bytes from ``seq`` (plus FIN when it falls right after them)."""
        buf = self._sndbuf
        buf_seq = self._buf_seq
        off = seq - buf_seq
        payload = bytes(buf[off : off + n]) if n else b""
        n = len(payload)
        end = seq + n
        buf_end = buf_seq + len(buf)
        flags = ACK
        if self._fin_queued and end == buf_end:
            flags |= FIN
            end += 1
        if n and end >= buf_end:
            flags |= PSH
        out.append(self._make(seq, flags, payload, now))
        stats = self.stats
        snd_max = self.snd_max
        if seq < snd_max:
            old = (seq + n if seq + n < snd_max else snd_max) - seq  # bytes sent before
            stats.retransmits += 1
            stats.bytes_retransmitted += old
            stats.bytes_sent += n - old
            if self._rtt_seq is not None and seq <= self._rtt_seq:
                self._rtt_seq = None  # Karn's rule
        else:
            stats.bytes_sent += n
            if self._rtt_seq is None and not self.ts_ok:
                self._rtt_seq, self._rtt_time = seq, now
        if end > self.snd_nxt and seq <= self.snd_nxt:
            self.snd_nxt = end
        if snd_max == self.snd_una:
            # Nothing was outstanding: the user timeout counts from this send
            # (RFC 9293 §3.8.3, RFC 5482 §3), not from the last ACK before an idle spell.
            self._progress_at = now
        if end > snd_max:
            self.snd_max = end
        if self._rtx_at is None:
            self._rtx_at = now + self.rtt.rto
        return n

    def _make(self, seq: int, flags: int, payload: bytes, now: float) -> Segment:
        """Build a segment; every one after the SYN carries ACK (RFC 9293 §3.10.7)."""
        sack: tuple[tuple[int, int], ...] = ()
        if flags & ACK:
            wnd = self._advertise()
            if self._ooo.nbytes:
                sack = self._sack_blocks()
            ack = self.rcv_nxt & MASK
        else:
            wnd = ack = 0
        ts = (self._ts_now(now), self._ts_recent) if self.ts_ok and not flags & RST else None
        self.stats.segments_sent += 1
        return segment_of((self.local_port, self.remote_port, seq & MASK, ack, flags, wnd,
                           payload, None, None, False, sack, ts, 0))

    def _sack_blocks(self) -> tuple[tuple[int, int], ...]:
        """SACK blocks for an ACK (RFC 2018 §4): three fit beside timestamps, four without."""
        if not self.sack_ok or not self._ooo:
            return ()
        limit = 3 if self.ts_ok else 4
        return tuple((s & MASK, e & MASK) for s, e in self._ooo.blocks(limit))

    def _advertise(self) -> int:
        """The window field for an ACK now; never moves the right edge left
        (RFC 9293 §3.8.6.2.2 SWS avoidance, RFC 7323 §2.4)."""
        right = self._window_right_edge()
        if right - self._rcv_adv < min(self.config.recv_buffer // 2, self.config.mss):
            right = self._rcv_adv  # too small a gain to announce
        shift = self.rcv_wscale
        wnd = max(0, right - self.rcv_nxt)
        field = min((wnd + (1 << shift) - 1) >> shift, 0xFFFF)
        self._acked_now(field << shift)
        return field

    def _acked_now(self, wnd: int) -> None:
        """Bookkeeping for any segment that carries our ACK."""
        self._rcv_adv = max(self._rcv_adv, self.rcv_nxt + wnd)
        self._last_ack_sent = self.rcv_nxt
        self._ack_now = False
        self._delack_at = None
        self._unacked_bytes = 0

    def _window_right_edge(self) -> int:
        free = self.config.recv_buffer - self._rcv_queued - self._ooo.nbytes
        if not self.rcv_wscale:
            free = min(free, 0xFFFF)
        return self.rcv_nxt + max(0, free)

    def _arm_timers(self, now: float) -> None:
        """RTO while data is in flight; persist while the peer's window is closed."""
        if self.state not in SYNCHRONIZED:
            return
        outstanding = self.snd_max > self.snd_una
        buf_end = self._buf_seq + len(self._sndbuf)
        pending = buf_end > self.snd_nxt
        if self.snd_wnd == 0 and (pending or (outstanding and self.snd_una < buf_end)):
            self._rtx_at = None
            if self._persist_at is None:
                backoff = min(self._persist_backoff, 16)
                self._persist_at = now + min(self.rtt.rto * (1 << backoff), self.config.rto_max)
        elif pending and not outstanding:
            if self._persist_at is None:  # SWS avoidance held back a small segment
                self._persist_at = now + self.rtt.rto
        else:
            self._persist_at = None
            self._persist_backoff = 0
            if outstanding and self._rtx_at is None:
                self._rtx_at = now + self.rtt.rto
            elif not outstanding:
                self._rtx_at = None
            if outstanding:
                self._arm_tlp(now)
            else:
                self._tlp_at = None

    def _arm_tlp(self, now: float) -> None:
        """Tail loss probe (RFC 8985 §7.2): when a flight's last segments or
        their ACKs are lost, nothing elicits duplicate ACKs and only the RTO
        (200 ms or more) would recover. After ~2*SRTT without an ACK, one probe
        segment draws the ACK or SACK that starts fast recovery instead."""
        srtt = self.rtt.srtt
        if (
            not self.config.tail_loss_probe
            or srtt is None
            or self._tlp_at is not None
            or self._tlp_out
            or self._in_recovery
            or self._rtx_at is None
            or self.state not in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK)
        ):
            return
        pto = 2 * srtt
        if self.snd_max - self.snd_una <= self._smss:
            pto += self.config.delayed_ack  # a lone segment's ACK may be delayed
        when = now + max(pto, 0.01)
        if when < self._rtx_at:
            self._tlp_at = when

    def _send_rst(self, seq_wire: int, ack_wire: int, flags: int) -> None:
        """A RST in answer to an unacceptable segment (RFC 9293 §3.10.7)."""
        self._out.append(
            Segment(self.local_port, self.remote_port, seq_wire & MASK, ack_wire & MASK, flags, 0)
        )

    # ------------------------------------------------------------ helpers

    def _unwrap_snd(self, wire: int) -> int:
        return self.snd_una + seq_diff(wire, self.snd_una & MASK)

    def _unwrap_rcv(self, wire: int) -> int:
        return self.rcv_nxt + seq_diff(wire, self.rcv_nxt & MASK)

    def _ts_now(self, now: float) -> int:
        """Our TSval: a millisecond clock with a per-connection offset (RFC 7323 §5.4)."""
        return (int(now * 1000) + self._ts_offset) & MASK

    def _ts_to_time(self, tsecr: int, now: float) -> float:
        return now - ((self._ts_now(now) - tsecr) & MASK) / 1000
