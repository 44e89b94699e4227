"""Sweeps: the parameter sets of a grid or random search over one step's parameters, and
which metric ranks the trials and which is reported beside it (pure).

A sweep picks its best trial on data the trials neither trained on nor are tested on:
otherwise the winner's test score is optimistic (it was chosen for it). Two ways:
- an evaluator reading the split's `validation` output (split's `validation_size` > 0): rank
  on `EVAL-VAL/KEY`; the evaluator of the same model reading `test` is reported beside it;
- a step that logs its own validation score as `val_KEY`: rank on it, report `KEY`.
A `STEP/KEY` whose step reads a `test` output is refused as the metric that ranks.
"""

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


def scoring(steps: list[dict], metric: str, test_metric: str | None) -> str | None:
    """Check that `metric` (KEY or STEP/KEY) does not rank on the test set, and return the
    metric to report beside it: `test_metric` if given, else the one `metric` implies."""
    by_name = {s.get("name"): s for s in steps}
    step, _, key = metric.rpartition("/")
    if step in by_name and _reads(by_name[step], "test"):
        raise InvalidInput(
            f"'{metric}' is computed on a test set ({_source(by_name[step], 'test')}): a sweep "
            "ranks on a validation set, so the test score stays unbiased. Give split a "
            "validation_size, evaluate on its 'validation' output, rank on that evaluator's "
            f"{key} and report this one as test_metric"
        )
    if test_metric is not None:
        if not isinstance(test_metric, str) or test_metric == metric:
            raise InvalidInput("'test_metric' must be a metric name other than 'metric'")
        return test_metric
    if key.startswith("val_"):
        return f"{step}/{key[4:]}" if step else key[4:]
    twin = _test_twin(steps, by_name.get(step))
    return f"{twin['name']}/{key}" if twin else None


def _reads(step: dict, output: str) -> bool:
    return bool(_source(step, output))


def _source(step: dict, output: str) -> str:
    refs = (step.get("inputs") or {}).values()
    return next((r for r in refs if isinstance(r, str) and r.endswith(f".{output}")), "")


def _test_twin(steps: list[dict], step: dict | None) -> dict | None:
    """The step that is `step` (same module and inputs) but reads `X.test`, not
    `X.validation`."""
    if step is None or not _reads(step, "validation"):
        return None
    wanted = {
        k: v[: -len("validation")] + "test" if v.endswith(".validation") else v
        for k, v in (step.get("inputs") or {}).items()
    }
    return next(
        (s for s in steps if s.get("module") == step.get("module") and s.get("inputs") == wanted),
        None,
    )


def ranked(rows: list[dict[str, Any]], goal: str) -> list[dict[str, Any]]:
    """Trials best first by their metric (trials without it last)."""
    sign = -1 if goal == "max" else 1
    return sorted(rows, key=lambda r: (r["metric"] is None, sign * (r["metric"] or 0), r["id"]))
