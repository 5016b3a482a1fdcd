"""Command line: ``rudp demo`` (more commands arrive with the asyncio layer)."""

from __future__ import annotations

import argparse
import hashlib
import sys
import time

from . import events
from .config import Config
from .endpoint import Endpoint
from .sim import LinkConfig, Simulator


def demo(args: argparse.Namespace) -> int:
    """Send bytes across a simulated lossy link and report what happened."""
    size = args.size
    data = bytes(i * 7 % 251 for i in range(size))
    sim = Simulator(args.seed)
    client_addr, server_addr = ("client", 1), ("server", 2)
    client = Endpoint(Config(), seed=args.seed)
    server = Endpoint(Config(), seed=args.seed + 1)
    received = bytearray()

    def on_client(conn: object, ev: events.Event) -> None:
        if isinstance(ev, events.Connected):
            conn.send(data)  # type: ignore[attr-defined]
            conn.close()  # type: ignore[attr-defined]

    def on_server(conn: object, ev: events.Event) -> None:
        if isinstance(ev, (events.DataReceived, events.EofReceived)):
            received.extend(conn.read())  # type: ignore[attr-defined]
        if isinstance(ev, events.EofReceived):
            conn.close()  # type: ignore[attr-defined]

    sim.add_endpoint(client_addr, client, on_client)
    sim.add_endpoint(server_addr, server, on_server)
    link = LinkConfig(
        delay=args.rtt / 2, bandwidth=args.bandwidth, loss=args.loss, reorder=args.loss,
        duplicate=args.loss / 2,
    )
    sim.connect(client_addr, server_addr, link)
    server.listen(80)
    conn = client.connect(server_addr, 80, 0.0)
    sim.service(client_addr)
    started = time.perf_counter()
    sim.run(until=3600, stop=lambda: conn.state.value == "CLOSED" or conn.state.value == "TIME_WAIT")
    wall = time.perf_counter() - started
    ok = bytes(received) == data
    print(f"simulated link: RTT {args.rtt * 1000:.0f} ms, {args.bandwidth / 1e6:g} Mbit/s, "
          f"loss {args.loss:.0%} (plus reordering and duplication)")
    print(f"sent {size} bytes in {sim.now:.2f} s of simulated time ({wall:.2f} s wall): "
          f"goodput {size * 8 / sim.now / 1e6:.2f} Mbit/s")
    print(f"retransmissions: {conn.stats.retransmits} "
          f"(fast {conn.stats.fast_retransmits}, timeouts {conn.stats.timeouts})")
    print(f"SHA-256 sent     {hashlib.sha256(data).hexdigest()}")
    print(f"SHA-256 received {hashlib.sha256(received).hexdigest()}  {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rudp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="a transfer over a simulated lossy link")
    p.add_argument("--size", type=int, default=2_000_000)
    p.add_argument("--loss", type=float, default=0.02)
    p.add_argument("--rtt", type=float, default=0.05)
    p.add_argument("--bandwidth", type=float, default=20e6)
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
