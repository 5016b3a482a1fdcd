#!/usr/bin/env python3
"""Chat client for examples/chat_server.py, over rudp.

    python examples/chat_client.py 192.0.2.10 9000 --nick alice

Type lines to send them; ``/who`` lists who is online, ``/quit`` leaves.
Incoming lines are printed as they arrive, while stdin is read without
blocking the event loop (``loop.connect_read_pipe`` for terminals and pipes,
a reader thread otherwise), so the client works just as well scripted:

    (echo hello; sleep 1; echo /who) | python examples/chat_client.py HOST 9000 --nick bot

On stdin EOF the client half-closes (its FIN tells the server it is done),
prints what still arrives until the server closes, and exits. It also exits
when the server closes or resets the connection.

Two peers behind NATs, with no chat server: both give the same room at a
rendezvous server (``rudp rendezvous 9000`` on any public host) and talk
directly, through both NATs (UDP hole punching, rudp.open_rendezvous_connection):

    python examples/chat_client.py --rendezvous 203.0.113.1:9000 --room ours --nick alice
    python examples/chat_client.py --rendezvous 203.0.113.1:9000 --room ours --nick bob

Exit status: 0 normal end, 1 connection failure or reset, 2 nickname refused.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import rudp
from rudp.tools.stdio import StdinReader

from _common import add_keepalive_argument, add_loop_argument, keepalive_options, run

PROMPT = "> "
CLOSE_TIMEOUT = 2.0


class Screen:
    """Prints incoming lines; on a terminal, keeps a prompt at the bottom."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def show(self, line: str) -> None:
        if self.interactive:
            sys.stdout.write("\r\x1b[K" + line + "\n" + PROMPT)
        else:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def prompt(self) -> None:
        if self.interactive:
            sys.stdout.write(PROMPT)
            sys.stdout.flush()

    def done(self) -> None:
        if self.interactive:
            sys.stdout.write("\r\x1b[K")
            sys.stdout.flush()


async def main(args: argparse.Namespace) -> int:
    try:
        if args.room is not None:
            print(f"meeting the other peer of room {args.room!r} at {args.rendezvous}...", file=sys.stderr)
            # --keepalive 0 turns off the NAT keep-alives the library sends by default.
            reader, writer = await rudp.open_rendezvous_connection(
                args.rendezvous, args.room, limit=1 << 20, relay=args.relay,
                on_relay=lambda why: print(f"{why}\nrelaying through the rendezvous server (--relay)",
                                           file=sys.stderr),
                **(keepalive_options(args.keepalive) or {"keepalive": False}))
        else:
            reader, writer = await rudp.open_connection(
                args.host, args.port, connect_timeout=args.timeout, limit=1 << 20,
                **keepalive_options(args.keepalive))
    except (OSError, TimeoutError) as exc:
        where = args.room if args.room is not None else f"{args.host}:{args.port}"
        print(f"cannot connect to {where}: {exc}", file=sys.stderr)
        return 1
    stdin = StdinReader()
    try:
        if args.room is not None:
            return await peer_chat(args, reader, writer, stdin)
        return await chat(args, reader, writer, stdin)
    finally:
        stdin.close()
        if not writer.transport.is_closing():
            writer.close()
        # Our FIN should be acknowledged at once; never hang on exit if it is not.
        try:
            await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
        except asyncio.TimeoutError:  # (on 3.11+ also rudp's TimeoutError: same story)
            print(f"warning: the server did not acknowledge our close within {CLOSE_TIMEOUT:g} s",
                  file=sys.stderr)
            writer.transport.abort()
        except ConnectionError:
            pass
        endpoint = writer.get_extra_info("endpoint")  # --room: our own socket's TIME_WAIT linger
        if endpoint is not None:
            try:
                await asyncio.wait_for(endpoint.wait_closed(), CLOSE_TIMEOUT)
            except asyncio.TimeoutError:
                pass


async def chat(
    args: argparse.Namespace, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stdin: StdinReader
) -> int:
    writer.write(args.nick.encode() + b"\n")
    try:
        first = await asyncio.wait_for(reader.readline(), args.timeout)
    except (ConnectionError, TimeoutError, asyncio.TimeoutError) as exc:
        print(f"no answer from the server: {exc!r}", file=sys.stderr)
        return 1
    greeting = first.decode("utf-8", "replace").rstrip("\r\n")
    if not first or greeting.startswith("!"):
        print(greeting or "the server closed the connection", file=sys.stderr)
        return 2

    lines = await stdin.open()
    screen = Screen(interactive=stdin.mode == "tty" and sys.stdout.isatty())
    screen.show(greeting)

    async def receive() -> int:
        """Print incoming lines until the server closes; the exit status."""
        try:
            while raw := await reader.readline():
                screen.show(raw.decode("utf-8", "replace").rstrip("\r\n"))
        except (ConnectionError, TimeoutError, OSError) as exc:
            screen.done()
            print(f"connection lost: {exc}", file=sys.stderr)
            return 1
        except ValueError:
            print("line from the server too long", file=sys.stderr)
            return 1
        screen.done()
        return 0

    async def send() -> None:
        """Send stdin lines; on EOF, half-close."""
        while raw := await lines.readline():
            if not raw.endswith(b"\n"):
                raw += b"\n"  # last line without newline
            if writer.transport.is_closing():
                break
            writer.write(raw)
            await writer.drain()
        if not writer.transport.is_closing():
            writer.write_eof()

    receiver = asyncio.create_task(receive())
    sender = asyncio.create_task(send())
    done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
    if sender in done and not receiver.done():
        exc = sender.exception()
        if exc is not None:
            print(f"sending failed: {exc!r}", file=sys.stderr)
        # stdin is done and we half-closed: the server answers with its FIN.
        try:
            await asyncio.wait_for(asyncio.shield(receiver), args.linger)
        except asyncio.TimeoutError:
            print(f"the server did not close within {args.linger:g} s", file=sys.stderr)
            receiver.cancel()
            writer.transport.abort()
            return 1
    sender.cancel()
    try:
        await sender
    except (asyncio.CancelledError, ConnectionError, RuntimeError):
        pass
    return receiver.result()


async def peer_chat(
    args: argparse.Namespace, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stdin: StdinReader
) -> int:
    """Chat with the one peer met in the room: nicknames first, then lines both
    ways; stdin EOF (or /quit) half-closes, and the chat ends when both did."""
    writer.write(args.nick.encode() + b"\n")
    try:
        first = await asyncio.wait_for(reader.readline(), args.timeout)
    except (ConnectionError, TimeoutError, asyncio.TimeoutError) as exc:
        print(f"no word from the peer: {exc!r}", file=sys.stderr)
        return 1
    if not first:
        print("the peer left at once", file=sys.stderr)
        return 1
    peer = first.decode("utf-8", "replace").strip() or "peer"
    nat = writer.get_extra_info("nat_mapping")
    lines = await stdin.open()
    screen = Screen(interactive=stdin.mode == "tty" and sys.stdout.isatty())
    how = "through the relay at" if nat["relayed"] else "directly at"
    screen.show(f"* {peer} is here, {how} {nat['peer'][0]}:{nat['peer'][1]} "
                f"(we are {nat['public'][0]}:{nat['public'][1]} to the world)")

    async def receive() -> int:
        try:
            while raw := await reader.readline():
                screen.show(f"<{peer}> " + raw.decode("utf-8", "replace").rstrip("\r\n"))
        except (ConnectionError, TimeoutError, OSError) as exc:
            screen.done()
            print(f"connection lost: {exc}", file=sys.stderr)
            return 1
        except ValueError:
            print("line from the peer too long", file=sys.stderr)
            return 1
        screen.show(f"* {peer} left")
        screen.done()
        return 0

    async def send() -> None:
        while raw := await lines.readline():
            text = raw.decode("utf-8", "replace").strip()
            if text == "/quit":
                break
            if text == "/who":
                screen.show(f"* {args.nick} (you), {peer}")
                continue
            if writer.transport.is_closing():
                break
            writer.write(text.encode() + b"\n")
            await writer.drain()
            screen.prompt()
        if not writer.transport.is_closing():
            writer.write_eof()

    receiver = asyncio.create_task(receive())
    sender = asyncio.create_task(send())
    try:
        await sender
    except (ConnectionError, RuntimeError) as exc:
        print(f"sending failed: {exc!r}", file=sys.stderr)
    try:  # we are done talking: wait for the peer to be done too
        return await asyncio.wait_for(receiver, args.linger)
    except asyncio.TimeoutError:
        print(f"{peer} did not finish within {args.linger:g} s", file=sys.stderr)
        writer.transport.abort()
        return 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("host", nargs="?", help="chat server address")
    p.add_argument("port", type=int, nargs="?", help="chat server UDP port")
    p.add_argument("--nick", required=True, help="nickname (no spaces)")
    p.add_argument("--room", help="chat directly with the other peer of this room (needs --rendezvous)")
    p.add_argument("--rendezvous", metavar="HOST:PORT", help="rendezvous server (rudp rendezvous PORT)")
    p.add_argument("--relay", action="store_true",
                   help="with --room: if no direct path, chat through the rendezvous server "
                        "(both peers must ask; the server must be started with --relay)")
    p.add_argument("--timeout", type=float, default=10.0, help="connect / login timeout, seconds")
    p.add_argument("--linger", type=float, default=10.0,
                   help="after stdin EOF, how long to wait for the server to close, seconds")
    add_keepalive_argument(p, 25.0)
    add_loop_argument(p)
    args = p.parse_args(argv)
    if args.room is not None:
        if args.rendezvous is None or args.host is not None:
            p.error("--room takes --rendezvous HOST:PORT and no server HOST PORT")
    elif args.host is None or args.port is None:
        p.error("give the chat server's HOST PORT, or --room NAME --rendezvous HOST:PORT")
    return args


if __name__ == "__main__":
    a = parse_args()
    sys.exit(run(main(a), a.loop))
