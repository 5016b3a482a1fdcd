"""The asyncio adapter: UDP I/O, one timer per socket, transports, servers, streams.

It moves bytes and time between the event loop and the sans-IO core in
rudp.core; it makes no protocol decision of its own.
"""

from __future__ import annotations

from .api import (
    EndpointProtocol,
    RudpTransport,
    Server,
    create_connection,
    create_endpoint,
    create_server,
    open_connection,
    split_options,
    start_server,
)

__all__ = [
    "EndpointProtocol",
    "RudpTransport",
    "Server",
    "create_connection",
    "create_endpoint",
    "create_server",
    "open_connection",
    "split_options",
    "start_server",
]
