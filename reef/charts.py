"""Pictures of model results as hand-written SVG documents (no plotting library).

Each function takes plain numbers and returns a whole SVG document as text: a confusion
matrix, a curve (ROC, precision-recall), a scatter of predicted against actual values and a
bar chart of feature importances. The evaluators log them as artifacts; the run page shows
them as images. Every mark carries a <title>, so hovering it tells the exact value.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

LOW, HIGH = (247, 251, 255), (8, 48, 107)  # white-blue to dark blue
INK, LINE, GRID = "#1b1b1b", "#0969da", "#d0d7de"
FONT = 'font-family="system-ui, sans-serif"'


def colour(share: float) -> str:
    """The fill for a share in [0, 1], from LOW to HIGH."""
    r, g, b = (round(lo + (hi - lo) * share) for lo, hi in zip(LOW, HIGH, strict=True))
    return f"rgb({r},{g},{b})"


def short(text: str, limit: int = 14) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def document(width: float, height: float, title: str, parts: list[str]) -> str:
    """An SVG document of the given size on a white background, with a title line."""
    return (
        "\n".join(
            [
                f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="{height:g}" '
                f'viewBox="0 0 {width:g} {height:g}" {FONT}>',
                f'<rect width="{width:g}" height="{height:g}" fill="#fff"/>',
                f'<text x="10" y="20" font-size="14" font-weight="600">{escape(title)}</text>',
                *parts,
                "</svg>",
            ]
        )
        + "\n"
    )


# confusion matrix ----------------------------------------------------------------------
def _cells(matrix: np.ndarray, x0: float, y0: float, cell: int) -> list[str]:
    """One shaded square per cell, with its count, and a tooltip."""
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    parts = []
    for (i, j), count in np.ndenumerate(matrix):
        x, y, share = x0 + j * cell, y0 + i * cell, float(shares[i, j])
        ink = "#fff" if share > 0.5 else INK if count else "#8c959f"
        parts.append(
            f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{colour(share)}" '
            f'stroke="{GRID}"><title>{count} ({share:.0%} of row)</title></rect>'
            f'<text x="{x + cell / 2}" y="{y + cell / 2}" fill="{ink}" font-size="{cell // 3}" '
            f'text-anchor="middle" dominant-baseline="central">{count}</text>'
        )
    return parts


def _axis_labels(labels: Sequence[str], x0: float, y0: float, cell: int) -> list[str]:
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


def _legend(x: float, y: float, width: float) -> list[str]:
    """A colour bar from 0 % to 100 % of the true label's rows."""
    return [
        '<defs><linearGradient id="reef-cm-scale">'
        f'<stop offset="0" stop-color="{colour(0)}"/><stop offset="1" stop-color="{colour(1)}"/>'
        "</linearGradient></defs>",
        f'<rect x="{x}" y="{y}" width="{width}" height="10" fill="url(#reef-cm-scale)" '
        f'stroke="{GRID}"/>',
        f'<text x="{x}" y="{y + 24}" font-size="11">0 %</text>',
        f'<text x="{x + width}" y="{y + 24}" font-size="11" text-anchor="end">100 %</text>',
        f'<text x="{x + width / 2}" y="{y + 40}" font-size="11" text-anchor="middle">'
        "shade: share of the true label's rows</text>",
    ]


def confusion_matrix(labels: Sequence[str], matrix: np.ndarray) -> str:
    """Rows are the true labels, columns the predicted ones; each cell shows its count and
    is shaded by its share of the row."""
    n = len(labels)
    cell = max(18, min(48, 640 // max(n, 1)))
    margin = 24 + 7 * max((len(short(name)) for name in labels), default=1)
    x0, y0 = margin + 20, margin + 30
    bar = max(n * cell, 240)
    width, height = max(x0 + bar, 360) + 20, y0 + n * cell + 90
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    parts = [
        f'<text x="{x0 + n * cell / 2}" y="{y0 + n * cell + 22}" font-size="12" '
        'text-anchor="middle">predicted</text>',
        f'<text transform="translate(14,{y0 + n * cell / 2}) rotate(-90)" font-size="12" '
        'text-anchor="middle">true</text>',
        *_cells(matrix, x0, y0, cell),
        *_axis_labels(labels, x0, y0, cell),
        *_legend(x0, y0 + n * cell + 34, bar),
    ]
    title = f"Confusion matrix: {matrix.sum()} rows, accuracy {accuracy:.1%}"
    return document(width, height, title, parts)


# plots with two numeric axes -----------------------------------------------------------
class Frame:
    """A plot area of `size` pixels square whose axes span [lo, hi] on x and y."""

    def __init__(self, lo: tuple[float, float], hi: tuple[float, float], size: int = 320):
        self.lo, self.hi, self.size = lo, hi, size
        self.left, self.top = 64, 36

    def px(self, x: float, y: float) -> tuple[float, float]:
        """Pixel position of the data point (x, y)."""
        (x0, y0), (x1, y1) = self.lo, self.hi
        fx = (x - x0) / ((x1 - x0) or 1)
        fy = (y - y0) / ((y1 - y0) or 1)
        return round(self.left + fx * self.size, 2), round(self.top + (1 - fy) * self.size, 2)

    def axes(self, xlabel: str, ylabel: str) -> list[str]:
        """The box, five ticks per axis with their values, and the axis names."""
        s, left, top = self.size, self.left, self.top
        parts = [f'<rect x="{left}" y="{top}" width="{s}" height="{s}" fill="none" stroke="#888"/>']
        for t in np.linspace(0, 1, 5):
            xv = self.lo[0] + t * (self.hi[0] - self.lo[0])
            yv = self.lo[1] + t * (self.hi[1] - self.lo[1])
            x, y = left + t * s, top + (1 - t) * s
            parts.append(
                f'<line x1="{x}" y1="{top}" x2="{x}" y2="{top + s}" stroke="{GRID}"/>'
                f'<text x="{x}" y="{top + s + 16}" font-size="11" text-anchor="middle">'
                f"{xv:.3g}</text>"
                f'<line x1="{left}" y1="{y}" x2="{left + s}" y2="{y}" stroke="{GRID}"/>'
                f'<text x="{left - 6}" y="{y}" font-size="11" text-anchor="end" '
                f'dominant-baseline="central">{yv:.3g}</text>'
            )
        parts.append(
            f'<text x="{left + s / 2}" y="{top + s + 36}" font-size="12" '
            f'text-anchor="middle">{escape(xlabel)}</text>'
            f'<text transform="translate(16,{top + s / 2}) rotate(-90)" font-size="12" '
            f'text-anchor="middle">{escape(ylabel)}</text>'
        )
        return parts

    def width(self) -> int:
        return self.left + self.size + 24

    def height(self) -> int:
        return self.top + self.size + 48


def _polyline(frame: Frame, xs: Sequence[float], ys: Sequence[float], **style: str) -> str:
    points = " ".join(
        f"{px},{py}" for px, py in (frame.px(x, y) for x, y in zip(xs, ys, strict=True))
    )
    attrs = " ".join(f'{k.replace("_", "-")}="{v}"' for k, v in style.items())
    return f'<polyline points="{points}" fill="none" {attrs}/>'


def curve(
    title: str,
    xs: Sequence[float],
    ys: Sequence[float],
    xlabel: str,
    ylabel: str,
    *,
    diagonal: bool = False,
    note: str = "",
) -> str:
    """A line through (xs, ys) on the unit square; `diagonal` adds the y = x line that a
    random guess would draw (ROC); `note` is a line of explanation under the title."""
    frame = Frame((0.0, 0.0), (1.0, 1.0))
    parts = frame.axes(xlabel, ylabel)
    if diagonal:
        parts.append(_polyline(frame, [0, 1], [0, 1], stroke="#8c959f", stroke_dasharray="4 4"))
    xs, ys = _thin(list(xs), list(ys))
    parts.append(_polyline(frame, xs, ys, stroke=LINE, stroke_width="2"))
    if note:
        parts.append(_note(frame, note))
    return document(frame.width(), frame.height() + 20, title, parts)


def _thin(xs: list[float], ys: list[float], most: int = 2000) -> tuple[list, list]:
    """At most `most` points of a long curve, evenly spaced, the ends kept."""
    if len(xs) <= most:
        return xs, ys
    keep = np.unique(np.linspace(0, len(xs) - 1, most).round().astype(int))
    return [xs[i] for i in keep], [ys[i] for i in keep]


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray, most: int = 2000) -> str:
    """One dot per row (at most `most`, evenly picked) and the line where predicted equals
    actual: dots above it are over-estimates, below it under-estimates."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    both = np.concatenate([actual, predicted])
    lo, hi = (float(both.min()), float(both.max())) if len(both) else (0.0, 1.0)
    pad = (hi - lo) * 0.05 or 1.0
    frame = Frame((lo - pad, lo - pad), (hi + pad, hi + pad))
    parts = frame.axes("actual value", "predicted value")
    parts.append(
        _polyline(
            frame,
            [lo - pad, hi + pad],
            [lo - pad, hi + pad],
            stroke="#8c959f",
            stroke_dasharray="4 4",
        )
    )
    pick = np.unique(np.linspace(0, len(actual) - 1, min(most, len(actual))).round().astype(int))
    for i in pick if len(actual) else []:
        x, y = frame.px(actual[i], predicted[i])
        parts.append(
            f'<circle cx="{x}" cy="{y}" r="3" fill="{LINE}" fill-opacity="0.55">'
            f"<title>actual {actual[i]:.4g}, predicted {predicted[i]:.4g}</title></circle>"
        )
    parts.append(_note(frame, "dashed line: perfect predictions; above it, guesses too high"))
    title = f"Predicted vs actual: {len(actual)} rows"
    return document(frame.width(), frame.height() + 20, title, parts)


def _note(frame: Frame, text: str) -> str:
    """A line of explanation under a plot."""
    return f'<text x="10" y="{frame.height() + 12}" font-size="11">{escape(text)}</text>'


def bars(title: str, names: Sequence[str], values: Sequence[float], note: str = "") -> str:
    """Horizontal bars, one per name, longest first as given; negative values draw as 0."""
    longest = max((len(short(n, 28)) for n in names), default=4)
    left, top, row, span = 20 + 7 * longest, 36, 22, 300
    top_value = max([float(v) for v in values] + [1e-12])
    parts = []
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        y, length = top + i * row, max(float(value), 0.0) / top_value * span
        parts.append(
            f'<text x="{left - 6}" y="{y + row / 2}" font-size="12" text-anchor="end" '
            f'dominant-baseline="central"><title>{escape(name)}</title>'
            f"{escape(short(name, 28))}</text>"
            f'<rect x="{left}" y="{y + 3}" width="{length:.2f}" height="{row - 6}" '
            f'fill="{LINE}"><title>{escape(name)}: {value:.4g}</title></rect>'
            f'<text x="{left + length + 4:.2f}" y="{y + row / 2}" font-size="11" '
            f'dominant-baseline="central">{value:.3g}</text>'
        )
    height = top + len(names) * row + (28 if note else 12)
    if note:
        parts.append(f'<text x="10" y="{height - 8}" font-size="11">{escape(note)}</text>')
    return document(left + span + 60, height, title, parts)
