"""Which loaded version answers a request: the alias's version, or an A/B split or shadow.

A `Plan` is immutable. The model service swaps a model's plans as a whole when an alias or
the traffic setting changes; a request that already holds the old plan finishes on it.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reef.errors import InvalidInput

if TYPE_CHECKING:
    from reef.runtime.serving import Predictor

MODES = ("off", "split", "shadow")


@dataclass(frozen=True)
class Arm:
    version: int
    predictor: Predictor
    name: str = "main"  # main | candidate (answers a share of requests) | shadow


@dataclass(frozen=True)
class Plan:
    main: Arm
    other: Arm | None = None
    mode: str = "off"
    percent: float = 0.0

    def choose(self, key: str | None = None) -> tuple[Arm, Arm | None]:
        """(the arm that answers, the arm that predicts only for the log). With `key` (e.g. a
        user id) a split is sticky: the same key always lands on the same arm."""
        if self.other is None or self.mode == "off":
            return self.main, None
        if self.mode == "shadow":
            return self.main, self.other
        share = bucket(key) if key is not None else random.random()
        return (self.other, None) if share * 100 < self.percent else (self.main, None)


def bucket(key: str) -> float:
    """A stable number in [0, 1) for a key."""
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2**64


def parse(data: Any) -> dict[str, Any] | None:
    """Validate a traffic setting: {"mode": "split", "version": N, "percent": P} (P% of the
    requests to the default route go to version N), {"mode": "shadow", "version": N}, or
    {"mode": "off"} (None)."""
    if not isinstance(data, dict) or data.get("mode") not in MODES:
        raise InvalidInput(f"send {{'mode': one of {', '.join(MODES)}, 'version', 'percent'}}")
    if data["mode"] == "off":
        return None
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidInput("'version' must be the candidate version number")
    percent = data.get("percent", 100 if data["mode"] == "shadow" else None)
    if not isinstance(percent, int | float) or isinstance(percent, bool) or not 0 <= percent <= 100:
        raise InvalidInput("'percent' must be a number from 0 to 100")
    return {"mode": data["mode"], "version": version, "percent": float(percent)}
