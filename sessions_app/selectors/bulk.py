"""Bulk actions, read side: which sessions a bulk action targets, what it would do to each
(the dry run), and how far a run has got."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery

from sessions_app import states
from sessions_app.models import AgentSession, BulkAction, BulkItem, BulkRun, BulkStatus
from sessions_app.selectors.access import Access, access_for, may_act, sessions_visible_to
from sessions_app.selectors.lists import SessionFilter, filtered_sessions

# Why a bulk action leaves a session alone, as a person reads it.
SKIP_REASONS: Mapping[str, str] = {
    "permission": "you may see but not act on them",
    "kind": "the action does not apply to their kind",
    "status": "their status does not allow it (or they are there already)",
    "gone": "deleted before the run reached them",
    "limit": "their owner is at the agent's concurrency limit",
    "error": "refused when the run reached them",
}
MAX_SELECTED = 1000


def bulk_refusal(action: str, access: Access, row: Mapping[str, Any]) -> str | None:
    """Why `action` would not change this session for this actor (a key of SKIP_REASONS),
    or None when it would. Permission first, as in the services; then what the session is.
    The dry run and the run both ask this, so they cannot disagree."""
    facts = {k: row[k] for k in ("owner_id", "agent_owner_id", "tenant_id", "project_id", "kind")}
    if not may_act(access, **facts):
        return "permission"
    if action in states.VERB_TARGETS:
        return states.verb_refusal(action, kind=row["kind"], status=row["status"])
    if action == BulkAction.PIN:
        return "status" if row["pinned"] else None
    if action == BulkAction.ARCHIVE:
        # Only what has finished is archived (as the archive sweep does).
        return "status" if row["archived_at"] is not None or row["live"] else None
    return None  # delete


def rule_rows(sessions: QuerySet[AgentSession]) -> QuerySet[AgentSession, Any]:
    """The columns `bulk_refusal` reads, for every target, in one query."""
    return sessions.values(
        "id",
        "kind",
        "status",
        "pinned",
        "archived_at",
        "live",
        "owner_id",
        "tenant_id",
        "project_id",
        agent_owner_id=F("agent__owner_id"),
    )


def bulk_targets(
    user: Any, *, flt: SessionFilter | None = None, ids: Sequence[str] = ()
) -> QuerySet[AgentSession]:
    """The sessions a bulk action would look at: those matching the list's filter, or the
    selected ones, and in both cases only those the actor may see. A selected id the actor
    may not see is dropped without a word (it answers 404 everywhere else too)."""
    if flt is not None:
        return filtered_sessions(user, flt)
    return sessions_visible_to(user).filter(pk__in=list(ids)[:MAX_SELECTED])


@dataclass(frozen=True)
class ActionPlan:
    action: str
    label: str
    change: int
    skip: dict[str, int] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return sum(self.skip.values())

    @property
    def skip_list(self) -> list[tuple[str, int, str]]:
        return [(r, n, SKIP_REASONS[r]) for r, n in sorted(self.skip.items())]


@dataclass(frozen=True)
class BulkPreview:
    total: int
    plans: list[ActionPlan]

    def plan(self, action: str) -> ActionPlan:
        return next(p for p in self.plans if p.action == action)


def bulk_preview(user: Any, targets: QuerySet[AgentSession]) -> BulkPreview:
    """The dry run: for every bulk action, how many of the targets it would change and how
    many it would skip, by reason. One query, whatever the number of actions."""
    access = access_for(user)
    counts: dict[str, Counter[str]] = {a: Counter() for a in BulkAction.values}
    total = 0
    for row in rule_rows(targets).iterator(chunk_size=2000):
        total += 1
        for action in BulkAction.values:
            counts[action][bulk_refusal(action, access, row) or "change"] += 1
    plans = [
        ActionPlan(
            action=action,
            label=label,
            change=counts[action].pop("change", 0),
            skip=dict(counts[action]),
        )
        for action, label in BulkAction.choices
    ]
    return BulkPreview(total, plans)


@dataclass(frozen=True)
class BulkProgress:
    run: BulkRun
    changed: int
    skip: dict[str, int]

    @property
    def skipped(self) -> int:
        return sum(self.skip.values())

    @property
    def done(self) -> int:
        return self.changed + self.skipped

    @property
    def percent(self) -> int:
        return 100 if not self.run.total else round(100 * self.done / self.run.total)

    @property
    def skip_list(self) -> list[tuple[str, int, str]]:
        return [(r, n, SKIP_REASONS.get(r, r)) for r, n in sorted(self.skip.items())]


def bulk_run_for(user: Any, run_id: Any) -> BulkRun | None:
    """A run, for the person who started it (and superusers)."""
    access = access_for(user)
    qs = BulkRun.objects.all() if access.superuser else BulkRun.objects.filter(actor_id=user.pk)
    return qs.filter(pk=run_id).first()


def bulk_progress(run: BulkRun) -> BulkProgress:
    rows = (
        BulkItem.objects.filter(run=run)
        .exclude(outcome="")
        .values("outcome", "reason")
        .annotate(n=Count("id"))
    )
    changed, skip = 0, Counter[str]()
    for row in rows:
        if row["outcome"] == "changed":
            changed += row["n"]
        else:
            skip[row["reason"]] += row["n"]
    return BulkProgress(run, changed, dict(skip))


def bulk_runs_in_progress(user: Any) -> list[BulkProgress]:
    """The viewer's runs still going, so a reload of the page shows their progress again."""
    runs = BulkRun.objects.filter(
        actor_id=user.pk, status__in=[BulkStatus.QUEUED, BulkStatus.RUNNING]
    ).order_by("created_at")[:5]
    return [bulk_progress(run) for run in runs]


BULK_QUIET = timedelta(seconds=60)


def bulk_runs_stalled(*, now: datetime, quiet: timedelta = BULK_QUIET) -> list[str]:
    """Unfinished runs that have done nothing for `quiet`: their task was lost (a broker
    restart without persistence) or is gone for another reason. Re-queueing one is safe: a
    run does each session once whoever runs it."""
    last_done = (
        BulkItem.objects.filter(run=OuterRef("pk"))
        .exclude(outcome="")
        .order_by("-done_at")
        .values("done_at")[:1]
    )
    runs = (
        BulkRun.objects.filter(
            status__in=[BulkStatus.QUEUED, BulkStatus.RUNNING], created_at__lt=now - quiet
        )
        .annotate(last_done=Subquery(last_done))
        .filter(Q(last_done__isnull=True) | Q(last_done__lt=now - quiet))
    )
    return [str(pk) for pk in runs.values_list("pk", flat=True)[:100]]
