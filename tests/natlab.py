"""A small Internet in network namespaces: a public segment and NAT routers with hosts behind them.

    with NatLab() as lab:
        lab.public("rv", "203.0.113.1")                  # on the public segment
        lab.nat("n1", "203.0.113.11", "10.1.0.0/24")      # a NAT router: public side and a LAN
        lab.host("h1", "n1", "10.1.0.2")                  # a host behind it
        lab.run("h1", "ping", "-c1", "203.0.113.1")

The public segment (203.0.113.0/24, TEST-NET-3) is a bridge in its own
namespace, with a veth to each public node. A NAT router masquerades what
leaves its public side (``nft ... masquerade``, optionally ``random``: a new
random port for every mapping, i.e. a symmetric NAT) and, like a home router,
drops unsolicited inbound traffic silently: no ICMP port unreachable, and no
conntrack entry that would push a later outbound flow to another source port.
Every interface exists only inside the lab's namespaces; ``close`` (or the
``with`` block) deletes them all, and with them every veth.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from typing import Any

PUBLIC_NET = "203.0.113.0/24"


def sh(*cmd: str, input: str | None = None, timeout: float = 20) -> str:
    res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {res.returncode}: {res.stderr.strip()}")
    return res.stdout


def ensure_nft() -> str | None:
    """nft on PATH, installed from Debian's package when we are root with apt-get;
    None, or the reason it cannot be had."""
    if shutil.which("nft"):
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "nft (nftables) is not installed and cannot be installed here"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "-o", "DPkg::Lock::Timeout=120", "update", "-qq"],
                ["apt-get", "-o", "DPkg::Lock::Timeout=120", "install", "-y", "-qq", "nftables"]):
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"installing nftables failed: {exc}"
        if res.returncode != 0:
            return f"installing nftables failed: {res.stderr.strip()[-300:]}"
    return None if shutil.which("nft") else "nftables installed but nft is not on PATH"


def unavailable() -> str | None:
    """Why the lab cannot run here, or None."""
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "needs root (creates network namespaces)"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    try:
        sh("ip", "netns", "list", timeout=10)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns` is not available: {exc}"
    return ensure_nft()


class NatLab:
    def __init__(self) -> None:
        self.prefix = f"rnat{os.getpid()}-"
        self.namespaces: list[str] = []
        self.addresses: dict[str, str] = {}
        self._ports = 0
        try:
            self.ns(self.prefix + "sw")
            self.run("sw", "ip", "link", "add", "br0", "type", "bridge")
            self.run("sw", "ip", "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    # -- building

    def ns(self, full: str) -> None:
        sh("ip", "netns", "add", full)
        self.namespaces.append(full)
        sh("ip", "-n", full, "link", "set", "lo", "up")

    def name(self, node: str) -> str:
        return self.prefix + node

    def _uplink(self, node: str, address: str) -> None:
        """A veth from the public bridge to ``node``'s interface "pub"."""
        self._ports += 1
        port = f"p{self._ports}"
        sh("ip", "-n", self.name("sw"), "link", "add", port, "type", "veth",
           "peer", "name", "pub", "netns", self.name(node))
        sh("ip", "-n", self.name("sw"), "link", "set", port, "master", "br0", "up")
        sh("ip", "-n", self.name(node), "addr", "add", f"{address}/24", "dev", "pub")
        # gso_max_segs 1: UDP GSO batches (rudp's default) leave as single
        # datagrams, as through a NIC without segmentation offload, so the
        # NATs see, count and drop datagrams rather than whole batches.
        sh("ip", "-n", self.name(node), "link", "set", "pub", "gso_max_segs", "1", "up")
        self.addresses[node] = address

    def public(self, node: str, address: str) -> None:
        """A host on the public segment, no NAT."""
        self.ns(self.name(node))
        self._uplink(node, address)

    def nat(self, node: str, address: str, lan: str, *, random: bool = False,
            udp_timeout: int | None = None, loss: float = 0.0) -> None:
        """A NAT router: ``address`` on the public segment, the first address of ``lan`` inside.

        ``udp_timeout``: seconds after which it forgets an idle UDP mapping
        (Linux's defaults: 30 s, 120 s once traffic went both ways). Its
        counter ``dropped_ack`` counts unsolicited inbound datagrams that
        carry a TCP segment with ACK set (UDP payload byte 13): traffic of a
        connection whose mapping the NAT forgot (hole punches have 0 there).
        ``loss``: the fraction of the UDP datagrams it forwards, either way,
        that it drops at random (nft numgen; counted as ``lost``)."""
        self.ns(self.name(node))
        self._uplink(node, address)
        net = ipaddress.ip_network(lan)
        sh("ip", "-n", self.name(node), "link", "add", "lan", "type", "bridge")
        sh("ip", "-n", self.name(node), "addr", "add", f"{net[1]}/{net.prefixlen}", "dev", "lan")
        sh("ip", "-n", self.name(node), "link", "set", "lan", "up")
        self.run(node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        ruleset = f"""
table ip nat {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "pub" masquerade{" random" if random else ""}
    }}
}}
table inet filter {{
    counter out_rendezvous {{ }}
    counter out_other {{ }}
    counter in_other {{ }}
    counter dropped_ack {{ }}
    counter lost {{ }}
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "pub" ct state new,invalid udp dport != 0 @ih,104,8 & 0x10 == 0x10 counter name "dropped_ack"
        iifname "pub" ct state new,invalid drop
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        {f'meta l4proto udp numgen random mod 10000 < {round(loss * 10000)} counter name "lost" drop' if loss else ''}
        iifname "pub" ct state new,invalid drop
        oifname "pub" ip daddr 203.0.113.1 counter name "out_rendezvous"
        oifname "pub" ip daddr != 203.0.113.1 counter name "out_other"
        iifname "pub" ip saddr != 203.0.113.1 counter name "in_other"
    }}
}}
"""
        self.nft(node, ruleset)
        if udp_timeout is not None:
            for key in ("nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"):
                self.run(node, "sysctl", "-q", "-w", f"net.netfilter.{key}={udp_timeout}")

    def host(self, node: str, nat: str, address: str) -> None:
        """A host behind ``nat``, on its LAN, with the NAT as default route."""
        self.ns(self.name(node))
        self._ports += 1
        port = f"l{self._ports}"
        sh("ip", "-n", self.name(nat), "link", "add", port, "type", "veth",
           "peer", "name", "eth0", "netns", self.name(node))
        sh("ip", "-n", self.name(nat), "link", "set", port, "master", "lan", "up")
        lan = [a for a in json.loads(sh("ip", "-j", "-n", self.name(nat), "addr", "show", "dev", "lan"))
               [0]["addr_info"] if a["family"] == "inet"][0]
        sh("ip", "-n", self.name(node), "addr", "add", f"{address}/{lan['prefixlen']}", "dev", "eth0")
        sh("ip", "-n", self.name(node), "link", "set", "eth0", "gso_max_segs", "1", "up")  # as "pub"
        sh("ip", "-n", self.name(node), "route", "add", "default", "via", lan["local"])
        self.addresses[node] = address

    def nft(self, node: str, ruleset: str) -> None:
        sh("ip", "netns", "exec", self.name(node), "nft", "-f", "-", input=ruleset)

    # -- using

    def run(self, node: str, *cmd: str, timeout: float = 20) -> str:
        return sh("ip", "netns", "exec", self.name(node), *cmd, timeout=timeout)

    def command(self, node: str, *cmd: str) -> list[str]:
        """argv that runs ``cmd`` inside ``node``."""
        return ["ip", "netns", "exec", self.name(node), *cmd]

    def counters(self, node: str) -> dict[str, dict[str, int]]:
        """The named nft counters of ``node``: name -> {"packets", "bytes"}."""
        data: Any = json.loads(self.run(node, "nft", "-j", "list", "counters"))
        out: dict[str, dict[str, int]] = {}
        for item in data.get("nftables", []):
            c = item.get("counter")
            if c:
                out[c["name"]] = {"packets": c["packets"], "bytes": c["bytes"]}
        return out

    def close(self) -> None:
        for full in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", full], capture_output=True, timeout=20)
        self.namespaces.clear()

    def __enter__(self) -> NatLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
