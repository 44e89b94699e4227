"""What a served model takes and gives: the one reader of schema.json (formats 1 and 2).

Format 1 (no "format" key): one float32 input `x` of shape (batch, features), output `y`.
Format 2: the model carries its preprocessing, so it takes the raw row as the dataset holds
it, one ONNX input per column (shape (batch, 1)): numbers, booleans and dates as float32
(null as NaN; dates as days since 1970-01-01), categories and text as strings (null as "").
docs/models.md describes the file.

`describe_features` writes the "inputs" part when a model is trained; `feeds` turns raw rows
(dicts keyed by column name, or a pyarrow Table) into the ONNX inputs, the same way for the
training rows and for every row served later, and says which row, feature and why when a
value does not fit. Pure: numpy and pyarrow only.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import numbers
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reef.errors import InvalidInput, NotFound

FORMAT = 2
MAX_CHOICES = 100  # training categories a schema lists (for forms and the unseen count)
FLOAT_ROLES = ("number", "boolean", "date")
STRING_ROLES = ("category", "text")
ROLES = FLOAT_ROLES + STRING_ROLES
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Feature:
    """One raw column a model takes."""

    name: str  # the column name in the dataset
    role: str  # number | boolean | date | category | text
    input: str  # the ONNX input name
    dtype: str  # float32 | string
    typical: Any = None  # median number, most frequent category
    choices: tuple[str, ...] = ()  # training categories (at most MAX_CHOICES)
    more_choices: bool = False  # the training data had more categories than `choices`
    min: float | None = None
    max: float | None = None
    missing: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "role": self.role,
            "input": self.input,
            "dtype": self.dtype,
            "missing": self.missing,
        }
        if self.typical is not None:
            out["typical"] = self.typical
        if self.role == "category":
            out["choices"] = list(self.choices)
            if self.more_choices:
                out["more_choices"] = True
        if self.min is not None:
            out["min"], out["max"] = self.min, self.max
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Feature:
        return cls(
            name=str(d["name"]),
            role=str(d["role"]),
            input=str(d["input"]),
            dtype=str(d["dtype"]),
            typical=d.get("typical"),
            choices=tuple(d.get("choices") or ()),
            more_choices=bool(d.get("more_choices", False)),
            min=d.get("min"),
            max=d.get("max"),
            missing=int(d.get("missing", 0)),
        )


class ModelSchema:
    """schema.json of one model, either format."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = dict(raw)
        self.format = int(raw.get("format", 1))
        inputs = raw.get("inputs") or {}
        outputs = raw.get("outputs") or {}
        if self.format >= 2:
            self.features = [Feature.from_dict(f) for f in inputs.get("features", [])]
        else:
            self.features = [
                Feature(name=str(n), role="number", input=inputs.get("name", "x"), dtype="float32")
                for n in inputs.get("features", [])
            ]
        classes = outputs.get("classes")
        self.classes: list[str] | None = None if classes is None else [str(c) for c in classes]
        self.output_kind: str = outputs.get("kind") or ("probabilities" if classes else "raw")
        self.scores: str = outputs.get("scores") or outputs.get("name") or "y"
        self.target: str | None = raw.get("target")
        self.task: str = raw.get("task") or ("classification" if classes else "regression")

    @classmethod
    def of(cls, features: Iterable[Feature]) -> ModelSchema:
        """A format-2 schema with just these features (what training feeds the pipeline)."""
        return cls({"format": FORMAT, "inputs": {"features": [f.to_dict() for f in features]}})

    @classmethod
    def load(cls, model_dir: Path | str) -> ModelSchema:
        path = Path(model_dir) / "schema.json"
        if not path.is_file():
            raise NotFound(f"{model_dir} holds no schema.json")
        return cls(json.loads(path.read_text()))

    @property
    def raw_rows(self) -> bool:
        """Whether the model takes raw rows (format 2) rather than a float matrix."""
        return self.format >= 2

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_names(self) -> list[str]:
        """The features held as float32 (numbers, booleans, dates): what drift compares."""
        return [f.name for f in self.features if f.dtype == "float32"]

    def feeds(
        self, rows: list[Mapping[str, Any]] | pa.Table, unseen: Counter[str] | None = None
    ) -> dict[str, np.ndarray]:
        """The ONNX inputs of a format-2 model for `rows`: dicts keyed by column name (other
        keys are ignored) or a Table holding every feature column. InvalidInput names the
        row, the feature and why; categories not seen in training are counted in `unseen`
        (per feature name) and left to the graph."""
        if not self.raw_rows:
            raise InvalidInput("this model takes a matrix of numbers, not raw rows")
        if isinstance(rows, pa.Table):
            out = {f.input: _table_column(rows, f) for f in self.features}
        else:
            if not isinstance(rows, list) or not rows:
                raise InvalidInput("rows must be a non-empty list of objects keyed by column")
            out = {f.input: _column_of(rows, f) for f in self.features}
        if unseen is not None:
            _count_unseen(self.features, out, unseen)
        return out

    def numeric_matrix(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """float32 (batch, numeric features) from `feeds`, NaN where missing (for the log)."""
        cols = [feeds[f.input][:, 0] for f in self.features if f.dtype == "float32"]
        n = len(next(iter(feeds.values()))) if feeds else 0
        return np.column_stack(cols).astype(np.float32) if cols else np.zeros((n, 0), np.float32)


def example_rows(schema: ModelSchema, n: int = 1) -> list[Any]:
    """`n` valid rows: each feature's typical value (an ISO date for dates; null for text and
    where there is none); zeros for a format-1 model. Warm-up, latency checks, the API
    example."""
    if not schema.raw_rows:
        return [[0.0] * len(schema.features) for _ in range(n)]
    row = {f.name: _typical(f) for f in schema.features}
    return [dict(row) for _ in range(n)]


def _typical(f: Feature) -> Any:
    if f.typical is None or f.role == "text":
        return None
    if f.role == "boolean":
        return bool(round(f.typical))
    if f.role == "date":
        return (_EPOCH + dt.timedelta(days=float(f.typical))).date().isoformat()
    return f.typical


def input_names(columns: Iterable[str]) -> list[str]:
    """ONNX-safe, distinct input names for column names ("mean radius" -> "mean_radius")."""
    out: list[str] = []
    taken: set[str] = set()
    for name in columns:
        base = re.sub(r"\W+", "_", str(name)).strip("_") or "column"
        if base[0].isdigit():
            base = "c_" + base
        candidate, i = base, 1
        while candidate in taken:
            i += 1
            candidate = f"{base}_{i}"
        taken.add(candidate)
        out.append(candidate)
    return out


def describe_features(table: pa.Table, roles: Mapping[str, str]) -> list[Feature]:
    """The features of a format-2 model trained on `table`, one per column of `roles`
    (column name -> role, as `reef.tasks.column_roles` gives), with the facts a form shows."""
    names = list(roles)
    bad = [f"{n!r}: {r}" for n, r in roles.items() if r not in ROLES]
    if bad:
        raise InvalidInput(f"a raw-row model cannot take {', '.join(bad)}")
    out = []
    for name, onnx_name in zip(names, input_names(names), strict=True):
        role = roles[name]
        f = Feature(name, role, onnx_name, "float32" if role in FLOAT_ROLES else "string")
        column = table.column(name)
        facts: dict[str, Any] = {"missing": column.null_count}
        if role in FLOAT_ROLES:
            values = _table_column(table, f)[:, 0].astype(np.float64)
            values = values[np.isfinite(values)]
            if len(values):
                facts |= {"min": float(values.min()), "max": float(values.max())}
                middle = float(np.median(values))
                facts["typical"] = float(values.mean() >= 0.5) if role == "boolean" else middle
        elif role == "category":
            counts = pc.value_counts(column.drop_null().cast(pa.string())).to_pylist()
            counts.sort(key=lambda c: (-c["counts"], c["values"]))
            facts["typical"] = counts[0]["values"] if counts else None
            facts["choices"] = tuple(sorted(c["values"] for c in counts[:MAX_CHOICES]))
            facts["more_choices"] = len(counts) > MAX_CHOICES
        out.append(Feature(**{**f.__dict__, **facts}))
    return out


# --- raw values -> inputs ------------------------------------------------------------------


def _column_of(rows: list[Mapping[str, Any]], f: Feature) -> np.ndarray:
    values = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InvalidInput(
                f"row {i}: expected an object keyed by column name, got {type(row).__name__}"
            )
        if f.name not in row:
            raise InvalidInput(f"row {i}: {f.name!r} is missing (send null for an unknown value)")
        values.append(_value(i, f, row[f.name]))
    dtype = np.float32 if f.dtype == "float32" else object
    return np.array(values, dtype=dtype).reshape(-1, 1)


def _value(i: int, f: Feature, v: Any) -> Any:
    if f.dtype == "string":
        if v is None:
            return ""
        if not isinstance(v, str):
            raise InvalidInput(f"row {i}: {f.name!r} expected text, got {_shown(v)}")
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return math.nan
    if f.role == "boolean":
        if isinstance(v, bool) or (isinstance(v, numbers.Real) and v in (0, 1)):
            return float(v)
        raise InvalidInput(f"row {i}: {f.name!r} expected true or false, got {_shown(v)}")
    if f.role == "date":
        return _days(i, f, v)
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise InvalidInput(f"row {i}: {f.name!r} expected a number, got {_shown(v)}")
    number = float(v)
    if not math.isfinite(number) or abs(number) > _FLOAT32_MAX:
        raise InvalidInput(f"row {i}: {f.name!r}: {v} is not a finite float32 number")
    return number


def _days(i: int, f: Feature, v: Any) -> float:
    """Days since 1970-01-01 (UTC) of an ISO date or datetime string, a date or a datetime."""
    when: Any = v
    if isinstance(v, str):
        try:
            when = dt.datetime.fromisoformat(v.strip())
        except ValueError:
            raise InvalidInput(
                f"row {i}: {f.name!r} expected a date like 2024-01-31, got {_shown(v)}"
            ) from None
    if isinstance(when, dt.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return (when - _EPOCH).total_seconds() / 86400.0
    if isinstance(when, dt.date):
        return float((when - _EPOCH.date()).days)
    raise InvalidInput(f"row {i}: {f.name!r} expected a date like 2024-01-31, got {_shown(v)}")


def _shown(v: Any) -> str:
    if isinstance(v, str):
        short = v if len(v) <= 40 else v[:37] + "..."
        return f"text {short!r}"
    if isinstance(v, bool):
        return f"{'true' if v else 'false'} (a boolean)"
    if isinstance(v, numbers.Real):
        return f"the number {v}"
    return f"a {type(v).__name__}"


def _table_column(table: pa.Table, f: Feature) -> np.ndarray:
    if f.name not in table.column_names:
        raise InvalidInput(f"the table has no column {f.name!r} (a feature of the model)")
    column = table.column(f.name)
    t = column.type
    if f.dtype == "string":
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            raise InvalidInput(f"column {f.name!r} holds binary data, expected text")
        values = pc.fill_null(column.cast(pa.string()), "").to_numpy(zero_copy_only=False)
        return values.astype(object).reshape(-1, 1)
    if f.role == "date" and (pa.types.is_temporal(t) or pa.types.is_string(t)):
        return _table_dates(column, f)
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
        values = pc.fill_null(column.cast(pa.float64()), math.nan)
        return values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, 1)
    if pa.types.is_decimal(t):
        values = pc.fill_null(column.cast(pa.float64()), math.nan)
        return values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, 1)
    raise InvalidInput(f"column {f.name!r} holds {t}, expected {f.role}s")


def _table_dates(column: pa.ChunkedArray, f: Feature) -> np.ndarray:
    t = column.type
    if pa.types.is_string(t):
        days = [math.nan if v is None else _days(i, f, v) for i, v in enumerate(column.to_pylist())]
        return np.array(days, dtype=np.float32).reshape(-1, 1)
    if pa.types.is_date(t):
        values = column.cast(pa.date32()).cast(pa.int32()).cast(pa.float64())
    else:
        micros = column.cast(pa.timestamp("us", tz=getattr(t, "tz", None))).cast(pa.int64())
        values = pc.divide(micros.cast(pa.float64()), 86400e6)
    values = pc.fill_null(values, math.nan)
    return values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, 1)


def _count_unseen(
    features: list[Feature], feeds: Mapping[str, np.ndarray], unseen: Counter[str]
) -> None:
    for f in features:
        if f.role != "category" or f.more_choices:
            continue
        known = set(f.choices)
        n = sum(1 for v in feeds[f.input][:, 0] if v != "" and v not in known)
        if n:
            unseen[f.name] += n
