"""Interoperability with the Linux kernel's own TCP as a live peer.

Each test creates a fresh network namespace, and runs its scenario in a
subprocess inside it (``ip netns exec NS python -m tests.test_kernel_interop
SCENARIO ARGS``).  In there `rudp.tools.tunbridge.TunBridge` owns a TUN device
(10.77.0.1/30, MTU 1500; the fake peer is 10.77.0.2) and a UDP socket on
127.0.0.1, and an rudp endpoint, the bridge and a kernel TCP socket share one
event loop.  The scenario prints one JSON line of facts (digests, exceptions,
the SYNs the bridge saw, TCP_INFO, kernel counters, timings); the test here
asserts on them.  The namespace is deleted afterwards, whatever happened.

Needs root (CAP_NET_ADMIN), /dev/net/tun and ``ip netns``; skipped otherwise.
The packet helpers of the bridge are tested without privileges too.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest

from rudp.core import wire
from rudp.tools.tunbridge import (
    PacketError,
    build_ipv4_tcp,
    parse_ipv4,
    rudp_checksum_ok,
    rudp_checksummed,
    tcp_checksum_ipv4_ok,
)

ROOT = Path(__file__).resolve().parent.parent
MTU = 1500
RUDP_MSS = 1432  # rudp.core.config.DEFAULT_MSS
TS_OPT = 12  # NOP NOP TS
RESULT = "RESULT "
SUBPROCESS_TIMEOUT = 30.0

# --------------------------------------------------------------------------
# Unprivileged: the bridge's packet helpers.


def _kernel_style_segment() -> tuple[bytes, bytes, bytes]:
    """A SYN as Linux sends it (MSS, SACK-OK, TS, NOP, WS) with a pseudo-header checksum."""
    opts = bytes.fromhex("020405b4" "0402" "080a0001e24000000000" "01" "030307")
    hdr = struct.pack(">HHIIBBHHH", 40000, 5555, 123456, 0, (20 + len(opts)) // 4 << 4, wire.SYN, 64240, 0, 0)
    src, dst = socket.inet_aton("10.77.0.1"), socket.inet_aton("10.77.0.2")
    packet = build_ipv4_tcp(src, dst, hdr + opts)
    return src, dst, packet


def test_ipv4_roundtrip_and_both_checksums() -> None:
    src, dst, packet = _kernel_style_segment()
    ip = parse_ipv4(packet)
    assert (ip.src, ip.dst, ip.proto) == (src, dst, 6)
    assert tcp_checksum_ipv4_ok(src, dst, ip.payload)
    # The same segment with rudp's checksum (no pseudo-header) verifies for rudp...
    seg = rudp_checksummed(ip.payload)
    assert rudp_checksum_ok(seg)
    decoded = wire.decode(seg)  # verify_checksum=True
    assert (decoded.mss, decoded.sack_permitted, decoded.ts, decoded.wscale) == (1460, True, (123456, 0), 7)
    # ... and not for the kernel, and vice versa.
    assert not tcp_checksum_ipv4_ok(src, dst, seg)
    with pytest.raises(wire.ChecksumError):
        wire.decode(ip.payload)
    # Checksum off: field zero, accepted unverified.
    assert rudp_checksummed(ip.payload, enabled=False)[16:18] == b"\0\0"
    # Back towards the kernel: the IPv4 wrapping restores the pseudo-header checksum.
    again = parse_ipv4(build_ipv4_tcp(src, dst, seg))
    assert again.payload == ip.payload


def test_rudp_encoded_segment_crosses_to_kernel_form() -> None:
    seg = wire.Segment(1, 2, 3, 4, wire.ACK | wire.PSH, 5, b"odd length payload!", ts=(7, 8), sack=((10, 20),))
    data = wire.encode(seg)
    assert rudp_checksum_ok(data)
    src, dst = socket.inet_aton("10.77.0.2"), socket.inet_aton("10.77.0.1")
    ip = parse_ipv4(build_ipv4_tcp(src, dst, data, ident=9))
    assert tcp_checksum_ipv4_ok(src, dst, ip.payload)
    assert wire.decode(rudp_checksummed(ip.payload)) == seg
    corrupt = bytearray(build_ipv4_tcp(src, dst, data))
    corrupt[3] ^= 1  # total length
    with pytest.raises(PacketError):
        parse_ipv4(bytes(corrupt))


# --------------------------------------------------------------------------
# Privileged: namespaces and scenarios.


def _skip_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) for network namespaces and TUN"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    try:
        os.close(os.open("/dev/net/tun", os.O_RDWR))
    except OSError as exc:
        return f"cannot open /dev/net/tun: {exc}"
    return None


_ns_counter = itertools.count()


@pytest.fixture
def netns() -> Iterator[str]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    name = f"rudp-kern-{os.getpid()}-{next(_ns_counter)}"
    add = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=10)
    if add.returncode != 0:
        pytest.skip(f"`ip netns add` failed: {add.stderr.strip()}")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=10)


def run_scenario(ns: str, name: str, **kwargs: Any) -> dict[str, Any]:
    """Run scenario `name` in namespace `ns`; its JSON facts, or fail with its stderr."""
    return run_module_scenario("tests.test_kernel_interop", SUBPROCESS_TIMEOUT, ("timings", "bridge"),
                               (), ns, name, kwargs)


def run_module_scenario(module: str, timeout: float, facts: tuple[str, ...], hidden: tuple[str, ...],
                        ns: str, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``python -m module name kwargs`` in namespace ``ns``: the JSON facts of
    its last RESULT line, or fail with its stderr; prints ``facts`` (and the
    arguments but ``hidden``) for the log."""
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-m", module, name, json.dumps(kwargs)],
            cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"scenario {name} hung for {timeout} s; stderr:\n{exc.stderr}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if proc.returncode != 0 or not lines:
        pytest.fail(f"scenario {name} failed (rc={proc.returncode}):\n{proc.stderr}\n{proc.stdout[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT):])
    result["wall"] = round(time.monotonic() - t0, 3)
    shown = {k: v for k, v in kwargs.items() if k not in hidden}
    print(f"{name} {shown}: {json.dumps({k: result[k] for k in (*facts, 'wall') if k in result})}")
    return result


def _assert_clean(r: dict[str, Any], syn_challenges: bool = False) -> None:
    """No segment either side rejected: checksums, decoding, oversize, kernel errors.

    Linux counts a SYN it answers with a challenge ACK (RFC 5961 §4) in InErrs; only
    a test with handshake retransmissions (``syn_challenges``) may see one: a
    retransmitted SYN-ACK that arrives after the kernel's handshake completed.
    """
    b = r["bridge"]
    for key in ("to_rudp_bad_kernel_checksum", "to_kernel_bad_rudp_checksum", "to_rudp_decode_error",
                "to_kernel_decode_error", "to_rudp_oversize", "to_kernel_oversize", "tun_write_error"):
        assert b.get(key, 0) == 0, (key, b)
    k = r["kernel_counters"]
    assert k.get("Tcp.InCsumErrors", 0) == 0, k
    challenges = k.get("TcpExt.TCPSYNChallenge", 0)
    assert challenges == 0 or syn_challenges, k
    assert k.get("Tcp.InErrs", 0) == challenges, k
    for ep in r["rudp_endpoints"]:
        assert ep.get("bad_checksum", 0) == 0 and ep.get("malformed", 0) == 0, ep


@pytest.mark.parametrize(
    "loop,checksum", [("asyncio", True), ("uvloop", False)], ids=["asyncio-checksum", "uvloop-nochecksum"]
)
def test_kernel_client_to_rudp_server_echo(netns: str, loop: str, checksum: bool) -> None:
    """Kernel TCP client -> bridge -> rudp echo server: 3 MB echoed, FIN both ways."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    size = 3_000_000
    r = run_scenario(netns, "kernel_client_echo", size=size, checksum=checksum, loop=loop)
    assert r["rudp_received"] == size and r["rudp_digest_ok"]
    assert r["kernel_received"] == size and r["kernel_digest_ok"]
    assert r["rudp_saw_eof"] and r["kernel_saw_eof"]
    # The rudp server's FIN was acknowledged by the kernel: LAST_ACK -> CLOSED.
    assert r["rudp_final_state"] == "CLOSED"
    # The kernel closed first and then got rudp's FIN: FIN_WAIT_2 -> TIME_WAIT.
    assert r["kernel_final_state"] == "TIME_WAIT", r["kernel_final_state"]
    _assert_clean(r)


def test_kernel_client_through_a_syn_cookie(netns: str) -> None:
    """The kernel's TCP connects to a rudp server answering every SYN with a
    SYN cookie (syn_cookies="always", RFC 4987 §3.6): the kernel's ACK brings
    the cookie back, window scale and SACK-permitted come back from the
    TSval it echoes, and 1 MB echoes both ways with the options in force."""
    size = 1_000_000
    r = run_scenario(netns, "kernel_client_echo", size=size, checksum=True, loop="asyncio",
                     syn_cookies="always")
    assert r["listener"]["cookies_sent"] >= 1 and r["listener"]["cookies_validated"] == 1
    assert r["listener"].get("cookies_rejected", 0) == 0
    ws_ok, sack_ok, ts_ok, snd_wscale = r["rudp_options"]
    assert ws_ok and sack_ok and ts_ok and snd_wscale > 0  # all carried by the cookie
    assert r["rudp_received"] == size and r["rudp_digest_ok"]
    assert r["kernel_received"] == size and r["kernel_digest_ok"]
    assert r["rudp_final_state"] == "CLOSED" and r["kernel_final_state"] == "TIME_WAIT"
    _assert_clean(r)


def test_rudp_client_to_kernel_listener_half_close(netns: str) -> None:
    """rudp client -> bridge -> kernel listener: 2 MB up, write_eof, the kernel reads
    EOF and replies with 2 MB and closes; rudp reads it all and EOF."""
    r = run_scenario(netns, "rudp_client_half_close", up=2_000_000, down=2_000_000)
    assert r["kernel_received"] == 2_000_000 and r["kernel_digest_ok"]
    assert r["kernel_saw_eof"]
    assert r["rudp_received"] == 2_000_000 and r["rudp_digest_ok"] and r["rudp_saw_eof"]
    assert r["rudp_final_state"] == "TIME_WAIT"
    # The kernel's LAST_ACK got rudp's ACK of its FIN: the socket is gone.
    assert r["kernel_final_state"] in (None, "CLOSE"), r["kernel_final_state"]
    _assert_clean(r)


def test_resets_both_ways(netns: str) -> None:
    """SO_LINGER 0 close by the kernel -> ConnectionResetError in rudp;
    rudp abort() -> ConnectionResetError from the kernel's recv; in both roles."""
    r = run_scenario(netns, "resets")
    for case in ("kernel_client_rsts_rudp_server", "kernel_listener_rsts_rudp_client",
                 "rudp_client_aborts_kernel_listener", "rudp_server_aborts_kernel_client"):
        assert r[case]["error"] == "ConnectionResetError", (case, r[case])
        assert r[case]["rst_segments"] >= 1, (case, r[case])
    _assert_clean(r)


def test_option_negotiation(netns: str) -> None:
    """Kernel SYN / SYN-ACK options decode with rudp.core.wire; the kernel accepts rudp's."""
    r = run_scenario(netns, "options")
    max_mss = MTU - 40

    # 1. The kernel connects: its SYN, rudp's SYN-ACK, what each side agreed to.
    a = r["kernel_client"]
    ksyn, rsynack = a["syn"], a["synack"]
    assert ksyn["flags"] == wire.SYN and ksyn["error"] is None
    assert ksyn["mss"] == max_mss  # the kernel derives its MSS from the TUN's MTU
    assert ksyn["sack_permitted"] and ksyn["ts"] is not None and ksyn["ts"][1] == 0
    assert ksyn["wscale"] is not None
    assert rsynack["flags"] == wire.SYN | wire.ACK
    assert rsynack["mss"] is not None and rsynack["mss"] <= max_mss
    assert rsynack["ts"][1] == ksyn["ts"][0] and rsynack["sack_permitted"]
    assert rsynack["wscale"] is not None
    info = a["kernel_tcp_info"]
    assert info["options"] & 0x7 == 0x7, info  # TCPI_OPT_TIMESTAMPS | SACK | WSCALE
    assert info["snd_wscale"] == rsynack["wscale"] and info["rcv_wscale"] == ksyn["wscale"]
    assert info["snd_mss"] == rsynack["mss"] - TS_OPT
    neg = a["rudp_negotiated"]
    assert neg["ts_ok"] and neg["sack_ok"] and neg["ws_ok"]
    assert neg["peer_mss"] == max_mss and neg["snd_wscale"] == min(ksyn["wscale"], 14)

    # 2. rudp connects: its SYN, the kernel's SYN-ACK echoes TS and SACK-OK.
    b = r["rudp_client"]
    rsyn, ksynack = b["syn"], b["synack"]
    assert rsyn["flags"] == wire.SYN
    assert rsyn["mss"] == RUDP_MSS <= max_mss
    assert rsyn["sack_permitted"] and rsyn["ts"] is not None and rsyn["wscale"] is not None
    assert ksynack["flags"] == wire.SYN | wire.ACK and ksynack["error"] is None
    assert ksynack["ack"] == (rsyn["seq"] + 1) % 2**32
    assert ksynack["ts"] is not None and ksynack["ts"][1] == rsyn["ts"][0]
    assert ksynack["sack_permitted"] and ksynack["wscale"] is not None
    assert ksynack["mss"] == max_mss
    info = b["kernel_tcp_info"]
    assert info["options"] & 0x7 == 0x7, info
    assert info["snd_wscale"] == rsyn["wscale"] and info["rcv_wscale"] == ksynack["wscale"]
    assert info["snd_mss"] == RUDP_MSS - TS_OPT
    neg = b["rudp_negotiated"]
    assert neg["ts_ok"] and neg["sack_ok"] and neg["ws_ok"] and neg["peer_mss"] == max_mss
    # Data flowed both ways after the handshake (timestamps passed PAWS).
    assert a["echo_ok"] and b["echo_ok"]
    assert r["kernel_counters"].get("TcpExt.PAWSEstab", 0) == 0
    _assert_clean(r)


@pytest.mark.parametrize("variant", [
    "kernel:tcp_ecn=1", "kernel:tcp_timestamps=0", "kernel:tcp_sack=0", "kernel:tcp_window_scaling=0",
    "rudp:timestamps", "rudp:sack", "rudp:window_scale",
])
def test_option_negotiation_variants(netns: str, variant: str) -> None:
    """An option one side does not offer is in no SYN-ACK and neither side uses it
    (RFC 7323 §2.2, §3.2; RFC 2018 §2), whichever side switched it off and
    whichever side connects; an ECN-setup SYN (ECE|CWR, RFC 3168 §6.1.1) gets a
    plain SYN-ACK, since rudp is not ECN-capable."""
    side, setting = variant.split(":")
    if side == "kernel":
        key, value = setting.split("=")
        r = run_scenario(netns, "options", sysctl={key: value})
    else:
        r = run_scenario(netns, "options", rudp_options={setting: False})
    off = {"kernel:tcp_timestamps=0": "ts", "rudp:timestamps": "ts", "kernel:tcp_sack=0": "sack",
           "rudp:sack": "sack", "kernel:tcp_window_scaling=0": "ws", "rudp:window_scale": "ws"}.get(variant)
    ts_on, sack_on, ws_on = off != "ts", off != "sack", off != "ws"
    want_bits = (1 if ts_on else 0) | (2 if sack_on else 0) | (4 if ws_on else 0)  # TCPI_OPT_*
    kernel_offers = side == "rudp" or off is None

    a = r["kernel_client"]  # the kernel's SYN, rudp's SYN-ACK
    ksyn, rsynack = a["syn"], a["synack"]
    ecn_syn = wire.SYN | wire.ECE | wire.CWR
    assert ksyn["flags"] == (ecn_syn if variant == "kernel:tcp_ecn=1" else wire.SYN)
    assert rsynack["flags"] == wire.SYN | wire.ACK  # never ECE in reply: no ECN
    if kernel_offers:
        assert ksyn["ts"] is not None and ksyn["sack_permitted"] and ksyn["wscale"] is not None
    assert (rsynack["ts"] is not None) == ts_on
    assert rsynack["sack_permitted"] == sack_on
    assert (rsynack["wscale"] is not None) == ws_on
    assert a["kernel_tcp_info"]["options"] == want_bits, a["kernel_tcp_info"]
    assert a["kernel_tcp_info"]["snd_mss"] == RUDP_MSS - (TS_OPT if ts_on else 0)
    neg = a["rudp_negotiated"]
    assert (neg["ts_ok"], neg["sack_ok"], neg["ws_ok"]) == (ts_on, sack_on, ws_on)

    b = r["rudp_client"]  # rudp's SYN, the kernel's SYN-ACK
    rsyn, ksynack = b["syn"], b["synack"]
    assert (rsyn["ts"] is not None) == (side == "kernel" or off != "ts")
    assert rsyn["sack_permitted"] == (side == "kernel" or off != "sack")
    assert (rsyn["wscale"] is not None) == (side == "kernel" or off != "ws")
    assert (ksynack["ts"] is not None) == ts_on and ksynack["sack_permitted"] == sack_on
    assert (ksynack["wscale"] is not None) == ws_on
    assert b["kernel_tcp_info"]["options"] == want_bits, b["kernel_tcp_info"]
    assert b["kernel_tcp_info"]["snd_mss"] == RUDP_MSS - (TS_OPT if ts_on else 0)
    neg = b["rudp_negotiated"]
    assert (neg["ts_ok"], neg["sack_ok"], neg["ws_ok"]) == (ts_on, sack_on, ws_on)
    assert a["echo_ok"] and b["echo_ok"]
    _assert_clean(r)


def test_lossy_bridge_both_stacks_recover(netns: str) -> None:
    """3% of segments dropped each way (seeded): 2 MB each way still intact."""
    r = run_scenario(netns, "rudp_client_half_close", up=2_000_000, down=2_000_000, loss=0.03, seed=7)
    assert r["bridge"].get("to_rudp_lost", 0) > 10 and r["bridge"].get("to_kernel_lost", 0) > 10, r["bridge"]
    assert r["kernel_received"] == 2_000_000 and r["kernel_digest_ok"]
    assert r["rudp_received"] == 2_000_000 and r["rudp_digest_ok"] and r["rudp_saw_eof"]
    assert r["rudp_final_state"] == "TIME_WAIT"
    # rudp recovered from the kernel's SACKs and dupACKs, not only by timeouts...
    assert r["rudp_stats"]["fast_retransmits"] > 0, r["rudp_stats"]
    # ... and the kernel used rudp's SACK blocks (RFC 2018) and found none invalid.
    k = r["kernel_counters"]
    assert k.get("TcpExt.TCPSackRecovery", 0) > 0, k
    assert k.get("TcpExt.TCPSACKDiscard", 0) == 0 and k.get("TcpExt.TCPSACKReneging", 0) == 0, k
    _assert_clean(r)


def test_zero_window_both_ways(netns: str) -> None:
    """A stalled receiver closes its window; the sender's persist timer probes and the
    transfer resumes on the window update: rudp -> kernel and kernel -> rudp."""
    stall = 0.6
    r = run_scenario(netns, "flow_control", size=1_000_000, stall=stall)
    a, b = r["rudp_to_stalled_kernel"], r["kernel_to_stalled_rudp"]
    assert a["received"] == 1_000_000 and a["digest_ok"]
    assert b["received"] == 1_000_000 and b["digest_ok"]
    k = r["kernel_counters"]
    assert k.get("TcpExt.TCPToZeroWindowAdv", 0) >= 1, k  # the kernel closed its window...
    assert a["rudp_stats"]["zero_window_probes"] >= 1, a  # ... and rudp probed it
    assert k.get("TcpExt.TCPWinProbe", 0) >= 1, k  # the kernel probed rudp's zero window
    assert b["seconds"] < stall + 2.0, b  # and heard rudp's window update without a long backoff
    _assert_clean(r)


def test_kernel_keepalive_probes_answered_by_rudp(netns: str) -> None:
    """The kernel's keep-alive probes (SEG.SEQ = SND.UNA - 1, no data) draw ACKs
    from rudp: the idle connection outlives the kernel's 3-second verdict."""
    r = run_scenario(netns, "keepalive", side="kernel")
    assert r["kernel_counters"].get("TcpExt.TCPKeepAlive", 0) >= 2, r["kernel_counters"]
    assert r["alive"] is True, r["alive"]
    _assert_clean(r)


def test_rudp_keepalive_probes_answered_by_kernel(netns: str) -> None:
    """rudp's keep-alive probes draw ACKs from the kernel, and rudp keeps the idle connection."""
    r = run_scenario(netns, "keepalive", side="rudp")
    assert r["rudp_stats"]["keepalives_sent"] >= 2, r
    assert r["probes_seen"] == r["rudp_stats"]["keepalives_sent"], r
    assert r["kernel_answers"] >= r["probes_seen"], r  # the kernel answered every probe
    assert r["alive"] is True and r["rudp_state"] == "ESTABLISHED", r
    _assert_clean(r)


def test_handshake_losses_and_refusals(netns: str) -> None:
    """Lost SYN-ACK (either side's) is recovered by retransmission; a lost third ACK
    by the first data segment; a SYN to a port nobody listens on is refused (RST)."""
    r = run_scenario(netns, "handshakes")
    for case in ("rudp_synack_lost", "kernel_third_ack_lost", "kernel_synack_lost", "rudp_third_ack_lost"):
        assert r[case]["reply_ok"] and r[case]["dropped"] == 1, (case, r[case])
    # A SYN-ACK loss costs one SYN retransmission timeout (1 s initial RTO, RFC 6298 §2.1).
    assert 0.9 < r["rudp_synack_lost"]["connect_s"] < 4.0, r["rudp_synack_lost"]
    assert 0.9 < r["kernel_synack_lost"]["connect_s"] < 4.0, r["kernel_synack_lost"]
    # A lost third ACK costs nothing: the data segment's ACK completes the handshake.
    assert r["kernel_third_ack_lost"]["hello_world_s"] < 0.5, r["kernel_third_ack_lost"]
    assert r["rudp_third_ack_lost"]["hello_world_s"] < 0.5, r["rudp_third_ack_lost"]
    assert r["kernel_refuses_rudp"] == "ConnectionRefusedError"
    assert r["rudp_refuses_kernel"] == "ConnectionRefusedError"
    # rudp_synack_lost: rudp's SYN-ACK RTO and the kernel's SYN retransmission both fire
    # at ~1 s; rudp may answer both, and the second SYN-ACK can reach the kernel after
    # its handshake completed: one challenge ACK, harmless.
    _assert_clean(r, syn_challenges=True)


def test_simultaneous_close(netns: str) -> None:
    """Both close at once: the FINs cross, both sides pass CLOSING and end in TIME_WAIT."""
    r = run_scenario(netns, "simultaneous_close")
    fins = r["fins"]
    assert len(fins) == 2 and {f["direction"] for f in fins} == {"to_kernel", "to_rudp"}, fins
    by_dir = {f["direction"]: f for f in fins}
    # Neither FIN acknowledges the other: they crossed.
    assert by_dir["to_kernel"]["ack"] == by_dir["to_rudp"]["seq"], fins
    assert by_dir["to_rudp"]["ack"] == by_dir["to_kernel"]["seq"], fins
    assert "FIN_WAIT_1->CLOSING" in r["rudp_transitions"], r["rudp_transitions"]
    assert r["rudp_final_state"] == "TIME_WAIT"
    assert r["kernel_final_state"] == "TIME_WAIT"
    _assert_clean(r)


# --------------------------------------------------------------------------
# Scenario side: runs inside the namespace (python -m tests.test_kernel_interop).

TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
              7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}
STEP = 10.0  # bound on any single wait


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def kernel_counters() -> dict[str, int]:
    """Tcp (snmp) and TcpExt (netstat) counters of this network namespace."""
    out: dict[str, int] = {}
    for path, prefixes in (("/proc/net/snmp", ("Tcp:",)), ("/proc/net/netstat", ("TcpExt:",))):
        lines = Path(path).read_text().splitlines()
        for names, values in zip(lines[::2], lines[1::2]):
            if names.startswith(prefixes):
                label = names.split(":")[0]
                for n, v in zip(names.split()[1:], values.split()[1:]):
                    out[f"{label}.{n}"] = int(v)
    return out


def counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    skip = {"Tcp.RtoAlgorithm", "Tcp.RtoMin", "Tcp.RtoMax", "Tcp.MaxConn", "Tcp.CurrEstab"}
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0) and k not in skip}


def tcp_info(sock: socket.socket) -> dict[str, int]:
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    b = struct.unpack_from("8B", raw)
    u = struct.unpack_from("24I", raw, 8)
    return {
        "state": b[0], "retransmits": b[2], "probes": b[3], "options": b[5], "snd_wscale": b[6] & 0xF, "rcv_wscale": b[6] >> 4,
        "rto_us": u[0], "snd_mss": u[2], "rcv_mss": u[3], "total_retrans": u[23],
    }


def kernel_socket_state(local_port: int, remote_port: int) -> str | None:
    """State of the kernel's TCP socket with these ports in /proc/net/tcp (None: gone)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        lport, rport = int(f[1].split(":")[1], 16), int(f[2].split(":")[1], 16)
        if (lport, rport) == (local_port, remote_port):
            return TCP_STATES.get(int(f[3], 16), f[3])
    return None


async def wait_kernel_state(local_port: int, remote_port: int, want: set[str | None]) -> str | None:
    deadline = time.monotonic() + 3.0
    while True:
        state = kernel_socket_state(local_port, remote_port)
        if state in want or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.01)


def seg_dict(rec: Any) -> dict[str, Any]:
    s = rec.segment
    d: dict[str, Any] = {"direction": rec.direction, "raw": rec.raw.hex(), "error": rec.error,
                         "flags": rec.raw[13]}
    if s is not None:
        d.update(seq=s.seq, ack=s.ack, window=s.window, mss=s.mss, wscale=s.wscale,
                 sack_permitted=s.sack_permitted, ts=list(s.ts) if s.ts else None)
    return d


def find_syn(bridge: Any, direction: str, flags: int, port: int) -> dict[str, Any]:
    """The first segment with exactly SYN/ACK `flags` in `direction` that involves TCP `port`."""
    for rec in bridge.records:
        if rec.direction != direction or rec.raw[13] & (wire.SYN | wire.ACK) != flags:
            continue
        ports = struct.unpack_from(">HH", rec.raw)
        if port in ports:
            return seg_dict(rec)
    raise AssertionError(f"no {flags:#x} segment {direction} for port {port}")


def negotiated(conn: Any) -> dict[str, Any]:
    return {"ts_ok": conn.ts_ok, "sack_ok": conn.sack_ok, "ws_ok": conn.ws_ok,
            "peer_mss": conn.peer_mss, "snd_wscale": conn.snd_wscale, "rcv_wscale": conn.rcv_wscale}


async def read_all(reader: asyncio.StreamReader) -> tuple[int, Any, bytes]:
    """(bytes, sha256, first 32 bytes) of everything until EOF, each read bounded."""
    h = hashlib.sha256()
    n = 0
    head = b""
    while chunk := await asyncio.wait_for(reader.read(1 << 20), STEP):
        if len(head) < 32:
            head += chunk[: 32 - len(head)]
        h.update(chunk)
        n += len(chunk)
    return n, h, head


async def write_all(writer: asyncio.StreamWriter, data: bytes, eof: bool = True) -> None:
    for i in range(0, len(data), 1 << 16):
        writer.write(data[i : i + (1 << 16)])
        await asyncio.wait_for(writer.drain(), STEP)
    if eof:
        writer.write_eof()


class Ctx:
    """One scenario: a started bridge, rudp endpoints to report on, counters."""

    def __init__(self, bridge: Any) -> None:
        self.bridge = bridge
        self.endpoints: list[Any] = []
        self.before = kernel_counters()
        self.t0 = time.monotonic()
        self.timings: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.timings[name] = round(time.monotonic() - self.t0, 4)

    def report(self, **facts: Any) -> dict[str, Any]:
        facts.update(
            timings=self.timings,
            bridge=dict(self.bridge.counters),
            kernel_counters=counter_delta(self.before, kernel_counters()),
            rudp_endpoints=[dict(ep.counters) for ep in self.endpoints],
        )
        if os.environ.get("RUDP_KERNEL_TRACE"):
            facts["trace"] = [_trace_line(rec) for rec in self.bridge.records]
        return facts


def _endpoint_of(writer: asyncio.StreamWriter) -> Any:
    """The sans-IO Endpoint behind an rudp client's private UDP socket (for its counters)."""
    return writer.transport._owner.endpoint  # type: ignore[attr-defined]


async def _bridge(**options: Any) -> Any:
    from rudp.tools.tunbridge import TunBridge

    if os.environ.get("RUDP_KERNEL_TRACE"):  # debugging aid: every segment goes into the report
        options["record_all"] = True
    return await TunBridge(mtu=MTU, **options).start()


def _trace_line(rec: Any) -> str:
    names = "FSRPAUEC"
    flags = "".join(n for i, n in enumerate(names) if rec.raw[13] >> i & 1)
    sport, dport, seq, ack = struct.unpack_from(">HHII", rec.raw)
    s = rec.segment
    extra = "" if s is None else f" win={s.window} len={len(s.payload)} ts={s.ts} sack={s.sack}"
    return f"{rec.time:8.4f} {rec.direction:9} {sport}>{dport} {flags:4} seq={seq} ack={ack}{extra} {rec.error or ''}"


async def scenario_kernel_client_echo(size: int, checksum: bool = True, loss: float = 0.0, seed: int = 0,
                                      syn_cookies: str = "auto", **_: Any) -> dict[str, Any]:
    import rudp

    bridge = await _bridge(checksum=checksum, loss=loss, seed=seed)
    ctx = Ctx(bridge)
    done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = writer.transport.get_extra_info("connection")
        h = hashlib.sha256()
        n = 0
        try:
            while data := await asyncio.wait_for(reader.read(1 << 16), STEP):
                h.update(data)
                n += len(data)
                writer.write(data)
                await asyncio.wait_for(writer.drain(), STEP)
            ctx.mark("rudp_eof")
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), STEP)
            ctx.mark("rudp_closed")
            done.set_result({"n": n, "digest": h.hexdigest(), "eof": reader.at_eof(), "state": conn.state.value,
                             "options": [conn.ws_ok, conn.sack_ok, conn.ts_ok, conn.snd_wscale]})
        except BaseException as exc:
            done.set_exception(exc)

    server = await rudp.start_server(echo, "127.0.0.1", 0, checksum=checksum, syn_cookies=syn_cookies)
    ctx.endpoints.append(server.endpoint.endpoint)
    port = server.sockets[0].getsockname()[1]
    bridge.route(port, ("127.0.0.1", port))
    data = payload(size, 1)
    want = hashlib.sha256(data).hexdigest()

    ctx.mark("start")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(bridge.remote_ip, port), STEP)
    ctx.mark("connected")
    ksock = writer.get_extra_info("socket")
    kport = ksock.getsockname()[1]
    sender = asyncio.ensure_future(write_all(writer, data))
    n, h, _ = await read_all(reader)
    await sender
    ctx.mark("kernel_eof")
    srv = await asyncio.wait_for(done, STEP)
    kstate = await wait_kernel_state(kport, port, {"TIME_WAIT"})
    listener_stats = server.stats()
    writer.close()
    server.close()
    bridge.close()
    return ctx.report(
        listener=listener_stats, rudp_options=srv["options"],
        rudp_received=srv["n"], rudp_digest_ok=srv["digest"] == want, rudp_saw_eof=srv["eof"],
        rudp_final_state=srv["state"], kernel_received=n, kernel_digest_ok=h.hexdigest() == want,
        kernel_saw_eof=reader.at_eof(), kernel_final_state=kstate,
        mbit_s=round(2 * size * 8 / 1e6 / (ctx.timings["kernel_eof"] - ctx.timings["connected"]), 1),
    )


async def scenario_rudp_client_half_close(up: int, down: int, checksum: bool = True, loss: float = 0.0,
                                          seed: int = 0, **_: Any) -> dict[str, Any]:
    import rudp

    bridge = await _bridge(checksum=checksum, loss=loss, seed=seed)
    ctx = Ctx(bridge)
    up_data, down_data = payload(up, 2), payload(down, 3)
    done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def kernel_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            n, h, _ = await read_all(reader)
            ctx.mark("kernel_eof")
            writer.write(h.digest())
            await write_all(writer, down_data, eof=False)
            info = tcp_info(writer.get_extra_info("socket"))
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), STEP)
            ctx.mark("kernel_closed")
            done.set_result({"n": n, "digest": h.hexdigest(), "eof": reader.at_eof(), "tcp_info": info})
        except BaseException as exc:
            done.set_exception(exc)

    listener = await asyncio.start_server(kernel_handler, bridge.local_ip, 0)
    kport = listener.sockets[0].getsockname()[1]
    ctx.mark("start")
    reader, writer = await asyncio.wait_for(
        rudp.open_connection("127.0.0.1", bridge.udp_address[1], remote_port=kport, checksum=checksum), STEP
    )
    ctx.mark("connected")
    conn = writer.transport.get_extra_info("connection")
    ctx.endpoints.append(_endpoint_of(writer))
    await write_all(writer, up_data)
    ctx.mark("rudp_sent")
    n, h, head = await read_all(reader)
    ctx.mark("rudp_eof")
    k = await asyncio.wait_for(done, STEP)
    kstate = await wait_kernel_state(kport, conn.local_port, {None, "CLOSE"})
    rstate = conn.state.value
    writer.close()
    listener.close()
    bridge.close()
    reply_ok = head == hashlib.sha256(up_data).digest()
    rest_digest = hashlib.sha256(hashlib.sha256(up_data).digest() + down_data).hexdigest()
    return ctx.report(
        kernel_received=k["n"], kernel_digest_ok=k["digest"] == hashlib.sha256(up_data).hexdigest(),
        kernel_saw_eof=k["eof"], rudp_received=n - 32, rudp_digest_ok=reply_ok and h.hexdigest() == rest_digest,
        rudp_saw_eof=reader.at_eof(), rudp_final_state=rstate, kernel_final_state=kstate,
        rudp_stats=conn.stats.as_dict(), kernel_tcp_info=k["tcp_info"],
        up_mbit_s=round(up * 8 / 1e6 / (ctx.timings["kernel_eof"] - ctx.timings["connected"]), 1),
        down_mbit_s=round(down * 8 / 1e6 / (ctx.timings["rudp_eof"] - ctx.timings["kernel_eof"]), 1),
    )


def _count_rst(bridge: Any, direction: str, port: int) -> int:
    return sum(
        1 for rec in bridge.records
        if rec.direction == direction and rec.raw[13] & wire.RST and port in struct.unpack_from(">HH", rec.raw)
    )


async def scenario_resets(**_: Any) -> dict[str, Any]:
    import rudp

    bridge = await _bridge()
    ctx = Ctx(bridge)
    loop = asyncio.get_running_loop()
    out: dict[str, Any] = {}

    async def expect_reset(reader: asyncio.StreamReader) -> str:
        try:
            data = await asyncio.wait_for(reader.read(1000), STEP)
        except (ConnectionError, OSError) as exc:
            return type(exc).__name__
        return f"no error, read {data!r}"

    def linger0(sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    # Kernel-side client against an rudp server: the kernel RSTs, then rudp aborts.
    for case, kernel_resets in (("kernel_client_rsts_rudp_server", True),
                                ("rudp_server_aborts_kernel_client", False)):
        result: asyncio.Future[str] = loop.create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          kernel_resets: bool = kernel_resets, result: asyncio.Future[str] = result) -> None:
            await reader.readexactly(5)
            writer.write(b"world")
            if kernel_resets:
                result.set_result(await expect_reset(reader))
            else:
                await asyncio.sleep(0.05)
                writer.transport.abort()
                result.set_result("aborted")

        server = await rudp.start_server(handler, "127.0.0.1", 0)
        ctx.endpoints.append(server.endpoint.endpoint)
        port = server.sockets[0].getsockname()[1]
        bridge.route(port, ("127.0.0.1", port))
        reader, writer = await asyncio.wait_for(asyncio.open_connection(bridge.remote_ip, port), STEP)
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.readexactly(5), STEP) == b"world"
        if kernel_resets:
            linger0(writer.get_extra_info("socket"))
            writer.transport.abort()
            error = await asyncio.wait_for(result, STEP)
            direction = "to_rudp"
        else:
            error = await expect_reset(reader)
            await result
            writer.close()
            direction = "to_kernel"
        out[case] = {"error": error, "rst_segments": _count_rst(bridge, direction, port)}
        server.close()
        ctx.mark(case)

    # rudp client against a kernel listener: the kernel RSTs, then rudp aborts.
    for case, kernel_resets in (("kernel_listener_rsts_rudp_client", True),
                                ("rudp_client_aborts_kernel_listener", False)):
        result = loop.create_future()

        async def khandler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           kernel_resets: bool = kernel_resets, result: asyncio.Future[str] = result) -> None:
            await reader.readexactly(5)
            writer.write(b"world")
            if kernel_resets:
                await asyncio.sleep(0.05)
                linger0(writer.get_extra_info("socket"))
                writer.transport.abort()
                result.set_result("reset")
            else:
                result.set_result(await expect_reset(reader))

        listener = await asyncio.start_server(khandler, bridge.local_ip, 0)
        kport = listener.sockets[0].getsockname()[1]
        reader, writer = await asyncio.wait_for(
            rudp.open_connection("127.0.0.1", bridge.udp_address[1], remote_port=kport), STEP
        )
        ctx.endpoints.append(_endpoint_of(writer))
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.readexactly(5), STEP) == b"world"
        if kernel_resets:
            error = await expect_reset(reader)
            await asyncio.wait_for(result, STEP)
            direction = "to_rudp"
        else:
            writer.transport.abort()
            error = await asyncio.wait_for(result, STEP)
            direction = "to_kernel"
        out[case] = {"error": error, "rst_segments": _count_rst(bridge, direction, kport)}
        listener.close()
        ctx.mark(case)
    bridge.close()
    return ctx.report(**out)


async def scenario_options(sysctl: dict[str, str] | None = None, rudp_options: dict[str, Any] | None = None,
                           **_: Any) -> dict[str, Any]:
    import rudp

    for key, value in (sysctl or {}).items():  # this namespace's own TCP settings
        Path("/proc/sys/net/ipv4", key).write_text(value)
    bridge = await _bridge()
    ctx = Ctx(bridge)
    out: dict[str, Any] = {}

    # The kernel connects to an rudp echo server.
    conns: list[Any] = []
    finished: list[asyncio.Future[None]] = [asyncio.get_running_loop().create_future() for _ in range(2)]

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(writer.transport.get_extra_info("connection"))
        while data := await reader.read(1 << 16):
            writer.write(data)
        writer.close()
        finished[0].set_result(None)

    opts = rudp_options or {}
    server = await rudp.start_server(echo, "127.0.0.1", 0, **opts)
    ctx.endpoints.append(server.endpoint.endpoint)
    port = server.sockets[0].getsockname()[1]
    bridge.route(port, ("127.0.0.1", port))
    reader, writer = await asyncio.wait_for(asyncio.open_connection(bridge.remote_ip, port), STEP)
    msg = payload(100_000, 4)
    writer.write(msg)
    echoed = await asyncio.wait_for(reader.readexactly(len(msg)), STEP)
    out["kernel_client"] = {
        "syn": find_syn(bridge, "to_rudp", wire.SYN, port),
        "synack": find_syn(bridge, "to_kernel", wire.SYN | wire.ACK, port),
        "kernel_tcp_info": tcp_info(writer.get_extra_info("socket")),
        "rudp_negotiated": negotiated(conns[0]),
        "echo_ok": echoed == msg,
    }
    writer.close()
    await asyncio.wait_for(finished[0], STEP)
    server.close()
    ctx.mark("kernel_client")

    # rudp connects to a kernel echo listener.
    infos: list[dict[str, int]] = []

    async def kecho(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        infos.append(tcp_info(writer.get_extra_info("socket")))
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        writer.close()
        finished[1].set_result(None)

    listener = await asyncio.start_server(kecho, bridge.local_ip, 0)
    kport = listener.sockets[0].getsockname()[1]
    reader, writer = await asyncio.wait_for(
        rudp.open_connection("127.0.0.1", bridge.udp_address[1], remote_port=kport, **opts), STEP
    )
    ctx.endpoints.append(_endpoint_of(writer))
    conn = writer.transport.get_extra_info("connection")
    writer.write(msg)
    echoed = await asyncio.wait_for(reader.readexactly(len(msg)), STEP)
    out["rudp_client"] = {
        "syn": find_syn(bridge, "to_kernel", wire.SYN, kport),
        "synack": find_syn(bridge, "to_rudp", wire.SYN | wire.ACK, kport),
        "kernel_tcp_info": infos[0],
        "rudp_negotiated": negotiated(conn),
        "echo_ok": echoed == msg,
    }
    writer.close()
    await asyncio.wait_for(finished[1], STEP)
    listener.close()
    ctx.mark("rudp_client")
    bridge.close()
    return ctx.report(**out)


async def scenario_flow_control(size: int, stall: float = 1.0, **_: Any) -> dict[str, Any]:
    """Each receiver stops reading for `stall` seconds so the window closes;
    the other side must probe (persist timer) and resume on the window update."""
    import rudp

    bridge = await _bridge()
    ctx = Ctx(bridge)
    loop = asyncio.get_running_loop()
    out: dict[str, Any] = {}
    data = payload(size, 5)
    want = hashlib.sha256(data).hexdigest()

    # A. rudp sends to a kernel receiver with a small SO_RCVBUF that stalls.
    done: asyncio.Future[dict[str, Any]] = loop.create_future()

    async def slow_kernel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(stall)
            info = tcp_info(writer.get_extra_info("socket"))
            n, h, _ = await read_all(reader)
            writer.close()
            done.set_result({"n": n, "digest": h.hexdigest(), "tcp_info_at_stall_end": info})
        except BaseException as exc:
            done.set_exception(exc)

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # inherited by accepted sockets
    lsock.bind((bridge.local_ip, 0))
    listener = await asyncio.start_server(slow_kernel, sock=lsock)
    kport = lsock.getsockname()[1]
    reader, writer = await asyncio.wait_for(
        rudp.open_connection("127.0.0.1", bridge.udp_address[1], remote_port=kport), STEP
    )
    ctx.endpoints.append(_endpoint_of(writer))
    conn = writer.transport.get_extra_info("connection")
    await write_all(writer, data)
    k = await asyncio.wait_for(done, STEP + stall)
    await asyncio.wait_for(reader.read(), STEP)
    out["rudp_to_stalled_kernel"] = {
        "received": k["n"], "digest_ok": k["digest"] == want, "rudp_stats": conn.stats.as_dict(),
        "kernel_tcp_info": k["tcp_info_at_stall_end"],
    }
    writer.close()
    listener.close()
    ctx.mark("rudp_to_stalled_kernel")

    # B. The kernel sends to an rudp receiver (64 KiB buffer) that stalls.
    sdone: asyncio.Future[dict[str, Any]] = loop.create_future()

    async def slow_rudp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            conn = writer.transport.get_extra_info("connection")
            await asyncio.sleep(stall)
            n, h, _ = await read_all(reader)
            writer.close()
            sdone.set_result({"n": n, "digest": h.hexdigest(), "rudp_stats": conn.stats.as_dict()})
        except BaseException as exc:
            sdone.set_exception(exc)

    server = await rudp.start_server(slow_rudp, "127.0.0.1", 0, recv_buffer=65536, limit=16384)
    ctx.endpoints.append(server.endpoint.endpoint)
    port = server.sockets[0].getsockname()[1]
    bridge.route(port, ("127.0.0.1", port))
    kreader, kwriter = await asyncio.wait_for(asyncio.open_connection(bridge.remote_ip, port), STEP)
    t = time.monotonic()
    await asyncio.wait_for(write_all(kwriter, data), STEP + stall)
    r = await asyncio.wait_for(sdone, STEP + stall)
    out["kernel_to_stalled_rudp"] = {
        "received": r["n"], "digest_ok": r["digest"] == want, "rudp_stats": r["rudp_stats"],
        "kernel_tcp_info": tcp_info(kwriter.get_extra_info("socket")), "seconds": round(time.monotonic() - t, 3),
    }
    kwriter.close()
    server.close()
    ctx.mark("kernel_to_stalled_rudp")
    bridge.close()
    return ctx.report(**out)


def _dropper(rules: list[Callable[[str, bytes], bool]]) -> Callable[[str, bytes], bool]:
    """drop_if for the bridge: each rule drops the first segment it matches, once."""
    pending = list(rules)

    def drop_if(direction: str, segment: bytes) -> bool:
        for rule in pending:
            if rule(direction, segment):
                pending.remove(rule)
                return True
        return False

    return drop_if


def _is(direction: str, flags: int, empty: bool = True) -> Callable[[str, bytes], bool]:
    def rule(d: str, seg: bytes) -> bool:
        return d == direction and seg[13] == flags and (not empty or len(seg) == (seg[12] >> 4) * 4)

    return rule


async def scenario_handshakes(**_: Any) -> dict[str, Any]:
    """Lost SYN-ACKs and lost third ACKs in both roles; refused connections."""
    import rudp
    from rudp.tools.tunbridge import TO_KERNEL, TO_RUDP

    bridge = await _bridge()
    ctx = Ctx(bridge)
    out: dict[str, Any] = {}
    S, SA, A = wire.SYN, wire.SYN | wire.ACK, wire.ACK

    async def hello_world(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readexactly(5), STEP)
            writer.write(b"world")
            await asyncio.wait_for(reader.read(), STEP)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        writer.close()

    server = await rudp.start_server(hello_world, "127.0.0.1", 0)
    ctx.endpoints.append(server.endpoint.endpoint)
    port = server.sockets[0].getsockname()[1]
    bridge.route(port, ("127.0.0.1", port))
    listener = await asyncio.start_server(hello_world, bridge.local_ip, 0)
    kport = listener.sockets[0].getsockname()[1]

    async def kernel_client() -> Any:
        return await asyncio.wait_for(asyncio.open_connection(bridge.remote_ip, port), STEP)

    async def rudp_client() -> Any:
        r = await asyncio.wait_for(
            rudp.open_connection("127.0.0.1", bridge.udp_address[1], remote_port=kport), STEP
        )
        ctx.endpoints.append(_endpoint_of(r[1]))
        return r

    cases = {
        # rudp's SYN-ACK is lost: the kernel's SYN retransmission (or rudp's RTO) recovers.
        "rudp_synack_lost": (kernel_client, [_is(TO_KERNEL, SA)]),
        # The kernel's third ACK is lost: its first data segment completes rudp's handshake.
        "kernel_third_ack_lost": (kernel_client, [_is(TO_RUDP, A)]),
        # The kernel's SYN-ACK is lost: rudp's SYN retransmission recovers.
        "kernel_synack_lost": (rudp_client, [_is(TO_RUDP, SA)]),
        # rudp's third ACK is lost: its first data segment completes the kernel's handshake.
        "rudp_third_ack_lost": (rudp_client, [_is(TO_KERNEL, A)]),
    }
    for case, (opener, rules) in cases.items():
        bridge.drop_if = _dropper(rules)
        before = dict(bridge.counters)
        t = time.monotonic()
        reader, writer = await opener()
        connected = time.monotonic() - t
        writer.write(b"hello")
        reply = await asyncio.wait_for(reader.readexactly(5), STEP)
        elapsed = time.monotonic() - t
        writer.close()
        out[case] = {
            "reply_ok": reply == b"world", "connect_s": round(connected, 3), "hello_world_s": round(elapsed, 3),
            "dropped": bridge.counters["to_kernel_dropped"] + bridge.counters["to_rudp_dropped"]
            - before.get("to_kernel_dropped", 0) - before.get("to_rudp_dropped", 0),
        }
        ctx.mark(case)
    bridge.drop_if = None

    # Nobody listens: the kernel refuses rudp's SYN, the rudp endpoint refuses the kernel's.
    async def refused(opener: Callable[[], Awaitable[Any]]) -> str:
        try:
            _, w = await opener()
        except (ConnectionError, OSError) as exc:
            return type(exc).__name__
        w.close()
        return "connected"

    listener.close()
    await listener.wait_closed()
    out["kernel_refuses_rudp"] = await refused(
        lambda: asyncio.wait_for(rudp.open_connection("127.0.0.1", bridge.udp_address[1], remote_port=kport), STEP)
    )
    bridge.route(port + 1, ("127.0.0.1", port))  # rudp's UDP socket, but no listener on that TCP port
    out["rudp_refuses_kernel"] = await refused(
        lambda: asyncio.wait_for(asyncio.open_connection(bridge.remote_ip, port + 1), STEP)
    )
    ctx.mark("refused")
    server.close()
    bridge.close()
    return ctx.report(**out)


async def scenario_keepalive(side: str, **_: Any) -> dict[str, Any]:
    """One side keeps an idle connection alive with probes the other must answer.

    side="kernel": the kernel probes an rudp server (TCP_KEEPIDLE 1 s, INTVL 1 s,
    CNT 2: unanswered, it gives up after 3 s; we idle 3.3 s).  side="rudp": an
    rudp client probes a kernel listener (idle 50 ms, interval 50 ms, count 2;
    we idle 1.5 s, ~30 probe rounds).  Linux answers an out-of-window segment such
    as a probe at most every net.ipv4.tcp_invalid_ratelimit (500 ms), so this
    namespace sets it to 0 to let the kernel answer probes that close together.
    """
    import rudp

    if side == "rudp":
        Path("/proc/sys/net/ipv4/tcp_invalid_ratelimit").write_text("0")
    bridge = await _bridge(record_all=side == "rudp")
    ctx = Ctx(bridge)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1000):
                writer.write(data)
        except ConnectionError:
            pass
        writer.close()

    rconn = None
    if side == "kernel":
        server = await rudp.start_server(echo, "127.0.0.1", 0)
        ctx.endpoints.append(server.endpoint.endpoint)
        port = server.sockets[0].getsockname()[1]
        bridge.route(port, ("127.0.0.1", port))
        reader, writer = await asyncio.wait_for(asyncio.open_connection(bridge.remote_ip, port), STEP)
        ksock = writer.get_extra_info("socket")
        ksock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        ksock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        ksock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        ksock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
        wait = 3.3
        closer: Any = server
    else:
        listener = await asyncio.start_server(echo, bridge.local_ip, 0)
        kport = listener.sockets[0].getsockname()[1]
        reader, writer = await asyncio.wait_for(
            rudp.open_connection("127.0.0.1", bridge.udp_address[1], remote_port=kport, keepalive=True,
                                 keepalive_idle=0.05, keepalive_interval=0.05, keepalive_count=2), STEP
        )
        ctx.endpoints.append(_endpoint_of(writer))
        rconn = writer.transport.get_extra_info("connection")
        wait = 1.5
        closer = listener
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), STEP) == b"ping"
    probe_seq = None if rconn is None else (rconn.snd_una - 1) & 0xFFFFFFFF  # RFC 9293 §3.8.4
    await asyncio.sleep(wait)
    try:
        writer.write(b"pong")
        alive: Any = await asyncio.wait_for(reader.readexactly(4), STEP) == b"pong"
    except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
        alive = type(exc).__name__
    facts: dict[str, Any] = {"alive": alive}
    if rconn is not None:
        facts.update(rudp_stats=rconn.stats.as_dict(), rudp_state=rconn.state.value, rudp_error=rconn.error)
        probes = [rec.time for rec in bridge.records if rec.direction == "to_kernel" and rec.segment is not None
                  and rec.segment.seq == probe_seq and not rec.segment.payload and rec.segment.flags == wire.ACK]
        facts["probes_seen"] = len(probes)
        facts["kernel_answers"] = sum(
            1 for rec in bridge.records if probes and rec.time >= probes[0] and rec.direction == "to_rudp"
            and rec.segment is not None and not rec.segment.payload and rec.segment.flags == wire.ACK
        )
    writer.close()
    closer.close()
    bridge.close()
    return ctx.report(**facts)

async def scenario_simultaneous_close(**_: Any) -> dict[str, Any]:
    """rudp and the kernel close in the same loop iteration: the FINs cross, each side
    receives the other's FIN before its own is acknowledged (RFC 9293 §3.6 Figure 13)."""
    import rudp

    bridge = await _bridge(record_all=True)
    ctx = Ctx(bridge)
    box: dict[str, Any] = {}
    ready = asyncio.Event()
    transitions: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        box["writer"], box["conn"] = writer, writer.transport.get_extra_info("connection")
        ready.set()

    server = await rudp.start_server(handler, "127.0.0.1", 0)
    server.endpoint.endpoint.on_state_change = lambda c, old, new: transitions.append(f"{old.value}->{new.value}")
    ctx.endpoints.append(server.endpoint.endpoint)
    port = server.sockets[0].getsockname()[1]
    bridge.route(port, ("127.0.0.1", port))
    reader, writer = await asyncio.wait_for(asyncio.open_connection(bridge.remote_ip, port), STEP)
    kport = writer.get_extra_info("sockname")[1]
    await asyncio.wait_for(ready.wait(), STEP)
    box["writer"].close()  # rudp's FIN leaves on the next flush...
    writer.close()  # ... and the kernel's when asyncio closes the socket, in that same iteration
    kstate = await wait_kernel_state(kport, port, {"TIME_WAIT"})
    deadline = time.monotonic() + STEP
    while box["conn"].state.value != "TIME_WAIT" and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    fins = [seg_dict(rec) for rec in bridge.records if rec.raw[13] & wire.FIN]
    server.close()
    bridge.close()
    return ctx.report(kernel_final_state=kstate, rudp_final_state=box["conn"].state.value,
                      rudp_transitions=transitions, fins=fins)


SCENARIOS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "kernel_client_echo": scenario_kernel_client_echo,
    "rudp_client_half_close": scenario_rudp_client_half_close,
    "resets": scenario_resets,
    "options": scenario_options,
    "flow_control": scenario_flow_control,
    "handshakes": scenario_handshakes,
    "keepalive": scenario_keepalive,
    "simultaneous_close": scenario_simultaneous_close,
}


def _main(argv: list[str]) -> None:
    name, kwargs = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    loop = kwargs.get("loop", "asyncio")

    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(SCENARIOS[name](**kwargs), SUBPROCESS_TIMEOUT - 5)

    if loop == "uvloop":
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    else:
        runner = asyncio.Runner()
    def quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # Handlers still waiting when the scenario ends are cancelled: not news.
        if not isinstance(context.get("exception"), asyncio.CancelledError):
            loop.default_exception_handler(context)

    with runner:
        runner.get_loop().set_exception_handler(quiet)
        result = runner.run(bounded())
    print(RESULT + json.dumps(result), flush=True)


if __name__ == "__main__":
    _main(sys.argv[1:])
