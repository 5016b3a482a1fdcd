"""The optional compiled core: ``RUDP_COMPILE=1 pip install .`` (or ``-e .``)
builds every module of rudp/core with mypyc into C extensions; without the
variable the package is pure Python, as it always was. The same source is
both forms (``rudp.core.COMPILED`` tells which one is loaded).

When mypyc or a C compiler (with Python's headers) is missing, the build says
so on stderr and installs pure Python: compiling is an optimisation, never a
requirement. ``pip install`` pulls mypy into its isolated build environment
when the variable is set (build_backend.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def compile_requested() -> bool:
    return os.environ.get("RUDP_COMPILE", "").strip().lower() in ("1", "true", "yes", "on")


def core_modules() -> list[str]:
    """Every module of rudp/core, relative to this directory (mypyc's names)."""
    return sorted(p.relative_to(HERE).as_posix() for p in (HERE / "rudp" / "core").glob("*.py"))


def say(message: str) -> None:
    print(f"rudp: {message}", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """build_ext that falls back to pure Python when compiling fails (no gcc,
    no Python.h): the .py files are installed in any case, so the package
    then simply imports them."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # CompileError, DistutilsExecError, OSError, ...
            say(f"compiling rudp/core with mypyc failed ({exc}); installing pure Python")
            self._drop_outputs()

    def _drop_outputs(self) -> None:
        # A half-built set (the shared library missing, a shim present) would
        # not import: remove whatever this run produced, in place or not.
        for ext in self.extensions:
            for path in (Path(self.get_ext_fullpath(ext.name)),
                         HERE / Path(self.get_ext_filename(ext.name))):
                if path.exists():
                    path.unlink()

    def get_outputs(self) -> list[str]:
        return [p for p in super().get_outputs() if os.path.exists(p)]


def ext_modules() -> list[Any]:
    if not compile_requested() or os.environ.get("RUDP_BUILD_PHASE") == "requires":
        return []  # not asked; or build_backend.py is only listing what the build needs
    try:
        from mypyc.build import mypycify
    except ImportError:
        say("RUDP_COMPILE is set but mypyc is not installed (pip install mypy); installing pure Python")
        return []
    say(f"RUDP_COMPILE: compiling {len(core_modules())} modules of rudp/core with mypyc")
    # The C compiler reads the generated files relative to this directory.
    os.chdir(HERE)
    return list(mypycify(core_modules(), opt_level="3"))


setup(ext_modules=ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
