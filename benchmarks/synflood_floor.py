"""How much of one flooder's SYNs a Python server can answer on this machine.

The SYN-flood benchmark (``run.py --only synflood``) misses its target of
99% legitimate success because the server reads only part of the flood.
This script measures where that limit lies, with the flooder of that
benchmark (``_synflood.flood_rudp``: spoofed 127/8 sources, as fast as one
process can send) against three servers in turn, each a process of its own
on one UDP socket:

* ``bare``: ``recvfrom`` and a ``sendto`` of a fixed 40-byte datagram: the
  system calls alone;
* ``floor``: the same loop plus the least work a SYN cookie needs, done by
  rudp's own functions (``parse_plain_syn``, ``CookieJar.make``,
  ``encode_ts_options``, ``encode_syn_ack``): no endpoint, no asyncio;
* ``rudp``: a default ``rudp.start_server`` echo server on uvloop (with its
  SYN socket).

Every server answers each SYN it reads with one datagram, which comes back
to the flooder's sockets, so "answered" (answers over SYNs sent) is measured
the same way for all three. Rounds alternate the servers; the medians are
printed. A manual measurement, not a test:

    .venv/bin/python benchmarks/synflood_floor.py [--rounds 3] [--seconds 5] [--compiled]

``--compiled`` runs ``floor`` and ``rudp`` on the mypyc-compiled core
(``tests/compiled.py build`` first).
"""

from __future__ import annotations

import argparse
import os
import random
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _synflood  # noqa: E402

KINDS = ("bare", "floor", "rudp")
_SO_RCVBUF = 512 * 1024  # as rudp's SYN socket (udpio.SYN_SOCKET_BUFFER)


def _bound() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SO_RCVBUF)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    print(s.getsockname()[1], flush=True)
    return s


def serve_loop(kind: str, seconds: float) -> None:
    """``bare`` or ``floor``: read up to 64 SYNs per wake-up and answer each."""
    from rudp.core.syncookies import CookieJar, encode_ts_options
    from rudp.core.wire import encode_syn_ack, parse_plain_syn

    s = _bound()
    recvfrom, sendto, clock = s.recvfrom, s.sendto, time.monotonic
    jar = CookieJar(random.Random())
    fixed = bytes(40)
    end = clock() + seconds
    while clock() < end:
        select.select([s], [], [], 0.1)
        now = clock()
        for _ in range(64):
            try:
                data, addr = recvfrom(2048)
            except BlockingIOError:
                break
            if kind == "bare":
                sendto(fixed, addr)
                continue
            fields = parse_plain_syn(data)
            if fields is None:
                continue
            sport, dport, isn, mss, wscale, tsval = fields
            cookie = jar.make(now, addr, dport, sport, isn, mss)
            ts = encode_ts_options(int(now * 1000) & 0xFFFFFFFF, wscale, True)
            sendto(encode_syn_ack(dport, sport, cookie, (isn + 1) & 0xFFFFFFFF, 65535, 1460, 7,
                                  (ts, tsval)), addr)


def serve_rudp(seconds: float) -> None:
    import asyncio

    import uvloop

    import rudp

    async def main() -> None:
        async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while data := await r.read(4096):
                w.write(data)
            w.close()

        server = await rudp.start_server(echo, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.sleep(seconds)
        server.close()

    uvloop.run(main())


def one_round(kind: str, seconds: float, env: dict[str, str]) -> dict[str, float]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--seconds", str(seconds + 3)],
                            stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        time.sleep(0.3)
        cpu0 = _synflood.proc_cpu_seconds(proc.pid)
        r = _synflood.flood_rudp(port, threading.Event(), max_seconds=seconds, max_count=10**8, tail=0.5)
        cpu = _synflood.proc_cpu_seconds(proc.pid) - cpu0
    finally:
        proc.kill()
        proc.wait()
    return {"rate": r["rate"], "answered_pct": 100.0 * r["replies"] / r["sent"],
            "server_us_per_answer": 1e6 * cpu / r["replies"] if r["replies"] else float("nan"),
            "server_cpu_share": cpu / (r["elapsed"] + 0.5)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--compiled", action="store_true")
    ap.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    root = HERE.parent
    if args.serve:
        sys.path.insert(0, os.environ.get("RUDP_TREE", str(root)))
        if args.serve == "rudp":
            serve_rudp(args.seconds)
        else:
            serve_loop(args.serve, args.seconds)
        return 0
    env = dict(os.environ)
    if args.compiled:
        sys.path.insert(0, str(root))
        from tests import compiled

        why = compiled.build()
        if why:
            print(f"--compiled: {why}", file=sys.stderr)
            return 1
        env["RUDP_TREE"] = compiled.TREE.as_posix()
    results: dict[str, list[dict[str, float]]] = {k: [] for k in KINDS}
    for i in range(args.rounds):
        for kind in KINDS:
            m = one_round(kind, args.seconds, env)
            results[kind].append(m)
            print(f"round {i + 1} {kind:5}: {m['rate']:9,.0f} SYN/s sent, {m['answered_pct']:5.1f}% answered, "
                  f"server {m['server_us_per_answer']:5.2f} us CPU per answer", flush=True)
    print(f"\nmedians of {args.rounds} ({'compiled' if args.compiled else 'pure'} core), "
          f"load average {os.getloadavg()[0]:.2f}:")
    print("| server | flood SYN/s | answered | server CPU per answer | server CPU busy |")
    print("| --- | --- | --- | --- | --- |")
    for kind in KINDS:
        med = {k: statistics.median(m[k] for m in results[kind]) for k in results[kind][0]}
        print(f"| {kind} | {med['rate']:,.0f} | {med['answered_pct']:.1f}% | {med['server_us_per_answer']:.2f} us "
              f"| {100 * med['server_cpu_share']:.0f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
