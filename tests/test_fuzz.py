"""The fuzz targets of fuzz/ (see fuzz/README.md) as part of the test suite:
every committed seed passes its target's invariants, each open engine bug's
reproducer (fuzz/known_bugs/, none now) still fails, and a short
coverage-guided run of each target (atheris, libFuzzer) from the committed
corpus finds no crash. RUDP_FUZZ_SECONDS scales the atheris runs."""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
TARGETS = {"decode": "fuzz_decode.py", "endpoint": "fuzz_endpoint.py"}
#: Seconds of coverage-guided fuzzing per target (after the corpus is replayed).
SECONDS = {"decode": 12, "endpoint": 25}


@functools.cache
def target(name: str) -> ModuleType:
    path = FUZZ / TARGETS[name]
    spec = importlib.util.spec_from_file_location(f"rudp_fuzz_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seeds(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.bin"))


def step_around_known_bugs(module: ModuleType, *, but: str | None = None) -> None:
    """Enable the workaround of every known bug (fuzz_endpoint.KNOWN_BUGS), except ``but``."""
    if hasattr(module, "WORKAROUNDS"):
        module.WORKAROUNDS.clear()
        module.WORKAROUNDS.update(bug for bug in module.KNOWN_BUGS if bug != but)


@pytest.mark.parametrize("name", TARGETS)
def test_committed_corpus_passes(name: str) -> None:
    """Every seed, replayed directly (no atheris needed), keeps every invariant
    (known bugs stepped around: their reproducers are tested below)."""
    files = seeds(FUZZ / "corpus" / name)
    assert len(files) >= 20, "regenerate with: .venv/bin/python fuzz/make_corpus.py"
    module = target(name)
    step_around_known_bugs(module)
    for path in files:
        try:
            module.test_one_input(path.read_bytes())
        except AssertionError as e:
            raise AssertionError(f"{path.relative_to(ROOT)}: {e}") from e


KNOWN = seeds(FUZZ / "known_bugs" / "endpoint")


@pytest.mark.parametrize("path", KNOWN, ids=[p.stem for p in KNOWN])
def test_known_engine_bugs_reproduce(path: Path) -> None:
    """Reproducers of open bugs (fuzz_endpoint.KNOWN_BUGS): each must still fail
    without its workaround and pass with it. When one no longer fails, its bug
    is fixed: move the seed into make_corpus.endpoint_seeds(), delete its entry
    from KNOWN_BUGS, and rerun fuzz/make_corpus.py."""
    module = target("endpoint")
    bug = path.stem.split("--")[0]
    assert bug in module.KNOWN_BUGS, f"{path.name}: no such entry in KNOWN_BUGS"
    data = path.read_bytes()
    step_around_known_bugs(module, but=bug)
    with pytest.raises(module.Violation):
        module.test_one_input(data)
    step_around_known_bugs(module)
    module.test_one_input(data)


@pytest.mark.parametrize("name", TARGETS)
def test_coverage_guided_run_finds_no_crash(name: str, tmp_path: Path) -> None:
    """libFuzzer replays the corpus, then mutates for a bounded time; exit
    status 0 means no invariant broke. New inputs and crash artifacts go to
    tmp_path, never into the committed corpus. Known bugs are stepped around
    (RUDP_FUZZ_WORKAROUNDS=all) so that only a new finding fails the run."""
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed: .venv/bin/pip install atheris")
    seconds = int(os.environ.get("RUDP_FUZZ_SECONDS", SECONDS[name]))
    work = tmp_path / "corpus"
    work.mkdir()
    cmd = [
        sys.executable, str(FUZZ / TARGETS[name]), str(work), str(FUZZ / "corpus" / name),
        f"-max_total_time={seconds}", "-timeout=30", "-rss_limit_mb=2048",
        f"-artifact_prefix={tmp_path}/", "-print_final_stats=1",
    ]
    env = {**os.environ, "RUDP_FUZZ_WORKAROUNDS": "all"}
    run = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=seconds + 120)
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    tail = "\n".join(run.stderr.splitlines()[-60:])
    assert run.returncode == 0 and not crashes, (
        f"{name}: exit {run.returncode}, artifacts {crashes} in {tmp_path}\n"
        f"reproduce: .venv/bin/python fuzz/{TARGETS[name]} <artifact>\n{tail}")
    assert "Done" in run.stderr, tail
