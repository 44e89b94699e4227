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
.venv/bin/mypy  # the package, as [tool.mypy] in pyproject.toml configures it
# A CPU load beside the suite (`--load N` or REEF_TEST_LOAD=N busy processes) checks that no
# test depends on a quiet machine; the busy loops are stopped however pytest ends.
load="${REEF_TEST_LOAD:-0}"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --load) load="$2"; shift 2 ;;
    --load=*) load="${1#--load=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
busy=()
stop_load() { [ ${#busy[@]} -eq 0 ] || { kill "${busy[@]}" 2>/dev/null; wait "${busy[@]}" 2>/dev/null || true; }; }
trap 'rc=$?; stop_load; exit $rc' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for _ in $(seq 1 "$load"); do
  sh -c 'while :; do :; done' &
  busy+=($!)
done
[ "$load" -gt 0 ] && echo "running the suite beside $load busy processes"

# Four pytest workers on two cores: most tests wait on real servers, step processes and
# browsers: with two workers the suite kept 1.1 cores busy on average, with four 1.8
# (bench/results/suite.txt). `-n 0` runs them in one.
# tests/conftest.py puts each file in one xdist group (module-scoped fixtures serve ordered
# tests), all users of the demo server in another, and the longest groups first;
# --no-loadscope-reorder keeps that order.
.venv/bin/python -m pytest -q -n 4 --dist loadgroup --no-loadscope-reorder --durations=15 ${args[@]+"${args[@]}"}
