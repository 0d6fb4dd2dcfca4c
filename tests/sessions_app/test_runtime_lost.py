"""The "runtime lost" rule of the policy sweep, without processes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from sessions_app import services, sweeps
from sessions_app.models import Agent, AgentSession
from sessions_app.states import Kind
from tests import factories as f

pytestmark = pytest.mark.django_db


def test_only_sessions_of_a_silent_runtime_are_flagged(world: Any, settings: Any) -> None:
    settings.SCC_RUNTIME_LOST_SECONDS = 60
    silent = world.agent
    lively = f.make_agent(world.project, world.agent_owner, name="lively")
    never = f.make_agent(world.project, world.agent_owner, name="never-heard")
    now = timezone.now()
    Agent.objects.filter(pk=silent.pk).update(runtime_seen_at=now - timedelta(seconds=61))
    Agent.objects.filter(pk=lively.pk).update(runtime_seen_at=now - timedelta(seconds=10))
    lost = f.make_session(silent, world.owner, Kind.FLOW_RUN, status="running")
    chat = f.make_session(silent, world.owner, Kind.CHAT)
    done = f.make_session(silent, world.owner, Kind.FLOW_RUN, status="completed")
    fine = f.make_session(lively, world.owner, Kind.FLOW_RUN, status="running")
    quiet = f.make_session(never, world.owner, Kind.FLOW_RUN, status="running")

    report = sweeps.policy_sweep(now=now)

    assert report.runtime_lost == 2
    flagged = set(
        AgentSession.objects.filter(stall_reason=services.RUNTIME_LOST).values_list("pk", flat=True)
    )
    assert flagged == {lost.pk, chat.pk}
    for untouched in (done, fine, quiet):
        untouched.refresh_from_db()
        assert not untouched.stalled
    lost.refresh_from_db()
    assert lost.status == "running"
    assert lost.status_group == "attention"
    assert sweeps.policy_sweep(now=now).runtime_lost == 0  # flagged once

    services.forget_throttle()
    services.runtime_heard(agent_ids=[silent.pk])  # the runtime is back
    assert not AgentSession.objects.filter(stall_reason=services.RUNTIME_LOST).exists()
