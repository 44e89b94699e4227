"""impute: fill missing cells (nulls, and NaN in float columns) column by column."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import reef


def shown(names: list[str], limit: int = 12) -> str:
    """Up to `limit` names, comma-separated, and how many more there are."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def is_numeric(field: pa.Field) -> bool:
    return pa.types.is_integer(field.type) or pa.types.is_floating(field.type)


def missing_mask(column: pa.ChunkedArray) -> np.ndarray:
    """True where a cell is null, or NaN in a float column."""
    mask = pc.is_null(column, nan_is_null=pa.types.is_floating(column.type))
    return mask.to_numpy(zero_copy_only=False).astype(bool)


def numeric_fill(values: np.ndarray, strategy: str, fill_value: float) -> float | None:
    """The fill value of a numeric column from its present values; None when there are none
    (the caller then uses fill_value)."""
    if strategy == "constant":
        return fill_value
    if len(values) == 0:
        return None
    if strategy == "mean":
        return float(values.mean())
    if strategy == "median":
        return float(np.median(values))
    return most_frequent(values.tolist())


def most_frequent(values: list[Any]) -> Any:
    """The most frequent value; ties go to the smallest, so the result is deterministic."""
    counts = Counter(values)
    top = max(counts.values())
    return min(v for v, n in counts.items() if n == top)


def fill_numeric(
    column: pa.ChunkedArray, mask: np.ndarray, strategy: str, fill_value: float
) -> tuple[pa.Array, Any]:
    """The column with missing cells filled, and the fill value. An integer column becomes
    float64 only when the fill value is not a whole number."""
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    fill = numeric_fill(values[~mask], strategy, fill_value)
    if fill is None:
        print(f"  a column with no values at all: using fill_value={fill_value}")
        fill = fill_value
    values[mask] = fill
    if not pa.types.is_integer(column.type):
        return pa.array(values, type=column.type), fill
    if float(fill).is_integer():
        return pa.array(values.astype(np.int64)).cast(column.type), int(fill)
    return pa.array(values, type=pa.float64()), fill


def fill_other(column: pa.ChunkedArray, mask: np.ndarray) -> tuple[pa.Array, Any] | None:
    """A text (or other) column filled with its most frequent value; None when it holds no
    value at all."""
    values = column.to_pylist()
    present = [v for v, m in zip(values, mask, strict=True) if not m]
    if not present:
        return None
    fill = most_frequent(present)
    filled = [fill if m else v for v, m in zip(values, mask, strict=True)]
    return pa.array(filled, type=column.type), fill


def fill_column(
    field: pa.Field, column: pa.ChunkedArray, mask: np.ndarray, p: dict
) -> tuple[pa.Array, Any] | None:
    """The filled column and its fill value, or None when this strategy leaves it as is."""
    if is_numeric(field):
        return fill_numeric(column, mask, p["strategy"], p["fill_value"])
    if p["strategy"] == "most_frequent":
        return fill_other(column, mask)
    return None


def impute(table: pa.Table, p: dict) -> tuple[pa.Table, dict[str, dict]]:
    """The table with missing cells filled, and per filled column: cells filled, fill value."""
    report: dict[str, dict] = {}
    for i, field in enumerate(table.schema):
        mask = missing_mask(table.column(i))
        if field.name == p["label"] or not mask.any():
            continue
        result = fill_column(field, table.column(i), mask, p)
        if result is None:
            print(f"  {field.name}: {int(mask.sum())} missing, left as is ({field.type})")
            continue
        table = table.set_column(i, field.name, result[0])
        report[field.name] = {"filled": int(mask.sum()), "value": result[1]}
    return table, report


def print_report(report: dict[str, dict], limit: int = 20) -> None:
    """One line per filled column, for the first `limit` columns."""
    for name, r in list(report.items())[:limit]:
        print(f"  {name}: filled {r['filled']} cells with {r['value']!r}")
    if len(report) > limit:
        print(f"  ... and {len(report) - limit} more columns (imputation.json lists them all)")


def main() -> None:
    ctx = reef.step()
    p = ctx.params
    table = pq.read_table(ctx.input_path("data"))
    if p["label"] and p["label"] not in table.column_names:
        raise SystemExit(
            f"impute: no label column {p['label']!r} (columns: {shown(table.column_names)});"
            " set label=<column>, or label='' for a table without one"
        )
    print(f"imputing {table.num_rows} rows x {table.num_columns} columns ({p['strategy']})")
    table, report = impute(table, p)
    print_report(report)
    pq.write_table(table, ctx.output_path("data"))
    total = sum(r["filled"] for r in report.values())
    counts = {name: r["filled"] for name, r in report.items()}
    ctx.log_params({"filled_columns": len(counts), "filled_cells_per_column": counts})
    ctx.log_metrics({"filled_cells": total})
    path = Path("imputation.json")
    path.write_text(json.dumps({"strategy": p["strategy"], "columns": report}, indent=2) + "\n")
    ctx.log_artifact(path)
    print(f"filled {total} cells in {len(counts)} columns", flush=True)


if __name__ == "__main__":
    main()
