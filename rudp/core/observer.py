"""What a connection tells an observer beyond its events: for logs and tracing.

An observer never takes part in a protocol decision and the engine reads
nothing back from it. Each hook sits where its moment happens, behind one
``is not None`` test of ``Connection.observer``, so a connection without an
observer pays one attribute test per ACK that advances SND.UNA and nothing
on the receive fast path. The hooks pass the connection itself: its numbers
(``cc.cwnd``, ``cc.ssthresh``, ``rtt.srtt``, ``recovery.in_recovery``,
``stats``) are as the moment left them. The asyncio adapter's JSON-lines
event log (``rudp.aio.eventlog``) is one observer; tests record with another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .connection import Connection
    from .state import State

#: ``Observer.loss`` kinds.
FAST_RETRANSMIT = "fast_retransmit"  # DupThresh duplicate ACKs or SACKed bytes (RFC 6675 §5)
RTO = "rto"  # the retransmission timer expired with data outstanding (RFC 6298 §5.5)
SYN_RTO = "syn_rto"  # ... with our SYN or SYN,ACK outstanding (RFC 6298 §5.7)
TLP = "tlp"  # a tail loss probe left (RFC 8985 §7.3)


class Observer(Protocol):
    """The hooks; an implementation may ignore any of them."""

    def state_changed(self, conn: Connection, old: State, new: State) -> None:
        """Every transition (``Connection.set_state``)."""

    def rtt_sample(self, conn: Connection, rtt: float) -> None:
        """An RTT measurement was fed to the estimator (RFC 6298 §2, RFC 7323 §4)."""

    def acked(self, conn: Connection) -> None:
        """SND.UNA advanced and the congestion controller and loss recovery
        took the ACK: cwnd may have grown, recovery may have ended (RFC 6582
        §3.2) or been undone as spurious (RFC 3522, ``stats.spurious_recoveries``)."""

    def loss(self, conn: Connection, kind: str) -> None:
        """Loss was detected or probed for (``FAST_RETRANSMIT``, ``RTO``,
        ``SYN_RTO``, ``TLP``), after the congestion controller reacted."""
