"""Session lifecycle: statuses per kind, the transition table, status groups and the one
function that changes a session's status.

Everything that changes `status` goes through `transition()`: a compare-and-swap update, a
`status_change` event row and a broadcast after commit, so the audit trail and the live views
can never miss a change.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from sessions_app import hooks

if TYPE_CHECKING:
    from sessions_app.models import AgentSession


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

_GROUP_OF_STATUS: Mapping[str, str] = {
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

ACTIVE_CHAT_WINDOW = timedelta(minutes=30)
RECENT_WINDOW = timedelta(hours=24)


def status_group(*, status: str, checkpoint_state: str = "", stalled: bool = False) -> str:
    """The stored group: colour, filters and sort. A rejected checkpoint is a problem even
    while the runtime has not failed the run yet; a stalled active session needs attention."""
    group = _GROUP_OF_STATUS[status]
    if checkpoint_state == "rejected" and group != Group.SUCCESS:
        return Group.PROBLEM
    if stalled and group == Group.ACTIVE:
        return Group.ATTENTION
    return group


def is_allowed(kind: str, from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS[kind].get(from_status, frozenset())


def progress_text(session: AgentSession) -> str:
    if session.kind == Kind.FLOW_RUN:
        if not session.total_steps:
            return "Not started" if session.current_step == 0 else f"Step {session.current_step}"
        return f"Step {session.current_step} of {session.total_steps}"
    if session.kind == Kind.BACKGROUND_TASK:
        return f"{session.turns} turn{'s' if session.turns != 1 else ''}"
    return f"{session.message_count} message{'s' if session.message_count != 1 else ''}"


def progress_percent(session: AgentSession) -> int | None:
    if session.kind != Kind.FLOW_RUN or not session.total_steps:
        return None
    return min(100, round(100 * session.current_step / session.total_steps))


EXPIRY_WARNING = timedelta(days=7)
MAX_RETENTION_DAYS = 3650


def retention_deadline(last_activity: Any, retention_days: int) -> Any:
    # Clamped so a policy value written straight into the database cannot overflow the date.
    return last_activity + timedelta(days=max(1, min(retention_days, MAX_RETENTION_DAYS)))


def expires_in_days(session: AgentSession, *, now: Any = None) -> int | None:
    """Whole days left before retention deletes the session, for sessions within a week of
    it; None when it is further away or pinned (exempt)."""
    if session.pinned or session.expires_at is None:
        return None
    left = session.expires_at - (now or timezone.now())
    if left > EXPIRY_WARNING:
        return None
    return max(0, left.days)


class LifecycleError(Exception):
    """A domain error shown to the user: 409 in the API, a message in the UI."""

    code = "lifecycle_error"


class IllegalTransition(LifecycleError):
    code = "illegal_transition"

    def __init__(self, kind: str, from_status: str, to_status: str) -> None:
        self.kind, self.from_status, self.to_status = kind, from_status, to_status
        super().__init__(
            f"A {Kind(kind).label.lower()} cannot go from {from_status} to {to_status}."
        )


@dataclass(frozen=True)
class TransitionResult:
    session: AgentSession
    changed: bool
    from_status: str


_MAX_CAS_ATTEMPTS = 5


def transition(
    session: AgentSession,
    to_status: str,
    *,
    actor: str,
    reason: str = "",
    stop_reason: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    expected_from: frozenset[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    event_id: str | None = None,
    touch: bool = True,
) -> TransitionResult:
    """Move `session` to `to_status` by compare-and-swap.

    Returns changed=False when the session already has that status (idempotent). Raises
    IllegalTransition when the table forbids the move from the status the row has *now*.
    `expected_from` narrows the allowed sources (e.g. a sweep that only ends idle chats).
    `touch=False` is for changes nobody made (policy sweeps): they are not activity, so they
    neither reset retention nor make a quiet chat look active again.
    The passed instance is refreshed in place.
    """
    from sessions_app.models import AgentSession

    if to_status not in STATUSES[session.kind]:
        raise IllegalTransition(session.kind, session.status, to_status)

    with transaction.atomic():
        for _ in range(_MAX_CAS_ATTEMPTS):
            current = session.status
            if current == to_status:
                return TransitionResult(session, False, current)
            if not is_allowed(session.kind, current, to_status) or (
                expected_from is not None and current not in expected_from
            ):
                raise IllegalTransition(session.kind, current, to_status)

            now = timezone.now()
            checkpoint_state = session.checkpoint_state
            if to_status not in (S.WAITING_INPUT,) and checkpoint_state == "awaiting":
                checkpoint_state = ""
            stalled = False  # any status change is a sign of life
            fields: dict[str, Any] = {
                "status": to_status,
                "status_group": status_group(
                    status=to_status, checkpoint_state=checkpoint_state, stalled=stalled
                ),
                "live": to_status in LIVE[session.kind],
                "stalled": stalled,
                "checkpoint_state": checkpoint_state,
                "status_changed_at": now,
                "updated_at": now,
                "version": F("version") + 1,
            }
            if to_status == S.RUNNING and session.started_at is None:
                fields["started_at"] = now
            if to_status in TERMINAL[session.kind]:
                fields["ended_at"] = now
            if stop_reason is not None:
                fields["stop_reason"] = stop_reason
            if error_code is not None:
                fields["error_code"] = error_code
            if error_message is not None:
                fields["error_message"] = error_message
            if to_status == S.RUNNING:
                # Resuming clears the previous stop reason; errors stay on record.
                fields["stop_reason"] = ""
            if extra:
                fields.update(extra)
            if touch:
                # Any interaction resets retention.
                fields["last_activity_at"] = now
                fields["expires_at"] = retention_deadline(now, session.agent.retention_days)

            # Compare-and-swap: only the writer that still sees `current` wins; no lock held.
            updated = AgentSession.objects.filter(pk=session.pk, status=current).update(**fields)
            if updated == 1:
                break
            session.refresh_from_db()
        else:  # pragma: no cover - needs five writers interleaving on one row
            raise LifecycleError("The session changed too often to update; try again.")

        session.refresh_from_db()
        payload: dict[str, Any] = {"from": current, "to": to_status}
        if reason:
            payload["reason"] = reason
        if stop_reason:
            payload["stop_reason"] = stop_reason
        if error_message:
            payload["error"] = {"code": error_code or "", "message": error_message}
        append_system_event(
            session, type="status_change", actor=actor, payload=payload, event_id=event_id
        )
        hooks.session_changed(session.pk)
    return TransitionResult(session, True, current)


def append_system_event(
    session: AgentSession,
    *,
    type: str,
    actor: str,
    payload: dict[str, Any],
    event_id: str | None = None,
) -> Any:
    """Append a server-made event with the next seq. The seq counter is bumped with an atomic
    UPDATE ... RETURNING-style read so concurrent writers never share a seq."""
    from sessions_app.models import AgentSession, SessionEvent

    with transaction.atomic():
        AgentSession.objects.filter(pk=session.pk).update(last_seq=F("last_seq") + 1)
        seq = AgentSession.objects.values_list("last_seq", flat=True).get(pk=session.pk)
        session.last_seq = seq
        return SessionEvent.objects.create(
            session=session,
            seq=seq,
            event_id=event_id or f"srv-{uuid.uuid4()}",
            type=type,
            actor=actor,
            payload=payload,
        )
