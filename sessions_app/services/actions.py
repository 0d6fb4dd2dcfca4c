"""What an operator does to one session: the lifecycle verbs, checkpoint decisions and
messages. Each checks permission before state, changes the row through the lifecycle, writes
its audit line and queues the runtime's command, in one transaction."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from sessions_app import hooks, lifecycle
from sessions_app.errors import Conflict, InvalidInput
from sessions_app.models import (
    AgentSession,
    CheckpointState,
    CommandKind,
    EventType,
    RuntimeCommand,
    StopReason,
)
from sessions_app.redaction import redact_payload
from sessions_app.services.commands import command_queue
from sessions_app.services.common import (
    MAX_MESSAGE_CHARS,
    action_event,
    check_cap,
    lock_owner,
    record_user_message,
    require_act,
)
from sessions_app.states import Kind, Status


def _verb(
    *,
    session: AgentSession,
    user: Any,
    action: str,
    to_status: str,
    command: str,
    stop_reason: str | None = None,
) -> AgentSession:
    with transaction.atomic():
        result = lifecycle.transition(
            session, to_status, actor=user.get_username(), reason=action, stop_reason=stop_reason
        )
        if result.changed:
            action_event(session, user=user, action=action)
            command_queue(session=session, kind=command, issued_by=user)
    return result.session


def session_cancel(*, session: AgentSession, user: Any) -> AgentSession:
    """Cancel a flow run or background task for good (not resumable)."""
    require_act(user, session)
    return _verb(
        session=session,
        user=user,
        action="cancel",
        to_status=Status.CANCELLED,
        command=CommandKind.CANCEL,
        stop_reason=StopReason.USER,
    )


def session_stop(
    *, session: AgentSession, user: Any, stop_reason: str = StopReason.USER
) -> AgentSession:
    """Ask the runtime to stop; the session waits in `stopping` until it confirms."""
    require_act(user, session)
    return _verb(
        session=session,
        user=user,
        action="stop",
        to_status=Status.STOPPING,
        command=CommandKind.STOP,
        stop_reason=stop_reason,
    )


def session_pause(*, session: AgentSession, user: Any) -> AgentSession:
    require_act(user, session)
    return _verb(
        session=session,
        user=user,
        action="pause",
        to_status=Status.PAUSED,
        command=CommandKind.PAUSE,
    )


def session_resume(*, session: AgentSession, user: Any) -> AgentSession:
    """Resume a paused, stopped or idle session; a stopped one counts toward the cap again."""
    require_act(user, session)
    with transaction.atomic():
        lock_owner(session.owner_id)
        # The row's own `live`, read under the owner lock: a stale instance must not skip the cap.
        if not AgentSession.objects.values_list("live", flat=True).get(pk=session.pk):
            check_cap(agent=session.agent, owner_id=session.owner_id, exclude_pk=session.pk)
        return _verb(
            session=session,
            user=user,
            action="resume",
            to_status=Status.RUNNING,
            command=CommandKind.RESUME,
        )


def session_end(*, session: AgentSession, user: Any) -> AgentSession:
    require_act(user, session)
    if session.kind != Kind.CHAT:
        raise Conflict(
            f"Only chats can be ended; stop or cancel this {Kind(session.kind).label.lower()}."
        )
    return _verb(
        session=session,
        user=user,
        action="end",
        to_status=Status.ENDED,
        command=CommandKind.END,
        stop_reason=StopReason.USER,
    )


def checkpoint_decide(
    *, session: AgentSession, user: Any, approve: bool, note: str = ""
) -> AgentSession:
    """Approve (the run continues) or reject (the run is marked a problem; the runtime fails it)."""
    require_act(user, session)
    if session.checkpoint_state != CheckpointState.AWAITING:
        raise Conflict("This session has no checkpoint waiting for approval.")
    (redacted,), counts = redact_payload((note,))
    with transaction.atomic():
        state = CheckpointState.APPROVED if approve else CheckpointState.REJECTED
        updated = AgentSession.objects.filter(
            pk=session.pk, checkpoint_state=CheckpointState.AWAITING
        ).update(
            **lifecycle.bump(
                checkpoint_state=state,
                **lifecycle.activity_fields(session.agent, now=timezone.now()),
            )
        )
        if updated != 1:
            # Another operator decided first; theirs stands.
            session.refresh_from_db()
            raise Conflict("The checkpoint was already decided by someone else.")
        session.refresh_from_db()
        lifecycle.append_system_event(
            session,
            event_type=EventType.CHECKPOINT,
            actor=user.get_username(),
            payload={"state": state, "name": session.checkpoint_name, "note": redacted},
            redactions=counts,
        )
        lifecycle.record_redactions(session, counts)
        action_event(session, user=user, action="approve" if approve else "reject")
        if approve and session.status == Status.WAITING_INPUT:
            lifecycle.transition(
                session, Status.RUNNING, actor=user.get_username(), reason="approved"
            )
        command_queue(
            session=session,
            kind=CommandKind.APPROVE if approve else CommandKind.REJECT,
            issued_by=user,
            payload={"checkpoint": session.checkpoint_name, "note": redacted},
        )
        hooks.session_changed(session.pk)
    return session


def message_send(*, session: AgentSession, user: Any, text: str) -> RuntimeCommand:
    """An operator message: stored in the transcript and sent to the runtime, also while the
    agent is working. An idle chat comes back to running."""
    require_act(user, session)
    text = text.strip()
    if not text:
        raise InvalidInput("text", "must not be empty")
    if len(text) > MAX_MESSAGE_CHARS:
        raise InvalidInput("text", f"must be at most {MAX_MESSAGE_CHARS} characters")
    if session.is_terminal:
        raise Conflict(f"This session has {session.status}; it takes no more messages.")
    with transaction.atomic():
        # Read the status under the row lock: the idle sweep (which skips locked rows) then
        # either sees this message's activity or has already made the chat idle, undone below.
        session.status = (
            AgentSession.objects.select_for_update(no_key=True, of=("self",))
            .values_list("status", flat=True)
            .get(pk=session.pk)
        )
        if session.status == Status.IDLE:
            lifecycle.transition(
                session, Status.RUNNING, actor=user.get_username(), reason="message"
            )
        stored = record_user_message(session, user=user, text=text)
        command = command_queue(
            session=session, kind=CommandKind.MESSAGE, issued_by=user, payload={"text": stored}
        )
        hooks.session_changed(session.pk)
    session.refresh_from_db()
    return command
