"""The GPUs this server lends to steps. A step asking for N gets N devices of its own (its
CUDA_VISIBLE_DEVICES) or waits in the queue until they are free; a CPU step sees none."""

from __future__ import annotations

import threading

from reef.errors import InvalidInput
from reef.runtime.environment import nvidia_smi


def detect(setting: str) -> list[str]:
    """Device indexes: "auto" asks nvidia-smi (none without a driver), "none" lends none,
    "0,2" lends exactly those."""
    if setting == "auto":
        return [row[0] for row in nvidia_smi("index") if row]
    if setting in ("none", ""):
        return []
    devices = [d.strip() for d in setting.split(",") if d.strip()]
    if not all(d.isdigit() for d in devices):
        raise InvalidInput(f"--gpus must be auto, none or device indexes like 0,1; got {setting!r}")
    return devices


class GpuPool:
    """Devices lent to steps, and slots for CPU-only steps (`cpu_steps`; 0: no limit of its
    own, the queue's consumer count caps them)."""

    def __init__(self, devices: list[str], cpu_steps: int = 0) -> None:
        self.devices = devices
        self.cpu_steps = cpu_steps
        self._held: dict[int, list[str]] = {}  # step id -> devices ([] for a CPU step)
        self._lock = threading.Lock()

    def acquire(self, step_id: int, count: int) -> list[str] | None:
        """`count` free devices now held by `step_id`, or None when not enough are free."""
        if count > len(self.devices):
            raise InvalidInput(
                f"this step needs {count} GPU(s); this server has {len(self.devices)}"
            )
        with self._lock:
            busy = {d for held in self._held.values() for d in held}
            free = [d for d in self.devices if d not in busy]
            if len(free) < count:
                return None
            cpu_held = sum(1 for held in self._held.values() if not held)
            if count == 0 and self.cpu_steps and cpu_held >= self.cpu_steps:
                return None
            self._held[step_id] = free[:count]
            return self._held[step_id]

    def release(self, step_id: int) -> None:
        with self._lock:
            self._held.pop(step_id, None)

    def holders(self) -> dict[str, int]:
        """Which step holds each busy device."""
        with self._lock:
            return {d: step for step, held in self._held.items() for d in held}
