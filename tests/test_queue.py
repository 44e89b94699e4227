"""The server's own step queue: an idle worker sleeps until a step is queued, and stopping
the queue does not wait for a sleeping worker's poll."""

from __future__ import annotations

import threading
import time

from reef.runtime import queue as queue_module
from reef.runtime.queue import StepQueue


def test_a_step_queued_to_an_idle_queue_wakes_a_sleeping_worker(tmp_path, monkeypatch) -> None:
    # With a minute between polls, only the wake-up can start the step within the wait below.
    monkeypatch.setattr(queue_module, "IDLE_POLL_S", 60.0)
    ran: list[int] = []
    done = threading.Event()

    def execute(step_id: int) -> None:
        ran.append(step_id)
        done.set()

    steps = StepQueue(tmp_path / "queue.db", workers=2, execute=execute)
    steps.start()
    try:
        time.sleep(0.5)  # both workers find the queue empty and go to sleep
        steps.enqueue(7)
        assert done.wait(30), "the queued step did not start before the idle poll"
        assert ran == [7]
    finally:
        started = time.monotonic()
        steps.stop()
    assert time.monotonic() - started < 30, "stopping waited for the sleeping workers' poll"


def test_steps_queued_together_all_run(tmp_path) -> None:
    ran: list[int] = []
    lock = threading.Lock()
    all_ran = threading.Event()

    def execute(step_id: int) -> None:
        with lock:
            ran.append(step_id)
            if len(ran) == 20:
                all_ran.set()

    steps = StepQueue(tmp_path / "queue.db", workers=3, execute=execute)
    steps.start()
    try:
        for step_id in range(20):
            steps.enqueue(step_id)
        assert all_ran.wait(60)
    finally:
        steps.stop()
    assert sorted(ran) == list(range(20))
