"""split: cut a table into train, test and (optionally) validation sets (numpy + pyarrow only).

The test rows are drawn first, so a validation_size of 0 (the default) gives the same train and
test sets as before validation existed; validation rows then come out of the remaining rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import reef


def pick_test_rows(
    labels: np.ndarray | None, n_rows: int, test_size: float, rng: np.random.Generator
) -> np.ndarray:
    """Sorted indices of the test rows; per label group when `labels` is given."""
    if labels is None:
        groups = [np.arange(n_rows)]
    else:
        _, inverse = np.unique(labels, return_inverse=True)
        groups = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
    picked = []
    for group in groups:
        shuffled = rng.permutation(group)
        picked.append(shuffled[: round(len(group) * test_size)])
    test = np.sort(np.concatenate(picked))
    if len(test) == 0 or len(test) == n_rows:
        raise SystemExit(f"split: test_size={test_size} leaves an empty train or test set")
    return test


def label_values(table: pa.Table, label: str) -> np.ndarray:
    """The label column as an array of strings; exits with a clear message when absent."""
    if label not in table.column_names:
        raise SystemExit(
            f"split: no label column {label!r} to stratify by (columns: "
            f"{', '.join(table.column_names)}); set stratify=false or label=<column>"
        )
    values = table.column(label).to_pylist()
    if any(v is None for v in values):
        raise SystemExit(f"split: label column {label!r} has missing values")
    return np.array([str(v) for v in values])


def pick_validation_rows(
    labels: np.ndarray | None, rest: np.ndarray, share: float, rng: np.random.Generator
) -> np.ndarray:
    """Sorted indices of validation rows: `share` of the rows left after the test draw."""
    if share <= 0:
        return np.array([], dtype=np.int64)
    picked = pick_test_rows(None if labels is None else labels[rest], len(rest), share, rng)
    return rest[picked]


def main() -> None:
    ctx = reef.step()
    p = ctx.params
    table = pq.read_table(ctx.input_path("data"))
    if table.num_rows < 2:
        raise SystemExit(f"split: need at least 2 rows, got {table.num_rows}")
    if p["test_size"] + p["validation_size"] >= 0.95:
        raise SystemExit("split: test_size + validation_size must leave at least 5% to train on")
    labels = label_values(table, p["label"]) if p["stratify"] else None
    rng = np.random.default_rng(p["seed"])
    test = pick_test_rows(labels, table.num_rows, p["test_size"], rng)
    train_mask = np.ones(table.num_rows, dtype=bool)
    train_mask[test] = False
    share = p["validation_size"] / (1 - p["test_size"])
    validation = pick_validation_rows(labels, np.flatnonzero(train_mask), share, rng)
    train_mask[validation] = False
    pq.write_table(table.filter(pa.array(train_mask)), ctx.output_path("train"))
    pq.write_table(table.take(pa.array(test)), ctx.output_path("test"))
    pq.write_table(table.take(pa.array(validation, pa.int64())), ctx.output_path("validation"))
    counts = {"train_rows": int(train_mask.sum()), "test_rows": len(test)}
    if len(validation):
        counts["validation_rows"] = len(validation)
    ctx.log_metrics(counts)
    print(f"split {table.num_rows} rows: {counts}", flush=True)


if __name__ == "__main__":
    main()
