"""Events a connection reports to the layer above (sans-IO outputs)."""

from __future__ import annotations

from typing import ClassVar


class Event:
    """Base class; events are small immutable values."""

    __slots__: tuple[str, ...] = ()
    #: The value's fields (repr, ==, hash): not ``__slots__``, which a compiled
    #: (mypyc) class does not have at run time.
    FIELDS: ClassVar[tuple[str, ...]] = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.FIELDS)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(
            getattr(self, k) == getattr(other, k) for k in self.FIELDS
        )

    def __hash__(self) -> int:
        return hash((type(self),) + tuple(getattr(self, k) for k in self.FIELDS))


class Connected(Event):
    """The three-way handshake finished (ESTABLISHED)."""

    __slots__ = ()


class DataReceived(Event):
    """In-order data is waiting: call ``Connection.read()``."""

    __slots__ = ()


class EofReceived(Event):
    """The peer sent FIN: no more data will arrive (half-close)."""

    __slots__ = ()


class ConnectionReset(Event):
    """The peer sent an acceptable RST (RFC 9293 §3.10.7.4)."""

    __slots__ = ("refused",)
    FIELDS = ("refused",)
    refused: bool

    def __init__(self, refused: bool = False) -> None:
        # refused: the RST answered our SYN (connection refused).
        self.refused = refused


class ConnectionError(Event):  # noqa: A001 - mirrors the builtin it maps to
    """The connection failed locally: timeout, keepalive, user timeout."""

    __slots__ = ("reason",)
    FIELDS = ("reason",)
    reason: str

    def __init__(self, reason: str) -> None:
        self.reason = reason


class SendComplete(Event):
    """Everything written, and our FIN if one was queued, is acknowledged."""

    __slots__ = ()


class Closed(Event):
    """The connection reached CLOSED or TIME_WAIT: nothing more for the user."""

    __slots__ = ()
