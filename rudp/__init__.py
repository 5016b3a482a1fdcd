"""rudp: TCP over UDP for asyncio, on a sans-IO engine (RFC 9293)."""

from __future__ import annotations

from .aio import (
    EndpointProtocol,
    NatTraversalError,
    RendezvousError,
    RudpTransport,
    Server,
    create_connection,
    create_endpoint,
    create_rendezvous_connection,
    create_server,
    open_connection,
    open_rendezvous_connection,
    start_rendezvous_server,
    start_server,
    start_tls,
)
from .core.config import Config
from .core.connection import Connection, ConnectionStateError
from .core.state import State
from .core.endpoint import Endpoint
from .core.listener import Listener

__all__ = [
    "Config",
    "Connection",
    "ConnectionStateError",
    "Endpoint",
    "EndpointProtocol",
    "Listener",
    "NatTraversalError",
    "RendezvousError",
    "RudpTransport",
    "Server",
    "State",
    "create_connection",
    "create_endpoint",
    "create_rendezvous_connection",
    "create_server",
    "open_connection",
    "open_rendezvous_connection",
    "start_rendezvous_server",
    "start_server",
    "start_tls",
]
__version__ = "0.1.0"
