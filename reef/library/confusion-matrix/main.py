"""confusion-matrix: run an ONNX classifier on a test table; draw the confusion matrix as SVG.

The SVG is written by hand (no plotting library): rows are the true labels, columns the
predicted ones, each cell shows its count and is shaded by its share of the row.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow.parquet as pq

import reef

LOW, HIGH = (247, 251, 255), (8, 48, 107)  # white-blue to dark blue
FONT = 'font-family="system-ui, sans-serif"'


def predict(model_dir: Path, test: Path, label: str) -> tuple[list[str], list[str], list[str]]:
    """(classes, true labels, predicted labels) of the model on the test table, as strings."""
    schema = json.loads((model_dir / "schema.json").read_text())
    classes = [str(c) for c in (schema.get("outputs", {}).get("classes") or [])]
    if not classes:
        raise SystemExit("confusion-matrix: the model's schema.json lists no classes")
    features = schema["inputs"]["features"]
    table = pq.read_table(test)
    missing = [f for f in [*features, label] if f not in table.column_names]
    if missing:
        raise SystemExit(f"confusion-matrix: the test set lacks columns {missing[:10]}")
    x = np.column_stack([table.column(f).to_numpy(zero_copy_only=False) for f in features])
    session = ort.InferenceSession(
        str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    y = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]
    truth = ["" if v is None else str(v) for v in table.column(label).to_pylist()]
    return classes, truth, [classes[i] for i in np.asarray(y).argmax(axis=1)]


def confusion(truth: list[str], predicted: list[str], labels: list[str]) -> np.ndarray:
    """Counts with rows = true label, columns = predicted label, in `labels` order."""
    index = {name: i for i, name in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, ([index[t] for t in truth], [index[p] for p in predicted]), 1)
    return matrix


def colour(share: float) -> str:
    """The fill for a share in [0, 1], from LOW to HIGH."""
    r, g, b = (round(lo + (hi - lo) * share) for lo, hi in zip(LOW, HIGH, strict=True))
    return f"rgb({r},{g},{b})"


def short(text: str, limit: int = 14) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cells(matrix: np.ndarray, x0: int, y0: int, cell: int) -> list[str]:
    """One shaded square per cell, with its count, and a tooltip."""
    totals = np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    shares = matrix / totals
    parts = []
    for (i, j), count in np.ndenumerate(matrix):
        x, y, share = x0 + j * cell, y0 + i * cell, float(shares[i, j])
        ink = "#fff" if share > 0.5 else "#1b1b1b" if count else "#8c959f"
        parts.append(
            f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{colour(share)}" '
            f'stroke="#d0d7de"><title>{count} ({share:.0%} of row)</title></rect>'
            f'<text x="{x + cell / 2}" y="{y + cell / 2}" fill="{ink}" font-size="{cell // 3}" '
            f'text-anchor="middle" dominant-baseline="central">{count}</text>'
        )
    return parts


def axis_labels(labels: list[str], x0: int, y0: int, cell: int) -> list[str]:
    """True labels left of the rows; predicted labels above the columns, slanted."""
    parts = []
    for i, name in enumerate(labels):
        text = f"<title>{escape(name)}</title>{escape(short(name))}"
        mid = i * cell + cell / 2
        parts.append(
            f'<text x="{x0 - 8}" y="{y0 + mid}" text-anchor="end" '
            f'dominant-baseline="central" font-size="12">{text}</text>'
            f'<text transform="translate({x0 + mid},{y0 - 8}) rotate(-45)" '
            f'font-size="12">{text}</text>'
        )
    return parts


def legend(x: int, y: int, width: int) -> list[str]:
    """A colour bar from 0 % to 100 % of the true label's rows."""
    return [
        '<defs><linearGradient id="reef-cm-scale">'
        f'<stop offset="0" stop-color="{colour(0)}"/><stop offset="1" stop-color="{colour(1)}"/>'
        "</linearGradient></defs>",
        f'<rect x="{x}" y="{y}" width="{width}" height="10" fill="url(#reef-cm-scale)" '
        'stroke="#d0d7de"/>',
        f'<text x="{x}" y="{y + 24}" font-size="11">0 %</text>',
        f'<text x="{x + width}" y="{y + 24}" font-size="11" text-anchor="end">100 %</text>',
        f'<text x="{x + width / 2}" y="{y + 40}" font-size="11" text-anchor="middle">'
        "shade: share of the true label's rows</text>",
    ]


def render(labels: list[str], matrix: np.ndarray) -> str:
    """The whole SVG document."""
    n = len(labels)
    cell = max(18, min(48, 640 // max(n, 1)))
    margin = 24 + 7 * max(len(short(name)) for name in labels)
    x0, y0 = margin + 20, margin + 30
    bar = max(n * cell, 240)
    width, height = max(x0 + bar, 360) + 20, y0 + n * cell + 90
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT}>',
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="10" y="20" font-size="14" font-weight="600">Confusion matrix: '
        f"{matrix.sum()} rows, accuracy {accuracy:.1%}</text>",
        f'<text x="{x0 + n * cell / 2}" y="{y0 + n * cell + 22}" font-size="12" '
        'text-anchor="middle">predicted</text>',
        f'<text transform="translate(14,{y0 + n * cell / 2}) rotate(-90)" font-size="12" '
        'text-anchor="middle">true</text>',
        *cells(matrix, x0, y0, cell),
        *axis_labels(labels, x0, y0, cell),
        *legend(x0, y0 + n * cell + 34, bar),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def main() -> None:
    ctx = reef.step()
    label = ctx.params["label"]
    classes, truth, predicted = predict(ctx.input_path("model"), ctx.input_path("test"), label)
    labels = classes + sorted(set(truth) - set(classes))
    matrix = confusion(truth, predicted, labels)
    path = Path("confusion_matrix.svg")
    path.write_text(render(labels, matrix))
    ctx.log_artifact(path)
    print(f"drew a {len(labels)}x{len(labels)} confusion matrix of {len(truth)} rows", flush=True)


if __name__ == "__main__":
    main()
