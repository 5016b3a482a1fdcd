"""Segment output for one connection: what to send now, and the timers that
sending implies (RFC 9293 §3.8, RFC 6298 §5, RFC 6675 §5, RFC 8985 §7).

The :class:`Sender` belongs to one :class:`~rudp.core.connection.Connection`
and reads and advances its send sequence variables; it owns only what the
output side alone uses (pending one-shot sends, the persist backoff).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .pacing import UNPACED, Pacer
from .observer import TLP
from .seqnum import MASK
from .state import CLOSE_WAIT, CLOSED, CLOSING, ESTABLISHED, FIN_WAIT_1, LAST_ACK, LISTEN, \
    SYN_RCVD, SYN_SENT, SYNCHRONIZED, TIME_WAIT
from .wire import ACK, FIN, PSH, RST, SYN, HeaderTemplate, Segment, SegmentRun, sack_option_len, \
    segment_of

if TYPE_CHECKING:
    from .connection import Connection

_TLP_STATES = frozenset({ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK})


class Sender:
    __slots__ = ("c", "out", "ack_now", "rst_pending", "syn_wnd", "persist_backoff",
                 "persist_probe", "tlp_fire", "keepalive_probe", "pacer", "pace_left",
                 "pace_held", "template", "run")

    def __init__(self, conn: Connection) -> None:
        self.c = conn
        self.out: list[Segment] = []  # built outside segments_to_send (RSTs)
        self.ack_now = False  # an ACK must leave in the next segments_to_send
        self.rst_pending = False  # ABORT: send RST next
        self.syn_wnd = 0  # the window our SYN announced
        self.persist_backoff = 0
        self.persist_probe = False  # the persist timer fired: probe or end SWS wait
        self.tlp_fire = False  # the tail loss probe timer fired
        self.keepalive_probe = False  # the keep-alive timer asks for a probe
        self.pacer = Pacer()
        self.pace_left = UNPACED  # bytes the pacer lets out in this send_data
        self.pace_held = False  # the pacer held data back in this send_data
        #: Set by the owner that encodes our segments (the Endpoint): full-sized
        #: runs are then stamped from it into ``run`` instead of becoming
        #: Segments, and the owner takes ``run`` after each segments_to_send.
        self.template: HeaderTemplate | None = None
        self.run: SegmentRun | None = None

    # ------------------------------------------------------------ entry point

    def segments_to_send(self, now: float) -> list[Segment]:
        """Everything to transmit now; re-arms the timers that sending implies."""
        c = self.c
        c.now = now
        out = self.out
        st = c.state
        if (
            not out
            and st is ESTABLISHED
            and not self.ack_now
            and c.snd_nxt == c.snd_max == c.sndbuf.end
            and not (c.recovery.in_recovery or c.fin_queued or self.persist_probe
                     or self.tlp_fire or self.keepalive_probe or self.rst_pending)
        ):
            # Nothing to send (an ACK is delayed, all data is out): only the
            # timers need a look. The common case after receiving in order.
            self.arm_timers(now)
            return []
        self.out = []
        if self.rst_pending:
            self.rst_pending = False
            out.append(self.segment(c.snd_nxt, RST | ACK, b"", now))
            return out
        if st is CLOSED or st is LISTEN:
            return out
        if st is SYN_SENT or st is SYN_RCVD:
            if c.snd_nxt == c.iss:
                self.send_syn(out, now)
        elif st is not TIME_WAIT:
            self.send_data(out, now)
        sent = bool(out) or self.run is not None
        if self.ack_now or (self.keepalive_probe and not sent):
            if self.keepalive_probe:
                c.stats.keepalives_sent += 1
                out.append(self.segment(c.snd_una - 1, ACK, b"", now))
            elif not sent:
                # A bare ACK carries SND.MAX, not a rewound SND.NXT, so that it
                # stays inside the peer's window after a timeout; but never
                # beyond the window's right edge (Linux's tcp_acceptable_seq):
                # a zero-window probe's byte sits past a closed window, and an
                # ACK there would fail the peer's acceptance test (§3.10.7.4).
                seq = c.snd_max
                edge = c.snd_una + c.snd_wnd
                out.append(self.segment(seq if seq <= edge else edge, ACK, b"", now))
        self.keepalive_probe = False
        self.arm_timers(now)
        return out

    # ------------------------------------------------------------ segments

    def segment(self, seq: int, flags: int, payload: bytes, now: float) -> Segment:
        """The one constructor of the connection's segments after the SYN:
        every one carries ACK (RFC 9293 §3.10.7), except RSTs answering a
        segment that had none."""
        c = self.c
        sack: tuple[tuple[int, int], ...] = ()
        if flags & ACK:
            wnd = self.sending_ack()
            rcvq = c.rcvq
            if rcvq.ooo.nbytes or rcvq.dsack is not None:
                sack = self.sack_blocks()
                rcvq.dsack = None  # a D-SACK block is reported once (RFC 2883 §4)
            ack = c.rcv_nxt & MASK
        else:
            wnd = ack = 0
        ts = (c.ts_now(now), c.ts_recent) if c.ts_ok and not flags & RST else None
        c.stats.segments_sent += 1
        return segment_of((c.local_port, c.remote_port, seq & MASK, ack, flags, wnd,
                           payload, None, None, False, sack, ts, 0))

    def reset(self, seq_wire: int) -> None:
        """A RST in answer to an unacceptable segment (RFC 9293 §3.10.7): its
        SEQ is the offending segment's ACK, and it carries no ACK itself."""
        self.out.append(self.segment(seq_wire, RST, b"", self.c.now))

    def send_syn(self, out: list[Segment], now: float) -> None:
        """SYN or SYN,ACK with our options (RFC 9293 §3.5)."""
        c = self.c
        cfg = c.config
        active = c.state is SYN_SENT and not c.passive
        flags = SYN if c.state is SYN_SENT else SYN | ACK
        wnd = min(c.window_right_edge() - c.rcv_nxt, 0xFFFF) if not active else min(
            cfg.recv_buffer, 0xFFFF
        )
        ts: tuple[int, int] | None = None
        if cfg.timestamps and (active or c.ts_ok):
            ts = (c.ts_now(now), c.ts_recent if not active else 0)
        wscale = cfg.rcv_wscale if cfg.window_scale and (active or c.ws_ok) else None
        sack_perm = cfg.sack and (active or c.sack_ok)
        c.stats.segments_sent += 1
        out.append(segment_of((c.local_port, c.remote_port, c.iss & MASK,
                               c.rcv_nxt & MASK if flags & ACK else 0, flags, wnd, b"",
                               min(cfg.mss, 0xFFFF), wscale, sack_perm, (), ts, 0)))
        self.syn_wnd = wnd
        if flags & ACK:
            self.acked_now(wnd)
        if c.retries == 0 and c.rtt_seq is None:
            c.rtt_seq, c.rtt_time = c.iss, now
        if c.snd_max == c.iss:
            c.snd_max = c.iss + 1
        else:
            c.stats.retransmits += 1
        c.snd_nxt = c.iss + 1
        if c.timers.rtx is None:
            c.timers.rtx = now + c.rtt.rto

    def send_data(self, out: list[Segment], now: float) -> None:
        """Retransmissions in recovery, then new data and FIN within the windows."""
        c = self.c
        smss = c.smss
        if c.sack_ok and (c.rcvq.ooo or c.rcvq.dsack is not None):
            # RFC 9293 §3.7.1, RFC 6691: the MSS bounds data plus the options of
            # each segment, and these segments will carry SACK blocks too (as
            # Linux's tcp_current_mss), so no datagram outgrows the path.
            smss -= sack_option_len(len(self.sack_blocks()))
        rec = c.recovery
        cwnd = rec.send_window(smss, c.sack_ok, c.snd_una, c.snd_nxt)
        rate = rec.cc.pacing_rate(c.rtt.srtt) if c.config.pacing else 0.0
        allowed = self.pacer.allowance(rate, smss, now) if rate > 0.0 else UNPACED
        self.pace_left = allowed
        self.pace_held = False
        sws_override = False
        if self.persist_probe:
            self.persist_probe = False
            if c.snd_wnd == 0:
                self.send_probe(out, now)
            else:
                sws_override = True  # the persist timer ends SWS avoidance's wait
        if self.tlp_fire:
            self.tlp_fire = False
            self.send_tlp(out, now, smss)
        # Loss recovery (RFC 6675 §5 step 4 / RFC 6582 §3.2 step 5).
        if rec.in_recovery:
            while True:
                if self.pace_left <= 0:
                    # Held back only if the window would let a segment out:
                    # else the pace timer would wake the loop for nothing.
                    if rec.pipe(c.snd_una, c.snd_nxt, c.sack_ok) + smss <= cwnd:
                        self.pace_hold()
                    break
                hole = rec.next_retransmission(c.snd_una, c.snd_max, c.snd_nxt, cwnd, smss,
                                               c.sack_ok)
                if hole is None:
                    break
                rec.retransmitted(hole[0], self.emit(out, hole[0], hole[1], now))
        rec.force_rxt = False
        if (
            c.config.batch_send
            and not rec.in_recovery
            and c.snd_nxt == c.snd_max
            and c.sndbuf.end - c.snd_nxt > smss
            and c.rcvq.dsack is None  # only the first segment may carry it
        ):
            self.send_full_segments(out, now, smss, cwnd)
        self.send_new_data(out, now, smss, cwnd, sws_override)
        if allowed != UNPACED:
            if allowed != self.pace_left:
                self.pacer.spent(allowed - self.pace_left)
            c.timers.pace = self.pacer.release_time(now) if self.pace_held else None
        elif c.timers.pace is not None:
            c.timers.pace = None

    def pace_hold(self) -> None:
        """The pacer's allowance is spent while the window has room: hold the
        rest back and remember it, so the pace timer is armed."""
        self.pace_held = True

    def send_new_data(self, out: list[Segment], now: float, smss: int, cwnd: int,
                      sws_override: bool) -> None:
        """New data, or data after a timeout (go-back-N from SND.UNA, RFC 6298 §5.4)."""
        c = self.c
        sacks = c.recovery.sacks
        buf = c.sndbuf
        while True:
            seq = c.snd_nxt
            if seq < c.snd_max:
                end = sacks.covering(seq)
                if end is not None:
                    c.snd_nxt = end
                    continue
            left = buf.end - seq
            if left > 0:
                n = min(smss, left, c.snd_una + c.snd_wnd - seq)
                if seq < c.snd_max:
                    nxt = sacks.next_start(seq)
                    if nxt is not None:
                        n = min(n, nxt - seq)
                if n <= 0:
                    break  # the peer's window is full: the persist timer takes over
                pipe = c.recovery.pipe(c.snd_una, c.snd_nxt, c.sack_ok)
                if pipe and pipe + n > cwnd:
                    break
                if self.pace_left <= 0:
                    self.pace_hold()
                    break
                if n < smss and seq >= c.snd_max and not sws_override:
                    if n < left:
                        # Sender SWS avoidance (RFC 9293 §3.8.6.2.1).
                        if n < c.max_snd_wnd // 2:
                            break
                    elif not c.config.nodelay and c.snd_max > c.snd_una and not c.fin_queued:
                        break  # Nagle: one small segment in flight at a time (§3.7.4)
                self.emit(out, seq, n, now)
            elif c.fin_queued and left == 0:
                self.emit(out, seq, 0, now)  # FIN needs no window space
                break
            else:
                break

    def send_full_segments(self, out: list[Segment], now: float, smss: int, cwnd: int) -> None:
        """The bulk case of ``send_new_data``, batched: full-sized new segments
        that fit both windows and are not the last of the buffer (which may
        need PSH, FIN or Nagle's judgement). The header fields are computed
        once per batch; the golden traces pin it equal to the per-segment
        path (Config.batch_send). With a ``template`` and no SACK blocks to
        carry, the run is stamped into one buffer (``self.run``) rather than
        built as Segments (tests/test_wire_template.py pins the bytes)."""
        c = self.c
        seq = c.snd_nxt
        una = c.snd_una
        buf = c.sndbuf
        pipe = c.recovery.pipe(una, seq, c.sack_ok)
        room = cwnd - pipe if pipe else max(cwnd, smss)
        limit = min(buf.end - 1, una + c.snd_wnd)  # keep the last byte back
        count = min((limit - seq) // smss, room // smss)
        pace_left = self.pace_left
        if pace_left < count * smss:
            count = -(-pace_left // smss)  # the last may overdraw (rudp.core.pacing)
            self.pace_held = True
        if count <= 0:
            return
        ack = c.rcv_nxt & MASK
        wnd = self.sending_ack()
        sack = self.sack_blocks()
        ts = (c.ts_now(now), c.ts_recent) if c.ts_ok else None
        off = seq - buf.seq
        template = self.template
        if template is not None and not sack:
            # One buffer for the whole run, no Segment or bytes per segment.
            run = template.run(buf.data, off, seq & MASK, count, smss, ack, wnd, ts)
            run.index = len(out)
            self.run = run
        else:
            lport, rport = c.local_port, c.remote_port
            view = memoryview(buf.data)
            try:
                for i in range(count):
                    start = off + i * smss
                    out.append(segment_of((lport, rport, (seq + i * smss) & MASK, ack, ACK, wnd,
                                           bytes(view[start : start + smss]), None, None, False,
                                           sack, ts, 0)))
            finally:
                view.release()  # the buffer must stay resizable
        c.stats.segments_sent += count
        cc = c.recovery.cc
        if cc.wants_delivery:
            flight = pipe
            app_limited = seq + count * smss >= buf.end
            for i in range(count):
                s = seq + i * smss
                cc.on_sent(s, s + smss, flight + i * smss, app_limited, now)
        c.recovery.on_sent_run(seq, count, smss, now)
        self.sent(seq, count * smss, seq + count * smss, now)

    def send_tlp(self, out: list[Segment], now: float, smss: int) -> None:
        """Send the tail loss probe (RFC 8985 §7.3): a new segment if the
        windows allow one, else the last segment sent again."""
        c = self.c
        rec = c.recovery
        if rec.in_recovery or c.snd_max <= c.snd_una or c.snd_nxt != c.snd_max:
            return
        c.stats.tail_loss_probes += 1
        seq = c.snd_max
        buf_end = c.sndbuf.end
        new = min(smss, buf_end - seq, c.snd_una + c.snd_wnd - seq)
        if new > 0:
            self.emit(out, seq, new, now)
        else:
            end = min(c.snd_max, buf_end)  # a sent FIN rides on the segment before it
            start = max(c.snd_una, end - smss)
            self.emit(out, start, end - start, now)
        # §7.3: TLP.end_seq = SND.NXT, TLP.is_retrans, and the RTO restarts.
        rec.tlp_end = c.snd_nxt
        rec.tlp_rxt = new <= 0
        c.timers.rtx = now + c.rtt.rto
        if c.observer is not None:
            c.observer.loss(c, TLP)

    def send_probe(self, out: list[Segment], now: float) -> None:
        """Zero-window probe: one byte past the window (RFC 9293 §3.8.6.1)."""
        c = self.c
        una = c.snd_una
        buf_end = c.sndbuf.end
        if buf_end > una:
            c.stats.zero_window_probes += 1
            nxt = c.snd_nxt
            self.emit(out, una, 1, now)
            # The receiver drops a probe byte that finds its window still closed,
            # so the probe must not advance SND.NXT: once the window opens the byte
            # is sent again in order (RFC 9293 §3.8.6.1; BSD's tcp_output leaves
            # snd_nxt alone for a forced probe). Otherwise Nagle holds the rest
            # behind a byte nobody will ACK until an RTO.
            c.snd_nxt = nxt
        elif c.fin_queued and una == buf_end:
            self.emit(out, una, 0, now)
        self.persist_backoff += 1

    def emit(self, out: list[Segment], seq: int, n: int, now: float) -> int:
        """Send ``n`` bytes from ``seq`` (plus FIN when it falls right after them)."""
        c = self.c
        buf = c.sndbuf
        off = seq - buf.seq
        payload = bytes(buf.data[off : off + n]) if n else b""
        n = len(payload)
        end = seq + n
        buf_end = buf.end
        flags = ACK
        if c.fin_queued and end == buf_end:
            flags |= FIN
            end += 1
        if n and end >= buf_end:
            flags |= PSH
        out.append(self.segment(seq, flags, payload, now))
        cc = c.recovery.cc
        if cc.wants_delivery and n:
            rec = c.recovery
            flight = rec.pipe(c.snd_una, c.snd_nxt, c.sack_ok)
            cc.on_sent(seq, seq + n, flight, end >= buf_end and flight + n < cc.cwnd, now)
        c.recovery.on_sent(seq, end, c.snd_max, now)
        self.sent(seq, n, end, now)
        return n

    def sent(self, seq: int, n: int, end: int, now: float) -> None:
        """The bookkeeping of every data or FIN send, single or batched:
        counters, SND.NXT/SND.MAX, the user timeout's start and the
        retransmission timer (RFC 6298 §5.1). Send times for RTT and RACK
        are the callers' (Recovery.on_sent, on_sent_run)."""
        c = self.c
        stats = c.stats
        snd_max = c.snd_max
        self.pace_left -= n
        if seq < snd_max:
            old = (seq + n if seq + n < snd_max else snd_max) - seq  # bytes sent before
            stats.retransmits += 1
            stats.bytes_retransmitted += old
            stats.bytes_sent += n - old
        else:
            stats.bytes_sent += n
        if end > c.snd_nxt and seq <= c.snd_nxt:
            c.snd_nxt = end
        if snd_max == c.snd_una:
            # Nothing was outstanding: the user timeout counts from this send
            # (RFC 9293 §3.8.3, RFC 5482 §3), not from the last ACK before an idle spell.
            c.progress_at = now
        if end > snd_max:
            c.snd_max = end
        if c.timers.rtx is None:
            c.timers.rtx = now + c.rtt.rto

    # ------------------------------------------------------------ our ACK

    def sack_blocks(self) -> tuple[tuple[int, int], ...]:
        """SACK blocks for an ACK (RFC 2018 §4): three fit beside timestamps,
        four without; a D-SACK block first when a duplicate arrived (RFC 2883 §4)."""
        c = self.c
        rcvq = c.rcvq
        ooo = rcvq.ooo
        dsack = rcvq.dsack
        if not c.sack_ok or not (ooo or dsack is not None):
            return ()
        limit = 3 if c.ts_ok else 4
        if dsack is None:
            return tuple((s & MASK, e & MASK) for s, e in ooo.blocks(limit))
        blocks = [dsack] + ooo.blocks(limit - 1)
        return tuple((s & MASK, e & MASK) for s, e in blocks)

    def sending_ack(self) -> int:
        """An ACK leaves now: its window field, which never moves the right
        edge left (RFC 9293 §3.8.6.2.2 SWS avoidance, RFC 7323 §2.4), and the
        bookkeeping of an ACK sent (``acked_now``)."""
        c = self.c
        right = c.window_right_edge()
        if right - c.rcv_adv < min(c.config.recv_buffer // 2, c.config.mss):
            right = c.rcv_adv  # too small a gain to announce
        shift = c.rcv_wscale
        wnd = max(0, right - c.rcv_nxt)
        field = min((wnd + (1 << shift) - 1) >> shift, 0xFFFF)
        self.acked_now(field << shift)
        return field

    def acked_now(self, wnd: int) -> None:
        """Bookkeeping for any segment that carries our ACK: the window edge
        it announced, Last.ACK.sent (RFC 7323 §4.3), and no ACK owed now."""
        c = self.c
        edge = c.rcv_nxt + wnd
        if edge > c.rcv_adv:
            c.rcv_adv = edge
        c.last_ack_sent = c.rcv_nxt
        self.ack_now = False
        c.timers.delack = None
        c.unacked_bytes = 0

    # ------------------------------------------------------------ timers

    def arm_timers(self, now: float) -> None:
        """RTO while data is in flight; persist while the peer's window is closed."""
        c = self.c
        if c.state not in SYNCHRONIZED:
            return
        timers = c.timers
        outstanding = c.snd_max > c.snd_una
        buf_end = c.sndbuf.end
        pending = buf_end > c.snd_nxt
        if c.snd_wnd == 0 and (pending or (outstanding and c.snd_una < buf_end)):
            timers.rtx = None
            if timers.persist is None:
                backoff = min(self.persist_backoff, 16)
                timers.persist = now + min(c.rtt.rto * (1 << backoff), c.config.rto_max)
        elif pending and not outstanding:
            if timers.persist is None:  # SWS avoidance held back a small segment
                timers.persist = now + c.rtt.rto
        else:
            timers.persist = None
            self.persist_backoff = 0
            if outstanding and timers.rtx is None:
                timers.rtx = now + c.rtt.rto
            elif not outstanding:
                timers.rtx = None
            if outstanding:
                self.arm_tlp(now)
            else:
                timers.tlp = None

    def arm_tlp(self, now: float) -> None:
        """Tail loss probe (RFC 8985 §7.2): when a flight's last segments or
        their ACKs are lost, nothing elicits duplicate ACKs and only the RTO
        (200 ms or more) would recover. After ~2*SRTT without an ACK, one probe
        segment draws the ACK or SACK that starts fast recovery instead."""
        c = self.c
        timers = c.timers
        srtt = c.rtt.srtt
        if (
            not c.config.tail_loss_probe
            or srtt is None
            or c.recovery.tlp_end  # one probe per episode (§7.4)
            or c.recovery.in_recovery
            or timers.rtx is None
            or c.snd_nxt != c.snd_max  # resending after an RTO
            or c.state not in _TLP_STATES
        ):
            # No probe for this flight (§7.2: not while recovery, fast or after
            # an RTO, is under way): a timer armed earlier would fire for nothing.
            timers.tlp = None
            return
        if timers.tlp is not None:
            return
        pto = 2 * srtt
        if c.snd_max - c.snd_una <= c.smss:
            pto += c.config.delayed_ack  # a lone segment's ACK may be delayed
        # §7.2: if the RTO would fire first, the probe goes at the RTO's time
        # instead (and the RTO is restarted after it, §7.3).
        when = now + max(pto, 0.01)
        timers.tlp = when if when < timers.rtx else timers.rtx
