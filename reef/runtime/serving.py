"""Serve an exported model (model.onnx + schema.json) with onnxruntime only; no torch.

One `Predictor` per model version; its onnxruntime session is safe to share between threads.
"""

from __future__ import annotations

import json
import math
import numbers
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from reef import images
from reef.errors import InvalidInput, NotFound, TooLarge
from reef.model_io import ModelSchema, example_rows
from reef.runtime import drift

MAX_ROWS = 10_000
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Inputs:
    """Validated rows, ready for the model: `feeds` (the ONNX inputs), `x` (float32 (rows,
    monitored features), NaN where missing, categories as codes: what the prediction log and
    drift keep; see reef.runtime.drift) and the categories not seen in training, per feature
    (format 2; the graph handles them)."""

    feeds: dict[str, np.ndarray]
    x: np.ndarray
    unseen: Counter[str] = field(default_factory=Counter)


class Predictor:
    """Predictions from one exported model directory (schema.json format 1 or 2)."""

    def __init__(self, model_dir: Path, max_rows: int = MAX_ROWS, threads: int = 1) -> None:
        import onnxruntime as ort

        model_dir = Path(model_dir)
        onnx_path, schema_path = model_dir / "model.onnx", model_dir / "schema.json"
        if not onnx_path.is_file() or not schema_path.is_file():
            raise NotFound(f"{model_dir} holds no model.onnx and schema.json")
        self.schema: dict[str, Any] = json.loads(schema_path.read_text())
        self.model_schema = ModelSchema(self.schema)
        self.raw_rows = self.model_schema.raw_rows
        # what the prediction log and drift see: every feature (format 1); all but text,
        # categories as codes (format 2; see reef.runtime.drift)
        self.features: list[str] = (
            [f.name for f in drift.monitored(self.model_schema)]
            if self.raw_rows
            else list(self.schema["inputs"]["features"])
        )
        # the dataset columns the model reads
        self.columns: list[str] = self.model_schema.names
        self.classes: list[str] | None = self.model_schema.classes
        self.output_kind: str = self.model_schema.output_kind
        self.max_rows = max_rows
        self._session = ort.InferenceSession(
            str(onnx_path), _session_options(ort, threads), providers=_providers(ort)
        )
        self._input = self._session.get_inputs()[0].name
        self._known = set(self.features)

    def predict(self, rows: list[Any]) -> list[dict[str, Any]]:
        """One result per row: {"label", "probabilities"} for classifiers, {"value"} for a
        raw-row regressor, else {"outputs"}.

        A row is a dict keyed by column name (format 2: the raw row as the dataset holds it,
        with strings, nulls and ISO dates; format 1: numbers), or, for format 1, a list of
        numbers in feature order. Rows are numbered from 0 in error messages.
        """
        return self.results(self.run_inputs(self.inputs(rows)))

    def inputs(self, rows: list[Any]) -> Inputs:
        """Validate request rows (InvalidInput naming row, feature and why)."""
        if not self.raw_rows:
            x = self.to_array(rows)
            return Inputs({self._input: x}, x)
        self._check_count(rows)
        unseen: Counter[str] = Counter()
        feeds = self.model_schema.feeds(rows, unseen)
        return Inputs(feeds, drift.monitored_matrix(self.model_schema, feeds), unseen)

    def table_inputs(self, table: pa.Table) -> Inputs:
        """The inputs for every row of a table holding `columns` (batch prediction, gates).
        Format 1 scores a row with a missing or non-finite value on zeros: mask those rows
        with `complete`."""
        if self.raw_rows:
            feeds = self.model_schema.feeds(table)
            return Inputs(feeds, drift.monitored_matrix(self.model_schema, feeds))
        x = self._matrix(table)
        x = np.where(np.isfinite(x), x, 0).astype(np.float32)
        return Inputs({self._input: x}, x)

    def complete(self, table: pa.Table) -> np.ndarray:
        """Which rows of `table` the model can score (format 2: all; nulls are imputed)."""
        if self.raw_rows:
            return np.ones(table.num_rows, dtype=bool)
        return np.isfinite(self._matrix(table)).all(axis=1)

    def _matrix(self, table: pa.Table) -> np.ndarray:
        columns = [table.column(f).to_numpy(zero_copy_only=False) for f in self.columns]
        return np.column_stack([c.astype(np.float64) for c in columns])

    def example_rows(self, n: int = 1) -> list[Any]:
        """`n` valid rows (typical values; zeros for format 1): warm-up, latency, examples."""
        return example_rows(self.model_schema, n)

    def warm_up(self) -> None:
        self.run_inputs(self.inputs(self.example_rows()))

    def run_inputs(self, inputs: Inputs) -> np.ndarray:
        """Model outputs for validated inputs, as `run`."""
        y = self._session.run(["y"] if self.raw_rows else None, inputs.feeds)[0]
        y = np.asarray(y, dtype=np.float64).reshape(len(inputs.x), -1)
        return _softmax(y) if self.output_kind == "logits" else y

    def run(self, x: np.ndarray) -> np.ndarray:
        """Model outputs for a validated float32 (batch, features) array (format 1):
        probabilities for classifiers (softmax applied to logits), else the raw outputs;
        float64 (batch, n)."""
        if self.raw_rows:
            raise InvalidInput("this model takes raw rows, not a matrix of numbers")
        y = self._session.run(None, {self._input: x})[0]
        y = np.asarray(y, dtype=np.float64).reshape(len(x), -1)
        return _softmax(y) if self.output_kind == "logits" else y

    def labels(self, y: np.ndarray) -> list[str] | None:
        """The predicted class of each row of `run`'s output (None for regressors)."""
        if self.classes is None:
            return None
        best = np.argmax(y, axis=1).tolist()
        n = len(self.classes)
        return [self.classes[b] if b < n else str(b) for b in best]

    def results(self, y: np.ndarray, labels: list[str] | None = None) -> list[dict[str, Any]]:
        """The JSON answer for `run`'s output: one dict per row."""
        if self.classes is None:
            if self.raw_rows:
                return [{"value": v} for v in y[:, 0].tolist()]
            return [{"outputs": row} for row in y.tolist()]
        labels = labels if labels is not None else self.labels(y)
        return [
            {"label": label, "probabilities": row}
            for label, row in zip(labels or [], y.tolist(), strict=True)
        ]

    def _check_count(self, rows: Any) -> None:
        if not isinstance(rows, list):
            raise InvalidInput(f"rows must be a list, got {type(rows).__name__}")
        if not rows:
            raise InvalidInput("rows is empty: send at least one row")
        if len(rows) > self.max_rows:
            raise TooLarge(f"{len(rows)} rows in one request; the limit is {self.max_rows}")

    def to_array(self, rows: list[Any]) -> np.ndarray:
        """Validate rows and stack them into the float32 (batch, features) model input."""
        if self.raw_rows:
            raise InvalidInput("this model takes raw rows: send objects keyed by column name")
        self._check_count(rows)
        fast = self._fast_array(rows)
        if fast is not None:
            return fast
        return np.array([self._row(i, row) for i, row in enumerate(rows)], dtype=np.float32)

    def _fast_array(self, rows: list[Any]) -> np.ndarray | None:
        """Rows that are all lists of plain ints and floats of the right length, converted in
        one go; None sends them through the row-by-row path that names what is wrong."""
        n = len(self.features)
        if any(type(row) is not list or len(row) != n for row in rows):
            return None
        if not set(map(type, chain.from_iterable(rows))) <= {int, float}:
            return None
        try:
            x = np.asarray(rows, dtype=np.float64)
        except (OverflowError, ValueError):
            return None
        if not np.isfinite(x).all() or (np.abs(x) > _FLOAT32_MAX).any():
            return None
        return x.astype(np.float32)

    def _row(self, index: int, row: Any) -> list[float]:
        if isinstance(row, dict):
            row = self._row_from_dict(index, row)
        elif not isinstance(row, list | tuple):
            raise InvalidInput(
                f"row {index} must be a list of numbers or an object keyed by feature name, "
                f"got {type(row).__name__}"
            )
        if len(row) != len(self.features):
            raise InvalidInput(
                f"row {index} has {len(row)} values; the model expects "
                f"{len(self.features)} features"
            )
        return [_number(index, self.features[j], v) for j, v in enumerate(row)]

    @cached_property
    def image(self) -> dict[str, Any] | None:
        """How an image model decodes an image file into its pixel features (None for
        other models): such a model also takes rows {"image": bytes or base64 text}."""
        return self.schema.get("image")

    def _row_from_dict(self, index: int, row: dict[str, Any]) -> list[Any]:
        if self.image is not None and self.image["column"] in row and len(row) == 1:
            return images.pixel_row(index, row[self.image["column"]], self.image)
        missing = [f for f in self.features if f not in row]
        unknown = [k for k in row if k not in self._known]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing features {_names(missing)}")
            if unknown:
                parts.append(f"unknown features {_names(unknown)}")
            raise InvalidInput(f"row {index}: {'; '.join(parts)}")
        return [row[f] for f in self.features]


def _session_options(ort: Any, threads: int) -> Any:
    """`threads` intra-op threads (default 1), which sleep rather than spin between runs: a
    served model answers many small requests side by side, and a spinning pool would take
    the CPU from the event loop that parses and answers them."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def _providers(ort: Any) -> list[str]:
    available = ort.get_available_providers()
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in wanted if p in available] or ["CPUExecutionProvider"]


def _number(index: int, feature: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"row {index}, feature {feature!r}: expected a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or abs(number) > _FLOAT32_MAX:
        raise InvalidInput(
            f"row {index}, feature {feature!r}: {value} is not a finite float32 number"
        )
    return number


def _names(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _softmax(y: np.ndarray) -> np.ndarray:
    e = np.exp(y - y.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
