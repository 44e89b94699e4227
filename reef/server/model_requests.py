"""What the model API takes: the request bodies of predict, feedback, promotion, gates,
traffic, monitoring, the card and batch jobs, as msgspec Structs. Litestar validates them
(a 400 naming the field) and documents them; the runtime modules keep the rules that need
the registry (a version exists, a dataset has the features)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

Scalar = str | int | float | bool | None
Alias = Annotated[
    str, Meta(description="an alias name or a version number", examples=["production"])
]


class PredictRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Rows to predict: objects keyed by column name (a model that takes raw rows) or lists
    of numbers in feature order. `version`: an alias or number (default: the serving
    version); `key`: keeps an A/B split sticky for one caller."""

    rows: Annotated[
        list[dict[str, Scalar] | list[Scalar]],
        Meta(examples=[[{"age": 41, "city": "Oslo"}], [[5.1, 3.5, 1.4, 0.2]]]),
    ]
    version: str | int | None = None
    key: str | None = None


IMAGE_UPLOAD = {  # the multipart form of predict, for a model that takes images
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "version": {"type": "string", "description": "an alias or version number"},
        "key": {"type": "string"},
    },
}


class Feedback(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The true label of a logged prediction (`row` of the request, 0 for its first), or
    `labels`, one per row of the request."""

    request_id: Annotated[str, Meta(examples=["3f2c9a1e"])]
    label: Scalar | UnsetType = UNSET
    labels: list[Scalar] | UnsetType = UNSET
    row: Annotated[int, Meta(ge=0)] = 0


class Promotion(msgspec.Struct, forbid_unknown_fields=True):
    """Point `alias` at the version. `override` (with a `reason`) promotes past failed gates."""

    alias: Alias = "production"
    override: bool = False
    reason: str = ""


class Rollback(msgspec.Struct, forbid_unknown_fields=True):
    alias: Alias = "production"


class GateCheck(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One check. metric: `metric` with `min` and/or `max`; parity: `max_diff`; latency:
    `max_ms` for a batch of `batch` rows; better_than: beats `alias` on `dataset` (`label`
    column) by `min_delta` in `metric`."""

    type: Literal["metric", "parity", "latency", "better_than"]
    metric: str | None = None
    min: float | None = None
    max: float | None = None
    max_diff: float | None = None
    max_ms: float | None = None
    batch: int | None = None
    dataset: str | None = None
    alias: str | None = None
    label: str | None = None
    min_delta: float | None = None


GATES_EXAMPLE = {
    "aliases": ["production"],
    "checks": [{"type": "metric", "metric": "accuracy", "min": 0.9}],
}


class Gates(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The checks a version must pass before one of `aliases` (default: production) may
    point at it."""

    checks: Annotated[list[GateCheck], Meta(examples=[GATES_EXAMPLE["checks"]])]
    aliases: Annotated[list[str] | None, Meta(examples=[["production"]])] = None


class Traffic(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """split: `percent` of the default route's requests go to `version`; shadow: `version`
    also predicts each request, for the log only; off: stop."""

    mode: Literal["off", "split", "shadow"]
    version: int | None = None
    percent: Annotated[float, Meta(ge=0, le=100)] | None = None


MonitorValue = float | None | UnsetType


class MonitorChange(msgspec.Struct, forbid_unknown_fields=True):
    """Monitor settings to change; null puts one back to its default, absent keeps it. PSI
    and KS measure how far recent inputs have drifted from the training data."""

    psi_threshold: MonitorValue = UNSET
    ks_threshold: MonitorValue = UNSET
    min_rows: int | UnsetType | None = UNSET
    window_s: int | UnsetType | None = UNSET
    min_accuracy: MonitorValue = UNSET
    min_labels: int | UnsetType | None = UNSET


class CardChange(msgspec.Struct, forbid_unknown_fields=True):
    """The model card's text; absent fields stay as they are."""

    description: str | UnsetType = UNSET
    intended_use: str | UnsetType = UNSET
    limitations: str | UnsetType = UNSET


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Score every row of a dataset version (default: the latest) with a model version (an
    alias or number; default: the serving one) into dataset `output`, column `column`."""

    dataset: Annotated[str, Meta(examples=["customers"])]
    version: int | str | None = None
    output: str | None = None
    column: str | None = None
    model_version: str | int | None = None


def given(body: msgspec.Struct) -> dict[str, Any]:
    """The fields a body set (unset and omitted defaults left out), as plain data."""
    return msgspec.to_builtins(body)
