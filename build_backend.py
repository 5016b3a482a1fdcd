"""setuptools' build backend, plus mypy (which brings mypyc) in the isolated
build environment when ``RUDP_COMPILE`` asks for the compiled core (setup.py).
The default build needs nothing beyond setuptools."""

from __future__ import annotations

import os
from typing import Any

from setuptools import build_meta as _meta
from setuptools.build_meta import *  # noqa: F401,F403 - the backend's hooks as they are

MYPYC = ["mypy>=1.8"]


def _compile_requested() -> bool:
    return os.environ.get("RUDP_COMPILE", "").strip().lower() in ("1", "true", "yes", "on")


def _requires(hook: Any, config_settings: Any) -> list[str]:
    # setuptools runs setup.py to answer; mypy is not there yet, and setup.py
    # must not report that as a fallback to pure Python (RUDP_BUILD_PHASE).
    os.environ["RUDP_BUILD_PHASE"] = "requires"
    try:
        base = list(hook(config_settings))
    finally:
        del os.environ["RUDP_BUILD_PHASE"]
    return base + (MYPYC if _compile_requested() else [])


def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:
    return _requires(_meta.get_requires_for_build_wheel, config_settings)


def get_requires_for_build_editable(config_settings: Any = None) -> list[str]:
    return _requires(_meta.get_requires_for_build_editable, config_settings)
