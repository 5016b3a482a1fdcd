"""Deterministic discrete-event network simulator for sans-IO endpoints.

The simulator owns a virtual clock and an event heap.  Endpoints (anything that
implements :class:`SimEndpoint`) are attached at addresses and joined by
one-way :class:`Link` objects that model propagation delay, jitter, bandwidth
with a tail-drop queue, loss, duplication, reordering, corruption and an MTU.

Every random decision comes from a per-link ``random.Random`` seeded from the
simulator seed and the link's two addresses, so a run is exactly repeatable,
and traffic on one link never perturbs the random choices of another.

Typical use, with two `rudp.core.endpoint.Endpoint` objects and a TCP port::

    sim = Simulator(seed=1)
    client, server = Endpoint(seed=1), Endpoint(seed=2)
    sim.add_endpoint(A, client, on_event=lambda conn, ev: ...)
    sim.add_endpoint(B, server, on_event=lambda conn, ev: ...)
    sim.connect(A, B, LinkConfig(delay=0.02, loss=0.01))
    server.listen(80)
    sim.call_at(0.0, lambda: client.connect(B, 80, sim.now))
    sim.run(until=10.0)
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Protocol, runtime_checkable

__all__ = [
    "Address",
    "Handle",
    "Link",
    "LinkConfig",
    "LinkStats",
    "SimEndpoint",
    "Simulator",
    "TraceEntry",
    "DELIVERED",
    "LOST",
    "QUEUE_DROPPED",
    "TOO_BIG",
    "UNROUTABLE",
]

Address = Hashable
"""Any hashable address, e.g. ``("10.0.0.1", 5000)``."""

# Outcomes recorded in Simulator.trace.
DELIVERED = "delivered"
LOST = "lost"
QUEUE_DROPPED = "queue_dropped"
TOO_BIG = "too_big"
UNROUTABLE = "unroutable"

TraceEntry = tuple[float, Address, Address, bytes, str]
"""``(time, src, dst, data, outcome)``; drops are stamped with the send time."""

#: Consecutive timer firings of one endpoint at one instant before we give up.
MAX_TIMER_FIRINGS_PER_INSTANT = 10_000
#: Rounds of poll_events/datagrams_to_send in one service call before we give up.
MAX_SERVICE_ROUNDS = 100_000


@runtime_checkable
class SimEndpoint(Protocol):
    """The sans-IO endpoint interface the simulator drives (no clock of its own)."""

    def datagram_received(self, data: bytes, addr: Address, now: float) -> None:
        """Take one datagram that arrived from ``addr`` at time ``now``."""

    def handle_timer(self, now: float) -> None:
        """Called at or after the deadline returned by :meth:`get_timer`."""

    def get_timer(self) -> float | None:
        """Absolute virtual time of the next deadline, or None."""

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Datagrams to transmit now, as ``(data, destination)`` pairs."""

    def poll_events(self) -> list[tuple[Any, Any]]:
        """Pending ``(connection, event)`` pairs, removed from the endpoint."""


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """Behaviour of one direction of a link; all times in seconds."""

    delay: float = 0.01
    """One-way propagation delay."""
    jitter: float = 0.0
    """Extra uniform delay in ``[0, jitter]``; never reorders on its own (FIFO)."""
    bandwidth: float | None = None
    """Bits per second; None means infinite (no serialization delay)."""
    queue_limit: int | None = None
    """Max packets waiting behind the one being serialized; None = unbounded."""
    loss: float = 0.0
    """Probability that a packet is lost (after it used the link's bandwidth)."""
    duplicate: float = 0.0
    """Probability that a packet is delivered twice."""
    reorder: float = 0.0
    """Probability that a packet gets ``reorder_delay`` extra and may be overtaken."""
    reorder_delay: float | None = None
    """Extra delay of a reordered packet; None means ``2 * delay``."""
    corrupt: float = 0.0
    """Probability that one random bit of a delivered copy is flipped."""
    mtu: int | None = None
    """Largest datagram in bytes; larger ones are dropped (``too_big``)."""

    def __post_init__(self) -> None:
        if not (self.delay >= 0.0 and math.isfinite(self.delay)):
            raise ValueError(f"delay must be finite and >= 0, got {self.delay!r}")
        if not (self.jitter >= 0.0 and math.isfinite(self.jitter)):
            raise ValueError(f"jitter must be finite and >= 0, got {self.jitter!r}")
        if self.bandwidth is not None and not self.bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0 or None, got {self.bandwidth!r}")
        if self.queue_limit is not None and self.queue_limit < 0:
            raise ValueError(f"queue_limit must be >= 0 or None, got {self.queue_limit!r}")
        if self.reorder_delay is not None and not (
            self.reorder_delay >= 0.0 and math.isfinite(self.reorder_delay)
        ):
            raise ValueError(f"reorder_delay must be finite and >= 0, got {self.reorder_delay!r}")
        if self.mtu is not None and self.mtu < 0:
            raise ValueError(f"mtu must be >= 0 or None, got {self.mtu!r}")
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            _check_probability(name, getattr(self, name))

    @property
    def effective_reorder_delay(self) -> float:
        """The extra delay given to a reordered packet."""
        return 2.0 * self.delay if self.reorder_delay is None else self.reorder_delay


@dataclass(slots=True)
class LinkStats:
    """Counters for one direction of a link.

    ``sent`` counts datagrams handed to the link; ``delivered`` counts copies
    handed to the receiving endpoint (duplicates included, so it may exceed
    ``sent``).  ``reordered`` counts packets given the extra reorder delay.
    """

    sent: int = 0
    delivered: int = 0
    lost: int = 0
    queue_dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    too_big: int = 0
    bytes_delivered: int = 0


def _link_seed(seed: int, src: Address, dst: Address) -> int:
    """Derive a link's RNG seed from the simulator seed and its addresses."""
    material = repr((seed, src, dst)).encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big")


class Link:
    """One direction ``src -> dst``; ``config`` may be replaced at any time."""

    __slots__ = (
        "src",
        "dst",
        "config",
        "stats",
        "rng",
        "_busy_until",
        "_waiting",
        "_last_arrival",
        "script",
    )

    def __init__(self, src: Address, dst: Address, config: LinkConfig, seed: int) -> None:
        self.src = src
        self.dst = dst
        self.config = config
        self.stats = LinkStats()
        self.rng = random.Random(_link_seed(seed, src, dst))
        self._busy_until = 0.0  # when the serializer becomes free
        self._waiting: deque[float] = deque()  # start times of queued packets
        self._last_arrival = 0.0  # latest in-order arrival (keeps jitter FIFO)
        #: Optional per-datagram script, ``script(data, now)``: None drops the
        #: datagram (counted as lost), a number delays it by that much more,
        #: out of FIFO order (it may be overtaken, as a reordered one). Lets a
        #: test lose or reorder exactly the datagrams it means to.
        self.script: Callable[[bytes, float], float | None] | None = None

    def queued(self, now: float) -> int:
        """Packets waiting for serialization at ``now`` (not the one on the wire)."""
        waiting = self._waiting
        while waiting and waiting[0] <= now:
            waiting.popleft()
        return len(waiting)

    def transmit(self, data: bytes, now: float) -> tuple[str | None, list[tuple[float, bytes]]]:
        """Push one datagram into the link at ``now``.

        Returns ``(drop_outcome, deliveries)``: either a drop outcome (``too_big``,
        ``queue_dropped``, ``lost``) and no deliveries, or None and the list of
        ``(arrival_time, data)`` copies to deliver, in delivery order.
        """
        cfg = self.config
        stats = self.stats
        rng = self.rng
        stats.sent += 1
        if cfg.mtu is not None and len(data) > cfg.mtu:
            stats.too_big += 1
            return TOO_BIG, []
        # Serialization: FIFO behind the packets already accepted.
        if cfg.bandwidth is None:
            done = now
        else:
            start = max(now, self._busy_until)
            if start > now:
                if cfg.queue_limit is not None and self.queued(now) >= cfg.queue_limit:
                    stats.queue_dropped += 1
                    return QUEUE_DROPPED, []
                self._waiting.append(start)
            done = start + len(data) * 8 / cfg.bandwidth
            self._busy_until = done
        if cfg.loss and rng.random() < cfg.loss:
            stats.lost += 1
            return LOST, []
        extra = 0.0
        if self.script is not None:
            scripted = self.script(data, now)
            if scripted is None:
                stats.lost += 1
                return LOST, []
            extra = scripted
        arrival = done + cfg.delay
        if cfg.jitter:
            arrival += rng.uniform(0.0, cfg.jitter)
        arrival = max(arrival, self._last_arrival)
        if cfg.reorder and rng.random() < cfg.reorder:
            stats.reordered += 1
            arrival += cfg.effective_reorder_delay
        elif extra > 0.0:
            stats.reordered += 1
            arrival += extra
        else:
            self._last_arrival = arrival
        copies = 1
        if cfg.duplicate and rng.random() < cfg.duplicate:
            stats.duplicated += 1
            copies = 2
        out: list[tuple[float, bytes]] = []
        for _ in range(copies):
            copy = data
            if cfg.corrupt and data and rng.random() < cfg.corrupt:
                stats.corrupted += 1
                bit = rng.randrange(len(data) * 8)
                buf = bytearray(data)
                buf[bit >> 3] ^= 1 << (bit & 7)
                copy = bytes(buf)
            out.append((arrival, copy))
        return None, out

    def __repr__(self) -> str:
        return f"Link({self.src!r} -> {self.dst!r}, {self.config!r}, {self.stats!r})"


class Handle:
    """A scheduled simulator event; :meth:`cancel` prevents it from running."""

    __slots__ = ("when", "fn", "args", "cancelled")

    def __init__(self, when: float, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.when = when
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        """Drop the event; it is skipped when it reaches the head of the heap."""
        self.cancelled = True

    def __repr__(self) -> str:
        state = " cancelled" if self.cancelled else ""
        return f"<Handle when={self.when!r} fn={getattr(self.fn, '__name__', self.fn)}{state}>"


@dataclass(slots=True)
class _Slot:
    """Simulator-side state of one attached endpoint."""

    addr: Address
    endpoint: SimEndpoint
    on_event: Callable[[Any, Any], None] | None
    timer_gen: int = 0
    timer_when: float | None = None  # deadline as requested by the endpoint
    timer_handle: Handle | None = None
    fire_instant: float = field(default=-math.inf)
    fire_count: int = 0


class Simulator:
    """Virtual clock, event heap, endpoints and the links between them."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.now = 0.0
        self.unroutable = 0
        self.trace: list[TraceEntry] | None = None
        self._heap: list[tuple[float, int, Handle]] = []
        self._counter = 0  # heap tie-breaker: equal times run in scheduling order
        self._slots: dict[Address, _Slot] = {}
        self._links: dict[tuple[Address, Address], Link] = {}

    # -- topology -----------------------------------------------------------

    def add_endpoint(
        self,
        addr: Address,
        endpoint: SimEndpoint,
        on_event: Callable[[Any, Any], None] | None = None,
    ) -> None:
        """Attach ``endpoint`` at ``addr`` and arm its timer (nothing is flushed)."""
        if addr in self._slots:
            raise ValueError(f"address {addr!r} already has an endpoint")
        if not isinstance(endpoint, SimEndpoint):
            raise TypeError(f"{endpoint!r} does not implement SimEndpoint")
        slot = _Slot(addr, endpoint, on_event)
        self._slots[addr] = slot
        self._arm_timer(slot)

    def endpoint(self, addr: Address) -> SimEndpoint:
        """The endpoint attached at ``addr``."""
        return self._slots[addr].endpoint

    def connect(
        self,
        a: Address,
        b: Address,
        config: LinkConfig | None = None,
        config_back: LinkConfig | None = None,
    ) -> tuple[Link, Link]:
        """Create links ``a -> b`` (``config``) and ``b -> a`` (``config_back`` or ``config``)."""
        if config is None:
            config = LinkConfig()
        forward = Link(a, b, config, self.seed)
        back = Link(b, a, config if config_back is None else config_back, self.seed)
        self._links[(a, b)] = forward
        self._links[(b, a)] = back
        return forward, back

    def link(self, src: Address, dst: Address) -> Link:
        """The one-way link ``src -> dst`` (its ``stats``; ``config`` is settable)."""
        return self._links[(src, dst)]

    # -- scheduling ---------------------------------------------------------

    def _push(self, when: float, fn: Callable[..., None], args: tuple[Any, ...] = ()) -> Handle:
        handle = Handle(when, fn, args)
        self._counter += 1
        heapq.heappush(self._heap, (when, self._counter, handle))
        return handle

    def call_at(self, when: float, fn: Callable[[], Any]) -> Handle:
        """Run application action ``fn()`` at ``when``, then service every endpoint."""
        if not when >= self.now:
            raise ValueError(f"cannot schedule at {when!r}, before now={self.now!r}")
        return self._push(when, self._run_action, (fn,))

    def call_later(self, delay: float, fn: Callable[[], Any]) -> Handle:
        """Run application action ``fn()`` after ``delay`` seconds (see :meth:`call_at`)."""
        if not delay >= 0:
            raise ValueError(f"delay must be >= 0, got {delay!r}")
        return self.call_at(self.now + delay, fn)

    def _run_action(self, fn: Callable[[], Any]) -> None:
        fn()
        for slot in list(self._slots.values()):
            self._service(slot)

    # -- servicing ----------------------------------------------------------

    def service(self, addr: Address) -> None:
        """Drain events and datagrams of the endpoint at ``addr``, then re-arm its timer."""
        self._service(self._slots[addr])

    def _service(self, slot: _Slot) -> None:
        endpoint = slot.endpoint
        for _ in range(MAX_SERVICE_ROUNDS):
            events = endpoint.poll_events()
            if events and slot.on_event is not None:
                for conn, event in events:
                    slot.on_event(conn, event)
            datagrams = endpoint.datagrams_to_send(self.now)
            for data, dst in datagrams:
                self._send(slot.addr, dst, data)
            if not events and not datagrams:
                break
        else:
            raise RuntimeError(
                f"endpoint at {slot.addr!r} kept producing events or datagrams for "
                f"{MAX_SERVICE_ROUNDS} rounds at t={self.now!r}"
            )
        self._arm_timer(slot)

    def _arm_timer(self, slot: _Slot) -> None:
        deadline = slot.endpoint.get_timer()
        if deadline is not None and math.isnan(deadline):
            raise ValueError(f"endpoint at {slot.addr!r} returned a NaN deadline")
        if deadline == slot.timer_when and (deadline is None or slot.timer_handle is not None):
            return  # unchanged: keep the pending entry
        if slot.timer_handle is not None:
            slot.timer_handle.cancel()
        slot.timer_gen += 1
        slot.timer_when = deadline
        slot.timer_handle = None
        if deadline is not None:
            when = max(deadline, self.now)  # a deadline in the past fires now
            slot.timer_handle = self._push(when, self._fire_timer, (slot, slot.timer_gen))

    def _fire_timer(self, slot: _Slot, gen: int) -> None:
        if gen != slot.timer_gen:
            return  # stale entry
        slot.timer_handle = None
        slot.timer_when = None
        if self.now == slot.fire_instant:
            slot.fire_count += 1
            if slot.fire_count > MAX_TIMER_FIRINGS_PER_INSTANT:
                raise RuntimeError(
                    f"timer of endpoint at {slot.addr!r} fired {slot.fire_count - 1} times "
                    f"at t={self.now!r} without the deadline moving forward"
                )
        else:
            slot.fire_instant = self.now
            slot.fire_count = 1
        slot.endpoint.handle_timer(self.now)
        self._service(slot)

    # -- links --------------------------------------------------------------

    def _record(self, when: float, src: Address, dst: Address, data: bytes, outcome: str) -> None:
        if self.trace is not None:
            self.trace.append((when, src, dst, data, outcome))

    def _send(self, src: Address, dst: Address, data: bytes) -> None:
        data = bytes(data)
        link = self._links.get((src, dst))
        if link is None:
            self.unroutable += 1
            self._record(self.now, src, dst, data, UNROUTABLE)
            return
        outcome, deliveries = link.transmit(data, self.now)
        if outcome is not None:
            self._record(self.now, src, dst, data, outcome)
            return
        for arrival, copy in deliveries:
            self._push(arrival, self._deliver, (link, copy))

    def _deliver(self, link: Link, data: bytes) -> None:
        slot = self._slots.get(link.dst)
        if slot is None:
            self.unroutable += 1
            self._record(self.now, link.src, link.dst, data, UNROUTABLE)
            return
        link.stats.delivered += 1
        link.stats.bytes_delivered += len(data)
        self._record(self.now, link.src, link.dst, data, DELIVERED)
        slot.endpoint.datagram_received(data, link.src, self.now)
        self._service(slot)

    # -- running ------------------------------------------------------------

    def _discard_cancelled(self) -> None:
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)

    def next_time(self) -> float | None:
        """Time of the next live event, or None when nothing is scheduled."""
        self._discard_cancelled()
        return self._heap[0][0] if self._heap else None

    def step(self) -> bool:
        """Run the next live event; False when there was none."""
        self._discard_cancelled()
        if not self._heap:
            return False
        when, _, handle = heapq.heappop(self._heap)
        self.now = when
        handle.cancelled = True  # ran: cancelling it later is a no-op
        handle.fn(*handle.args)
        return True

    def run(
        self,
        until: float | None = None,
        stop: Callable[[], bool] | None = None,
        max_steps: int = 10_000_000,
    ) -> None:
        """Process events in time order.

        Stops when no events remain (``now`` then advances to ``until`` if given),
        when the next event lies after ``until`` (``now`` becomes ``until``), or
        when ``stop()`` is true (checked before the first and after each step).
        Raises RuntimeError after ``max_steps`` steps.
        """
        if stop is not None and stop():
            return
        steps = 0
        while True:
            nxt = self.next_time()
            if nxt is None or (until is not None and nxt > until):
                if until is not None and until > self.now:
                    self.now = until
                return
            if steps >= max_steps:
                raise RuntimeError(f"simulation did not finish within {max_steps} steps")
            self.step()
            steps += 1
            if stop is not None and stop():
                return
