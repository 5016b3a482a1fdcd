#!/usr/bin/env python3
"""Echo client over rudp: send text, print what comes back.

    python examples/echo_client.py 127.0.0.1 9000 --message "hello"
    printf 'one\\ntwo\\n' | python examples/echo_client.py 127.0.0.1 9000

With ``--message`` (repeatable) each message is sent as one line; otherwise
stdin is sent line by line as it is typed or piped. Echoed data is printed on
stdout as it arrives. At the end the client half-closes, reads the rest of the
echo until the server closes, and exits 0 only if the echo equals what it sent.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import rudp
from rudp.tools.stdio import StdinReader

from _common import add_loop_argument, run


async def main(args: argparse.Namespace) -> int:
    try:
        reader, writer = await rudp.open_connection(args.host, args.port, connect_timeout=args.timeout)
    except (OSError, TimeoutError) as exc:
        print(f"cannot connect to {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    sent = bytearray()
    received = bytearray()
    out = sys.stdout.buffer

    async def receive() -> None:
        while data := await reader.read(65536):
            received.extend(data)
            out.write(data)
            out.flush()

    async def send() -> None:
        if args.message:
            for msg in args.message:
                line = msg.encode() + b"\n"
                sent.extend(line)
                writer.write(line)
                await writer.drain()
        else:
            stdin = StdinReader()
            lines = await stdin.open()
            try:
                while line := await lines.readline():
                    sent.extend(line)
                    writer.write(line)
                    await writer.drain()
            finally:
                stdin.close()
        writer.write_eof()

    receiver = asyncio.create_task(receive())
    try:
        await send()
        # after our FIN, the rest of the echo has this long to arrive
        await asyncio.wait_for(asyncio.shield(receiver), args.timeout)
    except (ConnectionError, TimeoutError, asyncio.TimeoutError) as exc:
        print(f"connection failed: {exc!r}", file=sys.stderr)
        return 1
    finally:
        receiver.cancel()
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 5)
        except (ConnectionError, asyncio.TimeoutError):
            pass
    if received != sent:
        print(f"echo mismatch: sent {len(sent)} bytes, received {len(received)}", file=sys.stderr)
        return 1
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("host", help="server address")
    p.add_argument("port", type=int, help="server UDP port")
    p.add_argument("-m", "--message", action="append", help="send this line instead of stdin (repeatable)")
    p.add_argument("--timeout", type=float, default=10.0, help="connect / final echo timeout in seconds")
    add_loop_argument(p)
    return p.parse_args(argv)


if __name__ == "__main__":
    a = parse_args()
    sys.exit(run(main(a), a.loop))
