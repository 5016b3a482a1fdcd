"""Segment arrival for one connection: the RFC 9293 §3.10.7 steps, in order.

The :class:`Receiver` belongs to one :class:`~rudp.core.connection.Connection`
and applies the event-processing rules of §3.10.7 to it: LISTEN (§3.10.7.2),
SYN-SENT (§3.10.7.3), then for the other states the first to eighth checks
of §3.10.7.4 in the RFC's order, each rule with its section. Header
prediction (``receive_predicted``) is a shortcut for the commonest case,
pinned equal to the full path by the golden traces (Config.header_prediction).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import events
from .config import MIN_MSS
from .observer import FAST_RETRANSMIT
from .ratelimit import INVALID_RATELIMIT
from .seqnum import MASK
from .state import (
    CAN_RECEIVE_TEXT, CLOSED, CLOSE_WAIT, CLOSING, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2,
    LAST_ACK, LISTEN, SYN_RCVD, SYN_SENT, TIME_WAIT,
)
from .wire import ACK, DATA_TS_OFFSET, FIN, RST, SYN, Segment

if TYPE_CHECKING:
    from .connection import Connection

#: How long TS.Recent stays a valid PAWS reference without a segment (RFC 7323 §5.5).
TS_RECENT_LIFETIME = 24 * 24 * 3600.0

_DATA_RECEIVED = events.DataReceived()  # fieldless events are shared
_EOF_RECEIVED = events.EofReceived()


class Receiver:
    __slots__ = ("c",)

    def __init__(self, conn: Connection) -> None:
        self.c = conn

    def receive(self, seg: Segment, now: float) -> None:
        """One arriving segment, without header prediction (RFC 9293 §3.10.7)."""
        c = self.c
        c.now = now
        # RFC 7323 §5.5: after 24 days without a segment, TS.Recent is no
        # longer a reference for PAWS (the peer's clock may have wrapped past it).
        ts_recent_valid = now - c.last_rcv < TS_RECENT_LIFETIME
        c.last_rcv = now
        c.stats.segments_received += 1
        st = c.state
        if st is CLOSED:
            c.counters["closed"] += 1
        elif st is LISTEN:
            self.receive_listen(seg)
        elif st is SYN_SENT:
            self.receive_syn_sent(seg, now)
        else:
            self.receive_other(seg, now, ts_recent_valid)

    def receive_predicted(self, seg: Segment, now: float) -> bool:
        """Header prediction (Jacobson, as in RFC 1323 Appendix; BSD tcp_input),
        in ESTABLISHED: the next in-order data segment, with no SACK blocks,
        nothing out of order, open windows, and either nothing of ours in
        flight or an ACK of all of it (request/response), is handled here in a
        few steps. Anything else returns False, untouched, for ``receive``,
        which would reach the same result."""
        if not self.take_predicted(seg, now):
            return False
        self.schedule_ack(now)
        return True

    def take_predicted(self, seg: Segment, now: float) -> bool:
        """``receive_predicted`` but for its ACK decision (``schedule_ack``),
        which a run of such segments makes once (Endpoint.datagrams_received)."""
        # One unpack of the tuple instead of a descriptor call per field.
        _, _, seq, ack, flags, window, payload, _, _, _, sack, ts, _ = seg
        if sack or flags & 0xF7 != ACK:  # data with only ACK (and PSH) set
            return False
        return self.take_in_order(seq, ack, window, payload, ts, now)

    def take_in_order(self, seq: int, ack: int, window: int, payload: bytes | memoryview,
                      ts: tuple[int, int] | None, now: float) -> bool:
        """``take_predicted`` for a segment known to carry ACK (maybe PSH),
        no other flag and no SACK option, as its fields: the run path, which
        reads them from the datagram without a `Segment` (wire.parse_data_ts).
        ``payload`` may be a view into a reused buffer: what is kept is a copy.
        False, and nothing changed, when the full path must judge it."""
        c = self.c
        n = len(payload)
        if not n:
            return False
        rcv_nxt = c.rcv_nxt
        snd_max = c.snd_max
        snd_una = c.snd_una
        acks_all = False  # the segment also acknowledges everything in flight
        if ack != snd_una & MASK:
            acks_all = (
                ack == snd_max & MASK
                and snd_max > snd_una
                and not c.recovery.in_recovery
                and snd_max <= c.sndbuf.end  # no FIN of ours in flight
            )
            if not acks_all:
                return False
        elif snd_max != snd_una:
            return False
        rcvq = c.rcvq
        if (
            seq != rcv_nxt & MASK
            or rcvq.ooo.nbytes
            or rcvq.ooo_fin is not None
            or c.user_closed
            or n > c.rcv_adv - rcv_nxt
            or not window
            or not c.snd_wnd  # a closed window has the persist timer to settle
            or c.snd_wl1 >= rcv_nxt  # §3.10.7.4 SND.WL1 rule: let the full path judge
            or (ts is not None and (ts[0] - c.ts_recent) & MASK >= 0x80000000)  # PAWS: ditto
        ):
            return False
        c.now = c.last_rcv = now
        c.stats.segments_received += 1
        if ts is not None and ts[0] != c.ts_recent:  # (else there is nothing to update)
            self.update_ts_recent(ts, rcv_nxt)
        if acks_all:  # as the fifth step would: SND.UNA moves up to SND.MAX
            self.ack_advance(snd_max, now, ts[1] if ts is not None and c.ts_ok else None)
            if c.recovery.cc.wants_delivery:
                self.report_delivery(snd_max, now)
        # The window update of §3.10.7.4, which this segment (newer than any
        # that set the window: SND.WL1 < SEG.SEQ was checked) passes; with the
        # window unchanged only SND.WL1/SND.WL2 move.
        c.snd_wl1 = rcv_nxt
        c.snd_wl2 = c.snd_una
        wnd = window << c.snd_wscale
        if wnd != c.snd_wnd:
            self.update_window(rcv_nxt, c.snd_una, wnd)
        self.take(payload, n)  # the ACK decision is schedule_ack's, once per run
        return True

    def take_run(self, headers: list[tuple[int, int, int, int, int, int, int, int, int, int, int]],
                 buf: memoryview, size: int, now: float) -> int:
        """The in-order data at the front of a GRO read, as ``take_in_order``
        one segment at a time would take it; how many segments it took.
        ``headers`` are the segments' (wire.parse_data_ts_run), each ``size``
        bytes, back to back in ``buf``. The first goes through
        ``take_in_order`` (it may acknowledge data or move the window); after
        it only what can change from one segment to the next is checked per
        segment (sequence number, ACK, window, room, PAWS and TS.Recent, RFC
        7323 §4.3 and §5.3), and the queueing, counters and SND.WL1/SND.WL2
        are done once for the rest (issue 13: batch-level receive)."""
        first = headers[0]
        if not self.take_in_order(first[2], first[3], first[5], buf[DATA_TS_OFFSET:size],
                                  (first[9], first[10]), now):
            return 0
        c = self.c
        if len(headers) == 1 or c.snd_max != c.snd_una:
            return 1  # data of ours in flight: each ACK needs the full judgement
        src, dst, ack, window = first[0], first[1], first[3], first[5]
        n = size - DATA_TS_OFFSET
        rcv_nxt = c.rcv_nxt
        rcv_adv = c.rcv_adv
        ts_recent = c.ts_recent
        ts_ok = c.ts_ok
        last_ack_sent = c.last_ack_sent
        views = c.rcvq.views
        offset = size
        for h in headers[1:]:
            if (h[2] != rcv_nxt & MASK or h[3] != ack or h[5] != window or h[0] != src or h[1] != dst
                    or rcv_nxt + n > rcv_adv or (h[9] - ts_recent) & MASK >= 0x80000000):
                break
            if ts_ok and rcv_nxt <= last_ack_sent:
                ts_recent = h[9]
            views.append(buf[offset + DATA_TS_OFFSET : offset + size])
            rcv_nxt += n
            offset += size
        taken = offset // size - 1
        if taken:
            total = rcv_nxt - c.rcv_nxt
            c.snd_wl1 = rcv_nxt - n  # the last one's SEG.SEQ (the window is the first's)
            c.snd_wl2 = c.snd_una
            c.rcv_nxt = rcv_nxt
            c.ts_recent = ts_recent
            c.rcvq.queued += total
            c.stats.bytes_received += total
            c.stats.segments_received += taken
            c.unacked_bytes += total
        return 1 + taken

    # ------------------------------------------------------ shared rules

    def update_ts_recent(self, ts: tuple[int, int] | None, seq: int) -> None:
        """RFC 7323 §4.3: TS.Recent takes SEG.TSval when SEG.SEQ <= Last.ACK.sent
        and the value does not go backwards (the wraparound test is
        seq_diff(tsval, TS.Recent) >= 0, inlined)."""
        c = self.c
        if (
            ts is not None
            and c.ts_ok
            and seq <= c.last_ack_sent
            and (ts[0] - c.ts_recent) & MASK < 0x80000000
        ):
            c.ts_recent = ts[0]

    def update_window(self, seq: int, ack: int, wnd: int) -> None:
        """The send window update of RFC 9293 §3.10.7.4 (fifth): SND.WL1 and
        SND.WL2 keep an old segment from setting it; a window that opened
        ends the persist timer's backoff."""
        c = self.c
        wl1 = c.snd_wl1
        if wl1 < seq or (wl1 == seq and c.snd_wl2 <= ack):
            if wnd > c.snd_wnd and c.timers.persist is not None:
                c.timers.persist = None
                c.output.persist_backoff = 0
            c.snd_wnd = wnd
            c.snd_wl1 = seq
            c.snd_wl2 = ack
            if wnd > c.max_snd_wnd:
                c.max_snd_wnd = wnd

    # -------------------------------------------------- §3.10.7.2, §3.10.7.3

    def negotiate(self, seg: Segment) -> None:
        """Options from the peer's SYN (RFC 9293 §3.7.1, RFC 7323 §2-3, RFC 2018 §2)."""
        c = self.c
        cfg = c.config
        if seg.mss is not None:
            c.peer_mss = max(seg.mss, MIN_MSS)  # a peer's MSS is clamped before use
        if cfg.window_scale and seg.wscale is not None:
            c.ws_ok = True
            c.snd_wscale = min(seg.wscale, 14)  # RFC 7323 §2.3
            c.rcv_wscale = cfg.rcv_wscale
        c.sack_ok = cfg.sack and seg.sack_permitted
        if cfg.timestamps and seg.ts is not None:
            c.ts_ok = True
            c.ts_recent = seg.ts[0]
        c.update_smss()
        cc = c.recovery.cc
        cc.mss = c.smss
        cc.cwnd = cfg.initial_window * c.smss

    def receive_listen(self, seg: Segment) -> None:
        """LISTEN (RFC 9293 §3.10.7.2)."""
        c = self.c
        flags = seg.flags
        if flags & RST:
            c.counters["rst_in_listen"] += 1
            return
        if flags & ACK:
            c.output.reset(seg.ack)
            return
        if not flags & SYN:
            c.counters["no_syn_in_listen"] += 1
            return
        c.irs = seg.seq
        c.rcv_nxt = seg.seq + 1
        c.last_ack_sent = c.rcv_nxt
        self.negotiate(seg)
        c.snd_wnd = seg.window  # never scaled in a SYN (RFC 7323 §2.2)
        c.max_snd_wnd = c.snd_wnd
        c.snd_wl1, c.snd_wl2 = seg.seq, c.iss
        c.set_state(SYN_RCVD)

    def receive_syn_sent(self, seg: Segment, now: float) -> None:
        """SYN_SENT (RFC 9293 §3.10.7.3)."""
        c = self.c
        flags = seg.flags
        ack = 0
        if flags & ACK:
            ack = c.unwrap_snd(seg.ack)
            if ack <= c.iss or ack > c.snd_max:  # first: check the ACK bit
                if not flags & RST:
                    c.output.reset(seg.ack)
                c.counters["bad_ack_syn_sent"] += 1
                return
        if flags & RST:  # second: the RST bit
            if flags & ACK:
                c.error = "refused"
                c.event(events.ConnectionReset(refused=True))
                c.set_state(CLOSED)
            else:
                c.counters["rst_without_ack"] += 1
            return
        if not flags & SYN:  # fourth: the SYN bit
            c.counters["no_syn_in_syn_sent"] += 1
            return
        c.irs = seg.seq
        c.rcv_nxt = seg.seq + 1
        c.rcv_adv = c.rcv_nxt + c.output.syn_wnd
        self.negotiate(seg)
        c.snd_wnd = seg.window
        c.max_snd_wnd = c.snd_wnd
        c.snd_wl1 = seg.seq
        if flags & ACK:
            c.snd_wl2 = ack
            self.sample_syn_rtt(seg, now)
            self.ack_advance(ack, now, None)
            c.established()
            c.output.ack_now = True
        else:
            # Simultaneous open: answer SYN,ACK with our ISS (§3.5, Figure 8).
            c.snd_wl2 = c.iss
            c.snd_nxt = c.iss
            c.set_state(SYN_RCVD)

    def sample_syn_rtt(self, seg: Segment, now: float) -> None:
        """The handshake's RTT sample: from our SYN's send time if it was sent
        once (Karn's rule, RFC 6298 §3), else from the timestamp echo, which
        tells which SYN was answered (RFC 7323 §4)."""
        c = self.c
        if c.rtt_seq is not None:
            self.rtt_sample(now - c.rtt_time, now)
        elif c.ts_ok and seg.ts is not None and seg.ts[1]:
            self.rtt_sample(((c.ts_now(now) - seg.ts[1]) & MASK) / 1000, now)
        c.rtt_seq = None

    def rtt_sample(self, rtt: float, now: float) -> None:
        """One RTT measurement: to the RTO estimator, the congestion
        controller and an observer (rudp.core.observer)."""
        c = self.c
        c.rtt.sample(rtt)
        if rtt >= 0:
            c.recovery.cc.on_rtt_sample(rtt, now)
            if c.observer is not None:
                c.observer.rtt_sample(c, rtt)

    # ------------------------------------------------------------ §3.10.7.4

    def receive_other(self, seg: Segment, now: float, ts_recent_valid: bool = True) -> None:
        """SYN_RCVD and the synchronized states (RFC 9293 §3.10.7.4), in the RFC's order."""
        c = self.c
        flags = seg.flags
        seq = c.unwrap_rcv(seg.seq)
        ts = seg.ts
        if (ts is not None and c.ts_ok and not flags & RST and ts_recent_valid
                and (ts[0] - c.ts_recent) & MASK >= 0x80000000 and not self.disordered_ack(seg, seq)):
            # PAWS (RFC 7323 §5.3 R1): SEG.TSval < TS.Recent marks an old
            # duplicate, perhaps from a wrapped sequence space: not acceptable,
            # so acknowledge it (as the first check does) and drop it.
            c.counters["paws_rejected"] += 1
            self.refuse_old(seq, seg.payload, flags, now)
            return
        if not ts_recent_valid and ts is not None and c.ts_ok:
            c.ts_recent = ts[0]  # §5.5: an invalid TS.Recent is replaced, not compared
        if flags & SYN and c.state is SYN_RCVD and seq == c.rcv_nxt - 1:
            if not flags & ACK:
                # The peer retransmitted its SYN: our SYN,ACK was lost; send it
                # again, echoing this SYN's timestamp so the peer's RTT sample is
                # not inflated by its own backoff (RFC 7323 §4.3).
                self.update_ts_recent(seg.ts, seq)
                c.snd_nxt = c.iss
                return
            # Simultaneous open (§3.5 Figure 8, line 7): the peer's SYN,ACK repeats
            # the SYN we hold and acknowledges ours; take its ACK and carry on
            # as if the SYN bit were clear, so both sides reach ESTABLISHED.
            # If our own SYN,ACK has not left yet (the peer's SYN and SYN,ACK
            # came in one batch), nothing of ours acknowledges that SYN: ACK
            # it now rather than after the peer's retransmission timeout.
            if c.snd_nxt == c.iss:
                c.output.ack_now = True
            flags &= ~SYN
            seq += 1
        payload = seg.payload
        fin = flags & FIN
        if c.state is TIME_WAIT and fin and not flags & (RST | SYN) and seq + len(payload) + 1 == c.rcv_nxt:
            # A retransmitted FIN: ACK it again, restart 2*MSL (§3.10.7.4, eighth).
            # Only the FIN we already hold qualifies; any other FIN fails the
            # sequence check (first) and must not prolong TIME-WAIT.
            c.output.ack_now = True
            c.timers.close = now + 2 * c.config.msl
            return
        # First: sequence number check.
        if not self.acceptable(seq, len(payload) + fin + (1 if flags & SYN else 0), flags & RST):
            if c.rcv_adv > c.rcv_nxt or seq != c.rcv_nxt:
                self.refuse_old(seq, payload, flags, now)
                return
            # Zero window: still process ACK/RST at RCV.NXT (§3.10.7.4), drop
            # the text; a FIN takes no buffer and is kept.
            if payload:
                c.counters["zero_window"] += 1
                payload = b""
                c.output.ack_now = True
                if not flags & RST:
                    fin = 0
        if flags & (RST | SYN):
            self.rst_or_syn(flags, seq, now)  # second and fourth
            return
        # Fifth: the ACK field.
        if not flags & ACK:
            c.counters["no_ack"] += 1
            return
        if not self.check_ack(seg, seq, len(payload), fin, now) or c.state is CLOSED:
            return
        if payload or fin:
            self.text_step(seq, payload, fin, now)  # seventh and eighth

    def disordered_ack(self, seg: Segment, seq: int) -> bool:
        """A duplicate ACK overtaken by a later one (ACKs reordered in the
        network) fails PAWS harmlessly; dropping it would lose a duplicate
        ACK. Linux's tcp_disordered_ack exempts it: a pure ACK at RCV.NXT that
        neither moves SND.UNA nor updates the window, with a TSval within one
        RTO of TS.Recent."""
        c = self.c
        assert seg.ts is not None
        return (
            seg.flags & (SYN | FIN | ACK) == ACK
            and not seg.payload
            and seq == c.rcv_nxt
            and seg.ack == c.snd_una & MASK
            and not (seq > c.snd_wl1 or (seq == c.snd_wl1 and seg.window << c.snd_wscale > c.snd_wnd))
            and (c.ts_recent - seg.ts[0]) & MASK <= c.rtt.rto * 1000
        )

    def refuse_old(self, seq: int, payload: bytes, flags: int, now: float) -> None:
        """A segment refused by PAWS or the sequence check: data we already
        hold is reported in a D-SACK block (RFC 2883 §4, as Linux's
        tcp_send_dupack), then the refusal's ACK."""
        c = self.c
        if payload and c.sack_ok and seq + len(payload) <= c.rcv_nxt \
                and c.rcv_nxt - seq <= c.max_snd_wnd + c.config.recv_buffer:
            self.dsack(seq, seq + len(payload))  # an old duplicate
        self.refuse_unacceptable(flags, bool(payload or flags & FIN), now)

    def refuse_unacceptable(self, flags: int, has_text: bool, now: float) -> None:
        """A segment that failed the sequence check (RFC 9293 §3.10.7.4, first):
        "send an acknowledgment" unless it is a RST. Data or a FIN may be a
        retransmission the ACK settles: always. A bare ACK or a SYN cannot be,
        and could loop: rate-limited (RFC 5961 §7, as Linux's tcp_oow_rate_limited)."""
        c = self.c
        if flags & SYN:
            self.refuse_with_ack("syn_challenged", now, challenge=True)
        elif flags & RST:
            c.counters["out_of_window"] += 1
        elif has_text:
            c.counters["out_of_window"] += 1
            c.output.ack_now = True
        else:
            self.refuse_with_ack("out_of_window", now, challenge=False)

    def text_step(self, seq: int, payload: bytes, fin: int, now: float) -> None:
        """Seventh: segment text, in the states that take it (RFC 9293 §3.10.7.4)."""
        c = self.c
        if c.state in CAN_RECEIVE_TEXT:
            if payload and c.user_closed:
                # RFC 1122 §4.2.2.13: the user cannot receive any more.
                c.counters["data_after_close"] += 1
                c.abort()
                return
            self.receive_text(seq, payload, fin, now)
        elif payload:
            c.counters["data_after_fin"] += 1
            c.output.ack_now = True

    def acceptable(self, seq: int, seg_len: int, rst: int) -> bool:
        """The segment acceptability test (RFC 9293 §3.10.7.4, first check)."""
        c = self.c
        rcv_nxt = c.rcv_nxt
        wnd = max(0, c.rcv_adv - rcv_nxt)
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

    def refuse_with_ack(self, reason: str, now: float, *, challenge: bool) -> None:
        """Count a refused segment and answer it with an ACK, at most one per
        INVALID_RATELIMIT for this connection and, for challenge ACKs (RFC
        5961 §3-§5), within the endpoint's randomised budget (§7)."""
        c = self.c
        c.counters[reason] += 1
        limiter = c.challenge_limiter
        if now - c.last_refusal_ack < INVALID_RATELIMIT or (
            challenge and limiter is not None and not limiter.allow(now)
        ):
            c.counters["refusal_acks_limited"] += 1
            return
        c.last_refusal_ack = now
        c.output.ack_now = True

    def rst_or_syn(self, flags: int, seq: int, now: float) -> None:
        """Second: the RST bit; fourth: the SYN bit (RFC 9293 §3.10.7.4)."""
        c = self.c
        if flags & RST:
            if c.state is TIME_WAIT:
                # RFC 1337 (fix F1): a RST must not cut TIME_WAIT short; a stray
                # RST for a late duplicate would otherwise end the protection.
                c.counters["rst_in_time_wait"] += 1
            elif seq != c.rcv_nxt:
                # RFC 5961 §3.2: only an exact match resets; else a challenge ACK.
                self.refuse_with_ack("rst_challenged", now, challenge=True)
            else:
                self.reset_by_peer()
        else:
            # A SYN in a synchronized state gets a challenge ACK (RFC 5961 §4.2).
            self.refuse_with_ack("syn_challenged", now, challenge=True)

    def reset_by_peer(self) -> None:
        """An acceptable RST (RFC 9293 §3.10.7.4, second). The segment queues
        go (the send buffer and the out-of-order data, with the connection);
        in-order data already accepted stays readable ahead of the reset, as
        Linux keeps its receive queue for ``recv`` before ECONNRESET: a peer's
        last words (a TLS alert) sent just before its RST often arrive in the
        same read batch, and dropping them made the reset all the user saw."""
        c = self.c
        st = c.state
        if st is SYN_RCVD and c.passive:
            c.counters["reset_half_open"] += 1  # back to LISTEN: just forget it
        elif st not in (CLOSING, LAST_ACK, TIME_WAIT):  # else the peer is done with us too
            c.error = "refused" if st is SYN_RCVD else "reset"
            c.event(events.ConnectionReset(refused=st is SYN_RCVD))
        c.set_state(CLOSED)

    def check_ack(self, seg: Segment, seq: int, plen: int, fin: int, now: float) -> bool:
        """Fifth: the ACK field (RFC 9293 §3.10.7.4). False: drop the segment."""
        c = self.c
        ack = c.unwrap_snd(seg.ack)
        if c.state is SYN_RCVD:
            if not c.snd_una < ack <= c.snd_max:
                c.output.reset(seg.ack)
                c.counters["bad_ack_syn_rcvd"] += 1
                return False
            self.update_ts_recent(seg.ts, seq)
            c.snd_wnd = seg.window << c.snd_wscale
            c.snd_wl1, c.snd_wl2 = seq, ack
            self.sample_syn_rtt(seg, now)
            self.ack_advance(ack, now, None)
            c.established()
            return True
        if ack > c.snd_max:  # it acknowledges something not yet sent (§3.10.7.4)
            self.refuse_with_ack("ack_unsent", now, challenge=True)
            return False
        if ack < c.snd_una - max(c.max_snd_wnd, 1):  # RFC 5961 §5.2: too old to be believed
            self.refuse_with_ack("ack_too_old", now, challenge=True)
            return False
        if ack >= c.snd_una:
            # RFC 7323 §4.3 takes TSval from an acceptable segment; only one
            # whose ACK is acceptable too (and not older than SND.UNA), as
            # Linux's tcp_ack, so that a blind in-window segment (RFC 5961)
            # cannot move TS.Recent ahead and make PAWS refuse the real peer.
            self.update_ts_recent(seg.ts, seq)
        self.process_ack(seg, seq, ack, plen, fin, now)
        return True

    def process_ack(self, seg: Segment, seq: int, ack: int, plen: int, fin: int, now: float) -> None:
        """ACK processing for the synchronized states (RFC 9293 §3.10.7.4, fifth)."""
        c = self.c
        rec = c.recovery
        wnd = seg.window << c.snd_wscale
        tsecr = seg.ts[1] if c.ts_ok and seg.ts else None
        sack = seg.sack if c.sack_ok else ()
        old_una = c.snd_una
        sacked = rec.sacks.sacked
        if sack:
            left, right = c.unwrap_snd(sack[0][0]), c.unwrap_snd(sack[0][1])
            if right <= ack or (
                len(sack) > 1
                and c.unwrap_snd(sack[1][0]) <= left
                and right <= c.unwrap_snd(sack[1][1])
            ):
                # A D-SACK: the first block reports a duplicate (RFC 2883 §4),
                # judged before the ACK moves anything (RFC 8985 §7.4).
                rec.on_dsack(left, right, old_una, c.snd_max, now)
                sack = sack[1:]
        dup = False
        if ack > old_una:
            self.ack_advance(ack, now, tsecr)
            if c.state is CLOSED:
                return
        elif ack == old_una and c.snd_max > old_una and plen == 0 and not fin \
                and wnd == c.snd_wnd and wnd != 0:
            # A duplicate ACK (RFC 5681 §2). An ACK of a closed window answers a
            # zero-window probe and signals no loss: probes back off, they are
            # never fast-retransmitted (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17).
            rec.on_dupack(c.smss, c.sack_ok)
            dup = True
            if rec.frto:
                rec.frto_dupack()
                if rec.snd_nxt_to:
                    self.resume(rec.snd_nxt_to)
        self.update_window(seq, ack, wnd)
        for left, right in sack:
            rec.on_sack_block(c.unwrap_snd(left), c.unwrap_snd(right), c.snd_una, c.snd_max,
                              now, tsecr)
        if rec.detect_loss(c.snd_una, c.snd_max, c.sndbuf.end, c.smss, c.sack_ok,
                           c.config.dupack_threshold, c.ts_ok, now, c.rtt.srtt):
            c.rtt_seq = None  # Karn: nothing in flight may be timed now
            if c.observer is not None:
                c.observer.loss(c, FAST_RETRANSMIT)
        if c.sack_ok:
            c.timers.reo = rec.reo_deadline
        if rec.in_recovery:
            # RFC 6937 DeliveredData: the change in SND.UNA plus in SACKed
            # bytes; without SACK each duplicate ACK stands for one segment.
            if c.sack_ok:
                delivered = c.snd_una - old_una + rec.sacks.sacked - sacked
            else:
                delivered = c.snd_una - old_una + (c.smss if dup else 0)
            rec.on_delivered(max(delivered, 0), c.snd_una, c.snd_nxt, c.sack_ok, c.smss)
        if rec.cc.wants_delivery:
            newest = c.snd_una
            if sack:
                # RFC 2018 §4: the first block (after a D-SACK) holds the
                # segment that just arrived.
                right = c.unwrap_snd(sack[0][1])
                if newest < right <= c.snd_max:
                    newest = right
            self.report_delivery(newest, now)

    def report_delivery(self, newest: int, now: float) -> None:
        """Tell a rate-based controller what this ACK delivered (its own
        rate sampler works out the rest: rudp.core.ratesample)."""
        c = self.c
        rec = c.recovery
        rec.cc.on_delivery(c.snd_una, newest, rec.sacks.sacked, c.stats.bytes_retransmitted,
                           rec.pipe(c.snd_una, c.snd_nxt, c.sack_ok), now)

    def reorder_timeout(self, now: float) -> None:
        """RACK's reordering timer fired (RFC 8985 §6.3): look for losses again."""
        c = self.c
        rec = c.recovery
        if c.snd_max <= c.snd_una or not c.sack_ok:
            return
        if rec.detect_loss(c.snd_una, c.snd_max, c.sndbuf.end, c.smss, c.sack_ok,
                           c.config.dupack_threshold, c.ts_ok, now, c.rtt.srtt):
            c.rtt_seq = None
            if c.observer is not None:
                c.observer.loss(c, FAST_RETRANSMIT)
        c.timers.reo = rec.reo_deadline

    def ack_advance(self, ack: int, now: float, tsecr: int | None) -> None:
        """SND.UNA moves forward: free the buffer, time the RTT, settle timers."""
        c = self.c
        acked = ack - c.snd_una
        freed = c.sndbuf.release(ack)
        c.snd_una = ack
        if c.snd_nxt < ack:
            c.snd_nxt = ack
        c.retries = 0
        c.progress_at = now
        rec = c.recovery
        # The RTT sample comes from the send time of the newest segment acked
        # (microseconds, not the timestamp clock's milliseconds), never from a
        # retransmitted one unless the echo shows which was acked (Karn's
        # rule, RFC 6298 §3; Recovery.acked_entries). Every ACK of new data
        # that was sent once gives one, so the controller hears them all.
        sample = rec.on_ack(ack, acked, freed, tsecr, c.snd_nxt, c.sack_ok, c.smss, now)
        if sample >= 0.0:
            self.rtt_sample(sample, now)
        if rec.snd_nxt_to:
            self.resume(rec.snd_nxt_to)
        if c.observer is not None:
            c.observer.acked(c)
        # RFC 6298 §5.2/§5.3: stop the timer when all is acked, else restart it.
        timers = c.timers
        if c.snd_max <= ack:
            timers.rtx = timers.reo = None
        else:
            timers.rtx = now + c.rtt.rto
        timers.tlp = None
        c.all_acked(ack)

    def resume(self, to: int) -> None:
        """Where sending goes on after an RTO once an ACK has been judged
        (Recovery.snd_nxt_to): with new data after a spurious timeout (RFC
        4015 §3.2) or F-RTO's step 2b (RFC 5682 §2.1), which needs new data
        to send, else by resending from SND.UNA (F-RTO step 3a)."""
        c = self.c
        rec = c.recovery
        rec.snd_nxt_to = 0
        if to == 2:
            c.snd_nxt = c.snd_una
            return
        if rec.frto == 3 and not (
            c.sndbuf.end > c.snd_max or (c.fin_queued and c.snd_max == c.sndbuf.end)
        ):
            rec.frto = rec.frto_quota = 0  # nothing new to send: conventional recovery
            return
        c.snd_nxt = c.snd_max

    # ------------------------------------------------------ seventh, eighth

    def receive_text(self, seq: int, payload: bytes, fin: int, now: float) -> None:
        """Seventh and eighth steps: queue in-order data, reassemble, process FIN."""
        c = self.c
        rcvq = c.rcvq
        if seq < c.rcv_nxt:  # trim the part we already have
            if c.sack_ok:
                self.dsack(seq, c.rcv_nxt)
            payload = payload[c.rcv_nxt - seq :]
            seq = c.rcv_nxt
        room = c.rcv_adv - seq
        if len(payload) > room:  # trim what lies beyond the window
            payload = payload[: max(room, 0)]
            fin = 0
            c.counters["beyond_window"] += 1
        if fin:
            rcvq.ooo_fin = seq + len(payload)
        if seq > c.rcv_nxt:
            if not rcvq.ooo.add(seq, payload) and payload and c.sack_ok:
                self.dsack(seq, seq + len(payload))  # all of it was held already
            c.output.ack_now = True  # out of order: ACK at once (RFC 5681 §4.2)
            return
        if rcvq.ooo:
            self.deliver(payload, len(payload), now)
            for piece in rcvq.ooo.pop_ready(c.rcv_nxt):
                self.queue(piece)
            c.output.ack_now = True  # a hole was (partly) filled: ACK at once (§4.2)
        elif payload:
            self.deliver(payload, len(payload), now)
        if rcvq.ooo_fin is not None and rcvq.ooo_fin == c.rcv_nxt:
            rcvq.ooo_fin = None
            self.receive_fin()

    def dsack(self, start: int, end: int) -> None:
        """[start, end) arrived again: the next ACK's first SACK block says so
        (RFC 2883 §4), which lets the sender tell a needless retransmission."""
        c = self.c
        c.rcvq.dsack = (start, end)
        c.stats.dsacks_sent += 1
        c.output.ack_now = True

    def queue(self, payload: bytes) -> None:
        """In-order bytes join the receive queue; RCV.NXT passes them."""
        c = self.c
        n = len(payload)
        rcvq = c.rcvq
        if rcvq.views:
            rcvq.settle()  # they come first
        rcvq.chunks.append(bytes(payload))  # no-op for bytes; a caller's bytearray is not kept
        rcvq.queued += n
        c.rcv_nxt += n
        c.stats.bytes_received += n

    def deliver(self, payload: bytes, n: int, now: float) -> None:
        """The segment's in-order ``payload`` of ``n`` bytes (possibly none
        when it filled a hole) arrived: take it, and decide when to ACK: at
        least every second full-sized segment, else within the delayed-ACK
        time (RFC 5681 §4.2, RFC 9293 §3.8.6.3)."""
        self.take(payload, n)
        self.schedule_ack(now)

    def take(self, payload: bytes | memoryview, n: int) -> None:
        """Queue in-order ``payload`` and tell the user; the ACK decision is
        the caller's (``schedule_ack``). Queueing is ``queue``, inlined: this
        runs for every data segment. A memoryview (a run's segment, straight
        from the receive buffer) is copied when the run ends (``RecvQueue.
        settle``, which the endpoint calls before the buffer is reused)."""
        c = self.c
        if n:
            rcvq = c.rcvq
            if type(payload) is memoryview:
                rcvq.views.append(payload)
            else:
                if rcvq.views:
                    rcvq.settle()  # they come first
                rcvq.chunks.append(bytes(payload))  # no-op for bytes; a bytearray is not kept
            rcvq.queued += n
            c.rcv_nxt += n
            c.stats.bytes_received += n
        evs = c.pending_events
        if not evs or evs[-1] is not _DATA_RECEIVED:
            evs.append(_DATA_RECEIVED)
        c.unacked_bytes += n

    def schedule_ack(self, now: float) -> None:
        """ACK at least every second full-sized segment, else within the
        delayed-ACK time (RFC 5681 §4.2, RFC 9293 §3.8.6.3). It only ever sets
        ``ack_now`` or arms an unarmed timer, so making it once after a run
        of in-order segments ends where making it after each would."""
        c = self.c
        if c.unacked_bytes >= 2 * c.smss:
            c.output.ack_now = True
        elif c.timers.delack is None:
            c.timers.delack = now + c.config.delayed_ack

    def receive_fin(self) -> None:
        """Eighth: the FIN bit (RFC 9293 §3.10.7.4)."""
        c = self.c
        c.rcv_nxt += 1
        c.rcvq.eof = True
        c.output.ack_now = True
        c.event(_EOF_RECEIVED)
        st = c.state
        if st is ESTABLISHED:
            c.set_state(CLOSE_WAIT)
        elif st is FIN_WAIT_1:
            # Our FIN not yet acknowledged (it would have moved us to FIN_WAIT_2).
            c.set_state(CLOSING)
        elif st is FIN_WAIT_2:
            c.set_state(TIME_WAIT)
