#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine, then runs them.
# Used by the README and by .ci/run (one command, the same in both places).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages (Debian; needs root, skipped otherwise): Chromium for the browser tests,
# redis-server for the remote-worker tests (each test starts its own on a loopback port).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python: torch's CPU wheel pinned first (an unpinned torch pulls a multi-GB CUDA build).
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check reef tests bench
.venv/bin/ruff format --check reef tests bench
# Two pytest workers: most tests wait on real servers and step processes, so two share the
# two cores well (about 7.5 min instead of 11 on a 2-core machine). `-n 0` runs them in one.
exec .venv/bin/python -m pytest -q -n 2 --dist loadfile --durations=15 "$@"
