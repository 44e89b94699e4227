"""Kappa formulas against values computed by hand (and published examples)."""

from __future__ import annotations

import pytest

from reef.runtime.agreement import (
    agreed,
    cohen_kappa,
    fleiss_kappa,
    in_words,
    label_kappas,
    summary,
)


def test_cohen_kappa_by_hand() -> None:
    # po = 4/5; pe = 3/5*2/5 + 2/5*3/5 = 0.48; kappa = 0.32 / 0.52
    a = ["y", "y", "n", "n", "y"]
    b = ["y", "n", "n", "n", "y"]
    assert cohen_kappa(a, b) == pytest.approx(0.32 / 0.52)


def test_cohen_kappa_limits() -> None:
    assert cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == pytest.approx(1.0)
    # always opposite on a balanced pair: po = 0, pe = 0.5 -> -1
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # one class only: chance explains it
    assert cohen_kappa([], []) is None
    with pytest.raises(ValueError):
        cohen_kappa(["a"], ["a", "b"])


def test_fleiss_kappa_wikipedia_example() -> None:
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories -> 0.210
    counts = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]  # fmt: skip
    assert fleiss_kappa(counts) == pytest.approx(0.20993, abs=1e-5)


def test_fleiss_matches_cohen_style_by_hand_for_two_raters() -> None:
    # 4 rows, 2 raters, labels x/y: rows (x,x) (x,y) (y,y) (y,y)
    # p_x = 3/8, p_y = 5/8 -> pe = 34/64; P_i = 1, 0, 1, 1 -> po = 3/4
    counts = [[2, 0], [1, 1], [0, 2], [0, 2]]
    expected = (0.75 - 34 / 64) / (1 - 34 / 64)
    assert fleiss_kappa(counts) == pytest.approx(expected)
    # per label with two labels both equal the overall kappa
    assert label_kappas(counts) == [pytest.approx(expected), pytest.approx(expected)]


def test_fleiss_needs_equal_raters() -> None:
    with pytest.raises(ValueError):
        fleiss_kappa([[2, 0], [1, 2]])
    assert fleiss_kappa([[1, 0], [0, 1]]) is None  # one rater per row: no agreement to measure


def test_agreed_label() -> None:
    assert agreed(["a", "a", "b"], needed=3) == "a"
    assert agreed(["a", "b"], needed=2) is None  # a tie: a reviewer decides
    assert agreed(["a"], needed=2) is None  # waiting for the second annotator
    assert agreed(["a"], needed=1) == "a"


def test_summary_pairs_and_words() -> None:
    rows = {1: {"ann": "y", "bob": "y"}, 2: {"ann": "y", "bob": "n"}, 3: {"ann": "n", "bob": "n"},
            4: {"ann": "n", "bob": "n"}, 5: {"ann": "y", "bob": "y"}, 6: {"ann": "y"}}  # fmt: skip
    found = summary(rows, ["y", "n"])
    assert found["rows"] == 5 and found["agreeing"] == 4
    (pair,) = found["pairs"]
    assert (pair["a"], pair["b"], pair["rows"], pair["same"]) == ("ann", "bob", 5, 4)
    assert pair["kappa"] == pytest.approx(cohen_kappa(list("yynny"), list("ynnny")))
    assert in_words(0.9) == "almost perfect" and in_words(-0.1) == "worse than chance"
    assert in_words(0.1) == "slight" and in_words(None).startswith("not enough")
