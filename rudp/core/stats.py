"""Per-connection counters, readable at any time (``Connection.stats``)."""

from __future__ import annotations


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
        self.segments_sent = self.segments_received = 0
        self.bytes_sent = self.bytes_received = self.bytes_retransmitted = 0
        self.retransmits = self.fast_retransmits = self.lost_retransmits = 0
        self.spurious_recoveries = self.tail_loss_probes = self.timeouts = 0
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
            "timeouts": self.timeouts,
            "dup_acks": self.dup_acks,
            "zero_window_probes": self.zero_window_probes,
            "keepalives_sent": self.keepalives_sent,
        }
