"""Input drift: how far a model's live inputs have moved from its training data.

What is compared is a float32 matrix with one column per monitored feature, the same for
training rows (at registration) and for served rows (in the prediction log):
- format 1 (numbers only): every feature as it is;
- format 2 (raw rows): numbers, booleans and dates as float32 (NaN where missing) and
  categories as a code: the index of the value in the schema's training `choices`, one more
  for any other value, NaN where missing. Text is not monitored (no column).

A version's `reference` keeps, per feature, decile bins and their shares (numbers) or the
share of each training category plus "other" (categories). Drift is the PSI (population
stability index) of the live shares against those, and for numbers the two-sample
Kolmogorov-Smirnov statistic against a sample of training rows.

Pure: numpy only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from reef.model_io import Feature, ModelSchema

REFERENCE_BINS = 10
REFERENCE_ROWS = 50_000
SAMPLE_ROWS = 1000  # training rows kept per version for the KS test
KS_LIVE_ROWS = 20_000  # live rows KS looks at (a random subset of a busier window)
_EPS = 1e-4


# what is monitored -----------------------------------------------------------------------
def monitored(schema: ModelSchema) -> list[Feature]:
    """The features drift looks at, in matrix column order: all but text."""
    return [f for f in schema.features if f.role != "text"]


def monitored_matrix(schema: ModelSchema, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """float32 (rows, monitored features) from a format-2 model's ONNX inputs."""
    features = monitored(schema)
    n = len(next(iter(feeds.values()))) if feeds else 0
    if not features:
        return np.zeros((n, 0), np.float32)
    columns = [
        _codes(feeds[f.input][:, 0], f.choices) if f.role == "category" else feeds[f.input][:, 0]
        for f in features
    ]
    return np.column_stack(columns).astype(np.float32)


def _codes(values: np.ndarray, choices: tuple[str, ...]) -> np.ndarray:
    """The index of each value in `choices`, len(choices) for others, NaN for "" (null)."""
    index = {c: float(i) for i, c in enumerate(choices)}
    other = float(len(choices))
    return np.array([np.nan if v == "" else index.get(v, other) for v in values], dtype=np.float32)


def categories(schema: ModelSchema) -> dict[str, list[str]]:
    """The monitored category features and their training choices."""
    return {f.name: list(f.choices) for f in monitored(schema) if f.role == "category"}


# the reference ---------------------------------------------------------------------------
def reference(
    x: np.ndarray,
    features: list[str],
    categories: dict[str, list[str]] | None = None,
    bins: int = REFERENCE_BINS,
) -> dict[str, Any]:
    """Per feature of the training matrix `x` (rows, features): quantile bins and the share
    of rows in each (numbers), or the share of each category code (the features named in
    `categories`, with their choices): what live inputs are compared with."""
    x = np.asarray(x, dtype=np.float64)[:REFERENCE_ROWS]
    categories = categories or {}
    out = []
    for j, name in enumerate(features):
        col = x[:, j][np.isfinite(x[:, j])]
        if name in categories:
            choices = categories[name]
            shares = _code_shares(col, len(choices))
            out.append({"name": name, "kind": "category", "choices": choices, "shares": shares})
            continue
        cuts = np.linspace(0, 1, bins + 1)[1:-1]
        edges = np.unique(np.quantile(col, cuts)) if len(col) else np.zeros(0)
        out.append({"name": name, "edges": list(map(float, edges)), "shares": _shares(col, edges)})
    return {"rows": len(x), "features": out}


def _shares(values: np.ndarray, edges: Any) -> list[float]:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return (counts / max(1, len(values))).tolist()


def _code_shares(codes: np.ndarray, n_choices: int) -> list[float]:
    """Share of each category code 0..n_choices (the last: any other value)."""
    codes = np.clip(codes.astype(np.int64), 0, n_choices)
    return (np.bincount(codes, minlength=n_choices + 1) / max(1, len(codes))).tolist()


def training_sample(x: np.ndarray, rows: int = SAMPLE_ROWS) -> np.ndarray:
    """Up to `rows` training rows drawn without replacement (float32), for the KS test."""
    return subsample(np.asarray(x, dtype=np.float32), rows)


def subsample(x: np.ndarray, rows: int, seed: int = 0) -> np.ndarray:
    if len(x) <= rows:
        return x
    return x[np.sort(np.random.default_rng(seed).choice(len(x), rows, replace=False))]


# the statistics --------------------------------------------------------------------------
def psi(values: np.ndarray, feature: dict[str, Any]) -> float:
    """Population stability index of live `values` against one reference feature."""
    values = values[np.isfinite(values)]
    expected = np.clip(np.asarray(feature["shares"]), _EPS, None)
    if feature.get("kind") == "category":
        actual = _code_shares(values, len(feature["choices"]))
    else:
        actual = _shares(values, feature["edges"])
    actual = np.clip(np.asarray(actual), _EPS, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs of
    `a` and `b` (non-finite values left out; 0 when either side is empty)."""
    a, b = np.sort(a[np.isfinite(a)]), np.sort(b[np.isfinite(b)])
    if not len(a) or not len(b):
        return 0.0
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, "right") / len(a)
    cdf_b = np.searchsorted(b, points, "right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def drift(
    x: np.ndarray, ref: dict[str, Any], sample: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """PSI (and for numbers, with the training `sample`, the KS statistic) of every feature
    of live inputs `x`, largest PSI first. Categories have no order, so no KS."""
    scores = []
    live = subsample(x, KS_LIVE_ROWS)
    for j, f in enumerate(ref["features"]):
        if j >= x.shape[1]:
            continue
        score = {"feature": f["name"], "psi": round(psi(x[:, j], f), 4), "ks": None}
        number = f.get("kind") != "category"
        if number and sample is not None and j < sample.shape[1]:
            score["ks"] = round(ks(live[:, j], sample[:, j]), 4)
        scores.append(score)
    return sorted(scores, key=lambda s: -s["psi"])
