"""The audit line an export writes: exporting is reading, but who took a copy of a transcript,
in which format and up to which event, belongs in the session's own audit trail."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F

from sessions_app import hooks
from sessions_app.models import AgentSession
from sessions_app.services.common import action_event, require_view


def session_export_audit(
    *, session: AgentSession, user: Any, fmt: str, up_to_seq: int, via: str
) -> None:
    """Write "<user> exported the session" (format, the last event covered, web or api) as an
    `action` event. View rights suffice, as for the page. The version is bumped so open detail
    views append the line live; the session's activity and modification time stay as they are,
    because reading a session is not working on it."""
    require_view(user, session)
    with transaction.atomic():
        action_event(session, user=user, action="export", format=fmt, up_to_seq=up_to_seq, via=via)
        AgentSession.objects.filter(pk=session.pk).update(version=F("version") + 1)
        hooks.session_changed(session.pk)
