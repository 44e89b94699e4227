"""The status vocabulary of runs and their steps.

A step goes pending -> queued -> running -> succeeded | failed | cancelled, or is skipped when
a step it reads from did not succeed; a run goes queued -> running -> succeeded | failed |
cancelled. A `StrEnum` equals its text, so templates and stored rows compare as before;
why a step or run failed lives in its own `error` field, never in the status.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"  # a step waiting for the steps it reads from
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # a step whose inputs will never come: an upstream step did not succeed
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({Status.SUCCEEDED, Status.FAILED, Status.SKIPPED, Status.CANCELLED})
ACTIVE = (Status.PENDING, Status.QUEUED, Status.RUNNING)  # what a run still waits for
UNSUCCESSFUL = (Status.FAILED, Status.SKIPPED, Status.CANCELLED)  # holds back downstream steps


def settled_status(statuses: set[Status]) -> Status:
    """A run's status once none of its steps is active: cancelled wins over failed."""
    bad = statuses - {Status.SUCCEEDED}
    if not bad:
        return Status.SUCCEEDED
    return Status.CANCELLED if Status.CANCELLED in bad else Status.FAILED
