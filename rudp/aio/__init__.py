"""The asyncio adapter: UDP I/O, one timer per socket, transports, servers, streams.

It moves bytes and time between the event loop and the sans-IO core in
rudp.core; it makes no protocol decision of its own. ``udpio`` does the
socket I/O, ``driver`` drives one Endpoint per socket, ``transport`` is a
connection's ``asyncio.Transport``, ``tls`` runs TLS above it, ``streams``
holds the StreamWriter whose ``start_tls`` works on every loop, and ``api``
the public functions; ``rendezvous`` and ``holepunch`` connect peers
behind NATs; ``capture`` (``pcap=``) and ``eventlog`` (``event_log=``)
record what a socket's connections do, when asked.
"""

from __future__ import annotations

from .api import (
    Server,
    create_connection,
    create_endpoint,
    create_server,
    open_connection,
    split_options,
    start_server,
)
from .driver import EndpointProtocol
from .tls import TlsTransport, start_tls
from .holepunch import NatTraversalError, create_rendezvous_connection, open_rendezvous_connection
from .rendezvous import RendezvousError, RendezvousServer, start_rendezvous_server
from .transport import RudpTransport

__all__ = [
    "EndpointProtocol",
    "NatTraversalError",
    "RendezvousError",
    "RendezvousServer",
    "RudpTransport",
    "Server",
    "TlsTransport",
    "create_connection",
    "create_endpoint",
    "create_rendezvous_connection",
    "create_server",
    "open_connection",
    "open_rendezvous_connection",
    "split_options",
    "start_rendezvous_server",
    "start_server",
    "start_tls",
]
