"""Every metric docs/operations.md lists moves when the thing it counts happens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone

from sessions_app import services, sweeps
from sessions_app.models import Agent, AgentSession
from sessions_app.states import Kind
from tests import factories as f
from tests.command_center.test_consumers import connect, receive_until
from tests.ops.test_health_and_metrics import _sample

pytestmark = pytest.mark.django_db(transaction=True)


def _scrape() -> str:
    return Client().get("/metrics").content.decode()


def _delta(before: str, after: str, name: str, **labels: str) -> float:
    return _sample(after, name, **labels) - _sample(before, name, **labels)


def test_commands_sweeps_and_retention_are_counted(world: Any) -> None:
    before = _scrape()
    run = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    services.session_pause(session=run, user=world.owner)  # queues a pause command
    services.commands_claim(agent_ids=[world.agent.pk])  # a runtime takes it
    old = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="completed")
    AgentSession.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(days=1))
    Agent.objects.filter(pk=world.agent.pk).update(
        runtime_seen_at=timezone.now() - timedelta(hours=1)
    )
    sweeps.policy_sweep()  # flags the paused run "runtime lost"
    sweeps.retention_purge()
    after = _scrape()
    assert _delta(before, after, "scc_commands_total", state="queued") >= 1
    assert _delta(before, after, "scc_commands_total", state="delivered") >= 1
    assert _delta(before, after, "scc_sweep_rows_changed_total", rule="runtime_lost") == 1
    assert _delta(before, after, "scc_retention_purged_total") == 1
    for sweep in ("policy", "retention"):
        assert _delta(before, after, "scc_sweep_duration_seconds_count", sweep=sweep) == 1


async def test_sockets_and_the_push_path_are_measured(world: Any) -> None:
    before = await sync_to_async(_scrape)()
    communicator = await connect(world.owner, "view=list")
    await communicator.receive_from(timeout=10)
    during = await sync_to_async(_scrape)()
    assert _delta(before, during, "scc_websockets_open", kind="dashboard") == 1
    s = await sync_to_async(f.make_session)(world.agent, world.owner, Kind.FLOW_RUN)
    await receive_until(communicator, f'id="session-{s.pk}"', timeout=10)
    await communicator.disconnect()
    after = await sync_to_async(_scrape)()
    assert _delta(before, after, "scc_websockets_open", kind="dashboard") == 0
    assert _delta(before, after, "scc_broadcast_lag_seconds_count") >= 1
    assert _delta(before, after, "scc_push_lag_seconds_count") >= 1
