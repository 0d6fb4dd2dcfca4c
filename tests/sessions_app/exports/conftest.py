"""A fixed session for the export tests: fixed id, times and event ids, one event of every
kind a transcript shows, a credential that redaction removes, and a parent the owner may not
see (so the lineage rule shows)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from sessions_app import services
from sessions_app.models import AgentSession
from sessions_app.states import Kind
from tests import factories as f
from tests.conftest import World

FIXED_ID = uuid.UUID("0f0e0d0c-0b0a-4908-8706-050403020100")
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
EXPORTED_AT = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
GITHUB_SECRET = "ghp_" + "R4nd0mF4k3T0k3n" * 3


@dataclass
class Fixed:
    session: AgentSession
    parent: AgentSession


def _events(*items: tuple[str, str, dict[str, Any]]) -> list[services.EventIn]:
    return [services.EventIn(event_id, type_, payload) for event_id, type_, payload in items]


def build_fixed_session(world: World) -> Fixed:
    initiative = f.make_initiative(world.tenant, "Q3 push")
    with time_machine.travel(T0, tick=False) as clock:
        # A chat of another person: the owner may not see it, so it is named without id or title.
        parent = f.make_session(world.agent, world.developer, Kind.CHAT, title="Private planning")
        session = AgentSession.objects.create(
            id=FIXED_ID,
            short_id="0f0e0d0c",
            tenant=world.tenant,
            project=world.project,
            agent=world.agent,
            owner=world.owner,
            kind=Kind.FLOW_RUN,
            status="pending",
            title="Deploy the payments service",
            model="gpt-4o",
            temperature=0.2,
            max_tokens=2000,
            timeout_seconds=600,
            runtime="runner-eu-1",
            sandbox="sbx-42",
            profile="ci",
            repo="github.com/acme/payments",
            branch="release/3.1",
            origin="web",
            initiative=initiative,
            parent=parent,
            total_steps=2,
            last_activity_at=T0,
            expires_at=T0 + timedelta(days=30),
        )

        def batch(*items: tuple[str, str, dict[str, Any]]) -> None:
            clock.shift(timedelta(seconds=7))
            services.events_record(session=session, events=_events(*items), actor="runner")

        batch(("e01", "status_change", {"to": "running", "reason": "runtime picked it up"}))
        batch(
            ("e02", "message", {"role": "user", "text": "Ship 3.1 to staging.", "author": "owner"}),
            ("e03", "step", {"state": "started", "name": "Build", "index": 1, "total": 2}),
            ("e04", "thinking", {"text": "The build needs the registry token; use the CI one."}),
        )
        batch(
            (
                "e05",
                "tool_call",
                {"call_id": "c1", "name": "bash", "arguments": {"cmd": "make image"}},
            ),
            (
                "e06",
                "tool_result",
                {
                    "call_id": "c1",
                    "name": "bash",
                    "output": f"pushed with GH_TOKEN={GITHUB_SECRET}",
                },
            ),
        )
        batch(
            (
                "e07",
                "file_edit",
                {
                    "path": "deploy/values.yaml",
                    "before": "tag: 3.0\nreplicas: 2\n",
                    "after": "tag: 3.1\nreplicas: 2\n",
                },
            ),
            ("e08", "step", {"state": "completed", "name": "Build", "index": 1, "total": 2}),
            ("e09", "checkpoint", {"state": "awaiting", "name": "Promote to staging"}),
            ("e10", "status_change", {"to": "waiting_input", "reason": "checkpoint"}),
        )
        batch(
            ("e11", "status_change", {"to": "running", "reason": "approved"}),
            ("e12", "artifact", {"name": "image", "uri": "registry.acme.dev/payments:3.1"}),
            (
                "e13",
                "error",
                {"code": "rollout_timeout", "message": "Rollout took longer than 10 min."},
            ),
            (
                "e14",
                "status_change",
                {"to": "failed", "error": {"code": "rollout_timeout", "message": "Rollout stuck."}},
            ),
        )
    session.refresh_from_db()
    return Fixed(session=session, parent=parent)


@pytest.fixture
def fixed(world: World) -> Fixed:
    return build_fixed_session(world)
