"""The hub: every store and the queue, opened together and closed together.

`Hub.open(settings)` is what the server's lifespan puts on `app.state.hub`; nothing in reef
lives in a module-level global.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from reef.errors import NotFound
from reef.runtime.events import Events
from reef.runtime.gpus import GpuPool, detect
from reef.runtime.orchestrator import Orchestrator
from reef.runtime.query_pool import QueryPool
from reef.runtime.queue import StepQueue
from reef.runtime.registry import ModelService
from reef.runtime.remote import RemoteSteps, WorkerCancels
from reef.runtime.script_runs import ScriptRunWatch
from reef.runtime.triggers import TriggerService
from reef.runtime.webhooks import WebhookService
from reef.settings import Settings
from reef.store.annotations import Annotations
from reef.store.artifacts import Artifacts
from reef.store.audit import Audit
from reef.store.catalog import Catalog
from reef.store.dataset_gc import collect
from reef.store.datasets import DatasetStore
from reef.store.db import Database
from reef.store.import_limits import ImportLimits
from reef.store.inbox import Inbox
from reef.store.logged_models import LoggedModels
from reef.store.migrations import MIGRATIONS
from reef.store.mlflow_registry import MlflowRegistry
from reef.store.mlflow_tracking import MlflowTracking
from reef.store.models import Models
from reef.store.modules import ModuleStore
from reef.store.people import People, Principal
from reef.store.projects import LIBRARY, Projects
from reef.store.run_views import RunViews
from reef.store.runs import Runs
from reef.store.site_settings import SiteSettings
from reef.store.workers import WorkerLeases

log = logging.getLogger("reef")
SYSTEM = "reef"
BUILTIN_AUTHOR = "reef <reef@localhost>"
BUILTIN_TAG = "reef-builtin"  # the last commit reef made of a built-in module


@dataclass(frozen=True)
class Stores:
    """Every store, opened together: what the runtime services are built from. Stores hold
    no service, so a service that takes them cannot reach another service through them."""

    settings: Settings
    db: Database
    people: People
    projects: Projects
    audit: Audit
    catalog: Catalog
    datasets: DatasetStore
    modules: ModuleStore
    artifacts: Artifacts
    runs: Runs
    run_views: RunViews
    models: Models
    site: SiteSettings
    mlflow: MlflowTracking
    logged_models: LoggedModels
    mlflow_registry: MlflowRegistry
    inbox: Inbox
    annotations: Annotations  # labels people give rows, before they become a version
    events: Events  # run settled, dataset version made: services subscribe when built
    secret: str

    @classmethod
    def open(cls, settings: Settings) -> Stores:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(settings.path("uploads"), ignore_errors=True)  # left by a crash
        db = Database(settings.path("reef.duckdb"))
        db.migrate(MIGRATIONS)
        return cls(
            settings=settings,
            db=db,
            people=People(db),
            projects=Projects(db),
            audit=Audit(db),
            catalog=Catalog(db),
            datasets=DatasetStore(
                settings.path("datasets"), import_limits(settings), settings.import_workers
            ),
            modules=ModuleStore(settings.path("git")),
            artifacts=Artifacts(settings.path("blobs")),
            runs=Runs(db),
            run_views=RunViews(db),
            models=Models(db),
            site=SiteSettings(db),
            mlflow=MlflowTracking(db),
            logged_models=LoggedModels(db),
            mlflow_registry=MlflowRegistry(db),
            inbox=Inbox(db),
            annotations=Annotations(db),
            events=Events(),
            secret=cls.secret_for(settings),
        )

    @staticmethod
    def secret_for(settings: Settings) -> str:
        """A per-data-dir secret (CSRF signing), created once."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path = settings.path("secret")
        if not path.exists():
            path.write_text(secrets.token_hex(32))
            os.chmod(path, 0o600)
        return path.read_text().strip()

    def fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclass_fields(Stores)}

    def project_name(self, project_id: int) -> str:
        name = self.projects.name_of(project_id)
        if name is None:
            raise NotFound(f"no project with id {project_id}")
        return name

    def admin(self) -> Principal:
        row = self.people.user("admin")
        return Principal(row["id"], row["name"], True, via="system")

    def repair(self) -> None:
        """Remove what killed work left (nothing runs yet): half-created module repositories
        and Lance files no dataset version refers to."""
        for path in self.modules.repair():
            log.warning("removed %s, left by a killed push", path)
        garbage = collect(self.settings.data_dir)
        if garbage.paths:
            log.warning(
                "removed %d unreferenced path(s), %.1f MiB, left by killed imports",
                len(garbage.paths),
                garbage.bytes / 2**20,
            )

    def bootstrap_admin(self) -> str | None:
        """Create `admin` on first start; returns the password when reef chose it."""
        if self.people.count_users():
            return None
        given = self.settings.admin_password
        password = given or secrets.token_urlsafe(12)
        self.people.create_user("admin", password, is_admin=True)
        self.audit.record(SYSTEM, "user.create", "user admin")
        return None if given else password

    def install_builtin_modules(self) -> None:
        """Commit every folder of the built-in modules dir into project `library`, unless
        someone pushed to that module since reef's last built-in commit (theirs is kept)."""
        if not self.projects.exists(LIBRARY):
            self.projects.create(LIBRARY, self.admin(), "Built-in AI modules, readable by all.")
        root = self.settings.modules_dir
        if not root.is_dir():
            log.warning("built-in modules dir %s not found", root)
            return
        for src in sorted(p for p in root.iterdir() if (p / "reef.toml").is_file()):
            self._install_builtin(src)

    def _install_builtin(self, src: Path) -> None:
        name, head = src.name, None
        if self.modules.exists(LIBRARY, name):
            head = self.modules.head(LIBRARY, name)
            ours = {t["name"]: t["sha"] for t in self.modules.tags(LIBRARY, name)}.get(BUILTIN_TAG)
            if ours is not None and ours != head:
                log.info("library/%s has pushed commits after reef's own; keeping them", name)
                return
        sha = self.modules.commit_dir(LIBRARY, name, src, "built-in module", BUILTIN_AUTHOR)
        self.modules.set_tag(LIBRARY, name, BUILTIN_TAG, sha)
        if sha != head:
            self.audit.record(SYSTEM, "module.commit", f"module {name}", LIBRARY, sha=sha)


@dataclass(frozen=True)
class Hub(Stores):
    """The stores and the runtime services, built in one pass in dependency order (see
    `open`); each service takes only the stores and services it uses."""

    gpu_pool: GpuPool
    queries: QueryPool  # user SQL and downloads run here
    webhooks: WebhookService
    model_service: ModelService
    orchestrator: Orchestrator
    queue: StepQueue  # the orchestrator's
    remote: RemoteSteps
    script_runs: ScriptRunWatch
    triggers: TriggerService
    initial_password: str | None = None

    @classmethod
    def open(cls, settings: Settings, start_queue: bool = True) -> Hub:
        stores = Stores.open(settings)
        stores.repair()
        initial_password = stores.bootstrap_admin()
        stores.install_builtin_modules()
        gpu_pool = GpuPool(detect(settings.gpus), settings.cpu_steps)
        webhooks = WebhookService(stores)
        model_service = ModelService(stores, webhooks)
        cancels = WorkerCancels(WorkerLeases(stores.db))
        orchestrator = Orchestrator(stores, gpu_pool, model_service, webhooks, cancels.ask)
        hub = cls(
            **stores.fields(),
            gpu_pool=gpu_pool,
            queries=QueryPool(settings.query_workers, settings.query_per_person),
            webhooks=webhooks,
            model_service=model_service,
            orchestrator=orchestrator,
            queue=orchestrator.queue,
            remote=RemoteSteps(stores, orchestrator, cancels),
            script_runs=ScriptRunWatch(stores),
            triggers=TriggerService(stores, orchestrator, webhooks),
            initial_password=initial_password,
        )
        hub.runs.ingest.reconcile()
        hub.runs.ingest.start()
        orchestrator.recover()
        if start_queue:
            hub.start()
        return hub

    def start(self) -> None:
        self.queue.start()
        self.remote.start()
        self.script_runs.start()
        self.triggers.start_thread()
        self.webhooks.start_thread()
        self.model_service.batches.resume()  # batch predictions queued before a restart

    def close(self) -> None:
        self.queries.close()
        self.datasets.imports.close()
        self.triggers.stop()
        self.webhooks.stop()
        self.orchestrator.shutdown()
        self.remote.stop()
        self.script_runs.stop()
        self.queue.stop()
        self.model_service.close()  # flushes the prediction log
        self.runs.ingest.close()  # folds the last points into run_metrics
        self.db.close()


def import_limits(settings: Settings) -> ImportLimits:
    return ImportLimits(
        unpacked_mb=settings.max_unpacked_mb,
        cell_mb=settings.max_cell_mb,
        columns=settings.max_columns,
        seconds=settings.import_timeout,
    )
