"""The layers (README, "Layout"), enforced: rudp/core is sans-IO (no sockets, no
event loop, no clock, no randomness it was not given) and imports nothing
above it; rudp/aio never reaches into rudp/tools."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rudp"
CORE = sorted((PACKAGE / "core").rglob("*.py"))

#: Modules that do I/O, keep time or draw entropy of their own.
FORBIDDEN = {
    "asyncio", "socket", "select", "selectors", "ssl", "time", "datetime", "os",
    "secrets", "threading", "signal", "subprocess", "uvloop", "fcntl",
}
#: The only thing of ``random`` the core may touch: a generator it is given or seeds.
RANDOM_ALLOWED = {"Random"}


def _imports(tree: ast.AST) -> list[tuple[str, int]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found += [(base + alias.name if node.module is None else base, node.lineno)
                      for alias in node.names]
    return found


def test_core_modules_found() -> None:
    names = {p.stem for p in CORE}
    assert {"connection", "endpoint", "wire"} <= names


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_is_sans_io(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for name, line in _imports(tree):
        top = name.lstrip(".").split(".")[0]
        assert not (name[0] != "." and top in FORBIDDEN), f"{path.name}:{line} imports {name}"
        # Relative imports stay inside rudp.core: ``..`` would reach aio or tools.
        assert not name.startswith(".."), f"{path.name}:{line} imports {name} from above the core"
        assert not (name[0] != "." and top == "rudp"), f"{path.name}:{line} imports {name}"
    for node in ast.walk(tree):
        # random.<anything but Random>: random.random(), random.SystemRandom(), ...
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "random" and node.attr not in RANDOM_ALLOWED):
            pytest.fail(f"{path.name}:{node.lineno} draws randomness: random.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module == "random":
            bad = [a.name for a in node.names if a.name not in RANDOM_ALLOWED]
            assert not bad, f"{path.name}:{node.lineno} imports {bad} from random"


@pytest.mark.parametrize("path", sorted((PACKAGE / "aio").rglob("*.py")), ids=lambda p: p.name)
def test_aio_does_not_import_tools(path: Path) -> None:
    for name, line in _imports(ast.parse(path.read_text())):
        assert "tools" not in name.split("."), f"{path.name}:{line} imports {name}"


def test_the_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The walker sees imports nested in functions and from-imports."""
    tree = ast.parse("def f():\n    import time\n    from os import urandom\n"
                     "from .. import aio\nfrom . import wire\n")
    assert sorted(n for n, _ in _imports(tree)) == ["..aio", ".wire", "os", "time"]


AIO = sorted((PACKAGE / "aio").rglob("*.py"))


def _foreign_privates(tree: ast.AST) -> list[tuple[str, int]]:
    """``x._name`` where x is not ``self``, and ``_name`` imported from elsewhere."""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id == "self")):
            found.append((ast.unparse(node), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.startswith("_")]
    return found


@pytest.mark.parametrize("path", AIO, ids=lambda p: p.name)
def test_aio_classes_use_only_public_members_of_each_other(path: Path) -> None:
    """The adapter's classes (driver, transport, server, UDP socket) call each
    other through public, documented methods: none reads or calls another
    object's ``_private`` member or imports a private name."""
    found = _foreign_privates(ast.parse(path.read_text()))
    assert not found, [f"{path.name}:{line} uses {name}" for name, line in found]


def test_the_privacy_check_catches_foreign_privates() -> None:
    tree = ast.parse("class A:\n    def f(self, tr):\n        self._ok = tr._closing\n"
                     "        self._owner._flushing = 1\n        return self.__class__\n"
                     "from .api import _norm\n")
    assert sorted(n for n, _ in _foreign_privates(tree)) == ["_norm", "self._owner._flushing", "tr._closing"]
