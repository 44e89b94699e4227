"""The wheel carries everything: built, installed into a fresh venv outside the repo, and the
demo runs from it with the built-in modules found inside the installed package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import ADMIN_PASSWORD, free_port, patience

ROOT = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(
    ".git", ".venv", "reef-data", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
)


def build_wheel(dest: Path) -> Path:
    """`pip wheel` of a copy of the source tree (so the build leaves nothing in the repo)."""
    src = dest / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*cmd, "-w", str(dest / "wheels"), str(src)], check=True)
    (wheel,) = (dest / "wheels").glob("reef-*.whl")
    return wheel


def fresh_venv(dest: Path) -> Path:
    """A venv without reef whose dependencies come from this interpreter's site-packages,
    added as plain paths: their .pth files (this checkout's editable install) stay unread."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    python = dest / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], *(p for p in sys.path if "-packages" in p)}
    Path(purelib, "deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


@pytest.mark.slow
def test_wheel_installs_and_runs_the_demo(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = subprocess.run(
        [sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True
    ).stdout
    assert "reef/library/evaluate/main.py" in names and "reef/templates/base.html" in names
    assert "reef-data" not in names and "tests/" not in names
    python = fresh_venv(tmp_path / "venv")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
    subprocess.run([*pip, "--no-index", str(wheel)], check=True)
    where = subprocess.run(
        [python, "-c", "import reef; print(reef.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    assert where.startswith(str(tmp_path / "venv")), where
    env = {**os.environ, "REEF_ADMIN_PASSWORD": ADMIN_PASSWORD}
    reef = tmp_path / "venv" / "bin" / "reef"
    cmd = [reef, "demo", "--exit", "--data", str(tmp_path / "data"), "--port", str(free_port())]
    done = subprocess.run(
        cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=patience(300)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test accuracy" in done.stdout and "runs/None" not in done.stdout
    assert f"reef serve --data {tmp_path / 'data'}" in done.stdout
