"""The per-socket driver: one UDP socket moves datagrams and time for one Endpoint.

It reads and sends through ``rudp.aio.udpio``, keeps one loop timer per
socket, runs the engine's output after each batch (the pump) and hands
events to the connections' transports, connect futures and servers. It
makes no protocol decision: those live in ``rudp.core``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from typing import TYPE_CHECKING, Any, Callable, Hashable

from ..core import events
from ..core.config import Config
from ..core.connection import Connection
from ..core.state import State
from ..core.endpoint import Endpoint
from ..core.listener import Listener
from . import introspect
from .capture import SocketCapture
from .capture import Target as PcapTarget
from .eventlog import EventLog
from .eventlog import Target as EventLogTarget
from .transport import RudpTransport
from .udpio import GRO_ON_BULK, CapturedUdpSocket, Received, UdpSocket, open_syn_socket

if TYPE_CHECKING:
    from .api import Server

Address = Hashable
logger = logging.getLogger("rudp")
#: A read batch this large (udpio's flush interval) may have more behind it
#: in the same readiness callback: its ACKs go at once (ACK clocking).
_FULL_BATCH = 64


def _log_state(conn: Connection, old: State, new: State) -> None:
    logger.debug(
        "%s:%s port %s->%s: %s -> %s",
        *conn.addr, conn.local_port, conn.remote_port, old.value, new.value,  # type: ignore[misc]
    )


def _time_out(fut: asyncio.Future[None]) -> None:
    """A connect timeout expired: the handshake that ``fut`` waits for failed."""
    if not fut.done():
        fut.set_exception(asyncio.TimeoutError())


def address_key(addr: Any) -> Address:
    """(host, port) for both families; IPv6 flow info and scope are not part of the key."""
    return (addr[0], addr[1])


class EndpointDriver:
    """Drives one Endpoint from one UDP socket; shared by its connections.

    Reads drain the socket and sends go out in GSO batches (``rudp.aio.udpio``):
    one engine flush per batch, which also coalesces ACKs and window updates.
    It is not an asyncio Protocol: the socket's readiness callbacks call it.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        config: Config,
        sock: socket.socket,
        *,
        own: bool,
        gso: bool = True,
        gro: bool = True,
        pcap: PcapTarget | None = None,
        event_log: EventLogTarget | None = None,
        syn_socket: bool = False,
    ) -> None:
        self.loop = loop
        self.endpoint = Endpoint(config, rng=random.SystemRandom())
        self.config = config
        self.socket = sock
        self.sockname: Any = sock.getsockname()
        # Close the socket once no connection needs it any more (a client's
        # private socket from the start; a server's once it is closed).
        self._close_when_idle = own
        self._own = own
        self._linger_until: float | None = None
        self._transports: dict[Connection, RudpTransport] = {}
        # Transports whose writers wait in drain(): checked after each pump, so
        # that the check costs nothing per idle connection.
        self._paused_writers: dict[RudpTransport, None] = {}
        self._connecting: dict[Connection, asyncio.Future[None]] = {}
        self._servers: dict[Listener, Server] = {}
        self._kicked = False
        self._kick_handle: asyncio.Handle | None = None
        self._flushing = False
        # Connections just handed data whose ACK is due now (see _pump).
        self._replies_due: list[Connection] = []
        self._segments_seen = 0  # endpoint.segments_received after the last read batch
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = loop.create_future()
        if logger.isEnabledFor(logging.DEBUG):
            self.endpoint.on_state_change = _log_state  # --verbose; off the hot path otherwise
        #: The JSON-lines event log (``event_log=``), the engine's observer.
        self.event_log: EventLog | None = None
        capture: SocketCapture | None = None
        try:
            if event_log is not None:
                self.event_log = EventLog(event_log, local=self.sockname)
                self.endpoint.observer = self.event_log
            if pcap is not None:
                capture = SocketCapture(pcap, sock)
        except BaseException:  # a file that cannot be opened: nothing is left open
            if self.event_log is not None:
                self.event_log.close()
            sock.close()
            raise
        # IPv4 addresses arrive as the (host, port) keys the endpoint uses, so
        # datagrams go straight to it; IPv6 ones lose flow info and scope first.
        receive = (
            self.endpoint.datagrams_received if sock.family == socket.AF_INET
            else self._datagrams_received
        )
        # A server's connection requests get a socket of their own (udpio.open_syn_socket).
        syn_sock = open_syn_socket(sock) if syn_socket else None
        if capture is None:
            self.udp = UdpSocket(
                loop, sock, receive, self._after_read, self.error_received,
                self._socket_closed, gso=gso, gro=GRO_ON_BULK if gro else False, syn_socket=syn_sock,
            )
        else:
            self.udp = CapturedUdpSocket(
                loop, sock, receive, self._after_read, self.error_received,
                self._socket_closed, gso=gso, gro=GRO_ON_BULK if gro else False, syn_socket=syn_sock,
                capture=capture,
            )
        self._peer = self.udp.peer
        introspect.register(self)  # listed by `rudp ss` (once per socket, weakly)

    def _datagrams_received(self, batch: list[Received], now: float) -> None:
        self.endpoint.datagrams_received([(data, (a[0], a[1])) for data, a in batch], now)

    def error_received(self, exc: Exception) -> None:
        """ECONNREFUSED on a connected socket is an ICMP port unreachable from
        its peer. The engine decides which connections end and how
        (``Endpoint.unreachable``); here a pending connect fails with
        ConnectionRefusedError and a transport ends, cleanly or with
        ConnectionResetError, as the engine reports."""
        if not isinstance(exc, ConnectionRefusedError) or self._peer is None:
            return
        for conn, clean in self.endpoint.unreachable(address_key(self._peer)):
            fut = self._connecting.pop(conn, None)
            if fut is not None and not fut.done():
                fut.set_exception(
                    ConnectionRefusedError(f"connection to {conn.addr} refused (port unreachable)")
                )
            tr = self._transports.get(conn)
            if tr is not None:
                tr.connection_ended(None if clean else ConnectionResetError("peer unreachable"))
        self.kick()

    def _socket_closed(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        err = ConnectionAbortedError("the UDP socket was closed")
        for fut in self._connecting.values():
            if not fut.done():
                fut.set_exception(err)
        for tr in list(self._transports.values()):
            tr.connection_ended(err)
        if self.event_log is not None:
            self.event_log.close()
        if not self._closed.done():
            self._closed.set_result(None)

    # -- the engine pump

    def kick(self) -> None:
        """Schedule one flush for this loop iteration (coalesces ACKs and writes)."""
        if not self._kicked:
            self._kicked = True
            self._kick_handle = self.loop.call_soon(self._flush)

    def _kick_last(self) -> None:
        """kick(), behind every callback scheduled so far. A flush that an
        earlier write or read already scheduled would run before the replies
        a delivery just woke, and send the ACKs they were to carry alone."""
        if self._kick_handle is not None:
            self._kick_handle.cancel()
        self._kicked = True
        self._kick_handle = self.loop.call_soon(self._flush)

    def flush_now(self) -> None:
        """Send what the engine has now (a write's segments), unless the pump
        is running (then it picks the work up before it returns). Protocol
        callbacks are left to the scheduled pump: like asyncio's transports,
        ``write()`` never calls back into the protocol."""
        if self._flushing or self.udp.is_closing():
            return
        ep = self.endpoint
        self.udp.send(ep.batches_to_send(self.loop.time()))
        self._arm_timer()
        if ep.has_work:
            self.kick()

    def _flush(self) -> None:
        self._kicked = False
        self._kick_handle = None
        self.endpoint.release_held()
        self._flushing = True
        try:
            self._pump(False)
        finally:
            self._flushing = False

    def _after_read(self) -> None:
        """The pump after a batch of received datagrams. A short batch drained
        the socket: ACKs due now may wait for the replies it woke (``_pump``)."""
        received = self.endpoint.segments_received
        hold = received - self._segments_seen < _FULL_BATCH
        self._segments_seen = received
        self._flushing = True
        try:
            self._pump(hold)
        finally:
            self._flushing = False

    def _pump(self, hold_acks: bool) -> None:
        ep = self.endpoint
        udp = self.udp
        now = self.loop.time()
        replies_due = self._replies_due
        replies_due.clear()
        for _ in range(64):  # bounded, to stay fair to the rest of the loop
            evs = ep.poll_events()
            for conn, ev in evs:
                try:
                    self._dispatch(conn, ev)
                except Exception as exc:  # noqa: BLE001 - a protocol callback failed
                    self._protocol_failed(conn, exc)
            if replies_due:
                if hold_acks:
                    # Protocols were handed data whose ACK (a window update
                    # or a FIN's, Connection.ack_may_wait) is due now. A
                    # reply written at once comes from a callback this
                    # delivery scheduled: their output waits for the flush
                    # after those callbacks, so that the ACK rides on the
                    # reply's first segment instead of a datagram of its own
                    # (RFC 9293 §3.8.6.3: an ACK may be delayed; Linux's
                    # quick ACKs go out with the reply too). write() sends at
                    # once, so a reply leaves no later than without this;
                    # other connections' output and writes are not held.
                    for conn in replies_due:
                        ep.hold_output(conn)
                    self._kick_last()
                replies_due.clear()
            udp.send(ep.batches_to_send(now))
            if not ep.has_work:
                break  # callbacks above woke nothing new
        if self._paused_writers:
            for tr in list(self._paused_writers):
                tr.check_write_pause()
        if self.event_log is not None:
            self.event_log.flush()
        self._arm_timer()
        if self._close_when_idle and not self._transports and not self._connecting:
            # The socket lives until its connections need nothing more; how
            # long it lingers for those in TIME_WAIT is the engine's call. A
            # server's clients use connected sockets that hear ICMP; a client's
            # own socket talks to a server's, which does not.
            if self._linger_until is None:
                self._linger_until = ep.linger_deadline(now, peers_hear_icmp=not self._own)
                if self._linger_until is not None and self._linger_until > now:
                    self.loop.call_at(self._linger_until, self.kick)
            if self._linger_until is not None and now >= self._linger_until:
                self.close()
        if ep.has_work:
            # Work left after the bounded rounds, or woken by the callbacks
            # after them (resume_writing, say), goes in the next flush.
            self.kick()

    def _arm_timer(self) -> None:
        """One loop timer per socket, re-armed lazily: a deadline that moved
        later (an RTO restarted by an ACK, a delayed ACK sent early) keeps the
        armed timer, which then fires early, finds nothing due and re-arms."""
        when = self.endpoint.get_timer()
        if when == self._timer_at:
            return
        if self._timer is not None and (when is None or self._timer_at <= when):  # type: ignore[operator]
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when is not None:
            self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.endpoint.handle_timer(self.loop.time())
        self._flush()

    def _dispatch(self, conn: Connection, ev: events.Event) -> None:
        tr = self._transports.get(conn)
        kind = type(ev)  # the two per-segment kinds first, by identity
        if kind is events.DataReceived or kind is events.EofReceived:
            if tr is not None:
                tr.deliver()
                if conn.ack_may_wait:
                    self._replies_due.append(conn)
        elif kind is events.SendComplete:
            if tr is not None:
                tr.send_complete()
        elif isinstance(ev, events.Connected):
            fut = self._connecting.pop(conn, None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(None)
                else:
                    conn.abort()  # the caller gave up (timeout or cancel)
            elif conn.listener is not None:
                self._accept(conn)
        elif isinstance(ev, events.ConnectionReset):
            self._fail(conn, tr, ConnectionRefusedError("connection refused") if ev.refused
                       else ConnectionResetError("connection reset by peer"))
        elif isinstance(ev, events.ConnectionError):
            self._fail(conn, tr, TimeoutError(f"rudp connection failed: {ev.reason}")
                       if "timeout" in ev.reason
                       else ConnectionAbortedError(f"rudp connection failed: {ev.reason}"))
        elif isinstance(ev, events.Closed):
            if tr is not None:
                tr.connection_ended(None)
            fut = self._connecting.pop(conn, None)
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionAbortedError("connection closed during handshake"))

    def _protocol_failed(self, conn: Connection, exc: Exception) -> None:
        """User code called for ``conn`` raised: as asyncio's own transports do
        (``_fatal_error``), report it to the loop's exception handler and abort
        that connection; the pump goes on for every other one."""
        tr = self._transports.get(conn)
        self.loop.call_exception_handler({
            "message": "rudp: a protocol callback raised; the connection is aborted",
            "exception": exc, "transport": tr, "protocol": tr.get_protocol() if tr else None,
        })
        conn.abort()
        self._fail(conn, tr, exc)

    def _fail(self, conn: Connection, tr: RudpTransport | None, exc: Exception) -> None:
        fut = self._connecting.pop(conn, None)
        if fut is not None and not fut.done():
            fut.set_exception(exc)
        if tr is not None:
            tr.connection_ended(exc)

    def _accept(self, conn: Connection) -> None:
        listener = conn.listener
        assert isinstance(listener, Listener)
        server = self._servers.get(listener)
        accepted = listener.accept()
        if server is None or accepted is None:
            conn.abort()
            return
        protocol = server.protocol_factory()
        tr = RudpTransport(self, accepted, protocol, server.send_buffer)
        self._transports[accepted] = tr
        server.attach(tr)
        protocol.connection_made(tr)
        if accepted.readable or accepted.at_eof:
            # Data came with the handshake's last ACK (a peer that sends its
            # first data with it, or whose pure ACK was lost and whose data
            # completed the handshake): the protocol gets it after the
            # callbacks that connection_made scheduled (a stream handler's
            # first step), as asyncio's socket transports read only from the
            # next iteration on. A handler that starts TLS at once then finds
            # the ClientHello on its TLS transport, not in the plain StreamReader.
            tr.hold_delivery()  # the pump's DataReceived would deliver at once
            # Its output (the ACK of that data) follows the delivery: the
            # window is open by then, and the ACK may ride on the reply.
            self.endpoint.hold_output(accepted)
            self.loop.call_soon(self._deliver_accepted, accepted, tr)

    def _deliver_accepted(self, conn: Connection, tr: RudpTransport) -> None:
        try:
            tr.release_delivery()
        except Exception as exc:  # noqa: BLE001 - as in _pump: a protocol callback failed
            self._protocol_failed(conn, exc)
        if conn.ack_may_wait:  # the reply carries it, as in _pump
            self.endpoint.hold_output(conn)
        self._kick_last()  # after the wake-ups the delivery scheduled (see _pump)

    # -- called by transports and servers

    def kick_if_work(self) -> None:
        """Schedule a flush if the engine has work (a read reopened the window,
        say) that no running pump will pick up before it returns."""
        if not self._flushing and self.endpoint.has_work:
            self.kick()

    def set_writer_paused(self, tr: RudpTransport, paused: bool) -> None:
        """Watch a transport whose writer waits in drain(): paused ones are
        checked after each pump, so that idle connections cost nothing."""
        if paused:
            self._paused_writers[tr] = None
        else:
            self._paused_writers.pop(tr, None)

    def forget(self, tr: RudpTransport) -> None:
        """The transport's connection is over: route no more events to it."""
        self._paused_writers.pop(tr, None)
        self._transports.pop(tr.get_extra_info("connection"), None)

    def connection_done(self, tr: RudpTransport) -> None:
        """The protocol heard connection_lost: the servers let go of it."""
        for server in self._servers.values():
            server.detach(tr)
        self.kick()

    def add_server(self, listener: Listener, server: Server) -> None:
        """Accepted connections of ``listener`` go to ``server``."""
        self._servers[listener] = server

    def close_listener(self, listener: Listener) -> None:
        """Stop accepting on ``listener`` (the engine resets what it had queued)."""
        self.endpoint.close_listener(listener)
        self.kick()

    def close_when_idle(self) -> None:
        """Close the socket once no connection needs it any more."""
        self._close_when_idle = True
        self.kick()

    # -- opening

    async def open(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        addr: Address,
        port: int,
        *,
        config: Config,
        send_buffer: int,
        connect_timeout: float | None,
        local_port: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[RudpTransport, asyncio.BaseProtocol]:
        conn = self.endpoint.connect(addr, port, self.loop.time(), local_port=local_port, config=config)
        fut: asyncio.Future[None] = self.loop.create_future()
        self._connecting[conn] = fut
        self.kick()
        # One timer on the future itself: asyncio.wait_for(shield(...)) would
        # add a task, a second future and their callbacks to every connect.
        timer = (None if connect_timeout is None
                 else self.loop.call_later(connect_timeout, _time_out, fut))
        try:
            await fut
        except asyncio.TimeoutError:
            self._connecting.pop(conn, None)
            conn.abort()
            self.kick()
            raise TimeoutError(f"rudp handshake with {addr}:{port} timed out") from None
        except BaseException:
            self._connecting.pop(conn, None)
            conn.abort()
            self.kick()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        protocol = protocol_factory()
        tr = RudpTransport(self, conn, protocol, send_buffer, extra)
        self._transports[conn] = tr
        protocol.connection_made(tr)
        tr.deliver()
        return tr, protocol

    def close(self) -> None:
        self.udp.close()

    async def wait_closed(self) -> None:
        await self._closed


#: The driver's former name, kept because ``rudp.EndpointProtocol`` is public API
#: (it never was an asyncio Protocol).
EndpointProtocol = EndpointDriver
