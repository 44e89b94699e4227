"""Plain words for things reef records: an item named in a sentence with its link, an
activity entry as a sentence ("alice commented on run 12"), a role in one sentence."""

from __future__ import annotations

from typing import Any

ROLE_HELP = {
    "reporter": "can see everything in the project and comment, but change nothing",
    "developer": "can also upload data, build and run pipelines and register models",
    "maintainer": "can also promote models, set gates and rules, and manage modules",
    "owner": "can also add and remove members and delete the project",
}

# audit action -> what the actor did, before the item's name
ACTIONS = {
    "run.create": "started",
    "run.comment": "commented on",
    "run.cancel": "cancelled",
    "run.retry": "retried",
    "model.comment": "commented on",
    "model.register": "registered",
    "model.promote": "promoted",
    "model.promote.refused": "was refused promotion of",
    "model.rollback": "rolled back",
    "model.card": "edited the card of",
    "model.gates": "set the gates of",
    "model.monitor": "changed the monitoring of",
    "model.traffic": "changed the traffic of",
    "model.batch": "started a batch prediction with",
    "dataset.comment": "commented on",
    "dataset.version": "made",
    "dataset.tag": "tagged",
    "dataset.untag": "removed a tag from",
    "dataset.key": "set the key of",
    "dataset.rules": "set the rules of",
    "pipeline.create": "created",
    "pipeline.update": "changed",
    "module.create": "created",
    "module.commit": "pushed to",
    "sweep.create": "started",
    "project.create": "created",
    "project.update": "changed",
    "project.quota": "set the weekly GPU-hour quota of",
    "member.set": "set the role of",
}


def subject(project: str, kind: str, target: str) -> tuple[str, str | None]:
    """('run 12', '/projects/p/runs/12'): an item as words and the page that shows it."""
    base = f"/projects/{project}"
    name, _, version = str(target).partition("@")
    name, _, model_version = name.partition(" v")  # "model churn v3"
    if kind == "run" and name.isdigit():
        return f"run {name}", f"{base}/runs/{name}"
    if kind == "model":
        words = f"model {name}" + (f" version {model_version}" if model_version else "")
        return words, f"{base}/models/{name}"
    if kind == "dataset":
        words = f"dataset {name}" + (f" (version {version})" if version else "")
        return words, f"{base}/datasets/{name}" + (f"?version={version}" if version else "")
    if kind == "pipeline":
        return f"pipeline {name}", f"{base}/pipelines/{name}"
    if kind == "module":
        return f"module {name}", f"{base}/modules/{name}"
    return f"{kind} {target}".strip(), None


def activity(entry: dict[str, Any]) -> dict[str, Any]:
    """An audit entry as a sentence: who, what they did, and the item, linked."""
    action = str(entry["action"])
    target_kind, _, target = str(entry["target"]).partition(" ")
    words, link = (
        subject(entry["project"], target_kind, target)
        if entry.get("project") and target and target_kind != "user"
        else (str(entry["target"]), None)
    )
    did = ACTIONS.get(action, action.rpartition(".")[2].replace("_", " "))
    return {**entry, "did": did, "what": words, "link": link}


def inbox_sentence(entry: dict[str, Any]) -> tuple[str, str | None]:
    """An inbox entry as 'alice commented on run 12' and the link to the item."""
    words, link = subject(entry["project"], entry["subject_kind"], entry["subject"])
    if "." in entry["kind"]:  # an event reef raised (pipeline.paused...): its text says it all
        return str(entry["text"]), link
    did = {
        "comment": "commented on",
        "mention": "mentioned you on",
        "feedback": "gave feedback on",
    }.get(entry["kind"], entry["kind"].replace("_", " ") + ":")
    return f"{entry['actor']} {did} {words}", link


def gate_sentence(check: dict[str, Any]) -> str:
    """A gate check as a sentence: "accuracy must be at least 0.95"."""
    kind = check.get("type")
    if kind == "metric":
        low, high, name = check.get("min"), check.get("max"), check.get("metric")
        if low is not None and high is not None:
            return f"{name} must be between {low:g} and {high:g}"
        if low is not None:
            return f"{name} must be at least {low:g}"
        return f"{name} must be at most {high:g}"
    if kind == "parity":
        limit = check.get("max_diff")
        within = f" (a difference of at most {limit:g})" if limit is not None else ""
        return f"the exported model must answer as the trained one does{within}"
    if kind == "latency":
        rows = int(check.get("batch", 1))
        what = "one row" if rows == 1 else f"{rows} rows"
        return f"answering {what} must take at most {check['max_ms']:g} ms"
    if kind == "better_than":
        delta = check.get("min_delta") or 0
        by = f" by at least {delta:g}" if delta else ""
        return (
            f"{check.get('metric', 'accuracy')} on dataset {check.get('dataset')} must beat "
            f"the {check.get('alias', 'production')} version{by}"
        )
    return str(check)


def is_detail(key: str) -> bool:
    """Metrics for the "details" disclosure: the machine's (system/...) and export checks."""
    return "system/" in key or "parity" in key  # step/system/... too


def main_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not is_detail(k)}


def detail_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if is_detail(k)}


# the first words of an Arrow type -> what a person who knows the data calls it
KINDS = (
    ("bool", "yes / no"),
    ("int", "whole number"),
    ("uint", "whole number"),
    ("float", "number"),
    ("double", "number"),
    ("decimal", "number"),
    ("date", "date"),
    ("timestamp", "date and time"),
    ("time", "time of day"),
    ("duration", "duration"),
    ("dictionary", "category"),
    ("large_string", "text"),
    ("string", "text"),
    ("large_binary", "file"),
    ("binary", "file"),
    ("list", "list"),
    ("large_list", "list"),
    ("struct", "group of fields"),
    ("null", "empty (no values yet)"),
)


def column_kind(arrow_type: str) -> str:
    """A column's storage type in plain words (the exact type goes in a tooltip)."""
    text = str(arrow_type)
    return next((word for prefix, word in KINDS if text.startswith(prefix)), text)
