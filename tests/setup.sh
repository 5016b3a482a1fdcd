#!/usr/bin/env bash
# Everything the test suite needs on a fresh machine: a virtual environment with
# rudp and its test extra, and (when we are root with apt) tshark, whose TCP
# dissector checks our segments. Tests that need a missing tool skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -e '.[test]'
if ! command -v tshark >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing tshark (Debian package) for the dissector tests..." >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark; } \
        >/tmp/rudp-apt.log 2>&1 || echo "tshark could not be installed (see /tmp/rudp-apt.log); its tests will skip" >&2
fi
