"""One TCP connection as a sans-IO state machine (RFC 9293).

No sockets, no clock, no asyncio: inputs are received segments and timer
expiries, each with ``now``, plus user calls; outputs are segments to send,
the next deadline and events. Internally every sequence number is *unwrapped*
(a plain int that never wraps); values are reduced mod 2**32 only on the wire,
and wire values are unwrapped relative to SND.UNA or RCV.NXT on arrival.

The connection holds the transmission control block (RFC 9293 §3.3.1) and
ties together the parts that work on it, each an object of its own:
``sndbuf``/``rcvq`` (buffers), ``recovery`` (loss recovery and the congestion
controller), ``rtt``, ``timers``, ``input`` (the §3.10.7 receive steps) and
``output`` (segments to send).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Callable, Hashable

from mypy_extensions import mypyc_attr

from . import congestion, events
from .buffers import RecvQueue, SendBuffer
from .config import Config
from .input import Receiver
from .output import Sender
from .observer import RTO, SYN_RTO, Observer
from .recovery import Recovery
from .ratelimit import ChallengeLimiter
from .rtt import RttEstimator
from .seqnum import MASK, seq_diff
from .state import (  # noqa: F401 - re-exported: State and the names are public here
    ABORT_SENDS_RST, CAN_RECEIVE_TEXT, CAN_SEND, CLOSE_WAIT, CLOSED, CLOSING, ESTABLISHED,
    FIN_WAIT_1, FIN_WAIT_2, LAST_ACK, LISTEN, OUR_FIN_SENT, SYN_RCVD, SYN_SENT, SYNCHRONIZED,
    TIME_WAIT, State, check_transition,
)
from .stats import Stats
from .timers import Timers
from .wire import TS_OPTION_LEN, Segment, decode

if TYPE_CHECKING:
    from .listener import Listener

_SEND_COMPLETE = events.SendComplete()  # fieldless events are shared
_CLOSED = events.Closed()
DEFAULT_PEER_MSS = 536  # RFC 9293 §3.7.1 when the peer sends no MSS option
#: Idle states where keep-alives probe (RFC 1122 §4.2.3.6): FIN_WAIT_2 too, as
#: Linux does, for a half-closed side waiting for data from a peer that may be
#: gone (its RST lost); the other closing states have a FIN timed already.
_KEEPALIVE_STATES = frozenset({ESTABLISHED, CLOSE_WAIT, FIN_WAIT_2})


def ts_offset_for(iss: int) -> int:
    """The per-connection offset of our TSval clock (RFC 7323 §5.4): derived
    from the ISS, so a SYN cookie's SYN,ACK and the connection it becomes agree."""
    return (iss * 2654435761) & MASK


@mypyc_attr(native_class=False)  # mypyc compiles no RuntimeError subclass natively
class ConnectionStateError(RuntimeError):
    """A user call that the connection's state does not allow (local misuse)."""


class Connection:
    """A TCP control block plus its parts, driven by ``receive``/``handle_timer``.

    User calls (``send``, ``read``, ``shutdown``, ``close``, ``abort``) never need
    ``now``: their segments are produced by the next ``segments_to_send(now)``.
    """

    __slots__ = (
        "addr", "config", "counters", "error", "irs", "iss", "listener", "local_port",
        "max_snd_wnd", "on_state_change", "passive", "peer_mss", "rcv_nxt", "rcv_wscale",
        "remote_port", "rtt", "sack_ok", "snd_max", "snd_nxt", "snd_una", "snd_wl1", "snd_wl2",
        "snd_wnd", "snd_wscale", "state", "stats", "ts_ok", "ws_ok", "rcv_adv", "ts_recent",
        "last_ack_sent", "smss", "ts_offset", "now", "last_rcv", "progress_at", "retries",
        "rtt_seq", "rtt_time", "unacked_bytes", "fin_queued", "user_closed",
        "send_complete_sent", "keepalive_probes", "keepalive_sent_at", "pending_events",
        "challenge_limiter", "last_refusal_ack", "observer",
        "sndbuf", "rcvq", "recovery", "timers", "input", "output", "_on_wake", "__weakref__",
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
        challenge_limiter: ChallengeLimiter | None = None,
    ) -> None:
        self.config = config
        self.local_port = local_port
        self.remote_port = remote_port
        self.addr = addr
        self.state = CLOSED
        self.stats = Stats()
        #: Segments dropped, trimmed or answered with a challenge, and how a
        #: half-open connection ended (synack_timeout, reset_half_open), by reason.
        self.counters: Counter[str] = Counter()
        self.listener: Listener | None = None  # set by the endpoint for passive opens
        self.passive = False
        self.error: str | None = None  # why the connection failed, if it did
        self._on_wake = on_wake
        self.on_state_change = on_state_change
        #: Logs and tracing (rudp.core.observer); None costs one test per hook.
        self.observer: Observer | None = None
        self.pending_events: list[events.Event] = []  # not yet taken by events()
        # RFC 5961 §7: the endpoint's budget of challenge ACKs, and when this
        # connection last answered a segment it refused.
        self.challenge_limiter = challenge_limiter
        self.last_refusal_ack = float("-inf")

        # Send sequence variables (RFC 9293 §3.3.1), unwrapped.
        self.iss = iss & MASK
        self.snd_una = self.snd_nxt = self.iss
        self.snd_max = self.iss  # highest sequence number sent so far, plus one
        self.snd_wnd = self.snd_wl1 = self.snd_wl2 = self.max_snd_wnd = self.snd_wscale = 0
        # Receive sequence variables, unwrapped.
        self.irs = self.rcv_nxt = self.rcv_wscale = 0
        self.rcv_adv = 0  # right edge of the window we last advertised
        # Negotiated options.
        self.peer_mss = DEFAULT_PEER_MSS
        self.ws_ok = self.sack_ok = self.ts_ok = False
        self.ts_recent = 0  # TS.Recent (RFC 7323 §4.3)
        self.last_ack_sent = 0  # Last.ACK.sent (RFC 7323 §4.3)
        self.ts_offset = ts_offset_for(iss)
        self.smss = 0
        self.update_smss()

        self.now = 0.0  # time of the latest input
        self.last_rcv = 0.0  # when a segment last arrived (keep-alive)
        self.progress_at = 0.0  # last time SND.UNA advanced, for the user timeout
        self.retries = 0  # consecutive retransmission timeouts
        self.rtt_seq: int | None = None  # segment being timed (Karn's rule)
        self.rtt_time = 0.0
        self.unacked_bytes = 0  # in-order bytes received since our last ACK
        self.fin_queued = False  # the user shut the sending side down
        self.user_closed = False  # ... and will read no more (close, not shutdown)
        self.send_complete_sent = True
        self.keepalive_probes = 0
        self.keepalive_sent_at = 0.0

        self.sndbuf = SendBuffer(self.iss + 1)
        self.rcvq = RecvQueue()
        self.rtt = RttEstimator(config.rto_initial, config.rto_min, config.rto_max)
        cc = congestion.create(config.congestion_control, config.mss, config.initial_window)
        self.recovery = Recovery(cc, self.stats, self.iss, self.ts_offset)
        self.timers = Timers()
        self.input = Receiver(self)
        self.output = Sender(self)

    def __repr__(self) -> str:
        return f"<Connection {self.local_port}->{self.addr}:{self.remote_port} {self.state.value}>"

    # -------------------------------------------------------------- state

    def set_state(self, new: State) -> None:
        """Every transition goes through here; unlisted ones raise (rudp.core.state)."""
        old = self.state
        if old is new:
            return
        check_transition(old, new)
        self.state = new
        if new is CLOSED or new is TIME_WAIT:
            self.release()
            if new is TIME_WAIT:
                self.timers.close = self.now + 2 * self.config.msl  # §3.10.8
            if old is not TIME_WAIT:
                self.pending_events.append(_CLOSED)
        if self.on_state_change is not None:
            self.on_state_change(self, old, new)
        if self.observer is not None:
            self.observer.state_changed(self, old, new)

    def established(self) -> None:
        """The handshake completed (RFC 9293 §3.10.7.3/§3.10.7.4 fifth). A FIN
        the user queued in SYN_RCVD leaves now (§3.10.4)."""
        if self.rtt.srtt is None and self.rtt.backoff:
            # RFC 6298 §5.7: the SYN (or SYN,ACK) timed out and no RTT sample was
            # taken (Karn): the RTO MUST be re-initialized to 3 s for data.
            cfg = self.config
            self.rtt = RttEstimator(max(cfg.rto_initial, 3.0), cfg.rto_min, cfg.rto_max)
        self.set_state(ESTABLISHED)
        self.pending_events.append(events.Connected())
        if self.config.keepalive:
            self.timers.keepalive = self.now + self.config.keepalive_idle
        if self.fin_queued:
            self.set_state(FIN_WAIT_1)

    def all_acked(self, ack: int) -> None:
        """After SND.UNA moved to ``ack``: report a drained send buffer, and
        take the transitions an ACK of our FIN causes (§3.10.7.4, fifth)."""
        if (
            not self.send_complete_sent
            and not len(self.sndbuf)
            and ack >= self.snd_max
            and (not self.fin_queued or ack > self.sndbuf.end)
        ):
            self.send_complete_sent = True
            self.pending_events.append(_SEND_COMPLETE)
        if not self.fin_queued or ack <= self.sndbuf.end:
            return
        st = self.state
        if st is FIN_WAIT_1:
            self.set_state(FIN_WAIT_2)
            if self.user_closed and self.config.fin_wait_2_timeout is not None:
                self.timers.close = self.now + self.config.fin_wait_2_timeout
        elif st is CLOSING:
            self.set_state(TIME_WAIT)
        elif st is LAST_ACK:
            self.set_state(CLOSED)

    def accept_cookie(self, syn: Segment, window: int, now: float) -> None:
        """LISTEN -> SYN_RCVD as if ``syn`` had just arrived and our SYN,ACK,
        announcing ``window``, had gone out: a valid SYN cookie came back
        (RFC 4987 §3.6), so nothing was kept until now. The ACK that brought
        it is ``receive``d next."""
        self.input.receive(syn, now)
        self.snd_nxt = self.snd_max = self.iss + 1
        self.output.acked_now(window)

    def release(self) -> None:
        """Drop buffers and timers that a finished connection no longer needs."""
        self.sndbuf.clear()
        self.rcvq.release()
        self.recovery.sacks.clear()
        self.timers.stop_all()

    def wake(self) -> None:
        if self._on_wake is not None:
            self._on_wake(self)

    def event(self, event: events.Event) -> None:
        self.pending_events.append(event)

    def events(self) -> list[events.Event]:
        """Take the events that happened since the last call."""
        out, self.pending_events = self.pending_events, []
        return out

    @property
    def send_buffer_size(self) -> int:
        """Bytes written but not yet acknowledged."""
        return len(self.sndbuf)

    @property
    def readable(self) -> int:
        """In-order bytes waiting for ``read()``."""
        return self.rcvq.queued

    @property
    def ack_may_wait(self) -> bool:
        """An ACK is due now only for a window update (RFC 9293 §3.8.6.2.2) or
        a FIN (§3.10.7.4): not for a second full-sized segment, out-of-order
        data or a DSACK, which RFC 5681 §4.2 wants acknowledged at once. Its
        owner may hold such an ACK for a moment, so that a reply written at
        once carries it (an ACK may be delayed, RFC 9293 §3.8.6.3)."""
        rcvq = self.rcvq
        return (self.output.ack_now and self.unacked_bytes < 2 * self.smss
                and not rcvq.ooo and rcvq.dsack is None)

    @property
    def at_eof(self) -> bool:
        """The peer's FIN arrived and every byte before it was read."""
        return self.rcvq.eof and not self.rcvq.queued

    @property
    def cc(self) -> congestion.CongestionControl:
        return self.recovery.cc

    # ------------------------------------------------------------ user calls

    def connect(self, now: float) -> None:
        """Active OPEN (RFC 9293 §3.10.1): CLOSED -> SYN_SENT."""
        if self.state is not CLOSED:
            raise ConnectionStateError(f"connect() in {self.state.value}")
        self.now = now
        self.set_state(SYN_SENT)
        self.wake()

    def listen(self, now: float) -> None:
        """Passive OPEN: CLOSED -> LISTEN; the next SYN moves on to SYN_RCVD."""
        if self.state is not CLOSED:
            raise ConnectionStateError(f"listen() in {self.state.value}")
        self.now = now
        self.passive = True
        self.set_state(LISTEN)

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Queue data (RFC 9293 §3.10.2); allowed before ESTABLISHED as the RFC allows."""
        if self.state not in CAN_SEND or self.fin_queued:
            raise ConnectionStateError(
                f"send() in {self.state.value}" + (" after shutdown" if self.fin_queued else "")
            )
        if data:
            self.sndbuf.append(data)
            self.send_complete_sent = False
            self.wake()

    def read(self, max_bytes: int = -1) -> bytes:
        """Take in-order received data; freeing buffer space may reopen the window."""
        return self._taken(self.rcvq.read(max_bytes))

    def read_chunk(self) -> bytes:
        """``read()``, but only the oldest chunk as it arrived, uncopied: for a
        caller that hands data on piece by piece (the asyncio transport)."""
        return self._taken(self.rcvq.read_chunk())

    def _taken(self, data: bytes) -> bytes:
        if data and self.state in CAN_RECEIVE_TEXT:
            # RFC 9293 §3.8.6.2.2: tell the peer once the window grew enough.
            if self.window_right_edge() - self.rcv_adv >= min(
                self.config.recv_buffer // 2, 2 * self.config.mss
            ):
                self.output.ack_now = True
                self.wake()
        return data

    def shutdown(self) -> None:
        """Half-close: send FIN after the queued data; receiving goes on (RFC 9293 §3.10.4)."""
        st = self.state
        if self.fin_queued or st in OUR_FIN_SENT:
            return
        if st is SYN_SENT or st is LISTEN or st is CLOSED:
            self.set_state(CLOSED)  # nothing was synchronized: delete the TCB
        else:
            self.fin_queued = True
            self.send_complete_sent = False
            if st is ESTABLISHED:
                self.set_state(FIN_WAIT_1)
            elif st is CLOSE_WAIT:
                self.set_state(LAST_ACK)
            # SYN_RCVD: the FIN waits for ESTABLISHED (§3.10.4), see established().
        self.wake()

    def close(self) -> None:
        """Full close: FIN after queued data; later data from the peer is answered
        with RST, and so is unread data now (RFC 1122 §4.2.2.13)."""
        self.user_closed = True
        if self.rcvq.queued and self.state in SYNCHRONIZED:
            self.abort()
            return
        self.shutdown()
        if self.state is FIN_WAIT_2 and self.config.fin_wait_2_timeout is not None:
            self.timers.close = self.now + self.config.fin_wait_2_timeout
            self.wake()  # the owner must schedule the new deadline

    def abort(self) -> None:
        """ABORT (RFC 9293 §3.10.5): RST in synchronized states, queued data discarded."""
        if self.state in ABORT_SENDS_RST:
            self.output.rst_pending = True
        self.sndbuf.clear()
        self.rcvq.drop_unread()
        self.set_state(CLOSED)
        self.wake()

    # ---------------------------------------------------- segments and time

    def receive(self, seg: Segment, now: float) -> None:
        """Process one arriving segment (RFC 9293 §3.10.7).

        Unlike user calls and timers, this does not call ``on_wake``: whoever
        delivers a segment asks for ``segments_to_send`` and ``events`` next.
        """
        if not (
            self.state is ESTABLISHED
            and self.config.header_prediction
            and self.input.receive_predicted(seg, now)
        ):
            self.input.receive(seg, now)

    def segments_to_send(self, now: float) -> list[Segment]:
        """Everything to transmit now; re-arms the timers that sending implies.
        A run the sender stamped from its template (only when an Endpoint
        gave it one, which takes ``output.run`` itself) comes back as Segments."""
        output = self.output
        segs = output.segments_to_send(now)
        run = output.run
        if run is not None:
            output.run = None
            segs[run.index:run.index] = [decode(d) for d in run.datagrams()]
        return segs

    def get_timer(self) -> float | None:
        """The earliest deadline at which ``handle_timer`` must be called."""
        return self.timers.earliest()

    def handle_timer(self, now: float) -> None:
        """Run every timer whose deadline has passed."""
        self.now = now
        timers = self.timers
        out = self.output
        if timers.due(timers.close, now):
            timers.close = None
            if self.state is TIME_WAIT or self.state is FIN_WAIT_2:
                self.set_state(CLOSED)  # 2*MSL over (§3.10.8), or FIN_WAIT_2 gave up
                self.wake()
                return
        if timers.due(timers.pace, now):
            timers.pace = None  # the wake below sends what the pacer held back
        if timers.due(timers.tlp, now):
            timers.tlp = None
            out.tlp_fire = True
            if timers.due(timers.rtx, now):
                # RFC 8985 §7.2: a probe instead of the RTO due at the same time.
                timers.rtx = now + self.rtt.rto
        if timers.due(timers.reo, now):
            timers.reo = None
            self.input.reorder_timeout(now)
        if timers.due(timers.rtx, now):
            timers.rtx = timers.tlp = timers.reo = None
            out.tlp_fire = False
            self.on_rto(now)
            if self.state is CLOSED:
                self.wake()
                return
        if timers.due(timers.persist, now):
            timers.persist = None
            if self.snd_wnd == 0 and self.user_timeout_expired(now) \
                    and now - self.last_rcv >= (self.config.user_timeout or 0):
                # Probes unanswered for the user timeout (RFC 9293 §3.8.6.1 only
                # forbids giving up while they are ACKed): abort here, so the RST
                # leaves in this round instead of a last probe (§3.8.3, RFC 5482).
                self.fail("timeout")
                self.wake()
                return
            out.persist_probe = True
        if timers.due(timers.delack, now):
            timers.delack = None
            out.ack_now = True
        if timers.due(timers.keepalive, now):
            timers.keepalive = None
            self.on_keepalive(now)
        self.wake()

    def user_timeout_expired(self, now: float) -> bool:
        ut = self.config.user_timeout
        return ut is not None and now - self.progress_at >= ut

    def fail(self, reason: str) -> None:
        """Give up on the connection: tell the user, tell the peer (RST)."""
        self.error = reason
        self.pending_events.append(events.ConnectionError(reason))
        self.abort()

    def on_rto(self, now: float) -> None:
        """Retransmission timeout (RFC 6298 §5.4-5.7, RFC 5681 §3.1)."""
        st = self.state
        self.rtt_seq = None  # Karn: nothing in flight may be timed now
        if st is SYN_SENT or st is SYN_RCVD:
            self.retries += 1
            if self.retries > self.config.syn_retries:
                if st is SYN_RCVD and self.passive:
                    self.counters["synack_timeout"] += 1
                    self.set_state(CLOSED)
                else:
                    self.fail("timeout")
                return
            self.rtt.back_off()
            self.snd_nxt = self.iss  # send the SYN (or SYN,ACK) again
            if self.observer is not None:
                self.observer.loss(self, SYN_RTO)
            return
        if self.snd_max <= self.snd_una:
            return
        self.retries += 1
        if self.retries > self.config.max_retries or self.user_timeout_expired(now):
            self.fail("timeout")
            return
        self.stats.timeouts += 1
        flight = self.snd_max - self.snd_una  # FlightSize (RFC 5681 eq. 4)
        self.recovery.on_timeout(self.snd_una, self.snd_max, flight, self.retries == 1,
                                 self.smss, now)
        self.snd_nxt = self.snd_una  # resend from SND.UNA
        self.rtt.back_off()
        if self.observer is not None:
            self.observer.loss(self, RTO)

    def on_keepalive(self, now: float) -> None:
        """Keep-alive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6): after an idle spell,
        probe; any segment from the peer since the last probe answers it."""
        cfg = self.config
        if self.state not in _KEEPALIVE_STATES:
            return
        if self.keepalive_probes and self.last_rcv >= self.keepalive_sent_at:
            self.keepalive_probes = 0  # the peer answered
        if self.keepalive_probes == 0:
            due = self.last_rcv + cfg.keepalive_idle
            if now < due:
                self.timers.keepalive = due
                return
        elif self.keepalive_probes >= cfg.keepalive_count:
            self.fail("keepalive timeout")
            return
        self.keepalive_probes += 1
        self.output.keepalive_probe = True
        self.keepalive_sent_at = now
        self.timers.keepalive = now + cfg.keepalive_interval

    # ------------------------------------------------------- shared rules

    def update_smss(self) -> None:
        """Largest payload of a segment we send with the options every segment
        carries (RFC 6691; timestamps when negotiated). SACK blocks, which come
        and go, are subtracted per send (Sender.send_data). Kept as an
        attribute because the per-segment paths read it often."""
        self.smss = min(self.peer_mss, self.config.mss) - (TS_OPTION_LEN if self.ts_ok else 0)

    def window_right_edge(self) -> int:
        """RCV.NXT plus the free receive buffer: where the window could end now."""
        free = self.config.recv_buffer - self.rcvq.queued - self.rcvq.ooo.nbytes
        if not self.rcv_wscale:
            free = min(free, 0xFFFF)
        return self.rcv_nxt + max(0, free)

    def ts_now(self, now: float) -> int:
        """Our TSval now (RFC 7323 §5.4): ``seqnum.ts_clock``, inlined because
        every segment we send reads it."""
        return (int(now * 1000) + self.ts_offset) & MASK

    def unwrap_snd(self, wire: int) -> int:
        return self.snd_una + seq_diff(wire, self.snd_una & MASK)

    def unwrap_rcv(self, wire: int) -> int:
        return self.rcv_nxt + seq_diff(wire, self.rcv_nxt & MASK)
