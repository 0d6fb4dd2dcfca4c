"""Runtimes' signs of life: a session whose runtime fell silent is flagged "runtime lost"."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from sessions_app import hooks
from sessions_app.lifecycle import bump
from sessions_app.models import Agent, AgentSession

RUNTIME_LOST = "runtime lost"

# Writes are throttled per process: a busy runtime is heard on every request and poll round,
# and the row only needs to know "recently" (well within the lost threshold).
_THROTTLE_SECONDS = 5.0
_written: dict[int, float] = {}
_lock = threading.Lock()


def runtime_heard(*, agent_ids: Iterable[int]) -> None:
    """A runtime serving these agents is alive. Sessions flagged "runtime lost" for them are no
    longer lost (their commands are being taken again)."""
    now_mono = time.monotonic()
    every = min(_THROTTLE_SECONDS, settings.SCC_RUNTIME_LOST_SECONDS / 4)
    with _lock:
        due = [a for a in agent_ids if now_mono - _written.get(a, -1e9) >= every]
        for agent_id in due:
            _written[agent_id] = now_mono
    if not due:
        return
    now = timezone.now()
    lost_before = now - timedelta(seconds=settings.SCC_RUNTIME_LOST_SECONDS)
    returning = list(
        Agent.objects.filter(pk__in=due, runtime_seen_at__lt=lost_before).values_list(
            "pk", flat=True
        )
    )
    Agent.objects.filter(pk__in=due).update(runtime_seen_at=now)
    if returning:
        found = AgentSession.objects.filter(
            agent_id__in=returning, live=True, stalled=True, stall_reason=RUNTIME_LOST
        )
        ids = list(found.values_list("pk", flat=True))
        found.update(**bump(stalled=False, stall_reason=""))
        for pk in ids:
            hooks.session_changed(pk)


def runtime_lost_agents(*, now: datetime | None = None) -> list[int]:
    """Agents whose runtime was heard from once but not for SCC_RUNTIME_LOST_SECONDS."""
    silent_since = (now or timezone.now()) - timedelta(seconds=settings.SCC_RUNTIME_LOST_SECONDS)
    return list(
        Agent.objects.filter(
            Q(runtime_seen_at__isnull=False) & Q(runtime_seen_at__lt=silent_since)
        ).values_list("pk", flat=True)
    )


def forget_throttle() -> None:
    """Tests: let the next sign of life be written at once."""
    with _lock:
        _written.clear()
