"""Bulk actions, write side: start a run over a snapshot of its targets, work through it one
session at a time through the same per-session services an operator's click uses, abort it.

Each session is done in its own transaction that also writes its done mark, so a run is
idempotent per session: a worker killed mid-run leaves every session either done and marked
or untouched, and the task run again (Celery redelivers it: acks late) skips what is marked."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from sessions_app import selectors
from sessions_app.errors import ConcurrencyLimit, DomainError
from sessions_app.models import AgentSession, BulkAction, BulkItem, BulkRun, BulkStatus
from sessions_app.selectors import SessionFilter
from sessions_app.services.actions import (
    session_cancel,
    session_end,
    session_pause,
    session_resume,
    session_stop,
)
from sessions_app.services.sessions import session_archive, session_delete, session_set_pinned

ABORT_CHECK_EVERY = 1  # sessions between two looks at the abort flag (one cheap query)
ACCESS_REFRESH_EVERY = 50  # sessions between two re-reads of the actor's rights


def _pin(*, session: AgentSession, user: Any) -> AgentSession:
    return session_set_pinned(session=session, user=user, pinned=True)


ACTION_SERVICES: dict[str, Callable[..., Any]] = {
    BulkAction.CANCEL: session_cancel,
    BulkAction.STOP: session_stop,
    BulkAction.PAUSE: session_pause,
    BulkAction.RESUME: session_resume,
    BulkAction.END: session_end,
    BulkAction.PIN: _pin,
    BulkAction.ARCHIVE: session_archive,
    BulkAction.DELETE: session_delete,
}


def bulk_start(
    *,
    user: Any,
    action: str,
    flt: SessionFilter | None = None,
    ids: Sequence[str] = (),
    scope: dict[str, Any] | None = None,
    enqueue: Callable[[str], Any] | None = None,
) -> BulkRun:
    """Snapshot the targets (the filter's matches, or the selected ids, that the actor may
    see) and queue the run. `scope` records what the operator chose, for the record;
    `enqueue(run_id)` starts the task once the run is committed."""
    if action not in BulkAction.values:
        raise ValueError(f"unknown bulk action {action!r}")
    targets = selectors.bulk_targets(user, flt=flt, ids=ids)
    with transaction.atomic():
        session_ids = list(targets.order_by("id").values_list("id", flat=True))
        run = BulkRun.objects.create(
            actor=user, action=action, scope=scope or {}, total=len(session_ids)
        )
        BulkItem.objects.bulk_create(
            [BulkItem(run=run, session_id=sid) for sid in session_ids], batch_size=1000
        )
        if enqueue is not None:
            transaction.on_commit(lambda: enqueue(str(run.pk)))
    return run


def bulk_abort(*, user: Any, run: BulkRun) -> BulkRun:
    """Ask a run to stop before its next session; a run no worker has started stops now."""
    BulkRun.objects.filter(pk=run.pk).update(abort_requested=True)
    BulkRun.objects.filter(pk=run.pk, status=BulkStatus.QUEUED).update(
        status=BulkStatus.ABORTED, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run


def _do_one(run: BulkRun, item_pk: int, user: Any) -> None:
    with transaction.atomic():
        # Locked so two deliveries of the same run never do one session twice; the done mark
        # commits with the action itself.
        item = (
            BulkItem.objects.select_for_update(skip_locked=True)
            .filter(pk=item_pk, outcome="")
            .first()
        )
        if item is None:
            return
        session = (
            AgentSession.objects.select_related("agent", "owner").filter(pk=item.session_id).first()
        )
        reason: str | None = "gone"
        if session is not None:
            row = selectors.rule_rows(AgentSession.objects.filter(pk=session.pk)).get()
            reason = selectors.bulk_refusal(run.action, selectors.access_for(user), row)
        if reason is None:
            try:
                ACTION_SERVICES[run.action](session=session, user=user)
            except ConcurrencyLimit:
                reason = "limit"
            except DomainError:
                # Moved under us between the rule and the service (another operator, a sweep).
                reason = "error"
        item.outcome = "skipped" if reason else "changed"
        item.reason = reason or ""
        item.done_at = timezone.now()
        item.save(update_fields=["outcome", "reason", "done_at"])


@dataclass(frozen=True)
class BulkPass:
    run: BulkRun
    more: bool  # stopped by its budget with sessions left: run it again


def bulk_execute(
    *, run_id: Any, max_items: int | None = None, time_budget: float | None = None
) -> BulkPass:
    """Work through a run's remaining sessions in id order. Safe to call again at any point
    (and twice at once): only sessions without a done mark are done. Stops early when the run
    is aborted, after `max_items` sessions or once `time_budget` seconds have passed (the
    caller re-queues it)."""
    run = BulkRun.objects.select_related("actor").get(pk=run_id)
    if run.finished:
        return BulkPass(run, more=False)
    BulkRun.objects.filter(pk=run.pk, status=BulkStatus.QUEUED).update(
        status=BulkStatus.RUNNING, started_at=timezone.now()
    )
    user = run.actor
    started = time.monotonic()
    pending = BulkItem.objects.filter(run=run, outcome="").order_by("id")
    for done, item_pk in enumerate(list(pending.values_list("pk", flat=True))):
        if done % ABORT_CHECK_EVERY == 0 and _abort_requested(run):
            return BulkPass(_finish(run, BulkStatus.ABORTED), more=False)
        if done % ACCESS_REFRESH_EVERY == 0:
            selectors.access_for(user, fresh=True)  # rights may change during a long run
        if (max_items is not None and done >= max_items) or (
            time_budget is not None and time.monotonic() - started > time_budget
        ):
            run.refresh_from_db()
            return BulkPass(run, more=True)
        _do_one(run, item_pk, user)
    if _abort_requested(run):
        return BulkPass(_finish(run, BulkStatus.ABORTED), more=False)
    if BulkItem.objects.filter(run=run, outcome="").exists():
        run.refresh_from_db()  # another delivery holds the rest; it finishes the run
        return BulkPass(run, more=False)
    return BulkPass(_finish(run, BulkStatus.DONE), more=False)


def _abort_requested(run: BulkRun) -> bool:
    return BulkRun.objects.filter(pk=run.pk, abort_requested=True).exists()


def _finish(run: BulkRun, status: str) -> BulkRun:
    BulkRun.objects.filter(pk=run.pk, status__in=[BulkStatus.QUEUED, BulkStatus.RUNNING]).update(
        status=status, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run
