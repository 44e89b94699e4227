"""Batch prediction: score every row of a dataset version and write the result, with a
predictions column added, as a new dataset `<model>-scores-<n>` (or a new version of the
dataset the request names as `output`).
`prepare` validates and pins a request when it is asked; `run` does the work, later, in the
batch queue (`runtime.batch_queue`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from reef.errors import InvalidInput
from reef.model_io import ModelSchema
from reef.runtime.dataset_versions import new_version
from reef.store.people import check_name

if TYPE_CHECKING:
    from reef.runtime.registry import ModelService
    from reef.runtime.serving import Predictor

BATCH_ROWS = 8192


def prepare(service: ModelService, project: str, name: str, data: Any) -> dict[str, Any]:
    """Validate a batch request {"dataset", "version"?, "output"?, "column"?,
    "model_version"?} and pin it: the dataset version (default: the latest) and the model
    version (an alias or number; default: the serving one) become numbers, so the job scores
    what was asked for even if an alias or the dataset moves before it runs."""
    if not isinstance(data, dict) or not isinstance(data.get("dataset"), str):
        raise InvalidInput('send {"dataset": NAME, "version"?, "output"?, "column"?}')
    dataset = data["dataset"]
    output = check_name("dataset", str(data.get("output") or scores_name(service, project, name)))
    column = str(data.get("column") or "prediction")
    alias = data.get("model_version")
    model_id = service.model_id(project, name)
    version = service.stores.models.serving_version(model_id, None if alias is None else str(alias))
    schema = ModelSchema(service.stores.models.version(model_id, version)["schema"])
    features = schema.names
    source = service.stores.datasets.open(project, dataset, data.get("version"))
    missing = [f for f in features if f not in source.schema.names]
    if missing:
        raise InvalidInput(f"dataset {dataset} lacks the model's features {missing[:5]}")
    if source.count_rows() == 0:
        raise InvalidInput(f"dataset {dataset} has no rows")
    return {
        "dataset": dataset,
        "version": source.version,
        "output": output,
        "column": column,
        "model_version": version,
    }


def scores_name(service: ModelService, project: str, model: str, kind: str = "scores") -> str:
    """`<model>-scores-<n>`, the first n not taken: batch scores go to a new dataset unless
    the person names one (never, by default, a version of the data the model learned from)."""
    n = 1
    while service.stores.datasets.exists(project, f"{model}-{kind}-{n}"):
        n += 1
    return f"{model}-{kind}-{n}"


def run(
    service: ModelService, author: str, project: str, name: str, request: dict[str, Any]
) -> dict[str, Any]:
    """Score every row of the pinned dataset version with the pinned model version and write
    `output` with `column` (and, for classifiers, `<column>_probability`). A raw-row model
    (format 2) scores every row (nulls are imputed in its graph); for the others, rows with
    a missing or non-finite feature get nulls."""
    dataset, column = request["dataset"], request["column"]
    predictor = service.predictor(service.model_id(project, name), request["model_version"])
    source = service.stores.datasets.open(project, dataset, request["version"])
    keep = [n for n in source.schema.names if n not in (column, f"{column}_probability")]
    batches = _scored(source.to_batches(columns=keep, batch_size=BATCH_ROWS), predictor, column)
    first = next(batches, None)
    if first is None:
        raise InvalidInput(f"dataset {dataset} has no rows")
    reader = pa.RecordBatchReader.from_batches(first.schema, _chain(first, batches))
    info = service.stores.datasets.write_table(project, request["output"], reader)
    message = version_message(name, request)
    new_version(service.stores, author, project, request["output"], info, message, source=message)
    return {
        "dataset": request["output"],
        "version": info.version,
        "num_rows": info.num_rows,
        "column": column,
        "model_version": request["model_version"],
    }


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def _scored(
    batches: Iterator[pa.RecordBatch], predictor: Predictor, column: str
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        table = pa.Table.from_batches([batch])
        ok = predictor.complete(table)
        y = predictor.run_inputs(predictor.table_inputs(table))
        arrays, names = list(batch.columns), list(batch.schema.names)
        labels = predictor.labels(y)
        if labels is not None:
            arrays += [pa.array(labels, pa.string(), mask=~ok), pa.array(y.max(axis=1), mask=~ok)]
            names += [column, f"{column}_probability"]
        else:
            arrays.append(pa.array(y[:, 0], mask=~ok))
            names.append(column)
        yield pa.RecordBatch.from_arrays(arrays, names=names)


def version_message(model: str, request: dict[str, Any]) -> str:
    """The message of the dataset version a batch prediction writes (recovery matches it)."""
    return (
        f"predictions of model {model} v{request['model_version']} "
        f"on {request['dataset']}@{request['version']}"
    )
