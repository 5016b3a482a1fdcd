"""A live attack on a default server, over loopback, on both event loops.

A legitimate client echoes 4 to 64 MiB through the server while another
process (tests/live_attack_peer.py, which also relays the client's datagrams)
sends 200,000 malformed and mutated datagrams to the server's UDP port from
plain UDP sockets: every flag byte, truncated headers, bad data offsets and
option lengths, odd MSS and window scales, SACK blocks anywhere, random bytes
and checksums, mutations of the exchange's real segments, SYNs to the
listener, and segments with random sequence numbers aimed at the legitimate
connection's ports on its own UDP path, to both of its ends (RFC 5961). Some
of the attacker's sockets also complete handshakes and behave as hostile
peers. Afterwards: nothing was logged, the transfer is intact, the server's
counters account for the datagrams it read, and new connections are accepted.

Knobs for a longer hunt: RUDP_LIVE_ATTACK_COUNT, RUDP_LIVE_ATTACK_SECONDS,
RUDP_LIVE_ATTACK_PEERS, RUDP_LIVE_ATTACK_SEED (the attacker's seed is printed;
the relay's timing still varies from run to run).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import rudp

Run = Callable[..., Any]

PEER = Path(__file__).with_name("live_attack_peer.py")
MIN_TOTAL = 4 << 20  # bytes the legitimate client sends (and gets back), at least
MAX_TOTAL = 64 << 20  # ... and at most
CHUNK = 1 << 16
# Attack datagrams per run (per loop), and the attack's time bound; the
# environment can raise them for a longer hunt (the run's bound grows along).
COUNT = int(os.environ.get("RUDP_LIVE_ATTACK_COUNT", "200000"))
MAX_ATTACK_SECONDS = float(os.environ.get("RUDP_LIVE_ATTACK_SECONDS", "60"))
HOSTILE_PEERS = int(os.environ.get("RUDP_LIVE_ATTACK_PEERS", "48"))
SEED = os.environ.get("RUDP_LIVE_ATTACK_SEED")

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/net/udp to pace the attack"
)


def udp_socket_stats(inode: int) -> tuple[int, int] | None:
    """(receive queue bytes, drops) of the UDP socket with this inode."""
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if int(parts[9]) == inode:
                return int(parts[4].partition(":")[2], 16), int(parts[-1])
    return None


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1 << 16):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def echo_once(port: int, data: bytes) -> None:
    """A fresh connection: send ``data``, half-close, read it all back, close."""
    reader, writer = await rudp.open_connection("127.0.0.1", port, connect_timeout=20)
    writer.write(data)
    writer.write_eof()
    back = await reader.read()
    assert back == data
    writer.close()
    await writer.wait_closed()


async def read_line(proc: asyncio.subprocess.Process, prefix: str, timeout: float) -> str:
    """The first line of the attacker's stdout that starts with ``prefix`` (bounded)."""
    assert proc.stdout is not None and proc.stderr is not None

    async def find() -> str:
        for _ in range(100):
            line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
            if not line:
                err = await asyncio.wait_for(proc.stderr.read(), 10)  # type: ignore[union-attr]
                raise AssertionError(f"the attacker exited before {prefix!r}:\n{err.decode()}")
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        raise AssertionError(f"no {prefix!r} line")

    return await asyncio.wait_for(find(), timeout)


def snapshot(conn: Any, now: float) -> dict[str, Any]:
    """A connection's sequence state, relative to its ISNs (for a stall's report)."""
    timers = conn.timers
    return {
        "state": conn.state.value,
        "snd_una": conn.snd_una - conn.iss, "snd_nxt": conn.snd_nxt - conn.iss,
        "snd_max": conn.snd_max - conn.iss, "snd_wnd": conn.snd_wnd,
        "rcv_nxt": conn.rcv_nxt - conn.irs, "rcv_wnd": conn.rcv_adv - conn.rcv_nxt,
        "rto": round(conn.rtt.rto, 3), "retries": conn.retries,
        "timers": {k: round(t - now, 3) for k in timers.__slots__
                   if (t := getattr(timers, k)) is not None},
        "stats": {k: v for k, v in conn.stats.as_dict().items() if v},
        "counters": dict(conn.counters),
    }


async def live_attack() -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    server_conns: list[Any] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_conns.append(writer.get_extra_info("connection"))
        try:
            await echo(reader, writer)
        except ConnectionError:
            pass  # the attacker's own connections end with RSTs

    server = await rudp.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    inode = os.fstat(server.sockets[0].fileno()).st_ino
    endpoint = server.endpoint.endpoint
    env = dict(os.environ, PYTHONPATH=str(Path(rudp.__file__).resolve().parent.parent))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(PEER), str(port), "--total", str(MAX_TOTAL), "--count", str(COUNT),
        "--max-seconds", str(MAX_ATTACK_SECONDS), "--hostile-peers", str(HOSTILE_PEERS),
        "--hard-deadline", str(MAX_ATTACK_SECONDS + 30), "--linger", "60",
        *(["--seed", SEED] if SEED else []),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env, limit=1 << 20,
    )
    assert proc.stdin is not None
    try:
        relay_port = int(await read_line(proc, "RELAY ", 30))

        # The legitimate client, through the relay.
        reader, writer = await rudp.open_connection("127.0.0.1", relay_port, remote_port=port)
        conn = writer.get_extra_info("connection")
        lport, rport = conn.local_port, conn.remote_port
        proc.stdin.write(f"GO {lport} {rport} {conn.iss & 0xFFFFFFFF} {conn.irs & 0xFFFFFFFF}\n".encode())
        await proc.stdin.drain()

        # Echo through the server until the attack is over (at least
        # MIN_TOTAL bytes, at most MAX_TOTAL: the attacker holds back what
        # could hit that sequence space); after the attack, half-close and
        # read to EOF.
        attack_over = asyncio.Event()
        progress = {"sent": 0, "received": 0}

        async def send() -> str:
            digest = hashlib.sha256()
            for _ in range(MAX_TOTAL // CHUNK):
                if progress["sent"] >= MIN_TOTAL and attack_over.is_set():
                    break
                chunk = os.urandom(CHUNK)
                writer.write(chunk)
                digest.update(chunk)
                progress["sent"] += CHUNK
                await writer.drain()
            await attack_over.wait()  # the FIN only once the attack is over
            writer.write_eof()
            return digest.hexdigest()

        async def receive() -> str:
            digest = hashlib.sha256()
            for _ in range(MAX_TOTAL + 1):  # bounded: each read but the last returns data
                chunk = await reader.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                progress["received"] += len(chunk)
            return digest.hexdigest()

        history: list[dict[str, Any]] = []

        async def monitor() -> None:
            """Every 2 s, both ends of the legitimate connection (for a stall's report)."""
            for _ in range(1000):
                now = loop.time()
                ends = [c for c in server_conns if c.remote_port == lport and c.local_port == rport]
                history.append({"t": round(now - start, 1), **progress,
                                "client": snapshot(conn, now),
                                "server": snapshot(ends[0], now) if ends else None})
                await asyncio.sleep(2)

        start = loop.time()
        sender = asyncio.ensure_future(send())
        receiver = asyncio.ensure_future(receive())
        watcher = asyncio.ensure_future(monitor())
        done = json.loads(await read_line(proc, "DONE ", MAX_ATTACK_SECONDS + 30))
        during_attack = dict(progress)
        attack_over.set()
        try:
            expected, digest = await asyncio.wait_for(asyncio.gather(sender, receiver), 40)
        except Exception as exc:
            stalled = "\n".join(json.dumps(h) for h in history[-12:])
            raise AssertionError(f"the legitimate transfer did not end ({exc!r}); "
                                 f"the attack: {json.dumps(done['stats'])}; "
                                 f"its last states:\n{stalled}") from exc
        finally:
            watcher.cancel()
        # The connection lived through the whole attack; now it ends cleanly.
        writer.close()
        await writer.wait_closed()
        legit = [c for c in server_conns if c.remote_port == lport and c.local_port == rport]
        assert len(legit) == 1
        for _ in range(100):  # bounded: the server's end gets the last ACK via the relay
            if legit[0].state is rudp.State.CLOSED:
                break
            await asyncio.sleep(0.1)
        assert legit[0].state is rudp.State.CLOSED

        proc.stdin.close()
        relay = json.loads(await read_line(proc, "RELAY_STATS ", 30))
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    # Every datagram sent to the server's socket is read by it or dropped by
    # the kernel (its queue full): wait until the kernel holds none for it.
    stats = done["stats"]
    sent_to_server = stats["to_server"] + relay["relay_c2s"]
    udp = server.endpoint.udp
    kernel_drops = 0
    for _ in range(300):  # bounded: up to ~30 s
        sock_stats = udp_socket_stats(inode)
        assert sock_stats is not None
        queued, kernel_drops = sock_stats
        if queued == 0 or udp.stats["received"] + kernel_drops >= sent_to_server:
            break
        await asyncio.sleep(0.1)
    counters = dict(endpoint.counters)
    listener_counters: dict[str, int] = {}
    for listener in endpoint.listeners.values():
        listener_counters.update(getattr(listener, "counters", {}))
    server_conn_counters = dict(legit[0].counters)
    hostile_counters: dict[str, int] = {}
    for c in server_conns:
        if c is not legit[0]:
            for k, v in c.counters.items():
                hostile_counters[k] = hostile_counters.get(k, 0) + v
    hostile_left = sum(1 for c in server_conns if c.state is not rudp.State.CLOSED)
    hostile_accepted = len(server_conns) - 1
    server.abort_clients()  # what the attacker's RSTs missed
    client_conn_counters = dict(conn.counters)
    received = udp.stats["received"]
    decoded = getattr(endpoint, "segments_received", None)
    seen = None if decoded is None else counters.get("malformed", 0) + counters.get("bad_checksum", 0) + decoded

    # New connections are accepted afterwards.
    await asyncio.wait_for(asyncio.gather(*(echo_once(port, os.urandom(50_000 * (i + 1)))
                                            for i in range(5))), 60)
    server.close()
    await asyncio.wait_for(server.wait_closed(), 30)
    loop.set_exception_handler(None)
    return {
        "digest": digest, "expected": expected, "echoed": progress["received"],
        "during_attack": during_attack,
        "done": done, "relay": relay, "loop_errors": loop_errors,
        "sent_to_server": sent_to_server, "received": received, "kernel_drops": kernel_drops,
        "seen_by_endpoint": seen, "counters": counters, "listener_counters": listener_counters,
        "server_conn_counters": server_conn_counters, "hostile_counters": hostile_counters,
        "hostile_left": hostile_left, "hostile_accepted": hostile_accepted,
        "client_conn_counters": client_conn_counters,
        "ports": (lport, rport), "server_port": port,
        "isns": (conn.iss & 0xFFFFFFFF, conn.irs & 0xFFFFFFFF),
    }


def test_live_attack(run: Run, loop_name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    r = run(live_attack(), timeout=MAX_ATTACK_SECONDS + 150)
    done, stats = r["done"], r["done"]["stats"]
    print(f"\n[{loop_name}] seed {done['seed']}, attacker: {json.dumps(stats, sort_keys=True)}")
    print(f"[{loop_name}] categories: {json.dumps(done['by_category'], sort_keys=True)}")
    print(f"[{loop_name}] legitimate echo: {r['echoed']} bytes, of which sent/received while "
          f"the attack ran: {r['during_attack']}")
    print(f"[{loop_name}] relay: {json.dumps(r['relay'], sort_keys=True)}")
    print(f"[{loop_name}] server socket: sent {r['sent_to_server']}, read {r['received']}, "
          f"kernel drops {r['kernel_drops']}, decoded or counted bad {r['seen_by_endpoint']}")
    print(f"[{loop_name}] endpoint counters: {json.dumps(r['counters'], sort_keys=True)}")
    print(f"[{loop_name}] listener counters: {json.dumps(r['listener_counters'], sort_keys=True)}")
    print(f"[{loop_name}] server conn counters: {json.dumps(r['server_conn_counters'], sort_keys=True)}")
    print(f"[{loop_name}] hostile peers: {r['hostile_accepted']} accepted, "
          f"{r['hostile_left']} left for abort_clients; their counters: "
          f"{json.dumps(r['hostile_counters'], sort_keys=True)}")
    print(f"[{loop_name}] client conn counters: {json.dumps(r['client_conn_counters'], sort_keys=True)}")

    # Nothing went wrong inside the server or the client.
    assert not r["loop_errors"], r["loop_errors"]
    bad = [rec for rec in caplog.records
           if rec.levelno >= logging.WARNING and rec.name.split(".")[0] in ("rudp", "asyncio")]
    assert not bad, [rec.getMessage() for rec in bad]
    assert not [rec for rec in caplog.records if rec.exc_info], "a traceback was logged"
    assert r["counters"].get("connection_faults", 0) == 0

    # The legitimate transfer is intact.
    assert r["digest"] == r["expected"]
    assert r["echoed"] >= MIN_TOTAL

    # The attack was what it claims to be.
    learned = done["learned"]
    assert (learned["lport"], learned["rport"]) == tuple(r["ports"])
    assert (learned["client_iss"], learned["server_iss"]) == tuple(r["isns"])
    assert r["ports"][1] == r["server_port"]
    cov = done["coverage"]
    assert cov["flags"] == list(range(256))
    assert cov["truncated_len"] == list(range(20))
    assert cov["data_offset"] == list(range(16))
    assert cov["mss"] == [0, 1, 12, 87, 88, 65535]
    assert cov["wscale_over_14"]
    assert cov["bad_option_case"] == list(range(12))
    assert cov["mutation_op"] == list(range(9))
    assert cov["rfc5961_kind"] == list(range(10))
    assert stats["generated"] >= COUNT or stats["attack_seconds_x1000"] >= MAX_ATTACK_SECONDS * 1000
    assert stats["path_to_server"] > 0 and stats["path_to_client"] > 0
    if HOSTILE_PEERS:
        assert stats["hostile_established"] > 0
        assert cov["hostile_action"] == list(range(13))

    # The server read what was sent (the attacker waits while its queue is
    # long, so that little is lost to the kernel: none in the runs here), and
    # its counters account for the datagrams it read: each was decoded or
    # counted as bad, and most were counted as dropped or answered.
    attack = stats["to_server"]
    assert r["received"] + r["kernel_drops"] <= r["sent_to_server"]
    if r["seen_by_endpoint"] is not None:
        assert r["seen_by_endpoint"] == r["received"]
    attack_read = r["received"] - r["relay"]["relay_c2s"]  # at least this many attack datagrams
    assert attack_read >= attack // 2
    dropped = sum(v for k, v in r["counters"].items() if k not in ("accepted",))
    dropped += sum(v for k, v in r["listener_counters"].items()
                   if k not in ("syn_received", "cookies_validated"))
    dropped += sum(v for k, v in r["server_conn_counters"].items() if k != "refusal_acks_limited")
    assert dropped >= attack_read // 2, (dropped, attack_read)
    # RFC 5961 at work on the legitimate connection's server side.
    refused = r["server_conn_counters"]
    assert refused.get("rst_challenged", 0) + refused.get("syn_challenged", 0) \
        + refused.get("ack_unsent", 0) + refused.get("ack_too_old", 0) \
        + refused.get("out_of_window", 0) > 0
