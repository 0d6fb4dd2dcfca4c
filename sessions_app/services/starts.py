"""Sessions the server creates (new from a page or a personal token, clone, transfer) start only
when a runtime takes them: what the `start` command carries, what accepting or refusing it does,
and the failure when nobody accepts in time.

The command itself is queued by `services.sessions.start_request` (through the one command door,
`command_queue`); this module is what the command service and the start-timeout sweep call.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from sessions_app import hooks, lifecycle, metrics
from sessions_app.models import (
    AgentSession,
    CommandKind,
    CommandStatus,
    EventType,
    RuntimeCommand,
    SessionEvent,
)
from sessions_app.states import Kind, Status, is_allowed

WAITING_FOR_RUNTIME = "waiting for a runtime"
# A transfer carries the end of the source's transcript so the receiver can continue: at most
# this many events and this many bytes of their JSON (newest kept), plus a summary line.
TRANSFER_TRANSCRIPT_EVENTS = 100
TRANSFER_TRANSCRIPT_BYTES = 64 * 1024
_CONTEXT_TYPES = (
    EventType.MESSAGE,
    EventType.TOOL_CALL,
    EventType.TOOL_RESULT,
    EventType.FILE_EDIT,
    EventType.STEP,
    EventType.CHECKPOINT,
    EventType.ERROR,
    EventType.ARTIFACT,
)
ACTOR = "server"


def start_configuration(session: AgentSession, metadata_fields: tuple[str, ...]) -> dict[str, Any]:
    """Everything a runtime needs to run the session it did not create."""
    initiative = session.initiative
    return {
        "id": str(session.pk),
        "kind": session.kind,
        "title": session.title,
        "agent": {"id": session.agent_id, "name": session.agent.name},
        "owner": session.owner.get_username(),
        "project": {"id": session.project_id, "name": session.project.name},
        "model": session.model,
        "temperature": session.temperature,
        "max_tokens": session.max_tokens,
        "timeout_seconds": session.timeout_seconds,
        "initiative": {"id": initiative.pk, "name": initiative.name} if initiative else None,
        "parent": str(session.parent_id) if session.parent_id else None,
        "metadata": {f: getattr(session, f) for f in metadata_fields},
    }


def transfer_context(source: AgentSession) -> dict[str, Any]:
    """What the receiver of a transfer needs to continue: the source's id, where it stood, a
    summary, and the end of its (already redacted) transcript within a bound."""
    newest = list(
        SessionEvent.objects.filter(session=source, type__in=_CONTEXT_TYPES).order_by("-seq")[
            :TRANSFER_TRANSCRIPT_EVENTS
        ]
    )
    kept: list[dict[str, Any]] = []
    size = 0
    for event in newest:
        item = {
            "seq": event.seq,
            "type": event.type,
            "actor": event.actor,
            "payload": event.payload,
        }
        size += len(json.dumps(item, default=str))
        if size > TRANSFER_TRANSCRIPT_BYTES:
            break
        kept.append(item)
    kept.reverse()
    total = SessionEvent.objects.filter(session=source, type__in=_CONTEXT_TYPES).count()
    return {
        "from_session": str(source.pk),
        "from_agent": {"id": source.agent_id, "name": source.agent.name},
        "from_owner": source.owner.get_username(),
        "from_status": source.status,
        "progress": {
            "current_step": source.current_step,
            "total_steps": source.total_steps,
            "current_step_name": source.current_step_name,
            "turns": source.turns,
            "message_count": source.message_count,
        },
        "summary": _summary(source, kept),
        "transcript": kept,
        "transcript_complete": len(kept) == total,
        "last_seq": source.last_seq,
    }


def _summary(source: AgentSession, transcript: list[dict[str, Any]]) -> str:
    parts = [
        f"Continues {Kind(source.kind).label.lower()} {source.title!r} (session {source.pk}) "
        f"of agent {source.agent.name}, {source.status}: {source.progress_text}."
    ]
    for role in ("user", "agent"):
        last = next(
            (
                e["payload"].get("text", "")
                for e in reversed(transcript)
                if e["type"] == EventType.MESSAGE and e["payload"].get("role") == role
            ),
            "",
        )
        if last:
            parts.append(f"Last {role} message: {str(last)[:300]}")
    return " ".join(parts)


def start_settle(command: RuntimeCommand, status: str, result: str) -> None:
    """A runtime accepted (applied) or refused (rejected) a `start`: the session stops waiting,
    or fails saying why. Called once per command, by the acknowledgement that settled it."""
    session = (
        AgentSession.objects.select_related("agent")
        .filter(pk=command.session_id, awaiting_runtime_since__isnull=False)
        .first()
    )
    if session is None:
        return
    if status == CommandStatus.APPLIED:
        with transaction.atomic():
            updated = AgentSession.objects.filter(
                pk=session.pk, awaiting_runtime_since__isnull=False
            ).update(**lifecycle.bump(awaiting_runtime_since=None))
            if updated != 1:
                return
            lifecycle.append_system_event(
                session,
                event_type=EventType.ACTION,
                actor=ACTOR,
                payload={"action": "start_accepted", "by": "runtime", "result": result[:500]},
            )
            hooks.session_changed(session.pk)
        return
    start_fail(
        session,
        code="start_rejected",
        message=f"The runtime refused to start this session: {result or 'no reason given'}",
    )


def start_withdraw(session: AgentSession, *, reason: str) -> bool:
    """Stop waiting for a runtime and take back the session's unaccepted `start`, so no runtime
    runs it later. False when it was not waiting (a runtime accepted it, or it never waited)."""
    updated = AgentSession.objects.filter(
        pk=session.pk, awaiting_runtime_since__isnull=False
    ).update(**lifecycle.bump(awaiting_runtime_since=None))
    if updated != 1:
        return False
    session.awaiting_runtime_since = None
    withdrawn = RuntimeCommand.objects.filter(
        session_id=session.pk,
        kind=CommandKind.START,
        status__in=[CommandStatus.QUEUED, CommandStatus.DELIVERED],
    ).update(status=CommandStatus.REJECTED, acked_at=timezone.now(), result=reason[:2000])
    metrics.COMMANDS.labels(CommandStatus.REJECTED).inc(withdrawn)
    hooks.session_changed(session.pk)
    return True


def start_fail(session: AgentSession, *, code: str, message: str) -> bool:
    """Fail a session that is still waiting for a runtime, and withdraw its `start` so no
    runtime takes it later. False when it stopped waiting meanwhile (a runtime got there)."""
    with transaction.atomic():
        if not start_withdraw(session, reason=message):
            return False
        session.refresh_from_db()
        if is_allowed(session.kind, session.status, Status.FAILED):
            lifecycle.transition(
                session,
                Status.FAILED,
                actor=ACTOR,
                reason=message,
                error_code=code,
                error_message=message,
                touch=False,
            )
    return True
