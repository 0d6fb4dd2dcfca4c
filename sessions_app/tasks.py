"""Thin Celery tasks for the beat schedule in config/celery.py.

Each takes only plain arguments, calls one service and is idempotent: running a tick twice, or
two at once, changes nothing the first did not. Time limits nest inside the beat interval:
time budget < soft time limit < hard time limit < interval, so a sweep stops starting work,
commits and returns before it could be interrupted, and never overlaps the next tick.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.utils import timezone

from sessions_app import selectors, services, sweeps

# Policy sweep: every 30 s (POLICY_SWEEP_INTERVAL in config/celery.py).
POLICY_SWEEP_BUDGET = 20.0
POLICY_SWEEP_SOFT_LIMIT = 25
POLICY_SWEEP_HARD_LIMIT = 28

# Archive and retention: every 10 min (HOUSEKEEPING_INTERVAL in config/celery.py).
HOUSEKEEPING_BUDGET = 480.0
HOUSEKEEPING_SOFT_LIMIT = 540
HOUSEKEEPING_HARD_LIMIT = 570


@shared_task(
    name="sessions_app.tasks.policy_sweep",
    ignore_result=True,
    soft_time_limit=POLICY_SWEEP_SOFT_LIMIT,
    time_limit=POLICY_SWEEP_HARD_LIMIT,
)
def policy_sweep(batch_size: int = 500) -> dict[str, Any]:
    return sweeps.policy_sweep(batch_size=batch_size, time_budget=POLICY_SWEEP_BUDGET).as_dict()


@shared_task(
    name="sessions_app.tasks.archive_sweep",
    ignore_result=True,
    soft_time_limit=HOUSEKEEPING_SOFT_LIMIT,
    time_limit=HOUSEKEEPING_HARD_LIMIT,
)
def archive_sweep(batch_size: int = 1000) -> dict[str, Any]:
    return sweeps.archive_sweep(batch_size=batch_size, time_budget=HOUSEKEEPING_BUDGET).as_dict()


@shared_task(
    name="sessions_app.tasks.retention_purge",
    ignore_result=True,
    soft_time_limit=HOUSEKEEPING_SOFT_LIMIT,
    time_limit=HOUSEKEEPING_HARD_LIMIT,
)
def retention_purge(batch_size: int = 200) -> dict[str, Any]:
    return sweeps.retention_purge(batch_size=batch_size, time_budget=HOUSEKEEPING_BUDGET).as_dict()


@shared_task(
    name="sessions_app.tasks.idempotency_purge",
    ignore_result=True,
    soft_time_limit=HOUSEKEEPING_SOFT_LIMIT,
    time_limit=HOUSEKEEPING_HARD_LIMIT,
)
def idempotency_purge() -> int:
    return services.idempotency_purge()


# Bulk runs: a pass stops starting sessions after its budget and queues the next pass, so a
# long run never meets the time limit and a worker shutdown loses at most one session's work
# (which its transaction rolls back, and the next pass redoes).
BULK_PASS_BUDGET = 20.0
BULK_SOFT_LIMIT = 50
BULK_HARD_LIMIT = 60


@shared_task(
    name="sessions_app.tasks.bulk_run",
    ignore_result=True,
    soft_time_limit=BULK_SOFT_LIMIT,
    time_limit=BULK_HARD_LIMIT,
)
def bulk_run(run_id: str) -> None:
    if services.bulk_execute(run_id=run_id, time_budget=BULK_PASS_BUDGET).more:
        bulk_run.delay(run_id)


@shared_task(
    name="sessions_app.tasks.bulk_resume_stalled",
    ignore_result=True,
    soft_time_limit=POLICY_SWEEP_SOFT_LIMIT,
    time_limit=POLICY_SWEEP_HARD_LIMIT,
)
def bulk_resume_stalled() -> int:
    """Re-queue bulk runs whose task went missing (see selectors.bulk_runs_stalled)."""
    stalled = selectors.bulk_runs_stalled(now=timezone.now())
    for run_id in stalled:
        bulk_run.delay(run_id)
    return len(stalled)
