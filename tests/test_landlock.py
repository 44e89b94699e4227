"""The Landlock wrapper and the sandbox policy, in a child process (a restriction cannot be
lifted, so never in the test process itself)."""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from reef.runtime import landlock
from reef.runtime.sandbox import Sandbox, grant_traversal

needs_landlock = pytest.mark.skipif(landlock.abi_version() < 4, reason="needs Landlock ABI 4")

CHILD = """
import os, socket, sys
from reef.runtime import landlock as L
allowed, denied, port, other = sys.argv[1:]
rules = L.Ruleset()
rules.allow_paths(["/usr", "/lib", sys.base_prefix, sys.prefix], L.READ)
rules.allow_path(allowed, L.WRITE)
rules.allow_connect(int(port))
rules.restrict_self()
def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return e.strerror
print(attempt(lambda: open(os.path.join(allowed, "x"), "w").write("x")))
print(attempt(lambda: open(os.path.join(denied, "x"), "w").write("x")))
print(attempt(lambda: open(os.path.join(denied, "secret")).read()))
print(attempt(lambda: socket.create_connection(("127.0.0.1", int(port))).close()))
print(attempt(lambda: socket.create_connection(("127.0.0.1", int(other))).close()))
"""


@needs_landlock
def test_a_restricted_process_reaches_only_what_its_rules_allow(tmp_path: Path) -> None:
    allowed, denied = tmp_path / "allowed", tmp_path / "denied"
    allowed.mkdir()
    denied.mkdir()
    (denied / "secret").write_text("s")
    with socket.create_server(("127.0.0.1", 0)) as ok, socket.create_server(("127.0.0.1", 0)) as no:
        ports = [str(ok.getsockname()[1]), str(no.getsockname()[1])]
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(allowed), str(denied), *ports],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:5] == [
        "ok",
        "Permission denied",
        "Permission denied",
        "ok",
        "Permission denied",
    ]
    assert (allowed / "x").is_file() and not (denied / "x").exists()


def test_without_landlock_abi_4_steps_are_refused_unless_unsafe() -> None:
    sandbox = Sandbox()
    sandbox.abi = 3  # as on a kernel older than 6.7
    assert not sandbox.enabled
    assert "--unsafe-steps" in (sandbox.refusal() or "")
    unsafe = Sandbox(unsafe=True)
    assert unsafe.refusal() is None and not unsafe.enabled
    assert unsafe.describe() == {"enabled": False}


def test_traversal_grants_the_search_bit_never_read(tmp_path: Path) -> None:
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    (tmp_path / "a").chmod(0o700)
    grant_traversal(inner / "file")
    mode = (tmp_path / "a").stat().st_mode
    assert mode & stat.S_IXOTH and not mode & stat.S_IROTH
