"""Small applications that run over rudp endpoints inside the simulator.

Everything here is deterministic: data comes from seeded generators, the
simulator owns the clock, and no wall-clock time is ever consulted.

Building blocks:

* :class:`Net` - a :class:`~rudp.tools.sim.Simulator` plus hosts (an
  :class:`~rudp.core.endpoint.Endpoint` and a :class:`Router` that hands each
  connection's events to its application), and a log of every state change.
* :class:`StreamApp` - one configurable application: writes a byte string
  (all at once, or in chunks as the send buffer drains), reads and verifies
  what arrives (SHA-256, exact order, no extra bytes), optionally paced
  (a slow reader), and closes or half-closes according to its policy.
  :func:`bulk_sender`, :func:`sink`, :func:`slow_reader` and
  :func:`half_close_client` are presets; :class:`EchoServer` and
  :class:`ReplyServer` are servers.
* :class:`RawHost` - a bare simulated host that sends hand-made datagrams and
  ignores what it gets (spoofed SYN sources).
* :func:`run_transfer` - one client, one server, one transfer; returns a
  :class:`Result` with everything a test wants to assert on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from typing import Any, Callable, Iterable

from rudp.core import events
from rudp.core.config import Config
from rudp.core.connection import (
    CLOSE_WAIT,
    CLOSED,
    ESTABLISHED,
    SYN_RCVD,
    SYN_SENT,
    TIME_WAIT,
    Connection,
    State,
)
from rudp.core.endpoint import Endpoint
from rudp.tools.sim import Address, LinkConfig, LinkStats, Simulator
from rudp.core.wire import SYN, Segment, encode

CLIENT: Address = ("10.0.0.1", 5000)
SERVER: Address = ("10.0.0.2", 6000)
PORT = 80

_CAN_SEND = (SYN_SENT, SYN_RCVD, ESTABLISHED, CLOSE_WAIT)

#: Each is called with every Endpoint the helpers here make (tests/test_observer.py
#: attaches its recorders so): a hook, since a compiled Endpoint's methods cannot
#: be replaced at run time.
ENDPOINT_HOOKS: list[Callable[[Endpoint], None]] = []


def new_endpoint(config: Config, **kw: Any) -> Endpoint:
    """``Endpoint(config, **kw)``, passed to each of :data:`ENDPOINT_HOOKS`."""
    ep = Endpoint(config, **kw)
    for hook in ENDPOINT_HOOKS:
        hook(ep)
    return ep

Transition = tuple[float, Connection, State, State]


def payload(size: int, seed: int = 0) -> bytes:
    """``size`` deterministic pseudo-random bytes."""
    return random.Random(f"payload-{seed}").randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- apps


class App:
    """Base application bound to one connection; subclasses override ``on_*``."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.sim: Simulator | None = None
        self.conn: Connection | None = None
        self.events: list[tuple[float, events.Event]] = []
        self.errors: list[events.Event] = []
        self.connected_at: float | None = None
        self.eof_at: float | None = None
        self.closed_at: float | None = None

    # plumbing --------------------------------------------------------------
    @property
    def now(self) -> float:
        assert self.sim is not None
        return self.sim.now

    def attach(self, sim: Simulator, conn: Connection) -> None:
        self.sim = sim
        self.conn = conn
        self.on_attach()

    def handle(self, ev: events.Event) -> None:
        self.events.append((self.now, ev))
        if isinstance(ev, events.Connected):
            self.connected_at = self.now
            self.on_connected()
        elif isinstance(ev, events.DataReceived):
            self.on_data()
        elif isinstance(ev, events.EofReceived):
            self.eof_at = self.now
            self.on_eof()
        elif isinstance(ev, events.SendComplete):
            self.on_send_complete()
        elif isinstance(ev, (events.ConnectionReset, events.ConnectionError)):
            self.errors.append(ev)
            self.on_error(ev)
        elif isinstance(ev, events.Closed):
            self.closed_at = self.now
            self.on_closed()

    def event_types(self) -> list[str]:
        return [type(ev).__name__ for _, ev in self.events]

    # hooks -----------------------------------------------------------------
    def on_attach(self) -> None: ...
    def on_connected(self) -> None: ...
    def on_data(self) -> None: ...
    def on_eof(self) -> None: ...
    def on_send_complete(self) -> None: ...
    def on_error(self, ev: events.Event) -> None: ...
    def on_closed(self) -> None: ...


class StreamApp(App):
    """Write ``send`` and verify that exactly ``expect`` arrives, in order.

    write:        "all" hands everything to ``send()`` at once; "chunked" keeps
                  at most ``high_water`` bytes in the send buffer, topping it up
                  on every event and every ``poll`` seconds of simulated time.
    early:        start writing in SYN_SENT (before the handshake completes).
    when_written: after the last byte was handed over: "close", "shutdown" or None.
    close_on_eof: close() once the peer's FIN arrived, everything was read and
                  everything was written.
    read_limit / read_interval: a slow reader - read at most ``read_limit``
                  bytes every ``read_interval`` seconds, never on DataReceived.
    """

    def __init__(
        self,
        send: bytes = b"",
        expect: bytes | None = b"",
        *,
        write: str = "chunked",
        chunk: int = 16384,
        high_water: int = 65536,
        poll: float = 0.005,
        early: bool = False,
        when_written: str | None = "close",
        close_on_eof: bool = True,
        read_limit: int | None = None,
        read_interval: float = 0.1,
        name: str = "",
    ) -> None:
        super().__init__(name)
        if write not in ("all", "chunked"):
            raise ValueError(write)
        if when_written not in ("close", "shutdown", None):
            raise ValueError(when_written)
        self.send_data = send
        self.expect = expect
        self.write = write
        self.chunk = chunk
        self.high_water = high_water
        self.poll = poll
        self.early = early
        self.when_written = when_written
        self.close_on_eof = close_on_eof
        self.read_limit = read_limit
        self.read_interval = read_interval
        # progress
        self.written = 0
        self.written_all_at: float | None = None
        self.send_complete_at: float | None = None
        self.received = 0
        self.received_all_at: float | None = None  # when the last expected byte was read
        self.reads = 0
        self.max_read = 0
        self.order_ok = True
        self.first_bad_offset: int | None = None
        self._sha = hashlib.sha256()
        self._closed_by_app = False
        self._poll_handle: Any = None
        self._poll_delay = poll  # backs off while the send buffer does not drain
        self._poll_level = 0
        self._tick_handle: Any = None
        self.max_readable = 0  # largest conn.readable seen by the app
        self.max_send_buffer = 0

    # status ------------------------------------------------------------------
    @property
    def digest(self) -> str:
        return self._sha.hexdigest()

    @property
    def sha_ok(self) -> bool:
        return self.expect is not None and self.digest == sha256(self.expect)

    @property
    def all_written(self) -> bool:
        return self.written >= len(self.send_data)

    @property
    def all_read(self) -> bool:
        """EOF seen and every byte before it consumed."""
        return self.eof_at is not None and self.conn is not None and self.conn.readable == 0

    @property
    def done(self) -> bool:
        """Everything expected arrived intact, followed by EOF."""
        return self.all_read and self.order_ok and (
            self.expect is None or self.received == len(self.expect)
        )

    # writing -----------------------------------------------------------------
    def on_attach(self) -> None:
        if self.early:
            self._pump()

    def on_connected(self) -> None:
        self._pump()
        self._drain()

    def on_send_complete(self) -> None:
        self.send_complete_at = self.now
        self._pump()

    def _alive(self) -> bool:
        return self.conn is not None and self.conn.state is not CLOSED and not self.errors

    def _pump(self) -> None:
        conn = self.conn
        assert conn is not None
        if conn.state not in _CAN_SEND or not self._alive():
            return
        total = len(self.send_data)
        if self.written < total:
            if self.write == "all":
                conn.send(self.send_data[self.written :])
                self.written = total
            else:
                view = memoryview(self.send_data)
                while self.written < total and conn.send_buffer_size < self.high_water:
                    n = min(self.chunk, total - self.written)
                    conn.send(view[self.written : self.written + n])
                    self.written += n
            self.max_send_buffer = max(self.max_send_buffer, conn.send_buffer_size)
        if self.written >= total:
            if self.all_written and self.written_all_at is None and conn.state is not SYN_SENT:
                # (a close() in SYN_SENT would delete the TCB, RFC 9293 §3.10.4)
                self._written_all()  # also when there was nothing to write
        elif self._poll_handle is None:
            self._poll_level = conn.send_buffer_size
            self._poll_handle = self.sim.call_later(self._poll_delay, self._poll_tick)  # type: ignore[union-attr]

    def _poll_tick(self) -> None:
        self._poll_handle = None
        conn = self.conn
        if conn is not None and conn.send_buffer_size >= self._poll_level:
            self._poll_delay = min(self._poll_delay * 2, 1.0)  # stalled: poll less often
        else:
            self._poll_delay = self.poll
        if self._alive():
            self._pump()

    def _written_all(self) -> None:
        self.written_all_at = self.now
        conn = self.conn
        assert conn is not None
        if self.when_written == "shutdown":
            conn.shutdown()
        elif self.when_written == "close":
            self._close()
        self._maybe_close()

    def _close(self) -> None:
        if not self._closed_by_app and self.conn is not None and self.conn.state is not CLOSED:
            self._closed_by_app = True
            self.conn.close()

    def _maybe_close(self) -> None:
        if self.close_on_eof and self.all_read and self.all_written:
            self._close()

    # reading -----------------------------------------------------------------
    def on_data(self) -> None:
        self._drain()

    def on_eof(self) -> None:
        self._drain()
        self._maybe_close()

    def _drain(self) -> None:
        conn = self.conn
        assert conn is not None
        self.max_readable = max(self.max_readable, conn.readable)
        if self.read_limit is not None:
            if self._tick_handle is None and conn.readable:
                self._tick_handle = self.sim.call_later(self.read_interval, self._read_tick)  # type: ignore[union-attr]
            return
        self.consume(conn.read())

    def _read_tick(self) -> None:
        self._tick_handle = None
        conn = self.conn
        assert conn is not None and self.read_limit is not None
        self.max_readable = max(self.max_readable, conn.readable)
        self.consume(conn.read(self.read_limit))
        if conn.readable and conn.state is not CLOSED:
            self._tick_handle = self.sim.call_later(self.read_interval, self._read_tick)  # type: ignore[union-attr]
        self._maybe_close()

    def consume(self, data: bytes) -> None:
        """Account for ``data`` just read: hash it and check it against ``expect``."""
        if not data:
            return
        self.reads += 1
        self.max_read = max(self.max_read, len(data))
        off = self.received
        if self.expect is not None and self.order_ok:
            want = self.expect[off : off + len(data)]
            if want != data:
                self.order_ok = False
                bad = next((i for i, (a, b) in enumerate(zip(want, data)) if a != b), len(want))
                self.first_bad_offset = off + bad
        self._sha.update(data)
        self.received += len(data)
        if self.expect is not None and self.received >= len(self.expect) and self.received_all_at is None:
            self.received_all_at = self.now
        self.on_consumed(data)

    def on_consumed(self, data: bytes) -> None:
        """Hook for subclasses (the echo server sends the data back)."""


def bulk_sender(data: bytes, *, write: str = "chunked", **kw: Any) -> StreamApp:
    """Send ``data`` then close(); expects nothing back."""
    kw.setdefault("when_written", "close")
    return StreamApp(data, b"", write=write, **kw)


def sink(expect: bytes | None, **kw: Any) -> StreamApp:
    """Read everything, verify it, close() after the peer's FIN."""
    kw.setdefault("when_written", None)
    return StreamApp(b"", expect, **kw)


def slow_reader(expect: bytes | None, k: int, t: float, **kw: Any) -> StreamApp:
    """A sink that reads at most ``k`` bytes every ``t`` seconds."""
    kw.setdefault("when_written", None)
    return StreamApp(b"", expect, read_limit=k, read_interval=t, **kw)


def half_close_client(data: bytes, reply: bytes | None, **kw: Any) -> StreamApp:
    """Send ``data``, shutdown() (FIN), keep reading the reply until the peer's FIN."""
    kw.setdefault("when_written", "shutdown")
    kw.setdefault("close_on_eof", False)
    return StreamApp(data, reply, **kw)


class EchoServer(StreamApp):
    """Send back everything it reads; close() after the peer's FIN once all is echoed."""

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("when_written", None)
        super().__init__(b"", None, **kw)
        self.echoed = 0

    def on_consumed(self, data: bytes) -> None:
        conn = self.conn
        assert conn is not None
        if conn.state in _CAN_SEND:
            conn.send(data)
            self.echoed += len(data)

    @property
    def all_written(self) -> bool:  # the echo is written as it is read
        return True


class ReplyServer(StreamApp):
    """Read the whole request (until FIN), then write ``reply(request)`` and close()."""

    def __init__(self, reply: Callable[[bytes], bytes], **kw: Any) -> None:
        kw.setdefault("when_written", "close")
        kw.setdefault("close_on_eof", False)
        super().__init__(b"", None, **kw)
        self.reply = reply
        self.request = bytearray()
        self._replied = False

    @property
    def all_written(self) -> bool:
        return self._replied and self.written >= len(self.send_data)

    def on_consumed(self, data: bytes) -> None:
        self.request += data

    def on_eof(self) -> None:
        super().on_eof()
        if not self._replied:
            self._replied = True
            self.send_data = self.reply(bytes(self.request))
            self._pump()


# ----------------------------------------------------------------------- network


class Router:
    """The simulator's ``on_event`` for one endpoint: events go to the right app.

    Passive connections get an app from ``factory()`` on their Connected event,
    and are taken off the listener's accept queue (the application accepted).
    """

    def __init__(self, sim: Simulator, factory: Callable[[], App] | None = None) -> None:
        self.sim = sim
        self.factory = factory
        self.apps: dict[Connection, App] = {}
        self.accepted: list[Connection] = []
        self.orphans: list[tuple[Connection, events.Event]] = []

    def add(self, conn: Connection, app: App) -> App:
        self.apps[conn] = app
        app.attach(self.sim, conn)
        return app

    def __call__(self, conn: Connection, ev: events.Event) -> None:
        app = self.apps.get(conn)
        if app is None:
            if self.factory is not None and conn.passive and isinstance(ev, events.Connected):
                listener = conn.listener
                queue = getattr(listener, "accept_queue", None)
                if queue is not None and conn in queue:
                    queue.remove(conn)
                self.accepted.append(conn)
                app = self.add(conn, self.factory())
            else:
                self.orphans.append((conn, ev))
                return
        app.handle(ev)


@dataclasses.dataclass
class Host:
    addr: Address
    endpoint: Endpoint
    router: Router
    net: "Net"

    def connect(self, addr: Address, port: int, app: App, *, config: Config | None = None) -> Connection:
        """Active open now (call from inside a simulator action or before running)."""
        conn = self.endpoint.connect(addr, port, self.net.sim.now, config=config)
        self.router.add(conn, app)
        self.net.sim.service(self.addr)
        return conn

    @property
    def apps(self) -> list[App]:
        return list(self.router.apps.values())


class Net:
    """A simulator with hosts, links and a log of every connection state change."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.sim = Simulator(seed)
        self.hosts: dict[Address, Host] = {}
        self.transitions: list[Transition] = []

    def host(
        self,
        addr: Address,
        config: Config | None = None,
        *,
        factory: Callable[[], App] | None = None,
        isn: Callable[[float, Address, int, int], int] | None = None,
        seed: int | None = None,
    ) -> Host:
        if seed is None:
            seed = int.from_bytes(hashlib.sha256(repr((self.seed, addr)).encode()).digest()[:4], "big")
        ep = new_endpoint(config or Config(), seed=seed, isn=isn)
        ep.on_state_change = self._log
        router = Router(self.sim, factory)
        self.sim.add_endpoint(addr, ep, router)
        h = Host(addr, ep, router, self)
        self.hosts[addr] = h
        return h

    def _log(self, conn: Connection, old: State, new: State) -> None:
        self.transitions.append((self.sim.now, conn, old, new))

    def link(self, a: Address, b: Address, config: LinkConfig, back: LinkConfig | None = None) -> None:
        self.sim.connect(a, b, config, back)

    def history(self, conn: Connection) -> list[tuple[float, State, State]]:
        return [(t, old, new) for t, c, old, new in self.transitions if c is conn]

    def cut(self, a: Address, b: Address) -> None:
        """The peer vanishes: everything on both directions is lost from now on."""
        for src, dst in ((a, b), (b, a)):
            link = self.sim.link(src, dst)
            link.config = dataclasses.replace(link.config, loss=1.0)


class RawHost:
    """A SimEndpoint that sends queued raw datagrams and swallows what arrives."""

    def __init__(self) -> None:
        self.outbox: list[tuple[bytes, Address]] = []
        self.received: list[bytes] = []

    def send(self, data: bytes, dst: Address) -> None:
        self.outbox.append((data, dst))

    def datagram_received(self, data: bytes, addr: Address, now: float) -> None:
        self.received.append(data)

    def handle_timer(self, now: float) -> None:
        pass

    def get_timer(self) -> float | None:
        return None

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        out, self.outbox = self.outbox, []
        return out

    def poll_events(self) -> list[tuple[Any, Any]]:
        return []


def syn_datagram(src_port: int, dst_port: int, seq: int, *, checksum: bool = True) -> bytes:
    """A plain SYN with MSS, window scale, SACK-permitted and timestamps."""
    seg = Segment(src_port, dst_port, seq & 0xFFFFFFFF, 0, SYN, 65535, b"", 1400, 7, True, (), (1, 0))
    return encode(seg, checksum)


# ------------------------------------------------------------------ run_transfer


@dataclasses.dataclass
class Result:
    """What happened in one :func:`run_transfer`."""

    seed: int
    size: int
    reply_size: int
    sent: int  # bytes the client handed to send()
    received: int  # bytes the server read
    sha_ok: bool
    order_ok: bool
    first_bad_offset: int | None
    reply_received: int
    reply_ok: bool
    client_state: State
    server_state: State | None
    client_stats: dict[str, int]
    server_stats: dict[str, int]
    client_events: list[str] = dataclasses.field(repr=False)
    server_events: list[str] = dataclasses.field(repr=False)
    client_history: list[tuple[float, State, State]] = dataclasses.field(repr=False)
    server_history: list[tuple[float, State, State]] = dataclasses.field(repr=False)
    errors: list[events.Event]
    sim_time: float
    done_at: float | None  # server read the last byte
    started_at: float
    forward: LinkStats  # client -> server
    back: LinkStats  # server -> client
    client_counters: dict[str, int]
    server_counters: dict[str, int]
    max_buffered: dict[str, int]  # max of readable + out-of-order bytes per side
    max_send_buffer: int  # client's largest send_buffer_size
    client: StreamApp = dataclasses.field(repr=False)
    server: StreamApp | None = dataclasses.field(repr=False)
    net: Net = dataclasses.field(repr=False)

    @property
    def ok(self) -> bool:
        """Every byte arrived exactly once and in order, both ways, and no error."""
        return (
            not self.errors
            and self.sent == self.size
            and self.received == self.size
            and self.sha_ok
            and self.order_ok
            and self.reply_received == self.reply_size
            and self.reply_ok
        )

    @property
    def goodput_bps(self) -> float:
        if self.done_at is None or self.done_at <= self.started_at:
            return 0.0
        return self.size * 8 / (self.done_at - self.started_at)

    def summary(self) -> str:
        return (
            f"seed={self.seed} size={self.size} recv={self.received} sha_ok={self.sha_ok} "
            f"order_ok={self.order_ok} reply={self.reply_received}/{self.reply_size} "
            f"client={self.client_state.value} server={getattr(self.server_state, 'value', None)} "
            f"errors={self.errors} t={self.sim_time:.3f} "
            f"client_path={states_path(self.client_history)} "
            f"server_path={states_path(self.server_history)} "
            f"client_events={_squash(self.client_events)} server_events={_squash(self.server_events)}"
        )


def _squash(names: list[str]) -> list[str]:
    """Event names with runs collapsed: ['DataReceived x12', ...]."""
    out: list[str] = []
    for name in names:
        if out and out[-1].split(" x")[0] == name:
            head, _, n = out[-1].partition(" x")
            out[-1] = f"{head} x{int(n or 1) + 1}"
        else:
            out.append(name)
    return out


def _buffered(conn: Connection) -> int:
    ooo = getattr(conn, "_ooo", None)
    return conn.readable + (ooo.nbytes if ooo is not None else 0)


def run_transfer(
    seed: int,
    link_config: LinkConfig | None = None,
    size: int = 100_000,
    config: Config = Config(),
    *,
    link_back: LinkConfig | None = None,
    server_config: Config | None = None,
    write: str = "chunked",
    early: bool = False,
    reply_size: int = 0,
    slow: tuple[int, float] | None = None,
    isn: Callable[[float, Address, int, int], int] | None = None,
    until: float = 7200.0,
    max_steps: int = 5_000_000,
    data: bytes | None = None,
    monitor: bool = True,
    trace: bool = False,
) -> Result:
    """Client sends ``size`` bytes to a server (and the server ``reply_size``
    bytes back, concurrently); both close; run until both are CLOSED.

    Unidirectional (``reply_size == 0``): the client close()s after writing, so
    it closes first and should end TIME_WAIT -> CLOSED; the server close()s
    after the FIN and should end LAST_ACK -> CLOSED. Bidirectional: both
    shutdown() after writing and close() after reading the peer's FIN.
    ``slow=(k, t)``: the server reads at most k bytes every t seconds.
    """
    link_config = link_config or LinkConfig()
    data = payload(size, seed) if data is None else data
    size = len(data)
    reply = payload(reply_size, seed + 1_000_003)
    net = Net(seed)
    sim = net.sim
    if trace:
        sim.trace = []
    bidir = reply_size > 0
    when = "shutdown" if bidir else "close"

    def make_server() -> App:
        if slow is not None:
            return StreamApp(reply, data, write=write, when_written=("shutdown" if bidir else None),
                             read_limit=slow[0], read_interval=slow[1], name="server")
        return StreamApp(reply, data, write=write, when_written=("shutdown" if bidir else None),
                         name="server")

    client_host = net.host(CLIENT, config, isn=isn, seed=seed * 2 + 1)
    server_host = net.host(SERVER, server_config or config, factory=make_server, isn=isn, seed=seed * 2 + 2)
    net.link(CLIENT, SERVER, link_config, link_back)
    server_host.endpoint.listen(PORT)
    client_app = StreamApp(data, reply, write=write, early=early, when_written=when, name="client")
    holder: dict[str, Connection] = {}
    sim.call_at(0.0, lambda: holder.__setitem__("conn", client_host.connect(SERVER, PORT, client_app)))
    sim.run(until=0.0)
    cconn = holder["conn"]
    max_buf = {"client": 0, "server": 0}

    def server_app() -> StreamApp | None:
        apps = server_host.router.apps
        return next(iter(apps.values()), None) if apps else None  # type: ignore[return-value]

    def stop() -> bool:
        if monitor:
            b = _buffered(cconn)
            if b > max_buf["client"]:
                max_buf["client"] = b
            s = server_app()
            if s is not None and s.conn is not None:
                b = _buffered(s.conn)
                if b > max_buf["server"]:
                    max_buf["server"] = b
        if cconn.state is not CLOSED:
            return False
        s = server_app()
        return s is None or (s.conn is not None and s.conn.state is CLOSED)

    sim.run(until=until, stop=stop, max_steps=max_steps)
    srv = server_app()
    sconn = srv.conn if srv is not None else None
    errors = list(client_app.errors) + (list(srv.errors) if srv is not None else [])
    return Result(
        seed=seed,
        size=size,
        reply_size=reply_size,
        sent=client_app.written,
        received=srv.received if srv is not None else 0,
        sha_ok=bool(srv is not None and srv.sha_ok),
        order_ok=bool(srv is not None and srv.order_ok),
        first_bad_offset=srv.first_bad_offset if srv is not None else None,
        reply_received=client_app.received,
        reply_ok=client_app.sha_ok and client_app.order_ok,
        client_state=cconn.state,
        server_state=sconn.state if sconn is not None else None,
        client_stats=cconn.stats.as_dict(),
        server_stats=sconn.stats.as_dict() if sconn is not None else {},
        client_events=client_app.event_types(),
        server_events=srv.event_types() if srv is not None else [],
        client_history=net.history(cconn),
        server_history=net.history(sconn) if sconn is not None else [],
        errors=errors,
        sim_time=sim.now,
        done_at=srv.received_all_at if srv is not None else None,
        started_at=0.0,
        forward=sim.link(CLIENT, SERVER).stats,
        back=sim.link(SERVER, CLIENT).stats,
        client_counters=dict(client_host.endpoint.counters),
        server_counters=dict(server_host.endpoint.counters),
        max_buffered=max_buf,
        max_send_buffer=client_app.max_send_buffer,
        client=client_app,
        server=srv,
        net=net,
    )


def states_path(history: Iterable[tuple[float, State, State]]) -> list[str]:
    """The sequence of states a connection went through, starting with the first old one."""
    path: list[str] = []
    for _, old, new in history:
        if not path:
            path.append(old.value)
        path.append(new.value)
    return path


def rst_at(trace: list[Any] | None, dst: Address, when: float) -> bool:
    """Whether a RST was delivered to ``dst`` at time ``when`` (needs ``sim.trace``)."""
    from rudp.tools.sim import DELIVERED
    from rudp.core.wire import RST, DecodeError, decode

    for t, _, d, data, outcome in trace or ():
        if t == when and d == dst and outcome == DELIVERED:
            try:
                if decode(data).flags & RST:
                    return True
            except DecodeError:
                pass
    return False


def closed_per_rfc(history: list[tuple[float, State, State]], msl: float) -> str | None:
    """Check an orderly close (RFC 9293 §3.6): None if fine, else what is wrong.

    The side whose FIN went first (through FIN_WAIT_1) must pass TIME_WAIT and
    reach CLOSED no sooner than 2*MSL later; the side that received the FIN
    first (CLOSE_WAIT) must go LAST_ACK -> CLOSED without TIME_WAIT.
    """
    path = states_path(history)
    if not path or path[-1] != "CLOSED":
        return f"did not end CLOSED: {path}"
    if "CLOSE_WAIT" in path:
        if "TIME_WAIT" in path or path[-2] != "LAST_ACK":
            return f"passive close went wrong: {path}"
        return None
    if "FIN_WAIT_1" not in path:
        return f"no FIN was sent: {path}"
    if path[-2] != "TIME_WAIT":
        return f"active close did not pass TIME_WAIT: {path}"
    entered = [t for t, _, new in history if new is TIME_WAIT][-1]
    left = history[-1][0]
    if left - entered < 2 * msl - 1e-9:
        return f"TIME_WAIT lasted {left - entered} < 2*MSL={2 * msl}: {path}"
    return None


def ping_pong_trace(seed: int, rounds: int, config: Config, link: LinkConfig) -> list[Any]:
    """Request/response: the client sends 64 bytes, the server echoes them, the
    client sends again on the echo (each data segment ACKs all in flight),
    ``rounds`` times, then both close. Returns the simulator's trace."""
    sim = Simulator(seed)
    sim.trace = []
    client, server = new_endpoint(config, seed=seed), new_endpoint(config, seed=seed + 1)
    left = [rounds]

    def on_client(conn: Any, ev: events.Event) -> None:
        if isinstance(ev, events.Connected):
            conn.send(b"p" * 64)
        elif isinstance(ev, events.DataReceived) and conn.readable >= 64:
            conn.read(64)
            left[0] -= 1
            if left[0]:
                conn.send(b"p" * 64)
            else:
                conn.close()

    def on_server(conn: Any, ev: events.Event) -> None:
        if isinstance(ev, events.DataReceived):
            conn.send(conn.read())
        elif isinstance(ev, events.EofReceived):
            conn.close()

    sim.add_endpoint(CLIENT, client, on_client)
    sim.add_endpoint(SERVER, server, on_server)
    sim.connect(CLIENT, SERVER, link)
    server.listen(PORT)
    client.connect(SERVER, PORT, 0.0)
    sim.service(CLIENT)
    sim.run(until=600)
    assert left[0] == 0
    return list(sim.trace)
