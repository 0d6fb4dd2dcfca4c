"""A process that commits a change and exits at once (a management command, a recycled worker)
still gets the change to the open dashboards: on a normal exit by publishing what is pending
before it goes, and when it is killed before it could publish, by the reconciliation of the
web process that holds the sockets."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from command_center import reconcile
from sessions_app.models import SessionEvent
from tests import factories as f
from tests.faults.live import Dashboard
from tests.integration.live_server import ROOT, LiveServer, free_port, server_env, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RECORD = """
from sessions_app import services
from sessions_app.models import AgentSession
session = AgentSession.objects.get(pk={session_id!r})
services.events_record(
    session=session,
    events=[services.EventIn({event_id!r}, "message", {{"role": "agent", "text": {text!r}}})],
    actor="short-lived",
)
"""
# Killed right after the commit: no exit handler runs. The broadcaster publishes a quiet
# session's change at once, from its own thread, so a kill could now and then lose the race to
# it; taking it off the hook first makes "died before publishing" certain, not likely.
NOT_PUBLISHING = (
    "from command_center.broadcast import broadcaster\n"
    "from sessions_app import hooks\n"
    "hooks.unregister('session_changed', broadcaster.session_changed)\n"
)
KILLED = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)\n"


@pytest.fixture(scope="module")
def not_repairing(django_db_setup: None) -> Iterator[LiveServer]:
    server = LiveServer(free_port(), server_env(SCC_RECONCILE_MS="0"), name="daphne-not-repairing")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def servers(live_daphne: LiveServer, not_repairing: LiveServer) -> dict[str, LiveServer]:
    """A web process with the reconciliation on (as deployed) and one with it off, so the exit
    flush and the repair are each seen on their own."""
    return {"repairing": live_daphne, "not-repairing": not_repairing}


def run_and_exit(session_id: Any, event_id: str, text: str, *, killed: bool) -> int:
    code = RECORD.format(session_id=str(session_id), event_id=event_id, text=text)
    process = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            NOT_PUBLISHING + code + KILLED if killed else code,
        ],
        cwd=ROOT,
        env=server_env(),
        capture_output=True,
        timeout=120,
    )
    return process.returncode


def watch(server: LiveServer, world: Any, chat: Any) -> Dashboard:
    dashboard = Dashboard(server, session_cookie(world.owner), f"view=detail&session={chat.pk}")
    dashboard.start().wait_for('id="transcript"', timeout=30)
    return dashboard


def stored_once(chat: Any, event_id: str) -> bool:
    return SessionEvent.objects.filter(session=chat, event_id=event_id).count() == 1


def test_a_process_exiting_right_after_its_commit_still_pushes_the_change(
    world: Any, servers: dict[str, LiveServer]
) -> None:
    chat = f.make_session(world.agent, world.owner, "chat", status="running")
    # On the server without reconciliation only the exiting process's own publish can do it.
    dashboard = watch(servers["not-repairing"], world, chat)
    try:
        assert run_and_exit(chat.pk, "exit-1", "said just before exiting", killed=False) == 0
        exited_at = time.monotonic()
        assert stored_once(chat, "exit-1")
        arrived = dashboard.wait_for("said just before exiting", timeout=10)
        assert arrived - exited_at < 2
    finally:
        dashboard.stop()
    assert dashboard.closes == []


def test_a_process_killed_right_after_its_commit_is_repaired_within_the_bound(
    world: Any, servers: dict[str, LiveServer]
) -> None:
    chat = f.make_session(world.agent, world.owner, "chat", status="running")
    dashboard = watch(servers["repairing"], world, chat)
    try:
        assert run_and_exit(chat.pk, "kill-1", "said just before a SIGKILL", killed=True) == -9
        killed_at = time.monotonic()
        assert stored_once(chat, "kill-1")
        dashboard.wait_for("said just before a SIGKILL", timeout=reconcile.bound_seconds() + 1)
        assert time.monotonic() - killed_at <= reconcile.bound_seconds() + 1
    finally:
        dashboard.stop()


def test_without_the_repair_a_killed_process_change_does_not_arrive(
    world: Any, servers: dict[str, LiveServer]
) -> None:
    # Control for the test above: the SIGKILL really lost the push (the first test shows this
    # server does deliver what is published).
    chat = f.make_session(world.agent, world.owner, "chat", status="running")
    dashboard = watch(servers["not-repairing"], world, chat)
    try:
        assert run_and_exit(chat.pk, "kill-2", "lost with its process", killed=True) == -9
        assert stored_once(chat, "kill-2")
        with pytest.raises(AssertionError, match="no frame"):
            dashboard.wait_for("lost with its process", timeout=reconcile.bound_seconds() + 1)
    finally:
        dashboard.stop()
