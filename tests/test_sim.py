"""Tests for the deterministic network simulator (rudp.tools.sim), using fake endpoints."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import pytest

from rudp.tools.sim import (
    DELIVERED,
    LOST,
    MAX_TIMER_FIRINGS_PER_INSTANT,
    QUEUE_DROPPED,
    TOO_BIG,
    UNROUTABLE,
    Address,
    LinkConfig,
    SimEndpoint,
    Simulator,
    TraceEntry,
)

A: Address = ("10.0.0.1", 5000)
B: Address = ("10.0.0.2", 6000)
C: Address = ("10.0.0.3", 7000)


class FakeEndpoint:
    """Scripted endpoint: queued datagrams, recorded arrivals, one settable timer."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.outbox: list[tuple[bytes, Address]] = []
        self.events: list[tuple[Any, Any]] = []
        self.received: list[tuple[float, bytes, Address]] = []
        self.timer: float | None = None
        self.timer_calls: list[float] = []
        self.on_timer: Callable[[float], None] | None = None

    def send(self, data: bytes, addr: Address) -> None:
        """Queue a datagram (sent when the simulator services us)."""
        self.outbox.append((data, addr))

    def datagram_received(self, data: bytes, addr: Address, now: float) -> None:
        self.received.append((now, data, addr))
        self.events.append(("conn", ("rx", data)))
        if self.echo:
            self.outbox.append((data, addr))

    def handle_timer(self, now: float) -> None:
        self.timer_calls.append(now)
        self.timer = None
        if self.on_timer is not None:
            self.on_timer(now)

    def get_timer(self) -> float | None:
        return self.timer

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        out, self.outbox = self.outbox, []
        return out

    def poll_events(self) -> list[tuple[Any, Any]]:
        out, self.events = self.events, []
        return out

    def payloads(self) -> list[bytes]:
        return [data for _, data, _ in self.received]

    def times(self) -> list[float]:
        return [when for when, _, _ in self.received]

    def seqs(self) -> list[int]:
        return [int.from_bytes(data[:4], "big") for data in self.payloads()]


def numbered(i: int, size: int = 100) -> bytes:
    """A datagram of ``size`` bytes that starts with its 4-byte sequence number."""
    return i.to_bytes(4, "big") + bytes(size - 4)


def pair(
    config: LinkConfig, seed: int = 0, config_back: LinkConfig | None = None
) -> tuple[Simulator, FakeEndpoint, FakeEndpoint]:
    sim = Simulator(seed)
    a, b = FakeEndpoint(), FakeEndpoint()
    sim.add_endpoint(A, a)
    sim.add_endpoint(B, b)
    sim.connect(A, B, config, config_back)
    return sim, a, b


def send_burst(sim: Simulator, ep: FakeEndpoint, n: int, at: float = 0.0, size: int = 100) -> None:
    """Schedule ``n`` numbered datagrams from ``ep`` to B, all at time ``at``."""

    def action() -> None:
        for i in range(n):
            ep.send(numbered(i, size), B)

    sim.call_at(at, action)


def send_paced(sim: Simulator, ep: FakeEndpoint, n: int, interval: float, size: int = 100) -> None:
    """Schedule ``n`` numbered datagrams to B, one every ``interval`` seconds."""
    for i in range(n):
        sim.call_at(i * interval, functools.partial(ep.send, numbered(i, size), B))


# -- basics ------------------------------------------------------------------


def test_fake_endpoint_satisfies_protocol() -> None:
    assert isinstance(FakeEndpoint(), SimEndpoint)
    with pytest.raises(TypeError):
        Simulator().add_endpoint(A, object())  # type: ignore[arg-type]


def test_delay_is_exact() -> None:
    sim, a, b = pair(LinkConfig(delay=0.05))
    sim.call_at(0.0, lambda: a.send(b"x", B))
    sim.call_at(1.0, lambda: a.send(b"y", B))
    sim.run()
    assert b.received == [(0.05, b"x", A), (1.0 + 0.05, b"y", A)]
    assert sim.now == 1.05


def test_asymmetric_links_and_echo() -> None:
    sim = Simulator()
    a, b = FakeEndpoint(), FakeEndpoint(echo=True)
    sim.add_endpoint(A, a)
    sim.add_endpoint(B, b)
    sim.connect(A, B, LinkConfig(delay=0.01), LinkConfig(delay=0.03))
    sim.call_at(0.0, lambda: a.send(b"ping", B))
    sim.run()
    assert b.received == [(0.01, b"ping", A)]
    assert a.received == [(pytest.approx(0.04), b"ping", B)]
    assert sim.link(A, B).stats.delivered == 1
    assert sim.link(B, A).stats.delivered == 1
    assert sim.link(B, A).stats.bytes_delivered == 4


def test_bandwidth_serialization_spacing() -> None:
    # 1250 bytes = 10 000 bits = 10 ms at 1 Mbit/s.
    sim, a, b = pair(LinkConfig(delay=0.02, bandwidth=1_000_000))
    send_burst(sim, a, 10, size=1250)
    sim.run()
    assert b.seqs() == list(range(10))
    expected = [0.02 + 0.01 * (k + 1) for k in range(10)]
    assert b.times() == pytest.approx(expected)
    gaps = [t2 - t1 for t1, t2 in zip(b.times(), b.times()[1:])]
    assert gaps == pytest.approx([0.01] * 9)


def test_bandwidth_idle_link_does_not_queue() -> None:
    sim, a, b = pair(LinkConfig(delay=0.0, bandwidth=1_000_000))
    send_burst(sim, a, 1, at=0.0, size=1250)
    send_burst(sim, a, 1, at=1.0, size=1250)
    sim.run()
    assert b.times() == pytest.approx([0.01, 1.01])


def test_queue_limit_tail_drop() -> None:
    sim, a, b = pair(LinkConfig(delay=0.0, bandwidth=1_000_000, queue_limit=3))
    sim.trace = []
    send_burst(sim, a, 10, size=1250)
    sim.run()
    # One packet on the wire, three waiting, the other six dropped at the tail.
    assert b.seqs() == [0, 1, 2, 3]
    stats = sim.link(A, B).stats
    assert (stats.sent, stats.delivered, stats.queue_dropped) == (10, 4, 6)
    drops = [e for e in sim.trace if e[4] == QUEUE_DROPPED]
    assert [int.from_bytes(e[3][:4], "big") for e in drops] == [4, 5, 6, 7, 8, 9]
    # Once the queue drained, the link accepts packets again.
    send_burst(sim, a, 2, at=sim.now + 1.0, size=1250)
    sim.run()
    assert stats.delivered == 6 and stats.queue_dropped == 6


def test_queue_limit_counts_only_waiting_packets() -> None:
    sim, a, b = pair(LinkConfig(delay=0.0, bandwidth=1_000_000, queue_limit=0))
    send_burst(sim, a, 3, size=1250)
    sim.run()
    assert b.seqs() == [0]
    assert sim.link(A, B).stats.queue_dropped == 2


def test_loss_rate_near_p() -> None:
    n, p = 10_000, 0.1
    sim, a, b = pair(LinkConfig(delay=0.001, loss=p), seed=42)
    send_burst(sim, a, n)
    sim.run()
    stats = sim.link(A, B).stats
    assert stats.sent == n
    assert stats.lost + stats.delivered == n
    # 4 standard deviations: sqrt(n p (1-p)) = 30.
    assert abs(stats.lost - n * p) < 120
    assert len(b.received) == stats.delivered
    assert b.seqs() == sorted(b.seqs())


def test_duplicate_always() -> None:
    sim, a, b = pair(LinkConfig(delay=0.01, duplicate=1.0))
    send_burst(sim, a, 5)
    sim.run()
    assert b.seqs() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    stats = sim.link(A, B).stats
    assert (stats.sent, stats.duplicated, stats.delivered) == (5, 5, 10)
    assert stats.bytes_delivered == 10 * 100


def test_duplicate_rate() -> None:
    n, p = 5_000, 0.2
    sim, a, b = pair(LinkConfig(delay=0.01, duplicate=p), seed=3)
    send_burst(sim, a, n)
    sim.run()
    stats = sim.link(A, B).stats
    assert abs(stats.duplicated - n * p) < 4 * (n * p * (1 - p)) ** 0.5
    assert stats.delivered == n + stats.duplicated == len(b.received)


def test_reorder_produces_out_of_order_arrivals() -> None:
    sim, a, b = pair(LinkConfig(delay=0.01, jitter=0.002, reorder=0.2), seed=1)
    send_paced(sim, a, 200, interval=0.001)
    sim.run()
    seqs = b.seqs()
    assert sorted(seqs) == list(range(200))
    assert seqs != sorted(seqs)
    inversions = sum(1 for x, y in zip(seqs, seqs[1:]) if x > y)
    assert inversions > 10
    assert sim.link(A, B).stats.reordered > 20
    assert b.times() == sorted(b.times())


def test_jitter_without_reorder_keeps_fifo() -> None:
    # Jitter (20 ms) far larger than the send interval (1 ms) must not reorder.
    sim, a, b = pair(LinkConfig(delay=0.01, jitter=0.02), seed=1)
    send_paced(sim, a, 500, interval=0.001)
    sim.run()
    assert b.seqs() == list(range(500))
    assert b.times() == sorted(b.times())
    latencies = [t - i * 0.001 for i, t in enumerate(b.times())]
    assert min(latencies) >= 0.01 - 1e-12
    assert max(latencies) <= 0.01 + 0.02 + 1e-9  # the FIFO clamp stays within the bound
    assert max(latencies) - min(latencies) > 0.005  # jitter is actually applied
    assert sim.link(A, B).stats.reordered == 0


def test_explicit_reorder_delay() -> None:
    sim, a, b = pair(LinkConfig(delay=0.0, reorder=1.0, reorder_delay=0.5))
    send_burst(sim, a, 1)
    sim.run()
    assert b.times() == [0.5]
    assert LinkConfig(delay=0.03).effective_reorder_delay == pytest.approx(0.06)


def test_corruption_flips_exactly_one_bit() -> None:
    n = 300
    sim, a, b = pair(LinkConfig(delay=0.01, corrupt=1.0), seed=5)
    send_paced(sim, a, n, interval=0.001, size=64)
    sim.run()
    assert sim.link(A, B).stats.corrupted == n
    assert len(b.received) == n
    # Arrivals are FIFO, so the k-th arrival is the k-th datagram sent.
    flipped_positions = set()
    for k, got in enumerate(b.payloads()):
        original = numbered(k, 64)
        assert len(got) == len(original)
        diff = int.from_bytes(got, "big") ^ int.from_bytes(original, "big")
        assert bin(diff).count("1") == 1
        flipped_positions.add(diff.bit_length())
    assert len(flipped_positions) > 50  # the bit is random, not fixed


def test_corruption_skips_empty_datagram() -> None:
    sim, a, b = pair(LinkConfig(corrupt=1.0))
    sim.call_at(0.0, lambda: a.send(b"", B))
    sim.run()
    assert b.payloads() == [b""]
    assert sim.link(A, B).stats.corrupted == 0


def test_mtu_drops_large_datagrams() -> None:
    sim, a, b = pair(LinkConfig(mtu=100))
    sim.trace = []
    sim.call_at(0.0, lambda: a.outbox.extend([(bytes(100), B), (bytes(101), B)]))
    sim.run()
    assert [len(p) for p in b.payloads()] == [100]
    assert sim.link(A, B).stats.too_big == 1
    assert [(e[0], len(e[3]), e[4]) for e in sim.trace] == [
        (0.0, 101, TOO_BIG),
        (0.01, 100, DELIVERED),
    ]


def test_link_config_validation() -> None:
    with pytest.raises(ValueError):
        LinkConfig(loss=1.5)
    with pytest.raises(ValueError):
        LinkConfig(delay=-1.0)
    with pytest.raises(ValueError):
        LinkConfig(bandwidth=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        LinkConfig().delay = 1.0  # type: ignore[misc]


def test_link_config_can_change_mid_run() -> None:
    sim, a, b = pair(LinkConfig(delay=0.01))
    send_burst(sim, a, 1, at=0.0)

    def cut() -> None:
        link = sim.link(A, B)
        link.config = dataclasses.replace(link.config, loss=1.0)

    sim.call_at(0.5, cut)
    send_burst(sim, a, 1, at=1.0)
    sim.run()
    assert b.seqs() == [0]
    assert sim.link(A, B).stats.lost == 1


# -- determinism -------------------------------------------------------------


def impaired_trace(seed: int) -> list[TraceEntry]:
    config = LinkConfig(
        delay=0.01,
        jitter=0.005,
        bandwidth=2_000_000,
        queue_limit=20,
        loss=0.05,
        duplicate=0.05,
        reorder=0.05,
        corrupt=0.05,
    )
    sim = Simulator(seed)
    a, b = FakeEndpoint(), FakeEndpoint(echo=True)
    sim.add_endpoint(A, a)
    sim.add_endpoint(B, b)
    sim.connect(A, B, config)
    sim.trace = []
    for burst in range(20):
        send_burst(sim, a, 30, at=burst * 0.05, size=500)
    sim.run()
    return sim.trace


def test_same_seed_same_trace() -> None:
    first = impaired_trace(7)
    assert len(first) > 500
    assert {e[4] for e in first} >= {DELIVERED, LOST, QUEUE_DROPPED}
    assert impaired_trace(7) == first


def test_different_seed_different_trace() -> None:
    assert impaired_trace(7) != impaired_trace(8)


def test_links_have_independent_rngs() -> None:
    """Traffic on another link does not change the random choices of this one."""

    def lost_seqs(extra_traffic: bool) -> list[int]:
        sim = Simulator(11)
        a, b, c = FakeEndpoint(), FakeEndpoint(), FakeEndpoint()
        for addr, ep in ((A, a), (B, b), (C, c)):
            sim.add_endpoint(addr, ep)
        sim.connect(A, B, LinkConfig(loss=0.3))
        sim.connect(C, B, LinkConfig(loss=0.3))
        sim.trace = []
        send_paced(sim, a, 100, interval=0.001)
        if extra_traffic:
            send_paced(sim, c, 100, interval=0.0005)
        sim.run()
        return [int.from_bytes(e[3][:4], "big") for e in sim.trace if e[1] == A and e[4] == LOST]

    assert lost_seqs(False) == lost_seqs(True)


# -- timers ------------------------------------------------------------------


def test_timer_fires_at_get_timer() -> None:
    sim = Simulator()
    ep = FakeEndpoint()
    ep.timer = 0.3
    sim.add_endpoint(A, ep)
    sim.run()
    assert ep.timer_calls == [0.3]
    assert sim.now == 0.3


def test_periodic_timer_and_sending_from_timer() -> None:
    sim, a, b = pair(LinkConfig(delay=0.01))
    fired: list[float] = []

    def tick(now: float) -> None:
        fired.append(now)
        a.send(numbered(len(fired)), B)
        if len(fired) < 5:
            a.timer = now + 0.1

    a.on_timer = tick
    a.timer = 0.1
    sim.service(A)  # re-read get_timer after changing it directly
    sim.run()
    assert fired == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert b.times() == pytest.approx([0.11, 0.21, 0.31, 0.41, 0.51])


def test_past_deadline_fires_now() -> None:
    sim = Simulator()
    ep = FakeEndpoint()
    sim.add_endpoint(A, ep)
    sim.run(until=2.0)

    def arm_in_past() -> None:
        ep.timer = 1.0

    sim.call_at(3.0, arm_in_past)
    sim.run()
    assert ep.timer_calls == [3.0]


def test_stale_timer_entries_are_ignored() -> None:
    sim = Simulator()
    ep = FakeEndpoint()
    ep.timer = 1.0
    sim.add_endpoint(A, ep)

    def postpone() -> None:
        ep.timer = 2.0

    sim.call_at(0.5, postpone)
    sim.run()
    assert ep.timer_calls == [2.0]


def test_timer_moved_earlier_and_cancelled() -> None:
    sim = Simulator()
    ep = FakeEndpoint()
    ep.timer = 5.0
    sim.add_endpoint(A, ep)
    sim.call_at(1.0, lambda: setattr(ep, "timer", 2.0))
    sim.run(until=3.0)
    assert ep.timer_calls == [2.0]
    ep.timer = 4.0
    sim.service(A)
    sim.call_at(3.5, lambda: setattr(ep, "timer", None))
    sim.run()
    assert ep.timer_calls == [2.0]
    assert sim.now == 3.5


def test_unchanged_deadline_keeps_one_heap_entry() -> None:
    sim = Simulator()
    ep = FakeEndpoint()
    ep.timer = 10.0
    sim.add_endpoint(A, ep)
    for _ in range(100):
        sim.service(A)
    assert len(sim._heap) == 1
    sim.run()
    assert ep.timer_calls == [10.0]


def test_runaway_timer_raises() -> None:
    sim = Simulator()
    ep = FakeEndpoint()

    def stuck(now: float) -> None:
        ep.timer = 0.5  # same past deadline forever, no progress

    ep.on_timer = stuck
    ep.timer = 0.5
    sim.add_endpoint(A, ep)
    with pytest.raises(RuntimeError, match="fired"):
        sim.run()
    assert len(ep.timer_calls) == MAX_TIMER_FIRINGS_PER_INSTANT


def test_many_timers_at_same_instant_below_limit_are_fine() -> None:
    sim = Simulator()
    ep = FakeEndpoint()

    def again(now: float) -> None:
        if len(ep.timer_calls) < 100:
            ep.timer = now

    ep.on_timer = again
    ep.timer = 1.0
    sim.add_endpoint(A, ep)
    sim.run()
    assert ep.timer_calls == [1.0] * 100


# -- running -----------------------------------------------------------------


def test_run_until_stops_and_resumes() -> None:
    sim, a, b = pair(LinkConfig(delay=1.0))
    send_burst(sim, a, 1, at=0.0)
    sim.run(until=0.5)
    assert sim.now == 0.5
    assert b.received == []
    sim.run(until=1.0)  # an event exactly at `until` still runs
    assert b.times() == [1.0]
    sim.run(until=7.0)  # nothing left: time still advances to `until`
    assert sim.now == 7.0
    sim.run(until=3.0)  # never goes backwards
    assert sim.now == 7.0


def test_run_stop_predicate() -> None:
    sim, a, b = pair(LinkConfig(delay=0.01))
    send_paced(sim, a, 10, interval=0.1)
    sim.run(stop=lambda: len(b.received) >= 3)
    assert b.seqs() == [0, 1, 2]
    assert sim.now == pytest.approx(0.21)


def test_run_max_steps_raises() -> None:
    sim = Simulator()
    ep = FakeEndpoint()
    ep.on_timer = lambda now: setattr(ep, "timer", now + 1.0)
    ep.timer = 0.0
    sim.add_endpoint(A, ep)
    with pytest.raises(RuntimeError, match="steps"):
        sim.run(max_steps=50)
    assert len(ep.timer_calls) == 50


def test_step() -> None:
    sim = Simulator()
    assert sim.step() is False
    hits: list[float] = []
    sim.call_at(2.0, lambda: hits.append(sim.now))
    sim.call_at(1.0, lambda: hits.append(sim.now))
    assert sim.next_time() == 1.0
    assert sim.step() is True
    assert hits == [1.0]
    assert sim.step() is True
    assert sim.step() is False
    assert hits == [1.0, 2.0]


def test_same_time_events_run_in_scheduling_order() -> None:
    sim = Simulator()
    order: list[int] = []
    for i in range(20):
        sim.call_at(1.0, functools.partial(order.append, i))
    sim.run()
    assert order == list(range(20))


def test_call_at_validation_and_cancel() -> None:
    sim = Simulator()
    sim.run(until=1.0)
    with pytest.raises(ValueError):
        sim.call_at(0.5, lambda: None)
    with pytest.raises(ValueError):
        sim.call_later(-1.0, lambda: None)
    hits: list[str] = []
    handle = sim.call_later(1.0, lambda: hits.append("no"))
    sim.call_later(2.0, lambda: hits.append("yes"))
    handle.cancel()
    sim.run()
    assert hits == ["yes"]
    assert sim.now == 3.0


def test_unroutable_counted() -> None:
    sim, a, b = pair(LinkConfig())
    sim.trace = []
    sim.call_at(0.0, lambda: a.outbox.extend([(b"lost", C), (b"ok", B)]))
    sim.run()
    assert sim.unroutable == 1
    assert b.payloads() == [b"ok"]
    assert (0.0, A, C, b"lost", UNROUTABLE) in sim.trace


def test_link_to_missing_endpoint_is_unroutable() -> None:
    sim = Simulator()
    a = FakeEndpoint()
    sim.add_endpoint(A, a)
    sim.connect(A, B)
    sim.call_at(0.0, lambda: a.send(b"x", B))
    sim.run()
    assert sim.unroutable == 1
    assert sim.link(A, B).stats.delivered == 0


def test_duplicate_address_rejected() -> None:
    sim = Simulator()
    sim.add_endpoint(A, FakeEndpoint())
    with pytest.raises(ValueError):
        sim.add_endpoint(A, FakeEndpoint())


# -- servicing ---------------------------------------------------------------


def test_call_at_is_followed_by_servicing_every_endpoint() -> None:
    sim = Simulator()
    a, b, c = FakeEndpoint(), FakeEndpoint(), FakeEndpoint()
    seen: list[tuple[str, Any, Any]] = []
    sim.add_endpoint(A, a, on_event=lambda conn, ev: seen.append(("a", conn, ev)))
    sim.add_endpoint(B, b)
    sim.add_endpoint(C, c, on_event=lambda conn, ev: seen.append(("c", conn, ev)))
    sim.connect(A, B, LinkConfig(delay=0.01))
    sim.connect(C, B, LinkConfig(delay=0.02))

    def action() -> None:
        # The action touches two endpoints; both must be flushed afterwards.
        a.send(b"from a", B)
        c.send(b"from c", B)
        a.events.append(("conn-a", "hello"))
        c.events.append(("conn-c", "world"))

    sim.call_at(0.5, action)
    sim.run()
    assert b.received == [
        (pytest.approx(0.51), b"from a", A),
        (pytest.approx(0.52), b"from c", C),
    ]
    assert seen == [("a", "conn-a", "hello"), ("c", "conn-c", "world")]


def test_on_event_reaction_is_flushed() -> None:
    """An app reacting to an event by writing more gets its data sent in the same service."""
    sim = Simulator()
    a, b = FakeEndpoint(), FakeEndpoint()
    replies: list[bytes] = []

    def on_b_event(conn: Any, event: Any) -> None:
        kind, data = event
        if kind == "rx" and data != b"last":
            b.send(data + b"!", A)
            b.events.append((conn, ("rx", b"last")))  # a follow-up event, drained too
            replies.append(data)

    sim.add_endpoint(A, a)
    sim.add_endpoint(B, b, on_event=on_b_event)
    sim.connect(A, B, LinkConfig(delay=0.01))
    sim.call_at(0.0, lambda: a.send(b"hi", B))
    sim.run()
    assert replies == [b"hi"]
    assert a.received == [(pytest.approx(0.02), b"hi!", B)]


def test_public_service_after_direct_calls() -> None:
    sim, a, b = pair(LinkConfig(delay=0.01))
    sim.run(until=1.0)
    a.send(b"direct", B)  # outside any simulator callback
    assert sim.next_time() is None
    sim.service(A)
    sim.run()
    assert b.received == [(pytest.approx(1.01), b"direct", A)]


def test_endless_service_loop_raises() -> None:
    class Chatty(FakeEndpoint):
        def poll_events(self) -> list[tuple[Any, Any]]:
            return [("conn", "again")]

    sim = Simulator()
    sim.add_endpoint(A, Chatty())
    with pytest.raises(RuntimeError, match="rounds"):
        sim.service(A)


def test_trace_off_by_default_and_records_delivery_time() -> None:
    sim, a, b = pair(LinkConfig(delay=0.25))
    assert sim.trace is None
    sim.trace = []
    sim.call_at(1.0, lambda: a.send(b"t", B))
    sim.run()
    assert sim.trace == [(1.25, A, B, b"t", DELIVERED)]
