"""Loss detection and recovery for one connection (the role of aioquic's recovery.py).

Duplicate ACKs and SACK information (RFC 5681 §3.2, RFC 6675), NewReno
partial ACKs when the peer lacks SACK (RFC 6582), early retransmit (RFC
5827), retransmissions that were lost again, Eifel undo of a spurious
recovery (RFC 3522, RFC 4015), and "pipe". The congestion controller
decides how much may be in flight; this object decides what is lost and
what to send again. Sequence numbers are unwrapped.
"""

from __future__ import annotations

from .congestion import CongestionControl
from .ranges import Scoreboard
from .seqnum import seq_diff, ts_clock
from .stats import Stats


class Recovery:
    __slots__ = (
        "cc", "stats", "sacks", "dupacks", "reno_sacked", "in_recovery", "recover",
        "high_rxt", "rxt_limit", "force_rxt", "una_rxt_mark", "undo", "rxt_ts", "ts_offset",
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
        self.una_rxt_mark: int | None = None  # SND.MAX when SND.UNA's segment was resent
        self.undo: tuple[int, int] | None = None  # (cwnd, ssthresh) before recovery
        self.rxt_ts = 0  # our TSval when the recovery's first retransmission left

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

    def send_window(self, smss: int) -> int:
        """cwnd, plus up to two segments for Limited Transmit (RFC 3042 §2)."""
        cwnd = self.cc.cwnd
        if self.dupacks and not self.in_recovery:
            cwnd += min(self.dupacks, 2) * smss
        return cwnd

    def on_dupack(self, smss: int, sack_ok: bool) -> None:
        """A duplicate ACK (RFC 5681 §2)."""
        self.dupacks += 1
        self.stats.dup_acks += 1
        if not sack_ok and self.in_recovery:
            self.reno_sacked += smss

    def on_sack_block(self, start: int, end: int, snd_una: int, snd_max: int) -> None:
        """Record a SACK block; D-SACKs and blocks outside what we sent are
        ignored (RFC 2018 §4)."""
        if snd_una < end <= snd_max and start < end:
            self.sacks.add(max(start, snd_una), end)

    def on_ack(
        self, ack: int, acked: int, freed: int, tsecr: int | None, snd_nxt: int,
        sack_ok: bool, smss: int, now: float,
    ) -> None:
        """SND.UNA advanced to ``ack`` (``acked`` bytes of sequence space,
        ``freed`` of them data)."""
        if self.sacks.ranges:
            self.sacks.advance(ack)
        self.una_rxt_mark = None
        self.dupacks = 0
        if not self.in_recovery:
            if freed > 0:
                self.cc.on_ack(freed, self.pipe(ack, snd_nxt, sack_ok), now)
        elif tsecr and self.undo is not None and seq_diff(tsecr, self.rxt_ts) < 0:
            # Eifel detection (RFC 3522): this ACK echoes a timestamp older than
            # our first retransmission, so the original arrived and the
            # "loss" was reordering. Undo the reduction (RFC 4015 §3).
            self.cc.cwnd, self.cc.ssthresh = self.undo
            self.cc.on_congestion_undone(now)
            self.undo = None
            self.in_recovery = False
            self.recover = ack
            self.reno_sacked = 0
            self.stats.spurious_recoveries += 1
        elif ack >= self.recover:  # full ACK (RFC 6582 §3.2 step 6)
            self.in_recovery = False
            self.reno_sacked = 0
            self.cc.on_recovery_end(self.pipe(ack, snd_nxt, sack_ok), now)
        else:  # partial ACK: the next hole is lost too (step 5)
            self.reno_sacked = max(0, self.reno_sacked - acked)
            if self.high_rxt <= ack:
                self.high_rxt = ack
                self.force_rxt = not sack_ok
            self.rxt_limit = max(self.rxt_limit, ack + smss)

    def detect_loss(
        self, snd_una: int, snd_max: int, buf_end: int, smss: int, sack_ok: bool,
        thresh: int, ts_ok: bool, now: float,
    ) -> bool:
        """Enter fast recovery on DupThresh duplicate ACKs or SACKed bytes
        (RFC 5681 §3.2, RFC 6675 §5), at most once per window (RFC 6582 §3.2).
        Returns True when recovery begins: nothing in flight may be timed."""
        sacks = self.sacks
        if self.in_recovery:
            if sack_ok:
                edge = sacks.lost_edge((thresh - 1) * smss + 1)
                if edge is not None and edge > self.rxt_limit:
                    self.rxt_limit = edge
                mark = self.una_rxt_mark
                if mark is not None and (
                    sacks.sacked - sacks.sacked_below(mark) > (thresh - 1) * smss
                ):
                    # Data sent after our retransmission of SND.UNA's segment was
                    # SACKed DupThresh times over: that retransmission was lost
                    # too (as RFC 8985 would conclude); send it again.
                    self.una_rxt_mark = None
                    self.high_rxt = snd_una
                    self.stats.lost_retransmits += 1
            return False
        outstanding = snd_max - snd_una
        if outstanding <= 0:
            return False
        segs = -(-outstanding // smss)
        if segs < thresh + 1 and buf_end <= snd_max:
            # Early retransmit (RFC 5827 §3.1): too few segments in flight to
            # ever see DupThresh duplicates, and no new data to send.
            thresh = max(1, segs - 1)
        lost_edge = sacks.lost_edge((thresh - 1) * smss + 1) if sack_ok else None
        if self.dupacks < thresh and lost_edge is None:
            return False
        if snd_una < self.recover:
            return False  # still within the window of the last recovery (RFC 6582 §3.2)
        self.in_recovery = True
        self.recover = snd_max
        self.high_rxt = snd_una
        self.rxt_limit = max(lost_edge or 0, snd_una + smss)
        self.reno_sacked = 0 if sack_ok else self.dupacks * smss
        self.force_rxt = True
        self.stats.fast_retransmits += 1
        cc = self.cc
        # Eifel needs timestamps to tell the original's ACK from the retransmission's.
        self.undo = (cc.cwnd, cc.ssthresh) if ts_ok else None
        self.rxt_ts = ts_clock(now, self.ts_offset)
        # RFC 6675 §5 (4.2) / RFC 5681 eq. 4: halve FlightSize, the data sent and
        # not cumulatively ACKed - not "pipe", which leaves SACKed data out.
        cc.on_congestion(outstanding, now)
        return True

    def next_retransmission(
        self, snd_una: int, snd_max: int, snd_nxt: int, cwnd: int, smss: int, sack_ok: bool
    ) -> tuple[int, int] | None:
        """In recovery, the next hole to send again as (seq, length), if the
        window allows (RFC 6675 §5 step 4, RFC 6582 §3.2 step 5)."""
        if not self.in_recovery:
            return None
        hole = self.sacks.next_hole(max(self.high_rxt, snd_una), min(self.rxt_limit, snd_max))
        if hole is None:
            return None
        if not self.force_rxt and self.pipe(snd_una, snd_nxt, sack_ok) + smss > cwnd:
            return None
        self.force_rxt = False
        if hole[0] == snd_una:
            self.una_rxt_mark = snd_max
        return hole[0], min(hole[1] - hole[0], smss)

    def retransmitted(self, seq: int, sent: int) -> None:
        self.high_rxt = seq + max(sent, 1)

    def on_timeout(self, snd_max: int, flight: int, first: bool, smss: int, now: float) -> None:
        """The RTO fired with data outstanding (RFC 6298 §5.5, RFC 5681 §3.1)."""
        if first:
            self.cc.on_timeout(flight, now)
        else:
            self.cc.cwnd = smss
        self.in_recovery = False
        self.recover = snd_max  # RFC 6582 §3.2 step 4 / §4
        self.reno_sacked = 0
        self.dupacks = 0
        # RFC 2018 §8: after a timeout the receiver may have reneged, so prior SACK
        # information MUST be ignored in choosing what to resend; SACKs arriving
        # from now on refill the scoreboard (RFC 6675 §5.1) and are skipped again.
        self.sacks.clear()
