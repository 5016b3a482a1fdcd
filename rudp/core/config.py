"""Connection options, with the defaults users get when they say nothing."""

from __future__ import annotations

import dataclasses

# 1500-byte path - IPv6 (40) - UDP (8) - fixed TCP header (20). Options are
# subtracted per segment by the sender (RFC 9293 §3.7.1, RFC 6691).
DEFAULT_MSS = 1500 - 40 - 8 - 20
#: The smallest MSS we believe from a peer, as Linux's TCP_MIN_MSS: with at most
#: 40 bytes of options a segment still carries 48 bytes of data, so the size
#: the sender divides by can never be zero.
MIN_MSS = 88


@dataclasses.dataclass(frozen=True)
class Config:
    """Per-connection options; every field has a documented default.

    Times are in seconds, sizes in bytes.
    """

    mss: int = DEFAULT_MSS
    """MSS we announce: the largest TCP payload plus options we accept."""
    recv_buffer: int = 4 << 20
    """Receive buffer; the advertised window is its free space. 4 MiB keeps the
    window open while the application reads in bursts (measured: ~12% more
    loopback bulk than 1 MiB); it is a bound, not an allocation."""
    nodelay: bool = False
    """Disable Nagle's algorithm (RFC 9293 §3.7.4)."""
    window_scale: bool = True
    """Offer window scaling (RFC 7323 §2)."""
    sack: bool = True
    """Offer SACK (RFC 2018)."""
    timestamps: bool = True
    """Offer timestamps (RFC 7323 §3)."""
    checksum: bool = False
    """Compute the RFC 1071 checksum (header + payload, no pseudo-header) on the
    segments we send. Received segments with a nonzero checksum are verified
    whatever this says; a zero field means the sender computed none. Off by
    default: it costs ~7 us per 1400-byte segment in pure Python (measured in
    benchmarks/bench_wire.py), while UDP's own checksum already guards the
    same bytes end to end."""
    congestion_control: str = "cubic"
    """Name of a registered congestion controller (see rudp.core.congestion):
    "cubic" (RFC 9438 with HyStart++), "bbr" (BBRv3) or "newreno"."""
    pacing: bool = True
    """Pace data at the controller's rate (rudp.core.pacing); NewReno never paces."""
    initial_window: int = 10
    """Initial congestion window in segments (RFC 6928)."""
    delayed_ack: float = 0.04
    """Longest delay of an ACK for in-order data (RFC 9293 §3.8.6.3: < 0.5 s)."""
    rto_initial: float = 1.0
    """RTO before any RTT sample (RFC 6298 §2.1)."""
    rto_min: float = 0.2
    """Lower bound on the RTO (RFC 6298 §2.4 says 1 s; 0.2 s as Linux does)."""
    rto_max: float = 60.0
    """Upper bound on the RTO (RFC 6298 §2.5)."""
    syn_retries: int = 5
    """Retransmissions of a SYN or SYN-ACK before giving up."""
    max_retries: int = 12
    """Consecutive RTO retransmissions of data or FIN before the connection aborts."""
    user_timeout: float | None = 300.0
    """Abort when sent data stays unacknowledged this long (RFC 9293 §3.8.3, RFC 5482)."""
    msl: float = 30.0
    """Maximum segment lifetime; TIME_WAIT lasts 2*MSL (RFC 9293 §3.4.2)."""
    fin_wait_2_timeout: float | None = 60.0
    """How long FIN_WAIT_2 waits for the peer's FIN after the user closed."""
    keepalive: bool = False
    """Send keep-alive probes on an idle connection (RFC 9293 §3.8.4)."""
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_count: int = 9
    tail_loss_probe: bool = True
    """Probe after ~2*SRTT without an ACK instead of waiting for the RTO (RFC 8985 §7)."""
    dupack_threshold: int = 3
    """Duplicate ACKs that trigger fast retransmit when the peer lacks SACK
    (RFC 5681 §3.2); with SACK, RACK decides (RFC 8985 §6), and this many
    segments SACKed with no reordering seen make its window zero."""
    header_prediction: bool = True
    """Take the predicted-segment shortcut on receive (Jacobson's header
    prediction). Off only to check that the shortcut changes nothing: the
    golden-trace tests run every scenario both ways."""
    batch_send: bool = True
    """Build runs of full-sized new segments in one step. Off only to check
    that batching changes nothing on the wire (golden-trace tests)."""

    def __post_init__(self) -> None:
        if not MIN_MSS <= self.mss <= 65495:
            raise ValueError(f"mss must be in {MIN_MSS}..65495, got {self.mss}")
        if not 1 <= self.recv_buffer <= (0xFFFF << 14):
            raise ValueError(f"recv_buffer must be in 1..{0xFFFF << 14}, got {self.recv_buffer}")
        for name in ("delayed_ack", "rto_initial", "rto_min", "rto_max", "msl"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.rto_min > self.rto_max:
            raise ValueError("rto_min must not exceed rto_max")
        if self.initial_window < 1 or self.syn_retries < 0 or self.max_retries < 1:
            raise ValueError("initial_window and max_retries must be >= 1, syn_retries >= 0")
        if self.user_timeout is not None and self.user_timeout <= 0:
            raise ValueError("user_timeout must be positive or None")

    def replace(self, **changes: object) -> "Config":
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def rcv_wscale(self) -> int:
        """Smallest shift that lets the 16-bit window cover the buffer (RFC 7323 §2.3)."""
        shift = 0
        while (0xFFFF << shift) < self.recv_buffer and shift < 14:
            shift += 1
        return shift
