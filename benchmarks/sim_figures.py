"""Simulated goodput and retransmissions of one bulk transfer (rudp.tools.sim).

A client writes SIZE bytes (all at once) to a server over a link of BANDWIDTH
and RTT with a given random loss in both directions, then closes. Goodput is
SIZE*8 divided by the simulated time from the connect() until the server's
application read the last byte (so it includes the handshake and slow start).
Each loss rate runs several seeds; the table shows medians (and the range of
goodput). Simulated time is deterministic; only the wall column depends on
the machine.

Run: python benchmarks/sim_figures.py [--size N] [--seeds N] [--bandwidth BPS]
     [--rtt S] [--loss 0,0.01,0.05] [--queue N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from rudp.core.config import Config  # noqa: E402
from rudp.tools.sim import LinkConfig  # noqa: E402
from simapps import run_transfer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--bandwidth", type=float, default=10e6)
    p.add_argument("--rtt", type=float, default=0.05)
    p.add_argument("--loss", default="0,0.01,0.05")
    p.add_argument("--queue", type=int, default=None, help="queue limit in packets (default: none)")
    args = p.parse_args(argv)
    losses = [float(x) for x in args.loss.split(",")]
    cfg = Config()
    print(f"{args.size / 1e6:g} MB over {args.bandwidth / 1e6:g} Mbit/s, RTT {args.rtt * 1000:g} ms, "
          f"queue {args.queue if args.queue is not None else 'unbounded'}; random loss both ways; "
          f"{args.seeds} seeds per row, medians; {cfg.congestion_control}, SACK {cfg.sack}, "
          f"IW {cfg.initial_window}")
    header = (f"{'loss':>6} {'goodput Mbit/s':>15} {'(min-max)':>13} {'retransmits':>11} "
              f"{'fast':>5} {'RTOs':>5} {'sim s':>7} {'wall s':>7} {'ok':>4}")
    print(header)
    print("-" * len(header))
    total = time.perf_counter()
    failures = 0
    for loss in losses:
        link = LinkConfig(delay=args.rtt / 2, bandwidth=args.bandwidth, loss=loss,
                          queue_limit=args.queue)
        goodputs, rtx, fast, rtos, sim_t = [], [], [], [], []
        ok = 0
        started = time.perf_counter()
        for seed in range(args.seeds):
            r = run_transfer(seed, link, args.size, cfg, write="all", monitor=False)
            ok += r.ok
            goodputs.append(r.goodput_bps / 1e6)
            rtx.append(r.client_stats["retransmits"])
            fast.append(r.client_stats["fast_retransmits"])
            rtos.append(r.client_stats["timeouts"])
            sim_t.append(r.done_at or float("nan"))
        wall = time.perf_counter() - started
        failures += args.seeds - ok
        print(f"{loss:>6.1%} {statistics.median(goodputs):>15.2f} "
              f"{f'{min(goodputs):.2f}-{max(goodputs):.2f}':>13} {statistics.median(rtx):>11g} "
              f"{statistics.median(fast):>5g} {statistics.median(rtos):>5g} "
              f"{statistics.median(sim_t):>7.2f} {wall:>7.2f} {ok:>2}/{args.seeds}")
    print(f"total wall time {time.perf_counter() - total:.2f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
