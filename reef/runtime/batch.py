"""Batch prediction: score every row of a dataset version and write the result, with a
predictions column added, as a new version of a dataset (the same one by default)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from reef.errors import InvalidInput
from reef.store.people import Principal, check_name

if TYPE_CHECKING:
    from reef.runtime.registry import ModelService
    from reef.runtime.serving import Predictor

BATCH_ROWS = 8192


def predict_dataset(
    service: ModelService, who: Principal, project: str, name: str, data: Any
) -> dict[str, Any]:
    """{"dataset", "version"?, "output"?, "column"?, "model_version"?}: writes `output`
    (default: the same dataset) with `column` (default "prediction") and, for classifiers,
    `<column>_probability`. Rows with a missing or non-finite feature get nulls."""
    if not isinstance(data, dict) or not isinstance(data.get("dataset"), str):
        raise InvalidInput('send {"dataset": NAME, "version"?, "output"?, "column"?}')
    dataset, ref = data["dataset"], data.get("version")
    output = check_name("dataset", str(data.get("output") or dataset))
    column = str(data.get("column") or "prediction")
    alias = data.get("model_version")
    plan = service.plan(service.model_id(project, name), None if alias is None else str(alias))
    predictor = plan.main.predictor
    source = service.hub.datasets.open(project, dataset, ref)
    missing = [f for f in predictor.features if f not in source.schema.names]
    if missing:
        raise InvalidInput(f"dataset {dataset} lacks the model's features {missing[:5]}")
    keep = [n for n in source.schema.names if n not in (column, f"{column}_probability")]
    batches = _scored(source.to_batches(columns=keep, batch_size=BATCH_ROWS), predictor, column)
    first = next(batches, None)
    if first is None:
        raise InvalidInput(f"dataset {dataset} has no rows")
    reader = pa.RecordBatchReader.from_batches(first.schema, _chain(first, batches))
    info = service.hub.datasets.write_table(project, output, reader)
    _record(
        service, who, project, output, info, f"predictions of model {name} v{plan.main.version}"
    )
    return {
        "dataset": output,
        "version": info.version,
        "num_rows": info.num_rows,
        "column": column,
        "model_version": plan.main.version,
    }


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def _scored(
    batches: Iterator[pa.RecordBatch], predictor: Predictor, column: str
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        x = np.column_stack(
            [
                batch.column(f).to_numpy(zero_copy_only=False).astype(np.float64)
                for f in predictor.features
            ]
        )
        ok = np.isfinite(x).all(axis=1)
        y = predictor.run(np.where(ok[:, None], x, 0).astype(np.float32))
        arrays, names = list(batch.columns), list(batch.schema.names)
        labels = predictor.labels(y)
        if labels is not None:
            arrays += [pa.array(labels, pa.string(), mask=~ok), pa.array(y.max(axis=1), mask=~ok)]
            names += [column, f"{column}_probability"]
        else:
            arrays.append(pa.array(y[:, 0], mask=~ok))
            names.append(column)
        yield pa.RecordBatch.from_arrays(arrays, names=names)


def _record(
    service: ModelService, who: Principal, project: str, dataset: str, info: Any, message: str
) -> None:
    hub = service.hub
    dataset_id = hub.catalog.dataset_id(hub.projects.get(project).id, dataset, author=who.name)
    hub.catalog.record_version(
        dataset_id,
        info.version,
        author=who.name,
        message=message,
        num_rows=info.num_rows,
        columns=info.columns,
        source=message,
    )
    hub.audit.record(
        who.name, "dataset.version", f"dataset {dataset}@{info.version}", project, message=message
    )
