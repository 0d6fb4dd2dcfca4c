"""One session as a person sees it: the session, its transcript, children and history."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import Count
from django.utils import timezone

from sessions_app.errors import NotFound
from sessions_app.models import (
    AgentSession,
    CommandStatus,
    EventType,
    RuntimeCommand,
    SessionEvent,
)
from sessions_app.selectors.access import sessions_visible_to


def session_get_for_user(user: Any, session_id: Any) -> AgentSession:
    try:
        pk = uuid.UUID(str(session_id))
    except ValueError:
        raise NotFound(str(session_id)) from None
    session = (
        sessions_visible_to(user)
        .select_related("agent", "owner", "project", "initiative", "parent", "tenant")
        .filter(pk=pk)
        .first()
    )
    if session is None:
        raise NotFound(str(session_id))
    return session


def session_events(
    session: AgentSession, *, after: int = 0, limit: int = 200, types: list[str] | None = None
) -> list[SessionEvent]:
    qs = SessionEvent.objects.filter(session=session, seq__gt=after)
    if types:
        qs = qs.filter(type__in=types)
    return list(qs.order_by("seq")[:limit])


def step_payloads(session: AgentSession) -> list[Any]:
    return list(
        SessionEvent.objects.filter(session=session, type=EventType.STEP).values_list(
            "payload", flat=True
        )
    )


def status_history(session: AgentSession, *, limit: int = 100) -> list[SessionEvent]:
    return list(
        SessionEvent.objects.filter(session=session, type=EventType.STATUS_CHANGE).order_by("seq")[
            :limit
        ]
    )


def transcript_tail(session: AgentSession, *, before: int | None, limit: int) -> list[SessionEvent]:
    """The `limit` events before seq `before` (the newest when None), oldest first."""
    qs = SessionEvent.objects.filter(session=session)
    if before is not None:
        qs = qs.filter(seq__lt=before)
    return list(qs.order_by("-seq")[:limit])[::-1]


def events_after(session_id: Any, *, after: int, limit: int = 500) -> list[SessionEvent]:
    return list(
        SessionEvent.objects.filter(session_id=session_id, seq__gt=after).order_by("seq")[:limit]
    )


EXPORT_CHUNK = 1000


def events_for_export(
    session: AgentSession,
    *,
    up_to_seq: int | None = None,
    types: tuple[str, ...] = (),
    redacted_only: bool = False,
    fields: tuple[str, ...] = (),
) -> Iterator[Any]:
    """The transcript in seq order, fetched in chunks (a server-side cursor on PostgreSQL), so
    an export of 100 000 events never holds them all. `up_to_seq` pins the snapshot an export
    covers: every pass over the transcript (JSON, Markdown, manifest) sees the same events even
    while the session keeps going. With `fields`, rows are tuples of those columns (no model
    instances: a third faster over 100 000 events)."""
    qs = SessionEvent.objects.filter(session_id=session.pk)
    if up_to_seq is not None:
        qs = qs.filter(seq__lte=up_to_seq)
    if types:
        qs = qs.filter(type__in=types)
    if redacted_only:
        qs = qs.exclude(redactions={})
    qs = qs.order_by("seq")
    if fields:
        return qs.values_list(*fields).iterator(chunk_size=EXPORT_CHUNK)
    return qs.iterator(chunk_size=EXPORT_CHUNK)


def event_count(session: AgentSession, *, up_to_seq: int) -> int:
    return SessionEvent.objects.filter(session_id=session.pk, seq__lte=up_to_seq).count()


def last_seq_now(session: AgentSession) -> int:
    """The session's newest seq as the database has it now (the instance may be older)."""
    return int(AgentSession.objects.values_list("last_seq", flat=True).get(pk=session.pk))


def session_counts_by_kind_and_group() -> dict[tuple[str, str], int]:
    """Every session by kind and status group, for the metrics scrape."""
    rows = AgentSession.objects.values_list("kind", "status_group").annotate(n=Count("pk"))
    return {(kind, group): n for kind, group, n in rows.order_by()}


def oldest_undelivered_command_age(*, now: datetime | None = None) -> float:
    """Seconds since the oldest command no runtime has taken yet was queued; 0 when none."""
    oldest = (
        RuntimeCommand.objects.filter(status=CommandStatus.QUEUED)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if oldest is None:
        return 0.0
    return max(0.0, ((now or timezone.now()) - oldest).total_seconds())
