"""What keeps MLflow's log-batch from stalling (issue 15): a batch of points never waits for
the background fold of earlier points into run_metrics, and folds running beside the writers
still leave the summary exactly what the points say. No timings: the tests check the
mechanism (who holds which lock while the fold writes)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from test_runs_table import scan_and_summary, shared_expected, shared_flags

from reef.store import metric_ingest
from reef.store.db import Database
from reef.store.migrations import MIGRATIONS
from reef.store.runs import Runs


@pytest.fixture
def runs(tmp_path) -> Iterator[Runs]:
    db = Database(tmp_path / "reef.duckdb")
    db.migrate(MIGRATIONS)
    yield Runs(db)
    db.close()


def test_a_batch_is_stored_while_the_fold_is_writing(runs: Runs, monkeypatch) -> None:
    """The fold used to hold the writer lock while it wrote run_metrics, so every batch (and
    every other write) that came meanwhile waited for it. Here a batch is sent from inside a
    fold that is still writing: it must be committed before the fold goes on."""
    runs.log_metrics(1, "", [{"key": "loss", "value": 0.5, "step": 0}])
    real_fold = metric_ingest.fold
    stored_during_fold: list[bool] = []

    def fold_sending_a_batch(cur, table):
        real_fold(cur, table)  # written, not yet committed
        batch = threading.Thread(
            target=runs.log_metrics, args=(1, "", [{"key": "loss", "value": 0.25, "step": 1}])
        )
        batch.start()
        batch.join(timeout=60)  # only so that a regression fails instead of hanging
        stored_during_fold.append(not batch.is_alive())

    monkeypatch.setattr(metric_ingest, "fold", fold_sending_a_batch)
    runs.ingest.settle()  # what the background fold does once a second
    assert stored_during_fold == [True]
    monkeypatch.setattr(metric_ingest, "fold", real_fold)
    runs.settle_metrics()  # the batch stored during the fold is folded by the next one
    assert runs.latest_metrics(1) == {"loss": 0.25}
    scan, summary = scan_and_summary(runs.db)
    assert summary == scan


def test_the_fold_does_not_take_the_writer_lock(runs: Runs, monkeypatch) -> None:
    """Another thread can take the writer lock at any point of a fold."""
    runs.log_metrics(1, "", [{"key": "acc", "value": 0.5, "step": 0}])
    real_fold = metric_ingest.fold
    free: list[bool] = []

    def probing_fold(cur, table):
        real_fold(cur, table)
        got = []

        def take_and_release():
            ok = runs.db._lock.acquire(timeout=60)
            got.append(ok)
            if ok:
                runs.db._lock.release()

        probe = threading.Thread(target=take_and_release)
        probe.start()
        probe.join()
        free.append(got == [True])

    monkeypatch.setattr(metric_ingest, "fold", probing_fold)
    runs.ingest.settle()
    assert free == [True]


def test_folds_beside_concurrent_batches_keep_the_summary_exact(runs: Runs) -> None:
    """Batches from several threads while folds run beside them, from the background loop
    and from readers: the summary ends up what a scan of the points gives."""

    def send(run_id: int, step: str) -> None:
        for i in range(30):
            points = [{"key": k, "value": float(i * 7 % 11), "step": i} for k in ("a", "b")]
            runs.log_metrics(run_id, step, points)

    def read() -> None:
        for _ in range(30):
            runs.settle_metrics()

    runs.ingest.start()
    try:
        threads = [threading.Thread(target=send, args=(r, s)) for r in (1, 2) for s in ("x", "y")]
        threads += [threading.Thread(target=read) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        runs.ingest.close()  # stops the loop and folds the rest
    scan, summary = scan_and_summary(runs.db)
    assert summary == scan and len(scan) == 8
    assert shared_flags(runs.db) == shared_expected(runs.db)


def test_a_cached_steps_copied_points_are_summarised_by_the_fold(runs: Runs) -> None:
    """The fold runs beside the writer lock, so it must be run_metrics' one writer: two
    writers summarising one run's points each in their own transaction would not see each
    other's rows and could both leave a key shared by two steps marked unshared. A cached
    step's copied points are handed to the fold instead of summarised by the copy."""
    from types import SimpleNamespace as Step

    runs.log_metrics(1, "train", [{"key": "loss", "value": 0.5, "step": 0}])
    runs.log_metrics(2, "eval", [{"key": "loss", "value": 0.75, "step": 0}])
    runs.settle_metrics()
    runs.copy_reports(Step(run_id=1, name="train"), Step(run_id=2, name="train"))
    assert runs.db.query("SELECT * FROM run_metrics WHERE step_name = 'train' AND run_id = 2") == []
    runs.settle_metrics()
    scan, summary = scan_and_summary(runs.db)
    assert summary == scan and len(scan) == 3
    assert shared_flags(runs.db) == shared_expected(runs.db)
    assert runs.step_metrics(2) == {("eval", "loss"): 0.75, ("train", "loss"): 0.5}
