"""What a step ran on: Python, packages, torch/CUDA/cuDNN, GPUs, OS. Captured once per
server (the environment steps inherit), then copied into every step's reproducibility
record together with what is particular to the step."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import runpy
import shutil
import socket
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import reef

TORCH_PROBE = (
    "import json, torch; c = torch.backends.cudnn; print(json.dumps({"
    "'version': torch.__version__, 'cuda': torch.version.cuda, "
    "'cudnn': c.version() if c.is_available() else None, "
    "'cuda_available': torch.cuda.is_available(), "
    "'deterministic_algorithms': torch.are_deterministic_algorithms_enabled()}))"
)
GPU_QUERY = "name,driver_version,memory.total,uuid"
ENV_KEYS = (
    "CUDA_VISIBLE_DEVICES",
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
)


def packages() -> dict[str, str]:
    found = {d.metadata["Name"]: d.version for d in metadata.distributions() if d.metadata["Name"]}
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def cpu_torch_facts() -> dict[str, Any] | None:
    """The facts of a CPU-only torch build, read from its `torch/version.py` without importing
    torch (the import costs about a CPU-second): such a build has no CUDA and no cuDNN, and a
    fresh process has deterministic algorithms off. None when torch is missing or was built
    for a GPU (CUDA, ROCm, XPU), whose facts need the import."""
    try:
        spec = importlib.util.find_spec("torch")  # finds the package without importing it
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    try:
        build = runpy.run_path(str(Path(spec.origin).with_name("version.py")))
    except (OSError, SyntaxError, ImportError):
        return None
    if build.get("cuda") or build.get("hip") or build.get("xpu") or "__version__" not in build:
        return None
    return {
        "version": build["__version__"],
        "cuda": None,
        "cudnn": None,
        "cuda_available": False,
        "deterministic_algorithms": False,
    }


def torch_facts() -> dict[str, Any] | None:
    """torch, CUDA and cuDNN versions: for a GPU build from a child process that imports torch
    (the server never imports it), for a CPU build from its version file."""
    cpu = cpu_torch_facts()
    if cpu is not None:
        return cpu
    try:
        out = subprocess.run(
            [sys.executable, "-c", TORCH_PROBE],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        return None


def nvidia_smi(fields: str, timeout: float = 20) -> list[list[str]]:
    """Rows of `nvidia-smi --query-gpu=FIELDS` (no units); none without an NVIDIA driver."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [[v.strip() for v in line.split(",")] for line in out.strip().splitlines() if line]


def gpus() -> list[dict[str, str]]:
    """GPUs as nvidia-smi reports them (none when there is no NVIDIA driver)."""
    keys = GPU_QUERY.split(",")
    return [dict(zip(keys, row, strict=False)) for row in nvidia_smi(GPU_QUERY)]


def fingerprint() -> str:
    """A short hash of the Python version and installed packages (part of a step's cache key)."""
    text = json.dumps([sys.version, sorted(packages().items())])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Environment:
    """The machine-wide part of the record, captured at the first step and kept."""

    def __init__(self) -> None:
        self._facts: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._warming = False

    def warm(self) -> None:
        """Gather the facts in the background, once: the torch probe is a child process that
        imports torch (seconds on a busy box), so it runs when the first run is planned,
        not inside the first step's time, and not at all in a server that runs no step."""
        with self._lock:
            if self._warming or self._facts is not None:
                return
            self._warming = True
        threading.Thread(target=self.facts, name="reef-environment", daemon=True).start()

    def facts(self) -> dict[str, Any]:
        with self._lock:
            if self._facts is None:
                self._facts = {
                    "reef": reef.__version__,
                    "python": sys.version,
                    "executable": sys.executable,
                    "platform": platform.platform(),
                    "machine": platform.machine(),
                    "hostname": socket.gethostname(),
                    "cpu_count": os.cpu_count(),
                    "torch": torch_facts(),
                    "gpus": gpus(),
                    "packages": packages(),
                }
            return self._facts

    def record(self, step: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        """A step's full record: what it is (module, commit, params, inputs, seed, command)
        and where it ran."""
        chosen = {k: env[k] for k in ENV_KEYS if k in env}
        return {**step, "environment_variables": chosen, **self.facts()}
