"""Kinds, statuses, the transition table, status groups, progress and the retention deadline.

Pure: no database access and no import of the models, so the models, the lifecycle, the
selectors and the live UI all read the same tables. The database-generated columns
(`status_group`, `live`) are built from these tables by `status_group_expression()` and
`live_expression()`, so the Python rule and the SQL column cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol

from django.db import models
from django.db.models import Case, Q, Value, When


class Kind(models.TextChoices):
    FLOW_RUN = "flow_run", "Flow run"
    BACKGROUND_TASK = "background_task", "Background task"
    CHAT = "chat", "Chat"


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    QUEUED = "queued", "Queued"
    PROVISIONING = "provisioning", "Provisioning"
    RUNNING = "running", "Running"
    WAITING_INPUT = "waiting_input", "Waiting for input"
    PAUSED = "paused", "Paused"
    IDLE = "idle", "Idle"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    COMPLETED = "completed", "Completed"
    ENDED = "ended", "Ended"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Group(models.TextChoices):
    ACTIVE = "active", "Active"
    ATTENTION = "attention", "Needs attention"
    SUCCESS = "success", "Succeeded"
    PROBLEM = "problem", "Problem"
    STOPPED = "stopped", "Stopped"


S = Status

TRANSITIONS: Mapping[str, Mapping[str, frozenset[str]]] = {
    Kind.FLOW_RUN: {
        S.PENDING: frozenset({S.RUNNING, S.PAUSED, S.STOPPING, S.FAILED, S.CANCELLED}),
        S.RUNNING: frozenset(
            {S.WAITING_INPUT, S.PAUSED, S.STOPPING, S.COMPLETED, S.FAILED, S.CANCELLED}
        ),
        S.WAITING_INPUT: frozenset({S.RUNNING, S.PAUSED, S.STOPPING, S.FAILED, S.CANCELLED}),
        S.PAUSED: frozenset({S.RUNNING, S.STOPPING, S.FAILED, S.CANCELLED}),
        # The runtime may finish or fail before it sees the stop command.
        S.STOPPING: frozenset({S.STOPPED, S.COMPLETED, S.FAILED, S.CANCELLED}),
        S.STOPPED: frozenset({S.RUNNING, S.CANCELLED}),
        S.COMPLETED: frozenset(),
        S.FAILED: frozenset(),
        S.CANCELLED: frozenset(),
    },
    Kind.BACKGROUND_TASK: {
        S.QUEUED: frozenset(
            {S.PROVISIONING, S.RUNNING, S.PAUSED, S.STOPPING, S.FAILED, S.CANCELLED}
        ),
        S.PROVISIONING: frozenset({S.RUNNING, S.STOPPING, S.FAILED, S.CANCELLED}),
        S.RUNNING: frozenset(
            {S.WAITING_INPUT, S.PAUSED, S.STOPPING, S.COMPLETED, S.FAILED, S.CANCELLED}
        ),
        S.WAITING_INPUT: frozenset({S.RUNNING, S.PAUSED, S.STOPPING, S.FAILED, S.CANCELLED}),
        S.PAUSED: frozenset({S.RUNNING, S.STOPPING, S.FAILED, S.CANCELLED}),
        S.STOPPING: frozenset({S.STOPPED, S.COMPLETED, S.FAILED, S.CANCELLED}),
        S.STOPPED: frozenset({S.RUNNING, S.CANCELLED}),
        S.COMPLETED: frozenset(),
        S.FAILED: frozenset(),
        S.CANCELLED: frozenset(),
    },
    Kind.CHAT: {
        S.RUNNING: frozenset({S.IDLE, S.PAUSED, S.ENDED, S.FAILED}),
        S.IDLE: frozenset({S.RUNNING, S.PAUSED, S.ENDED, S.FAILED}),
        S.PAUSED: frozenset({S.RUNNING, S.ENDED, S.FAILED}),
        S.ENDED: frozenset(),
        S.FAILED: frozenset(),
    },
}

STATUSES: Mapping[str, frozenset[str]] = {k: frozenset(t) for k, t in TRANSITIONS.items()}
INITIAL: Mapping[str, str] = {
    Kind.FLOW_RUN: S.PENDING,
    Kind.BACKGROUND_TASK: S.QUEUED,
    Kind.CHAT: S.RUNNING,
}
TERMINAL: Mapping[str, frozenset[str]] = {
    kind: frozenset(s for s, targets in table.items() if not targets)
    for kind, table in TRANSITIONS.items()
}
# Live = not terminal and not stopped: counts toward the concurrency cap and sorts first.
LIVE: Mapping[str, frozenset[str]] = {
    kind: STATUSES[kind] - TERMINAL[kind] - {S.STOPPED} for kind in TRANSITIONS
}

GROUP_OF_STATUS: Mapping[str, str] = {
    S.PENDING: Group.ACTIVE,
    S.QUEUED: Group.ACTIVE,
    S.PROVISIONING: Group.ACTIVE,
    S.RUNNING: Group.ACTIVE,
    S.STOPPING: Group.ACTIVE,
    S.WAITING_INPUT: Group.ATTENTION,
    S.PAUSED: Group.ATTENTION,
    S.IDLE: Group.ATTENTION,
    S.COMPLETED: Group.SUCCESS,
    S.ENDED: Group.SUCCESS,
    S.FAILED: Group.PROBLEM,
    S.STOPPED: Group.STOPPED,
    S.CANCELLED: Group.STOPPED,
}

# A live session in one of these waits on a person (Needs you), as does a stalled one and one
# whose agent says it waits for the user's answer.
WAITS_ON_A_PERSON = frozenset({S.WAITING_INPUT, S.PAUSED, S.IDLE})
AGENT_WAITING_INPUT = "waiting_input"

ACTIVE_CHAT_WINDOW = timedelta(minutes=30)
RECENT_WINDOW = timedelta(hours=24)
EXPIRY_WARNING = timedelta(days=7)
MAX_RETENTION_DAYS = 3650


def _statuses_in(group: str) -> list[str]:
    return sorted(s for s, g in GROUP_OF_STATUS.items() if g == group)


def status_group(*, status: str, checkpoint_state: str = "", stalled: bool = False) -> str:
    """The group: colour, filters and sort. A rejected checkpoint is a problem even while the
    runtime has not failed the run yet; a stalled active session needs attention.

    The stored column is generated by the database from `status_group_expression()`; this is
    the same rule for values that never were a row (tests, the live filter's expectations)."""
    group = GROUP_OF_STATUS[status]
    if checkpoint_state == "rejected" and group != Group.SUCCESS:
        return Group.PROBLEM
    if stalled and group == Group.ACTIVE:
        return Group.ATTENTION
    return group


def status_group_expression() -> Case:
    """`status_group()` as SQL, for the generated column."""
    return Case(
        When(
            Q(checkpoint_state="rejected") & ~Q(status__in=_statuses_in(Group.SUCCESS)),
            then=Value(Group.PROBLEM.value),
        ),
        When(
            Q(stalled=True) & Q(status__in=_statuses_in(Group.ACTIVE)),
            then=Value(Group.ATTENTION.value),
        ),
        *(
            When(status__in=_statuses_in(group), then=Value(group.value))
            for group in Group
            if _statuses_in(group)
        ),
        default=Value(Group.PROBLEM.value),
    )


def waits_on_a_person(
    *, live: bool, archived: bool, status: str, stalled: bool, agent_status: str
) -> bool:
    return (
        live
        and not archived
        and (status in WAITS_ON_A_PERSON or stalled or agent_status == AGENT_WAITING_INPUT)
    )


def live_expression() -> Case:
    """`LIVE` as SQL, for the generated column."""
    return Case(
        *(When(kind=kind, status__in=sorted(LIVE[kind]), then=Value(True)) for kind in Kind),
        default=Value(False),
    )


def fold(text: str) -> str:
    """The one case fold of title search, for the stored column and the live filter alike:
    Unicode case folding (sharp s ~ ss, final ~ medial sigma, É ~ é), which neither SQLite's ASCII-only LIKE nor
    PostgreSQL's UPPER() gives, so the database compares pre-folded text case-sensitively."""
    return text.casefold()


def is_allowed(kind: str, from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS[kind].get(from_status, frozenset())


# The operator's lifecycle verbs and the status each one moves a session to.
VERB_TARGETS: Mapping[str, str] = {
    "pause": S.PAUSED,
    "resume": S.RUNNING,
    "stop": S.STOPPING,
    "cancel": S.CANCELLED,
    "end": S.ENDED,
}


def verb_refusal(verb: str, *, kind: str, status: str) -> str | None:
    """Why an operator's verb would not change a session: "kind" (not a verb for this kind:
    only chats end, chats are neither stopped nor cancelled) or "status" (the table forbids
    the move, or the session is there already); None when it would. The detail page offers
    exactly the verbs this allows, and a bulk run skips exactly the sessions it refuses."""
    target = VERB_TARGETS[verb]
    if target not in STATUSES[kind] or (verb == "end") != (kind == Kind.CHAT):
        return "kind"
    if not is_allowed(kind, status, target):
        return "status"
    if verb == "resume" and status == S.WAITING_INPUT:
        # The way forward is the checkpoint's approve/reject or a reply, not a bare resume.
        return "status"
    return None


class HasProgress(Protocol):
    kind: str
    current_step: int
    total_steps: int
    turns: int
    message_count: int


def progress_text(session: HasProgress) -> str:
    if session.kind == Kind.FLOW_RUN:
        if not session.total_steps:
            return "Not started" if session.current_step == 0 else f"Step {session.current_step}"
        return f"Step {session.current_step} of {session.total_steps}"
    if session.kind == Kind.BACKGROUND_TASK:
        return f"{session.turns} turn{'s' if session.turns != 1 else ''}"
    return f"{session.message_count} message{'s' if session.message_count != 1 else ''}"


def progress_percent(session: HasProgress) -> int | None:
    if session.kind != Kind.FLOW_RUN or not session.total_steps:
        return None
    return min(100, round(100 * session.current_step / session.total_steps))


def retention_deadline(last_activity: datetime, retention_days: int) -> datetime:
    # Clamped so a policy value written straight into the database cannot overflow the date.
    return last_activity + timedelta(days=max(1, min(retention_days, MAX_RETENTION_DAYS)))


def expires_in_days(
    *,
    expires_at: datetime | None,
    pinned: bool,
    now: datetime,
    window: timedelta = EXPIRY_WARNING,
) -> int | None:
    """Whole days until retention deletes a session, rounded up (a 5-day policy right after
    activity says 5, not 4; 0 once due); None when it is pinned (exempt), has no expiry, or
    expires further away than `window`."""
    if pinned or expires_at is None:
        return None
    remaining = expires_at - now
    if remaining > window:
        return None
    return max(0, math.ceil(remaining / timedelta(days=1)))
