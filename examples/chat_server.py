#!/usr/bin/env python3
"""A line-based chat server over rudp: any number of clients, one room.

    python examples/chat_server.py --host 0.0.0.0 --port 9000

Protocol (UTF-8 lines, "\\n"-terminated, both ways):

  * The first line a client sends is its nickname: 1-32 characters, no spaces,
    not starting with one of ``/*<!``, not already in use. A bad one gets
    ``! error: ...`` and the connection is closed.
  * Then each line is a message, relayed to everyone as ``<nick> text``.
  * ``/who`` lists who is online (``* online (N): a, b``), to the asker only;
    ``/quit`` says ``* bye`` and closes; other ``/commands`` get ``! error``.
  * A client that got in is greeted with ``* welcome nick; online: a, b``;
    the others see ``* nick joined``, and everyone ``* nick left``.

A client that half-closes (EOF), resets, times out or sends an overlong line
leaves the room; nothing a client does stops the server. A client that stops
reading is dropped once more than --max-backlog bytes wait for it. The first
stdout line is ``chat server listening on HOST:PORT`` (flushed), so scripts can
start it with ``--port 0``. Ctrl-C / SIGTERM: everyone is told, then closed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import rudp

from _common import (add_keepalive_argument, add_loop_argument, keepalive_options, loop_name, run,
                     server_address, until_signalled)

MAX_NICK = 32
NICK_TIMEOUT = 30.0
CLOSE_TIMEOUT = 2.0  # seconds a finished session waits for its close to complete


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def check_nick(nick: str) -> str | None:
    """Why ``nick`` is not acceptable (None if it is), uniqueness aside."""
    if not nick:
        return "empty nickname"
    if len(nick) > MAX_NICK:
        return f"nickname longer than {MAX_NICK} characters"
    if any(c.isspace() or not c.isprintable() for c in nick):
        return "nickname must not contain spaces or control characters"
    if nick[0] in "/*<!":
        return "nickname must not start with / * < or !"
    return None


class Client:
    __slots__ = ("nick", "writer", "peer")

    def __init__(self, nick: str, writer: asyncio.StreamWriter) -> None:
        self.nick = nick
        self.writer = writer
        self.peer = writer.get_extra_info("peername")


class ChatServer:
    def __init__(self, max_backlog: int) -> None:
        self.clients: dict[str, Client] = {}
        self.max_backlog = max_backlog
        self.tasks: set[asyncio.Task[None]] = set()

    # -- sending

    def send(self, client: Client, line: str) -> None:
        """Queue a line for one client; drop the client if it does not keep up."""
        tr = client.writer.transport
        if tr.is_closing():
            return
        try:
            client.writer.write(line.encode() + b"\n")
        except (RuntimeError, ConnectionError):  # closed under us
            return
        if tr.get_write_buffer_size() > self.max_backlog:
            log(f"{client.nick}: more than {self.max_backlog} bytes unread, dropping")
            tr.abort()  # its handler sees the reset and removes it

    def broadcast(self, line: str) -> None:
        for client in list(self.clients.values()):
            self.send(client, line)

    # -- one connection

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        peer = writer.get_extra_info("peername")
        client: Client | None = None
        reason = ""
        try:
            client = await self.login(reader, writer, peer)
            if client is not None:
                reason = await self.session(reader, client)
        except asyncio.CancelledError:
            reason = " (server shutting down)"
            raise
        except Exception as exc:  # noqa: BLE001 - one client must never stop the server
            log(f"{peer}: unexpected {exc!r}")
            reason = " (error)"
        finally:
            if task is not None:
                self.tasks.discard(task)
            if client is not None and self.clients.get(client.nick) is client:
                del self.clients[client.nick]
                log(f"{client.nick} left{reason}")
                self.broadcast(f"* {client.nick} left")
            writer.close()  # graceful: queued lines first, then FIN
            try:
                # Also takes the error of a connection the peer reset, which
                # asyncio would otherwise log as "never retrieved".
                await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
            except (ConnectionError, OSError, asyncio.TimeoutError):
                pass

    async def login(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object
    ) -> Client | None:
        try:
            raw = await asyncio.wait_for(reader.readline(), NICK_TIMEOUT)
        except asyncio.TimeoutError:
            writer.write(b"! error: no nickname received\n")
            return None
        except ValueError:
            writer.write(b"! error: nickname line too long\n")
            return None
        except (ConnectionError, TimeoutError, OSError) as exc:
            log(f"{peer}: lost before login: {exc!r}")
            return None
        nick = raw.decode("utf-8", "replace").strip()
        problem = check_nick(nick) if raw else "no nickname (connection closed)"
        if problem is None and nick in self.clients:
            problem = f"nickname {nick!r} is already in use"
        if problem is not None:
            log(f"{peer}: rejected: {problem}")
            writer.write(f"! error: {problem}\n".encode())
            return None
        client = Client(nick, writer)
        others = sorted(self.clients)
        self.clients[nick] = client
        log(f"{nick} joined from {peer}")
        self.send(client, f"* welcome {nick}; online: {', '.join(sorted(others + [nick]))}")
        for other in others:
            self.send(self.clients[other], f"* {nick} joined")
        return client

    async def session(self, reader: asyncio.StreamReader, client: Client) -> str:
        """Relay the client's lines until it leaves; returns why it left (for the log)."""
        while True:
            try:
                raw = await reader.readline()
            except ValueError:
                self.send(client, "! error: line too long, disconnecting")
                return " (line too long)"
            except (ConnectionError, TimeoutError, OSError) as exc:
                return f" ({exc.__class__.__name__}: {exc})"
            if not raw:
                return " (EOF)"
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not text.strip():
                continue
            if text.startswith("/"):
                cmd = text.split()[0].lower()
                if cmd == "/quit":
                    self.send(client, "* bye")
                    return " (/quit)"
                if cmd == "/who":
                    names = sorted(self.clients)
                    self.send(client, f"* online ({len(names)}): {', '.join(names)}")
                else:
                    self.send(client, f"! error: unknown command {cmd} (try /who or /quit)")
                continue
            self.broadcast(f"<{client.nick}> {text}")

    async def shutdown(self) -> None:
        self.broadcast("* server shutting down")
        for client in list(self.clients.values()):
            client.writer.close()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=5)


async def main(args: argparse.Namespace) -> int:
    chat = ChatServer(args.max_backlog)
    server = await rudp.start_server(chat.handle, args.host, args.port, limit=args.max_line,
                                     **keepalive_options(args.keepalive))
    log(f"chat server listening on {server_address(server)} (loop: {loop_name()})")
    sig = await until_signalled()
    log(f"{sig}: shutting down")
    server.close()
    await chat.shutdown()
    closed = asyncio.ensure_future(server.wait_closed())
    done, _ = await asyncio.wait({closed}, timeout=1.0)
    if not done:
        log(f"still closing: {lingering(server)}")
        done, _ = await asyncio.wait({closed}, timeout=4.0)
    if not done:
        log(f"giving up on: {lingering(server)}; resetting them")
        server.abort_clients()
        await asyncio.wait({closed}, timeout=2.0)
    return 0


def lingering(server: rudp.Server) -> str:
    """The connections of the server's UDP socket that are not finished yet."""
    conns = server.endpoint.endpoint.connections.values()
    return ", ".join(f"{c.addr} {c.state.name}" for c in conns if c.state.name != "TIME_WAIT") or "nothing"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0, '::' for IPv6)")
    p.add_argument("--port", type=int, default=9000, help="UDP port (default 9000, 0 = any free port)")
    p.add_argument("--max-line", type=int, default=16 * 1024, help="longest line accepted, bytes")
    p.add_argument("--max-backlog", type=int, default=1 << 20,
                   help="drop a client when this many bytes wait for it beyond its send buffer")
    add_keepalive_argument(p, 60.0)
    add_loop_argument(p)
    return p.parse_args(argv)


if __name__ == "__main__":
    a = parse_args()
    sys.exit(run(main(a), a.loop))
