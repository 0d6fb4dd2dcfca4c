"""What every sweep shares: SQL deadlines, reports, the time budget and the batched,
row-by-row loop that locks, re-checks and changes one session at a time."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.db.models import (
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    Func,
    Min,
    Q,
    QuerySet,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Least
from django.utils import timezone

from sessions_app import metrics, services
from sessions_app.models import (
    Agent,
    AgentSession,
)
from sessions_app.policies import (
    POLICY_BOUNDS,
    sane_policy_q,
)

logger = logging.getLogger(__name__)


ACTOR = "policy"


def _agent_policy(field: str) -> Least:
    """The agent's policy value for use in SQL arithmetic, clamped to its upper bound: SQL does
    not promise to apply the sanity filter before computing a deadline, and a huge value would
    overflow that computation and fail the whole query, not just the broken row."""
    return Least(F(f"agent__{field}"), Value(POLICY_BOUNDS[field][1]))


class Seconds(Func):
    """An integer number of seconds as a duration, on PostgreSQL and SQLite alike."""

    output_field = DurationField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="make_interval(secs => %(expressions)s)", **extra
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Django keeps durations as integer microseconds on SQLite.
        return self.as_sql(compiler, connection, template="(%(expressions)s * 1000000)", **extra)


def _deadline(start: Any, seconds: Any) -> ExpressionWrapper[Any]:
    return ExpressionWrapper(start + Seconds(seconds), output_field=DateTimeField())


@dataclass
class SweepReport:
    """Sessions changed per rule by one policy sweep."""

    idled: int = 0
    ended_idle: int = 0
    stalled: int = 0
    stopped_max_duration: int = 0
    ended_max_duration: int = 0
    stopped_grace: int = 0
    runtime_lost: int = 0
    start_timeout: int = 0
    errors: int = 0
    broken_agents: int = 0
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def changed(self) -> int:
        return (
            self.idled
            + self.ended_idle
            + self.stalled
            + self.stopped_max_duration
            + self.ended_max_duration
            + self.stopped_grace
            + self.runtime_lost
            + self.start_timeout
        )


@dataclass
class ArchiveReport:
    archived: int = 0
    errors: int = 0
    broken_agents: int = 0
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PurgeReport:
    sessions: int = 0
    events: int = 0
    commands: int = 0
    batches: int = 0
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# The report fields that count sessions a rule changed, per sweep (the rest are diagnostics).
CHANGED_FIELDS = {
    "policy": (
        "idled",
        "ended_idle",
        "stalled",
        "stopped_max_duration",
        "ended_max_duration",
        "stopped_grace",
        "runtime_lost",
    ),
    "archive": ("archived",),
    "retention": ("sessions",),
}

P = ParamSpec("P")
R = TypeVar("R", SweepReport, ArchiveReport, PurgeReport)


def measured(sweep: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record a sweep's duration and the sessions each of its rules changed (`/metrics`)."""

    def decorate(run: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(run)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            report = run(*args, **kwargs)
            metrics.SWEEP_DURATION.labels(sweep).observe(time.perf_counter() - started)
            values = report.as_dict()
            for rule in CHANGED_FIELDS[sweep]:
                if values[rule]:
                    metrics.SWEEP_CHANGED.labels(rule).inc(values[rule])
            if sweep == "retention" and values["sessions"]:
                metrics.RETENTION_PURGED.inc(values["sessions"])
            return report

        return wrapper

    return decorate


class _Budget:
    """Stops a sweep from starting new work once its time is spent, so it ends (and commits)
    before the task's soft time limit; what is left is due again on the next tick."""

    def __init__(self, seconds: float | None) -> None:
        self._deadline = None if seconds is None else time.monotonic() + seconds

    def spent(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline


# A row handler returns the SweepReport counter to bump, or None when the row was not due after
# all (activity since the query, another sweep got there first, locked by a writer).
RowHandler = Callable[[Any], str | None]


def _sweep_rows(
    qs: QuerySet[AgentSession],
    *,
    key: str,
    handle: RowHandler,
    rule: str,
    report: SweepReport,
    batch_size: int,
    budget: _Budget,
) -> None:
    """Walk the due rows of `qs` in (key, pk) order, a bounded batch per query, and hand each pk
    to `handle` in its own transaction.

    Keyset paging (not OFFSET, not "query again from the top") moves past rows that stay due,
    like a skipped or failing row, so they cannot starve the rows behind them.
    """
    after: tuple[Any, Any] | None = None
    while True:
        page = qs
        if after is not None:
            page = page.filter(
                Q(**{f"{key}__gt": after[0]}) | Q(**{key: after[0], "pk__gt": after[1]})
            )
        rows = list(page.order_by(key, "pk").values_list(key, "pk")[:batch_size])
        for row in rows:
            if budget.spent():
                report.truncated = True
                return
            try:
                counter = handle(row[1])
            except SoftTimeLimitExceeded:
                raise  # the task is out of time: stop here, the row rolled back
            except Exception:
                # One bad row (e.g. a policy that makes the computation raise) must not stop the
                # sweep for the others; it stays due and is retried (and logged) next time.
                report.errors += 1
                logger.exception("policy sweep: %s failed for session %s", rule, row[1])
                continue
            if counter:
                setattr(report, counter, getattr(report, counter) + 1)
        if len(rows) < batch_size:
            return
        after = (_keyset_value(rows[-1][0]), rows[-1][1])


def _keyset_value(value: Any) -> Any:
    if isinstance(value, datetime) and timezone.is_naive(value):
        # The indexed session deadline is a UTC timestamp without time zone: hand it back as one,
        # not through DateTimeField (which would make it aware and the comparison a cast), so the
        # keyset condition stays a range on that index.
        return RawSQL("%s", (value,), output_field=DateTimeField())
    return value


def _lock_session(pk: Any) -> AgentSession | None:
    """The row, locked for this transaction, with its agent's current policy; None when gone or
    locked by someone else (a runtime batch or another sweep is on it: SKIP LOCKED, never wait)."""
    return (
        AgentSession.objects.select_for_update(no_key=True, skip_locked=True, of=("self",))
        .select_related("agent")
        .filter(pk=pk)
        .first()
    )


def _min_policy(field: str) -> int | None:
    """The shortest sane value of a policy field over all agents: the cheap index bound."""
    value = Agent.objects.filter(sane_policy_q(field)).aggregate(low=Min(field))["low"]
    return value if isinstance(value, int) else None


def _broken_agents(field: str) -> list[int]:
    """Agents whose `field` is outside POLICY_BOUNDS (written behind the validation's back):
    logged on every sweep, and their sessions left alone until someone fixes the policy.

    The due queries exclude them by id rather than joining every session to a sanity filter on
    its agent: there are almost never any, and the join would lead the planner away from the
    sessions' partial indexes."""
    broken = list(
        Agent.objects.exclude(sane_policy_q(field)).values_list("pk", "name", field)[:1000]
    )
    for pk, name, value in broken:
        logger.error(
            "policy sweep: agent %s (%s) has a broken policy %s=%r; its sessions are skipped",
            pk,
            name,
            field,
            value,
        )
    return [pk for pk, _name, _value in broken]


def _without(qs: QuerySet[AgentSession], agent_ids: Sequence[int]) -> QuerySet[AgentSession]:
    return qs.exclude(agent_id__in=agent_ids) if agent_ids else qs


def _queue_command(session: AgentSession, kind: str, reason: str) -> None:
    services.command_queue(session=session, kind=kind, payload={"reason": reason, "by": ACTOR})
