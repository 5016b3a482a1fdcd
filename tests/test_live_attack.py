"""A live attack on a default server, over loopback, on both event loops.

A legitimate client echoes a few MB through the server while another process
(tests/live_attack_peer.py, which also relays the client's datagrams) sends
200,000 malformed and mutated datagrams to the server's UDP port: every flag
byte, truncated headers, bad data offsets and option lengths, odd MSS and
window scales, SACK blocks anywhere, random bytes and checksums, mutations of
the exchange's real segments, SYNs to the listener, and segments with random
sequence numbers aimed at the legitimate connection's own ports and UDP path
(RFC 5961). Afterwards: nothing was logged, the transfer is intact, the
server's counters account for the attack, and new connections are accepted.
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
COUNT = 200_000  # attack datagrams per run (per loop)
MAX_ATTACK_SECONDS = 60.0

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


async def read_line(stream: asyncio.StreamReader, prefix: str, timeout: float) -> str:
    """The first line of ``stream`` that starts with ``prefix`` (bounded)."""
    async def find() -> str:
        for _ in range(100):
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"the attacker exited before {prefix!r}")
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        raise AssertionError(f"no {prefix!r} line")

    return await asyncio.wait_for(find(), timeout)


async def live_attack() -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    server_conns: list[Any] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_conns.append(writer.get_extra_info("connection"))
        await echo(reader, writer)

    server = await rudp.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    inode = os.fstat(server.sockets[0].fileno()).st_ino
    endpoint = server.endpoint.endpoint
    env = dict(os.environ, PYTHONPATH=str(Path(rudp.__file__).resolve().parent.parent))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(PEER), str(port), "--total", str(MAX_TOTAL), "--count", str(COUNT),
        "--max-seconds", str(MAX_ATTACK_SECONDS),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        relay_port = int(await read_line(proc.stdout, "RELAY ", 30))

        # The legitimate client, through the relay.
        reader, writer = await rudp.open_connection("127.0.0.1", relay_port, remote_port=port)
        conn = writer.get_extra_info("connection")
        lport, rport = conn.local_port, conn.remote_port
        proc.stdin.write(f"GO {lport} {rport} {conn.iss & 0xFFFFFFFF} {conn.irs & 0xFFFFFFFF}\n".encode())
        await proc.stdin.drain()

        # Echo through the server until the attack is over (at least
        # MIN_TOTAL bytes, at most MAX_TOTAL: the attacker holds back what
        # could hit that sequence space), then half-close and read to EOF.
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

        sender = asyncio.ensure_future(send())
        receiver = asyncio.ensure_future(receive())
        done = json.loads(await read_line(proc.stdout, "DONE ", MAX_ATTACK_SECONDS + 30))
        during_attack = dict(progress)
        attack_over.set()
        expected = await sender
        digest = await receiver
        # The connection lived through the whole attack; now it ends cleanly.
        writer.close()
        await writer.wait_closed()

        proc.stdin.close()
        relay = json.loads(await read_line(proc.stdout, "RELAY_STATS ", 30))
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    # Every datagram sent to the server's socket was read by it or dropped by
    # the kernel (its queue full): wait until the server has read what is left.
    stats = done["stats"]
    sent_to_server = stats["to_server"] + relay["relay_c2s"]
    udp = server.endpoint.udp
    kernel_drops = 0
    for _ in range(300):  # bounded: up to ~30 s
        sock_stats = udp_socket_stats(inode)
        assert sock_stats is not None
        kernel_drops = sock_stats[1]
        if udp.stats["received"] + kernel_drops >= sent_to_server:
            break
        await asyncio.sleep(0.1)
    counters = dict(endpoint.counters)
    listener_counters: dict[str, int] = {}
    for listener in endpoint.listeners.values():
        listener_counters.update(getattr(listener, "counters", {}))
    server_conn_counters = dict(server_conns[0].counters) if server_conns else {}
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
        "server_conn_counters": server_conn_counters, "client_conn_counters": client_conn_counters,
        "ports": (lport, rport), "server_port": port,
    }


def test_live_attack(run: Run, loop_name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    r = run(live_attack(), timeout=110)
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
    assert r["ports"][1] == r["server_port"]
    cov = done["coverage"]
    assert cov["flags"] == list(range(256))
    assert cov["truncated_len"] == list(range(20))
    assert cov["data_offset"] == list(range(16))
    assert set(cov["mss"]) >= {0, 1, 12, 87, 88, 65535}
    assert cov["wscale_over_14"]
    assert cov["bad_option_case"] == list(range(12))
    assert cov["mutation_op"] == list(range(9))
    assert cov["rfc5961_kind"] == list(range(10))
    assert stats["generated"] >= COUNT or stats["attack_seconds_x1000"] >= MAX_ATTACK_SECONDS * 1000
    assert stats["path_to_server"] > 0 and stats["path_to_client"] > 0

    # The server read what was sent (the attacker waits while its queue is
    # long, so that little is lost to the kernel), and its counters account
    # for the datagrams it read: each was decoded or counted as bad.
    attack = stats["to_server"]
    assert r["received"] + r["kernel_drops"] == r["sent_to_server"]
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
