"""``rudp ss``: list the rudp listeners and connections of every process that
exposes them (``rudp.aio.introspect``), aligned like ``ss -tani``.

Each exposing process has a Unix socket ``<dir>/<pid>.sock`` that answers a
JSON snapshot on connect. Sockets of dead processes are removed; a live
process that does not answer in time is left out.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any, TextIO

from ..aio.introspect import socket_dir

_TIMEOUT = 2.0
_MAX_SNAPSHOT = 64 << 20  # a process with ~100k connections still fits

#: ss's spelling of the RFC 9293 state names.
_STATE_NAMES = {"ESTABLISHED": "ESTAB"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_snapshot(path: str) -> dict[str, Any] | None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(_TIMEOUT)
        try:
            sock.connect(path)
            chunks = []
            size = 0
            while chunk := sock.recv(1 << 16):
                chunks.append(chunk)
                size += len(chunk)
                if size > _MAX_SNAPSHOT:
                    return None
        except ConnectionRefusedError:
            raise
        except OSError:  # a timeout, or the process went away meanwhile
            return None
    try:
        snap = json.loads(b"".join(chunks))
    except ValueError:
        return None
    return snap if isinstance(snap, dict) and isinstance(snap.get("sockets"), list) else None


def collect(directory: str | None = None) -> list[dict[str, Any]]:
    """One snapshot per exposing process, by pid; stale sockets (dead pid, or
    nobody listening any more) are removed."""
    directory = directory or socket_dir()
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for name in names:
        stem, _, ext = name.partition(".")
        if ext != "sock" or not stem.isdigit():
            continue
        path = os.path.join(directory, name)
        pid = int(stem)
        if not _alive(pid):
            _remove(path)
            continue
        try:
            snap = _read_snapshot(path)
        except ConnectionRefusedError:  # bound once, no one listens: stale
            _remove(path)
            continue
        if snap is not None:
            out.append(snap)
    return out


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def rows(snapshots: list[dict[str, Any]], listening_only: bool) -> list[dict[str, Any]]:
    """Flatten to one row per socket, each with its process's pid and name."""
    out = []
    for snap in snapshots:
        for entry in snap["sockets"]:
            if not isinstance(entry, dict):
                continue
            if listening_only and entry.get("state") != "LISTEN":
                continue
            row = dict(entry)
            row["pid"] = snap.get("pid")
            row["process"] = snap.get("process")
            out.append(row)
    return out


def _num(value: Any) -> str:
    return "-" if value is None else str(value)


def _details(row: dict[str, Any]) -> str:
    """The indented second line, as ``ss -i`` prints it."""
    if row.get("state") == "LISTEN":
        keys = ("half_open", "max_half_open", "syn_received", "cookies_sent",
                "cookies_validated", "cookies_rejected", "syn_dropped_backlog",
                "half_open_evicted", "connections", "socket_drops", "syn_socket_drops")
        return " ".join(f"{k}:{row[k]}" for k in keys if k in row)
    mss = row.get("mss") or 1
    rtt = row.get("rtt_ms")
    parts = [
        str(row.get("congestion_control", "")),
        f"ports:{row.get('local_port')}->{row.get('remote_port')}",
        f"rtt:{_num(rtt)}/{_num(row.get('rttvar_ms'))}",
        f"rto:{_num(row.get('rto_ms'))}",
        f"mss:{row.get('mss')}",
        f"cwnd:{int(row.get('cwnd', 0)) // int(mss)}",
    ]
    if row.get("ssthresh") is not None:
        parts.append(f"ssthresh:{int(row['ssthresh']) // int(mss)}")
    parts += [
        f"bytes_sent:{row.get('bytes_sent')}",
        f"bytes_retrans:{row.get('bytes_retransmitted')}",
        f"bytes_acked:{row.get('bytes_acked')}",
        f"bytes_received:{row.get('bytes_received')}",
        f"segs_out:{row.get('segments_sent')}",
        f"segs_in:{row.get('segments_received')}",
        f"retrans:{row.get('retransmits')}",
        f"snd_wnd:{row.get('snd_wnd')}",
        f"rcv_wnd:{row.get('rcv_wnd')}",
    ]
    if row.get("in_recovery"):
        parts.append("recovery")
    return " ".join(parts)


def format_table(table: list[dict[str, Any]]) -> str:
    """Columns aligned like ``ss -tani``, a detail line under each socket."""
    header = ("State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process")
    lines = [header]
    for row in table:
        state = str(row.get("state", "?"))
        lines.append((
            _STATE_NAMES.get(state, state.replace("_", "-")),
            _num(row.get("recv_queue")),
            _num(row.get("send_queue")),
            str(row.get("local")),
            str(row.get("peer")),
            f'("{row.get("process")}",pid={row.get("pid")})',
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = []
    for i, line in enumerate(lines):
        cells = [cell.ljust(widths[j]) if j in (0, 3, 4) else cell.rjust(widths[j])
                 for j, cell in enumerate(line[:-1])]
        out.append("  ".join(cells) + "  " + line[-1])
        if i:
            out.append("\t " + _details(table[i - 1]))
    return "\n".join(out)


def main(json_output: bool, listening_only: bool, out: TextIO) -> int:
    snapshots = collect()
    table = rows(snapshots, listening_only)
    if json_output:
        json.dump({"processes": len(snapshots), "sockets": table}, out, indent=1)
        out.write("\n")
    else:
        out.write(format_table(table) + "\n")
    return 0
