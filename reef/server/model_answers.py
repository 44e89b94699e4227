"""What the model API answers: the registry (models, versions, the card, gates, compare),
promotion, serving (predict, feedback, batch jobs), approvals and monitoring, as msgspec
Structs so that the OpenAPI document describes each answer. The handlers build them from
the registry's rows with `shaped`; keys and values are those the API always sent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from reef.store.projects import Project

Number = int | float  # as stored: a form may have saved a whole number
Opt = UnsetType  # a key the answer leaves out when it does not apply


class Answer(msgspec.Struct, forbid_unknown_fields=True):
    """Base of the answers: a key the declaration lacks is an error, not a silent drop."""


# --- the registry ------------------------------------------------------------------------
class ModelSummary(Answer):
    """A model of the project, as the models list shows it."""

    name: Annotated[str, Meta(examples=["churn"])]
    description: str | None
    latest: Annotated[int | None, Meta(description="the newest version; null: none yet")]
    versions: Annotated[int, Meta(description="how many versions it has")]
    aliases: Annotated[
        str | None,
        Meta(description="ALIAS=VERSION pairs, comma-separated", examples=["production=3"]),
    ]


class ModelVersion(Answer):
    """One registered version: the ONNX model a run's step produced, its input/output schema,
    its metrics and where it came from."""

    model_id: int
    version: Annotated[int, Meta(examples=[3])]
    run_id: Annotated[int, Meta(description="the run that registered it")]
    step_name: Annotated[str, Meta(description="the step of that run", examples=["train"])]
    onnx_digest: Annotated[str, Meta(description="content hash of the ONNX file")]
    schema: Annotated[
        dict[str, Any],
        Meta(description="inputs (features), outputs (classes) and the export's parity check"),
    ]
    parity_max_diff: Annotated[
        float, Meta(description="largest |ONNX - original| output difference at export")
    ]
    metrics: Annotated[dict[str, Number | None], Meta(examples=[{"accuracy": 0.93}])]
    lineage: Annotated[
        dict[str, Any], Meta(description="the datasets and module commits it was trained from")
    ]
    created_by: str
    created_at: datetime
    metrics_from: Annotated[
        list[str] | None,
        Meta(description="the steps the metrics came from; null: unknown (older versions)"),
    ]


class ModelVersionDetail(ModelVersion):
    """A version with its drift reference (the training data's quantile bins per feature)."""

    reference: dict[str, Any] | None


class GateCheckSetting(Answer, forbid_unknown_fields=False):
    """A stored check: `type` and the fields of that kind (others are left out). Checks
    saved before reef refused other fields may hold more; those are not repeated."""

    type: Annotated[str, Meta(examples=["metric"])]
    metric: str | Opt = UNSET
    min: Number | Opt | None = UNSET
    max: Number | Opt | None = UNSET
    max_diff: Number | Opt | None = UNSET
    max_ms: Number | Opt | None = UNSET
    batch: Number | Opt | None = UNSET
    dataset: str | Opt | None = UNSET
    alias: str | Opt | None = UNSET
    label: str | Opt | None = UNSET
    min_delta: Number | Opt | None = UNSET


class GatesSetting(Answer):
    """The checks a version must pass before one of `aliases` may point at it."""

    aliases: Annotated[list[str], Meta(examples=[["production"]])]
    checks: list[GateCheckSetting]


class GateResult(GateCheckSetting, kw_only=True):
    """A check's result: the check itself plus whether it passed, the value measured and why."""

    ok: bool
    value: Annotated[
        Any,
        Meta(
            description="the value measured: a number, {candidate, current} for better_than, "
            "or null when it could not be measured"
        ),
    ]
    detail: Annotated[str, Meta(examples=["accuracy 0.93 within bounds"])]


class ModelCard(Answer):
    intended_use: str
    limitations: str


class TrafficSetting(Answer):
    """split: `percent` of the default route's requests go to `version`; shadow: `version`
    also predicts every request, for the log only."""

    mode: Annotated[str, Meta(examples=["split"])]
    version: int
    percent: float


class MonitorConfig(Answer):
    """The monitor's thresholds (defaults filled in)."""

    psi_threshold: Annotated[Number, Meta(description="PSI above this raises a drift alert")]
    ks_threshold: Annotated[Number, Meta(description="KS above this raises a ks alert")]
    min_rows: Annotated[Number, Meta(description="logged rows needed to judge drift")]
    window_s: Annotated[Number, Meta(description="how far back monitoring looks, in seconds")]
    min_accuracy: Annotated[
        Number | None, Meta(description="live accuracy below this raises an alert; null: off")
    ]
    min_labels: Annotated[Number, Meta(description="labelled rows needed to judge accuracy")]


class PromotionRecord(Answer):
    """An alias moved: by a promotion (through the gates) or a rollback."""

    alias: str
    version: int
    previous: Annotated[int | None, Meta(description="the version it pointed at before")]
    action: Annotated[str, Meta(examples=["promote"])]
    actor: str
    override: Annotated[bool, Meta(description="promoted past failed gates")]
    checks: list[GateResult]
    at: datetime


class ModelAlert(Answer):
    """An open monitoring alert (drift, ks or accuracy)."""

    model: str
    kind: Annotated[str, Meta(examples=["drift"])]
    version: int
    message: str
    detail: dict[str, Any]
    raised_at: datetime


class ApprovalRequest(Answer):
    """A promotion a pipeline asked for whose gates failed, waiting for (or decided by) a
    maintainer."""

    id: int
    model_id: int
    version: int
    alias: str
    run_id: Annotated[int | None, Meta(description="the run that asked")]
    checks: list[GateResult]
    status: Annotated[str, Meta(examples=["pending"], description="pending, approved, rejected")]
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    comment: str | None


class ModelDetail(Answer):
    """A model: its card, versions (without drift references), aliases, settings, history,
    alerts and approval requests."""

    project: Project
    model: str
    description: str
    card: ModelCard
    versions: Annotated[list[ModelVersion], Meta(description="newest first")]
    aliases: Annotated[dict[str, int], Meta(examples=[{"production": 3}])]
    serving: Annotated[
        int | None, Meta(description="the version answering by default; null: none yet")
    ]
    gates: GatesSetting | None
    project_gates: GatesSetting | None
    traffic: Annotated[TrafficSetting | None, Meta(description="null: no split or shadow")]
    monitor: MonitorConfig
    promotions: Annotated[list[PromotionRecord], Meta(description="the latest 20, newest first")]
    alerts: list[ModelAlert]
    approvals: list[ApprovalRequest]


class GateDecision(Answer):
    """What promoting `version` to `alias` would decide, without promoting."""

    version: int
    alias: str
    ok: Annotated[bool, Meta(description="every check passed")]
    checks: list[GateResult]


class Promoted(Answer, kw_only=True):
    """A promotion done; `failed`, `reason` and `approval` only when gates were overridden."""

    model: str
    version: int
    checks: list[GateResult]
    alias: str
    previous: int | None
    override: bool
    failed: list[str] | Opt = UNSET
    reason: str | Opt = UNSET
    approval: Annotated[
        int | Opt | None, Meta(description="the approval request that let it through")
    ] = UNSET


class RolledBack(Answer):
    model: str
    version: Annotated[int, Meta(description="the version the alias points at now")]
    alias: str
    previous: int | None


class MetricDelta(Answer):
    metric: str
    a: Number | None
    b: Number | None
    delta: Annotated[Number | None, Meta(description="b - a; null when either is missing")]


class FeatureChanges(Answer):
    added: list[str]
    removed: list[str]
    same_order: bool


class Pair(Answer):
    """A value of version a and of version b."""

    a: Any
    b: Any


class ModuleChange(Answer):
    step: str
    a: dict[str, Any] | None
    b: dict[str, Any] | None
    same: bool


class VersionComparison(Answer):
    """Two versions side by side: metrics with deltas, features, classes, parity, the
    modules and datasets they were trained from."""

    project: Project
    model: str
    a: ModelVersion
    b: ModelVersion
    metrics: list[MetricDelta]
    features: FeatureChanges
    classes: Pair
    parity: Pair
    modules: list[ModuleChange]
    datasets: Pair


# --- serving -----------------------------------------------------------------------------
class Prediction(Answer):
    """One row's answer: `label` and `probabilities` (a classifier), `value` (a model of raw
    rows) or `outputs` (any other model)."""

    label: str | Opt | None = UNSET
    probabilities: list[float] | Opt = UNSET
    value: Any | Opt = UNSET
    outputs: list[Any] | Opt = UNSET


class PredictAnswer(Answer, kw_only=True):
    request_id: Annotated[
        str, Meta(description="names the request in feedback", examples=["3f2c9a1e"])
    ]
    predictions: list[Prediction]
    model_version: int
    arm: Annotated[str, Meta(description="main, or candidate in an A/B split")]
    latency_ms: float
    unseen_categories: Annotated[
        dict[str, int] | Opt,
        Meta(
            description="per column, how many values were categories not seen in training "
            "(answered all the same); only when there were some",
            examples=[{"city": 1}],
        ),
    ] = UNSET


class Labelled(Answer):
    labelled: Annotated[int, Meta(description="prediction rows labelled")]


class BatchLinks(Answer, kw_only=True):
    api: Annotated[str, Meta(description="this job in the API")]
    dataset: Annotated[str | Opt, Meta(description="the page of the dataset version written")] = (
        UNSET
    )


class BatchJob(Answer):
    """A batch prediction job: queued, running, done (see `result`) or failed (`error`)."""

    id: int
    project: str
    model: str
    model_id: int
    request: Annotated[
        dict[str, Any] | None,
        Meta(description="dataset, version, output, column, model_version as resolved"),
    ]
    status: Annotated[str, Meta(examples=["done"])]
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: Annotated[
        dict[str, Any] | None,
        Meta(description="dataset, version, num_rows, column, model_version written"),
    ]
    error: str | None
    links: BatchLinks


# --- monitoring --------------------------------------------------------------------------
class RatePoint(Answer):
    minute: datetime
    requests: int


class Latency(Answer):
    p50: float | None
    p95: float | None
    p99: float | None


class VersionTraffic(Answer):
    """One version's (and arm's) share of the logged requests."""

    labelled: int
    accuracy: Annotated[float | None, Meta(description="live accuracy of the labelled rows")]
    version: int
    arm: str
    rows: int
    requests: int
    mean_latency_ms: float | None
    labels: Annotated[dict[str, float], Meta(description="share of rows per predicted label")]


class FeatureDrift(Answer):
    feature: str
    psi: float
    ks: float | None


class Drift(Answer, kw_only=True):
    """PSI and KS per feature of the serving version's recent inputs against its training
    data; `drifted` and `ks_drifted` are the features past each threshold."""

    version: int
    rows: int
    features: list[FeatureDrift]
    drifted: list[FeatureDrift]
    ks_drifted: list[FeatureDrift]
    note: Annotated[str | Opt, Meta(description="why nothing (or no KS) was measured")] = UNSET


class Monitoring(Answer):
    """The live statistics of the model's prediction log."""

    project: str
    model: str
    window_s: Number
    config: MonitorConfig
    requests: int
    rate: Annotated[list[RatePoint], Meta(description="requests per minute")]
    latency_ms: Latency
    versions: list[VersionTraffic]
    drift: Drift
    alerts: list[ModelAlert]


class GateRefusal(Answer):
    """409: the version failed checks that gate the alias (an owner may override them)."""

    detail: Annotated[str, Meta(examples=["promotion to 'production' refused: accuracy ..."])]
    status: Annotated[int, Meta(examples=[409])]
    checks: list[GateResult]
