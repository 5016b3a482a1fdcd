"""rudp.core.congestion: the controller interface, its registry and defaults."""

from __future__ import annotations

import pytest

from rudp.core.bbr import Bbr
from rudp.core.config import Config
from rudp.core.congestion import CONTROLLERS, CongestionControl, create, window_pacing_rate
from rudp.core.cubic import Cubic
from rudp.core.newreno import NewReno


def test_registry_names_every_controller() -> None:
    assert CONTROLLERS == {"newreno": NewReno, "cubic": Cubic, "bbr": Bbr}
    for name, cls in CONTROLLERS.items():
        cc = create(name, 1000, 10)
        assert isinstance(cc, cls) and isinstance(cc, CongestionControl)
        assert (cc.mss, cc.cwnd) == (1000, 10_000)


def test_cubic_is_the_default() -> None:
    assert Config().congestion_control == "cubic"
    assert Config().pacing is True


def test_create_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown congestion control 'vegas'.*bbr.*cubic.*newreno"):
        create("vegas", 1000, 10)


def test_optional_hooks_are_no_ops_by_default() -> None:
    # A controller that only implements the four core events still works:
    # the other branch's callers (and future ones) may call every hook.
    class Minimal(CongestionControl):
        def on_ack(self, acked: int, in_flight: int, now: float) -> None: ...
        def on_congestion(self, in_flight: int, now: float) -> None: ...
        def on_recovery_end(self, in_flight: int, now: float) -> None: ...
        def on_timeout(self, in_flight: int, now: float) -> None: ...

    cc = Minimal(1000, 10)
    cc.on_rtt_sample(0.05, 1.0)
    cc.on_congestion_undone(1.0)
    cc.on_sent(0, 1000, 0, False, 1.0)
    cc.on_delivery(1000, 1000, 0, 0, 0, 1.0)
    assert cc.pacing_rate(0.05) == 0.0
    assert cc.wants_delivery is False
    assert cc.cwnd == 10_000


def test_window_pacing_rate() -> None:
    # Linux's tcp_update_pacing_rate: 2 x cwnd/srtt in slow start, 1.2 x after.
    cc = NewReno(1000, 10)
    assert window_pacing_rate(cc, None) == 0.0  # no RTT sample yet: no pacing
    assert window_pacing_rate(cc, 0.0) == 0.0
    assert window_pacing_rate(cc, 0.1) == pytest.approx(2 * 10_000 / 0.1)
    cc.ssthresh = 10_000
    assert window_pacing_rate(cc, 0.1) == pytest.approx(1.2 * 10_000 / 0.1)
    assert cc.pacing_rate(0.1) == 0.0  # NewReno itself never paces
