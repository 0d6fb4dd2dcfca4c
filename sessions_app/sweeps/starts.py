"""The start timeout: a session the server created fails when no runtime of its agent accepted
its `start` command within SCC_START_TIMEOUT_SECONDS."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from sessions_app import services
from sessions_app.models import AgentSession
from sessions_app.policies import human_duration
from sessions_app.sweeps.common import SweepReport, _Budget, _lock_session, _sweep_rows


def start_timeout_due(now: datetime) -> QuerySet[AgentSession]:
    """Sessions waiting for a runtime for longer than the start timeout
    (session_awaiting_runtime_idx)."""
    limit = timedelta(seconds=settings.SCC_START_TIMEOUT_SECONDS)
    return AgentSession.objects.filter(awaiting_runtime_since__lte=now - limit)


def start_timeout(now: datetime, report: SweepReport, batch_size: int, budget: _Budget) -> None:
    limit = timedelta(seconds=settings.SCC_START_TIMEOUT_SECONDS)

    def handle(pk: Any) -> str | None:
        with transaction.atomic():
            session = _lock_session(pk)
            since = session.awaiting_runtime_since if session is not None else None
            if session is None or since is None or since > now - limit:
                return None
            waited = human_duration(settings.SCC_START_TIMEOUT_SECONDS)
            failed = services.start_fail(
                session,
                code="no_runtime",
                message=f"No runtime of the agent {session.agent.name!r} accepted this session "
                f"within {waited}. Check that a runtime serving the agent is running, then "
                "clone the session to try again.",
            )
            return "start_timeout" if failed else None

    _sweep_rows(
        start_timeout_due(now),
        key="awaiting_runtime_since",
        handle=handle,
        rule="start timeout",
        report=report,
        batch_size=batch_size,
        budget=budget,
    )
