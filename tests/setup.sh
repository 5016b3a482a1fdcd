#!/usr/bin/env bash
# Everything the test suite needs on a fresh machine: a virtual environment with
# rudp and its test extra, and (when we are root with apt) tshark, whose TCP
# dissector checks our segments, tcpdump, which captures between the NATs of
# tests/test_nat.py, and nftables, whose NATs that test
# punches through (it also installs nftables itself when missing), and the
# mypyc-compiled core in build/compiled (tests/compiled.py; Python's headers
# from python3-dev when missing), which the suite also runs against. Tests that
# need a missing tool skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -e '.[test]'
if ! { command -v tshark && command -v tcpdump; } >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing tshark and tcpdump (Debian packages) for the dissector and NAT capture tests..." >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark tcpdump; } \
        >/tmp/rudp-apt.log 2>&1 || echo "tshark/tcpdump could not be installed (see /tmp/rudp-apt.log); their tests will skip" >&2
fi
if ! command -v nft >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing nftables (Debian package) for the NAT tests..." >&2
    { apt-get -o DPkg::Lock::Timeout=120 update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq nftables; } \
        >/tmp/rudp-apt-nft.log 2>&1 || echo "nftables could not be installed (see /tmp/rudp-apt-nft.log); the NAT tests will skip" >&2
fi
if ! .venv/bin/python -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing python3-dev (Debian package) for the compiled core..." >&2
    { apt-get -o DPkg::Lock::Timeout=120 update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq python3-dev; } \
        >/tmp/rudp-apt-dev.log 2>&1 || echo "python3-dev could not be installed (see /tmp/rudp-apt-dev.log); the compiled run will skip" >&2
fi
# The compiled core (mypyc, ~1 min; only when rudp/core changed since the last build).
.venv/bin/python tests/compiled.py build
