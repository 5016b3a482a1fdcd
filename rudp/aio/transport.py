"""One rudp connection as an ``asyncio.Transport``.

Flow control follows ``asyncio.selector_events``: ``pause_writing``/
``resume_writing`` around a high/low water mark, ``pause_reading`` stops
delivery so that the receive buffer fills and the advertised window closes.
The transport moves bytes between its protocol and its connection; the
``EndpointDriver`` that owns the socket calls it when the engine has news.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..core.connection import Connection, ConnectionStateError

if TYPE_CHECKING:
    from .driver import EndpointDriver


class RudpTransport(asyncio.Transport):
    """One rudp connection as an asyncio Transport."""

    # Slotted, like asyncio's own transports' base class: one per connection.
    __slots__ = (
        "_closing", "_conn", "_eof_delivered", "_eof_written", "_extra", "_high",
        "_holding", "_lost", "_lost_pending", "_low", "_owner", "_protocol", "_reading_paused",
        "_send_buffer_limit", "_writing_paused",
        "__weakref__",
    )

    def __init__(
        self,
        owner: EndpointDriver,
        conn: Connection,
        protocol: asyncio.BaseProtocol,
        send_buffer: int,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self._owner = owner
        self._extra = extra or {}  # set by whoever opened it (e.g. "public_address")
        self._conn = conn
        self._protocol = protocol
        self._send_buffer_limit = send_buffer
        self._high = 64 * 1024
        self._low = 16 * 1024
        self._writing_paused = False
        self._reading_paused = False
        self._closing = False
        self._lost = False
        self._eof_delivered = False
        self._eof_written = False
        self._lost_pending = False
        self._holding = False  # hold_delivery

    # -- asyncio.BaseTransport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        conn = self._conn
        if name == "peername":
            return conn.addr
        if name == "sockname":
            return self._owner.sockname
        if name == "socket":
            return self._owner.socket
        if name == "stats":
            return conn.stats.as_dict()
        if name == "connection":
            return conn
        if name == "ports":
            return (conn.local_port, conn.remote_port)
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def close(self) -> None:
        """Graceful close: queued data first, then FIN (RFC 9293 §3.10.4)."""
        if self._closing or self._lost:
            return
        self._closing = True
        self._conn.close()
        self._owner.flush_now()  # the FIN leaves now, as a write's data does

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    # -- asyncio.ReadTransport

    def is_reading(self) -> bool:
        return not self._reading_paused and not self._lost

    def pause_reading(self) -> None:
        """Stop delivering data; the receive buffer fills and the window closes."""
        self._reading_paused = True

    def resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            self._owner.loop.call_soon(self.deliver)

    # -- asyncio.WriteTransport

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self.check_write_pause()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def get_write_buffer_size(self) -> int:
        """Bytes beyond the connection's send buffer (what SO_SNDBUF would hold)."""
        return max(0, self._conn.send_buffer_size - self._send_buffer_limit)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {type(data).__name__!r}")
        if self._eof_written:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._lost or self._closing:
            return  # asyncio silently drops writes on a closing transport
        if not data:
            return
        try:
            self._conn.send(data)
        except ConnectionStateError as exc:
            raise RuntimeError(str(exc)) from None
        # Like a socket's send(): segments leave now (Nagle and the windows
        # still decide how many), not one loop iteration later.
        self._owner.flush_now()
        # check_write_pause's first test, inlined: most writes stay below the mark.
        if self._conn.send_buffer_size - self._send_buffer_limit > self._high:
            self.check_write_pause()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        """Half-close: FIN after queued data; reading goes on."""
        if self._eof_written or self._lost:
            return
        self._eof_written = True
        self._conn.shutdown()
        self._owner.flush_now()

    def can_write_eof(self) -> bool:
        return True

    def abort(self) -> None:
        """Abortive close: RST, queued data discarded (RFC 9293 §3.10.5)."""
        if self._lost:
            return
        self._closing = True
        self._conn.abort()
        self._owner.kick()
        self._lose(None)

    # -- called by the EndpointDriver (not part of asyncio.Transport)

    def check_write_pause(self) -> None:
        """pause_writing above the high-water mark, resume_writing at or below
        the low one (the contract of asyncio's _FlowControlMixin)."""
        size = self.get_write_buffer_size()
        if not self._writing_paused and size > self._high:
            self._writing_paused = True
            self._owner.set_writer_paused(self, True)
            self._call_protocol("pause_writing")
        elif self._writing_paused and size <= self._low:
            self._writing_paused = False
            self._owner.set_writer_paused(self, False)
            self._call_protocol("resume_writing")

    def deliver(self) -> None:
        """Hand in-order data, then EOF, to the protocol unless reading is paused."""
        if self._lost or self._reading_paused or self._holding:
            return
        conn = self._conn
        proto = self._protocol
        while conn.readable and not self._reading_paused:
            # Chunk by chunk, as they arrived: no joining copy, and a protocol
            # that pauses reading leaves the rest queued (and the window shut).
            proto.data_received(conn.read_chunk())  # type: ignore[attr-defined]
        if conn.at_eof and not self._eof_delivered and not self._reading_paused:
            self._eof_delivered = True
            keep_open = proto.eof_received()  # type: ignore[attr-defined]
            if not keep_open:
                self.close()
        if self._lost_pending and not self._undelivered():
            self._lost_pending = False
            self._lose(None)
        self._owner.kick_if_work()  # reading reopened the window: announce it

    def hold_delivery(self) -> None:
        """Hand the protocol nothing until ``release_delivery`` (the owner's
        call: see EndpointDriver._accept)."""
        self._holding = True

    def release_delivery(self) -> None:
        self._holding = False
        self.deliver()

    def send_complete(self) -> None:
        """Everything written, and our FIN, is acknowledged: a transport that
        was closed is done."""
        if self._closing:
            self.connection_ended(None)

    def connection_ended(self, exc: Exception | None) -> None:
        """The connection is over: ``exc`` says why, None for a clean end.
        A clean end hands every received byte and the EOF to the protocol
        first (later, if reading is paused), then ``connection_lost``."""
        if exc is None and not self._lost and self._undelivered():
            self._lost_pending = True
            return
        self._lose(exc)

    # -- internals

    def _call_protocol(self, name: str) -> None:
        try:
            getattr(self._protocol, name)()
        except Exception as exc:  # user code must not break the engine pump
            self._owner.loop.call_exception_handler(
                {"message": f"protocol.{name}() failed", "exception": exc,
                 "transport": self, "protocol": self._protocol}
            )

    def _undelivered(self) -> bool:
        """Received bytes or an EOF the protocol has not been given yet."""
        conn = self._conn
        return bool(conn.readable) or (conn.at_eof and not self._eof_delivered)

    def _lose(self, exc: Exception | None) -> None:
        """End now: the protocol hears ``connection_lost(exc)`` next."""
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._owner.forget(self)
        self._owner.loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: Exception | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._owner.connection_done(self)

    def __repr__(self) -> str:
        return f"<RudpTransport {self._conn!r}>"
