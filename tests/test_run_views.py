"""Cross-project views filter by permission inside the query, so a LIMIT counts only what the
reader may see (the module page's "used in" list was cut to 50 before filtering and showed an
empty list while readable runs existed)."""

from __future__ import annotations

from pathlib import Path

from reef.store.db import Database
from reef.store.migrations import MIGRATIONS
from reef.store.people import People, Principal
from reef.store.projects import Projects
from reef.store.run_views import RunViews
from reef.store.runs import Runs, StepPlan

STEP = StepPlan(name="split", module="library/split", commit_sha="c" * 40, timeout_s=60.0)


def test_used_in_counts_only_readable_runs_before_its_limit(tmp_path: Path) -> None:
    db = Database(tmp_path / "reef.duckdb")
    db.migrate(MIGRATIONS)
    people, projects, runs = People(db), Projects(db), Runs(db)
    owner_id = people.create_user("olga", "olga-password")
    reader_id = people.create_user("rui", "rui-password")
    olga = Principal(owner_id, "olga", False, via="api")
    rui = Principal(reader_id, "rui", False, via="api")
    mine, private = projects.create("mine", olga), projects.create("private", olga)
    projects.set_member("mine", people.user("rui"), "reporter", "owner")
    readable = runs.create_run(mine.id, "p", {}, [STEP], "olga")
    for _ in range(60):  # newer runs of the same module that rui may not see
        runs.create_run(private.id, "p", {}, [STEP], "olga")
    views = RunViews(db)
    seen = views.module_runs("library/split", rui, limit=50)
    assert [r["id"] for r in seen] == [readable]
    assert len(views.module_runs("library/split", olga, limit=50)) == 50
    assert {r["project"] for r in views.queue(rui)} <= {"mine"}
