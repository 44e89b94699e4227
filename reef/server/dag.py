"""A pipeline's DAG drawn as SVG on the server: steps in columns by depth, edges for inputs."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from reef.store.status import Status

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 170, 46, 60, 18, 12
COLORS = {
    Status.SUCCEEDED: "#d6f5dd",
    Status.FAILED: "#fbd9d9",
    Status.RUNNING: "#d9ecfb",
    Status.QUEUED: "#fff3c4",
    Status.CANCELLED: "#eeeeee",
    Status.SKIPPED: "#eeeeee",
}


@dataclass(frozen=True)
class Node:
    name: str
    label: str  # the module
    reads: tuple[str, ...]  # upstream step names
    status: str | None = None
    note: str = ""  # e.g. a duration


def depths(nodes: list[Node]) -> dict[str, int]:
    """Longest distance from a source, so every edge points to the right."""
    by_name = {n.name: n for n in nodes}
    memo: dict[str, int] = {}

    def depth(name: str) -> int:
        if name not in memo:
            reads = [r for r in by_name[name].reads if r in by_name]
            memo[name] = 1 + max((depth(r) for r in reads), default=-1)
        return memo[name]

    return {n.name: depth(n.name) for n in nodes}


def positions(nodes: list[Node]) -> dict[str, tuple[int, int]]:
    levels = depths(nodes)
    rows: dict[int, int] = {}
    out = {}
    for n in nodes:
        col = levels[n.name]
        row = rows.get(col, 0)
        rows[col] = row + 1
        out[n.name] = (PAD + col * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y))
    return out


def svg(nodes: list[Node]) -> str:
    """The DAG as an inline SVG element."""
    if not nodes:
        return ""
    pos = positions(nodes)
    width = max(x for x, _ in pos.values()) + BOX_W + PAD
    height = max(y for _, y in pos.values()) + BOX_H + PAD
    parts = [
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">'
    ]
    parts += [_edge(pos[r], pos[n.name]) for n in nodes for r in n.reads if r in pos]
    parts += [_box(n, *pos[n.name]) for n in nodes]
    parts.append("</svg>")
    return "".join(parts)


def _edge(src: tuple[int, int], dst: tuple[int, int]) -> str:
    x1, y1 = src[0] + BOX_W, src[1] + BOX_H // 2
    x2, y2 = dst[0], dst[1] + BOX_H // 2
    mid = (x1 + x2) // 2
    return (
        f'<path d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 6},{y2}" fill="none" '
        f'stroke="#8a9aa6" stroke-width="1.5"/><path d="M{x2 - 6},{y2 - 4} L{x2},{y2} '
        f'L{x2 - 6},{y2 + 4}" fill="#8a9aa6"/>'
    )


def _box(n: Node, x: int, y: int) -> str:
    fill = COLORS.get(n.status or "", "#ffffff")
    second = escape(f"{n.label}  {n.status or ''} {n.note}".strip())
    return (
        f'<g class="dag-step" data-step="{escape(n.name)}" data-status="{escape(n.status or "")}">'
        f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" '
        f'stroke="#b8c4cc"/><text x="{x + 8}" y="{y + 19}" font-size="13" '
        f'font-weight="600">{escape(n.name)}</text><text x="{x + 8}" y="{y + 36}" '
        f'font-size="11" fill="#5b6b77">{second[:30]}</text></g>'
    )
