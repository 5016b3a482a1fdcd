#!/usr/bin/env python3
"""Echo server over rudp: every byte a client sends comes back to it.

    python examples/echo_server.py 127.0.0.1 9000
    python examples/echo_server.py 0.0.0.0 0      # any free port; printed on start

The first line on stdout is ``echo server listening on HOST:PORT`` (flushed),
so scripts can start it with port 0 and read the real port. Ctrl-C or SIGTERM
stop it: the listener closes and connected clients finish their echoes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import rudp

from _common import add_loop_argument, close_server, loop_name, run, server_address, until_signalled


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = writer.get_extra_info("peername")
    total = 0
    try:
        while data := await reader.read(65536):
            total += len(data)
            writer.write(data)
            await writer.drain()
        writer.write_eof()  # the client half-closed: so do we, after the echo
    except ConnectionError as exc:
        print(f"{peer}: {exc!r}", file=sys.stderr)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
    print(f"{peer}: echoed {total} bytes", file=sys.stderr)


async def main(args: argparse.Namespace) -> None:
    server = await rudp.start_server(handle, args.host, args.port)
    print(f"echo server listening on {server_address(server)} (loop: {loop_name()})", flush=True)
    sig = await until_signalled()
    print(f"{sig}: shutting down", file=sys.stderr)
    await close_server(server)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("host", nargs="?", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("port", nargs="?", type=int, default=9000, help="UDP port (default 9000, 0 = any)")
    add_loop_argument(p)
    return p.parse_args(argv)


if __name__ == "__main__":
    a = parse_args()
    run(main(a), a.loop)
