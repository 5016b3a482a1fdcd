"""rudp: TCP over UDP for asyncio, on a sans-IO engine (RFC 9293)."""

from __future__ import annotations

from .config import Config
from .connection import Connection, ConnectionStateError, State
from .endpoint import Endpoint, Listener

__all__ = ["Config", "Connection", "ConnectionStateError", "Endpoint", "Listener", "State"]
__version__ = "0.1.0"
