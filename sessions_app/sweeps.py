"""The sweeps Celery beat runs to enforce session policies unattended (the rules they apply
live in `policies.py`).

The Celery tasks in `tasks.py` (on the beat schedule in `config/celery.py`) call one sweep each:

- `policy_sweep`: stop grace (stopping -> stopped), max duration (stop / end), idle timeout
  (chat running -> idle -> ended) and the stall watchdog (flag flow runs and background tasks
  that stopped reporting).
- `archive_sweep`: set `archived_at` on sessions that ended `auto_archive_days` ago.
- `retention_purge`: delete unpinned sessions past `expires_at`, with their events and commands.

How a sweep finds due rows: each rule's query has two conditions on the same column.
1. A cheap bound, `column <= now - <shortest policy value over all agents>`, that the partial
   index of the rule (see AgentSession.Meta.indexes) turns into a range scan, so rows that are
   fresh for every possible policy are never read.
2. The precise test, joined with the row's agent: `column + agent.<policy> <= now`, written with
   `Seconds()` so it compiles on PostgreSQL (`make_interval`) and SQLite (Django's duration
   arithmetic). Only due rows leave the database.
We chose the join over "fetch the candidates and check them in Python" because the candidates
(rows past the shortest policy, e.g. one agent with a 5 minute idle timeout) can far outnumber
the due rows; the join keeps the transfer proportional to the due rows.
The exception is a session's own timeout, a per-row value with no useful bound: on PostgreSQL it
has its own expression index (migration 0004, see `max_duration_due`).

Each due row is then changed in its own short transaction: lock it with SKIP LOCKED, re-check it
against its agent's current policy (activity may have arrived since the query), change it through
`lifecycle.transition()` (compare-and-swap, `status_change` event, broadcast after commit). Two
sweeps at once therefore change each session exactly once, a killed worker loses at most the row
it was on (rolled back, picked up by the next run), and a row that raises is logged and skipped
without stopping the sweep for the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
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
from django.db.models.functions import Coalesce, Least
from django.utils import timezone

from sessions_app import hooks, lifecycle, services
from sessions_app.models import (
    Agent,
    AgentSession,
    CommandKind,
    EventType,
    RuntimeCommand,
    SessionEvent,
    StopReason,
)
from sessions_app.policies import (
    DAY,
    MAX_SESSION_TIMEOUT_SECONDS,
    POLICY_BOUNDS,
    duration_limit_seconds,
    human_duration,
    policy_value,
    sane_policy_q,
)
from sessions_app.states import Kind, Status

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


def _deadline(start: Any, seconds: Any) -> ExpressionWrapper:
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


# --- policy sweep -----------------------------------------------------------------------------

# Flow runs and background tasks the stall watchdog looks at: those that should be making progress.
# Waiting for input and paused are waits for a person; stopping has its own grace period.
WATCHED_FOR_STALL = (Status.PENDING, Status.QUEUED, Status.PROVISIONING, Status.RUNNING)
CHAT_IDLE_RULE = (Status.RUNNING, Status.IDLE)


def policy_sweep(
    *, now: datetime | None = None, batch_size: int = 500, time_budget: float | None = None
) -> SweepReport:
    """Enforce stop grace, max duration, idle timeout and the stall watchdog on every open
    session, reading each agent's current policy. Idempotent and safe to run concurrently."""
    now = now or timezone.now()
    report = SweepReport()
    budget = _Budget(time_budget)
    # Stop grace first so sessions stopped by this very sweep get their full grace period.
    _stop_grace(now, report, batch_size, budget)
    _max_duration(now, report, batch_size, budget)
    _idle(now, report, batch_size, budget)
    if report.changed or report.errors:
        logger.info("policy sweep: %s", report.as_dict())
    return report


def stop_grace_due(now: datetime) -> QuerySet[AgentSession]:
    """Sessions stopping for longer than the grace period (session_stopping_idx)."""
    grace = timedelta(seconds=settings.SCC_STOP_GRACE_SECONDS)
    return AgentSession.objects.filter(status=Status.STOPPING, status_changed_at__lte=now - grace)


def _stop_grace(now: datetime, report: SweepReport, batch_size: int, budget: _Budget) -> None:
    grace = timedelta(seconds=settings.SCC_STOP_GRACE_SECONDS)
    qs = stop_grace_due(now)

    def handle(pk: Any) -> str | None:
        with transaction.atomic():
            session = _lock_session(pk)
            if (
                session is None
                or session.status != Status.STOPPING
                or session.status_changed_at is None
                or session.status_changed_at > now - grace
            ):
                return None
            waited = human_duration(settings.SCC_STOP_GRACE_SECONDS)
            result = lifecycle.transition(
                session,
                Status.STOPPED,
                actor=ACTOR,
                reason=f"the runtime did not confirm the stop within {waited}",
                expected_from=frozenset({Status.STOPPING}),
                touch=False,
            )
            if not result.changed:
                return None
            lifecycle.append_system_event(
                session,
                type=EventType.MESSAGE,
                actor=ACTOR,
                payload={
                    "role": "system",
                    "text": f"Marked stopped: the runtime did not confirm the stop within "
                    f"{waited}. It may still be running; check the runtime.",
                },
            )
            return "stopped_grace"

    _sweep_rows(
        qs,
        key="status_changed_at",
        handle=handle,
        rule="stop grace",
        report=report,
        batch_size=batch_size,
        budget=budget,
    )


# A session's own deadline, exactly as indexed by session_open_deadline_idx (migration 0004) so the
# planner can match it: immutable (a UTC timestamp plus an interval), unlike timestamptz arithmetic.
SESSION_DEADLINE_SQL = (
    "(timezone('UTC', COALESCE(sessions_app_agentsession.started_at, "
    "sessions_app_agentsession.created_at)) "
    "+ make_interval(secs => sessions_app_agentsession.timeout_seconds))"
)


def max_duration_due(
    now: datetime, *, skip_agents: Sequence[int] = ()
) -> list[QuerySet[AgentSession]]:
    """Open sessions past their max duration, annotated with their `deadline`, as one query per
    way a session can be due:

    1. past its own timeout_seconds: on PostgreSQL an ordered range scan of
       session_open_deadline_idx (the deadline is a UTC timestamp without time zone there);
    2. past its agent's max duration, only needed when some agent's is shorter than the longest
       session timeout: a range on session_open_started_idx up to the shortest such policy.
    A session due both ways is changed by whichever query reaches it first.
    """
    base = _without(
        AgentSession.objects.filter(live=True).exclude(
            status=Status.STOPPING  # already asked to stop; stop grace takes it from here
        ),
        skip_agents,
    )
    start = Coalesce("started_at", "created_at")
    if connection.vendor == "postgresql":
        # Ordering by the indexed expression matters as much as filtering on it: PostgreSQL keeps
        # no usable statistics for a partial expression index, so only an ordered, LIMITed scan
        # makes the index the obvious plan.
        by_timeout = base.annotate(
            deadline=RawSQL(SESSION_DEADLINE_SQL, (), output_field=DateTimeField())
        ).filter(deadline__lte=RawSQL("timezone('UTC', %s)", (now,)))
    else:
        by_timeout = base.annotate(deadline=_deadline(start, F("timeout_seconds"))).filter(
            deadline__lte=now
        )
    queries: list[QuerySet[AgentSession]] = [by_timeout]
    shortest = _min_policy("max_duration_seconds")
    if shortest is not None and shortest < MAX_SESSION_TIMEOUT_SECONDS:
        # Sessions that never started count from created_at; `started_at IS NULL` is a lookup on
        # the same partial index.
        cutoff = now - timedelta(seconds=shortest)
        queries.append(
            base.filter(
                Q(started_at__lte=cutoff) | Q(started_at__isnull=True, created_at__lte=cutoff)
            )
            .annotate(deadline=_deadline(start, _agent_policy("max_duration_seconds")))
            .filter(deadline__lte=now)
        )
    return queries


def _max_duration(now: datetime, report: SweepReport, batch_size: int, budget: _Budget) -> None:
    broken = _broken_agents("max_duration_seconds")
    report.broken_agents += len(broken)

    def handle(pk: Any) -> str | None:
        with transaction.atomic():
            session = _lock_session(pk)
            if session is None or not session.live or session.status == Status.STOPPING:
                return None
            limit_s = duration_limit_seconds(session, session.agent)
            if (session.started_at or session.created_at) > now - timedelta(seconds=limit_s):
                return None
            reason = f"max duration of {human_duration(limit_s)} reached"
            if session.kind == Kind.CHAT:
                to_status, command, counter = Status.ENDED, CommandKind.END, "ended_max_duration"
            else:
                to_status, command, counter = (
                    Status.STOPPING,
                    CommandKind.STOP,
                    "stopped_max_duration",
                )
            result = lifecycle.transition(
                session,
                to_status,
                actor=ACTOR,
                reason=reason,
                stop_reason=StopReason.MAX_DURATION,
                touch=False,
            )
            if not result.changed:
                return None
            _queue_command(session, command, reason)
            return counter

    for qs in max_duration_due(now, skip_agents=broken):
        _sweep_rows(
            qs,
            key="deadline",
            handle=handle,
            rule="max duration",
            report=report,
            batch_size=batch_size,
            budget=budget,
        )


def idle_due(now: datetime, *, skip_agents: Sequence[int] = ()) -> QuerySet[AgentSession] | None:
    """Chats past their idle timeout and runs not heard from for it (session_open_activity_idx);
    None when no agent has a usable policy."""
    shortest = _min_policy("idle_timeout_seconds")
    if shortest is None:
        return None
    qs = (
        AgentSession.objects.filter(
            live=True, last_activity_at__lte=now - timedelta(seconds=shortest)
        )
        .filter(
            Q(kind=Kind.CHAT, status__in=CHAT_IDLE_RULE)
            | (~Q(kind=Kind.CHAT) & Q(stalled=False, status__in=WATCHED_FOR_STALL))
        )
        .alias(deadline=_deadline(F("last_activity_at"), _agent_policy("idle_timeout_seconds")))
        .filter(deadline__lte=now)
    )
    return _without(qs, skip_agents)


def _idle(now: datetime, report: SweepReport, batch_size: int, budget: _Budget) -> None:
    broken = _broken_agents("idle_timeout_seconds")
    report.broken_agents += len(broken)
    qs = idle_due(now, skip_agents=broken)
    if qs is None:
        return

    def handle(pk: Any) -> str | None:
        with transaction.atomic():
            session = _lock_session(pk)
            if session is None or not session.live:
                return None
            idle_s = policy_value(session.agent, "idle_timeout_seconds")
            if session.last_activity_at > now - timedelta(seconds=idle_s):
                return None  # activity arrived since the query
            idle_for = human_duration(idle_s)
            if session.kind == Kind.CHAT:
                return _idle_chat(session, idle_for)
            return _flag_stalled(session, idle_for)

    _sweep_rows(
        qs,
        key="last_activity_at",
        handle=handle,
        rule="idle timeout",
        report=report,
        batch_size=batch_size,
        budget=budget,
    )


def _idle_chat(session: AgentSession, idle_for: str) -> str | None:
    if session.status == Status.RUNNING:
        result = lifecycle.transition(
            session,
            Status.IDLE,
            actor=ACTOR,
            reason=f"no activity for {idle_for}",
            expected_from=frozenset({Status.RUNNING}),
            touch=False,
        )
        return "idled" if result.changed else None
    if session.status == Status.IDLE:
        # Going idle is not activity (touch=False), so "idle for another idle timeout" is
        # measured from when the chat went idle.
        idle_s = policy_value(session.agent, "idle_timeout_seconds")
        assert session.status_changed_at is not None
        if session.status_changed_at > timezone.now() - timedelta(seconds=idle_s):
            return None
        reason = f"idle for {idle_for}"
        result = lifecycle.transition(
            session,
            Status.ENDED,
            actor=ACTOR,
            reason=reason,
            stop_reason=StopReason.IDLE_TIMEOUT,
            expected_from=frozenset({Status.IDLE}),
            touch=False,
        )
        if not result.changed:
            return None
        _queue_command(session, CommandKind.END, reason)
        return "ended_idle"
    return None


def _flag_stalled(session: AgentSession, idle_for: str) -> str | None:
    """Mark a flow run or background task that stopped reporting; it keeps running (the runtime
    may just be slow) but shows as needing attention until its next event clears the flag."""
    if session.stalled or session.status not in WATCHED_FOR_STALL:
        return None
    reason = f"no event for {idle_for}"
    updated = AgentSession.objects.filter(
        pk=session.pk, stalled=False, status=session.status
    ).update(**lifecycle.bump(stalled=True, stall_reason=reason))
    if updated != 1:
        return None
    # Deliberately not touching last_activity_at: flagging is not a sign of life.
    lifecycle.append_system_event(
        session,
        type=EventType.ACTION,
        actor=ACTOR,
        payload={"action": "flag_stalled", "by": ACTOR, "reason": reason},
    )
    hooks.session_changed(session.pk)
    return "stalled"


# --- archive ----------------------------------------------------------------------------------


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


# --- retention --------------------------------------------------------------------------------

# Caps the rows one purge transaction deletes, so its locks are short whatever the transcripts'
# sizes; a session is never split across transactions (its transcript goes with it or not at all).
PURGE_EVENTS_PER_BATCH = 50_000


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
