"""Per-connection counters, readable at any time (``Connection.stats``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .connection import Connection


class Stats:
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
        "tlp_repairs",
        "dsacks_received",
        "dsacks_sent",
        "spurious_timeouts",
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
    tlp_repairs: int
    dsacks_received: int
    dsacks_sent: int
    spurious_timeouts: int
    timeouts: int
    dup_acks: int
    zero_window_probes: int
    keepalives_sent: int

    def __init__(self) -> None:
        self.segments_sent = self.segments_received = 0
        self.bytes_sent = self.bytes_received = self.bytes_retransmitted = 0
        self.retransmits = self.fast_retransmits = self.lost_retransmits = 0
        self.spurious_recoveries = self.tail_loss_probes = self.timeouts = 0
        self.tlp_repairs = self.dsacks_received = self.dsacks_sent = self.spurious_timeouts = 0
        self.dup_acks = self.zero_window_probes = self.keepalives_sent = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "segments_sent": self.segments_sent,
            "segments_received": self.segments_received,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "bytes_retransmitted": self.bytes_retransmitted,
            "retransmits": self.retransmits,
            "fast_retransmits": self.fast_retransmits,
            "lost_retransmits": self.lost_retransmits,
            "spurious_recoveries": self.spurious_recoveries,
            "tail_loss_probes": self.tail_loss_probes,
            "tlp_repairs": self.tlp_repairs,
            "dsacks_received": self.dsacks_received,
            "dsacks_sent": self.dsacks_sent,
            "spurious_timeouts": self.spurious_timeouts,
            "timeouts": self.timeouts,
            "dup_acks": self.dup_acks,
            "zero_window_probes": self.zero_window_probes,
            "keepalives_sent": self.keepalives_sent,
        }


def connection_info(conn: Connection) -> dict[str, object]:
    """One connection's state and counters in one dict, as Linux's
    ``tcp_get_info`` gives ``ss -i``: read on demand, never per segment.

    ``bytes_acked`` counts data bytes (not SYN or FIN) the peer acknowledged,
    ``bytes_received`` in-order data bytes, as ``tcpi_bytes_acked`` and
    ``tcpi_bytes_received`` do (RFC 4898). RTTs are None before the first
    sample; ``ssthresh`` is None while it is still "arbitrarily high"
    (RFC 5681 §3.1).
    """
    rtt = conn.rtt
    cc = conn.cc
    sndbuf = conn.sndbuf
    srtt = rtt.srtt
    info: dict[str, object] = {
        "state": conn.state.value,
        "local_port": conn.local_port,
        "remote_port": conn.remote_port,
        "rtt_ms": None if srtt is None else round(srtt * 1000, 3),
        "rttvar_ms": None if srtt is None else round(rtt.rttvar * 1000, 3),
        "rto_ms": round(rtt.rto * 1000, 3),
        "congestion_control": conn.config.congestion_control,
        "cwnd": cc.cwnd,
        "ssthresh": cc.ssthresh if cc.ssthresh < 1 << 61 else None,
        "mss": conn.smss,
        "snd_wnd": conn.snd_wnd,
        "rcv_wnd": max(0, conn.rcv_adv - conn.rcv_nxt),
        "in_recovery": conn.recovery.in_recovery,
        "bytes_acked": max(0, sndbuf.seq + sndbuf.dead - conn.iss - 1),
        "send_queue": len(sndbuf),
        "recv_queue": conn.rcvq.queued,
    }
    info.update(conn.stats.as_dict())
    return info
