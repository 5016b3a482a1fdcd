"""``mypy --strict`` passes on the sans-IO core (the issue of record: the core
must stay typed, and compilable with mypyc later)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_core_passes_mypy_strict() -> None:
    pytest.importorskip("mypy", reason="mypy is in the test extra: pip install -e '.[test]'")
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "rudp/core"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_package_ships_py_typed() -> None:
    """PEP 561: the marker exists and the build puts it in the package."""
    assert (ROOT / "rudp" / "py.typed").is_file()
    assert 'rudp = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()
