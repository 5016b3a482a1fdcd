#!/usr/bin/env python3
"""Send files over rudp and check them with SHA-256.

Receive into a directory (runs until Ctrl-C / SIGTERM):

    python examples/send_file.py serve 9000 --out /tmp/incoming

Send one file (a progress bar goes to stderr):

    python examples/send_file.py send 192.0.2.10 9000 ./big.iso

Protocol, one file per connection:

    sender -> receiver   {"name": "big.iso", "size": 123456}\\n   (one JSON line)
                         then exactly `size` bytes, then FIN (half-close)
    receiver -> sender   OK <sha256 hex>\\n     or     ERR <reason>\\n

The receiver stores the data as DIR/name.part, renames it to DIR/name (or
name.1, name.2, ... if taken) once all bytes are there, and replies with the
SHA-256 of what it wrote; the sender compares it with its own and exits 0
only if they match.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import rudp

from _common import add_loop_argument, close_server, loop_name, run, server_address, until_signalled

CHUNK = 256 * 1024
MAX_HEADER = 4096


# -- receiving


def safe_name(name: object) -> str:
    """The file name to store, or ValueError: a plain name, never a path."""
    if not isinstance(name, str):
        raise ValueError("name must be a string")
    if not name or name in (".", "..") or len(name.encode()) > 255:
        raise ValueError(f"bad file name {name!r}")
    if any(c in name for c in "/\\\0") or name.startswith("."):
        raise ValueError(f"bad file name {name!r}: no paths or hidden files")
    return name


def free_path(out: Path, name: str) -> Path:
    path = out / name
    n = 0
    while path.exists() or path.with_name(path.name + ".part").exists():
        n += 1
        path = out / f"{name}.{n}"
    return path


async def receive_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, out: Path, max_size: int) -> None:
    peer = writer.get_extra_info("peername")
    part: Path | None = None

    def reply(line: str) -> None:
        writer.write(line.encode() + b"\n")

    try:
        try:
            header = json.loads(await reader.readuntil(b"\n"))
            name = safe_name(header.get("name"))
            size = header.get("size")
            if not isinstance(size, int) or not 0 <= size <= max_size:
                raise ValueError(f"bad size {size!r} (limit {max_size})")
        except (ValueError, AttributeError, asyncio.LimitOverrunError, asyncio.IncompleteReadError) as exc:
            reply(f"ERR bad header: {exc}")
            print(f"{peer}: bad header: {exc}", file=sys.stderr)
            return
        path = free_path(out, name)
        part = path.with_name(path.name + ".part")
        digest = hashlib.sha256()
        started = time.monotonic()
        with open(part, "xb") as f:
            left = size
            while left:
                data = await reader.read(min(left, CHUNK))
                if not data:
                    reply(f"ERR short file: got {size - left} of {size} bytes")
                    print(f"{peer}: {name}: connection ended after {size - left} of {size} bytes", file=sys.stderr)
                    return
                f.write(data)
                digest.update(data)
                left -= len(data)
        extra = await reader.read(1)
        if extra:
            reply("ERR more data than the announced size")
            print(f"{peer}: {name}: more data than announced", file=sys.stderr)
            return
        os.replace(part, path)
        part = None
        hexdigest = digest.hexdigest()
        reply(f"OK {hexdigest}")
        secs = time.monotonic() - started
        print(f"received {path} ({size} bytes, sha256 {hexdigest}) from {peer} in {secs:.2f} s", flush=True)
    except ConnectionError as exc:
        print(f"{peer}: {exc!r}", file=sys.stderr)
    finally:
        if part is not None:
            part.unlink(missing_ok=True)
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 10)
        except (ConnectionError, asyncio.TimeoutError):
            pass


async def serve(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    server = await rudp.start_server(
        lambda r, w: receive_one(r, w, out, args.max_size), args.host, args.port, limit=MAX_HEADER,
        **mss_option(args)
    )
    print(f"send_file receiver listening on {server_address(server)}, writing to {out} (loop: {loop_name()})",
          flush=True)
    sig = await until_signalled()
    print(f"{sig}: shutting down", file=sys.stderr)
    await close_server(server)
    return 0


# -- sending


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


class Progress:
    """A plain-text progress bar on stderr, redrawn at most 10 times a second.

    On a terminal it redraws one line with \\r; otherwise (a log file) it writes
    a line per second at most.
    """

    def __init__(self, total: int, name: str, enabled: bool = True) -> None:
        self.total = total
        self.name = name
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.interval = 0.1 if self.tty else 1.0
        self.started = time.monotonic()
        self.last = 0.0
        self.last_text = ""

    def update(self, done: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < self.interval:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-6)
        frac = done / self.total if self.total else 1.0
        width = 30
        filled = int(frac * width)
        rate = done / elapsed
        eta = (self.total - done) / rate if rate > 0 and not final else 0.0
        text = (f"{self.name} [{'#' * filled}{'.' * (width - filled)}] {frac * 100:5.1f}% "
                f"{human(done)}/{human(self.total)} {human(rate)}/s "
                f"{'in' if final else 'ETA'} {int(elapsed if final else eta) // 60}:"
                f"{int(elapsed if final else eta) % 60:02d}")
        if text == self.last_text and not final:
            return
        self.last_text = text
        if self.tty:
            sys.stderr.write("\r" + text + "\x1b[K" + ("\n" if final else ""))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def acked_bytes(writer: asyncio.StreamWriter, written: int) -> int:
    """Of ``written`` bytes, those the receiver has acknowledged.

    The transport's "connection" (an rudp.Connection) knows how many written
    bytes are still unacknowledged; without it, fall back to the bytes queued
    beyond the send buffer, which runs ahead of the receiver by that buffer.
    """
    conn = writer.get_extra_info("connection")
    pending = conn.send_buffer_size if conn is not None else writer.transport.get_write_buffer_size()
    return max(0, written - pending)


async def wait_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, written: int,
                     stall_timeout: float) -> bytes:
    """The receiver's reply line; TimeoutError if the transfer stalls that long.

    The tail of the file (up to the send buffer) is still in flight when the
    last write returns, so a fixed deadline would fail slow links: give up only
    when nothing more gets acknowledged for ``stall_timeout`` seconds.
    """
    reply = asyncio.ensure_future(reader.readline())
    try:
        acked, since = -1, time.monotonic()
        while True:
            done, _ = await asyncio.wait({reply}, timeout=0.5)
            if done:
                return reply.result()
            now_acked = acked_bytes(writer, written)
            if now_acked != acked:
                acked, since = now_acked, time.monotonic()
            elif time.monotonic() - since > stall_timeout:
                raise asyncio.TimeoutError(f"no progress for {stall_timeout:g} s")
    finally:
        reply.cancel()


async def send(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        size = path.stat().st_size
        f = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 1
    name = args.name or path.name
    try:
        safe_name(name)
    except ValueError as exc:
        print(f"{exc}; pass --name", file=sys.stderr)
        return 1
    try:
        reader, writer = await rudp.open_connection(args.host, args.port, connect_timeout=args.timeout,
                                                    **mss_option(args))
    except (OSError, TimeoutError) as exc:
        print(f"cannot connect to {args.host}:{args.port}: {exc}", file=sys.stderr)
        f.close()
        return 1
    progress = Progress(size, name, enabled=not args.quiet)
    digest = hashlib.sha256()
    header = json.dumps({"name": name, "size": size}).encode() + b"\n"
    written = 0  # header and file bytes handed to the writer
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            progress.update(max(0, acked_bytes(writer, written) - len(header)))
            try:
                await asyncio.wait_for(stop.wait(), progress.interval)
            except asyncio.TimeoutError:
                pass

    tick = asyncio.create_task(ticker())
    try:
        with f:
            writer.write(header)
            written = len(header)
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                writer.write(chunk)
                written += len(chunk)
                await writer.drain()
        writer.write_eof()
        line = await wait_reply(reader, writer, written, args.stall_timeout)
    except (ConnectionError, asyncio.TimeoutError) as exc:
        stop.set()
        await tick
        print(f"\ntransfer failed: {exc!r}", file=sys.stderr)
        writer.transport.abort()
        return 1
    finally:
        stop.set()
    await tick
    writer.close()
    reply = line.decode(errors="replace").strip()
    ours = digest.hexdigest()
    if reply.startswith("OK "):
        theirs = reply[3:].strip()
        if theirs == ours:
            progress.update(size, final=True)
            print(f"sent {name}: {size} bytes, sha256 {ours} verified by the receiver")
            result = 0
        else:
            print(f"\nSHA-256 MISMATCH: ours {ours}, receiver's {theirs}", file=sys.stderr)
            result = 1
    else:
        print(f"\nreceiver refused the file: {reply or 'connection closed without a reply'}", file=sys.stderr)
        result = 1
    try:
        await asyncio.wait_for(writer.wait_closed(), 10)
    except (ConnectionError, asyncio.TimeoutError):
        pass
    return result


def mss_option(args: argparse.Namespace) -> dict[str, int]:
    return {"mss": args.mss} if args.mss else {}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="receive files into a directory")
    s.add_argument("port", type=int, help="UDP port to listen on (0 = any, printed on start)")
    s.add_argument("--out", required=True, help="directory for received files")
    s.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    s.add_argument("--max-size", type=int, default=1 << 40, help="largest file accepted, bytes")
    s.add_argument("--mss", type=int, help="largest segment to accept (lower it for paths with a small MTU)")
    add_loop_argument(s)
    c = sub.add_parser("send", help="send one file")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("file")
    c.add_argument("--name", help="name to store it under (default: the file's name)")
    c.add_argument("--timeout", type=float, default=10.0, help="connect timeout, seconds")
    c.add_argument("--stall-timeout", type=float, default=60.0,
                   help="give up when nothing is acknowledged for this long, seconds")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    c.add_argument("--mss", type=int, help="largest segment to accept (lower it for paths with a small MTU)")
    add_loop_argument(c)
    return p.parse_args(argv)


if __name__ == "__main__":
    a = parse_args()
    sys.exit(run(serve(a) if a.command == "serve" else send(a), a.loop))
