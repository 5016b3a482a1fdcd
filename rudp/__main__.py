"""``python -m rudp``: the command line (rudp.tools.cli)."""

from __future__ import annotations

from .tools.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
