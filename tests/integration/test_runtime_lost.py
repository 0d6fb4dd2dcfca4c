"""A runtime that vanishes without a word (SIGKILL) is noticed: its sessions are flagged
"runtime lost" once it has been silent for SCC_RUNTIME_LOST_SECONDS, and not before."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from sessions_app import services, sweeps
from sessions_app.models import Agent, AgentSession
from sessions_app.states import Kind
from tests import factories as f
from tests.integration.live_server import ROOT, LiveServer, free_port, runtime_token, server_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
LOST_SECONDS = 3


@pytest.fixture
def server(django_db_setup: None) -> Iterator[LiveServer]:
    live = LiveServer(
        free_port(),
        server_env(SCC_RUNTIME_HEARTBEAT_SECONDS="1", SCC_RUNTIME_LOST_SECONDS=str(LOST_SECONDS)),
        name="daphne-runtime-lost",
    )
    live.start()
    yield live
    live.stop()


def _flagged(session: AgentSession) -> bool:
    session.refresh_from_db()
    return session.stalled and session.stall_reason == services.RUNTIME_LOST


@override_settings(SCC_RUNTIME_LOST_SECONDS=LOST_SECONDS)
def test_a_killed_runtime_has_its_sessions_marked_runtime_lost(
    world: Any, server: LiveServer
) -> None:
    run = f.make_session(world.agent, world.owner, Kind.FLOW_RUN, status="running")
    token = runtime_token(world)
    runtime = subprocess.Popen(  # a runtime that only holds its command socket open
        [
            sys.executable,
            "-c",
            "import sys, threading\n"
            "from sessions_app.runtime.client import RuntimeClient\n"
            "client = RuntimeClient(sys.argv[1], sys.argv[2])\n"
            "for command in client.commands(stop=threading.Event()):\n"
            "    pass\n",
            server.url,
            token,
        ],
        cwd=ROOT,
        env=server.env,
    )
    try:
        deadline = time.monotonic() + 20
        while Agent.objects.get(pk=world.agent.pk).runtime_seen_at is None:
            assert time.monotonic() < deadline, "the runtime was never heard"
            time.sleep(0.2)
        # Connected and beating: silence never reaches the threshold (positive control).
        until = time.monotonic() + LOST_SECONDS + 2
        while time.monotonic() < until:
            sweeps.policy_sweep()
            assert not _flagged(run)
            time.sleep(0.5)
        runtime.kill()  # SIGKILL: no goodbye, no stop reports
        runtime.wait(timeout=10)
        killed_at = time.monotonic()
        while not _flagged(run):
            assert time.monotonic() - killed_at < LOST_SECONDS + 10, "never marked lost"
            sweeps.policy_sweep()
            time.sleep(0.5)
        assert time.monotonic() - killed_at >= LOST_SECONDS - 1.5  # not before its time
        assert run.status == "running"  # flagged, not stopped: its commands wait
        assert run.status_group == "attention"
    finally:
        if runtime.poll() is None:
            runtime.kill()
    # The runtime coming back clears the flag.
    services.forget_throttle()
    services.runtime_heard(agent_ids=[world.agent.pk])
    assert not _flagged(run)
