"""Models: the registry (versions, aliases, card, gates, compare), serving (predict, A/B,
feedback, batch) and monitoring. JSON under /api; the pages are in `model_pages`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
from litestar import Request, Response
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Redirect, Template

from reef.errors import InvalidInput
from reef.hub import Hub
from reef.model_io import ModelSchema, example_rows
from reef.runtime import approvals, gates, monitoring, promotion
from reef.runtime.promotion import GateRefused
from reef.server import model_batch, model_forms, model_try
from reef.server.bodies import JSON, MULTIPART, convert, decode, documented
from reef.server.model_answers import (
    GateDecision,
    GateRefusal,
    GatesSetting,
    Labelled,
    ModelDetail,
    ModelSummary,
    ModelVersionDetail,
    MonitorConfig,
    Monitoring,
    PredictAnswer,
    Promoted,
    RolledBack,
    TrafficSetting,
    VersionComparison,
)
from reef.server.model_requests import (
    IMAGE_UPLOAD,
    CardChange,
    Feedback,
    Gates,
    MonitorChange,
    PredictRequest,
    Promotion,
    Rollback,
    Traffic,
    given,
)
from reef.server.projects import Alert, as_alerts
from reef.server.routes import Form, FromPath, FromQuery, HubDep, JSONBody, get, patch, post
from reef.server.shaped import maybe, shaped
from reef.store.people import Principal

CARD_FIELDS = ("intended_use", "limitations")


def model_context(hub: Hub, project: str, name: str) -> dict[str, Any]:
    p = hub.projects.get(project)
    model_id = hub.model_service.model_id(project, name)
    versions = [_public(v) for v in hub.models.versions(model_id)]
    serving = hub.models.serving_version(model_id) if versions else None
    settings = hub.models.settings(model_id)
    return {
        "project": p,
        "model": name,
        "description": settings["description"],
        "card": {k: (settings["card"] or {}).get(k, "") for k in CARD_FIELDS},
        "versions": versions,
        "aliases": hub.models.aliases(model_id),
        "serving": serving,
        "gates": settings["gates"],
        "project_gates": hub.models.project_gates(p.id),
        "traffic": settings["traffic"],
        "monitor": hub.model_service.monitor.config(model_id),
        "promotions": hub.models.promotions(model_id, limit=20),
        "alerts": hub.models.alerts(p.id, model_id),
        "approvals": approvals.listing(hub, project, name),
    }


def _public(version: dict) -> dict:
    """A version without its (bulky) drift reference, which the API serves separately."""
    return {k: v for k, v in version.items() if k != "reference"}


def compare_context(hub: Hub, project: str, name: str, a: int, b: int) -> dict[str, Any]:
    """Two versions side by side: metrics with deltas, schema, parity and lineage."""
    model_id = hub.model_service.model_id(project, name)
    va, vb = hub.models.version(model_id, a), hub.models.version(model_id, b)
    keys = sorted(set(va["metrics"]) | set(vb["metrics"]))
    metrics = [_metric_row(k, va["metrics"].get(k), vb["metrics"].get(k)) for k in keys]
    fa, fb = ModelSchema(va["schema"]).names, ModelSchema(vb["schema"]).names
    ma = {m["step"]: m for m in va["lineage"].get("modules", [])}
    mb = {m["step"]: m for m in vb["lineage"].get("modules", [])}
    modules = [
        {"step": s, "a": ma.get(s), "b": mb.get(s), "same": ma.get(s) == mb.get(s)}
        for s in sorted(set(ma) | set(mb))
    ]
    return {
        "project": hub.projects.get(project),
        "model": name,
        "a": _public(va),
        "b": _public(vb),
        "metrics": metrics,
        "features": {
            "added": [f for f in fb if f not in fa],
            "removed": [f for f in fa if f not in fb],
            "same_order": fa == fb,
        },
        "classes": {
            "a": va["schema"]["outputs"].get("classes"),
            "b": vb["schema"]["outputs"].get("classes"),
        },
        "parity": {"a": va["parity_max_diff"], "b": vb["parity_max_diff"]},
        "modules": modules,
        "datasets": {
            "a": va["lineage"].get("datasets", []),
            "b": vb["lineage"].get("datasets", []),
        },
    }


def _metric_row(key: str, a: float | None, b: float | None) -> dict[str, Any]:
    delta = None if a is None or b is None else b - a
    return {"metric": key, "a": a, "b": b, "delta": delta}


def predict(
    hub: Hub, project: str, name: str, data: PredictRequest, source: str = "api"
) -> dict[str, Any]:
    alias = data.version
    return hub.model_service.predict(
        project,
        name,
        data.rows,
        alias=None if alias is None else str(alias),
        key=data.key,
        source=source,
    )


def update_card(hub: Hub, who: Principal, project: str, name: str, data: dict[str, str]) -> dict:
    """`data`: some of description, intended_use, limitations (a CardChange's given fields)."""
    model_id = hub.model_service.model_id(project, name)
    settings = hub.models.settings(model_id)
    if "description" in data:
        hub.models.set_description(model_id, data["description"])
    card = {**(settings["card"] or {}), **{k: data[k] for k in CARD_FIELDS if k in data}}
    hub.models.set_setting(model_id, "card", card)
    hub.audit.record(who.name, "model.card", f"model {name}", project, fields=sorted(data))
    return model_context(hub, project, name)


def promote_request(
    hub: Hub, who: Principal, project: str, name: str, version: int, data: Promotion
) -> dict:
    return promotion.promote(
        hub.model_service,
        who,
        project,
        name,
        version,
        data.alias or "production",
        override=data.override,
        reason=data.reason,
    )


def set_gates(
    hub: Hub, who: Principal, project: str, name: str | None, data: dict | None
) -> dict | None:
    """The model's gates (or the project's, when `name` is None); null clears them."""
    parsed = None if data is None else gates.parse(data)
    if name is None:
        hub.models.set_project_gates(hub.projects.get(project).id, parsed)
    else:
        hub.models.set_setting(hub.model_service.model_id(project, name), "gates", parsed)
    target = f"model {name}" if name else f"project {project}"
    hub.audit.record(who.name, "model.gates", target, project, gates=parsed)
    return parsed


def set_monitor(hub: Hub, who: Principal, project: str, name: str, data: Any) -> dict:
    """Change some monitor settings; null puts one back to its default."""
    data = monitoring.parse_config(data)
    model_id = hub.model_service.model_id(project, name)
    current = hub.models.settings(model_id)["monitor"] or {}
    merged = {k: v for k, v in {**current, **data}.items() if v is not None}
    hub.models.set_setting(model_id, "monitor", merged)
    hub.audit.record(who.name, "model.monitor", f"model {name}", project, **data)
    return hub.model_service.monitor.config(model_id)


def monitoring_context(hub: Hub, project: str, name: str) -> dict[str, Any]:
    """The live statistics; computing them also refreshes the model's alerts."""
    service = hub.model_service
    model_id = service.model_id(project, name)
    service.monitor.check((project, name), model_id)
    return {"project": project, "model": name, **service.monitor.stats((project, name), model_id)}


# API ---------------------------------------------------------------------------------
@get("/api/projects/{project:str}/models", access="reporter")
def list_models_api(hub: HubDep, project: FromPath[str]) -> list[ModelSummary]:
    return shaped(list[ModelSummary], hub.models.list(hub.projects.get(project).id))


@get("/api/projects/{project:str}/models/{model:str}", access="reporter")
def model_api(hub: HubDep, project: FromPath[str], model: FromPath[str]) -> ModelDetail:
    return shaped(ModelDetail, model_context(hub, project, model))


@patch("/api/projects/{project:str}/models/{model:str}", access="developer")
def update_model_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    model: FromPath[str],
    data: JSONBody[CardChange],
) -> ModelDetail:
    return shaped(ModelDetail, update_card(hub, request.user, project, model, given(data)))


@get("/api/projects/{project:str}/models/{model:str}/versions/{version:int}", access="reporter")
def model_version_api(
    hub: HubDep, project: FromPath[str], model: FromPath[str], version: FromPath[int]
) -> ModelVersionDetail:
    found = hub.models.version(hub.model_service.model_id(project, model), version)
    return shaped(ModelVersionDetail, found)


@get(
    "/api/projects/{project:str}/models/{model:str}/versions/{version:int}/gate",
    access="reporter",
)
def gate_api(
    hub: HubDep,
    project: FromPath[str],
    model: FromPath[str],
    version: FromPath[int],
    alias: FromQuery[str] = "production",
) -> GateDecision:
    """What promoting `version` to `alias` would decide, without promoting."""
    service = hub.model_service
    model_id = service.model_id(project, model)
    hub.models.version(model_id, version)
    checks = gates.evaluate(service, project, model_id, version, alias)
    ok = all(c["ok"] for c in checks)
    return shaped(GateDecision, {"version": version, "alias": alias, "ok": ok, "checks": checks})


@post(
    "/api/projects/{project:str}/models/{model:str}/versions/{version:int}/promote",
    access="maintainer",
    status_code=200,
    responses={409: ResponseSpec(GateRefusal, description="the gates refused the version")},
)
def promote_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    model: FromPath[str],
    version: FromPath[int],
    data: JSONBody[Promotion | None] = None,
) -> Response[Promoted]:
    asked = data or Promotion()
    try:
        done = promote_request(hub, request.user, project, model, version, asked)
        return Response(shaped(Promoted, done))
    except GateRefused as refused:
        body = {"detail": refused.message, "status": 409, "checks": refused.checks}
        refusal: Any = shaped(GateRefusal, body)  # the 409's body, declared in `responses`
        return Response(refusal, status_code=409)


@post(
    "/api/projects/{project:str}/models/{model:str}/rollback", access="maintainer", status_code=200
)
def rollback_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    model: FromPath[str],
    data: JSONBody[Rollback | None] = None,
) -> RolledBack:
    alias = (data or Rollback()).alias
    done = promotion.rollback(hub.model_service, request.user, project, model, alias)
    return shaped(RolledBack, done)


@get("/api/projects/{project:str}/models/{model:str}/compare", access="reporter")
def compare_api(
    hub: HubDep, project: FromPath[str], model: FromPath[str], a: FromQuery[int], b: FromQuery[int]
) -> VersionComparison:
    return shaped(VersionComparison, compare_context(hub, project, model, a, b))


@post("/api/projects/{project:str}/models/{model:str}/gates", access="maintainer", status_code=200)
def model_gates_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    model: FromPath[str],
    data: JSONBody[Gates | None],
) -> GatesSetting | None:
    """The model's gates; null clears them."""
    saved = set_gates(hub, request.user, project, model, None if data is None else given(data))
    return maybe(GatesSetting, saved)


@get("/api/projects/{project:str}/gates", access="reporter")
def project_gates_api(hub: HubDep, project: FromPath[str]) -> GatesSetting | None:
    return maybe(GatesSetting, hub.models.project_gates(hub.projects.get(project).id))


@post("/api/projects/{project:str}/gates", access="maintainer", status_code=200)
def set_project_gates_api(
    request: Request, hub: HubDep, project: FromPath[str], data: JSONBody[Gates | None]
) -> GatesSetting | None:
    """Gates every model of the project must pass too; null clears them."""
    saved = set_gates(hub, request.user, project, None, None if data is None else given(data))
    return maybe(GatesSetting, saved)


@post(
    "/api/projects/{project:str}/models/{model:str}/traffic", access="maintainer", status_code=200
)
def traffic_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    model: FromPath[str],
    data: JSONBody[Traffic],
) -> TrafficSetting | None:
    """The traffic setting now; null: off."""
    setting = promotion.set_traffic(hub.model_service, request.user, project, model, given(data))
    return maybe(TrafficSetting, setting)


@patch("/api/projects/{project:str}/models/{model:str}/monitor", access="maintainer")
def monitor_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    model: FromPath[str],
    data: JSONBody[MonitorChange],
) -> MonitorConfig:
    return shaped(MonitorConfig, set_monitor(hub, request.user, project, model, given(data)))


@get("/api/projects/{project:str}/models/{model:str}/monitoring", access="reporter")
def monitoring_api(hub: HubDep, project: FromPath[str], model: FromPath[str]) -> Monitoring:
    return shaped(Monitoring, monitoring_context(hub, project, model))


@get("/api/projects/{project:str}/alerts", access="reporter")
def alerts_api(hub: HubDep, project: FromPath[str]) -> list[Alert]:
    """Open alerts of the project's models (drift, live accuracy), newest first."""
    return as_alerts(monitoring.alerts(hub, project))


@post(
    "/api/projects/{project:str}/models/{model:str}/predict",
    access="reporter",
    status_code=200,
    operation_class=documented({JSON: PredictRequest, MULTIPART: IMAGE_UPLOAD}),
)
async def predict_api(
    request: Request, hub: HubDep, project: FromPath[str], model: FromPath[str]
) -> PredictAnswer:
    """JSON {"rows": [...]}, or for an image model a multipart upload of image files (field
    `image`, one row per file; optional fields `version` and `key`). Answered on the event
    loop when the model is loaded (inference takes well under a millisecond at batch 1);
    otherwise in a thread, which may query DuckDB and load it."""
    data = await _predict_body(request)
    alias = data.version
    if hub.model_service.is_warm(project, model, None if alias is None else str(alias)):
        return shaped(PredictAnswer, predict(hub, project, model, data))
    answer = await anyio.to_thread.run_sync(predict, hub, project, model, data)
    return shaped(PredictAnswer, answer)


async def _predict_body(request: Request) -> PredictRequest:
    """The predict request; a multipart upload becomes {"rows": [{"image": bytes}, ...]}
    plus its text fields."""
    if request.content_type[0] != "multipart/form-data":
        return decode(await request.body(), PredictRequest)  # over the size limit: 413
    form = await request.form()
    files = [f for f in form.getall("image") if hasattr(f, "read")] if "image" in form else []
    if not files:
        raise InvalidInput("send the image files in multipart field 'image'")
    rows: list[Any] = [{"image": await f.read()} for f in files]
    return PredictRequest(rows, form.get("version") or None, form.get("key") or None)


@post("/api/projects/{project:str}/models/{model:str}/feedback", access="reporter", status_code=200)
def feedback_api(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    model: FromPath[str],
    data: JSONBody[Feedback | list[Feedback]],
) -> Labelled:
    """One label (or a row's labels), or a list of them."""
    items = [given(f) for f in data] if isinstance(data, list) else given(data)
    n = hub.model_service.add_feedback(project, model, items, request.user.name)
    return Labelled(labelled=n)


# pages -------------------------------------------------------------------------------
def page_context(hub: Hub, who: Principal, project: str, name: str, **extra: Any) -> dict:
    ctx = model_context(hub, project, name)
    example, inputs = "", []
    serving = next((v for v in ctx["versions"] if v["version"] == ctx["serving"]), None)
    if serving:
        example = json.dumps(example_rows(ModelSchema(serving["schema"])))
        model_id = hub.model_service.model_id(project, name)
        inputs = model_try.feature_inputs(hub.models.version(model_id, serving["version"]))
    role = hub.projects.role_of(project, who)
    forms = {
        **model_forms.gates_form(model_forms.gates_fields(ctx["gates"])),
        "monitor_fields": model_forms.monitor_fields(ctx["monitor"]),
    }
    return {**ctx, **forms, "example": example, "inputs": inputs, "role": role, "refused": None,
            **extra}  # fmt: skip


def _back(project: str, model: str, anchor: str = "") -> Redirect:
    return Redirect(f"/projects/{project}/models/{model}{anchor}")


@get("/projects/{project:str}/models/{model:str}", access="reporter")
def model_page(
    request: Request, hub: HubDep, project: FromPath[str], model: FromPath[str]
) -> Template:
    return Template("model.html", context=page_context(hub, request.user, project, model))


@post("/projects/{project:str}/models/{model:str}/card", access="developer")
def card_page(
    request: Request, hub: HubDep, project: FromPath[str], model: FromPath[str], data: Form
) -> Redirect:
    fields = {k: data.get(k, "") for k in ("description", *CARD_FIELDS)}
    update_card(hub, request.user, project, model, fields)
    return _back(project, model)


@post("/projects/{project:str}/models/{model:str}/predict", access="reporter", status_code=200)
def predict_page(hub: HubDep, project: FromPath[str], model: FromPath[str], data: Form) -> Template:
    try:
        rows = json.loads(data.get("rows", ""))
    except json.JSONDecodeError as e:
        raise InvalidInput(f"rows must be JSON: {e}") from None
    result = predict(hub, project, model, convert({"rows": rows}, PredictRequest), source="try")
    return Template("_prediction.html", context=result)


@post(
    "/projects/{project:str}/models/{model:str}/versions/{version:int}/promote", access="maintainer"
)
def promote_page(
    request: Request,
    hub: HubDep,
    project: FromPath[str],
    model: FromPath[str],
    version: FromPath[int],
    data: Form,
) -> Redirect | Template:
    body = Promotion(
        data.get("alias") or "production", data.get("override") == "on", data.get("reason", "")
    )
    try:
        promote_request(hub, request.user, project, model, version, body)
    except GateRefused as refused:
        refusal = {
            "version": version,
            "alias": body.alias,
            "checks": refused.checks,
        }
        ctx = page_context(hub, request.user, project, model, refused=refusal)
        return Template("model.html", context=ctx, status_code=409)
    return _back(project, model)


@post("/projects/{project:str}/models/{model:str}/rollback", access="maintainer")
def rollback_page(
    request: Request, hub: HubDep, project: FromPath[str], model: FromPath[str], data: Form
) -> Redirect:
    alias = data.get("alias") or "production"
    promotion.rollback(hub.model_service, request.user, project, model, alias)
    return _back(project, model)


@post("/projects/{project:str}/models/{model:str}/traffic", access="maintainer")
def traffic_page(
    request: Request, hub: HubDep, project: FromPath[str], model: FromPath[str], data: Form
) -> Redirect:
    setting: dict[str, Any] = {"mode": data.get("mode", "off")}
    if setting["mode"] != "off" and not data.get("version"):
        raise InvalidInput("choose the other version to split or shadow-test with")
    try:
        if setting["mode"] != "off":
            setting["version"] = int(data.get("version", ""))
            setting["percent"] = float(data.get("percent") or 100)
    except ValueError:
        raise InvalidInput("the share of requests must be a number from 0 to 100") from None
    promotion.set_traffic(hub.model_service, request.user, project, model, setting)
    return _back(project, model, "#traffic")


@post("/projects/{project:str}/models/{model:str}/gates", access="maintainer", status_code=200)
def gates_form(
    request: Request, hub: HubDep, project: FromPath[str], model: FromPath[str], data: Form
) -> Template:
    """Save the model's gates from the page's form; the Gates section comes back."""

    def save() -> None:
        set_gates(hub, request.user, project, model, model_forms.gates_from_fields(data))

    def fields(ctx: dict, error: str | None) -> dict:
        return model_forms.gates_form(data if error else model_forms.gates_fields(ctx["gates"]))

    return _settings_form(request, hub, (project, model), "_model_gates.html", save, fields)


@post("/projects/{project:str}/models/{model:str}/monitor", access="maintainer", status_code=200)
def monitor_form(
    request: Request, hub: HubDep, project: FromPath[str], model: FromPath[str], data: Form
) -> Template:
    """Save the monitor thresholds from the page's form; the form comes back."""

    def save() -> None:
        set_monitor(hub, request.user, project, model, model_forms.monitor_from_fields(data))

    def fields(ctx: dict, error: str | None) -> dict:
        return {"monitor_fields": data if error else model_forms.monitor_fields(ctx["monitor"])}

    template = "_model_monitor_settings.html"
    return _settings_form(request, hub, (project, model), template, save, fields)


def _settings_form(
    request: Request,
    hub: Hub,
    where: tuple[str, str],
    template: str,
    save: Callable[[], Any],
    fields: Callable[[dict, str | None], dict],
) -> Template:
    """Run `save`; render `template` with the saved values, or (400, nothing stored) with
    the error inline and the fields as typed."""
    error = None
    try:
        save()
    except InvalidInput as e:
        error = e.message
    ctx = page_context(hub, request.user, *where)
    extra = {**fields(ctx, error), "form_error": error, "form_saved": not error}
    return Template(template, context={**ctx, **extra}, status_code=400 if error else 200)


@get("/projects/{project:str}/models/{model:str}/compare", access="reporter")
def compare_page(
    hub: HubDep, project: FromPath[str], model: FromPath[str], a: FromQuery[int], b: FromQuery[int]
) -> Template:
    return Template("model_compare.html", context=compare_context(hub, project, model, a, b))


@get("/projects/{project:str}/models/{model:str}/monitoring", access="reporter")
def monitoring_page(hub: HubDep, project: FromPath[str], model: FromPath[str]) -> Template:
    return Template("_model_monitor.html", context=monitoring_context(hub, project, model))


ROUTES = [
    list_models_api,
    model_api,
    update_model_api,
    model_version_api,
    gate_api,
    promote_api,
    rollback_api,
    compare_api,
    model_gates_api,
    project_gates_api,
    set_project_gates_api,
    traffic_api,
    monitor_api,
    monitoring_api,
    alerts_api,
    predict_api,
    feedback_api,
    *model_batch.ROUTES,
    model_page,
    card_page,
    predict_page,
    promote_page,
    rollback_page,
    traffic_page,
    gates_form,
    monitor_form,
    compare_page,
    monitoring_page,
]
