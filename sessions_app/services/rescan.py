"""Re-run the current redaction rules over what is already stored.

Rules improve; transcripts written before a rule existed must not keep what it now catches.
`redact_stored` walks events, sessions (title, run metadata, error, step and checkpoint names)
and runtime commands (payload, result) in keyset batches, and for each row whose redacted form
differs writes it back, adds the counts to the event's and the session's redaction report, and
appends one `redaction` action event per touched session (rule names and counts, never values).
A dry run counts the same and writes nothing. Running it twice changes nothing the second time:
markers are not secrets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from django.db import models, transaction

from sessions_app import hooks, lifecycle
from sessions_app.models import AgentSession, EventType, RuntimeCommand, SessionEvent
from sessions_app.redaction import redact_payload, redact_text
from sessions_app.states import fold

ACTOR = "redact_stored"
SESSION_TEXT_FIELDS = (
    "title",
    "sandbox",
    "profile",
    "runtime",
    "repo",
    "branch",
    "error_message",
    "current_step_name",
    "checkpoint_name",
    "stall_reason",
)

M = TypeVar("M", bound=models.Model)


@dataclass
class RescanReport:
    dry_run: bool
    rules: Counter[str] = field(default_factory=Counter)
    events: int = 0
    sessions: int = 0
    commands: int = 0
    touched_sessions: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "rules": dict(sorted(self.rules.items())),
            "events": self.events,
            "sessions": self.sessions,
            "commands": self.commands,
            "touched_sessions": len(self.touched_sessions),
        }


def _batches(
    qs: models.QuerySet[M], *, since: datetime | None, batch_size: int
) -> Iterator[list[M]]:
    """Keyset pages by primary key, so memory stays bounded and rows written meanwhile are
    reached or skipped, never read twice."""
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    last: Any = None
    while True:
        page = qs.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        rows = list(page[:batch_size])
        if not rows:
            return
        yield rows
        last = rows[-1].pk


def _texts(values: dict[str, str]) -> tuple[dict[str, str], dict[str, int]]:
    changed: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for name, value in values.items():
        result = redact_text(value)
        if result.counts:
            changed[name] = result.text
            counts.update(result.counts)
    return changed, dict(counts)


def redact_stored(
    *, dry_run: bool = False, since: datetime | None = None, batch_size: int = 500
) -> RescanReport:
    """Apply the current rules to stored data (see the module docstring)."""
    report = RescanReport(dry_run=dry_run)
    per_session: dict[Any, Counter[str]] = {}

    def note(session_id: Any, counts: dict[str, int]) -> None:
        report.rules.update(counts)
        per_session.setdefault(session_id, Counter()).update(counts)
        report.touched_sessions.add(str(session_id))

    for events in _batches(SessionEvent.objects.all(), since=since, batch_size=batch_size):
        with transaction.atomic():
            for event in events:
                payload, counts = redact_payload(event.payload)
                actor, actor_counts = _texts({"actor": event.actor})
                counts = lifecycle.add_counts(counts, actor_counts)
                if not counts:
                    continue
                report.events += 1
                note(event.session_id, counts)
                if not dry_run:
                    SessionEvent.objects.filter(pk=event.pk).update(
                        payload=payload,
                        actor=actor.get("actor", event.actor),
                        redactions=lifecycle.add_counts(event.redactions or {}, counts),
                    )

    for sessions in _batches(AgentSession.objects.all(), since=since, batch_size=batch_size):
        with transaction.atomic():
            for session in sessions:
                changed, counts = _texts({f: getattr(session, f) for f in SESSION_TEXT_FIELDS})
                if not counts:
                    continue
                report.sessions += 1
                note(session.pk, counts)
                if not dry_run:
                    if "title" in changed:
                        changed["title_folded"] = fold(changed["title"])
                    AgentSession.objects.filter(pk=session.pk).update(**changed)

    for commands in _batches(RuntimeCommand.objects.all(), since=since, batch_size=batch_size):
        with transaction.atomic():
            for command in commands:
                payload, counts = redact_payload(command.payload)
                result, result_counts = _texts({"result": command.result})
                counts = lifecycle.add_counts(counts, result_counts)
                if not counts:
                    continue
                report.commands += 1
                note(command.session_id, counts)
                if not dry_run:
                    RuntimeCommand.objects.filter(pk=command.pk).update(
                        payload=payload, result=result.get("result", command.result)
                    )

    if not dry_run:
        for session_id, counts in per_session.items():
            _audit(session_id, dict(counts))
    return report


def _audit(session_id: Any, counts: dict[str, int]) -> None:
    """One audit line per touched session, and its report totals, in one transaction."""
    with transaction.atomic():
        session = (
            AgentSession.objects.select_for_update(no_key=True, of=("self",))
            .filter(pk=session_id)
            .first()
        )
        if session is None:  # deleted meanwhile
            return
        lifecycle.append_system_event(
            session,
            event_type=EventType.ACTION,
            actor=ACTOR,
            # A list of {rule, count}, not {rule: count}: a rule name as a key with a number
            # under it reads like a secret assignment, and the next rescan would redact it.
            payload={
                "action": "redaction",
                "by": ACTOR,
                "rules": [{"rule": r, "count": n} for r, n in sorted(counts.items())],
            },
        )
        AgentSession.objects.filter(pk=session.pk).update(
            **lifecycle.bump(
                redaction_counts=lifecycle.add_counts(session.redaction_counts or {}, counts)
            )
        )
        hooks.session_changed(session.pk)
