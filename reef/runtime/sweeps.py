"""Sweeps: the parameter sets of a grid or random search over one step's parameters (pure)."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from reef.errors import InvalidInput

MAX_TRIALS = 200


def trials(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Parameter sets to try. Grid: every combination of the listed values. Random: `trials`
    draws, each parameter from a list or a {min, max, log?, int?} range, seeded."""
    if "grid" in spec:
        grid = _space(spec["grid"], lists_only=True)
        names = list(grid)
        out = [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(grid[n] for n in names))
        ]
    elif "random" in spec:
        space = _space(spec["random"], lists_only=False)
        count = spec.get("trials")
        if not isinstance(count, int) or not 1 <= count <= MAX_TRIALS:
            raise InvalidInput(f"'trials' must be an integer from 1 to {MAX_TRIALS}")
        rng = random.Random(spec.get("seed", 0))
        out = [{n: _draw(rng, dom) for n, dom in space.items()} for _ in range(count)]
    else:
        raise InvalidInput("a sweep needs 'grid' (lists of values) or 'random' (with 'trials')")
    if not 1 <= len(out) <= MAX_TRIALS:
        raise InvalidInput(f"a sweep makes 1 to {MAX_TRIALS} trials; this one makes {len(out)}")
    return out


def _space(space: Any, lists_only: bool) -> dict[str, Any]:
    if not isinstance(space, dict) or not space:
        raise InvalidInput("the search space must map parameter names to values")
    for name, dom in space.items():
        if isinstance(dom, list):
            if not dom:
                raise InvalidInput(f"parameter '{name}': give at least one value")
        elif lists_only or not isinstance(dom, dict) or not {"min", "max"} <= set(dom):
            what = "a list of values" if lists_only else "a list or {min, max, log?, int?}"
            raise InvalidInput(f"parameter '{name}': expected {what}")
        elif not dom["min"] < dom["max"] or (dom.get("log") and dom["min"] <= 0):
            raise InvalidInput(f"parameter '{name}': need min < max (and min > 0 for log)")
    return space


def _draw(rng: random.Random, dom: Any) -> Any:
    if isinstance(dom, list):
        return rng.choice(dom)
    low, high = float(dom["min"]), float(dom["max"])
    value = (
        math.exp(rng.uniform(math.log(low), math.log(high)))
        if dom.get("log")
        else rng.uniform(low, high)
    )
    return round(value) if dom.get("int") else value


def ranked(rows: list[dict[str, Any]], goal: str) -> list[dict[str, Any]]:
    """Trials best first by their metric (trials without it last)."""
    sign = -1 if goal == "max" else 1
    return sorted(rows, key=lambda r: (r["metric"] is None, sign * (r["metric"] or 0), r["id"]))
