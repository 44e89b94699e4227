"""The hub: every store and the queue, opened together and closed together.

`Hub.open(settings)` is what the server's lifespan puts on `app.state.hub`; nothing in reef
lives in a module-level global.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from reef.runtime.gpus import GpuPool, detect
from reef.runtime.orchestrator import Orchestrator
from reef.runtime.queue import StepQueue
from reef.runtime.registry import ModelService
from reef.runtime.remote import RemoteSteps
from reef.runtime.triggers import TriggerService
from reef.runtime.webhooks import WebhookService
from reef.settings import Settings
from reef.store.artifacts import Artifacts
from reef.store.audit import Audit
from reef.store.catalog import Catalog
from reef.store.datasets import DatasetStore
from reef.store.db import Database
from reef.store.migrations import MIGRATIONS
from reef.store.models import Models
from reef.store.modules import ModuleStore
from reef.store.people import People, Principal
from reef.store.projects import LIBRARY, Projects
from reef.store.runs import Runs

log = logging.getLogger("reef")
SYSTEM = "reef"
BUILTIN_AUTHOR = "reef <reef@localhost>"
BUILTIN_TAG = "reef-builtin"  # the last commit reef made of a built-in module


@dataclass
class Hub:
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
    models: Models
    secret: str
    initial_password: str | None = None
    queue: StepQueue = field(init=False)
    orchestrator: Orchestrator = field(init=False)
    model_service: ModelService = field(init=False)
    gpu_pool: GpuPool = field(init=False)
    remote: RemoteSteps = field(init=False)
    triggers: TriggerService = field(init=False)
    webhooks: WebhookService = field(init=False)

    @classmethod
    def open(cls, settings: Settings, start_queue: bool = True) -> Hub:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.path("reef.duckdb"))
        db.migrate(MIGRATIONS)
        hub = cls(
            settings=settings,
            db=db,
            people=People(db),
            projects=Projects(db),
            audit=Audit(db),
            catalog=Catalog(db),
            datasets=DatasetStore(settings.path("datasets")),
            modules=ModuleStore(settings.path("git")),
            artifacts=Artifacts(settings.path("blobs")),
            runs=Runs(db),
            models=Models(db),
            secret=cls.secret_for(settings),
        )
        hub.gpu_pool = GpuPool(detect(settings.gpus), settings.cpu_steps)
        hub.orchestrator = Orchestrator(hub)
        hub.model_service = ModelService(hub)
        hub.remote = RemoteSteps(hub, hub.orchestrator)
        hub.triggers = TriggerService(hub)
        hub.webhooks = WebhookService(hub)
        hub.queue = StepQueue(
            settings.path("queue.sqlite"),
            settings.workers,
            hub.orchestrator.execute,
            url=settings.queue,
        )
        hub.initial_password = hub._bootstrap_admin()
        hub._install_builtin_modules()
        hub.runs.ingest.reconcile()
        hub.runs.ingest.start()
        hub.orchestrator.recover()
        if start_queue:
            hub.queue.start()
            hub.remote.start()
            hub.triggers.start_thread()
            hub.webhooks.start_thread()
            hub.model_service.batches.resume()  # batch predictions queued before a restart
        return hub

    def close(self) -> None:
        self.triggers.stop()
        self.webhooks.stop()
        self.orchestrator.shutdown()
        self.remote.stop()
        self.queue.stop()
        self.model_service.close()  # flushes the prediction log
        self.runs.ingest.close()  # folds the last points into run_metrics
        self.db.close()

    @staticmethod
    def secret_for(settings: Settings) -> str:
        """A per-data-dir secret (CSRF signing), created once."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path = settings.path("secret")
        if not path.exists():
            path.write_text(secrets.token_hex(32))
            os.chmod(path, 0o600)
        return path.read_text().strip()

    def project_name(self, project_id: int) -> str:
        return self.db.scalar("SELECT name FROM projects WHERE id = ?", [project_id])

    def admin(self) -> Principal:
        row = self.people.user("admin")
        return Principal(row["id"], row["name"], True, via="system")

    def _bootstrap_admin(self) -> str | None:
        """Create `admin` on first start; returns the password when reef chose it."""
        if self.people.count_users():
            return None
        given = self.settings.admin_password
        password = given or secrets.token_urlsafe(12)
        self.people.create_user("admin", password, is_admin=True)
        self.audit.record(SYSTEM, "user.create", "user admin")
        return None if given else password

    def _install_builtin_modules(self) -> None:
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
