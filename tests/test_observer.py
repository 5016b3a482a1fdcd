"""The engine's observer hooks (rudp.core.observer): each fires exactly when its
moment happens, and attaching an observer changes nothing on the wire.

Every golden simulator scenario is replayed with a recording observer on every
endpoint: the traces must still match the committed ones byte for byte, and
per connection the hooks must agree with the connection's own counters (one
``loss(FAST_RETRANSMIT)`` per fast retransmit, one ``loss(RTO)`` per timeout,
one ``loss(TLP)`` per tail loss probe, every Eifel undo seen by ``acked``) and
with the state changes the endpoint reports.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict

import pytest

from rudp.core import observer as obs
from rudp.core.connection import Connection
from rudp.core.endpoint import Endpoint
from rudp.core.config import Config
from rudp.core.state import State
from rudp.tools.sim import LinkConfig
from tests import simapps
from tests.simapps import CLIENT, PORT, SERVER, Net, bulk_sender, payload, sink

try:
    from golden import MODES, SCENARIOS, golden_path, render  # type: ignore[import-not-found]
    from golden import Net as Net_of_golden
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests.golden import MODES, SCENARIOS, golden_path, render
    from tests.golden import Net as Net_of_golden


class Recorder:
    """An observer that keeps everything it is told."""

    def __init__(self) -> None:
        self.states: dict[Connection, list[tuple[State, State]]] = defaultdict(list)
        self.losses: dict[Connection, Counter[str]] = defaultdict(Counter)
        self.rtts: dict[Connection, list[float]] = defaultdict(list)
        self.acks: Counter[Connection] = Counter()
        self.spurious_seen: Counter[Connection] = Counter()
        self._spurious: dict[Connection, int] = {}

    def state_changed(self, conn: Connection, old: State, new: State) -> None:
        self.states[conn].append((old, new))

    def rtt_sample(self, conn: Connection, rtt: float) -> None:
        assert conn.rtt.srtt is not None  # the estimator already took it
        self.rtts[conn].append(rtt)

    def acked(self, conn: Connection) -> None:
        self.acks[conn] += 1
        n = conn.stats.spurious_recoveries
        if n != self._spurious.get(conn, 0):
            self.spurious_seen[conn] += n - self._spurious.get(conn, 0)
            self._spurious[conn] = n

    def loss(self, conn: Connection, kind: str) -> None:
        assert kind in (obs.FAST_RETRANSMIT, obs.RTO, obs.SYN_RTO, obs.TLP)
        if kind == obs.FAST_RETRANSMIT:
            assert conn.recovery.in_recovery
        self.losses[conn][kind] += 1


def test_a_recorder_is_an_observer() -> None:
    o: obs.Observer = Recorder()  # mypy checks the Protocol here
    assert o is not None


@pytest.fixture
def recorders(monkeypatch: pytest.MonkeyPatch) -> list[Recorder]:
    """Every Endpoint the simulator helpers make during the test gets a Recorder
    as its observer (through simapps.ENDPOINT_HOOKS, in both copies of simapps:
    golden.py imports it as a top-level module)."""
    made: list[Recorder] = []

    def attach(ep: Endpoint) -> None:
        rec = Recorder()
        made.append(rec)
        ep.observer = rec

    for apps in {simapps, sys.modules[Net_of_golden.__module__]}:
        monkeypatch.setattr(apps, "ENDPOINT_HOOKS", [attach])
    return made


def check_run(name: str, recorders: list[Recorder]) -> Counter[str]:
    """Run a golden scenario observed; check the hooks against each connection's
    counters and state changes; return how often each kind fired."""
    got = render(SCENARIOS[name](MODES["default"]))
    assert got == golden_path(name).read_text(), f"an observer changed the wire in {name}"
    assert recorders, "the scenario made no endpoint"
    totals: Counter[str] = Counter()
    for rec in recorders:
        for conn, states in rec.states.items():
            stats = conn.stats
            losses = rec.losses[conn]
            assert losses[obs.FAST_RETRANSMIT] == stats.fast_retransmits
            assert losses[obs.RTO] == stats.timeouts
            assert losses[obs.TLP] == stats.tail_loss_probes
            assert rec.spurious_seen[conn] == stats.spurious_recoveries
            assert all(r >= 0 for r in rec.rtts[conn])
            # Transitions chain: each starts where the previous ended, from CLOSED.
            assert states[0][0] is State.CLOSED
            assert all(a[1] is b[0] for a, b in zip(states, states[1:]))
            assert states[-1][1] is conn.state
            totals["connections"] += 1
            totals.update(losses)
            totals["spurious"] += stats.spurious_recoveries
            totals["rtt"] += len(rec.rtts[conn])
            totals["acked"] += rec.acks[conn]
    assert totals["connections"]
    recorders.clear()
    return totals


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_observed_run_matches_golden_and_counters(name: str, recorders: list[Recorder]) -> None:
    check_run(name, recorders)


def test_the_scenarios_exercise_every_hook(recorders: list[Recorder]) -> None:
    """Together the golden scenarios fire every hook but the timeouts' (below)."""
    totals: Counter[str] = Counter()
    for name in SCENARIOS:
        totals += check_run(name, recorders)
    missing = [k for k in (obs.FAST_RETRANSMIT, obs.TLP, "spurious", "rtt", "acked")
               if not totals[k]]
    assert not missing, (missing, totals)


def test_data_timeout_is_reported(recorders: list[Recorder]) -> None:
    """The path dies in the middle of a transfer: one loss(RTO) per timeout,
    until the connection gives up (RFC 9293 §3.8.3)."""
    net = Net(5)
    cfg = Config(max_retries=3)
    net.host(CLIENT, cfg)
    server = net.host(SERVER, cfg, factory=lambda: sink(None))
    net.link(CLIENT, SERVER, LinkConfig(delay=0.01))
    server.endpoint.listen(PORT)
    holder: list[Connection] = []
    app = bulk_sender(payload(300_000, 5))
    net.sim.call_at(0.0, lambda: holder.append(net.hosts[CLIENT].connect(SERVER, PORT, app)))
    net.sim.call_at(0.1, lambda: net.cut(CLIENT, SERVER))
    net.sim.run(until=600)
    conn = holder[0]
    rec = next(r for r in recorders if conn in r.states)
    assert conn.state is State.CLOSED and conn.error == "timeout"
    assert conn.stats.timeouts >= 1
    assert rec.losses[conn][obs.RTO] == conn.stats.timeouts
    assert rec.states[conn][-1] == (State.ESTABLISHED, State.CLOSED)


def test_syn_timeout_is_reported() -> None:
    """A SYN nobody answers: one loss(SYN_RTO) per retransmission timeout,
    and the handshake's failure as state changes."""
    ep = Endpoint(seed=1)
    rec = Recorder()
    ep.observer = rec
    conn = ep.connect(("10.0.0.2", 9), 80, 0.0)
    ep.datagrams_to_send(0.0)
    now = 0.0
    for _ in range(50):
        deadline = ep.get_timer()
        if deadline is None:
            break
        now = deadline
        ep.handle_timer(now)
        ep.datagrams_to_send(now)
    assert conn.state is State.CLOSED and conn.error == "timeout"
    assert rec.losses[conn][obs.SYN_RTO] == conn.config.syn_retries
    assert rec.states[conn] == [(State.CLOSED, State.SYN_SENT), (State.SYN_SENT, State.CLOSED)]
    assert not rec.rtts[conn] and not rec.acks[conn]
