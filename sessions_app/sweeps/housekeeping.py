"""Housekeeping sweeps: archive sessions that ended long ago, purge those past retention."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import (
    F,
)
from django.utils import timezone

from sessions_app import hooks, lifecycle, services
from sessions_app.models import (
    AgentSession,
    RuntimeCommand,
    SessionEvent,
)
from sessions_app.policies import (
    DAY,
)
from sessions_app.sweeps.common import (
    ArchiveReport,
    PurgeReport,
    _agent_policy,
    _broken_agents,
    _Budget,
    _deadline,
    _min_policy,
    _without,
    measured,
)


@measured("archive")
def archive_sweep(
    *, now: datetime | None = None, batch_size: int = 1000, time_budget: float | None = None
) -> ArchiveReport:
    """Set archived_at on sessions that ended `auto_archive_days` (their agent's current policy)
    ago. Archived sessions leave the default list and the Command Center; the Archived filter
    and the API still reach them. Idempotent: archived rows are never selected again."""
    now = now or timezone.now()
    report = ArchiveReport()
    budget = _Budget(time_budget)
    broken = _broken_agents("auto_archive_days")
    report.broken_agents = len(broken)
    shortest = _min_policy("auto_archive_days")
    if shortest is None:
        return report
    qs = _without(
        AgentSession.objects.filter(
            archived_at__isnull=True,
            ended_at__isnull=False,
            ended_at__lte=now - timedelta(days=shortest),
        )
        .alias(deadline=_deadline(F("ended_at"), _agent_policy("auto_archive_days") * DAY))
        .filter(deadline__lte=now),
        broken,
    )
    while not budget.spent():
        # Ended sessions never change status again, so a plain batched UPDATE is safe; the
        # `archived_at IS NULL` in it makes a concurrent sweep archive each row once.
        with transaction.atomic():
            pks = list(qs.order_by("ended_at", "pk").values_list("pk", flat=True)[:batch_size])
            if not pks:
                return report
            archived = list(
                AgentSession.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk__in=pks, archived_at__isnull=True)
                .values_list("pk", flat=True)
            )
            AgentSession.objects.filter(pk__in=archived).update(**lifecycle.bump(archived_at=now))
            for pk in archived:
                hooks.session_changed(pk)
        report.archived += len(archived)
        if len(pks) < batch_size:
            return report
        if not archived:
            # Every row of a full batch was locked by a concurrent sweep: let it finish them.
            return report
    report.truncated = True
    return report


# Caps the rows one purge transaction deletes, so its locks are short whatever the transcripts'
# sizes; a session is never split across transactions (its transcript goes with it or not at all).
PURGE_EVENTS_PER_BATCH = 50_000


@measured("retention")
def retention_purge(
    *, now: datetime | None = None, batch_size: int = 200, time_budget: float | None = None
) -> PurgeReport:
    """Delete unpinned sessions whose `expires_at` has passed, with their events and commands,
    in short batches (at most `batch_size` sessions and about PURGE_EVENTS_PER_BATCH events each).
    Any interaction moves `expires_at` (lifecycle.transition and services maintain it), so only
    sessions nobody touched for their agent's retention period are deleted."""
    now = now or timezone.now()
    report = PurgeReport()
    budget = _Budget(time_budget)
    due = AgentSession.objects.filter(pinned=False, expires_at__lte=now)
    while not budget.spent():
        with transaction.atomic():
            # Locking re-checks the condition at delete time: a session pinned or touched since
            # is no longer selected, and SKIP LOCKED leaves rows someone is writing to.
            rows = list(
                due.select_for_update(skip_locked=True, of=("self",))
                .order_by("expires_at", "pk")
                .values_list("pk", "last_seq")[:batch_size]
            )
            if not rows:
                return report
            pks: list[Any] = []
            events_in_batch = 0
            for pk, last_seq in rows:
                if pks and events_in_batch + last_seq > PURGE_EVENTS_PER_BATCH:
                    break
                pks.append(pk)
                events_in_batch += last_seq
            # The live views route the removal by these; the rows cannot be read after commit.
            facts = services.deleted_facts(AgentSession.objects.filter(pk__in=pks))
            # Set-based deletes of the transcript and the outbox first, so the session delete
            # below never collects child rows into memory.
            events, _ = SessionEvent.objects.filter(session_id__in=pks).delete()
            commands, _ = RuntimeCommand.objects.filter(session_id__in=pks).delete()
            _, per_model = AgentSession.objects.filter(pk__in=pks).delete()
            hooks.sessions_deleted(facts)
        report.sessions += per_model.get(AgentSession._meta.label, 0)
        report.events += events
        report.commands += commands
        report.batches += 1
        if len(rows) < batch_size and len(pks) == len(rows):
            return report
    report.truncated = True
    return report
