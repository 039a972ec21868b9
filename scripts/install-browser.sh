#!/bin/sh
# Install the headless browser the report tests drive: Debian's Chromium (never `playwright install`, which
# downloads its own build from the network). Idempotent: does nothing when /usr/bin/chromium exists.
# Used by the Makefile's test target and CI. Playwright (the Python driver) comes from pyproject's `test` extra.
set -eu

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
    echo "install-browser: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
else
    echo "install-browser: Chromium is not installed and installing it needs root. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y chromium" >&2
    echo "(until then the browser tests in tests/report/test_browser.py are skipped)" >&2
fi
