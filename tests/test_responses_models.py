"""Typed response bodies of the model, pipeline, gate, sweep, module and compare API (issue
18): the OpenAPI document describes every 2xx answer of those routes, and the typed answers
encode exactly as the plain ones did."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import msgspec
import pytest

from reef.server.model_answers import (
    GateDecision,
    GatesSetting,
    MonitorConfig,
    PredictAnswer,
    Promoted,
)
from reef.server.modules import ModuleDiff
from reef.server.shaped import shaped
from reef.server.triggers import TriggerView


def test_promotion_documents_the_refusal_and_the_yaml_pipeline(openapi_doc: dict[str, Any]) -> None:
    promote = openapi_doc["paths"][
        "/api/projects/{project}/models/{model}/versions/{version}/promote"
    ]
    refusal = promote["post"]["responses"]["409"]["content"]["application/json"]["schema"]
    assert refusal == {"$ref": "#/components/schemas/GateRefusal"}
    pipeline = openapi_doc["paths"]["/api/projects/{project}/pipelines/{name}"]["get"]["responses"]
    assert set(pipeline["200"]["content"]) == {"application/json", "application/yaml"}


def test_a_renamed_key_keeps_its_wire_name(openapi_doc: dict[str, Any]) -> None:
    schema = openapi_doc["components"]["schemas"]["ModuleDiff"]
    assert set(schema["properties"]) == {"from", "to", "files"}
    diff = shaped(ModuleDiff, {"from": "a1", "to": "b2", "files": []})
    assert json.loads(msgspec.json.encode(diff)) == {"from": "a1", "to": "b2", "files": []}


def _wire(value: Any) -> Any:
    return json.loads(msgspec.json.encode(value))


def _typed(value: Any) -> Any:
    """`value` with each leaf's type beside it: 1 and 1.0 differ, key order does not."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


@pytest.mark.parametrize(
    ("kind", "plain"),
    [
        # a check keeps only the fields it was given; a whole number stays whole
        (
            GateDecision,
            {
                "version": 2,
                "alias": "production",
                "ok": False,
                "checks": [
                    {"type": "metric", "metric": "accuracy", "min": 1, "ok": False,
                     "value": None, "detail": "accuracy was not recorded"},
                    {"type": "better_than", "dataset": "d", "alias": "production",
                     "label": "label", "metric": "accuracy", "ok": True,
                     "value": {"candidate": 0.9, "current": 0.8}, "detail": "better"},
                ],
            },
        ),
        (GatesSetting, {"aliases": ["production"], "checks": [{"type": "parity"}]}),
        # a form may have stored whole numbers for thresholds
        (
            MonitorConfig,
            {"psi_threshold": 1, "ks_threshold": 0.2, "min_rows": 100.0, "window_s": 3600,
             "min_accuracy": None, "min_labels": 30},
        ),
        # unseen_categories only when there were some
        (
            PredictAnswer,
            {"request_id": "ab", "predictions": [{"label": "a", "probabilities": [0.75, 0.25]}],
             "model_version": 1, "arm": "main", "latency_ms": 0.1},
        ),
        (
            PredictAnswer,
            {"request_id": "ab", "predictions": [{"value": 1.5}], "model_version": 1,
             "arm": "candidate", "latency_ms": 0.1, "unseen_categories": {"city": 2}},
        ),
        # failed, reason and approval only when gates were overridden
        (
            Promoted,
            {"model": "m", "version": 2, "checks": [], "alias": "production", "previous": 1,
             "override": False},
        ),
        (
            Promoted,
            {"model": "m", "version": 2, "checks": [], "alias": "production", "previous": None,
             "override": True, "failed": ["x"], "reason": "ok", "approval": None},
        ),
    ],
)  # fmt: skip
def test_typed_answers_encode_as_the_plain_ones(kind: type, plain: dict[str, Any]) -> None:
    assert _typed(_wire(shaped(kind, plain))) == _typed(_wire(plain))


def test_cron_fields_only_for_a_cron_trigger() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5)
    push = {"id": 1, "kind": "push", "enabled": True, "created_by": "ann", "created_at": at,
            "target": "p/m"}  # fmt: skip
    cron = {**push, "kind": "cron", "target": None, "cron": "0 6 * * *", "timezone": "UTC",
            "next_due": at}  # fmt: skip
    assert set(_wire(shaped(TriggerView, push))) == set(push)
    assert set(_wire(shaped(TriggerView, cron))) == set(cron)


def test_a_key_the_answer_does_not_declare_is_an_error() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        shaped(GatesSetting, {"aliases": [], "checks": [], "extra": 1})
