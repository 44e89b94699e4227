"""feature-histograms: one self-contained HTML page (inline SVG, no scripts, nothing fetched)
with a histogram and summary numbers per numeric feature column, and the label's counts."""

from __future__ import annotations

from collections import Counter
from html import escape
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import reef

WIDTH, HEIGHT, PAD, TOP = 260, 134, 18, 14  # PAD: room for the axis labels; TOP: for "max"
MAX_LABELS = 30
STYLE = """
body { font-family: system-ui, sans-serif; margin: 16px; color: #1b1b1b; }
h1 { font-size: 18px; } h2 { font-size: 14px; margin: 0 0 4px; overflow-wrap: anywhere; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px; width: 280px; }
.stats { font-size: 12px; color: #57606a; margin: 4px 0 0; }
"""


def numeric_columns(table: pa.Table, label: str) -> list[str]:
    return [
        f.name
        for f in table.schema
        if f.name != label and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
    ]


def number(value: float) -> str:
    return f"{value:.4g}"


def histogram_svg(values: np.ndarray, bins: int) -> str:
    """Bars of the counts per bin, the largest count, and the range under the axis."""
    counts, edges = np.histogram(values, bins=bins)
    top = max(int(counts.max()), 1)
    step, base = (WIDTH - 2) / len(counts), HEIGHT - PAD
    bars = []
    for i, count in enumerate(counts):
        h = (base - TOP) * count / top
        bars.append(
            f'<rect x="{1 + i * step:.1f}" y="{base - h:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="#0969da"><title>[{number(edges[i])}, '
            f"{number(edges[i + 1])}): {count}</title></rect>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT + 4}" '
        f'font-size="11">{"".join(bars)}'
        f'<line x1="0" y1="{base}" x2="{WIDTH}" y2="{base}" stroke="#57606a"/>'
        f'<text x="1" y="{HEIGHT}">{number(edges[0])}</text>'
        f'<text x="{WIDTH - 1}" y="{HEIGHT}" text-anchor="end">{number(edges[-1])}</text>'
        f'<text x="{WIDTH - 1}" y="10" text-anchor="end" fill="#57606a">highest bar: {top}</text>'
        "</svg>"
    )


def feature_card(name: str, column: pa.ChunkedArray, bins: int) -> str:
    """A histogram and the count, missing, min, mean and max of one column."""
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    present = values[np.isfinite(values)]
    missing = len(values) - len(present)
    if len(present) == 0:
        body, stats = "<p>no values</p>", f"{missing} missing"
    else:
        body = histogram_svg(present, bins)
        stats = (
            f"{len(present)} values, {missing} missing; min {number(present.min())}, "
            f"mean {number(present.mean())}, max {number(present.max())}"
        )
    return f'<div class="card"><h2>{escape(name)}</h2>{body}<p class="stats">{stats}</p></div>'


def label_card(label: str, column: pa.ChunkedArray) -> str:
    """Horizontal bars: how many rows each label value has (the most common first)."""
    counts = Counter("(missing)" if v is None else str(v) for v in column.to_pylist())
    shown = counts.most_common(MAX_LABELS)
    top = shown[0][1]
    rows = []
    for i, (value, count) in enumerate(shown):
        y, w = i * 18, (WIDTH - 140) * count / top
        rows.append(
            f'<text x="0" y="{y + 12}">{escape(value[:14])}</text>'
            f'<rect x="90" y="{y + 2}" width="{w:.1f}" height="13" fill="#8250df"/>'
            f'<text x="{94 + w:.1f}" y="{y + 12}">{count}</text>'
        )
    more = (
        f"<p class='stats'>and {len(counts) - MAX_LABELS} more values</p>"
        if len(counts) > MAX_LABELS
        else ""
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{len(shown) * 18 + 4}"'
        f' font-size="11">{"".join(rows)}</svg>'
    )
    return f'<div class="card"><h2>label: {escape(label)}</h2>{svg}{more}</div>'


def page(table: pa.Table, names: list[str], p: dict) -> str:
    """The whole HTML document."""
    shown = names[: p["max_features"]]
    cards = [feature_card(n, table.column(n), p["bins"]) for n in shown]
    if p["label"] and p["label"] in table.column_names:
        cards.insert(0, label_card(p["label"], table.column(p["label"])))
    note = f" (the first {len(shown)} of {len(names)})" if len(shown) < len(names) else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Feature histograms</title><style>{STYLE}</style></head><body>"
        f"<h1>Feature histograms</h1><p>{table.num_rows} rows; {len(shown)} numeric "
        f'features{note}.</p><div class="grid">{"".join(cards)}</div></body></html>\n'
    )


def main() -> None:
    ctx = reef.step()
    p = ctx.params
    table = pq.read_table(ctx.input_path("data"))
    if p["label"] and p["label"] not in table.column_names:
        raise SystemExit(
            f"feature-histograms: no label column {p['label']!r}; set label=<column>, "
            "or label='' for a table without one"
        )
    names = numeric_columns(table, p["label"])
    if not names:
        raise SystemExit("feature-histograms: the table has no numeric feature columns")
    path = Path("feature_histograms.html")
    path.write_text(page(table, names, p))
    ctx.log_artifact(path)
    print(f"drew {min(len(names), p['max_features'])} of {len(names)} feature histograms")


if __name__ == "__main__":
    main()
