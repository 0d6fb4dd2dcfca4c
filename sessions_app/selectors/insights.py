"""Insights: trends over the sessions a viewer may see, narrowed by the list's filter. Every
figure is an aggregate query over a bounded time window; nothing here walks rows in Python.

Definitions (the page says them too):
- started: sessions created in the window, by hour of creation (last 24 hours) and kind;
- status mix: the current status group of the sessions started in the window;
- failure rate: of the sessions that finished (reached a terminal status) on a day, the share
  that failed;
- duration: finish minus start (creation when it never ran) of the sessions that finished in
  the window; p50 and p95 are nearest-rank percentiles;
- waiting for a person: time from each move into waiting for input, paused or idle to the
  session's next status change (or now), for moves made in the window;
- tokens and cost: the usage events reported in the window, by day, agent and owner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import (
    BigIntegerField,
    Count,
    DecimalField,
    DurationField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, TruncDate, TruncHour
from django.utils import timezone

from sessions_app import states
from sessions_app.models import AgentSession, EventType, SessionEvent
from sessions_app.selectors.lists import SessionFilter, filtered_sessions

WINDOW_DAYS = (1, 7, 14, 30)
HOURS = 24
TOP = 8
ZERO_COST = Decimal(0)


@dataclass(frozen=True)
class HourRow:
    start: datetime
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class DayRow:
    day: date
    finished: int = 0
    failed: int = 0
    tokens: int = 0
    cost: Decimal = ZERO_COST
    waiting_seconds: float = 0.0

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.finished if self.finished else None


@dataclass(frozen=True)
class Durations:
    finished: int
    p50: timedelta | None
    p95: timedelta | None


@dataclass
class Breakdown:
    """One agent's or owner's share of the window."""

    name: str
    started: int = 0
    finished: int = 0
    failed: int = 0
    tokens: int = 0
    cost: Decimal = ZERO_COST

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.finished if self.finished else None


@dataclass
class Insights:
    now: datetime
    days: int
    start: datetime
    hours: list[HourRow]
    groups: list[tuple[str, str, int]]
    per_day: list[DayRow]
    durations: dict[str, Durations]
    per_agent: list[Breakdown]
    per_owner: list[Breakdown]
    totals: dict[str, Any] = field(default_factory=dict)


def _usage(events: QuerySet[SessionEvent]) -> QuerySet[SessionEvent]:
    """Usage events with their numbers pulled out of the (validated, redacted) payload."""
    return events.filter(type=EventType.USAGE).annotate(
        u_tokens=Coalesce(Cast(KT("payload__tokens_in"), BigIntegerField()), 0)
        + Coalesce(Cast(KT("payload__tokens_out"), BigIntegerField()), 0),
        u_cost=Coalesce(
            Cast(KT("payload__cost"), DecimalField(max_digits=14, decimal_places=6)),
            Value(ZERO_COST),
            output_field=DecimalField(max_digits=14, decimal_places=6),
        ),
    )


def _percentile(qs: QuerySet[AgentSession], n: int, p: float) -> timedelta | None:
    """Nearest-rank percentile of the `duration` annotation: one ordered query, one row."""
    if not n:
        return None
    rank = max(1, math.ceil(p * n))
    # (The annotation is made by the caller, which the type plugin cannot follow.)
    ordered = qs.order_by("duration", "id")
    value = ordered.values_list("duration", flat=True)[rank - 1]  # type: ignore[misc]
    return value if isinstance(value, timedelta) else None


def _durations(finished: QuerySet[AgentSession]) -> dict[str, Durations]:
    timed = finished.annotate(
        duration=ExpressionWrapper(
            F("ended_at") - Coalesce("started_at", "created_at"), output_field=DurationField()
        )
    )
    out: dict[str, Durations] = {}
    counts = dict(timed.values_list("kind").annotate(n=Count("id")).order_by())
    for key, qs in [("all", timed), *((k, timed.filter(kind=k)) for k in states.Kind.values)]:
        n = sum(counts.values()) if key == "all" else counts.get(key, 0)
        out[key] = Durations(n, _percentile(qs, n, 0.5), _percentile(qs, n, 0.95))
    return out


def _waiting(scope: QuerySet[AgentSession], start: datetime, now: datetime) -> dict[date, float]:
    """Seconds spent waiting on a person, by the day the wait began."""
    changes = SessionEvent.objects.filter(type=EventType.STATUS_CHANGE)
    next_change = changes.filter(session_id=OuterRef("session_id"), seq__gt=OuterRef("seq"))
    waits = (
        changes.filter(
            session__in=scope,
            created_at__gte=start,
            payload__to__in=sorted(states.WAITS_ON_A_PERSON),
        )
        # A report of the status a session already had does not start a new wait.
        .exclude(payload__has_key="unchanged")
        .annotate(
            until=Coalesce(
                Subquery(next_change.order_by("seq").values("created_at")[:1]), Value(now)
            ),
            day=TruncDate("created_at"),
        )
        .annotate(
            waited=ExpressionWrapper(F("until") - F("created_at"), output_field=DurationField())
        )
        .values("day")
        .annotate(total=Sum("waited"))
        .order_by()
    )
    return {row["day"]: row["total"].total_seconds() for row in waits if row["total"]}


def _breakdown(
    scope: QuerySet[AgentSession], usage: QuerySet[SessionEvent], start: datetime, key: str
) -> list[Breakdown]:
    """Sessions started, finished and failed, and usage, per agent name or owner username."""
    rows: dict[str, Breakdown] = {}
    started = scope.filter(created_at__gte=start).values(key).annotate(n=Count("id")).order_by()
    for row in started:
        rows.setdefault(row[key], Breakdown(row[key])).started = row["n"]
    finished = (
        scope.filter(ended_at__gte=start)
        .values(key)
        .annotate(n=Count("id"), failed=Count("id", filter=Q(status=states.Status.FAILED)))
        .order_by()
    )
    for row in finished:
        b = rows.setdefault(row[key], Breakdown(row[key]))
        b.finished, b.failed = row["n"], row["failed"]
    spent = (
        usage.values(f"session__{key}")
        .annotate(tokens=Sum("u_tokens"), cost=Sum("u_cost"))
        .order_by()
    )
    for row in spent:
        name = row[f"session__{key}"]
        b = rows.setdefault(name, Breakdown(name))
        b.tokens, b.cost = int(row["tokens"] or 0), Decimal(row["cost"] or 0)
    ordered = sorted(rows.values(), key=lambda b: (-b.cost, -b.started, b.name))
    return ordered[:TOP]


def insights_for(
    user: Any, flt: SessionFilter, *, days: int = 7, now: datetime | None = None
) -> Insights:
    """The numbers of the Insights page and strip, for what `user` may see through `flt`."""
    now = now or timezone.now()
    days = days if days in WINDOW_DAYS else 7
    today = timezone.localdate(now)
    start = timezone.make_aware(
        datetime.combine(today - timedelta(days=days - 1), datetime.min.time())
    )
    scope = filtered_sessions(user, flt, now=now)

    hour_start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    by_hour: dict[datetime, dict[str, int]] = {}
    for row in (
        scope.filter(created_at__gte=hour_start)
        .annotate(hour=TruncHour("created_at"))
        .values("hour", "kind")
        .annotate(n=Count("id"))
        .order_by()
    ):
        by_hour.setdefault(row["hour"], {})[row["kind"]] = row["n"]
    hours = [
        HourRow(h, {k: by_hour.get(h, {}).get(k, 0) for k in states.Kind.values})
        for h in (hour_start + timedelta(hours=i) for i in range(HOURS))
    ]

    started = scope.filter(created_at__gte=start)
    group_counts = dict(started.values_list("status_group").annotate(n=Count("id")).order_by())
    groups = [(g, label, group_counts.get(g, 0)) for g, label in states.Group.choices]

    per_day = {today - timedelta(days=i): DayRow(today - timedelta(days=i)) for i in range(days)}
    finished = scope.filter(ended_at__gte=start, ended_at__lte=now)
    for row in (
        finished.annotate(day=TruncDate("ended_at"))
        .values("day")
        .annotate(n=Count("id"), failed=Count("id", filter=Q(status=states.Status.FAILED)))
        .order_by()
    ):
        if row["day"] in per_day:
            per_day[row["day"]].finished, per_day[row["day"]].failed = row["n"], row["failed"]
    usage = _usage(SessionEvent.objects.filter(session__in=scope, created_at__gte=start))
    for row in (
        usage.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(tokens=Sum("u_tokens"), cost=Sum("u_cost"))
        .order_by()
    ):
        if row["day"] in per_day:
            per_day[row["day"]].tokens = int(row["tokens"] or 0)
            per_day[row["day"]].cost = Decimal(row["cost"] or 0)
    for day, seconds in _waiting(scope, start, now).items():
        if day in per_day:
            per_day[day].waiting_seconds = seconds

    day_rows = sorted(per_day.values(), key=lambda d: d.day)
    n_finished = sum(d.finished for d in day_rows)
    n_failed = sum(d.failed for d in day_rows)
    return Insights(
        now=now,
        days=days,
        start=start,
        hours=hours,
        groups=groups,
        per_day=day_rows,
        durations=_durations(finished),
        per_agent=_breakdown(scope, usage, start, "agent__name"),
        per_owner=_breakdown(scope, usage, start, "owner__username"),
        totals={
            "started": sum(n for _, _, n in groups),
            "finished": n_finished,
            "failed": n_failed,
            "failure_rate": n_failed / n_finished if n_finished else None,
            "tokens": sum(d.tokens for d in day_rows),
            "cost": sum((d.cost for d in day_rows), ZERO_COST),
            "waiting_seconds": sum(d.waiting_seconds for d in day_rows),
            "today": day_rows[-1],
        },
    )
