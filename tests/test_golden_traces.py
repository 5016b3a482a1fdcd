"""The engine's wire behaviour, pinned: every scenario of tests/golden.py must
reproduce its committed trace byte for byte, with the fast paths on and with
each switched off (so header prediction and batched sending are proven to
change nothing on the wire, on every shape: bulk, loss, reordering, zero
window, request/response, simultaneous open and close, RST, wraparound)."""

from __future__ import annotations

import difflib

import pytest

try:
    from golden import MODES, SCENARIOS, golden_path, render  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests.golden import MODES, SCENARIOS, golden_path, render


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_trace_matches_golden(name: str, mode: str) -> None:
    expected = golden_path(name).read_text()
    got = render(SCENARIOS[name](MODES[mode]))
    if got != expected:
        diff = "".join(list(difflib.unified_diff(
            expected.splitlines(True), got.splitlines(True), "golden", mode, n=2))[:40])
        pytest.fail(f"{name} [{mode}] differs from tests/golden/{name}.txt "
                    f"(regenerate with `python tests/golden.py --update` only for an "
                    f"intended change, and say why in the commit):\n{diff}")


def test_every_golden_file_has_a_scenario() -> None:
    files = {p.stem for p in golden_path("x").parent.glob("*.txt")}
    assert files == set(SCENARIOS)


def test_scenarios_exercise_what_they_claim() -> None:
    """The traces really contain loss, RSTs, zero windows, both open directions."""
    text = {name: golden_path(name).read_text() for name in SCENARIOS}
    assert " lost " in text["bulk_loss_2"]
    # Data segments that carry SACK blocks beside timestamps (header > 32 bytes),
    # on a 1452-byte path: the effective MSS keeps every one of them within it.
    mtu = text["bulk_mtu_sack_ts_9"].splitlines()
    assert any(len(line.split()[3]) > 64 and line.split()[4] != "0" for line in mtu)
    assert not any(" too_big " in line for line in mtu)
    rst = lambda line: int(line.split()[3][26:28], 16) & 0x04  # noqa: E731 - flags byte
    assert any(rst(line) for line in text["abort_rst_19"].splitlines())
    assert any(rst(line) for line in text["refused_rst_20"].splitlines())
    # A zero window advertised: the window field (bytes 14-15) is 0000 on some ACK.
    assert any(line.split()[3][28:32] == "0000" for line in text["zero_window_13"].splitlines())
