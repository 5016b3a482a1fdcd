"""rudp command line: netcat-like ``listen``/``connect`` (also through NATs, with a
``rendezvous`` server) and a ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import signal
import ssl
import sys
import time
from typing import Any

from .. import __version__, aio, core
from ..aio import introspect
from ..aio import holepunch, rendezvous
from ..core import events
from ..core.config import Config
from ..core.endpoint import Endpoint
from . import perf, ss
from .proxy import LossyProxy
from .sim import LinkConfig, Simulator
from .stdio import StdinReader

_CHUNK = 64 * 1024
_LINGER_BOUND = 10.0  # seconds; the engine's linger is max(1 s, 3 RTO)


def _run(coro: Any, loop_name: str) -> Any:
    if loop_name == "uvloop":
        try:
            import uvloop
        except ImportError:
            print("uvloop is not installed; using the default loop", file=sys.stderr)
        else:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # works on 3.10 too
            try:
                return asyncio.run(coro)
            finally:
                asyncio.set_event_loop_policy(None)
    return asyncio.run(coro)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """stdin -> connection (then half-close) and connection -> stdout."""
    stdin_reader = StdinReader()
    stdin = await stdin_reader.open()

    async def upstream() -> None:
        while data := await stdin.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # half-close: the peer sees EOF, we keep reading

    async def downstream() -> None:
        out = sys.stdout.buffer
        while data := await reader.read(_CHUNK):
            out.write(data)
            out.flush()

    up = asyncio.ensure_future(upstream())
    try:
        await downstream()
        await up
    finally:
        up.cancel()
        stdin_reader.close()
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


def add_capture_options(p: argparse.ArgumentParser) -> None:
    """``--pcap`` and ``--event-log``, for every command that opens sockets."""
    p.add_argument("--pcap", metavar="FILE",
                   help="write every segment this side sends and receives to a pcap file "
                        "(tshark -r FILE -d udp.port==PORT,tcp)")
    p.add_argument("--event-log", metavar="FILE",
                   help="write state changes, RTT samples, cwnd changes and losses as JSON lines "
                        "('-': stderr)")


def capture_options(args: argparse.Namespace) -> dict[str, Any]:
    """The rudp options ``add_capture_options`` asked for (none if absent)."""
    opts: dict[str, Any] = {}
    if getattr(args, "pcap", None):
        opts["pcap"] = args.pcap
    event_log = getattr(args, "event_log", None)
    if event_log:
        opts["event_log"] = sys.stderr if event_log == "-" else event_log
    return opts


def _options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = capture_options(args)
    if args.nodelay:
        opts["nodelay"] = True
    if args.checksum:
        opts["checksum"] = True
    return opts


async def _listen(args: argparse.Namespace) -> int:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    failed: list[BaseException] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if done.done():
            writer.close()  # like nc -l: one connection
            return
        try:
            await _pipe(reader, writer)
        except ConnectionError as exc:  # the peer reset: say so and exit 1, as connect does
            failed.append(exc)
        finally:
            if not done.done():
                done.set_result(None)

    introspect.expose_or_warn()  # `rudp ss` lists this process's connections
    try:
        server = await aio.start_server(handle, args.host, args.port, **_options(args))
    except OSError as exc:  # e.g. the port is taken: one line, as nc says it
        print(f"rudp: cannot listen on port {args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    name = server.sockets[0].getsockname()
    log = logging.getLogger("rudp")
    log.info("listening on %s port %s", name[0], name[1])
    try:
        await done
    finally:
        # --verbose: the listener's counters (half-open, SYN cookies, drops,
        # rate-limited replies), as netstat -s would give them.
        log.info("listener: %s", " ".join(f"{k}={v}" for k, v in sorted(server.stats().items())))
        server.close()
        await server.wait_closed()
    if failed:
        print(f"rudp: {failed[0]}", file=sys.stderr)
        return 1
    return 0


def _tls_contexts(args: argparse.Namespace) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """--tls: (client, server) contexts with this peer's certificate, trusting
    --cafile. TLS 1.3 only, for its half-close (RFC 8446 §6.1); the server
    side requires the peer's certificate too, so both peers authenticate."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.verify_mode = ssl.CERT_REQUIRED
    for context in (client, server):
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_cert_chain(args.cert, args.key)
        context.load_verify_locations(cafile=args.cafile)
    return client, server


def _check_peer_name(writer: asyncio.StreamWriter, name: str) -> str | None:
    """Why the peer's certificate does not carry ``name`` as a DNS name, or None.

    The TLS client checked it in the handshake (check_hostname); a TLS
    server does not check its client's names, so both sides check here."""
    cert = writer.get_extra_info("peercert") or {}
    names = [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
    if name.lower() in (n.lower() for n in names):
        return None
    return (f"the peer's certificate is for {', '.join(names) or 'no DNS name'}, "
            f"not {name!r} (--peer-name)")


def _tls_failure(exc: ssl.SSLError) -> str:
    text = str(exc).lower()
    hint = ""
    if "hostname mismatch" in text:
        hint = "; --peer-name must be a DNS name of the peer's certificate"
    elif "alert" in text:
        hint = "; the peer refused our certificate (see its --cafile and --peer-name)"
    elif "certificate verify failed" in text:
        hint = "; --cafile must hold the CA that signed the peer's certificate"
    return f"rudp: TLS: {exc}{hint}"


async def _connect(args: argparse.Namespace) -> int:
    try:
        if args.rendezvous is not None:
            reader, writer = await _open_rendezvous(args)
        else:
            reader, writer = await aio.open_connection(args.host, args.port, **_options(args))
    except ssl.SSLError as exc:
        print(_tls_failure(exc), file=sys.stderr)
        return 1
    except (ConnectionError, TimeoutError, OSError) as exc:
        print(f"rudp: {exc}", file=sys.stderr)
        return 1
    # Taken now: a TLS transport forgets the connection's extra info once closed.
    endpoint = writer.get_extra_info("endpoint")
    if args.tls:
        mismatch = _check_peer_name(writer, args.peer_name)
        if mismatch is not None:
            print(f"rudp: TLS: {mismatch}", file=sys.stderr)
            writer.transport.abort()
            return 1
        print(f"rudp: TLS {writer.get_extra_info('ssl_object').version()} with {args.peer_name!r}, "
              f"its certificate verified against {args.cafile}", file=sys.stderr)
    try:
        await _pipe(reader, writer)
    except ssl.SSLError as exc:
        print(_tls_failure(exc), file=sys.stderr)
        return 1
    except ConnectionError as exc:
        print(f"rudp: {exc}", file=sys.stderr)
        return 1
    if endpoint is not None:
        # A hole-punched connection's peer does not hear ICMP: stay for the
        # socket's short TIME_WAIT linger, to re-ACK its FIN if our ACK was lost.
        try:
            await asyncio.wait_for(endpoint.wait_closed(), _LINGER_BOUND)
        except asyncio.TimeoutError:
            pass
    return 0


async def _open_rendezvous(args: argparse.Namespace) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Meet the peer of ``--room`` at ``--rendezvous`` and connect to it directly."""

    def waiting(public: tuple[str, int]) -> None:
        print(f"rudp: in room {args.room!r} at {args.rendezvous} as {public[0]}:{public[1]}; "
              "waiting for the peer", file=sys.stderr)

    def relaying(reason: str) -> None:
        print(f"rudp: {reason}\nrudp: relaying through the rendezvous server {args.rendezvous} "
              "instead (--relay): it carries all the traffic", file=sys.stderr)

    opts = _options(args)
    if args.keepalive is not None:
        opts.update(holepunch.keepalive_options(args.keepalive))
    if args.tls:
        client, server = _tls_contexts(args)
        opts.update(ssl=client, ssl_server=server, server_hostname=args.peer_name, ssl_half_close=True)
    local = ("0.0.0.0", args.local_port) if args.local_port else None
    reader, writer = await aio.open_rendezvous_connection(
        args.rendezvous, args.room, local_addr=local, punch_timeout=args.punch_timeout,
        on_wait=waiting, relay=args.relay, on_relay=relaying, **opts)
    nat = writer.get_extra_info("nat_mapping")
    how = "through the relay at" if nat["relayed"] else "directly to"
    print(f"rudp: connected {how} {nat['peer'][0]}:{nat['peer'][1]} "
          f"(our public address {nat['public'][0]}:{nat['public'][1]})", file=sys.stderr)
    return reader, writer


async def _rendezvous(args: argparse.Namespace) -> int:
    transport, server = await aio.start_rendezvous_server(args.host, args.port, relay=args.relay)
    name = transport.get_extra_info("sockname")
    print(f"rudp: rendezvous server on {name[0]} port {name[1]}"
          f"{' (relays for peers that ask)' if args.relay else ''}", file=sys.stderr)
    try:
        await asyncio.Event().wait()  # until interrupted
    finally:
        logging.getLogger("rudp").info(
            "rendezvous: %s", " ".join(f"{k}={v}" for k, v in sorted(server.counters.items())))
        transport.close()
    return 0


async def _demo(args: argparse.Namespace) -> int:
    """A server and a client in one process over loopback, through a lossy relay."""
    size = args.size
    data = os.urandom(size)
    received: list[bytes] = []
    server_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        digest = hashlib.sha256()
        n = 0
        while chunk := await reader.read(_CHUNK):
            digest.update(chunk)
            n += len(chunk)
        writer.write(f"{n} {digest.hexdigest()}\n".encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        server_done.set_result(None)

    server = await aio.start_server(handle, "127.0.0.1", 0)
    sport = server.sockets[0].getsockname()[1]
    proxy = LossyProxy(
        ("127.0.0.1", sport), loss=args.loss, delay=args.delay, reorder=args.loss,
        duplicate=args.loss / 2, seed=args.seed,
    )
    phost, pport = await proxy.start()
    print(f"server on 127.0.0.1:{sport}; client goes through a relay on {phost}:{pport} "
          f"dropping {args.loss:.0%}, delaying {args.delay * 1000:.0f} ms, reordering and duplicating")
    started = time.perf_counter()
    reader, writer = await aio.open_connection(phost, pport, remote_port=sport)
    for i in range(0, size, _CHUNK):
        writer.write(data[i : i + _CHUNK])
        await writer.drain()
    writer.write_eof()
    reply = await reader.read()
    received.append(reply)
    stats = writer.get_extra_info("stats")
    writer.close()
    await writer.wait_closed()
    elapsed = time.perf_counter() - started
    await server_done
    server.close()
    await server.wait_closed()
    proxy.close()
    n, digest = reply.decode().split()
    ok = int(n) == size and digest == hashlib.sha256(data).hexdigest()
    print(f"sent {size} bytes in {elapsed:.2f} s ({size / elapsed / 1e6:.2f} MB/s) over a real UDP path")
    print(f"relay forwarded {proxy.forwarded} datagrams and dropped {proxy.dropped}")
    print(f"client: {stats['segments_sent']} segments sent, {stats['retransmits']} retransmissions "
          f"(fast {stats['fast_retransmits']}, timeouts {stats['timeouts']})")
    print(f"server confirmed {n} bytes, SHA-256 {digest[:16]}... {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


def _sim_demo(args: argparse.Namespace) -> int:
    """The same transfer over the deterministic simulator."""
    size = args.size
    data = bytes(i * 7 % 251 for i in range(size))
    sim = Simulator(args.seed)
    client_addr, server_addr = ("client", 1), ("server", 2)
    client = Endpoint(Config(), seed=args.seed)
    server = Endpoint(Config(), seed=args.seed + 1)
    received = bytearray()

    def on_client(conn: Any, ev: events.Event) -> None:
        if isinstance(ev, events.Connected):
            conn.send(data)
            conn.close()

    def on_server(conn: Any, ev: events.Event) -> None:
        if isinstance(ev, (events.DataReceived, events.EofReceived)):
            received.extend(conn.read())
        if isinstance(ev, events.EofReceived):
            conn.close()

    sim.add_endpoint(client_addr, client, on_client)
    sim.add_endpoint(server_addr, server, on_server)
    link = LinkConfig(delay=max(args.delay, 0.001), bandwidth=20e6, loss=args.loss,
                      reorder=args.loss, duplicate=args.loss / 2)
    sim.connect(client_addr, server_addr, link)
    server.listen(80)
    conn = client.connect(server_addr, 80, 0.0)
    sim.service(client_addr)
    sim.run(until=3600, stop=lambda: conn.state.value in ("CLOSED", "TIME_WAIT"))
    ok = bytes(received) == data
    print(f"simulated {size} bytes in {sim.now:.2f} s of virtual time; "
          f"{conn.stats.retransmits} retransmissions; {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


async def _terminable(coro: Any) -> Any:
    """Run ``coro``; SIGTERM cancels it, so that its ``finally`` blocks run
    (connections closed, the `rudp ss` socket removed at exit), and the exit
    status is 143 as for a process the signal killed."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated = []

    def on_term() -> None:
        terminated.append(True)
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, on_term)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        pass
    try:
        return await coro
    except asyncio.CancelledError:
        if terminated:
            return 128 + signal.SIGTERM
        raise


def version_line() -> str:
    """``rudp 0.1.0 (engine: mypyc-compiled)`` or ``(engine: pure Python)``."""
    form = "mypyc-compiled" if core.COMPILED else "pure Python"
    return f"rudp {__version__} (engine: {form})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rudp", description="TCP over UDP for asyncio")
    parser.add_argument("--version", action="version", version=version_line())
    parser.add_argument("-v", "--verbose", action="store_true", help="log state changes to stderr")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--nodelay", action="store_true", help="disable Nagle's algorithm")
        p.add_argument("--checksum", action="store_true", help="checksum the segments we send")
        add_capture_options(p)

    p = sub.add_parser("listen", help="accept one connection and pipe it to stdin/stdout")
    p.add_argument("port", type=int)
    p.add_argument("--host", help="address to bind (default: every IPv4 address)")
    common(p)
    p = sub.add_parser("connect", help="connect and pipe stdin/stdout (half-close on EOF, also with --tls)",
                       usage="rudp connect [options] HOST PORT\n"
                             "       rudp connect [options] --rendezvous HOST:PORT --room NAME")
    p.add_argument("host", nargs="?")
    p.add_argument("port", type=int, nargs="?")
    p.add_argument("--rendezvous", metavar="HOST:PORT",
                   help="meet the peer at this rendezvous server and connect to it directly, "
                        "through both NATs (hole punching)")
    p.add_argument("--room", help="with --rendezvous: the name both peers give")
    p.add_argument("--local-port", type=int, default=0, help="with --rendezvous: the UDP port to use")
    p.add_argument("--punch-timeout", type=float, default=10.0,
                   help="with --rendezvous: give up on a direct path after this many seconds")
    p.add_argument("--keepalive", type=float, metavar="SECS",
                   help="with --rendezvous: keep-alive after SECS idle (default 15; 0 = off)")
    p.add_argument("--relay", action="store_true",
                   help="with --rendezvous: if no direct path, relay through the rendezvous server "
                        "(both peers must ask, the server must allow it; it carries all the traffic)")
    p.add_argument("--tls", action="store_true",
                   help="with --rendezvous: TLS 1.3 between the peers, both authenticated "
                        "(needs --cert, --key, --cafile, --peer-name); stdin EOF sends close_notify, "
                        "which closes our direction only")
    p.add_argument("--cert", metavar="FILE", help="with --tls: this peer's certificate (PEM, chain allowed)")
    p.add_argument("--key", metavar="FILE", help="with --tls: its private key (PEM)")
    p.add_argument("--cafile", metavar="FILE",
                   help="with --tls: the CA certificate(s) the peer's certificate must chain to")
    p.add_argument("--peer-name", metavar="NAME",
                   help="with --tls: the DNS name the peer's certificate must carry (required)")
    common(p)
    p = sub.add_parser("perf", help="measure throughput, like iperf3 (-s server, -c HOST client)")
    perf.add_arguments(p)
    add_capture_options(p)  # with -c: the data streams' socket
    p = sub.add_parser("ss", help="list the rudp connections and listeners of this machine, like ss -tani")
    p.add_argument("--json", action="store_true", help="one JSON object for machines")
    p.add_argument("-l", "--listening", action="store_true", help="listeners only")
    p = sub.add_parser("rendezvous", help="introduce peers behind NATs (rudp connect --rendezvous)")
    p.add_argument("port", type=int)
    p.add_argument("--host", help="address to bind (default: every IPv4 address)")
    p.add_argument("--relay", action="store_true",
                   help="relay for pairs of peers that found no direct path and both ask (connect --relay)")
    p = sub.add_parser("demo", help="a transfer through a lossy path, reported")
    p.add_argument("--size", type=int, default=4_000_000)
    p.add_argument("--loss", type=float, default=0.02)
    p.add_argument("--delay", type=float, default=0.002, help="one-way delay of the relay (s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sim", action="store_true", help="use the simulator instead of sockets")
    args = parser.parse_args(argv)
    if args.command == "connect":
        if args.rendezvous is not None:
            if args.host is not None or not args.room:
                parser.error("connect --rendezvous HOST:PORT takes --room NAME and no HOST PORT")
            try:
                rendezvous.parse_host_port(args.rendezvous)
            except ValueError as exc:
                parser.error(f"--rendezvous: {exc}")
        elif args.host is None or args.port is None:
            parser.error("connect needs HOST PORT (or --rendezvous HOST:PORT --room NAME)")
        tls_args = [f"--{n.replace('_', '-')}" for n in ("cert", "key", "cafile", "peer_name")
                    if getattr(args, n) is not None]
        if args.tls:
            if args.rendezvous is None:
                parser.error("--tls is for connect --rendezvous")
            missing = [f"--{n.replace('_', '-')}" for n in ("cert", "key", "cafile", "peer_name")
                       if not getattr(args, n)]
            if missing:
                parser.error(f"--tls needs {', '.join(missing)}")
            try:
                _tls_contexts(args)
            except (OSError, ssl.SSLError) as exc:
                parser.error(f"--tls: cannot load --cert/--key/--cafile: {exc}")
        elif tls_args:
            parser.error(f"{', '.join(tls_args)} only with --tls")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "listen":
            return int(_run(_terminable(_listen(args)), args.loop))
        if args.command == "connect":
            return int(_run(_connect(args), args.loop))
        if args.command == "perf":
            return int(_run(_terminable(perf.main(args, parser)), args.loop))
        if args.command == "ss":
            return ss.main(args.json, args.listening, sys.stdout)
        if args.command == "rendezvous":
            return int(_run(_terminable(_rendezvous(args)), args.loop))
        if args.sim:
            return _sim_demo(args)
        return int(_run(_demo(args), args.loop))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
