"""System metrics of a running step: CPU and memory of its whole process tree, and the
utilisation and memory of the GPUs it may use (nvidia-smi, when there is one)."""

from __future__ import annotations

import shutil
import time

import psutil

from reef.runtime.environment import nvidia_smi

GPU_QUERY = "index,utilization.gpu,memory.used"


class Sampler:
    """Call `sample()` now and then while a step runs; it returns metric points to store."""

    def __init__(self, pid: int, visible_gpus: str | None, every_s: float = 2.0) -> None:
        self.root = psutil.Process(pid)
        self.visible = None if visible_gpus is None else set(visible_gpus.split(","))
        self.every_s = every_s
        self.started = time.monotonic()
        self._last = 0.0
        self._seen: dict[int, psutil.Process] = {}
        self._gpu = shutil.which("nvidia-smi") is not None

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    def sample(self) -> list[dict]:
        self._last = time.monotonic()
        step = int(self._last - self.started)
        cpu, rss = self._tree()
        points = [
            {"key": "system/cpu_percent", "value": cpu, "step": step},
            {"key": "system/memory_mb", "value": rss / 2**20, "step": step},
        ]
        for index, util, mem in self._gpus():
            points += [
                {"key": f"system/gpu{index}_util_percent", "value": util, "step": step},
                {"key": f"system/gpu{index}_memory_mb", "value": mem, "step": step},
            ]
        return points

    def _tree(self) -> tuple[float, float]:
        """CPU % (summed over the tree, since the last sample) and resident memory in bytes."""
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0, 0.0
        cpu = rss = 0.0
        for proc in procs:
            known = self._seen.setdefault(proc.pid, proc)
            try:
                cpu += known.cpu_percent(None)  # 0.0 on the first call for a process
                rss += known.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return cpu, rss

    def _gpus(self) -> list[tuple[str, float, float]]:
        rows = nvidia_smi(GPU_QUERY, timeout=5) if self._gpu else []
        return [
            (r[0], float(r[1]), float(r[2]))
            for r in rows
            if len(r) == 3 and (self.visible is None or r[0] in self.visible)
        ]
