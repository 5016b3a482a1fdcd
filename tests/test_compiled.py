"""The mypyc-compiled core (setup.py, tests/compiled.py): the suite runs
against it too, and each run knows which form it loaded.

``test_the_suite_passes_against_the_compiled_core`` waits for the compiled
run that tests/conftest.py started in the background when this file was
collected (it is ordered last); it skips with the reason when mypyc, a C
compiler or Python's headers are missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import rudp.core
from tests import compiled
from tests.conftest import BACKGROUND

ROOT = Path(__file__).resolve().parent.parent


def test_the_loaded_form_is_the_one_asked_for() -> None:
    """Pure Python unless RUDP_TEST_TREE names a compiled tree; then every
    module of rudp.core is one of its extension modules."""
    tree = os.environ.get("RUDP_TEST_TREE")
    if tree:
        assert rudp.core.COMPILED
        assert compiled.loaded_from_elsewhere(tree) == []
    else:
        assert not rudp.core.COMPILED, f"{rudp.core.__file__}: a compiled core shadows the source"


def test_subprocesses_load_the_same_form() -> None:
    """`python -m rudp --version` names the form; a subprocess started by a
    test gets the same one as the test (PYTHONPATH, tests/conftest.py)."""
    out = subprocess.run([sys.executable, "-m", "rudp", "--version"], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    form = "mypyc-compiled" if rudp.core.COMPILED else "pure Python"
    assert out.strip() == f"rudp {rudp.__version__} (engine: {form})"


def test_the_suite_passes_against_the_compiled_core() -> None:
    if os.environ.get("RUDP_TEST_TREE"):
        pytest.skip("this run is the compiled one")
    if BACKGROUND.proc is None:
        pytest.skip("the compiled run was not started (collect-only?)")
    rc, out = BACKGROUND.wait()
    if rc == compiled.SKIP:
        reason = next((line[6:] for line in out.splitlines() if line.startswith("SKIP: ")), out[-500:])
        pytest.skip(f"compiled core not available: {reason}")
    assert rc == 0, f"the compiled run failed (rc {rc}, log {BACKGROUND.log_path}):\n{out[-12000:]}"
    assert " passed" in out.splitlines()[-1], out[-2000:]
