"""Congestion control behind a small interface, and the registry of controllers.

The controllers live in their own modules: NewReno (RFC 5681, RFC 6582) in
``newreno``, CUBIC with HyStart++ (RFC 9438, RFC 9406) in ``cubic``, BBR
(draft-ietf-ccwg-bbr) in ``bbr``. ``Config.congestion_control`` names one.
"""

from __future__ import annotations

from typing import Callable

from mypy_extensions import mypyc_attr

#: Pacing rate as a multiple of cwnd/SRTT for window-based controllers, as
#: Linux's tcp_update_pacing_rate: 200% in slow start, 120% afterwards.
PACING_SS_RATIO = 2.0
PACING_CA_RATIO = 1.2


@mypyc_attr(allow_interpreted_subclasses=True)  # a controller may be written in Python (CONTROLLERS)
class CongestionControl:
    """Interface: the connection reports events, reads ``cwnd`` and ``pacing_rate``.

    The connection owns loss detection and recovery bookkeeping (which bytes
    to resend); a controller only decides how much may be in flight, and how
    fast it may leave. Every hook but the four core events has a no-op
    default, so a controller implements only what it uses.
    """

    __slots__ = ("mss", "cwnd", "ssthresh", "wants_delivery")

    def __init__(self, mss: int, initial_window: int) -> None:
        self.mss = mss
        self.cwnd = initial_window * mss
        self.ssthresh = 1 << 62  # RFC 5681 §3.1: arbitrarily high at first
        #: The connection calls on_sent/on_delivery only when this is set
        #: (rate-based controllers), sparing the others a call per segment.
        self.wants_delivery = False

    def on_ack(self, acked: int, in_flight: int, now: float) -> None:
        """New data was cumulatively acknowledged outside recovery."""
        raise NotImplementedError

    def on_congestion(self, in_flight: int, now: float) -> None:
        """Fast retransmit: a loss was detected by duplicate ACKs or SACK."""
        raise NotImplementedError

    def on_recovery_end(self, in_flight: int, now: float) -> None:
        """Fast recovery ended with a full ACK."""
        raise NotImplementedError

    def on_timeout(self, in_flight: int, now: float) -> None:
        """The retransmission timer expired."""
        raise NotImplementedError

    def on_app_limited(self, now: float) -> None:
        """New data was acknowledged outside recovery, but the window was not
        in use (Recovery.cwnd_limited): no growth, as RFC 7661 says."""

    def on_rtt_sample(self, rtt: float, now: float) -> None:
        """An RTT measurement, as fed to the RTO estimator (RFC 6298 §3 rules)."""

    def on_congestion_undone(self, now: float) -> None:
        """The last congestion event was spurious and ``cwnd``/``ssthresh`` were
        restored (RFC 4015 §3); a controller with more state restores it here."""

    def on_sent(self, seq: int, end: int, in_flight: int, app_limited: bool, now: float) -> None:
        """Data ``[seq, end)`` left (only when ``wants_delivery``)."""

    def on_delivery(self, snd_una: int, newest: int, sacked: int, lost: int, in_flight: int,
                    now: float) -> None:
        """An ACK arrived (only when ``wants_delivery``): SND.UNA, the end of
        the newest data it delivered (SND.UNA or the first SACK block's right
        edge, RFC 2018 §4), the SACKed bytes above SND.UNA, the bytes resent
        so far (deemed lost) and the "pipe"."""

    def pacing_rate(self, srtt: float | None) -> float:
        """Bytes per second the pacer lets out; 0 means no pacing."""
        return 0.0


def window_pacing_rate(cc: CongestionControl, srtt: float | None) -> float:
    """Pacing for a window-based controller: a multiple of cwnd per SRTT
    (Linux's tcp_update_pacing_rate), so the window is spread over the round
    trip instead of leaving as one burst. No pacing before an RTT sample."""
    if not srtt:
        return 0.0
    ratio = PACING_SS_RATIO if cc.cwnd < cc.ssthresh else PACING_CA_RATIO
    return ratio * cc.cwnd / srtt


from .bbr import Bbr  # noqa: E402 - the controllers import the interface above
from .cubic import Cubic  # noqa: E402
from .newreno import NewReno  # noqa: E402

CONTROLLERS: dict[str, Callable[[int, int], CongestionControl]] = {
    "newreno": NewReno,
    "cubic": Cubic,
    "bbr": Bbr,
}

__all__ = ["CONTROLLERS", "Bbr", "CongestionControl", "Cubic", "NewReno", "create",
           "window_pacing_rate"]


def create(name: str, mss: int, initial_window: int) -> CongestionControl:
    try:
        factory = CONTROLLERS[name]
    except KeyError:
        raise ValueError(
            f"unknown congestion control {name!r}; choose from {sorted(CONTROLLERS)}"
        ) from None
    return factory(mss, initial_window)
