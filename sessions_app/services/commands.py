"""The outbox from operators to runtimes: queue, hand out, acknowledge."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from sessions_app import hooks, metrics, selectors
from sessions_app.errors import InvalidInput, NotFound
from sessions_app.models import AgentSession, CommandKind, CommandStatus, RuntimeCommand
from sessions_app.redaction import redact_payload, redact_text
from sessions_app.services.starts import start_settle


def command_queue(
    *,
    session: AgentSession,
    kind: str,
    issued_by: Any = None,
    payload: dict[str, Any] | None = None,
) -> RuntimeCommand:
    """Queue a command for the session's runtime; the runtime channel is told after commit.
    The payload is redacted here, the one door commands are stored through."""
    redacted, counts = redact_payload(payload or {})
    command = RuntimeCommand.objects.create(
        tenant_id=session.tenant_id,
        session=session,
        agent_id=session.agent_id,
        kind=kind,
        payload=redacted,
        issued_by=issued_by,
    )
    hooks.command_queued(command.pk)
    metrics.COMMANDS.labels(CommandStatus.QUEUED).inc()
    metrics.count_redactions(counts)
    return command


def command_mark(*, command_ids: Iterable[Any], status: str, result: str = "") -> int:
    """Advance commands queued -> delivered -> applied/rejected; never backwards."""
    now = timezone.now()
    if status == CommandStatus.DELIVERED:
        changed = RuntimeCommand.objects.filter(
            pk__in=list(command_ids), status=CommandStatus.QUEUED
        ).update(status=status, delivered_at=now)
    elif status in (CommandStatus.APPLIED, CommandStatus.REJECTED):
        redacted = redact_text(result[:2000])
        changed = RuntimeCommand.objects.filter(
            pk__in=list(command_ids), status__in=[CommandStatus.QUEUED, CommandStatus.DELIVERED]
        ).update(status=status, acked_at=now, result=redacted.text)
        metrics.count_redactions(redacted.counts)
    else:
        raise InvalidInput("status", "must be delivered, applied or rejected")
    metrics.COMMANDS.labels(status).inc(changed)
    return changed


def commands_claim(
    *, agent_ids: Iterable[int], limit: int = 100, redeliver_after: timedelta | None = None
) -> list[RuntimeCommand]:
    """The commands a runtime for these agents has not acknowledged yet, oldest first, marked
    delivered (now). Commands stay pending until acknowledged, so runtimes deduplicate by id.

    `redeliver_after`: hand out a delivered-but-unacknowledged command again only when it was
    last handed out that long ago (a long-polling runtime polls again while it still works on
    it); None hands them all out (a runtime that just reconnected may have missed them).
    """
    now = timezone.now()
    pending = Q(status=CommandStatus.QUEUED)
    if redeliver_after is None:
        pending |= Q(status=CommandStatus.DELIVERED)
    else:
        pending |= Q(status=CommandStatus.DELIVERED, delivered_at__lt=now - redeliver_after)
    commands = list(
        RuntimeCommand.objects.filter(pending, agent_id__in=list(agent_ids)).order_by(
            "created_at", "id"
        )[:limit]
    )
    if commands:
        RuntimeCommand.objects.filter(
            pk__in=[c.pk for c in commands], status__in=selectors.PENDING_COMMAND_STATUSES
        ).update(status=CommandStatus.DELIVERED, delivered_at=now)
        metrics.COMMANDS.labels(CommandStatus.DELIVERED).inc(len(commands))
        for command in commands:
            command.status, command.delivered_at = CommandStatus.DELIVERED, now
    return commands


def command_claim(*, command_id: Any, agent_ids: Iterable[int]) -> RuntimeCommand | None:
    """One command for these agents, marked delivered; None when it is not theirs or was
    already acknowledged."""
    command = RuntimeCommand.objects.filter(
        pk=command_id, agent_id__in=list(agent_ids), status__in=selectors.PENDING_COMMAND_STATUSES
    ).first()
    if command is not None and command.status == CommandStatus.QUEUED:
        command_mark(command_ids=[command.pk], status=CommandStatus.DELIVERED)
        command.refresh_from_db()
    return command


def command_ack(
    *, command_id: Any, agent_ids: Iterable[int], status: str, result: str = ""
) -> RuntimeCommand:
    """A runtime's acknowledgement. Only commands for the runtime's own agents; repeating an
    acknowledgement changes nothing (the first applied/rejected stands). The acknowledgement
    that settles a `start` also settles its session: accepted (no longer waiting for a
    runtime) or refused (failed). Several runtimes may serve one agent: the first `applied`
    wins, and a runtime learns it lost when the answer's `result` is not the one it sent."""
    command = RuntimeCommand.objects.filter(pk=command_id, agent_id__in=list(agent_ids)).first()
    if command is None:
        raise NotFound(str(command_id))
    with transaction.atomic():
        changed = command_mark(command_ids=[command.pk], status=status, result=result)
        command.refresh_from_db()
        if changed and command.kind == CommandKind.START and status != CommandStatus.DELIVERED:
            start_settle(command, status, command.result)
    return command
