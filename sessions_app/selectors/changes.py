"""Which sessions changed lately: what the dashboards' reconciliation compares against the
versions their sockets were pushed (command_center/reconcile.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import F

from sessions_app.models import AgentSession
from sessions_app.selectors.access import SESSION_FACTS


def sessions_changed_since(since: datetime) -> list[dict[str, Any]]:
    """Id, version, `updated_at` and the visibility facts of every session whose visible state
    last changed at or after `since`. Served by `session_updated_idx`, so its cost follows the
    number of recent changes, never the number of sessions."""
    rows = (
        AgentSession.objects.filter(updated_at__gte=since)
        .annotate(agent_owner_id=F("agent__owner_id"))
        .values("id", "version", "updated_at", *SESSION_FACTS)
    )
    return list(rows)
