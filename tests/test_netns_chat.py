"""examples/netns_chat.sh: the chat between two network namespaces, with and without loss.

Needs root and ``ip netns``; skipped with the reason otherwise (the script
itself exits 77 when it cannot run, e.g. when namespaces cannot be created in
a container, and the test turns that into a skip). Parametrized over the
event loop: the test drives the script from that loop, and the script runs
the chat server and clients with ``--loop`` of the same name.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from tests.conftest import run_on


SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "netns_chat.sh"
SCRIPT_TIMEOUT = 30  # the script's own bound (--timeout); ours is a little longer
SKIP = 77


def _netns_unavailable() -> str | None:
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "needs root (creates network namespaces)"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        return "bash and timeout are needed"
    try:
        res = subprocess.run(["ip", "netns", "list"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns` failed: {exc}"
    if res.returncode != 0:
        return f"`ip netns` is not available: {res.stderr.decode(errors='replace').strip()}"
    return None


pytestmark = pytest.mark.skipif(_netns_unavailable() is not None, reason=str(_netns_unavailable()))


@pytest.fixture
def loop_kind(loop_name: str) -> str:
    """The loop the example processes run on (conftest's parametrized loop_name)."""
    return loop_name


@pytest.fixture
def run_on_loop(loop_kind: str) -> Callable[..., Any]:
    """``run_on_loop(coro, timeout)``: run on the chosen loop, bounded in time."""

    def runner(coro: Awaitable[Any], timeout: float) -> Any:
        return run_on(loop_kind, coro, timeout)

    return runner


async def run_script(*args: str) -> tuple[int, str, str]:
    """Run netns_chat.sh; on our timeout, SIGTERM it (its trap cleans up), then kill its group."""
    env = dict(os.environ, PYTHON=sys.executable)
    proc = await asyncio.create_subprocess_exec(
        "bash", str(SCRIPT), "--timeout", str(SCRIPT_TIMEOUT), *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env, start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SCRIPT_TIMEOUT + 10)
    except asyncio.TimeoutError:
        proc.send_signal(signal.SIGTERM)  # the script's EXIT trap deletes its namespaces
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 10)
        except asyncio.TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)  # our own session: the script and its children
            await proc.wait()
            out, err = b"", b"(killed)"
        raise AssertionError(f"netns_chat.sh did not finish in time\n{out.decode()}\n{err.decode()}") from None
    finally:
        if proc.returncode is None:  # cancelled: do not leave it running
            proc.send_signal(signal.SIGTERM)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


@pytest.mark.parametrize("loss", [0, 5], ids=["no-loss", "loss-5pct"])
def test_netns_chat(loss: int, loop_kind: str, run_on_loop: Callable[..., Any]) -> None:
    args = ["--loop", loop_kind] + (["--loss", str(loss)] if loss else [])
    rc, out, err = run_on_loop(run_script(*args), SCRIPT_TIMEOUT + 30)
    if rc == SKIP:
        reason = next((line for line in err.splitlines() if line.startswith("SKIP:")), err.strip())
        pytest.skip(f"netns_chat.sh cannot run here: {reason}")
    assert rc == 0, f"exit status {rc}\n--- stdout\n{out}\n--- stderr\n{err}"
    assert "RESULT: OK" in out, out
    assert "FAIL" not in out, out
    if loss:
        assert "loss: " in out, out  # the loss was really applied (netem, BPF or iptables)
    # nothing left behind: our namespaces are gone
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    ns_names = [line for line in out.splitlines() if "namespaces rudp-a-" in line]
    assert ns_names, out
    ns_a = ns_names[0].split("namespaces ")[1].split()[0]
    assert ns_a not in listing, listing
