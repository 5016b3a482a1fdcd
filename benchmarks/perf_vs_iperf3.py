"""``rudp perf`` next to iperf3 on kernel TCP, over the same loopback.

Runs rounds of alternating tests (iperf3, rudp on uvloop, rudp on the
default loop; single stream and -P 4) and prints the median of each,
receiver-side bits per second. A manual measurement, not a test:

    .venv/bin/python benchmarks/perf_vs_iperf3.py [--rounds 3] [--seconds 5]

iperf3 comes from the distribution (``apt-get install iperf3``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

PY = sys.executable


def _server(cmd: list[str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--port", type=int, default=5290)
    args = ap.parse_args()
    if shutil.which("iperf3") is None:
        print("iperf3 is not installed (apt-get install iperf3)", file=sys.stderr)
        return 1
    env = dict(os.environ)
    iperf_port, uv_port, aio_port = args.port, args.port + 1, args.port + 2
    servers = [
        _server(["iperf3", "-s", "-p", str(iperf_port), "-B", "127.0.0.1"]),
        _server([PY, "-m", "rudp", "--loop", "uvloop", "perf", "-s", "-p", str(uv_port),
                 "-B", "127.0.0.1"]),
        _server([PY, "-m", "rudp", "--loop", "asyncio", "perf", "-s", "-p", str(aio_port),
                 "-B", "127.0.0.1"]),
    ]
    t = str(args.seconds)
    kinds = {
        "kernel TCP (iperf3)": lambda p: (["iperf3", "-c", "127.0.0.1", "-p", str(iperf_port),
                                           "-t", t, "-P", p, "-J"],
                                          lambda d: d["end"]["sum_received"]["bits_per_second"]),
        "rudp, uvloop": lambda p: ([PY, "-m", "rudp", "--loop", "uvloop", "perf", "-c",
                                    "127.0.0.1", "-p", str(uv_port), "-t", t, "-P", p, "--json"],
                                   lambda d: d["bits_per_second"]),
        "rudp, asyncio": lambda p: ([PY, "-m", "rudp", "--loop", "asyncio", "perf", "-c",
                                     "127.0.0.1", "-p", str(aio_port), "-t", t, "-P", p,
                                     "--json"], lambda d: d["bits_per_second"]),
    }
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for rnd in range(args.rounds):
            for streams in ("1", "4"):
                for name, make in kinds.items():
                    cmd, pick = make(streams)
                    proc = subprocess.run(cmd, capture_output=True, timeout=args.seconds + 120,
                                          env=env, check=False)
                    if proc.returncode != 0:
                        print(f"{name} -P {streams}: failed: {proc.stderr.decode()}",
                              file=sys.stderr)
                        continue
                    bps = float(pick(json.loads(proc.stdout)))
                    results.setdefault((name, streams), []).append(bps)
                    print(f"round {rnd + 1}: {name:22s} -P {streams}: {bps / 1e6:9.1f} Mbit/s",
                          flush=True)
    finally:
        for s in servers:
            s.terminate()
            s.wait()
    print(f"\nmedian of {args.rounds} alternating runs, -t {args.seconds:g}, receiver Mbit/s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| | -P 1 | -P 4 |\n| --- | ---: | ---: |")
    for name in kinds:
        cells = []
        for streams in ("1", "4"):
            got = results.get((name, streams), [])
            cells.append(f"{statistics.median(got) / 1e6:,.0f}" if got else "-")
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
