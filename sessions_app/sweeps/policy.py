"""The policy sweep: stop grace, max duration, idle timeout, the stall watchdog and the start
timeout (`starts.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    DateTimeField,
    F,
    Q,
    QuerySet,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from sessions_app import hooks, lifecycle, services
from sessions_app.models import (
    AgentSession,
    CommandKind,
    EventType,
    StopReason,
)
from sessions_app.policies import (
    MAX_SESSION_TIMEOUT_SECONDS,
    duration_limit_seconds,
    human_duration,
    policy_value,
)
from sessions_app.states import Kind, Status
from sessions_app.sweeps.common import (
    ACTOR,
    SweepReport,
    _agent_policy,
    _broken_agents,
    _Budget,
    _deadline,
    _lock_session,
    _min_policy,
    _queue_command,
    _sweep_rows,
    _without,
    logger,
    measured,
)
from sessions_app.sweeps.starts import start_timeout

# Flow runs and background tasks the stall watchdog looks at: those that should be making progress.
# Waiting for input and paused are waits for a person; stopping has its own grace period.
WATCHED_FOR_STALL = (Status.PENDING, Status.QUEUED, Status.PROVISIONING, Status.RUNNING)


CHAT_IDLE_RULE = (Status.RUNNING, Status.IDLE)


@measured("policy")
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
    _runtime_lost(now, report, batch_size, budget)
    start_timeout(now, report, batch_size, budget)
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
                event_type=EventType.MESSAGE,
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
        # Constant SQL; the only value is passed as a parameter.
        by_timeout = base.annotate(
            deadline=RawSQL(SESSION_DEADLINE_SQL, (), output_field=DateTimeField())  # noqa: S611
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


def _runtime_lost(now: datetime, report: SweepReport, batch_size: int, budget: _Budget) -> None:
    """Live sessions of agents whose runtime fell silent (no socket, poll or call for
    SCC_RUNTIME_LOST_SECONDS) are flagged stalled, "runtime lost"; their commands wait in the
    outbox for the runtime to come back, which clears the flag."""
    agents = services.runtime_lost_agents(now=now)
    if not agents:
        return
    qs = AgentSession.objects.filter(agent_id__in=agents, live=True, stalled=False)

    def handle(pk: Any) -> str | None:
        with transaction.atomic():
            session = _lock_session(pk)
            if session is None or not session.live or session.stalled:
                return None
            return _flag(session, services.RUNTIME_LOST, counter="runtime_lost")

    _sweep_rows(
        qs,
        key="last_activity_at",
        handle=handle,
        rule="runtime lost",
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
        changed = session.status_changed_at or session.created_at
        if changed > timezone.now() - timedelta(seconds=idle_s):
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
    return _flag(session, f"no event for {idle_for}", counter="stalled")


def _flag(session: AgentSession, reason: str, *, counter: str) -> str | None:
    updated = AgentSession.objects.filter(
        pk=session.pk, stalled=False, status=session.status
    ).update(**lifecycle.bump(stalled=True, stall_reason=reason))
    if updated != 1:
        return None
    # Deliberately not touching last_activity_at: flagging is not a sign of life.
    lifecycle.append_system_event(
        session,
        event_type=EventType.ACTION,
        actor=ACTOR,
        payload={"action": "flag_stalled", "by": ACTOR, "reason": reason},
    )
    hooks.session_changed(session.pk)
    return counter
