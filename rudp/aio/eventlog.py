"""A structured event log, qlog in spirit: one JSON object per line.

The ``event_log=`` option of the public API makes one of these per UDP
socket and sets it as the engine's observer (``rudp.core.observer``). Each
line has ``time`` (wall clock, seconds since the epoch, the clock packet
captures use, so the two line up), ``conn`` (a number per connection, in
order of appearance) and ``event``:

- ``connection``: first sight of a connection: ``local`` and ``peer`` UDP
  addresses, TCP ``local_port``/``remote_port``, ``passive``;
- ``state``: ``old`` -> ``new`` (RFC 9293 states);
- ``rtt``: one RTT ``sample`` and the estimator after it: ``srtt``,
  ``rttvar``, ``rto`` (RFC 6298), in seconds;
- ``cwnd``: the congestion window or ssthresh changed: ``cwnd``,
  ``ssthresh`` (bytes; null while still "arbitrarily high", RFC 5681 §3.1),
  ``in_recovery``;
- ``loss``: ``kind`` is ``fast_retransmit``, ``rto``, ``syn_rto`` or ``tlp``,
  with ``snd_una``/``snd_max`` relative to the ISS (as Wireshark's relative
  sequence numbers) and ``cwnd``/``ssthresh`` after the reaction;
- ``recovery_end``: a full ACK ended fast recovery (RFC 6582 §3.2);
- ``spurious_recovery``: the recovery was undone, the "loss" having been
  reordering (Eifel, RFC 3522 / RFC 4015), with the restored ``cwnd``/``ssthresh``.
"""

from __future__ import annotations

import io
import json
import os
import time
from typing import IO, Any, Callable, Union

from ..core.connection import Connection
from ..core.observer import FAST_RETRANSMIT, RTO, SYN_RTO
from ..core.state import CLOSED, State

#: What ``event_log=`` accepts: a path (created; closed with the socket) or a
#: file object open for writing, text or binary (flushed, left open).
Target = Union[str, "os.PathLike[str]", IO[Any]]
_NO_SSTHRESH = 1 << 60  # at or above: the initial "arbitrarily high" ssthresh


class _Seen:
    """What was last logged of one connection, to log only changes."""

    __slots__ = ("id", "cwnd", "ssthresh", "in_recovery", "spurious")

    def __init__(self, ident: int) -> None:
        self.id = ident
        self.cwnd = self.ssthresh = -1
        self.in_recovery = False
        self.spurious = 0


class EventLog:
    """An observer of every connection of one endpoint, writing JSON lines."""

    def __init__(self, target: Target, local: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._write: Callable[[str], Any]
        if isinstance(target, (str, os.PathLike)):
            self._file: IO[Any] = open(target, "w", encoding="utf-8")  # noqa: SIM115 - close()
            self._own = True
            self._write = self._file.write
        elif callable(getattr(target, "write", None)):
            self._file = target
            self._own = False
            if isinstance(target, (io.RawIOBase, io.BufferedIOBase)) or "b" in getattr(target, "mode", ""):
                self._write = lambda line: target.write(line.encode())
            else:
                self._write = target.write
        else:
            raise TypeError(f"event_log must be a path or a file object, not {type(target).__name__}")
        self._local = _address(local) if local is not None else None
        self._clock = clock
        # Not a WeakKeyDictionary: a compiled (mypyc) Connection takes no weak
        # reference. An entry goes when its connection reaches CLOSED, all when the log closes.
        self._seen: dict[Connection, _Seen] = {}
        self._next_id = 0
        self._pending: list[str] = []
        self.closed = False

    # -- writing

    def _emit(self, conn: Connection, event: str, fields: dict[str, Any]) -> None:
        if self.closed:
            return
        seen = self._seen.get(conn)
        if seen is None:
            seen = self._first_sight(conn)
        self._line(seen.id, event, fields)

    def _line(self, ident: int, event: str, fields: dict[str, Any]) -> None:
        record = {"time": round(self._clock(), 6), "conn": ident, "event": event}
        record.update(fields)
        self._pending.append(json.dumps(record, separators=(",", ":")))

    def flush(self) -> None:
        """Write the lines logged since the last flush (the driver calls this
        after each round of engine work: one write per round, and the file
        ends on a whole line whenever the loop runs something else)."""
        if self._pending:
            text = "\n".join(self._pending) + "\n"
            self._pending.clear()
            self._write(text)
            if self._own:
                self._file.flush()

    def _first_sight(self, conn: Connection) -> _Seen:
        self._next_id += 1
        seen = self._seen[conn] = _Seen(self._next_id)
        self._line(seen.id, "connection", {
            "local": self._local, "peer": _address(conn.addr), "local_port": conn.local_port,
            "remote_port": conn.remote_port, "passive": conn.passive,
        })
        return seen

    def _congestion(self, conn: Connection, seen: _Seen) -> dict[str, Any]:
        cc = conn.cc
        seen.cwnd, seen.ssthresh = cc.cwnd, cc.ssthresh
        return {"cwnd": cc.cwnd, "ssthresh": cc.ssthresh if cc.ssthresh < _NO_SSTHRESH else None}

    def _cwnd_if_changed(self, conn: Connection, seen: _Seen) -> None:
        cc = conn.cc
        if cc.cwnd != seen.cwnd or cc.ssthresh != seen.ssthresh:
            fields = self._congestion(conn, seen)
            fields["in_recovery"] = conn.recovery.in_recovery
            self._line(seen.id, "cwnd", fields)

    def close(self) -> None:
        """Flush; close the file if the log opened it."""
        if self.closed:
            return
        self.flush()
        self.closed = True
        self._seen.clear()
        if self._own:
            self._file.close()
        else:
            self._file.flush()

    # -- the observer hooks (rudp.core.observer.Observer)

    def state_changed(self, conn: Connection, old: State, new: State) -> None:
        self._emit(conn, "state", {"old": old.value, "new": new.value})
        if new is CLOSED:
            self._seen.pop(conn, None)

    def rtt_sample(self, conn: Connection, rtt: float) -> None:
        est = conn.rtt
        self._emit(conn, "rtt", {"sample": round(rtt, 6), "srtt": round(est.srtt or 0.0, 6),
                                 "rttvar": round(est.rttvar, 6), "rto": round(est.rto, 6)})

    def acked(self, conn: Connection) -> None:
        if self.closed:
            return
        seen = self._seen.get(conn) or self._first_sight(conn)
        in_recovery = conn.recovery.in_recovery
        spurious = conn.stats.spurious_recoveries
        if spurious != seen.spurious:
            seen.spurious = spurious
            seen.in_recovery = in_recovery
            self._line(seen.id, "spurious_recovery", self._congestion(conn, seen))
        elif seen.in_recovery and not in_recovery:
            seen.in_recovery = False
            self._line(seen.id, "recovery_end", {})
        self._cwnd_if_changed(conn, seen)

    def loss(self, conn: Connection, kind: str) -> None:
        if self.closed:
            return
        seen = self._seen.get(conn) or self._first_sight(conn)
        if kind == FAST_RETRANSMIT:
            seen.in_recovery = True
        elif kind == RTO or kind == SYN_RTO:
            seen.in_recovery = False  # an RTO ends any fast recovery (RFC 6582 §4)
        fields: dict[str, Any] = {"kind": kind, "snd_una": conn.snd_una - conn.iss,
                                  "snd_max": conn.snd_max - conn.iss}
        fields.update(self._congestion(conn, seen))
        self._line(seen.id, "loss", fields)


def _address(addr: Any) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
