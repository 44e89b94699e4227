"""scale: rescale each numeric feature column; constant columns stay as they are."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import reef


def shown(names: list[str], limit: int = 12) -> str:
    """Up to `limit` names, comma-separated, and how many more there are."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def feature_columns(table: pa.Table, label: str) -> list[str]:
    """The integer and float columns but the label, in column order."""
    return [
        f.name
        for f in table.schema
        if f.name != label and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
    ]


def center_and_scale(values: np.ndarray, method: str) -> tuple[float, float]:
    """(center, scale) of one column, ignoring NaN; scale 1 where the spread is 0."""
    if method == "standard":
        center, spread = np.nanmean(values), np.nanstd(values)
    elif method == "minmax":
        center, spread = np.nanmin(values), np.nanmax(values) - np.nanmin(values)
    else:
        q1, center, q3 = np.nanpercentile(values, [25, 50, 75])
        spread = q3 - q1
    return float(center), float(spread) if spread > 0 else 1.0


def is_constant(values: np.ndarray) -> bool:
    present = values[~np.isnan(values)]
    return len(present) == 0 or bool(present.min() == present.max())


def scale(table: pa.Table, names: list[str], method: str) -> tuple[pa.Table, dict[str, dict]]:
    """The table with each non-constant feature column scaled (as float64), and per column
    the center and scale used (new value = (value - center) / scale)."""
    report: dict[str, dict] = {}
    for name in names:
        i = table.schema.get_field_index(name)
        values = table.column(i).to_numpy(zero_copy_only=False).astype(np.float64)
        if is_constant(values):
            continue
        center, spread = center_and_scale(values, method)
        mask = table.column(i).is_null().to_numpy(zero_copy_only=False)
        scaled = pa.array((values - center) / spread, type=pa.float64(), mask=mask)
        table = table.set_column(i, name, scaled)
        report[name] = {"center": center, "scale": spread}
    return table, report


def main() -> None:
    ctx = reef.step()
    p = ctx.params
    table = pq.read_table(ctx.input_path("data"))
    if p["label"] and p["label"] not in table.column_names:
        raise SystemExit(
            f"scale: no label column {p['label']!r} (columns: {shown(table.column_names)});"
            " set label=<column>, or label='' for a table without one"
        )
    names = feature_columns(table, p["label"])
    print(f"scaling {len(names)} numeric columns of {table.num_rows} rows ({p['method']})")
    table, report = scale(table, names, p["method"])
    pq.write_table(table, ctx.output_path("data"))
    ctx.log_params({"scaled_columns": len(report), "constant_columns": len(names) - len(report)})
    path = Path("scaling.json")
    path.write_text(json.dumps({"method": p["method"], "columns": report}, indent=2) + "\n")
    ctx.log_artifact(path)
    constant = [n for n in names if n not in report]
    print(f"scaled {len(report)} columns; constant, left as is: {shown(constant) or 'none'}")


if __name__ == "__main__":
    main()
