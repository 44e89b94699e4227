"""`reef import-mlflow`: copy an MLflow tracking store (its SQLite file and artifact folder)
into reef, through reef's own MLflow endpoints, so nothing is written behind the server.

Experiments, runs, params, metrics (with steps and times), tags, nested-run links and
artifacts are copied. Each copied run carries the tag `reef.import.source` (the MLflow run
id), so a second import skips what the first one copied.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import httpx

SOURCE_TAG = "reef.import.source"
BATCH_METRICS, BATCH_PARAMS, BATCH_TAGS = 1000, 100, 100
API = "/api/2.0/mlflow"


class MlflowImportFailed(Exception):
    """A store that cannot be read, or a server that refuses the copy."""


@dataclass
class Counts:
    experiments: int = 0
    runs: int = 0
    skipped: int = 0
    params: int = 0
    metrics: int = 0
    tags: int = 0
    artifacts: int = 0
    ids: dict[str, str] = field(default_factory=dict)  # MLflow run id -> reef run id


def open_store(source: str) -> sqlite3.Connection:
    """A read-only connection to `sqlite:///path/to/mlflow.db` (or a plain path)."""
    path = source.removeprefix("sqlite:///") if source.startswith("sqlite:") else source
    if not Path(path).is_file():
        raise MlflowImportFailed(f"no MLflow SQLite store at {path!r}")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not {"experiments", "runs", "params", "metrics", "tags"} <= tables:
        raise MlflowImportFailed(f"{path!r} is not an MLflow tracking store (no runs table)")
    return con


class Importer:
    def __init__(
        self,
        store: sqlite3.Connection,
        client: httpx.Client,
        artifacts: Path | None,
        project: str | None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.store, self.client, self.artifacts = store, client, artifacts
        self.project, self.say = project, say
        self.counts = Counts()

    def run(self) -> Counts:
        for exp in self.store.execute("SELECT * FROM experiments ORDER BY experiment_id"):
            target = self._experiment(exp)
            runs = list(
                self.store.execute(
                    "SELECT * FROM runs WHERE experiment_id = ? ORDER BY start_time",
                    [exp["experiment_id"]],
                )
            )
            for i, run in enumerate(runs, 1):
                self._copy_run(target, run, f"{exp['name']}: run {i}/{len(runs)}")
        self._relink_parents()
        return self.counts

    def _call(self, path: str, body: dict[str, Any] | None = None, get: bool = False) -> dict:
        resp = (
            self.client.get(API + path, params=body)
            if get
            else self.client.post(API + path, json=body or {})
        )
        if resp.status_code != 200:
            raise MlflowImportFailed(f"{path}: {resp.status_code} {resp.text[:300]}")
        return resp.json()

    def _experiment(self, exp: sqlite3.Row) -> str:
        name = self.project or exp["name"]
        found = self.client.get(API + "/experiments/get-by-name", params={"experiment_name": name})
        if found.status_code == 200:
            return found.json()["experiment"]["experiment_id"]
        eid = self._call("/experiments/create", {"name": name})["experiment_id"]
        self.counts.experiments += 1
        return eid

    def _already(self, experiment_id: str, source_id: str) -> str | None:
        found = self._call(
            "/runs/search",
            {
                "experiment_ids": [experiment_id],
                "filter": f"tags.`{SOURCE_TAG}` = '{source_id}'",
                "max_results": 1,
                "run_view_type": "ALL",
            },
        )
        runs = found.get("runs") or []
        return runs[0]["info"]["run_id"] if runs else None

    def _copy_run(self, experiment_id: str, run: sqlite3.Row, label: str) -> None:
        source = run["run_uuid"]
        if existing := self._already(experiment_id, source):
            self.counts.ids[source] = existing
            self.counts.skipped += 1
            self.say(f"{label} ({run['name']}): already imported as run {existing}")
            return
        tags = {r["key"]: r["value"] for r in self._rows("tags", source)}
        tags[SOURCE_TAG] = source
        created = self._call(
            "/runs/create",
            {
                "experiment_id": experiment_id,
                "run_name": run["name"] or "",
                "start_time": run["start_time"],
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            },
        )
        rid = created["run"]["info"]["run_id"]
        self.counts.ids[source] = rid
        params = [{"key": r["key"], "value": r["value"]} for r in self._rows("params", source)]
        for chunk in _chunks(params, BATCH_PARAMS):
            self._call("/runs/log-batch", {"run_id": rid, "params": chunk})
        points = 0
        for chunk in _chunks(self._metric_rows(source), BATCH_METRICS):
            self._call("/runs/log-batch", {"run_id": rid, "metrics": chunk})
            points += len(chunk)
        files = self._copy_artifacts(run, experiment_id, rid)
        self._call(
            "/runs/update",
            {"run_id": rid, "status": run["status"], "end_time": run["end_time"]},
        )
        self.counts.runs += 1
        self.counts.params += len(params)
        self.counts.metrics += points
        self.counts.tags += len(tags) - 1
        self.counts.artifacts += files
        self.say(
            f"{label} ({run['name']}): {len(params)} params, {points} metric points, "
            f"{len(tags) - 1} tags, {files} artifacts -> run {rid}"
        )

    def _rows(self, table: str, run_id: str) -> list[sqlite3.Row]:
        return list(self.store.execute(f"SELECT * FROM {table} WHERE run_uuid = ?", [run_id]))

    def _metric_rows(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.store.execute(
            "SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = ? "
            "ORDER BY timestamp, step",
            [run_id],
        )
        return [
            {
                "key": r["key"],
                "value": "NaN" if r["is_nan"] else r["value"],
                "timestamp": r["timestamp"],
                "step": r["step"],
            }
            for r in rows
        ]

    def _copy_artifacts(self, run: sqlite3.Row, experiment_id: str, rid: str) -> int:
        folder = self._artifact_folder(run)
        if folder is None:
            return 0
        count = 0
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            rel = path.relative_to(folder).as_posix()
            url = (
                f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{rid}/artifacts/{quote(rel)}"
            )
            with path.open("rb") as f:
                resp = self.client.put(url, content=_stream(f))
            if resp.status_code != 200:
                raise MlflowImportFailed(f"artifact {rel}: {resp.status_code} {resp.text[:300]}")
            count += 1
        return count

    def _artifact_folder(self, run: sqlite3.Row) -> Path | None:
        """The run's files: under --artifacts as <experiment>/<run>/artifacts, or at the
        local path the store recorded."""
        uri = run["artifact_uri"] or ""
        candidates = []
        if self.artifacts is not None:
            candidates.append(
                self.artifacts / str(run["experiment_id"]) / run["run_uuid"] / "artifacts"
            )
        parsed = urlparse(uri)
        if parsed.scheme in ("", "file"):
            candidates.append(Path(parsed.path))
        return next((c for c in candidates if c.is_dir()), None)

    def _relink_parents(self) -> None:
        """Nested runs point at their parent's new id."""
        for source, rid in self.counts.ids.items():
            rows = self.store.execute(
                "SELECT value FROM tags WHERE run_uuid = ? AND key = 'mlflow.parentRunId'", [source]
            ).fetchall()
            if rows and rows[0]["value"] in self.counts.ids:
                parent = self.counts.ids[rows[0]["value"]]
                self._call(
                    "/runs/set-tag", {"run_id": rid, "key": "mlflow.parentRunId", "value": parent}
                )


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _stream(f: Any) -> Iterator[bytes]:
    while chunk := f.read(1 << 20):
        yield chunk


def add_import_parser(sub: Any) -> None:
    text = "copy an MLflow tracking store (SQLite + artifacts) into reef"
    p = sub.add_parser("import-mlflow", help=text, description=text.capitalize() + ".")
    p.add_argument("--from", dest="source", required=True, help="sqlite:///path/to/mlflow.db")
    p.add_argument("--artifacts", type=Path, default=None, help="the store's artifact folder")
    p.add_argument("--project", default=None, help="put every run in this project")
    p.add_argument("--server", default=None, help="the server's URL (default: $REEF_URL)")
    p.add_argument("--token", default=None, help="an API token (default: $REEF_TOKEN)")


def import_main(args: Any) -> int:
    import os
    import sys

    url = (args.server or os.environ.get("REEF_URL") or "").rstrip("/")
    token = args.token or os.environ.get("REEF_TOKEN")
    if not url or not token:
        print("reef: give --server and --token, or set REEF_URL and REEF_TOKEN", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {token}"}
    try:
        store = open_store(args.source)
        with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
            counts = Importer(store, client, args.artifacts, args.project).run()
    except (MlflowImportFailed, httpx.HTTPError) as e:
        print(f"reef: {e}", file=sys.stderr)
        return 1
    print(
        f"imported {counts.runs} runs ({counts.skipped} already there), {counts.params} params, "
        f"{counts.metrics} metric points, {counts.tags} tags, {counts.artifacts} artifacts; "
        f"{counts.experiments} new experiments"
    )
    return 0
