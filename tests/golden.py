"""Golden simulator traces: the engine's memory of what it puts on the wire.

Each scenario runs two real endpoints through the deterministic simulator and
records every datagram (time, direction, outcome, the TCP header in hex, the
payload's length and SHA-256), so any change to what the engine sends, or
when, shows up as a diff of a committed text file. Only a commit that means
to change the engine's behaviour may change these files, and its message says
why.

Regenerate after such a change (then read the diff):

    .venv/bin/python tests/golden.py --update
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rudp.core.config import Config  # noqa: E402
from rudp.tools.sim import LinkConfig  # noqa: E402

from simapps import (  # type: ignore[import-not-found]  # noqa: E402
    CLIENT, PORT, SERVER, Net, StreamApp, payload, ping_pong_trace, run_transfer,
)

GOLDEN_DIR = Path(__file__).with_name("golden")

Trace = list[tuple[float, Any, Any, bytes, str]]


def _doff(data: bytes) -> int:
    """Header length from the data offset, bounded by the datagram."""
    return min(len(data), (data[12] >> 4) * 4) if len(data) >= 20 else len(data)


def render(trace: Trace) -> str:
    """One line per datagram: exact header bytes, payload pinned by its hash."""
    lines = []
    for t, src, dst, data, outcome in trace:
        h = _doff(data)
        body = data[h:]
        digest = hashlib.sha256(body).hexdigest()[:16] if body else "-"
        direction = "c>s" if src == CLIENT else "s>c" if src == SERVER else f"{src}>{dst}"
        lines.append(f"{t!r} {direction} {outcome} {data[:h].hex()} {len(body)} {digest}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ scenarios


def _cfg(**kw: Any) -> Config:
    """The scenarios' configuration: NewReno, unpaced, as when these traces
    were first recorded, so they keep pinning the engine's loss recovery and
    timers whatever the default controller is. CUBIC and BBR have scenarios
    of their own below (``*_cubic_*``, ``*_bbr_*``)."""
    return Config(**{"congestion_control": "newreno", **kw})


def _transfer(seed: int, link: LinkConfig, size: int, config: Config | None = None, **kw: Any) -> Callable[[Config], Trace]:
    scfg = kw.pop("server_config", None)

    def run(overrides: Config) -> Trace:
        cfg = _merge(config or _cfg(), overrides)
        r = run_transfer(seed, link, size, cfg, trace=True,
                         server_config=_merge(scfg, overrides) if scfg else None, **kw)
        assert r.ok, r.summary()
        return list(r.net.sim.trace)
    return run


def _merge(config: Config, overrides: Config) -> Config:
    """``config`` with the fast-path switches of ``overrides``."""
    return config.replace(header_prediction=overrides.header_prediction,
                          batch_send=overrides.batch_send)


def _ping_pong(seed: int, rounds: int, link: LinkConfig) -> Callable[[Config], Trace]:
    """Request/response: 64 bytes out, the echo back, again, ``rounds`` times."""
    def run(overrides: Config) -> Trace:
        return ping_pong_trace(seed, rounds, _merge(_cfg(), overrides), link)
    return run


def _simultaneous_open(seed: int, loss: float) -> Callable[[Config], Trace]:
    """Both sides actively open to each other's port at the same instant
    (RFC 9293 §3.5 Figure 8), exchange data and close."""
    def run(overrides: Config) -> Trace:
        cfg = _merge(_cfg(), overrides)
        net = Net(seed)
        net.sim.trace = []
        a, b = net.host(CLIENT, cfg), net.host(SERVER, cfg)
        net.link(CLIENT, SERVER, LinkConfig(delay=0.01, loss=loss))
        da, db = payload(5000, seed), payload(7000, seed + 1)
        apps = [StreamApp(da, db, when_written="shutdown", name="a"),
                StreamApp(db, da, when_written="shutdown", name="b")]

        def go() -> None:
            for host, app, lport, rport, peer in ((a, apps[0], 1111, 2222, SERVER),
                                                  (b, apps[1], 2222, 1111, CLIENT)):
                conn = host.endpoint.connect(peer, rport, net.sim.now, local_port=lport)
                host.router.add(conn, app)

        net.sim.call_at(0.0, go)
        net.sim.run(until=600)
        assert all(app.sha_ok and not app.errors for app in apps), [app.errors for app in apps]
        return list(net.sim.trace)
    return run


def _simultaneous_close(seed: int, loss: float) -> Callable[[Config], Trace]:
    """Data both ways, then both close() at the same instant (FINs cross)."""
    def run(overrides: Config) -> Trace:
        cfg = _merge(_cfg(), overrides)
        net = Net(seed)
        net.sim.trace = []
        a_data, b_data = payload(20_000, seed), payload(30_000, seed + 1)
        net.host(CLIENT, cfg)
        server = net.host(SERVER, cfg, factory=lambda: StreamApp(
            b_data, a_data, when_written=None, close_on_eof=False, name="server"))
        net.link(CLIENT, SERVER, LinkConfig(delay=0.015, loss=loss, bandwidth=10e6))
        server.endpoint.listen(PORT)
        client = StreamApp(a_data, b_data, when_written=None, close_on_eof=False, name="client")
        net.sim.call_at(0.0, lambda: net.hosts[CLIENT].connect(SERVER, PORT, client))

        def check() -> None:
            apps = [client, *server.apps]
            if len(apps) == 2 and all(x.conn is not None and x.received == n and
                                      x.conn.send_buffer_size == 0
                                      for x, n in zip(apps, (len(b_data), len(a_data)))):
                for x in apps:
                    x.conn.close()  # type: ignore[union-attr]
            else:
                net.sim.call_later(0.05, check)

        net.sim.call_later(0.05, check)
        net.sim.run(until=600)
        return list(net.sim.trace)
    return run


def _abort(seed: int) -> Callable[[Config], Trace]:
    """The client aborts in the middle of a transfer: RST (RFC 9293 §3.10.5)."""
    def run(overrides: Config) -> Trace:
        cfg = _merge(_cfg(), overrides)
        net = Net(seed)
        net.sim.trace = []
        net.host(CLIENT, cfg)
        server = net.host(SERVER, cfg, factory=lambda: StreamApp(b"", None, when_written=None, name="server"))
        net.link(CLIENT, SERVER, LinkConfig(delay=0.01, bandwidth=5e6))
        server.endpoint.listen(PORT)
        client = StreamApp(payload(200_000, seed), b"", name="client")
        holder: list[Any] = []
        net.sim.call_at(0.0, lambda: holder.append(net.hosts[CLIENT].connect(SERVER, PORT, client)))
        net.sim.call_at(0.15, lambda: holder[0].abort())
        net.sim.run(until=600)
        assert server.apps and server.apps[0].errors
        return list(net.sim.trace)
    return run


def _refused(seed: int) -> Callable[[Config], Trace]:
    """A SYN to a port nobody listens on is answered with RST (§3.10.7.1)."""
    def run(overrides: Config) -> Trace:
        cfg = _merge(_cfg(), overrides)
        net = Net(seed)
        net.sim.trace = []
        net.host(CLIENT, cfg)
        net.host(SERVER, cfg)
        net.link(CLIENT, SERVER, LinkConfig(delay=0.01))
        client = StreamApp(b"x", b"", name="client")
        net.sim.call_at(0.0, lambda: net.hosts[CLIENT].connect(SERVER, PORT, client))
        net.sim.run(until=600)
        assert client.errors
        return list(net.sim.trace)
    return run


def _near_wrap(now: float, addr: Any, lport: int, rport: int) -> int:
    return 0xFFFFFFFF - 30_000 - (lport % 7)


LAN = LinkConfig(delay=0.005, bandwidth=50e6, queue_limit=60)

#: name -> scenario(overrides) -> trace. About twenty shapes, each seeded.
SCENARIOS: dict[str, Callable[[Config], Trace]] = {
    "bulk_clean_0": _transfer(0, LinkConfig(delay=0.01, bandwidth=10e6), 150_000),
    "bulk_clean_lan_1": _transfer(1, LAN, 300_000),
    "bulk_loss_2": _transfer(2, LinkConfig(delay=0.01, bandwidth=20e6, loss=0.02), 200_000),
    "bulk_loss_3": _transfer(3, LinkConfig(delay=0.02, bandwidth=10e6, loss=0.05), 150_000),
    "bulk_loss_nosack_4": _transfer(4, LinkConfig(delay=0.01, loss=0.03), 150_000, _cfg(sack=False)),
    "bulk_loss_nots_5": _transfer(5, LinkConfig(delay=0.01, loss=0.03), 150_000, _cfg(timestamps=False)),
    "bulk_reorder_dup_6": _transfer(6, LinkConfig(delay=0.01, jitter=0.002, reorder=0.05,
                                                  duplicate=0.02, bandwidth=20e6), 200_000),
    "bulk_corrupt_7": _transfer(7, LinkConfig(delay=0.01, corrupt=0.02, loss=0.01), 100_000,
                                _cfg(checksum=True)),
    "bulk_small_mss_8": _transfer(8, LinkConfig(delay=0.01, loss=0.02, mtu=600), 80_000,
                                  _cfg(mss=536)),
    "bulk_mtu_sack_ts_9": _transfer(9, LinkConfig(delay=0.01, loss=0.03, mtu=1452), 200_000,
                                    reply_size=200_000),
    "two_way_10": _transfer(10, LinkConfig(delay=0.01, loss=0.02, bandwidth=20e6), 100_000,
                            reply_size=120_000),
    "request_response_11": _ping_pong(11, 60, LinkConfig(delay=0.002, jitter=0.001)),
    "request_response_loss_12": _ping_pong(12, 60, LinkConfig(delay=0.002, loss=0.03, jitter=0.001)),
    "zero_window_13": _transfer(13, LinkConfig(delay=0.005), 30_000, _cfg(recv_buffer=8192),
                                slow=(4096, 1.0)),
    "zero_window_loss_14": _transfer(14, LinkConfig(delay=0.005, loss=0.05), 40_000,
                                     _cfg(recv_buffer=4096), slow=(1000, 0.2)),
    "simultaneous_open_15": _simultaneous_open(15, 0.0),
    "simultaneous_open_loss_16": _simultaneous_open(16, 0.1),
    "simultaneous_close_17": _simultaneous_close(17, 0.0),
    "simultaneous_close_loss_18": _simultaneous_close(18, 0.1),
    "abort_rst_19": _abort(19),
    "refused_rst_20": _refused(20),
    "wraparound_21": _transfer(21, LinkConfig(delay=0.01, loss=0.02), 100_000, isn=_near_wrap,
                               reply_size=50_000),
    "nodelay_small_writes_22": _transfer(22, LinkConfig(delay=0.01, loss=0.02), 30_000,
                                         _cfg(nodelay=True), write="chunked"),
    # The default controller, CUBIC with HyStart++ and pacing: a clean
    # bottleneck with a queue of about a BDP, then random loss.
    "bulk_cubic_23": _transfer(23, LinkConfig(delay=0.02, bandwidth=10e6, queue_limit=40),
                               400_000, Config(congestion_control="cubic")),
    "bulk_cubic_loss_24": _transfer(24, LinkConfig(delay=0.02, bandwidth=10e6, loss=0.02),
                                    300_000, Config(congestion_control="cubic")),
    "bulk_bbr_25": _transfer(25, LinkConfig(delay=0.02, bandwidth=10e6, queue_limit=40,
                                            loss=0.01), 400_000, Config(congestion_control="bbr")),
}

#: The fast paths on (the default) and each one switched off alone.
MODES: dict[str, Config] = {
    "default": Config(),
    "no_header_prediction": Config(header_prediction=False),
    "no_batch_send": Config(batch_send=False),
}


def golden_path(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.txt"


def main(argv: list[str]) -> int:
    if argv != ["--update"]:
        print(__doc__)
        return 2
    GOLDEN_DIR.mkdir(exist_ok=True)
    for name, scenario in SCENARIOS.items():
        text = render(scenario(MODES["default"]))
        golden_path(name).write_text(text)
        print(f"{name}: {text.count(chr(10))} datagrams")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
