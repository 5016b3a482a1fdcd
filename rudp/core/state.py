"""The connection states of RFC 9293 §3.3.2 and the transitions between them, as data.

Every state change of a connection goes through :func:`check_transition`;
a pair that is not in :data:`TRANSITIONS` is a bug in the engine, never a
peer's doing, and raises :class:`InvalidTransition` at once (as asyncio's
sslproto ``_set_state`` does). tests/test_state.py reaches every listed
pair through real segment exchanges.
"""

from __future__ import annotations

import enum

from mypy_extensions import mypyc_attr


class State(enum.Enum):
    """The eleven states of RFC 9293 §3.3.2."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN_SENT"
    SYN_RCVD = "SYN_RCVD"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN_WAIT_1"
    FIN_WAIT_2 = "FIN_WAIT_2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"

    # Members are singletons compared by identity, so the identity hash is
    # consistent; Enum's own __hash__ is Python code, run on every
    # ``state in SYNCHRONIZED`` test of the per-segment paths.
    __hash__ = object.__hash__


CLOSED = State.CLOSED
LISTEN = State.LISTEN
SYN_SENT = State.SYN_SENT
SYN_RCVD = State.SYN_RCVD
ESTABLISHED = State.ESTABLISHED
FIN_WAIT_1 = State.FIN_WAIT_1
FIN_WAIT_2 = State.FIN_WAIT_2
CLOSE_WAIT = State.CLOSE_WAIT
CLOSING = State.CLOSING
LAST_ACK = State.LAST_ACK
TIME_WAIT = State.TIME_WAIT

#: States in which both sides have exchanged SYNs (RFC 9293 §3.10.7.4).
SYNCHRONIZED = frozenset(
    {ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT}
)
#: States in which SEND is allowed (RFC 9293 §3.10.2; before ESTABLISHED it queues).
CAN_SEND = frozenset({SYN_SENT, SYN_RCVD, ESTABLISHED, CLOSE_WAIT})
#: States in which segment text is accepted (RFC 9293 §3.10.7.4, seventh).
CAN_RECEIVE_TEXT = frozenset({ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2})
#: States after our FIN was sent.
OUR_FIN_SENT = frozenset({FIN_WAIT_1, FIN_WAIT_2, CLOSING, LAST_ACK, TIME_WAIT})
#: States in which ABORT sends a RST (RFC 9293 §3.10.5).
ABORT_SENDS_RST = frozenset({SYN_RCVD, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT})

#: old state -> {new state: what causes it}. The RFC 9293 §3.3.2 diagram,
#: plus the ways out that the diagram leaves implicit (RST, ABORT, timeouts:
#: §3.10.5, §3.10.7.4 second, §3.8.3). FIN_WAIT_1 reaches TIME_WAIT through
#: FIN_WAIT_2 when one segment ACKs our FIN and carries the peer's: the fifth
#: step moves to FIN_WAIT_2 and "continues processing in that state", the
#: eighth then enters TIME_WAIT (§3.10.7.4).
TRANSITIONS: dict[State, dict[State, str]] = {
    CLOSED: {
        SYN_SENT: "active OPEN (connect)",
        LISTEN: "passive OPEN (listen)",
    },
    LISTEN: {
        SYN_RCVD: "SYN received; send SYN,ACK",
        CLOSED: "CLOSE or ABORT",
    },
    SYN_SENT: {
        ESTABLISHED: "SYN,ACK received; send ACK",
        SYN_RCVD: "SYN received (simultaneous open); send SYN,ACK",
        CLOSED: "RST, CLOSE, ABORT or SYN retries exhausted",
    },
    SYN_RCVD: {
        ESTABLISHED: "ACK of our SYN received",
        CLOSED: "RST, ABORT or SYN,ACK retries exhausted",
    },
    ESTABLISHED: {
        FIN_WAIT_1: "CLOSE; send FIN",
        CLOSE_WAIT: "FIN received",
        CLOSED: "RST, ABORT or timeout",
    },
    FIN_WAIT_1: {
        FIN_WAIT_2: "ACK of our FIN",
        CLOSING: "FIN received before the ACK of ours",
        CLOSED: "RST, ABORT or timeout",
    },
    FIN_WAIT_2: {
        TIME_WAIT: "FIN received",
        CLOSED: "RST, ABORT or FIN_WAIT_2 timeout",
    },
    CLOSE_WAIT: {
        LAST_ACK: "CLOSE; send FIN",
        CLOSED: "RST, ABORT or timeout",
    },
    CLOSING: {
        TIME_WAIT: "ACK of our FIN",
        CLOSED: "RST, ABORT or timeout",
    },
    LAST_ACK: {
        CLOSED: "ACK of our FIN, RST, ABORT or timeout",
    },
    TIME_WAIT: {
        CLOSED: "2*MSL expired (§3.10.8) or ABORT",
    },
}


@mypyc_attr(native_class=False)  # mypyc compiles no RuntimeError subclass natively
class InvalidTransition(RuntimeError):
    """The engine tried a state change that RFC 9293 does not have."""


def check_transition(old: State, new: State) -> None:
    """Raise unless ``old -> new`` is listed in :data:`TRANSITIONS`."""
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(f"{old.value} -> {new.value} is not a TCP transition")
