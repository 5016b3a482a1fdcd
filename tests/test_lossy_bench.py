"""benchmarks/run.py --only lossy: the harness works end to end.

One small scenario (20 Mbit/s, +20 ms RTT, 1% loss; 200 kB per transfer),
kernel TCP CUBIC and rudp, once each, on each event loop: the transfers
complete, the table has its fields, the namespaces are gone afterwards and
the delay line really delays (ping's fastest round trip is at least the
added RTT: a lower bound that load can only raise). Never a rate.
Root only (namespaces, tc, iptables); skipped with the reason otherwise.
The table logic itself is checked without root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import _lossy


def _unavailable() -> str | None:
    reason = _lossy.check_basics()
    if reason:
        return reason
    try:
        r = subprocess.run(["ip", "netns", "list"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns` failed: {exc}"
    return None if r.returncode == 0 else f"`ip netns` is not available: {r.stderr.decode().strip()}"


@pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))
def test_quick_scenario_runs(tmp_path: Path, loop_name: str) -> None:
    out = tmp_path / "out"
    js = tmp_path / "lossy.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--only", "lossy", "--quick",
         "--lossy-scenarios", "20M+20ms-1", "--lossy-bytes", "200000", "--tcp-cc", "cubic",
         "--loops", loop_name, "--timeout", "30", "--out", str(out), "--json", str(js)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr[-2000:]
    leftover = [n for n in os.listdir("/run/netns") if n.startswith(f"{_lossy.NS_PREFIX}{proc.pid}-")] \
        if os.path.isdir("/run/netns") else []
    assert leftover == [], f"namespaces left behind: {leftover}"

    data = json.loads(js.read_text())
    assert data == json.loads((out / "lossy.json").read_text())
    if any("iptables" in n for n in data["notes"]):
        pytest.skip(f"no delay line here: {data['notes']}")
    rows = {r["stack"]: r for r in data["table"]}
    assert set(rows) == {"kernel TCP cubic", "rudp default"}, data["notes"]
    for stack, row in rows.items():
        assert row["runs_ok"] == row["runs"] == 1, (stack, row["errors"])
        for key in ("goodput_mb_s", "rtos", "retrans_pct", "queue_drops", "loss_drops", "max_stall_ms", "cpu_s"):
            assert row[key] is not None, (stack, key)
    assert set(rows["rudp default"]["ratios"]) == {"cubic"}
    (scn,) = data["scenarios"]
    for runs in scn["runs"].values():
        (run,) = runs
        assert run["complete"] and run["bytes"] == 200_000
    assert scn["path_rtt"]["min_ms"] >= 20.0  # 10 ms held each way by the delay line
    assert scn["delay_line"]["packets"] > 0
    header = "| scenario | stack | goodput MB/s | x cubic | RTOs | retrans % | queue drops | loss drops |"
    assert header in stdout
    assert "| 20 Mbit/s +20 ms RTT, 1% loss | rudp default (" in stdout


def test_table_from_runs() -> None:
    """Medians, ratios to each anchor, error runs counted (no root needed)."""
    stacks = [_lossy.Stack("tcp", "cubic"), _lossy.Stack("rudp", "default"), _lossy.Stack("tcp", "bbr")]
    scn = _lossy.Scenario(20, 1, 0, 1000)

    def run(goodput: float, rtos: int) -> dict[str, object]:
        return {"goodput_mb_s": goodput, "rtos": rtos, "retrans_pct": 1.0, "queue_drops_data": 3,
                "loss_drops_data": 2, "loss_drops_ack": 1, "max_stall_ms": 10.0, "cpu_s": 0.5, "complete": True}

    results = [{"scenario": {"name": scn.name, "key": scn.key}, "skipped": {}, "runs": {
        "kernel TCP cubic": [run(2.0, 0), run(2.2, 1), run(2.4, 0)],
        "rudp default": [run(1.0, 2), run(1.1, 3), {"error": "WorkerError: timed out"}],
        "kernel TCP bbr": [run(2.2, 0)],
    }}]
    rows = _lossy.summary_rows(results, stacks)
    by = {r["stack"]: r for r in rows}
    assert by["kernel TCP cubic"]["goodput_mb_s"] == 2.2 and by["kernel TCP cubic"]["rtos"] == 0
    assert by["rudp default"]["goodput_mb_s"] == pytest.approx(1.05)
    assert by["rudp default"]["ratios"] == {"cubic": pytest.approx(1.05 / 2.2), "bbr": pytest.approx(1.05 / 2.2)}
    assert (by["rudp default"]["runs_ok"], by["rudp default"]["runs"]) == (2, 3)
    assert by["rudp default"]["loss_drops"] == 3
    table = _lossy.render_markdown(rows, ["cubic", "bbr"])
    assert table.splitlines()[0].startswith("| scenario | stack | goodput MB/s | x cubic | x bbr | RTOs |")
    assert "| 20 Mbit/s, 1% loss | rudp default | 1.05 | 0.48x | 0.48x | 2.5 |" in table  # no cc reported
    assert scn.key == "20M-1" and _lossy.Scenario(None, 1, 20, 1).key == "nolimit+20ms-1"
