"""Batched UDP I/O on a non-blocking socket, for the asyncio adapter.

GSO and GRO are on by default where the kernel has them (probed per socket;
``gso=False`` and ``gro=False`` turn them off). A packet capture taken on
the sending host (or on lo or a veth) sees a GSO batch as one large UDP
datagram holding many segments, which tshark cannot dissect as TCP; the
in-process capture (``CapturedUdpSocket``, the ``pcap=`` option) writes one
record per segment instead, and a capture on another host sees one segment
per datagram (unless its NIC coalesces for a GRO socket: ``gro=False``).

Plain asyncio UDP costs one event-loop callback and one syscall per datagram
(measured here: ~143k datagrams/s on uvloop, ~26k/s on the default loop). Here a readiness callback drains
the socket until it would block, and sends go out in batches: with Linux UDP
GSO (``UDP_SEGMENT``) a run of equal-sized datagrams to one address is one
``sendmsg`` call, each datagram still its own segment on the wire. Where GSO
is missing the same code falls back to one ``sendto`` per datagram. Works on
any loop with ``add_reader``/``add_writer`` (the default loop and uvloop).

With Linux UDP GRO (``UDP_GRO``, 5.0+) the kernel hands over a run of
datagrams from one sender as one super-datagram and says its segment size
in a control message; reads then go into one preallocated buffer
(``recvmsg_into``), never a new bytes object per datagram, and a
super-datagram is split into one memoryview per datagram, without copying,
all sharing the sender's address. The views are only valid until the
receiver returns: the buffer is read into again next time, so the engine
copies what it keeps (``rudp.core.wire.decode`` makes the payload its own
bytes, the one copy a segment's data gets).
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import ipaddress
import select
import socket
import struct
from collections import deque
import time
from typing import Any, Callable, Sequence, cast

from ..core.wire import SegmentRun
from .capture import SocketCapture

SOL_UDP = getattr(socket, "SOL_UDP", 17)
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)  # linux/udp.h
UDP_GRO = getattr(socket, "UDP_GRO", 104)  # linux/udp.h
_GSO_MAX_BYTES = 65000  # one GSO super-datagram must fit an IP packet
_GSO_MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS in the kernel
_READ_BATCH = 512  # datagrams per readiness callback, to stay fair to other work
_FLUSH_EVERY = 64  # run the engine's output this often inside a batch (ACK clocking)
_QUEUE_LIMIT = 8192  # datagrams held while the socket buffer is full; beyond: dropped
_SEGMENT_SIZE = struct.Struct("=H")
#: What a send with UDP_SEGMENT fails with where the kernel or device has no GSO.
_GSO_REFUSED = (errno.EINVAL, errno.ENOPROTOOPT, errno.EIO, errno.EOPNOTSUPP)
_GRO_SIZE = struct.Struct("=i")  # the UDP_GRO control message: the segment size, an int
#: UdpSocket's ``gro``: turn GRO on once a full read batch came from at most
#: _BULK_SENDERS addresses (the adapter's default).
GRO_ON_BULK = "on_bulk"
_BULK_SENDERS = 4
_RECV_ROOM = 65536  # room for one read: the largest datagram or GRO super-datagram
_RECV_BUFFER = 4 * _RECV_ROOM  # reads per hand-over to the engine, at most
_CMSG_SPACE = socket.CMSG_SPACE(_GRO_SIZE.size) if hasattr(socket, "CMSG_SPACE") else 0
_MSG_TRUNC = int(getattr(socket, "MSG_TRUNC", 0x20))  # a plain int: & on the MsgFlag enum runs Python code
SO_ATTACH_REUSEPORT_CBPF = 51  # asm-generic/socket.h (Linux 4.5+)
#: The classic BPF program that steers a server's datagrams between its two
#: sockets (``open_syn_socket``): the UDP payload is a TCP header, and one
#: whose flags byte (offset 13) has SYN without ACK, RST or FIN goes to the
#: group's second socket (index 1), everything else to the first. A datagram
#: too short to have that byte ends the program with 0: the first socket.
_SYN_STEERING = (
    (0x30, 0, 0, 13),  # ldb [13]       the flags byte
    (0x54, 0, 0, 0x17),  # and #0x17    ACK | RST | SYN | FIN
    (0x15, 0, 1, 0x02),  # jeq #SYN
    (0x06, 0, 0, 1),  # ret #1          a connection request
    (0x06, 0, 0, 0),  # ret #0          the rest
)
SO_MEMINFO = 55  # asm-generic/socket.h: the socket's memory counters, SK_MEMINFO_DROPS last
_MEMINFO = struct.Struct("9I")
_SOCK_FILTER = struct.Struct("HBBI")
_SOCK_FPROG = struct.Struct("HP")  # struct sock_fprog: length, then a pointer (aligned)
#: Receive buffer of the SYN socket (the kernel doubles it): ~1,200 SYNs on
#: Linux, a backlog like the kernel's own, so that under a flood a SYN waits
#: milliseconds in it (~100 ms in a 4 MB buffer; measured: the share of SYNs
#: that get in is the same).
SYN_SOCKET_BUFFER = 512 << 10

#: Receive buffers not in use: a readiness callback takes one and gives it
#: back when it returns, so a process needs one per callback running at once
#: (one per thread with a loop), not one per socket.
_free_buffers: list[bytearray] = []

Datagram = bytes | memoryview  # a memoryview is valid only until the receiver returns
#: A datagram read and its sender; with GRO a run of equal-sized ones (``_gro_runs``).
Received = tuple["Datagram | SegmentRun", Any]
Receiver = Callable[[list[Received], float], None]  # what was read, and now
Addressed = tuple[Datagram, Any]  # one datagram and where it goes
#: What ``UdpSocket.send`` takes: datagrams, and runs of equal-sized segments
#: in one buffer (``Endpoint.batches_to_send``).
Outgoing = tuple["Datagram | SegmentRun", Any]


def split_runs(items: Sequence[Outgoing]) -> list[Addressed]:
    """``items`` with each run split into its segments, as memoryviews of
    the run's buffer (no copy)."""
    out: list[Addressed] = []
    for data, addr in items:
        if isinstance(data, SegmentRun):
            out.extend(_run_segments(data, 0, addr))
        else:
            out.append((data, addr))
    return out


def _run_segments(run: SegmentRun, first: int, addr: Any) -> list[Addressed]:
    """Segments ``first`` and on of ``run``, as memoryviews of its buffer."""
    view = memoryview(run.buf)
    size = run.size
    return [(view[o : o + size], addr) for o in range(first * size, run.count * size, size)]


def _waiting_probe(sock: socket.socket) -> Callable[[int], object]:
    """``probe(0)`` is truthy when a datagram (or an error) waits on
    ``sock``: one ``poll(2)``, ~0.4 us and ~1.5k instructions here, where a
    ``recvfrom`` that finds nothing raises BlockingIOError for ~1.2 us and
    ~8.8k instructions (the exception, its errno text). A wake-up with one
    datagram, as in a request-response exchange or a handshake, then costs
    one read. Without poll(2) the probe always says yes (read to EAGAIN)."""
    if not hasattr(select, "poll"):
        return lambda timeout: True
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return poller.poll


class UdpSocket:
    """A non-blocking UDP socket driven by loop readiness callbacks."""

    #: GRO super-datagrams are handed over as a `SegmentRun` of their full
    #: segments (else as one view per segment, as a capture wants them).
    _gro_runs = True

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        receive: Receiver,
        after_batch: Callable[[], None],
        on_error: Callable[[OSError], None],
        on_close: Callable[[], None],
        *,
        gso: bool = False,
        gro: bool | str = False,
        syn_socket: socket.socket | None = None,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self._receive = receive
        self._after_batch = after_batch
        self._on_error = on_error
        self._on_close = on_close
        self.peer: Any = None
        try:
            self.peer = sock.getpeername()
        except OSError:
            pass
        self._queue: deque[Addressed] = deque()
        self._writing = False
        self._closed = False
        self.gso = gso and gso_supported(sock)
        # GRO: True turns it on now; GRO_ON_BULK when reads show bulk (below).
        self.gro = gro is True and enable_gro(sock)
        self._gro_on_bulk = gro == GRO_ON_BULK
        self.stats = {"sent": 0, "send_calls": 0, "received": 0, "recv_calls": 0, "truncated": 0,
                      "queued": 0, "send_dropped": 0, "syn_socket_received": 0}
        #: The socket the kernel gives connection requests (``open_syn_socket``):
        #: read here, never sent from, closed with ``sock``.
        self.syn_socket = syn_socket
        self._waiting = _waiting_probe(sock)
        self._syn_waiting = _waiting_probe(syn_socket) if syn_socket is not None else self._waiting
        loop.add_reader(sock.fileno(), self._on_readable)
        if syn_socket is not None:
            loop.add_reader(syn_socket.fileno(), self._on_syn_readable)

    # -- receiving

    def _on_readable(self) -> None:
        """Drain the socket in batches of up to ``_FLUSH_EVERY`` datagrams, each
        handed over at once and followed by one engine flush (ACK clocking).
        With GRO the reads go into a receive buffer (``_drain_gro``); without
        it one ``recvfrom`` per datagram costs less (measured here: ~2.6 us
        against ~3.5 us for ``recvmsg_into`` and a view). So with
        ``GRO_ON_BULK`` GRO waits for a full batch from at most
        ``_BULK_SENDERS`` addresses: datagrams from many senders (clients'
        handshakes, a SYN flood) are never coalesced and would only pay the
        dearer read (a flood's SYNs cost ~17% more server CPU each)."""
        if self.gro:
            buf = _free_buffers.pop() if _free_buffers else bytearray(_RECV_BUFFER)
            try:
                self._drain_gro(memoryview(buf))
            finally:
                _free_buffers.append(buf)
            return
        self.stats["received"] += self._read_batches(self.sock, _READ_BATCH)

    def _on_syn_readable(self) -> None:
        """Connection requests: one batch per callback, so that a flood of
        them leaves the loop to the main socket between batches."""
        count = self._read_batches(cast(socket.socket, self.syn_socket), _FLUSH_EVERY)
        self.stats["received"] += count
        self.stats["syn_socket_received"] += count

    def _read_batches(self, sock: socket.socket, limit: int) -> int:
        """Up to ``limit`` datagrams from ``sock``, one ``recvfrom`` each,
        handed over ``_FLUSH_EVERY`` at a time; how many were read."""
        recvfrom = sock.recvfrom
        waiting = self._waiting if sock is self.sock else self._syn_waiting
        total = 0
        while total < limit:
            batch: list[Received] = []
            append = batch.append
            error: OSError | None = None
            try:
                append(recvfrom(65536))
                if waiting(0):  # more than one: read until the socket is empty
                    for _ in range(_FLUSH_EVERY - 1):
                        append(recvfrom(65536))
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:  # e.g. ICMP port unreachable on a connected socket
                error = exc
            total += len(batch)
            if self._hand_over(batch, error):
                break
            if len(batch) < _FLUSH_EVERY or self._closed:
                break
            if self._gro_on_bulk and sock is self.sock and len({addr for _, addr in batch}) <= _BULK_SENDERS:
                # Bulk from few senders: coalescing pays from the next read on
                # (turning GRO on is safe at any time; off would not be: a
                # super-datagram already queued would then read as one).
                self._gro_on_bulk = False
                self.gro = enable_gro(self.sock)
                break
        self.stats["recv_calls"] += total
        return total

    def _hand_over(self, batch: list[Received], error: OSError | None) -> bool:
        """A read batch to the engine and its flush, then the read's error if
        there was one (True: stop reading)."""
        if batch:
            self._receive(batch, self.loop.time())
            self._after_batch()
        if error is not None:
            self._on_error(error)
            return True
        return False

    def _drain_gro(self, view: memoryview) -> None:
        """``_on_readable`` with GRO: reads into ``view``; a super-datagram's
        full segments become one `SegmentRun` over their part of it (one view
        per segment for a capture, ``_gro_runs``) and a shorter last one a
        view, handed over (at most ``_FLUSH_EVERY`` items at a time) before
        their part of the buffer is reused."""
        recvmsg_into = self.sock.recvmsg_into
        stats = self.stats
        total = calls = segments = 0  # segments: those in runs beyond one per run
        limit = _RECV_BUFFER - _RECV_ROOM
        while total < _READ_BATCH:
            batch: list[Received] = []
            append = batch.append
            error: OSError | None = None
            full = False
            offset = 0
            try:
                while len(batch) < _FLUSH_EVERY:
                    if offset > limit:
                        full = True  # no room for another read: hand these over first
                        break
                    n, ancillary, flags, addr = recvmsg_into([view[offset : offset + _RECV_ROOM]], _CMSG_SPACE)
                    calls += 1
                    if flags & _MSG_TRUNC:
                        stats["truncated"] += 1  # larger than any segment we take: a counted drop
                        continue
                    end = offset + n
                    size = 0
                    for level, kind, data in ancillary:
                        if level == SOL_UDP and kind == UDP_GRO and len(data) >= _GRO_SIZE.size:
                            size = _GRO_SIZE.unpack_from(data)[0]
                    if 0 < size < n:
                        # A GRO super-datagram: equal segments of ``size`` bytes,
                        # the last one maybe shorter, all from ``addr``. The
                        # full ones go to the engine as one run (taken in one
                        # step when they are in-order data, Endpoint.
                        # datagrams_received), else one view each.
                        whole = n // size
                        if whole > 1 and self._gro_runs:
                            append((SegmentRun(view[offset : offset + whole * size], size, whole), addr))
                            segments += whole - 1
                            if n % size:
                                append((view[offset + whole * size : end], addr))
                        else:
                            for start in range(offset, end, size):
                                append((view[start : min(start + size, end)], addr))
                    else:
                        append((view[offset:end], addr))
                    offset = end
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:  # e.g. ICMP port unreachable on a connected socket
                error = exc
            total += len(batch)
            if self._hand_over(batch, error):
                break
            if (len(batch) < _FLUSH_EVERY and not full) or self._closed:
                break
        stats["received"] += total + segments
        stats["recv_calls"] += calls

    # -- sending

    def send(self, datagrams: Sequence[Outgoing]) -> None:
        """Send datagrams and segment runs in order: equal-sized datagrams
        are batched with GSO, and a run's buffer goes out as it is."""
        if self._closed or not datagrams:
            return
        if self._queue:
            self._enqueue(datagrams, 0)
            return
        start = 0  # the first item not sent yet
        for i, (data, addr) in enumerate(datagrams):
            if isinstance(data, SegmentRun):
                if start < i:
                    stop = self._send_datagrams(cast("Sequence[Addressed]", datagrams[start:i]))
                    if stop >= 0:
                        self._enqueue(datagrams, start + stop)
                        return
                stop = self._send_run(data, addr)
                if stop >= 0:
                    rest: list[Outgoing] = []
                    rest += _run_segments(data, stop, addr)
                    rest += datagrams[i + 1 :]
                    self._enqueue(rest, 0)
                    return
                start = i + 1
        if start == 0:
            stop = self._send_datagrams(cast("Sequence[Addressed]", datagrams))
        elif start < len(datagrams):
            stop = self._send_datagrams(cast("Sequence[Addressed]", datagrams[start:]))
        else:
            return
        if stop >= 0:
            self._enqueue(datagrams, start + stop)

    def _send_run(self, run: SegmentRun, addr: Any) -> int:
        """Send ``run``: slices of its buffer within the GSO limits per
        ``sendmsg``, else one ``send`` per segment. -1 when all went out, else
        the index of the first segment the full socket did not take."""
        size = run.size
        count = run.count
        per_call = min(_GSO_MAX_SEGMENTS, _GSO_MAX_BYTES // size) if self.gso else 1
        stats = self.stats
        view = memoryview(run.buf)
        k = 0  # the next segment of the run
        while k < count and not self._closed:
            n = min(per_call, count - k)
            chunk = view[k * size : (k + n) * size]
            try:
                self._send_call(chunk, size if n > 1 else 0, addr)
            except (BlockingIOError, InterruptedError):
                return k
            except OSError as exc:
                if n > 1 and exc.errno in _GSO_REFUSED:
                    self.gso = False  # no UDP GSO here: one datagram per call from now on
                    per_call = 1
                    continue
                self._on_error(exc)  # these datagrams are lost; the others may go out
                k += n
                continue
            stats["send_calls"] += 1
            stats["sent"] += n
            k += n
        return -1

    def _send_call(self, buf: bytes | memoryview, gso_size: int, addr: Any) -> None:
        """One send call: ``buf`` as a GSO batch of ``gso_size``-byte
        datagrams (the last may be shorter), or as one datagram (0)."""
        sock = self.sock
        if gso_size:
            ancillary = [(SOL_UDP, UDP_SEGMENT, _SEGMENT_SIZE.pack(gso_size))]
            if self.peer is not None:
                sock.sendmsg([buf], ancillary)
            else:
                sock.sendmsg([buf], ancillary, 0, addr)
        elif self.peer is not None:
            sock.send(buf)
        else:
            sock.sendto(buf, addr)

    def _send_datagrams(self, datagrams: Sequence[Addressed]) -> int:
        """Send datagrams in order, equal-sized runs of them batched with GSO.
        -1 when all went out, else the index of the first one the full
        socket did not take."""
        if not self.gso:
            return self._send_each(datagrams)
        i = 0
        count = len(datagrams)
        stats = self.stats
        while i < count:
            data, addr = datagrams[i]
            size = len(data)
            j = i + 1
            if self.gso:
                limit = min(count, i + _GSO_MAX_SEGMENTS, i + _GSO_MAX_BYTES // max(size, 1))
                while j < limit:
                    nxt, nxt_addr = datagrams[j]
                    if nxt_addr != addr or len(nxt) > size:
                        break
                    j += 1
                    if len(nxt) < size:
                        break  # only the last segment of a GSO batch may be shorter
            try:
                if j - i > 1:
                    self._send_call(b"".join([d for d, _ in datagrams[i:j]]), size, addr)
                else:
                    self._send_call(data, 0, addr)
            except (BlockingIOError, InterruptedError):
                return i
            except OSError as exc:
                if j - i > 1 and exc.errno in _GSO_REFUSED:
                    self.gso = False  # no UDP GSO here: one datagram per call from now on
                    continue
                self._on_error(exc)
                i = j
                continue
            stats["send_calls"] += 1
            stats["sent"] += j - i
            i = j
        return -1

    #: How queued datagrams go out once the socket is writable: this class's
    #: own ``send``, so that a subclass recording what is handed to ``send``
    #: (``CapturedUdpSocket``) records each datagram once.
    _resend = send

    def _send_each(self, datagrams: Sequence[Addressed]) -> int:
        """One syscall per datagram: the loop of ``_send_datagrams`` without
        GSO's checks; -1 or the index of the first datagram not taken."""
        sock = self.sock
        connected = self.peer is not None
        count = len(datagrams)
        i = 0  # index of the next datagram
        sent = 0
        stop = -1
        while i < count and not self._closed:
            try:
                if connected:
                    send = sock.send
                    while i < count:
                        send(datagrams[i][0])
                        i += 1
                        sent += 1
                else:
                    sendto = sock.sendto
                    while i < count:
                        data, addr = datagrams[i]
                        sendto(data, addr)
                        i += 1
                        sent += 1
            except (BlockingIOError, InterruptedError):
                stop = i
                break
            except OSError as exc:
                self._on_error(exc)  # this datagram is lost; the others may go out
                i += 1
        stats = self.stats
        stats["send_calls"] += sent
        stats["sent"] += sent
        return stop

    def _enqueue(self, datagrams: Sequence[Outgoing], start: int) -> None:
        """Hold ``datagrams[start:]`` (runs split into their segments) until
        the socket is writable; beyond the queue's limit they are dropped."""
        room = _QUEUE_LIMIT - len(self._queue)
        todo = split_runs(datagrams[start:])
        if len(todo) > room:
            self.stats["send_dropped"] += len(todo) - room  # like a full NIC queue
            todo = todo[:room]
        self._queue.extend(todo)
        self.stats["queued"] += len(todo)
        if not self._writing and not self._closed:
            self._writing = True
            self.loop.add_writer(self.sock.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        queue = self._queue
        batch = list(queue)
        queue.clear()
        self._writing = False
        self.loop.remove_writer(self.sock.fileno())
        self._resend(batch)  # re-queues (and re-arms) what still does not fit

    def kernel_drops(self) -> dict[str, int]:
        """Datagrams the kernel dropped because a receive buffer was full
        (``SO_MEMINFO``'s drop count, Linux 3.4+): ``socket_drops`` for the
        socket and, with a SYN socket, ``syn_socket_drops``. Empty where the
        kernel does not say."""
        out: dict[str, int] = {}
        for name, sock in (("socket_drops", self.sock), ("syn_socket_drops", self.syn_socket)):
            if sock is None or sock.fileno() < 0:
                continue
            try:
                out[name] = _MEMINFO.unpack(sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, _MEMINFO.size))[8]
            except (OSError, struct.error):
                pass
        return out

    # -- lifecycle

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        fd = self.sock.fileno()
        self.loop.remove_reader(fd)
        if self._writing:
            self.loop.remove_writer(fd)
        self._queue.clear()
        if self.syn_socket is not None:
            self.loop.remove_reader(self.syn_socket.fileno())
            self.syn_socket.close()
        self.sock.close()
        self.loop.call_soon(self._on_close)


class CapturedUdpSocket(UdpSocket):
    """A ``UdpSocket`` that also writes each datagram it sends or receives to
    a packet capture (``rudp.aio.capture``): one record per segment, GSO or
    not. A separate class, so that a socket without a capture does no extra
    work per datagram."""

    _gro_runs = False  # one record per segment: hand them over one by one

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        receive: Receiver,
        after_batch: Callable[[], None],
        on_error: Callable[[OSError], None],
        on_close: Callable[[], None],
        *,
        gso: bool = False,
        gro: bool | str = False,
        syn_socket: socket.socket | None = None,
        capture: SocketCapture,
    ) -> None:
        self.capture = capture

        def received(batch: list[Received], now: float) -> None:
            capture.received(cast("list[Addressed]", batch), time.time())  # no runs here: _gro_runs
            receive(batch, now)

        super().__init__(loop, sock, received, after_batch, on_error, on_close, gso=gso, gro=gro,
                         syn_socket=syn_socket)

    def send(self, datagrams: Sequence[Outgoing]) -> None:
        """Send, then record what the socket took or queued, one record per
        segment (a run's too); datagrams dropped because its queue was full
        (the tail of the list) are left out."""
        if self.is_closing() or not datagrams:
            return
        dropped = self.stats["send_dropped"]
        super().send(datagrams)
        dropped = self.stats["send_dropped"] - dropped
        sent = [(bytes(data), addr) for data, addr in split_runs(datagrams)]
        self.capture.sent(sent[: len(sent) - dropped] if dropped else sent, time.time())

    def close(self) -> None:
        super().close()
        self.capture.close()


def gso_supported(sock: socket.socket) -> bool:
    """Whether the kernel offers UDP GSO on this socket (Linux 4.18+): the
    ``UDP_SEGMENT`` option reads without error. A send that fails anyway
    turns GSO off for the socket (``UdpSocket.send``)."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not hasattr(sock, "sendmsg"):
        return False
    try:
        sock.getsockopt(SOL_UDP, UDP_SEGMENT)
    except OSError:
        return False
    return True


def enable_gro(sock: socket.socket) -> bool:
    """Turn on UDP GRO for this socket where the kernel has it (Linux 5.0+):
    reads may then return super-datagrams that ``UdpSocket`` splits. False,
    and the socket unchanged, where the option is refused."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not _CMSG_SPACE \
            or not hasattr(sock, "recvmsg_into"):
        return False
    try:
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
    except OSError:
        return False
    return True


def open_syn_socket(sock: socket.socket, buffer_size: int = SYN_SOCKET_BUFFER) -> socket.socket | None:
    """A second socket on ``sock``'s address that the kernel gives the pure
    SYNs (``_SYN_STEERING``, an ``SO_REUSEPORT`` group with a steering
    program), or None where that cannot be had (then ``sock`` gets them all,
    unchanged).

    Why: under a SYN flood the socket buffer fills and the kernel drops what
    arrives, whatever it is. With connection requests in a buffer of their
    own, the flood can only crowd out other SYNs: the ACK that completes a
    handshake (a SYN cookie's) and the segments of established connections
    go to ``sock``, which the adapter reads first. The engine sees the same
    datagrams either way; steering only decides which queue may overflow.

    ``sock`` was bound without ``SO_REUSEPORT``, so a port already in use
    still fails its bind; it sets the option only now, for its partner (a
    process of the same user could then join the group too: the kernel
    allows that to same-user sockets only)."""
    if not hasattr(socket, "SO_REUSEPORT") or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    syn = socket.socket(sock.family, socket.SOCK_DGRAM)
    try:
        syn.setblocking(False)
        if sock.family == socket.AF_INET6:
            syn.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY,
                           sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
        try:
            syn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_size)
        except OSError:  # pragma: no cover - platform limits
            pass
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        syn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        syn.bind(sock.getsockname())
        code = b"".join(_SOCK_FILTER.pack(*ins) for ins in _SYN_STEERING)
        program = ctypes.create_string_buffer(code, len(code))
        syn.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF,
                       _SOCK_FPROG.pack(len(_SYN_STEERING), ctypes.addressof(program)))
    except OSError:
        syn.close()  # datagrams it took before closing are lost, as any UDP loss
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 0)
        except OSError:  # pragma: no cover
            pass
        return None
    return syn


def numeric_family(host: str) -> int:
    """AF_INET or AF_INET6 if `host` is a numeric address, else 0 (a name).

    A numeric address needs no resolver: on the default loop getaddrinfo is
    a hop to a thread.
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return 0
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


async def open_socket(
    family: int,
    local_addr: tuple[str, int] | None,
    remote_addr: Any = None,
    buffer_size: int = 4 << 20,
) -> socket.socket:
    """A bound (and, with ``remote_addr``, connected) non-blocking UDP socket."""
    loop = asyncio.get_running_loop()
    bind_to: Any = None
    if local_addr is not None:
        ip_family = numeric_family(local_addr[0])
        if ip_family and family in (0, ip_family):
            family, bind_to = ip_family, local_addr
        else:
            infos = await loop.getaddrinfo(*local_addr, family=family, type=socket.SOCK_DGRAM)
            family, bind_to = infos[0][0], infos[0][4]
    if family == 0:
        family = socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, buffer_size)
            except OSError:  # pragma: no cover - platform limits
                pass
        if bind_to is not None:
            sock.bind(bind_to)
        if remote_addr is not None:
            sock.connect(remote_addr)
    except BaseException:
        sock.close()
        raise
    return sock
