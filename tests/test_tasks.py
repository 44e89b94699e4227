"""The task detector on data scikit-learn ships, and the refusals it must give."""

from __future__ import annotations

import pyarrow as pa
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

from reef.tasks import TaskMismatch, check_task, column_roles, detect_task


def _table(bunch, target: str, labels=None) -> pa.Table:
    cols = {str(n): bunch.data[:, i] for i, n in enumerate(bunch.feature_names)}
    y = bunch.target if labels is None else [labels[int(v)] for v in bunch.target]
    return pa.table({**cols, target: y})


def test_breast_cancer_is_two_groups() -> None:
    t = _table(load_breast_cancer(), "diagnosis", ["malignant", "benign"])
    task = detect_task(t, "diagnosis")
    assert task.kind == "classification" and task.binary
    assert task.plain == "sort rows into 2 groups"
    assert task.classes == ("benign", "malignant")
    assert len(task.features) == 30


def test_diabetes_is_a_number_and_refused_as_groups() -> None:
    t = _table(load_diabetes(), "disease_progression")
    task = detect_task(t, "disease_progression")
    assert task.kind == "regression" and task.plain == "predict a number"
    with pytest.raises(TaskMismatch, match="214 distinct numbers in 442 rows"):
        check_task(t, "disease_progression", "classification")


def test_digits_whole_numbers_are_groups() -> None:
    bunch = load_digits()
    t = pa.table({"p0": bunch.data[:, 10], "p1": bunch.data[:, 20], "digit": bunch.target})
    task = detect_task(t, "digit")
    assert task.kind == "classification" and task.plain == "sort rows into 10 groups"


def test_text_and_categories_and_identifiers() -> None:
    texts = [
        f"this message number {i} is about {'money' if i % 2 else 'the weather'}" for i in range(40)
    ]
    t = pa.table(
        {
            "id": [f"row-{i}" for i in range(40)],
            "message": texts,
            "channel": ["mail", "chat"] * 20,
            "topic": ["finance" if i % 2 else "weather" for i in range(40)],
            "empty": [None] * 40,
        }
    )
    roles = {c.name: c.role for c in column_roles(t)}
    assert roles == {
        "id": "identifier",
        "message": "text",
        "channel": "category",
        "topic": "category",
        "empty": "empty",
    }
    task = detect_task(t, "topic", exclude=["channel"])
    assert task.kind == "text_classification" and task.plain == "sort texts into 2 groups"
    assert task.feature_names() == ["message"]
    assert {c.name for c in task.left_out} == {"id", "channel", "empty"}
    with pytest.raises(TaskMismatch, match="holds one of a few values, not numbers"):
        check_task(t, "topic", "regression")


def test_refusals() -> None:
    t = pa.table({"x": [1.0, 2.0, 3.0, 4.0], "same": ["a"] * 4, "uniq": ["a", "b", "c", "d"]})
    with pytest.raises(TaskMismatch, match="single value 'a'"):
        detect_task(t, "same")
    with pytest.raises(TaskMismatch, match="different value on each of its 4 rows"):
        check_task(t, "uniq", "classification")
    with pytest.raises(TaskMismatch, match="no column 'nope'"):
        detect_task(t, "nope")
    with pytest.raises(TaskMismatch, match="no rows"):
        detect_task(t.slice(0, 0), "x")
