"""The DAG drawing: columns by depth, edges for inputs, statuses as colours."""

from __future__ import annotations

import re

from reef.server.dag import Node, depths, svg


def diamond() -> list[Node]:
    return [
        Node("load", "split", ()),
        Node("left", "scale", ("load",), "succeeded"),
        Node("right", "impute", ("load",), "failed"),
        Node("join", "evaluate", ("left", "right")),
    ]


def test_depths_put_every_edge_left_to_right():
    assert depths(diamond()) == {"load": 0, "left": 1, "right": 1, "join": 2}


def test_svg_has_a_box_per_step_and_an_edge_per_input():
    drawing = svg(diamond())
    assert re.findall(r'data-step="([^"]+)"', drawing) == ["load", "left", "right", "join"]
    assert drawing.count('fill="none"') == 4  # one curve per input edge
    assert 'data-status="failed"' in drawing and "#fbd9d9" in drawing


def test_names_are_escaped():
    assert "<script>" not in svg([Node("a", "<script>", ())])
