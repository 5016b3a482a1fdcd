"""Loss detection and recovery for one connection (the role of aioquic's recovery.py).

What is lost: RACK (RFC 8985 §6) when the peer does SACK, duplicate ACKs and
RFC 6675 / NewReno (RFC 5681 §3.2, RFC 6582) when it does not, early
retransmit (RFC 5827) there too; the tail loss probe's outcome (RFC 8985
§7.4). How much may go out during recovery: "pipe" (RFC 6675 §4) and
Proportional Rate Reduction (RFC 6937, PRR-SSRB). Whether a reduction was
spurious: Eifel (RFC 3522), DSACK (RFC 2883, RFC 3708) and F-RTO (RFC 5682),
answered as RFC 4015 says. RTT samples come from each segment's send time
(as Linux's per-skb stamps), under Karn's rule (RFC 6298 §3).

The congestion controller decides how much may be in flight; this object
decides what is lost and what to send again. Sequence numbers are unwrapped.
"""

from __future__ import annotations

import bisect
import math

from .congestion import CongestionControl
from .ranges import Scoreboard
from .seqnum import seq_diff, ts_clock
from .stats import Stats

_INF = float("inf")
#: Below this many segments cwnd may grow whatever the use: RFC 7661 never
#: takes cwnd under the initial window (RFC 6928's ten segments) either.
IW_SEGMENTS = 10
#: RFC 8985 §6.2: reo_wnd_mult falls back to 1 after this many recoveries without DSACK.
_REO_WND_PERSIST = 16


class Recovery:
    __slots__ = (
        "cc", "stats", "sacks", "dupacks", "reno_sacked", "in_recovery", "recover",
        "high_rxt", "rxt_limit", "force_rxt", "ts_offset",
        # Per-segment send records (RFC 8985 §5.2), ordered by sequence number:
        # entry i covers [x_end[i-1] (x_start for i = 0), x_end[i]) and was last
        # sent at x_time[i]; rxt_ends holds the ends of entries ever resent.
        "x_start", "x_end", "x_time", "rxt_ends", "rxt_lost", "last_xmit",
        "last_xmit_end",
        # RACK (RFC 8985 §6).
        "rack_xmit", "rack_end", "rack_rtt", "min_rtt", "reordering_seen",
        "reo_wnd_mult", "reo_wnd_persist", "dsack_round", "reo_deadline",
        # TLP (RFC 8985 §7).
        "tlp_end", "tlp_rxt",
        # PRR (RFC 6937).
        "prr_delivered", "prr_out", "recover_fs", "prr_window",
        # Undo (RFC 3522, RFC 3708, RFC 4015, RFC 5682).
        "undo", "undo_bytes", "undo_rxt", "undo_start", "undo_until", "rxt_ts", "frto",
        "frto_quota",
        "snd_nxt_to",
        # Window use (RFC 7661, RFC 9438 §5.8): the most in flight this window and the last.
        "flight_max", "flight_max_prev", "usage_end",
    )

    def __init__(
        self, cc: CongestionControl, stats: Stats, iss: int, ts_offset: int
    ) -> None:
        self.cc = cc
        self.stats = stats
        self.ts_offset = ts_offset  # the connection's TSval clock (RFC 7323 §5.4)
        self.sacks = Scoreboard()
        self.dupacks = 0
        self.reno_sacked = 0  # dupACKed segments' bytes when the peer lacks SACK
        self.in_recovery = False
        self.recover = iss  # RFC 6582 "recover": SND.MAX when recovery began
        self.high_rxt = 0  # RFC 6675 HighRxt: below it, holes were retransmitted
        self.rxt_limit = 0  # holes below it are deemed lost
        self.force_rxt = False  # the next retransmission goes out whatever the pipe
        self.x_start = iss + 1
        self.x_end: list[int] = []
        self.x_time: list[float] = []
        self.rxt_ends: list[int] = []  # sorted
        self.rxt_lost: set[int] = set()  # ends of resent entries RACK deemed lost again
        self.last_xmit = -_INF  # the latest send stamp handed out (stamp())
        self.last_xmit_end = 0  # the end of what left with it
        self.rack_xmit = -_INF  # RACK.xmit_ts
        self.rack_end = 0  # RACK.end_seq
        self.rack_rtt = 0.0  # RACK.rtt
        self.min_rtt = _INF
        self.reordering_seen = False
        self.reo_wnd_mult = 1
        self.reo_wnd_persist = _REO_WND_PERSIST
        self.dsack_round: int | None = None
        self.reo_deadline: float | None = None  # RACK's reordering timer
        self.tlp_end = 0  # TLP.end_seq, 0 when no probe is outstanding
        self.tlp_rxt = False  # TLP.is_retrans
        self.prr_delivered = self.prr_out = self.recover_fs = 0
        self.prr_window = 0  # during recovery: the pipe PRR lets us reach
        # (cwnd, ssthresh) before the last reduction, while it may be undone.
        self.undo: tuple[int, int] | None = None
        self.undo_bytes = 0  # bytes resent since, not yet DSACKed (RFC 3708)
        self.undo_rxt = Scoreboard()  # what was resent since (a D-SACK elsewhere proves nothing)
        self.undo_start = 0  # SND.UNA when the reduction came
        self.undo_until = 0  # DSACKs for data below it may still undo it
        self.rxt_ts = 0  # our TSval when the first retransmission left (RFC 3522)
        self.frto = 0  # F-RTO step (RFC 5682 §2.1) awaiting an ACK: 2 or 3; 0 off
        self.frto_quota = 0  # new bytes F-RTO's step 2b may send whatever the pipe
        self.flight_max = 0  # bytes in flight at most, seen at ACKs of this window
        self.flight_max_prev = 0  # ... of the window before
        self.usage_end = iss  # this window ends when SND.UNA reaches it
        self.snd_nxt_to = 0  # for the connection: 1 resume at SND.MAX, 2 go back to SND.UNA

    # ------------------------------------------------------------ sending

    def pipe(self, snd_una: int, snd_nxt: int, sack_ok: bool) -> int:
        """Bytes presumed in the network (RFC 6675 §4 "pipe", counted in bytes)."""
        out = snd_nxt - snd_una
        if out <= 0:
            return 0
        if sack_ok:
            sacked = self.sacks.sacked_below(snd_nxt)
        else:
            sacked = min(self.reno_sacked, out)
        lost = 0
        if self.in_recovery:
            lost = self.sacks.hole_bytes(max(self.high_rxt, snd_una), min(self.rxt_limit, snd_nxt))
        return max(0, out - sacked - lost)

    def send_window(self, smss: int, sack_ok: bool, snd_una: int, snd_nxt: int) -> int:
        """What "pipe" may grow to now: cwnd, or PRR's allowance in recovery
        (RFC 6937), plus up to two segments for Limited Transmit without
        SACK (RFC 3042 §2; with SACK, pipe already leaves the SACKed segments
        out, RFC 6675 §5), plus F-RTO's two new segments (RFC 5682 §2.1 2b)."""
        cc = self.cc
        if self.in_recovery and not cc.wants_delivery:
            # PRR is for window-based controllers; a model-based one (BBR,
            # which takes delivery samples) sets cwnd in recovery itself.
            return self.prr_window
        cwnd = cc.cwnd
        if self.dupacks and not sack_ok:
            cwnd += min(self.dupacks, 2) * smss
        if self.frto_quota > 0:
            cwnd = max(cwnd, self.pipe(snd_una, snd_nxt, sack_ok) + self.frto_quota)
        return cwnd

    def stamp(self, seq: int, end: int, now: float) -> float:
        """The send time to record for [seq, end) leaving at ``now``. The
        adapter hands one ``now`` to a whole flush, and RACK (RFC 8985 §6.2)
        breaks a tie of send times by sequence number, which is right while
        a flush sends in sequence order. A retransmission after higher data
        at the same ``now`` gets a time one float step later instead, and
        anything after it no earlier: send order stays readable, as Linux's
        per-skb nanosecond stamps keep it."""
        last = self.last_xmit
        if now > last:
            t = now
        elif seq < self.last_xmit_end:
            t = math.nextafter(last, _INF)
        else:
            t = last
        self.last_xmit = t
        self.last_xmit_end = end
        return t

    def on_sent(self, seq: int, end: int, snd_max: int, now: float) -> None:
        """Record a transmission of [seq, end) at ``now`` (RFC 8985 §5.2)."""
        now = self.stamp(seq, end, now)
        if seq >= snd_max:
            if not self.x_end:
                self.x_start = seq
            self.x_end.append(end)
            self.x_time.append(now)
        else:
            top = end if end < snd_max else snd_max
            self.resent(seq, top, now)
            if end > snd_max:
                self.x_end.append(end)
                self.x_time.append(now)
        if self.in_recovery:
            self.prr_out += end - seq
        elif self.frto_quota > 0 and end > snd_max:
            self.frto_quota -= end - snd_max

    def on_sent_run(self, seq: int, count: int, smss: int, now: float) -> None:
        """``count`` new full segments from ``seq`` (Sender.send_full_segments).
        They share one stamp: RACK orders them by sequence (§6.2's end_seq tie-break)."""
        now = self.stamp(seq, seq + count * smss, now)
        x_end = self.x_end
        if not x_end:
            self.x_start = seq
        x_end.extend(range(seq + smss, seq + (count + 1) * smss, smss))
        self.x_time.extend([now] * count)
        if self.in_recovery:
            self.prr_out += count * smss

    def resent(self, seq: int, top: int, now: float) -> None:
        """[seq, top) went out again: its entries now carry this send time
        and count as retransmitted (Karn's rule, RFC 6298 §3)."""
        if seq < self.x_start:
            seq = self.x_start
        if top <= seq:
            return
        self.split(seq)
        self.split(top)
        x_end, x_time, rxt = self.x_end, self.x_time, self.rxt_ends
        i = bisect.bisect_right(x_end, seq)
        while i < len(x_end) and x_end[i] <= top:
            e = x_end[i]
            x_time[i] = now
            j = bisect.bisect_left(rxt, e)
            if j == len(rxt) or rxt[j] != e:
                rxt.insert(j, e)
            self.rxt_lost.discard(e)
            i += 1
        if self.undo is not None:
            self.undo_bytes += top - seq
            self.undo_rxt.add(seq, top)

    def split(self, p: int) -> None:
        """Make ``p`` an entry boundary."""
        x_end = self.x_end
        i = bisect.bisect_right(x_end, p)
        if i >= len(x_end) or p <= (x_end[i - 1] if i else self.x_start):
            return
        x_end.insert(i, p)
        self.x_time.insert(i, self.x_time[i])
        rxt = self.rxt_ends
        j = bisect.bisect_left(rxt, x_end[i + 1])
        if j < len(rxt) and rxt[j] == x_end[i + 1]:
            rxt.insert(j, p)

    def resent_end(self, seq: int) -> int | None:
        """The end of the entry holding ``seq`` if it was resent and RACK has
        not deemed that retransmission lost."""
        x_end = self.x_end
        i = bisect.bisect_right(x_end, seq)
        if i >= len(x_end):
            return None
        e = x_end[i]
        rxt = self.rxt_ends
        j = bisect.bisect_left(rxt, e)
        if j < len(rxt) and rxt[j] == e and e not in self.rxt_lost:
            return e
        return None

    def sent_time(self, seq: int) -> float | None:
        """When the entry holding ``seq`` was last sent."""
        i = bisect.bisect_right(self.x_end, seq)
        if i < len(self.x_end) and seq >= self.x_start:
            return self.x_time[i]
        return None

    # ------------------------------------------------------------ RACK

    def rack_update(self, xmit: float, end: int, retransmitted: bool, tsecr: int | None,
                    now: float) -> None:
        """RFC 8985 §6.2 step 2 for one newly delivered segment. For a
        retransmitted one, faster than min_RTT means the original was
        delivered, unless the echo names the retransmission. (The RFC's other
        test, an echo older than the retransmission, is not used: a segment
        SACKed above a hole is echoed with the older TS.Recent (RFC 7323
        §4.3), so every retransmission SACKed there would be ignored; as
        Linux's tcp_rack_advance.)"""
        rtt = now - xmit
        # (1 us of slack, the resolution of Linux's clock: equal RTTs computed
        # from float times may differ in the last bits.)
        if retransmitted and rtt + 1e-6 < self.min_rtt and (
            tsecr is None or seq_diff(tsecr, ts_clock(xmit, self.ts_offset)) < 0
        ):
            return  # the original's delivery, not this retransmission's
        if rtt < self.min_rtt:
            self.min_rtt = rtt
        if xmit > self.rack_xmit or (xmit == self.rack_xmit and end > self.rack_end):
            # RACK.rtt goes with RACK.xmit_ts: the RFC takes the newly
            # delivered segments in order of their send times, so the most
            # recently sent one sets it last. We meet them in sequence order,
            # and an old segment whose SACK was lost (a peer reports 3 or 4
            # blocks) and that a cumulative ACK covers at last would leave an
            # RTT of minutes: reordering windows that long, no loss detected
            # but by RTOs (test_transfer seed 72: RACK.rtt 159 s, 12 RTOs).
            self.rack_xmit = xmit
            self.rack_end = end
            self.rack_rtt = rtt

    def on_sack_block(self, start: int, end: int, snd_una: int, snd_max: int,
                      now: float = 0.0, tsecr: int | None = None) -> None:
        """Record a SACK block; blocks outside what we sent are ignored (RFC
        2018 §4). Entries it newly covers feed RACK (RFC 8985 §6.2 steps 2-3)."""
        if not (snd_una < end <= snd_max and start < end):
            return
        if start < snd_una:
            start = snd_una
        sacks = self.sacks
        covered = sacks.covering(start)
        if covered is not None:
            if covered >= end:
                return  # a block repeated from an earlier ACK: nothing new
            start = covered  # (a peer repeating a big block costs one lookup)
        x_end = self.x_end
        if x_end:
            fack = sacks.ranges[-1][1] if sacks.ranges else snd_una
            # Entries the block reaches into: a part newly SACKed counts as
            # that entry delivered (as Linux splits a partly SACKed skb), so a
            # FIN's entry counts once its data is SACKed.
            i = bisect.bisect_right(x_end, start)
            s = x_end[i - 1] if i else self.x_start
            rxt = self.rxt_ends
            while i < len(x_end) and s < end:
                e = x_end[i]
                lo = s if s > start else start
                hi = e if e < end else end
                covered = sacks.covering(lo)
                if covered is None or covered < hi:
                    j = bisect.bisect_left(rxt, e)
                    retransmitted = j < len(rxt) and rxt[j] == e
                    if hi < fack and not retransmitted:
                        self.reordering_seen = True  # §6.2 step 3
                    self.rack_update(self.x_time[i], hi, retransmitted, tsecr, now)
                s = e
                i += 1
        sacks.add(start, end)

    def reo_wnd(self, srtt: float | None, thresh: int = 3) -> float:
        """RACK's reordering window (RFC 8985 §6.2 step 4); ``thresh`` is DupThresh."""
        if not self.reordering_seen and (
            self.in_recovery or self.sacks.sacked >= thresh * self.cc.mss
        ):
            return 0.0
        if self.min_rtt == _INF:
            return 0.0
        wnd = self.min_rtt / 4 * self.reo_wnd_mult
        return min(wnd, srtt) if srtt is not None else wnd

    def rack_detect(self, snd_una: int, snd_max: int, srtt: float | None,
                    now: float, thresh: int = 3) -> int:
        """RFC 8985 §6.2 step 5: segments sent before RACK.xmit_ts, not
        delivered, and older than RACK.rtt + reo_wnd are lost. Returns the
        end of the highest lost original transmission (0 if none); lost
        retransmissions pull HighRxt back; sets the reordering timer."""
        self.reo_deadline = None
        x_end = self.x_end
        if not x_end or self.rack_xmit == -_INF:
            return 0
        if not self.sacks.ranges and not self.rxt_ends:
            # Only originals outstanding, nothing SACKed (the common ACK): they
            # left in sequence order, so if the oldest left after RACK's
            # segment, none can be lost.
            t0 = self.x_time[0]
            if t0 > self.rack_xmit or (t0 == self.rack_xmit and x_end[0] > self.rack_end):
                return 0
        reo = self.reo_wnd(srtt, thresh)
        rack_xmit, rack_end = self.rack_xmit, self.rack_end
        x_time, sacks = self.x_time, self.sacks
        timeout = _INF
        # Retransmitted entries: each on its own send time.
        for e in self.rxt_ends:
            if e <= snd_una or e in self.rxt_lost:
                continue
            i = bisect.bisect_left(x_end, e)
            if i >= len(x_end):
                break
            s = x_end[i - 1] if i else self.x_start
            covered = sacks.covering(s)
            if covered is not None and covered >= e:
                continue
            t = x_time[i]
            # Equal send stamps left in sequence order (stamp()): the §6.2
            # end_seq tie-break holds for retransmissions too.
            if t < rack_xmit or (t == rack_xmit and e < rack_end):
                if t + self.rack_rtt + reo <= now:
                    self.rxt_lost.add(e)
                    self.stats.lost_retransmits += 1
                    if self.high_rxt > s:
                        self.high_rxt = s
                    if self.rxt_limit < e:
                        self.rxt_limit = e
                elif t + self.rack_rtt + reo < timeout:
                    timeout = t + self.rack_rtt + reo
        # Original transmissions, oldest first, from where loss was last marked.
        edge = 0
        seq = max(snd_una, self.rxt_limit if self.in_recovery else snd_una)
        rxt = self.rxt_ends
        while seq < snd_max:
            hole = sacks.next_hole(seq, snd_max)
            if hole is None:
                break
            hs, he = hole
            i = bisect.bisect_right(x_end, hs)
            stop = False
            while i < len(x_end):
                s = x_end[i - 1] if i else self.x_start
                if s >= he:
                    break
                e = x_end[i]
                j = bisect.bisect_left(rxt, e)
                if not (j < len(rxt) and rxt[j] == e):
                    t = x_time[i]
                    if t > rack_xmit or (t == rack_xmit and e > rack_end):
                        stop = True  # later originals were sent later still
                        break
                    if t + self.rack_rtt + reo <= now:
                        edge = e
                    else:
                        timeout = min(timeout, t + self.rack_rtt + reo)
                        stop = True  # later originals are younger
                        break
                i += 1
            if stop:
                break
            seq = he
        if timeout != _INF:
            self.reo_deadline = timeout
        return edge

    # ------------------------------------------------------------ ACKs

    def on_dupack(self, smss: int, sack_ok: bool) -> None:
        """A duplicate ACK (RFC 5681 §2)."""
        self.dupacks += 1
        self.stats.dup_acks += 1
        if not sack_ok and self.in_recovery:
            self.reno_sacked += smss

    def on_dsack(self, start: int, end: int, snd_una: int, snd_max: int, now: float) -> None:
        """A D-SACK block (RFC 2883 §4): [start, end) arrived twice."""
        if end <= start:
            return
        self.stats.dsacks_received += 1
        # RFC 8985 §6.2 step 4: widen the reordering window, at most once per round trip.
        if self.dsack_round is None or snd_una >= self.dsack_round:
            self.dsack_round = snd_max
            self.reo_wnd_mult += 1
            self.reo_wnd_persist = _REO_WND_PERSIST
        # RFC 8985 §7.4: the probe's retransmission was not needed.
        if self.tlp_rxt and start < self.tlp_end <= end:
            self.tlp_end = 0
        # Bytes of ours that were resent: a duplicate the network made says
        # nothing about our retransmissions (Linux checks TCPCB_EVER_RETRANS).
        resent = (end - start) - self.undo_rxt.hole_bytes(start, end)
        if resent <= 0:
            return
        # Both copies of a retransmission arrived: what was taken for a loss
        # was reordering or delay, so reo_wnd may no longer be zero (step 4
        # would widen nothing otherwise).
        self.reordering_seen = True
        # RFC 3708 §3: once every byte resent since the reduction came back
        # twice, nothing was lost: undo it.
        if self.undo is not None and start >= self.undo_start and end <= self.undo_until:
            self.undo_bytes -= resent
            if self.undo_bytes <= 0:
                self.undo_reduction(snd_max - snd_una, 0, snd_una, now)

    def undo_reduction(self, flight: int, acked: int, snd_una: int, now: float) -> None:
        """The last reduction was spurious: restore ssthresh, and cwnd as far
        as it can go without a burst (RFC 4015 §3.2 steps 4-5: FlightSize plus
        at most an initial window more), slow start doing the rest; the
        controller may restore its own state (on_congestion_undone)."""
        undo = self.undo
        if undo is None:
            return
        cwnd, pipe_prev = undo
        cc = self.cc
        if self.in_recovery:
            # The controller leaves recovery as on a full ACK (a model-based
            # one restores what it saved on entry), then hears of the undo.
            self.reordering_seen = True  # the "lost" original arrived after all
            self.in_recovery = False
            self.reno_sacked = 0
            cc.on_recovery_end(flight, now)
        # The undone event was no loss event: RecoveryPoint no longer bars one
        # (RFC 6675 §5: recovery starts "if no previous loss event has
        # occurred" or the ACK passed RecoveryPoint). Kept, a real loss later
        # in the same window could never be repaired but by the RTO (Linux
        # likewise returns to the Open state on an undo).
        if self.recover > snd_una:
            self.recover = snd_una
        if not cc.wants_delivery:  # a window-based controller: RFC 4015's numbers
            cc.ssthresh = pipe_prev
            # RFC 4015 §3.2 step 5 with IW = 4*SMSS (RFC 3390), never above the old cwnd.
            cc.cwnd = max(min(cwnd, flight + min(acked, 4 * cc.mss)), cc.cwnd)
        cc.on_congestion_undone(now)
        self.undo = None
        self.stats.spurious_recoveries += 1
        if self.frto:
            self.frto = 0
            self.frto_quota = 0
            self.snd_nxt_to = 1  # carry on with new data (RFC 4015 §3.2 step 3)

    def on_ack(
        self, ack: int, acked: int, freed: int, tsecr: int | None, snd_nxt: int,
        sack_ok: bool, smss: int, now: float,
    ) -> float:
        """SND.UNA advanced to ``ack`` (``acked`` bytes of sequence space,
        ``freed`` of them data). Returns an RTT sample, or -1.0."""
        sample = -1.0
        x_end = self.x_end
        if x_end:
            k = bisect.bisect_right(x_end, ack)
            if not k:
                pass
            elif not self.rxt_ends and not self.sacks.ranges:
                # The common case, inlined: nothing resent or SACKed; the
                # newest segment acked gives the sample and feeds RACK.
                t = self.x_time[k - 1]
                sample = now - t
                if sample < self.min_rtt:
                    self.min_rtt = sample
                if t >= self.rack_xmit:
                    self.rack_xmit = t
                    self.rack_end = x_end[k - 1]
                    self.rack_rtt = sample
                self.x_start = x_end[k - 1]
                del x_end[:k]
                del self.x_time[:k]
            else:
                sample = self.acked_entries(k, ack, tsecr, now)
        if self.sacks.ranges:
            self.sacks.advance(ack)
        if self.rxt_lost:
            self.rxt_lost = {e for e in self.rxt_lost if e > ack}
        self.dupacks = 0
        if self.tlp_end and ack >= self.tlp_end:
            self.tlp_acked(ack, snd_nxt - (ack - acked), now)  # FlightSize before it
        if self.frto:
            self.frto_ack(ack, acked, tsecr, snd_nxt, now)
        if not self.in_recovery:
            if freed > 0:
                flight = self.pipe(ack, snd_nxt, sack_ok)
                if self.cwnd_limited(ack, flight + freed, snd_nxt):
                    self.cc.on_ack(freed, flight, now)
                else:
                    self.cc.on_app_limited(now)
        elif (tsecr and self.undo is not None and seq_diff(tsecr, self.rxt_ts) < 0
              and self.undo_rxt.ranges and ack > self.undo_rxt.ranges[0][0]):
            # Eifel detection (RFC 3522): this ACK acknowledges our first
            # retransmission yet echoes a timestamp older than it, so the
            # original arrived and the "loss" was reordering. Undo the
            # reduction (RFC 4015 §3). Only an ACK that covers it tells
            # (RFC 3522 §2): RACK may resend a hole above SND.UNA, and an ACK
            # for the data below, sent before, says nothing of that hole.
            self.undo_reduction(snd_nxt - ack, acked, ack, now)
        elif ack >= self.recover:  # full ACK (RFC 6582 §3.2 step 6)
            self.in_recovery = False
            self.reno_sacked = 0
            self.cc.on_recovery_end(self.pipe(ack, snd_nxt, sack_ok), now)
            self.undo_until = ack
            # RFC 8985 §6.2 step 4: after 16 recoveries without a D-SACK the
            # reordering window shrinks back.
            self.reo_wnd_persist -= 1
            if self.reo_wnd_persist <= 0:
                self.reo_wnd_mult = 1
                self.reo_wnd_persist = _REO_WND_PERSIST
        else:  # partial ACK: the next hole is lost too (step 5)
            self.reno_sacked = max(0, self.reno_sacked - acked)
            if self.high_rxt <= ack:
                self.high_rxt = ack
                self.force_rxt = not sack_ok
            if not sack_ok:
                self.rxt_limit = max(self.rxt_limit, ack + smss)
        return sample

    def acked_entries(self, k: int, ack: int, tsecr: int | None, now: float) -> float:
        """The first ``k`` send records were cumulatively acknowledged, some
        resent or SACKed before (on_ack handles the rest itself): take the
        RTT sample (RFC 6298 §3: never from a retransmitted segment, unless
        the timestamp echo shows the retransmission was acked) and feed RACK
        from the newest of them not SACKed before."""
        x_end, x_time = self.x_end, self.x_time
        rxt = self.rxt_ends
        sacks = self.sacks
        sample = -1.0
        fack = sacks.ranges[-1][1] if sacks.ranges else 0
        ambiguous = False
        s = self.x_start
        newest = -1
        for i in range(k):
            e = x_end[i]
            covered = sacks.covering(s) if sacks.ranges else None
            if covered is None or covered < e:
                j = bisect.bisect_left(rxt, e) if rxt else 0
                retransmitted = j < len(rxt) and rxt[j] == e
                if retransmitted:
                    t = x_time[i]
                    if tsecr is None or seq_diff(tsecr, ts_clock(t, self.ts_offset)) < 0:
                        ambiguous = True
                        if tsecr is not None or self.frto:
                            # The echo predates the retransmission (the
                            # original arrived), or, with no echo, F-RTO is
                            # still judging the RTO that sent it: RACK must
                            # not take this entry's send time (RFC 8985 §6.2
                            # step 2; Linux skips "spurious retrans" on
                            # cumulative ACKs), or a late ACK for the original
                            # deems everything sent before the RTO lost.
                            s = e
                            continue
                elif e < fack:
                    self.reordering_seen = True  # RFC 8985 §6.2 step 3
                self.rack_update(x_time[i], e, retransmitted, tsecr, now)
                newest = i
            s = e
        if newest >= 0 and not ambiguous:
            sample = now - x_time[newest]
        if rxt:
            n = bisect.bisect_right(rxt, x_end[k - 1])
            del rxt[:n]
        self.x_start = x_end[k - 1]
        del x_end[:k]
        del x_time[:k]
        return sample

    def cwnd_limited(self, ack: int, before: int, snd_nxt: int) -> bool:
        """Whether this window (or the last) used cwnd, so that an ACK may
        grow it (RFC 9438 §5.8: not while application-limited): a window the
        sender does not fill measures nothing about the path, and left to
        grow, cwnd reaches any size (tens of megabytes on loopback behind a
        4 MB receive window). ``before`` is the flight just before this ACK.
        The test is RFC 7661's: cwnd is validated while the most in flight
        ("pipeACK", §4.1, here sampled at ACKs over the window and the last)
        is at least half of it (§4.3), which in slow start is also Linux's
        tcp_is_cwnd_limited (cwnd < 2 x max_packets_out)."""
        if ack >= self.usage_end:
            self.usage_end = snd_nxt
            self.flight_max_prev = self.flight_max
            self.flight_max = before
        elif before > self.flight_max:
            self.flight_max = before
        used = self.flight_max if self.flight_max > self.flight_max_prev else self.flight_max_prev
        cwnd = self.cc.cwnd
        return 2 * used > cwnd or cwnd < IW_SEGMENTS * self.cc.mss

    def tlp_acked(self, ack: int, flight: int, now: float) -> None:
        """RFC 8985 §7.4: the probe's episode ends. A retransmitted probe
        acknowledged without a D-SACK for it repaired a loss, which
        congestion control must hear of; ``flight`` is FlightSize before this ACK."""
        tlp_end = self.tlp_end
        if not self.tlp_rxt:
            self.tlp_end = 0  # the probe was new data: RACK judges the rest
        elif ack == tlp_end:
            # §7.4.2: an ACK of exactly the probe's end may answer the original
            # (a delayed ACK crossing the probe): wait for the D-SACK the
            # probe's duplicate brings (on_dsack), or an ACK beyond it.
            return
        else:
            # The probe's data is acknowledged and no D-SACK for it came with
            # this ACK (input.py judges D-SACKs first; on_dsack would have
            # ended the episode): the probe repaired a loss. React as to a
            # loss event: ssthresh and cwnd come down (cwnd = ssthresh, as Linux).
            self.tlp_end = 0
            if not self.in_recovery:
                self.stats.tlp_repairs += 1
                self.cc.on_congestion(flight, now)

    def frto_ack(self, ack: int, acked: int, tsecr: int | None, snd_nxt: int,
                 now: float) -> None:
        """An ACK advancing SND.UNA after an RTO: Eifel (RFC 3522 with RFC
        4015) when it echoes a timestamp older than the retransmission, else
        F-RTO's steps 2 and 3 (RFC 5682 §2.1)."""
        if tsecr and seq_diff(tsecr, self.rxt_ts) < 0:
            self.stats.spurious_timeouts += 1
            self.undo_reduction(snd_nxt - ack, acked, ack, now)
            return
        if self.frto == 2:
            if ack >= self.recover:  # 2a: everything acked: conventional recovery
                self.frto = 0
                return
            self.frto = 3  # 2b: send two new segments, see what the next ACK says
            self.frto_quota = 2 * self.cc.mss
            self.snd_nxt_to = 1
        else:  # 3b: the new segments are acknowledged: the RTO was spurious
            self.stats.spurious_timeouts += 1
            self.undo_reduction(snd_nxt - ack, acked, ack, now)

    def frto_dupack(self) -> None:
        """A duplicate ACK during F-RTO (RFC 5682 §2.1 2a / 3a): the RTO was
        genuine; go on with the retransmissions after it."""
        if self.frto:
            if self.frto == 3:
                self.snd_nxt_to = 2
            self.frto = 0
            self.frto_quota = 0

    # ------------------------------------------------------------ loss

    def detect_loss(
        self, snd_una: int, snd_max: int, buf_end: int, smss: int, sack_ok: bool,
        thresh: int, ts_ok: bool, now: float, srtt: float | None = None,
    ) -> bool:
        """Mark losses and enter fast recovery, at most once per window (RFC
        6582 §3.2): with SACK by RACK (RFC 8985 §6.2), else on DupThresh
        duplicate ACKs (RFC 5681 §3.2) or early retransmit (RFC 5827).
        Returns True when recovery begins: nothing in flight may be timed."""
        if sack_ok:
            edge = self.rack_detect(snd_una, snd_max, srtt, now, thresh)
            if not edge and self.dupacks >= thresh and not self.sacks.ranges:
                # DupThresh duplicate ACKs that carry no SACK blocks at all (a
                # middlebox strips them?): RACK cannot see, RFC 5681 §3.2 can.
                edge = snd_una + smss
            if self.in_recovery:
                if edge > self.rxt_limit:
                    self.rxt_limit = edge
                return False
            if not edge or snd_una < self.recover or self.frto:
                return False
            self.enter_recovery(snd_una, snd_max, max(edge, snd_una + smss), sack_ok,
                                ts_ok, now)
            return True
        if self.in_recovery:
            return False
        outstanding = snd_max - snd_una
        if outstanding <= 0:
            return False
        segs = -(-outstanding // smss)
        if segs < thresh + 1 and buf_end <= snd_max:
            # Early retransmit (RFC 5827 §3.1): too few segments in flight to
            # ever see DupThresh duplicates, and no new data to send.
            thresh = max(1, segs - 1)
        if self.dupacks < thresh:
            return False
        if snd_una < self.recover:
            return False  # still within the window of the last recovery (RFC 6582 §3.2)
        self.enter_recovery(snd_una, snd_max, snd_una + smss, sack_ok, ts_ok, now)
        return True

    def enter_recovery(self, snd_una: int, snd_max: int, rxt_limit: int, sack_ok: bool,
                       ts_ok: bool, now: float) -> None:
        """Fast retransmit and the start of fast recovery (RFC 6675 §5 step 4,
        RFC 6582 §3.2, RFC 6937 initialization)."""
        outstanding = snd_max - snd_una
        self.in_recovery = True
        self.recover = snd_max
        self.high_rxt = snd_una
        self.rxt_limit = rxt_limit
        self.reno_sacked = 0 if sack_ok else self.dupacks * self.cc.mss
        self.force_rxt = True
        self.stats.fast_retransmits += 1
        self.frto = self.frto_quota = 0
        cc = self.cc
        self.save_undo(snd_una, snd_max, now, True)
        if not ts_ok:
            self.rxt_ts = 0
        # RFC 6675 §5 (4.2) / RFC 5681 eq. 4: halve FlightSize, the data sent and
        # not cumulatively ACKed - not "pipe", which leaves SACKed data out.
        cc.on_congestion(outstanding, now)
        self.prr_delivered = self.prr_out = 0
        self.recover_fs = outstanding
        self.prr_window = 0

    def save_undo(self, snd_una: int, snd_max: int, now: float, fast: bool) -> None:
        """Remember what a reduction took, in case it proves spurious: cwnd,
        and RFC 4015 §3.2 step 1's pipe_prev (FlightSize or ssthresh, the
        larger, for a fast retransmit; ssthresh for a timeout)."""
        cc = self.cc
        ssthresh = cc.ssthresh
        self.undo = (cc.cwnd, max(snd_max - snd_una, ssthresh) if fast else ssthresh)
        self.undo_bytes = 0
        self.undo_rxt.clear()
        self.undo_start = snd_una
        self.undo_until = snd_max
        self.rxt_ts = ts_clock(now, self.ts_offset)

    def on_delivered(self, delivered: int, snd_una: int, snd_nxt: int, sack_ok: bool,
                     smss: int) -> None:
        """PRR (RFC 6937 §3, PRR-SSRB): how far pipe may grow after an ACK in
        recovery that reported ``delivered`` bytes newly delivered."""
        if not self.in_recovery:
            return
        self.prr_delivered += delivered
        pipe = self.pipe(snd_una, snd_nxt, sack_ok)
        ssthresh = self.cc.ssthresh
        if pipe > ssthresh:
            fs = self.recover_fs or 1
            sndcnt = -(-self.prr_delivered * ssthresh // fs) - self.prr_out
        else:
            limit = max(self.prr_delivered - self.prr_out, delivered) + smss
            sndcnt = min(ssthresh - pipe, limit)
        self.prr_window = pipe + max(sndcnt, 0)

    def next_retransmission(
        self, snd_una: int, snd_max: int, snd_nxt: int, cwnd: int, smss: int, sack_ok: bool
    ) -> tuple[int, int] | None:
        """In recovery, the next hole to send again as (seq, length), if the
        window allows (RFC 6675 §5 step 4, RFC 6582 §3.2 step 5)."""
        if not self.in_recovery:
            return None
        seq = max(self.high_rxt, snd_una)
        limit = min(self.rxt_limit, snd_max)
        while True:
            hole = self.sacks.next_hole(seq, limit)
            if hole is None:
                return None
            # When RACK pulled HighRxt back for a lost retransmission, the
            # retransmissions after it that RACK does not deem lost stay out.
            end = self.resent_end(hole[0]) if sack_ok and self.rxt_ends else None
            if end is None:
                break
            seq = end
        if not self.force_rxt and self.pipe(snd_una, snd_nxt, sack_ok) + smss > cwnd:
            return None
        self.force_rxt = False
        return hole[0], min(hole[1] - hole[0], smss)

    def retransmitted(self, seq: int, sent: int) -> None:
        self.high_rxt = seq + max(sent, 1)

    def on_timeout(self, snd_una: int, snd_max: int, flight: int, first: bool, smss: int,
                   now: float) -> None:
        """The RTO fired with data outstanding (RFC 6298 §5.5, RFC 5681 §3.1)."""
        if first:
            if not self.in_recovery or self.undo is None:
                self.save_undo(snd_una, snd_max, now, False)
            else:
                self.rxt_ts = ts_clock(now, self.ts_offset)
            self.cc.on_timeout(flight, now)
            # F-RTO (RFC 5682 §2.1 step 1), unless the last RTO's recovery is not over.
            self.frto = 2 if snd_una >= self.recover else 0
        else:
            self.cc.cwnd = smss
            self.frto = 0
            self.undo = None
        self.frto_quota = 0
        self.in_recovery = False
        self.recover = snd_max  # RFC 6582 §3.2 step 4 / §4
        self.reno_sacked = 0
        self.dupacks = 0
        self.tlp_end = 0
        self.reo_deadline = None
        # RFC 2018 §8: after a timeout the receiver may have reneged, so prior SACK
        # information MUST be ignored in choosing what to resend; SACKs arriving
        # from now on refill the scoreboard (RFC 6675 §5.1) and are skipped again.
        self.sacks.clear()
