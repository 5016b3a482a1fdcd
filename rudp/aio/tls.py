"""TLS over an rudp connection (or any asyncio transport), as asyncio offers it.

``TlsProtocol`` sits on the connection's transport as its protocol and runs
an ``ssl.SSLObject`` over two ``ssl.MemoryBIO``s; ``TlsTransport`` is what
the application's protocol sees. The behaviour follows CPython 3.11's
``asyncio/sslproto.py``: the same states, handshake and shutdown timeouts,
errors, extra info, flow-control marks, and by default no half-close. One
option on top (``ssl_half_close=True``): over TLS 1.3 the transport can
half-close, since there a close_notify closes only its sender's write side
(RFC 8446 §6.1): ``write_eof`` sends it and reading goes on, and a protocol
whose ``eof_received`` returns True may keep writing after the peer's. Before
1.3 a close_notify asks for an immediate close, so there is no half-close.

Why not asyncio's ``sslproto.SSLProtocol`` itself: it is private API that
changed shape between 3.10 (``data_received``, no shutdown timeout) and 3.11
(buffered protocol only, ``transport._force_close``), uvloop's ``start_tls``
refuses any transport but its own, and a fatal error during the handshake
reached the waiter as success unless the lower transport passed the
exception back. A layer of our own over ``MemoryBIO`` is one code path on
every Python >= 3.10 and on both loops, and keeps the reason for a failure
(``_fatal``) for ``connection_lost`` whatever the lower transport reports.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import ssl
from typing import Any, Iterable

logger = logging.getLogger("rudp")

#: asyncio's defaults (asyncio/constants.py).
SSL_HANDSHAKE_TIMEOUT = 60.0
SSL_SHUTDOWN_TIMEOUT = 30.0
READ_HIGH_WATER = 256 * 1024  # undecrypted bytes before the connection is paused
WRITE_HIGH_WATER = 512 * 1024  # unsent bytes before the application is paused
_MAX_READ = 256 * 1024
_LOG_LOST_WRITES = 5  # asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES

#: An SSLObject over memory BIOs wants more bytes (asyncio's SSLAgainErrors).
_AGAIN = (ssl.SSLWantReadError, ssl.SSLSyscallError)


class TlsState(enum.Enum):
    NEW = "NEW"
    HANDSHAKE = "HANDSHAKE"
    WRAPPED = "WRAPPED"
    FLUSHING = "FLUSHING"  # closing: pending data goes out before close_notify
    SHUTDOWN = "SHUTDOWN"  # close_notify sent, waiting for the peer's
    CLOSED = "CLOSED"


#: Allowed transitions (as sslproto's _set_state); anything else raises.
_TRANSITIONS: dict[TlsState, frozenset[TlsState]] = {
    TlsState.NEW: frozenset({TlsState.HANDSHAKE, TlsState.CLOSED}),
    TlsState.HANDSHAKE: frozenset({TlsState.WRAPPED, TlsState.CLOSED}),
    TlsState.WRAPPED: frozenset({TlsState.FLUSHING, TlsState.CLOSED}),
    TlsState.FLUSHING: frozenset({TlsState.SHUTDOWN, TlsState.CLOSED}),
    TlsState.SHUTDOWN: frozenset({TlsState.CLOSED}),
    TlsState.CLOSED: frozenset({TlsState.CLOSED}),
}


def _flow_limits(high: int | None, low: int | None, default_high: int) -> tuple[int, int]:
    """asyncio's add_flowcontrol_defaults: (high, low) with low = high // 4."""
    if high is None:
        high = default_high if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
    return high, low


def _check_timeout(name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{name} should be a positive number, got {value}")


def client_context(
    ssl_arg: Any, host: str | None, server_hostname: str | None,
    handshake_timeout: float | None, shutdown_timeout: float | None,
) -> tuple[ssl.SSLContext, str | None] | None:
    """The client's (context, server_hostname) from ``ssl=``, checked as
    ``loop.create_connection`` checks them; None without TLS."""
    if not ssl_arg:
        if server_hostname is not None:
            raise ValueError("server_hostname is only meaningful with ssl")
        if handshake_timeout is not None:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if shutdown_timeout is not None:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        return None
    if server_hostname is None:
        if not host:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = host
    _check_timeout("ssl_handshake_timeout", handshake_timeout)
    _check_timeout("ssl_shutdown_timeout", shutdown_timeout)
    if isinstance(ssl_arg, ssl.SSLContext):
        return ssl_arg, server_hostname or None
    if ssl_arg is not True:
        raise TypeError(f"ssl must be an ssl.SSLContext, True or None, got {ssl_arg!r}")
    context = ssl.create_default_context()  # ssl=True: verify against the system CAs
    if not server_hostname:
        context.check_hostname = False
    return context, server_hostname or None


def server_context(
    ssl_arg: Any, handshake_timeout: float | None, shutdown_timeout: float | None,
) -> ssl.SSLContext | None:
    """The server's context from ``ssl=``, checked as ``loop.create_server`` does."""
    if ssl_arg is None:
        if handshake_timeout is not None:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if shutdown_timeout is not None:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
        return None
    if not isinstance(ssl_arg, ssl.SSLContext):
        raise TypeError("ssl argument must be an SSLContext or None")
    _check_timeout("ssl_handshake_timeout", handshake_timeout)
    _check_timeout("ssl_shutdown_timeout", shutdown_timeout)
    return ssl_arg


class TlsProtocol(asyncio.Protocol):
    """The TLS record layer: the lower transport's protocol, the application
    protocol's transport (through ``TlsTransport``)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app_protocol: asyncio.BaseProtocol,
        context: ssl.SSLContext,
        waiter: asyncio.Future[None] | None,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        call_connection_made: bool = True,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        half_close: bool = False,
    ) -> None:
        _check_timeout("ssl_handshake_timeout", ssl_handshake_timeout)
        _check_timeout("ssl_shutdown_timeout", ssl_shutdown_timeout)
        self._loop = loop
        self._app = app_protocol
        self._waiter = waiter
        self._server_side = server_side
        self._handshake_timeout = (
            SSL_HANDSHAKE_TIMEOUT if ssl_handshake_timeout is None else ssl_handshake_timeout)
        self._shutdown_timeout = (
            SSL_SHUTDOWN_TIMEOUT if ssl_shutdown_timeout is None else ssl_shutdown_timeout)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._sslobj = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side,
            server_hostname=None if server_side else server_hostname)
        self._extra: dict[str, Any] = {"sslcontext": context}
        self._state = TlsState.NEW
        self._transport: asyncio.Transport | None = None
        self._app_transport = TlsTransport(self)
        # The application heard connection_made (start_tls: before we began).
        self._app_made = not call_connection_made
        self._app_eof = False
        self._app_lost = False
        self._fatal: Exception | None = None  # why we aborted, for connection_lost
        self._backlog: collections.deque[Any] = collections.deque()
        self._backlog_size = 0
        self._lost_writes = 0
        self._eof_received = False
        #: TLS 1.3's half-close offered to the application (asyncio's TLS has none).
        self._half_close = half_close
        self._write_eof_sent = False  # our close_notify is out, reading goes on (TLS 1.3)
        self._peer_write_closed = False  # the peer's close_notify came, writing goes on (TLS 1.3)
        self._lower_writing_paused = False
        self._lower_reading_paused = False
        self._app_reading_paused = False
        self._app_writing_paused = False
        self._read_high, self._read_low = _flow_limits(None, None, READ_HIGH_WATER)
        self._write_high, self._write_low = _flow_limits(None, None, WRITE_HIGH_WATER)
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._shutdown_timer: asyncio.TimerHandle | None = None

    @property
    def app_transport(self) -> TlsTransport:
        return self._app_transport

    @property
    def state(self) -> TlsState:
        return self._state

    def _set_state(self, new: TlsState) -> None:
        if new not in _TRANSITIONS[self._state]:
            raise RuntimeError(f"cannot switch TLS state from {self._state.value} to {new.value}")
        self._state = new

    # -- the lower transport's protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start the handshake (RFC 8446 §2) under its timeout."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._set_state(TlsState.HANDSHAKE)
        self._handshake_timer = self._loop.call_later(
            self._handshake_timeout, self._handshake_timed_out)
        self._do_handshake()

    def data_received(self, data: bytes) -> None:
        if self._state is TlsState.CLOSED:
            return
        self._incoming.write(data)
        self._advance()

    def eof_received(self) -> bool:
        """The peer's FIN (no more TLS records). True keeps the lower
        transport open while the application's reading is paused."""
        self._eof_received = True
        state = self._state
        if state is TlsState.HANDSHAKE:
            self._handshake_done(ConnectionResetError("connection closed during the TLS handshake"))
        elif state is TlsState.WRAPPED:
            self._set_state(TlsState.FLUSHING)
            if self._app_reading_paused:
                return True
            self._do_flush()
        elif state is TlsState.FLUSHING:
            self._do_flush()
        elif state is TlsState.SHUTDOWN:
            self._do_shutdown()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        reason = exc if exc is not None else self._fatal
        self._backlog.clear()
        self._backlog_size = 0
        self._outgoing.read()
        self._cancel_timers()
        self._app_transport.mark_closed()
        handshaking = self._state in (TlsState.NEW, TlsState.HANDSHAKE)
        self._state = TlsState.CLOSED
        self._transport = None
        if handshaking and reason is None:
            reason = ConnectionResetError("connection lost during the TLS handshake")
        self._wake_waiter(reason)
        if self._app_made and not self._app_lost:
            self._app_lost = True
            self._loop.call_soon(self._app.connection_lost, reason)

    def pause_writing(self) -> None:
        self._lower_writing_paused = True

    def resume_writing(self) -> None:
        self._lower_writing_paused = False
        self._process_outgoing()

    # -- the state machine

    def _advance(self) -> None:
        state = self._state
        try:
            if state is TlsState.HANDSHAKE:
                self._do_handshake()
            elif state is TlsState.WRAPPED:
                self._do_read()
            elif state is TlsState.FLUSHING:
                self._do_flush()
            elif state is TlsState.SHUTDOWN:
                self._do_shutdown()
        except Exception as exc:  # noqa: BLE001 - an application callback or the TLS library
            self._fatal_error(exc, "Fatal error on TLS protocol")

    def _do_handshake(self) -> None:
        try:
            self._sslobj.do_handshake()
        except _AGAIN:
            self._process_outgoing()
            return
        except ssl.SSLError as exc:
            self._handshake_done(exc)
            return
        self._handshake_done(None)

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if self._state is TlsState.HANDSHAKE:
            self._fatal_error(ConnectionAbortedError(
                f"SSL handshake is taking longer than {self._handshake_timeout} seconds: "
                "aborting the connection"))

    def _handshake_done(self, exc: Exception | None) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        peercert: Any = None
        if exc is None:
            try:
                peercert = self._sslobj.getpeercert()
            except Exception as err:  # noqa: BLE001 - reported like a handshake failure
                exc = err
        if exc is not None:
            self._handshake_failed(exc)
            return
        self._set_state(TlsState.WRAPPED)
        sslobj = self._sslobj
        self._extra.update(peercert=peercert, cipher=sslobj.cipher(),
                           compression=sslobj.compression(), ssl_object=sslobj)
        if not self._app_made:
            self._app_made = True
            self._app.connection_made(self._app_transport)
        self._wake_waiter(None)
        self._do_read()

    def _handshake_failed(self, exc: Exception) -> None:
        """The alert that says why (a certificate the peer refused, say) still
        goes out, then the connection closes; the caller gets ``exc``."""
        self._fatal = exc
        self._set_state(TlsState.CLOSED)
        transport = self._transport
        if transport is not None:
            alert = self._outgoing.read()
            if alert and not transport.is_closing():
                transport.write(alert)
            transport.close()
        self._wake_waiter(exc)
        if self._app_made and not self._app_lost:
            self._app_lost = True
            self._loop.call_soon(self._app.connection_lost, exc)

    def _do_read(self) -> None:
        if not self._records_readable():
            return
        if not self._app_reading_paused:
            self._read_app_data()
            if self._state is TlsState.CLOSED:  # the application aborted meanwhile
                return
        # Records the reads produced (a key update's reply, say), and what the
        # application wrote during a start_tls handshake, go out even while
        # its reading is paused.
        if self._backlog:
            self._do_write()
        else:
            self._process_outgoing()
        self._control_lower_reading()

    def _records_readable(self) -> bool:
        """Application data may still come: wrapped, or flushing before close_notify."""
        return self._state in (TlsState.WRAPPED, TlsState.FLUSHING)

    def _read_app_data(self) -> None:
        chunks: list[bytes] = []
        close_notify = False
        try:
            while True:
                chunk = self._sslobj.read(_MAX_READ)
                if not chunk:
                    close_notify = True
                    break
                chunks.append(chunk)
        except _AGAIN:
            pass
        except ssl.SSLZeroReturnError:  # the peer's close_notify after ours (write_eof)
            close_notify = True
        if chunks:
            self._deliver(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if close_notify and self._state is not TlsState.CLOSED:
            keep_open = self._call_eof_received()
            if self._state is TlsState.WRAPPED and keep_open and not self._write_eof_sent:
                # RFC 8446 §6.1: the peer closed its write side only; ours
                # closes when the application closes.
                self._peer_write_closed = True
            else:
                self.start_shutdown()

    def _deliver(self, data: bytes) -> None:
        app = self._app
        if isinstance(app, asyncio.BufferedProtocol):
            view = memoryview(data)
            while view:
                buf = memoryview(app.get_buffer(len(view)))
                n = min(len(buf), len(view))
                if n == 0:
                    raise RuntimeError("get_buffer() returned an empty buffer")
                buf[:n] = view[:n]
                app.buffer_updated(n)
                view = view[n:]
        else:
            app.data_received(data)  # type: ignore[attr-defined]

    def _call_eof_received(self) -> bool:
        """The application's eof_received(); True: it keeps writing (TLS 1.3 only)."""
        if self._app_made and not self._app_eof and not self._app_lost:
            self._app_eof = True
            if self._app.eof_received():  # type: ignore[attr-defined]
                if self.half_close_allowed():
                    return True
                logger.warning("returning true from eof_received() has no effect when using ssl")
        return False

    def half_close_allowed(self) -> bool:
        """Asked for (``ssl_half_close``), TLS 1.3 negotiated and the connection
        open: a close_notify closes one direction only (RFC 8446 §6.1)."""
        return (self._half_close and self._state is TlsState.WRAPPED
                and self._sslobj.version() == "TLSv1.3")

    def write_eof(self) -> None:
        """Our close_notify after what the application wrote; reading goes on
        until the peer's (RFC 8446 §6.1). After the peer's, a full close."""
        if not self.half_close_allowed():
            raise NotImplementedError("a TLS transport cannot half-close (write_eof) unless "
                                      "ssl_half_close=True and TLS 1.3 was negotiated")
        if self._write_eof_sent:
            return
        if self._peer_write_closed:
            self.start_shutdown()  # both directions are done
            return
        self._write_eof_sent = True
        try:
            self._do_write()
            # unwrap() sends close_notify, then tries once to read the peer's:
            # records already received must not be consumed there, so they
            # wait outside the BIO meanwhile and SSLObject.read() gets them.
            pending = self._incoming.read()
            try:
                self._sslobj.unwrap()
            except _AGAIN:
                pass
            self._incoming.write(pending)
            self._process_outgoing()
        except Exception as exc:  # noqa: BLE001 - the TLS library
            self._fatal_error(exc, "Fatal error on TLS protocol")

    # -- writing

    def write_appdata(self, list_of_data: Iterable[Any]) -> None:
        if self._write_eof_sent:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._state in (TlsState.FLUSHING, TlsState.SHUTDOWN, TlsState.CLOSED):
            if self._lost_writes >= _LOG_LOST_WRITES:
                logger.warning("TLS connection is closed")
            self._lost_writes += 1
            return
        for data in list_of_data:
            self._backlog.append(data)
            self._backlog_size += len(data)
        if self._state is TlsState.WRAPPED:
            try:
                self._do_write()
            except Exception as exc:  # noqa: BLE001
                self._fatal_error(exc, "Fatal error on TLS protocol")

    def _do_write(self) -> None:
        try:
            while self._backlog:
                data = self._backlog[0]
                count = self._sslobj.write(data)
                if count < len(data):
                    self._backlog[0] = memoryview(data)[count:]
                else:
                    self._backlog.popleft()
                self._backlog_size -= count
        except _AGAIN:
            pass
        self._process_outgoing()

    def _process_outgoing(self) -> None:
        transport = self._transport
        if not self._lower_writing_paused and transport is not None:
            data = self._outgoing.read()
            if data:
                transport.write(data)
        self._control_app_writing()

    # -- closing

    def start_shutdown(self) -> None:
        """Graceful close: pending data, then close_notify (RFC 8446 §6.1),
        then the peer's close_notify, then the connection closes."""
        if self._state in (TlsState.FLUSHING, TlsState.SHUTDOWN, TlsState.CLOSED):
            return
        self._app_transport.mark_closed()
        if self._state in (TlsState.NEW, TlsState.HANDSHAKE):
            self.abort(None)
            return
        self._set_state(TlsState.FLUSHING)
        self._shutdown_timer = self._loop.call_later(self._shutdown_timeout, self._shutdown_timed_out)
        self._do_flush()

    def _shutdown_timed_out(self) -> None:
        self._shutdown_timer = None
        if self._state in (TlsState.FLUSHING, TlsState.SHUTDOWN):
            self.abort(TimeoutError("SSL shutdown timed out"))

    def _do_flush(self) -> None:
        self._do_write()  # what the application wrote goes out before close_notify
        self._do_read()
        if self._state is TlsState.FLUSHING:
            self._set_state(TlsState.SHUTDOWN)
            self._do_shutdown()

    def _do_shutdown(self) -> None:
        try:
            if not self._eof_received:
                self._sslobj.unwrap()
        except _AGAIN:
            self._process_outgoing()
            return
        except ssl.SSLError as exc:
            self._shutdown_done(exc)
            return
        self._process_outgoing()
        self._call_eof_received()
        self._shutdown_done(None)

    def _shutdown_done(self, exc: Exception | None) -> None:
        if self._shutdown_timer is not None:
            self._shutdown_timer.cancel()
            self._shutdown_timer = None
        if exc is not None:
            self._fatal_error(exc)
        elif self._transport is not None:
            self._loop.call_soon(self._transport.close)

    def abort(self, exc: Exception | None) -> None:
        """Close at once; ``connection_lost`` will carry ``exc``."""
        if exc is not None and self._fatal is None:
            self._fatal = exc
        self._app_transport.mark_closed()
        if self._state is not TlsState.CLOSED:
            self._set_state(TlsState.CLOSED)
        if self._transport is not None:
            self._transport.abort()
        if exc is not None:
            self._wake_waiter(exc)

    def _fatal_error(self, exc: Exception, message: str = "Fatal error on transport") -> None:
        self.abort(exc)
        if not isinstance(exc, (OSError, asyncio.CancelledError)):
            self._loop.call_exception_handler({
                "message": message, "exception": exc,
                "transport": self._transport, "protocol": self,
            })

    def _wake_waiter(self, exc: Exception | None) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():
            return
        if exc is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(exc)

    def _cancel_timers(self) -> None:
        for timer in (self._handshake_timer, self._shutdown_timer):
            if timer is not None:
                timer.cancel()
        self._handshake_timer = self._shutdown_timer = None

    # -- flow control

    def _control_app_writing(self) -> None:
        size = self.get_write_buffer_size()
        if size >= self._write_high and not self._app_writing_paused:
            self._app_writing_paused = True
            self._call_app("pause_writing")
        elif size <= self._write_low and self._app_writing_paused:
            self._app_writing_paused = False
            self._call_app("resume_writing")

    def _call_app(self, name: str) -> None:
        try:
            getattr(self._app, name)()
        except Exception as exc:  # noqa: BLE001 - as asyncio: reported, not fatal
            self._loop.call_exception_handler({
                "message": f"protocol.{name}() failed", "exception": exc,
                "transport": self._app_transport, "protocol": self,
            })

    def _control_lower_reading(self) -> None:
        transport = self._transport
        if transport is None:
            return
        size = self._incoming.pending
        if size >= self._read_high and not self._lower_reading_paused:
            self._lower_reading_paused = True
            transport.pause_reading()
        elif size <= self._read_low and self._lower_reading_paused:
            self._lower_reading_paused = False
            transport.resume_reading()

    def get_write_buffer_size(self) -> int:
        return self._outgoing.pending + self._backlog_size

    def get_read_buffer_size(self) -> int:
        return self._incoming.pending

    def set_write_buffer_limits(self, high: int | None, low: int | None) -> None:
        self._write_high, self._write_low = _flow_limits(high, low, WRITE_HIGH_WATER)
        self._control_app_writing()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._write_low, self._write_high)

    def set_read_buffer_limits(self, high: int | None, low: int | None) -> None:
        self._read_high, self._read_low = _flow_limits(high, low, READ_HIGH_WATER)
        self._control_lower_reading()

    def get_read_buffer_limits(self) -> tuple[int, int]:
        return (self._read_low, self._read_high)

    def pause_reading(self) -> None:
        self._app_reading_paused = True

    def resume_reading(self) -> None:
        if self._app_reading_paused:
            self._app_reading_paused = False
            self._loop.call_soon(self._advance)

    def is_reading(self) -> bool:
        return not self._app_reading_paused and self._state is not TlsState.CLOSED

    # -- for TlsTransport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in self._extra:
            return self._extra[name]
        if self._transport is not None:
            return self._transport.get_extra_info(name, default)
        return default

    def set_app_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._app = protocol

    def get_app_protocol(self) -> asyncio.BaseProtocol:
        return self._app

    def __repr__(self) -> str:
        return f"<rudp TlsProtocol {self._state.value} server_side={self._server_side}>"


class TlsTransport(asyncio.Transport):
    """The application's side of a TLS connection (asyncio's
    ``_SSLProtocolTransport``); every call goes to its ``TlsProtocol``."""

    __slots__ = ("_closed", "_tls")

    def __init__(self, tls: TlsProtocol) -> None:
        super().__init__()
        self._tls = tls
        self._closed = False

    def mark_closed(self) -> None:
        self._closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``ssl_object``, ``peercert``, ``cipher``, ``compression``,
        ``sslcontext``, then the connection's own (``peername``, ``stats``, ...)."""
        return self._tls.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._tls.set_app_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._tls.get_app_protocol()

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Pending data, close_notify, then the connection closes; the
        protocol hears ``connection_lost(None)`` at the end."""
        if not self._closed:
            self._closed = True
            self._tls.start_shutdown()

    def abort(self) -> None:
        """Close at once: pending data is lost, no close_notify."""
        self._closed = True
        self._tls.abort(None)

    def is_reading(self) -> bool:
        return self._tls.is_reading()

    def pause_reading(self) -> None:
        self._tls.pause_reading()

    def resume_reading(self) -> None:
        self._tls.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._tls.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._tls.get_write_buffer_limits()

    def get_write_buffer_size(self) -> int:
        """Bytes not yet handed to the connection (plaintext and records)."""
        return self._tls.get_write_buffer_size()

    def set_read_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._tls.set_read_buffer_limits(high, low)

    def get_read_buffer_limits(self) -> tuple[int, int]:
        return self._tls.get_read_buffer_limits()

    def get_read_buffer_size(self) -> int:
        return self._tls.get_read_buffer_size()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expecting a bytes-like instance, got {type(data).__name__}")
        if data:
            self._tls.write_appdata((bytes(data) if isinstance(data, bytearray) else data,))

    def writelines(self, list_of_data: Iterable[Any]) -> None:
        self._tls.write_appdata(list_of_data)

    def write_eof(self) -> None:
        """Half-close over TLS 1.3 (close_notify, RFC 8446 §6.1); before 1.3
        NotImplementedError, as asyncio's TLS transports always raise."""
        if self._closed:
            return
        self._tls.write_eof()

    def can_write_eof(self) -> bool:
        """True once TLS 1.3 is negotiated, while the connection is open."""
        return not self._closed and self._tls.half_close_allowed()

    def __repr__(self) -> str:
        return f"<rudp TlsTransport {self._tls.state.value}>"


async def start_tls(
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    context: ssl.SSLContext,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> TlsTransport:
    """Like ``loop.start_tls``: upgrade ``transport`` in place and return the
    TLS transport ``protocol`` must use from now on. Works on any loop and
    any transport that has ``set_protocol`` and pause/resume_reading."""
    if not isinstance(context, ssl.SSLContext):
        raise TypeError(f"sslcontext is expected to be an instance of ssl.SSLContext, got {context!r}")
    if not isinstance(transport, asyncio.Transport):
        raise TypeError(f"transport {transport!r} is not supported by start_tls()")
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    tls = TlsProtocol(loop, protocol, context, waiter, server_side=server_side,
                      server_hostname=server_hostname, call_connection_made=False,
                      ssl_handshake_timeout=ssl_handshake_timeout,
                      ssl_shutdown_timeout=ssl_shutdown_timeout)
    # Paused first, so that no byte reaches the TLS layer before connection_made.
    transport.pause_reading()
    transport.set_protocol(tls)
    made = loop.call_soon(tls.connection_made, transport)
    resumed = loop.call_soon(transport.resume_reading)
    try:
        await waiter
    except BaseException:
        made.cancel()
        resumed.cancel()
        if tls.state is TlsState.NEW:
            transport.abort()
        elif tls.state is not TlsState.CLOSED:
            tls.abort(None)
        raise
    return tls.app_transport
