"""The send buffer and the receive queue of one connection.

Sequence numbers here are unwrapped (plain ints that never wrap), as
everywhere inside the connection.
"""

from __future__ import annotations

from collections import deque

from .ranges import ReassemblyQueue


class SendBuffer:
    """Bytes the user wrote and the peer has not acknowledged, from ``seq`` on.

    Acknowledged bytes at the front (``dead``) are cut off in bulk: an append
    after a front delete moves the whole bytearray, which with a megabyte
    queued cost more than sending the segment. ``end`` is kept as a plain
    attribute because every send decision reads it.
    """

    __slots__ = ("data", "seq", "dead", "end")

    def __init__(self, seq: int) -> None:
        self.data = bytearray()
        self.seq = seq  # sequence number of data[0]
        self.dead = 0  # acknowledged bytes still at the front of data
        self.end = seq  # sequence number after the last byte written

    def __len__(self) -> int:
        """Bytes written but not yet acknowledged."""
        return len(self.data) - self.dead

    def append(self, data: bytes | bytearray | memoryview) -> None:
        self.data += data
        self.end = self.seq + len(self.data)

    def release(self, ack: int) -> int:
        """The peer acknowledged everything before ``ack``: free it; return how
        many bytes of data (not SYN or FIN) that freed."""
        data = self.data
        dead = self.dead
        freed = min(ack, self.end) - self.seq - dead
        if freed > 0:
            dead += freed
            if dead < len(data) >> 1:
                self.dead = dead  # mostly live: cut the dead front later
            else:  # amortized: each cut is at least half the buffer
                del data[:dead]
                self.seq += dead
                self.dead = 0
            return freed
        return 0  # an old ACK frees nothing

    def clear(self) -> None:
        """Drop everything (abort, or the connection finished)."""
        self.seq += self.dead
        self.dead = 0
        self.data = bytearray()
        self.end = self.seq


class RecvQueue:
    """In-order bytes not yet read, and the out-of-order pieces beyond them.

    In-order data is kept as the received payloads themselves: appending a
    reference costs nothing per byte, and ``read()`` copies once. Payloads
    that are views into a receive buffer (a run of segments read from one
    GRO buffer) wait in ``views`` until the run ends, then become one chunk
    in one copy (``settle``): the buffer is reused after that.
    """

    __slots__ = ("chunks", "views", "queued", "ooo", "ooo_fin", "eof", "dsack")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.views: list[memoryview] = []  # in order after chunks; valid until settled
        self.queued = 0  # bytes in chunks and views
        self.ooo = ReassemblyQueue()  # out of order, waiting for a hole to fill
        self.ooo_fin: int | None = None  # sequence number of a FIN seen ahead of time
        self.eof = False  # the peer's FIN was processed
        #: A duplicate that arrived, for the next ACK's D-SACK block (RFC 2883).
        self.dsack: tuple[int, int] | None = None

    def settle(self) -> None:
        """Copy the views into one chunk of their own (the run ended)."""
        views = self.views
        if views:
            self.chunks.append(views[0].tobytes() if len(views) == 1 else b"".join(views))
            views.clear()

    def read(self, max_bytes: int = -1) -> bytes:
        """Take up to ``max_bytes`` (all when negative) in-order bytes."""
        if self.views:
            self.settle()
        chunks = self.chunks
        queued = self.queued
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)  # chunks are bytes
        chunks.clear()
        if 0 <= max_bytes < queued:
            chunks.append(data[max_bytes:])
            data = data[:max_bytes]
        self.queued = queued - len(data)
        return data

    def read_chunk(self) -> bytes:
        """The oldest in-order chunk as it arrived (a payload, or a run's
        payloads made one): no copy, where ``read()`` joins them all."""
        if self.views:
            self.settle()
        chunks = self.chunks
        if not chunks:
            return b""
        data = chunks.popleft()
        self.queued -= len(data)
        return data

    def drop_unread(self) -> None:
        self.chunks = deque()
        self.views = []
        self.queued = 0

    def release(self) -> None:
        """A finished connection keeps nothing out of order."""
        self.ooo = ReassemblyQueue()
