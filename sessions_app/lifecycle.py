"""The one function that changes a session's status, and the server's own transcript lines.

Everything that changes `status` goes through `transition()`: a compare-and-swap update, a
`status_change` event row and a broadcast after commit, so the audit trail and the live views
can never miss a change. The fields derived from status (`status_group`, `live`) are generated
by the database; "an interaction happened" is `activity_fields()`, used by every writer.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sessions_app import hooks, metrics, rows
from sessions_app.errors import Conflict, IllegalTransition
from sessions_app.models import Agent, AgentSession, EventType, SessionEvent
from sessions_app.states import (
    LIVE,
    STATUSES,
    TERMINAL,
    Status,
    is_allowed,
    retention_deadline,
    status_group,
)


def activity_fields(agent: Agent, *, now: datetime) -> dict[str, Any]:
    """The columns "somebody interacted with this session" writes: recency (list order, Active
    Now), the retention deadline measured from it, and the end of any stall (a sign of life).
    Sweeps and other changes nobody made do not call this, so they neither reset retention nor
    make a quiet chat look active again."""
    return {
        "last_activity_at": now,
        "expires_at": retention_deadline(now, agent.retention_days),
        "stalled": False,
        "stall_reason": "",
    }


def visible_change() -> tuple[dict[str, Any], dict[str, int]]:
    """What every UPDATE that changes what a viewer sees also writes, as (values, increments):
    the modification time, and one more version (what dashboards compare)."""
    return {"updated_at": timezone.now()}, {"version": 1}


def bump(**fields: Any) -> dict[str, Any]:
    """`fields` plus `visible_change()`, for a queryset's update()."""
    values, increments = visible_change()
    return {**fields, **values, **{name: F(name) + n for name, n in increments.items()}}


def add_counts(totals: Mapping[str, int], counts: Mapping[str, int]) -> dict[str, int]:
    """Per-rule redaction totals plus one more event's counts."""
    merged = dict(totals)
    for rule, n in counts.items():
        merged[rule] = merged.get(rule, 0) + n
    return merged


def record_redactions(session: AgentSession, counts: Mapping[str, int]) -> None:
    """Fold counts into the session's totals. The caller holds the session row lock (or the
    write is otherwise serialised), as every writer of a session's transcript does."""
    if not counts:
        return
    metrics.count_redactions(dict(counts))
    current = (
        AgentSession.objects.select_for_update(no_key=True, of=("self",))
        .values_list("redaction_counts", flat=True)
        .get(pk=session.pk)
    )
    session.redaction_counts = add_counts(current or {}, counts)
    AgentSession.objects.filter(pk=session.pk).update(redaction_counts=session.redaction_counts)


@dataclass(frozen=True)
class TransitionResult:
    session: AgentSession
    changed: bool
    from_status: str


_MAX_CAS_ATTEMPTS = 5


def _transition_fields(
    session: AgentSession,
    to_status: str,
    *,
    now: datetime,
    stop_reason: str | None,
    error_code: str | None,
    error_message: str | None,
    touch: bool,
) -> dict[str, Any]:
    """The columns a move to `to_status` writes, besides the version bump."""
    fields: dict[str, Any] = {
        "status": to_status,
        "status_changed_at": now,
        # Any status change is a sign of life.
        "stalled": False,
        "stall_reason": "",
    }
    if to_status != Status.WAITING_INPUT and session.checkpoint_state == "awaiting":
        fields["checkpoint_state"] = ""
    if to_status == Status.RUNNING and session.started_at is None:
        fields["started_at"] = now
    if to_status in TERMINAL[session.kind]:
        fields["ended_at"] = now
    if stop_reason is not None:
        fields["stop_reason"] = stop_reason
    if error_code is not None:
        fields["error_code"] = error_code
    if error_message is not None:
        fields["error_message"] = error_message
    if to_status == Status.RUNNING:
        # Resuming clears the previous stop reason; errors stay on record.
        fields["stop_reason"] = ""
    if touch:
        fields.update(activity_fields(session.agent, now=now))
    return fields


def _status_payload(
    from_status: str,
    to_status: str,
    *,
    reason: str,
    stop_reason: str | None,
    error_code: str | None,
    error_message: str | None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"from": from_status, "to": to_status}
    if reason:
        payload["reason"] = reason
    if stop_reason:
        payload["stop_reason"] = stop_reason
    if error_message:
        payload["error"] = {"code": error_code or "", "message": error_message}
    return payload


def _check_move(
    session: AgentSession, to_status: str, expected_from: frozenset[str] | None = None
) -> None:
    current = session.status
    if not is_allowed(session.kind, current, to_status) or (
        expected_from is not None and current not in expected_from
    ):
        raise IllegalTransition(session.kind, current, to_status)


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
    event_id: str | None = None,
    touch: bool = True,
) -> TransitionResult:
    """Move `session` to `to_status` by compare-and-swap.

    Returns changed=False when the session already has that status (idempotent). Raises
    IllegalTransition when the table forbids the move from the status the row has *now*.
    `expected_from` narrows the allowed sources (e.g. a sweep that only ends idle chats).
    `touch=False` is for changes nobody made (policy sweeps): they are not activity.
    The passed instance is refreshed in place.
    """
    if to_status not in STATUSES[session.kind]:
        raise IllegalTransition(session.kind, session.status, to_status)

    with transaction.atomic():
        for _ in range(_MAX_CAS_ATTEMPTS):
            current = session.status
            if current == to_status:
                return TransitionResult(session, False, current)
            _check_move(session, to_status, expected_from)
            fields = bump(
                **_transition_fields(
                    session,
                    to_status,
                    now=timezone.now(),
                    stop_reason=stop_reason,
                    error_code=error_code,
                    error_message=error_message,
                    touch=touch,
                )
            )
            # Compare-and-swap: only the writer that still sees `current` wins; no lock held.
            updated = AgentSession.objects.filter(pk=session.pk, status=current).update(**fields)
            if updated == 1:
                break
            session.refresh_from_db()
        else:  # pragma: no cover - needs five writers interleaving on one row
            raise Conflict("The session changed too often to update; try again.")

        session.refresh_from_db()
        append_system_event(
            session,
            event_type=EventType.STATUS_CHANGE,
            actor=actor,
            payload=_status_payload(
                current,
                to_status,
                reason=reason,
                stop_reason=stop_reason,
                error_code=error_code,
                error_message=error_message,
            ),
            event_id=event_id,
        )
        hooks.session_changed(session.pk)
    return TransitionResult(session, True, current)


class LockedWrite:
    """Changes to one session whose row the caller holds locked (SELECT ... FOR UPDATE),
    gathered so that a whole batch is one INSERT of events and one UPDATE of the session.

    The lock makes the compare-and-swap of `transition()` unnecessary: nobody else can move
    the status between reading and writing it. The same rules apply (`_check_move`,
    `_transition_fields`), and the instance is kept as the row will be, generated columns
    included, so nothing needs re-reading after `save()`.
    """

    def __init__(self, session: AgentSession) -> None:
        self.session = session
        self.changes: dict[str, Any] = {}
        # column -> amount added to the stored value (usage totals)
        self.increments: dict[str, Any] = {}
        self.events: list[rows.NewEvent] = []

    def put(self, field: str, value: Any) -> None:
        setattr(self.session, field, value)
        self.changes[field] = value

    def append(
        self,
        *,
        event_type: str,
        actor: str,
        payload: Any,
        event_id: str | None = None,
        redactions: dict[str, int] | None = None,
    ) -> rows.NewEvent:
        """Queue an event with the next seq (gap-free: the row lock serialises writers)."""
        self.session.last_seq += 1
        self.changes["last_seq"] = self.session.last_seq
        event = rows.NewEvent(
            seq=self.session.last_seq,
            event_id=event_id or f"srv-{uuid.uuid4()}",
            type=event_type,
            actor=actor,
            payload=payload,
            redactions=redactions or {},
        )
        self.events.append(event)
        return event

    def transition(
        self,
        to_status: str,
        *,
        actor: str,
        reason: str = "",
        stop_reason: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        event_id: str | None = None,
    ) -> bool:
        """`transition()` for a locked row: False when the status is already `to_status`."""
        session = self.session
        if to_status not in STATUSES[session.kind]:
            raise IllegalTransition(session.kind, session.status, to_status)
        current = session.status
        if current == to_status:
            return False
        _check_move(session, to_status)
        fields = _transition_fields(
            session,
            to_status,
            now=timezone.now(),
            stop_reason=stop_reason,
            error_code=error_code,
            error_message=error_message,
            touch=True,
        )
        for name, value in fields.items():
            self.put(name, value)
        self.append(
            event_type=EventType.STATUS_CHANGE,
            actor=actor,
            payload=_status_payload(
                current,
                to_status,
                reason=reason,
                stop_reason=stop_reason,
                error_code=error_code,
                error_message=error_message,
            ),
            event_id=event_id,
        )
        return True

    def save(self) -> bool:
        """Write what was gathered; False when there was nothing to write."""
        if not self.changes and not self.events and not self.increments:
            return False
        session = self.session
        values, increments = visible_change()
        rows.insert_events(session.pk, self.events, now=values["updated_at"])
        values = {**self.changes, **values}
        increments = {**self.increments, **increments}
        rows.update_session(session.pk, values, increments)
        # The row is locked, so the database's values are ours plus the increments, and the
        # generated columns follow from the same rules in Python.
        for name, value in values.items():
            setattr(session, name, value)
        for name, delta in increments.items():
            setattr(session, name, getattr(session, name) + delta)
        session.tokens_total = session.tokens_in + session.tokens_out
        session.status_group = status_group(
            status=session.status,
            checkpoint_state=session.checkpoint_state,
            stalled=session.stalled,
        )
        session.live = session.status in LIVE[session.kind]
        self.changes.clear()
        self.increments.clear()
        self.events.clear()
        hooks.session_changed(session.pk)
        return True


def append_system_event(
    session: AgentSession,
    *,
    event_type: str,
    actor: str,
    payload: dict[str, Any],
    event_id: str | None = None,
    redactions: dict[str, int] | None = None,
) -> SessionEvent:
    """Append a server-made event with the next seq. The seq counter is bumped by an atomic
    UPDATE before it is read back, so concurrent writers never share a seq."""
    with transaction.atomic():
        AgentSession.objects.filter(pk=session.pk).update(last_seq=F("last_seq") + 1)
        seq = AgentSession.objects.values_list("last_seq", flat=True).get(pk=session.pk)
        session.last_seq = seq
        return SessionEvent.objects.create(
            session=session,
            seq=seq,
            event_id=event_id or f"srv-{uuid.uuid4()}",
            type=event_type,
            actor=actor,
            payload=payload,
            redactions=redactions or {},
        )
