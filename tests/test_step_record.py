"""One step record from spec to store, one status vocabulary, and a hub built in one pass
whose services hold only what they use."""

from __future__ import annotations

import dataclasses
from graphlib import CycleError, TopologicalSorter

import pytest

from reef.errors import InvalidInput
from reef.hub import Hub, Stores
from reef.pipeline import parse_pipeline
from reef.settings import Settings
from reef.store.db import Database, now
from reef.store.migrations import MIGRATIONS
from reef.store.runs import Runs, StepPlan
from reef.store.status import Status


def test_every_planned_field_is_stored_and_read_back(tmp_path):
    """Commit cb2a8f6 fixed an INSERT that had dropped columns Step still had: create_run
    now writes every StepPlan field, so none can be dropped without this failing."""
    db = Database(tmp_path / "reef.duckdb")
    db.migrate(MIGRATIONS)
    plan = StepPlan(
        name="train", module="library/mlp", commit_sha="a" * 40, params={"epochs": 3},
        inputs={"train": "split.train"}, outputs={"model": "model"}, timeout_s=12.5,
        cache_key="k" * 64, gpus=2, memory_mb=512, retries=3,
    )  # fmt: skip
    assert {f.name for f in dataclasses.fields(StepPlan)} == set(vars(plan)), "set every field"
    runs = Runs(db)
    run_id = runs.create_run(1, "p", {"steps": []}, [plan], "admin")
    (step,) = runs.steps(run_id)
    assert {k: getattr(step, k) for k in vars(plan)} == vars(plan)
    assert step.status is Status.PENDING and runs.run(run_id).status is Status.QUEUED
    db.close()


def test_cancelled_steps_get_who_cancelled_them_as_their_error(tmp_path):
    db = Database(tmp_path / "reef.duckdb")
    mine = [name for name, _ in MIGRATIONS].index("0150_step_error")
    db.migrate(MIGRATIONS[:mine])
    runs = Runs(db)
    plan = StepPlan(name="a", module="library/m", commit_sha="c", timeout_s=1.0)
    run_id = runs.create_run(1, "p", {"steps": []}, [plan, dataclasses.replace(plan, name="b")],
                             "admin")  # fmt: skip
    a, b = runs.steps(run_id)
    runs.update_step(a.id, status="cancelled", error="cancelled")
    runs.update_step(b.id, status="failed", error="exited with code 1: cancelled")
    db.execute(
        """INSERT INTO audit ("at", actor, action, target) VALUES (?, 'alice', 'run.cancel', ?)""",
        [now(), f"run {run_id}"],
    )
    assert db.migrate(MIGRATIONS)[:1] == ["0150_step_error"]
    a, b = runs.steps(run_id)
    assert (a.status, a.error) == (Status.CANCELLED, "cancelled by alice")
    assert (b.status, b.error) == (Status.FAILED, "exited with code 1: cancelled")  # untouched
    db.close()


@pytest.mark.parametrize(
    ("step", "fragments"),
    [
        ({"gpus": True}, ["step 'a': gpus must be a whole number of GPUs"]),
        ({"gpus": 65}, ["step 'a': gpus must be", "<= 64"]),
        ({"retries": 11}, ["step 'a': retries must be a whole number from 0 to 10"]),
        ({"memory_mb": 8}, ["memory_mb must be a whole number of MiB, at least 16"]),
        ({"timeout_s": 0}, ["timeout_s must be a positive number of seconds"]),
        ({"module": "Bad Module"}, ["step 'a': module 'Bad Module' must be [PROJECT/]MODULE"]),
        ({"name": "Bad"}, ["step 1: step name 'Bad' must be lower-case"]),
        ({"colour": "red"}, ["step 'a': unknown field(s) colour"]),
        ({"inputs": {"x": "nowhere"}}, ["input 'x': 'nowhere' is not an input reference"]),
        ({"publish": {"o": "A B"}}, ["'A B' (for output 'o') is not a valid dataset name"]),
    ],
)
def test_bad_step_fields_are_refused_by_name(step, fragments):
    with pytest.raises(InvalidInput) as refused:
        parse_pipeline({"steps": [{"name": "a", "module": "m", **step}]})
    for fragment in fragments:
        assert fragment in refused.value.message


def test_bad_pipeline_fields_are_refused_by_name():
    one = [{"name": "a", "module": "m"}]
    cases = [
        ({"steps": []}, "a pipeline needs a non-empty list 'steps'"),
        ({"steps": one, "seed": -1}, "'seed' must be an integer from 0 to 2**32 - 1"),
        ({"steps": one, "priority": 101}, "'priority' must be a whole number from -100 to 100"),
        ({"steps": one, "promote": "prod"}, "'promote' needs a step that registers a model"),
        ({"steps": one, "extra": 1}, "unknown pipeline field(s) extra"),
        ({"steps": [{"name": "a"}]}, "step 'a': 'module' is missing"),
        ({"steps": [*one, {"name": "b", "module": "m", "inputs": {"x": "c.out"}}]},
         "step 'b', input 'x': no step named 'c'"),
    ]  # fmt: skip
    for spec, message in cases:
        with pytest.raises(InvalidInput) as refused:
            parse_pipeline(spec)
        assert message in refused.value.message


def test_status_is_its_text():
    assert Status.SUCCEEDED == "succeeded" and f"{Status.FAILED}" == "failed"
    assert Status.SKIPPED.finished and not Status.QUEUED.finished


def test_services_are_built_in_one_pass_and_hold_no_cycle(tmp_path):
    """No service holds the hub, no two services hold each other (the orchestrator hears
    of workers and triggers through a callback and events), and nothing is set on the hub
    after it is built (it is frozen)."""
    settings = Settings(data_dir=tmp_path / "data", admin_password="admin-password-for-tests")
    hub = Hub.open(settings, start_queue=False)
    try:
        store_names = {f.name for f in dataclasses.fields(Stores)}
        services = {
            f.name: getattr(hub, f.name)
            for f in dataclasses.fields(Hub)
            if f.name not in store_names and f.name != "initial_password"
        }
        holds = {name: _held(svc, services) for name, svc in services.items()}
        for name, svc in services.items():
            assert all(v is not hub for v in vars(svc).values()), f"{name} holds the hub"
        try:
            TopologicalSorter(holds).prepare()
        except CycleError as e:
            pytest.fail(f"services hold each other: {e.args[1]}")
        assert holds["orchestrator"] == {"gpu_pool", "model_service", "webhooks", "queue"}
        assert holds["remote"] == {"orchestrator"}
        assert holds["triggers"] == {"orchestrator", "webhooks"}
        assert holds["model_service"] == {"webhooks"}
        with pytest.raises(dataclasses.FrozenInstanceError):
            hub.orchestrator = None  # type: ignore[misc]
    finally:
        hub.close()


def _held(service: object, services: dict[str, object]) -> set[str]:
    values = list(vars(service).values()) if hasattr(service, "__dict__") else []
    return {name for name, other in services.items() if any(v is other for v in values)}
