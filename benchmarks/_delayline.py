"""A fixed-delay line for forwarded packets: NFQUEUE over raw netlink.

The kernel here has no netem, so the lossy-link benchmark (_lossy.py) delays
packets on the router namespace this way: an iptables rule sends every
forwarded IPv4 packet to NFQUEUE number ``QUEUE``; this process receives
each packet's metadata (its id only: copy mode META, no payload crosses into
user space), holds it for ``DELAY_MS`` and then accepts it. Packets are
released strictly in arrival order with one batch verdict ("accept every id
up to N", NFQNL_MSG_VERDICT_BATCH), so the line never reorders, and a lost
notification (netlink buffer overrun) is released with the packets after it.

The delay is measured from when the notification is read here, so it is
exact to the scheduling latency of this process (~0.1-1 ms on an idle core);
benchmarks/_lossy.py checks the path's RTT with ping before measuring.

Run inside the router's namespace (``ip netns exec NS python _delayline.py
QUEUE DELAY_MS``, or with ``--netns NAME``): it prints ``ready`` once bound
to the queue, serves until its stdin closes, then accepts whatever it still
holds, unbinds and prints one JSON line of counters. Only Linux; needs
CAP_NET_ADMIN in that namespace. Written from the nfnetlink_queue UAPI
(linux/netfilter/nfnetlink_queue.h), without libnetfilter_queue.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import resource
import select
import socket
import struct
import sys
import threading
import time

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 0x2
NLMSG_DONE = 0x3

_NLMSGHDR = struct.Struct("=IHHII")
_NFGENMSG = struct.Struct("!BBH")  # family, version, res_id (queue number, big endian)
_NLATTR = struct.Struct("=HH")
QUEUE_MAXLEN = 16384  # packets held at once; 20 Mbit/s x 10 ms is ~20


def _attr(kind: int, payload: bytes) -> bytes:
    data = _NLATTR.pack(_NLATTR.size + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


class NfQueue:
    """One bound NFQUEUE: notifications in, batch verdicts out."""

    def __init__(self, queue: int) -> None:
        self.queue = queue
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        for opt, size in ((getattr(socket, "SO_RCVBUFFORCE", 33), 8 << 20), (socket.SO_RCVBUF, 8 << 20)):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, size)
                break
            except OSError:
                continue
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        except OSError:
            pass
        self.sock.bind((0, 0))
        self.seq = 0
        self._send_config(_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)))
        self._send_config(_attr(NFQA_CFG_PARAMS, struct.pack("!IBxxx", 0, NFQNL_COPY_META))
                          + _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN)))

    def _message(self, msg_type: int, flags: int, body: bytes) -> bytes:
        self.seq += 1
        head = _NFGENMSG.pack(socket.AF_UNSPEC, 0, self.queue)
        return _NLMSGHDR.pack(_NLMSGHDR.size + len(head) + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type,
                              NLM_F_REQUEST | flags, self.seq, 0) + head + body

    def _send_config(self, attrs: bytes) -> None:
        """A config request, acknowledged: an error (no permission, queue taken) raises."""
        self.sock.send(self._message(NFQNL_MSG_CONFIG, NLM_F_ACK, attrs))
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            data = self.sock.recv(65536)
            for msg_type, seq, payload in self._messages(data):
                if msg_type == NLMSG_ERROR and seq == self.seq:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise OSError(code, f"NFQUEUE {self.queue} config: {os.strerror(code)}")
                    return
        raise TimeoutError("no answer from nfnetlink_queue")

    @staticmethod
    def _messages(data: bytes) -> list[tuple[int, int, bytes]]:
        out = []
        off = 0
        while off + _NLMSGHDR.size <= len(data):
            length, msg_type, _flags, seq, _pid = _NLMSGHDR.unpack_from(data, off)
            if length < _NLMSGHDR.size:
                break
            out.append((msg_type, seq, data[off + _NLMSGHDR.size:off + length]))
            off += (length + 3) & ~3
        return out

    @staticmethod
    def packet_id(payload: bytes) -> int | None:
        """The id in a NFQNL_MSG_PACKET's NFQA_PACKET_HDR attribute."""
        off = _NFGENMSG.size
        while off + _NLATTR.size <= len(payload):
            alen, akind = _NLATTR.unpack_from(payload, off)
            if alen < _NLATTR.size:
                return None
            if akind & 0x3FFF == NFQA_PACKET_HDR:
                return int(struct.unpack_from("!I", payload, off + _NLATTR.size)[0])
            off += (alen + 3) & ~3
        return None

    def read_ids(self) -> list[int]:
        """Ids of the packets notified since the last call (non-blocking)."""
        ids: list[int] = []
        packet_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET
        while True:
            try:
                data = self.sock.recv(1 << 18, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return ids
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # notifications lost: their packets go with the next batch
                    continue
                raise
            for msg_type, _seq, payload in self._messages(data):
                if msg_type == packet_type:
                    pid = self.packet_id(payload)
                    if pid is not None:
                        ids.append(pid)

    def accept_through(self, packet_id: int) -> None:
        """Accept every queued packet with an id up to ``packet_id`` (in order)."""
        self.sock.send(self._message(NFQNL_MSG_VERDICT_BATCH, 0,
                                     _attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))))

    def close(self) -> None:
        try:
            self._send_config(_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_UNBIND, socket.AF_INET)))
        except OSError:
            pass
        self.sock.close()


def serve(queue: int, delay: float, stop: threading.Event, ready: bool = True) -> dict[str, float]:
    """Hold every packet of ``queue`` for ``delay`` seconds, until ``stop``."""
    q = NfQueue(queue)
    if ready:
        print("ready", flush=True)
    held: collections.deque[tuple[float, int]] = collections.deque()
    poller = select.epoll()
    poller.register(q.sock.fileno(), select.EPOLLIN)
    packets = verdicts = 0
    late_max = late_sum = 0.0
    try:
        while not stop.is_set():
            wait = held[0][0] - time.monotonic() if held else 0.2
            if wait >= 0.001:
                # epoll rounds its timeout up to whole milliseconds: wait the
                # whole ones there, and sleep (to the microsecond) for the rest
                poller.poll(min(0.2, int(wait * 1000) / 1000))
            elif wait > 0:
                time.sleep(wait)
            now = time.monotonic()
            for pid in q.read_ids():
                held.append((now + delay, pid))
                packets += 1
            last = None
            while held and held[0][0] <= now:
                due, last = held.popleft()
                late_sum += now - due
                late_max = max(late_max, now - due)
            if last is not None:
                q.accept_through(last)
                verdicts += 1
    finally:
        if held:
            q.accept_through(held[-1][1])
        q.close()
        poller.close()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"packets": packets, "verdicts": verdicts, "late_max_ms": late_max * 1000,
            "late_mean_ms": late_sum * 1000 / packets if packets else 0.0,
            "cpu_s": ru.ru_utime + ru.ru_stime}


def main(argv: list[str]) -> int:
    args = argv[1:]
    if args[:1] == ["--netns"]:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import _synflood

        _synflood.enter_netns(args[1])
        args = args[2:]
    if len(args) != 2:
        print("usage: _delayline.py [--netns NAME] QUEUE DELAY_MS", file=sys.stderr)
        return 2
    queue, delay_ms = int(args[0]), float(args[1])
    stop = threading.Event()

    def watch_stdin() -> None:
        for _ in sys.stdin:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        counters = serve(queue, delay_ms / 1000.0, stop)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(counters), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
