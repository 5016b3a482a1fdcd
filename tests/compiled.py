"""The mypyc-compiled core for the tests: ``python tests/compiled.py build``
(tests/setup.sh runs it) compiles rudp/core into build/compiled (git-ignored)
and the test suite runs against it as well (`suite`, started in the
background by tests/conftest.py when tests/test_compiled.py is collected).

build/compiled/rudp is the package with its core replaced by the compiled
extension modules: rudp/__init__.py, aio/ and tools/ are symlinks to the
source, so only an edit of rudp/core (or of the compiler) calls for a rebuild,
and `build` rebuilds only then (the stamp file holds the digest it was built
from). Without mypyc, a C compiler or Python's headers nothing is built and
`reason()` says why.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "rudp" / "core"
TREE = ROOT / "build" / "compiled"
STAMP = TREE / "stamp"
#: setup.py build_ext of the compiled core, on a 2-core machine ~1 min.
BUILD_TIMEOUT = 900


def digest() -> str:
    """What the compiled tree depends on: the core's source, setup.py, the
    compiler's version and the interpreter."""
    h = hashlib.sha256()
    try:
        import mypy.version
        h.update(mypy.version.__version__.encode())
    except ImportError:
        h.update(b"no mypy")
    h.update(sys.version.encode())
    for path in [ROOT / "setup.py", *sorted(CORE.glob("*.py"))]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def compiled_modules(tree: Path = TREE) -> list[Path]:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return sorted((tree / "rudp" / "core").glob(f"*{suffix}"))


def is_current() -> bool:
    try:
        stamp = STAMP.read_text().strip()
    except OSError:
        return False
    names = {p.name.split(".")[0] for p in compiled_modules()}
    return stamp == digest() and names == {p.stem for p in CORE.glob("*.py")}


def loaded_from_elsewhere(tree: str) -> list[str]:
    """The modules of rudp.core not imported from ``tree``'s compiled files."""
    import importlib
    import pkgutil
    import rudp.core
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    wrong = []
    for info in pkgutil.iter_modules(rudp.core.__path__, "rudp.core."):
        module = importlib.import_module(info.name)
        where = str(getattr(module, "__file__", ""))
        if not (where.startswith(tree) and where.endswith(suffixes)):
            wrong.append(f"{info.name} ({where})")
    if not rudp.core.COMPILED:
        wrong.append("rudp.core (COMPILED is False)")
    return wrong


def missing_tool() -> str | None:
    """Why the compiled core cannot be built here, or None."""
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return "mypyc is not installed (pip install mypy)"
    import sysconfig
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "Python's C headers (Python.h) are missing (Debian: python3-dev)"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc}) on PATH"
    return None


def build(force: bool = False) -> str | None:
    """Make build/compiled current; None on success, else why it could not."""
    if is_current() and not force:
        return None
    why = missing_tool()
    if why:
        return why
    work = ROOT / "build" / "compiled.new"
    shutil.rmtree(work, ignore_errors=True)
    lib = work / "lib"
    env = dict(os.environ, RUDP_COMPILE="1")
    cmd = [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(lib),
           "--build-temp", str(work / "temp")]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT, check=False)
    took = time.monotonic() - start
    shared = list(lib.glob("*__mypyc*"))
    if proc.returncode != 0 or not shared or not compiled_modules(lib):
        (ROOT / "build").mkdir(exist_ok=True)
        log = ROOT / "build" / "compiled.log"
        log.write_text(proc.stdout + proc.stderr)
        return f"the mypyc build failed (rc {proc.returncode}; output in {log})"
    tree = work / "tree"
    pkg = tree / "rudp"
    (pkg / "core").mkdir(parents=True)
    for entry in (ROOT / "rudp").iterdir():
        if entry.name not in ("core", "__pycache__"):
            (pkg / entry.name).symlink_to(entry)
    for so in compiled_modules(lib):
        shutil.copy2(so, pkg / "core" / so.name)
    for so in shared:
        shutil.copy2(so, tree / so.name)
    (ROOT / "build" / "compiled.log").unlink(missing_ok=True)  # a failed build's
    (tree / "stamp").write_text(digest() + "\n")
    shutil.rmtree(TREE, ignore_errors=True)
    tree.rename(TREE)
    shutil.rmtree(work, ignore_errors=True)
    print(f"compiled rudp/core with mypyc into {TREE.relative_to(ROOT)} in {took:.0f} s", file=sys.stderr)
    return None


#: Test files not run against the compiled core, and why. Everything else is.
NOT_COMPILED = {
    "test_compiled.py": "this file starts the compiled run",
    "test_typing.py": "mypy over the source: the same for both forms",
    "test_layers.py": "reads the source's imports: the same for both forms",
    "test_fuzz.py": "atheris's coverage guidance sees no Python lines in compiled code",
    "test_nat.py": "network namespaces and NATs: exercises the OS more than the engine",
    "test_netns_chat.py": "network namespaces: exercises the OS more than the engine",
    "test_kernel_interop.py": "network namespace and TUN; its peer process runs from the source tree",
    "test_tls_kernel.py": "network namespace and TUN, the kernel's TCP more than the engine",
    "test_live_attack.py": "a network namespace under attack: the OS more than the engine",
    "test_lossy_bench.py": "network namespaces and netem through benchmarks/run.py",
}
SKIP = 3  # exit status of `suite` when the compiled core cannot be built
SUITE_TIMEOUT = 900


def compiled_test_files() -> list[Path]:
    return [p for p in sorted((ROOT / "tests").glob("test_*.py")) if p.name not in NOT_COMPILED]


def suite(extra: list[str]) -> int:
    """Build if needed, then run the selected tests against build/compiled in
    a pytest of their own (tests/conftest.py puts the tree first on sys.path
    and checks the compiled modules are the ones imported). The working
    directory is a scratch one: ``python -m`` puts it first on sys.path, and
    the source tree there would shadow the compiled one in subprocesses."""
    start = time.monotonic()
    why = build()
    if why:
        print(f"SKIP: {why}", flush=True)
        return SKIP
    print(f"compiled core ready after {time.monotonic() - start:.0f} s", flush=True)
    scratch = ROOT / "build" / "compiled-run"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    env = dict(os.environ, RUDP_TEST_TREE=str(TREE))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
           "-c", str(ROOT / "pyproject.toml"), *extra, *map(str, compiled_test_files())]
    try:
        return subprocess.run(cmd, cwd=scratch, env=env, timeout=SUITE_TIMEOUT, check=False).returncode
    except subprocess.TimeoutExpired:
        print(f"the compiled run took more than {SUITE_TIMEOUT} s", flush=True)
        return 1


class Background:
    """`suite` in a process group of its own, its output in a log file, so
    the main pytest session goes on meanwhile (tests/conftest.py)."""

    def __init__(self) -> None:
        self.log_path = ROOT / "build" / "compiled-suite.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, str(Path(__file__)), "suite"], cwd=ROOT,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def wait(self) -> tuple[int, str]:
        assert self.proc is not None
        try:
            rc = self.proc.wait(timeout=BUILD_TIMEOUT + SUITE_TIMEOUT + 60)
        except subprocess.TimeoutExpired:
            self.stop()
            rc = -1
        return rc, self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait()


def main(argv: list[str]) -> int:
    if argv[1:2] == ["suite"]:
        return suite(argv[2:])
    if argv[1:] in (["build"], ["build", "--force"]):
        why = build(force="--force" in argv)
        if why:
            print(f"compiled core not built: {why}; its tests will skip", file=sys.stderr)
        return 0
    if argv[1:] == ["status"]:
        print("current" if is_current() else "stale or missing")
        return 0 if is_current() else 1
    print("usage: tests/compiled.py build [--force] | status | suite [PYTEST-ARGS]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
